/** What the benchmark driver and its child processes share: credentials and IPC messages. */
import { createHash } from 'node:crypto';

export const SERVER_KEY = 'server-key';
export const USER_TOKEN = 'user-token';

/** The mapping the `mapped` amp child is configured with, and a model that no rule maps. */
export const MAPPED_MODEL = 'claude-opus-4';
export const MAPPED_TO = 'claude-sonnet-4';
export const UNMAPPED_MODEL = 'o3';
/** Gateway clients of the amp child started with `clients` (the key-recognition phase). */
export const BENCH_CLIENTS = 10_000;

/**
 * The gateway key of client `index`: 36 characters, as long as the UUIDs the Amp CLI sends in its
 * own headers, so the phase also pays for looking those up.
 */
export function benchGatewayKey(index: number): string {
  return `gwk_${createHash('sha256').update(`bench-client-${index}`).digest('base64url').slice(0, 32)}`;
}

/** The header in which the fake upstream names the model it was asked for. */
export const UPSTREAM_MODEL_HEADER = 'x-bench-upstream-model';

interface MemorySample {
  rss: number;
  heapUsed: number;
}

/** What a proxy child answers, by command. */
export interface ProxyCommands {
  /** Memory after a full GC, so that heap garbage does not count as a stream's cost. */
  memory: MemorySample;
  'peak-start': null;
  /** The highest RSS seen since `peak-start`, in bytes. */
  'peak-stop': number;
  /** User + system CPU time this process has used so far, in microseconds. */
  cpu: number;
  /**
   * Microseconds of CPU that recognising gateway keys adds to reading one request's credentials
   * (`clients` variant only), on the header objects of requests the process served.
   */
  recognition: number;
  /** Starts sampling `heapUsed` every 2 ms (no forced GC: garbage counts, as it holds memory). */
  'heap-start': null;
  /** The highest `heapUsed` seen since `heap-start`, in bytes. */
  'heap-stop': number;
  /** Starts a histogram of how late the event loop runs timers (1 ms resolution). */
  'loop-start': null;
  /** Its p99 and maximum since `loop-start`, in ms: how long the process was blocked at worst. */
  'loop-stop': { p99: number; max: number };
}

/** What the fake upstream answers, by command. */
export interface UpstreamCommands {
  /** SSE responses and WebSockets the upstream is still serving. */
  'open-streams': { sse: number; ws: number };
}

export type CommandHandlers<C> = { [K in keyof C]: () => C[K] | Promise<C[K]> };

export type ParentMessage = { type: 'call'; id: number; command: string } | { type: 'exit' };

export type ChildMessage =
  | { type: 'ready'; url: string }
  | { type: 'reply'; id: number; value: unknown }
  | { type: 'failed'; id: number; error: string };
