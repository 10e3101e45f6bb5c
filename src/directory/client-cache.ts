import { digest } from '../auth/key-recognition.js';

/** How long answers are kept and how many; the defaults live in `directory-options.ts`. */
export interface ClientCacheSettings {
  readonly maxEntries: number;
  /** A key that identifies a client: how long before the directory is asked again (revocation lag). */
  readonly positiveTtlMs: number;
  /** A key the directory does not know: how long a wrong key is refused without asking again. */
  readonly negativeTtlMs: number;
  /** How long a lookup may take before the request fails closed. */
  readonly timeoutMs: number;
}

/** The resolver or its time limit failed: the request is refused, never let through. */
export class DirectoryUnavailable extends Error {}

interface Entry<T> {
  readonly value: T | undefined;
  readonly expiresAt: number;
}

/**
 * Answers of a directory, by SHA-256 digest of the key (so the cache never holds a key): a bounded
 * LRU (a `Map` in use order), one lookup in flight per key, failures never cached. An answer may
 * carry its own end (`expiresAt` of a key that expires sooner than the TTL).
 */
export class ClientCache<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #inFlight = new Map<string, Promise<T | undefined>>();

  constructor(
    private readonly lookup: (key: string) => Promise<T | undefined>,
    private readonly settings: ClientCacheSettings,
    private readonly expiryOf: (value: T) => number | undefined = () => undefined,
  ) {}

  get(key: string): T | undefined | Promise<T | undefined> {
    const id = digest(key);
    const entry = this.#entries.get(id);
    const now = Date.now();
    if (entry !== undefined) {
      this.#entries.delete(id);
      if (entry.expiresAt > now) {
        this.#entries.set(id, entry);
        return entry.value;
      }
    }
    let pending = this.#inFlight.get(id);
    if (pending === undefined) {
      pending = this.#resolve(id, key).finally(() => this.#inFlight.delete(id));
      this.#inFlight.set(id, pending);
    }
    return pending;
  }

  async #resolve(id: string, key: string): Promise<T | undefined> {
    const value = await withTimeout(this.lookup(key), this.settings.timeoutMs);
    const { positiveTtlMs, negativeTtlMs, maxEntries } = this.settings;
    const now = Date.now();
    let expiresAt = now + (value === undefined ? negativeTtlMs : positiveTtlMs);
    const ownEnd = value === undefined ? undefined : this.expiryOf(value);
    if (ownEnd !== undefined) expiresAt = Math.min(expiresAt, ownEnd);
    if (expiresAt > now) {
      this.#entries.set(id, { value, expiresAt });
      if (this.#entries.size > maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    }
    return value;
  }
}

async function withTimeout<T>(lookup: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new DirectoryUnavailable('timed out')), timeoutMs);
  });
  try {
    return await Promise.race([lookup, timedOut]);
  } catch (error) {
    throw error instanceof DirectoryUnavailable
      ? error
      : new DirectoryUnavailable('failed', { cause: error });
  } finally {
    clearTimeout(timer);
  }
}
