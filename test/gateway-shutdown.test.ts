// The command line's shutdown and reload, by signal, as a supervisor or an operator sends them.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { runCli, startCli, upstreamAnswers, within } from './support/gateway-harness.js';
import { RawClient } from './support/raw-client.js';
import { startUpstream, startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';

type Cli = ReturnType<typeof startCli>;

/** Resolves once the gateway has written a log line that `matches`. */
function logged(cli: Cli, matches: (line: Record<string, unknown>) => boolean, what: string) {
  let waiting = true;
  const found = (async () => {
    while (waiting) {
      const line = cli.logLines().find(matches);
      if (line) return line;
      await sleep(10);
    }
    throw new Error(`gave up waiting for ${what}`);
  })();
  return within(found, 10_000, `${what}:\n${cli.output()}`).finally(() => (waiting = false));
}

describe('gateway command: shutdown and reload by signal', () => {
  let upstream: FakeWebSocketUpstream;
  let dir: string;
  const { handler, held } = upstreamAnswers();

  before(async () => {
    upstream = await startWebSocketUpstream(handler);
    dir = await mkdtemp(join(tmpdir(), 'amp-signals-'));
    await writeFile(join(dir, 'package.json'), '{}');
  });
  after(async () => {
    for (const stream of held.items) stream.res.destroy();
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('SIGTERM: logs the drain, answers /readyz 503, closes tunnels with 1001 both ways, ends a cut stream with its request-end line', async () => {
    const cli = startCli(dir, { PATH: process.env.PATH, HOME: dir, AMP_PROXY_UPSTREAM: upstream.url }, [
      '--drain-ms',
      '1500',
    ]);
    try {
      const port = Number(new URL(await cli.listening).port);
      const heldMark = held.mark();
      // A stream the upstream never ends: the drain deadline cuts it.
      const cut = await RawClient.open(port);
      cut.write('GET /api/threads/cut?stream HTTP/1.1\r\nHost: gw\r\n\r\n');
      // A stream that ends during the drain, on a connection kept alive for a readiness probe.
      const probe = await RawClient.open(port);
      probe.write('GET /api/threads/ends?stream HTTP/1.1\r\nHost: gw\r\n\r\n');
      await held.until(heldMark, (items) => items.length === 2);
      const ending = held.since(heldMark).find((stream) => stream.recorded.url.includes('ends'))!;

      const closeMark = upstream.closes.mark();
      const socket = new WebSocket(`ws://127.0.0.1:${port}/actors/gateway/threadActor/websocket/`);
      const clientClose = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
      await new Promise((resolve, reject) => {
        socket.once('open', resolve);
        socket.once('error', reject);
      });

      cli.signal('SIGTERM');
      const started = await logged(cli, (line) => line.msg === 'draining started', 'draining started');
      assert.equal(started.drainMs, 1500);

      probe.write('GET /readyz HTTP/1.1\r\nHost: gw\r\n\r\n');
      ending.res.end('event: message_stop\ndata: {}\n\n');
      const streamed = await probe.finalResponse();
      assert.equal(streamed.status, 200);
      const readiness = await probe.finalResponse();
      assert.equal(readiness.status, 503);
      assert.deepEqual(readiness.json(), { status: 'draining' });

      assert.equal(await clientClose, 1001);
      assert.deepEqual(await upstream.closes.until(closeMark, (codes) => codes.length === 1), [1001]);

      assert.equal(await within(cli.exited, 10_000, 'the gateway to exit'), 0);
      await cut.whenClosed;
      const lines = cli.logLines();
      const cutEnd = lines.find((line) => line.msg === 'amp request' && String(line.path).includes('cut'));
      assert.ok(cutEnd, `no request-end line for the cut stream:\n${cli.output()}`);
      const ended = lines.find((line) => line.msg === 'draining ended');
      assert.deepEqual(ended && ended.cutOff, true);
      assert.ok(
        lines.indexOf(cutEnd) < lines.indexOf(ended!),
        'the cut stream is logged before the drain ends',
      );
    } finally {
      await cli.stop();
    }
  });

  it('SIGHUP reloads the configuration and keeps serving', async () => {
    const config = join(dir, '.amp-proxyrc.json');
    await writeFile(config, JSON.stringify({ upstream: upstream.url }));
    const cli = startCli(dir, { PATH: process.env.PATH, HOME: dir }, []);
    try {
      const url = await cli.listening;
      await writeFile(config, JSON.stringify({ upstream: upstream.url, policies: { management: 'inject' } }));
      // The file watcher may reload first; either way SIGHUP must not end the process.
      cli.signal('SIGHUP');
      const reloaded = await logged(cli, (line) => line.msg === 'configuration reloaded', 'a reload');
      assert.deepEqual(reloaded.changed, ['policies.management']);
      const res = await fetch(`${url}/healthz`);
      assert.equal(res.status, 200);
      assert.equal(cli.logLines().filter((line) => line.msg === 'configuration not reloaded').length, 0);
    } finally {
      await cli.stop();
      await rm(config, { force: true });
    }
  });

  it('a port in use names the settings that choose it, and exits 2', async () => {
    const taken = await startUpstream();
    try {
      const { code, output } = await runCli(dir, { PATH: process.env.PATH, HOME: dir }, [
        '--port',
        String(taken.port),
      ]);
      assert.equal(code, 2, output);
      assert.match(output, /port: \d+ on 127\.0\.0\.1 is already in use \(EADDRINUSE\)/);
      assert.match(output, /--port, AMP_PROXY_PORT or the config file's port/);
    } finally {
      await taken.close();
    }
  });
});
