import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';
import { RawClient, exchangeRaw } from './support/raw-client.js';
import {
  GROUPS,
  SECOND_BODY,
  gatewayOptions,
  rawRequest,
  secondClientRequest,
  startGateway,
} from './support/raw-gateway.js';
import { chunked, headerValue } from './support/raw-http.js';
import { describeConnections, startRawUpstream } from './support/raw-upstream.js';

const SECRETS = ['fuzz-server-key-77', 'fuzz-gw-key-88', 'fuzz-mapped-key-99'];

const pathCharArb = fc.constantFrom(
  ..."/abcAPIprovider.%2eEfF5c\\;?&=#:@!$'()*+,~-_ \t".split(''),
  '%00',
  '%2e%2e',
  '/api',
  '/api/provider',
  '/actors',
  '/threads',
  '..',
  '\u00e9',
  '\u2025',
  '\r',
  '\n',
);
const headerArb = fc.record({
  name: fc.constantFrom(
    'Authorization',
    'X-Api-Key',
    'x-goog-api-key',
    'X-Amp-Token',
    'Transfer-Encoding',
    'Content-Length',
    'Expect',
    'Connection',
    'Upgrade',
    'X-Forwarded-For',
    'Host',
    'X-\u00e9',
  ),
  value: fc.oneof(
    fc.constantFrom(
      ...SECRETS.map((s) => `Bearer ${s}`),
      'chunked',
      '0',
      '-1',
      '99999999999',
      '100-continue',
      'close',
      'websocket',
      '',
    ),
    fc.string({ maxLength: 20 }),
  ),
});
const rawRequestArb = fc.record({
  method: fc.constantFrom(
    'GET',
    'POST',
    'PUT',
    'DELETE',
    'OPTIONS',
    'HEAD',
    'PATCH',
    'CONNECT',
    'TRACE',
    'BREW',
    'get',
  ),
  path: fc.array(pathCharArb, { maxLength: 24 }).map((chars) => `/${chars.join('')}`),
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', ''),
  headers: fc.array(headerArb, { maxLength: 6 }),
  body: fc.string({ maxLength: 40 }),
});

function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    const done = () => resolve(response);
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(`${response}\n<timeout>`);
    });
    socket.on('data', (chunk) => (response += chunk.toString('latin1')));
    socket.on('close', done);
    socket.on('error', done);
    socket.write(text, 'latin1');
    // Give the server time to answer a complete request before the connection is dropped.
    setTimeout(() => socket.end(), 300);
  });
}

describe('fuzzing raw request lines', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  before(async () => {
    upstream = await startUpstream((_req, res) => res.end('{"ok":true}'));
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: SECRETS[0],
      clients: [{ key: SECRETS[1]!, upstreamKey: SECRETS[2] }],
    });
    app = await listen((req, res) =>
      router(req, res, () => {
        res.writeHead(404);
        res.end();
      }),
    );
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  it('never crashes, never hangs, always answers well-formed HTTP, and never echoes a configured key', async () => {
    await fc.assert(
      fc.asyncProperty(rawRequestArb, async ({ method, path, version, headers, body }) => {
        const head = headers.map((h) => `${h.name}: ${h.value}\r\n`).join('');
        const text = `${method} ${path} ${version}\r\nHost: gw\r\n${head}\r\n${body}`;
        const response = await exchange(app.port, text);
        assert.ok(!response.includes('<timeout>'), `no answer within 2 s to ${JSON.stringify(text)}`);
        if (response !== '')
          assert.match(response, /^HTTP\/1\.[01] \d{3} /, JSON.stringify(response.slice(0, 80)));
        for (const secret of SECRETS) assert.ok(!response.includes(secret), `response contains ${secret}`);
      }),
      { numRuns: 150 },
    );
    // Still alive and serving.
    const res = await send(`${app.url}/api/threads`, { headers: { authorization: `Bearer ${SECRETS[1]}` } });
    assert.equal(res.status, 200);
  });
});

const FRAMING_HOSTS = ['express 5', 'node:http (insecureHTTPParser)'] as const;
const SMUGGLED_HEAD = 'GET /smuggled HTTP/1.1\r\nHost: upstream.test\r\n\r\n';

