import type { IncomingMessage } from 'node:http';
import {
  startWebSocketUpstream,
  type FakeWebSocketUpstream,
  type UpstreamHandler,
  type WebSocketUpstreamOptions,
} from './upstream.js';

/** The actor token a fake edge expects unless told otherwise (shaped like Amp's public ones). */
export const EDGE_ACTOR_TOKEN = 'pk_fakeEdgeActorToken0001';

/** Why the fake edge refuses an actor request, as Amp's edge names it. */
export const GUARD_MISSING = 'guard.missing_header';
export const GUARD_INVALID = 'guard.invalid_token';

export interface AmpEdgeOptions {
  /** The token actor requests must carry. Defaults to `EDGE_ACTOR_TOKEN`. */
  actorToken?: string;
  /** Serves what the edge lets through (`/api/**`, and actor requests with the token). */
  handler?: UpstreamHandler;
  /** Serves the actor WebSockets the guard lets through (e.g. `startThreadActor().serve`); they echo without it. */
  serveActor?: WebSocketUpstreamOptions['serveSocket'];
  /** Serve HTTPS and WSS with this key and certificate. */
  tls?: WebSocketUpstreamOptions['tls'];
}

export type FakeAmpEdge = FakeWebSocketUpstream;

function presentedToken(req: IncomingMessage, isUpgrade: boolean): string | undefined {
  const fromQuery = new URL(req.url ?? '/', 'http://edge').searchParams.get('rvt-token') ?? undefined;
  const header = req.headers['x-rivet-token'];
  return fromQuery ?? (isUpgrade || typeof header !== 'string' ? undefined : header);
}

function guardRefusal(req: IncomingMessage, token: string, isUpgrade: boolean): string | undefined {
  if (!(req.url ?? '').toLowerCase().startsWith('/actors')) return undefined;
  const presented = presentedToken(req, isUpgrade);
  if (presented === undefined) return GUARD_MISSING;
  return presented === token ? undefined : GUARD_INVALID;
}

const echo: UpstreamHandler = (_req, res, recorded) => {
  const body = JSON.stringify({ ok: true, url: recorded.url });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

/**
 * A fake Amp edge that enforces what the production one does with actor requests: without the
 * actor token (`rvt-token` in the query; on plain HTTP an `x-rivet-token` header also counts),
 * a WebSocket is accepted (101) and then closed with code 1008 and the guard's reason, and an
 * HTTP request is refused with `400` and the guard's error. Everything it lets through goes to
 * `handler`; WebSockets it serves go to `serveActor`, or echo, as `startWebSocketUpstream`'s do.
 */
export function startAmpEdge({
  actorToken = EDGE_ACTOR_TOKEN,
  handler = echo,
  serveActor,
  tls,
}: AmpEdgeOptions = {}) {
  const guarded: UpstreamHandler = (req, res, recorded) => {
    const refusal = guardRefusal(req, actorToken, false);
    if (refusal === undefined) return handler(req, res, recorded);
    const [group, code] = refusal.split('.') as [string, string];
    const body = JSON.stringify({ group, code, message: `actor request refused: ${refusal}` });
    res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  return startWebSocketUpstream(guarded, {
    closeAfterUpgrade: (req) => guardRefusal(req, actorToken, true),
    ...(serveActor ? { serveSocket: serveActor } : {}),
    ...(tls ? { tls } : {}),
  });
}
