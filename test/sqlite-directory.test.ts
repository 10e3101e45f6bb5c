import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ampRouter, AmpProxyConfigError } from '../src/index.js';
import { KeyStore, loadSqlite } from '../src/directory/sqlite-directory.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { runCli, startCli } from './support/gateway-harness.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const PROVIDER_PATH = '/api/provider/anthropic/v1/messages';
const BODY = JSON.stringify({ model: 'claude', messages: [] });
const KEY = /ampgw_[A-Za-z0-9]{38}/g;
const skip = loadSqlite() ? false : 'node:sqlite needs Node 22.13 or later';

function provider(url: string, key: string) {
  return send(`${url}${PROVIDER_PATH}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: BODY,
  });
}

describe('amp-proxy keys, a SQLite key file, and the gateway reading it', { skip }, () => {
  let dir: string;
  let db: string;
  const env = { ...process.env, ALICE_AMP_KEY: 'alices-own-amp-key' };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'amp-keys-'));
    db = join(dir, 'keys.db');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function addKey(...args: string[]): Promise<string> {
    const { code, output } = await runCli(dir, env, ['keys', 'add', ...args, '--db', db]);
    assert.equal(code, 0, output);
    const keys = output.match(KEY) ?? [];
    assert.equal(keys.length, 1, `printed once: ${output}`);
    assert.doesNotMatch(output, /ExperimentalWarning/);
    return keys[0]!;
  }

  it('add prints the key once; list never shows it; the file holds neither it nor the Amp key', async () => {
    const alice = await addKey('alice', '--team', 'eng', '--amp-key-from-env', 'ALICE_AMP_KEY');
    const bob = await addKey('bob', '--expires', '30d');
    const { code, output } = await runCli(dir, env, ['keys', 'list', '--db', db]);
    assert.equal(code, 0, output);
    assert.match(output, /alice\s+eng\s+active\s+\S+\s+-\s+mapped/);
    assert.match(output, /bob\s+-\s+active\s+\S+\s+\d{4}-\d\d-\d\dT\S+\s+-/);
    assert.doesNotMatch(output, KEY);
    const file = readFileSync(db);
    for (const secret of [alice, bob, 'alices-own-amp-key']) assert.equal(file.indexOf(secret), -1, secret);
  });

  it('refuses a mapped key from a variable that is not set, and unknown actions, with a usage error', async () => {
    const unset = await runCli(dir, env, [
      'keys',
      'add',
      'x',
      '--amp-key-from-env',
      'NOT_SET_ANYWHERE',
      '--db',
      db,
    ]);
    assert.equal(unset.code, 2);
    assert.match(unset.output, /NOT_SET_ANYWHERE is not set/);
    assert.equal((await runCli(dir, env, ['keys', 'rotate', '--db', db])).code, 2);
    const missing = await runCli(dir, env, ['keys', 'list', '--db', join(dir, 'none.db')]);
    assert.equal(missing.code, 1);
    assert.match(missing.output, /does not exist/);
  });

  for (const [name, express] of EXPRESS_VERSIONS) {
    describe(`clients: { sqlite } (${name})`, () => {
      let upstream: FakeUpstream;
      let fresh: RunningApp;
      let cached: RunningApp;
      let carol: string;

      before(async () => {
        carol = await addKey(`carol-${name.replace(/\W/g, '')}`, '--amp-key-from-env', 'ALICE_AMP_KEY');
        upstream = await startUpstream();
        const app = (positiveTtlMs: number) => {
          const host = express();
          host.use(
            ampRouter({
              upstream: upstream.url,
              upstreamKey: 'server-key',
              clients: { sqlite: db, cache: { positiveTtlMs } },
            }),
          );
          return listen(host);
        };
        fresh = await app(0);
        cached = await app(3_600_000);
      });
      after(async () => {
        await fresh.close();
        await cached.close();
        await upstream.close();
      });

      it('a key from the file is accepted and spends its own Amp key, decrypted', async () => {
        const received = upstream.record();
        assert.equal((await provider(fresh.url, carol)).status, 200);
        assert.equal((await provider(cached.url, carol)).status, 200);
        for (const seen of received.requests)
          assert.equal(seen.headers.authorization, 'Bearer alices-own-amp-key');
      });

      it('a revoked key stops working once the cached answer ends (at once with a TTL of 0)', async () => {
        const revoked = await runCli(dir, env, [
          'keys',
          'revoke',
          `carol-${name.replace(/\W/g, '')}`,
          '--db',
          db,
        ]);
        assert.equal(revoked.code, 0, revoked.output);
        const received = upstream.record();
        const refused = await provider(fresh.url, carol);
        assert.equal(refused.status, 401);
        assert.equal((refused.json() as { error: string }).error, 'amp_client_unauthorized');
        assert.equal((await provider(cached.url, carol)).status, 200, 'still within its TTL');
        assert.equal(received.requests.length, 1);
      });

      it('an expired key is refused', async () => {
        const store = KeyStore.open(db, 'write');
        const { key } = store.add('dave', { expiresAt: Date.now() - 1 });
        store.close();
        assert.equal((await provider(fresh.url, key)).status, 401);
        assert.equal((await provider(cached.url, key)).status, 401);
      });
    });
  }

  it('a path that is not a key file fails the factory, naming the option', () => {
    const notKeys = join(dir, 'other.db');
    writeFileSync(notKeys, 'not a database');
    for (const sqlite of [join(dir, 'missing.db'), notKeys]) {
      assert.throws(
        () => ampRouter({ clients: { sqlite } }),
        (error) => error instanceof AmpProxyConfigError && error.option === 'clients.sqlite',
      );
    }
  });

  it('the standalone gateway points clients at the file from its config, with no runtime warning', async () => {
    const erin = await addKey('erin');
    const upstream = await startUpstream();
    const config = join(dir, 'gateway.json');
    writeFileSync(
      config,
      JSON.stringify({ upstream: upstream.url, upstreamKey: 'server-key', clients: { sqlite: db } }),
    );
    const gateway = startCli(dir, env, ['--config', config]);
    try {
      const url = await gateway.listening;
      const received = upstream.record();
      assert.equal((await provider(url, erin)).status, 200);
      assert.equal(received.only().headers.authorization, 'Bearer server-key');
      assert.equal(
        (
          await provider(
            url,
            erin.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
          )
        ).status,
        401,
      );
      assert.doesNotMatch(gateway.output(), /ExperimentalWarning|SQLite/);
    } finally {
      await gateway.stop();
      await upstream.close();
    }
  });
});
