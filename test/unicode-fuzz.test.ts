import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { AmpProxyEvent } from '../src/index.js';
import { startCli } from './support/gateway-harness.js';
import { exchangeRaw } from './support/raw-client.js';
import {
  ALICE,
  BOB,
  SERVER_KEY,
  gatewayOptions,
  startGateway,
  type FramingGateway,
  type Host,
} from './support/raw-gateway.js';
import { startRawUpstream, type RawUpstream } from './support/raw-upstream.js';
import { installTripwire } from './support/tripwire.js';

const SECRETS = [SERVER_KEY, ALICE.key, ALICE.upstreamKey, BOB.key];
const FUZZ_HOSTS: readonly Host[] = ['express 4', 'express 5', 'node:http'];

/**
 * The bytes of a string as UTF-8, lone surrogates included (encoded as their own three bytes,
 * as WTF-8 does): what a client that does not check its strings would send.
 */
function looseUtf8(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const point = text.codePointAt(i)!;
    if (point > 0xffff) i++;
    if (point < 0x80) bytes.push(point);
    else if (point < 0x800) bytes.push(0xc0 | (point >> 6), 0x80 | (point & 0x3f));
    else if (point < 0x10000)
      bytes.push(0xe0 | (point >> 12), 0x80 | ((point >> 6) & 0x3f), 0x80 | (point & 0x3f));
    else
      bytes.push(
        0xf0 | (point >> 18),
        0x80 | ((point >> 12) & 0x3f),
        0x80 | ((point >> 6) & 0x3f),
        0x80 | (point & 0x3f),
      );
  }
  return Buffer.from(bytes);
}

const percentEncoded = (bytes: Uint8Array): string =>
  [...bytes].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join('');

/** Text as a client could put it in a request target: percent-encoded, or raw non-ASCII bytes. */
const unicodeText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.string({ unit: fc.constantFrom('\uD83D', '\uDE00', '\u{1F600}', 'é', '\0', 'a', '…'), maxLength: 12 }),
);
const targetPart = fc.oneof(
  unicodeText.map((text) => percentEncoded(looseUtf8(text))),
  fc.uint8Array({ maxLength: 16 }).map(percentEncoded),
  unicodeText.map((text) =>
    looseUtf8(text)
      .toString('latin1')
      .replace(/[^\x21-\x7e\x80-\xff]|[#?&]/g, ''),
  ),
  fc.constantFrom('abc%F0%9F%98%80defghij', '%F0%9F', '%', '%zz', ALICE.key, `Bearer%20${BOB.key}`),
);
const fuzzedRequest = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE'),
  route: fc.constantFrom(
    '/api/internal',
    '/api/provider/anthropic/v1/messages',
    '/api/threads',
    '/actors/gateway',
    '/threads',
  ),
  segment: fc.option(targetPart, { nil: undefined }),
  query: fc.array(
    fc.tuple(fc.oneof(fc.constantFrom('token', 'key', 'api_key', 'q', 'keyword'), targetPart), targetPart),
    { maxLength: 3 },
  ),
  authorization: fc.constantFrom(
    `Bearer ${ALICE.key}`,
    `Bearer ${BOB.key}`,
    'Bearer user-token-1',
    undefined,
  ),
  headerValue: fc.option(unicodeText.map(looseUtf8), { nil: undefined }),
  /** Sent as a WebSocket handshake, which goes through `attachUpgrade` instead. */
  upgrade: fc.boolean(),
});
const WEBSOCKET_HEADERS =
  'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

type FuzzedRequest = typeof fuzzedRequest extends fc.Arbitrary<infer T> ? T : never;

function requestBytes(request: FuzzedRequest): Buffer {
  const path = request.segment === undefined ? request.route : `${request.route}/${request.segment}`;
  const query = request.query.map(([name, value]) => `${name}=${value}`).join('&');
  const head =
    `${request.method} ${path}${query === '' ? '' : `?${query}`} HTTP/1.1\r\nHost: gateway.test\r\n` +
    (request.authorization ? `Authorization: ${request.authorization}\r\n` : '') +
    (request.upgrade ? WEBSOCKET_HEADERS : 'Content-Length: 0\r\n');
  return Buffer.concat([
    Buffer.from(head, 'latin1'),
    request.headerValue
      ? Buffer.concat([Buffer.from('X-Note: '), request.headerValue, Buffer.from('\r\n')])
      : Buffer.alloc(0),
    Buffer.from('\r\n'),
  ]);
}

