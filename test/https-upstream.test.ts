// An HTTPS upstream: trusted through `upstreamCa` (PEM text or a file) or NODE_EXTRA_CA_CERTS,
// everything works as over plain HTTP (credentials per group, streaming, large bodies, WebSockets,
// kept-alive connections, SNI); a certificate the gateway cannot verify fails closed, saying why.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ampManagementProxy,
  ampProviderProxy,
  ampRouter,
  AmpProxyConfigError,
  attachUpgrade,
  type AmpProxyOptions,
} from '../src/index.js';
import { EXPRESS_VERSIONS, listen } from './support/apps.js';
import { send } from './support/client.js';
import {
  observe,
  openEventStream,
  openSocket,
  startCli,
  startGatewayApp,
  upstreamAnswers,
  within,
} from './support/gateway-harness.js';
import { tlsFixtures, type KeyAndCert, type TlsFixtures } from './support/tls-fixtures.js';
import { startUpstream, startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';

const SERVER_KEY = 'server-key-tls-4f2a9e';
const CLIENT_KEY = 'client-key-tls-9c1e07';
const USER_TOKEN = 'user-token-tls-7d3b55';
const PROVIDER_PATH = '/api/provider/anthropic/v1/messages';
const CONN_PARAMS = encodeURIComponent(JSON.stringify({ wsToken: 'ws-token-tls-123' }));
const PROTOCOLS = ['rivet', 'rivet_encoding.bare', `rivet_conn_params.${CONN_PARAMS}`];
const WS_PATH = '/actors/gateway/threadActor/websocket/?rvt-namespace=ns&rvt-method=get&rvt-key=T-1';

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`an HTTPS upstream trusted through upstreamCa (${name})`, () => {
    let upstream: FakeWebSocketUpstream;
    let gateway: Awaited<ReturnType<typeof startGatewayApp>>;
    let base: string;
    const { handler, held } = upstreamAnswers();

    before(async () => {
      const tls = await tlsFixtures();
      upstream = await startWebSocketUpstream(handler, { tls: tls.leaf });
      const router = ampRouter({
        upstream: `https://localhost:${upstream.port}`,
        upstreamKey: SERVER_KEY,
        upstreamCa: tls.ca.cert,
        clients: [{ key: CLIENT_KEY, name: 'alice' }],
      });
      gateway = await startGatewayApp(express, router);
      base = gateway.url;
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    it('a provider call reaches the upstream with the server key, never the gateway key', async () => {
      const received = upstream.record();
      const body = JSON.stringify({ model: 'claude', messages: [] });
      const res = await send(`${base}${PROVIDER_PATH}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body,
      });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { ok: true, url: PROVIDER_PATH });
      const seen = received.only();
      assert.equal(seen.headers.authorization, `Bearer ${SERVER_KEY}`);
      assert.equal(seen.headers['x-api-key'], SERVER_KEY);
      assert.equal(seen.body.toString(), body);
      assert.ok(!seen.rawHeaders.join('\n').includes(CLIENT_KEY));
    });

    it("a management call reaches the upstream with the user's own token", async () => {
      const received = upstream.record();
      const res = await send(`${base}/api/threads/T-1?x=1`, {
        headers: { authorization: `Bearer ${USER_TOKEN}` },
      });
      assert.equal(res.status, 200);
      const seen = received.only();
      assert.equal(seen.url, '/api/threads/T-1?x=1');
      assert.equal(seen.headers.authorization, `Bearer ${USER_TOKEN}`);
      assert.ok(!seen.rawHeaders.join('\n').includes(SERVER_KEY));
    });

    it('the upstream sees SNI localhost and Host localhost:<port>', async () => {
      const received = upstream.record();
      assert.equal(
        (await send(`${base}/api/threads`, { headers: { authorization: 'Bearer u' } })).status,
        200,
      );
      const seen = received.only();
      assert.equal(seen.headers.host, `localhost:${upstream.port}`);
      const connection = upstream.connections.find((c) => c.remotePort === seen.remotePort);
      assert.ok(connection, 'the request came on a connection whose TLS handshake the upstream completed');
      assert.equal(connection.servername, 'localhost');
    });

    it('event-stream events arrive while the upstream still holds the stream open', async () => {
      const mark = held.mark();
      const stream = openEventStream(`${base}${PROVIDER_PATH}?stream`, CLIENT_KEY);
      // The upstream has not ended the stream: only a gateway that streams gets this far.
      const first = await within(stream.firstChunk, 5000, 'the first event before the stream ends');
      assert.match(first, /message_start/);
      const [hold] = await held.until(mark, (items) => items.length === 1);
      hold!.res.end('data: [DONE]\n\n');
      const { status, text } = await within(stream.all, 5000, 'the end of the stream');
      assert.equal(status, 200);
      assert.equal(text, 'event: message_start\ndata: {"n":1}\n\ndata: [DONE]\n\n');
    });

    it('an 8 MiB upload arrives intact', async () => {
      const received = upstream.record();
      const upload = randomBytes(8 * 1024 * 1024);
      const res = await send(`${base}/api/provider/openai/v1/files`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${CLIENT_KEY}` },
        body: upload,
      });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), {
        length: upload.length,
        sha256: createHash('sha256').update(upload).digest('hex'),
      });
      assert.equal(Number(received.only().headers['content-length']), upload.length);
    });

    it('sequential requests share one kept-alive TLS connection', async () => {
      const received = upstream.record();
      const connectionsBefore = upstream.connections.length;
      for (let i = 0; i < 4; i++) {
        const res = await send(`${base}${PROVIDER_PATH}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${CLIENT_KEY}` },
          body: '{}',
        });
        assert.equal(res.status, 200);
      }
      const ports = received.requests.map((r) => r.remotePort);
      assert.equal(ports.length, 4);
      assert.equal(new Set(ports).size, 1, `the requests came on connections from ports ${ports.join(', ')}`);
      assert.ok(upstream.connections.length - connectionsBefore <= 1);
    });

    it('a WebSocket is tunnelled to the wss: upstream with its subprotocol intact', async () => {
      const handshakes = upstream.handshakes.mark();
      const closes = upstream.closes.mark();
      const socket = await openSocket(`${base.replace('http:', 'ws:')}${WS_PATH}`, PROTOCOLS);
      assert.equal(socket.protocol, 'rivet');
      const [seen] = upstream.handshakes.since(handshakes);
      assert.ok(seen);
      assert.equal(seen.url, WS_PATH);
      assert.equal(seen.headers['sec-websocket-protocol'], PROTOCOLS.join(','));
      assert.equal(seen.headers.host, `localhost:${upstream.port}`);
      assert.ok(
        upstream.connections.some((c) => c.remotePort === seen.remotePort && c.servername === 'localhost'),
      );
      socket.send('"ping"');
      const [echoed] = (await once(socket, 'message')) as [Buffer];
      assert.equal(echoed.toString(), '"ping"');
      socket.send('close-4001');
      const [code] = (await once(socket, 'close')) as [number];
      assert.equal(code, 4001);
      assert.deepEqual(await upstream.closes.until(closes, (codes) => codes.length > 0), [4001]);
    });
  });
}

