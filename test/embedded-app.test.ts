/**
 * The router inside a real company app, as the README's "Embedding in an existing app" builds
 * it: host routes behind a company JWT or SSO cookie, pino-http, compression, helmet, cors,
 * express-rate-limit keyed by the gateway client, express.json() and the host's own `ws` server.
 * The host's routes and credentials never reach Amp, Amp's routes work, both kinds of WebSocket
 * work, and shutdown drains both.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import compression from 'compression';
import cors from 'cors';
import { rateLimit, ipKeyGenerator } from 'express-rate-limit';
import helmet from 'helmet';
import { pino } from 'pino';
import { pinoHttp } from 'pino-http';
import { WebSocket, WebSocketServer } from 'ws';
import {
  ampRouter,
  redactUrl,
  type AmpMiddleware,
  type AmpProxyEvent,
  type AmpRequestEndEvent,
} from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';
import { openSocket } from './support/gateway-harness.js';

const AMP_HOST = 'amp.corp.example';
const APP_HOST = 'app.corp.example';
const COMPANY_JWT = 'eyJhbGciOiJIUzI1NiJ9.company-jwt-payload.signature';
const SSO_COOKIE = 'sso_session=sso-cookie-value-123';
const GW_ALICE = 'gwk_alice_0123456789abcdefghij';
const GW_BOB = 'gwk_bob_0123456789abcdefghijkl';
const SERVER_KEY = 'sk-amp-server-key-0001';
const ALICE_AMP = 'amp-alice-own-key-0001';
const HOST_SECRETS = [COMPANY_JWT, 'sso-cookie-value-123'];
const AMP_SECRETS = [GW_ALICE, GW_BOB, SERVER_KEY, ALICE_AMP];
const AMP_SOCKET = '/actors/gateway/threadActor/websocket/?rvt-namespace=ns&rvt-key=T-1';

/** The paths of pino-http's request log that hold Amp's (and the host's) credentials. */
const CREDENTIAL_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-goog-api-key"]',
  'req.headers["x-amp-token"]',
  'req.headers["x-rivet-token"]',
  'req.headers["x-rivet-conn-params"]',
  'req.headers.cookie',
  'req.query.key',
  'req.query.auth_token',
  'res.headers["set-cookie"]',
];

