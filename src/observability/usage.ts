import { createsThread } from '../routing/route-groups.js';
import type { AmpClientUsage, AmpGroup, AmpProxyEvent, AmpUsageReport } from '../types.js';

/**
 * The label of a request without a named client (no gateway key, or a list entry without `name`):
 * usage is kept only by configured or resolved names, so the series stay as few as the clients.
 */
export const UNNAMED_CLIENT = 'unnamed';

export function clientLabel(name: string | undefined): string {
  return name ?? UNNAMED_CLIENT;
}

/** The path of an event without its query. */
function pathOnly(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

/** Whether a finished request created a thread: a creation the upstream answered with 2xx. */
export function createdThread(method: string, path: string, status: number | undefined): boolean {
  return status !== undefined && status >= 200 && status < 300 && createsThread(method, pathOnly(path));
}

interface Tally {
  readonly requests: Map<AmpGroup, Map<string, number>>;
  threadsCreated: number;
  sessionsOpened: number;
  sessionsOpen: number;
  sessionMs: number;
  bytesUp: number;
  bytesDown: number;
  lastSeen: number;
}

/** A client's usage as flat counters, the shape replicas add up in the store (`lastSeen` adds up as a maximum). */
export type UsageCounts = Record<string, number>;

/** Where replicas add up usage: the limits' Redis store. */
export interface UsageStore {
  /** Adds `counts` per client atomically; `since` is kept if it is the earliest. */
  addUsage(since: number, counts: Record<string, UsageCounts>): Promise<void>;
  /** Every replica's usage added up: `undefined` when none has been added yet. */
  readUsage(): Promise<{ since: number; clients: Record<string, UsageCounts> } | undefined>;
}

/** How often a replica adds what it counted to the store: no request waits on the store. */
export const USAGE_FLUSH_MS = 1000;
const WARN_EVERY_MS = 60_000;
const REQUESTS = 'requests:';

function newTally(): Tally {
  return {
    requests: new Map(),
    threadsCreated: 0,
    sessionsOpened: 0,
    sessionsOpen: 0,
    sessionMs: 0,
    bytesUp: 0,
    bytesDown: 0,
    lastSeen: 0,
  };
}

function countRequest(tally: Tally, group: AmpGroup, status: number | undefined): void {
  let byStatus = tally.requests.get(group);
  if (byStatus === undefined) tally.requests.set(group, (byStatus = new Map()));
  const label = status === undefined ? 'none' : String(status);
  byStatus.set(label, (byStatus.get(label) ?? 0) + 1);
}

function apply(clients: Map<string, Tally>, event: AmpProxyEvent): void {
  if (event.type !== 'request-end' && event.type !== 'websocket-open' && event.type !== 'websocket-close')
    return;
  const label = clientLabel(event.client);
  let tally = clients.get(label);
  if (tally === undefined) clients.set(label, (tally = newTally()));
  tally.lastSeen = Date.now();
  switch (event.type) {
    case 'request-end':
      countRequest(tally, event.group, event.status);
      tally.bytesUp += event.bytesReceived;
      tally.bytesDown += event.bytesSent;
      if (createdThread(event.method, event.path, event.status)) tally.threadsCreated++;
      return;
    case 'websocket-open':
      tally.sessionsOpened++;
      tally.sessionsOpen++;
      return;
    case 'websocket-close':
      countRequest(tally, event.group, event.status);
      tally.bytesUp += event.bytesReceived;
      tally.bytesDown += event.bytesSent;
      if (event.opened) {
        tally.sessionsOpen--;
        tally.sessionMs += event.durationMs;
      }
  }
}

function countsOf(tally: Tally): UsageCounts {
  const counts: UsageCounts = {
    threadsCreated: tally.threadsCreated,
    sessionsOpened: tally.sessionsOpened,
    sessionsOpen: tally.sessionsOpen,
    // Redis adds whole numbers.
    sessionMs: Math.round(tally.sessionMs),
    bytesUp: tally.bytesUp,
    bytesDown: tally.bytesDown,
    lastSeen: tally.lastSeen,
  };
  for (const [group, byStatus] of tally.requests) {
    for (const [status, count] of byStatus) counts[`${REQUESTS}${group}:${status}`] = count;
  }
  return counts;
}

function addCounts(into: Record<string, UsageCounts>, from: Record<string, UsageCounts>): void {
  for (const [client, counts] of Object.entries(from)) {
    const sum = (into[client] ??= {});
    for (const [field, value] of Object.entries(counts)) {
      sum[field] = field === 'lastSeen' ? Math.max(sum[field] ?? 0, value) : (sum[field] ?? 0) + value;
    }
  }
}

function usageOf(counts: UsageCounts): AmpClientUsage {
  const requests: AmpClientUsage['requests'] = {};
  for (const [field, count] of Object.entries(counts)) {
    if (!field.startsWith(REQUESTS)) continue;
    const [group, status] = field.slice(REQUESTS.length).split(':') as [AmpGroup, string];
    (requests[group] ??= {})[status] = count;
  }
  const count = (field: string): number => counts[field] ?? 0;
  return {
    requests,
    threadsCreated: count('threadsCreated'),
    sessions: {
      opened: count('sessionsOpened'),
      open: count('sessionsOpen'),
      seconds: count('sessionMs') / 1000,
    },
    bytes: { up: count('bytesUp'), down: count('bytesDown') },
    lastSeen: new Date(count('lastSeen')).toISOString(),
  };
}

/**
 * Usage per client in this process, from the middleware's events (`usage: true`); with a shared
 * store, what it counted is also added to the store every `USAGE_FLUSH_MS`, so `sharedReport()`
 * adds up every replica.
 */
export class UsageLedger {
  readonly #since = Date.now();
  readonly #clients = new Map<string, Tally>();
  /** Counted since the last flush; only kept while a store is shared. */
  #pending = new Map<string, Tally>();
  /** A batch the store did not take: added to the next one, so nothing is lost while it is down. */
  #unsent: Record<string, UsageCounts> = {};
  #store: UsageStore | undefined;
  #warn: (code: string, message: string) => void = () => undefined;
  #lastWarning = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  readonly record = (event: AmpProxyEvent): void => {
    apply(this.#clients, event);
    if (this.#store) apply(this.#pending, event);
  };

  /** Shares usage through `store` (or stops, with `undefined`); a reload calls it with its options. */
  share(store: UsageStore | undefined, warn: (code: string, message: string) => void): void {
    this.#warn = warn;
    if (store === this.#store) return;
    if (this.#store) void this.flush();
    this.#store = store;
    clearInterval(this.#timer);
    this.#timer = store && setInterval(() => void this.flush(), USAGE_FLUSH_MS).unref();
  }

  /** Adds what this process counted since the last flush to the store; never rejects. */
  flush(): Promise<void> {
    // One flush at a time: a second one waits for the first, then sends what came meanwhile.
    // A timer runs it with nobody to catch: whatever fails, the chain stays usable and nothing rejects.
    this.#flushing = (this.#flushing ?? Promise.resolve()).then(() => this.#send()).catch(() => undefined);
    return this.#flushing;
  }

  async #send(): Promise<void> {
    const store = this.#store;
    const batch = this.#unsent;
    this.#unsent = {};
    const pending = this.#pending;
    this.#pending = new Map();
    addCounts(batch, Object.fromEntries([...pending].map(([client, tally]) => [client, countsOf(tally)])));
    if (store === undefined || Object.keys(batch).length === 0) return;
    try {
      await store.addUsage(this.#since, batch);
    } catch {
      addCounts(this.#unsent, batch);
      this.#storeFailed();
    }
  }

  #storeFailed(): void {
    const now = Date.now();
    if (now - this.#lastWarning < WARN_EVERY_MS) return;
    this.#lastWarning = now;
    this.#warn(
      'amp_usage_store_unavailable',
      'the usage store did not answer; usage is counted in this process and added to the store once it answers',
    );
  }

  /** Stops flushing, after a last flush: for `close()`. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  report(): AmpUsageReport {
    const clients: Record<string, AmpClientUsage> = {};
    for (const [name, tally] of this.#clients) {
      clients[name] = usageOf(countsOf(tally));
    }
    return { since: new Date(this.#since).toISOString(), clients };
  }

  /**
   * Every replica's usage from the store, after adding this one's; this process's alone (`scope:
   * 'process'`) when no store is shared or it does not answer.
   */
  async sharedReport(): Promise<AmpUsageReport> {
    const store = this.#store;
    if (store === undefined) return { ...this.report(), scope: 'process' };
    await this.flush();
    try {
      const shared = await store.readUsage();
      const clients: Record<string, AmpClientUsage> = {};
      for (const [name, counts] of Object.entries(shared?.clients ?? {})) clients[name] = usageOf(counts);
      return { since: new Date(shared?.since ?? this.#since).toISOString(), clients, scope: 'replicas' };
    } catch {
      this.#storeFailed();
      return { ...this.report(), scope: 'process' };
    }
  }
}
