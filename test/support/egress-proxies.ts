// Egress proxies for the gateway to go through: an HTTP CONNECT proxy (the `proxy` package, over
// plain HTTP or TLS) and a small SOCKS5 server. Both record what they were asked for and every
// byte they relayed, so a test can tell that the upstream was reached only through the proxy, and
// that nothing secret crossed it in the clear.
import { once } from 'node:events';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer, isIPv4, type AddressInfo, type Socket } from 'node:net';
import { createProxy } from 'proxy';
import { WaitableList } from './events.js';
import type { KeyAndCert } from './tls-fixtures.js';

/** One tunnel a proxy was asked to open, and what went through it. */
export interface RelayedTunnel {
  /** The host as the client named it (an IPv6 address without brackets). */
  readonly host: string;
  readonly port: number;
  /** `host:port` (`[host]:port` for IPv6), as a CONNECT request line names it. */
  readonly target: string;
  /** The local port of the proxy's own connection to the target, once it is open. */
  outboundPort: number | undefined;
  /** Bytes from the client to the target, as relayed. */
  readonly sent: Buffer[];
  /** Bytes from the target to the client, as relayed. */
  readonly received: Buffer[];
  /** Settles when the client's connection to the proxy (the one that asked for this tunnel) closes. */
  readonly clientClosed: Promise<void>;
}

export interface EgressProxy<T extends RelayedTunnel = RelayedTunnel> {
  /** `http://127.0.0.1:<port>` (`https://localhost:<port>` over TLS, `socks5://127.0.0.1:<port>`), no credentials. */
  readonly url: string;
  readonly port: number;
  /** Every tunnel asked for, refused ones included, in arrival order: wait on it from a `mark()`. */
  readonly tunnels: Pick<WaitableList<T>, 'items' | 'mark' | 'since' | 'until'>;
  /** The local ports of every connection the proxy opened to a target. */
  outboundPorts(): number[];
  /** Every byte relayed, both directions, through the tunnels asked for since `mark` (default: all). */
  relayed(mark?: number): Buffer;
  close(): Promise<void>;
}

function relayedBytes(tunnels: readonly RelayedTunnel[]): Buffer {
  return Buffer.concat(tunnels.flatMap((tunnel) => [...tunnel.sent, ...tunnel.received]));
}

function targetOf(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Taps both directions of a tunnel and ties the two sockets' lives together: a proxy closes its
 * side towards the target when the client goes away, so that an abort reaches the target.
 */
function relay(tunnel: RelayedTunnel, client: Socket, target: Socket): void {
  tunnel.outboundPort = target.localPort;
  client.on('data', (chunk: Buffer) => tunnel.sent.push(chunk));
  target.on('data', (chunk: Buffer) => tunnel.received.push(chunk));
  client.once('close', () => target.destroy());
  target.once('close', () => client.destroy());
  client.on('error', () => target.destroy());
  target.on('error', () => client.destroy());
}

function tracked(server: Server | ReturnType<typeof createNetServer>): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}

