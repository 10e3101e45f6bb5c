import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { AmpProxyConfigError } from '../src/index.js';
import { compileModelMappings } from '../src/provider/model-mappings.js';
import {
  routeProviderCall,
  type ProviderRoute,
  type ProviderRoutingConfig,
} from '../src/provider/provider-routing.js';
import type { LocalProvider } from '../src/types.js';

describe('model mappings', () => {
  const map = compileModelMappings([
    { from: 'claude-opus-4', to: 'claude-sonnet-4' },
    { from: '^gpt-5.*$', to: 'gpt-5-mini', regex: true },
    { from: 'gpt-5-codex', to: 'o4-mini' },
    { from: 'gemini-.*-pro', to: 'gemini-2.5-flash(low)', regex: true },
    { from: '^claude-.*$', to: 'claude-haiku', regex: true },
  ])!;

  const table: [requested: string, expected: string | undefined][] = [
    ['claude-opus-4', 'claude-sonnet-4'],
    ['CLAUDE-OPUS-4', 'claude-sonnet-4'], // exact rules ignore case
    ['gpt-5-codex', 'o4-mini'], // exact wins over an earlier regex
    ['GPT-5.1', 'gpt-5-mini'], // regex rules ignore case
    ['gpt-5(high)', 'gpt-5-mini(high)'], // the thinking suffix carries over
    ['gpt-5(8192)', 'gpt-5-mini(8192)'],
    ['gpt-5()', 'gpt-5-mini'], // an empty suffix is dropped
    ['gemini-2.5-pro(high)', 'gemini-2.5-flash(low)'], // the target's own suffix wins
    ['claude-opus-4(high)', 'claude-sonnet-4(high)'],
    ['claude-3-haiku', 'claude-haiku'], // first matching regex, in order
    ['claude-haiku', undefined], // mapping onto itself is no mapping
    ['o3', undefined],
  ];
  for (const [requested, expected] of table) {
    it(`${requested} -> ${String(expected)}`, () => assert.equal(map(requested), expected));
  }

  it('invalid rules are refused in the factory, naming the rule', () => {
    assert.throws(
      () => compileModelMappings([{ from: '(', to: 'x', regex: true }]),
      (error: unknown) => {
        assert.ok(error instanceof AmpProxyConfigError);
        assert.equal(error.option, 'modelMappings[0].from');
        return true;
      },
    );
    assert.throws(() => compileModelMappings([{ from: 'a' }]), /modelMappings\[0\]\.to/);
    assert.throws(
      () => compileModelMappings([{ from: 'a', to: 'b', regexp: true }]),
      /modelMappings\[0\]\.regexp/,
    );
    assert.equal(compileModelMappings([]), undefined);
  });
});

type FakeRequest = IncomingMessage & { body?: unknown };

/** A request held in memory: routing reads it exactly as it reads a socket's. */
function fakeRequest(method: string, body?: string | Buffer, headers: IncomingHttpHeaders = {}): FakeRequest {
  const stream = Readable.from(body === undefined ? [] : [Buffer.from(body)]);
  return Object.assign(stream, { method, headers }) as unknown as FakeRequest;
}

/** A request whose stream a host body parser (`express.json()`) already turned into `req.body`. */
async function parsedRequest(body: unknown): Promise<FakeRequest> {
  const req = fakeRequest('POST', JSON.stringify(body), { 'content-type': 'application/json' });
  req.resume();
  await once(req, 'end');
  req.body = body;
  return req;
}

const MESSAGES = '/api/provider/anthropic/v1/messages';
const GEMINI = (model: string) => `/api/provider/google/v1beta/models/${model}:streamGenerateContent`;

function config(overrides: Partial<ProviderRoutingConfig> = {}): ProviderRoutingConfig {
  return {
    mapModel: compileModelMappings([
      { from: 'claude-opus-4', to: 'claude-sonnet-4' },
      { from: 'gemini-2.5-pro', to: 'gemini-2.5-flash' },
    ]),
    localProvider: undefined,
    forceModelMappings: false,
    maxBodyBytes: 1024,
    ...overrides,
  };
}

function expectKind<K extends ProviderRoute['kind']>(
  route: ProviderRoute,
  kind: K,
): Extract<ProviderRoute, { kind: K }> {
  assert.equal(route.kind, kind);
  return route as Extract<ProviderRoute, { kind: K }>;
}

