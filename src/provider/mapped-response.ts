import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { decoderFor } from '../http/body-encoding.js';
import { rewriterFor, type RewriteSpec } from './response-rewriter.js';

/**
 * Sends a mapped call's upstream response with the requested model restored: event streams event
 * by event, JSON whole (cut off past `maxJsonBytes`) so that its `Content-Length` is right.
 * Compressed bodies are decoded and sent plain. Returns false, having touched nothing, for a body
 * that needs no rewrite or comes in a coding the gateway cannot decode.
 */
export function forwardRewritten(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  spec: RewriteSpec,
  maxJsonBytes: number,
): boolean {
  const rewriter = rewriterFor(String(headers['content-type'] ?? ''), spec, maxJsonBytes);
  if (!rewriter) return false;
  const decoder = decoderFor(headers['content-encoding'] as string | undefined);
  if (decoder === 'unsupported') return false;
  delete headers['content-encoding'];
  delete headers['content-length'];
  const status = proxyRes.statusCode ?? 502;
  const source = decoder ? proxyRes.pipe(decoder) : proxyRes;
  const fail = (): void => {
    proxyRes.destroy();
    decoder?.destroy();
    res.destroy();
  };
  decoder?.once('error', fail);
  res.once('close', () => {
    if (!res.writableFinished) fail();
  });

  if (!rewriter.holdsWholeBody) res.writeHead(status, proxyRes.statusMessage, headers);
  // Written by hand rather than through a Transform stream: one hop less for every event.
  // Stream handlers run outside the pipeline's error boundary: whatever the upstream sent, a
  // failure here cuts this response (the only signal once it is under way), never the process.
  source.on('data', (chunk: Buffer) => {
    try {
      const out = rewriter.push(chunk);
      if (out === undefined) return fail();
      if (out.length > 0 && !res.write(out)) {
        source.pause();
        res.once('drain', () => source.resume());
      }
    } catch {
      fail();
    }
  });
  source.once('end', () => {
    try {
      const rest = rewriter.end();
      if (rewriter.holdsWholeBody) {
        headers['content-length'] = Buffer.byteLength(rest);
        res.writeHead(status, proxyRes.statusMessage, headers);
      }
      res.end(rest);
    } catch {
      fail();
    }
  });
  return true;
}
