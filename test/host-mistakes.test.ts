// Mistakes host apps make, answered out loud instead of failing silently (or breaking the host).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { ampProviderProxy, ampRouter, type AmpLogger } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send, sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

function recordingLogger(): AmpLogger & { warnings: { code?: unknown; message?: string }[] } {
  const warnings: { code?: unknown; message?: string }[] = [];
  const ignore = (): void => undefined;
  return {
    info: ignore,
    error: ignore,
    warn: (object: object, message?: string) => warnings.push({ ...object, message }),
    warnings,
  };
}

describe('host mistakes', () => {
  let upstream: FakeUpstream;
  const apps: RunningApp[] = [];
  before(async () => {
    upstream = await startUpstream();
  });
  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await upstream.close();
  });
  const start = async (app: Parameters<typeof listen>[0]): Promise<RunningApp> => {
    const running = await listen(app);
    apps.push(running);
    return running;
  };

  it('app.use(ampRouter) uncalled: every Amp request gets a 500 saying what to write, the host keeps its own routes', async () => {
    const hostErrors: unknown[] = [];
    const host = express();
    host.use(ampRouter as never);
    host.get('/health', (_req, res) => res.send('ok'));
    host.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      hostErrors.push(error);
      res.status(599).end();
    });
    const app = await start(host);
    const warnings: (Error & { code?: string })[] = [];
    const onWarning = (warning: Error & { code?: string }) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const before = upstream.requests.length;
      for (const path of [
        '/api/threads',
        '/api/provider/openai/v1/chat/completions',
        '/threads/T-1',
        '/api/threads',
      ]) {
        const res = await send(`${app.url}${path}`);
        assert.equal(res.status, 500, path);
        assert.equal((res.json() as { error: string }).error, 'amp_factory_not_called', path);
        const health = await send(`${app.url}/health`);
        assert.equal(health.status, 200);
        assert.equal(health.body, 'ok');
      }
      assert.equal(upstream.requests.length, before);
      const ours = warnings.filter((warning) => warning.code === 'amp_factory_not_called');
      assert.equal(ours.length, 1);
      assert.match(ours[0]!.message, /app\.use\(ampRouter\(\)\)/);
      assert.deepEqual(hostErrors, []);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('app.use(ampProviderProxy) uncalled: its own paths get the 500, the rest reach the host', async () => {
    const host = express();
    host.use(ampProviderProxy as never);
    host.get('/api/threads', (_req, res) => res.send('host'));
    const app = await start(host);
    const provider = await send(`${app.url}/api/provider/anthropic/v1/messages`);
    assert.equal(provider.status, 500);
    assert.equal((provider.json() as { error: string }).error, 'amp_factory_not_called');
    const management = await send(`${app.url}/api/threads`);
    assert.equal(management.status, 200);
    assert.equal(management.body, 'host');
  });

  it('a WebSocket upgrade that reaches the HTTP middleware gets 426 and one warning: attachUpgrade was forgotten', async () => {
    const logger = recordingLogger();
    const before = upstream.requests.length;
    const app = await start(ampRouter({ upstream: upstream.url, upstreamKey: 'k', logger }));
    const handshake =
      'GET /actors/gateway/threadActor/websocket/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await sendRaw(
        app.port,
        handshake.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'),
      );
      assert.match(response, /^HTTP\/1\.1 426 /);
      assert.match(response, /"error":"amp_websocket_not_attached"/);
      assert.match(response, /attachUpgrade\(server, middleware\)/);
    }
    assert.equal(upstream.requests.length, before);
    assert.equal(logger.warnings.length, 1);
    assert.equal(logger.warnings[0]!.code, 'amp_websocket_not_attached');
    // A plain request to the same route is still served.
    assert.equal((await send(`${app.url}/actors/gateway/x`)).status, 200);
  });

  it('a single-group factory mounted where its paths never arrive warns once, naming the mount point', async () => {
    const logger = recordingLogger();
    const host = express();
    host.use('/api', ampProviderProxy({ upstream: upstream.url, upstreamKey: 'k', logger }));
    const app = await start(host);
    for (let attempt = 0; attempt < 2; attempt++) {
      assert.equal(
        (await send(`${app.url}/api/provider/anthropic/v1/messages`, { method: 'POST' })).status,
        404,
      );
    }
    assert.equal(logger.warnings.length, 1);
    assert.equal(logger.warnings[0]!.code, 'amp_mount_path');
    assert.match(logger.warnings[0]!.message ?? '', /mounted at \/api\b.*mount it at \/api\/provider/);
  });
});
