/**
 * Each example in examples/ runs against a fake Amp upstream on loopback, and the assertions are
 * about what that upstream actually received. The examples import the package by name, so they
 * exercise the built dist/ (npm run build), exactly as a user who copies them would.
 *
 * Each example folder is a package of its own, whose `npm install` links `amp-proxy-middleware` to
 * this checkout (`file:../..`). The tests install nothing: an example that has no installed copy
 * gets the checkout itself, resolved through its package.json `exports` as the link would be, and
 * finds its other packages (express, cors, …) in the repository's node_modules.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { isBuiltin, register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type WebSocket, WebSocketServer } from 'ws';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { openSocket, streamEvents } from './support/gateway-harness.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

// The examples are plain JavaScript: the shapes the tests rely on are declared here.
interface RunningExample {
  server: Server;
  url: string;
  close(graceMs?: number): Promise<void>;
}
interface ExistingAppModule {
  startServer(options: {
    port: number;
    host: string;
    upstream: string;
    upstreamKey: string;
  }): Promise<RunningExample>;
}
interface GatewayClient {
  key: string;
  name: string;
  upstreamKey: string;
}
interface InternalGatewayModule {
  startServer(options: {
    port: number;
    host: string;
    upstream: string;
    clients: GatewayClient[];
    employeeDomain: string;
  }): Promise<RunningExample & { usage: Map<string, number> }>;
}

const EXAMPLES = new URL('../examples/', import.meta.url);

// A module resolve hook (it runs on the loader thread, hence the source text): what `file:../..`
// would link to, for imports of the package from examples/ that find no installed copy.
register(
  `data:text/javascript,${encodeURIComponent(`
    const EXAMPLES = ${JSON.stringify(EXAMPLES.href)};
    const ROOT = ${JSON.stringify(new URL('../package.json', import.meta.url).href)};
    export async function resolve(specifier, context, nextResolve) {
      try {
        return await nextResolve(specifier, context);
      } catch (error) {
        const ours = specifier === 'amp-proxy-middleware' || specifier.startsWith('amp-proxy-middleware/');
        if (!ours || error?.code !== 'ERR_MODULE_NOT_FOUND' || !context.parentURL?.startsWith(EXAMPLES)) throw error;
        return nextResolve(specifier, { ...context, parentURL: ROOT });
      }
    }
  `)}`,
);

async function loadExample<T>(path: string): Promise<T> {
  if (!existsSync(new URL('../dist/esm/index.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` (the examples import the built package)');
  }
  return (await import(new URL(path, EXAMPLES).href)) as T;
}

const CONN_PARAMS = encodeURIComponent(JSON.stringify({ wsToken: 'ws-token-123' }));
const PROTOCOLS = ['rivet', 'rivet_encoding.bare', `rivet_conn_params.${CONN_PARAMS}`];
const ACTOR_PATH = '/actors/gateway/threadActor/websocket/?rvt-namespace=ns&rvt-method=get&rvt-key=T-1';

interface Handshake {
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * The recording fake upstream, also speaking WebSocket (echoing every frame, choosing Amp's
 * `rivet` subprotocol). Paths containing `stream` answer with a server-sent event and are then
 * held open in `heldStreams` until the test goes on, paths containing `big` with a large JSON body.
 */
async function startAmpUpstream(): Promise<
  FakeUpstream & { handshakes: WaitableList<Handshake>; heldStreams: WaitableList<ServerResponse> }
