/**
 * How the HTTPS-upstream and egress-proxy tests run a gateway end to end and watch it: the same
 * gateway, upstream, clients and command line, so that the two differ only in the path to the
 * upstream they test.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket, type ClientOptions } from 'ws';
import {
  attachUpgrade,
  type AmpMiddleware,
  type AmpProxyEvent,
  type AmpProxyOptions,
} from '../../src/index.js';
import type { EXPRESS_VERSIONS } from './apps.js';
import { WaitableList } from './events.js';
import { closeServer, type RecordedRequest, type UpstreamHandler } from './upstream.js';

const BIN = join(fileURLToPath(new URL('../..', import.meta.url)), 'src/bin/amp-proxy.ts');

/** Rejects with `what` when `promise` has not settled within `ms`: a guard against a hung test. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What the middleware reported: its events and its log lines, each a list a test can wait on. */
export function observe() {
  const events = new WaitableList<AmpProxyEvent>();
  const lines = new WaitableList<Record<string, unknown>>();
  const log = (line: object): void => lines.push(line as Record<string, unknown>);
  const options = {
    onProxyEvent: events.push,
    logger: { info: log, warn: log, error: log, debug: log },
  } satisfies AmpProxyOptions;
  return {
    events,
    lines,
    options,
    /** The `request-end` event and log line of the one request sent since the marks. */
    async requestEnd(eventMark: number, lineMark: number) {
      const isEnd = (item: { type?: unknown }) => item.type === 'request-end';
      const [event] = (await events.until(eventMark, (items) => items.some(isEnd))).filter(isEnd);
      const [line] = (await lines.until(lineMark, (items) => items.some(isEnd))).filter(isEnd);
      assert.ok(event && event.type === 'request-end');
      assert.ok(line);
      return { event, line };
    },
  };
}

/**
 * The gateway: a router in an Express app, with upgrades wired, as an application mounts it.
 * `close()` closes the router too.
 */
export async function startGatewayApp(
  express: (typeof EXPRESS_VERSIONS)[number][1],
  router: AmpMiddleware,
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const app = express();
  app.use(router);
  const server = createServer(app);
  attachUpgrade(server, router);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: async () => {
      await router.close();
      await closeServer(server);
    },
  };
}

/**
 * Resolves once the socket is open; a refused upgrade rejects with `HTTP <status>`, so a test can
 * assert on the status the gateway answered with.
 */
export function openSocket(
  url: string,
  protocols: readonly string[],
  options: ClientOptions = {},
): Promise<WebSocket> {
  const socket = new WebSocket(url, [...protocols], options);
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
    socket.once('unexpected-response', (_req, res) => {
      res.resume();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
  });
}

/**
 * A POST whose answer is an event stream: `firstChunk` resolves on its first chunk (so a test sees
 * events arrive while the upstream still holds the stream open), `all` at its end; `abort()`
 * leaves, as a client that gives up does.
 */
export function streamEvents(url: string, headers: Record<string, string>) {
  let first!: (text: string) => void;
  const firstChunk = new Promise<string>((resolve) => (first = resolve));
  const req = request(url, { method: 'POST', agent: false, headers });
  const all = new Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>(
    (resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text === '') first(chunk);
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
    },
  );
  // An aborted stream rejects `all`, which a test that aborts does not wait for.
  all.catch(() => undefined);
  req.end('{"stream":true}');
  return { firstChunk, all, abort: () => req.destroy() };
}

/** `streamEvents` for a gateway client presenting `clientKey`. */
export function openEventStream(url: string, clientKey: string) {
  return streamEvents(url, { authorization: `Bearer ${clientKey}` });
}

/** An event stream the upstream holds open: the test ends it (`res.end`), or waits for it to close. */
export interface HeldStream {
  res: ServerResponse;
  recorded: RecordedRequest;
}

/**
 * The upstream's answers (`handler`): an event stream held open in `held` until the test ends it
 * (paths ending in `?stream`), so a test can tell a gateway that streams from one that buffers; a
 * digest of an upload (`/api/provider/openai/v1/files`), so a large body is checked without
 * echoing it; else a JSON echo of the path.
 */
export function upstreamAnswers(): { handler: UpstreamHandler; held: WaitableList<HeldStream> } {
  const held = new WaitableList<HeldStream>();
  const handler: UpstreamHandler = (_req, res, recorded) => {
    if (recorded.url.endsWith('?stream')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('event: message_start\ndata: {"n":1}\n\n');
      held.push({ res, recorded });
      return;
    }
    const body = recorded.url.startsWith('/api/provider/openai/v1/files')
      ? { length: recorded.body.length, sha256: createHash('sha256').update(recorded.body).digest('hex') }
      : { ok: true, url: recorded.url };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  return { handler, held };
}

/**
 * The gateway's command line, run from source in `cwd` with exactly `env`: nothing inherited, so no
 * proxy variable or key from the machine running the tests reaches it.
 */
function spawnCli(cwd: string, env: NodeJS.ProcessEnv, args: string[]) {
  return spawn(process.execPath, ['--import', import.meta.resolve('tsx'), BIN, ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Starts the gateway's command line on a free port; `listening` resolves with its URL, read from
 * its start table. `output()` is all it has written so far, for assertions and failure messages.
 */
export function startCli(cwd: string, env: NodeJS.ProcessEnv, args: string[]) {
  const child = spawnCli(cwd, env, ['--port', '0', ...args]);
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const listening = within(
    new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /listening\s+(http:\/\/\S+)/.exec(output);
        if (match) resolve(match[1]!);
      });
      child.once('exit', () => reject(new Error(`the gateway exited:\n${output}`)));
    }),
    15_000,
    'the gateway to listen',
  );
  return {
    listening,
    output: () => output,
    /** Its JSON log lines so far. */
    logLines: (): Record<string, unknown>[] =>
      output
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    /** Resolves on its exit, with its exit code. */
    exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))),
    signal: (name: NodeJS.Signals) => child.kill(name),
    /** SIGTERM, as a supervisor stops it; SIGKILL if it has not exited within 10 s. */
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await within(exited, 10_000, 'the gateway to exit').catch(() => child.kill('SIGKILL'));
    },
  };
}

/** Runs a command line that exits by itself (`--print-config`): its exit code and all it wrote. */
export async function runCli(
  cwd: string,
  env: NodeJS.ProcessEnv,
  args: string[],
): Promise<{ code: number; output: string }> {
  const child = spawnCli(cwd, env, args);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = within(once(child, 'exit'), 15_000, args.join(' ')).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  const [code] = (await exited) as [number];
  return { code, output };
}
