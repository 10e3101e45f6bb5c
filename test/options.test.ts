import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ampManagementProxy, ampProviderProxy, ampRouter, AmpProxyConfigError } from '../src/index.js';

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
    rejects({ clients: [{ key: 'a b' }] }, 'clients[0].key', /spaces or commas/);
    rejects({ clients: [{ key: 'k', upstreamKey: '' }] }, 'clients[0].upstreamKey', /non-empty/);
    rejects({ clients: [{ key: 'k', apiKey: 'x' }] }, 'clients[0].apiKey', /unknown field/);
  });

  it('refuses unknown options (typos)', () => {
    rejects({ policy: {} }, 'policy', /unknown option; the options are .*policies/);
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
