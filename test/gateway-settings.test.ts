import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GATEWAY_SETTING_NAMES, resolveGatewaySettings } from '../src/config/gateway-settings.js';
import { AmpProxyConfigError } from '../src/index.js';

const FILE = '/srv/gateway/.amp-proxyrc.json';

function refusal(run: () => unknown): AmpProxyConfigError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof AmpProxyConfigError);
    return error;
  }
  throw new Error('expected an AmpProxyConfigError');
}

describe('gateway settings (no sockets)', () => {
  it('defaults to 127.0.0.1:8317 without metrics', () => {
    assert.deepEqual(resolveGatewaySettings({ fromFile: {}, file: undefined, env: {}, overrides: {} }), {
      port: 8317,
      host: '127.0.0.1',
      metricsPath: undefined,
      drainMs: 10_000,
      auditLog: undefined,
      usagePath: undefined,
    });
  });

  it('takes the command line over env, and env over the file', () => {
    const fromFile = { port: 1000, host: 'file.example', metricsPath: '/metrics', upstream: 'ignored' };
    const env = { AMP_PROXY_PORT: '2000', AMP_PROXY_HOST: 'env.example' };
    assert.deepEqual(resolveGatewaySettings({ fromFile, file: FILE, env: {}, overrides: {} }), {
      port: 1000,
      host: 'file.example',
      metricsPath: '/metrics',
      drainMs: 10_000,
      auditLog: undefined,
      usagePath: undefined,
    });
    assert.deepEqual(resolveGatewaySettings({ fromFile, file: FILE, env, overrides: {} }), {
      port: 2000,
      host: 'env.example',
      metricsPath: '/metrics',
      drainMs: 10_000,
      auditLog: undefined,
      usagePath: undefined,
    });
    assert.deepEqual(
      resolveGatewaySettings({ fromFile, file: FILE, env, overrides: { port: '0', host: '::1' } }),
      {
        port: 0,
        host: '::1',
        metricsPath: '/metrics',
        drainMs: 10_000,
        auditLog: undefined,
        usagePath: undefined,
      },
    );
  });

  it('counts a variable set to nothing as unset', () => {
    const settings = resolveGatewaySettings({
      fromFile: { port: 1000 },
      file: FILE,
      env: { AMP_PROXY_PORT: '', AMP_PROXY_HOST: ' ' },
      overrides: {},
    });
    assert.deepEqual([settings.port, settings.host], [1000, '127.0.0.1']);
  });

  it('names the flag, variable or file entry that is wrong, and the file only for the file', () => {
    const flag = refusal(() =>
      resolveGatewaySettings({ fromFile: {}, file: FILE, env: {}, overrides: { port: '70000' } }),
    );
    assert.equal(flag.option, '--port');
    assert.equal(flag.file, undefined);
    assert.equal(flag.problem, 'expected a port number from 0 to 65535, got "70000"');
    const variable = refusal(() =>
      resolveGatewaySettings({ fromFile: {}, file: FILE, env: { AMP_PROXY_PORT: '80.5' }, overrides: {} }),
    );
    assert.deepEqual([variable.option, variable.file], ['AMP_PROXY_PORT', undefined]);
    const entry = refusal(() =>
      resolveGatewaySettings({ fromFile: { port: 'http' }, file: FILE, env: {}, overrides: {} }),
    );
    assert.deepEqual([entry.option, entry.file], ['port', FILE]);
    assert.equal(
      refusal(() => resolveGatewaySettings({ fromFile: {}, file: FILE, env: {}, overrides: { host: '' } }))
        .option,
      '--host',
    );
    assert.equal(
      refusal(() =>
        resolveGatewaySettings({ fromFile: { metricsPath: 'metrics' }, file: FILE, env: {}, overrides: {} }),
      ).option,
      'metricsPath',
    );
  });

  it('tells the gateway settings of a config file from middleware options', () => {
    assert.deepEqual([...GATEWAY_SETTING_NAMES].sort(), [
      'auditLog',
      'drainMs',
      'host',
      'metricsPath',
      'port',
      'usagePath',
    ]);
  });

  it('takes the drain time from --drain-ms, then AMP_PROXY_DRAIN_MS, then the file, and refuses what is no duration', () => {
    const drainMs = (env: NodeJS.ProcessEnv, overrides: { drainMs?: string }) =>
      resolveGatewaySettings({ fromFile: { drainMs: 3000 }, file: FILE, env, overrides }).drainMs;
    assert.equal(drainMs({}, {}), 3000);
    assert.equal(drainMs({ AMP_PROXY_DRAIN_MS: '2000' }, {}), 2000);
    assert.equal(drainMs({ AMP_PROXY_DRAIN_MS: '2000' }, { drainMs: '0' }), 0);
    const flag = refusal(() =>
      resolveGatewaySettings({ fromFile: {}, file: FILE, env: {}, overrides: { drainMs: '5s' } }),
    );
    assert.deepEqual(
      [flag.option, flag.problem],
      ['--drain-ms', 'expected a whole number of milliseconds, 0 or more, got "5s"'],
    );
    assert.equal(
      refusal(() => resolveGatewaySettings({ fromFile: { drainMs: -1 }, file: FILE, env: {}, overrides: {} }))
        .option,
      'drainMs',
    );
  });

  it('takes auditLog from the file only, relative to it', () => {
    const auditLog = (value: unknown) =>
      resolveGatewaySettings({ fromFile: { auditLog: value }, file: FILE, env: {}, overrides: {} }).auditLog;
    assert.equal(auditLog('logs/audit.jsonl'), '/srv/gateway/logs/audit.jsonl');
    assert.equal(auditLog('/var/log/amp/audit.jsonl'), '/var/log/amp/audit.jsonl');
    assert.equal(refusal(() => auditLog('')).option, 'auditLog');
  });
});
