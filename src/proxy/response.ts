import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { isCorsHeader } from '../access/cors.js';
import { forwardRewritten } from '../provider/mapped-response.js';
import { MAX_REWRITTEN_BODY_BYTES, type RewriteSpec } from '../provider/response-rewriter.js';
import { isEventStream, SizeCap } from '../http/body-encoding.js';
import { HOP_BY_HOP_HEADERS } from '../http/hop-by-hop.js';

/**
 * Node frames the client response itself. `Trailer` too: the upstream's trailers are not
 * relayed, and Node refuses to send a `Trailer` header on a response it does not chunk.
 */
const NOT_RELAYED = new Set([...HOP_BY_HOP_HEADERS, 'trailer']);
const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

/**
 * How much one response may make the gateway decode or hold. Not an option: the defaults are what
 * the gateway runs with; tests pass small caps so that none has to push hundreds of megabytes.
 */
export interface ResponseCaps {
  /** Decoded size past which an undeclared gzip body is cut off: a zip bomb must not fill memory. */
  readonly decodedBytes: number;
  /** Size past which a mapped call's JSON response is cut off rather than held in memory. */
  readonly rewrittenJsonBytes: number;
}

const RESPONSE_CAPS: ResponseCaps = {
  decodedBytes: 256 * 1024 * 1024,
  rewrittenJsonBytes: MAX_REWRITTEN_BODY_BYTES,
};

/**
 * Host-side compression buffers a stream until it has enough to compress, which holds SSE
 * events back; `no-transform` is the standard way to tell `compression()` and intermediaries
 * to leave the stream alone.
 */
function keepEventStreamLive(headers: OutgoingHttpHeaders): void {
  const cacheControl = headers['cache-control'];
  if (typeof cacheControl === 'string' && cacheControl.includes('no-transform')) return;
  headers['cache-control'] = cacheControl ? `${String(cacheControl)}, no-transform` : 'no-transform';
}

/**
 * The client response's headers. With `stripCors`, no CORS permission survives, whether the
 * upstream sent it or the host's own CORS middleware set it before the proxy ran.
 */
export function responseHeaders(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  stripCors: boolean,
): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const name in proxyRes.headers) {
    if (NOT_RELAYED.has(name) || (stripCors && isCorsHeader(name))) continue;
    headers[name] = proxyRes.headers[name];
  }
  if (stripCors) {
    for (const name of res.getHeaderNames()) if (isCorsHeader(name)) res.removeHeader(name);
  }
  return headers;
}

export function mayCarryBody(method: string, proxyRes: IncomingMessage): boolean {
  const status = proxyRes.statusCode ?? 200;
  return method !== 'HEAD' && status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

/** Sends the body as it came, `first` being bytes already read from it. */
function sendAsIs(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  first?: Buffer,
): void {
  res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
  if (first) res.write(first);
  proxyRes.pipe(res);
}

/**
 * Sends a whole body of known length, decoded if it is gzip without saying so. Its headers wait
 * for the first body bytes (already in flight), which tell.
 */
function sendDecodingUndeclaredGzip(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  maxDecodedBytes: number,
): void {
  const status = proxyRes.statusCode ?? 502;
  const onFirst = (chunk: Buffer): void => {
    proxyRes.off('end', onEmpty);
    proxyRes.pause();
    if (chunk.length < 2 || chunk[0] !== GZIP_MAGIC_0 || chunk[1] !== GZIP_MAGIC_1) {
      sendAsIs(proxyRes, res, headers, chunk);
      return;
    }
    delete headers['content-length'];
    res.writeHead(status, proxyRes.statusMessage, headers);
    const gunzip = createGunzip();
    gunzip.write(chunk);
    pipeline(proxyRes, gunzip, new SizeCap(maxDecodedBytes), res, (error) => {
      if (error) res.destroy();
    });
  };
  const onEmpty = (): void => {
    proxyRes.off('data', onFirst);
    res.writeHead(status, proxyRes.statusMessage, headers);
    res.end();
  };
  proxyRes.once('data', onFirst);
  proxyRes.once('end', onEmpty);
}

/**
 * Sends the upstream's response to the client, streaming. The one exception to byte-for-byte:
 * a whole body that is gzip but does not say so (some upstream routes do this) is decoded as a
 * stream with a cap, since clients would otherwise parse compressed bytes as JSON. Event
 * streams and bodies of unknown length are never held back to find out. A mapped call's JSON or
 * event stream gets the requested model back on the way (`forwardRewritten`).
 */
export function forwardResponse(
  proxyRes: IncomingMessage,
  method: string,
  res: ServerResponse,
  stripCors: boolean,
  rewrite: RewriteSpec | undefined,
  caps: ResponseCaps = RESPONSE_CAPS,
): void {
  const headers = responseHeaders(proxyRes, res, stripCors);
  const eventStream = isEventStream(proxyRes.headers['content-type'] ?? '');
  if (eventStream) keepEventStreamLive(headers);
  const carriesBody = mayCarryBody(method, proxyRes);
  if (rewrite && carriesBody && forwardRewritten(proxyRes, res, headers, rewrite, caps.rewrittenJsonBytes))
    return;
  // Only a whole body of known length is inspected: a streamed response keeps its headers moving
  // the moment they arrive.
  if (eventStream || headers['content-encoding'] || !headers['content-length'] || !carriesBody)
    sendAsIs(proxyRes, res, headers);
  else sendDecodingUndeclaredGzip(proxyRes, res, headers, caps.decodedBytes);
}