/** The issue's example: a token value with an emoji made the standalone gateway exit. */
const EMOJI_TOKEN: FuzzedRequest = {
  method: 'GET',
  route: '/api/internal',
  segment: undefined,
  query: [['token', 'abc%F0%9F%98%80defghij']],
  authorization: 'Bearer user-token-1',
  headerValue: undefined,
  upgrade: false,
};

/** Sends one fuzzed request and checks that an HTTP answer came back without a key in it. */
async function assertAnswered(port: number, request: FuzzedRequest): Promise<void> {
  const bytes = requestBytes(request);
  const response = await exchangeRaw(port, bytes, { method: request.method, timeoutMs: 5000 }).catch(
    (error: Error) =>
      assert.fail(`no answer to ${JSON.stringify(bytes.toString('latin1'))}: ${error.message}`),
  );
  assert.ok(response.status >= 200 && response.status < 600, response.raw);
  // A 500 is an exception: ours (amp_internal_error) or one handed to the host's error handler.
  assert.notEqual(response.status, 500, response.raw);
  for (const secret of SECRETS) assert.ok(!response.raw.includes(secret), `the answer shows ${secret}`);
}

describe('arbitrary Unicode in paths, query names and values and header values', () => {
  let upstream: RawUpstream;
  before(async () => {
    upstream = await startRawUpstream();
  });
  after(() => upstream.close());

  for (const host of FUZZ_HOSTS) {
    it(`${host}: every request is answered, nothing is thrown, no key reaches a log line or event`, async () => {
      const events: AmpProxyEvent[] = [];
      const lines: string[] = [];
      const log = (object: object, message?: string): void => {
        lines.push(JSON.stringify({ ...object, message }));
      };
      const gateway: FramingGateway = await startGateway(
        host,
        gatewayOptions(upstream.url, {
          onProxyEvent: (event) => events.push(event),
          logger: { info: log, warn: log, error: log, debug: log },
        }),
        { upgrades: true },
      );
      const tripwire = installTripwire();
      try {
        await assertAnswered(gateway.port, EMOJI_TOKEN);
        await fc.assert(
          fc.asyncProperty(fuzzedRequest, (request) => assertAnswered(gateway.port, request)),
          { numRuns: 60 },
        );
        // Still serving.
        const response = await exchangeRaw(
          gateway.port,
          `GET /api/internal?q=1 HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer user-token-1\r\n\r\n`,
        );
        assert.equal(response.status, 200, response.raw);
      } finally {
        tripwire.remove();
        await gateway.close();
      }
      assert.deepEqual(tripwire.caught, [], 'an uncaught exception or unhandled rejection');
      const reported = [...events.map((event) => JSON.stringify(event)), ...lines].join('\n');
      for (const secret of SECRETS)
        assert.ok(!reported.includes(secret), `a log line or event shows ${secret}`);
    });
  }
});

describe('the amp-proxy command line under the same requests', () => {
  let upstream: RawUpstream;
  let dir: string;
  before(async () => {
    upstream = await startRawUpstream();
    dir = await mkdtemp(join(tmpdir(), 'amp-unicode-fuzz-'));
    await writeFile(
      join(dir, '.amp-proxyrc.json'),
      JSON.stringify({ upstream: upstream.url, upstreamKey: SERVER_KEY, clients: [ALICE, BOB] }),
    );
  });
  after(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stays alive, answers every request and /healthz, and logs no key', async () => {
    const gateway = startCli(dir, { PATH: process.env.PATH, HOME: dir }, []);
    try {
      const port = Number(new URL(await gateway.listening).port);
      await assertAnswered(port, EMOJI_TOKEN);
      await fc.assert(
        fc.asyncProperty(fuzzedRequest, (request) => assertAnswered(port, request)),
        { numRuns: 60 },
      );
      const health = await exchangeRaw(port, 'GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n\r\n');
      assert.equal(health.status, 200, gateway.output());
    } finally {
      await gateway.stop();
    }
    for (const secret of SECRETS)
      assert.ok(!gateway.output().includes(secret), `the gateway's output shows ${secret}`);
  });
});
