import type { ClientRequest, IncomingMessage } from 'node:http';

type ParsedRequest = IncomingMessage & { body?: unknown };

/** A body to send upstream in place of a request stream that was already read. */
export interface ForwardBody {
  readonly bytes: Buffer;
  /** The request's own bytes, still in its `Content-Encoding`; otherwise a plain rebuilt body. */
  readonly original: boolean;
}

const rebuilt = (bytes: Buffer): ForwardBody => ({ bytes, original: false });

/**
 * What to send upstream when a body parser mounted before the proxy has already read the
 * request stream: `undefined` when the stream is untouched (it is then piped as received),
 * a body rebuilt from `req.body`, or `'unavailable'` when the body cannot be rebuilt.
 */
export function recoverConsumedBody(req: ParsedRequest): ForwardBody | 'unavailable' | undefined {
  if (!req.readableEnded) return undefined;
  const declaredLength = req.headers['content-length'];
  if (declaredLength === '0' || (declaredLength === undefined && !req.headers['transfer-encoding'])) {
    return undefined;
  }
  const { body } = req;
  if (Buffer.isBuffer(body)) return rebuilt(body);
  if (typeof body === 'string') return rebuilt(Buffer.from(body));
  if (typeof body !== 'object' || body === null) return 'unavailable';
  const type = req.headers['content-type']?.toLowerCase() ?? '';
  if (type.includes('json')) return rebuilt(Buffer.from(JSON.stringify(body)));
  if (type.includes('application/x-www-form-urlencoded')) {
    const fields = Object.entries(body);
    // Nested objects came from an "extended" parser whose encoding we would only guess at.
    if (!fields.every(([, value]) => typeof value === 'string')) return 'unavailable';
    return rebuilt(Buffer.from(new URLSearchParams(fields as [string, string][]).toString()));
  }
  return 'unavailable';
}

/**
 * Sends a body read before the proxy ran. A rebuilt body is plain (parsers inflate gzip), so its
 * headers must say so, or the upstream would try to inflate JSON.
 */
export function writeForwardBody(proxyReq: ClientRequest, body: ForwardBody): void {
  if (!body.original) proxyReq.removeHeader('content-encoding');
  proxyReq.removeHeader('transfer-encoding');
  proxyReq.setHeader('content-length', body.bytes.length);
  proxyReq.write(body.bytes);
}
