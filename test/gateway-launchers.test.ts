// `npm start` (and `npx amp-proxy`) then SIGTERM to npm, as a supervisor sends it: the gateway
// must drain and exit, not live on under PID 1. Runs the built gateway (npm test builds it first).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'dist/esm/bin/amp-proxy.js');

/** Resolves with the gateway's URL once its start table names it. */
function listeningUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening\s+(http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.once('exit', () => reject(new Error(`exited before listening:\n${output}`)));
  });
}

function accepts(url: string): Promise<boolean> {
  const { port, hostname } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Waits until nothing listens on `url` any more, or fails after `timeoutMs`. */
async function closed(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await accepts(url)) {
    if (Date.now() > deadline) throw new Error(`the gateway at ${url} is still running`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function emptyProject(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amp-launch-'));
  await writeFile(join(dir, 'package.json'), '{}');
  return dir;
}

describe('stopping the gateway through its launcher', () => {
  it('npm start, then SIGTERM to npm: the gateway drains and exits', async () => {
    const cwd = await emptyProject();
    // --ignore-scripts skips `prestart` (the build that `npm test` already ran).
    const npm = spawn(
      'npm',
      ['start', '--ignore-scripts', '--', '--port', '0', '--config', join(cwd, 'package.json')],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const url = await listeningUrl(npm);
    assert.equal(await accepts(url), true);
    npm.kill('SIGTERM');
    await once(npm, 'exit');
    await closed(url, 5000);
  });

  it("started by npm's `sh -c` (as npx does), the gateway drains when its launcher dies", async () => {
    const cwd = await emptyProject();
    const shell = spawn('sh', ['-c', `"${process.execPath}" "${BIN}" --port 0; exit $?`], {
      cwd,
      env: { ...process.env, npm_lifecycle_event: 'npx' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const url = await listeningUrl(shell);
    shell.kill('SIGTERM');
    await once(shell, 'exit');
    await closed(url, 5000);
  });
});
