import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as promClient from 'prom-client';
import { WebSocket } from 'ws';
import {
  ampRouter,
  attachUpgrade,
  createAmpMetrics,
  type AmpMiddleware,
  type AmpProxyEvent,
} from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send, type ClientResponse } from './support/client.js';
import { WaitableList } from './support/events.js';
import { startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';

const ALICE = 'gw-alice-key-000000000001';
const NOBODY = 'gw-unnamed-key-0000000009';
const ALICE_AMP_KEY = 'amp-key-of-alice-0000001';
const SERVER_KEY = 'server-key-0000000000001';
const PROMPT = 'a secret prompt that must never be audited';
const SEARCH = 'what-someone-searched-for';
const SECRETS = [ALICE, NOBODY, ALICE_AMP_KEY, SERVER_KEY, PROMPT];
const PROVIDER_BODY = JSON.stringify({ model: 'claude', messages: [{ role: 'user', content: PROMPT }] });

function post(url: string, key: string, body: string): Promise<ClientResponse> {
  return send(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body,
  });
}

/** An agent WebSocket: once open, one frame sent and echoed, or the close code the gateway ended it with. */
async function agentSocket(url: string, key: string): Promise<{ socket: WebSocket; closedWith?: number }> {
  const socket = new WebSocket(
    `${url.replace('http', 'ws')}/actors/gateway/threadActor/websocket/`,
    ['rivet'],
    {
      headers: { authorization: `Bearer ${key}` },
    },
  );
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  socket.send('hello');
  return new Promise((resolve) => {
    const early = (code: number) => resolve({ socket, closedWith: code });
    socket.once('close', early);
    socket.once('message', () => {
      socket.off('close', early);
      resolve({ socket });
    });
  });
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`usage per client and the audit stream (${name})`, () => {
    let upstream: FakeWebSocketUpstream;
    let app: RunningApp;
    let router: AmpMiddleware;
    const events = new WaitableList<AmpProxyEvent>();
    const audit: Record<string, unknown>[] = [];
    const auditText: string[] = [];
    const metrics = createAmpMetrics(promClient);

    before(async () => {
      upstream = await startWebSocketUpstream((req, res) => {
        const body = req.url?.startsWith('/api/thread-actors')
          ? JSON.stringify({ threadId: 'T-0001', wsToken: 'ws-token-0001' })
          : JSON.stringify({ ok: true });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      router = ampRouter({
        upstream: upstream.url,
        upstreamKey: SERVER_KEY,
        clients: [{ key: ALICE, name: 'alice', upstreamKey: ALICE_AMP_KEY }, { key: NOBODY }],
        policies: { management: 'inject', actors: 'inject' },
        limits: { perClient: { threadsPerHour: 1, concurrentWebSockets: 1 } },
        usage: true,
        audit: {
          info: (object, message) => {
            audit.push(object as Record<string, unknown>);
            auditText.push(JSON.stringify(object) + (message ?? ''));
          },
        },
        onProxyEvent: (event) => {
          metrics.onProxyEvent(event);
          events.push(event);
        },
      });
      const host = express();
      host.use(router);
      app = await listen(host);
      attachUpgrade(app.server, router);

      const mark = events.mark();
      assert.equal((await post(`${app.url}/api/thread-actors`, ALICE, '{}')).status, 200);
      assert.equal((await post(`${app.url}/api/thread-actors`, ALICE, '{}')).status, 429);
      const provider = `${app.url}/api/provider/anthropic/v1/messages`;
      assert.equal((await post(provider, ALICE, PROVIDER_BODY)).status, 200);
      const search = `${app.url}/api/threads?q=${SEARCH}`;
      assert.equal((await send(search, { headers: { authorization: `Bearer ${NOBODY}` } })).status, 200);
      const session = await agentSocket(app.url, ALICE);
      assert.equal(session.closedWith, undefined);
      assert.equal((await agentSocket(app.url, ALICE)).closedWith, 1008, 'over concurrentWebSockets');
      await events.until(mark, (seen) => seen.some((event) => event.type === 'websocket-close'));
      // The upstream ends the session with 4001.
      session.socket.send('close-4001');
      await events.until(
        mark,
        (seen) => seen.filter((event) => event.type === 'websocket-close').length === 2,
      );
    });
    after(async () => {
      await router.close();
      await app.close();
      await upstream.close();
    });

    it('usage(): requests by group and status, threads, sessions, bytes and last seen, per client name', () => {
      const report = router.usage();
      assert.ok(report);
      const alice = report.clients.alice;
      assert.ok(alice);
      assert.deepEqual(alice.requests.management, { '200': 1, '429': 1 });
      assert.deepEqual(alice.requests.provider, { '200': 1 });
      assert.deepEqual(alice.requests.actors, { '101': 1, '429': 1 });
      assert.equal(alice.threadsCreated, 1, 'the refused creation created nothing');
      assert.equal(alice.sessions.opened, 1);
      assert.equal(alice.sessions.open, 0);
      assert.ok(alice.sessions.seconds >= 0);
      // Up: both thread bodies, the provider body and at least the two frames the client sent.
      assert.ok(alice.bytes.up >= 2 + PROVIDER_BODY.length + 'hello'.length, `up ${alice.bytes.up}`);
      assert.ok(alice.bytes.down > 0);
      assert.ok(Date.parse(alice.lastSeen) >= Date.parse(report.since));
      assert.deepEqual(report.clients.unnamed?.requests.management, { '200': 1 });
      const text = JSON.stringify(report);
      for (const secret of SECRETS) assert.ok(!text.includes(secret));
    });

    it('Prometheus metrics labelled by client name, `unnamed` for the rest', async () => {
      const text = await metrics.registry.metrics();
      assert.match(text, /amp_proxy_client_threads_created_total\{client="alice"\} 1/);
      assert.match(text, /amp_proxy_client_sessions_total\{client="alice"\} 1/);
      assert.match(
        text,
        /amp_proxy_client_requests_total\{client="alice",group="management",status="429"\} 1/,
      );
      assert.match(
        text,
        /amp_proxy_client_requests_total\{client="unnamed",group="management",status="200"\} 1/,
      );
      assert.match(text, /amp_proxy_client_bytes_total\{client="alice",direction="up"\} \d+/);
      assert.match(text, /amp_proxy_client_session_seconds_total\{client="alice"\} [\d.e-]+/);
      assert.match(text, /amp_proxy_client_last_seen_seconds\{client="alice"\} \d+/);
      for (const secret of SECRETS) assert.ok(!text.includes(secret));
    });

    it('audit: who did what and when; never a key, a body or a prompt', () => {
      const actions = audit.map(({ audit: action, client }) => `${String(client)} ${String(action)}`);
      assert.deepEqual(actions, [
        'alice thread-created',
        'alice limit-refused',
        'alice request',
        'unnamed request',
        'alice session-opened',
        'alice limit-refused',
        'alice session-closed',
      ]);
      assert.equal(audit[5]!.code, 'amp_session_limit');
      const refused = audit[1]!;
      assert.equal(refused.code, 'amp_rate_limited');
      const closed = audit[6]!;
      assert.equal(closed.closeCode, 4001);
      for (const line of audit) assert.ok(!Number.isNaN(Date.parse(String(line.at))));
      assert.equal(audit[3]!.path, '/api/threads', 'no query');
      for (const line of auditText)
        for (const secret of [...SECRETS, SEARCH]) assert.ok(!line.includes(secret), line);
    });

    it('usage() is undefined unless `usage: true`', () => {
      assert.equal(ampRouter({ upstream: upstream.url }).usage(), undefined);
    });
  });
}
