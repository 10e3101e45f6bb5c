import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { ampRouter, attachUpgrade, AmpProxyConfigError } from '../src/index.js';
import { listen } from './support/apps.js';
import { send } from './support/client.js';
import { closeServer, startUpstream } from './support/upstream.js';

describe('reload', () => {
  it('swaps options atomically; in-flight requests finish with the options they started with', async () => {
    let releaseOld: () => void = () => undefined;
    const oldUpstream = await startUpstream(
      (req, res) => {
        if (req.url === '/api/provider/slow') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('old-start ');
          releaseOld = () => res.end('old-end');
          return;
        }
        res.end('old');
      },
      { streaming: true },
    );
    const newUpstream = await startUpstream((_req, res) => res.end('new'));
    const router = ampRouter({ upstream: oldUpstream.url, upstreamKey: 'old-key' });
    const app = await listen((req, res) => router(req, res));
    try {
      const slow = new Promise<string>((resolve) => {
        request(`${app.url}/api/provider/slow`, { agent: false }, (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
            if (text === 'old-start ') started();
          });
          res.on('end', () => resolve(text));
        }).end();
      });
      let started: () => void = () => undefined;
      await new Promise<void>((resolve) => (started = resolve));

      router.reload({
        upstream: newUpstream.url,
        upstreamKey: 'new-key',
        policies: { management: 'inject' },
      });
      assert.equal((await send(`${app.url}/api/provider/x`)).body, 'new');
      await send(`${app.url}/api/threads`, { headers: { authorization: 'Bearer user' } });
      assert.deepEqual(
        newUpstream.requests.map((r) => [r.url, r.headers.authorization]),
        [
          ['/api/provider/x', 'Bearer new-key'],
          ['/api/threads', 'Bearer new-key'],
        ],
      );

      releaseOld();
      assert.equal(await slow, 'old-start old-end');
      assert.equal(oldUpstream.requests[0]?.headers.authorization, 'Bearer old-key');
    } finally {
      await router.close();
      await app.close();
      await oldUpstream.close();
      await newUpstream.close();
    }
  });

  it('an invalid configuration is rejected and the old one stays', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k' });
    const app = await listen((req, res) => router(req, res));
    try {
      assert.throws(
        () => router.reload({ policies: { management: 'pass' as never } }),
        (error: unknown) => error instanceof AmpProxyConfigError && error.option === 'policies.management',
      );
      await send(`${app.url}/api/provider/x`);
      assert.equal(upstream.only().headers.authorization, 'Bearer k');
    } finally {
      await app.close();
      await upstream.close();
    }
  });
});

describe('reload, repeatedly', () => {
  it('keeps one proxy per group: server listeners do not pile up and nothing warns', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k' });
    const app = await listen((req, res) => router(req, res));
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      for (let round = 0; round < 20; round++) {
        router.reload({ upstream: upstream.url, upstreamKey: `k${round}` });
        for (const path of ['/api/provider/x', '/api/threads', '/actors/x', '/settings']) {
          await send(`${app.url}${path}`);
        }
      }
      assert.ok(
        app.server.listenerCount('close') <= 4,
        `${app.server.listenerCount('close')} close listeners`,
      );
      assert.equal(upstream.requests.at(-4)?.headers.authorization, 'Bearer k19');
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
      await app.close();
      await upstream.close();
    }
  });
});

describe('close', () => {
  it('ends open WebSocket tunnels with close code 1001', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    wss.on('connection', (socket) => {
      // Keep the upstream talking, so the close frame must not land inside one of its frames.
      const timer = setInterval(() => socket.send('x'.repeat(5000)), 1);
      socket.on('close', () => clearInterval(timer));
    });
    const router = ampRouter({ upstream: `http://127.0.0.1:${(wss.address() as AddressInfo).port}` });
    const server = createServer((req, res) => router(req, res));
    attachUpgrade(server, router);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = new WebSocket(
        `ws://127.0.0.1:${(server.address() as AddressInfo).port}/actors/gateway/x`,
      );
      const firstMessage = once(client, 'message');
      const closed = new Promise<number>((resolve) => client.on('close', (code) => resolve(code)));
      await firstMessage;
      await router.close();
      const code = await closed;
      assert.equal(code, 1001);
    } finally {
      for (const socket of wss.clients) socket.terminate();
      wss.close();
      await closeServer(server);
    }
  });
});
