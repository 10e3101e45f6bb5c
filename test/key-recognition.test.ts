import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ClientTable, type ResolvedClient } from '../src/auth/clients.js';
import { readCredentials } from '../src/auth/credentials.js';
import { containsKey, findKeys, isKeyToken, KeyTable } from '../src/auth/key-recognition.js';

const ALICE_KEY = 'gw-alice-key-0001';
const BOB_KEY = 'gw_bob_key_0002_long';
const alice: ResolvedClient = { name: 'alice', upstreamKey: undefined };
const bob: ResolvedClient = { name: 'bob', upstreamKey: undefined };

function clients(): ClientTable {
  const table = new ClientTable();
  table.add(ALICE_KEY, alice);
  table.add(BOB_KEY, bob);
  return table;
}

const base64 = (text: string): string => Buffer.from(text).toString('base64');
const encodeAll = (text: string): string =>
  [...text].map((char) => `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');

describe('key tokens and the key table', () => {
  it('a key token is a non-empty run of A-Z, a-z, 0-9, _ and -', () => {
    for (const token of ['a', 'Ab_9-x', ALICE_KEY, BOB_KEY]) assert.ok(isKeyToken(token), token);
    for (const text of ['', 'a b', 'a,b', 'a.b', 'a:b', 'a%2Db', 'k€y', 'a"', 'a+b', 'a/b', 'a=b']) {
      assert.ok(!isKeyToken(text), text);
    }
  });

  it('keeps one entry per key, the lengths of its keys and the shortest', () => {
    const table = new KeyTable<number>();
    assert.equal(table.shortest, Infinity);
    assert.ok(table.add('abcdef', 1));
    assert.ok(!table.add('abcdef', 2), 'a duplicate is refused');
    assert.ok(table.add('abcdefghij', 3));
    assert.equal(table.size, 2);
    assert.equal(table.lookup('abcdef'), 1);
    assert.equal(table.lookup('abcdefg'), undefined);
    assert.ok(table.hasKeyOfLength(6) && table.hasKeyOfLength(10));
    assert.ok(!table.hasKeyOfLength(7) && !table.hasKeyOfLength(11) && !table.hasKeyOfLength(1000));
    assert.equal(table.shortest, 6);
  });
});

describe('findKeys: a key is recognised as a whole token wherever it appears', () => {
  const table = clients();
  const found = (text: string): boolean => containsKey(text, table);

  const RECOGNISED: ReadonlyArray<readonly [string, string]> = [
    ['alone', ALICE_KEY],
    ['after Bearer', `Bearer ${ALICE_KEY}`],
    ['after any scheme word', `Token ${ALICE_KEY}`],
    ['after ApiKey with tabs', `ApiKey\t\t${ALICE_KEY}`],
    ['double-quoted', `"${ALICE_KEY}"`],
    ['single-quoted after a scheme', `Bearer '${ALICE_KEY}'`],
    ['followed by other text', `${ALICE_KEY} and more`],
    ['in a comma-joined value', `user-token, ${ALICE_KEY}`],
    ['as a parameter value', `realm="x", key=${ALICE_KEY}; v=1`],
    ['in a cookie', `theme=dark; session=${ALICE_KEY}`],
    ['in JSON', JSON.stringify({ wsToken: ALICE_KEY })],
    ['JSON-escaped', `{"wsToken":"\\u0067${ALICE_KEY.slice(1)}"}`],
    ['as a query parameter name', `${ALICE_KEY}=1`],
    ['in array syntax', `key[]=${ALICE_KEY}&key[1]=x`],
    ['after a fragment mark', `a=1#${ALICE_KEY}`],
    ['as a path segment', `/api/threads/${ALICE_KEY}/x`],
    ['with a dot after it', `${ALICE_KEY}.json`],
    ['percent-encoded', `q=${encodeURIComponent(`pre ${ALICE_KEY}`)}`],
    ['percent-encoded character by character', encodeAll(ALICE_KEY)],
    ['percent-encoded in lower case', `gw%2dalice-key-0001`],
    ['encoded twice', `x=${encodeURIComponent(encodeURIComponent(`"${ALICE_KEY}"`))}`],
    ['encoded three times (the last round decoded)', `gw%25252Dalice-key-0001`],
    ['after a stray %', `100% sure: ${encodeAll(ALICE_KEY)}`],
    [
      'in WebSocket conn params',
      `rivet, rivet_conn_params.${encodeURIComponent(JSON.stringify({ wsToken: ALICE_KEY }))}`,
    ],
    ['in Basic credentials as the user', `Basic ${base64(`${ALICE_KEY}:`)}`],
    ['in Basic credentials as the password', `Basic ${base64(`:${ALICE_KEY}`)}`],
    ['in Basic credentials after a user name', `basic ${base64(`alice:${ALICE_KEY}`)}`],
    [
      'in Basic credentials, any casing, base64url',
      `bAsIc ${Buffer.from(`:${ALICE_KEY}`).toString('base64url')}`,
    ],
    ['in Basic credentials whose base64 holds / and +', `Basic ${base64(`a>?~~>:${ALICE_KEY}`)}`],
    ['in Basic credentials after other text', `Digest x, Basic\t${base64(`:${ALICE_KEY}`)}`],
    ['in Basic credentials, percent-encoded', `auth=Basic%20${encodeURIComponent(base64(`:${ALICE_KEY}`))}`],
    ['the longer key', `x ${BOB_KEY} y`],
  ];
  for (const [placement, text] of RECOGNISED) {
    it(`recognised ${placement}`, () => assert.ok(found(text), text));
  }

  const NOT_RECOGNISED: ReadonlyArray<readonly [string, string]> = [
    ['as part of a longer token (before)', `x${ALICE_KEY}`],
    ['as part of a longer token (after)', `${ALICE_KEY}-2`],
    ['joined by an underscore', `${ALICE_KEY}_`],
    ['in another casing', ALICE_KEY.toUpperCase()],
    ['split in two', `gw-alice key-0001`],
    ['shorter than every key', 'gw-alice'],
    ['encoded four times (beyond the three decoding rounds)', `gw%2525252Dalice-key-0001`],
    ['base64 without a Basic scheme word', base64(`:${ALICE_KEY}`)],
    ['base64 after a word that only ends in basic', `xbasic ${base64(`:${ALICE_KEY}`)}`],
  ];
  for (const [placement, text] of NOT_RECOGNISED) {
    it(`not recognised ${placement}`, () => assert.ok(!found(text), text));
  }

  it('locates a raw token, and reports one found only decoded or inside Basic without a place', () => {
    const places: [string | undefined, number, number][] = [];
    const text = `a ${ALICE_KEY} ${encodeURIComponent(`"${BOB_KEY}"`)} Basic ${base64(`:${BOB_KEY}`)}`;
    findKeys(text, table, (client, start, end) => {
      places.push([client.name, start, end]);
    });
    assert.deepEqual(places[0], ['alice', 2, 2 + ALICE_KEY.length]);
    const bobs = places.filter(([name]) => name === 'bob');
    assert.ok(bobs.length >= 2, 'the encoded and the Basic placement are both found');
    for (const place of bobs) assert.deepEqual(place, ['bob', -1, -1]);
  });

  it('stops as soon as the visitor says so', () => {
    let visits = 0;
    const stopped = findKeys(`${ALICE_KEY} ${BOB_KEY}`, table, () => {
      visits++;
      return true;
    });
    assert.ok(stopped);
    assert.equal(visits, 1);
  });

  it('finds nothing, and examines nothing, without keys', () => {
    assert.ok(!containsKey(`Bearer ${ALICE_KEY}`, new ClientTable()));
  });

  it('agrees with splitting on every non-key character, for any text and any mix of key lengths', () => {
    // A reference recogniser without probing or tables: the scanner may skip text, never a key.
    const keys = ['Kq7', 'Zx9Qw', 'mN4-pL8_rT', 'Hb2Vc6Jd0Fs5Gk1Wn3Yp', 'A'.repeat(40)];
    const table = new KeyTable<string>();
    for (const key of keys) table.add(key, key);
    const pieceArb = fc.oneof(
      fc.constantFrom(...keys),
      fc.constantFrom('a', 'b0', '_', '-', 'Kq', 'q7', 'Zx9Q', 'AAAA', 'x'.repeat(37)),
      fc.constantFrom(' ', ',', ';', '=', '"', '/', '+', '.', ':', '{', '}', '\t', '€'),
    );
    fc.assert(
      fc.property(fc.array(pieceArb, { maxLength: 30 }), (pieces) => {
        const text = pieces.join('');
        const expected = text.split(/[^A-Za-z0-9_-]+/).filter((token) => keys.includes(token));
        const seen: string[] = [];
        findKeys(text, table, (key) => {
          seen.push(key);
        });
        assert.deepEqual(seen, expected, JSON.stringify(text));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('readCredentials', () => {
  const table = clients();
  const read = (headers: Record<string, string | string[]>, path = '/api/threads', query = '') =>
    readCredentials(headers, path, query, 'x-amp-token', table);

  it('a key in a credential header identifies the caller, in any form', () => {
    for (const value of [
      `Bearer ${ALICE_KEY}`,
      `Token "${ALICE_KEY}"`,
      `${ALICE_KEY} trailing`,
      `Basic ${base64(`${ALICE_KEY}:`)}`,
      `Basic ${base64(`:${ALICE_KEY}`)}`,
    ]) {
      for (const header of ['authorization', 'x-api-key', 'x-goog-api-key', 'x-amp-token']) {
        const credentials = read({ [header]: value });
        assert.equal(credentials.client, alice, `${header}: ${value}`);
        assert.ok(credentials.gatewayKeyPresented);
        assert.equal(credentials.misplacedGatewayKey, undefined);
        assert.equal(credentials.authorizationToken, undefined);
        assert.equal(credentials.tokenHeaderValue, undefined);
      }
    }
    const { headers } = read({ authorization: `Bearer ${ALICE_KEY}`, 'x-api-key': 'user-key' });
    assert.deepEqual(
      headers.map((h) => [h.header, h.carriesGatewayKey]),
      [
        ['authorization', true],
        ['x-api-key', false],
      ],
    );
  });

  it('keys of two clients, even inside one Basic credential, conflict', () => {
    assert.ok(read({ authorization: `Basic ${base64(`${ALICE_KEY}:${BOB_KEY}`)}` }).conflictingClients);
    assert.ok(read({ authorization: `Bearer ${ALICE_KEY}`, 'x-amp-token': BOB_KEY }).conflictingClients);
    assert.ok(!read({ authorization: `Bearer ${ALICE_KEY}`, 'x-api-key': ALICE_KEY }).conflictingClients);
  });

  it('user tokens are read as before', () => {
    const credentials = read({ authorization: 'Bearer user-token', 'x-amp-token': 'Bearer amp-token' });
    assert.equal(credentials.authorizationToken, 'user-token');
    assert.equal(credentials.tokenHeaderValue, 'amp-token');
    assert.equal(credentials.client, undefined);
    assert.ok(!credentials.gatewayKeyPresented);
  });

  it('names the place of a key anywhere else: the header, the query or the path', () => {
    const conn = encodeURIComponent(JSON.stringify({ wsToken: ALICE_KEY }));
    const cases: [Record<string, string | string[]>, string, string, string][] = [
      [{ cookie: `session=${ALICE_KEY}` }, '/api/threads', '', 'cookie'],
      [{ x_api_key: ALICE_KEY }, '/api/threads', '', 'x_api_key'],
      [{ 'sec-websocket-protocol': `rivet, rivet_conn_params.${conn}` }, '/x', '', 'sec-websocket-protocol'],
      [{ 'x-rivet-conn-params': JSON.stringify({ wsToken: ALICE_KEY }) }, '/x', '', 'x-rivet-conn-params'],
      [{ 'proxy-authorization': `Bearer ${ALICE_KEY}` }, '/x', '', 'proxy-authorization'],
      [{ 'set-cookie': ['a=1', `b=${ALICE_KEY}`] }, '/x', '', 'set-cookie'],
      [{ [ALICE_KEY]: '1' }, '/x', '', 'header name'],
      [{}, '/x', `key=${ALICE_KEY}`, 'query'],
      [{}, '/x', `a=1;b=${ALICE_KEY}`, 'query'],
      [{}, '/x', `%6Bey=${encodeURIComponent(ALICE_KEY)}`, 'query'],
      [{}, '/x', `key[]=${ALICE_KEY}`, 'query'],
      [{}, '/x', `q=note+${ALICE_KEY}+here`, 'query'],
      [{}, '/x', ALICE_KEY, 'query'],
      [{}, '/x', `a=1#${ALICE_KEY}`, 'query'],
      [{}, `/api/threads/${ALICE_KEY}`, 'a=1', 'path'],
      [{}, `/api/threads/${encodeAll(ALICE_KEY)}`, '', 'path'],
    ];
    for (const [headers, path, query, where] of cases) {
      const credentials = read({ authorization: 'Bearer user-token', ...headers }, path, query);
      assert.equal(credentials.misplacedGatewayKey, where, JSON.stringify([headers, path, query]));
    }
    // The first place wins; a key in a credential header does not hide one elsewhere.
    assert.equal(
      read({ authorization: `Bearer ${ALICE_KEY}`, 'x-note': ALICE_KEY }, '/x', `k=${ALICE_KEY}`)
        .misplacedGatewayKey,
      'x-note',
    );
  });

  it('examines nothing without clients', () => {
    const credentials = readCredentials(
      { cookie: `session=${ALICE_KEY}` },
      `/x/${ALICE_KEY}`,
      `key=${ALICE_KEY}`,
      'x-amp-token',
      new ClientTable(),
    );
    assert.equal(credentials.misplacedGatewayKey, undefined);
    assert.equal(credentials.client, undefined);
  });

  it("drops the user's key and auth_token parameters byte-exactly, or nothing", () => {
    const query = 'rvt-key=T%2D1&key=user&AUTH_TOKEN=x&%6Bey=y&keys=1&x=%zz';
    const credentials = read({}, '/x', query);
    assert.equal(credentials.misplacedGatewayKey, undefined);
    assert.equal(credentials.upstreamQuery('all-credentials'), 'rvt-key=T%2D1&keys=1&x=%zz');
    assert.equal(credentials.upstreamQuery('none'), query);
    assert.equal(read({}, '/x', 'a=1&b=2').upstreamQuery('all-credentials'), 'a=1&b=2');
  });
});
