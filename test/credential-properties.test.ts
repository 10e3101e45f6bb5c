import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ampRouter, type AmpGroup, type AmpPolicies } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const SERVER_KEY = 'srv-key-9999';
const GATEWAY = { alice: 'gwk-alice-1234', bob: 'gwk-bob-5678' };
const ALICE_AMP_KEY = 'amp-alice-0000';
const USER_TOKEN = 'user-tok-4242';
const SECRETS = [SERVER_KEY, GATEWAY.alice, GATEWAY.bob, ALICE_AMP_KEY];

const POLICY_SETS: AmpPolicies[] = [
  {},
  { provider: 'inject', management: 'inject', actors: 'inject' },
  { provider: 'passthrough', management: 'dual-token', actors: 'dual-token', browser: 'redirect' },
  { provider: 'dual-token', management: 'passthrough', actors: 'inject' },
];

const GROUP_PREFIXES: Record<AmpGroup, string[]> = {
  provider: [
    '/api/provider/anthropic/v1/messages',
    '/api/provider/google/v1beta/models/g:streamGenerateContent',
  ],
  management: ['/api/internal', '/api/threads/T-1', '/api/thread-actors', '/api/brand-new-route'],
  actors: ['/actors/gateway/threadActor/request/raw-thread'],
  browser: ['/threads/T-1', '/auth/cli-login', '/settings', '/news.rss'],
};

/** Inserted into a path to make it ambiguous; each must be refused before any group is chosen. */
const AMBIGUITIES = [
  '/..',
  '/%2e%2e',
  '/%2E.',
  '/.%2e',
  '/.',
  '%2f..',
  '%5c..',
  '\\..',
  '//',
  '/..;',
  '/%252e%252e',
];

const secretArb = fc.constantFrom(GATEWAY.alice, GATEWAY.bob, USER_TOKEN, 'gwk-unknown-0001');
const casingArb = fc.constantFrom(
  (s: string) => s,
  (s: string) => s.toUpperCase(),
  (s: string) => s.toLowerCase(),
);
const credentialArb = fc.record({
  header: fc.constantFrom(
    'Authorization',
    'X-Api-Key',
    'X-Goog-Api-Key',
    'X-Amp-Token',
    'Proxy-Authorization',
  ),
  scheme: fc.constantFrom('', 'Bearer ', 'bearer ', 'BEARER  '),
  value: secretArb,
  padding: fc.constantFrom('', ' ', '  '),
  casing: casingArb,
  joinedWith: fc.option(secretArb, { nil: undefined }),
});
const queryArb = fc.array(
  fc.record({ name: fc.constantFrom('key', 'auth_token', 'KEY', 'rvt-key', 'q'), value: secretArb }),
  { maxLength: 3 },
);
const requestArb = fc.record({
  policySet: fc.nat({ max: POLICY_SETS.length - 1 }),
  group: fc.constantFrom<AmpGroup>('provider', 'management', 'actors', 'browser'),
  prefix: fc.nat({ max: 3 }),
  ambiguity: fc.option(fc.constantFrom(...AMBIGUITIES), { nil: undefined, freq: 3 }),
  method: fc.constantFrom('GET', 'POST'),
  credentials: fc.array(credentialArb, { maxLength: 4 }),
  query: queryArb,
});

type GeneratedRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function rawRequestFor(generated: GeneratedRequest): { path: string; text: string } {
  const prefixes = GROUP_PREFIXES[generated.group];
  let path = prefixes[generated.prefix % prefixes.length]!;
  if (generated.ambiguity) {
    const cut = path.indexOf('/', 1);
    path =
      cut === -1
        ? `${path}${generated.ambiguity}/x`
        : `${path.slice(0, cut)}${generated.ambiguity}${path.slice(cut)}`;
  }
  const query = generated.query.map((p) => `${p.name}=${encodeURIComponent(p.value)}`).join('&');
  const target = query ? `${path}?${query}` : path;
  const headers = generated.credentials.map((c) => {
    const value = `${c.scheme}${c.value}${c.joinedWith ? `, ${c.joinedWith}` : ''}`;
    return `${c.casing(c.header)}:${c.padding}${value}${c.padding}\r\n`;
  });
  const body = generated.method === 'POST' ? '{"x":1}' : '';
  const text =
    `${generated.method} ${target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n` +
    (body ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` : '') +
    headers.join('') +
    `\r\n${body}`;
  return { path, text };
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`credential guarantees hold for generated requests (${name})`, () => {
    let upstream: FakeUpstream;
    const apps: RunningApp[] = [];

    before(async () => {
      upstream = await startUpstream((_req, res) => res.end('{"ok":true}'));
      for (const policies of POLICY_SETS) {
        const app = express();
        app.use(
          ampRouter({
            upstream: upstream.url,
            upstreamKey: SERVER_KEY,
            clients: [
              { key: GATEWAY.alice, name: 'alice', upstreamKey: ALICE_AMP_KEY },
              { key: GATEWAY.bob, name: 'bob' },
            ],
            policies,
          }),
        );
        apps.push(await listen(app));
      }
    });
    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await upstream.close();
    });

    it('no gateway key leaves, the server key only reaches inject groups, ambiguous paths never leave', async () => {
      await fc.assert(
        fc.asyncProperty(requestArb, async (generated) => {
          upstream.requests.length = 0;
          const { path, text } = rawRequestFor(generated);
          const response = await sendRaw(apps[generated.policySet]!.port, text);
          assert.match(response, /^HTTP\/1\.1 \d{3} /, 'not a well-formed response');
          for (const secret of SECRETS) assert.ok(!response.includes(secret), `response contains ${secret}`);

          if (generated.ambiguity) {
            // Refused when either reading of the path is ours; otherwise the host's 404.
            assert.match(response, /^HTTP\/1\.1 (400|404) /);
            assert.equal(upstream.requests.length, 0, 'an ambiguous path was forwarded');
            return;
          }
          const seen = upstream.requests[0];
          if (!seen) return; // refused by the policy: nothing left the gateway
          const sent = `${seen.url}\n${seen.rawHeaders.join('\n')}`;
          for (const key of Object.values(GATEWAY))
            assert.ok(!sent.includes(key), `gateway key ${key} reached upstream`);
          const policy = {
            provider: 'inject',
            management: 'passthrough',
            actors: 'passthrough',
            browser: 'passthrough',
            ...POLICY_SETS[generated.policySet],
          }[generated.group];
          if (policy !== 'inject')
            assert.ok(!sent.includes(SERVER_KEY), `server key reached a ${policy} route`);
          assert.equal(seen.url.split('?')[0], path, 'the upstream was asked for another path');
        }),
        { numRuns: 1000 },
      );
    });
  });
}
