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
const isGatewayKey = (value: string): boolean => (Object.values(GATEWAY) as string[]).includes(value);
const casingArb = fc.constantFrom(
  (s: string) => s,
  (s: string) => s.toUpperCase(),
  (s: string) => s.toLowerCase(),
);
const base64 = (text: string): string => Buffer.from(text).toString('base64');
const encodeAll = (text: string): string =>
  [...text].map((char) => `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');

/** The forms a credential takes in a credential header: any scheme word or none, quoted, trailed, Basic. */
const FORMS: readonly ((value: string) => string)[] = [
  (v) => v,
  (v) => `Bearer ${v}`,
  (v) => `bearer ${v}`,
  (v) => `BEARER  ${v}`,
  (v) => `Token ${v}`,
  (v) => `ApiKey ${v}`,
  (v) => `"${v}"`,
  (v) => `Bearer '${v}'`,
  (v) => `Bearer ${v} trailing text`,
  (v) => `${v};v=1`,
  (v) => `Basic ${base64(`${v}:`)}`,
  (v) => `Basic ${base64(`:${v}`)}`,
  (v) => `basic ${base64(`user:${v}`)}`,
];
const credentialArb = fc.record({
  header: fc.constantFrom('Authorization', 'X-Api-Key', 'X-Goog-Api-Key', 'X-Amp-Token'),
  form: fc.nat({ max: FORMS.length - 1 }),
  value: secretArb,
  padding: fc.constantFrom('', ' ', '  '),
  casing: casingArb,
  joinedWith: fc.option(secretArb, { nil: undefined }),
});

/**
 * Places outside the credential headers (issue 9 §2). A gateway key in any of them must be
 * refused with `400 amp_gateway_key_misplaced` naming `where`; any other value is harmless there.
 */
interface Place {
  /** What the refusal names. */
  where: string;
  header?: (value: string) => [name: string, value: string];
  query?: (value: string) => string;
}
const ELSEWHERE: Readonly<Record<string, Place>> = {
  cookie: { where: 'cookie', header: (v) => ['Cookie', `theme=dark; session=${v}`] },
  underscore: { where: 'x_api_key', header: (v) => ['X_Api_Key', v] },
  proxy: { where: 'proxy-authorization', header: (v) => ['Proxy-Authorization', `Bearer ${v}`] },
  subprotocol: {
    where: 'sec-websocket-protocol',
    header: (v) => [
      'Sec-WebSocket-Protocol',
      `rivet, rivet_conn_params.${encodeURIComponent(JSON.stringify({ wsToken: v }))}`,
    ],
  },
  connParams: {
    where: 'x-rivet-conn-params',
    header: (v) => ['X-Rivet-Conn-Params', `{"wsToken":"${v}"}`],
  },
  rivetToken: { where: 'x-rivet-token', header: (v) => ['X-Rivet-Token', v] },
  anyHeader: { where: 'x-note', header: (v) => ['X-Note', `see "${v}", thanks`] },
  encodedHeader: { where: 'x-data', header: (v) => ['X-Data', encodeAll(v)] },
  key: { where: 'query', query: (v) => `key=${v}` },
  authToken: { where: 'query', query: (v) => `auth_token=${encodeURIComponent(v)}` },
  upperKey: { where: 'query', query: (v) => `KEY=${v}` },
  semicolon: { where: 'query', query: (v) => `a=1;rvt-key=${v}` },
  encodedName: { where: 'query', query: (v) => `%6Bey=${encodeAll(v)}` },
  array: { where: 'query', query: (v) => `key[]=${v}` },
  inside: { where: 'query', query: (v) => `q=note%20${v}%20here` },
  alone: { where: 'query', query: (v) => v },
  doubleEncoded: { where: 'query', query: (v) => `x=${encodeAll(v).replace(/%/g, '%25')}` },
  fragment: { where: 'query', query: (v) => `a=1#${v}` },
  path: { where: 'path' },
};
/** Where a key in the path goes, per group: still a path of that group. */
const PATH_WITH: Record<AmpGroup, (v: string) => string> = {
  provider: (v) => `/api/provider/anthropic/v1/${v}`,
  management: (v) => `/api/threads/${v}`,
  actors: (v) => `/actors/gateway/${v}`,
  browser: (v) => `/threads/${v}`,
};
// One entry per place: Node keeps only the first of some repeated headers (Proxy-Authorization).
const elsewhereArb = fc.uniqueArray(
  fc.record({ place: fc.constantFrom(...Object.keys(ELSEWHERE)), value: secretArb }),
  { maxLength: 3, selector: (entry) => entry.place },
);

const requestArb = fc.record({
  policySet: fc.nat({ max: POLICY_SETS.length - 1 }),
  group: fc.constantFrom<AmpGroup>('provider', 'management', 'actors', 'browser'),
  prefix: fc.nat({ max: 3 }),
  // One request in four has an ambiguous path; the others reach the credential checks.
  ambiguity: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 3 },
    { arbitrary: fc.constantFrom(...AMBIGUITIES), weight: 1 },
  ),
  method: fc.constantFrom('GET', 'POST'),
  credentials: fc.array(credentialArb, { maxLength: 4 }),
  elsewhere: elsewhereArb,
});

type GeneratedRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function rawRequestFor(generated: GeneratedRequest): { path: string; text: string } {
  const prefixes = GROUP_PREFIXES[generated.group];
  const inPath = generated.elsewhere.find((entry) => entry.place === 'path');
  let path = inPath
    ? PATH_WITH[generated.group](inPath.value)
    : prefixes[generated.prefix % prefixes.length]!;
  if (generated.ambiguity) {
    const cut = path.indexOf('/', 1);
    path =
      cut === -1
        ? `${path}${generated.ambiguity}/x`
        : `${path.slice(0, cut)}${generated.ambiguity}${path.slice(cut)}`;
  }
  const query: string[] = [];
  const headers = generated.credentials.map((c) => {
    const value = `${FORMS[c.form]!(c.value)}${c.joinedWith ? `, ${c.joinedWith}` : ''}`;
    return `${c.casing(c.header)}:${c.padding}${value}${c.padding}\r\n`;
  });
  for (const { place, value } of generated.elsewhere) {
    const spec = ELSEWHERE[place]!;
    if (spec.header) headers.push(`${spec.header(value).join(': ')}\r\n`);
    if (spec.query) query.push(spec.query(value));
  }
  const target = query.length > 0 ? `${path}?${query.join('&')}` : path;
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
        // The host's own 404 for paths that are not Amp's; Express's default page echoes the path.
        app.use((_req, res) => {
          res.status(404).end();
        });
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
          const misplaced = generated.elsewhere.filter((entry) => isGatewayKey(entry.value));
          if (misplaced.length > 0) {
            // A raw `#` in the target is refused as a bad path before any credential is read.
            assert.match(response, /^HTTP\/1\.1 400 /);
            const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as {
              error: string;
              where?: string;
            };
            if (body.error !== 'amp_bad_path') {
              assert.equal(body.error, 'amp_gateway_key_misplaced');
              assert.ok(
                misplaced.some((entry) => ELSEWHERE[entry.place]!.where === body.where),
                `where: ${body.where}, expected one of ${misplaced.map((entry) => ELSEWHERE[entry.place]!.where)}`,
              );
            }
            assert.equal(upstream.requests.length, 0, 'a request with a misplaced gateway key was forwarded');
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
        // 1,000 generated requests per Express major: 2,000 requests per test run, each on a
        // connection of its own (plus what fast-check adds when it shrinks a failure).
        { numRuns: 1000 },
      );
    });
  });
}
