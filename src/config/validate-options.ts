import { isIP } from 'node:net';
import { publicActorToken } from '../actors/actor-token.js';
import { identityProviderBase } from '../identity/identity-proxy.js';
import { ClientTable, type ResolvedClient } from '../auth/clients.js';
import { CREDENTIAL_HEADERS } from '../auth/credential-names.js';
import { containsKey, findKeys, isKeyToken, KEY_CHARACTERS } from '../auth/key-recognition.js';
import {
  SERVER_KEY_FROM_ENV,
  defaultSecretsFile,
  DEFAULT_UPSTREAM,
  type ServerKeySetting,
} from '../auth/server-key.js';
import type { UpstreamProxySetting } from '../egress/egress-proxy.js';
import { parseProxyUrl, shownScheme } from '../egress/proxy-url.js';
import type { ClientDirectory } from '../directory/client-directory.js';
import { validateClientDirectory } from '../directory/directory-options.js';
import type { LimitsConfig } from '../limits/limiter.js';
import { validateLimits } from '../limits/limit-options.js';
import { readUpstreamCa, type UpstreamCa } from '../egress/trusted-cas.js';
import { AmpProxyConfigError } from '../errors.js';
import { compileModelMappings, type ModelMapper } from '../provider/model-mappings.js';
import { AMP_GROUPS, byGroup, ROUTE_GROUPS } from '../routing/route-groups.js';
import { parseAddressRange } from '../http/address-ranges.js';
import { isPlainObject } from '../plain-object.js';
import type { AmpClient, AmpGroup, AmpPolicy, AmpPolicyName, AmpProxyOptions } from '../types.js';

export interface ValidatedUpstream {
  /** As written in the options: the Amp CLI names its secrets file entries after this spelling. */
  readonly asWritten: string;
  /** Where requests go: origin plus optional path prefix, without a trailing slash. */
  readonly base: string;
}

export interface ValidatedClients {
  /** In the order given, mapped keys trimmed. */
  readonly list: readonly AmpClient[];
  readonly table: ClientTable;
  /** Set when `clients` is a resolver or a key file rather than a list (which is then empty). */
  readonly directory: ClientDirectory | undefined;
  /** Every gateway key and mapped key, for the redactor. */
  readonly secrets: readonly string[];
  /**
   * Why `secret` must never be sent upstream (`equals the key of clients[2]`), or `undefined`:
   * the key would leave the gateway, and the gateway could not tell it from the client's.
   */
  gatewayKeyConflict(secret: string): string | undefined;
}

export interface ValidatedModelMappings {
  /** As given, for people to read. */
  readonly rules: NonNullable<AmpProxyOptions['modelMappings']>;
  /** `undefined` when there is no rule, so that nothing needs the body read for them. */
  readonly mapModel: ModelMapper | undefined;
}

/** Every option checked, with its default applied: the one place defaults are decided. */
export interface ValidatedOptions {
  readonly upstream: ValidatedUpstream;
  readonly upstreamKey: ServerKeySetting;
  readonly clients: ValidatedClients;
  readonly policies: Readonly<Record<AmpGroup, AmpPolicy>>;
  readonly tokenHeader: string;
  readonly timeoutMs: number;
  readonly secretsFile: string;
  readonly upstreamProxy: UpstreamProxySetting;
  readonly upstreamCa: UpstreamCa | undefined;
  readonly restrictManagementToLocalhost: boolean;
  readonly trustedProxies: readonly string[];
  /** Lower case, without a trailing dot; `undefined`: every host. */
  readonly hosts: readonly string[] | undefined;
  readonly logger: AmpProxyOptions['logger'];
  readonly onProxyEvent: AmpProxyOptions['onProxyEvent'];
  readonly modelMappings: ValidatedModelMappings;
  readonly localProvider: AmpProxyOptions['localProvider'];
  readonly forceModelMappings: boolean;
  readonly maxBodyBytes: number;
  /** `undefined`: derived from the upstream (see `publicActorToken`). */
  readonly actorToken: string | false | undefined;
  /** Origin plus optional path, without a trailing slash. */
  readonly publicUrl: string | undefined;
  /** `true`: the provider the upstream names; a string: the provider's base URL. */
  readonly identityProxy: boolean | string;
  /** The groups named, as named: `forwardsCookies` applies the default. */
  readonly forwardCookies: Readonly<Partial<Record<AmpGroup, boolean>>>;
  /** The host's headers each group never sends upstream: `all` merged in, lower case. */
  readonly dropHeaders: Readonly<Record<AmpGroup, readonly string[]>>;
  readonly limits: LimitsConfig | undefined;
  readonly usage: boolean;
  readonly audit: AmpProxyOptions['audit'];
}

