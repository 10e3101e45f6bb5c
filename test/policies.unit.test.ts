/**
 * What each policy decides (src/policy/policies.ts), given credentials made by hand: no sockets,
 * no credential reading (that is key-recognition.test.ts and credential-properties.test.ts). The
 * same policies over the wire, for every way of presenting a credential, are in policies.test.ts.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { ClientTable, type ResolvedClient } from '../src/auth/clients.js';
import type { HeaderCredential, PresentedCredentials } from '../src/auth/credentials.js';
import type { ResolvedServerKey, ServerKeyResolver } from '../src/auth/server-key.js';
import {
  createPolicy,
  createServerKeyStage,
  type PolicyDecision,
  type PolicyDependencies,
} from '../src/policy/policies.js';
import { Refusal } from '../src/errors.js';
import type { AmpCustomPolicy, AmpErrorCode, AmpPolicyContext } from '../src/types.js';

const ALICE_KEY = 'gw-alice-key-0001';
const BOB_KEY = 'gw-bob-key-0002';
const alice: ResolvedClient = { name: 'alice', upstreamKey: 'alice-amp-key' };
const bob: ResolvedClient = { name: 'bob', upstreamKey: undefined };
const unnamed: ResolvedClient = { name: undefined, upstreamKey: 'unnamed-amp-key' };

function clientTable(): ClientTable {
  const table = new ClientTable();
  table.add(ALICE_KEY, alice);
  table.add(BOB_KEY, bob);
  return table;
}

const REQ = { headers: {}, url: '/api/threads' } as IncomingMessage;

/** The server key resolver of a policy that must never spend it. */
const NO_SERVER_KEY: ServerKeyResolver = () => assert.fail('the server key was asked for');
const fixedKey =
  (key: string | undefined, source: ResolvedServerKey['source'] = 'config'): ServerKeyResolver =>
  () => ({ key, source: key === undefined ? 'none' : source });

function deps(overrides: Partial<PolicyDependencies> = {}): PolicyDependencies {
  return { group: 'management', clients: new ClientTable(), serverKey: NO_SERVER_KEY, ...overrides };
}

/** What `readCredentials` would have found, written out by hand. */
function presented(overrides: Partial<PresentedCredentials> = {}): PresentedCredentials {
  return {
    headers: [],
    authorizationToken: undefined,
    tokenHeaderValue: undefined,
    client: undefined,
    conflictingClients: false,
    gatewayKeyPresented: false,
    misplacedGatewayKey: undefined,
    upstreamQuery: () => assert.fail('a policy does not build the query'),
    ...overrides,
  };
}

const header = (
  name: HeaderCredential['header'],
  raw: string,
  carriesGatewayKey = false,
): HeaderCredential => ({
  header: name,
  raw,
  carriesGatewayKey,
});

/** Credentials of a gateway client that presented its key in `Authorization`. */
const asClient = (client: ResolvedClient, key: string, more: Partial<PresentedCredentials> = {}) =>
  presented({
    headers: [header('authorization', `Bearer ${key}`, true)],
    client,
    gatewayKeyPresented: true,
    ...more,
  });

const decide = async (policy: ReturnType<typeof createPolicy>, credentials: PresentedCredentials) =>
  policy(REQ, credentials);

const reject = (code: AmpErrorCode): PolicyDecision => new Refusal(code);

describe('inject', () => {
  it('without gateway clients, any caller may spend the server key (resolved later, once the call goes upstream)', async () => {
    const inject = createPolicy('inject', deps());
    assert.deepEqual(await decide(inject, presented()), { kind: 'spend-server-key' });
    assert.deepEqual(
      await decide(
        inject,
        presented({ headers: [header('authorization', 'Bearer user')], authorizationToken: 'user' }),
      ),
      { kind: 'spend-server-key' },
    );
  });

  it('with gateway clients, a caller without a known key is refused', async () => {
    const inject = createPolicy('inject', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(inject, presented()), reject('amp_client_unauthorized'));
    assert.deepEqual(
      await decide(
        inject,
        presented({ headers: [header('authorization', 'Bearer user')], authorizationToken: 'user' }),
      ),
      reject('amp_client_unauthorized'),
    );
  });

  it('a client with a mapped key spends it, in Authorization and X-Api-Key, and query credentials are dropped', async () => {
    const inject = createPolicy('inject', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(inject, asClient(alice, ALICE_KEY)), {
      kind: 'forward',
      headers: { authorization: 'Bearer alice-amp-key', 'x-api-key': 'alice-amp-key' },
      query: 'all-credentials',
      keySource: 'client:alice',
    });
  });

  it('a client without a name is labelled unnamed', async () => {
    const table = new ClientTable();
    table.add('gw-nameless-key', unnamed);
    const inject = createPolicy('inject', deps({ clients: table }));
    const decision = await decide(inject, asClient(unnamed, 'gw-nameless-key'));
    assert.equal(decision.kind === 'forward' && decision.keySource, 'client:unnamed');
  });

  it('a client without a mapped key spends the server key', async () => {
    const inject = createPolicy('inject', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(inject, asClient(bob, BOB_KEY)), { kind: 'spend-server-key' });
  });

  it('keys of two different clients together are refused', async () => {
    const inject = createPolicy('inject', deps({ clients: clientTable() }));
    assert.deepEqual(
      await decide(inject, asClient(alice, ALICE_KEY, { conflictingClients: true })),
      reject('amp_client_unauthorized'),
    );
  });
});

