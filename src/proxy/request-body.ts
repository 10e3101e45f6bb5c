import type { ClientRequest, IncomingMessage } from 'node:http';

type ParsedRequest = IncomingMessage & { body?: unknown };

/**
 * What to send upstream when a body parser mounted before the proxy has already read the
 * request stream: `undefined` when the stream is untouched (it is then piped as received),
 * a buffer rebuilt from `req.body`, or `'unavailable'` when the body cannot be rebuilt.
 */
export function recoverConsumedBody(req: ParsedRequest): Buffer | 'unavailable' | undefined {
  if (!req.readableEnded) return undefined;
  const declaredLength = req.headers['content-length'];
  if (declaredLength === '0' || (declaredLength === undefined && !req.headers['transfer-encoding'])) {
    return undefined;
  }
  const { body } = req;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  if (typeof body !== 'object' || body === null) return 'unavailable';
  const type = req.headers['content-type']?.toLowerCase() ?? '';
  if (type.includes('json')) return Buffer.from(JSON.stringify(body));
  if (type.includes('application/x-www-form-urlencoded')) {
    const fields = Object.entries(body);
    // Nested objects came from an "extended" parser whose encoding we would only guess at.
    if (!fields.every(([, value]) => typeof value === 'string')) return 'unavailable';
    return Buffer.from(new URLSearchParams(fields as [string, string][]).toString());
  }
  return 'unavailable';
}

/**
 * Sends a rebuilt body. Parsers inflate gzip bodies, so the rebuilt one is plain: its headers
 * must say so, or the upstream would try to inflate JSON.
 */
export function writeRecoveredBody(proxyReq: ClientRequest, body: Buffer): void {
  proxyReq.removeHeader('content-encoding');
  proxyReq.removeHeader('transfer-encoding');
  proxyReq.setHeader('content-length', body.length);
  proxyReq.write(body);
}