describe('upstreamCa forms', () => {
  let tls: TlsFixtures;
  let dir: string;
  before(async () => {
    tls = await tlsFixtures();
    dir = await mkdtemp(join(tmpdir(), 'amp-upstream-ca-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function providerCall(options: AmpProxyOptions, upstreamUrl: string) {
    const router = ampRouter({ upstream: upstreamUrl, upstreamKey: SERVER_KEY, ...options });
    const app = await listen((req, res) => router(req, res));
    try {
      return await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' });
    } finally {
      await router.close();
      await app.close();
    }
  }

  it('{ file }: a bundle of several CAs, by absolute path and relative to the working directory, read when the factory runs', async () => {
    const upstream = await startUpstream(undefined, { tls: tls.leaf });
    try {
      const file = join(dir, 'bundle.pem');
      await writeFile(file, tls.otherCa.cert + tls.ca.cert);
      const received = upstream.record();
      for (const path of [file, relative(process.cwd(), file)]) {
        const res = await providerCall({ upstreamCa: { file: path } }, `https://localhost:${upstream.port}`);
        assert.equal(res.status, 200, path);
      }
      assert.deepEqual(
        received.requests.map((r) => r.headers.authorization),
        [`Bearer ${SERVER_KEY}`, `Bearer ${SERVER_KEY}`],
      );

      // Read by the factory, not per request: the file can go once the middleware exists.
      const router = ampRouter({
        upstream: `https://localhost:${upstream.port}`,
        upstreamKey: SERVER_KEY,
        upstreamCa: { file },
      });
      await unlink(file);
      const app = await listen((req, res) => router(req, res));
      try {
        assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 200);
      } finally {
        await router.close();
        await app.close();
      }
    } finally {
      await upstream.close();
    }
  });

  it('an IP-literal upstream is verified against the IP in the certificate, and no SNI is sent', async () => {
    const upstream = await startUpstream(undefined, { tls: tls.leaf });
    try {
      const received = upstream.record();
      const res = await providerCall({ upstreamCa: tls.ca.cert }, `https://127.0.0.1:${upstream.port}`);
      assert.equal(res.status, 200);
      const seen = received.only();
      assert.equal(seen.headers.host, `127.0.0.1:${upstream.port}`);
      const connection = upstream.connections.find((c) => c.remotePort === seen.remotePort);
      assert.equal(connection?.servername, false);
    } finally {
      await upstream.close();
    }
  });

  it('a value that is not a certificate is refused by every factory, naming upstreamCa and never its contents', async () => {
    const notPem = join(dir, 'not-a-cert.pem');
    await writeFile(notPem, 'hello-not-a-certificate-contents\n');
    const garbled =
      '-----BEGIN CERTIFICATE-----\nZ2FyYmxlZC1jZXJ0aWZpY2F0ZS1ib2R5\n-----END CERTIFICATE-----\n';
    const keyBody = tls.leaf.key.split('\n')[1]!;
    const cases: Array<[label: string, value: AmpProxyOptions['upstreamCa'], secret: string | undefined]> = [
      ['plain text', 'plain-text-not-a-certificate', 'plain-text-not-a-certificate'],
      ['a private key', tls.leaf.key, keyBody],
      ['a PEM block that does not parse', garbled, 'Z2FyYmxlZC1jZXJ0aWZpY2F0ZS1ib2R5'],
      ['a missing file', { file: join(dir, 'missing.pem') }, undefined],
      ['a file that holds no certificate', { file: notPem }, 'hello-not-a-certificate-contents'],
    ];
    for (const factory of [ampRouter, ampProviderProxy, ampManagementProxy]) {
      for (const [label, upstreamCa, secret] of cases) {
        assert.throws(
          () => factory({ upstream: 'https://localhost:1', upstreamCa }),
          (error: unknown) => {
            assert.ok(error instanceof AmpProxyConfigError, `${factory.name}, ${label}: ${String(error)}`);
            assert.match(error.option, /^upstreamCa/, `${factory.name}, ${label}`);
            assert.match(error.message, /upstreamCa/);
            if (secret) assert.ok(!error.message.includes(secret), `${label}: ${error.message}`);
            return true;
          },
          `${factory.name}, ${label}`,
        );
      }
    }
  });

  it('reload refuses a bad upstreamCa and keeps the running one', async () => {
    const upstream = await startUpstream(undefined, { tls: tls.leaf });
    const options = { upstream: `https://localhost:${upstream.port}`, upstreamKey: SERVER_KEY };
    const router = ampRouter({ ...options, upstreamCa: tls.ca.cert });
    const app = await listen((req, res) => router(req, res));
    try {
      assert.throws(
        () => router.reload({ ...options, upstreamCa: 'junk-ca' }),
        (error: unknown) => error instanceof AmpProxyConfigError && /^upstreamCa/.test(error.option),
      );
      assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 200);
      // And a reload that drops the CA drops the trust with it.
      router.reload(options);
      assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 502);
      assert.equal(upstream.requests.length, 1);
    } finally {
      await router.close();
      await app.close();
      await upstream.close();
    }
  });
});

