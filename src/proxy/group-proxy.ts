import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyMiddleware, type RequestHandler } from 'http-proxy-middleware';
import { isAnswered, rejectUpgrade, sendAmpError, upstreamFailureCause } from '../errors.js';
import { isCorsHeader } from '../access/cors.js';
import type { UpstreamConnection } from '../egress/upstream-connection.js';
import { openingFor } from '../egress/waiting-client.js';
import type { Destination, OutboundRequest } from './outbound-request.js';
import { forwardResponse } from './response.js';
import { forwardRewrittenReply } from './json-reply.js';
import {
  destroyUpstreamOf,
  isTunnelOpen,
  startWatching,
  tunnelOpened,
  watchUpstreamClose,
} from './tunnels.js';

/**
 * The http-proxy-middleware instances of one route group, created once and kept across reloads
 * (each instance subscribes to its server's `close` event, so one per reload would pile up).
 * Each request carries its own destination, headers and body in its `OutboundRequest`.
 */
export interface GroupProxy {
  web(outbound: OutboundRequest, res: ServerResponse): void;
  upgrade(outbound: OutboundRequest, socket: Socket, head: Buffer): void;
  /**
   * Makes `connection` the way new requests connect (a reload calls it with the connection of
   * its options); a change retires the agents of the previous one.
   */
  connectThrough(connection: UpstreamConnection): void;
  /** Closes idle upstream connections; those in use close when their request ends. */
  closeIdle(): void;
}

const UPSTREAM_TIMEOUT = 'AMP_UPSTREAM_TIMEOUT';

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
  // This hook runs once a socket is assigned, before anything is written to it: a client that
  // left while the connection was made (already closed, so no `close` to come) sends nothing.
  if (res.destroyed) {
    proxyReq.destroy();
    return;
  }
  // Later, httpxy itself destroys the upstream request when the client goes away (an abandoned
  // LLM call keeps billing). Its `proxyTimeout` destroys the request without an error, which would
  // make a silent upstream indistinguishable from a reset (504 against 502): the timeout is ours.
  proxyReq.setTimeout(outbound.destination.timeoutMs, () => proxyReq.destroy(timeoutError()));
  proxyReq.once('response', () => {
    // An answer before the whole body was sent leaves unsent bytes the upstream may still be
    // waiting for, or may read as the next request: that connection is never pooled. (httpxy
    // destroys the request once such an answer is through, but only if the body is still unsent
    // then; a body that finishes in between would hand the connection back to the pool.)
    if (!proxyReq.writableFinished) proxyReq.shouldKeepAlive = false;
  });
}

function onProxyRes(stripCors: boolean) {
  return (proxyRes: IncomingMessage, outbound: OutboundRequest, res: ServerResponse): void => {
    // The request is sent: a long stream need not keep the headers it went with (credentials
    // among them) for as long as it lasts.
    outbound.releaseRequest();
    const trace = outbound.trace;
    // httpxy cuts the client when the upstream resets mid-stream; this says why in the trace.
    if (trace) {
      proxyRes.once('close', () => {
        if (!proxyRes.complete && !res.destroyed) trace.failed('upstream-error', 'reset');
      });
    }
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
      // The engine's listener is outside the pipeline's boundary: a throw here would end the process.
      proxyRes.destroy();
      onError(error as Error, outbound, res);
    }
  };
}

/** Whenever the client's end of an open tunnel closes, the upstream end goes too: the engine leaves it open. */
function closeUpstreamEnd(this: Duplex): void {
  destroyUpstreamOf(this);
}