function collectLines(): {
  stream: Writable;
  lines: WaitableList<Record<string, unknown>>;
  text: () => string;
} {
  const lines = new WaitableList<Record<string, unknown>>();
  let all = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      all += chunk.toString();
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { stream, lines, text: () => all };
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`a company app with the router embedded (${name})`, () => {
    let upstream: FakeWebSocketUpstream;
    let amp: AmpMiddleware;
    let app: RunningApp;
    let notifications: WebSocketServer;
    const events = new WaitableList<AmpProxyEvent>();
    const log = collectLines();

    before(async () => {
      upstream = await startWebSocketUpstream();
      const logger = pino({ redact: CREDENTIAL_LOG_PATHS }, log.stream);
      amp = ampRouter({
        upstream: upstream.url,
        hosts: [AMP_HOST],
        upstreamKey: SERVER_KEY,
        clients: [
          { key: GW_ALICE, name: 'alice', upstreamKey: ALICE_AMP },
          { key: GW_BOB, name: 'bob' },
        ],
        logger,
        onProxyEvent: events.push,
      });

      const host = express();
      host.use(
        pinoHttp({
          logger,
          serializers: { req: (req: { url: string }) => ({ ...req, url: redactUrl(req.url) }) },
          customProps: (req) => ({ ampClient: amp.clientOf(req)?.name }),
        }),
      );
      host.use(compression());
      host.use(
        '/api/provider',
        rateLimit({
          limit: 2,
          keyGenerator: (req) => amp.clientOf(req)?.name ?? ipKeyGenerator(req.ip ?? ''),
          standardHeaders: 'draft-8',
          legacyHeaders: false,
        }),
      );
      host.use(amp);
      host.use(helmet());
      host.use(cors({ origin: `https://${APP_HOST}`, credentials: true }));
      host.use(express.json());
      host.use((req, res, next) => {
        const signedIn =
          req.headers.authorization === `Bearer ${COMPANY_JWT}` || req.headers.cookie === SSO_COOKIE;
        if (signedIn) return next();
        res.status(401).json({ error: 'sign in' });
      });
      host.get('/api/v1/me', (_req, res) => res.json({ user: 'alice' }));
      host.post('/api/v1/notes', (req, res) =>
        res.json({ saved: (req.body as { text: string }).text.length }),
      );
      host.get('/docs', (_req, res) => res.send('company docs'));
      app = await listen(host);

      notifications = new WebSocketServer({ noServer: true });
      notifications.on('connection', (socket) => socket.send('welcome'));
      app.server.on('upgrade', (req: IncomingMessage, socket, head) => {
        if (amp.upgrade(req, socket, head)) return;
        if (req.url === '/ws/notifications') {
          notifications.handleUpgrade(req, socket, head, (ws) => notifications.emit('connection', ws, req));
          return;
        }
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      });
    });
    after(async () => {
      await amp.close();
      notifications.close();
      await app.close();
      await upstream.close();
    });

    it("host routes answer with the host's own middleware; nothing of theirs reaches Amp", async () => {
      const record = upstream.record();
      const me = await send(`${app.url}/api/v1/me`, {
        headers: { host: APP_HOST, authorization: `Bearer ${COMPANY_JWT}`, origin: `https://${APP_HOST}` },
      });
      assert.deepEqual(me.json(), { user: 'alice' });
      assert.equal(me.headers['x-content-type-options'], 'nosniff'); // helmet
      assert.equal(me.headers['access-control-allow-origin'], `https://${APP_HOST}`); // cors
      const docs = await send(`${app.url}/docs`, { headers: { host: APP_HOST, cookie: SSO_COOKIE } });
      assert.equal(docs.body, 'company docs');
      const note = await send(`${app.url}/api/v1/notes`, {
        method: 'POST',
        headers: { host: APP_HOST, cookie: SSO_COOKIE, 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'hello' }),
      });
      assert.deepEqual(note.json(), { saved: 5 });
      assert.deepEqual(record.requests, []);
    });

    it("Amp's routes work, with Amp's credentials only, a 200 KB body included", async () => {
      const record = upstream.record();
      const me = await send(`${app.url}/api/internal?getUserInfo`, {
        headers: { host: AMP_HOST, authorization: `Bearer ${GW_ALICE}`, origin: `https://${APP_HOST}` },
      });
      assert.equal(me.status, 200);
      // The host's cors() and helmet() run after the router: Amp's answers are Amp's own.
      assert.equal(me.headers['access-control-allow-origin'], undefined);
      assert.equal(me.headers['content-security-policy'], undefined);
      const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(200 * 1024) }] });
      const call = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
        method: 'POST',
        headers: { host: AMP_HOST, authorization: `Bearer ${GW_BOB}`, 'content-type': 'application/json' },
        body: big,
      });
      assert.equal(call.status, 200);
      const [identity, provider] = record.requests;
      assert.equal(identity?.headers.authorization, `Bearer ${ALICE_AMP}`);
      assert.equal(provider?.headers.authorization, `Bearer ${SERVER_KEY}`);
      assert.equal(provider?.body.toString(), big);
      for (const request of record.requests) {
        const seen = JSON.stringify([request.url, request.headers]);
        for (const secret of [...HOST_SECRETS, GW_ALICE, GW_BOB]) assert.ok(!seen.includes(secret), secret);
      }
    });

    it('the rate limiter counts per gateway client, by the name the router exposes', async () => {
      const call = (key: string) =>
        send(`${app.url}/api/provider/anthropic/v1/messages?limit-test`, {
          method: 'POST',
          headers: { host: AMP_HOST, authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: '{}',
        });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await call(GW_ALICE)).status);
      // bob spent one call in the test before; alice's limit is hers alone.
      statuses.push((await call(GW_BOB)).status);
      assert.deepEqual(statuses, [200, 200, 429, 200]);
    });

    it("log lines carry the host's request id and the client's name, and no credential", async () => {
      const mark = events.mark();
      const lines = log.lines.mark();
      await send(`${app.url}/api/internal?key=${ALICE_AMP}`, {
        headers: { host: AMP_HOST, authorization: `Bearer ${GW_ALICE}`, cookie: SSO_COOKIE },
      });
      const [end] = (await events.until(mark, (items) => items.some((e) => e.type === 'request-end'))).filter(
        (event): event is AmpRequestEndEvent => event.type === 'request-end',
      );
      const accessLine = (
        await log.lines.until(lines, (items) => items.some((line) => line.msg === 'request completed'))
      ).find((line) => line.msg === 'request completed')!;
      assert.equal(end?.client, 'alice');
      assert.equal(end?.requestId, String((accessLine.req as { id: unknown }).id));
      assert.equal(accessLine.ampClient, 'alice');
      for (const secret of [...HOST_SECRETS, ...AMP_SECRETS]) {
        assert.ok(!log.text().includes(secret), `${secret} appears in a log line`);
      }
    });

    it('WebSockets of both kinds work, and shutdown drains both', async () => {
      const handshakes = upstream.handshakes.mark();
      const ampSocket = await openSocket(`ws://127.0.0.1:${app.port}${AMP_SOCKET}`, ['rivet'], {
        headers: { host: AMP_HOST, authorization: `Bearer ${GW_ALICE}` },
      });
      const hostSocket = new WebSocket(`ws://127.0.0.1:${app.port}/ws/notifications`, {
        headers: { host: APP_HOST, cookie: SSO_COOKIE },
      });
      const [welcome] = (await once(hostSocket, 'message')) as [Buffer];
      assert.equal(welcome.toString(), 'welcome');
      ampSocket.send('ping');
      const [echo] = (await once(ampSocket, 'message')) as [Buffer];
      assert.equal(echo.toString(), 'ping');
      const [handshake, ...others] = upstream.handshakes.since(handshakes);
      assert.deepEqual(others, []);
      assert.equal(handshake?.headers.authorization, `Bearer ${ALICE_AMP}`);
      assert.equal(handshake?.headers.cookie, undefined);

      // The README's shutdown: stop accepting, end both kinds of socket with 1001, then wait.
      const serverClosed = new Promise<void>((resolve) => app.server.close(() => resolve()));
      const ampClosed = once(ampSocket, 'close');
      const hostClosed = once(hostSocket, 'close');
      for (const client of notifications.clients) client.close(1001, 'server shutting down');
      await amp.close();
      assert.equal(((await ampClosed) as [number])[0], 1001);
      assert.equal(((await hostClosed) as [number])[0], 1001);
      await serverClosed;
    });
  });
}

