import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ampRouter } from '../src/index.js';
import { isAmbiguousPath, normalisedPath } from '../src/routing/path-safety.js';
import { classifyAmpPath } from '../src/routing/route-groups.js';
import { listen, type RunningApp } from './support/apps.js';
import { sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

/** A raw request line, so no client library cleans the path first. */
const rawGet = (port: number, path: string): Promise<string> =>
  sendRaw(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user\r\nConnection: close\r\n\r\n`);

const AMBIGUOUS = [
  '/threads/../api/user',
  '/threads/%2e%2e/api/user',
  '/threads/%2E%2E/api/user',
  '/threads/.%2e/api/user',
  '/threads/%2e./api/user',
  '/api/provider/../threads/T-1',
  '/api/provider/%2e%2e/%2e%2e/api/threads',
  '/api/provider/anthropic%2f..%2f..%2fthreads',
  '/api/provider/anthropic%2F..%2F..%2Fthreads',
  '/api/provider/a%5c..%5cthreads',
  '/api/provider/a\\..\\threads',
  '/api/./provider/x',
  '/api//provider/x',
  '/api/threads/%00',
  '/api/threads/x%252e%252e',
  '/api/threads/..;/user',
  '/threads/%',
  '/threads/%zz',
  '/api/threads/.',
  '/api/threads/T-1#/../../user',
  '/api/provider#x',
];

describe('ambiguous paths', () => {
  for (const path of AMBIGUOUS) {
    it(`${JSON.stringify(path)} is ambiguous`, () => assert.equal(isAmbiguousPath(path), true));
  }
  for (const path of [
    '/api/threads/T-1',
    '/api/threads/',
    '/actors/gateway/threadActor/websocket/',
    '/threads.rss',
    '/.well-known/x',
    '/api/provider/google/v1beta/models/gemini-2.5:generateContent',
    '/api/threads/a%20b',
    '/api/threads/..x',
  ]) {
    it(`${JSON.stringify(path)} is not ambiguous`, () => assert.equal(isAmbiguousPath(path), false));
  }

  it('normalises the way a lenient upstream would', () => {
    assert.equal(normalisedPath('/threads/%2e%2e/api/user'), '/api/user');
    assert.equal(normalisedPath('/x/..%2f..%2fapi%5cthreads'), '/api/threads');
    assert.equal(normalisedPath('/static/%252e%252e/api'), '/api');
  });

  it('classifies groups', () => {
    assert.equal(classifyAmpPath('/api/provider'), 'provider');
    assert.equal(classifyAmpPath('/api/providers'), 'management');
    assert.equal(classifyAmpPath('/apis'), undefined);
    assert.equal(classifyAmpPath('/actors'), 'actors');
    assert.equal(classifyAmpPath('/threads.rss'), 'browser');
    assert.equal(classifyAmpPath('/threads.json'), undefined);
    assert.equal(classifyAmpPath('/'), undefined);
  });
});

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

  for (const path of AMBIGUOUS.filter((p) => !p.includes('\0'))) {
    it(`${JSON.stringify(path)} is refused with 400 amp_bad_path and never forwarded`, async () => {
      upstream.requests.length = 0;
      const response = await rawRequest(path);
      assert.match(response, /^HTTP\/1\.1 400 /);
      assert.match(response, /"error":"amp_bad_path"/);
      assert.equal(upstream.requests.length, 0);
    });
  }

  it('a raw # anywhere in the request target of an Amp route is refused, in the query too', async () => {
    upstream.requests.length = 0;
    for (const target of ['/api/threads?q=1#frag', '/api/internal?a#b=c', '/threads/x#']) {
      const response = await rawRequest(target);
      assert.match(response, /^HTTP\/1\.1 400 /, target);
      assert.match(response, /"error":"amp_bad_path"/, target);
    }
    assert.equal(upstream.requests.length, 0);
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
    const response = await rawRequest('/static/%2e%2e/api/threads');
    assert.match(response, /^HTTP\/1\.1 400 /);
    assert.equal(upstream.requests.length, 0);
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
      upstream.requests.length = 0;
      const response = await rawGet(app.port, path);
      assert.match(response, /^HTTP\/1\.1 400 .*amp_bad_path/s);
      assert.equal(upstream.requests.length, 0);
    });
  }

  it('encoded characters that change nothing stay allowed', async () => {
    upstream.requests.length = 0;
    const response = await sendRaw(
      app.port,
      'GET /api/threads/find%20me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    assert.match(response, /^HTTP\/1\.1 200 /);
    assert.equal(upstream.only().url, '/api/threads/find%20me');
  });
});
