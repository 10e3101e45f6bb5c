import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { AmpProxyConfigError } from '../src/index.js';
import { send } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const USAGE_TOKEN = 'usage-token-0123456789';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk) => (text += chunk));
  return {
    stream,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l)),
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('standalone gateway', () => {
  let upstream: FakeUpstream;
  let dir: string;
  let gateway: RunningGateway;
  const output = capture();

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url === '/api/provider/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: 1\n\n');
        setTimeout(() => res.end('data: 2\n\n'), 300);
        return;
      }
      res.end('{"ok":true}');
    });
    dir = await mkdtemp(join(tmpdir(), 'amp-gateway-'));
    await writeFile(join(dir, 'package.json'), '{"name":"team-gateway"}');
    await writeFile(join(dir, 'server.key'), 'server-key-from-file-123\n');
    await writeFile(
      join(dir, '.amp-proxyrc.yaml'),
      `upstream: ${upstream.url}\nupstreamKey: { file: server.key }\nmetricsPath: /metrics\nauditLog: audit.jsonl\nusagePath: /usage\nclients:\n  - key: gw-team-key-1\n    name: team\n`,
    );
    gateway = await startGateway({
      cwd: dir,
      port: 0,
      env: { AMP_PROXY_USAGE_TOKEN: USAGE_TOKEN },
      output: output.stream,
    });
  });
  after(async () => {
    await gateway.shutdown(100);
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('prints one start table without any key', () => {
    const table = output.text();
    assert.match(table, /upstream\s+http:\/\/127\.0\.0\.1/);
    assert.match(table, /policy provider\s+inject/);
    assert.match(table, /policy management\s+passthrough/);
    assert.match(table, /server key\s+file .*server\.key/);
    assert.match(table, /clients\s+1/);
    assert.match(table, /localhost only\s+no/);
    assert.match(table, /actor token\s+none/);
    assert.ok(!table.includes('server-key-from-file-123'));
    assert.ok(!table.includes('gw-team-key-1'));
  });

  it('answers /healthz and /readyz', async () => {
    assert.deepEqual((await send(`${gateway.url}/healthz`)).json(), { status: 'ok' });
    assert.equal((await send(`${gateway.url}/readyz`)).status, 200);
  });

  it('proxies with the configured policies and logs one JSON line per request', async () => {
    upstream.requests.length = 0;
    const res = await send(`${gateway.url}/api/provider/anthropic/v1/messages`, {
      headers: { authorization: 'Bearer gw-team-key-1' },
    });
    assert.equal(res.status, 200);
    assert.equal(upstream.only().headers.authorization, 'Bearer server-key-from-file-123');
    await until(() => output.lines().some((l) => l.msg === 'amp request'), 'a request log line');
    const line = output.lines().find((l) => l.msg === 'amp request');
    assert.equal(line.group, 'provider');
    // The team's client has no Amp key of its own, so the server key was spent on its behalf.
    assert.equal(line.keySource, 'config');
    assert.equal(line.client, 'team');
    assert.equal(line.outcome, 'completed');
    assert.ok(!output.text().includes('gw-team-key-1'));
  });

  it('writes the audit stream to auditLog as JSON lines, naming the client, never its key', async () => {
    const audited = () =>
      readFileSync(join(dir, 'audit.jsonl'), 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    await until(() => audited().some((line) => line.group === 'provider'), 'an audit line');
    const line = audited().find((entry) => entry.group === 'provider')!;
    assert.equal(line.audit, 'request');
    assert.equal(line.client, 'team');
    assert.equal(line.status, 200);
    assert.match(output.text(), /audit log\s+\S+audit\.jsonl/);
    const text = readFileSync(join(dir, 'audit.jsonl'), 'utf8');
    assert.ok(!text.includes('gw-team-key-1') && !text.includes('server-key-from-file-123'));
  });

  it('serves the usage report at usagePath, only to the usage token', async () => {
    assert.equal((await send(`${gateway.url}/usage`)).status, 401);
    const wrong = await send(`${gateway.url}/usage`, { headers: { authorization: 'Bearer gw-team-key-1' } });
    assert.equal(wrong.status, 401);
    const res = await send(`${gateway.url}/usage`, { headers: { authorization: `Bearer ${USAGE_TOKEN}` } });
    assert.equal(res.status, 200);
    const report = res.json() as {
      clients: Record<string, { requests: Record<string, Record<string, number>> }>;
    };
    assert.ok((report.clients.team?.requests.provider?.['200'] ?? 0) >= 1);
    assert.ok(!res.body.includes('gw-team-key-1'));
  });

  it('refuses to start with usagePath but no AMP_PROXY_USAGE_TOKEN', async () => {
    const bare = await mkdtemp(join(tmpdir(), 'amp-gateway-usage-'));
    try {
      await writeFile(join(bare, '.amp-proxyrc.yaml'), `upstream: ${upstream.url}\nusagePath: /usage\n`);
      await assert.rejects(
        startGateway({ cwd: bare, port: 0, env: {}, output: new PassThrough() }),
        (error: unknown) => error instanceof AmpProxyConfigError && error.option === 'usagePath',
      );
    } finally {
      await rm(bare, { recursive: true, force: true });
    }
  });

  it('serves Prometheus metrics at metricsPath', async () => {
    const res = await send(`${gateway.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(
      res.body,
      /amp_proxy_requests_total\{group="provider",status="200",outcome="completed"\} \d/,
    );
    assert.match(res.body, /amp_proxy_server_key_requests_total|amp_proxy_requests_in_flight/);
  });

  it('reloads when the config file changes, logging option paths and never values', async () => {
    await writeFile(
      join(dir, '.amp-proxyrc.yaml'),
      `upstream: ${upstream.url}\nupstreamKey: { file: server.key }\nmetricsPath: /metrics\nauditLog: audit.jsonl\nusagePath: /usage\npolicies: { management: inject }\nclients:\n  - key: gw-team-key-1\n    name: team\n`,
    );
    await until(() => output.lines().some((l) => l.msg === 'configuration reloaded'), 'a reload');
    const reloaded = output.lines().find((l) => l.msg === 'configuration reloaded');
    assert.deepEqual(reloaded.changed, ['policies.management']);
    upstream.requests.length = 0;
    await send(`${gateway.url}/api/threads`, { headers: { authorization: 'Bearer gw-team-key-1' } });
    assert.equal(upstream.only().headers.authorization, 'Bearer server-key-from-file-123');
  });

  it('keeps the old configuration when the new one is invalid', async () => {
    await writeFile(
      join(dir, '.amp-proxyrc.yaml'),
      `upstream: ${upstream.url}\npolicies: { management: pass }\n`,
    );
    await until(() => output.lines().some((l) => l.msg === 'configuration not reloaded'), 'a refused reload');
    const refused = output.lines().find((l) => l.msg === 'configuration not reloaded');
    assert.equal(refused.option, 'policies.management');
    upstream.requests.length = 0;
    await send(`${gateway.url}/api/threads`, { headers: { authorization: 'Bearer gw-team-key-1' } });
    assert.equal(upstream.only().headers.authorization, 'Bearer server-key-from-file-123');
  });
});

describe('gateway shutdown', () => {
  it('lets a stream finish, ends WebSockets with 1001, and stops accepting', async () => {
    const upstream = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      setTimeout(() => res.end('data: 2\n\n'), 300);
    });
    const wss = new WebSocketServer({ server: upstream.server });
    const dir = await mkdtemp(join(tmpdir(), 'amp-shutdown-'));
    await writeFile(join(dir, 'package.json'), '{}');
    const gateway = await startGateway({
      cwd: dir,
      port: 0,
      env: { AMP_PROXY_UPSTREAM: upstream.url },
      output: new PassThrough(),
      watch: false,
    });
    try {
      const streamed = new Promise<string>((resolve) => {
        request(`${gateway.url}/api/threads/stream`, { agent: false }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve(text));
          res.on('error', () => resolve(`cut after ${text}`));
        }).end();
      });
      const socket = new WebSocket(
        `${gateway.url.replace('http', 'ws')}/actors/gateway/threadActor/websocket/`,
      );
      const socketClosed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
      await new Promise((resolve) => socket.once('open', resolve));
      await sleep(100);
      const done = gateway.shutdown(5000);
      assert.equal(await socketClosed, 1001);
      assert.equal(await streamed, 'data: 1\n\ndata: 2\n\n');
      await done;
      await assert.rejects(send(`${gateway.url}/healthz`), /ECONNREFUSED/);
    } finally {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('logs the WebSockets it ends, and counts them closed, before the shutdown is over', async () => {
    const upstream = await startUpstream();
    const wss = new WebSocketServer({ server: upstream.server });
    const dir = await mkdtemp(join(tmpdir(), 'amp-shutdown-'));
    await writeFile(join(dir, 'package.json'), '{}');
    await writeFile(join(dir, '.amp-proxyrc.yaml'), 'metricsPath: /metrics\n');
    const output = capture();
    const gateway = await startGateway({
      cwd: dir,
      port: 0,
      env: { AMP_PROXY_UPSTREAM: upstream.url },
      output: output.stream,
      watch: false,
    });
    try {
      const sockets = Array.from(
        { length: 3 },
        () => new WebSocket(`${gateway.url.replace('http', 'ws')}/actors/gateway/threadActor/websocket/`),
      );
      await Promise.all(sockets.map((socket) => once(socket, 'open')));
      const openMetrics = await send(`${gateway.url}/metrics`);
      assert.match(openMetrics.body.toString(), /amp_proxy_websockets_open\{group="actors"\} 3/);
      // The command exits as soon as the shutdown resolves: whatever is not logged by then never is.
      await gateway.shutdown(5000);
      const closes = output.lines().filter((line) => line.msg === 'amp websocket');
      assert.equal(closes.length, 3);
      assert.ok(closes.every((line) => line.type === 'websocket-close' && line.group === 'actors'));
    } finally {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('amp-proxy command', () => {
  // The children run in temporary directories, where `tsx` would not resolve by name.
  const bin = ['--import', import.meta.resolve('tsx'), 'src/bin/amp-proxy.ts'];

  it('starts with no config file and no key, answers, and exits 0 on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amp-bin-'));
    await writeFile(join(dir, 'package.json'), '{}');
    const child = spawn(process.execPath, [...bin.slice(0, 2), join(process.cwd(), bin[2]!), '--port', '0'], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: dir },
    });
    try {
      let out = '';
      child.stdout.on('data', (chunk) => (out += chunk));
      await until(() => /listening\s+http:\/\/\S+/.test(out), 'the start table');
      const url = /listening\s+(http:\/\/\S+)/.exec(out)![1]!;
      assert.match(out, /server key\s+none/);
      const res = await send(`${url}/api/provider/anthropic/v1/messages`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 503);
      assert.equal((res.json() as { error: string }).error, 'amp_upstream_key_missing');
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) =>
        child.once('exit', (exitCode) => resolve(exitCode)),
      );
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--print-config prints the configuration the gateway would run, secrets redacted; what it would refuse exits 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amp-bin-'));
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, [...bin.slice(0, 2), join(process.cwd(), bin[2]!), ...args], {
          cwd: dir,
          env: { PATH: process.env.PATH, HOME: dir },
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (c) => (out += c));
        child.stderr.on('data', (c) => (err += c));
        child.on('exit', (code) => resolve({ code: code ?? -1, out, err }));
      });
    try {
      await writeFile(join(dir, 'package.json'), '{}');
      await writeFile(
        join(dir, 'good.json'),
        '{"upstreamKey":"sk-very-secret-key","clients":[{"key":"gw-secret-key-1"}]}',
      );
      const printed = await run(['--config', 'good.json', '--print-config']);
      assert.equal(printed.code, 0);
      const config = JSON.parse(printed.out);
      assert.equal(config.upstreamKey, 'sk-v…');
      assert.equal(config.clients[0].key, 'gw-s…');
      assert.ok(!printed.out.includes('sk-very-secret-key'));
      await writeFile(join(dir, 'bad.json'), '{"policies":{"browser":"inject"}}');
      const bad = await run(['--config', 'bad.json']);
      assert.equal(bad.code, 2);
      assert.match(bad.err, /bad\.json: policies\.browser: .*never carry the server key/);
      // What the gateway would refuse, --print-config refuses, naming the option.
      const badPort = await run(['--config', 'good.json', '--port', '70000', '--print-config']);
      assert.equal(badPort.code, 2);
      assert.match(badPort.err, /--port: expected a port number from 0 to 65535, got "70000"/);
      // A key the Amp CLI stored is shown by where it comes from, never itself.
      await mkdir(join(dir, '.local/share/amp'), { recursive: true });
      await writeFile(
        join(dir, '.local/share/amp/secrets.json'),
        '{"apiKey@https://ampcode.com/":"sk-cli-stored-key-0001"}',
      );
      const ambient = await run(['--print-config', '--port', '0']);
      assert.equal(ambient.code, 0);
      const effective = JSON.parse(ambient.out);
      assert.equal(
        effective.upstreamKeyOrigin,
        `Amp CLI secrets file ${join(dir, '.local/share/amp/secrets.json')}`,
      );
      assert.equal(effective.upstreamKey, 'sk-c…');
      assert.equal(effective.gateway.port, 0);
      assert.ok(!ambient.out.includes('sk-cli-stored-key-0001'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
