import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

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
