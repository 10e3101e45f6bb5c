import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

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
 * The handler runs once the whole body has been read, unless `streaming` is set.
 */
export async function startUpstream(
  handler: UpstreamHandler = echoJson,
  { streaming = false }: { streaming?: boolean } = {},
): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  /** Everything ever received, whatever a test does to `requests`: records index into this. */
  const history: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.alloc(0),
      closed: new Promise((resolve) => res.once('close', () => resolve(Date.now()))),
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
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
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
    close: () => closeServer(server),
  };
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
