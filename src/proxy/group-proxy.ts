import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyMiddleware, type Options, type RequestHandler } from 'http-proxy-middleware';
import { rejectUpgrade, sendAmpError, upstreamFailureCause } from '../errors.js';
import { isCorsHeader } from '../access/cors.js';
import { openingFor } from '../egress/waiting-client.js';
import type { OutboundRequest } from './outbound-request.js';
import { forwardResponse } from './response.js';
import { forwardRewrittenReply } from './json-reply.js';

/**
 * The http-proxy-middleware instances of one route group, created once and kept across reloads
 * (each instance subscribes to its server's `close` event, so one per reload would pile up).
 * Each request carries its own destination, headers and body in its `OutboundRequest`.
 */
export interface GroupProxy {
  web(outbound: OutboundRequest, res: ServerResponse): void;
  upgrade(outbound: OutboundRequest, socket: Socket, head: Buffer): void;
  /** Closes idle upstream connections; those in use close when their request ends. */
  closeIdle(): void;
}

const UPSTREAM_TIMEOUT = 'AMP_UPSTREAM_TIMEOUT';
/** The upstream end of each tunnel, so that shutdown can close a tunnel cleanly. */
const upstreamSockets = new WeakMap<Duplex, Socket>();
/** A server-to-client WebSocket close frame with status 1001, "going away". */
const GOING_AWAY_FRAME = Buffer.from([0x88, 0x02, 0x03, 0xe9]);
const TUNNEL_CLOSE_GRACE_MS = 1000;
/** Response headers that describe the upstream connection, not the answer. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * Ends a WebSocket tunnel with close code 1001: the upstream side is detached first, so the
 * close frame cannot land inside a frame the upstream was still sending. Resolves once the
 * tunnel is closed, so that its close is logged and counted before a shutdown is over.
 */
export function endTunnel(socket: Duplex): Promise<void> {
  const closed = socket.destroyed
    ? Promise.resolve()
    : new Promise<void>((resolve) => socket.once('close', () => resolve()));
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
  return closed;
}

function timeoutError(): Error {
  return Object.assign(new Error('upstream timed out'), { code: UPSTREAM_TIMEOUT });
}

function invalidStatusError(): Error {
  return Object.assign(new Error('invalid upstream status'), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
}

function isServerResponse(target: ServerResponse | Socket): target is ServerResponse {
  return 'writeHead' in target;
}

function onProxyReq(proxyReq: ClientRequest, outbound: OutboundRequest, res: ServerResponse): void {
  // An abandoned LLM call keeps billing: stop the upstream as soon as the client is gone.
  // http-proxy only reacts to `aborted`, which Node no longer emits once the body was read.
  // This hook runs once a socket is assigned, before anything is written to it: a client that
  // left while the connection was made (already closed, so no `close` to come) sends nothing.
  if (res.destroyed) {
    proxyReq.destroy();
    return;
  }
  res.once('close', () => {
    if (!res.writableFinished) proxyReq.destroy();
  });
  proxyReq.setTimeout(outbound.destination.timeoutMs, () => proxyReq.destroy(timeoutError()));
  proxyReq.once('response', (proxyRes: IncomingMessage) => {
    if (proxyReq.writableFinished) return;
    // An answer before the whole body was sent leaves unsent bytes the upstream may still be
    // waiting for, or may read as the next request: that connection is never pooled, and once
    // the answer is through, the rest of the body is not sent at all.
    proxyReq.shouldKeepAlive = false;
    proxyRes.once('end', () => proxyReq.destroy());
  });
}

function onProxyRes(stripCors: boolean) {
  return (proxyRes: IncomingMessage, outbound: OutboundRequest, res: ServerResponse): void => {
    // A reset mid-stream ends the piped source without `end`; without this the client would hang.
    proxyRes.once('close', () => {
      if (proxyRes.complete || res.destroyed) return;
      outbound.trace?.failed('upstream-error', 'reset');
      res.destroy();
    });
    // Node's parser reads any three digits, but `writeHead` (called later, in stream handlers)
    // throws on a status below 100: such an answer is the upstream failing.
    const status = proxyRes.statusCode ?? 0;
    if (status < 100) {
      proxyRes.destroy();
      return onError(invalidStatusError(), outbound, res);
    }
    try {
      if (outbound.reply) forwardRewrittenReply(proxyRes, outbound.method, res, stripCors, outbound.reply);
      else forwardResponse(proxyRes, outbound.method, res, stripCors, outbound.rewrite);
    } catch (error) {
      // http-proxy's listener is outside the pipeline's boundary: a throw here would end the process.
      proxyRes.destroy();
      onError(error as Error, outbound, res);
    }
  };
}

/**
 * The upstream's answer to an upgrade it refused, passed on without CORS permissions on
 * identity routes; the connection it came on is closed with it.
 */
function answerRefusedUpgrade(
  upstreamRes: IncomingMessage,
  proxyReq: ClientRequest,
  socket: Duplex,
  stripCors: boolean,
): void {
  let head = `HTTP/1.1 ${upstreamRes.statusCode ?? 502} ${upstreamRes.statusMessage ?? ''}\r\n`;
  const raw = upstreamRes.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || (stripCors && isCorsHeader(name))) continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  // Without a length the body ends with the connection, whatever framing the upstream used.
  socket.write(`${head}Connection: close\r\n\r\n`);
  upstreamRes.pipe(socket);
  upstreamRes.once('close', () => proxyReq.destroy());
}

