import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import cors from 'cors';
import { ampRouter } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

// The bug this library exists to fix: a proxy with one auth rule for every route, which sent the
// server key to identity routes and browser pages too. With the default policies, identity routes
// see the user's own token, provider routes the server key, and browser pages never the server key.
for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`each route group gets its own credential (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;

    before(async () => {
      upstream = await startUpstream();
      const host = express();
      // The documented order: the router before the host's CORS middleware.
      host.use(ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' }));
      host.use(cors());
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    for (const path of ['/api/threads/T-1', '/api/user/settings']) {
      it(`GET ${path} reaches the upstream with the user's own token`, async () => {
        const received = upstream.record();
        const res = await send(`${app.url}${path}`, {
          headers: { authorization: 'Bearer user-token' },
        });
        assert.equal(res.status, 200);
        const seen = received.only();
        assert.equal(seen.url, path);
        assert.equal(seen.headers.authorization, 'Bearer user-token');
        assert.equal(seen.headers['x-api-key'], undefined);
      });
    }

    it('POST /api/provider/anthropic/v1/messages reaches the upstream with the server key', async () => {
      const received = upstream.record();
      const body = JSON.stringify({ model: 'claude', messages: [] });
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer user-token', 'content-type': 'application/json' },
        body,
      });
      assert.equal(res.status, 200);
      const seen = received.only();
      assert.equal(seen.url, '/api/provider/anthropic/v1/messages');
      assert.equal(seen.headers.authorization, 'Bearer server-key');
      assert.equal(seen.headers['x-api-key'], 'server-key');
      assert.equal(seen.body.toString(), body);
    });

    it("browser pages never carry the server key: no credential when none was sent, else the user's own", async () => {
      const received = upstream.record();
      const bare = ['/threads', '/threads/T-1', '/auth/cli-login', '/docs', '/settings'];
      for (const path of bare) assert.equal((await send(`${app.url}${path}`)).status, 200, path);
      await send(`${app.url}/settings`, { headers: { authorization: 'Bearer user' } });
      const seen = received.requests;
      assert.deepEqual(
        seen.map((r) => r.url),
        [...bare, '/settings'],
      );
      for (const page of seen.slice(0, bare.length)) {
        assert.equal(page.headers.authorization, undefined, page.url);
        assert.equal(page.headers['x-api-key'], undefined, page.url);
      }
      assert.equal(seen.at(-1)!.headers.authorization, 'Bearer user');
      for (const page of seen) assert.ok(!page.rawHeaders.join('\n').includes('server-key'), page.url);
    });
  });
}
