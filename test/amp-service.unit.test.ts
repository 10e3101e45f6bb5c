import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { createActorTokenStage } from '../src/actors/actor-token.js';
import { rewriteActorMetadata } from '../src/actors/metadata-reply.js';
import { createPublicBase } from '../src/access/public-base.js';
import { IdentityProxy } from '../src/identity/identity-proxy.js';
import { createUpstreamConnection } from '../src/egress/upstream-connection.js';
import { destinationOf } from '../src/proxy/outbound-request.js';
import { publicRouteOf } from '../src/routing/public-routes.js';

function request(
  headers: IncomingMessage['headers'],
  peer = '127.0.0.1',
  encrypted = false,
): IncomingMessage {
  return { headers, socket: { remoteAddress: peer, encrypted } } as unknown as IncomingMessage;
}

describe('actor token stage (no sockets)', () => {
  const stage = createActorTokenStage('pk_a/b');
  it('adds the token percent-encoded, and the header on plain HTTP only', () => {
    const outgoing: Record<string, string> = {};
    assert.equal(stage({}, '', outgoing, false), 'rvt-token=pk_a%2Fb');
    assert.equal(outgoing['x-rivet-token'], 'pk_a/b');
    const upgrade: Record<string, string> = {};
    assert.equal(stage({}, 'rvt-key=T', upgrade, true), 'rvt-key=T&rvt-token=pk_a%2Fb');
    assert.deepEqual(upgrade, {});
  });
  it("sees the client's token in the query (also percent-encoded), the header or the subprotocol", () => {
    for (const [headers, query] of [
      [{}, 'rvt%2Dtoken=x'],
      [{}, 'a=1&rvt-token'],
      [{ 'x-rivet-token': 'x' }, ''],
      [{ 'sec-websocket-protocol': 'rivet, rivet_token.x' }, ''],
    ] as const) {
      const outgoing: Record<string, string> = {};
      assert.equal(stage(headers, query, outgoing, false), query);
      assert.deepEqual(outgoing, {});
    }
    assert.equal(stage({}, 'rvt-%zz=1', {}, true), 'rvt-%zz=1&rvt-token=pk_a%2Fb');
  });
});

describe('metadata reply rewrite (no sockets)', () => {
  const upstream = 'https://amp.example/prefix';
  it('moves URLs naming the upstream host onto the gateway, keeping ws schemes and dropping its prefix', () => {
    const document = {
      clientEndpoint: 'https://rivet.example',
      nested: { socket: 'wss://amp.example/prefix/actors/ws?x=1', other: 'https://elsewhere.example/' },
      list: ['https://amp.example/actors', 'not a url', 'https://[bad', 7, { deep: 'http://amp.example/x' }],
      count: 3,
    };
    rewriteActorMetadata('http://gw:8080', upstream)(document);
    assert.deepEqual(document, {
      clientEndpoint: 'http://gw:8080/actors',
      nested: { socket: 'ws://gw:8080/actors/ws?x=1', other: 'https://elsewhere.example/' },
      list: ['http://gw:8080/actors', 'not a url', 'https://[bad', 7, { deep: 'http://gw:8080/x' }],
      count: 3,
    });
  });
  it('without a gateway base, drops clientEndpoint and leaves the rest', () => {
    const document: Record<string, unknown> = {
      clientEndpoint: 'https://rivet.example',
      link: 'https://amp.example/a',
    };
    rewriteActorMetadata(undefined, upstream)(document);
    assert.deepEqual(document, { link: 'https://amp.example/a' });
    const relative = { clientEndpoint: '/actors' };
    rewriteActorMetadata('http://gw', upstream)(relative);
    assert.deepEqual(relative, { clientEndpoint: '/actors' });
    rewriteActorMetadata('http://gw', upstream)(null);
  });
});

describe('public base (no sockets)', () => {
  const fromRequest = createPublicBase(undefined, ['10.0.0.0/8']);
  it("is the request's host and scheme, forwarded values only from a trusted peer", () => {
    assert.equal(
      fromRequest(request({ host: 'GW.example:8443' }, '127.0.0.1', true)),
      'https://gw.example:8443',
    );
    assert.equal(fromRequest(request({ host: '[::1]:8080' })), 'http://[::1]:8080');
    // The values the trusted proxy in front wrote: the last ones (a client can put anything before).
    const forwarded = {
      host: 'inner',
      'x-forwarded-proto': ['http', 'https'],
      'x-forwarded-host': 'spoofed.example, outer',
    };
    assert.equal(fromRequest(request(forwarded as never, '10.1.2.3')), 'https://outer');
    assert.equal(
      fromRequest(request({ host: 'inner', 'x-forwarded-proto': 'gopher' }, '10.1.2.3')),
      'http://inner',
    );
  });
  it('is unknown for a missing or malformed host', () => {
    for (const host of [undefined, '', 'evil.example/path', 'a@b', 'host:port']) {
      assert.equal(fromRequest(request({ host })), undefined);
    }
  });
});

describe('identity proxy (no sockets)', () => {
  const connection = createUpstreamConnection(undefined, undefined, 1000);
  const upstream = destinationOf('https://ampcode.com', 1000, connection);
  it('learns only a provider the CLI would call, and rewrites apiURL when the gateway base is known', async () => {
    const identity = new IdentityProxy(undefined, upstream, () => connection);
    for (const apiURL of [
      'http://idp.example',
      'ftp://idp.example',
      'not a url',
      'https://u:p@idp.example',
    ]) {
      const document = { apiURL };
      identity.rewriteOAuthConfig('http://gw')(document);
      assert.deepEqual(document, { apiURL });
    }
    const unknownBase = { apiURL: 'https://idp.example/v1/' };
    identity.rewriteOAuthConfig(undefined)(unknownBase);
    assert.equal(unknownBase.apiURL, 'https://idp.example/v1/');
    assert.equal((await identity.provider())?.upstreamBase, 'https://idp.example/v1');
    identity.rewriteOAuthConfig('http://gw')([]);
    assert.equal(identity.providerPath('/api/amp-proxy/identity'), '/');
  });
  it('routes the identity subtree only when on, any method; the other public routes on GET and HEAD', () => {
    assert.equal(publicRouteOf('POST', '/API/amp-proxy/identity/x', true), 'identity');
    assert.equal(publicRouteOf('POST', '/api/amp-proxy/identity/x', false), undefined);
    assert.equal(publicRouteOf('HEAD', '/auth/cli-login', false), 'cli-login');
    assert.equal(publicRouteOf(undefined, '/actors/metadata', false), undefined);
  });
});
