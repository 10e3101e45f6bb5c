import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ampManagementProxy, ampProviderProxy, ampRouter, AmpProxyConfigError } from '../src/index.js';
import { MALFORMED_UPSTREAMS } from './support/malformed-upstreams.js';

function rejects(options: unknown, option: string, message: RegExp): void {
  for (const factory of [ampRouter, ampProviderProxy, ampManagementProxy]) {
    assert.throws(
      () => factory(options as never),
      (error: unknown) => {
        assert.ok(error instanceof AmpProxyConfigError, `${factory.name}: not an AmpProxyConfigError`);
        assert.equal(error.option, option);
        assert.equal(error.code, 'amp_invalid_options');
        assert.match(error.message, message);
        return true;
      },
    );
  }
}

describe('options are validated in the factory', () => {
  it('accepts no options at all', () => {
    assert.equal(typeof ampRouter(), 'function');
    assert.equal(typeof ampRouter({}), 'function');
  });

  it('refuses an unknown policy name, naming the group and the choices', () => {
    rejects(
      { policies: { management: 'pass' } },
      'policies.management',
      /expected one of inject \| passthrough \| dual-token or a function, got "pass"/,
    );
  });

  it('refuses inject on browser pages and redirect outside them', () => {
    rejects({ policies: { browser: 'inject' } }, 'policies.browser', /never carry the server key/);
    rejects({ policies: { provider: 'redirect' } }, 'policies.provider', /only browser pages/);
  });

  it('refuses an unknown group', () => {
    rejects(
      { policies: { providers: 'inject' } },
      'policies.providers',
      /the groups are provider, management, actors, browser/,
    );
  });

  it('refuses malformed upstream URLs', () => {
    rejects({ upstream: 'ampcode.com' }, 'upstream', /absolute http\(s\) URL/);
    rejects({ upstream: 'ftp://ampcode.com' }, 'upstream', /http: or https:/);
    rejects({ upstream: 'https://user:pw@ampcode.com' }, 'upstream', /credentials/);
    rejects({ upstream: 'https://ampcode.com/?a=1' }, 'upstream', /query string/);
    rejects({ upstream: 42 }, 'upstream', /got 42/);
  });

  it('refuses duplicate client keys, naming both entries', () => {
    rejects(
      { clients: [{ key: 'gw-1' }, { key: 'gw-2' }, { key: 'gw-1' }] },
      'clients[2].key',
      /duplicates clients\[0\]\.key/,
    );
  });

  it('refuses malformed clients', () => {
    rejects({ clients: {} }, 'clients', /expected an array/);
    rejects({ clients: [{ key: '' }] }, 'clients[0].key', /non-empty string/);
    rejects({ clients: [{ key: 'k', upstreamKey: '' }] }, 'clients[0].upstreamKey', /non-empty/);
    rejects({ clients: [{ key: 'k', apiKey: 'x' }] }, 'clients[0].apiKey', /unknown field/);
  });

  it('accepts gateway keys of A-Z, a-z, 0-9, _ and - only, saying why', () => {
    assert.equal(
      typeof ampRouter({ clients: [{ key: 'Ab_9-x' }, { key: 'gw-0123456789abcdef' }] }),
      'function',
    );
    // Every other character separates tokens: a key is recognised exactly, wherever it appears.
    for (const key of [
      'a b',
      'a,b',
      'gw.key',
      'gw:key',
      'gw/key',
      'gw+key=',
      'gw%2Dkey',
      '"gw-key"',
      'k€y',
    ]) {
      rejects(
        { clients: [{ key: 'gw-ok' }, { key }] },
        'clients[1].key',
        /must contain only the characters A-Z, a-z, 0-9, _ and -, so that the gateway can recognise a key wherever it appears/,
      );
    }
  });

  it('refuses a server key or a mapped key that is a gateway key, naming the client, never the key', () => {
    const clients = [{ key: 'gw-alice-0001' }, { key: 'gw-bob-0002', upstreamKey: 'amp-bob' }];
    rejects(
      { upstreamKey: 'gw-alice-0001', clients },
      'upstreamKey',
      /^[^]*upstreamKey: equals the key of clients\[0\]$/,
    );
    rejects({ upstreamKey: ' gw-bob-0002 ', clients }, 'upstreamKey', /equals the key of clients\[1\]$/);
    rejects(
      { upstreamKey: 'Bearer gw-bob-0002', clients },
      'upstreamKey',
      /contains the key of clients\[1\]$/,
    );
    rejects(
      { clients: [{ key: 'gw-alice-0001', upstreamKey: 'gw-bob-0002' }, { key: 'gw-bob-0002' }] },
      'clients[0].upstreamKey',
      /equals the key of clients\[1\]$/,
    );
    rejects(
      { clients: [{ key: 'gw-alice-0001', upstreamKey: 'gw-alice-0001' }] },
      'clients[0].upstreamKey',
      /equals the key of clients\[0\]$/,
    );
    assert.throws(
      () => ampRouter({ upstreamKey: 'gw-alice-0001', clients }),
      (error: unknown) => error instanceof Error && !error.message.includes('gw-alice'),
    );
    // Different keys are fine, and so is a server key that only starts like a gateway key.
    assert.equal(typeof ampRouter({ upstreamKey: 'gw-alice-0001-server', clients }), 'function');
  });

  it('never echoes a secret in an error: URL userinfo, query or fragment, key values', () => {
    const secret = 's3cret-value-42';
    const cases: [unknown, string][] = [
      [{ upstream: `https://user:${secret}@ampcode.com` }, 'upstream'],
      [{ upstream: `https://ampcode.com/?key=${secret}` }, 'upstream'],
      [{ upstream: `https://ampcode.com/#token=${secret}` }, 'upstream'],
      [{ upstream: `ftp://user:${secret}@ampcode.com/?key=${secret}` }, 'upstream'],
      [{ upstream: `user:${secret}@ampcode.com/path?key=${secret}` }, 'upstream'],
      [{ upstream: `https://${secret}@ampcode.com:99999/` }, 'upstream'],
      // Malformed beyond parsing: where the userinfo ends cannot be told, so nothing past the scheme shows.
      ...MALFORMED_UPSTREAMS(secret).map((upstream): [unknown, string] => [{ upstream }, 'upstream']),
      [{ upstreamKey: 424242424242 }, 'upstreamKey'],
      [{ clients: [{ key: 424242424242 }] }, 'clients[0].key'],
      [{ clients: [{ key: `${secret}!` }] }, 'clients[0].key'],
      [{ clients: [{ key: 'gw-1', upstreamKey: 424242424242 }] }, 'clients[0].upstreamKey'],
    ];
    for (const [options, option] of cases) {
      assert.throws(
        () => ampRouter(options as never),
        (error: unknown) => {
          assert.ok(error instanceof AmpProxyConfigError, JSON.stringify(options));
          assert.equal(error.option, option);
          const message = error.message.toLowerCase();
          assert.ok(!message.includes(secret.toLowerCase()) && !message.includes('4242'), error.message);
          return true;
        },
      );
    }
    // The same values as a proxy URL: some are proxy URLs after all (URL parsing forgives a
    // space or a missing `//`); those refused never show the secret either.
    for (const upstreamProxy of MALFORMED_UPSTREAMS(secret)) {
      try {
        ampRouter({ upstreamProxy });
      } catch (error) {
        assert.ok(error instanceof AmpProxyConfigError);
        assert.equal(error.option, 'upstreamProxy');
        assert.ok(!error.message.toLowerCase().includes(secret.toLowerCase()), error.message);
      }
    }
    // What is not secret is still shown, so the user can find the setting.
    assert.throws(
      () => ampRouter({ upstream: `ftp://user:${secret}@ampcode.com/x?key=1` }),
      /got the scheme "ftp:" and the host "ampcode\.com"/,
    );
    assert.throws(
      () => ampRouter({ upstream: `htps:/user:${secret}@ampcode.com/` }),
      /got the scheme "htps:" \(the rest is not shown/,
    );
    assert.throws(() => ampRouter({ upstreamKey: 42 as never }), /got a number/);
  });

  it('refuses unknown options (typos)', () => {
    rejects({ policy: {} }, 'policy', /unknown option; did you mean `policies`\? The options are .*policies/);
    rejects({ upstreemKey: 'k' }, 'upstreemKey', /did you mean `upstreamKey`\?/);
    // Nothing near: no guess, only the list.
    rejects({ frobnicate: 1 }, 'frobnicate', /^[^`]*unknown option; the options are /);
  });

  it('hints at an unencoded # or @ in a proxy password, never showing it', () => {
    for (const password of ['pa#ss-7f3a', 'p@ss#7f3a', 'pa/ss@7f3a']) {
      assert.throws(
        () => ampRouter({ upstreamProxy: `http://alice:${password}@proxy.example:3128` }),
        (error: unknown) => {
          assert.ok(error instanceof AmpProxyConfigError);
          assert.equal(error.option, 'upstreamProxy');
          assert.match(error.problem, /percent-encode/);
          assert.match(error.problem, /"#" as "%23", "@" as "%40"/);
          assert.ok(!error.message.includes('7f3a'), error.message);
          return true;
        },
        password,
      );
    }
  });

  it('hints that a file path given as upstreamCa text belongs in { file }', () => {
    for (const path of ['/etc/ssl/certs/corp-ca.pem', './corp-ca.crt', 'C:\\certs\\corp.cer']) {
      rejects({ upstreamCa: path }, 'upstreamCa', /a file path\? Write upstreamCa: \{ file: "\.\.\." \}/);
    }
    assert.throws(
      () => ampRouter({ upstreamCa: 'plain-text-not-a-certificate' }),
      (error: unknown) => error instanceof AmpProxyConfigError && !/file path/.test(error.problem),
    );
  });

  it('reports every problem at once, the first as option and problem', () => {
    assert.throws(
      () => ampRouter({ policy: {}, timeoutMs: -1, tokenHeader: 'x amp' } as never),
      (error: unknown) => {
        assert.ok(error instanceof AmpProxyConfigError);
        assert.equal(error.option, 'policy');
        assert.match(error.problem, /unknown option/);
        assert.deepEqual(
          error.problems.map((problem) => problem.option),
          ['policy', 'tokenHeader', 'timeoutMs'],
        );
        assert.equal(error.problems[0]!.problem, error.problem);
        assert.match(error.message, /3 problems/);
        for (const { option, problem } of error.problems)
          assert.ok(error.message.includes(`${option}: ${problem}`));
        return true;
      },
    );
  });

  it('refuses bad upstreamKey, tokenHeader and timeoutMs values', () => {
    rejects({ upstreamKey: '' }, 'upstreamKey', /non-empty string or a function/);
    rejects({ tokenHeader: 'x amp' }, 'tokenHeader', /header name/);
    rejects({ tokenHeader: 'Authorization' }, 'tokenHeader', /already has a meaning/);
    rejects({ timeoutMs: 0 }, 'timeoutMs', /whole number/);
    rejects({ timeoutMs: 2 ** 31 }, 'timeoutMs', /whole number/);
  });

  it('refuses something that is not an options object', () => {
    rejects('https://ampcode.com', 'options', /expected an object/);
  });
});
