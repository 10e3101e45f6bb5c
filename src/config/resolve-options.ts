import { isIP } from 'node:net';
import { ClientTable, type ResolvedClient } from '../auth/clients.js';
import { CREDENTIAL_HEADERS } from '../auth/credential-names.js';
import { findKeys, isKeyToken, KEY_CHARACTERS } from '../auth/key-recognition.js';
import {
  createServerKeyResolver,
  defaultSecretsFile,
  DEFAULT_UPSTREAM,
  type ServerKeyResolver,
} from '../auth/upstream-key.js';
import { AmpProxyConfigError } from '../errors.js';
import type { AmpCustomPolicy, AmpPolicyName, AmpProxyOptions } from '../options.js';
import type { AmpProxyEventListener } from '../observability/events.js';
import { loggingListener, type AmpLogger } from '../observability/logger.js';
import { createRedactor, type Redactor } from '../observability/redact.js';
import { compileModelMappings } from '../provider/model-mappings.js';
import type { LocalProvider, ProviderRoutingConfig } from '../provider/provider-routing.js';
import { AMP_GROUPS, type AmpGroup } from '../routing/route-groups.js';

/** Options after validation, with everything that can be computed once computed. */
export interface ResolvedConfig {
  /** The upstream without a trailing slash: origin plus optional path prefix. */
  readonly upstreamBase: string;
  readonly clients: ClientTable;
  readonly policies: Readonly<Record<AmpGroup, AmpPolicyName | AmpCustomPolicy>>;
  readonly tokenHeader: string;
  readonly timeoutMs: number;
  readonly serverKey: ServerKeyResolver;
  readonly restrictToLocalhost: boolean;
  readonly trustedProxies: readonly string[];
  /** Where request and WebSocket events go; `undefined` when nobody listens, so nothing is traced. */
  readonly emit: AmpProxyEventListener | undefined;
  /** Masks credentials in logs and events, including every key this config knows. */
  readonly redactor: Redactor;
  /** How provider calls are routed by model; `undefined` when nothing needs the body read. */
  readonly providerRouting: ProviderRoutingConfig | undefined;
}
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

export const DEFAULT_POLICIES: Readonly<Record<AmpGroup, AmpPolicyName>> = {
  provider: 'inject',
  management: 'passthrough',
  actors: 'passthrough',
  browser: 'passthrough',
};
export const DEFAULT_TOKEN_HEADER = 'x-amp-token';
export const DEFAULT_TIMEOUT_MS = 600_000;

const KNOWN_OPTIONS = new Set<string>([
  'upstream',
  'upstreamKey',
  'clients',
  'policies',
  'tokenHeader',
  'timeoutMs',
  'secretsFile',
  'restrictManagementToLocalhost',
  'trustedProxies',
  'logger',
  'onProxyEvent',
  'modelMappings',
  'localProvider',
  'forceModelMappings',
  'maxBodyBytes',
] satisfies (keyof AmpProxyOptions)[]);
const POLICY_NAMES: readonly AmpPolicyName[] = ['inject', 'passthrough', 'dual-token', 'redirect'];
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Headers that already have a meaning the gateway relies on. */
const RESERVED_TOKEN_HEADERS = new Set<string>([
  ...CREDENTIAL_HEADERS,
  'proxy-authorization',
  'host',
  'connection',
  'content-length',
  'content-type',
  'cookie',
]);

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : String(value);
}

/** What a wrong secret is, without its value: an error message must never echo a key. */
function describeSecret(value: unknown): string {
  if (typeof value === 'string') return value.trim() === '' ? 'an empty string' : 'a string';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `a ${typeof value}`;
  }
  return describe(value);
}

/**
 * An upstream URL as an error message may show it: userinfo and everything from the query or
 * fragment on masked, since both can hold credentials (`https://user:key@host/?key=…`).
 */
