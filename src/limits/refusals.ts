import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { AMP_ERRORS, sendAmpError } from '../errors.js';
import { isAtOrUnder } from '../routing/route-groups.js';
import type { AmpErrorCode } from '../types.js';

/** RFC 6455: the GUID a handshake's key is hashed with. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** RFC 6455 close code: the endpoint refuses because of its policy. */
const POLICY_VIOLATION = 1008;

/**
 * A limit's refusal of an HTTP request, in the shape the Amp CLI shows for that route: `429` with
 * `Retry-After` everywhere, and on `/api/internal` (a JSON-RPC-like API whose clients read `ok`
 * and `error`) the body `{"ok":false,"error":{"code","message"}}` instead of the usual JSON error.
 */
export function sendLimitRefusal(
  res: ServerResponse,
  ampPath: string,
  code: AmpErrorCode,
  retryAfterSeconds: number | undefined,
): void {
  if (retryAfterSeconds !== undefined && !res.headersSent) res.setHeader('retry-after', retryAfterSeconds);
  if (!isAtOrUnder(ampPath.toLowerCase(), '/api/internal') || res.headersSent || res.destroyed) {
    sendAmpError(res, code);
    return;
  }
  const body = JSON.stringify({ ok: false, error: { code, message: AMP_ERRORS[code].message } });
  res.writeHead(AMP_ERRORS[code].status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/**
 * A limit's refusal of an agent WebSocket: the handshake is accepted and the socket closed at once
 * with 1008 and the code as reason, which the Amp CLI reports, where a refused handshake would
 * read as a network failure to retry.
 */
export function closeWithPolicyViolation(req: IncomingMessage, socket: Duplex, code: AmpErrorCode): void {
  if (socket.destroyed) return;
  const key = req.headers['sec-websocket-key'];
  const protocol = req.headers['sec-websocket-protocol']?.split(',')[0]?.trim();
  if (typeof key !== 'string') {
    socket.destroy();
    return;
  }
  const accept = createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
  const reason = Buffer.from(code);
  const payload = Buffer.alloc(2 + reason.length);
  payload.writeUInt16BE(POLICY_VIOLATION, 0);
  reason.copy(payload, 2);
  // An unmasked close frame (servers never mask): FIN + opcode 8, then the payload length (< 126).
  const frame = Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  socket.end(
    Buffer.concat([
      Buffer.from(
        'HTTP/1.1 101 Switching Protocols\r\n' +
          'Upgrade: websocket\r\n' +
          'Connection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept}\r\n` +
          (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
          '\r\n',
        'latin1',
      ),
      frame,
    ]),
  );
  // The client answers the close frame and ends its side: read that to the end, or the socket
  // never closes (no 'close', so no websocket-close event, and a half-closed socket held).
  socket.resume();
}
