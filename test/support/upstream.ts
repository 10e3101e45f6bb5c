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
}

export interface FakeUpstream {
  url: string;
  port: number;
  server: Server;
  requests: RecordedRequest[];
  /** The only request received; fails loudly when there were none or several. */
  only(): RecordedRequest;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => void;

const echoJson: UpstreamHandler = (_req, res, recorded) => {
  const body = JSON.stringify({ ok: true, url: recorded.url });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

/**
 * A fake Amp server on a loopback port that records every request exactly as it arrived.
 * The handler runs once the whole body has been read, unless `streaming` is set.
 */
export async function startUpstream(
  handler: UpstreamHandler = echoJson,
  { streaming = false }: { streaming?: boolean } = {},
): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.alloc(0),
    };
    requests.push(recorded);
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
    only() {
      if (requests.length !== 1)
        throw new Error(`expected exactly one upstream request, got ${requests.length}`);
      return requests[0]!;
    },
    close: () => closeServer(server),
  };
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