async function listenLoopback(server: Server | ReturnType<typeof createNetServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export interface ConnectTunnel extends RelayedTunnel {
  /** The `Proxy-Authorization` header of the CONNECT request. */
  readonly proxyAuthorization: string | undefined;
  /** Whether the proxy let it through (authorised, not refused), and opened a connection to the target. */
  established: boolean;
}

/** A request in absolute form (`GET http://host/path`), which an HTTP proxy forwards by itself. */
export interface PlainProxyRequest {
  readonly method: string;
  readonly url: string;
  readonly proxyAuthorization: string | undefined;
}

export interface HttpProxy extends EgressProxy<ConnectTunnel> {
  /** Requests that were not CONNECT: a gateway that tunnels everything sends none. */
  readonly plainRequests: PlainProxyRequest[];
}

export interface HttpProxyOptions {
  /** Require these Basic credentials: anything else is answered `407`. */
  credentials?: { username: string; password: string };
  /** Answer every CONNECT `403 Forbidden` (a proxy whose policy refuses the target). */
  forbid?: boolean;
  /** Serve the proxy itself over TLS (an `https:` proxy), with this key and certificate. */
  tls?: KeyAndCert;
  /** Answer no CONNECT until this settles: a proxy slow to open tunnels. */
  hold?: Promise<void>;
  /**
   * Pass plain requests on with their target in absolute form, as received (the package rewrites
   * it to origin form): what a naive proxy, or one chained to another, sends on.
   */
  passOnAbsoluteForm?: boolean;
}

/** Sends a plain proxy request on to the host its absolute-form target names, target unchanged. */
function passOnUnrewritten(req: IncomingMessage, res: ServerResponse): void {
  const { hostname, port } = new URL(req.url ?? '');
  const onward = httpRequest(
    { host: hostname, port, method: req.method, path: req.url, headers: req.headers, agent: false },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  onward.on('error', () => res.destroy());
  req.pipe(onward);
}

/**
 * An HTTP proxy (the `proxy` package) on a loopback port: CONNECT tunnels and absolute-form
 * requests, recording the target and `Proxy-Authorization` of each, and every byte it relays
 * through a tunnel.
 */
export async function startHttpProxy({
  credentials,
  forbid = false,
  tls,
  hold,
  passOnAbsoluteForm = false,
}: HttpProxyOptions = {}): Promise<HttpProxy> {
  const server = createProxy(tls ? createHttpsServer({ key: tls.key, cert: tls.cert }) : createHttpServer());
  if (credentials) {
    const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    server.authenticate = (req) => req.headers['proxy-authorization'] === expected;
  }
  const tunnels = new WaitableList<ConnectTunnel>();
  const plainRequests: PlainProxyRequest[] = [];

  // Put a recorder in front of the package's own CONNECT handler.
  const proxyConnect = server.listeners('connect')[0] as (
    this: Server,
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
  ) => void;
  server.removeAllListeners('connect');
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const target = req.url ?? '';
    const colon = target.lastIndexOf(':');
    const tunnel: ConnectTunnel = {
      host: target.slice(0, colon).replace(/^\[|\]$/g, ''),
      port: Number(target.slice(colon + 1)),
      target,
      outboundPort: undefined,
      sent: [],
      received: [],
      proxyAuthorization: req.headers['proxy-authorization'],
      established: false,
      clientClosed: new Promise<void>((resolve) => socket.once('close', () => resolve())),
    };
    tunnels.push(tunnel);
    socket.on('error', () => undefined);
    if (forbid) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    // The package pipes the client's socket into its connection to the target once that is
    // open: that is where the tunnel starts, and where both ends are known.
    const pipe = socket.pipe;
    socket.pipe = function <W extends NodeJS.WritableStream>(destination: W, options?: { end?: boolean }): W {
      tunnel.established = true;
      relay(tunnel, socket, destination as unknown as Socket);
      return pipe.call(this, destination, options) as W;
    };
    if (!hold) return proxyConnect.call(server, req, socket, head);
    // Read while held (the client sends nothing before the answer), so that its hang-up is seen
    // (the server allows half-open connections: an end is not a close by itself).
    const hangUp = (): void => void socket.destroy();
    socket.once('end', hangUp);
    socket.resume();
    void hold.then(() => {
      socket.off('end', hangUp);
      socket.pause();
      proxyConnect.call(server, req, socket, head);
    });
  });
  if (passOnAbsoluteForm) {
    server.removeAllListeners('request');
    server.on('request', passOnUnrewritten);
  }
  server.prependListener('request', (req: IncomingMessage) => {
    plainRequests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      proxyAuthorization: req.headers['proxy-authorization'],
    });
  });

  const sockets = tracked(server);
  const port = await listenLoopback(server);
  return {
    url: `${tls ? 'https://localhost' : 'http://127.0.0.1'}:${port}`,
    port,
    tunnels,
    plainRequests,
    outboundPorts: () => tunnels.items.flatMap((tunnel) => tunnel.outboundPort ?? []),
    relayed: (mark = 0) => relayedBytes(tunnels.since(mark)),
    close: () => closeAll(server, sockets),
  };
}

