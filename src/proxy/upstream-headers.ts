import type { IncomingHttpHeaders } from 'node:http';
import { CREDENTIAL_HEADERS } from '../auth/credentials.js';

/**
 * Headers that never travel upstream on their own: credentials (a policy decides which go back
 * on), hop-by-hop headers, and headers that identify the client machine or the browser.
 */
const DROPPED = new Set<string>([
  ...CREDENTIAL_HEADERS,
  'proxy-authorization',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  // Node already answered `100 Continue` to the client; and http-proxy skips its proxyReq hook
  // for requests that carry `Expect`.
  'expect',
  'forwarded',
  'via',
  'x-real-ip',
  'x-title',
  'http-referer',
  'referer',
  'priority',
]);
const DROPPED_PREFIXES = ['x-forwarded-', 'x-stainless-', 'sec-ch-ua', 'sec-fetch-'];
/** Needed on an upgrade; hop-by-hop on a plain request, where Node's agent sets its own. */
const UPGRADE_ONLY = new Set(['connection', 'upgrade']);

function isDropped(name: string): boolean {
  if (DROPPED.has(name)) return true;
  for (const prefix of DROPPED_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}

/** Names listed in `Connection` are hop-by-hop by definition (RFC 9110 §7.6.1). */
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
  return listed;
}

export type UpstreamHeaderBuilder = (
  incoming: IncomingHttpHeaders,
  credentials: Readonly<Record<string, string | null>>,
  isUpgrade: boolean,
) => IncomingHttpHeaders;

/**
 * The one place where a policy's decision becomes the upstream request's headers. It builds a
 * fresh header object instead of editing the request, so nothing the client sent can slip past
 * it (http-proxy copies exactly this object and nothing else).
 */
export function createUpstreamHeaderBuilder(tokenHeader: string): UpstreamHeaderBuilder {
  return (incoming, credentials, isUpgrade) => {
    const listed = connectionListed(incoming);
    const outgoing: IncomingHttpHeaders = {};
    for (const name in incoming) {
      if (name === tokenHeader || name in credentials || isDropped(name) || listed?.has(name)) continue;
      if (!isUpgrade && UPGRADE_ONLY.has(name)) continue;
      outgoing[name] = incoming[name];
    }
    for (const name in credentials) {
      const value = credentials[name];
      if (value !== null && value !== undefined) outgoing[name] = value;
    }
    return outgoing;
  };
}