describe('the server key stage (after inject)', () => {
  it('spends a resolved key in Authorization and X-Api-Key, labelled with where it came from', async () => {
    for (const source of ['config', 'function', 'env', 'secrets-file'] as const) {
      const stage = createServerKeyStage(deps({ serverKey: fixedKey('server-key', source) }));
      assert.deepEqual(await stage(REQ), {
        kind: 'forward',
        headers: { authorization: 'Bearer server-key', 'x-api-key': 'server-key' },
        query: 'all-credentials',
        keySource: source,
      });
    }
  });

  it('answers at once when the resolver does, and asynchronously when it does', async () => {
    const sync = createServerKeyStage(deps({ serverKey: fixedKey('k') }));
    assert.ok(!(sync(REQ) instanceof Promise));
    const async = createServerKeyStage(deps({ serverKey: async () => ({ key: 'k', source: 'function' }) }));
    const pending = async(REQ);
    assert.ok(pending instanceof Promise);
    assert.equal((await pending).kind, 'forward');
  });

  it('no key is amp_upstream_key_missing', async () => {
    const stage = createServerKeyStage(deps({ serverKey: fixedKey(undefined) }));
    assert.deepEqual(await stage(REQ), reject('amp_upstream_key_missing'));
  });

  it('a server key that holds a gateway key is never spent, however often it is asked for', async () => {
    let key = ALICE_KEY;
    const stage = createServerKeyStage(
      deps({ clients: clientTable(), serverKey: () => ({ key, source: 'env' }) }),
    );
    assert.deepEqual(await stage(REQ), reject('amp_upstream_key_conflict'));
    key = `Bearer ${BOB_KEY}`;
    assert.deepEqual(await stage(REQ), reject('amp_upstream_key_conflict'));
    key = 'clean-server-key';
    assert.equal((await stage(REQ)).kind, 'forward');
    assert.equal((await stage(REQ)).kind, 'forward', 'a remembered clean key');
    key = ALICE_KEY;
    assert.deepEqual(
      await stage(REQ),
      reject('amp_upstream_key_conflict'),
      'the remembered key is not a pass',
    );
  });
});

