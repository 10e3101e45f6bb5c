import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  headerValue,
  parseRequest,
  parseRequestStream,
  type HeaderField,
  type ParsedStream,
  type RawRequest,
  type RawRequestHead,
} from './raw-http.js';

/** What the raw upstream answers to one request. */
export interface RawReply {
  status: number;
  reason?: string;
  headers?: Readonly<Record<string, string>>;
  body?: string | Buffer;
  /** Close the connection after answering. */
  close?: boolean;
  /** Exact bytes to answer with instead of a response built from the fields above (`status` is then unused). */
  raw?: string;
}

/** One TCP connection the upstream accepted, recorded byte for byte. */
export interface RawConnection {
  /** 1, 2, 3… in the order the connections were accepted. */
  readonly id: number;
  /** Every byte received on the connection, in order. */
  readonly bytes: Buffer;
  /** The requests the live parser completed on this connection (each was answered). */
  readonly requests: readonly RawRequest[];
  readonly closed: boolean;
  /** Where the tunnel starts, once the upstream answered `101`: later bytes are not HTTP. */
  readonly upgradedAt: number | undefined;
  /** The framing error the live parser stopped on (the upstream then answered 400 and closed). */
  readonly error: string | undefined;
  /** Resolves once the connection is closed (by either side). */
  readonly whenClosed: Promise<void>;
  /** Parses the HTTP part of `bytes` from scratch: requests, leftover bytes and any error. */
  parse(): ParsedStream;
}

export interface RawUpstreamOptions {
  /**
   * The answer to a complete request. Default: 200 with a small JSON body naming the request.
   * `undefined` leaves the request unanswered (an upstream that hangs).
   */
  reply?: (request: RawRequest, connection: RawConnection) => RawReply | undefined;
  /**
   * Asked once a request's head has arrived and its body has not: a reply answers right away,
   * before the body is read (the body is still read afterwards, and not answered again).
   */
  earlyReply?: (head: RawRequestHead, connection: RawConnection) => RawReply | undefined;
}

export interface RawUpstream {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly connections: readonly RawConnection[];
  /** Every complete request so far, in arrival order, with the connection it came on. */
  arrivals(): ReadonlyArray<{ request: RawRequest; connection: RawConnection }>;
  /** Resolves once `count` requests have arrived in total; rejects after `timeoutMs`. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves once the connection has closed; rejects after `timeoutMs`. */
  waitForClose(connection: RawConnection, timeoutMs?: number): Promise<void>;
  /** Resolves once `done()` holds, checked whenever bytes arrive or a connection closes. */
  waitUntil(done: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  options: RawUpstreamOptions;
  close(): Promise<void>;
}

/** The default answer: names the request it answers, so a client can spot a crossed response. */
export function describeRequest(request: RawRequest, connection: RawConnection): RawReply {
  const body = JSON.stringify({
    ok: true,
    method: request.method,
    target: request.target,
    case: headerValue(request, 'x-case') ?? null,
    connection: connection.id,
  });
  return { status: 200, headers: { 'content-type': 'application/json' }, body };
}

function serialiseReply(reply: RawReply, method: string): Buffer {
  if (reply.raw !== undefined) return Buffer.from(reply.raw, 'latin1');
  const body = Buffer.from(reply.body ?? '');
  const fields: HeaderField[] = Object.entries(reply.headers ?? {});
  const hasLength = fields.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name));
  const bodiless = reply.status < 200 || reply.status === 204 || reply.status === 304;
  if (!hasLength && !bodiless) fields.push(['Content-Length', String(body.length)]);
  if (reply.close) fields.push(['Connection', 'close']);
  const head =
    `HTTP/1.1 ${reply.status} ${reply.reason ?? 'Whatever'}\r\n` +
    fields.map(([name, value]) => `${name}: ${value}\r\n`).join('') +
    '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), method === 'HEAD' || bodiless ? Buffer.alloc(0) : body]);
}

