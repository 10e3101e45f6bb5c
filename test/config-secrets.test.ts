// No error of the configuration echoes a secret, however malformed the value: not the factory's
// (options.test.ts), not the command line's stderr, not the reload log.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAmpConfig } from '../src/index.js';
import { reloadConfig } from '../src/gateway/reload.js';
import { runCli } from './support/gateway-harness.js';
import { MALFORMED_UPSTREAMS } from './support/malformed-upstreams.js';

const SECRET = 'S3cr3t-pa55word-77';

describe('a malformed upstream never shows its secret', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amp-config-secrets-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('in the reload log: the gateway keeps its configuration and logs the option, not the value', async () => {
    const lines: unknown[] = [];
    const log = (object: object, message?: string): void => void lines.push({ object, message });
    const logger = { info: log, warn: log, error: log };
    await writeFile(join(dir, 'good.json'), '{}');
    const current = await loadAmpConfig({ cwd: dir, configFile: 'good.json', env: {} });
    for (const [index, upstream] of MALFORMED_UPSTREAMS(SECRET).entries()) {
      const file = `bad-${index}.json`;
      await writeFile(join(dir, file), JSON.stringify({ upstream }));
      const kept = await reloadConfig(
        current,
        () => loadAmpConfig({ cwd: dir, configFile: file, env: {} }),
        () => assert.fail(`applied ${upstream}`),
        logger,
      );
      assert.equal(kept, current);
    }
    assert.equal(lines.length, MALFORMED_UPSTREAMS(SECRET).length);
    const logged = JSON.stringify(lines);
    assert.match(logged, /"option":"upstream"/);
    assert.ok(!logged.includes(SECRET), logged);
  });

  it("in the command line's error, from a config file and from AMP_PROXY_UPSTREAM", async () => {
    const env = { PATH: process.env.PATH, HOME: dir };
    // A few shapes through the process; the factory test runs the whole table.
    for (const upstream of [
      `htps:/user:${SECRET}@ampcode.com/`,
      `https:/ /user:${SECRET}@ampcode.com/`,
      `file:///user:${SECRET}@ampcode.com/`,
    ]) {
      await writeFile(join(dir, 'bad.json'), JSON.stringify({ upstream }));
      const fromFile = await runCli(dir, env, ['--config', 'bad.json', '--print-config']);
      assert.equal(fromFile.code, 2, fromFile.output);
      assert.match(fromFile.output, /bad\.json: upstream: expected/);
      assert.ok(!fromFile.output.includes(SECRET), fromFile.output);
      const fromEnv = await runCli(dir, { ...env, AMP_PROXY_UPSTREAM: upstream }, ['--port', '0']);
      assert.equal(fromEnv.code, 2, fromEnv.output);
      assert.match(fromEnv.output, /upstream: expected/);
      assert.ok(!fromEnv.output.includes(SECRET), fromEnv.output);
    }
  });
});

describe("the gateway's server key", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amp-key-order-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it("AMP_API_KEY (the CLI user's key) does not override the file; --upstream-key-file overrides all; --print-config says which won", async () => {
    await writeFile(join(dir, 'package.json'), '{}');
    await writeFile(join(dir, 'gateway.json'), '{"upstreamKey":"sk-from-config-file-01"}');
    await writeFile(join(dir, 'server.key'), 'sk-from-key-file-0002\n');
    const env = { PATH: process.env.PATH, HOME: dir, AMP_API_KEY: 'sk-cli-user-key-0003' };
    const fromFile = await runCli(dir, env, ['--config', 'gateway.json', '--print-config']);
    assert.equal(fromFile.code, 0, fromFile.output);
    const printed = JSON.parse(fromFile.output);
    assert.equal(printed.upstreamKeyOrigin, 'config file, over env AMP_API_KEY');
    assert.equal(printed.upstreamKey, 'sk-f…');
    const fromKeyFile = await runCli(dir, env, [
      '--config',
      'gateway.json',
      '--upstream-key-file',
      'server.key',
      '--print-config',
    ]);
    assert.equal(fromKeyFile.code, 0, fromKeyFile.output);
    const overridden = JSON.parse(fromKeyFile.output);
    assert.equal(
      overridden.upstreamKeyOrigin,
      `file ${join(dir, 'server.key')} (--upstream-key-file), over the config file's upstreamKey, env AMP_API_KEY`,
    );
    for (const key of ['sk-from-config-file-01', 'sk-from-key-file-0002', 'sk-cli-user-key-0003']) {
      assert.ok(!fromFile.output.includes(key) && !fromKeyFile.output.includes(key), key);
    }
  });
});
