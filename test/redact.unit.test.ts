import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createRedactor, redactHeaders, redactSecret, redactUrl } from '../src/observability/redact.js';

const ELLIPSIS = '%E2%80%A6';
const EMOJI = '\u{1F600}';
const LONE_HIGH = '\uD83D';
const LONE_LOW = '\uDE00';
const isWellFormed = (text: string): boolean => !/\p{Cs}/u.test(text);

describe('redaction never throws and cuts whole code points', () => {
  it('a secret shows its first four code points, never half of a surrogate pair', () => {
    const table: ReadonlyArray<readonly [secret: string, shown: string]> = [
      ['sk-ant-1234567890', 'sk-a…'],
      ['short', '…'],
      [`abc${EMOJI}defghij`, `abc${EMOJI}…`],
      [EMOJI.repeat(9), `${EMOJI.repeat(4)}…`],
      // Eight code points in sixteen code units: short, so nothing of it is shown.
      [EMOJI.repeat(8), '…'],
      [`${LONE_HIGH}${LONE_LOW}${LONE_LOW}abcdefgh`, `${EMOJI}${LONE_LOW}ab…`],
      ['\0'.repeat(20), `${'\0'.repeat(4)}…`],
      ['x'.repeat(64 * 1024), 'xxxx…'],
    ];
    for (const [secret, shown] of table) assert.equal(redactSecret(secret), shown, JSON.stringify(secret));
  });

  it('a credential-like query value with an astral character, a lone surrogate or bad percent-encoding', () => {
    const table: ReadonlyArray<readonly [url: string, redacted: string]> = [
      // The example: the gateway process exited on it.
      ['/api/internal?token=abc%F0%9F%98%80defghij', `/api/internal?token=abc%F0%9F%98%80${ELLIPSIS}`],
      [
        `/api/internal?token=${EMOJI.repeat(10)}`,
        `/api/internal?token=${'%F0%9F%98%80'.repeat(4)}${ELLIPSIS}`,
      ],
      // UTF-8 of a lone surrogate does not decode: the raw text is what is cut.
      ['/x?key=%ED%A0%BDabcdefgh', `/x?key=%25ED%25${ELLIPSIS}`],
      [`/x?key=${LONE_HIGH}abcdefghij`, `/x?key=%EF%BF%BDabc${ELLIPSIS}`],
      [`/x?key=abc${LONE_LOW}defghij`, `/x?key=abc%EF%BF%BD${ELLIPSIS}`],
      ['/x?key=%zz%F0%9F', `/x?key=%25zz%25${ELLIPSIS}`],
      ['/x?key=%00%00%00%00%00%00%00%00%00', `/x?key=%00%00%00%00${ELLIPSIS}`],
      [`/x?key=${'a'.repeat(64 * 1024)}`, `/x?key=aaaa${ELLIPSIS}`],
      [`/x?${LONE_HIGH}=1&key=%`, `/x?${LONE_HIGH}=1&key=${ELLIPSIS}`],
    ];
    for (const [url, redacted] of table) assert.equal(redactUrl(url), redacted, JSON.stringify(url));
  });

  it('header values and names holding lone surrogates, NUL and astral characters', () => {
    assert.deepEqual(
      redactHeaders({
        authorization: `Bearer abc${EMOJI}defghij`,
        'x-api-key': `${LONE_LOW}abcdefghijk`,
        cookie: `s=${EMOJI.repeat(9)}`,
        'x-note': `a\0${LONE_HIGH}`,
      }),
      {
        authorization: `Bearer abc${EMOJI}…`,
        'x-api-key': `${LONE_LOW}abc…`,
        cookie: `s=${EMOJI.repeat(4)}…`,
        'x-note': `a\0${LONE_HIGH}`,
      },
    );
  });

  it('whatever the text, url() and headers() return and url() returns well-formed text', () => {
    const redactor = createRedactor(['gw-key-abcdef-123', 'server key with spaces']);
    const anyText = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: 'binary-ascii', maxLength: 40 }),
      fc
        .uint8Array({ maxLength: 30 })
        .map((bytes) => [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')),
      fc.constantFrom(LONE_HIGH, LONE_LOW, EMOJI, '%', '%F0%9F', '\0', 'gw-key-abcdef-123'),
    );
    const query = fc
      .array(fc.tuple(fc.oneof(fc.constantFrom('key', 'token', 'q', 'api%5Fkey'), anyText), anyText), {
        maxLength: 4,
      })
      .map((pairs) => pairs.map(([name, value]) => `${name}=${value}`).join('&'));
    fc.assert(
      fc.property(anyText, query, anyText, (path, search, headerValue) => {
        const url = redactor.url(`/api/${path}?${search}`);
        assert.equal(typeof url, 'string');
        const safe = redactor.headers({ authorization: headerValue, [`x-${path}`]: headerValue });
        assert.equal(typeof safe.authorization, 'string');
        // Only what decoding produced is re-encoded; the rest is the text as it came.
        if (isWellFormed(path) && isWellFormed(search)) assert.ok(isWellFormed(url), url);
      }),
      { numRuns: 500 },
    );
  });
});

describe('free text (an upstream close reason)', () => {
  it('masks known secrets and anything long enough to be a key, keeps short codes, cuts long text', () => {
    const redactor = createRedactor(['gw-known-secret-value', 'sgamp_gateway_key_0123456789abcdef']);
    assert.equal(redactor.text('guard.missing_header'), 'guard.missing_header');
    const masked = redactor.text(
      'bad token sgamp_user_0123456789abcdefghijk, key sgamp_gateway_key_0123456789abcdef, gw-known-secret-value',
    );
    assert.ok(!masked.includes('0123456789'), masked);
    assert.ok(!masked.includes('gw-known-secret-value'), masked);
    assert.ok(masked.startsWith('bad token sgam…'), masked);
    const long = redactor.text(`${EMOJI.repeat(119)}a${EMOJI}`);
    assert.equal(long, `${EMOJI.repeat(119)}a…`);
  });

  it('whatever the text, text() returns well-formed text of at most 121 code points', () => {
    const redactor = createRedactor(['sgamp_gateway_key_0123456789abcdef']);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        const safe = redactor.text(text);
        return [...safe].length <= 121 && (isWellFormed(safe) || !isWellFormed(text));
      }),
    );
  });
});
