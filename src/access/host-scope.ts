import type { IncomingMessage } from 'node:http';
import { createTrustedPeerCheck, type TrustedPeerCheck } from './request-gate.js';

/** Whether a request is for one of the names a router is scoped to. */
export type HostScope = (req: IncomingMessage) => boolean;

/**
 * The name a `Host` value is for: lower case, without the port or a trailing dot
 * (`Amp.Corp.Example.:8443` → `amp.corp.example`; `[::1]:80` → `[::1]`).
 */
function hostName(value: string): string {
  const end = value.startsWith('[') ? value.indexOf(']') + 1 : value.lastIndexOf(':');
  const name = (end > 0 ? value.slice(0, end) : value).toLowerCase();
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * The last value of a forwarding header: the one the trusted proxy in front wrote (a client can put
 * anything before it).
 */
export function lastForwardedValue(value: string | string[] | undefined): string | undefined {
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : last.slice(last.lastIndexOf(',') + 1).trim();
}

/** The host a request is for: `X-Forwarded-Host` when the TCP peer is a trusted proxy, else `Host`. */
export function requestedHost(req: IncomingMessage, isTrustedPeer: TrustedPeerCheck): string {
  const forwarded = isTrustedPeer(req) ? lastForwardedValue(req.headers['x-forwarded-host']) : undefined;
  return forwarded || (req.headers.host ?? '');
}

/**
 * `names` as validated: lower case, each an exact name or `*.suffix` (any name that ends in
 * `.suffix`, at any depth; not the suffix itself). `undefined` when the router claims every host.
 */
export function createHostScope(
  names: readonly string[] | undefined,
  trustedProxies: readonly string[],
): HostScope | undefined {
  if (names === undefined) return undefined;
  const exact = new Set(names.filter((name) => !name.startsWith('*.')));
  const suffixes = names.filter((name) => name.startsWith('*.')).map((name) => name.slice(1));
  const isTrustedPeer = createTrustedPeerCheck(trustedProxies);
  return (req) => {
    const name = hostName(requestedHost(req, isTrustedPeer));
    return exact.has(name) || suffixes.some((suffix) => name.endsWith(suffix));
  };
}
