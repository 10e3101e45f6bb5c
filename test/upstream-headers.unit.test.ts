/**
 * How a policy decision becomes the upstream request's headers (src/proxy/upstream-headers.ts):
 * a pure function of the client's headers, no sockets. What an upstream actually receives through
 * http-proxy is in upstream-headers.test.ts.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import { createUpstreamHeaderBuilder } from '../src/proxy/upstream-headers.js';

const PLAIN = { isUpgrade: false, decodedBody: false } as const;
const UPGRADE = { isUpgrade: true, decodedBody: false } as const;
const build = createUpstreamHeaderBuilder('x-amp-token');

describe('createUpstreamHeaderBuilder', () => {
  it('keeps ordinary and Amp headers as they came, arrays included', () => {
    const incoming: IncomingHttpHeaders = {
      host: 'gateway.example',
      accept: 'application/json',
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'accept-encoding': 'gzip, br',
      'user-agent': 'amp/1',
      'x-amp-client-type': 'cli',
      'x-amp-thread-id': 'T-1',
      'x-rivet-token': 'pk_public',
      'x-rivet-conn-params': '{"wsToken":"abc"}',
      cookie: 'a=1',
      'set-cookie': ['a=1', 'b=2'],
    };
    assert.deepEqual(build(incoming, {}, PLAIN), incoming);
  });

  it("drops every credential the client presented, the token header too, before the policy's are set", () => {
    const outgoing = build(
      {
        authorization: 'Bearer user',
        'x-api-key': 'user-key',
        'x-goog-api-key': 'user-goog',
        'x-amp-token': 'amp-token',
        accept: '*/*',
      },
      { authorization: 'Bearer server-key', 'x-api-key': 'server-key' },
      PLAIN,
    );
    assert.deepEqual(outgoing, {
      accept: '*/*',
      authorization: 'Bearer server-key',
      'x-api-key': 'server-key',
    });
  });

  it('the token header is whatever the option names', () => {
    const custom = createUpstreamHeaderBuilder('x-team-token');
    assert.deepEqual(custom({ 'x-team-token': 't', 'x-amp-token': 'kept' }, {}, PLAIN), {
      'x-amp-token': 'kept',
    });
  });

  it("a policy's header replaces the client's of that name, and null removes it", () => {
    const outgoing = build(
      { 'x-team': 'red', 'user-agent': 'amp/1', accept: '*/*' },
      { 'x-team': 'blue', 'user-agent': null, 'x-new': 'yes' },
      PLAIN,
    );
    assert.deepEqual(outgoing, { accept: '*/*', 'x-team': 'blue', 'x-new': 'yes' });
  });

  it('drops framing headers, which are stated afresh for the body actually sent', () => {
    const outgoing = build(
      {
        'content-length': '5',
        'transfer-encoding': 'chunked',
        trailer: 'x-t',
        te: 'trailers',
        expect: '100-continue',
      },
      {},
      PLAIN,
    );
    assert.deepEqual(outgoing, {});
  });

  it('drops proxy and hop-by-hop headers, and the names Connection lists', () => {
    const outgoing = build(
      {
        'proxy-authorization': 'Basic x',
        'proxy-connection': 'keep-alive',
        'keep-alive': 'timeout=5',
        connection: 'keep-alive, X-Hop-Secret,  x-other ',
        'x-hop-secret': 'no',
        'x-other': 'no',
        'x-kept': 'yes',
      },
      {},
      PLAIN,
    );
    assert.deepEqual(outgoing, { 'x-kept': 'yes' });
  });

  it('Connection cannot make the gateway drop Host or Upgrade', () => {
    const outgoing = build(
      { host: 'h', connection: 'Upgrade, Host, x-gone', upgrade: 'websocket', 'x-gone': '1' },
      {},
      UPGRADE,
    );
    assert.deepEqual(outgoing, { host: 'h', connection: 'Upgrade, Host, x-gone', upgrade: 'websocket' });
  });

  it('a single Connection token (keep-alive, close, upgrade) lists nothing', () => {
    for (const connection of ['keep-alive', 'close', 'Upgrade', ' upgrade ']) {
      assert.deepEqual(
        build({ connection, 'keep-alive': 'x', accept: 'a' }, {}, PLAIN),
        { accept: 'a' },
        connection,
      );
    }
    // A single other token is a listed name.
    assert.deepEqual(build({ connection: 'x-one', 'x-one': '1', accept: 'a' }, {}, PLAIN), { accept: 'a' });
  });

  it('Connection and Upgrade go upstream only on an upgrade', () => {
    const incoming = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k' };
    assert.deepEqual(build(incoming, {}, PLAIN), { 'sec-websocket-key': 'k' });
    assert.deepEqual(build(incoming, {}, UPGRADE), incoming);
  });

  it('drops headers that identify the client machine or browser, by name and by prefix', () => {
    const identity = [
      'forwarded',
      'x-forwarded',
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-forwarded-anything',
      'via',
      'x-real-ip',
      'x-client-ip',
      'x-cluster-client-ip',
      'true-client-ip',
      'cf-connecting-ip',
      'fastly-client-ip',
      'x-title',
      'http-referer',
      'referer',
      'priority',
      'x-stainless-lang',
      'x-stainless-os',
      'sec-ch-ua',
      'sec-ch-ua-platform',
      'sec-fetch-mode',
      'sec-fetch-site',
    ];
    const incoming = Object.fromEntries([...identity.map((name) => [name, 'v']), ['accept', '*/*']]);
    assert.deepEqual(build(incoming, {}, PLAIN), { accept: '*/*' });
  });

  it('drops every header name with an underscore, which some servers read as a dash', () => {
    assert.deepEqual(build({ x_api_key: 'k', x_amp_thread: 't', 'x-amp-thread': 't' }, {}, PLAIN), {
      'x-amp-thread': 't',
    });
  });

  it('drops Content-Encoding when the body sent was decoded by a host parser', () => {
    const incoming = { 'content-encoding': 'gzip', 'content-type': 'application/json' };
    assert.deepEqual(build(incoming, {}, { isUpgrade: false, decodedBody: true }), {
      'content-type': 'application/json',
    });
    assert.deepEqual(build(incoming, {}, PLAIN), incoming);
  });

  it("builds a fresh object and leaves the client's headers untouched", () => {
    const incoming: IncomingHttpHeaders = {
      authorization: 'Bearer user',
      'x-forwarded-for': '10.0.0.1',
      a: '1',
    };
    const copy = structuredClone(incoming);
    const outgoing = build(incoming, { authorization: 'Bearer server-key' }, PLAIN);
    assert.notEqual(outgoing, incoming);
    assert.deepEqual(incoming, copy);
    outgoing.a = 'changed';
    assert.equal(incoming.a, '1');
  });
});
