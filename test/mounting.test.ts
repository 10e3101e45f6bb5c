import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ampManagementProxy, ampProviderProxy, ampRouter } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`mounting in host apps (${name})`, () => {
    let upstream: FakeUpstream;
    const apps: RunningApp[] = [];
    const start = async (setup: (app: ReturnType<typeof express>) => void) => {
      const app = express();
      setup(app);
      const running = await listen(app);
      apps.push(running);
      return running;
    };
    const options = () => ({ upstream: upstream.url, upstreamKey: 'server-key' });

    before(async () => {
      upstream = await startUpstream();
    });
    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await upstream.close();
    });

    it('at the root of an existing app, it claims Amp paths and leaves the rest to the host', async () => {
      const app = await start((host) => {
        host.get('/before', (_req, res) => void res.send('host before'));
        host.use(ampRouter(options()));
        host.get('/after', (_req, res) => void res.send('host after'));
        host.get('/apiary', (_req, res) => void res.send('host apiary'));
        host.get('/threadsafe', (_req, res) => void res.send('host threadsafe'));
      });
      const received = upstream.record();
      assert.equal((await send(`${app.url}/before`)).body, 'host before');
      assert.equal((await send(`${app.url}/after`)).body, 'host after');
      assert.equal((await send(`${app.url}/apiary`)).body, 'host apiary');
      assert.equal((await send(`${app.url}/threadsafe`)).body, 'host threadsafe');
      assert.equal((await send(`${app.url}/nothing-here`)).status, 404);
      assert.equal(received.requests.length, 0);

      for (const path of [
        '/api/internal?getUserInfo',
        '/api/some-route-from-next-release/x',
        '/api',
        '/actors/gateway/threadActor/request/raw-thread?rvt-namespace=n&rvt-method=get',
        '/auth/cli-login?authToken=abc',
        '/threads',
        '/threads/T-1',
        '/threads.rss',
        '/news.rss',
        '/docs/getting-started',
        '/settings',
      ]) {
        const res = await send(`${app.url}${path}`);
        assert.equal(res.status, 200, path);
        assert.equal(received.last().url, path);
      }
    });

    it('under a mount path, it forwards paths relative to it', async () => {
      const app = await start((host) => host.use('/amp', ampRouter(options())));
      const received = upstream.record();
      const res = await send(`${app.url}/amp/api/threads/T-1?x=1`, {
        headers: { authorization: 'Bearer user' },
      });
      assert.equal(res.status, 200);
      assert.equal(received.only().url, '/api/threads/T-1?x=1');
      assert.equal((await send(`${app.url}/api/threads/T-1`)).status, 404);
    });

    it('inside an express.Router under a prefix', async () => {
      const app = await start((host) => {
        const router = express.Router();
        router.use(ampRouter(options()));
        host.use('/gateway', router);
      });
      const received = upstream.record();
      assert.equal((await send(`${app.url}/gateway/api/provider/openai/v1/responses`)).status, 200);
      assert.equal(received.only().url, '/api/provider/openai/v1/responses');
    });

    it('single-group factories at their documented mount points, with host middleware in front of one group', async () => {
      const seenBySso: string[] = [];
      const app = await start((host) => {
        const router = express.Router();
        router.use('/api/provider', (req, res, next) => {
          seenBySso.push(req.originalUrl);
          if (req.headers['x-sso'] !== 'ok') return void res.status(403).send('sso says no');
          next();
        });
        router.use('/api/provider', ampProviderProxy(options()));
        router.use('/api', ampManagementProxy(options()));
        host.use(router);
      });
      const received = upstream.record();
      assert.equal((await send(`${app.url}/api/provider/anthropic/v1/messages`)).status, 403);
      assert.equal(received.requests.length, 0);

      const provider = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
        headers: { 'x-sso': 'ok', authorization: 'Bearer user' },
      });
      assert.equal(provider.status, 200);
      assert.equal(received.last().url, '/api/provider/anthropic/v1/messages');
      assert.equal(received.last().headers.authorization, 'Bearer server-key');

      const management = await send(`${app.url}/api/threads/find?q=x&limit=5`, {
        headers: { authorization: 'Bearer user' },
      });
      assert.equal(management.status, 200);
      assert.equal(received.last().url, '/api/threads/find?q=x&limit=5');
      assert.equal(received.last().headers.authorization, 'Bearer user');
      assert.deepEqual(seenBySso, [
        '/api/provider/anthropic/v1/messages',
        '/api/provider/anthropic/v1/messages',
      ]);
    });

    it('the management factory never serves provider paths, even mounted before the provider one', async () => {
      const app = await start((host) => {
        host.use('/api', ampManagementProxy(options()));
        host.use((_req, res) => void res.status(418).send('fell through'));
      });
      const received = upstream.record();
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
        headers: { authorization: 'Bearer user' },
      });
      assert.equal(res.status, 418);
      assert.equal(received.requests.length, 0);
    });

    it('single-group factories also work mounted at the root', async () => {
      const app = await start((host) => {
        host.use(ampProviderProxy(options()));
        host.use(ampManagementProxy(options()));
      });
      const received = upstream.record();
      await send(`${app.url}/api/provider/google/v1beta/models/gemini:streamGenerateContent?alt=sse`);
      await send(`${app.url}/api/internal?listThreads`, { method: 'POST', body: '{}' });
      assert.deepEqual(
        received.requests.map((r) => [r.url, r.headers.authorization]),
        [
          ['/api/provider/google/v1beta/models/gemini:streamGenerateContent?alt=sse', 'Bearer server-key'],
          ['/api/internal?listThreads', undefined],
        ],
      );
    });

    it('route groups ignore case, so a case-insensitive upstream cannot be reached under a laxer policy', async () => {
      const app = await start((host) => host.use(ampRouter(options())));
      const received = upstream.record();
      await send(`${app.url}/API/Provider/anthropic/v1/messages`, {
        headers: { authorization: 'Bearer user' },
      });
      assert.equal(received.only().headers.authorization, 'Bearer server-key');
    });
  });
}

describe('without Express', () => {
  it('works as a plain node:http handler and answers 404 for paths it does not own', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k' });
    const app = await listen((req, res) => router(req, res));
    try {
      assert.equal((await send(`${app.url}/api/threads`)).status, 200);
      assert.equal((await send(`${app.url}/elsewhere`)).status, 404);
    } finally {
      await app.close();
      await router.close();
      await upstream.close();
    }
  });

  it('an upstream with a path prefix prefixes every forwarded path', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({ upstream: `${upstream.url}/tenant/a/`, upstreamKey: 'k' });
    const app = await listen((req, res) => router(req, res));
    try {
      await send(`${app.url}/api/threads/T-1?q=1`);
      assert.equal(upstream.only().url, '/tenant/a/api/threads/T-1?q=1');
    } finally {
      await app.close();
      await upstream.close();
    }
  });

  it('the Host header names the upstream, not the gateway', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k' });
    const app = await listen((req, res) => router(req, res));
    try {
      await send(`${app.url}/api/threads`);
      assert.equal(upstream.only().headers.host, `127.0.0.1:${upstream.port}`);
    } finally {
      await app.close();
      await upstream.close();
    }
  });
});
