import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { describe, it } from 'node:test';
import { describeOptions } from '../src/config/effective-options.js';
import { validateOptions } from '../src/config/validate-options.js';
import type { AmpProxyOptions } from '../src/index.js';

describe('validateOptions (no sockets)', () => {
  it('applies every documented default in one place', () => {
    const validated = validateOptions(undefined);
    assert.deepEqual(validated.upstream, { asWritten: 'https://ampcode.com', base: 'https://ampcode.com' });
    // No server key unless one is given: nothing of the process environment is spent.
    assert.equal(validated.upstreamKey, null);
    assert.deepEqual(validated.clients.list, []);
    assert.deepEqual(validated.policies, {
      provider: 'inject',
      management: 'passthrough',
      actors: 'passthrough',
      browser: 'passthrough',
    });
    assert.equal(validated.tokenHeader, 'x-amp-token');
    assert.equal(validated.timeoutMs, 600_000);
    assert.equal(validated.secretsFile, join(homedir(), '.local', 'share', 'amp', 'secrets.json'));
    assert.equal(validated.restrictManagementToLocalhost, false);
    assert.deepEqual(validated.trustedProxies, []);
    assert.equal(validated.hosts, undefined);
    assert.equal(validated.modelMappings.mapModel, undefined);
    assert.equal(validated.forceModelMappings, false);
    assert.equal(validated.maxBodyBytes, 16 * 1024 * 1024);
  });

  it('knows every option of AmpProxyOptions', () => {
    // Required<> makes this literal name every option: one added to the type must be added here.
    const every: Required<AmpProxyOptions> = {
      upstream: 'https://amp.example/prefix/',
      upstreamKey: 'sk-server-key-0001',
      clients: [{ key: 'gw-alice-0001', name: 'alice', upstreamKey: ' amp-alice-0001 ' }],
      policies: { management: 'dual-token', browser: 'redirect' },
      tokenHeader: 'X-User-Amp',
      timeoutMs: 1000,
      secretsFile: '/etc/amp/secrets.json',
      upstreamProxy: 'socks5h://proxy-user:proxy-pass@proxy.example:1080',
      upstreamCa: rootCertificates.slice(0, 2).join('\n'),
      restrictManagementToLocalhost: true,
      trustedProxies: [' 10.0.0.0/8 '],
      hosts: [' Amp.Corp.Example. ', '*.amp.corp.example', '[::1]'],
      logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
      onProxyEvent: () => undefined,
      modelMappings: [{ from: 'gpt-5', to: 'claude-sonnet-4' }],
      localProvider: () => undefined,
      forceModelMappings: true,
      maxBodyBytes: 1024,
      actorToken: ' pk_custom-0001 ',
      publicUrl: 'https://amp-gw.example/',
      identityProxy: 'https://idp.example/',
      forwardCookies: { browser: true },
      dropHeaders: { all: ['X-Company-JWT'], provider: ['x-tenant'] },
      limits: { perClient: { requestsPerMinute: { provider: 60 }, threadsPerHour: 10 } },
      usage: true,
      audit: { info: () => undefined },
    };
    const validated = validateOptions(every);
    assert.deepEqual(Object.keys(validated).sort(), Object.keys(every).sort());
    assert.equal(validated.upstream.base, 'https://amp.example/prefix');
    assert.equal(validated.upstream.asWritten, 'https://amp.example/prefix/');
    assert.equal(validated.tokenHeader, 'x-user-amp');
    assert.deepEqual(validated.clients.list, [
      { key: 'gw-alice-0001', name: 'alice', upstreamKey: 'amp-alice-0001' },
    ]);
    assert.deepEqual(validated.trustedProxies, ['10.0.0.0/8']);
    assert.deepEqual(validated.hosts, ['amp.corp.example', '*.amp.corp.example', '[::1]']);
    assert.equal(validated.modelMappings.mapModel?.('gpt-5(high)'), 'claude-sonnet-4(high)');
    assert.ok(validated.upstreamProxy instanceof URL);
    assert.equal(validated.upstreamProxy.host, 'proxy.example:1080');
    assert.equal(validated.upstreamCa?.certificates.length, 2);
    assert.equal(validated.actorToken, 'pk_custom-0001');
    assert.equal(validated.publicUrl, 'https://amp-gw.example');
    assert.equal(validated.identityProxy, 'https://idp.example');
  });

  it('checks the server key against the gateway keys once both are known', () => {
    assert.throws(() => validateOptions({ upstreamKey: 'gw-bob-0002', clients: [{ key: 'gw-bob-0002' }] }), {
      option: 'upstreamKey',
      problem: 'equals the key of clients[0]',
    });
  });
});

describe('describeOptions (what --print-config shows)', () => {
  it('shows what the resolver resolved, with every secret redacted and code as "custom"', () => {
    const validated = validateOptions({
      upstream: 'https://amp.example/',
      upstreamKey: 'sk-server-key-0001',
      clients: [
        { key: 'gw-alice-0001', upstreamKey: 'amp-alice-0001' },
        { key: 'gw-bob-0002', name: 'bob' },
      ],
      policies: { actors: () => undefined },
      modelMappings: [{ from: '^gpt-', to: 'claude-sonnet-4', regex: true }],
    });
    const shown = describeOptions(validated, 'sk-server-key-0001');
    assert.equal(shown.upstream, 'https://amp.example');
    assert.equal(shown.upstreamKey, 'sk-s…');
    assert.deepEqual(shown.clients, [
      { name: null, key: 'gw-a…', upstreamKey: 'amp-…' },
      { name: 'bob', key: 'gw-b…', upstreamKey: null },
    ]);
    assert.equal(shown.policies.actors, 'custom');
    assert.equal(shown.policies.provider, 'inject');
    assert.deepEqual(shown.modelMappings, [{ from: '^gpt-', to: 'claude-sonnet-4', regex: true }]);
    assert.equal(shown.logger, null);
    const text = JSON.stringify(shown);
    for (const secret of ['sk-server-key-0001', 'gw-alice-0001', 'amp-alice-0001', 'gw-bob-0002']) {
      assert.ok(!text.includes(secret), secret);
    }
  });

  it('shows the key in force even when no option names it, and a key function as "custom"', () => {
    assert.equal(describeOptions(validateOptions({}), 'sk-from-secrets-file').upstreamKey, 'sk-f…');
    assert.equal(describeOptions(validateOptions({}), undefined).upstreamKey, null);
    assert.equal(
      describeOptions(validateOptions({ upstreamKey: () => 'k' }), undefined).upstreamKey,
      'custom',
    );
  });
});