function onProxyReqWs(stripCors: boolean) {
  return (proxyReq: ClientRequest, outbound: OutboundRequest, socket: Duplex): void => {
    // An upgrade the upstream never answers must not hold the client socket forever. Timed from
    // the moment there is a connection (a tunnel through the egress proxy is timed on its own),
    // and not with the socket's own timer, whose object would stay with the open tunnel.
    let handshake: NodeJS.Timeout | undefined;
    proxyReq.once('socket', () => {
      handshake = setTimeout(() => proxyReq.destroy(timeoutError()), outbound.destination.timeoutMs);
    });
    // Node closes the request once the upstream answered, upgrade or not, and when it fails.
    proxyReq.once('close', () => clearTimeout(handshake));
    // A client that leaves during the handshake takes the upstream request with it.
    const abandon = (): void => void proxyReq.destroy();
    socket.once('close', abandon);
    const trace = outbound.tunnel;
    proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket) => {
      // Nothing of the handshake stays with the tunnel (thousands may be open, most of them
      // idle): neither the listeners that only a handshake needs, nor the requests it was made of.
      proxyReq.removeAllListeners('response');
      socket.off('close', abandon);
      socket.on('close', closeUpstreamEnd);
      outbound.releaseRequest();
      tunnelOpened(socket, upstream);
      trace?.answered(101);
      if (trace) watchUpstreamClose(upstream, ({ code, reason }) => trace.upstreamClosed(code, reason));
    });
    if (!stripCors && !trace) return;
    // httpxy passes a refused upgrade's answer on (hop-by-hop headers dropped, `Connection:
    // close`) from its own `response` listener, which runs after this one: an identity route's
    // answer loses its CORS permissions first.
    proxyReq.once('response', (upstreamRes: IncomingMessage) => {
      trace?.answered(upstreamRes.statusCode ?? 0);
      if (!stripCors) return;
      for (const name of Object.keys(upstreamRes.headers)) {
        if (isCorsHeader(name)) Reflect.deleteProperty(upstreamRes.headers, name);
      }
    });
  };
}

function onError(error: Error, outbound?: OutboundRequest, target?: ServerResponse | Socket): void {
  // httpxy names no request only for a missing target, which `router` always gives.
  if (!outbound || !target) return;
  const errorCode = (error as NodeJS.ErrnoException).code;
  const timedOut = errorCode === UPSTREAM_TIMEOUT || errorCode === 'PROXY_TIMEOUT';
  const code = timedOut ? 'amp_upstream_timeout' : 'amp_upstream_proxy_error';
  const cause = errorCode === UPSTREAM_TIMEOUT ? 'timeout' : upstreamFailureCause(error);
  if (!isServerResponse(target)) {
    // Once the tunnel is open, an HTTP answer would land inside the WebSocket stream.
    if (isTunnelOpen(target)) return void target.destroy();
    // A client that went away is not an upstream failure: there is nobody to answer.
    if (isAnswered(target)) return;
    outbound.tunnel?.failed(timedOut ? 'timeout' : 'upstream-error', cause);
    outbound.tunnel?.rejected(code);
    rejectUpgrade(target, code, undefined, cause);
    return;
  }
  // A client that went away is not an upstream failure: there is nobody to answer.
  if (outbound.socket.destroyed || target.destroyed || target.writableEnded) return;
  outbound.trace?.failed(timedOut ? 'timeout' : 'upstream-error', cause);
  sendAmpError(target, code, undefined, cause);
}

/**
 * What the engine is typed to take. httpxy and http-proxy-middleware read only what an
 * `OutboundRequest` has (method, url, headers, socket, `pipe`, events); the typings ask for more.
 */
type EngineRequest = OutboundRequest & IncomingMessage;
type Engine = RequestHandler<EngineRequest, ServerResponse>;
type Protocol = Destination['protocol'];

/**
 * The agents of one group for one way of connecting (`UpstreamConnection`). Each agent is made
 * once and never changes hands: a request uses the agents of the connection it started with, so
 * one that outlives a reload neither swaps agents back nor touches the new pool.
 */
class ConnectionAgents {
  readonly #agents = new Map<string, Agent>();
  #retired = false;

  constructor(readonly connection: UpstreamConnection) {}

