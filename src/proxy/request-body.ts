import type { IncomingMessage } from 'node:http';
import type { HeldBody } from '../http/held-body.js';

type ParsedRequest = IncomingMessage & { body?: unknown };

const rebuilt = (bytes: Buffer): HeldBody => ({ chunks: [bytes], asReceived: false });

function serialise(body: object, type: string): Buffer | 'unavailable' {
  if (type.includes('json')) {
    try {
      return Buffer.from(JSON.stringify(body));
    } catch {
      // A BigInt or a cycle that a custom parser put there: there is nothing faithful to send.
      return 'unavailable';
    }
  }
  if (type.includes('application/x-www-form-urlencoded')) {
    const fields = Object.entries(body);
    // Nested objects came from an "extended" parser whose encoding we would only guess at.
    if (!fields.every(([, value]) => typeof value === 'string')) return 'unavailable';
    return Buffer.from(new URLSearchParams(fields as [string, string][]).toString());
  }
  return 'unavailable';
}

/**
 * The body to send when a body parser mounted before the proxy has already read the request
 * stream of a request that had one: rebuilt from `req.body`, or `'unavailable'` when it cannot
 * be rebuilt faithfully.
 */
export function recoverConsumedBody(req: ParsedRequest): HeldBody | 'unavailable' {
  const { body } = req;
  if (Buffer.isBuffer(body)) return rebuilt(body);
  if (typeof body === 'string') return rebuilt(Buffer.from(body));
  if (typeof body !== 'object' || body === null) return 'unavailable';
  const bytes = serialise(body, req.headers['content-type']?.toLowerCase() ?? '');
  return bytes === 'unavailable' ? bytes : rebuilt(bytes);
}
