// The egress decisions without sockets: which proxy (and why), NO_PROXY, proxy URLs, CA input,
// and the causes a failing proxy is reported with.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { rootCertificates } from 'node:tls';
import { chooseEgressProxy, laterEgress } from '../src/egress/egress-proxy.js';
import { isExemptFromProxy } from '../src/egress/no-proxy.js';
import { proxyFailureCause } from '../src/egress/proxy-failure.js';
import { parseProxyUrl } from '../src/egress/proxy-url.js';
import { describeUpstreamCa, readUpstreamCa } from '../src/egress/trusted-cas.js';
import { validateOptions } from '../src/config/validate-options.js';
import { AmpProxyConfigError, ampRouter } from '../src/index.js';

const AMP = new URL('https://ampcode.com');

describe('NO_PROXY', () => {
  const cases: [noProxy: string, upstream: string, exempt: boolean][] = [
    ['*', 'https://ampcode.com', true],
    ['ampcode.com', 'https://ampcode.com', true],
    ['ampcode.com', 'https://api.ampcode.com', true],
    ['.ampcode.com', 'https://ampcode.com', true],
    ['.ampcode.com', 'https://api.ampcode.com', true],
    ['*.ampcode.com', 'https://api.ampcode.com', true],
    ['code.com', 'https://ampcode.com', false],
    ['AMPCODE.COM', 'https://ampcode.com', true],
    ['other.example, ampcode.com', 'https://ampcode.com', true],
    ['other.example ampcode.com', 'https://ampcode.com', true],
    ['ampcode.com:443', 'https://ampcode.com', true],
    ['ampcode.com:8443', 'https://ampcode.com', false],
    ['ampcode.com:8443', 'https://ampcode.com:8443', true],
    ['localhost', 'http://localhost:3000', true],
    ['127.0.0.1', 'http://127.0.0.1:3000', true],
    ['127.0.0.1:3000', 'http://127.0.0.1:3000', true],
    ['127.0.0.1:3001', 'http://127.0.0.1:3000', false],
    ['10.0.0.0/8', 'http://10.1.2.3', true],
    ['10.0.0.0/8', 'http://11.1.2.3', false],
    ['10.0.0.0/8', 'http://ten.example', false],
    ['::1', 'http://[::1]:3000', true],
    ['[::1]:3000', 'http://[::1]:3000', true],
    ['[::1]:3001', 'http://[::1]:3000', false],
    ['fd00::/8', 'http://[fd12::1]', true],
    ['', 'https://ampcode.com', false],
    [',, ,', 'https://ampcode.com', false],
    ['.', 'https://ampcode.com', false],
    ['10.0.0.0/99', 'http://10.1.2.3', false],
    // The one address-range parser (src/http/address-ranges.ts), as trustedProxies reads them.
    ['10.0.0.0/8/16', 'http://10.1.2.3', false],
    ['::/0', 'http://10.1.2.3', false],
    ['10.0.0.0/8', 'http://[::ffff:10.1.2.3]', false],
  ];
  for (const [noProxy, upstream, exempt] of cases) {
    it(`${JSON.stringify(noProxy)} ${exempt ? 'exempts' : 'does not exempt'} ${upstream}`, () => {
      assert.equal(isExemptFromProxy(noProxy, new URL(upstream)), exempt);
    });
  }
});