async function closeAll(
  server: Server | ReturnType<typeof createNetServer>,
  sockets: Set<Socket>,
): Promise<void> {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** SOCKS5 reply codes (RFC 1928, section 6). */
export const SOCKS_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export interface SocksTunnel extends RelayedTunnel {
  /** How the client named the target: `domain` when it left resolving to the proxy (`socks5h`). */
  readonly addressType: 'ipv4' | 'domain' | 'ipv6';
  /** The RFC 1929 credentials the client sent, if it authenticated. */
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** The reply code the proxy answered the CONNECT with. */
  reply: number | undefined;
}

export interface SocksProxyOptions {
  /** Require RFC 1929 username/password authentication with these credentials. */
  credentials?: { username: string; password: string };
  /** Answer every CONNECT with this reply code instead of connecting (e.g. `SOCKS_REPLY.notAllowed`). */
  refuse?: number;
  /** Answer no CONNECT until this settles: a proxy slow to open tunnels. */
  hold?: Promise<void>;
}

export interface SocksProxy extends EgressProxy<SocksTunnel> {
  /** Authentications that failed (wrong credentials, or none offered when they are required). */
  readonly failedAuthentications: number;
}

/** Reads exactly the bytes asked for from a socket, then hands the socket (and any excess) over. */
function byteReader(socket: Socket) {
  let buffered = Buffer.alloc(0);
  let waiting:
    { count: number; resolve: (bytes: Buffer) => void; reject: (error: Error) => void } | undefined;
  let ended = false;
  const settle = (): void => {
    if (!waiting) return;
    if (buffered.length >= waiting.count) {
      const { count, resolve } = waiting;
      waiting = undefined;
      const bytes = buffered.subarray(0, count);
      buffered = buffered.subarray(count);
      resolve(bytes);
    } else if (ended) {
      const { reject } = waiting;
      waiting = undefined;
      reject(new Error('the client went away mid-handshake'));
    }
  };
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    settle();
  };
  const onEnd = (): void => {
    ended = true;
    settle();
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onEnd);
  return {
    read(count: number): Promise<Buffer> {
      return new Promise((resolve, reject) => {
        waiting = { count, resolve, reject };
        settle();
      });
    },
    /** Stops reading; returns the bytes that arrived past the handshake (the tunnel's first). */
    release(): Buffer {
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      return buffered;
    },
  };
}

/** An IPv6 address in its shortest form (`::1`). */
function formatIPv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** A SOCKS5 reply: version, code, reserved, then the bound address (IPv4, zeros when unknown). */
function socksReply(code: number, address = '0.0.0.0', port = 0): Buffer {
  const reply = Buffer.alloc(10);
  reply.writeUInt8(5, 0);
  reply.writeUInt8(code, 1);
  reply.writeUInt8(1, 3);
  const octets = isIPv4(address) ? address.split('.').map(Number) : [0, 0, 0, 0];
  octets.forEach((octet, i) => reply.writeUInt8(octet, 4 + i));
  reply.writeUInt16BE(port, 8);
  return reply;
}

/**
 * A SOCKS5 server (RFC 1928, with RFC 1929 username/password authentication): the CONNECT
 * command only, to IPv4, domain-name and IPv6 targets. It records each target and how it was
 * named, and every byte relayed.
 */
