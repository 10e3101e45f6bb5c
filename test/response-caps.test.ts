import assert from 'node:assert/strict';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { rewriteLocalResponse } from '../src/provider/local-response.js';
import type { RewriteSpec } from '../src/provider/response-rewriter.js';
import { forwardResponse, type ResponseCaps } from '../src/proxy/response.js';
import { listen, type RunningApp } from './support/apps.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

/**
 * What one response may make the gateway decode or hold is capped. The caps are not options, so
 * these tests drive the units that apply them (`forwardResponse`, `rewriteLocalResponse`) with
 * small caps, on real sockets, instead of pushing hundreds of megabytes through the middleware.
 */
const KB = 1024;
const CAPS: ResponseCaps = { decodedBytes: 64 * KB, rewrittenJsonBytes: 4 * KB };
const SPEC: RewriteSpec = { requestedModel: 'requested-model', toolNames: new Map() };

interface Outcome {
  status: number | undefined;
  body: string;
  headers: IncomingMessage['headers'];
  cut: boolean;
}

function fetchOutcome(url: string): Promise<Outcome> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let headers: IncomingMessage['headers'] = {};
    let body = '';
    const cut = (): void => resolve({ status, body, headers, cut: true });
    const req = request(url, { agent: false }, (res) => {
      ({ statusCode: status, headers } = res);
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status, body, headers, cut: false }));
      res.on('error', cut);
      res.on('aborted', cut);
    });
    req.on('error', cut);
    req.end();
  });
}

/** A JSON body naming the served model, padded to about `size` bytes. */
function jsonOfSize(size: number): string {
  return JSON.stringify({ model: 'served-model', pad: 'x'.repeat(size) });
}

const sizeOf = (req: IncomingMessage): number =>
  Number(new URL(req.url ?? '/', 'http://local').searchParams.get('size'));

describe('response caps', () => {
  let upstream: FakeUpstream;
  let forwarding: RunningApp;
  let local: RunningApp;
  before(async () => {
    upstream = await startUpstream((req, res) => {
      const size = sizeOf(req);
      if (req.url?.startsWith('/undeclared-gzip')) {
        const body = gzipSync(Buffer.alloc(size));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
        return;
      }
      const body = jsonOfSize(size);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    // What the group proxy does with an upstream response, with small caps.
    forwarding = await listen((req, res) => {
      const rewrite = req.url?.startsWith('/mapped') ? SPEC : undefined;
      request(`${upstream.url}${req.url}`, { agent: false }, (proxyRes) =>
        forwardResponse(proxyRes, 'GET', res, false, rewrite, CAPS),
      ).end();
    });
    // A local provider handler writing its JSON in two pieces, with a small cap.
    local = await listen((req: IncomingMessage, res: ServerResponse) => {
      rewriteLocalResponse(res, SPEC, CAPS.rewrittenJsonBytes);
      const body = jsonOfSize(sizeOf(req));
      res.setHeader('content-type', 'application/json');
      res.write(body.slice(0, body.length / 2));
      res.end(body.slice(body.length / 2));
    });
  });
  after(async () => {
    await Promise.all([forwarding.close(), local.close()]);
    await upstream.close();
  });

  it('an undeclared gzip body that inflates past the cap is cut off', async () => {
    const outcome = await fetchOutcome(`${forwarding.url}/undeclared-gzip?size=${16 * CAPS.decodedBytes}`);
    assert.equal(outcome.cut, true);
  });

  it('an undeclared gzip body within the cap is decoded whole', async () => {
    const outcome = await fetchOutcome(`${forwarding.url}/undeclared-gzip?size=${CAPS.decodedBytes}`);
    assert.equal(outcome.cut, false);
    assert.equal(outcome.body, '\0'.repeat(CAPS.decodedBytes));
  });

  it("a mapped call's JSON response past the cap cuts the client off before any response", async () => {
    const outcome = await fetchOutcome(`${forwarding.url}/mapped?size=${2 * CAPS.rewrittenJsonBytes}`);
    assert.deepEqual(outcome, { status: undefined, body: '', headers: {}, cut: true });
  });

  it("a local handler's JSON response past the cap is cut off the same way", async () => {
    const outcome = await fetchOutcome(`${local.url}/?size=${2 * CAPS.rewrittenJsonBytes}`);
    assert.deepEqual(outcome, { status: undefined, body: '', headers: {}, cut: true });
  });

  it('JSON within the cap is rewritten whole, upstream and local alike, with its length', async () => {
    const size = CAPS.rewrittenJsonBytes - 100;
    const expected = JSON.stringify({ model: SPEC.requestedModel, pad: 'x'.repeat(size) });
    for (const url of [`${forwarding.url}/mapped?size=${size}`, `${local.url}/?size=${size}`]) {
      const outcome = await fetchOutcome(url);
      assert.equal(outcome.cut, false, url);
      assert.equal(outcome.body, expected, url);
      assert.equal(Number(outcome.headers['content-length']), Buffer.byteLength(expected), url);
    }
  });
});
