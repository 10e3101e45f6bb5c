import assert from 'node:assert/strict';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const MB = 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 7);

/**
 * Memory must not grow with the body. What a stream costs depends on the runtime's GC (a bare
 * pipe proxy raises RSS by 43 MB on Node 20 and 135 MB on Node 24 for 200 MB), so the gateway is
 * compared with a bare pipe proxy doing the same transfer in this process just before: its peak
 * RSS may pass the baseline's peak by a quarter of the body, where a buffering proxy would add the
 * whole body.
 */
const ALLOWANCE = 1 / 4;

/** The baseline: a proxy that pipes both ways and does nothing else. */
function barePipeProxy(upstreamUrl: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const upstreamReq = request(
      `${upstreamUrl}${req.url}`,
      { method: req.method, headers: req.headers, agent: false },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    req.pipe(upstreamReq);
  };
}

/** The peak RSS seen while `transfer` runs; it samples through the `sample` callback it is given. */
async function peakRss<T>(
  transfer: (sample: () => void) => Promise<T>,
): Promise<{ peak: number; result: T }> {
  let peak = process.memoryUsage().rss;
  const result = await transfer(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  });
  return { peak, result };
}

/** The gateway's peak against the bare proxy's, each running `transfer` against its own URL. */
async function compareWithBarePipe(
  baselineUrl: string,
  gatewayUrl: string,
  bodySize: number,
  transfer: (url: string, sample: () => void) => Promise<void>,
): Promise<void> {
  const baseline = await peakRss((sample) => transfer(baselineUrl, sample));
  const gateway = await peakRss((sample) => transfer(gatewayUrl, sample));
  const excess = gateway.peak - baseline.peak;
  assert.ok(
    excess < bodySize * ALLOWANCE,
    `peak RSS ${Math.round(gateway.peak / MB)} MB through the gateway, ${Math.round(baseline.peak / MB)} MB through a bare pipe proxy`,
  );
}

describe('large bodies stream with flat memory', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  let bare: RunningApp;
  before(async () => {
    upstream = await startUpstream(
      (req, res) => {
        if (req.url === '/api/threads/export') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 200 * MB });
          let sent = 0;
          const pump = (): void => {
            while (sent < 200 * MB) {
              sent += CHUNK.length;
              if (!res.write(CHUNK)) return void res.once('drain', pump);
            }
            res.end();
          };
          pump();
          return;
        }
        let received = 0;
        req.on('data', (chunk: Buffer) => (received += chunk.length));
        req.on('end', () => res.end(JSON.stringify({ received })));
      },
      { streaming: true },
    );
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k' });
    app = await listen((req, res) => router(req, res));
    bare = await listen(barePipeProxy(upstream.url));
  });
  after(async () => {
    await app.close();
    await bare.close();
    await upstream.close();
  });

  it('a 200 MB download through a passthrough route', () =>
    compareWithBarePipe(bare.url, app.url, 200 * MB, async (url, sample) => {
      const received = await new Promise<number>((resolve, reject) => {
        request(`${url}/api/threads/export`, { agent: false }, (res) => {
          let total = 0;
          res.on('data', (chunk: Buffer) => {
            total += chunk.length;
            sample();
          });
          res.on('end', () => resolve(total));
          res.on('error', reject);
        }).end();
      });
      assert.equal(received, 200 * MB);
    }));

  it('a 50 MB upload through an inject route', () =>
    compareWithBarePipe(bare.url, app.url, 50 * MB, async (url, sample) => {
      const answer = await new Promise<string>((resolve, reject) => {
        const req = request(
          `${url}/api/provider/openai/v1/files`,
          {
            method: 'POST',
            agent: false,
            headers: { 'content-type': 'application/octet-stream', 'content-length': 50 * MB },
          },
          (res) => {
            let text = '';
            res.on('data', (chunk) => (text += chunk));
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        let sent = 0;
        const pump = (): void => {
          while (sent < 50 * MB) {
            sent += CHUNK.length;
            sample();
            if (!req.write(CHUNK)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      assert.deepEqual(JSON.parse(answer), { received: 50 * MB });
    }));

  it('request heads over 16 KiB get 431 from Node, never reaching the upstream', async () => {
    upstream.requests.length = 0;
    const res = await send(`${app.url}/api/threads`, { headers: { 'x-big': 'a'.repeat(20_000) } });
    assert.equal(res.status, 431);
    assert.equal(upstream.requests.length, 0);
  });
});