function describeUpstream(value: string): string {
  const tail = value.search(/[?#]/);
  let shown = tail === -1 ? value : `${value.slice(0, tail + 1)}…`;
  const slashes = shown.indexOf('//');
  const authority = slashes === -1 ? 0 : slashes + 2;
  const authorityEnd = shown.slice(authority).search(/[/?#]/);
  const at = shown.lastIndexOf('@', authorityEnd === -1 ? undefined : authority + authorityEnd);
  if (at >= authority) shown = `${shown.slice(0, authority)}…${shown.slice(at)}`;
  return JSON.stringify(shown);
}

function fail(option: string, problem: string): never {
  throw new AmpProxyConfigError(option, problem);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function resolveUpstream(value: unknown): string {
  if (value === undefined) return DEFAULT_UPSTREAM;
  if (typeof value !== 'string' || value.trim() === '') {
    fail('upstream', `expected a URL such as "${DEFAULT_UPSTREAM}", got ${describe(value)}`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail(
      'upstream',
      `expected an absolute http(s) URL such as "${DEFAULT_UPSTREAM}", got ${describeUpstream(value)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    fail('upstream', `expected an http: or https: URL, got ${describeUpstream(value)}`);
  }
  if (url.username || url.password) {
    fail('upstream', 'must not contain credentials; use upstreamKey for the Amp key');
  }
  if (url.search || url.hash) {
    fail('upstream', `must not contain a query string or fragment, got ${describeUpstream(value)}`);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

function resolveUpstreamKey(value: unknown, clients: ResolvedClients): AmpProxyOptions['upstreamKey'] {
  if (value === undefined || typeof value === 'function') return value as AmpProxyOptions['upstreamKey'];
  if (typeof value !== 'string' || value.trim() === '') {
    fail(
      'upstreamKey',
      `expected a non-empty string or a function (req) => key, got ${describeSecret(value)}; omit it to use AMP_API_KEY or the Amp secrets file`,
    );
  }
  const key = value.trim();
  const conflict = clients.gatewayKeyIn(key);
  if (conflict) fail('upstreamKey', conflict);
  return key;
}

interface ResolvedClients {
  readonly table: ClientTable;
  /** Every gateway key and mapped key, for the redactor. */
  readonly secrets: readonly string[];
  /**
   * Why `secret` must never be sent upstream (`equals the key of clients[2]`), or `undefined`:
   * the key would leave the gateway, and the gateway could not tell it from the client's.
   */
  gatewayKeyIn(secret: string): string | undefined;
}

function resolveClients(value: unknown): ResolvedClients {
  const table = new ClientTable();
  const indexOf = new Map<ResolvedClient, number>();
  const secrets: string[] = [];
  const gatewayKeyIn = (secret: string): string | undefined => {
    let index: number | undefined;
    findKeys(secret, table, (client) => {
      index = indexOf.get(client);
      return true;
    });
    if (index === undefined) return undefined;
    // A key token found in a secret that is one token is that whole secret.
    return `${isKeyToken(secret) ? 'equals' : 'contains'} the key of clients[${index}]`;
  };
  const resolved: ResolvedClients = { table, secrets, gatewayKeyIn };
  if (value === undefined) return resolved;
  if (!Array.isArray(value))
    fail('clients', `expected an array of { key, name?, upstreamKey? }, got ${describe(value)}`);
  const mappedKeys: [at: string, key: string][] = [];
  value.forEach((client: unknown, index) => {
    const at = `clients[${index}]`;
    if (!isPlainObject(client)) fail(at, `expected { key, name?, upstreamKey? }, got ${describe(client)}`);
    for (const field of Object.keys(client)) {
      if (field !== 'key' && field !== 'name' && field !== 'upstreamKey') {
        fail(`${at}.${field}`, 'unknown field; a client has key, name and upstreamKey');
      }
    }
    const { key, name, upstreamKey } = client;
    if (typeof key !== 'string' || key === '')
      fail(`${at}.key`, `expected a non-empty string, got ${describeSecret(key)}`);
    if (!isKeyToken(key)) {
      fail(
        `${at}.key`,
        `must contain only the characters ${KEY_CHARACTERS}, so that the gateway can recognise a key wherever it appears`,
      );
    }
    if (name !== undefined && typeof name !== 'string')
      fail(`${at}.name`, `expected a string, got ${describe(name)}`);
    if (upstreamKey !== undefined && (typeof upstreamKey !== 'string' || upstreamKey.trim() === '')) {
      fail(`${at}.upstreamKey`, `expected a non-empty string, got ${describeSecret(upstreamKey)}`);
    }
    const previous = table.lookup(key);
    if (previous !== undefined) {
      fail(
        `${at}.key`,
        `duplicates clients[${indexOf.get(previous)}].key; every gateway key must identify one client`,
      );
    }
    const entry: ResolvedClient = { name, upstreamKey: upstreamKey?.trim() };
    table.add(key, entry);
    indexOf.set(entry, index);
    secrets.push(key);
    if (entry.upstreamKey) mappedKeys.push([at, entry.upstreamKey]);
  });
  // Checked once every gateway key is known: clients[0].upstreamKey may be the key of clients[5].
  for (const [at, mapped] of mappedKeys) {
    const conflict = gatewayKeyIn(mapped);
    if (conflict) fail(`${at}.upstreamKey`, conflict);
    secrets.push(mapped);
  }
  return resolved;
}

function resolvePolicies(value: unknown): Record<AmpGroup, AmpPolicyName | AmpCustomPolicy> {
  const policies: Record<AmpGroup, AmpPolicyName | AmpCustomPolicy> = { ...DEFAULT_POLICIES };
  if (value === undefined) return policies;
  if (!isPlainObject(value)) fail('policies', `expected an object keyed by group, got ${describe(value)}`);
  for (const [group, policy] of Object.entries(value)) {
    const at = `policies.${group}`;
    if (!(AMP_GROUPS as readonly string[]).includes(group)) {
      fail(at, `unknown group; the groups are ${AMP_GROUPS.join(', ')}`);
    }
    if (policy === undefined) continue;
    const allowed = POLICY_NAMES.filter(
      (name) => !(name === 'redirect' && group !== 'browser') && !(name === 'inject' && group === 'browser'),
    );
    if (typeof policy === 'function') {
      policies[group as AmpGroup] = policy as AmpCustomPolicy;
      continue;
    }
    if (typeof policy !== 'string' || !(allowed as readonly string[]).includes(policy)) {
      const why =
        policy === 'inject'
          ? ' (browser pages never carry the server key)'
          : policy === 'redirect'
            ? ' (only browser pages can be redirected)'
            : '';
      fail(at, `expected one of ${allowed.join(' | ')} or a function, got ${describe(policy)}${why}`);
    }
    policies[group as AmpGroup] = policy as AmpPolicyName;
  }
  return policies;
}

function resolveTokenHeader(value: unknown): string {
  if (value === undefined) return DEFAULT_TOKEN_HEADER;
  const name = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (!HEADER_NAME.test(name))
    fail('tokenHeader', `expected an HTTP header name such as "x-amp-token", got ${describe(value)}`);
  if (RESERVED_TOKEN_HEADERS.has(name)) {
    fail(
      'tokenHeader',
      `"${name}" already has a meaning to the gateway; choose a dedicated header such as "x-amp-token"`,
    );
  }
  return name;
}

function resolveTimeout(value: unknown): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS;
  // setTimeout silently turns larger values into 1 ms.
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2_147_483_647) {
    fail(
      'timeoutMs',
      `expected a whole number of milliseconds between 1 and 2147483647, got ${describe(value)}`,
    );
  }
  return value;
}

function resolveSecretsFile(value: unknown): string {
  if (value === undefined) return defaultSecretsFile();
  if (typeof value !== 'string' || value === '')
    fail('secretsFile', `expected a file path, got ${describe(value)}`);
  return value;
}

function resolveBoolean(option: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') fail(option, `expected true or false, got ${describe(value)}`);
  return value;
}

function resolveTrustedProxies(value: unknown): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    fail('trustedProxies', `expected an array of addresses or CIDR ranges, got ${describe(value)}`);
  return value.map((entry: unknown, index) => {
    const at = `trustedProxies[${index}]`;
    if (typeof entry !== 'string') fail(at, `expected an address or CIDR range, got ${describe(entry)}`);
    const [address = '', prefix, extra] = entry.trim().split('/');
    const family = isIP(address);
    const maxPrefix = family === 6 ? 128 : 32;
    const validPrefix = prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= maxPrefix);
    if (family === 0 || !validPrefix || extra !== undefined) {
      fail(at, `expected an IP address or CIDR range such as "10.0.0.0/8", got ${describe(entry)}`);
    }
    return entry.trim();
  });
}

function resolveEventListeners(logger: unknown, onProxyEvent: unknown): AmpProxyEventListener | undefined {
  const listeners: AmpProxyEventListener[] = [];
  if (logger !== undefined) {
    const candidate = (typeof logger === 'object' && logger !== null ? logger : {}) as Record<
      string,
      unknown
    >;
    const missing = ['info', 'warn', 'error'].filter((method) => typeof candidate[method] !== 'function');
    if (missing.length > 0) {
      fail(
        'logger',
        `expected a pino-style logger with info, warn and error methods; missing ${missing.join(', ')}`,
      );
    }
    listeners.push(loggingListener(logger as AmpLogger));
  }
  if (onProxyEvent !== undefined) {
    if (typeof onProxyEvent !== 'function')
      fail('onProxyEvent', `expected a function, got ${describe(onProxyEvent)}`);
    listeners.push(onProxyEvent as AmpProxyEventListener);
  }
  return combineListeners(listeners);
}

/**
 * One listener for several. Listeners are host code: one that throws loses its own event and
 * breaks nothing else. `undefined` when there is none, so that nothing is traced.
 */
export function combineListeners(
  listeners: readonly (AmpProxyEventListener | undefined)[],
): AmpProxyEventListener | undefined {
  const present = listeners.filter((listener) => listener !== undefined);
  if (present.length === 0) return undefined;
  return (event) => {
    for (const listener of present) {
      try {
        listener(event);
      } catch {
        // isolated on purpose
      }
    }
  };
}

function resolveProviderRouting(options: Record<string, unknown>): ProviderRoutingConfig | undefined {
  const mapModel = compileModelMappings(options.modelMappings);
  const { localProvider } = options;
  if (localProvider !== undefined && typeof localProvider !== 'function') {
    fail(
      'localProvider',
      `expected a function (model, req) => handler | undefined, got ${describe(localProvider)}`,
    );
  }
  const forceModelMappings = resolveBoolean('forceModelMappings', options.forceModelMappings);
  const { maxBodyBytes = DEFAULT_MAX_BODY_BYTES } = options;
  if (typeof maxBodyBytes !== 'number' || !Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) {
    fail('maxBodyBytes', `expected a positive whole number of bytes, got ${describe(maxBodyBytes)}`);
  }
  if (!mapModel && !localProvider) return undefined;
  return {
    mapModel,
    localProvider: localProvider as LocalProvider | undefined,
    forceModelMappings,
    maxBodyBytes,
  };
}

/** Validates options once, in the factory, and precomputes what requests need. */
export function resolveOptions(options: unknown): ResolvedConfig {
  if (options === undefined) options = {};
  if (!isPlainObject(options)) fail('options', `expected an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key))
      fail(key, `unknown option; the options are ${[...KNOWN_OPTIONS].join(', ')}`);
  }
  const upstreamBase = resolveUpstream(options.upstream);
  const clients = resolveClients(options.clients);
  const upstreamKey = resolveUpstreamKey(options.upstreamKey, clients);
  return {
    upstreamBase,
    clients: clients.table,
    policies: resolvePolicies(options.policies),
    tokenHeader: resolveTokenHeader(options.tokenHeader),
    timeoutMs: resolveTimeout(options.timeoutMs),
    serverKey: createServerKeyResolver(
      upstreamKey,
      typeof options.upstream === 'string' ? options.upstream : DEFAULT_UPSTREAM,
      resolveSecretsFile(options.secretsFile),
    ),
    restrictToLocalhost: resolveBoolean(
      'restrictManagementToLocalhost',
      options.restrictManagementToLocalhost,
    ),
    trustedProxies: resolveTrustedProxies(options.trustedProxies),
    emit: resolveEventListeners(options.logger, options.onProxyEvent),
    redactor: createRedactor(
      typeof upstreamKey === 'string' ? [...clients.secrets, upstreamKey] : clients.secrets,
    ),
    providerRouting: resolveProviderRouting(options),
  };
}
