// Upstream failures say why — in the request's event and log line, and in /readyz — as an error
// code an operator can act on, never a message, an address or a key.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { ampRouter, upstreamFailureCause, type AmpProxyEvent } from '../src/index.js';
import { startGateway } from '../src/gateway/gateway.js';
import { listen } from './support/apps.js';
import { send } from './support/client.js';
import { closedPort } from './support/upstream.js';

describe('why the upstream failed', () => {
  it('a refused connection: 502, and the event and log line carry ECONNREFUSED', async () => {
    const events: AmpProxyEvent[] = [];
    const lines: object[] = [];
    const ignore = (): void => undefined;
    const router = ampRouter({
      upstream: `http://127.0.0.1:${await closedPort()}`,
      upstreamKey: 'server-key-failure-7',
      onProxyEvent: (event) => events.push(event),
      logger: { info: ignore, error: ignore, warn: (line: object) => lines.push(line) },
    });
    const app = await listen((req, res) => router(req, res));
    try {
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 502);
      assert.deepEqual(res.json(), {
        error: 'amp_upstream_proxy_error',
        message: 'Failed to reach the Amp upstream.',
        cause: 'ECONNREFUSED',
      });
      const end = events.find((event) => event.type === 'request-end');
      assert.ok(end && end.type === 'request-end');
      assert.equal(end.outcome, 'upstream-error');
      assert.equal(end.cause, 'ECONNREFUSED');
      assert.equal((lines[0] as { cause?: string }).cause, 'ECONNREFUSED');
      assert.ok(!JSON.stringify(lines).includes('server-key-failure-7'));
    } finally {
      await app.close();
    }
  });

  it('only error codes count as causes: anything else is "unknown"', () => {
    assert.equal(
      upstreamFailureCause(Object.assign(new Error('x'), { code: 'CERT_HAS_EXPIRED' })),
      'CERT_HAS_EXPIRED',
    );
    assert.equal(
      upstreamFailureCause(Object.assign(new Error('x'), { code: 'Bearer sk-secret' })),
      'unknown',
    );
    assert.equal(upstreamFailureCause(new Error('connect ECONNREFUSED 10.0.0.1:443')), 'unknown');
    assert.equal(upstreamFailureCause(undefined), 'unknown');
  });

  it('/readyz says why the upstream is unreachable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amp-readyz-'));
    await writeFile(join(dir, 'package.json'), '{}');
    const gateway = await startGateway({
      cwd: dir,
      port: 0,
      env: { AMP_PROXY_UPSTREAM: `http://127.0.0.1:${await closedPort()}` },
      output: new PassThrough(),
      watch: false,
    });
    try {
      const res = await send(`${gateway.url}/readyz`);
      assert.equal(res.status, 503);
      assert.deepEqual(res.json(), { status: 'upstream unreachable', cause: 'ECONNREFUSED' });
    } finally {
      await gateway.shutdown(1000);
    }
  });
});
