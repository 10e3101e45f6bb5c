import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { AMP_ERRORS, type AmpMetrics, type AmpMiddleware, type LoadedAmpConfig } from '../index.js';
import type { Drain } from './shutdown.js';

function sendJson(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function answerReadiness(res: ServerResponse, router: AmpMiddleware, drain: Drain): Promise<void> {
  if (drain.draining) return sendJson(res, 503, { status: 'draining' });
  const check = await router.checkUpstream();
  if (check.ready) sendJson(res, 200, { status: 'ready' });
  else sendJson(res, 503, { status: 'upstream unreachable', cause: check.cause });
}

async function serveMetrics(res: ServerResponse, metrics: AmpMetrics): Promise<void> {
  try {
    const text = await metrics.registry.metrics();
    res.writeHead(200, { 'content-type': metrics.registry.contentType });
    res.end(text);
  } catch {
    // A failing collector must not become an unhandled rejection that ends the process.
    sendJson(res, 500, { error: 'metrics_unavailable' });
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Whether a request carries the usage token: compared by digest, in constant time. */
export function usageTokenCheck(token: string): (req: IncomingMessage) => boolean {
  const expected = digest(`Bearer ${token}`);
  return (req) => {
    const presented = req.headers.authorization;
    return typeof presented === 'string' && timingSafeEqual(digest(presented), expected);
  };
}

/**
 * The gateway's own routes (health, readiness, metrics, usage) and then the Amp router; anything else is
 * a JSON 404. `current` is read per request: a reload changes the upstream and the metrics path.
 */
export function gatewayRoutes(
  router: AmpMiddleware,
  metrics: AmpMetrics | undefined,
  current: () => LoadedAmpConfig,
  drain: Drain,
  mayReadUsage: ((req: IncomingMessage) => boolean) | undefined,
): RequestListener {
  return (req, res) => {
    drain.track(res);
    const path = req.url?.split('?', 1)[0];
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      void answerReadiness(res, router, drain);
      return;
    }
    if (metrics && path === current().gateway.metricsPath) {
      void serveMetrics(res, metrics);
      return;
    }
    if (mayReadUsage && path === current().gateway.usagePath) {
      if (!mayReadUsage(req)) return sendJson(res, 401, { error: 'unauthorized' });
      void router.usageAcrossReplicas().then((report) => sendJson(res, 200, report ?? {}));
      return;
    }
    router(req, res, () => sendJson(res, 404, { error: 'not_found' }));
  };
}

/**
 * Node hands a CONNECT request to the server's `connect` event, never to the request listener,
 * and with no listener drops the connection without a word. The gateway is no forward proxy:
 * every CONNECT gets the 405 its Amp routes answer TRACE with.
 */
export function refuseConnect(socket: Duplex): void {
  const { status, message, allow } = AMP_ERRORS.amp_method_not_allowed;
  const body = JSON.stringify({ error: 'amp_method_not_allowed', message });
  // Node leaves a `connect` socket without an error listener: a client reset must not crash us.
  socket.on('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nAllow: ${allow}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
