import type { ClientRequest, IncomingMessage } from 'node:http';

/**
 * How a request's body is delimited (RFC 9112 §6.3). The gateway decides it from the client's
 * message once, and states it afresh on the upstream request: nothing the client listed in
 * `Connection`, and nothing the proxy engine's passes do to the headers, can change it: httpxy's
 * first pass gives a DELETE or OPTIONS `Content-Length: 0` whenever the headers it is handed
 * carry no framing, and the gateway's never do (framing is stated here, for the bytes sent).
 */
export type RequestFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' };

const NO_BODY: RequestFraming = { kind: 'none' };
const CHUNKED: RequestFraming = { kind: 'chunked' };
const DIGITS = /^\d+$/;

/**
 * The framing of `req`, or `undefined` when it is ambiguous and must be refused: both
 * `Content-Length` and `Transfer-Encoding` (possible behind `insecureHTTPParser`), a coding other
 * than a single `chunked`, chunked framing on HTTP/1.0, or repeated or malformed lengths. Node's
 * parser refuses most of these already; this does not rely on it.
 */
export function framingOf(req: IncomingMessage): RequestFraming | undefined {
  const { headers } = req;
  // Node keeps the first of repeated framing headers, so absent here means absent on the wire.
  if (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) return NO_BODY;
  const lengths: string[] = [];
  const codings: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Compared by length first: most header names are neither, and need no lower-cased copy.
    if (name.length === 14 && name.toLowerCase() === 'content-length') lengths.push(raw[i + 1]!);
    else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') codings.push(raw[i + 1]!);
  }
  if (codings.length > 0) {
    const chunkedOnly =
      lengths.length === 0 &&
      codings.length === 1 &&
      codings[0]!.trim().toLowerCase() === 'chunked' &&
      req.httpVersion !== '1.0';
    return chunkedOnly ? CHUNKED : undefined;
  }
  const value = lengths.length === 1 ? lengths[0]!.trim() : '';
  if (!DIGITS.test(value)) return undefined;
  const length = Number(value);
  return Number.isSafeInteger(length) ? { kind: 'length', length } : undefined;
}

/** Whether an upgrade request announces a body, which an upgrade never has. */
export function announcesBody(req: IncomingMessage): boolean {
  const { headers } = req;
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length.trim() !== '0';
}

/** What is sent as the upstream request's body. */
export type OutboundBody =
  | { readonly kind: 'none' }
  /** The client's own body, read from its stream as it arrives, under the client's framing. */
  | { readonly kind: 'stream'; readonly source: IncomingMessage; readonly framing: RequestFraming }
  /** A body the gateway already holds (a host parser or provider routing read the stream). */
  | { readonly kind: 'bytes'; readonly chunks: readonly Buffer[] };

function stateFraming(proxyReq: ClientRequest, framing: RequestFraming): void {
  proxyReq.removeHeader('content-length');
  proxyReq.removeHeader('transfer-encoding');
  if (framing.kind === 'length') proxyReq.setHeader('content-length', framing.length);
  else if (framing.kind === 'chunked') proxyReq.setHeader('transfer-encoding', 'chunked');
  // Node then refuses to finish a request whose body does not match its `Content-Length`
  // (an `OutgoingMessage` property; @types/node declares it on `ServerResponse` only).
  (proxyReq as ClientRequest & { strictContentLength: boolean }).strictContentLength = true;
}

/**
 * Ends the upstream request, or destroys it (with its connection) when ending would leave the
 * upstream expecting more bytes than were sent.
 */
function finish(proxyReq: ClientRequest, chunks: readonly Buffer[] = []): void {
  try {
    // The pieces of a held body go out together, without being joined first.
    if (chunks.length > 1) proxyReq.cork();
    for (let index = 0; index < chunks.length - 1; index++) proxyReq.write(chunks[index]!);
    proxyReq.end(chunks.at(-1));
  } catch (error) {
    proxyReq.destroy(error as Error);
  }
}

/**
 * Writes `body` onto the upstream request with framing that describes exactly those bytes.
 * Called before anything else is written, so the headers are still open. A stream is never
 * written past its announced length, and one that ends short destroys the upstream request
 * instead of ending it: the upstream can never read one request's bytes as the next request.
 */
export function writeBody(proxyReq: ClientRequest, body: OutboundBody): void {
  if (body.kind === 'none') {
    stateFraming(proxyReq, NO_BODY);
    finish(proxyReq);
    return;
  }
  if (body.kind === 'bytes') {
    let length = 0;
    for (const chunk of body.chunks) length += chunk.length;
    stateFraming(proxyReq, { kind: 'length', length });
    finish(proxyReq, body.chunks);
    return;
  }
  const { source, framing } = body;
  stateFraming(proxyReq, framing);
  let remaining = framing.kind === 'length' ? framing.length : Infinity;
  const onData = (chunk: Buffer): void => {
    if (proxyReq.destroyed) return;
    remaining -= chunk.length;
    if (remaining < 0) {
      proxyReq.destroy(new Error('request body longer than its announced length'));
      return;
    }
    if (!proxyReq.write(chunk)) {
      source.pause();
      proxyReq.once('drain', () => source.resume());
    }
  };
  source.on('data', onData);
  source.once('end', () => {
    if (proxyReq.destroyed) return;
    if (remaining > 0 && remaining !== Infinity) {
      proxyReq.destroy(new Error('request body shorter than its announced length'));
      return;
    }
    finish(proxyReq);
  });
  // A client gone mid-body: the upstream got a truncated body, so its connection must die.
  source.once('close', () => {
    if (!source.complete) proxyReq.destroy();
  });
  proxyReq.once('close', () => source.off('data', onData));
}