/** Keyed by every option: an option added to `AmpProxyOptions` does not compile until it is validated here. */
type OptionValidators = {
  readonly [Option in keyof AmpProxyOptions]-?: (value: unknown) => ValidatedOptions[Option];
};

const DEFAULT_TOKEN_HEADER = 'x-amp-token';
const DEFAULT_TIMEOUT_MS = 600_000;
/**
 * Held (and, compressed, held again decoded) only with modelMappings or localProvider. A 1M-token
 * context is about 4 MB of JSON text; the rest leaves room for several base64 screenshots.
 */
const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
// setTimeout silently turns larger values into 1 ms.
const MAX_TIMEOUT_MS = 2_147_483_647;

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
const CLIENT_FIELDS = new Set(['key', 'name', 'upstreamKey']);
/** Headers without which the upstream request cannot be delivered as the gateway means it. */
const DELIVERY_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'upgrade',
  'sec-websocket-key',
  'sec-websocket-version',
]);

function describeValue(value: unknown): string {
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
  return describeValue(value);
}

function describeScheme(scheme: string): string {
  const shown = shownScheme(scheme);
  return shown ? `the scheme ${shown}` : 'no known scheme';
}

/**
 * An upstream that is not a URL, as an error message may describe it: by its scheme alone.
 * Where userinfo ends cannot be told in text that does not parse (`htps:/user:S3cr3t@host/`,
 * `https:/ /user:S3cr3t@host/`), so nothing after the scheme is shown.
 */
