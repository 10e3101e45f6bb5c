import type { IncomingMessage } from 'node:http';
import type { ClientTable } from '../auth/clients.js';
import type { PresentedCredentials } from '../auth/credentials.js';
import { containsKey } from '../auth/key-recognition.js';
import type { ServerKeyResolver, UpstreamKeySource } from '../auth/upstream-key.js';
import type { AmpErrorCode } from '../errors.js';
import type { AmpCustomPolicy, AmpPolicyName } from '../options.js';
import type { AmpGroup } from '../routing/route-groups.js';

/** Which key a forwarded request spends: the server's, a mapped client's, or the user's own. */
export type KeySource = UpstreamKeySource | `client:${string}` | 'user' | 'custom';

/**
 * A policy's verdict. `headers` are the credential headers to send upstream (`null` removes a
 * header); every credential the client presented is removed before they are applied.
 */
export type PolicyDecision =
  | {
      readonly kind: 'forward';
      readonly headers: Readonly<Record<string, string | null>>;
      readonly query: 'all-credentials' | 'none';
      readonly keySource: KeySource | undefined;
    }
  | { readonly kind: 'reject'; readonly code: AmpErrorCode }
  | { readonly kind: 'redirect' };

export type Policy = (
  req: IncomingMessage,
  credentials: PresentedCredentials,
) => PolicyDecision | Promise<PolicyDecision>;

export interface PolicyDependencies {
  readonly group: AmpGroup;
  readonly clients: ClientTable;
  readonly serverKey: ServerKeyResolver;
}

const reject = (code: AmpErrorCode): PolicyDecision => ({ kind: 'reject', code });
const REDIRECT: PolicyDecision = { kind: 'redirect' };

function clientLabel(name: string | undefined): KeySource {
  return `client:${name ?? 'unnamed'}`;
}

/**
 * Whether a server key resolved for a request holds no gateway key. One from env, the secrets
 * file or an `upstreamKey` function is known only now (the option string and mapped keys were
 * checked in the factory). The last key found clean is remembered, so a steady key is examined
 * once, not on every request.
 */
function serverKeyChecker(clients: ClientTable): (key: string) => boolean {
  let lastClean: string | undefined;
  return (key) => {
    if (key === lastClean) return true;
    if (containsKey(key, clients)) return false;
    lastClean = key;
    return true;
  };
}

/** Spend a server-side key: the client's mapped `upstreamKey`, else the server key. */
function inject({ clients, serverKey }: PolicyDependencies): Policy {
  const isClean = serverKeyChecker(clients);
  const forwardWith = (key: string, keySource: KeySource): PolicyDecision => ({
    kind: 'forward',
    headers: { authorization: `Bearer ${key}`, 'x-api-key': key },
    query: 'all-credentials',
    keySource,
  });
  return (req, credentials) => {
    const { client } = credentials;
    if (credentials.conflictingClients || (clients.size > 0 && !client)) {
      return reject('amp_client_unauthorized');
    }
    if (client?.upstreamKey) return forwardWith(client.upstreamKey, clientLabel(client.name));
    const resolve = ({ key, source }: Awaited<ReturnType<ServerKeyResolver>>): PolicyDecision => {
      if (!key) return reject('amp_upstream_key_missing');
      return isClean(key) ? forwardWith(key, source) : reject('amp_upstream_key_conflict');
    };
    const resolved = serverKey(req);
    return resolved instanceof Promise ? resolved.then(resolve) : resolve(resolved);
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
    const token = credentials.ampToken ?? client?.upstreamKey;
    if (!token) return reject('amp_token_required');
    return {
      kind: 'forward',
      headers: { authorization: `Bearer ${token}` },
      query: 'all-credentials',
      keySource: credentials.ampToken ? 'user' : clientLabel(client?.name),
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
      userToken: credentials.userToken,
      ampToken: credentials.ampToken,
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
export function createPolicy(spec: AmpPolicyName | AmpCustomPolicy, deps: PolicyDependencies): Policy {
  if (typeof spec === 'function') return custom(spec, deps);
  switch (spec) {
    case 'inject':
      return inject(deps);
    case 'passthrough':
      return passthrough();
    case 'dual-token':
      return dualToken(deps);
    case 'redirect':
      return () => REDIRECT;
  }
}
