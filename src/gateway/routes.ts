import type { RequestListener, ServerResponse } from 'node:http';
import type { AmpMetrics, AmpMiddleware, LoadedAmpConfig } from '../index.js';

function sendJson(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function answerReadiness(res: ServerResponse, router: AmpMiddleware): Promise<void> {
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
      void answerReadiness(res, router);
      return;
    }
    if (metrics && path === current().gateway.metricsPath) {
      void serveMetrics(res, metrics);
      return;
    }
    router(req, res, () => sendJson(res, 404, { error: 'not_found' }));
  };
}