> {
  const heldStreams = new WaitableList<ServerResponse>();
  const upstream = await startUpstream((req, res, recorded) => {
    if (req.url?.includes('stream')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: {"n":1}\n\n');
      heldStreams.push(res);
      return;
    }
    const payload = req.url?.includes('big') ? 'x'.repeat(8192) : undefined;
    const body = JSON.stringify({ ok: true, url: recorded.url, payload });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  const handshakes = new WaitableList<Handshake>();
  const wss = new WebSocketServer({
    server: upstream.server,
    handleProtocols: (protocols) => (protocols.has('rivet') ? 'rivet' : false),
  });
  wss.on('connection', (socket, req) => {
    handshakes.push({ url: req.url ?? '', headers: req.headers });
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  return {
    ...upstream,
    handshakes,
    heldStreams,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await upstream.close();
    },
  };
}

/** Opens an actor WebSocket; rejects with `HTTP <status>` when the server refuses the upgrade. */
const openActorSocket = (url: string, headers: Record<string, string> = {}): Promise<WebSocket> =>
  openSocket(url, PROTOCOLS, { headers });

async function echoes(socket: WebSocket, text: string): Promise<void> {
  socket.send(text);
  const [data] = (await once(socket, 'message')) as [Buffer];
  assert.equal(data.toString(), text);
}

async function closeSocket(socket: WebSocket): Promise<void> {
  const closed = once(socket, 'close');
  socket.close();
  await closed;
}

describe('examples/existing-app', () => {
  let upstream: Awaited<ReturnType<typeof startAmpUpstream>>;
  let app: RunningExample;

  before(async () => {
    const example = await loadExample<ExistingAppModule>('existing-app/server.mjs');
    upstream = await startAmpUpstream();
    app = await example.startServer({
      port: 0,
      host: '127.0.0.1',
      upstream: upstream.url,
      upstreamKey: 'server-key',
    });
  });
  after(async () => {
    await app.close(0);
    await upstream.close();
  });

  it("the app's own routes still work, and express.json() still parses their bodies", async () => {
    const received = upstream.record();
    assert.equal((await send(`${app.url}/health`)).status, 200);
    assert.equal((await send(`${app.url}/api-docs`)).status, 200);

    const created = await send(`${app.url}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'A-1', quantity: 2 }),
    });
    assert.equal(created.status, 201);
    assert.deepEqual(created.json(), { id: 1, sku: 'A-1', quantity: 2 });
    const invalid = await send(`${app.url}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'A-1' }),
    });
    assert.equal(invalid.status, 400);
    assert.deepEqual((await send(`${app.url}/v1/orders`)).json(), {
      orders: [{ id: 1, sku: 'A-1', quantity: 2 }],
    });
    assert.deepEqual(received.requests, [], 'the app routes never reach Amp');
  });

  it('provider routes spend the server key; management routes keep the user token', async () => {
    const received = upstream.record();
    const body = JSON.stringify({ model: 'claude', messages: [] });
    const provider = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer user-token' },
      body,
    });
    assert.equal(provider.status, 200);
    const toProvider = received.only();
    assert.equal(toProvider.url, '/api/provider/anthropic/v1/messages');
    assert.equal(toProvider.headers.authorization, 'Bearer server-key');
    assert.equal(toProvider.headers['x-api-key'], 'server-key');
    assert.equal(toProvider.body.toString(), body);

    const management = await send(`${app.url}/api/internal?getUserInfo`, {
      headers: { authorization: 'Bearer user-token' },
    });
    assert.equal(management.status, 200);
    const toManagement = received.last();
    assert.equal(toManagement.url, '/api/internal?getUserInfo');
    assert.equal(toManagement.headers.authorization, 'Bearer user-token');
    assert.equal(toManagement.headers['x-api-key'], undefined);
  });

  it('a gzip request body reaches Amp byte for byte: the router runs before express.json()', async () => {
    const received = upstream.record();
    const gzipped = gzipSync(JSON.stringify({ method: 'webSearch2', params: { q: 'x'.repeat(30_000) } }));
    const res = await send(`${app.url}/api/internal?webSearch2`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        authorization: 'Bearer user-token',
      },
      body: gzipped,
    });
    assert.equal(res.status, 200);
    const seen = received.only();
    assert.equal(seen.headers['content-encoding'], 'gzip');
    assert.ok(seen.body.equals(gzipped));
  });

  it(
    'compression() covers Amp responses but lets event streams through live',
    { timeout: 5000 },
    async () => {
      const big = await send(`${app.url}/api/internal?big`, {
        headers: { authorization: 'Bearer user-token', 'accept-encoding': 'gzip' },
      });
      assert.equal(big.status, 200);
      assert.equal(big.headers['content-encoding'], 'gzip');

      // Were compression() to buffer the stream, the first event would never arrive: a timeout.
      const mark = upstream.heldStreams.mark();
      const events = streamEvents(`${app.url}/api/provider/anthropic/v1/messages?stream`, {
        'accept-encoding': 'gzip',
        'content-type': 'application/json',
      });
      assert.equal(await events.firstChunk, 'data: {"n":1}\n\n');
      const [held] = await upstream.heldStreams.until(mark, (streams) => streams.length > 0);
      held!.write('data: {"n":2}\n\n');
      held!.end('data: [DONE]\n\n');
      const { status, headers, text } = await events.all;
      assert.equal(status, 200);
      assert.equal(headers['content-encoding'], undefined);
      assert.match(String(headers['cache-control']), /no-transform/);
      assert.equal(text, 'data: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n');
    },
  );

  it("cors() serves the app's routes, never Amp's identity routes", async () => {
    const origin = 'https://shop.example';
    const own = await send(`${app.url}/v1/orders`, { headers: { origin } });
    assert.equal(own.headers['access-control-allow-origin'], '*');
    const ownPreflight = await send(`${app.url}/v1/orders`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    assert.equal(ownPreflight.status, 204);

    const amp = await send(`${app.url}/api/internal?getUserInfo`, {
      headers: { origin, authorization: 'Bearer user-token' },
    });
    assert.equal(amp.status, 200);
    assert.equal(amp.headers['access-control-allow-origin'], undefined);

    const received = upstream.record();
    const ampPreflight = await send(`${app.url}/api/internal`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    assert.equal(ampPreflight.status, 403);
    assert.equal(ampPreflight.headers['access-control-allow-origin'], undefined);
    assert.deepEqual(received.requests, []);
  });

  it("Amp's agent WebSocket is tunnelled through attachUpgrade; other upgrades get 404", async () => {
    const handshakes = upstream.handshakes.mark();
    const socket = await openActorSocket(`ws://127.0.0.1:${new URL(app.url).port}${ACTOR_PATH}`, {
      authorization: 'Bearer user-token',
    });
    assert.equal(socket.protocol, 'rivet');
    await echoes(socket, '"ping"');
    await closeSocket(socket);
    const [seen] = upstream.handshakes.since(handshakes);
    assert.ok(seen);
    assert.equal(seen.url, ACTOR_PATH);
    assert.equal(seen.headers.authorization, 'Bearer user-token');
    assert.equal(seen.headers['sec-websocket-protocol'], PROTOCOLS.join(','));

    await assert.rejects(openActorSocket(`ws://127.0.0.1:${new URL(app.url).port}/v1/orders`), /HTTP 404/);
  });
});