function describeUnparsedUpstream(value: string): string {
  const scheme = /^\s*([^:/?#@\s]+:)/.exec(value)?.[1];
  return `text that is not a URL, with ${scheme ? describeScheme(scheme) : 'no scheme'} (the rest is not shown: it may hold credentials)`;
}

/**
 * A parsed upstream as an error message may show it: scheme and host. The parser has taken
 * userinfo out of the host; the path, query and fragment may hold credentials (`?key=…`).
 */
function describeParsedUpstream(url: URL): string {
  const scheme = describeScheme(url.protocol);
  return url.host === '' ? scheme : `${scheme} and the host "${url.host}"`;
}

/** Any URL option's text as an error message may describe it (see the two functions above). */
function describeUrl(value: string): string {
  try {
    return describeParsedUpstream(new URL(value));
  } catch {
    return describeUnparsedUpstream(value);
  }
}

function fail(option: string, problem: string): never {
  throw new AmpProxyConfigError(option, problem);
}

function validateUpstream(value: unknown): ValidatedUpstream {
  if (value === undefined) return { asWritten: DEFAULT_UPSTREAM, base: DEFAULT_UPSTREAM };
  if (typeof value !== 'string' || value.trim() === '') {
    fail('upstream', `expected a URL such as "${DEFAULT_UPSTREAM}", got ${describeValue(value)}`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail(
      'upstream',
      `expected an absolute http(s) URL such as "${DEFAULT_UPSTREAM}", got ${describeUnparsedUpstream(value)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    fail(
      'upstream',
      `expected an http: or https: URL such as "${DEFAULT_UPSTREAM}", got ${describeParsedUpstream(url)} (the rest is not shown: it may hold credentials)`,
    );
  }
  if (url.username || url.password) {
    fail('upstream', 'must not contain credentials; use upstreamKey for the Amp key');
  }
  if (url.search || url.hash) {
    fail(
      'upstream',
      `must not contain a query string or fragment (not shown: it may hold credentials); got one after ${describeParsedUpstream(url)}`,
    );
  }
  return { asWritten: value, base: `${url.origin}${url.pathname}`.replace(/\/+$/, '') };
}

/**
 * No server key unless one is given: a library never spends a key it found in its environment
 * (a developer's `AMP_API_KEY`, the key `amp login` stored) unless told to with `'env'`.
 */
function validateUpstreamKey(value: unknown): ServerKeySetting {
  if (value === undefined || value === null || value === false) return null;
  if (typeof value === 'function') return value as ServerKeySetting;
  if (typeof value !== 'string' || value.trim() === '') {
    fail(
      'upstreamKey',
      `expected a non-empty string or a function (req) => key, got ${describeSecret(value)}; '${SERVER_KEY_FROM_ENV}' reads AMP_PROXY_UPSTREAM_KEY, AMP_API_KEY, then the Amp CLI secrets file, and null or false means no server key`,
    );
  }
  return value.trim();
}

function validateClient(value: unknown, path: string): AmpClient {
  if (!isPlainObject(value)) fail(path, `expected { key, name?, upstreamKey? }, got ${describeValue(value)}`);
  for (const field of Object.keys(value)) {
    if (!CLIENT_FIELDS.has(field))
      fail(`${path}.${field}`, 'unknown field; a client has key, name and upstreamKey');
  }
  const { key, name, upstreamKey } = value;
  if (typeof key !== 'string' || key === '')
    fail(`${path}.key`, `expected a non-empty string, got ${describeSecret(key)}`);
  if (!isKeyToken(key)) {
    fail(
      `${path}.key`,
      `must contain only the characters ${KEY_CHARACTERS}, so that the gateway can recognise a key wherever it appears`,
    );
  }
  if (name !== undefined && typeof name !== 'string')
    fail(`${path}.name`, `expected a string, got ${describeValue(name)}`);
  if (upstreamKey !== undefined && (typeof upstreamKey !== 'string' || upstreamKey.trim() === '')) {
    fail(`${path}.upstreamKey`, `expected a non-empty string, got ${describeSecret(upstreamKey)}`);
  }
  return { key, name, upstreamKey: upstreamKey?.trim() };
}

function validateClients(value: unknown): ValidatedClients {
  const table = new ClientTable();
  const indexOf = new Map<ResolvedClient, number>();
  const gatewayKeyConflict = (secret: string): string | undefined => {
    let index: number | undefined;
    findKeys(secret, table, (client) => {
      index = indexOf.get(client);
      return true;
    });
    if (index === undefined) return undefined;
    // A key token found in a secret that is one token is that whole secret.
    return `${isKeyToken(secret) ? 'equals' : 'contains'} the key of clients[${index}]`;
  };
  if (value === undefined) return { list: [], table, directory: undefined, secrets: [], gatewayKeyConflict };
  if (typeof value === 'function' || (isPlainObject(value) && !Array.isArray(value))) {
    const directory = validateClientDirectory(value);
    return {
      list: [],
      table,
      directory,
      secrets: [],
      gatewayKeyConflict: (secret) =>
        containsKey(secret, directory.recogniser)
          ? 'has the shape of a key of the clients directory'
          : undefined,
    };
  }
  if (!Array.isArray(value))
    fail(
      'clients',
      `expected an array of { key, name?, upstreamKey? }, a resolver or { sqlite: file }, got ${describeValue(value)}`,
    );
  const list = value.map((entry: unknown, index) => {
    const client = validateClient(entry, `clients[${index}]`);
    const previous = table.lookup(client.key);
    if (previous !== undefined) {
      fail(
        `clients[${index}].key`,
        `duplicates clients[${indexOf.get(previous)}].key; every gateway key must identify one client`,
      );
    }
    const resolved: ResolvedClient = { name: client.name, upstreamKey: client.upstreamKey };
    table.add(client.key, resolved);
    indexOf.set(resolved, index);
    return client;
  });
  // Checked once every gateway key is known: clients[0].upstreamKey may be the key of clients[5].
  list.forEach(({ upstreamKey }, index) => {
    const conflict = upstreamKey === undefined ? undefined : gatewayKeyConflict(upstreamKey);
    if (conflict) fail(`clients[${index}].upstreamKey`, conflict);
  });
  const secrets = [
    ...list.map((client) => client.key),
    ...list.flatMap((client) => (client.upstreamKey ? [client.upstreamKey] : [])),
  ];
  return { list, table, directory: undefined, secrets, gatewayKeyConflict };
}

function validatePolicies(value: unknown): Record<AmpGroup, AmpPolicy> {
  const policies = byGroup((group): AmpPolicy => ROUTE_GROUPS[group].defaultPolicy);
  if (value === undefined) return policies;
  if (!isPlainObject(value))
    fail('policies', `expected an object keyed by group, got ${describeValue(value)}`);
  for (const [group, policy] of Object.entries(value)) {
    const path = `policies.${group}`;
    if (!(AMP_GROUPS as readonly string[]).includes(group)) {
      fail(path, `unknown group; the groups are ${AMP_GROUPS.join(', ')}`);
    }
    if (policy === undefined) continue;
    if (typeof policy === 'function') {
      policies[group as AmpGroup] = policy as AmpPolicy;
      continue;
    }
    const allowed: readonly AmpPolicyName[] = ROUTE_GROUPS[group as AmpGroup].allowedPolicies;
    if (typeof policy !== 'string' || !(allowed as readonly string[]).includes(policy)) {
      const why =
        policy === 'inject'
          ? ' (browser pages never carry the server key)'
          : policy === 'redirect'
            ? ' (only browser pages can be redirected)'
            : '';
      fail(path, `expected one of ${allowed.join(' | ')} or a function, got ${describeValue(policy)}${why}`);
    }
    policies[group as AmpGroup] = policy as AmpPolicyName;
  }
  return policies;
}

function validateTokenHeader(value: unknown): string {
  if (value === undefined) return DEFAULT_TOKEN_HEADER;
  const name = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (!HEADER_NAME.test(name))
    fail('tokenHeader', `expected an HTTP header name such as "x-amp-token", got ${describeValue(value)}`);
  if (RESERVED_TOKEN_HEADERS.has(name)) {
    fail(
      'tokenHeader',
      `"${name}" already has a meaning to the gateway; choose a dedicated header such as "x-amp-token"`,
    );
  }
  return name;
}

function validateTimeout(value: unknown): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMEOUT_MS) {
    fail(
      'timeoutMs',
      `expected a whole number of milliseconds between 1 and ${MAX_TIMEOUT_MS}, got ${describeValue(value)}`,
    );
  }
  return value;
}

function validateSecretsFile(value: unknown): string {
  if (value === undefined) return defaultSecretsFile();
  if (typeof value !== 'string' || value === '')
    fail('secretsFile', `expected a file path, got ${describeValue(value)}`);
  return value;
}

function validateUpstreamProxy(value: unknown): UpstreamProxySetting {
  if (value === undefined || value === false) return false;
  if (value === 'env') return 'env';
  if (typeof value !== 'string' || value.trim() === '') {
    fail('upstreamProxy', `expected a proxy URL, 'env' or false, got ${describeSecret(value)}`);
  }
  const url = parseProxyUrl(value, false);
  if (!(url instanceof URL)) fail('upstreamProxy', url.problem);
  return url;
}

function validateUpstreamCa(value: unknown): UpstreamCa | undefined {
  if (value === undefined) return undefined;
  const isFileReference =
    isPlainObject(value) &&
    Object.keys(value).length === 1 &&
    typeof value.file === 'string' &&
    value.file !== '';
  if (typeof value !== 'string' && !isFileReference) {
    fail('upstreamCa', `expected PEM certificates or { file: "path" }, got ${describeValue(value)}`);
  }
  const ca = readUpstreamCa(value as string | { file: string });
  if ('problem' in ca) fail('upstreamCa', ca.problem);
  return ca;
}

function validateFlag(value: unknown, option: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') fail(option, `expected true or false, got ${describeValue(value)}`);
  return value;
}

function validateTrustedProxies(value: unknown): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    fail('trustedProxies', `expected an array of addresses or CIDR ranges, got ${describeValue(value)}`);
  return value.map((entry: unknown, index) => {
    const path = `trustedProxies[${index}]`;
    if (typeof entry !== 'string')
      fail(path, `expected an address or CIDR range, got ${describeValue(entry)}`);
    if (parseAddressRange(entry.trim()) === undefined) {
      fail(path, `expected an IP address or CIDR range such as "10.0.0.0/8", got ${describeValue(entry)}`);
    }
    return entry.trim();
  });
}

/** A DNS name (labels of letters, digits, `-` and `_`), an IPv4 address or a bracketed IPv6 address. */
const HOST_NAME = /^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

function validateHostEntry(entry: unknown, path: string): string {
  if (typeof entry !== 'string') fail(path, `expected a host name, got ${describeValue(entry)}`);
  const name = entry.trim().toLowerCase().replace(/\.$/, '');
  const wildcard = name.startsWith('*.');
  const rest = wildcard ? name.slice(2) : name;
  const bracketed = /^\[(.*)\]$/.exec(rest)?.[1];
  if (!wildcard && bracketed !== undefined && isIP(bracketed) === 6) return name;
  if (/:\d*$/.test(rest) && !rest.includes('/')) {
    fail(
      path,
      `names a port; give the name alone (${describeValue(rest.replace(/:\d*$/, ''))}): requests on every port are claimed`,
    );
  }
  if (!HOST_NAME.test(rest) || (wildcard && isIP(rest) !== 0)) {
    fail(
      path,
      `expected a host name such as "amp.corp.example" or "*.amp.corp.example" (no scheme, port or path), got ${describeValue(entry)}`,
    );
  }
  return name;
}

function validateHosts(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    fail(
      'hosts',
      `expected a non-empty array of host names such as ["amp.corp.example"]; omit it to claim requests for every host, got ${describeValue(value)}`,
    );
  }
  return value.map((entry: unknown, index) => validateHostEntry(entry, `hosts[${index}]`));
}

function validateAudit(value: unknown): AmpProxyOptions['audit'] {
  if (value === undefined) return undefined;
  if (typeof (value as { info?: unknown } | null)?.info !== 'function')
    fail('audit', `expected a pino-style logger with an info method, got ${describeValue(value)}`);
  return value as AmpProxyOptions['audit'];
}

function validateLogger(value: unknown): AmpProxyOptions['logger'] {
  if (value === undefined) return undefined;
  const methods = isPlainObject(value) ? value : {};
  const missing = ['info', 'warn', 'error'].filter((method) => typeof methods[method] !== 'function');
  if (missing.length > 0) {
    fail(
      'logger',
      `expected a pino-style logger with info, warn and error methods; missing ${missing.join(', ')}`,
    );
  }
  return value as AmpProxyOptions['logger'];
}

const FUNCTION_SHAPES = {
  onProxyEvent: 'a function',
  localProvider: 'a function (model, req) => handler | undefined',
};

function validateFunction<Option extends keyof typeof FUNCTION_SHAPES>(
  value: unknown,
  option: Option,
): AmpProxyOptions[Option] {
  if (value !== undefined && typeof value !== 'function') {
    fail(option, `expected ${FUNCTION_SHAPES[option]}, got ${describeValue(value)}`);
  }
  return value as AmpProxyOptions[Option];
}

function validateModelMappings(value: unknown): ValidatedModelMappings {
  const mapModel = compileModelMappings(value);
  return { rules: (value ?? []) as ValidatedModelMappings['rules'], mapModel };
}

function validateMaxBodyBytes(value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_BODY_BYTES;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    fail('maxBodyBytes', `expected a positive whole number of bytes, got ${describeValue(value)}`);
  }
  return value;
}

/** The actor token in force: the option, else the one the Amp CLI would send to the upstream. */
export function actorTokenOf(options: ValidatedOptions): string | undefined {
  const { actorToken } = options;
  if (actorToken === false) return undefined;
  return actorToken ?? publicActorToken(options.upstream.base);
}

/** Sent as a header value and a query parameter: visible ASCII, no spaces. */
const ACTOR_TOKEN = /^[\x21-\x7e]+$/;

function validateActorToken(value: unknown): string | false | undefined {
  if (value === undefined || value === false) return value;
  if (typeof value !== 'string' || !ACTOR_TOKEN.test(value.trim())) {
    fail(
      'actorToken',
      `expected a token of visible ASCII characters without spaces, or false, got ${describeSecret(value)}`,
    );
  }
  return value.trim();
}

function validatePublicUrl(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  const shown = typeof value === 'string' ? describeUrl(value) : describeValue(value);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    fail('publicUrl', `expected an absolute http(s) URL such as "https://amp-gw.example.com", got ${shown}`);
  }
  if (url.username || url.password || url.search || url.hash) {
    fail('publicUrl', `must not contain credentials, a query string or a fragment, got ${shown}`);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

function validateIdentityProxy(value: unknown): boolean | string {
  if (value === undefined) return false;
  if (typeof value === 'boolean') return value;
  const base = typeof value === 'string' ? identityProviderBase(value.trim()) : undefined;
  if (base === undefined) {
    fail(
      'identityProxy',
      `expected true, false or the identity provider's https URL (http only on localhost), got ${typeof value === 'string' ? describeUrl(value) : describeValue(value)}`,
    );
  }
  return base;
}

/**
 * Whether `group` sends the client's `Cookie` upstream: as `forwardCookies` says, else only the
 * browser group of a router scoped by `hosts` (the cookies of its own host are then Amp's own).
 */
export function forwardsCookies(options: ValidatedOptions, group: AmpGroup): boolean {
  return options.forwardCookies[group] ?? (group === 'browser' && options.hosts !== undefined);
}

/** Only the groups named: the browser group's default depends on `hosts` (see `forwardsCookies`). */
function validateForwardCookies(value: unknown): Partial<Record<AmpGroup, boolean>> {
  const forward: Partial<Record<AmpGroup, boolean>> = {};
  if (value === undefined) return forward;
  if (!isPlainObject(value))
    fail('forwardCookies', `expected an object such as { browser: true }, got ${describeValue(value)}`);
  for (const [group, flag] of Object.entries(value)) {
    const path = `forwardCookies.${group}`;
    if (!(AMP_GROUPS as readonly string[]).includes(group))
      fail(path, `unknown group; the groups are ${AMP_GROUPS.join(', ')}`);
    if (flag === undefined) continue;
    if (typeof flag !== 'boolean') fail(path, `expected true or false, got ${describeValue(flag)}`);
    forward[group as AmpGroup] = flag;
  }
  return forward;
}

/**
 * Why a header cannot be listed in `dropHeaders`, or `undefined`: the gateway needs it to deliver
 * the request, a policy decides on it, or another option says what becomes of it.
 */
function whyNotDroppable(name: string): string | undefined {
  if (DELIVERY_HEADERS.has(name))
    return `"${name}" is needed to deliver the request (its target, framing or WebSocket handshake), and the gateway states it itself`;
  if ((CREDENTIAL_HEADERS as readonly string[]).includes(name))
    return `"${name}" is a credential: what reaches the upstream is decided by the group's policy (policies)`;
  if (name === 'cookie')
    return `"cookie" is left out by default; forwardCookies says on which groups it goes upstream`;
  return undefined;
}

function validateDropHeaders(value: unknown): Record<AmpGroup, readonly string[]> {
  const perGroup = byGroup(() => new Set<string>());
  const result = () => byGroup((group): readonly string[] => [...perGroup[group]]);
  if (value === undefined) return result();
  if (!isPlainObject(value)) {
    fail('dropHeaders', `expected an object such as { all: ["x-company-jwt"] }, got ${describeValue(value)}`);
  }
  for (const [scope, names] of Object.entries(value)) {
    const path = `dropHeaders.${scope}`;
    if (scope !== 'all' && !(AMP_GROUPS as readonly string[]).includes(scope))
      fail(path, `unknown group; expected all, ${AMP_GROUPS.join(', ')}`);
    if (names === undefined) continue;
    if (!Array.isArray(names)) fail(path, `expected an array of header names, got ${describeValue(names)}`);
    const groups = scope === 'all' ? AMP_GROUPS : [scope as AmpGroup];
    names.forEach((entry: unknown, index) => {
      const name = typeof entry === 'string' ? entry.trim().toLowerCase() : '';
      if (!HEADER_NAME.test(name))
        fail(
          `${path}[${index}]`,
          `expected an HTTP header name such as "x-company-jwt", got ${describeValue(entry)}`,
        );
      const refused = whyNotDroppable(name);
      if (refused) fail(`${path}[${index}]`, refused);
      for (const group of groups) perGroup[group].add(name);
    });
  }
  return result();
}

/** In the order they are checked: the first problem found is the one reported. */
const OPTION_VALIDATORS: OptionValidators = {
  upstream: validateUpstream,
  upstreamKey: validateUpstreamKey,
  clients: validateClients,
  policies: validatePolicies,
  tokenHeader: validateTokenHeader,
  timeoutMs: validateTimeout,
  secretsFile: validateSecretsFile,
  upstreamProxy: validateUpstreamProxy,
  upstreamCa: validateUpstreamCa,
  restrictManagementToLocalhost: (value) => validateFlag(value, 'restrictManagementToLocalhost'),
  trustedProxies: validateTrustedProxies,
  hosts: validateHosts,
  logger: validateLogger,
  onProxyEvent: (value) => validateFunction(value, 'onProxyEvent'),
  modelMappings: validateModelMappings,
  localProvider: (value) => validateFunction(value, 'localProvider'),
  forceModelMappings: (value) => validateFlag(value, 'forceModelMappings'),
  maxBodyBytes: validateMaxBodyBytes,
  actorToken: validateActorToken,
  publicUrl: validatePublicUrl,
  identityProxy: validateIdentityProxy,
  forwardCookies: validateForwardCookies,
  dropHeaders: validateDropHeaders,
  limits: validateLimits,
  usage: (value) => validateFlag(value, 'usage'),
  audit: validateAudit,
};
const OPTION_NAMES = Object.keys(OPTION_VALIDATORS) as (keyof AmpProxyOptions)[];
/** Options whose only form is a function: code, which a JSON or YAML file cannot hold. */
const FUNCTION_ONLY_OPTIONS: ReadonlySet<string> = new Set<keyof AmpProxyOptions>([
  'logger',
  'onProxyEvent',
  'audit',
  'localProvider',
]);
/** The options a config file can set, for its errors. */
export const FILE_OPTION_NAMES: readonly string[] = OPTION_NAMES.filter(
  (name) => !FUNCTION_ONLY_OPTIONS.has(name),
);

/** Edits (insert, delete, replace) from `a` to `b`, ignoring case. */
function editDistance(a: string, b: string): number {
  const [from, to] = [a.toLowerCase(), b.toLowerCase()];
  let previous = Array.from({ length: to.length + 1 }, (_, index) => index);
  for (let i = 1; i <= from.length; i++) {
    const current = [i];
    for (let j = 1; j <= to.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (from[i - 1] === to[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[to.length]!;
}

/** The option an unknown name most likely misspells: a few edits away (`policy`: `policies`). */
function nearestName(name: string, names: readonly string[]): string | undefined {
  const allowed = Math.min(3, Math.max(1, Math.floor(name.length / 2)));
  let nearest: string | undefined;
  let best = allowed + 1;
  for (const candidate of names) {
    const distance = editDistance(name, candidate);
    if (distance < best) [nearest, best] = [candidate, distance];
  }
  return nearest;
}

/**
 * Checks every option (errors name the option path) and applies every default. `namesToSuggest`:
 * what an unknown option's error lists, by default every option (a config file lists what can be
 * written in a file).
 */
export function validateOptions(
  options: unknown = {},
  namesToSuggest: readonly string[] = OPTION_NAMES,
): ValidatedOptions {
  if (!isPlainObject(options)) fail('options', `expected an object, got ${describeValue(options)}`);
  const problems: AmpProxyConfigError[] = [];
  for (const name of Object.keys(options)) {
    if (Object.hasOwn(OPTION_VALIDATORS, name)) continue;
    const guess = nearestName(name, namesToSuggest);
    problems.push(
      new AmpProxyConfigError(
        name,
        `unknown option; ${guess ? `did you mean \`${guess}\`? The options are` : 'the options are'} ${namesToSuggest.join(', ')}`,
      ),
    );
  }
  // Every option is checked, so that one run names every problem.
  const entries = OPTION_NAMES.map((name) => {
    try {
      return [name, OPTION_VALIDATORS[name](options[name])];
    } catch (error) {
      if (!(error instanceof AmpProxyConfigError)) throw error;
      problems.push(error);
      return [name, undefined];
    }
  });
  if (problems.length > 0) throw AmpProxyConfigError.combine(problems);
  // OptionValidators makes each entry ValidatedOptions[name]; fromEntries cannot carry that type.
  const validated = Object.fromEntries(entries) as unknown as ValidatedOptions;
  if (typeof validated.upstreamKey === 'string' && validated.upstreamKey !== SERVER_KEY_FROM_ENV) {
    const conflict = validated.clients.gatewayKeyConflict(validated.upstreamKey);
    if (conflict) fail('upstreamKey', conflict);
  }
  if (typeof validated.actorToken === 'string') {
    const conflict = validated.clients.gatewayKeyConflict(validated.actorToken);
    if (conflict) fail('actorToken', conflict);
  }
  return validated;
}
