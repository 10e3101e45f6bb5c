import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { AMBIGUOUS_PATHS } from './support/ambiguous-paths.js';
import { sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

/** A raw request line, so no client library cleans the path first. */
const rawGet = (port: number, path: string): Promise<string> =>
  sendRaw(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user\r\nConnection: close\r\n\r\n`);

describe('ambiguous paths over the wire', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  before(async () => {
    upstream = await startUpstream();
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' });
    app = await listen((req, res) =>
      router(req, res, () => {
        res.writeHead(404);
        res.end('host 404');
      }),
    );
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  const rawRequest = (path: string): Promise<string> => rawGet(app.port, path);

  for (const path of AMBIGUOUS_PATHS.filter((p) => !p.includes('\0'))) {
    it(`${JSON.stringify(path)} is refused with 400 amp_bad_path and never forwarded`, async () => {
      const received = upstream.record();
      const response = await rawRequest(path);
      assert.match(response, /^HTTP\/1\.1 400 /);
      assert.match(response, /"error":"amp_bad_path"/);
      assert.equal(received.requests.length, 0);
    });
  }

  it('a raw # anywhere in the request target of an Amp route is refused, in the query too', async () => {
    const received = upstream.record();
    for (const target of ['/api/threads?q=1#frag', '/api/internal?a#b=c', '/threads/x#']) {
      const response = await rawRequest(target);
      assert.match(response, /^HTTP\/1\.1 400 /, target);
      assert.match(response, /"error":"amp_bad_path"/, target);
    }
    assert.equal(received.requests.length, 0);
    assert.match(await rawRequest('/host-page#section'), /^HTTP\/1\.1 404 /);
  });

  it("traversal that leaves the router's paths is refused too", async () => {
    const response = await rawRequest('/threads/../../admin/%2e%2e/x');
    assert.match(response, /^HTTP\/1\.1 400 /);
  });

  it("the host's own ambiguous paths stay the host's business", async () => {
    const response = await rawRequest('/static/../index.html');
    assert.match(response, /^HTTP\/1\.1 404 /);
    assert.match(response, /host 404/);
  });

  it('an encoded traversal into an Amp path from outside is refused', async () => {
    const received = upstream.record();
    const response = await rawRequest('/static/%2e%2e/api/threads');
    assert.match(response, /^HTTP\/1\.1 400 /);
    assert.equal(received.requests.length, 0);
  });
});

describe('paths that read as another group once decoded', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  before(async () => {
    upstream = await startUpstream();
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' });
    app = await listen((req, res) => router(req, res));
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  for (const path of [
    '/api/%70rovider/anthropic/v1/messages',
    '/api/%50rovider/anthropic/v1/messages',
    '/api/provider;x/anthropic/v1/messages',
    '/api/provider%3bx/anthropic/v1/messages',
    '/%61pi/threads/T-1',
    '/%61ctors/gateway/x',
    '/threads%2erss',
  ]) {
    it(`${JSON.stringify(path)} is refused, never forwarded under the wrong group's policy`, async () => {
      const received = upstream.record();
      const response = await rawGet(app.port, path);
      assert.match(response, /^HTTP\/1\.1 400 .*amp_bad_path/s);
      assert.equal(received.requests.length, 0);
    });
  }

  it('encoded characters that change nothing stay allowed', async () => {
    const received = upstream.record();
    const response = await sendRaw(
      app.port,
      'GET /api/threads/find%20me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    assert.match(response, /^HTTP\/1\.1 200 /);
    assert.equal(received.only().url, '/api/threads/find%20me');
  });
});
