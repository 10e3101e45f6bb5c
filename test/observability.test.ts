import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ampRouter, type AmpProxyEvent } from '../src/index.js';
import { redactHeaders, redactSecret, redactUrl } from '../src/observability/redact.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const SECRETS = ['server-key-abcdef', 'gw-alice-123456', 'alice-amp-789012', 'user-token-345678'];

describe('request events and logging', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  const events: AmpProxyEvent[] = [];
  const lines: { level: string; object: object; message?: string }[] = [];
  const logger = {
    info: (object: object, message?: string) => lines.push({ level: 'info', object, message }),
    warn: (object: object, message?: string) => lines.push({ level: 'warn', object, message }),
    error: (object: object, message?: string) => lines.push({ level: 'error', object, message }),
    debug: (object: object, message?: string) => lines.push({ level: 'debug', object, message }),
  };

  before(async () => {
    upstream = await startUpstream(
      (req, res) => {
        if (req.url?.startsWith('/api/provider/stream')) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: 1\n\n');
          return; // keeps streaming until the client leaves
        }
        req.resume();
        req.on('end', () => res.end('{"ok":true}'));
      },
      { streaming: true },
    );
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: SECRETS[0],
      clients: [{ key: SECRETS[1]!, name: 'alice', upstreamKey: SECRETS[2] }],
      logger,
      onProxyEvent: (event) => {
        events.push(event);
        if (event.type === 'request-start' && event.path.includes('throw')) throw new Error('listener bug');
      },
    });
    app = await listen((req, res) => router(req, res));
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  const ends = () => events.filter((e) => e.type === 'request-end');
  const settle = () => sleep(50);

  it('one request-end event per request, with group, policy, key source and redacted path', async () => {
    events.length = 0;
    await send(`${app.url}/api/provider/anthropic/v1/messages?key=${SECRETS[1]}&x=1`, {
      method: 'POST',
      body: '{}',
    });
    await settle();
    assert.deepEqual(
      events.map((e) => e.type),
      ['request-start', 'request-end'],
    );
    const end = ends()[0]!;
    assert.equal(end.type, 'request-end');
    if (end.type !== 'request-end') return;
    assert.equal(end.group, 'provider');
    assert.equal(end.policy, 'inject');
    assert.equal(end.method, 'POST');
    assert.equal(end.status, 200);
    assert.equal(end.outcome, 'completed');
    assert.equal(end.keySource, 'client:alice');
    assert.equal(end.error, undefined);
    assert.ok(end.durationMs >= 0);
    assert.ok(end.bytesSent > '{"ok":true}'.length);
    assert.equal(end.path, '/api/provider/anthropic/v1/messages?key=gw-a%E2%80%A6&x=1');
  });

  it('refusals, client aborts and upstream failures have their own outcomes', async () => {
    events.length = 0;
    await send(`${app.url}/api/provider/x`, { headers: { authorization: 'Bearer wrong' } });
    await new Promise<void>((resolve) => {
      const req = request(
        `${app.url}/api/provider/stream`,
        { agent: false, headers: { authorization: `Bearer ${SECRETS[1]}` } },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.end();
    });
    await sleep(100);
    const outcomes = ends().map((e) => (e.type === 'request-end' ? [e.outcome, e.error ?? null] : []));
    assert.deepEqual(outcomes, [
      ['refused', 'amp_client_unauthorized'],
      ['client-aborted', null],
    ]);
  });

  it('the logger gets one line per request; upstream failures at warn; no line contains a secret', async () => {
    lines.length = 0;
    const unreachable = ampRouter({
      upstream: 'http://127.0.0.1:9',
      upstreamKey: SECRETS[0],
      logger,
    });
    const broken = await listen((req, res) => unreachable(req, res));
    try {
      await send(`${broken.url}/api/threads?auth_token=${SECRETS[3]}`, {
        headers: { authorization: `Bearer ${SECRETS[3]}` },
      });
      await settle();
    } finally {
      await broken.close();
    }
    await send(`${app.url}/api/threads`, { headers: { authorization: `Bearer ${SECRETS[3]}` } });
    await settle();
    const requestLines = lines.filter((l) => l.message === 'amp request');
    assert.equal(requestLines.length, 2);
    assert.equal(requestLines[0]!.level, 'warn');
    assert.equal((requestLines[0]!.object as { outcome: string }).outcome, 'upstream-error');
    assert.equal(requestLines[1]!.level, 'info');
    const everything = JSON.stringify(lines);
    for (const secret of SECRETS) assert.ok(!everything.includes(secret), `a log line contains ${secret}`);
  });

  it('a throwing listener breaks nothing', async () => {
    const res = await send(`${app.url}/api/throw`);
    assert.equal(res.status, 200);
  });

  it('no listener, no tracing: options without logger work unchanged', async () => {
    const quiet = ampRouter({ upstream: upstream.url });
    const quietApp = await listen((req, res) => quiet(req, res));
    try {
      assert.equal((await send(`${quietApp.url}/api/threads`)).status, 200);
    } finally {
      await quietApp.close();
    }
  });

  it('logger and onProxyEvent are validated', () => {
    assert.throws(() => ampRouter({ logger: { info() {} } as never }), /logger: .*missing warn, error/);
    assert.throws(() => ampRouter({ onProxyEvent: 'yes' as never }), /onProxyEvent: expected a function/);
  });
});

describe('redaction', () => {
  it('shows at most the first four characters of a secret', () => {
    assert.equal(redactSecret('sk-ant-1234567890'), 'sk-a…');
    assert.equal(redactSecret('short'), '…');
  });

  it('redacts credential headers, WebSocket conn params and cookies', () => {
    const safe = redactHeaders(
      {
        authorization: 'Bearer sk-ant-1234567890',
        'x-api-key': 'sk-ant-1234567890',
        'x-goog-api-key': 'AIzaSy1234567890',
        'x-amp-token': 'amp-token-1234567890',
        'x-rivet-token': 'pk_1234567890abc',
        'x-rivet-conn-params': '{"wsToken":"abcdefghijk"}',
        'sec-websocket-protocol': 'rivet, rivet_conn_params.%7B%22wsToken%22%3A%22secret%22%7D',
        cookie: 'session=abcdefghijkl; theme=dark',
        'x-team-token': 'team-token-1234567',
        'user-agent': 'amp/1',
      },
      'x-team-token',
    );
    assert.deepEqual(safe, {
      authorization: 'Bearer sk-a…',
      'x-api-key': 'sk-a…',
      'x-goog-api-key': 'AIza…',
      'x-amp-token': 'amp-…',
      'x-rivet-token': 'pk_1…',
      'x-rivet-conn-params': '{"ws…',
      'sec-websocket-protocol': 'rivet, rivet_conn_params.…',
      cookie: 'session=abcd…; theme=…',
      'x-team-token': 'team…',
      'user-agent': 'amp/1',
    });
  });

  it('redacts key, auth_token and rvt-token query parameters only', () => {
    assert.equal(
      redactUrl('/x?key=AIzaSy1234567890&rvt-token=pk_1234567890&rvt-key=T-1&auth_token=abc'),
      '/x?key=AIza%E2%80%A6&rvt-token=pk_1%E2%80%A6&rvt-key=T-1&auth_token=%E2%80%A6',
    );
    assert.equal(redactUrl('/x'), '/x');
  });
});
