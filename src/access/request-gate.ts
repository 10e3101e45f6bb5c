import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { ROUTE_GROUPS } from '../routing/route-groups.js';
import type { AmpErrorCode, AmpGroup } from '../types.js';

/** Decides, before any credential is read, whether a request may use its group at all. */
export type RequestGate = (req: IncomingMessage) => AmpErrorCode | undefined;

function addressList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return list;
}

const LOOPBACK = addressList(['127.0.0.0/8', '::1/128']);

function contains(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
 * nearest untrusted hop in `X-Forwarded-For` (a client can prepend anything to that header, so
 * only hops added by trusted proxies count).
 */
function clientAddress(req: IncomingMessage, trusted: BlockList | undefined): string {
  const peer = req.socket.remoteAddress ?? '';
  if (!trusted || !contains(trusted, peer)) return peer;
  const forwarded = req.headers['x-forwarded-for'];
  if (typeof forwarded !== 'string') return peer;
  const hops = forwarded.split(',').map((hop) => hop.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!contains(trusted, hops[i]!)) return hops[i]!;
  }
  return hops[0] ?? peer;
}

/** Whether a request's TCP peer is one of `trustedProxies`, whose forwarding headers count. */
export type TrustedPeerCheck = (req: IncomingMessage) => boolean;

export function createTrustedPeerCheck(trustedProxies: readonly string[]): TrustedPeerCheck {
  if (trustedProxies.length === 0) return () => false;
  const trusted = addressList(trustedProxies);
  return (req) => contains(trusted, req.socket.remoteAddress ?? '');
}

export interface GateOptions {
  readonly restrictToLocalhost: boolean;
  readonly trustedProxies: readonly string[];
}

export function createRequestGate(group: AmpGroup, options: GateOptions): RequestGate | undefined {
  const { lockable, forbidsCrossOrigin: noPreflight } = ROUTE_GROUPS[group];
  const localOnly = options.restrictToLocalhost && lockable;
  if (!localOnly && !noPreflight) return undefined;
  const trusted = options.trustedProxies.length > 0 ? addressList(options.trustedProxies) : undefined;
  return (req) => {
    if (localOnly && !contains(LOOPBACK, clientAddress(req, trusted))) return 'amp_localhost_only';
    if (noPreflight && req.method === 'OPTIONS') return 'amp_preflight_forbidden';
    return undefined;
  };
}