/** The upstream's refusal of bytes it cannot parse; the header says why, for assertion messages. */
function badRequest(reason: string): string {
  const printable = reason.replace(/[^\x20-\x7e]/g, '?');
  return `HTTP/1.1 400 Bad Request\r\nX-Raw-Upstream-Error: ${printable}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
}

/**
 * A fake upstream on `net` (not `node:http`): it records the raw TCP byte stream of every
 * connection, splits it into requests with its own strict parser (`raw-http.ts`), and answers
 * each request with a small keep-alive response. A framing error is answered 400 and the
 * connection closed, like a strict server would; a `101` reply turns the rest of the connection
 * into an echo tunnel.
 */
export async function startRawUpstream(options: RawUpstreamOptions = {}): Promise<RawUpstream> {
  const connections: RawConnection[] = [];
  const arrivals: Array<{ request: RawRequest; connection: RawConnection }> = [];
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  const upstream = {
    options,
  } as { options: RawUpstreamOptions };

  const notify = (): void => {
    for (const waiter of [...waiters]) waiter();
  };

  const server = createServer((socket) => {
    sockets.add(socket);
    const chunks: Buffer[] = [];
    let cached: Buffer | undefined;
    let offset = 0;
    let answeredEarly = -1;
    let failed = false;
    const requests: RawRequest[] = [];
    let resolveClosed!: () => void;
    const connection = {
      id: connections.length + 1,
      get bytes() {
        cached ??= Buffer.concat(chunks);
        return cached;
      },
      requests,
      closed: false,
      upgradedAt: undefined as number | undefined,
      error: undefined as string | undefined,
      whenClosed: new Promise<void>((resolve) => (resolveClosed = resolve)),
      parse(): ParsedStream {
        const bytes = this.bytes;
        return parseRequestStream(this.upgradedAt === undefined ? bytes : bytes.subarray(0, this.upgradedAt));
      },
    };
    connections.push(connection);

    const answer = (reply: RawReply, method: string): void => {
      if (socket.destroyed || socket.writableEnded) return;
      socket.write(serialiseReply(reply, method));
      if (reply.close) socket.end();
    };

    const consume = (): void => {
      while (!failed && connection.upgradedAt === undefined) {
        const bytes = connection.bytes;
        if (offset >= bytes.length) return;
        const step = parseRequest(bytes, offset);
        if (step.kind === 'error') {
          failed = true;
          connection.error = step.reason;
          if (!socket.writableEnded) socket.end(badRequest(step.reason));
          notify();
          return;
        }
        if (step.kind === 'incomplete') {
          if (step.head && answeredEarly !== offset) {
            const early = upstream.options.earlyReply?.(step.head, connection);
            if (early) {
              answeredEarly = offset;
              answer(early, step.head.method);
            }
          }
          return;
        }
        const request = step.message;
        requests.push(request);
        arrivals.push({ request, connection });
        const early = answeredEarly === offset;
        offset = step.end;
        if (!early) {
          const reply = (upstream.options.reply ?? describeRequest)(request, connection);
          if (reply) answer(reply, request.method);
          if (reply?.status === 101) connection.upgradedAt = offset;
        }
        notify();
      }
      if (connection.upgradedAt !== undefined) {
        // A tunnel: echo whatever arrives after the switch.
        const tunnelled = connection.bytes.subarray(offset);
        offset = connection.bytes.length;
        if (tunnelled.length > 0 && !socket.writableEnded) socket.write(tunnelled);
      }
    };

    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      cached = undefined;
      consume();
      notify();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      sockets.delete(socket);
      connection.closed = true;
      resolveClosed();
      notify();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  const waitUntil = (done: () => boolean, timeoutMs: number, what: () => string): Promise<void> => {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`raw upstream: timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      waiters.add(check);
    });
  };

  return Object.assign(upstream, {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    connections,
    arrivals: () => arrivals,
    waitForRequests: (count: number, timeoutMs = 2000) =>
      waitUntil(
        () => arrivals.length >= count,
        timeoutMs,
        () => `${count} requests (got ${arrivals.length})`,
      ),
    waitForClose: (connection: RawConnection, timeoutMs = 2000) =>
      waitUntil(
        () => connection.closed,
        timeoutMs,
        () => `connection ${connection.id} to close`,
      ),
    waitUntil: (done: () => boolean, what: string, timeoutMs = 2000) =>
      waitUntil(done, timeoutMs, () => what),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** A readable dump of what an upstream received, for assertion messages. */
export function describeConnections(connections: readonly RawConnection[]): string {
  if (connections.length === 0) return '(no upstream connection)';
  return connections
    .map((connection) => {
      const parsed = connection.parse();
      const lines = parsed.requests.map(
        (request) =>
          `  ${request.method} ${request.target} [${request.framing}, body ${JSON.stringify(request.body.toString('latin1'))}]`,
      );
      if (parsed.error) lines.push(`  framing error: ${parsed.error}`);
      if (parsed.leftover.length > 0)
        lines.push(`  leftover: ${JSON.stringify(parsed.leftover.toString('latin1'))}`);
      return `connection ${connection.id}${connection.closed ? ' (closed)' : ''}:\n${lines.join('\n')}\n  raw: ${JSON.stringify(connection.bytes.toString('latin1'))}`;
    })
    .join('\n');
}

/** One request as the upstream's byte stream splits it, with where it was. */
export interface Arrival {
  readonly request: RawRequest;
  readonly connection: RawConnection;
  /** Its position on the connection, and how many requests the connection carried. */
  readonly index: number;
  readonly of: number;
}

/**
 * Parses every connection's bytes from scratch, asserts each is whole requests and nothing else
 * (no framing error, no leftover bytes), and returns the requests in connection order.
 */
export function cleanArrivals(upstream: RawUpstream): Arrival[] {
  const arrivals: Arrival[] = [];
  for (const connection of upstream.connections) {
    const parsed = connection.parse();
    const dump = `\n${describeConnections(upstream.connections)}`;
    assert.equal(
      parsed.error,
      undefined,
      `upstream connection ${connection.id} does not parse: ${parsed.error}${dump}`,
    );
    assert.equal(
      parsed.leftover.length,
      0,
      `upstream connection ${connection.id} ends in bytes that are no complete request${dump}`,
    );
    parsed.requests.forEach((request, index) =>
      arrivals.push({ request, connection, index, of: parsed.requests.length }),
    );
  }
  return arrivals;
}

/** `METHOD target #x-case body=…`: what a request is, for comparing lists of them. */
export function summarise(request: RawRequest): string {
  const label = headerValue(request, 'x-case') ?? '-';
  return `${request.method} ${request.target} #${label} body=${JSON.stringify(request.body.toString('latin1'))}`;
}
