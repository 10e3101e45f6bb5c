import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { WaitableList } from './events.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /**
   * Settles when the upstream's side of this exchange closes (its response finished, or the
   * connection went away before): a test waits on this instead of sleeping. Resolves with
   * `Date.now()` at that moment.
   */
  closed: Promise<number>;
  /** The peer of the connection the request came on: the gateway, or an egress proxy's outbound socket. */
  remoteAddress: string;
  remotePort: number;
}

/** One connection the upstream accepted (for HTTPS: one whose TLS handshake completed). */
export interface AcceptedConnection {
  remoteAddress: string;
  remotePort: number;
  /** The SNI server name the client presented (HTTPS only; `false` when it sent none). */
  servername?: string | false;
}

export interface UpstreamOptions {
  /** Run the handler on every request as it arrives, before its body is read. */
  streaming?: boolean;
  /** Serve HTTPS with this key and certificate (a certificate chain is allowed), not plain HTTP. */
  tls?: { key: string; cert: string };
  /** The loopback address to listen on: `127.0.0.1` unless told (`::1`). */
  host?: string;
}

/**
 * What the upstream received from the moment `record()` was called: each test takes its own, so
 * no test reads (or has to clear) what an earlier one caused.
 */
export interface UpstreamRecord {
  /** The requests received since the record began, in arrival order (a fresh array each read). */
  readonly requests: readonly RecordedRequest[];
  /** The only request received since the record began; fails loudly when there were none or several. */
  only(): RecordedRequest;
  /** The latest request received since the record began; fails loudly when there was none. */
  last(): RecordedRequest;
}

export interface FakeUpstream {
  url: string;
  port: number;
  server: Server;
  /**
   * Every request received since the upstream started. Prefer `record()`, which gives a test only
   * what arrived during it; this list is kept for tests that have not moved to it yet.
   */
  requests: RecordedRequest[];
  /** Starts a record of what this upstream receives from now on (see `UpstreamRecord`). */
  record(): UpstreamRecord;
  /** The only request received since the upstream started (or `requests` was last emptied). */
  only(): RecordedRequest;
  /**
   * Every connection accepted since the upstream started, in order. For HTTPS only connections
   * whose handshake completed count: a keep-alive test counts them, a TLS test reads `servername`.
   */
  connections: AcceptedConnection[];
  /**
   * HTTPS only: the error code of every TLS handshake that failed (the client refused the
   * certificate, say). A list to wait on: the upstream may learn of a failure after the client.
   */
  failedHandshakes: WaitableList<string>;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => void;

const echoJson: UpstreamHandler = (_req, res, recorded) => {
  const body = JSON.stringify({ ok: true, url: recorded.url });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

function onlyOf(requests: readonly RecordedRequest[]): RecordedRequest {
  if (requests.length !== 1) throw new Error(`expected exactly one upstream request, got ${requests.length}`);
  return requests[0]!;
}

/**
 * A fake Amp server on a loopback port that records every request exactly as it arrived.
 * The handler runs once the whole body has been read, unless `streaming` is set. With `tls` it
 * serves HTTPS (its `url` is then `https://127.0.0.1:<port>`).
 */
export async function startUpstream(
  handler: UpstreamHandler = echoJson,
  { streaming = false, tls, host = '127.0.0.1' }: UpstreamOptions = {},
): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  /** Everything ever received, whatever a test does to `requests`: records index into this. */
  const history: RecordedRequest[] = [];
  const connections: AcceptedConnection[] = [];
  const failedHandshakes = new WaitableList<string>();
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.alloc(0),
      closed: new Promise((resolve) => res.once('close', () => resolve(Date.now()))),
      remoteAddress: req.socket.remoteAddress ?? '',
      remotePort: req.socket.remotePort ?? 0,
    };
    requests.push(recorded);
    history.push(recorded);
    if (streaming) {
      handler(req, res, recorded);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      recorded.body = Buffer.concat(chunks);
      handler(req, res, recorded);
    });
  };
  const accepted = (socket: Socket, servername?: string | false): void => {
    connections.push({
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      ...(servername === undefined ? {} : { servername }),
    });
  };
  let server: Server;
  if (tls) {
    server = createHttpsServer({ key: tls.key, cert: tls.cert }, onRequest);
    server.on('secureConnection', (socket: TLSSocket) => accepted(socket, socket.servername ?? false));
    server.on('tlsClientError', (error: NodeJS.ErrnoException) =>
      failedHandshakes.push(error.code ?? 'unknown'),
    );
  } else {
    server = createServer(onRequest);
    server.on('connection', (socket: Socket) => accepted(socket));
  }
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    requests,
    record() {
      const start = history.length;
      return {
        get requests() {
          return history.slice(start);
        },
        only: () => onlyOf(history.slice(start)),
        last() {
          if (history.length === start) throw new Error('expected an upstream request, got none');
          return history.at(-1)!;
        },
      };
    },
    only: () => onlyOf(requests),
    connections,
    failedHandshakes,
    close: () => closeServer(server),
  };
}

