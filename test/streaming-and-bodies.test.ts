import assert from 'node:assert/strict';
import { request, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import compression from 'compression';
import { ampRouter } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { streamEvents } from './support/gateway-harness.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`streaming and request bodies (${name})`, () => {
    let upstream: FakeUpstream;
    const apps: RunningApp[] = [];
    /** Event streams after their first event, held open until the test has seen that event. */
    const heldStreams = new WaitableList<ServerResponse>();

    before(async () => {
      upstream = await startUpstream((req, res, recorded) => {
        if (req.url?.includes('stream')) {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          res.write('event: message_start\ndata: {"n":1}\n\n');
          heldStreams.push(res);
          return;
        }
        const body = JSON.stringify({
          length: recorded.body.length,
          contentLength: recorded.headers['content-length'] ?? null,
          contentEncoding: recorded.headers['content-encoding'] ?? null,
          transferEncoding: recorded.headers['transfer-encoding'] ?? null,
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
    });
    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await upstream.close();
    });

    async function hostApp(setup: (app: ReturnType<typeof express>) => void): Promise<RunningApp> {
      const app = express();
      setup(app);
      const running = await listen(app);
      apps.push(running);
      return running;
    }
    const amp = () => ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' });

    for (const [label, setup] of [
      ['bare', (app: ReturnType<typeof express>) => app.use(amp())],
      ['after compression()', (app: ReturnType<typeof express>) => app.use(compression()).use(amp())],
      ['after express.json()', (app: ReturnType<typeof express>) => app.use(express.json()).use(amp())],
    ] as const) {
      // A gateway that buffers never shows the first event, and the test fails by its timeout.
      it(`SSE events arrive as the upstream sends them (${label})`, { timeout: 5000 }, async () => {
        const app = await hostApp(setup);
        const mark = heldStreams.mark();
        const events = streamEvents(`${app.url}/api/provider/anthropic/v1/messages?stream`, {
          'accept-encoding': 'gzip',
        });
        assert.match(await events.firstChunk, /message_start/);
        const [held] = await heldStreams.until(mark, (streams) => streams.length > 0);
        held!.write('data: {"n":2}\n\n');
        held!.end('data: [DONE]\n\n');
        const { status, text } = await events.all;
        assert.equal(status, 200);
        assert.equal(text, 'event: message_start\ndata: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n');
      });
    }

    const json = JSON.stringify({ method: 'webSearch2', params: { query: 'x'.repeat(30_000) } });
    const gzipped = gzipSync(json);

    for (const [label, setup] of [
      ['no body parser', (app: ReturnType<typeof express>) => app.use(amp())],
      [
        'express.json()',
        (app: ReturnType<typeof express>) => app.use(express.json({ limit: '1mb' })).use(amp()),
      ],
      [
        'express.raw()',
        (app: ReturnType<typeof express>) => app.use(express.raw({ type: '*/*', limit: '1mb' })).use(amp()),
      ],
      [
        'express.text()',
        (app: ReturnType<typeof express>) => app.use(express.text({ type: '*/*', limit: '1mb' })).use(amp()),
      ],
      [
        'express.urlencoded()',
        (app: ReturnType<typeof express>) => app.use(express.urlencoded({ extended: false })).use(amp()),
      ],
    ] as const) {
      it(`a JSON body arrives whole with a matching Content-Length (${label})`, async () => {
        const app = await hostApp(setup);
        const received = upstream.record();
        const res = await send(`${app.url}/api/internal?webSearch2`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer u' },
          body: json,
        });
        assert.equal(res.status, 200);
        const seen = received.only();
        assert.deepEqual(JSON.parse(seen.body.toString()), JSON.parse(json));
        assert.equal(Number(seen.headers['content-length']), seen.body.length);
      });

      it(`a gzip-encoded body arrives intact, its headers agreeing with it (${label})`, async () => {
        const app = await hostApp(setup);
        const received = upstream.record();
        const res = await send(`${app.url}/api/internal?webSearch2`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-encoding': 'gzip',
            authorization: 'Bearer u',
          },
          body: gzipped,
        });
        assert.equal(res.status, 200);
        const seen = received.only();
        const decoded =
          seen.headers['content-encoding'] === 'gzip'
            ? (await import('node:zlib')).gunzipSync(seen.body).toString()
            : seen.body.toString();
        assert.deepEqual(JSON.parse(decoded), JSON.parse(json));
        assert.equal(Number(seen.headers['content-length']), seen.body.length);
      });
    }

    it('a gzip body that express.json() parsed is re-sent decoded, its Content-Length matching', async () => {
      const app = await hostApp((host) => host.use(express.json()).use(amp()));
      const received = upstream.record();
      const body = JSON.stringify({ method: 'x', params: { big: 'y'.repeat(30_000) } });
      const res = await send(`${app.url}/api/internal?x`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: gzipSync(body),
      });
      assert.equal(res.status, 200);
      const seen = received.only();
      assert.equal(seen.headers['content-encoding'], undefined);
      assert.equal(Number(seen.headers['content-length']), seen.body.length);
      assert.deepEqual(JSON.parse(seen.body.toString()), JSON.parse(body));
    });

    it('a chunked upload without Content-Length is streamed through', async () => {
      const app = await hostApp((host) => host.use(amp()));
      const res = await new Promise<string>((resolve, reject) => {
        const req = request(
          `${app.url}/api/provider/anthropic/v1/messages`,
          { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream' } },
          (r) => {
            let text = '';
            r.on('data', (c) => (text += c));
            r.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        for (let i = 0; i < 10; i++) req.write(Buffer.alloc(100_000, i));
        req.end();
      });
      assert.equal((JSON.parse(res) as { length: number }).length, 1_000_000);
    });

    it('a body consumed by middleware that left nothing to re-send is refused, not forwarded truncated', async () => {
      const app = await hostApp((host) => {
        host.use((req, _res, next) => {
          req.resume();
          req.on('end', () => next());
        });
        host.use(amp());
      });
      const received = upstream.record();
      const res = await send(`${app.url}/api/internal?x`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"a":1}',
      });
      assert.equal(res.status, 500);
      assert.equal((res.json() as { error: string }).error, 'amp_body_unavailable');
      assert.equal(received.requests.length, 0);
    });
  });
}

describe('uploads are streamed, never buffered whole', () => {
  // Streaming is proven where it can be observed: the upstream answers on the first bytes of a
  // body whose end the client has not sent (a gateway that buffered would never get there, and
  // the test would fail by its timeout).
  it(
    'the upstream sees the first bytes of a 100 MB body before the client has sent the rest',
    { timeout: 5000 },
    async () => {
      const upstream = await startUpstream(
        (req, res) => {
          req.once('data', () => res.end('first bytes arrived'));
        },
        { streaming: true },
      );
      const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k' });
      const proxy = await listen((req, res) => router(req, res));
      const socket = connect(proxy.port, '127.0.0.1');
      try {
        const answer = await new Promise<string>((resolve) => {
          let text = '';
          socket.on('data', (chunk) => {
            text += chunk;
            if (text.includes('first bytes arrived')) resolve(text);
          });
          socket.write(
            'POST /api/provider/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n' +
              'a'.repeat(65536),
          );
        });
        assert.match(answer, /first bytes arrived/);
      } finally {
        socket.destroy();
        await proxy.close();
        await upstream.close();
      }
    },
  );
});