function onProxyReqWs(stripCors: boolean) {
  return (proxyReq: ClientRequest, outbound: OutboundRequest, socket: Duplex): void => {
    // An upgrade the upstream never answers must not hold the client socket forever.
    proxyReq.setTimeout(outbound.destination.timeoutMs, () => proxyReq.destroy(timeoutError()));
    proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket) =>
      upstreamSockets.set(socket, upstream),
    );
    // Whenever the client's socket closes (before the upstream answered, or once the tunnel is
    // open), the upstream side goes too: http-proxy leaves both open otherwise.
    socket.once('close', () => {
      proxyReq.destroy();
      upstreamSockets.get(socket)?.destroy();
    });
    const ours = (upstreamRes: IncomingMessage): void =>
      answerRefusedUpgrade(upstreamRes, proxyReq, socket, stripCors);
    proxyReq.once('response', ours);
    // http-proxy adds its own `response` listener right after this hook, which would copy the
    // upstream's headers verbatim; no response can arrive before the next tick.
    process.nextTick(() => {
      for (const listener of proxyReq.listeners('response')) {
        if (listener !== ours) proxyReq.off('response', listener as () => void);
      }
    });
  };
}

function onError(error: Error, outbound: OutboundRequest, target: ServerResponse | Socket): void {
  const errorCode = (error as NodeJS.ErrnoException).code;
  const timedOut = errorCode === UPSTREAM_TIMEOUT || errorCode === 'PROXY_TIMEOUT';
  const code = timedOut ? 'amp_upstream_timeout' : 'amp_upstream_proxy_error';
  if (!isServerResponse(target)) {
    // Once the tunnel is open, an HTTP answer would land inside the WebSocket stream.
    if (upstreamSockets.has(target)) target.destroy();
    else rejectUpgrade(target, code);
    return;
  }
  // A client that went away is not an upstream failure: there is nobody to answer.
  if (outbound.client.socket.destroyed || target.destroyed || target.writableEnded) return;
  outbound.trace?.failed(
    timedOut ? 'timeout' : 'upstream-error',
    errorCode === UPSTREAM_TIMEOUT ? 'timeout' : upstreamFailureCause(error),
  );
  sendAmpError(target, code);
}

type Engine = RequestHandler<OutboundRequest, ServerResponse>;

/**
 * An http-proxy-middleware instance and the agent it opens upstream connections with. The agent
 * is read from `options` each time a request starts (http-proxy-middleware copies its options per
 * request), so a new way of connecting swaps the agent, not the instance: each instance subscribes
 * to its server's `close` event, and one per change would pile up.
 */
interface EngineWithAgent {
  readonly engine: Engine;
  readonly options: { agent: Agent };
}

function createEngine(agent: Agent, stripCors: boolean): EngineWithAgent {
  const options: Options<OutboundRequest, ServerResponse> & { agent: Agent } = {
    // Required by the library; every request's own destination replaces it through `router`.
    target: 'http://amp-upstream.invalid',
    router: (outbound) => outbound.destination.upstreamBase,
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
        proxyServer.on('proxyReqWs', onProxyReqWs(stripCors));
        // http-proxy's typings give the upstream response the request's type.
        proxyServer.on('proxyRes', onProxyRes(stripCors) as unknown as () => void);
        proxyServer.on('error', onError);
      },
    ],
  };
  return { engine: createProxyMiddleware<OutboundRequest, ServerResponse>(options), options };
}

function closeIdleConnections(agent: Agent): void {
  // Read by Node each time a socket is released; @types/node does not declare it.
  (agent as Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) socket.destroy();
  }
}

/**
 * The proxies of one group. Its keep-alive connections serve only this group, so a connection
 * that carried the server key never carries another group's request. Upgrades get a connection
 * of their own that is never pooled: one the upstream refused cannot serve a later request.
 * Agents are made by the request's way of connecting (`UpstreamConnection`): once a reload
 * changes it, new agents are made and the previous ones' idle connections close, while their
 * requests in flight finish on their own.
 */
export function createGroupProxy(stripCors: boolean): GroupProxy {
  let connectionKey: string | undefined;
  const pooledEngines = new Map<'http:' | 'https:', EngineWithAgent>();
  const upgradeEngines = new Map<'http:' | 'https:', EngineWithAgent>();
  const everyEngine = () => [...pooledEngines.values(), ...upgradeEngines.values()];
  const engineFor = ({ connection, protocol }: OutboundRequest['destination'], pooled: boolean): Engine => {
    if (connection.key !== connectionKey) {
      connectionKey = connection.key;
      for (const [engines, enginesArePooled] of [
        [pooledEngines, true],
        [upgradeEngines, false],
      ] as const) {
        for (const [engineProtocol, { options }] of engines) {
          closeIdleConnections(options.agent);
          options.agent = connection.createAgent(engineProtocol, enginesArePooled);
        }
      }
    }
    const engines = pooled ? pooledEngines : upgradeEngines;
    let entry = engines.get(protocol);
    if (!entry) {
      entry = createEngine(connection.createAgent(protocol, pooled), stripCors);
      engines.set(protocol, entry);
    }
    return entry.engine;
  };
  return {
    web(outbound, res) {
      const engine = engineFor(outbound.destination, true);
      const start = () => void engine(outbound, res, () => sendAmpError(res, 'amp_upstream_proxy_error'));
      // Through a proxy, the tunnel is opened before the engine tells us of the request: it finds
      // its client by async context (paid only there: direct connections get a socket at once).
      if (outbound.destination.connection.proxy) openingFor(res, start);
      else start();
    },
    upgrade(outbound, socket, head) {
      const engine = engineFor(outbound.destination, false);
      // Typed for Node's request by http-proxy-middleware; it reads only what OutboundRequest has.
      (engine.upgrade as unknown as (req: OutboundRequest, socket: Socket, head: Buffer) => void)(
        outbound,
        socket,
        head,
      );
    },
    closeIdle() {
      for (const { options } of everyEngine()) closeIdleConnections(options.agent);
    },
  };
}