describe('examples/internal-gateway', () => {
  const alice = { key: 'gw-alice-7d1f', name: 'alice', upstreamKey: 'amp-alice' };
  const bob = { key: 'gw-bob-93ac', name: 'bob', upstreamKey: 'amp-bob' };
  const sso = { 'x-auth-request-email': 'alice@example.com' };
  const MESSAGES = '/api/provider/anthropic/v1/messages';
  let upstream: Awaited<ReturnType<typeof startAmpUpstream>>;
  let gateway: RunningExample & { usage: Map<string, number> };
  let wsBase: string;

  before(async () => {
    const example = await loadExample<InternalGatewayModule>('internal-gateway/server.mjs');
    upstream = await startAmpUpstream();
    gateway = await example.startServer({
      port: 0,
      host: '127.0.0.1',
      upstream: upstream.url,
      clients: [alice, bob],
      employeeDomain: 'example.com',
    });
    wsBase = `ws://127.0.0.1:${new URL(gateway.url).port}`;
  });
  after(async () => {
    await gateway.close(0);
    await upstream.close();
  });

  const callProvider = (headers: Record<string, string>, path = MESSAGES) =>
    send(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: '{"model":"claude"}',
    });

  it('SSO refuses provider calls without an employee identity, before Amp is contacted', async () => {
    const received = upstream.record();
    const anonymous = await callProvider({ authorization: `Bearer ${alice.key}` });
    assert.equal(anonymous.status, 401);
    assert.equal((anonymous.json() as { error: string }).error, 'employee_sso_required');
    const outsider = await callProvider({
      authorization: `Bearer ${alice.key}`,
      'x-auth-request-email': 'mallory@example.org',
    });
    assert.equal(outsider.status, 401);
    // Express matches mounts case-insensitively, as the library matches groups.
    const shouted = await callProvider({ authorization: `Bearer ${alice.key}` }, '/API/Provider/anthropic');
    assert.equal(shouted.status, 401);
    // Spellings that an upstream may read as `/api/provider` must not slip past the mount.
    for (const path of [
      '/api/%70rovider/anthropic',
      '/api/provider;x/anthropic',
      '/api/provider%3b/anthropic',
    ]) {
      const hidden = await callProvider({ authorization: `Bearer ${alice.key}` }, path);
      assert.equal(hidden.status, 400, path);
    }
    assert.deepEqual(received.requests, []);
  });

  it("an employee's provider call needs a gateway key and spends that client's own Amp key", async () => {
    const received = upstream.record();
    const keyless = await callProvider(sso);
    assert.equal(keyless.status, 401);
    assert.equal((keyless.json() as { error: string }).error, 'amp_client_unauthorized');
    assert.deepEqual(received.requests, []);

    const res = await callProvider({ ...sso, authorization: `Bearer ${alice.key}` });
    assert.equal(res.status, 200);
    const seen = received.only();
    assert.equal(seen.url, MESSAGES);
    assert.equal(seen.headers.authorization, 'Bearer amp-alice');
    assert.equal(seen.headers['x-api-key'], 'amp-alice');
    assert.equal(seen.headers['x-auth-request-email'], undefined, 'Amp never learns who the employee is');
  });

  it('management is dual-token: the gateway key is required, the user token wins over the mapping', async () => {
    const received = upstream.record();
    const withToken = await send(`${gateway.url}/api/internal?getUserInfo`, {
      headers: { authorization: `Bearer ${bob.key}`, 'x-amp-token': 'bob-own-amp-token' },
    });
    assert.equal(withToken.status, 200, 'no SSO needed: Amp checks the token');
    let seen = received.only();
    assert.equal(seen.headers.authorization, 'Bearer bob-own-amp-token');
    assert.equal(seen.headers['x-amp-token'], undefined);

    // What the Amp CLI sends: its gateway key alone.
    const cli = await send(`${gateway.url}/api/threads/T-1`, {
      headers: { authorization: `Bearer ${bob.key}` },
    });
    assert.equal(cli.status, 200);
    seen = received.last();
    assert.equal(seen.url, '/api/threads/T-1');
    assert.equal(seen.headers.authorization, 'Bearer amp-bob');

    const afterCli = upstream.record();
    const tokenOnly = await send(`${gateway.url}/api/internal?getUserInfo`, {
      headers: { 'x-amp-token': 'someone-elses-token' },
    });
    assert.equal(tokenOnly.status, 401);
    assert.equal((tokenOnly.json() as { error: string }).error, 'amp_client_unauthorized');
    assert.deepEqual(afterCli.requests, []);
  });

  it('counts provider calls per client, from onProxyEvent', async () => {
    const start = new Map(gateway.usage);
    for (const client of [alice, alice, bob]) {
      const employee = { 'x-auth-request-email': `${client.name}@example.com` };
      assert.equal((await callProvider({ ...employee, authorization: `Bearer ${client.key}` })).status, 200);
    }
    // Neither refused calls nor management calls count.
    await callProvider({ ...sso, authorization: 'Bearer not-a-gateway-key' });
    await send(`${gateway.url}/api/internal`, { headers: { authorization: `Bearer ${bob.key}` } });

    const delta = (name: string) => (gateway.usage.get(name) ?? 0) - (start.get(name) ?? 0);
    assert.equal(delta('alice'), 2);
    assert.equal(delta('bob'), 1);
    const report = await send(`${gateway.url}/gateway/usage`, { headers: sso });
    assert.deepEqual(report.json(), Object.fromEntries(gateway.usage));
    assert.equal((await send(`${gateway.url}/gateway/usage`)).status, 401);
  });

  it('WebSockets: actors are tunnelled with the mapped key; provider upgrades need SSO too', async () => {
    const actor = upstream.handshakes.mark();
    const socket = await openActorSocket(`${wsBase}${ACTOR_PATH}`, { authorization: `Bearer ${alice.key}` });
    await echoes(socket, '"ping"');
    await closeSocket(socket);
    assert.deepEqual(
      upstream.handshakes.since(actor).map((h) => h.headers.authorization),
      ['Bearer amp-alice'],
    );

    const handshakes = upstream.handshakes.mark();
    const realtime = `${wsBase}/api/provider/openai/v1/realtime`;
    await assert.rejects(openActorSocket(realtime, { authorization: `Bearer ${alice.key}` }), /HTTP 401/);
    await assert.rejects(
      openActorSocket(`${wsBase}/api/%70rovider/openai/v1/realtime`, {
        authorization: `Bearer ${alice.key}`,
      }),
      /HTTP 400/,
    );
    assert.deepEqual(upstream.handshakes.since(handshakes), []);

    const allowed = await openActorSocket(realtime, { ...sso, authorization: `Bearer ${alice.key}` });
    await closeSocket(allowed);
    const [seen] = upstream.handshakes.since(handshakes);
    assert.ok(seen);
    assert.equal(seen.url, '/api/provider/openai/v1/realtime');
    assert.equal(seen.headers.authorization, 'Bearer amp-alice');
  });

  it('no gateway key and no employee identity ever reached the upstream', () => {
    const everything = [
      ...upstream.requests.map((r) => [r.url, ...r.rawHeaders, r.body.toString('latin1')].join('\n')),
      ...upstream.handshakes.items.map((h) => [h.url, JSON.stringify(h.headers)].join('\n')),
    ].join('\n');
    assert.ok(upstream.requests.length > 5 && upstream.handshakes.items.length > 1);
    for (const secret of [alice.key, bob.key, 'x-auth-request-email', '@example.com']) {
      assert.ok(!everything.toLowerCase().includes(secret), `${secret} reached the upstream`);
    }
  });
});

