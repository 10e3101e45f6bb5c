import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { lastForwardedValue, requestedHost } from './host-scope.js';
import { createTrustedPeerCheck } from './request-gate.js';

/**
 * Where clients reach the gateway (scheme, host, optional path, no trailing slash), for replies
 * that name a URL the client must use; `undefined` when the request does not say.
 */
export type PublicBaseOf = (req: IncomingMessage) => string | undefined;

/** A host name, IPv4 or bracketed IPv6 address, with an optional port: nothing that could bend a URL. */
const HOST = /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/**
 * `publicUrl` when the host set one; else the request's own `Host` and scheme, where
 * `X-Forwarded-Proto` and `X-Forwarded-Host` count only from a trusted proxy (anyone else could
 * send the client anywhere).
 */
export function createPublicBase(
  publicUrl: string | undefined,
  trustedProxies: readonly string[],
): PublicBaseOf {
  if (publicUrl !== undefined) return () => publicUrl;
  const isTrustedPeer = createTrustedPeerCheck(trustedProxies);
  return (req) => {
    const forwardedProto = isTrustedPeer(req)
      ? lastForwardedValue(req.headers['x-forwarded-proto'])?.toLowerCase()
      : undefined;
    const host = requestedHost(req, isTrustedPeer);
    if (!host || !HOST.test(host)) return undefined;
    const encrypted = (req.socket as Partial<TLSSocket>).encrypted === true;
    const scheme =
      forwardedProto === 'https' || forwardedProto === 'http' ? forwardedProto : encrypted ? 'https' : 'http';
    return `${scheme}://${host.toLowerCase()}`;
  };
}
