import type { IncomingHttpHeaders } from 'node:http';
import { CREDENTIAL_HEADERS } from '../auth/credential-names.js';
import { HOP_BY_HOP_HEADERS } from '../http/hop-by-hop.js';

/** Needed on an upgrade; hop-by-hop on a plain request, where Node's agent sets its own. */
const UPGRADE_ONLY = new Set(['connection', 'upgrade']);

/**
 * Headers that never travel upstream on their own: credentials (a policy decides which go back
 * on), framing (stated afresh for the body actually sent), hop-by-hop headers, and headers that
 * identify the client machine or the browser.
 */
const DROPPED = new Set<string>([
  ...CREDENTIAL_HEADERS,
  ...[...HOP_BY_HOP_HEADERS].filter((name) => !UPGRADE_ONLY.has(name)),
  'content-length',
  // The body is written afresh and ends with no trailers, so none may be announced.
  'trailer',
  // Addressed to this hop's proxy, which the gateway is not; never the upstream's business.
  'proxy-authorization',
  // Node already answered `100 Continue` to the client; and httpxy skips its proxyReq hook
  // for requests that carry `Expect`.
  'expect',
  'forwarded',
  'x-forwarded',
  'via',
  'x-real-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-title',
  'http-referer',
  'referer',
  'priority',
  // Addressed to intermediaries (TRACE, OPTIONS); one that answers at 0 reflects the request.
  'max-forwards',
]);
const DROPPED_PREFIXES = ['x-forwarded-', 'x-stainless-', 'sec-ch-ua', 'sec-fetch-'];

function isDropped(name: string, dropped: ReadonlySet<string>): boolean {
  if (dropped.has(name)) return true;
  // Many servers read `X_Api_Key` as `X-Api-Key`; like nginx, such names are not passed on.
  if (name.includes('_')) return true;
  for (const prefix of DROPPED_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}

/**
 * Names listed in `Connection` are hop-by-hop by definition (RFC 9110 §7.6.1). Framing, `Host`
 * and `Upgrade` are decided by the gateway whatever the client listed.
 */
function connectionListed(headers: IncomingHttpHeaders): Set<string> | undefined {
  const connection = headers.connection;
  if (!connection || (!connection.includes(',') && /^\s*(keep-alive|close|upgrade)\s*$/i.test(connection))) {
    return undefined;
  }
  const listed = new Set(
    connection
      .toLowerCase()
      .split(',')
      .map((name) => name.trim()),
  );
  listed.delete('upgrade');
  listed.delete('host');
  return listed;
}

export interface UpstreamHeaderOptions {
  readonly isUpgrade: boolean;
  /** The body sent is not the client's encoded bytes (a parser decoded it), so no `Content-Encoding`. */
  readonly decodedBody: boolean;
}

export type UpstreamHeaderBuilder = (
  incoming: IncomingHttpHeaders,
  credentials: Readonly<Record<string, string | null>>,
  options: UpstreamHeaderOptions,
) => IncomingHttpHeaders;

/**
 * The one place where a policy's decision becomes the upstream request's headers. It builds a
 * fresh header object and leaves the client's untouched, so nothing the client sent can slip
 * past it (httpxy copies exactly this object and nothing else) and the host's own view of
 * the request never holds a key the gateway added.
 * `hostHeaders`: the host's own headers (its session cookie, a company token) that one group
 * never sends upstream, merged here once with the headers no group sends.
 */
export function createUpstreamHeaderBuilder(
  tokenHeader: string,
  hostHeaders: readonly string[] = [],
): UpstreamHeaderBuilder {
  const dropped: ReadonlySet<string> = new Set([...DROPPED, tokenHeader, ...hostHeaders]);
  return (incoming, credentials, { isUpgrade, decodedBody }) => {
    const listed = connectionListed(incoming);
    const outgoing: IncomingHttpHeaders = {};
    for (const name in incoming) {
      if (name in credentials || isDropped(name, dropped) || listed?.has(name)) continue;
      if (!isUpgrade && UPGRADE_ONLY.has(name)) continue;
      outgoing[name] = incoming[name];
    }
    if (decodedBody) delete outgoing['content-encoding'];
    for (const name in credentials) {
      const value = credentials[name];
      if (value !== null && value !== undefined) outgoing[name] = value;
    }
    return outgoing;
  };
}
