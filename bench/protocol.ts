/** What the benchmark driver and its child processes share: credentials and IPC messages. */

export const SERVER_KEY = 'server-key';
export const USER_TOKEN = 'user-token';

/** The mapping the `mapped` amp child is configured with, and a model that no rule maps. */
export const MAPPED_MODEL = 'claude-opus-4';
export const MAPPED_TO = 'claude-sonnet-4';
export const UNMAPPED_MODEL = 'o3';
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
