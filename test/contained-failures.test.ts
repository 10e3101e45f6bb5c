import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpProxyEvent, type AmpProxyOptions } from '../src/index.js';
import { containedTracer, createTracer } from '../src/observability/events.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { within } from './support/gateway-harness.js';
import { installTripwire, tripwireEachTest } from './support/tripwire.js';
import { startRawUpstream } from './support/raw-upstream.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const SERVER_KEY = 'server-key-contained-0001';
const MESSAGES = '/api/provider/anthropic/v1/messages';
const DEPTH = 5000;
const DEEP = `${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}`;

/** The hosts a request reaches the router in: both Express majors and a bare `node:http` server. */
const HOSTS: ReadonlyArray<readonly [string, (router: ReturnType<typeof ampRouter>) => RequestListener]> = [
  ...EXPRESS_VERSIONS.map(
    ([name, express]) =>
      [
        name,
        (router: ReturnType<typeof ampRouter>) => {
          const app = express();
          app.use(router);
          return app as RequestListener;
        },
      ] as const,
  ),
  ['node:http', (router) => (req, res) => router(req, res)],
];

describe('logging and events never throw into request handling', () => {
  let upstream: FakeUpstream;
  const apps: RunningApp[] = [];
  const warnings = new WaitableList<Error & { code?: string }>();

  before(async () => {
    upstream = await startUpstream();
    process.on('warning', warnings.push);
  });
  after(async () => {
    process.off('warning', warnings.push);
    await Promise.all(apps.map((app) => app.close()));
    await upstream.close();
  });
  tripwireEachTest();

  async function gateway(host: (typeof HOSTS)[number], options: AmpProxyOptions) {
    const router = ampRouter({ upstream: upstream.url, upstreamKey: SERVER_KEY, ...options });
    const app = await listen(host[1](router));
    apps.push(app);
    return app;
  }

  for (const host of HOSTS) {
    it(`${host[0]}: a token parameter holding an emoji is served and logged redacted (the process exited on it)`, async () => {
      const events = new WaitableList<AmpProxyEvent>();
      const lines = new WaitableList<object>();
      const log = (line: object): void => lines.push(line);
      const app = await gateway(host, {
        onProxyEvent: events.push,
        logger: { info: log, warn: log, error: log, debug: log },
      });
      const record = upstream.record();
      const target = '/api/internal?token=abc%F0%9F%98%80defghij&q=%F0%9F%98';
      const res = await send(`${app.url}${target}`, { headers: { authorization: 'Bearer user-token-1' } });
      assert.equal(res.status, 200, res.body);
      assert.equal(record.only().url, target);
      const [end] = (await events.until(0, (items) => items.some((e) => e.type === 'request-end'))).filter(
        (e) => e.type === 'request-end',
      );
      assert.equal(end?.path, '/api/internal?token=abc%F0%9F%98%80%E2%80%A6&q=%F0%9F%98');
    });

    it(`${host[0]}: a logger and an onProxyEvent listener that throw are reported once each and change no answer`, async () => {
      const fail = (): never => {
        throw new TypeError('listener bug');
      };
      const app = await gateway(host, {
        onProxyEvent: fail,
        logger: { info: fail, warn: fail, error: fail, debug: fail },
      });
      const mark = warnings.mark();
      const record = upstream.record();
      for (let n = 0; n < 3; n++) {
        const res = await send(`${app.url}/api/internal?n=${n}`, { headers: { authorization: 'Bearer u' } });
        assert.equal(res.status, 200, res.body);
      }
      assert.equal(record.requests.length, 3);
      // The logger's own warn throws too, so the report goes to the process.
      const reported = await warnings.until(mark, (items) => items.length >= 2);
      assert.deepEqual(
        reported.map((w) => w.code),
        ['amp_listener_error', 'amp_listener_error'],
      );
      assert.match(reported.map((w) => w.message).join('\n'), /logger threw \(TypeError\)/);
      assert.match(reported.map((w) => w.message).join('\n'), /onProxyEvent threw \(TypeError\)/);
      assert.ok(
        !reported.some((w) => w.message.includes('listener bug')),
        'a listener error message is host text',
      );
    });
  }

  it('a logger whose info throws is reported once through its own warn', async () => {
    const lines: object[] = [];
    const app = await gateway(HOSTS[2]!, {
      logger: {
        info: () => {
          throw new Error('disk full');
        },
        warn: (object: object, message?: string) => lines.push({ ...object, message }),
        error: () => undefined,
      },
    });
    for (let n = 0; n < 2; n++) assert.equal((await send(`${app.url}/api/internal`)).status, 200);
    const failed = lines.filter((line) => (line as { code?: string }).code === 'amp_listener_error');
    assert.equal(failed.length, 1, JSON.stringify(lines));
  });

  it('a trace that fails (a bug of ours) costs the request its events, never its answer, and is reported once', () => {
    const reports: string[] = [];
    const tracer = containedTracer(
      createTracer('management', 'passthrough', () => undefined, {
        url: () => {
          throw new URIError('URI malformed');
        },
        text: (text) => text,
      }),
      (code) => reports.push(code),
    );
    const fakeSocket = { bytesWritten: 0 };
    const req = { method: 'GET', socket: fakeSocket } as never;
    const res = { once: () => undefined } as never;
    for (let n = 0; n < 2; n++) {
      const trace = tracer.request(req, res, '/api/internal?token=x');
      trace.answered('amp_bad_path');
    }
    assert.deepEqual(reports, ['amp_trace_error']);
  });
});