describe('passthrough', () => {
  it("forwards the user's own credential headers exactly as received, and the query as it came", async () => {
    const passthrough = createPolicy('passthrough', deps());
    const credentials = presented({
      headers: [
        header('authorization', '  bearer user-token '),
        header('x-api-key', 'user-key'),
        header('x-goog-api-key', 'user-goog-key'),
      ],
      authorizationToken: 'user-token',
    });
    assert.deepEqual(await decide(passthrough, credentials), {
      kind: 'forward',
      headers: {
        authorization: '  bearer user-token ',
        'x-api-key': 'user-key',
        'x-goog-api-key': 'user-goog-key',
      },
      query: 'none',
      keySource: 'user',
    });
  });

  it('a request without credentials is forwarded without any, spending no key', async () => {
    const passthrough = createPolicy('passthrough', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(passthrough, presented()), {
      kind: 'forward',
      headers: {},
      query: 'none',
      keySource: undefined,
    });
  });

  it('a credential other than Authorization is forwarded but spends no key of ours', async () => {
    const passthrough = createPolicy('passthrough', deps());
    const decision = await decide(passthrough, presented({ headers: [header('x-api-key', 'user-key')] }));
    assert.deepEqual(decision, {
      kind: 'forward',
      headers: { 'x-api-key': 'user-key' },
      query: 'none',
      keySource: undefined,
    });
  });

  it("a gateway key is swapped for the client's mapped Amp key", async () => {
    const passthrough = createPolicy('passthrough', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(passthrough, asClient(alice, ALICE_KEY)), {
      kind: 'forward',
      headers: { authorization: 'Bearer alice-amp-key' },
      query: 'none',
      keySource: 'client:alice',
    });
  });

  it('a gateway key without a mapped key is refused', async () => {
    const passthrough = createPolicy('passthrough', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(passthrough, asClient(bob, BOB_KEY)), reject('amp_token_required'));
  });

  it("the user's token passes while a gateway key beside it is dropped", async () => {
    const passthrough = createPolicy('passthrough', deps({ clients: clientTable() }));
    const credentials = presented({
      headers: [header('authorization', 'Bearer user-token'), header('x-api-key', BOB_KEY, true)],
      authorizationToken: 'user-token',
      client: bob,
      gatewayKeyPresented: true,
    });
    assert.deepEqual(await decide(passthrough, credentials), {
      kind: 'forward',
      headers: { authorization: 'Bearer user-token' },
      query: 'none',
      keySource: 'user',
    });
  });

  it('keys of two different clients together are refused', async () => {
    const passthrough = createPolicy('passthrough', deps({ clients: clientTable() }));
    assert.deepEqual(
      await decide(passthrough, asClient(alice, ALICE_KEY, { conflictingClients: true })),
      reject('amp_client_unauthorized'),
    );
  });

  it('never forwards a value marked as holding a gateway key', async () => {
    const passthrough = createPolicy('passthrough', deps({ clients: clientTable() }));
    const credentials = presented({
      headers: [
        header('authorization', `Bearer ${ALICE_KEY}`, true),
        header('x-api-key', `"${ALICE_KEY}"`, true),
        header('x-goog-api-key', `x ${ALICE_KEY}`, true),
      ],
      client: alice,
      gatewayKeyPresented: true,
    });
    const decision = await decide(passthrough, credentials);
    assert.equal(decision.kind, 'forward');
    assert.ok(!JSON.stringify(decision).includes(ALICE_KEY));
  });
});

describe('dual-token', () => {
  it('the Amp token becomes Authorization; every other credential stays behind', async () => {
    const dual = createPolicy('dual-token', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(dual, asClient(bob, BOB_KEY, { tokenHeaderValue: 'user-amp-token' })), {
      kind: 'forward',
      headers: { authorization: 'Bearer user-amp-token' },
      query: 'all-credentials',
      keySource: 'user',
    });
  });

  it("the Amp token wins over the client's mapped key", async () => {
    const dual = createPolicy('dual-token', deps({ clients: clientTable() }));
    const decision = await decide(dual, asClient(alice, ALICE_KEY, { tokenHeaderValue: 'user-amp-token' }));
    assert.equal(decision.kind === 'forward' && decision.headers.authorization, 'Bearer user-amp-token');
  });

  it("without an Amp token the client's mapped key is used", async () => {
    const dual = createPolicy('dual-token', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(dual, asClient(alice, ALICE_KEY)), {
      kind: 'forward',
      headers: { authorization: 'Bearer alice-amp-key' },
      query: 'all-credentials',
      keySource: 'client:alice',
    });
  });

  it('without an Amp token or a mapped key the request is refused', async () => {
    const dual = createPolicy('dual-token', deps({ clients: clientTable() }));
    assert.deepEqual(await decide(dual, asClient(bob, BOB_KEY)), reject('amp_token_required'));
  });

  it('with gateway clients, a caller without a known key is refused even with an Amp token', async () => {
    const dual = createPolicy('dual-token', deps({ clients: clientTable() }));
    assert.deepEqual(
      await decide(dual, presented({ tokenHeaderValue: 'user-amp-token' })),
      reject('amp_client_unauthorized'),
    );
  });

  it('keys of two different clients together are refused', async () => {
    const dual = createPolicy('dual-token', deps({ clients: clientTable() }));
    assert.deepEqual(
      await decide(dual, asClient(alice, ALICE_KEY, { conflictingClients: true, tokenHeaderValue: 't' })),
      reject('amp_client_unauthorized'),
    );
  });

  it('without gateway clients, the Amp token alone is enough, and nothing at all is refused', async () => {
    const dual = createPolicy('dual-token', deps());
    const decision = await decide(
      dual,
      presented({
        headers: [header('authorization', 'Bearer anything')],
        authorizationToken: 'anything',
        tokenHeaderValue: 'amp',
      }),
    );
    assert.deepEqual(decision, {
      kind: 'forward',
      headers: { authorization: 'Bearer amp' },
      query: 'all-credentials',
      keySource: 'user',
    });
    assert.deepEqual(await decide(dual, presented()), reject('amp_token_required'));
  });
});

