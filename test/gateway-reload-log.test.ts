import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadedAmpConfig } from '../src/index.js';
import { changedPaths, reloadConfig } from '../src/gateway/reload.js';

describe('the option paths a reload logs (no sockets)', () => {
  it('names the paths that changed, never the values', () => {
    const before = {
      upstream: 'https://a',
      policies: { management: 'passthrough' },
      clients: [{ key: 'gw-a…' }],
    };
    const after = {
      upstream: 'https://a',
      policies: { management: 'inject' },
      clients: [{ key: 'gw-b…' }, {}],
    };
    assert.deepEqual(changedPaths(before, after), ['policies.management', 'clients[0].key', 'clients[1]']);
  });

  it('reports nothing for equal values and the whole for values of different kinds', () => {
    assert.deepEqual(changedPaths({ a: [1] }, { a: [1] }), []);
    assert.deepEqual(changedPaths({ a: [1] }, { a: { 0: 1 } }), ['a']);
    assert.deepEqual(changedPaths(null, {}), ['(all)']);
  });
});

describe('what a reload logs (no sockets)', () => {
  const loaded = (upstreamKey: string): LoadedAmpConfig =>
    ({
      options: { upstreamKey, clients: [{ key: 'gw-a', name: 'a' }] },
      gateway: { port: 8317, host: '127.0.0.1', metricsPath: undefined },
    }) as unknown as LoadedAmpConfig;
  const recordingLogger = () => {
    const lines: { level: string; object: object; message: string | undefined }[] = [];
    const at =
      (level: string) =>
      (object: object, message?: string): void => {
        lines.push({ level, object, message });
      };
    return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
  };

  it('a rotated key that keeps its first characters is a change, logged once and by path only', async () => {
    const { logger, lines } = recordingLogger();
    await reloadConfig(
      loaded('sk-ant-OLD-secret'),
      async () => loaded('sk-ant-NEW-secret'),
      () => undefined,
      logger,
    );
    assert.deepEqual(lines, [
      { level: 'info', object: { changed: ['upstreamKey'] }, message: 'configuration reloaded' },
    ]);
    assert.ok(!JSON.stringify(lines).includes('sk-ant'));
  });

  it('a changed port alone is logged as port, not port and host', async () => {
    const { logger, lines } = recordingLogger();
    const before = loaded('sk-ant-same');
    const after = { ...before, gateway: { ...before.gateway, port: 9000 } };
    await reloadConfig(
      before,
      async () => after,
      () => undefined,
      logger,
    );
    assert.deepEqual(lines[0], {
      level: 'warn',
      object: { changed: ['port'] },
      message: 'listen address changes need a restart',
    });
  });

  it('a save that changes nothing logs nothing', async () => {
    const { logger, lines } = recordingLogger();
    await reloadConfig(
      loaded('sk-ant-same'),
      async () => loaded('sk-ant-same'),
      () => undefined,
      logger,
    );
    assert.deepEqual(lines, []);
  });
});
