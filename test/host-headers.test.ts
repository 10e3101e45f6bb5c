// Nothing of the host's leaves for Amp: a host app's SSO session cookie and its company JWT
// header never reach the upstream on provider, management and actor routes (WebSockets too),
// unless the host says otherwise for a group.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ampRouter, AmpProxyConfigError, attachUpgrade, type AmpProxyOptions } from '../src/index.js';
import { EXPRESS_VERSIONS, listen } from './support/apps.js';
import { send } from './support/client.js';
import { startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';

const SESSION = 'sso_session=host-session-4f1a9c';
const COMPANY_JWT = 'eyJhbGciOiJIUzI1NiJ9.company-jwt-77b2';
const HOST_HEADERS = { cookie: `theme=dark; ${SESSION}`, 'x-company-jwt': COMPANY_JWT, 'x-tenant': 'acme' };
const ROUTES = {
  provider: '/api/provider/anthropic/v1/messages',
  management: '/api/threads',
  actors: '/actors/gateway/threadActor/actions/ping',
  browser: '/settings',
} as const;

describe("the host's cookies and headers never reach the upstream", () => {
  let upstream: FakeWebSocketUpstream;
  before(async () => {
    upstream = await startWebSocketUpstream();
  });
  after(async () => upstream.close());

  for (const [name, express] of EXPRESS_VERSIONS) {
    /**
     * The host's Express app: its own session and JWT check, which every request passes (so the
     * client sends both), then the Amp router, with upgrades wired.
     */
    async function hostApp(options: AmpProxyOptions) {
      const router = ampRouter({ upstream: upstream.url, upstreamKey: 'sk-server-key-host-01', ...options });
      const app = express();
      app.use((req, res, next) => {
        const signedIn =
          req.headers.cookie?.includes(SESSION) && req.headers['x-company-jwt'] === COMPANY_JWT;
        if (signedIn) next();
        else res.status(401).send('sign in first');
      });
      app.use(router);
      const running = await listen(app);
      attachUpgrade(running.server, router);
      return {
        url: running.url,
        close: async () => {
          await router.close();
          await running.close();
        },
      };
    }

    async function received(url: string, path: string) {
      const record = upstream.record();
      const res = await send(`${url}${path}`, {
        method: 'POST',
        headers: {
          ...HOST_HEADERS,
          authorization: 'Bearer user-amp-token',
          'content-type': 'application/json',
        },
        body: '{}',
      });
      assert.equal(res.status, 200, res.body.toString());
      return record.only().headers;
    }

    it(`by default, on provider, management, actor and browser routes (${name})`, async () => {
      const gateway = await hostApp({ dropHeaders: { all: ['X-Company-JWT'] } });
      try {
        for (const path of Object.values(ROUTES)) {
          const headers = await received(gateway.url, path);
          assert.equal(headers.cookie, undefined, `${path}: cookie`);
          assert.equal(headers['x-company-jwt'], undefined, `${path}: x-company-jwt`);
          // Headers the host did not name still go.
          assert.equal(headers['x-tenant'], 'acme', path);
        }
        const mark = upstream.handshakes.mark();
        const socket = new WebSocket(
          `${gateway.url.replace('http', 'ws')}/actors/gateway/threadActor/websocket/`,
          {
            headers: HOST_HEADERS,
          },
        );
        await once(socket, 'open');
        const [handshake] = await upstream.handshakes.until(mark, (items) => items.length > 0);
        socket.close();
        assert.equal(handshake!.headers.cookie, undefined);
        assert.equal(handshake!.headers['x-company-jwt'], undefined);
      } finally {
        await gateway.close();
      }
    });

    it(`per group: forwardCookies and dropHeaders for one group leave the others as they are (${name})`, async () => {
      const gateway = await hostApp({
        forwardCookies: { management: true },
        dropHeaders: { provider: ['x-tenant'], all: ['x-company-jwt'] },
      });
      try {
        const management = await received(gateway.url, ROUTES.management);
        assert.equal(management.cookie, `theme=dark; ${SESSION}`);
        assert.equal(management['x-tenant'], 'acme');
        assert.equal(management['x-company-jwt'], undefined);
        const provider = await received(gateway.url, ROUTES.provider);
        assert.equal(provider.cookie, undefined);
        assert.equal(provider['x-tenant'], undefined);
        const actors = await received(gateway.url, ROUTES.actors);
        assert.equal(actors.cookie, undefined);
        assert.equal(actors['x-tenant'], 'acme');
      } finally {
        await gateway.close();
      }
    });

    it(`scoped by hosts, the browser group forwards the cookies of its own host; the others still drop them (${name})`, async () => {
      const scoped = await hostApp({ hosts: ['127.0.0.1'] });
      try {
        assert.equal((await received(scoped.url, ROUTES.browser)).cookie, `theme=dark; ${SESSION}`);
        for (const path of [ROUTES.provider, ROUTES.management, ROUTES.actors]) {
          assert.equal((await received(scoped.url, path)).cookie, undefined, path);
        }
      } finally {
        await scoped.close();
      }
      const overridden = await hostApp({ hosts: ['127.0.0.1'], forwardCookies: { browser: false } });
      try {
        assert.equal((await received(overridden.url, ROUTES.browser)).cookie, undefined);
      } finally {
        await overridden.close();
      }
    });
  }
});

describe('forwardCookies and dropHeaders are checked by the factory', () => {
  const refused: [options: unknown, option: string, message: RegExp][] = [
    [{ forwardCookies: true }, 'forwardCookies', /expected an object such as \{ browser: true \}/],
    [{ forwardCookies: { browsers: true } }, 'forwardCookies.browsers', /unknown group/],
    [{ forwardCookies: { browser: 'yes' } }, 'forwardCookies.browser', /expected true or false/],
    [{ dropHeaders: ['x-company-jwt'] }, 'dropHeaders', /expected an object/],
    [{ dropHeaders: { all: 'x-company-jwt' } }, 'dropHeaders.all', /expected an array of header names/],
    [{ dropHeaders: { everyone: [] } }, 'dropHeaders.everyone', /unknown group; expected all, provider/],
    [{ dropHeaders: { all: ['x company'] } }, 'dropHeaders.all[0]', /expected an HTTP header name/],
    [{ dropHeaders: { provider: ['ok', 42] } }, 'dropHeaders.provider[1]', /expected an HTTP header name/],
    [{ dropHeaders: { all: ['Host'] } }, 'dropHeaders.all[0]', /"host" is needed to deliver the request/],
    [{ dropHeaders: { actors: ['sec-websocket-key'] } }, 'dropHeaders.actors[0]', /WebSocket handshake/],
    [{ dropHeaders: { all: ['content-length'] } }, 'dropHeaders.all[0]', /framing/],
    [{ dropHeaders: { provider: ['authorization'] } }, 'dropHeaders.provider[0]', /credential.*policies/],
    [{ dropHeaders: { all: ['cookie'] } }, 'dropHeaders.all[0]', /forwardCookies/],
  ];
  for (const [options, option, message] of refused) {
    it(`refuses ${JSON.stringify(options)}`, () => {
      assert.throws(
        () => ampRouter(options as AmpProxyOptions),
        (error: unknown) => {
          assert.ok(error instanceof AmpProxyConfigError);
          assert.equal(error.option, option);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});
