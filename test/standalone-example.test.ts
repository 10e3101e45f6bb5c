import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { loadGatewayConfig, startGateway } from '../src/gateway/gateway.js';
import { send } from './support/client.js';
import { startUpstream } from './support/upstream.js';

const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'standalone');
const KEYS = {
  AMP_TEAM_KEY: 'team-key-123456',
  ALICE_GATEWAY_KEY: 'gw-alice-123456',
  BOB_GATEWAY_KEY: 'gw-bob-123456',
};

const readJson = (...path: string[]) =>
  JSON.parse(readFileSync(join(...path), 'utf8')) as Record<string, unknown>;

describe('examples/standalone', () => {
  it('installs what `npx amp-proxy` and its config need: the bin, and prom-client for metricsPath', async () => {
    const { dependencies } = readJson(EXAMPLE, 'package.json') as { dependencies: Record<string, string> };
    const { bin } = readJson(import.meta.dirname, '..', 'package.json') as { bin: Record<string, string> };
    assert.ok('amp-proxy' in bin);
    assert.equal(dependencies['amp-proxy-middleware'], 'file:../..');
    assert.match(readFileSync(join(EXAMPLE, 'README.md'), 'utf8'), /^npx amp-proxy$/m);

    const loaded = await loadGatewayConfig({ cwd: EXAMPLE, env: KEYS });
    assert.equal(loaded.filepath, join(EXAMPLE, '.amp-proxyrc.yaml'));
    // metricsPath is set, so prom-client must be installed: without it the gateway refuses to start.
    assert.equal(loaded.gateway.metricsPath, '/metrics');
    assert.ok('prom-client' in dependencies);
    // A team gateway: the team's Amp CLIs need management and actors from other machines too.
    assert.equal(loaded.effective.restrictManagementToLocalhost, false);
  });

  it('runs from its config file, with keys from env and files', async () => {
    const upstream = await startUpstream();
    const gateway = await startGateway({
      cwd: EXAMPLE,
      port: 0,
      env: { AMP_PROXY_UPSTREAM: upstream.url, ...KEYS },
      output: new PassThrough(),
      watch: false,
    });
    try {
      await send(`${gateway.url}/api/provider/anthropic/v1/messages`, {
        headers: { authorization: 'Bearer gw-bob-123456' },
      });
      await send(`${gateway.url}/api/threads/T-1`, { headers: { authorization: 'Bearer gw-alice-123456' } });
      assert.deepEqual(
        upstream.requests.map((r) => [r.url, r.headers.authorization]),
        [
          ['/api/provider/anthropic/v1/messages', 'Bearer bob-own-amp-key-replace-me'],
          ['/api/threads/T-1', 'Bearer alice-own-amp-key-replace-me'],
        ],
      );
      const login = await send(`${gateway.url}/auth/cli-login?authToken=t`);
      assert.equal(login.status, 302);
      assert.equal(login.headers.location, `${upstream.url}/auth/cli-login?authToken=t`);
      assert.equal((await send(`${gateway.url}/metrics`)).status, 200);
    } finally {
      await gateway.shutdown(100);
      await upstream.close();
    }
  });
});
