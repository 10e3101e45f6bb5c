import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ampRouter } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

// The bug this library exists to fix: one auth rule for every route. Identity routes must see
// the user's own token; provider routes must see the server key.
for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`seed scenario (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;

    before(async () => {
      upstream = await startUpstream();
      const host = express();
      host.use(ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' }));
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    it("GET /api/threads/T-1 reaches the upstream with the user's own token", async () => {
      upstream.requests.length = 0;
      const res = await send(`${app.url}/api/threads/T-1`, {
        headers: { authorization: 'Bearer user-token' },
      });
      assert.equal(res.status, 200);
      const seen = upstream.only();
      assert.equal(seen.url, '/api/threads/T-1');
      assert.equal(seen.headers.authorization, 'Bearer user-token');
      assert.equal(seen.headers['x-api-key'], undefined);
    });

    it('POST /api/provider/anthropic/v1/messages reaches the upstream with the server key', async () => {
      upstream.requests.length = 0;
      const body = JSON.stringify({ model: 'claude', messages: [] });
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer user-token', 'content-type': 'application/json' },
        body,
      });
      assert.equal(res.status, 200);
      const seen = upstream.only();
      assert.equal(seen.url, '/api/provider/anthropic/v1/messages');
      assert.equal(seen.headers.authorization, 'Bearer server-key');
      assert.equal(seen.headers['x-api-key'], 'server-key');
      assert.equal(seen.body.toString(), body);
    });
  });
}
