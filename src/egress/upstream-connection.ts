import { createHash } from 'node:crypto';
import { Agent as HttpAgent, type Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { SocksProxyAgent } from 'socks-proxy-agent';
import type { EgressProxy } from './egress-proxy.js';
import { proxyFailure, proxyFailureCause } from './proxy-failure.js';
import { clientGone, waitingClient } from './waiting-client.js';

/**
 * How connections to the upstream are made: directly or through an egress proxy, trusting which
 * CAs. One per set of options; the group proxies keep their pooled connections per `key`.
 */
export interface UpstreamConnection {
  /** Equal for equal settings, so a reload that keeps them keeps the pooled connections. */
  readonly key: string;
  readonly proxy: EgressProxy | undefined;
  /**
   * A new agent; a pooled one keeps connections alive, an unpooled one is for upgrades and probes.
   * `tunnelTimeoutMs` bounds the opening of a tunnel through the proxy (defaults to `timeoutMs`).
   */
  createAgent(protocol: 'http:' | 'https:', pooled: boolean, tunnelTimeoutMs?: number): Agent;
}

/**
 * Idle pooled connections close after this. It also makes Node honour the upstream's
 * `Keep-Alive: timeout=` hint, so a socket is retired before the upstream closes it under a new
 * request (a spurious 502).
 */
const IDLE_UPSTREAM_SOCKET_MS = 15_000;

/** Node merges an agent's `options` into those of every connection it opens. */
type AgentWithOptions = Agent & { options: Record<string, unknown> };

type ProxyAgent = HttpsProxyAgent<string> | SocksProxyAgent;

/**
 * Opens a tunnel whose connection to an HTTP(S) proxy `signal` can close: https-proxy-agent
 * connects synchronously from its options when `connect` is called, so the signal set around the
 * call is this attempt's. (The SOCKS client times its own handshake out and closes its socket.)
 */
function openWithSignal(
  agent: ProxyAgent,
  signal: AbortSignal,
  open: () => Promise<Socket>,
): Promise<Socket> {
  if (!(agent instanceof HttpsProxyAgent)) return open();
  const connectOptions = agent.connectOpts as { signal?: AbortSignal };
  connectOptions.signal = signal;
  try {
    return open();
  } finally {
    delete connectOptions.signal;
  }
}

/**
 * Makes the agent's tunnel set-up (`CONNECT` or the SOCKS handshake) fail in words the gateway
 * reports. A request has no socket, so no timeout, until the tunnel is open: a proxy that never
 * answers is timed here. A refused `CONNECT` fails the request, where https-proxy-agent would
 * pass the proxy's answer on as the upstream's. Every failure gets a `PROXY_` cause, so that
 * an operator can tell the proxy's failures from the upstream's (which come after the tunnel).
 * A client that leaves while the tunnel opens abandons it: nothing is sent for a caller who is
 * gone (the engine notices the client only once the socket is assigned, too late for a tunnel).
 */
function checkTunnels(agent: ProxyAgent, timeoutMs: number): void {
  const openTunnel = agent.connect.bind(agent);
  agent.connect = async (req, options) => {
    const client = waitingClient();
    if (client?.destroyed) throw clientGone();
    let refusedWith: number | undefined;
    req.once('proxyConnect', ({ statusCode }: { statusCode: number }) => {
      if (statusCode !== 200) refusedWith = statusCode;
    });
    const abandon = new AbortController();
    const opening = openWithSignal(agent, abandon.signal, () => openTunnel(req, options));
    let timer: NodeJS.Timeout | undefined;
    let leave: (() => void) | undefined;
    const givenUp = new Promise<never>((_, reject) => {
      const giveUp = (why: Error): void => {
        // The connection to the proxy is closed; a tunnel that opens after all is nobody's.
        abandon.abort();
        opening.then(
          (tunnel) => tunnel.destroy(),
          () => undefined,
        );
        reject(why);
      };
      timer = setTimeout(() => giveUp(proxyFailure('PROXY_TIMEOUT')), timeoutMs);
      leave = () => giveUp(clientGone());
      client?.once('close', leave);
    });
    try {
      const tunnel = await Promise.race([opening, givenUp]);
      if (refusedWith === undefined) return tunnel;
      tunnel.destroy();
      throw proxyFailure(`PROXY_${refusedWith}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'CLIENT_GONE') throw error;
      throw proxyFailure(proxyFailureCause(error));
    } finally {
      clearTimeout(timer);
      if (leave) client?.off('close', leave);
    }
  };
}

function proxyAgent(
  proxy: EgressProxy,
  protocol: 'http:' | 'https:',
  pooled: boolean,
  secureContext: SecureContext | undefined,
  timeoutMs: number,
): Agent {
  const agent = proxy.url.protocol.startsWith('socks')
    ? new SocksProxyAgent(proxy.url, { keepAlive: pooled })
    : // Its own options are for the connection to the proxy: an `https:` proxy's certificate.
      new HttpsProxyAgent(proxy.url, { keepAlive: pooled, ...(secureContext && { secureContext }) });
  checkTunnels(agent, timeoutMs);
  Object.assign((agent as unknown as AgentWithOptions).options, {
    // agent-base otherwise guesses the scheme from the call stack, and guesses differently when a
    // connection goes back to the pool and when it is looked for there: none would be reused.
    secureEndpoint: protocol === 'https:',
    ...(secureContext && { secureContext }),
    // Set here, not in the constructor, where SocksProxyAgent would also cut a live stream that
    // is silent for that long. Node reads it when a socket goes back to the pool.
    ...(pooled && { timeout: IDLE_UPSTREAM_SOCKET_MS }),
  });
  return agent;
}

/**
 * `timeoutMs` bounds the opening of a tunnel through the proxy, as it bounds the upstream's silence.
 * `ca`: the CAs TLS to the upstream trusts, `undefined` for Node's defaults. They are parsed once,
 * into a secure context every connection shares, rather than once per connection (and per
 * request, as part of an agent's pool name, were they passed as `ca`).
 */
export function createUpstreamConnection(
  proxy: EgressProxy | undefined,
  ca: readonly string[] | undefined,
  timeoutMs: number,
): UpstreamConnection {
  const key = createHash('sha256')
    .update(JSON.stringify([proxy?.url.href ?? null, proxy && timeoutMs, ca ?? null]))
    .digest('base64url');
  const secureContext = ca && createSecureContext({ ca: [...ca] });
  return {
    key,
    proxy,
    createAgent(protocol, pooled, tunnelTimeoutMs = timeoutMs) {
      if (proxy) return proxyAgent(proxy, protocol, pooled, secureContext, tunnelTimeoutMs);
      const options = pooled ? { keepAlive: true, timeout: IDLE_UPSTREAM_SOCKET_MS } : { keepAlive: false };
      return protocol === 'https:' ? new HttpsAgent({ ...options, secureContext }) : new HttpAgent(options);
    },
  };
}
