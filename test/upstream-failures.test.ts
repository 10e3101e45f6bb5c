import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ampRouter } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

async function unusedPort(): Promise<number> {
  const probe = await listen((_req, res) => res.end());
  await probe.close();
  return probe.port;
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`upstream failures and client aborts (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;
    /** Resets the upstream connection of the pending `reset-mid-stream` request. */
    let resetUpstream: () => void = () => assert.fail('no reset-mid-stream request is pending');

    before(async () => {
      upstream = await startUpstream(
        (req, res) => {
          if (req.url?.startsWith('/api/provider/silent')) return; // never answers
          if (req.url?.startsWith('/api/provider/slow-stream')) {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write('data: first\n\n');
            const timer = setInterval(() => res.write('data: tick\n\n'), 50);
            res.on('close', () => clearInterval(timer));
            return;
          }
          if (req.url?.startsWith('/api/provider/reset-mid-stream')) {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write('data: first\n\n');
            // Reset once the client has the first event, so the reset comes mid-stream.
            resetUpstream = () => res.socket?.destroy();
            return;
          }
          res.end('{}');
        },
        { streaming: true },
      );
      const host = express();
      host.use(ampRouter({ upstream: upstream.url, upstreamKey: 'server-key', timeoutMs: 300 }));
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    it('an unreachable upstream gives 502 amp_upstream_proxy_error', async () => {
      const host = express();
      host.use(ampRouter({ upstream: `http://127.0.0.1:${await unusedPort()}`, upstreamKey: 'k' }));
      const unreachable = await listen(host);
      try {
        const res = await send(`${unreachable.url}/api/threads`);
        assert.equal(res.status, 502);
        assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
        assert.equal((res.json() as { error: string }).error, 'amp_upstream_proxy_error');
        assert.ok(!res.body.includes('127.0.0.1'), 'error body names the upstream address');
      } finally {
        await unreachable.close();
      }
    });

    it('an upstream that never answers gives 504 amp_upstream_timeout after timeoutMs', async () => {
      const started = Date.now();
      const res = await send(`${app.url}/api/provider/silent`);
      assert.equal(res.status, 504);
      assert.deepEqual(res.json(), {
        error: 'amp_upstream_timeout',
        message: 'The Amp upstream did not answer in time.',
        cause: 'timeout',
      });
      assert.ok(Date.now() - started >= 250);
    });

    // A hang fails these two by their timeout: the upstream never closing, the response never ending.
    it(
      'a client that disconnects mid-stream aborts the upstream request promptly',
      { timeout: 5000 },
      async () => {
        const received = upstream.record();
        const aborted = await new Promise<number>((resolve) => {
          const req = request(`${app.url}/api/provider/slow-stream`, { agent: false }, (res) => {
            res.once('data', () => {
              const at = Date.now();
              req.destroy();
              resolve(at);
            });
          });
          req.on('error', () => undefined);
          req.on('close', () => undefined);
          req.end();
        });
        const closedAt = await received.only().closed;
        assert.ok(closedAt - aborted < 1000, 'the upstream kept streaming after the client left');
      },
    );

    it(
      'an upstream reset mid-stream ends the client response instead of hanging',
      { timeout: 5000 },
      async () => {
        const outcome = await new Promise<string>((resolve) => {
          const req = request(`${app.url}/api/provider/reset-mid-stream`, { agent: false }, (res) => {
            res.once('data', () => resetUpstream());
            res.on('end', () => resolve('end'));
            res.on('error', () => resolve('error'));
            res.on('close', () => resolve('close'));
          });
          req.on('error', () => resolve('request error'));
          req.end();
        });
        assert.ok(['end', 'error', 'close', 'request error'].includes(outcome), outcome);
      },
    );

    it('keeps serving after all of the above', async () => {
      const res = await send(`${app.url}/api/threads`);
      assert.equal(res.status, 200);
    });
  });
}

describe('server key missing', () => {
  it('inject routes answer 503 amp_upstream_key_missing and forward nothing', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: () => undefined,
    });
    const app = await listen((req, res) => router(req, res));
    const received = upstream.record();
    try {
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
        headers: { authorization: 'Bearer user' },
      });
      assert.equal(res.status, 503);
      assert.equal((res.json() as { error: string }).error, 'amp_upstream_key_missing');
      assert.equal(received.requests.length, 0);
      // Identity routes do not need a server key at all.
      assert.equal(
        (await send(`${app.url}/api/threads`, { headers: { authorization: 'Bearer u' } })).status,
        200,
      );
    } finally {
      await app.close();
      await upstream.close();
    }
  });

  it('a throwing upstreamKey function gives a JSON error, not a crash', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: async () => {
        throw new Error('vault down');
      },
    });
    const app = await listen((req, res) => router(req, res));
    try {
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`);
      assert.equal(res.status, 500);
      assert.equal((res.json() as { error: string }).error, 'amp_policy_error');
      assert.ok(!res.body.includes('vault down'));
    } finally {
      await app.close();
      await upstream.close();
    }
  });
});
