import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeWhole, decoderFor, isJson } from '../http/body-encoding.js';
import { sendAmpError } from '../errors.js';
import { forwardResponse, mayCarryBody, responseHeaders } from './response.js';

/** Changes a small JSON reply in place before the client gets it (URLs that must name the gateway). */
export type ReplyRewrite = (document: unknown) => void;

/** Discovery and configuration replies are a few hundred bytes; anything near this is not one. */
export const MAX_REWRITTEN_REPLY_BYTES = 64 * 1024;

/**
 * Sends a small JSON reply rewritten: read whole (at most `maxBytes`, as sent and decoded), parsed,
 * rewritten, sent plain with its new length. A reply that is not JSON, or in a coding the gateway
 * cannot decode, goes as it came; one too large or broken to read gets `502`.
 */
export function forwardRewrittenReply(
  proxyRes: IncomingMessage,
  method: string,
  res: ServerResponse,
  stripCors: boolean,
  rewrite: ReplyRewrite,
  maxBytes = MAX_REWRITTEN_REPLY_BYTES,
): void {
  const decoder = decoderFor(proxyRes.headers['content-encoding']);
  if (
    !mayCarryBody(method, proxyRes) ||
    !isJson(proxyRes.headers['content-type'] ?? '') ||
    decoder === 'unsupported'
  ) {
    forwardResponse(proxyRes, method, res, stripCors, undefined);
    return;
  }
  const headers = responseHeaders(proxyRes, res, stripCors);
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  const unreadable = (): void => {
    refused = true;
    proxyRes.removeAllListeners('data');
    proxyRes.destroy();
    if (!res.headersSent) sendAmpError(res, 'amp_upstream_proxy_error');
  };
  proxyRes.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) unreadable();
    else chunks.push(chunk);
  });
  const send = (raw: Buffer, decoded: Buffer): void => {
    // An `end` already queued when the reply was found too large.
    if (refused) return;
    let document: unknown;
    try {
      document = JSON.parse(decoded.toString('utf8'));
    } catch {
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
      res.end(raw);
      return;
    }
    rewrite(document);
    const body = JSON.stringify(document);
    delete headers['content-encoding'];
    headers['content-length'] = Buffer.byteLength(body);
    res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
    res.end(body);
  };
  proxyRes.once('end', () => {
    const raw = Buffer.concat(chunks);
    if (!decoder) return send(raw, raw);
    void decodeWhole([raw], decoder, maxBytes).then((decoded) =>
      Array.isArray(decoded) ? send(raw, Buffer.concat(decoded)) : unreadable(),
    );
  });
}