describe('examples/client-setup/write-secrets.mjs', () => {
  const script = fileURLToPath(new URL('client-setup/write-secrets.mjs', EXAMPLES));
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amp-secrets-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the script as a user would, the key on stdin. */
  async function run(
    args: string[],
    stdin: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const env = { ...process.env };
    delete env.AMP_URL; // only --url counts here
    const child = spawn(process.execPath, [script, ...args], { stdio: 'pipe', env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.end(stdin);
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  }

  const readJson = async (file: string): Promise<unknown> => JSON.parse(await readFile(file, 'utf8'));
  const modeOf = async (file: string): Promise<number> => (await stat(file)).mode & 0o777;

  it('creates the directory and a 0600 file holding apiKey@<AMP_URL>', async () => {
    const file = join(dir, 'fresh', 'amp', 'secrets.json');
    const result = await run(['--url', 'http://127.0.0.1:8317', file], 'gw-alice-7d1f\n');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readJson(file), { 'apiKey@http://127.0.0.1:8317': 'gw-alice-7d1f' });
    assert.equal(await modeOf(file), 0o600);
    assert.ok(!result.stdout.includes('gw-alice-7d1f'), 'the key is never printed');
  });

  it('merges into an existing file, keeping other entries, and tightens its mode', async () => {
    const file = join(dir, 'secrets.json');
    await writeFile(
      file,
      JSON.stringify({ 'apiKey@https://ampcode.com/': 'own-amp-key', 'apiKey@http://gw:8317': 'old' }),
    );
    await chmod(file, 0o644);
    const result = await run(['--url', 'http://gw:8317', file], 'new-key');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readJson(file), {
      'apiKey@https://ampcode.com/': 'own-amp-key',
      'apiKey@http://gw:8317': 'new-key',
    });
    assert.equal(await modeOf(file), 0o600);
  });

  it('keeps the URL exactly as written: a trailing slash is a different entry', async () => {
    const file = join(dir, 'slash.json');
    assert.equal((await run(['--url', 'http://gw:8317/', file], 'k1')).code, 0);
    assert.equal((await run(['--url', 'http://gw:8317', file], 'k2')).code, 0);
    assert.deepEqual(await readJson(file), { 'apiKey@http://gw:8317/': 'k1', 'apiKey@http://gw:8317': 'k2' });
  });

  it('refuses to rewrite a file it cannot parse, and a missing key or URL', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{ not json');
    const broken = await run(['--url', 'http://gw:8317', file], 'k');
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /not readable JSON/);
    assert.equal(await readFile(file, 'utf8'), '{ not json');

    const other = join(dir, 'other.json');
    assert.equal((await run(['--url', 'http://gw:8317', other], '')).code, 1);
    assert.equal((await run([other], 'k')).code, 1);
    assert.equal(existsSync(other), false);
  });
});

