import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { rewriteJsonText, SseRewriter, type RewriteSpec } from './response-rewriter.js';

type Callback = (error?: Error | null) => void;

/**
 * Routes what a host's local provider handler writes through the response rewriter, the way
 * `compression()` wraps a response: event streams are rewritten line by line as they are
 * written, JSON once complete (so its `Content-Length` is right), anything else untouched.
 */
export function rewriteLocalResponse(res: ServerResponse, spec: RewriteSpec): void {
  const writeHeadNow = res.writeHead.bind(res);
  const writeNow = res.write.bind(res) as (chunk: unknown, callback?: Callback) => boolean;
  const endNow = res.end.bind(res) as (chunk?: unknown, callback?: () => void) => ServerResponse;
  // Node's implicit headers go through `res.writeHead`, which is ours below: send them explicitly.
  const flushHeaders = (): void => {
    if (res.headersSent) return;
    res.writeHead = writeHeadNow;
    writeHeadNow(res.statusCode, res.statusMessage);
  };
  const write = (chunk: unknown, callback?: Callback): boolean => {
    flushHeaders();
    return writeNow(chunk, callback);
  };
  const end = (chunk?: unknown, callback?: () => void): ServerResponse => {
    flushHeaders();
    return endNow(chunk, callback);
  };
  let mode: 'sse' | 'json' | 'raw' | undefined;
  let events: SseRewriter | undefined;
  const json: Buffer[] = [];

  const decide = (): void => {
    if (mode) return;
    const type = String(res.getHeader('content-type') ?? '');
    mode = type.includes('text/event-stream') ? 'sse' : /json/i.test(type) ? 'json' : 'raw';
    if (mode === 'sse') events = new SseRewriter(spec);
    if (mode !== 'raw') res.removeHeader('content-length');
  };
  const toBuffer = (chunk: unknown, encoding: unknown): Buffer =>
    Buffer.isBuffer(chunk)
      ? chunk
      : chunk instanceof Uint8Array
        ? Buffer.from(chunk)
        : Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');

  // Headers given to writeHead become ordinary headers, so that they are sent only when the body
  // is known (its length may change).
  res.writeHead = function writeHead(status: number, ...rest: unknown[]) {
    res.statusCode = status;
    const [first, second] = rest;
    if (typeof first === 'string') res.statusMessage = first;
    const headers = (typeof first === 'string' ? second : first) as OutgoingHttpHeaders | undefined;
    if (headers && !Array.isArray(headers)) {
      for (const [name, value] of Object.entries(headers))
        if (value !== undefined) res.setHeader(name, value);
    }
    return res;
  } as ServerResponse['writeHead'];

  res.write = function (chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    decide();
    const done = (typeof encoding === 'function' ? encoding : callback) as Callback | undefined;
    if (mode === 'raw') return write(chunk, done);
    const bytes = toBuffer(chunk, encoding);
    if (mode === 'json') {
      json.push(bytes);
      done?.();
      return true;
    }
    const out = events!.push(bytes);
    if (out.length === 0) {
      done?.();
      return true;
    }
    return write(out, done);
  } as ServerResponse['write'];

  res.end = function (chunk?: unknown, encoding?: unknown, callback?: unknown): ServerResponse {
    decide();
    const done = [chunk, encoding, callback].find((arg) => typeof arg === 'function') as
      (() => void) | undefined;
    const hasChunk = chunk !== undefined && chunk !== null && typeof chunk !== 'function';
    if (mode === 'raw') return end(hasChunk ? chunk : undefined, done);
    if (hasChunk) (mode === 'json' ? json : []).push(toBuffer(chunk, encoding));
    if (mode === 'json') {
      const body = Buffer.from(rewriteJsonText(Buffer.concat(json).toString('utf8'), spec));
      res.setHeader('content-length', body.length);
      return end(body, done);
    }
    const tail = Buffer.concat([
      Buffer.from(hasChunk ? events!.push(toBuffer(chunk, encoding)) : ''),
      Buffer.from(events!.end()),
    ]);
    return end(tail.length === 0 ? undefined : tail, done);
  } as ServerResponse['end'];
}
