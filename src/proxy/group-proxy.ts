import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { sendAmpError } from '../errors.js';
import { traceOf } from '../observability/events.js';
import type { RewriteSpec } from '../provider/response-rewriter.js';
import { writeForwardBody, type ForwardBody } from './request-body.js';
import { forwardResponse } from './response.js';

/**
 * Where a request goes and how long the upstream may stay silent: taken from the options the
 * request started with, so that a `reload` never sends one request half by the old options.
 */
export interface Destination {
  readonly upstreamBase: string;
  readonly timeoutMs: number;
}

/**
 * One http-proxy-middleware instance of a route group, created once and kept across reloads:
 * each instance subscribes to its server's `close` event, so one per reload would pile up.
 */
export interface GroupProxy {
  /** Forwards `req` as it now stands: `req.url` and `req.headers` are already the upstream's. */
  web(
    req: IncomingMessage,
    res: ServerResponse,
    destination: Destination,
    body: ForwardBody | undefined,
    rewrite: RewriteSpec | undefined,
  ): void;
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, destination: Destination): void;
}

const UPSTREAM_TIMEOUT = 'AMP_UPSTREAM_TIMEOUT';
const destinations = new WeakMap<IncomingMessage, Destination>();
const forwardBodies = new WeakMap<IncomingMessage, ForwardBody>();
const rewrites = new WeakMap<IncomingMessage, RewriteSpec>();
/** The upstream end of each tunnel, so that shutdown can close a tunnel cleanly. */
const upstreamSockets = new WeakMap<Duplex, Socket>();
/** A server-to-client WebSocket close frame with status 1001, "going away". */
const GOING_AWAY_FRAME = Buffer.from([0x88, 0x02, 0x03, 0xe9]);
const TUNNEL_CLOSE_GRACE_MS = 1000;

/**
 * Ends a WebSocket tunnel with close code 1001: the upstream side is detached first, so the
 * close frame cannot land inside a frame the upstream was still sending.
 */
export function endTunnel(socket: Duplex): void {
  const upstream = upstreamSockets.get(socket);
  if (upstream) {
    upstream.unpipe(socket);
    socket.unpipe(upstream);
    upstream.destroy();
  }
  // Keep reading, so the client's closing handshake and hang-up are seen and the socket closes.
  socket.resume();
  socket.end(GOING_AWAY_FRAME);
  // The client should answer the close and hang up; one that does not is cut off.
  setTimeout(() => socket.destroy(), TUNNEL_CLOSE_GRACE_MS).unref();
}

function timeoutError(): Error {
  return Object.assign(new Error('upstream timed out'), { code: UPSTREAM_TIMEOUT });
}

function isServerResponse(target: ServerResponse | Socket): target is ServerResponse {
  return 'writeHead' in target;
}

function timeoutOf(req: IncomingMessage): number {
  return destinations.get(req)!.timeoutMs;
}

function onProxyReq(proxyReq: ClientRequest, req: IncomingMessage, res: ServerResponse): void {
  // An abandoned LLM call keeps billing: stop the upstream as soon as the client is gone.
  // http-proxy only reacts to `aborted`, which Node no longer emits once the body was read.
  res.once('close', () => {
    if (!res.writableFinished) proxyReq.destroy();
  });
  proxyReq.setTimeout(timeoutOf(req), () => proxyReq.destroy(timeoutError()));
  const body = forwardBodies.get(req);
  if (body) writeForwardBody(proxyReq, body);
}

/** An upgrade the upstream never answers must not hold the client socket forever. */
function onProxyReqWs(proxyReq: ClientRequest, req: IncomingMessage, socket: Duplex): void {
  proxyReq.setTimeout(timeoutOf(req), () => proxyReq.destroy(timeoutError()));
  proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket) =>
    upstreamSockets.set(socket, upstream),
  );
}

function onProxyRes(stripCors: boolean) {
  return (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void => {
    // A reset mid-stream ends the piped source without `end`; without this the client would hang.
    proxyRes.once('close', () => {
      if (proxyRes.complete || res.destroyed) return;
      traceOf(req)?.failed('upstream-error');
      res.destroy();
    });
    forwardResponse(proxyRes, req, res, stripCors, rewrites.get(req));
  };
}

function onError(error: Error, req: IncomingMessage, target: ServerResponse | Socket): void {
  if (!isServerResponse(target)) {
    target.destroy();
    return;
  }
  // A client that went away is not an upstream failure: there is nobody to answer.
  if (req.socket.destroyed || target.destroyed || target.writableEnded) return;
  const timedOut = (error as NodeJS.ErrnoException).code === UPSTREAM_TIMEOUT;
  traceOf(req)?.failed(timedOut ? 'timeout' : 'upstream-error');
  sendAmpError(target, timedOut ? 'amp_upstream_timeout' : 'amp_upstream_proxy_error');
}

export function createGroupProxy(agent: Agent, stripCors: boolean): GroupProxy {
  const middleware = createProxyMiddleware<IncomingMessage, ServerResponse>({
    // Required by the library; every request's own destination replaces it through `router`.
    target: 'http://amp-upstream.invalid',
    router: (req) => destinations.get(req)!.upstreamBase,
    changeOrigin: true,
    agent,
    // Our paths are already clean and relative; skipping url.parse keeps them byte for byte.
    toProxy: true,
    xfwd: false,
    selfHandleResponse: true,
    // The default plugins log to the console and answer errors in plain text; ours answer JSON.
    ejectPlugins: true,
    plugins: [
      (proxyServer) => {
        proxyServer.on('proxyReq', onProxyReq);
        proxyServer.on('proxyReqWs', onProxyReqWs);
        proxyServer.on('proxyRes', onProxyRes(stripCors));
        proxyServer.on('error', onError);
      },
    ],
  });
  return {
    web(req, res, destination, body, rewrite) {
      destinations.set(req, destination);
      if (body) forwardBodies.set(req, body);
      if (rewrite) rewrites.set(req, rewrite);
      void middleware(req, res, () => sendAmpError(res, 'amp_upstream_proxy_error'));
    },
    upgrade(req, socket, head, destination) {
      destinations.set(req, destination);
      middleware.upgrade(req, socket, head);
    },
  };
}
