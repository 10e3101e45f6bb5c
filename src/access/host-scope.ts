import type { IncomingMessage } from 'node:http';
import { trustedPeerCheck } from './request-gate.js';

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
 * The host a request is for: `X-Forwarded-Host` when the TCP peer is a trusted proxy (its last
 * value, the one that proxy wrote: a client can put anything before it), else `Host`.
 */
function requestedHost(
  req: IncomingMessage,
  fromTrustedProxy: ((req: IncomingMessage) => boolean) | undefined,
): string {
  const forwarded = req.headers['x-forwarded-host'];
  if (typeof forwarded === 'string' && fromTrustedProxy?.(req)) {
    return forwarded.slice(forwarded.lastIndexOf(',') + 1).trim();
  }
  return req.headers.host ?? '';
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
  const fromTrustedProxy = trustedPeerCheck(trustedProxies);
  return (req) => {
    const name = hostName(requestedHost(req, fromTrustedProxy));
    return exact.has(name) || suffixes.some((suffix) => name.endsWith(suffix));
  };
}
