import type { AmpMetrics, PromClientLike, PromRegistryLike } from '../types.js';
import { clientLabel, createdThread } from './usage.js';

/** Sources that mean the gateway spent a server-side key rather than the user's own. */
const SERVER_KEY_SOURCES = new Set(['config', 'function', 'env', 'secrets-file']);
// LLM calls run long: buckets reach well past a minute.
const DURATION_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300];

/** A close code as a label: the codes RFC 6455 allows on the wire, anything else one value, so the series stay few. */
function closeCodeLabel(code: number): string {
  return code >= 1000 && code <= 4999 ? String(code) : 'invalid';
}

/**
 * Prometheus metrics for every request and WebSocket: requests and durations by group and
 * status, in-flight requests, open WebSockets, upstream errors, and calls that spent a
 * server-side key (the answer to "why is this still using my Amp credits?"). Long because every
 * metric is declared next to the event that updates it.
 *
 * `client` is the host's own `prom-client` module (`import * as promClient from 'prom-client'`);
 * `registry` defaults to a new `client.Registry`, so pass `client.register` to use the global one.
 */
export function createAmpMetrics(
  client: PromClientLike,
  { registry = new client.Registry() }: { registry?: PromRegistryLike } = {},
): AmpMetrics {
  const registers = [registry];
  const requests = new client.Counter({
    name: 'amp_proxy_requests_total',
    help: 'Finished requests by route group, status and outcome.',
    labelNames: ['group', 'status', 'outcome'],
    registers,
  });
  const duration = new client.Histogram({
    name: 'amp_proxy_request_duration_seconds',
    help: 'Request duration, from arrival to the end of the response, by route group.',
    labelNames: ['group'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const inFlight = new client.Gauge({
    name: 'amp_proxy_requests_in_flight',
    help: 'Requests (including open streams) being proxied now, by route group.',
    labelNames: ['group'],
    registers,
  });
  const websockets = new client.Gauge({
    name: 'amp_proxy_websockets_open',
    help: 'Open WebSocket tunnels by route group.',
    labelNames: ['group'],
    registers,
  });
  const websocketEnds = new client.Counter({
    name: 'amp_proxy_websockets_total',
    help: 'Finished WebSocket upgrades (opened or not) by route group and outcome.',
    labelNames: ['group', 'outcome'],
    registers,
  });
  const upstreamCloses = new client.Counter({
    name: 'amp_proxy_websocket_upstream_closes_total',
    help: 'Close frames the upstream sent through a WebSocket tunnel, by route group and close code.',
    labelNames: ['group', 'code'],
    registers,
  });
  const upstreamErrors = new client.Counter({
    name: 'amp_proxy_upstream_errors_total',
    help: 'Requests and WebSocket upgrades that failed at the upstream (unreachable, reset, timeout), by route group and outcome.',
    labelNames: ['group', 'outcome'],
    registers,
  });
  const serverKeySpend = new client.Counter({
    name: 'amp_proxy_server_key_requests_total',
    help: 'Requests forwarded with a server-side Amp key (not the user’s own), by route group and key source.',
    labelNames: ['group', 'source'],
    registers,
  });

  // Usage per client, labelled by configured or resolved names only (`unnamed` for the rest).
  const clientRequests = new client.Counter({
    name: 'amp_proxy_client_requests_total',
    help: 'Finished requests and WebSocket upgrades by client name, route group and status.',
    labelNames: ['client', 'group', 'status'],
    registers,
  });
  const clientThreads = new client.Counter({
    name: 'amp_proxy_client_threads_created_total',
    help: 'Threads created (POST /api/thread-actors answered 2xx) by client name.',
    labelNames: ['client'],
    registers,
  });
  const clientSessions = new client.Counter({
    name: 'amp_proxy_client_sessions_total',
    help: 'Agent WebSocket sessions opened by client name.',
    labelNames: ['client'],
    registers,
  });
  const clientSessionSeconds = new client.Counter({
    name: 'amp_proxy_client_session_seconds_total',
    help: 'Time agent WebSocket sessions stayed open, by client name (counted when they close).',
    labelNames: ['client'],
    registers,
  });
  const clientBytes = new client.Counter({
    name: 'amp_proxy_client_bytes_total',
    help: 'Bytes from the client (up: bodies, frames) and to it (down: responses, frames), by client name.',
    labelNames: ['client', 'direction'],
    registers,
  });
  const clientLastSeen = new client.Gauge({
    name: 'amp_proxy_client_last_seen_seconds',
    help: 'Unix time of the last request or WebSocket event of each client name.',
    labelNames: ['client'],
    registers,
  });
  const clientActivity = (
    name: string | undefined,
    group: string,
    status: number | undefined,
    up: number,
    down: number,
  ): string => {
    const label = clientLabel(name);
    clientRequests.inc({ client: label, group, status: status === undefined ? 'none' : String(status) });
    if (up > 0) clientBytes.inc({ client: label, direction: 'up' }, up);
    if (down > 0) clientBytes.inc({ client: label, direction: 'down' }, down);
    clientLastSeen.set({ client: label }, Date.now() / 1000);
    return label;
  };

  return {
    registry,
    onProxyEvent(event) {
      switch (event.type) {
        case 'request-start':
          inFlight.inc({ group: event.group });
          return;
        case 'request-end': {
          inFlight.dec({ group: event.group });
          requests.inc({
            group: event.group,
            status: event.status === undefined ? 'none' : String(event.status),
            outcome: event.outcome,
          });
          duration.observe({ group: event.group }, event.durationMs / 1000);
          if (event.outcome === 'upstream-error' || event.outcome === 'timeout') {
            upstreamErrors.inc({ group: event.group, outcome: event.outcome });
          }
          if (event.keySource && SERVER_KEY_SOURCES.has(event.keySource)) {
            serverKeySpend.inc({ group: event.group, source: event.keySource });
          }
          const label = clientActivity(
            event.client,
            event.group,
            event.status,
            event.bytesReceived,
            event.bytesSent,
          );
          if (createdThread(event.method, event.path, event.status)) clientThreads.inc({ client: label });
          return;
        }
        case 'websocket-open':
          websockets.inc({ group: event.group });
          clientSessions.inc({ client: clientLabel(event.client) });
          clientLastSeen.set({ client: clientLabel(event.client) }, Date.now() / 1000);
          return;
        case 'websocket-close': {
          const label = clientActivity(
            event.client,
            event.group,
            event.status,
            event.bytesReceived,
            event.bytesSent,
          );
          if (event.opened) clientSessionSeconds.inc({ client: label }, event.durationMs / 1000);
          if (event.opened) websockets.dec({ group: event.group });
          websocketEnds.inc({ group: event.group, outcome: event.outcome });
          if (event.outcome === 'upstream-error' || event.outcome === 'timeout') {
            upstreamErrors.inc({ group: event.group, outcome: event.outcome });
          }
          if (event.opened && event.upstreamCloseCode !== undefined) {
            upstreamCloses.inc({ group: event.group, code: closeCodeLabel(event.upstreamCloseCode) });
          }
        }
      }
    },
  };
}
