import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { DECODED_FLOOR_BYTES } from '../src/http/body-encoding.js';
import { ampRouter, type AmpProxyOptions } from '../src/index.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { send } from './support/client.js';
import { startGatewayApp } from './support/gateway-harness.js';
import { headerValue } from './support/raw-http.js';
import { startRawUpstream, type RawUpstream } from './support/raw-upstream.js';

const MESSAGES = '/api/provider/anthropic/v1/messages';
const MAPPINGS = [
  { from: 'claude-opus-4', to: 'claude-sonnet-4' },
  { from: 'quote-me', to: 'sonnet "q" \\ é\u2028😀' },
];

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** `{"model":…,"messages":[{},{},…]}`: one object every 3 bytes, the shape of the bomb. */
function manyObjects(bytes: number, model = 'claude-opus-4'): Buffer {
  const head = `{"model":"${model}","messages":[{}`;
  return Buffer.from(`${head}${',{}'.repeat(Math.floor((bytes - head.length - 2) / 3))}]}`);
}

function errorOf(res: { json(): unknown }): string {
  return (res.json() as { error: string }).error;
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`provider bodies are read with bounded work (${name})`, () => {
    let upstream: RawUpstream;
    const gateways: { close(): Promise<void> }[] = [];

    before(async () => {
      upstream = await startRawUpstream();
    });
    after(async () => {
      await Promise.all(gateways.map((gateway) => gateway.close()));
      await upstream.close();
    });

    async function gateway(options: AmpProxyOptions = {}): Promise<string> {
      const router = ampRouter({
        upstream: upstream.url,
        upstreamKey: 'server-key',
        modelMappings: MAPPINGS,
        ...options,
      });
      const started = await startGatewayApp(express, router);
      gateways.push(started);
      return started.url;
    }

    async function post(url: string, body: Buffer | string, headers: Record<string, string> = {}) {
      const before = upstream.arrivals().length;
      const res = await send(`${url}${MESSAGES}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
      return {
        res,
        arrived: upstream
          .arrivals()
          .slice(before)
          .map(({ request }) => request),
      };
    }

    it('a mapped call reaches the upstream as the client wrote it, but for the model', async () => {
      const url = await gateway();
      // Spacing, key order, number spellings and escapes that a parse and re-serialisation would lose.
      const body =
        '{ "max_tokens" : 1.0e3,\n  "model":  "claude-opus-4" , "x":"caf\\u00e9 é \\/", "n": 10.50, ' +
        '"messages":[{"model":"claude-opus-4"}] }';
      const { res, arrived } = await post(url, body);
      assert.equal(res.status, 200);
      assert.equal(arrived.length, 1);
      const expected = body.replace('"claude-opus-4" ,', '"claude-sonnet-4" ,');
      assert.equal(arrived[0]!.body.toString('utf8'), expected);
      assert.equal(headerValue(arrived[0]!, 'content-length'), String(Buffer.byteLength(expected)));
    });

    it('a mapped name is escaped as JSON where it is spliced in', async () => {
      const url = await gateway();
      const body = '{"model":"quote-me","stream":false}';
      const { arrived } = await post(url, body);
      const received = arrived[0]!.body.toString('utf8');
      assert.equal(received, `{"model":${JSON.stringify(MAPPINGS[1]!.to)},"stream":false}`);
      assert.equal((JSON.parse(received) as { model: string }).model, MAPPINGS[1]!.to);
    });

    it('a compressed mapped call reaches the upstream decoded, but otherwise as written', async () => {
      const url = await gateway();
      const body = '{"model" :"claude-opus-4", "n":1.50}';
      const { arrived } = await post(url, gzipSync(body), { 'content-encoding': 'gzip' });
      assert.equal(arrived[0]!.body.toString('utf8'), '{"model" :"claude-sonnet-4", "n":1.50}');
      assert.equal(headerValue(arrived[0]!, 'content-encoding'), undefined);
    });

    it('a body naming its model twice is refused, whichever of them a parser would keep', async () => {
      const url = await gateway();
      for (const body of [
        '{"model":"o3","model":"claude-opus-4"}',
        '{"model":"claude-opus-4","mod\\u0065l":"o3"}',
        '{"model":"claude-opus-4","x":1,"model":null}',
      ]) {
        const { res, arrived } = await post(url, body);
        assert.equal(res.status, 400, body);
        assert.equal(errorOf(res), 'amp_body_ambiguous');
        assert.deepEqual(arrived, []);
      }
    });

    it('a body that inflates past the compression ratio is refused and the upstream receives nothing', async () => {
      const url = await gateway();
      for (const [coding, compress] of [
        ['gzip', gzipSync],
        ['br', brotliCompressSync],
      ] as const) {
        const bomb = compress(manyObjects(4 * 1024 * 1024));
        const { res, arrived } = await post(url, bomb, { 'content-encoding': coding });
        assert.equal(res.status, 413, coding);
        assert.equal(errorOf(res), 'amp_body_too_compressed');
        assert.deepEqual(arrived, []);
      }
      const overFloor = await post(url, gzipSync(manyObjects(2 * DECODED_FLOOR_BYTES)), {
        'content-encoding': 'gzip',
      });
      assert.equal(errorOf(overFloor.res), 'amp_body_too_compressed');
      // Under the floor any ratio is fine, and over it any ratio a real body has.
      const small = await post(url, gzipSync(manyObjects(DECODED_FLOOR_BYTES - 16)), {
        'content-encoding': 'gzip',
      });
      assert.equal(small.res.status, 200);
      assert.equal(small.arrived.length, 1);
      const text = JSON.stringify({
        model: 'o3',
        content: randomBytes(3 * DECODED_FLOOR_BYTES).toString('base64'),
      });
      const zipped = gzipSync(text);
      const large = await post(url, zipped, { 'content-encoding': 'gzip' });
      assert.equal(large.res.status, 200);
      assert.deepEqual(large.arrived[0]!.body, zipped); // no rule maps o3: it goes as it came
    });

    it('a local handler is not given a body with more values or nesting than it can be parsed with', async () => {
      let calls = 0;
      const url = await gateway({
        localProvider: (model) =>
          model === 'local-llama'
            ? (_req: unknown, res: ServerResponse) => {
                calls++;
                res.end('{}');
              }
            : undefined,
      });
      const many = manyObjects(400_000, 'local-llama');
      const deep = `{"model":"local-llama","x":${'['.repeat(200)}${']'.repeat(200)}}`;
      for (const body of [many, deep]) {
        const { res, arrived } = await post(url, body);
        assert.equal(res.status, 413);
        assert.equal(errorOf(res), 'amp_body_too_complex');
        assert.deepEqual(arrived, []);
      }
      assert.equal(calls, 0);
      // The same bodies go upstream when they name a model nobody serves locally: nothing parses them.
      const upstreamBound = await post(url, manyObjects(400_000, 'o3'));
      assert.equal(upstreamBound.res.status, 200);
      assert.equal(upstreamBound.arrived.length, 1);
      const ordinary = await post(url, '{"model":"local-llama","messages":[{"role":"user","content":"hi"}]}');
      assert.equal(ordinary.res.status, 200);
      assert.equal(calls, 1);
    });

    /**
     * The heap's peak growth while `body` goes through the gateway and reaches the upstream, over a
     * baseline taken after a full collection; sampled every millisecond and whenever bytes arrive.
     */
    async function heapGrowthOf(url: string, body: Buffer, contentType: string): Promise<number> {
      collectGarbage();
      const baseline = process.memoryUsage().heapUsed;
      let peak = baseline;
      const sample = (): void => void (peak = Math.max(peak, process.memoryUsage().heapUsed));
      const sampler = setInterval(sample, 1);
      try {
        const before = upstream.arrivals().length;
        const arrival = upstream.waitUntil(
          () => {
            sample();
            return upstream.arrivals().length > before;
          },
          'the body upstream',
          60_000,
        );
        const { res, arrived } = await post(url, body, { 'content-type': contentType });
        await arrival;
        sample();
        assert.equal(res.status, 200);
        assert.equal(arrived.length, 1);
        return peak - baseline;
      } finally {
        clearInterval(sampler);
      }
    }

    it('millions of objects in a mapped body do not grow the heap: the body is never parsed', async () => {
      const url = await gateway();
      const body = manyObjects(8 * 1024 * 1024);
      // The same bytes as a type that names no model stream through untouched: what the test's own
      // client and recording upstream cost, measured in this process on this runtime.
      const streamed = await heapGrowthOf(url, body, 'application/octet-stream');
      const mapped = await heapGrowthOf(url, body, 'application/json');
      assert.equal(upstream.arrivals().at(-1)!.request.body.length, body.length + 2); // opus-4 -> sonnet-4
      // A mapped body is held until its model is found, so it may cost its own size again (7 MB
      // more on Node 22 and 26); JSON.parse would hold ~2.8 million objects here, over 100 MB of
      // heap for 8 MB of text.
      assert.ok(
        mapped < streamed + 2 * body.length,
        `the heap grew by ${mapped} bytes for a ${body.length}-byte mapped body, ${streamed} streamed`,
      );
    });
  });
}