/**
 * The packages a script imports by name (not `node:` or a built-in, not a relative path): the
 * static imports at the start of a line, dynamic `import('…')` and `require('…')` anywhere.
 */
function importedPackages(source: string): Set<string> {
  const specifiers = [
    ...source.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((match) => match[1]!);
  return new Set(
    specifiers
      .filter(
        (specifier) => !specifier.startsWith('.') && !specifier.startsWith('/') && !isBuiltin(specifier),
      )
      .map((specifier) => specifier.split('/', specifier.startsWith('@') ? 2 : 1).join('/')),
  );
}

describe('examples/*: each folder installs and runs on its own', () => {
  const folders = readdirSync(EXAMPLES, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
  const text = (folder: string, file: string) => readFileSync(new URL(`${folder}/${file}`, EXAMPLES), 'utf8');
  const scriptsOf = (folder: string) =>
    readdirSync(new URL(`${folder}/`, EXAMPLES)).filter((file) => /\.[cm]?js$/.test(file));
  const manifestOf = (folder: string) =>
    JSON.parse(text(folder, 'package.json')) as {
      private?: boolean;
      dependencies?: Record<string, string>;
    };

  it('finds the examples the README lists', () => {
    for (const folder of ['client-setup', 'existing-app', 'internal-gateway', 'standalone']) {
      assert.ok(folders.includes(folder), folder);
    }
  });

  it('reads the imports of a script', () => {
    const source = [
      "import { a } from 'node:fs';",
      "import path from 'path';",
      'import {',
      '  b,',
      "} from '@scope/pkg/sub';",
      "import 'side-effect';",
      "import { c } from './local.mjs';",
      "const d = await import('dynamic/deep/file.js');",
      "// Run with `import x from 'a-comment'` in mind",
    ].join('\n');
    assert.deepEqual([...importedPackages(source)].sort(), ['@scope/pkg', 'dynamic', 'side-effect']);
  });

  for (const folder of folders) {
    describe(folder, () => {
      it('has a private package.json that depends on every package its scripts import', () => {
        const manifest = manifestOf(folder);
        assert.equal(manifest.private, true, 'examples are never published');
        const dependencies = manifest.dependencies ?? {};
        for (const script of scriptsOf(folder)) {
          for (const name of importedPackages(text(folder, script))) {
            assert.ok(name in dependencies, `${folder}/${script} imports ${name}, missing from package.json`);
          }
        }
        // The checkout itself, built: what the example's README tells to build first.
        if ('amp-proxy-middleware' in dependencies) {
          assert.equal(dependencies['amp-proxy-middleware'], 'file:../..');
        }
      });

      it('has a README that names the commands to run it, from its own folder', () => {
        const readme = text(folder, 'README.md');
        if (Object.keys(manifestOf(folder).dependencies ?? {}).length > 0) {
          assert.match(readme, new RegExp(`cd examples/${folder}\\n+npm install\\b`));
        }
        // Every script started on its own (it has a main guard) is named as `node <script>`...
        for (const script of scriptsOf(folder)) {
          if (text(folder, script).includes('process.argv[1]')) {
            assert.ok(readme.includes(`node ${script}`), `README names \`node ${script}\``);
          }
        }
        // ...and every `node <script>` in it is a script of this folder.
        for (const [, script] of readme.matchAll(/\bnode ([\w./-]+\.[cm]?js)\b/g)) {
          assert.ok(scriptsOf(folder).includes(script!), `README runs ${script}, not a script of ${folder}`);
        }
      });
    });
  }
});
