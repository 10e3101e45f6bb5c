import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpProxyEvent } from '../src/index.js';
import { createRedactor, redactHeaders, redactSecret, redactUrl } from '../src/observability/redact.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const SECRETS = ['server-key-abcdef', 'gw-alice-123456', 'alice-amp-789012', 'user-token-345678'];

describe('request events and logging', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  const events = new WaitableList<AmpProxyEvent>();
  const lines = new WaitableList<{ level: string; object: object; message?: string }>();
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

  const endsOf = (list: AmpProxyEvent[]) => list.filter((e) => e.type === 'request-end');
  /** The events since `mark`, once `count` requests have ended: the `request-end` event is the last one. */
  const afterEnds = (mark: number, count: number) =>
    events.until(mark, (list) => endsOf(list).length >= count);
  /** The log lines since `mark`, once `count` of them are request lines. */
  const untilRequestLines = (mark: number, count: number) =>
    lines.until(mark, (list) => list.filter((l) => l.message === 'amp request').length >= count);

  it('one request-end event per request, with group, policy, key source and redacted path', async () => {
    const mark = events.mark();
    await send(`${app.url}/api/provider/anthropic/v1/messages?key=AIzaSy1234567890&x=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SECRETS[1]}` },
      body: '{}',
    });
    const seen = await afterEnds(mark, 1);
    assert.deepEqual(
      seen.map((e) => e.type),
      ['request-start', 'request-end'],
    );
    const end = endsOf(seen)[0]!;
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
    assert.equal(end.path, '/api/provider/anthropic/v1/messages?key=AIza%E2%80%A6&x=1');
  });

  it("every key the config knows is masked wherever it appears in an event's path", async () => {
    const mark = events.mark();
    // A misplaced gateway key is refused, a server or mapped key in a path is forwarded: both are logged.
    await send(`${app.url}/api/threads/${SECRETS[1]}?x=1`);
    await send(`${app.url}/api/threads?note=${encodeURIComponent(`see ${SECRETS[1]}`)}`);
    await send(`${app.url}/api/threads/${SECRETS[0]}/x?${SECRETS[2]}`);
    const paths = endsOf(await afterEnds(mark, 3)).map((e) => e.path);
    assert.equal(paths.length, 3);
    for (const path of paths) for (const secret of SECRETS) assert.ok(!path.includes(secret), path);
    assert.equal(paths[0], '/api/threads/gw-a%E2%80%A6?x=1');
    assert.equal(paths[1], '/api/threads?note=%E2%80%A6');
    assert.equal(paths[2], '/api/threads/serv%E2%80%A6/x?alic%E2%80%A6');
  });

  it('refusals, client aborts and upstream failures have their own outcomes', async () => {
    const mark = events.mark();
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
    const outcomes = endsOf(await afterEnds(mark, 2)).map((e) =>
      e.type === 'request-end' ? [e.outcome, e.error ?? null] : [],
    );
    assert.deepEqual(outcomes, [
      ['refused', 'amp_client_unauthorized'],
      ['client-aborted', null],
    ]);
  });

  it('the logger gets one line per request; upstream failures at warn; no line contains a secret', async () => {
    const mark = lines.mark();
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
      await untilRequestLines(mark, 1);
    } finally {
      await broken.close();
    }
    await send(`${app.url}/api/threads`, { headers: { authorization: `Bearer ${SECRETS[3]}` } });
    const logged = await untilRequestLines(mark, 2);
    const requestLines = logged.filter((l) => l.message === 'amp request');
    assert.equal(requestLines.length, 2);
    assert.equal(requestLines[0]!.level, 'warn');
    assert.equal((requestLines[0]!.object as { outcome: string }).outcome, 'upstream-error');
    assert.equal(requestLines[1]!.level, 'info');
    const everything = JSON.stringify(logged);
    for (const secret of SECRETS) assert.ok(!everything.includes(secret), `a log line contains ${secret}`);
  });

  it('a throwing listener breaks nothing', async () => {
    const mark = events.mark();
    const res = await send(`${app.url}/api/throw`);
    assert.equal(res.status, 200);
    // The request still ends as usual, its request-end event included.
    await afterEnds(mark, 1);
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

  it('redacts key, auth_token and rvt-token query parameters, and keeps rvt-key and the rest as they came', () => {
    assert.equal(
      redactUrl('/x?key=AIzaSy1234567890&rvt-token=pk_1234567890&rvt-key=T-1&auth_token=abc&q=a%20b'),
      '/x?key=AIza%E2%80%A6&rvt-token=pk_1%E2%80%A6&rvt-key=T-1&auth_token=%E2%80%A6&q=a%20b',
    );
    assert.equal(redactUrl('/x'), '/x');
  });

  it('redacts every credential-like query parameter, encoded or not, & or ; separated', () => {
    const masked = '%E2%80%A6';
    for (const name of [
      'api_key',
      'apiKey',
      'X-Goog-Api-Key',
      'access_token',
      'authToken',
      'oauth_verifier',
      'client_secret',
      'password',
      'passwd',
      'pwd',
      'X-Amz-Signature',
      'sig',
      'X-Amz-Credential',
      'session_id',
      'code',
      'jwt',
      '%6Bey',
      'k%65y',
      'api%5Fkey',
      'key[]',
      'tokens[0]',
      '+key',
    ]) {
      assert.equal(redactUrl(`/x?a=1&${name}=abc;b=2`), `/x?a=1&${name}=${masked};b=2`, name);
      assert.equal(redactUrl(`/x?a=1;${name}=abc`), `/x?a=1;${name}=${masked}`, name);
    }
    for (const name of ['rvt-key', 'rvt-namespace', 'model', 'q', 'monkey-business'.slice(0, 3)]) {
      assert.equal(redactUrl(`/x?${name}=abcdefghijkl`), `/x?${name}=abcdefghijkl`, name);
    }
  });

  it('a redactor that knows the keys masks them wherever they appear, whole tokens only', () => {
    const gateway = 'gw-alice-123456';
    const server = 'server-key-abcdef';
    const odd = 'odd+secret/with=chars';
    const redactor = createRedactor([gateway, server, odd]);
    const masked = '%E2%80%A6';
    assert.equal(redactor.url(`/api/${gateway}/x`), `/api/gw-a${masked}/x`);
    assert.equal(redactor.url(`/api/x?${gateway}`), `/api/x?gw-a${masked}`);
    assert.equal(redactor.url(`/api/x?${gateway}=1;b=${server}`), `/api/x?gw-a${masked}=1;b=serv${masked}`);
    assert.equal(redactor.url(`/api/x?q=note+${gateway}+here`), `/api/x?q=note+gw-a${masked}+here`);
    assert.equal(redactor.url(`/api/x?a=1#${gateway}`), `/api/x?a=1#gw-a${masked}`);
    // Found only once decoded: the whole segment or value is masked, as nothing narrower is known.
    assert.equal(redactor.url(`/api/${encodeURIComponent(`"${gateway}"`)}/x`), `/api/${masked}/x`);
    assert.equal(
      redactor.url(`/api/x?f=${encodeURIComponent(JSON.stringify({ k: gateway }))}&g=1`),
      `/api/x?f=${masked}&g=1`,
    );
    assert.equal(redactor.url(`/api/x?${odd}`), `/api/x?${masked}`);
    // Part of a longer token is another token.
    assert.equal(redactor.url(`/api/x?q=x${gateway}`), `/api/x?q=x${gateway}`);

    const basic = Buffer.from(`:${gateway}`).toString('base64');
    assert.deepEqual(
      redactor.headers({
        'user-agent': `amp/1 (${gateway})`,
        'x-note': `token "${server}", more`,
        'x-basic': `Basic ${basic}`,
        'x-odd': `a ${odd} b`,
        [gateway]: 'named',
        cookie: `${gateway}=1`,
        'sec-websocket-protocol': `rivet, ${gateway}`,
        accept: '*/*',
      }),
      {
        'user-agent': 'amp/1 (gw-a…)',
        'x-note': 'token "serv…", more',
        'x-basic': '…',
        'x-odd': 'a … b',
        'gw-a…': 'named',
        cookie: 'gw-a…=…',
        'sec-websocket-protocol': 'rivet, gw-a…',
        accept: '*/*',
      },
    );
  });

  it('masks headers by the same name rule as query parameters', () => {
    assert.deepEqual(
      redactHeaders({
        'x-custom-auth': 'abcdefghijkl',
        'x-session-id': 'abcdefghijkl',
        'x-client-secret': 'abcdefghijkl',
        'x-amz-signature': 'abcdefghijkl',
        'x-request-id': 'abcdefghijkl',
      }),
      {
        'x-custom-auth': 'abcd…',
        'x-session-id': 'abcd…',
        'x-client-secret': 'abcd…',
        'x-amz-signature': 'abcd…',
        'x-request-id': 'abcdefghijkl',
      },
    );
  });
});
