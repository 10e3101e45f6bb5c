import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { ampRouter, type AmpProxyOptions } from '../src/index.js';
import { listen } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

describe('where the server key comes from', () => {
  let upstream: FakeUpstream;
  let dir: string;
  const savedEnv = process.env.AMP_API_KEY;
  const savedGatewayEnv = process.env.AMP_PROXY_UPSTREAM_KEY;

  before(async () => {
    upstream = await startUpstream();
    dir = await mkdtemp(join(tmpdir(), 'amp-secrets-'));
  });
  // The gateway's own variable comes before AMP_API_KEY: one set where the suite runs must not
  // decide these tests.
  beforeEach(() => {
    delete process.env.AMP_PROXY_UPSTREAM_KEY;
  });
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.AMP_API_KEY;
    else process.env.AMP_API_KEY = savedEnv;
    if (savedGatewayEnv === undefined) delete process.env.AMP_PROXY_UPSTREAM_KEY;
    else process.env.AMP_PROXY_UPSTREAM_KEY = savedGatewayEnv;
  });
  after(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function keySent(options: AmpProxyOptions): Promise<string | undefined> {
    const router = ampRouter({ upstream: upstream.url, ...options });
    const app = await listen((req, res) => router(req, res));
    try {
      const received = upstream.record();
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, { method: 'POST', body: '{}' });
      if (res.status === 503) return undefined;
      return received.only().headers['x-api-key'] as string;
    } finally {
      await app.close();
    }
  }

  async function secrets(content: object | string): Promise<string> {
    const file = join(dir, `secrets-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  }

  it('an explicit upstreamKey wins over env and file', async () => {
    process.env.AMP_API_KEY = 'from-env';
    const file = await secrets({ [`apiKey@${upstream.url}`]: 'from-file' });
    assert.equal(await keySent({ upstreamKey: 'from-config', secretsFile: file }), 'from-config');
  });

  it('a key function is asked per request', async () => {
    let calls = 0;
    assert.equal(await keySent({ upstreamKey: async () => `from-fn-${++calls}` }), 'from-fn-1');
  });

  it('without upstreamKey, spends no key of its environment: not AMP_API_KEY, not the secrets file', async () => {
    process.env.AMP_API_KEY = 'from-env';
    process.env.AMP_PROXY_UPSTREAM_KEY = 'from-gateway-env';
    const file = await secrets({ [`apiKey@${upstream.url}`]: 'from-file' });
    assert.equal(await keySent({ secretsFile: file }), undefined);
    const received = upstream.record();
    const router = ampRouter({ upstream: upstream.url, secretsFile: file });
    const app = await listen((req, res) => router(req, res));
    try {
      const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 503);
      assert.equal((res.json() as { error: string }).error, 'amp_upstream_key_missing');
      assert.equal(received.requests.length, 0);
    } finally {
      await app.close();
    }
  });

  it("without upstreamKey, the key `amp login` stored under $HOME is not spent; with 'env' it is", async () => {
    delete process.env.AMP_API_KEY;
    const home = join(dir, `home-${Math.random().toString(36).slice(2)}`);
    await mkdir(join(home, '.local/share/amp'), { recursive: true });
    await writeFile(
      join(home, '.local/share/amp/secrets.json'),
      JSON.stringify({ [`apiKey@${upstream.url}`]: 'from-amp-login' }),
    );
    const savedHome = process.env.HOME;
    process.env.HOME = home;
    try {
      assert.equal(await keySent({}), undefined);
      assert.equal(await keySent({ upstreamKey: 'env' }), 'from-amp-login');
    } finally {
      process.env.HOME = savedHome;
    }
  });

  it('upstreamKey: null or false says there is no server key', async () => {
    process.env.AMP_API_KEY = 'from-env';
    const file = await secrets({ [`apiKey@${upstream.url}`]: 'from-file' });
    assert.equal(await keySent({ upstreamKey: null, secretsFile: file }), undefined);
    assert.equal(await keySent({ upstreamKey: false, secretsFile: file }), undefined);
  });

  it("upstreamKey: 'env' opts in: AMP_PROXY_UPSTREAM_KEY, then AMP_API_KEY, then the secrets file", async () => {
    const file = await secrets({ [`apiKey@${upstream.url}`]: 'from-file' });
    process.env.AMP_PROXY_UPSTREAM_KEY = 'from-gateway-env';
    process.env.AMP_API_KEY = 'from-env';
    assert.equal(await keySent({ upstreamKey: 'env', secretsFile: file }), 'from-gateway-env');
    delete process.env.AMP_PROXY_UPSTREAM_KEY;
    assert.equal(await keySent({ upstreamKey: 'env', secretsFile: file }), 'from-env');
    delete process.env.AMP_API_KEY;
    assert.equal(await keySent({ upstreamKey: 'env', secretsFile: file }), 'from-file');
  });

  it('an unset variable given as upstreamKey means no key, and type-checks', async () => {
    process.env.AMP_API_KEY = 'from-env';
    assert.equal(await keySent({ upstreamKey: process.env.AMP_TEST_UNSET_KEY_VARIABLE }), undefined);
  });

  it('the secrets file entry for the upstream, with or without a trailing slash', async () => {
    delete process.env.AMP_API_KEY;
    assert.equal(
      await keySent({
        upstreamKey: 'env',
        secretsFile: await secrets({ [`apiKey@${upstream.url}`]: 'exact' }),
      }),
      'exact',
    );
    assert.equal(
      await keySent({
        upstreamKey: 'env',
        secretsFile: await secrets({ [`apiKey@${upstream.url}/`]: 'slash' }),
      }),
      'slash',
    );
    assert.equal(
      await keySent({
        upstream: `${upstream.url}/`,
        upstreamKey: 'env',
        secretsFile: await secrets({ [`apiKey@${upstream.url}`]: 'no-slash' }),
      }),
      'no-slash',
    );
  });

  it("the configured upstream's entry is used, not the default server's beside it", async () => {
    delete process.env.AMP_API_KEY;
    const file = await secrets({
      'apiKey@https://ampcode.com/': 'wrong-server',
      [`apiKey@${upstream.url}/`]: 'right-server',
    });
    assert.equal(await keySent({ upstreamKey: 'env', secretsFile: file }), 'right-server');
  });

  it("another server's entry is not used", async () => {
    delete process.env.AMP_API_KEY;
    const file = await secrets({ 'apiKey@https://ampcode.com/': 'for-ampcode' });
    assert.equal(await keySent({ upstreamKey: 'env', secretsFile: file }), undefined);
  });

  it('a missing or malformed secrets file means no key, not a crash', async () => {
    delete process.env.AMP_API_KEY;
    assert.equal(
      await keySent({ upstreamKey: 'env', secretsFile: join(dir, 'does-not-exist.json') }),
      undefined,
    );
    assert.equal(await keySent({ upstreamKey: 'env', secretsFile: await secrets('{not json') }), undefined);
  });
});

describe('secrets file entry names', () => {
  it("include the CLI's spelling of the default server", async () => {
    const { secretsFileEntries } = await import('../src/auth/server-key.js');
    assert.ok(secretsFileEntries('https://ampcode.com').includes('apiKey@https://ampcode.com/'));
    assert.deepEqual(secretsFileEntries('http://h:1/p/'), ['apiKey@http://h:1/p/', 'apiKey@http://h:1/p']);
  });
});