export async function startSocksProxy({
  credentials,
  refuse,
  hold,
}: SocksProxyOptions = {}): Promise<SocksProxy> {
  const tunnels = new WaitableList<SocksTunnel>();
  let failedAuthentications = 0;

  async function handshake(socket: Socket): Promise<void> {
    const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const reader = byteReader(socket);
    const [version, methodCount] = await reader.read(2);
    if (version !== 5) return void socket.destroy();
    const methods = [...(await reader.read(methodCount!))];
    const method = credentials ? 0x02 : 0x00;
    if (!methods.includes(method)) {
      failedAuthentications++;
      return void socket.end(Buffer.from([5, 0xff]));
    }
    socket.write(Buffer.from([5, method]));

    let username: string | undefined;
    let password: string | undefined;
    if (credentials) {
      const [, usernameLength] = await reader.read(2);
      username = (await reader.read(usernameLength!)).toString('utf8');
      const [passwordLength] = await reader.read(1);
      password = (await reader.read(passwordLength!)).toString('utf8');
      const ok = username === credentials.username && password === credentials.password;
      if (!ok) {
        failedAuthentications++;
        return void socket.end(Buffer.from([1, 1]));
      }
      socket.write(Buffer.from([1, 0]));
    }

    const [, command, , addressKind] = await reader.read(4);
    let host: string;
    let addressType: SocksTunnel['addressType'];
    if (addressKind === 0x01) {
      host = [...(await reader.read(4))].join('.');
      addressType = 'ipv4';
    } else if (addressKind === 0x03) {
      const [length] = await reader.read(1);
      host = (await reader.read(length!)).toString('utf8');
      addressType = 'domain';
    } else if (addressKind === 0x04) {
      host = formatIPv6(await reader.read(16));
      addressType = 'ipv6';
    } else {
      return void socket.end(socksReply(SOCKS_REPLY.addressTypeNotSupported));
    }
    const port = (await reader.read(2)).readUInt16BE(0);
    const tunnel: SocksTunnel = {
      host,
      port,
      target: targetOf(host, port),
      outboundPort: undefined,
      sent: [],
      received: [],
      addressType,
      username,
      password,
      reply: undefined,
      clientClosed: socketClosed,
    };
    tunnels.push(tunnel);
    const answer = (code: number, address?: string, boundPort?: number): void => {
      tunnel.reply = code;
      if (code === SOCKS_REPLY.succeeded) socket.write(socksReply(code, address, boundPort));
      else socket.end(socksReply(code));
    };
    if (command !== 0x01) return answer(SOCKS_REPLY.commandNotSupported);
    if (refuse !== undefined) return answer(refuse);
    await hold;

    const target = connect({ host, port });
    const opened = await new Promise<boolean>((resolve) => {
      target.once('connect', () => resolve(true));
      target.once('error', () => resolve(false));
    });
    if (!opened) return answer(SOCKS_REPLY.connectionRefused);
    targets.add(target);
    target.once('close', () => targets.delete(target));
    answer(SOCKS_REPLY.succeeded, target.localAddress, target.localPort);
    const early = reader.release();
    relay(tunnel, socket, target);
    if (early.length > 0) {
      tunnel.sent.push(early);
      target.write(early);
    }
    socket.pipe(target);
    target.pipe(socket);
  }

  const targets = new Set<Socket>();
  const server = createNetServer((socket) => {
    socket.on('error', () => undefined);
    handshake(socket).catch(() => socket.destroy());
  });
  const sockets = tracked(server);
  const port = await listenLoopback(server);
  return {
    url: `socks5://127.0.0.1:${port}`,
    port,
    tunnels,
    get failedAuthentications() {
      return failedAuthentications;
    },
    outboundPorts: () => tunnels.items.flatMap((tunnel) => tunnel.outboundPort ?? []),
    relayed: (mark = 0) => relayedBytes(tunnels.since(mark)),
    close: async () => {
      for (const target of targets) target.destroy();
      await closeAll(server, sockets);
    },
  };
}

/** `scheme://user:password@host:port` from a proxy's URL: credentials percent-encoded as a URL needs. */
export function withCredentials(url: string, username: string, password: string, scheme?: string): string {
  const parsed = new URL(url);
  parsed.username = username;
  parsed.password = password;
  const text = parsed.toString().replace(/\/$/, '');
  return scheme ? text.replace(/^[a-z0-9]+:/, `${scheme}:`) : text;
}
