/**
 * `hosts`: a router at the root of an app with its own `/api/**` routes claims only the requests
 * for its own host names; the host's routes, and the credentials sent to them, never reach Amp.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { createHostScope } from '../src/access/host-scope.js';
import { ampRouter, attachUpgrade, type AmpMiddleware, type AmpProxyOptions } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { exchangeRaw } from './support/raw-client.js';
import { startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';

const COMPANY_JWT = 'Bearer eyJhbGciOiJIUzI1NiJ9.company-session.sig';
const AMP_TOKEN = 'Bearer user-own-amp-token';
const SCOPED: AmpProxyOptions = {
  hosts: ['amp.corp.example', '*.amp.corp.example'],
  upstreamKey: 'server-key',
};

function rawGet(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return exchangeRaw(port, `GET ${path} HTTP/1.1\r\n${head}Connection: close\r\n\r\n`);
}

function openSocket(url: string, host: string): Promise<number> {
  const socket = new WebSocket(url, ['rivet'], { headers: { host, authorization: AMP_TOKEN } });
  return new Promise((resolve, reject) => {
    socket.once('open', () => {
      socket.close();
      resolve(101);
    });
    socket.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    socket.once('error', reject);
  });
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`a router scoped to its own host names, at the root of an app with its own /api (${name})`, () => {
    let upstream: FakeWebSocketUpstream;
    let amp: AmpMiddleware;
    let app: RunningApp;

    const start = async (options: AmpProxyOptions): Promise<void> => {
      amp = ampRouter({ upstream: upstream.url, ...options });
      const host = express();
      host.use(amp);
      host.get('/api/v1/me', (req, res) => {
        res.json({ user: req.headers.authorization === COMPANY_JWT ? 'alice' : null });
      });
      host.get('/docs', (_req, res) => res.send('host docs'));
      app = await listen(host);
      attachUpgrade(app.server, amp);
    };
    const stop = async (): Promise<void> => {
      await amp.close();
      await app.close();
    };

    before(async () => {
      upstream = await startWebSocketUpstream();
    });
    after(() => upstream.close());

    describe('from clients that connect directly', () => {
      before(() => start(SCOPED));
      after(stop);

      it("leaves the host's /api/v1/me, its JWT and /docs to the host", async () => {
        const record = upstream.record();
        for (const host of [
          'app.corp.example',
          `127.0.0.1:${app.port}`,
          'evilamp.corp.example',
          'amp.corp.example.evil.test',
        ]) {
          const me = await send(`${app.url}/api/v1/me`, { headers: { host, authorization: COMPANY_JWT } });
          assert.deepEqual([host, me.status, me.json()], [host, 200, { user: 'alice' }]);
          const docs = await send(`${app.url}/docs`, { headers: { host, cookie: 'sso=session' } });
          assert.deepEqual([host, docs.status, docs.body], [host, 200, 'host docs']);
        }
        assert.deepEqual(record.requests, []);
      });

      it('serves Amp on its own names, whatever the case, port or depth', async () => {
        const record = upstream.record();
        for (const host of [
          'amp.corp.example',
          'AMP.Corp.Example:8443',
          'eu.amp.corp.example',
          'amp.corp.example.',
        ]) {
          const response = await send(`${app.url}/api/internal?getUserInfo`, {
            headers: { host, authorization: AMP_TOKEN },
          });
          assert.equal(response.status, 200, host);
        }
        const provider = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
          method: 'POST',
          headers: { host: 'amp.corp.example', 'content-type': 'application/json' },
          body: '{}',
        });
        assert.equal(provider.status, 200);
        assert.deepEqual(
          record.requests.map((request) => [request.url, request.headers.authorization]),
          [
            ...Array(4).fill(['/api/internal?getUserInfo', AMP_TOKEN]),
            ['/api/provider/anthropic/v1/messages', 'Bearer server-key'],
          ],
        );
      });

      it('/docs on the Amp name is Amp’s browser page', async () => {
        const record = upstream.record();
        const docs = await send(`${app.url}/docs`, { headers: { host: 'amp.corp.example' } });
        assert.equal(docs.status, 200);
        assert.equal(record.only().url, '/docs');
      });

      it('ignores X-Forwarded-Host from a peer that is not a trusted proxy', async () => {
        const record = upstream.record();
        const spoofed = await rawGet(app.port, '/api/v1/me', {
          Host: 'app.corp.example',
          'X-Forwarded-Host': 'amp.corp.example',
          Authorization: COMPANY_JWT,
        });
        assert.equal(spoofed.status, 200);
        assert.deepEqual(JSON.parse(spoofed.text), { user: 'alice' });
        assert.deepEqual(record.requests, []);
      });

      it("tunnels WebSockets for its names only, leaving the others' to the server", async () => {
        const handshakes = upstream.handshakes.mark();
        const url = `ws://127.0.0.1:${app.port}/actors/gateway/threadActor/websocket/`;
        assert.equal(await openSocket(url, 'amp.corp.example'), 101);
        assert.equal(await openSocket(url, 'app.corp.example'), 404);
        assert.equal(upstream.handshakes.since(handshakes).length, 1);
      });
    });

    describe('behind a trusted reverse proxy', () => {
      before(() => start({ ...SCOPED, trustedProxies: ['127.0.0.1'] }));
      after(stop);

      it('reads the host from X-Forwarded-Host, the value the proxy wrote', async () => {
        const record = upstream.record();
        const amp = await rawGet(app.port, '/api/internal', {
          Host: 'gateway-backend:8080',
          'X-Forwarded-Host': 'amp.corp.example',
          Authorization: AMP_TOKEN,
        });
        assert.equal(amp.status, 200);
        // A client put the Amp name first; the proxy appended the host it was asked for.
        const host = await rawGet(app.port, '/api/v1/me', {
          Host: 'amp.corp.example',
          'X-Forwarded-Host': 'amp.corp.example, app.corp.example',
          Authorization: COMPANY_JWT,
        });
        assert.deepEqual(JSON.parse(host.text), { user: 'alice' });
        assert.deepEqual(
          record.requests.map((request) => request.url),
          ['/api/internal'],
        );
      });
    });

    describe('reload', () => {
      before(() => start(SCOPED));
      after(stop);

      it('swaps the names in', async () => {
        const record = upstream.record();
        amp.reload({ upstream: upstream.url, hosts: ['amp2.corp.example'] });
        const old = await send(`${app.url}/api/v1/me`, {
          headers: { host: 'amp.corp.example', authorization: COMPANY_JWT },
        });
        assert.deepEqual(old.json(), { user: 'alice' });
        const fresh = await send(`${app.url}/api/v1/me`, { headers: { host: 'amp2.corp.example' } });
        assert.equal(fresh.status, 200);
        assert.deepEqual(
          record.requests.map((request) => request.url),
          ['/api/v1/me'],
        );
      });
    });
  });
}

describe('hosts: checked when the factory is called', () => {
  const refused: Array<[unknown, string, RegExp]> = [
    [[], 'hosts', /non-empty array.*omit it to claim requests for every host/],
    ['amp.corp.example', 'hosts', /non-empty array/],
    [['amp.corp.example:8443'], 'hosts[0]', /names a port; give the name alone \("amp\.corp\.example"\)/],
    [['https://amp.corp.example'], 'hosts[0]', /expected a host name/],
    [['amp.corp.example/amp'], 'hosts[0]', /expected a host name/],
    [['*'], 'hosts[0]', /expected a host name/],
    [['*.10.0.0.1'], 'hosts[0]', /expected a host name/],
    [['', 'x'], 'hosts[0]', /expected a host name/],
    [[42], 'hosts[0]', /expected a host name, got 42/],
  ];
  for (const [hosts, option, problem] of refused) {
    it(`refuses ${JSON.stringify(hosts)}`, () => {
      assert.throws(
        () => ampRouter({ hosts: hosts as string[] }),
        (error: Error & { option?: string }) => {
          assert.equal(error.option, option);
          assert.match(error.message, problem);
          return true;
        },
      );
    });
  }
});

describe('which requests a host scope claims', () => {
  const request = (headers: Record<string, string>, remoteAddress = '203.0.113.7') =>
    ({ headers, socket: { remoteAddress } }) as unknown as IncomingMessage;
  const scope = createHostScope(['amp.corp.example', '*.amp.corp.example', '[::1]'], ['10.0.0.0/8'])!;

  it('reads Host without its port or a trailing dot, in any case', () => {
    assert.equal(scope(request({ host: 'AMP.CORP.EXAMPLE:443' })), true);
    assert.equal(scope(request({ host: 'a.b.amp.corp.example.' })), true);
    assert.equal(scope(request({ host: '[::1]:8080' })), true);
    assert.equal(scope(request({ host: 'amp.corp.example.evil.test' })), false);
    assert.equal(scope(request({ host: 'xamp.corp.example' })), false);
    assert.equal(scope(request({})), false);
  });

  it('reads X-Forwarded-Host, its last value, only from a trusted peer', () => {
    const forwarded = { host: 'backend:8080', 'x-forwarded-host': 'app.corp.example, amp.corp.example' };
    assert.equal(scope(request(forwarded, '10.1.2.3')), true);
    assert.equal(scope(request(forwarded)), false);
    assert.equal(
      scope(request({ host: 'amp.corp.example', 'x-forwarded-host': 'app.corp.example' }, '10.1.2.3')),
      false,
    );
    assert.equal(scope(request({ host: 'app.corp.example', 'x-forwarded-host': 'amp.corp.example' })), false);
  });

  it('claims every request without hosts', () => {
    assert.equal(createHostScope(undefined, []), undefined);
  });
});
