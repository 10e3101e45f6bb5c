import { request as httpRequest, type RequestListener, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { upstreamFailureCause } from '../index.js';
import type { AmpMetrics, AmpMiddleware, LoadedAmpConfig } from '../index.js';

const READY_PROBE_TIMEOUT_MS = 3000;

function sendJson(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Whether the upstream answers at all (any HTTP status counts, since the gateway only forwards),
 * and if not, why: the error code a request would fail with, as in the request log.
 */
function probeUpstream(upstream: string): Promise<{ ready: true } | { ready: false; cause: string }> {
  return new Promise((resolve) => {
    const request = upstream.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(upstream, { method: 'HEAD', timeout: READY_PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve({ ready: true });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (error) => resolve({ ready: false, cause: upstreamFailureCause(error) }));
    req.end();
  });
}

async function answerReadiness(res: ServerResponse, upstream: string): Promise<void> {
  const probe = await probeUpstream(upstream);
  if (probe.ready) sendJson(res, 200, { status: 'ready' });
  else sendJson(res, 503, { status: 'upstream unreachable', cause: probe.cause });
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

/**
 * The gateway's own routes (health, readiness, metrics) and then the Amp router; anything else is
 * a JSON 404. `current` is read per request: a reload changes the upstream and the metrics path.
 */
export function gatewayRoutes(
  router: AmpMiddleware,
  metrics: AmpMetrics | undefined,
  current: () => LoadedAmpConfig,
): RequestListener {
  return (req, res) => {
    const path = req.url?.split('?', 1)[0];
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      void answerReadiness(res, current().effective.upstream);
      return;
    }
    if (metrics && path === current().gateway.metricsPath) {
      void serveMetrics(res, metrics);
      return;
    }
    router(req, res, () => sendJson(res, 404, { error: 'not_found' }));
  };
}
