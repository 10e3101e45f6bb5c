import type { IncomingMessage } from 'node:http';
import { containsGatewayKey, type PresentedCredentials } from '../auth/credentials.js';
import type { ClientTable } from '../auth/clients.js';
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
      readonly query: 'all-credentials' | 'gateway-keys';
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

/** Spend a server-side key: the client's mapped `upstreamKey`, else the server key. */
function inject({ clients, serverKey }: PolicyDependencies): Policy {
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
    const resolve = (resolved: Awaited<ReturnType<ServerKeyResolver>>): PolicyDecision =>
      resolved.key ? forwardWith(resolved.key, resolved.source) : reject('amp_upstream_key_missing');
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
    return { kind: 'forward', headers, query: 'gateway-keys', keySource };
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
  return async (req, credentials) => {
    const client = credentials.client
      ? { name: credentials.client.name, upstreamKey: credentials.client.upstreamKey }
      : undefined;
    const result = await policy(req, {
      group,
      client,
      userToken: credentials.userToken,
      ampToken: credentials.ampToken,
      serverKey: async () => (await serverKey(req)).key,
    });
    if (result?.reject) return reject(result.reject);
    const headers: Record<string, string | null> = {};
    for (const [name, value] of Object.entries(result?.headers ?? {})) {
      // Host code is trusted with keys, but a gateway key leaving the gateway is never intended.
      if (value !== null && containsGatewayKey(value, clients)) return reject('amp_policy_error');
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