/** A WebSocket handshake the upstream accepted. */
export interface WebSocketHandshake {
  url: string;
  headers: IncomingHttpHeaders;
  remotePort: number;
}

export interface FakeWebSocketUpstream extends FakeUpstream {
  /** The handshakes accepted: a test reads its own part from a `mark()` on. */
  handshakes: WaitableList<WebSocketHandshake>;
  /** The close codes the upstream received. */
  closes: WaitableList<number>;
}

export interface WebSocketUpstreamOptions extends Pick<UpstreamOptions, 'tls' | 'host'> {
  /**
   * Why to close a WebSocket right after accepting it (close code 1008 with this reason), or
   * `undefined` to serve it: how Amp's edge treats an actor socket it will not serve.
   */
  closeAfterUpgrade?: (req: IncomingMessage) => string | undefined;
  /** Serves each accepted WebSocket (not closed by `closeAfterUpgrade`) instead of echoing it. */
  serveSocket?: (socket: WebSocket, req: IncomingMessage) => void;
}

/** The close code a fake upstream closes a socket with when `closeAfterUpgrade` names a reason. */
export const POLICY_VIOLATION = 1008;

function echoFrames(socket: WebSocket): void {
  socket.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'close-4001') return socket.close(4001, 'upstream says bye');
    socket.send(data, { binary: isBinary });
  });
}

/**
 * A fake upstream that also accepts WebSockets (over TLS with `tls`: a `wss:` upstream). It picks
 * the `rivet` subprotocol when offered, as Amp does, and echoes every frame; the text frame
 * `close-4001` makes it close with code 4001. Plain requests go to `handler`, as for `startUpstream`.
 */
export async function startWebSocketUpstream(
  handler: UpstreamHandler = echoJson,
  { closeAfterUpgrade, serveSocket = echoFrames, ...options }: WebSocketUpstreamOptions = {},
): Promise<FakeWebSocketUpstream> {
  const upstream = await startUpstream(handler, options);
  const handshakes = new WaitableList<WebSocketHandshake>();
  const closes = new WaitableList<number>();
  const wss = new WebSocketServer({
    server: upstream.server,
    handleProtocols: (protocols) => (protocols.has('rivet') ? 'rivet' : false),
  });
  wss.on('connection', (socket, req) => {
    handshakes.push({ url: req.url ?? '', headers: req.headers, remotePort: req.socket.remotePort ?? 0 });
    const refusal = closeAfterUpgrade?.(req);
    socket.on('close', closes.push);
    if (refusal !== undefined) return socket.close(POLICY_VIOLATION, refusal);
    serveSocket(socket, req);
  });
  const closeUpstream = upstream.close;
  const ws: FakeWebSocketUpstream = Object.assign(upstream, {
    handshakes,
    closes,
    async close() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await closeUpstream();
    },
  });
  return ws;
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
