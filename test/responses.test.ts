import assert from 'node:assert/strict';
import { request, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const JSON_BODY = JSON.stringify({ ok: true, result: { threads: ['T-1', 'T-2'] } });

describe('responses', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  /** Streamed answers after their first bytes, held open until the test has seen those bytes. */
  const heldResponses = new WaitableList<ServerResponse>();
  before(async () => {
    upstream = await startUpstream((req, res) => {
      switch (req.url) {
        case '/api/undeclared-gzip': {
          const body = gzipSync(JSON_BODY);
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
          res.end(body);
          return;
        }
        case '/api/chunked-json':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('[{"n":1}');
          heldResponses.push(res);
          return;
        case '/api/declared-gzip':
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
          res.end(gzipSync(JSON_BODY));
          return;
        case '/api/provider/sse-gzip-bytes':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end(Buffer.from([0x1f, 0x8b, 0x08, 0x00]));
          return;
        case '/api/headers':
          res.writeHead(201, 'Made It', {
            'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
            location: 'https://ampcode.com/threads/T-1',
            'x-amp-request-id': 'r-1',
            'content-type': 'text/plain',
          });
          res.end('created');
          return;
        case '/api/hop-by-hop':
          res.writeHead(200, {
            'content-type': 'text/plain',
            'keep-alive': 'timeout=5',
            'proxy-connection': 'keep-alive',
            te: 'trailers',
            trailer: 'x-checksum',
          });
          res.addTrailers({ 'x-checksum': '1' });
          res.end('hop');
          return;
        case '/api/empty':
          res.writeHead(204);
          res.end();
          return;
        default:
          res.end(JSON_BODY);
      }
    });
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k' });
    app = await listen((req, res) => router(req, res));
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  it("the upstream hop's connection headers (RFC 9110 §7.6.1) and its Trailer do not reach the client", async () => {
    const res = await send(`${app.url}/api/hop-by-hop`);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hop');
    for (const name of ['keep-alive', 'proxy-connection', 'te', 'trailer']) {
      assert.equal(res.headers[name], undefined, name);
    }
  });

  it('a gzip body without Content-Encoding is decoded', async () => {
    const res = await send(`${app.url}/api/undeclared-gzip`);
    assert.equal(res.status, 200);
    assert.equal(res.body, JSON_BODY);
    assert.equal(res.headers['content-encoding'], undefined);
  });

  // A gateway that buffers never shows the first bytes, and the test fails by its timeout.
  it(
    'a streamed (chunked) response gets its headers and first bytes at once',
    { timeout: 5000 },
    async () => {
      const mark = heldResponses.mark();
      const { first, all } = await new Promise<{ first: string; all: Promise<string> }>((resolve) => {
        request(`${app.url}/api/chunked-json`, { agent: false }, (res) => {
          let text = '';
          const all = new Promise<string>((done) => res.on('end', () => done(text)));
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (text === '') resolve({ first: chunk, all });
            text += chunk;
          });
        }).end();
      });
      assert.equal(first, '[{"n":1}');
      const [held] = await heldResponses.until(mark, (responses) => responses.length > 0);
      held!.end(',{"n":2}]');
      assert.equal(await all, '[{"n":1},{"n":2}]');
    },
  );

  it('a declared gzip body is passed through untouched', async () => {
    const raw = await new Promise<Buffer>((resolve) => {
      request(`${app.url}/api/declared-gzip`, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      }).end();
    });
    assert.deepEqual(raw, gzipSync(JSON_BODY));
  });

  it('event streams are never decoded, whatever their first bytes', async () => {
    const raw = await new Promise<Buffer>((resolve) => {
      request(`${app.url}/api/provider/sse-gzip-bytes`, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      }).end();
    });
    assert.deepEqual(raw, Buffer.from([0x1f, 0x8b, 0x08, 0x00]));
  });

  it('status, status message and repeated headers arrive as the upstream sent them', async () => {
    const res = await new Promise<{
      status: number;
      message: string;
      headers: Record<string, unknown>;
      body: string;
    }>((resolve) => {
      request(`${app.url}/api/headers`, { agent: false }, (r) => {
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () =>
          resolve({ status: r.statusCode ?? 0, message: r.statusMessage ?? '', headers: r.headers, body }),
        );
      }).end();
    });
    assert.equal(res.status, 201);
    assert.equal(res.message, 'Made It');
    assert.deepEqual(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
    assert.equal(res.headers.location, 'https://ampcode.com/threads/T-1');
    assert.equal(res.headers['x-amp-request-id'], 'r-1');
    assert.equal(res.body, 'created');
  });

  it('empty responses and HEAD requests complete', async () => {
    assert.equal((await send(`${app.url}/api/empty`)).status, 204);
    const head = await send(`${app.url}/api/threads`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });
});
