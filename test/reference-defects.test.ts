import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import cors from 'cors';
import express from 'express';
import { WebSocket, WebSocketServer } from 'ws';
import { ampRouter, attachUpgrade } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send, sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

// One regression test per defect of the reference implementation this library replaces.
describe('defects of the reference implementation stay fixed', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  before(async () => {
    upstream = await startUpstream();
    const host = express();
    // The documented order: the router before the host's CORS middleware, which would
    // otherwise answer preflights itself.
    host.use(ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' }));
    host.use(cors());
    app = await listen(host);
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  it('defect 1 (one auth rule for every group): identity routes carry the user token, provider routes the server key', async () => {
    upstream.requests.length = 0;
    await send(`${app.url}/api/user/settings`, { headers: { authorization: 'Bearer user-token' } });
    await send(`${app.url}/api/provider/anthropic/v1/messages`, {
      headers: { authorization: 'Bearer user-token' },
    });
    assert.deepEqual(
      upstream.requests.map((r) => r.headers.authorization),
      ['Bearer user-token', 'Bearer server-key'],
    );
  });

  it('defect 2 (root pages sent with the server key): browser pages never get it', async () => {
    upstream.requests.length = 0;
    for (const path of ['/threads', '/auth/cli-login', '/docs', '/settings']) await send(`${app.url}${path}`);
    for (const seen of upstream.requests) {
      assert.equal(seen.headers.authorization, undefined);
      assert.equal(seen.headers['x-api-key'], undefined);
    }
  });

  it('defect 3 (undecoded, uncleaned paths): /threads/../api/user and /threads/%2e%2e/api/user are refused', async () => {
    upstream.requests.length = 0;
    for (const path of ['/threads/../api/user', '/threads/%2e%2e/api/user']) {
      const response = await sendRaw(
        app.port,
        `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      assert.match(response, /^HTTP\/1\.1 400 .*amp_bad_path/s);
    }
    assert.equal(upstream.requests.length, 0);
  });

  it('defect 4 (X-Forwarded-For re-added; preflight 403 lost behind host CORS)', async () => {
    upstream.requests.length = 0;
    await send(`${app.url}/api/threads`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(upstream.only().headers['x-forwarded-for'], undefined);
    const preflight = await send(`${app.url}/api/threads`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.status, 403);
  });

  it('defect 5 (unbounded buffering): uploads stream and undeclared-gzip responses are capped', async () => {
    // Streaming is proven where it can be observed: the upstream sees the first bytes of a
    // body whose end the client has not yet sent.
    const streamingUpstream = await startUpstream(
      (req, res) => {
        req.once('data', () => res.end('first bytes arrived'));
      },
      { streaming: true },
    );
    const router = ampRouter({ upstream: streamingUpstream.url, upstreamKey: 'k' });
    const proxy = await listen((req, res) => router(req, res));
    try {
      const socket = connect(proxy.port, '127.0.0.1');
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        socket.on('data', (c) => {
          text += c;
          if (text.includes('first bytes arrived')) resolve(text);
        });
        socket.write(
          'POST /api/provider/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n' + 'a'.repeat(65536),
        );
        setTimeout(() => resolve('buffered'), 2000);
      });
      socket.destroy();
      assert.match(answer, /first bytes arrived/);
    } finally {
      await proxy.close();
      await streamingUpstream.close();
    }
  });

  it('defect 6 (stale Content-Length after a body rewrite): a parsed gzip body is re-sent with matching headers', async () => {
    const host = express();
    host.use(express.json());
    host.use(ampRouter({ upstream: upstream.url, upstreamKey: 'k' }));
    const parsed = await listen(host);
    try {
      upstream.requests.length = 0;
      const body = JSON.stringify({ method: 'x', params: { big: 'y'.repeat(30_000) } });
      const res = await send(`${parsed.url}/api/internal?x`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: gzipSync(body),
      });
      assert.equal(res.status, 200);
      const seen = upstream.only();
      assert.equal(seen.headers['content-encoding'], undefined);
      assert.equal(Number(seen.headers['content-length']), seen.body.length);
      assert.deepEqual(JSON.parse(seen.body.toString()), JSON.parse(body));
    } finally {
      await parsed.close();
    }
  });

  it("defect 7 (fixed allow-list, no WebSocket): unknown /api routes are proxied and Amp's WebSocket is tunnelled", async () => {
    upstream.requests.length = 0;
    const res = await send(`${app.url}/api/route-from-next-release/x?y=1`);
    assert.equal(res.status, 200);
    assert.equal(upstream.only().url, '/api/route-from-next-release/x?y=1');

    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'rivet' });
    await new Promise((resolve) => wss.once('listening', resolve));
    wss.on('connection', (socket) => socket.send('hello'));
    const router = ampRouter({ upstream: `http://127.0.0.1:${(wss.address() as { port: number }).port}` });
    const gateway = await listen((req, res) => router(req, res));
    attachUpgrade(gateway.server, router);
    try {
      const client = new WebSocket(`ws://127.0.0.1:${gateway.port}/actors/gateway/threadActor/websocket/`, [
        'rivet',
      ]);
      const message = await new Promise<string>((resolve, reject) => {
        client.once('message', (data: Buffer) => resolve(data.toString()));
        client.once('error', reject);
      });
      assert.equal(message, 'hello');
      client.close();
    } finally {
      await router.close();
      await gateway.close();
      for (const client of wss.clients) client.terminate();
      wss.close();
    }
  });

  it('defect 8 (secrets file always read as apiKey@https://ampcode.com/): the entry of the configured upstream is used', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amp-defect8-'));
    const saved = process.env.AMP_API_KEY;
    delete process.env.AMP_API_KEY;
    try {
      const file = join(dir, 'secrets.json');
      await writeFile(
        file,
        JSON.stringify({
          'apiKey@https://ampcode.com/': 'wrong-server',
          [`apiKey@${upstream.url}/`]: 'right-server',
        }),
      );
      const router = ampRouter({ upstream: upstream.url, secretsFile: file });
      const proxy = await listen((req, res) => router(req, res));
      try {
        upstream.requests.length = 0;
        await send(`${proxy.url}/api/provider/x`);
        assert.equal(upstream.only().headers['x-api-key'], 'right-server');
      } finally {
        await proxy.close();
      }
    } finally {
      if (saved !== undefined) process.env.AMP_API_KEY = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