/** A local provider serving `served`, which records every model it was asked about. */
function localServing(...served: string[]): { provider: LocalProvider; asked: string[] } {
  const asked: string[] = [];
  const provider: LocalProvider = (model) => {
    asked.push(model);
    return served.includes(model) ? (req: FakeRequest) => req.body : undefined;
  };
  return { provider, asked };
}

describe('provider routing decisions', () => {
  it('maps a model named in the body: the body names the target, every other byte in its place', async () => {
    const req = fakeRequest(
      'POST',
      '{"model":"claude-opus-4","max_tokens":5,"tools":[{"name":"Read_File"},{"type":"function","function":{"name":"Bash"}}]}',
    );
    const route = expectKind(await routeProviderCall(req, MESSAGES, config()), 'mapped');
    assert.equal(route.from, 'claude-opus-4');
    assert.equal(route.to, 'claude-sonnet-4');
    assert.equal(route.path, MESSAGES);
    assert.equal(
      Buffer.concat(route.body!.chunks).toString(),
      '{"model":"claude-sonnet-4","max_tokens":5,"tools":[{"name":"Read_File"},{"type":"function","function":{"name":"Bash"}}]}',
    );
    assert.equal(route.body?.asReceived, false);
    assert.equal(route.rewrite.requestedModel, 'claude-opus-4');
    assert.deepEqual(
      route.rewrite.toolNames,
      new Map([
        ['read_file', 'Read_File'],
        ['bash', 'Bash'],
      ]),
    );
  });

  it('finds and replaces a model and tool names cut across the pieces the body arrives in', async () => {
    const text = '{"tools":[{"name":"Read_File"}], "model" : "claude-opus-4" ,"n":"é"}';
    for (const size of [1, 2, 3, 7]) {
      const bytes = Buffer.from(text);
      const pieces = Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) =>
        bytes.subarray(i * size, (i + 1) * size),
      );
      const req = Object.assign(Readable.from(pieces), {
        method: 'POST',
        headers: {},
      }) as unknown as FakeRequest;
      const route = expectKind(await routeProviderCall(req, MESSAGES, config()), 'mapped');
      assert.equal(
        Buffer.concat(route.body!.chunks).toString(),
        text.replace('"claude-opus-4"', '"claude-sonnet-4"'),
        `pieces of ${size}`,
      );
      assert.deepEqual(route.rewrite.toolNames, new Map([['read_file', 'Read_File']]));
    }
  });

  it('maps a Gemini model in the path, percent-encoded or not, and leaves the body unread', async () => {
    for (const requested of ['gemini-2.5-pro', 'gemini%2D2.5-pro']) {
      const req = fakeRequest('POST', '{"contents":[]}');
      const route = expectKind(await routeProviderCall(req, GEMINI(requested), config()), 'mapped');
      assert.equal(route.path, GEMINI('gemini-2.5-flash'));
      assert.equal(route.rewrite.requestedModel, 'gemini-2.5-pro');
      assert.equal(route.body, undefined);
      assert.equal(req.readableDidRead, false);
    }
  });

  it('a call no rule maps goes upstream with its body as received, compressed or not', async () => {
    for (const [body, headers] of [
      ['{"model":"o3",  "x": 1}', {}],
      [gzipSync('{"model":"o3"}'), { 'content-encoding': 'gzip' }],
    ] as const) {
      const route = await routeProviderCall(fakeRequest('POST', body, headers), MESSAGES, config());
      assert.deepEqual(route, { kind: 'upstream', body: { chunks: [Buffer.from(body)], asReceived: true } });
    }
  });

  it('a body naming no model, not a JSON object, broken or in an unknown coding goes upstream as received', async () => {
    for (const [body, headers] of [
      ['{"x":1}', {}],
      ['[{"model":"claude-opus-4"}]', {}],
      ['not json', {}],
      ['{"model":"claude-opus-4"}', { 'content-encoding': 'zstd' }],
      ['{"model":"claude-opus-4"}', { 'content-encoding': 'gzip' }],
    ] as const) {
      const route = await routeProviderCall(fakeRequest('POST', body, headers), MESSAGES, config());
      assert.deepEqual(route, { kind: 'upstream', body: { chunks: [Buffer.from(body)], asReceived: true } });
    }
  });

  it('a method without a body is not read', async () => {
    const req = fakeRequest('GET', '{"model":"claude-opus-4"}');
    assert.deepEqual(await routeProviderCall(req, MESSAGES, config()), { kind: 'upstream', body: undefined });
    assert.equal(req.readableDidRead, false);
  });

  it('a body over maxBodyBytes, as sent or once decoded, is too large', async () => {
    const padded = JSON.stringify({ model: 'claude-opus-4', pad: 'x'.repeat(2000) });
    assert.deepEqual(await routeProviderCall(fakeRequest('POST', padded), MESSAGES, config()), {
      kind: 'refused',
      error: 'amp_body_too_large',
    });
    const zipped = gzipSync(padded);
    assert.ok(zipped.length < 1024);
    const req = fakeRequest('POST', zipped, { 'content-encoding': 'gzip' });
    assert.deepEqual(await routeProviderCall(req, MESSAGES, config()), {
      kind: 'refused',
      error: 'amp_body_too_large',
    });
  });

  it("a body a host parser read is mapped from req.body, which routing leaves as the host's", async () => {
    const parsed = { model: 'claude-opus-4', n: 1 };
    const mapped = expectKind(
      await routeProviderCall(await parsedRequest(parsed), MESSAGES, config()),
      'mapped',
    );
    assert.deepEqual(mapped.body, {
      chunks: [Buffer.from('{"model":"claude-sonnet-4","n":1}')],
      asReceived: false,
    });
    assert.deepEqual(parsed, { model: 'claude-opus-4', n: 1 });
  });

  it('a body a host parser read goes upstream unmapped with nothing held: it is rebuilt like any consumed body', async () => {
    for (const parsed of [{ model: 'o3' }, { n: 1 }, [1, 2]]) {
      const route = await routeProviderCall(await parsedRequest(parsed), MESSAGES, config());
      assert.deepEqual(route, { kind: 'upstream', body: undefined });
    }
  });

  describe('local providers', () => {
    const call = '{"model":"claude-opus-4"}';

    it('without forceModelMappings, a model served locally is served as requested, before any mapping', async () => {
      const { provider, asked } = localServing('claude-opus-4', 'claude-sonnet-4');
      const route = await routeProviderCall(
        fakeRequest('POST', call),
        MESSAGES,
        config({ localProvider: provider }),
      );
      assert.equal(expectKind(route, 'local').model, 'claude-opus-4');
      assert.deepEqual(asked, ['claude-opus-4']);
    });

    it('with forceModelMappings, the mapped model is the one served locally', async () => {
      const { provider, asked } = localServing('claude-opus-4', 'claude-sonnet-4');
      const route = expectKind(
        await routeProviderCall(
          fakeRequest('POST', call),
          MESSAGES,
          config({ localProvider: provider, forceModelMappings: true }),
        ),
        'local',
      );
      assert.equal(route.model, 'claude-sonnet-4');
      assert.equal(route.rewrite.requestedModel, 'claude-opus-4');
      assert.deepEqual(asked, ['claude-sonnet-4']);
    });

    it('with forceModelMappings, a mapped model not served locally goes upstream mapped', async () => {
      const { provider, asked } = localServing('claude-opus-4');
      const route = await routeProviderCall(
        fakeRequest('POST', call),
        MESSAGES,
        config({ localProvider: provider, forceModelMappings: true }),
      );
      assert.equal(expectKind(route, 'mapped').to, 'claude-sonnet-4');
      assert.deepEqual(asked, ['claude-sonnet-4']);
    });

    it('with forceModelMappings, a model no rule maps can still be served locally', async () => {
      const { provider, asked } = localServing('local-llama');
      const route = await routeProviderCall(
        fakeRequest('POST', '{"model":"local-llama"}'),
        MESSAGES,
        config({ localProvider: provider, forceModelMappings: true }),
      );
      assert.equal(expectKind(route, 'local').model, 'local-llama');
      assert.deepEqual(asked, ['local-llama']);
    });

    it('the handler finds the body naming the model it serves in req.body, set only when it runs', async () => {
      const { provider } = localServing('claude-sonnet-4');
      const parsed = { model: 'claude-opus-4', stream: true };
      const req = await parsedRequest(parsed);
      const route = expectKind(
        await routeProviderCall(req, MESSAGES, config({ localProvider: provider, forceModelMappings: true })),
        'local',
      );
      assert.equal(req.body, parsed, 'routing changed req.body');
      const seen: unknown = route.handler(req, {} as ServerResponse, () => undefined);
      assert.deepEqual(seen, { model: 'claude-sonnet-4', stream: true });
      assert.deepEqual(parsed, { model: 'claude-opus-4', stream: true });
    });
  });
});