describe('which proxy, and why', () => {
  it('false and a URL mean what they say, whatever the environment holds', () => {
    const env = { HTTPS_PROXY: 'http://env-proxy:3128' };
    assert.deepEqual(chooseEgressProxy(false, AMP, env), { proxy: undefined, description: 'direct' });
    const url = new URL('socks5h://user:pw@socks.corp:1080');
    const chosen = chooseEgressProxy(url, AMP, env);
    assert.equal(chosen.proxy?.url, url);
    assert.equal(chosen.description, 'socks5h://socks.corp:1080');
  });

  it("'env' takes the variable of the upstream's scheme, lower case first, then ALL_PROXY", () => {
    const choose = (env: NodeJS.ProcessEnv, upstream = AMP) =>
      chooseEgressProxy('env', upstream, env).description;
    assert.equal(choose({}), 'direct (no proxy variable set)');
    assert.equal(choose({ HTTPS_PROXY: 'http://upper:1' }), 'http://upper:1 (from HTTPS_PROXY)');
    assert.equal(
      choose({ https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' }),
      'http://lower:1 (from https_proxy)',
    );
    assert.equal(choose({ HTTP_PROXY: 'http://plain:1' }), 'direct (no proxy variable set)');
    assert.equal(
      choose({ HTTP_PROXY: 'http://plain:1' }, new URL('http://amp.internal')),
      'http://plain:1 (from HTTP_PROXY)',
    );
    assert.equal(choose({ ALL_PROXY: 'socks5://all:1' }), 'socks5://all:1 (from ALL_PROXY)');
    assert.equal(choose({ HTTPS_PROXY: '  ' }), 'direct (no proxy variable set)');
    // Without a scheme, as proxy variables are often written: http, as curl reads it.
    assert.equal(choose({ HTTPS_PROXY: 'proxy.corp:3128' }), 'http://proxy.corp:3128 (from HTTPS_PROXY)');
  });

  it('NO_PROXY (either case) sends the upstream direct, and says which variable did', () => {
    const env = { HTTPS_PROXY: 'http://proxy:1', no_proxy: '.ampcode.com' };
    assert.deepEqual(chooseEgressProxy('env', AMP, env), {
      proxy: undefined,
      description: 'direct (no_proxy exempts ampcode.com)',
    });
    assert.equal(
      chooseEgressProxy('env', AMP, { HTTPS_PROXY: 'http://proxy:1', NO_PROXY: 'other' }).proxy?.shown,
      'http://proxy:1',
    );
  });

  it('a bad proxy variable is a config error naming the variable, never quoting its password', () => {
    assert.throws(
      () => chooseEgressProxy('env', AMP, { HTTPS_PROXY: 'ftp://user:hunter2-secret@proxy:21' }),
      (error: unknown) =>
        error instanceof AmpProxyConfigError &&
        error.option === 'HTTPS_PROXY' &&
        !error.message.includes('hunter2-secret'),
    );
  });
});

describe('hosts learned after the start (the identity provider)', () => {
  it("'env': each scheme's proxy read once, NO_PROXY applied per host", () => {
    const env: NodeJS.ProcessEnv = {
      HTTPS_PROXY: 'http://tls-proxy:1',
      HTTP_PROXY: 'http://plain-proxy:1',
      NO_PROXY: 'idp.internal',
    };
    const egress = laterEgress('env', env);
    env.HTTPS_PROXY = 'http://changed-later:1';
    env.NO_PROXY = '*';
    assert.equal(egress.proxyFor(new URL('https://auth.example'))?.shown, 'http://tls-proxy:1');
    assert.equal(egress.proxyFor(new URL('http://localhost:8080'))?.shown, 'http://plain-proxy:1');
    assert.equal(egress.proxyFor(new URL('https://idp.internal')), undefined);
    assert.deepEqual(
      egress.proxies.map((proxy) => proxy.shown),
      ['http://tls-proxy:1', 'http://plain-proxy:1'],
    );
    assert.deepEqual(laterEgress('env', {}).proxies, []);
  });

  it('false and a URL apply to every host', () => {
    assert.equal(laterEgress(false).proxyFor(new URL('https://auth.example')), undefined);
    const url = new URL('http://proxy.corp:3128');
    assert.equal(laterEgress(url, { NO_PROXY: '*' }).proxyFor(new URL('https://auth.example'))?.url, url);
  });
});

describe('proxy URLs', () => {
  it('accepts http, https, socks5 and socks5h with credentials', () => {
    for (const scheme of ['http', 'https', 'socks5', 'socks5h']) {
      const url = parseProxyUrl(`${scheme}://u:p@proxy.corp:1080`, false);
      assert.ok(url instanceof URL, scheme);
    }
  });

  for (const [text, problem] of [
    ['socks4://proxy:1080', /scheme "socks4:"/],
    ['http://proxy:3128/path', /only a scheme, credentials, host and port/],
    ['http://proxy:3128/?x=1', /only a scheme/],
    ['not a url', /expected a proxy URL/],
    ['proxy.corp:3128', /scheme "proxy.corp:"/],
    ['http://user:50%off@proxy:3128', /percent-encoded credentials/],
  ] as const) {
    it(`refuses ${text}`, () => {
      const parsed = parseProxyUrl(text, false);
      assert.ok(!(parsed instanceof URL));
      assert.match(parsed.problem, problem);
    });
  }

  it('the option: errors name upstreamProxy and never echo credentials', () => {
    for (const value of ['ftp://alice:hunter2-secret@proxy', 'http://alice:hunter2-secret@proxy/x', 42, {}]) {
      assert.throws(
        () => ampRouter({ upstreamProxy: value as string }),
        (error: unknown) =>
          error instanceof AmpProxyConfigError &&
          error.option === 'upstreamProxy' &&
          !error.message.includes('hunter2-secret'),
        String(value),
      );
    }
    assert.equal(validateOptions({ upstreamProxy: 'env' }).upstreamProxy, 'env');
    assert.equal(validateOptions({ upstreamProxy: false }).upstreamProxy, false);
    assert.equal(validateOptions({}).upstreamProxy, false);
  });
});

describe('upstreamCa', () => {
  const pem = rootCertificates.slice(0, 2).join('\n');

  it('takes PEM text or { file }, and describes each certificate by subject and fingerprint', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amp-ca-'));
    const file = join(dir, 'ca.pem');
    await writeFile(file, `# corporate roots\n${pem}\n`);
    const fromText = readUpstreamCa(pem);
    const fromFile = readUpstreamCa({ file });
    assert.ok('certificates' in fromText && 'certificates' in fromFile);
    assert.equal(fromText.certificates.length, 2);
    assert.deepEqual(fromFile.certificates, fromText.certificates);
    assert.match(
      describeUpstreamCa(fromFile),
      new RegExp(`^2 certificates from ${file}: .+ \\([0-9A-F:]{11}\\), .+`),
    );
  });

  for (const [label, value, problem] of [
    ['text without a certificate', 'hello', /expected PEM certificates/],
    [
      'a private key',
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----',
      /expected PEM certificates/,
    ],
    ['a damaged certificate', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', /expected PEM/],
    ['a missing file', { file: '/nonexistent/ca.pem' }, /cannot read \/nonexistent\/ca.pem: ENOENT/],
    ['a number', 42, /expected PEM certificates or \{ file: "path" \}/],
    ['an object of another shape', { path: 'x' }, /expected PEM certificates or/],
  ] as const) {
    it(`refuses ${label} at factory time`, () => {
      assert.throws(
        () => ampRouter({ upstreamCa: value as string }),
        (error: unknown) =>
          error instanceof AmpProxyConfigError &&
          error.option === 'upstreamCa' &&
          problem.test(error.problem),
      );
    });
  }
});

describe('causes of a failing proxy', () => {
  const withCode = (code: string) => Object.assign(new Error('x'), { code });
  for (const [error, cause] of [
    [withCode('ECONNREFUSED'), 'PROXY_ECONNREFUSED'],
    [withCode('PROXY_407'), 'PROXY_407'],
    [new Error('Socks5 Authentication failed'), 'PROXY_AUTH_FAILED'],
    [new Error('Socks5 proxy rejected connection - NotAllowed'), 'PROXY_REJECTED'],
    [new Error('Proxy connection timed out'), 'PROXY_TIMEOUT'],
    [new Error('connect ECONNREFUSED 127.0.0.1:1080'), 'PROXY_ECONNREFUSED'],
    [new Error('something else'), 'PROXY_ERROR'],
    ['not an error', 'PROXY_ERROR'],
  ] as const) {
    it(`${error instanceof Error ? error.message : error} → ${cause}`, () => {
      assert.equal(proxyFailureCause(error), cause);
    });
  }
});

describe('keys that would cross an egress proxy in the clear', () => {
  const warningsFor = (
    upstream: string,
    upstreamProxy: string | undefined,
  ): { code?: unknown; message?: string }[] => {
    const warnings: { code?: unknown; message?: string }[] = [];
    const ignore = (): void => undefined;
    ampRouter({
      upstream,
      upstreamKey: 'server-key-cleartext-1',
      ...(upstreamProxy ? { upstreamProxy } : {}),
      logger: {
        info: ignore,
        error: ignore,
        warn: (object: object, message?: string) => warnings.push({ ...object, message }),
      },
    });
    return warnings;
  };

  it('an http: upstream through any proxy warns once at start (amp_egress_cleartext), never showing the proxy password', () => {
    for (const proxy of ['http://user:proxy-pass-77@proxy.internal:3128', 'socks5://proxy.internal:1080']) {
      const warnings = warningsFor('http://amp.internal:8080', proxy);
      assert.deepEqual(
        warnings.map((warning) => warning.code),
        ['amp_egress_cleartext'],
      );
      assert.match(warnings[0]!.message!, /proxy\.internal/);
      assert.doesNotMatch(JSON.stringify(warnings), /proxy-pass-77|server-key-cleartext-1/);
    }
  });

  it('an https: upstream through a proxy, or an http: upstream reached directly: no warning', () => {
    assert.deepEqual(warningsFor('https://ampcode.com', 'http://proxy.internal:3128'), []);
    assert.deepEqual(warningsFor('http://amp.internal:8080', undefined), []);
  });
});