describe('upstream bytes cannot throw outside the error boundary', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url?.includes('stream')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`data: {"model":"served-model","a":${DEEP}}\n\ndata: {"model":"served-model"}\n\n`);
        return;
      }
      const body = `{"model":"served-model","a":${DEEP}}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: SERVER_KEY,
      modelMappings: [{ from: 'claude-opus-4', to: 'served-model' }],
    });
    app = await listen((req, res) => router(req, res));
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });
  tripwireEachTest();

  const body = JSON.stringify({ model: 'claude-opus-4', messages: [] });
  const post = (path: string) =>
    within(
      send(`${app.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }),
      10_000,
      'the answer',
    );
  /**
   * The answer rewritten where `JSON.stringify` can write the document back (Node 26 does at any
   * depth), else as it came; compared by hand, as a failed assertion would print megabytes.
   */
  const assertOneOf = (actual: string, asItCame: string) => {
    const rewritten = asItCame.replaceAll('"served-model"', '"claude-opus-4"');
    assert.ok(
      actual === asItCame || actual === rewritten,
      `got ${actual.length} chars starting ${JSON.stringify(actual.slice(0, 60))}`,
    );
  };

  it(`a mapped call's JSON answer nested ${DEPTH} levels deep reaches the client`, async () => {
    const res = await post(MESSAGES);
    assert.equal(res.status, 200);
    assertOneOf(res.body, `{"model":"served-model","a":${DEEP}}`);
    assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body));
  });

  it(`a mapped call's event stream with an event nested ${DEPTH} levels deep reaches the client, the next event rewritten`, async () => {
    const res = await post(`${MESSAGES}?stream`);
    assert.equal(res.status, 200);
    const [deepEvent, nextEvent] = res.body.split('\n\n');
    assertOneOf(`${deepEvent}\n\n`, `data: {"model":"served-model","a":${DEEP}}\n\n`);
    assert.equal(nextEvent, 'data: {"model":"claude-opus-4"}');
    assert.ok(res.body.endsWith('\n\n'));
  });
});

describe('an answer Node cannot pass on is a failed upstream, not a crash', () => {
  const ODD_STATUS = 'HTTP/1.1 042 Odd\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';

  it('a status below 100, on a forwarded or a mapped call, is answered 502 and the next request is served', async () => {
    const tripwire = installTripwire();
    const upstream = await startRawUpstream({ reply: () => ({ status: 0, raw: ODD_STATUS, close: true }) });
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: SERVER_KEY,
      modelMappings: [{ from: 'claude-opus-4', to: 'served-model' }],
    });
    const app = await listen((req, res) => router(req, res));
    try {
      const mapped = JSON.stringify({ model: 'claude-opus-4' });
      for (const [path, body] of [
        ['/api/internal', undefined],
        [MESSAGES, undefined],
        [MESSAGES, mapped],
      ] as const) {
        const method = body ? 'POST' : 'GET';
        const headers = { authorization: 'Bearer u', 'content-type': 'application/json' };
        const res = await within(send(`${app.url}${path}`, { method, headers, body }), 5000, path);
        assert.equal(res.status, 502, res.body);
        assert.equal((res.json() as { error: string }).error, 'amp_upstream_proxy_error');
      }
      assert.equal(upstream.arrivals().length, 3);
    } finally {
      await app.close();
      await upstream.close();
      tripwire.remove();
    }
    assert.deepEqual(tripwire.caught, []);
  });
});