  agent(protocol: Protocol, pooled: boolean): Agent {
    const name = pooled ? protocol : `${protocol} upgrade`;
    let agent = this.#agents.get(name);
    if (!agent) {
      agent = this.connection.createAgent(protocol, pooled);
      if (this.#retired) closeIdleConnections(agent);
      this.#agents.set(name, agent);
    }
    return agent;
  }

  /** Idle connections close now, the others when their request ends: none is pooled again. */
  retire(): void {
    this.#retired = true;
    for (const agent of this.#agents.values()) closeIdleConnections(agent);
  }
}

function closeIdleConnections(agent: Agent): void {
  // Read by Node each time a socket is released; @types/node does not declare it.
  (agent as Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) socket.destroy();
  }
}

/**
 * An http-proxy-middleware instance. http-proxy-middleware copies its options for each request
 * and hands the copy to `router`, so the request's own destination picks both the target and the
 * agent: one instance serves every reload (each subscribes to its server's `close` event, and
 * one per reload would pile up).
 */
function createEngine(
  agentFor: (destination: Destination, pooled: boolean) => Agent,
  pooled: boolean,
  stripCors: boolean,
): Engine {
  return createProxyMiddleware<EngineRequest, ServerResponse>({
    // Required by the library; every request's own destination replaces it through `router`.
    target: 'http://amp-upstream.invalid',
    router: ({ destination }, _res, options) => {
      options.agent = agentFor(destination, pooled);
      return destination.target;
    },
    changeOrigin: true,
    // httpxy splits the path at `?` and joins it to the target's path without parsing or
    // normalising it, so our clean relative paths reach the upstream byte for byte.
    xfwd: false,
    selfHandleResponse: true,
    // The default plugins log to the console and answer errors in plain text; ours answer JSON.
    ejectPlugins: true,
    plugins: [
      (proxyServer) => {
        proxyServer.on('proxyReq', onProxyReq);
        proxyServer.on('proxyReqWs', onProxyReqWs(stripCors));
        proxyServer.on('proxyRes', onProxyRes(stripCors));
        proxyServer.on('error', onError);
        // Emitted once httpxy has piped the upstream socket to the client's.
        proxyServer.on('open', startWatching);
      },
    ],
  });
}

/**
 * The proxies of one group. Its keep-alive connections serve only this group, so a connection
 * that carried the server key never carries another group's request. Upgrades get a connection
 * of their own that is never pooled: one the upstream refused cannot serve a later request.
 * Agents are made per way of connecting (`UpstreamConnection`): once a reload changes it, the
 * previous agents are retired (their idle connections close, the others once their request
 * ends) while requests that started before keep using them.
 */
export function createGroupProxy(stripCors: boolean): GroupProxy {
  let current: ConnectionAgents | undefined;
  const agentsOf = new WeakMap<UpstreamConnection, ConnectionAgents>();
  // Every runtime announces its connection (`connectThrough`) before it sends a request. One it
  // did not announce reaches another host (the identity provider, when `NO_PROXY` treats it apart
  // from the upstream): its calls are rare, so its connections are never pooled, and none is left
  // open when the group closes.
  const unannounced = (connection: UpstreamConnection): ConnectionAgents => {
    const agents = new ConnectionAgents(connection);
    agents.retire();
    agentsOf.set(connection, agents);
    return agents;
  };
  const agentFor = ({ connection, protocol }: Destination, pooled: boolean): Agent =>
    (agentsOf.get(connection) ?? unannounced(connection)).agent(protocol, pooled);
  const webEngine = createEngine(agentFor, true, stripCors);
  const upgradeEngine = createEngine(agentFor, false, stripCors);
  return {
    connectThrough(connection) {
      if (agentsOf.has(connection)) return;
      if (current?.connection.key !== connection.key) {
        current?.retire();
        current = new ConnectionAgents(connection);
      }
      agentsOf.set(connection, current);
    },
    web(outbound, res) {
      const start = (): void =>
        void webEngine(outbound as EngineRequest, res, () => {
          // Reached only after the error listener has answered (or found nobody to answer).
          if (!res.headersSent) sendAmpError(res, 'amp_upstream_proxy_error');
        });
      // Through a proxy, the tunnel is opened before the engine tells us of the request: it finds
      // its client by async context (paid only there: direct connections get a socket at once).
      if (outbound.destination.connection.proxy) openingFor(res, start);
      else start();
    },
    upgrade(outbound, socket, head) {
      upgradeEngine.upgrade(outbound as EngineRequest, socket, head);
    },
    closeIdle() {
      current?.retire();
      current = undefined;
    },
  };
}
