import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { isCorsHeader } from '../access/cors.js';
import { Transform, pipeline, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import {
  MAX_REWRITTEN_BODY_BYTES,
  rewriteJsonText,
  SseRewriter,
  type RewriteSpec,
} from '../provider/response-rewriter.js';

/** Hop-by-hop response headers: Node frames the client response itself. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'trailer',
  'upgrade',
]);
const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

/** Decoded size past which an undeclared gzip body is cut off: a zip bomb must not fill memory. */
const MAX_DECODED_BYTES = 256 * 1024 * 1024;

function isEventStream(proxyRes: IncomingMessage): boolean {
  return proxyRes.headers['content-type']?.startsWith('text/event-stream') ?? false;
}

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
function responseHeaders(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  stripCors: boolean,
): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const name in proxyRes.headers) {
    if (HOP_BY_HOP.has(name) || (stripCors && isCorsHeader(name))) continue;
    headers[name] = proxyRes.headers[name];
  }
  if (stripCors) {
    for (const name of res.getHeaderNames()) if (isCorsHeader(name)) res.removeHeader(name);
  }
  return headers;
}

class SizeCap extends Transform {
  #seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.limit) callback(new Error('decoded response exceeds the size cap'));
    else callback(null, chunk);
  }
}

function mayCarryBody(method: string, proxyRes: IncomingMessage): boolean {
  const status = proxyRes.statusCode ?? 200;
  return method !== 'HEAD' && status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

/**
 * Sends the upstream's response to the client, streaming. The one exception to byte-for-byte:
 * a whole body that is gzip but does not say so (some upstream routes do this) is decoded as a
 * stream with a cap, since clients would otherwise parse compressed bytes as JSON. Event
 * streams and bodies of unknown length are never held back to find out.
 */
export function forwardResponse(
  proxyRes: IncomingMessage,
  method: string,
  res: ServerResponse,
  stripCors: boolean,
  rewrite: RewriteSpec | undefined,
): void {
  const headers = responseHeaders(proxyRes, res, stripCors);
  if (rewrite && mayCarryBody(method, proxyRes) && forwardRewritten(proxyRes, res, headers, rewrite)) return;
  const status = proxyRes.statusCode ?? 502;
  const sendAsIs = (first?: Buffer): void => {
    res.writeHead(status, proxyRes.statusMessage, headers);
    if (first) res.write(first);
    proxyRes.pipe(res);
  };

  if (isEventStream(proxyRes)) {
    keepEventStreamLive(headers);
    sendAsIs();
    return;
  }
  // Only a whole body of known length is inspected: a streamed response keeps its headers moving
  // the moment they arrive.
  if (headers['content-encoding'] || !headers['content-length'] || !mayCarryBody(method, proxyRes)) {
    sendAsIs();
    return;
  }

  // Headers wait for the first body bytes (already in flight), which tell whether it is undeclared gzip.
  const onFirst = (chunk: Buffer): void => {
    proxyRes.off('end', onEmpty);
    proxyRes.pause();
    if (chunk.length < 2 || chunk[0] !== GZIP_MAGIC_0 || chunk[1] !== GZIP_MAGIC_1) {
      sendAsIs(chunk);
      return;
    }
    delete headers['content-length'];
    res.writeHead(status, proxyRes.statusMessage, headers);
    const gunzip = createGunzip();
    gunzip.write(chunk);
    pipeline(proxyRes, gunzip, new SizeCap(MAX_DECODED_BYTES), res, (error) => {
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

function decoderFor(encoding: string | undefined): Transform | undefined | 'unknown' {
  switch (encoding?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'identity':
      return undefined;
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return 'unknown';
  }
}

/**
 * A mapped call's response with the requested model name restored: event streams event by
 * event, JSON whole (with a cap) so that `Content-Length` is right. Compressed bodies are decoded
 * and sent plain. Returns false, leaving the response alone, for bodies that are neither.
 */
function forwardRewritten(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  rewrite: RewriteSpec,
): boolean {
  const sse = isEventStream(proxyRes);
  const json = !sse && /json/i.test(String(headers['content-type'] ?? ''));
  const decoder = decoderFor(headers['content-encoding'] as string | undefined);
  if ((!sse && !json) || decoder === 'unknown') return false;
  delete headers['content-encoding'];
  delete headers['content-length'];
  const status = proxyRes.statusCode ?? 502;
  const source = decoder ? proxyRes.pipe(decoder) : proxyRes;
  const fail = (): void => {
    proxyRes.destroy();
    res.destroy();
  };
  decoder?.once('error', fail);

  if (sse) {
    keepEventStreamLive(headers);
    res.writeHead(status, proxyRes.statusMessage, headers);
    // Written by hand rather than through a Transform stream: one hop less for every event.
    const events = new SseRewriter(rewrite);
    source.on('data', (chunk: Buffer) => {
      const out = events.push(chunk);
      if (out.length > 0 && !res.write(out)) {
        source.pause();
        res.once('drain', () => source.resume());
      }
    });
    source.once('end', () => res.end(events.end()));
    res.once('close', () => {
      if (!res.writableFinished) fail();
    });
    return true;
  }

  const chunks: Buffer[] = [];
  let size = 0;
  source.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_REWRITTEN_BODY_BYTES) return fail();
    chunks.push(chunk);
  });
  source.once('end', () => {
    const body = Buffer.from(rewriteJsonText(Buffer.concat(chunks).toString('utf8'), rewrite));
    headers['content-length'] = body.length;
    res.writeHead(status, proxyRes.statusMessage, headers);
    res.end(body);
  });
  return true;
}