/** Header lines that decide, or try to confuse, how a body is delimited. */
function framingLineArb(bodyLength: number) {
  return fc.constantFrom(
    `Content-Length: ${bodyLength}\r\n`,
    'Content-Length: 0\r\n',
    `Content-Length: ${Math.max(0, bodyLength - 1)}\r\n`,
    `Content-Length: ${bodyLength}, ${bodyLength}\r\n`,
    `Content-Length: +${bodyLength}\r\n`,
    'Transfer-Encoding: chunked\r\n',
    'Transfer-Encoding: Chunked \r\n',
    'Transfer-Encoding: gzip, chunked\r\n',
    'Transfer-Encoding: chunked, identity\r\n',
    'Transfer-Encoding: identity\r\n',
    'Transfer-Encoding:\r\n chunked\r\n',
    'Connection: content-length, transfer-encoding\r\n',
    'Connection: host, keep-alive\r\n',
    'Expect: 100-continue\r\n',
    'Upgrade: websocket\r\n',
  );
}

const framedRequestArb = fc
  .record({
    method: fc.constantFrom('GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH'),
    group: fc.constantFrom(...GROUPS),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0') as fc.Arbitrary<'HTTP/1.1' | 'HTTP/1.0'>,
    body: fc.oneof(
      fc.constant(SMUGGLED_HEAD),
      fc.string({ maxLength: 30 }).map((text) => text.replace(/[^\x20-\x7e]/g, 'x')),
    ),
    host: fc.constantFrom(...FRAMING_HOSTS),
    chunkedBody: fc.boolean(),
  })
  .chain((request) =>
    fc.array(framingLineArb(request.body.length), { maxLength: 3 }).map((lines) => ({ ...request, lines })),
  );

describe('fuzzing request framing through the pooled upstream', () => {
  it('whatever the framing headers, the upstream byte stream holds only whole requests the gateway accepted', async () => {
    // 120 generated requests per run, each followed by a second client's request on the pool.
    await fc.assert(
      fc.asyncProperty(
        framedRequestArb,
        async ({ method, group, version, body, host, chunkedBody, lines }) => {
          // Identity routes refuse preflights by design; OPTIONS is fuzzed where it is forwarded.
          if (method === 'OPTIONS' && (group.group === 'management' || group.group === 'actors')) return;
          const upstream = await startRawUpstream();
          const gateway = await startGateway(host, gatewayOptions(upstream.url));
          try {
            const sentBody =
              chunkedBody && lines.some((line) => /chunked/i.test(line)) ? chunked([body]) : body;
            const first = await RawClient.open(gateway.port);
            first.write(
              rawRequest({
                method,
                target: group.target,
                authorization: group.alice.sent,
                label: 'fuzz',
                headers: lines.join(''),
                body: sentBody,
                version,
              }),
            );
            await first.finalResponse({ method, timeoutMs: 400 }).catch(() => undefined);
            first.destroy();
            const second = await exchangeRaw(gateway.port, secondClientRequest(group));
            assert.equal(second.status, 200, second.raw);
            assert.match(
              second.text,
              /"second"/,
              `the second client got another request's answer: ${second.raw}`,
            );
            const dump = describeConnections(upstream.connections);
            for (const connection of upstream.connections) {
              const parsed = connection.parse();
              assert.equal(
                parsed.error,
                undefined,
                `upstream connection does not parse: ${parsed.error}\n${dump}`,
              );
              // A request cut short (its client left mid-body) may end a connection the gateway closed.
              if (parsed.leftover.length > 0) {
                await upstream.waitForClose(connection);
                assert.match(parsed.leftover.toString('latin1'), /^[A-Z]+ \S+ HTTP\/1\.1\r\n/, dump);
              }
              for (const request of parsed.requests) {
                assert.notEqual(request.target, '/smuggled', `smuggled request upstream\n${dump}`);
                assert.ok(
                  ['fuzz', 'second'].includes(headerValue(request, 'x-case') ?? ''),
                  `a request the gateway never accepted reached the upstream\n${dump}`,
                );
              }
            }
            const seconds = upstream
              .arrivals()
              .filter(({ request }) => headerValue(request, 'x-case') === 'second');
            assert.equal(seconds.length, 1, dump);
            assert.equal(headerValue(seconds[0]!.request, 'authorization'), group.bob.upstream, dump);
            assert.equal(seconds[0]!.request.body.toString('latin1'), SECOND_BODY, dump);
          } finally {
            await gateway.close();
            await upstream.close();
          }
        },
      ),
      { numRuns: 120 },
    );
  });
});
