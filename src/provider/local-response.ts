import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  MAX_REWRITTEN_BODY_BYTES,
  rewriterFor,
  type BodyRewriter,
  type RewriteSpec,
} from './response-rewriter.js';

type Callback = (error?: Error | null) => void;
type Write = (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;
type End = (chunk?: unknown, encoding?: unknown, callback?: unknown) => ServerResponse;

const EMPTY = Buffer.alloc(0);

function toBuffer(chunk: unknown, encoding: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk);
  return Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
}

/** A local handler's response, as seen through the methods the handler calls. */
class LocalResponse {
  readonly #writeHeadNow: ServerResponse['writeHead'];
  readonly #writeNow: Write;
  readonly #endNow: End;
  #rewriter: BodyRewriter | undefined;
  #chosen = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly spec: RewriteSpec,
    private readonly maxJsonBytes: number,
  ) {
    this.#writeHeadNow = res.writeHead.bind(res);
    this.#writeNow = res.write.bind(res) as Write;
    this.#endNow = res.end.bind(res) as End;
  }

  /**
   * Headers given to writeHead become ordinary headers, so that they are sent only when the body
   * is known (its length may change).
   */
  writeHead(status: number, ...rest: unknown[]): ServerResponse {
    const { res } = this;
    res.statusCode = status;
    const [first, second] = rest;
    if (typeof first === 'string') res.statusMessage = first;
    const headers = (typeof first === 'string' ? second : first) as OutgoingHttpHeaders | undefined;
    if (headers && !Array.isArray(headers)) {
      for (const [name, value] of Object.entries(headers))
        if (value !== undefined) res.setHeader(name, value);
    }
    return res;
  }

  write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const rewriter = this.#bodyRewriter();
    // Bodies left as they are, and writes after the response was cut off, are Node's to handle.
    if (!rewriter || this.res.destroyed) {
      this.#flushHeaders();
      return this.#writeNow(chunk, encoding, callback);
    }
    const done = (typeof encoding === 'function' ? encoding : callback) as Callback | undefined;
    const out = rewriter.push(toBuffer(chunk, encoding));
    if (out === undefined) return this.#cutOff(done);
    if (out.length === 0) {
      done?.();
      return true;
    }
    this.#flushHeaders();
    return this.#writeNow(out, done);
  }

  end(chunk?: unknown, encoding?: unknown, callback?: unknown): ServerResponse {
    const rewriter = this.#bodyRewriter();
    if (!rewriter || this.res.destroyed) {
      this.#flushHeaders();
      return this.#endNow(chunk, encoding, callback);
    }
    const done = [chunk, encoding, callback].find((arg) => typeof arg === 'function') as Callback | undefined;
    const hasChunk = chunk !== undefined && chunk !== null && typeof chunk !== 'function';
    const last = hasChunk ? rewriter.push(toBuffer(chunk, encoding)) : EMPTY;
    if (last === undefined) {
      this.#cutOff(done);
      return this.res;
    }
    const rest = rewriter.end();
    const tail = last.length === 0 ? rest : Buffer.concat([Buffer.from(last), Buffer.from(rest)]);
    if (rewriter.holdsWholeBody) this.res.setHeader('content-length', Buffer.byteLength(tail));
    this.#flushHeaders();
    return this.#endNow(tail.length === 0 ? undefined : tail, done);
  }

  /** Chosen at the first write, once the handler has set its Content-Type. */
  #bodyRewriter(): BodyRewriter | undefined {
    if (this.#chosen) return this.#rewriter;
    this.#chosen = true;
    const contentType = String(this.res.getHeader('content-type') ?? '');
    this.#rewriter = rewriterFor(contentType, this.spec, this.maxJsonBytes);
    if (this.#rewriter) this.res.removeHeader('content-length');
    return this.#rewriter;
  }

  /** Node's implicit headers go through `res.writeHead`, which is ours: they are sent explicitly. */
  #flushHeaders(): void {
    const { res } = this;
    if (res.headersSent) return;
    res.writeHead = this.#writeHeadNow;
    this.#writeHeadNow(res.statusCode, res.statusMessage);
  }

  /** Cuts the client off; the handler's write fails the way a write to a destroyed response does. */
  #cutOff(callback: Callback | undefined): boolean {
    this.res.destroy();
    return this.#writeNow(EMPTY, callback);
  }
}

/**
 * Routes what a host's local provider handler writes through the response rewriter, the way
 * `compression()` wraps a response: event streams are rewritten line by line as they are
 * written, JSON once complete (so its `Content-Length` is right), anything else untouched. A JSON
 * body past `maxJsonBytes` cuts the client off, as a mapped call's upstream response would.
 */
export function rewriteLocalResponse(
  res: ServerResponse,
  spec: RewriteSpec,
  maxJsonBytes = MAX_REWRITTEN_BODY_BYTES,
): void {
  const local = new LocalResponse(res, spec, maxJsonBytes);
  res.writeHead = local.writeHead.bind(local) as ServerResponse['writeHead'];
  res.write = local.write.bind(local) as ServerResponse['write'];
  res.end = local.end.bind(local) as ServerResponse['end'];
}
