import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const MB = 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 7);

/** Memory must not grow with the body: a buffering proxy would add the whole body to RSS. */
const MAX_RSS_GROWTH = 80 * MB;

describe('large bodies stream with flat memory', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
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
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  it('a 200 MB download through a passthrough route', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const received = await new Promise<number>((resolve, reject) => {
      request(`${app.url}/api/threads/export`, { agent: false }, (res) => {
        let total = 0;
        res.on('data', (chunk: Buffer) => {
          total += chunk.length;
          peak = Math.max(peak, process.memoryUsage().rss);
        });
        res.on('end', () => resolve(total));
        res.on('error', reject);
      }).end();
    });
    assert.equal(received, 200 * MB);
    assert.ok(peak - before < MAX_RSS_GROWTH, `RSS grew by ${Math.round((peak - before) / MB)} MB`);
  });

  it('a 50 MB upload through an inject route', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request(
        `${app.url}/api/provider/openai/v1/files`,
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
          peak = Math.max(peak, process.memoryUsage().rss);
          if (!req.write(CHUNK)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    assert.deepEqual(JSON.parse(answer), { received: 50 * MB });
    assert.ok(peak - before < MAX_RSS_GROWTH, `RSS grew by ${Math.round((peak - before) / MB)} MB`);
  });

  it('request heads over 16 KiB get 431 from Node, never reaching the upstream', async () => {
    upstream.requests.length = 0;
    const res = await send(`${app.url}/api/threads`, { headers: { 'x-big': 'a'.repeat(20_000) } });
    assert.equal(res.status, 431);
    assert.equal(upstream.requests.length, 0);
  });
});
