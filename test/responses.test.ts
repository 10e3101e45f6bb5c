import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const JSON_BODY = JSON.stringify({ ok: true, result: { threads: ['T-1', 'T-2'] } });

describe('responses', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
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
          setTimeout(() => res.end(',{"n":2}]'), 300);
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

  it('a gzip body without Content-Encoding is decoded', async () => {
    const res = await send(`${app.url}/api/undeclared-gzip`);
    assert.equal(res.status, 200);
    assert.equal(res.body, JSON_BODY);
    assert.equal(res.headers['content-encoding'], undefined);
  });

  it('a streamed (chunked) response gets its headers and first bytes at once', async () => {
    const firstBytes = await new Promise<{ headersAt: number; firstAt: number; first: string }>((resolve) => {
      const started = Date.now();
      request(`${app.url}/api/chunked-json`, { agent: false }, (res) => {
        const headersAt = Date.now() - started;
        res.once('data', (chunk: Buffer) => {
          resolve({ headersAt, firstAt: Date.now() - started, first: chunk.toString() });
          res.resume();
        });
      }).end();
    });
    assert.equal(firstBytes.first, '[{"n":1}');
    assert.ok(firstBytes.firstAt < 250, `first bytes after ${firstBytes.firstAt} ms`);
  });

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
