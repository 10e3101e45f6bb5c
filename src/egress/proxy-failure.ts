import { upstreamFailureCause } from '../errors.js';

/** Messages of the SOCKS client (which gives its errors no code), as causes. */
const SOCKS_FAILURES: readonly (readonly [RegExp, string])[] = [
  [/authentication failed|no accepted authentication/i, 'AUTH_FAILED'],
  [/rejected/i, 'REJECTED'],
  [/timed out/i, 'TIMEOUT'],
  [/\b(E[A-Z]{3,})\b/, '$1'],
];

/** An error of the egress proxy's, whose code is its cause (`PROXY_407`). */
export function proxyFailure(cause: string): Error {
  return Object.assign(new Error(`egress proxy failed: ${cause}`), { code: cause });
}

/**
 * Why a connection through the egress proxy failed before the upstream was reached: `PROXY_`
 * and a status (`PROXY_407`) or code (`PROXY_ECONNREFUSED`), so that an operator can tell the
 * proxy's failures from the upstream's.
 */
export function proxyFailureCause(error: unknown): string {
  const cause = upstreamFailureCause(error);
  if (cause.startsWith('PROXY_')) return cause;
  if (cause !== 'unknown') return `PROXY_${cause}`;
  const message = error instanceof Error ? error.message : '';
  for (const [pattern, replacement] of SOCKS_FAILURES) {
    const match = pattern.exec(message);
    if (match) return `PROXY_${match[0].replace(pattern, replacement)}`;
  }
  return 'PROXY_ERROR';
}
