import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpProxyEvent, type AmpProxyOptions } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const SERVER_KEY = 'server-key-host-view-7f3a';
const MAPPED_KEY = 'mapped-amp-key-alice-91c2';
const GATEWAY_KEY = 'gw-alice-host-view-key';

interface HostSeen {
  url: string;
  headers: IncomingMessage['headers'];
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`the host's own view of the request (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;
    const seenAfter: HostSeen[] = [];
    const seenAtFinish: HostSeen[] = [];

    before(async () => {
      upstream = await startUpstream();
      const host = express();
      // What an access logger (morgan, pino-http) does: read req when the response finishes.
      host.use((req, res, next) => {
        res.on('finish', () => seenAtFinish.push({ url: req.url, headers: { ...req.headers } }));
        next();
      });
      host.use(
        ampRouter({
          upstream: upstream.url,
          upstreamKey: SERVER_KEY,
          clients: [{ key: GATEWAY_KEY, name: 'alice', upstreamKey: MAPPED_KEY }],
          policies: { browser: 'passthrough' },
        }),
      );
      host.use((req, res) => {
        seenAfter.push({ url: req.url, headers: { ...req.headers } });
        res.status(404).end();
      });
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    it('req.headers and req.url never hold the server key or a mapped key, during or after the request', async () => {
      const provider = await send(`${app.url}/api/provider/anthropic/v1/messages?beta=true`, {
        method: 'POST',
        headers: { authorization: `Bearer ${GATEWAY_KEY}`, 'content-type': 'application/json' },
        body: '{"model":"m"}',
      });
      assert.equal(provider.status, 200);
      const management = await send(`${app.url}/api/internal?getUserInfo`, {
        method: 'POST',
        headers: { authorization: `Bearer ${GATEWAY_KEY}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(management.status, 200);
      const notOurs = await send(`${app.url}/host-route`);
      assert.equal(notOurs.status, 404);

      // The upstream did get the server-side keys: the host's copy simply never held them.
      const [providerCall, managementCall] = upstream.requests.slice(-2);
      assert.equal(providerCall!.headers.authorization, `Bearer ${MAPPED_KEY}`);
      assert.equal(managementCall!.headers.authorization, `Bearer ${MAPPED_KEY}`);

      assert.equal(seenAtFinish.length, 3);
      for (const seen of [...seenAtFinish, ...seenAfter]) {
        const text = JSON.stringify(seen);
        assert.ok(!text.includes(SERVER_KEY), `server key in the host's view: ${text}`);
        assert.ok(!text.includes(MAPPED_KEY), `mapped key in the host's view: ${text}`);
      }
      assert.equal(seenAtFinish[0]!.url, '/api/provider/anthropic/v1/messages?beta=true');
      assert.equal(seenAtFinish[0]!.headers.authorization, `Bearer ${GATEWAY_KEY}`);
    });
  });
}

function collectEvents(): { events: AmpProxyEvent[]; onProxyEvent: (event: AmpProxyEvent) => void } {
  const events: AmpProxyEvent[] = [];
  return { events, onProxyEvent: (event) => events.push(event) };
}

/** The `count`-th event of `type`, waiting for it to be emitted. */
async function nthEvent(
  events: AmpProxyEvent[],
  type: AmpProxyEvent['type'],
  count: number,
): Promise<AmpProxyEvent> {
  for (let waited = 0; waited < 1000; waited++) {
    const found = events.filter((event) => event.type === type);
    if (found.length >= count) return found[count - 1]!;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`no ${type} event`);
}