interface FailureCase {
  label: string;
  cause: string;
  serve: (tls: TlsFixtures) => KeyAndCert;
  trust: (tls: TlsFixtures) => string | undefined;
}

const FAILURES: FailureCase[] = [
  {
    label: 'a certificate from a CA the gateway does not know (no upstreamCa)',
    cause: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    serve: (tls) => tls.leaf,
    trust: () => undefined,
  },
  {
    label: 'an unknown CA sent along in the chain (no upstreamCa)',
    cause: 'SELF_SIGNED_CERT_IN_CHAIN',
    serve: (tls) => ({ key: tls.leaf.key, cert: tls.leaf.cert + tls.ca.cert }),
    trust: () => undefined,
  },
  {
    label: 'an expired certificate',
    cause: 'CERT_HAS_EXPIRED',
    serve: (tls) => tls.expired,
    trust: (tls) => tls.ca.cert,
  },
  {
    label: 'a certificate for another name',
    cause: 'ERR_TLS_CERT_ALTNAME_INVALID',
    serve: (tls) => tls.wrongName,
    trust: (tls) => tls.ca.cert,
  },
  {
    label: 'a self-signed certificate',
    cause: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    serve: (tls) => tls.selfSigned,
    trust: (tls) => tls.ca.cert,
  },
  {
    label: 'upstreamCa naming an unrelated CA',
    cause: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    serve: (tls) => tls.leaf,
    trust: (tls) => tls.otherCa.cert,
  },
];

