import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { ChildMessage, ParentMessage } from './protocol.js';

const READY_TIMEOUT_MS = 20_000;
const CALL_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 5_000;

export interface Child<C> {
  readonly url: string;
  readonly pid: number;
  call<K extends keyof C & string>(command: K): Promise<C[K]>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Kills every child still running; for the driver's failure paths. */
export function killAllChildren(): void {
  for (const child of running) child.kill('SIGKILL');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const COMPILED_DIR = fileURLToPath(new URL('../.tmp/bench-js/', import.meta.url));
const BUILT_PACKAGE = fileURLToPath(new URL('../dist/esm', import.meta.url));
let compiled = false;

/**
 * The children run as users run the gateway: plain Node on JavaScript. Under tsx every module a
 * process loads goes through tsx's hooks, which cost the amp child (its package is some 80 more
 * modules than the bare child loads) 5 to 7 MB of RSS that no user pays. Types are only stripped.
 */
function compiledScript(script: string): string {
  if (!compiled) {
    mkdirSync(COMPILED_DIR, { recursive: true });
    for (const file of readdirSync(BENCH_DIR).filter(
      (name) => /\.ts$/.test(name) && !name.endsWith('.d.ts'),
    )) {
      const { outputText } = ts.transpileModule(readFileSync(`${BENCH_DIR}${file}`, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        fileName: file,
      });
      writeFileSync(`${COMPILED_DIR}${file.replace(/\.ts$/, '.js')}`, outputText);
    }
    compiled = true;
  }
  return `${COMPILED_DIR}${script.replace(/\.ts$/, '.js')}`;
}

/** Forks `bench/<script>` (compiled) and waits until it announces its URL. */
export async function startChild<C>(
  script: string,
  args: string[],
  execArgv: string[] = [],
): Promise<Child<C>> {
  const child = fork(compiledScript(script), args, {
    execArgv: ['--expose-gc', ...execArgv],
    env: { BENCH_PACKAGE: BUILT_PACKAGE, ...process.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));

  let nextId = 0;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  child.on('message', (message: ChildMessage) => {
    if (message.type === 'ready') return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.type === 'reply') waiter?.resolve(message.value);
    else waiter?.reject(new Error(`${script}: ${message.error}`));
  });
  child.once('exit', (code, signal) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${script} exited (${signal ?? code})`));
    pending.clear();
  });

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start`)), READY_TIMEOUT_MS);
    child.on('message', (message: ChildMessage) => {
      if (message.type !== 'ready') return;
      clearTimeout(timer);
      resolve(message.url);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before it was ready`));
    });
  });

  const post = (message: ParentMessage): void => {
    if (child.connected) child.send(message);
  };

  return {
    url,
    pid: child.pid!,
    call(command) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${script}: ${command} got no answer`));
        }, CALL_TIMEOUT_MS);
        pending.set(id, {
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value as C[typeof command]);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
        post({ type: 'call', id, command });
      });
    },
    async stop() {
      post({ type: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
      await exited(child);
      clearTimeout(timer);
    },
  };
}
