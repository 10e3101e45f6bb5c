/**
 * Runs the real Amp CLI (path in argv[2]) through the gateway, pointed at `http://localhost:<port>`,
 * against a fake Amp edge that enforces the production edge's actor-token rule and serves a fake
 * thread actor behind it, and a fake identity provider. Then in the shapes users run it: a mapped
 * gateway key, the CLI behind an egress proxy, the gateway reached by another name, the gateway
 * behind an egress proxy (to an https edge too), all at once, and the standalone gateway. Meant to
 * run inside a private network namespace (`npm run test:real-client` does that): nothing it
 * starts can reach, or be reached from, outside the machine.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import {
  ampRouter,
  attachUpgrade,
  generateGatewayKey,
  isGatewayKey,
  type AmpProxyOptions,
} from '../../src/index.js';
import { EDGE_ACTOR_TOKEN, startAmpEdge, type FakeAmpEdge } from '../support/amp-edge.js';
import { startHttpProxy, startSocksProxy, withCredentials } from '../support/egress-proxies.js';
import { runCli, startCli } from '../support/gateway-harness.js';
import { emptyThreadTail, startThreadActor } from '../support/thread-actor.js';
import { tlsFixtures } from '../support/tls-fixtures.js';
import { closeServer, type RecordedRequest, type UpstreamHandler } from '../support/upstream.js';

const USER_TOKEN = 'amp-user-token-0001';
/** Alice's own Amp token, which the gateway keeps and spends for her gateway key. */
const ALICE_TOKEN = 'amp-alice-token-0002';
const THREAD_ID = 'T-00000000-0000-4000-8000-000000000001';
const WS_TOKEN = 'ws-token-0001';
const answer = (prompt: string) => `Hello from the fake thread actor; you said: ${prompt}`;

const WRITE_SECRETS = fileURLToPath(
  new URL('../../examples/client-setup/write-secrets.mjs', import.meta.url),
);
const CLIENT_PROXY_LOGIN = { username: 'alice', password: 'client-proxy-secret-0001' };
const GATEWAY_PROXY_LOGIN = { username: 'gateway', password: 'gateway-proxy-secret-0001' };

function alice(gatewayKey: string) {
  return { key: gatewayKey, name: 'alice', upstreamKey: ALICE_TOKEN };
}

/** The proxy variables, both cases, as a shell behind a corporate proxy has them. */
function proxyVariables(url: string) {
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url };
}

/** A logger that keeps the codes of the gateway's warnings, and drops its request lines. */
function quietLogger(warnings: string[]) {
  const drop = () => undefined;
  return {
    info: drop,
    error: drop,
    warn: (object: { code?: string }) => void warnings.push(String(object.code)),
  };
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

function jwt(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJl`;
}

const ACCESS_TOKEN = jwt({ sub: 'user-1', exp: Math.floor(Date.now() / 1000) + 3600 });

function json(res: Parameters<UpstreamHandler>[1], status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Answers to the calls the pinned CLI makes for the commands run here, in Amp's envelopes. */
function ampApi(identityUrl: () => string): UpstreamHandler {
  const thread = {
    id: THREAD_ID,
    title: 'Real client check',
    updatedAt: new Date().toISOString(),
    messageCount: 1,
  };
  const results: Record<string, unknown> = {
    getUserInfo: { id: 'user-1', email: 'dev@example.com', username: 'dev', features: [], team: null },
    listThreads: { threads: [thread] },
    getThreadTail: emptyThreadTail(THREAD_ID),
  };
  return (req, res) => {
    const url = req.url ?? '/';
    if (url === '/api/auth/oauth-config') {
      return json(res, 200, { clientID: 'client_fake', apiURL: identityUrl(), defaultLoginMethod: 'oauth' });
    }
    if (url.startsWith('/api/threads/find')) return json(res, 200, { threads: [thread] });
    if (url.startsWith('/api/thread-actors')) {
      return json(res, 200, {
        threadId: THREAD_ID,
        wsToken: WS_TOKEN,
        ownerUserId: 'user-1',
        threadVersion: 1,
      });
    }
    if (url.startsWith('/api/internal?')) {
      const method = url.slice('/api/internal?'.length);
      return json(res, 200, { ok: true, result: results[method] ?? {} });
    }
    json(res, 404, { error: 'not found' });
  };
}

/** A fake OAuth identity provider: the device flow approves at once. */
async function startIdentityProvider() {
  const calls: string[] = [];
  const server = createServer((req, res) => {
    calls.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      if (req.url === '/user_management/authorize/device') {
        return json(res, 200, {
          device_code: 'device-code-0001',
          user_code: 'ABCD-EFGH',
          verification_uri: 'https://idp.invalid/device',
          verification_uri_complete: 'https://idp.invalid/device?user_code=ABCD-EFGH',
          expires_in: 60,
          interval: 1,
        });
      }
      if (req.url === '/user_management/authenticate') {
        return json(res, 200, {
          access_token: ACCESS_TOKEN,
          refresh_token: 'refresh-token-0001',
          user: { email: 'dev@example.com' },
        });
      }
      json(res, 404, { error: 'not_found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls, server };
}

/** A gateway in an Express app, on `host` (a loopback address); its `url` names it `localhost` on 127.0.0.1. */
async function startGateway(options: AmpProxyOptions, host = '127.0.0.1') {
  const router = ampRouter(options);
  const reload = (changes: AmpProxyOptions) => router.reload({ ...options, ...changes });
  const app = express();
  app.use(router);
  const server: Server = createServer(app);
  attachUpgrade(server, router);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${host === '127.0.0.1' ? 'localhost' : host}:${port}`,
    reload,
    close: async () => (await router.close(), await closeServer(server)),
  };
}

