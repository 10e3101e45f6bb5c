/**
 * A list that a test can wait on: whatever a listener receives (proxy events, log lines,
 * WebSocket close codes) is pushed here, and `until` resolves on the push that makes a condition
 * hold, so no test sleeps and hopes that an event has arrived by then.
 */
export class WaitableList<T> {
  readonly items: T[] = [];
  readonly #waiters = new Set<() => void>();

  /** Bound, so that it can be handed to an emitter as the listener. */
  readonly push = (item: T): void => {
    this.items.push(item);
    for (const wake of this.#waiters) wake();
  };

  /** The index a test's own part of the list starts at: see `since` and `until`. */
  mark(): number {
    return this.items.length;
  }

  /** The items pushed since `mark` (a fresh array). */
  since(mark: number): T[] {
    return this.items.slice(mark);
  }

  /**
   * Resolves with the items pushed since `mark` once `condition` holds for them: at once if it
   * already does, else on the push that makes it hold. Rejects after `timeoutMs` (a guard against
   * a hung test, which only fires when the awaited event never comes).
   */
  until(mark: number, condition: (items: T[]) => boolean, timeoutMs = 5000): Promise<T[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const items = this.since(mark);
        if (!condition(items)) return false;
        resolve(items);
        return true;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(new Error(`timed out after ${timeoutMs} ms waiting; got ${JSON.stringify(this.since(mark))}`));
      }, timeoutMs);
      timer.unref();
      const wake = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#waiters.delete(wake);
      };
      this.#waiters.add(wake);
    });
  }
}

/** Asks `read` again until `condition` holds for its answer: for state another process or a reconnect brings. */
export async function eventually<T>(read: () => Promise<T>, condition: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    if (condition(value)) return value;
    if (Date.now() > deadline) throw new Error(`still not there after 10 s: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
