// With model routing on (modelMappings or localProvider), only a body that can name a model (JSON,
// or no type given) is read whole: file uploads and multipart forms stream through untouched.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ampRouter } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const MiB = 1024 * 1024;
const digest = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('provider uploads with model routing on', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  /** Resolves when the first chunk of a body reaches the upstream. */
  let firstChunk: Promise<void>;
  let sawFirstChunk: () => void;
  const received: Buffer[] = [];

  before(async () => {
    upstream = await startUpstream(
      (req, res) => {
        req.once('data', () => sawFirstChunk());
        req.on('data', (chunk: Buffer) => received.push(chunk));
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"ok":true}');
        });
      },
      { streaming: true },
    );
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      modelMappings: [{ from: 'claude-opus-4', to: 'claude-sonnet-4' }],
      maxBodyBytes: 1000,
    });
    app = await listen((req, res) => router(req, res));
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  for (const contentType of ['application/octet-stream', 'multipart/form-data; boundary=----amp']) {
    it(`a 10 MiB ${contentType.split(';')[0]} upload reaches the upstream while it is still being sent, byte for byte`, async () => {
      received.length = 0;
      firstChunk = new Promise((resolve) => (sawFirstChunk = resolve));
      const body = randomBytes(10 * MiB);
      const done = new Promise<number>((resolve, reject) => {
        const req = request(
          `${app.url}/api/provider/openai/v1/files`,
          {
            method: 'POST',
            agent: false,
            headers: { 'content-type': contentType, 'content-length': body.length },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        // The first MiB alone: the upstream must see it before the rest is even written.
        req.write(body.subarray(0, MiB));
        firstChunk.then(() => req.end(body.subarray(MiB)), reject);
      });
      assert.equal(await done, 200);
      assert.equal(digest(Buffer.concat(received)), digest(body));
    });
  }

  it('a JSON body over maxBodyBytes is still read, and refused with 413', async () => {
    const req = request(`${app.url}/api/provider/anthropic/v1/messages`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json' },
    });
    req.end(JSON.stringify({ model: 'claude-opus-4', pad: 'x'.repeat(5000) }));
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    res.resume();
    assert.equal(res.statusCode, 413);
  });
});