describe('one error boundary', () => {
  let upstream: FakeUpstream;
  const apps: RunningApp[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };

  before(async () => {
    upstream = await startUpstream();
    process.on('unhandledRejection', onUnhandled);
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await Promise.all(apps.map((app) => app.close()));
    await upstream.close();
  });

  async function gateway(
    options: AmpProxyOptions,
    parse?: (req: IncomingMessage & { body?: unknown }) => void,
  ) {
    const [, express] = EXPRESS_VERSIONS[1]!;
    const host = express();
    const hostErrors: unknown[] = [];
    if (parse) {
      host.use((req, _res, next) => {
        req.on('data', () => undefined);
        req.on('end', () => {
          parse(req);
          next();
        });
      });
    }
    host.use(ampRouter({ upstream: upstream.url, ...options }));
    host.use(
      (error: unknown, _req: unknown, res: { status(code: number): { end(): void } }, _next: unknown) => {
        hostErrors.push(error);
        res.status(599).end();
      },
    );
    const app = await listen(host);
    apps.push(app);
    return { app, hostErrors };
  }

  const failing: [string, AmpProxyOptions, string][] = [
    [
      'a custom policy that throws',
      {
        policies: {
          management: () => {
            throw new Error('boom');
          },
        },
      },
      'amp_policy_error',
    ],
    [
      'a custom policy that rejects',
      { policies: { management: async () => Promise.reject(new Error('boom')) } },
      'amp_policy_error',
    ],
    [
      'an upstreamKey function that throws',
      {
        upstreamKey: () => {
          throw new Error('boom');
        },
        policies: { management: 'inject' },
      },
      'amp_policy_error',
    ],
    [
      'an upstreamKey function that rejects',
      { upstreamKey: async () => Promise.reject(new Error('boom')), policies: { management: 'inject' } },
      'amp_policy_error',
    ],
  ];
  for (const [what, options, code] of failing) {
    it(`${what} ends as a JSON answer, never in the host's error handler`, async () => {
      const before = upstream.requests.length;
      const { app, hostErrors } = await gateway(options);
      const res = await send(`${app.url}/api/internal?x`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 500);
      assert.equal((res.json() as { error: string }).error, code);
      assert.deepEqual(hostErrors, []);
      assert.equal(upstream.requests.length, before);
      assert.deepEqual(unhandled, []);
    });
  }

  for (const [what, body] of [
    ['a BigInt', { n: 1n }],
    [
      'a cycle',
      (() => {
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        return cyclic;
      })(),
    ],
  ] as const) {
    it(`a parsed body holding ${what} cannot be re-sent: 500 amp_body_unavailable, nothing forwarded`, async () => {
      const before = upstream.requests.length;
      const { app, hostErrors } = await gateway({}, (req) => (req.body = body));
      const res = await send(`${app.url}/api/internal?x`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"n":1}',
      });
      assert.equal(res.status, 500);
      assert.equal((res.json() as { error: string }).error, 'amp_body_unavailable');
      assert.deepEqual(hostErrors, []);
      assert.equal(upstream.requests.length, before);
    });
  }

  it('the same failures on provider routing end as JSON too', async () => {
    const { app, hostErrors } = await gateway(
      { upstreamKey: 'k-server', modelMappings: [{ from: 'a', to: 'b' }] },
      (req) => (req.body = { model: 'a', n: 1n }),
    );
    const res = await send(`${app.url}/api/provider/openai/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"a"}',
    });
    assert.ok(res.status >= 500 && res.status < 600, `status ${res.status}`);
    assert.match((res.json() as { error: string }).error, /^amp_/);
    assert.deepEqual(hostErrors, []);
    assert.deepEqual(unhandled, []);
  });

  it('a client that left before any response is logged as client-aborted with no status', async () => {
    const { events, onProxyEvent } = collectEvents();
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { app } = await gateway({
      onProxyEvent,
      policies: {
        management: async () => {
          await held;
          return {};
        },
      },
    });
    const socket = connect(app.port, '127.0.0.1');
    await once(socket, 'connect');
    const before = upstream.requests.length;
    socket.write('GET /api/internal?slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await nthEvent(events, 'request-start', 1);
    socket.destroy();
    const end = await nthEvent(events, 'request-end', 1);
    release();
    // The policy's late verdict must not start an upstream call for a client that is gone.
    await held;
    // A later request's round trip outlasts anything the abandoned one could have started.
    assert.equal((await send(`${app.url}/api/internal?later`)).status, 200);
    assert.deepEqual(
      upstream.requests.slice(before).map((seen) => seen.url),
      ['/api/internal?later'],
    );
    assert.equal(end.type, 'request-end');
    if (end.type !== 'request-end') return;
    assert.equal(end.outcome, 'client-aborted');
    assert.equal(end.status, undefined);
  });
});