interface Run {
  code: number | null;
  output: string;
}

/** Runs in HOME, so that the CLI reads no settings and lists no files of this checkout. */
function runAmp(amp: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(amp, args, { env, cwd: env.HOME, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function tokenOf(request: RecordedRequest): string | undefined {
  return request.headers.authorization;
}

async function main(): Promise<void> {
  const amp = process.argv[2];
  assert.ok(amp, 'usage: harness.ts <path to the amp binary>');
  const identity = await startIdentityProvider();
  const actor = startThreadActor({ threadId: THREAD_ID, wsToken: WS_TOKEN, answer });
  const edgeOptions = { handler: ampApi(() => identity.url), serveActor: actor.serve };
  const edge: FakeAmpEdge = await startAmpEdge(edgeOptions);
  /** The edge the helpers below watch unless told another (they name theirs `edge` too). */
  const plainEdge = edge;
  const tls = await tlsFixtures();
  const tlsEdge = await startAmpEdge({ ...edgeOptions, tls: tls.leaf });
  const paths: string[] = [];
  const gatewayOptions = { upstream: edge.url, actorToken: EDGE_ACTOR_TOKEN };
  const gateway = await startGateway({
    ...gatewayOptions,
    restrictManagementToLocalhost: true,
    onProxyEvent: (event) => {
      if (event.type === 'request-end') paths.push(event.path);
    },
  });
  const homes: string[] = [];
  /** A HOME of its own for a run whose settings and login must not meet another's. */
  const freshHome = async () => {
    homes.push(await mkdtemp(join(tmpdir(), 'amp-real-client-')));
    return homes.at(-1)!;
  };
  const env = {
    PATH: process.env.PATH,
    HOME: await freshHome(),
    AMP_URL: gateway.url,
    NO_COLOR: '1',
    TERM: 'dumb',
  };
  const withKey = { ...env, AMP_API_KEY: USER_TOKEN };
  const failures: string[] = [];
  const check = async (name: string, body: () => Promise<void>) => {
    try {
      await body();
      print(`ok     ${name}`);
    } catch (error) {
      failures.push(name);
      print(
        `FAILED ${name}\n${String(error instanceof Error ? error.message : error).replace(/^/gm, '       ')}`,
      );
    }
  };

  /**
   * What reaches the edge from now on (requests, WebSocket handshakes, and the thread-protocol
   * frames that crossed those sockets), to assert on once the runs are over.
   */
  const edgeTrail = (edge: FakeAmpEdge = plainEdge) => {
    const record = edge.record();
    const handshakes = edge.handshakes.mark();
    const frames = actor.received.mark();
    return {
      /** `secret` appears nowhere the edge received: no URL, header, body, subprotocol or frame. */
      assertNever(secret: string) {
        for (const request of record.requests) {
          const seen = [request.url, ...request.rawHeaders, request.body.toString('latin1')];
          assert.ok(!seen.some((text) => text.includes(secret)), `the edge received it on ${request.url}`);
        }
        for (const socket of edge.handshakes.since(handshakes)) {
          const seen = [socket.url, JSON.stringify(socket.headers)];
          assert.ok(!seen.some((text) => text.includes(secret)), `the edge received it on ${socket.url}`);
        }
        assert.ok(!JSON.stringify(actor.received.since(frames)).includes(secret), 'a frame carried it');
      },
      /** Every request and WebSocket came from one of `ports` (an egress proxy's outbound connections). */
      assertCameThrough(ports: number[]) {
        assert.ok(record.requests.length > 0, 'no request reached the edge');
        for (const request of record.requests) {
          assert.ok(ports.includes(request.remotePort), `${request.url} came direct`);
        }
        for (const socket of edge.handshakes.since(handshakes)) {
          assert.ok(ports.includes(socket.remotePort), `the WebSocket ${socket.url} came direct`);
        }
      },
    };
  };

  /** `amp threads list` lists the edge's thread, and the edge got `token` for it. */
  const listThreads = async (runEnv: NodeJS.ProcessEnv, token: string, edge = plainEdge) => {
    const record = edge.record();
    const run = await runAmp(amp, ['threads', 'list'], runEnv);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /Real client check/);
    const call = record.requests.find((r) => r.url.startsWith('/api/internal?listThreads'));
    assert.equal(call && tokenOf(call), `Bearer ${token}`);
  };

  /**
   * `amp -x` runs to the end: the thread is created, the actor WebSocket reaches the edge with the
   * actor token and the `wsToken`, the prompt and its answer cross it, and every `/api` call
   * carried `token`.
   */
  const execute = async (runEnv: NodeJS.ProcessEnv, token: string, edge = plainEdge) => {
    const handshakes = edge.handshakes.mark();
    const closes = edge.closes.mark();
    const frames = actor.received.mark();
    const record = edge.record();
    const run = await runAmp(amp, ['-x', 'say hi'], runEnv, 30_000);
    const closed = edge.closes.since(closes).join(', ') || 'none';
    const exit = run.code ?? 'none (killed after 30 s)';
    assert.equal(run.code, 0, `exit code ${exit}; close codes the edge received: ${closed}\n${run.output}`);
    assert.equal(run.output.trim(), answer('say hi'));
    const sockets = edge.handshakes.since(handshakes);
    assert.ok(sockets.length > 0, 'no actor WebSocket reached the edge');
    for (const socket of sockets) {
      const url = new URL(socket.url, 'http://edge');
      assert.equal(url.pathname, '/actors/gateway/threadActor/websocket/');
      assert.equal(url.searchParams.get('rvt-key'), THREAD_ID);
      assert.equal(url.searchParams.get('rvt-token'), EDGE_ACTOR_TOKEN);
      const params = String(socket.headers['sec-websocket-protocol']).match(/rivet_conn_params\.([^,\s]+)/);
      assert.equal(params && JSON.parse(decodeURIComponent(params[1]!)).wsToken, WS_TOKEN);
      // The CLI sends no Amp token on the actor socket (the wsToken, issued to `token` by
      // /api/thread-actors, is its credential), and the gateway adds none.
      assert.equal(socket.headers.authorization, undefined);
    }
    const received = actor.received.since(frames);
    assert.ok(
      received.some((frame) => frame.method === 'executor_connect'),
      'the CLI never connected as executor',
    );
    const prompt = received.find((frame) => frame.method === 'client_append_user_msg');
    assert.deepEqual(prompt?.params.content, [{ type: 'text', text: 'say hi' }]);
    assert.ok(!edge.closes.since(closes).includes(1008), 'the edge closed an actor socket with its guard');
    const api = record.requests.filter((r) => r.url.startsWith('/api/'));
    assert.ok(
      api.some((r) => r.url === '/api/thread-actors'),
      'the thread was not created through the gateway',
    );
    assert.ok(
      api.some((r) => r.url.startsWith('/api/internal?archiveThread')),
      'the CLI did not finish the run',
    );
    for (const call of api) assert.equal(tokenOf(call), `Bearer ${token}`, call.url);
    // The actor runs the inference: a provider call here would mean the fake is not what the CLI expects.
    assert.ok(!api.some((r) => r.url.startsWith('/api/provider/')), api.map((r) => r.url).join(', '));
  };

  try {
    await check('amp threads list', () => listThreads(withKey, USER_TOKEN));

    await check('amp threads search', async () => {
      const record = edge.record();
      const run = await runAmp(amp, ['threads', 'search', 'real'], withKey);
      assert.equal(run.code, 0, run.output);
      assert.ok(record.requests.some((r) => r.url.startsWith('/api/threads/find?q=real')));
    });

    await check('amp -x: the prompt and its answer cross the actor WebSocket, which carries the token', () =>
      execute(withKey, USER_TOKEN),
    );

    await check(
      'mapped gateway key (AMP_API_KEY, then the secrets file): threads list and -x reach the edge as the mapped Amp token',
      async () => {
        const gatewayKey = generateGatewayKey();
        const mapped = await startGateway({ ...gatewayOptions, clients: [alice(gatewayKey)] });
        try {
          const trail = edgeTrail();
          const aliceEnv = { ...env, HOME: await freshHome(), AMP_URL: mapped.url, AMP_API_KEY: gatewayKey };
          await listThreads(aliceEnv, ALICE_TOKEN);
          await execute(aliceEnv, ALICE_TOKEN);
          // The key stored where the CLI looks when AMP_API_KEY is unset, by the client-setup example.
          const home = await freshHome();
          const stored = spawnSync(
            process.execPath,
            [WRITE_SECRETS, '--url', mapped.url, join(home, '.local/share/amp/secrets.json')],
            { input: gatewayKey, encoding: 'utf8' },
          );
          assert.equal(stored.status, 0, stored.stderr);
          await listThreads({ ...env, HOME: home, AMP_URL: mapped.url }, ALICE_TOKEN);
          trail.assertNever(gatewayKey);
        } finally {
          await mapped.close();
        }
      },
    );

    for (const passOnAbsoluteForm of [false, true]) {
      const how = passOnAbsoluteForm ? 'passes its calls on in absolute form' : 'rewrites their targets';
      await check(
        `the CLI behind an egress proxy (HTTP(S)_PROXY) that ${how}: its /api calls and actor WebSocket go through it`,
        async () => {
          const proxy = await startHttpProxy({ passOnAbsoluteForm });
          try {
            const proxied = { ...withKey, HOME: await freshHome(), ...proxyVariables(proxy.url) };
            await listThreads(proxied, USER_TOKEN);
            await execute(proxied, USER_TOKEN);
            // Bun forwards plain-http calls in absolute form and tunnels the WebSockets with CONNECT.
            const gatewayHost = `localhost:${gateway.port}`;
            const calls = proxy.plainRequests.map((request) => request.url);
            assert.ok(
              calls.some((url) => url.startsWith(`http://${gatewayHost}/api/internal?listThreads`)),
              calls.join(', '),
            );
            assert.ok(calls.includes(`http://${gatewayHost}/api/thread-actors`), calls.join(', '));
            for (const url of calls) assert.equal(new URL(url).host, gatewayHost, url);
            const tunnels = proxy.tunnels.items.map((tunnel) => tunnel.target);
            assert.ok(tunnels.length > 0, 'the actor WebSocket did not go through the proxy');
            for (const target of tunnels) assert.equal(target, gatewayHost);
          } finally {
            await proxy.close();
          }
        },
      );
    }

    await check(
      "the gateway reached by another name (127.0.0.2), through the CLI's proxy: the CLI's own actor token becomes the edge's",
      async () => {
        const named = await startGateway(gatewayOptions, '127.0.0.2');
        const proxy = await startHttpProxy();
        try {
          const handshakes = edge.handshakes.mark();
          const runEnv = {
            ...withKey,
            HOME: await freshHome(),
            AMP_URL: named.url,
            ...proxyVariables(proxy.url),
          };
          await listThreads(runEnv, USER_TOKEN);
          await execute(runEnv, USER_TOKEN);
          const tunnels = proxy.tunnels.items.map((tunnel) => tunnel.target);
          assert.ok(
            tunnels.length > 0 && tunnels.every((target) => target === `127.0.0.2:${named.port}`),
            tunnels.join(', '),
          );
          // For any host but localhost the CLI names Amp's production deployment, whose token it sends.
          for (const socket of edge.handshakes.since(handshakes)) {
            assert.deepEqual(new URL(socket.url, 'http://edge').searchParams.getAll('rvt-token'), [
              EDGE_ACTOR_TOKEN,
            ]);
          }
        } finally {
          await named.close();
          await proxy.close();
        }
      },
    );

    for (const kind of ['http', 'socks5'] as const) {
      await check(
        `the gateway behind an egress proxy (upstreamProxy: ${kind}): it reaches the edge only through it`,
        async () => {
          const proxy = kind === 'http' ? await startHttpProxy() : await startSocksProxy();
          const warnings: string[] = [];
          const behind = await startGateway({
            ...gatewayOptions,
            upstreamProxy: proxy.url,
            logger: quietLogger(warnings),
          });
          try {
            const trail = edgeTrail();
            const runEnv = { ...withKey, HOME: await freshHome(), AMP_URL: behind.url };
            await listThreads(runEnv, USER_TOKEN);
            await execute(runEnv, USER_TOKEN);
            const edgeHost = new URL(edge.url).host;
            const tunnels = proxy.tunnels.items.map((tunnel) => tunnel.target);
            assert.ok(tunnels.length > 0, 'nothing went through the proxy');
            for (const target of tunnels) assert.equal(target, edgeHost);
            trail.assertCameThrough(proxy.outboundPorts());
            assert.ok(warnings.includes('amp_egress_cleartext'), warnings.join(', '));
          } finally {
            await behind.close();
            await proxy.close();
          }
        },
      );
    }

    await check('the gateway behind an egress proxy to an https edge: TLS inside the tunnels', async () => {
      const proxy = await startHttpProxy();
      const warnings: string[] = [];
      const behind = await startGateway({
        upstream: tlsEdge.url,
        actorToken: EDGE_ACTOR_TOKEN,
        upstreamCa: tls.ca.cert,
        upstreamProxy: proxy.url,
        logger: quietLogger(warnings),
      });
      try {
        const trail = edgeTrail(tlsEdge);
        const runEnv = { ...withKey, HOME: await freshHome(), AMP_URL: behind.url };
        await listThreads(runEnv, USER_TOKEN, tlsEdge);
        await execute(runEnv, USER_TOKEN, tlsEdge);
        trail.assertCameThrough(proxy.outboundPorts());
        for (const tunnel of proxy.tunnels.items) assert.equal(tunnel.target, new URL(tlsEdge.url).host);
        assert.ok(!proxy.relayed().includes(USER_TOKEN), 'the Amp token crossed the proxy in the clear');
        assert.deepEqual(warnings, []);
      } finally {
        await behind.close();
        await proxy.close();
      }
    });

    await check(
      'all at once: a mapped gateway key, the CLI behind one egress proxy, the gateway behind another, both with credentials',
      async () => {
        const gatewayKey = generateGatewayKey();
        const clientProxy = await startHttpProxy({ credentials: CLIENT_PROXY_LOGIN });
        const gatewayProxy = await startHttpProxy({ credentials: GATEWAY_PROXY_LOGIN });
        const logger = quietLogger([]);
        const mapped = await startGateway({
          ...gatewayOptions,
          clients: [alice(gatewayKey)],
          upstreamProxy: withCredentials(
            gatewayProxy.url,
            GATEWAY_PROXY_LOGIN.username,
            GATEWAY_PROXY_LOGIN.password,
          ),
          logger,
        });
        try {
          const trail = edgeTrail();
          const aliceEnv = {
            ...env,
            HOME: await freshHome(),
            AMP_URL: mapped.url,
            AMP_API_KEY: gatewayKey,
            ...proxyVariables(
              withCredentials(clientProxy.url, CLIENT_PROXY_LOGIN.username, CLIENT_PROXY_LOGIN.password),
            ),
          };
          await listThreads(aliceEnv, ALICE_TOKEN);
          await execute(aliceEnv, ALICE_TOKEN);
          trail.assertNever(gatewayKey);
          trail.assertCameThrough(gatewayProxy.outboundPorts());
          assert.ok(clientProxy.plainRequests.length > 0 && clientProxy.tunnels.items.length > 0);
          // Both proxies asked for credentials (407 otherwise); none of them went further.
          trail.assertNever(CLIENT_PROXY_LOGIN.password);
          trail.assertNever(GATEWAY_PROXY_LOGIN.password);
          assert.ok(!gatewayProxy.relayed().includes(gatewayKey), 'the gateway key crossed the egress proxy');
        } finally {
          await mapped.close();
          await clientProxy.close();
          await gatewayProxy.close();
        }
      },
    );

    await check(
      'the standalone gateway: a key file from `amp-proxy keys add`, an https edge through HTTPS_PROXY from its environment',
      async () => {
        const dir = await freshHome();
        const added = await runCli(dir, { PATH: process.env.PATH, ALICE_AMP_KEY: ALICE_TOKEN }, [
          'keys',
          'add',
          'alice',
          '--amp-key-from-env',
          'ALICE_AMP_KEY',
          '--db',
          'keys.db',
        ]);
        assert.equal(added.code, 0, added.output);
        const gatewayKey = /ampgw_\w+/.exec(added.output)?.[0] ?? '';
        assert.ok(isGatewayKey(gatewayKey), added.output);
        const config = {
          upstream: tlsEdge.url,
          actorToken: EDGE_ACTOR_TOKEN,
          upstreamCa: { file: 'ca.pem' },
          clients: { sqlite: './keys.db' },
        };
        await writeFile(join(dir, 'ca.pem'), tls.ca.cert);
        await writeFile(join(dir, 'amp-proxy.json'), JSON.stringify(config));
        const proxy = await startHttpProxy();
        // No upstreamProxy in the file: the gateway defaults to the proxy variables.
        const standalone = startCli(dir, { PATH: process.env.PATH, ...proxyVariables(proxy.url) }, [
          '--config',
          'amp-proxy.json',
        ]);
        try {
          const url = new URL(await standalone.listening);
          const trail = edgeTrail(tlsEdge);
          const aliceEnv = {
            ...env,
            HOME: await freshHome(),
            AMP_URL: `http://localhost:${url.port}`,
            AMP_API_KEY: gatewayKey,
          };
          await listThreads(aliceEnv, ALICE_TOKEN, tlsEdge);
          await execute(aliceEnv, ALICE_TOKEN, tlsEdge);
          trail.assertNever(gatewayKey);
          trail.assertCameThrough(proxy.outboundPorts());
          for (const tunnel of proxy.tunnels.items) assert.equal(tunnel.target, new URL(tlsEdge.url).host);
          assert.ok(!proxy.relayed().includes(ALICE_TOKEN), 'the Amp token crossed the proxy in the clear');
          assert.ok(!standalone.output().includes(gatewayKey), 'the gateway logged the key');
        } finally {
          await standalone.stop();
          await proxy.close();
        }
      },
    );

    await check('amp login (OAuth device flow), then a call on the OAuth access token', async () => {
      const record = edge.record();
      const run = await runAmp(amp, ['login'], env);
      assert.equal(run.code, 0, run.output);
      assert.match(run.output, /Logged in as dev@example\.com|Login successful/);
      assert.ok(record.requests.some((r) => r.url === '/api/auth/oauth-config'));
      assert.ok(identity.calls.includes('POST /user_management/authorize/device'), identity.calls.join(', '));
      assert.ok(identity.calls.includes('POST /user_management/authenticate'), identity.calls.join(', '));
      const after = edge.record();
      const list = await runAmp(amp, ['threads', 'list'], env);
      assert.equal(list.code, 0, list.output);
      const call = after.requests.find((r) => r.url.startsWith('/api/internal?listThreads'));
      assert.equal(call && tokenOf(call), `Bearer ${ACCESS_TOKEN}`);
    });

    await check('amp login with identityProxy: the device flow goes through the gateway', async () => {
      gateway.reload({ identityProxy: true });
      const calls = identity.calls.length;
      const seen = paths.length;
      const run = await runAmp(amp, ['login'], { ...env, HOME: await freshHome() });
      assert.equal(run.code, 0, run.output);
      assert.ok(identity.calls.length > calls, 'the identity provider was not called');
      const through = paths.slice(seen);
      assert.ok(
        through.includes('/api/amp-proxy/identity/user_management/authorize/device'),
        through.join(', '),
      );
      assert.ok(through.includes('/api/amp-proxy/identity/user_management/authenticate'), through.join(', '));
    });
  } finally {
    await gateway.close();
    await edge.close();
    await tlsEdge.close();
    await closeServer(identity.server);
    for (const home of homes) await rm(home, { recursive: true, force: true });
  }
  if (failures.length > 0) {
    print(`\n${failures.length} check(s) failed`);
    process.exitCode = 1;
  } else {
    print('\nall checks passed');
  }
}

await main();
