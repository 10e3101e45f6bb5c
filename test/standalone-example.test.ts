import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { startGateway } from '../src/gateway/gateway.js';
import { send } from './support/client.js';
import { startUpstream } from './support/upstream.js';

describe('examples/standalone', () => {
  it('runs from its config file, with keys from env and files', async () => {
    const upstream = await startUpstream();
    const gateway = await startGateway({
      cwd: join(import.meta.dirname, '..', 'examples', 'standalone'),
      port: 0,
      env: {
        AMP_PROXY_UPSTREAM: upstream.url,
        AMP_TEAM_KEY: 'team-key-123456',
        ALICE_GATEWAY_KEY: 'gw-alice-123456',
        BOB_GATEWAY_KEY: 'gw-bob-123456',
      },
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
