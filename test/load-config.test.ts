import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { after, describe, it } from 'node:test';
import { AmpProxyConfigError, loadAmpConfig } from '../src/index.js';

const dirs: string[] = [];
async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amp-config-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return dir;
}
after(async () => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('loadAmpConfig', () => {
  it('with no config file, returns the defaults', async () => {
    const cwd = await project({ 'package.json': '{"name":"x"}' });
    const loaded = await loadAmpConfig({ cwd, env: {} });
    assert.equal(loaded.filepath, undefined);
    // A gateway reads the proxy variables (none set here); a host that builds options in code does not.
    // With no key named anywhere, the gateway looks for the Amp CLI's: it says so with 'env'.
    assert.deepEqual(loaded.options, { upstreamKey: 'env', upstreamProxy: false });
    assert.deepEqual(loaded.gateway, {
      port: 8317,
      host: '127.0.0.1',
      metricsPath: undefined,
      drainMs: 10_000,
      auditLog: undefined,
      usagePath: undefined,
    });
  });

  for (const [name, content] of [
    ['.amp-proxyrc', 'upstream: https://amp.example\npolicies:\n  management: dual-token\n'],
    ['.amp-proxyrc.json', '{"upstream":"https://amp.example","policies":{"management":"dual-token"}}'],
    ['.amp-proxyrc.yaml', 'upstream: https://amp.example\npolicies: { management: dual-token }\n'],
    [
      'amp-proxy.config.mjs',
      'export default { upstream: "https://amp.example", policies: { management: "dual-token" } };',
    ],
    [
      'amp-proxy.config.cjs',
      'module.exports = { upstream: "https://amp.example", policies: { management: "dual-token" } };',
    ],
    ['amp-proxy.config.yaml', 'upstream: https://amp.example\npolicies:\n  management: dual-token\n'],
  ] as const) {
    it(`finds ${name}`, async () => {
      const cwd = await project({ 'package.json': '{"name":"x"}', [name]: content });
      const loaded = await loadAmpConfig({ cwd, env: {} });
      assert.equal(loaded.filepath, join(cwd, name));
      assert.deepEqual(loaded.options, {
        upstream: 'https://amp.example',
        policies: { management: 'dual-token' },
        upstreamKey: 'env',
        upstreamProxy: false,
      });
    });
  }

  it('finds the "ampProxy" key of package.json, searching up from a sub-directory', async () => {
    const cwd = await project({
      'package.json': JSON.stringify({ name: 'x', ampProxy: { timeoutMs: 1234, port: 9000 } }),
      'src/deep/.keep': '',
    });
    const loaded = await loadAmpConfig({ cwd: join(cwd, 'src/deep'), env: {} });
    assert.equal(loaded.filepath, join(cwd, 'package.json'));
    assert.deepEqual(loaded.options, { timeoutMs: 1234, upstreamKey: 'env', upstreamProxy: false });
    assert.equal(loaded.gateway.port, 9000);
  });

  it('loads an explicit configFile', async () => {
    const cwd = await project({ 'conf/gateway.json': '{"tokenHeader":"x-user-amp"}' });
    const loaded = await loadAmpConfig({ cwd, configFile: 'conf/gateway.json', env: {} });
    assert.equal(loaded.options.tokenHeader, 'x-user-amp');
  });

  it('resolves { env } and { file } secret references, and watches referenced files', async () => {
    const cwd = await project({
      'secrets/server.key': 'server-key-from-file\n',
      '.amp-proxyrc.yaml': [
        'upstreamKey: { file: secrets/server.key }',
        'clients:',
        '  - key: { env: ALICE_GATEWAY_KEY }',
        '    name: alice',
        '    upstreamKey: { env: ALICE_AMP_KEY }',
      ].join('\n'),
    });
    const loaded = await loadAmpConfig({
      cwd,
      env: { ALICE_GATEWAY_KEY: 'gw-alice', ALICE_AMP_KEY: 'amp-alice' },
    });
    assert.equal(loaded.options.upstreamKey, 'server-key-from-file');
    assert.deepEqual(loaded.options.clients, [{ key: 'gw-alice', name: 'alice', upstreamKey: 'amp-alice' }]);
    assert.deepEqual(loaded.watchFiles, [join(cwd, '.amp-proxyrc.yaml'), join(cwd, 'secrets/server.key')]);
    assert.match(String(loaded.upstreamKeyOrigin), /^file .*server\.key/);
  });

  it("environment variables override the file, except AMP_API_KEY (the CLI user's key)", async () => {
    const cwd = await project({
      '.amp-proxyrc.json': '{"upstream":"https://file.example","upstreamKey":"file-key","port":1}',
    });
    const loaded = await loadAmpConfig({
      cwd,
      env: {
        AMP_PROXY_UPSTREAM: 'https://env.example',
        AMP_API_KEY: 'cli-user-key',
        AMP_PROXY_PORT: '9999',
        AMP_PROXY_HOST: '0.0.0.0',
      },
    });
    assert.equal(loaded.options.upstream, 'https://env.example');
    assert.equal(loaded.options.upstreamKey, 'file-key');
    assert.equal(loaded.upstreamKeyOrigin, 'config file, over env AMP_API_KEY');
    assert.deepEqual(loaded.gateway, {
      port: 9999,
      host: '0.0.0.0',
      metricsPath: undefined,
      drainMs: 10_000,
      auditLog: undefined,
      usagePath: undefined,
    });
  });

  it('reports every problem of a file at once, the gateway settings among them', async () => {
    const cwd = await project({
      '.amp-proxyrc.json': '{"polices":{},"timeoutMs":"soon","port":"http","drainMs":-5}',
    });
    await assert.rejects(loadAmpConfig({ cwd, env: {} }), (error: unknown) => {
      assert.ok(error instanceof AmpProxyConfigError);
      assert.deepEqual(
        error.problems.map((problem) => problem.option),
        ['polices', 'timeoutMs', 'port', 'drainMs'],
      );
      assert.equal(error.option, 'polices');
      assert.match(error.problem, /did you mean `policies`\?/);
      assert.ok(error.file?.endsWith('.amp-proxyrc.json'));
      assert.match(error.message, /4 problems/);
      return true;
    });
  });

  it('an unknown option in a file lists what a file can set: the gateway settings, no function-only options', async () => {
    const cwd = await project({ '.amp-proxyrc.json': '{"upstreem":"https://typo.example"}' });
    await assert.rejects(loadAmpConfig({ cwd, env: {} }), (error: Error) => {
      assert.match(
        error.message,
        /upstreem: unknown option; did you mean `upstream`\? The options are .*\bupstream\b/,
      );
      assert.match(error.message, /\bport\b.*\bhost\b.*\bmetricsPath\b|\bmetricsPath\b/);
      assert.doesNotMatch(error.message, /\blogger\b|\bonProxyEvent\b|\blocalProvider\b/);
      return true;
    });
  });

  it('the server key: --upstream-key-file, AMP_PROXY_UPSTREAM_KEY, the file, AMP_API_KEY, the secrets file; the origin says which won', async () => {
    const cwd = await project({
      '.amp-proxyrc.json': '{"upstreamKey":"file-key","secretsFile":"secrets.json"}',
      'secrets.json': '{"apiKey@https://ampcode.com":"cli-stored-key"}',
      'keys/server.key': 'key-from-key-file\n',
      'no-key.json': '{"upstreamKey":null,"secretsFile":"secrets.json"}',
      'only-secrets.json': '{"secretsFile":"secrets.json"}',
    });
    const env = { AMP_PROXY_UPSTREAM_KEY: 'gateway-key', AMP_API_KEY: 'cli-user-key' };
    const fromKeyFile = await loadAmpConfig({ cwd, env, upstreamKeyFile: 'keys/server.key' });
    assert.equal(fromKeyFile.options.upstreamKey, 'key-from-key-file');
    assert.equal(
      fromKeyFile.upstreamKeyOrigin,
      `file ${join(cwd, 'keys/server.key')} (--upstream-key-file), over env AMP_PROXY_UPSTREAM_KEY, the config file's upstreamKey, env AMP_API_KEY`,
    );
    // A rotated key file is a reload.
    assert.ok(fromKeyFile.watchFiles.includes(join(cwd, 'keys/server.key')));
    const gatewayEnv = await loadAmpConfig({ cwd, env });
    assert.equal(gatewayEnv.options.upstreamKey, 'gateway-key');
    assert.match(
      gatewayEnv.upstreamKeyOrigin,
      /^env AMP_PROXY_UPSTREAM_KEY, over the config file's upstreamKey/,
    );
    const blank = await loadAmpConfig({
      cwd,
      env: { AMP_PROXY_UPSTREAM_KEY: ' ', AMP_API_KEY: 'cli-user-key' },
    });
    assert.equal(blank.options.upstreamKey, 'file-key');
    assert.equal(blank.upstreamKeyOrigin, 'config file, over env AMP_API_KEY');
    // The file says "no server key": AMP_API_KEY does not override that either.
    const none = await loadAmpConfig({
      cwd,
      configFile: 'no-key.json',
      env: { AMP_API_KEY: 'cli-user-key' },
    });
    assert.equal(none.options.upstreamKey, null);
    assert.equal(none.effective.upstreamKey, null);
    assert.equal(none.upstreamKeyOrigin, 'none (upstreamKey: null in the config file), over env AMP_API_KEY');
    // Nothing else names a key: AMP_API_KEY comes before the secrets file, as in the Amp CLI.
    const user = await loadAmpConfig({
      cwd,
      configFile: 'only-secrets.json',
      env: { AMP_API_KEY: 'cli-user-key' },
    });
    assert.equal(user.options.upstreamKey, 'cli-user-key');
    assert.equal(user.upstreamKeyOrigin, 'env AMP_API_KEY');
    await assert.rejects(
      loadAmpConfig({ cwd, env, upstreamKeyFile: 'keys/missing.key' }),
      /--upstream-key-file: cannot read .*missing\.key: ENOENT/,
    );
  });

  it('with no key configured, says where the middleware will find one, and watches that file', async () => {
    const cwd = await project({
      'amp/secrets.json': '{"apiKey@https://amp.example":"sk-from-cli-secrets-0001"}',
      '.amp-proxyrc.json': '{"upstream":"https://amp.example","secretsFile":"amp/secrets.json"}',
    });
    // The middleware reads AMP_API_KEY from the process, not from the env given to the loader.
    const saved = process.env.AMP_API_KEY;
    delete process.env.AMP_API_KEY;
    try {
      const loaded = await loadAmpConfig({ cwd, env: {} });
      assert.equal(loaded.upstreamKeyOrigin, `Amp CLI secrets file ${join(cwd, 'amp/secrets.json')}`);
      assert.equal(loaded.effective.upstreamKey, 'sk-f…');
      assert.deepEqual(loaded.watchFiles, [join(cwd, '.amp-proxyrc.json'), join(cwd, 'amp/secrets.json')]);
      const empty = await project({ '.amp-proxyrc.json': '{"secretsFile":"none.json"}' });
      const none = await loadAmpConfig({ cwd: empty, env: {} });
      assert.equal(none.upstreamKeyOrigin, 'none');
      assert.equal(none.effective.upstreamKey, null);
    } finally {
      if (saved !== undefined) process.env.AMP_API_KEY = saved;
    }
  });

  it('effective shows what the resolver resolved: defaults applied, secrets redacted', async () => {
    const cwd = await project({
      '.amp-proxyrc.json':
        '{"upstream":"https://amp.example/","upstreamKey":"sk-file-key-0001","timeoutMs":5000}',
    });
    const { effective, upstreamKeyOrigin } = await loadAmpConfig({ cwd, env: {} });
    assert.equal(upstreamKeyOrigin, 'config file');
    assert.equal(effective.upstream, 'https://amp.example');
    assert.equal(effective.upstreamKey, 'sk-f…');
    assert.equal(effective.timeoutMs, 5000);
    assert.equal(effective.tokenHeader, 'x-amp-token');
    assert.equal(effective.policies.provider, 'inject');
  });

  it('command-line overrides win over env and the file, and are checked like them', async () => {
    const cwd = await project({ '.amp-proxyrc.json': '{"port":1000,"host":"file.example"}' });
    const loaded = await loadAmpConfig({
      cwd,
      env: { AMP_PROXY_PORT: '2000' },
      overrides: { port: '3000', host: '0.0.0.0' },
    });
    assert.deepEqual(loaded.gateway, {
      port: 3000,
      host: '0.0.0.0',
      metricsPath: undefined,
      drainMs: 10_000,
      auditLog: undefined,
      usagePath: undefined,
    });
    await assert.rejects(loadAmpConfig({ cwd, env: {}, overrides: { port: '70000' } }), (error: unknown) => {
      assert.ok(error instanceof AmpProxyConfigError);
      assert.equal(error.option, '--port');
      assert.match(error.message, /--port: expected a port number from 0 to 65535, got "70000"/);
      return true;
    });
  });

  it('errors name the file, the option path and the expected value', async () => {
    const cwd = await project({ '.amp-proxyrc.yaml': 'policies:\n  management: pass\n' });
    await assert.rejects(loadAmpConfig({ cwd, env: {} }), (error: unknown) => {
      assert.ok(error instanceof AmpProxyConfigError);
      assert.equal(error.file, join(cwd, '.amp-proxyrc.yaml'));
      assert.equal(error.option, 'policies.management');
      assert.match(
        error.message,
        /\.amp-proxyrc\.yaml: policies\.management: expected one of inject \| passthrough \| dual-token or a function, got "pass"/,
      );
      return true;
    });
  });

  it('a missing env secret, an unreadable secret file, bad gateway settings and broken syntax are reported', async () => {
    const missingEnv = await project({ '.amp-proxyrc.json': '{"upstreamKey":{"env":"NOPE"}}' });
    await assert.rejects(loadAmpConfig({ cwd: missingEnv, env: {} }), /upstreamKey: env NOPE is not set/);
    const missingFile = await project({ '.amp-proxyrc.json': '{"clients":[{"key":{"file":"nope.txt"}}]}' });
    await assert.rejects(
      loadAmpConfig({ cwd: missingFile, env: {} }),
      /clients\[0\]\.key: cannot read .*nope\.txt: ENOENT/,
    );
    const badPort = await project({ '.amp-proxyrc.json': '{"port":"http"}' });
    await assert.rejects(loadAmpConfig({ cwd: badPort, env: {} }), /port: expected a port number/);
    const broken = await project({ '.amp-proxyrc.json': '{"upstream": ' });
    await assert.rejects(loadAmpConfig({ cwd: broken, env: {} }), /\.amp-proxyrc\.json/);
    const badRef = await project({ '.amp-proxyrc.json': '{"upstreamKey":{"vault":"x"}}' });
    await assert.rejects(
      loadAmpConfig({ cwd: badRef, env: {} }),
      /upstreamKey: expected a string, \{ env: "NAME" \} or \{ file: "path" \}/,
    );
  });

  it('a file that does not parse is reported by line, never quoted: it may hold keys inline', async () => {
    const secret = 'sk-inline-secret-0123456789';
    const files = {
      '.amp-proxyrc.json': `{"upstreamKey": "${secret}", "clients": [{"key": ${secret}}]}`,
      '.amp-proxyrc.yaml': `upstreamKey: ${secret}\n  clients: : ${secret}\n`,
      '.amp-proxyrc': `upstreamKey: "${secret}\n`,
      'amp-proxy.config.mjs': `export default { upstreamKey: ${secret} };`,
    };
    for (const [name, content] of Object.entries(files)) {
      const cwd = await project({ [name]: content });
      await assert.rejects(loadAmpConfig({ cwd, env: {} }), (error: unknown) => {
        assert.ok(error instanceof AmpProxyConfigError);
        assert.equal(error.option, 'config');
        // A module is loaded by Node (or by tsx under test), whose message has no file name.
        if (!name.endsWith('.mjs')) {
          assert.ok(error.file?.endsWith(name), `${name}: the file is named`);
          assert.match(error.problem, /^cannot be loaded: not valid (JSON|YAML)/);
        }
        assert.ok(!error.message.includes(secret.slice(0, 12)), `${name}: ${error.message}`);
        return true;
      });
    }
  });

  it('egress: the proxy URL as a secret reference, the CA file relative to the config file and watched', async () => {
    const pem = rootCertificates[0]!;
    const cwd = await project({
      '.amp-proxyrc.yaml': 'upstreamProxy: { env: CORP_PROXY }\nupstreamCa: { file: certs/ca.pem }\n',
      'certs/ca.pem': pem,
    });
    const loaded = await loadAmpConfig({
      cwd,
      env: { CORP_PROXY: 'http://svc:pa55-word-9@proxy.corp:3128' },
    });
    assert.equal(loaded.options.upstreamProxy, 'http://svc:pa55-word-9@proxy.corp:3128');
    assert.deepEqual(loaded.options.upstreamCa, { file: join(cwd, 'certs/ca.pem') });
    assert.ok(loaded.watchFiles.includes(join(cwd, 'certs/ca.pem')));
    assert.equal(loaded.effective.upstreamProxy, 'http://proxy.corp:3128');
    assert.match(
      String(loaded.effective.upstreamCa),
      new RegExp(`^1 certificate from ${join(cwd, 'certs/ca.pem')}: `),
    );
    assert.ok(!JSON.stringify(loaded.effective).includes('pa55-word-9'));
  });

  it("egress: with no upstreamProxy in the file, the env's proxy variables decide, as the gateway runs them", async () => {
    const cwd = await project({ '.amp-proxyrc.yaml': 'timeoutMs: 1000\n' });
    const viaProxy = await loadAmpConfig({
      cwd,
      env: { https_proxy: 'http://u:pa55-word-9@proxy.corp:3128' },
    });
    assert.equal(viaProxy.effective.upstreamProxy, 'http://proxy.corp:3128 (from https_proxy)');
    // The options name the proxy the given env chose: the middleware connects as `effective` says.
    assert.equal(viaProxy.options.upstreamProxy, 'http://u:pa55-word-9@proxy.corp:3128/');
    const exempt = await loadAmpConfig({
      cwd,
      env: { HTTPS_PROXY: 'http://proxy.corp:3128', NO_PROXY: 'ampcode.com' },
    });
    assert.equal(exempt.effective.upstreamProxy, 'direct (NO_PROXY exempts ampcode.com)');
    assert.equal(exempt.options.upstreamProxy, false);
    await assert.rejects(
      loadAmpConfig({ cwd, env: { HTTPS_PROXY: 'ftp://u:pa55-word-9@proxy.corp' } }),
      (error: unknown) =>
        error instanceof AmpProxyConfigError &&
        error.option === 'HTTPS_PROXY' &&
        !error.message.includes('pa55-word-9'),
    );
    const ignoring = await project({ '.amp-proxyrc.yaml': 'upstreamProxy: false\n' });
    const direct = await loadAmpConfig({ cwd: ignoring, env: { HTTPS_PROXY: 'http://proxy.corp:3128' } });
    assert.equal(direct.effective.upstreamProxy, 'direct');
  });
});
