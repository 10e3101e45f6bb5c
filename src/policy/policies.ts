import type { IncomingMessage } from 'node:http';
import type { PresentedCredentials } from '../auth/credentials.js';
import { containsKey, type KeyRecogniser } from '../auth/key-recognition.js';
import { Refusal } from '../errors.js';
import type { ServerKeyResolver } from '../auth/server-key.js';
import type { AmpCustomPolicy, AmpErrorCode, AmpGroup, AmpPolicyName, KeySource } from '../types.js';

/**
 * Forward upstream with these credential headers (`null` removes a header); every credential the
 * client presented is removed before they are applied.
 */
export interface Forward {
  readonly kind: 'forward';
  readonly headers: Readonly<Record<string, string | null>>;
  readonly query: 'all-credentials' | 'none';
  readonly keySource: KeySource | undefined;
}
/**
 * The caller may go upstream on the server key, which is resolved by `createServerKeyStage` only
 * once the call is known to go upstream: a call served by a local provider spends no key.
 */
export interface SpendServerKey {
  readonly kind: 'spend-server-key';
}

/** A `Refusal` is answered with its code, the request going no further. */
export type PolicyDecision = Forward | Refusal | SpendServerKey;

export type Policy = (
  req: IncomingMessage,
  credentials: PresentedCredentials,
) => PolicyDecision | Promise<PolicyDecision>;

/** Resolves the server key for a call that goes upstream: the headers to send, or why not. */
export type ServerKeyStage = (req: IncomingMessage) => Forward | Refusal | Promise<Forward | Refusal>;

/** The built-in policies that decide per request; `redirect` is not one, it never forwards. */
export type ForwardingPolicyName = Exclude<AmpPolicyName, 'redirect'>;

export interface PolicyDependencies {
  readonly group: AmpGroup;
  readonly clients: KeyRecogniser<unknown>;
  readonly serverKey: ServerKeyResolver;
}

const reject = (code: AmpErrorCode): Refusal => new Refusal(code);
const SPEND_SERVER_KEY: SpendServerKey = { kind: 'spend-server-key' };

function clientLabel(name: string | undefined): KeySource {
  return `client:${name ?? 'unnamed'}`;
}

/**
 * Whether a server key resolved for a request holds no gateway key. One from env, the secrets
 * file or an `upstreamKey` function is known only now (the option string and mapped keys were
 * checked in the factory). The last key found clean is remembered, so a steady key is examined
 * once, not on every request.
 */
function serverKeyChecker(clients: KeyRecogniser<unknown>): (key: string) => boolean {
  let lastClean: string | undefined;
  return (key) => {
    if (key === lastClean) return true;
    if (containsKey(key, clients)) return false;
    lastClean = key;
    return true;
  };
}

function spendKey(key: string, keySource: KeySource): Forward {
  return {
    kind: 'forward',
    headers: { authorization: `Bearer ${key}`, 'x-api-key': key },
    query: 'all-credentials',
    keySource,
  };
}

/** Spend a server-side key: the client's mapped `upstreamKey`, else the server key. */
function inject({ clients }: PolicyDependencies): Policy {
  return (_req, credentials) => {
    const { client } = credentials;
    if (credentials.conflictingClients || (clients.size > 0 && !client)) {
      return reject('amp_client_unauthorized');
    }
    return client?.upstreamKey ? spendKey(client.upstreamKey, clientLabel(client.name)) : SPEND_SERVER_KEY;
  };
}

/** The server key of a call that goes upstream; never one that is also a gateway key. */
export function createServerKeyStage({ clients, serverKey }: PolicyDependencies): ServerKeyStage {
  const isClean = serverKeyChecker(clients);
  const spend = ({ key, source }: Awaited<ReturnType<ServerKeyResolver>>): Forward | Refusal => {
    if (!key) return reject('amp_upstream_key_missing');
    return isClean(key) ? spendKey(key, source) : reject('amp_upstream_key_conflict');
  };
  return (req) => {
    const resolved = serverKey(req);
    return resolved instanceof Promise ? resolved.then(spend) : spend(resolved);
  };
}

/**
 * Forward the user's own credentials unchanged. A gateway key is never forwarded: it is
 * replaced by the client's mapped Amp key, or the request is refused.
 */
function passthrough(): Policy {
  return (_req, credentials) => {
    if (credentials.conflictingClients) return reject('amp_client_unauthorized');
    const headers: Record<string, string> = {};
    for (const { header, raw, carriesGatewayKey } of credentials.headers) {
      if (!carriesGatewayKey) headers[header] = raw;
    }
    let keySource: KeySource | undefined = headers.authorization ? 'user' : undefined;
    if (!headers.authorization && credentials.gatewayKeyPresented) {
      const mapped = credentials.client?.upstreamKey;
      if (!mapped) return reject('amp_token_required');
      headers.authorization = `Bearer ${mapped}`;
      keySource = clientLabel(credentials.client?.name);
    }
    return { kind: 'forward', headers, query: 'none', keySource };
  };
}

/** The gateway key in `Authorization`/`X-Api-Key`, the user's Amp token in `tokenHeader`. */
function dualToken({ clients }: PolicyDependencies): Policy {
  return (_req, credentials) => {
    const { client } = credentials;
    if (credentials.conflictingClients || (clients.size > 0 && !client)) {
      return reject('amp_client_unauthorized');
    }
    const token = credentials.tokenHeaderValue ?? client?.upstreamKey;
    if (!token) return reject('amp_token_required');
    return {
      kind: 'forward',
      headers: { authorization: `Bearer ${token}` },
      query: 'all-credentials',
      keySource: credentials.tokenHeaderValue ? 'user' : clientLabel(client?.name),
    };
  };
}

function custom(policy: AmpCustomPolicy, { group, clients, serverKey }: PolicyDependencies): Policy {
  const isClean = serverKeyChecker(clients);
  return async (req, credentials) => {
    const client = credentials.client
      ? { name: credentials.client.name, upstreamKey: credentials.client.upstreamKey }
      : undefined;
    let serverKeyConflict = false;
    const result = await policy(req, {
      group,
      client,
      authorizationToken: credentials.authorizationToken,
      tokenHeaderValue: credentials.tokenHeaderValue,
      serverKey: async () => {
        const { key } = await serverKey(req);
        if (key === undefined || isClean(key)) return key;
        // Not even host code gets a server key that is a gateway key; the request fails below.
        serverKeyConflict = true;
        return undefined;
      },
    });
    if (serverKeyConflict) return reject('amp_upstream_key_conflict');
    if (result?.reject) return reject(result.reject);
    const headers: Record<string, string | null> = {};
    for (const [name, value] of Object.entries(result?.headers ?? {})) {
      // Host code is trusted with keys, but a gateway key leaving the gateway is never intended:
      // the same recogniser as for requests, so no disguise (scheme, quotes, Basic, encoding) passes.
      if (containsKey(name, clients) || (value !== null && containsKey(value, clients))) {
        return reject('amp_policy_error');
      }
      headers[name.toLowerCase()] = value;
    }
    return { kind: 'forward', headers, query: 'all-credentials', keySource: 'custom' };
  };
}

/** Turns a policy option into the function that decides each request of `deps.group`. */
export function createPolicy(spec: ForwardingPolicyName | AmpCustomPolicy, deps: PolicyDependencies): Policy {
  if (typeof spec === 'function') return custom(spec, deps);
  switch (spec) {
    case 'inject':
      return inject(deps);
    case 'passthrough':
      return passthrough();
    case 'dual-token':
      return dualToken(deps);
  }
}