describe('custom policies', () => {
  function custom(policy: AmpCustomPolicy, overrides: Partial<PolicyDependencies> = {}) {
    return createPolicy(
      policy,
      deps({ clients: clientTable(), serverKey: fixedKey('server-key'), ...overrides }),
    );
  }

  it('get the group, the client (name and mapped key only) and the user and Amp tokens', async () => {
    const contexts: Omit<AmpPolicyContext, 'serverKey'>[] = [];
    const policy = custom(
      (_req, { serverKey: _, ...context }) => {
        contexts.push(context);
        return undefined;
      },
      { group: 'actors' },
    );
    await decide(
      policy,
      asClient(alice, ALICE_KEY, { authorizationToken: undefined, tokenHeaderValue: 'amp' }),
    );
    await decide(policy, presented({ authorizationToken: 'user' }));
    assert.deepEqual(contexts, [
      {
        group: 'actors',
        client: { name: 'alice', upstreamKey: 'alice-amp-key' },
        authorizationToken: undefined,
        tokenHeaderValue: 'amp',
      },
      { group: 'actors', client: undefined, authorizationToken: 'user', tokenHeaderValue: undefined },
    ]);
  });

  it("sets the headers it returns, names lower-cased, null removing one; the query's credentials are dropped", async () => {
    const policy = custom(async (req, context) => ({
      headers: { Authorization: `Bearer ${await context.serverKey()}`, 'X-Team': 'blue', 'User-Agent': null },
    }));
    assert.deepEqual(await decide(policy, presented()), {
      kind: 'forward',
      headers: { authorization: 'Bearer server-key', 'x-team': 'blue', 'user-agent': null },
      query: 'all-credentials',
      keySource: 'custom',
    });
  });

  it('a policy that returns nothing forwards no credential at all', async () => {
    for (const result of [undefined, {}]) {
      const policy = custom(() => result);
      assert.deepEqual(await decide(policy, presented()), {
        kind: 'forward',
        headers: {},
        query: 'all-credentials',
        keySource: 'custom',
      });
    }
  });

  it('can refuse with an error code', async () => {
    const policy = custom(() => ({ reject: 'amp_token_required' }));
    assert.deepEqual(await decide(policy, presented()), reject('amp_token_required'));
  });

  it('a gateway key in a header value or name, in any disguise, stops the request', async () => {
    const basic = Buffer.from(`user:${ALICE_KEY}`).toString('base64');
    const disguised: Record<string, string | null>[] = [
      { authorization: ALICE_KEY },
      { authorization: `Bearer ${BOB_KEY}` },
      { 'x-note': `"${ALICE_KEY}"` },
      { authorization: `Basic ${basic}` },
      { 'x-note': encodeURIComponent(`k=${ALICE_KEY}`).replace(/-/g, '%2D') },
      { [ALICE_KEY]: 'x' },
      { [ALICE_KEY]: null },
    ];
    for (const headers of disguised) {
      const policy = custom(() => ({ headers }));
      assert.deepEqual(
        await decide(policy, presented()),
        reject('amp_policy_error'),
        JSON.stringify(headers),
      );
    }
  });

  it('a server key that is a gateway key is not handed out, and the request fails', async () => {
    const handedOut: (string | undefined)[] = [];
    const policy = custom(
      async (_req, context) => {
        handedOut.push(await context.serverKey());
        return { headers: { authorization: 'Bearer fine' } };
      },
      { serverKey: fixedKey(BOB_KEY, 'env') },
    );
    assert.deepEqual(await decide(policy, presented()), reject('amp_upstream_key_conflict'));
    assert.deepEqual(handedOut, [undefined]);
  });

  it('no server key is undefined for the policy, which decides what follows', async () => {
    const policy = custom(
      async (_req, context) => ({
        headers: { authorization: `Bearer ${(await context.serverKey()) ?? 'own'}` },
      }),
      { serverKey: fixedKey(undefined) },
    );
    const decision = await decide(policy, presented());
    assert.equal(decision.kind === 'forward' && decision.headers.authorization, 'Bearer own');
  });

  it('the server key is resolved only when the policy asks for it', async () => {
    const policy = custom(() => ({ headers: { authorization: 'Bearer mine' } }), {
      serverKey: NO_SERVER_KEY,
    });
    assert.equal((await decide(policy, presented())).kind, 'forward');
  });
});
