/** One counter a request is charged to (a client's, a team's) and its limit. */
export interface Charge {
  readonly key: string;
  readonly limit: number;
}

/** A counter of requests in fixed windows: a request may count against a minute's and an hour's at once. */
export interface WindowCharge extends Charge {
  readonly windowMs: number;
}

/** The answer of a request-rate check: refused ones say when the window turns. */
export type RateVerdict =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

/**
 * Where limit counters live. Every method is all-or-nothing over its charges: a request charged to
 * a client and a team counts for both only when both allow it, so that no counter ever moves for a
 * refused request, and no two replicas together let more through than a limit.
 * A store that cannot answer rejects (or throws): the limiter then fails open or closed.
 */
export interface LimitStore {
  /** Counts one request in the current fixed window of every charge, if all allow it. */
  take(charges: readonly WindowCharge[]): RateVerdict | Promise<RateVerdict>;
  /** Holds one slot of every charge under `holder` (a unique id), if all have one free. */
  acquire(charges: readonly Charge[], holder: string): boolean | Promise<boolean>;
  /** Gives back what `acquire` held for `holder`. */
  release(charges: readonly Charge[], holder: string): void | Promise<void>;
}

interface Window {
  readonly startedAt: number;
  count: number;
}

/** One process's counters: the default, right for a single gateway. */
export class MemoryLimitStore implements LimitStore {
  readonly #windows = new Map<string, Window>();
  readonly #slots = new Map<string, Set<string>>();

  take(charges: readonly WindowCharge[]): RateVerdict {
    const now = Date.now();
    const windows = charges.map(({ key, windowMs }) => {
      const startedAt = now - (now % windowMs);
      let window = this.#windows.get(key);
      if (window === undefined || window.startedAt !== startedAt) {
        window = { startedAt, count: 0 };
        this.#windows.set(key, window);
      }
      return window;
    });
    const full = windows.findIndex((window, index) => window.count >= charges[index]!.limit);
    if (full !== -1) {
      return { allowed: false, retryAfterMs: windows[full]!.startedAt + charges[full]!.windowMs - now };
    }
    for (const window of windows) window.count++;
    return { allowed: true };
  }

  acquire(charges: readonly Charge[], holder: string): boolean {
    const sets = charges.map(({ key }) => {
      let set = this.#slots.get(key);
      if (set === undefined) this.#slots.set(key, (set = new Set()));
      return set;
    });
    if (sets.some((set, index) => set.size >= charges[index]!.limit)) return false;
    for (const set of sets) set.add(holder);
    return true;
  }

  release(charges: readonly Charge[], holder: string): void {
    for (const { key } of charges) {
      const set = this.#slots.get(key);
      set?.delete(holder);
      if (set?.size === 0) this.#slots.delete(key);
    }
  }
}
