import type { IncomingMessage } from 'node:http';
import { addressMatcher, parseAddressRange, type AddressMatcher } from '../http/address-ranges.js';
import { ROUTE_GROUPS } from '../routing/route-groups.js';
import type { AmpErrorCode, AmpGroup } from '../types.js';

/** Decides, before any credential is read, whether a request may use its group at all. */
export type RequestGate = (req: IncomingMessage) => AmpErrorCode | undefined;

/** `entries` are validated (`trustedProxies`): none is skipped. */
function addressesIn(entries: readonly string[]): AddressMatcher {
  return addressMatcher(entries.flatMap((entry) => parseAddressRange(entry) ?? []));
}

const isLoopback = addressesIn(['127.0.0.0/8', '::1/128']);

/**
 * The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
 * nearest untrusted hop in `X-Forwarded-For` (a client can prepend anything to that header, so
 * only hops added by trusted proxies count).
 */
function clientAddress(req: IncomingMessage, isTrusted: AddressMatcher | undefined): string {
  const peer = req.socket.remoteAddress ?? '';
  if (!isTrusted || !isTrusted(peer)) return peer;
  const forwarded = req.headers['x-forwarded-for'];
  if (typeof forwarded !== 'string') return peer;
  const hops = forwarded.split(',').map((hop) => hop.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!isTrusted(hops[i]!)) return hops[i]!;
  }
  return hops[0] ?? peer;
}

/** Whether a request's TCP peer is one of `trustedProxies`, whose forwarding headers count. */
export type TrustedPeerCheck = (req: IncomingMessage) => boolean;

export function createTrustedPeerCheck(trustedProxies: readonly string[]): TrustedPeerCheck {
  if (trustedProxies.length === 0) return () => false;
  const isTrusted = addressesIn(trustedProxies);
  return (req) => isTrusted(req.socket.remoteAddress ?? '');
}

export interface GateOptions {
  readonly restrictToLocalhost: boolean;
  readonly trustedProxies: readonly string[];
}

export function createRequestGate(group: AmpGroup, options: GateOptions): RequestGate | undefined {
  const { lockable, forbidsCrossOrigin: noPreflight } = ROUTE_GROUPS[group];
  const localOnly = options.restrictToLocalhost && lockable;
  if (!localOnly && !noPreflight) return undefined;
  const isTrusted = options.trustedProxies.length > 0 ? addressesIn(options.trustedProxies) : undefined;
  return (req) => {
    if (localOnly && !isLoopback(clientAddress(req, isTrusted))) return 'amp_localhost_only';
    if (noPreflight && req.method === 'OPTIONS') return 'amp_preflight_forbidden';
    return undefined;
  };
}