describe('a certificate the gateway cannot verify fails closed', () => {
  for (const failure of FAILURES) {
    it(`${failure.label}: 502 amp_upstream_proxy_error, cause ${failure.cause}, nothing sent`, async () => {
      const tls = await tlsFixtures();
      const upstream = await startWebSocketUpstream(undefined, { tls: failure.serve(tls) });
      const seen = observe();
      const upstreamCa = failure.trust(tls);
      const router = ampRouter({
        upstream: `https://localhost:${upstream.port}`,
        upstreamKey: SERVER_KEY,
        ...(upstreamCa ? { upstreamCa } : {}),
        ...seen.options,
      });
      const app = await listen((req, res) => router(req, res));
      attachUpgrade(app.server, router);
      try {
        for (const [path, headers] of [
          [PROVIDER_PATH, { authorization: `Bearer ${CLIENT_KEY}` }],
          ['/api/threads/T-1', { authorization: `Bearer ${USER_TOKEN}` }],
        ] as const) {
          const eventMark = seen.events.mark();
          const lineMark = seen.lines.mark();
          const res = await send(`${app.url}${path}`, { method: 'POST', headers, body: '{"model":"x"}' });
          assert.equal(res.status, 502, path);
          assert.equal((res.json() as { error: string }).error, 'amp_upstream_proxy_error');
          const { event, line } = await seen.requestEnd(eventMark, lineMark);
          assert.equal(event.outcome, 'upstream-error');
          assert.equal(event.cause, failure.cause, path);
          assert.equal(line.cause, failure.cause, path);
          assert.equal((res.json() as { cause?: string }).cause, failure.cause, path);
          for (const text of [res.body, JSON.stringify(seen.lines.items)]) {
            assert.ok(!text.includes(SERVER_KEY) && !text.includes(USER_TOKEN) && !text.includes(CLIENT_KEY));
          }
        }
        await assert.rejects(
          openSocket(`${app.url.replace('http:', 'ws:')}${WS_PATH}`, PROTOCOLS),
          /HTTP 502/,
          'a WebSocket upgrade is refused too',
        );
        // The gateway reached the upstream and refused its certificate (three handshakes: each
        // group's own connection, and the upgrade's): not one request crossed.
        await upstream.failedHandshakes.until(0, (codes) => codes.length >= 3);
        assert.deepEqual(upstream.connections, []);
        assert.deepEqual(upstream.requests, []);
        assert.deepEqual(upstream.handshakes.items, []);
      } finally {
        await router.close();
        await app.close();
        await upstream.close();
      }
    });
  }
});

describe('the standalone gateway and NODE_EXTRA_CA_CERTS', () => {
  it('trusts a CA from NODE_EXTRA_CA_CERTS: without upstreamCa, and alongside an upstreamCa naming another CA', async () => {
    const tls = await tlsFixtures();
    const upstream = await startUpstream(undefined, { tls: tls.leaf });
    const dir = await mkdtemp(join(tmpdir(), 'amp-extra-ca-'));
    await writeFile(join(dir, 'package.json'), '{}');
    await writeFile(join(dir, 'ca.pem'), tls.ca.cert);
    await writeFile(join(dir, 'other-ca.pem'), tls.otherCa.cert);
    await writeFile(
      join(dir, 'with-other-ca.json'),
      JSON.stringify({ upstreamCa: { file: 'other-ca.pem' } }),
    );
    // A fresh environment: no proxy variables (the gateway reads them by default), no Amp CLI key.
    const env = {
      PATH: process.env.PATH,
      HOME: dir,
      NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem'),
      AMP_PROXY_UPSTREAM: `https://localhost:${upstream.port}`,
      AMP_PROXY_UPSTREAM_KEY: SERVER_KEY,
    };
    const gateways = [startCli(dir, env, []), startCli(dir, env, ['--config', 'with-other-ca.json'])];
    try {
      for (const gateway of gateways) {
        const url = await gateway.listening;
        const received = upstream.record();
        const res = await send(`${url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' });
        assert.equal(res.status, 200, `${res.body}\n${gateway.output()}`);
        assert.equal(received.only().headers.authorization, `Bearer ${SERVER_KEY}`);
      }
    } finally {
      await Promise.all(gateways.map((gateway) => gateway.stop()));
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
