import { isIP } from 'node:net';
import { addressMatcher, familyOf, parseAddressRange } from '../http/address-ranges.js';

/** One `NO_PROXY` entry: a host, a domain with its subdomains, an IP or CIDR range, and an optional port. */
interface Exemption {
  readonly matchesHost: (host: string) => boolean;
  readonly port: number | undefined;
}

function withoutBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Splits `host:port`, `[v6]:port` and bare IPv6 literals (whose colons are not a port). */
function splitPort(entry: string): { host: string; port: number | undefined } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] ? Number(bracketed[2]) : undefined };
  const colon = entry.lastIndexOf(':');
  if (colon === -1 || entry.indexOf(':') !== colon || !/^\d+$/.test(entry.slice(colon + 1))) {
    return { host: entry, port: undefined };
  }
  return { host: entry.slice(0, colon), port: Number(entry.slice(colon + 1)) };
}

function cidrMatcher(text: string): ((host: string) => boolean) | undefined {
  const range = parseAddressRange(text);
  if (range?.prefix === undefined) return undefined;
  const inRange = addressMatcher([range]);
  // As curl reads NO_PROXY: a range covers addresses written in its own family only.
  return (host) => familyOf(host) === range.family && inRange(host);
}

function parseExemption(entry: string): Exemption | undefined {
  const { host: written, port } = splitPort(entry);
  const host = withoutBrackets(written).toLowerCase();
  if (host.includes('/')) {
    const matchesHost = cidrMatcher(host);
    return matchesHost && { matchesHost, port };
  }
  if (isIP(host) !== 0) return { matchesHost: (candidate) => candidate === host, port };
  // `.example.com`, `*.example.com` and `example.com` all cover example.com and its subdomains,
  // as curl, Go and most proxies read them.
  const domain = host.replace(/^\*?\./, '');
  if (domain === '') return undefined;
  return {
    matchesHost: (candidate) => candidate === domain || candidate.endsWith(`.${domain}`),
    port,
  };
}

/**
 * Whether `NO_PROXY` exempts the upstream: `*`, hosts, domains (a leading `.` or `*.` optional),
 * IP addresses and CIDR ranges, each optionally with `:port`; separated by commas or spaces.
 * Entries that mean nothing are skipped, as other tools skip them.
 */
export function isExemptFromProxy(noProxy: string, upstream: URL): boolean {
  const host = withoutBrackets(upstream.hostname).toLowerCase();
  const port = Number(upstream.port || (upstream.protocol === 'https:' ? 443 : 80));
  return noProxy
    .split(/[\s,]+/)
    .filter((entry) => entry !== '')
    .some((entry) => {
      if (entry === '*') return true;
      const exemption = parseExemption(entry);
      return (
        exemption !== undefined &&
        (exemption.port === undefined || exemption.port === port) &&
        exemption.matchesHost(host)
      );
    });
}
