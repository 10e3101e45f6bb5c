import { BlockList, isIP } from 'node:net';

export type AddressFamily = 'ipv4' | 'ipv6';

/** An IP address, or a CIDR range (`10.0.0.0/8`, `fd00::/8`). */
export interface AddressRange {
  readonly address: string;
  readonly family: AddressFamily;
  /** Absent for a single address. */
  readonly prefix: number | undefined;
}

export function familyOf(address: string): AddressFamily | undefined {
  const version = isIP(address);
  return version === 0 ? undefined : version === 6 ? 'ipv6' : 'ipv4';
}

/**
 * The one reading of an address or CIDR range, for `trustedProxies`, the lock-down's loopback
 * and `NO_PROXY`: `undefined` for anything else (no IP address, a prefix that is not a number
 * of bits the family has, a second `/`).
 */
export function parseAddressRange(text: string): AddressRange | undefined {
  const [address = '', prefix, extra] = text.split('/');
  const family = familyOf(address);
  if (family === undefined || extra !== undefined) return undefined;
  if (prefix === undefined) return { address, family, prefix: undefined };
  if (!/^\d+$/.test(prefix) || Number(prefix) > (family === 'ipv6' ? 128 : 32)) return undefined;
  return { address, family, prefix: Number(prefix) };
}

/**
 * Whether an address lies in one of `ranges`. An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`,
 * how a dual-stack server sees an IPv4 peer) lies in the ranges of its IPv4 address; anything
 * that is not an IP address lies in none.
 */
export type AddressMatcher = (address: string) => boolean;

export function addressMatcher(ranges: readonly AddressRange[]): AddressMatcher {
  const list = new BlockList();
  for (const { address, family, prefix } of ranges) {
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, prefix, family);
  }
  return (candidate) => {
    const family = familyOf(candidate);
    return family !== undefined && list.check(candidate, family);
  };
}
