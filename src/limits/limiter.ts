import { randomUUID } from 'node:crypto';
import type { ClientLimits, ResolvedClient } from '../auth/clients.js';
import type { AmpGroup } from '../types.js';
import type { LimitStore, WindowCharge } from './limit-store.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/** How often a store that keeps failing is reported while limits fail open. */
const WARN_EVERY_MS = 60_000;

/** One set of limits, as validated (see `limit-options.ts`). */
export type LimitSet = ClientLimits;

export interface LimitsConfig {
  readonly perClient: LimitSet | undefined;
  readonly perTeam: LimitSet | undefined;
  /** The store given in the options; `undefined` means the middleware's own memory store. */
  readonly store: LimitStore | undefined;
  /** `closed`: a request whose limits cannot be checked is refused; `open`: let through, with a warning. */
  readonly onStoreError: 'closed' | 'open';
}

/** Why a limit stopped a request or a WebSocket. */
export type LimitRefusal =
  | { readonly code: 'amp_rate_limited'; readonly retryAfterSeconds: number }
  | { readonly code: 'amp_session_limit' }
  | { readonly code: 'amp_limits_unavailable' };

/** An agent WebSocket that holds a slot until it closes. */
export interface Session {
  release(): void;
}

const NO_SESSION: Session = { release: () => undefined };

/**
 * Limits per named client and per team, counted in a store. A request is charged to its client
 * and its team at once (see `LimitStore`). Requests without a named client (no `clients`, or an
 * unnamed one of a list) are not limited: there is nobody to count them for.
 */
export class Limiter {
  #lastWarning = -Infinity;

  constructor(
    private readonly config: LimitsConfig,
    private readonly store: LimitStore,
    private readonly warn: (code: string, message: string) => void,
  ) {}

  #charges(
    client: ResolvedClient | undefined,
    kind: string,
    limitOf: (set: LimitSet) => number | undefined,
    windowMs = 0,
  ): WindowCharge[] {
    const charges: WindowCharge[] = [];
    if (client?.name === undefined) return charges;
    const { perTeam } = this.config;
    const perClient = client.limits ?? this.config.perClient;
    const clientLimit = perClient && limitOf(perClient);
    if (clientLimit !== undefined)
      charges.push({ key: `${kind}:client:${client.name}`, limit: clientLimit, windowMs });
    const teamLimit = perTeam && client.team !== undefined ? limitOf(perTeam) : undefined;
    if (teamLimit !== undefined)
      charges.push({ key: `${kind}:team:${client.team}`, limit: teamLimit, windowMs });
    return charges;
  }

  #storeFailed(): LimitRefusal | undefined {
    const now = Date.now();
    if (now - this.#lastWarning >= WARN_EVERY_MS) {
      this.#lastWarning = now;
      this.warn(
        'amp_limits_store_unavailable',
        `the limits store did not answer; requests are ${this.config.onStoreError === 'open' ? 'let through unlimited' : 'refused with 503 amp_limits_unavailable'} until it does`,
      );
    }
    return this.config.onStoreError === 'open' ? undefined : { code: 'amp_limits_unavailable' };
  }

  /**
   * Counts a request of `group`, and the thread it creates if it does, in one all-or-nothing
   * check; synchronous with the memory store.
   */
  admit(
    group: AmpGroup,
    client: ResolvedClient | undefined,
    createsThread: boolean,
  ): LimitRefusal | undefined | Promise<LimitRefusal | undefined> {
    const charges = this.#charges(
      client,
      `requests:${group}`,
      (set) => set.requestsPerMinute[group],
      MINUTE_MS,
    );
    if (createsThread)
      charges.push(...this.#charges(client, 'threads', (set) => set.threadsPerHour, HOUR_MS));
    if (charges.length === 0) return undefined;
    const toRefusal = (verdict: Awaited<ReturnType<LimitStore['take']>>): LimitRefusal | undefined =>
      verdict.allowed
        ? undefined
        : {
            code: 'amp_rate_limited',
            retryAfterSeconds: Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)),
          };
    try {
      const verdict = this.store.take(charges);
      return verdict instanceof Promise
        ? verdict.then(toRefusal, () => this.#storeFailed())
        : toRefusal(verdict);
    } catch {
      return this.#storeFailed();
    }
  }

  /** Holds a slot for an agent WebSocket, to be released when it closes. */
  async openSession(client: ResolvedClient | undefined): Promise<Session | LimitRefusal> {
    const charges = this.#charges(client, 'websockets', (set) => set.concurrentWebSockets);
    if (charges.length === 0) return NO_SESSION;
    const holder = randomUUID();
    let acquired: boolean;
    try {
      acquired = await this.store.acquire(charges, holder);
    } catch {
      return this.#storeFailed() ?? NO_SESSION;
    }
    if (!acquired) return { code: 'amp_session_limit' };
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        // A release that fails leaves the slot to its lease (Redis) or is impossible (memory).
        Promise.resolve()
          .then(() => this.store.release(charges, holder))
          .catch(() => undefined);
      },
    };
  }
}
