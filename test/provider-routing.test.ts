import assert from 'node:assert/strict';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ampRouter, type AmpMiddleware, type AmpProxyEvent, type AmpProxyOptions } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const MESSAGES = '/api/provider/anthropic/v1/messages';
type ModelRequest = IncomingMessage & { body?: { model?: string } };

function streamText(
  url: string,
  body: string,
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('provider routing by model', () => {
  let upstream: FakeUpstream;
  const apps: RunningApp[] = [];
  const events: AmpProxyEvent[] = [];

  before(async () => {
    upstream = await startUpstream((req, res, recorded) => {
      const text =
        recorded.headers['content-encoding'] === 'gzip'
          ? gunzipSync(recorded.body).toString()
          : recorded.body.toString();
      const model = req.url?.includes('/models/')
        ? req.url.split('/models/')[1]!.split(':')[0]
        : JSON.parse(text || '{}').model;
      if (req.url?.includes('stream')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // Events split mid-line across writes, several events in one write.
        res.write(
          `event: message_start\ndata: {"type":"message_start","message":{"model":"${model}"}}\n\nda`,
        );
        setTimeout(() => res.write('ta: {"type":"ping"}\n\ndata: {"type":"message_delta","model":"'), 20);
        setTimeout(() => res.end(`${model}"}\n\n`), 40);
        return;
      }
      const body = JSON.stringify({ id: 'msg_1', model, content: [{ type: 'text', text: 'hi' }] });
      if (req.url?.includes('gzip-response')) {
        const zipped = gzipSync(body);
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'content-length': zipped.length,
        });
        res.end(zipped);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await upstream.close();
  });

  async function gateway(
    options: AmpProxyOptions,
    setup?: (router: AmpMiddleware) => Parameters<typeof listen>[0],
  ) {
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      onProxyEvent: (event) => events.push(event),
      ...options,
    });
    const app = await listen(setup ? setup(router) : (req, res) => router(req, res));
    apps.push(app);
    return app;
  }

  const mappings = [
    { from: 'claude-opus-4', to: 'claude-sonnet-4' },
    { from: 'gemini-2.5-pro', to: 'gemini-2.5-flash' },
  ];

  it('sends a mapped model upstream and restores the requested name in the JSON response', async () => {
    const app = await gateway({ modelMappings: mappings });
    upstream.requests.length = 0;
    events.length = 0;
    const body = JSON.stringify({
      model: 'claude-opus-4',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'é' }],
    });
    const res = await send(`${app.url}${MESSAGES}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const seen = upstream.only();
    assert.equal(JSON.parse(seen.body.toString()).model, 'claude-sonnet-4');
    assert.equal(Number(seen.headers['content-length']), seen.body.length);
    assert.deepEqual(res.json(), {
      id: 'msg_1',
      model: 'claude-opus-4',
      content: [{ type: 'text', text: 'hi' }],
    });
    assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const end = events.find((e) => e.type === 'request-end');
    assert.equal(end?.type === 'request-end' && end.route, 'mapped:claude-opus-4->claude-sonnet-4');
  });

  it('restores the model in every SSE event, events split across chunks', async () => {
    const app = await gateway({ modelMappings: mappings });
    const { text, headers } = await streamText(
      `${app.url}${MESSAGES}?stream`,
      '{"model":"claude-opus-4","stream":true}',
    );
    assert.equal(
      text,
      'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-opus-4"}}\n\n' +
        'data: {"type":"ping"}\n\ndata: {"type":"message_delta","model":"claude-opus-4"}\n\n',
    );
    assert.equal(headers['content-length'], undefined);
  });

  it('reads gzip-encoded request bodies and decodes compressed responses it rewrites', async () => {
    const app = await gateway({ modelMappings: mappings });
    upstream.requests.length = 0;
    const res = await send(`${app.url}${MESSAGES}?gzip-response`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync('{"model":"claude-opus-4"}'),
    });
    const seen = upstream.only();
    assert.equal(seen.headers['content-encoding'], undefined);
    assert.deepEqual(JSON.parse(seen.body.toString()), { model: 'claude-sonnet-4' });
    assert.equal(res.headers['content-encoding'], undefined);
    assert.equal((res.json() as { model: string }).model, 'claude-opus-4');
  });

  it('maps the model in Gemini paths', async () => {
    const app = await gateway({ modelMappings: mappings });
    upstream.requests.length = 0;
    const res = await send(
      `${app.url}/api/provider/google/v1beta/models/gemini-2.5-pro:generateContent?alt=json`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"contents":[]}',
      },
    );
    assert.equal(
      upstream.only().url,
      '/api/provider/google/v1beta/models/gemini-2.5-flash:generateContent?alt=json',
    );
    assert.equal((res.json() as { model: string }).model, 'gemini-2.5-pro');
    upstream.requests.length = 0;
    await send(
      `${app.url}/api/provider/google/v1beta1/publishers/google/models/gemini-2.5-pro:streamGenerateContent`,
      {
        method: 'POST',
        body: '{}',
      },
    );
    assert.equal(
      upstream.only().url,
      '/api/provider/google/v1beta1/publishers/google/models/gemini-2.5-flash:streamGenerateContent',
    );
  });

  it('an unmapped call goes upstream byte for byte, gzip included, and its response untouched', async () => {
    const app = await gateway({ modelMappings: mappings });
    upstream.requests.length = 0;
    const zipped = gzipSync('{"model":"o3",  "x": 1}');
    await send(`${app.url}${MESSAGES}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: zipped,
    });
    const seen = upstream.only();
    assert.deepEqual(seen.body, zipped);
    assert.equal(seen.headers['content-encoding'], 'gzip');
    assert.equal(Number(seen.headers['content-length']), zipped.length);
  });

  it('a body over maxBodyBytes gets 413 and is never forwarded', async () => {
    const app = await gateway({ modelMappings: mappings, maxBodyBytes: 1000 });
    upstream.requests.length = 0;
    const res = await send(`${app.url}${MESSAGES}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-opus-4', pad: 'x'.repeat(5000) }),
    });
    assert.equal(res.status, 413);
    assert.equal((res.json() as { error: string }).error, 'amp_body_too_large');
    assert.equal(upstream.requests.length, 0);
    const bomb = await send(`${app.url}${MESSAGES}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify({ model: 'x', pad: ' '.repeat(100_000) })),
    });
    assert.equal(bomb.status, 413);
  });

  it('without mappings or a local provider, bodies are not read at all', async () => {
    const app = await gateway({ maxBodyBytes: 10 });
    upstream.requests.length = 0;
    const res = await send(`${app.url}${MESSAGES}`, {
      method: 'POST',
      body: JSON.stringify({ model: 'claude-opus-4', pad: 'x'.repeat(100) }),
    });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(upstream.only().body.toString()).model, 'claude-opus-4');
  });

  describe('local providers', () => {
    const localStream = (_model: string) => (req: ModelRequest, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: {"type":"message_start","message":{"model":"${req.body?.model}"}}\n\n`);
      res.write('data: {"type":"content_block_start","content_block":{"type":"thinking","thinking":""}}\n\n');
      setTimeout(() => {
        res.write(
          'data: {"type":"content_block_start","content_block":{"type":"tool_use","name":"read_file"}}\n\n',
        );
        res.end();
      }, 30);
    };

    it('serves a model in the host app, streaming, with signature and tool-name casing fixed, spending no key', async () => {
      const app = await gateway({
        upstreamKey: () => undefined,
        localProvider: (model) => (model === 'local-llama' ? localStream(model) : undefined),
      });
      upstream.requests.length = 0;
      const started = Date.now();
      const firstAt: number[] = [];
      const text = await new Promise<string>((resolve) => {
        const req = request(
          `${app.url}${MESSAGES}`,
          { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
          (res) => {
            let out = '';
            res.on('data', (chunk) => {
              firstAt.push(Date.now() - started);
              out += chunk;
            });
            res.on('end', () => resolve(out));
          },
        );
        req.end(JSON.stringify({ model: 'local-llama', tools: [{ name: 'Read_File' }] }));
      });
      assert.equal(
        text,
        'data: {"type":"message_start","message":{"model":"local-llama"}}\n\n' +
          'data: {"type":"content_block_start","content_block":{"type":"thinking","thinking":"","signature":""}}\n\n' +
          'data: {"type":"content_block_start","content_block":{"type":"tool_use","name":"Read_File"}}\n\n',
      );
      assert.ok(firstAt.length >= 2, 'the local stream arrived in one piece');
      assert.equal(upstream.requests.length, 0);
      // Other models still need the server key, which is missing here.
      const upstreamCall = await send(`${app.url}${MESSAGES}`, { method: 'POST', body: '{"model":"o3"}' });
      assert.equal(upstreamCall.status, 503);
    });

    it('a mapped model served locally answers with the requested name (forceModelMappings)', async () => {
      const seenModels: string[] = [];
      const app = await gateway({
        modelMappings: [{ from: 'claude-opus-4', to: 'local-llama' }],
        forceModelMappings: true,
        localProvider: (model) =>
          model === 'local-llama' || model === 'claude-opus-4'
            ? (req: ModelRequest, res: ServerResponse) => {
                seenModels.push(String(req.body?.model));
                res.setHeader('content-type', 'application/json');
                res.end(JSON.stringify({ model: req.body?.model, content: [] }));
              }
            : undefined,
      });
      const res = await send(`${app.url}${MESSAGES}`, { method: 'POST', body: '{"model":"claude-opus-4"}' });
      assert.deepEqual(res.json(), { model: 'claude-opus-4', content: [] });
      assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body));
      assert.deepEqual(seenModels, ['local-llama']);
    });

    it('without forceModelMappings, a model served locally is served as requested', async () => {
      const seenModels: string[] = [];
      const app = await gateway({
        modelMappings: [{ from: 'claude-opus-4', to: 'local-llama' }],
        localProvider: () => (req: ModelRequest, res: ServerResponse) => {
          seenModels.push(String(req.body?.model));
          res.end('{}');
        },
      });
      await send(`${app.url}${MESSAGES}`, { method: 'POST', body: '{"model":"claude-opus-4"}' });
      assert.deepEqual(seenModels, ['claude-opus-4']);
    });

    it('a body neither JSON nor an event stream passes untouched, in the encoding it was written in', async () => {
      const app = await gateway({
        localProvider: () => (_req: ModelRequest, res: ServerResponse) => {
          res.setHeader('content-type', 'text/plain');
          res.write('aGVsbG8g', 'base64');
          res.end('d29ybGQ=', 'base64');
        },
      });
      const res = await send(`${app.url}${MESSAGES}`, { method: 'POST', body: '{"model":"m"}' });
      assert.equal(res.body, 'hello world');
    });

    it('a failing local handler gives 500 amp_local_provider_error, not a crash', async () => {
      const app = await gateway({
        localProvider: () => async () => {
          throw new Error('model server down');
        },
      });
      const res = await send(`${app.url}${MESSAGES}`, { method: 'POST', body: '{"model":"m"}' });
      assert.equal(res.status, 500);
      assert.equal((res.json() as { error: string }).error, 'amp_local_provider_error');
    });
  });

  for (const [name, express] of EXPRESS_VERSIONS) {
    it(`works behind express.json() (${name})`, async () => {
      const app = await gateway({ modelMappings: mappings }, (router) => {
        const host = express();
        host.use(express.json());
        host.use(router);
        return host;
      });
      upstream.requests.length = 0;
      const res = await send(`${app.url}${MESSAGES}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: gzipSync('{"model":"claude-opus-4"}'),
      });
      assert.equal((res.json() as { model: string }).model, 'claude-opus-4');
      const seen = upstream.only();
      assert.deepEqual(JSON.parse(seen.body.toString()), { model: 'claude-sonnet-4' });
      assert.equal(seen.headers['content-encoding'], undefined);
      assert.equal(Number(seen.headers['content-length']), seen.body.length);
    });

    it(`an unmapped call behind express.json() goes upstream rebuilt from req.body (${name})`, async () => {
      const app = await gateway({ modelMappings: mappings }, (router) => {
        const host = express();
        host.use(express.json());
        host.use(router);
        return host;
      });
      upstream.requests.length = 0;
      await send(`${app.url}${MESSAGES}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{ "model": "o3", "n": 1 }',
      });
      const seen = upstream.only();
      assert.equal(seen.body.toString(), '{"model":"o3","n":1}');
      assert.equal(Number(seen.headers['content-length']), seen.body.length);
    });
  }
});