describe('clientOf(req)', () => {
  const amp = ampRouter({
    upstream: 'http://127.0.0.1:9',
    clients: [
      { key: GW_ALICE, name: 'alice' },
      { key: GW_BOB, name: 'bob' },
    ],
  });
  const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

  it('names the client whose key a credential header presents, never the key', () => {
    assert.deepEqual(amp.clientOf(request({ authorization: `Bearer ${GW_ALICE}` })), { name: 'alice' });
    assert.deepEqual(amp.clientOf(request({ 'x-api-key': GW_BOB })), { name: 'bob' });
    assert.deepEqual(amp.clientOf(request({ 'x-amp-token': GW_BOB })), { name: 'bob' });
  });

  it('knows nobody for no key, a key elsewhere, or keys of two clients', () => {
    assert.equal(amp.clientOf(request({ authorization: `Bearer ${COMPANY_JWT}` })), undefined);
    assert.equal(amp.clientOf(request({ 'x-other': GW_ALICE })), undefined);
    assert.equal(
      amp.clientOf(request({ authorization: `Bearer ${GW_ALICE}`, 'x-api-key': GW_BOB })),
      undefined,
    );
    assert.equal(ampRouter().clientOf(request({ authorization: `Bearer ${GW_ALICE}` })), undefined);
  });

  it('answers once per request', () => {
    const req = request({ authorization: `Bearer ${GW_ALICE}` });
    const first = amp.clientOf(req);
    amp.reload({ upstream: 'http://127.0.0.1:9' });
    assert.equal(amp.clientOf(req), first);
  });
});

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`a request id the host took from a client's header (${name})`, () => {
    it('reaches the events redacted: a gateway key in it never does', async () => {
      const events = new WaitableList<AmpProxyEvent>();
      const amp = ampRouter({
        upstream: 'http://127.0.0.1:9',
        clients: [{ key: GW_ALICE, name: 'alice' }],
        onProxyEvent: events.push,
      });
      const host = express();
      host.use((req, _res, next) => {
        (req as { id?: unknown }).id = req.headers['x-request-id'];
        next();
      });
      host.use(amp);
      const app = await listen(host);
      try {
        const mark = events.mark();
        const response = await send(`${app.url}/api/internal`, {
          headers: { authorization: `Bearer ${GW_ALICE}`, 'x-request-id': `trace:${GW_ALICE}` },
        });
        assert.equal(response.status, 400); // amp_gateway_key_misplaced
        const seen = await events.until(mark, (items) => items.some((event) => event.type === 'request-end'));
        const ids = seen.map((event) => ('requestId' in event ? event.requestId : undefined));
        assert.equal(ids.length, 2);
        for (const id of ids) {
          assert.match(String(id), /^trace:/);
          assert.ok(!String(id).includes(GW_ALICE));
        }
      } finally {
        await amp.close();
        await app.close();
      }
    });
  });
}
