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

/** Usage per client in this process, from the middleware's events (`usage: true`). */
export class UsageLedger {
  readonly #since = Date.now();
  readonly #clients = new Map<string, Tally>();

  #tally(client: string | undefined): Tally {
    const label = clientLabel(client);
    let tally = this.#clients.get(label);
    if (tally === undefined) {
      tally = {
        requests: new Map(),
        threadsCreated: 0,
        sessionsOpened: 0,
        sessionsOpen: 0,
        sessionMs: 0,
        bytesUp: 0,
        bytesDown: 0,
        lastSeen: 0,
      };
      this.#clients.set(label, tally);
    }
    tally.lastSeen = Date.now();
    return tally;
  }

  #count(tally: Tally, group: AmpGroup, status: number | undefined): void {
    let byStatus = tally.requests.get(group);
    if (byStatus === undefined) tally.requests.set(group, (byStatus = new Map()));
    const label = status === undefined ? 'none' : String(status);
    byStatus.set(label, (byStatus.get(label) ?? 0) + 1);
  }

  readonly record = (event: AmpProxyEvent): void => {
    switch (event.type) {
      case 'request-end': {
        const tally = this.#tally(event.client);
        this.#count(tally, event.group, event.status);
        tally.bytesUp += event.bytesReceived;
        tally.bytesDown += event.bytesSent;
        if (createdThread(event.method, event.path, event.status)) tally.threadsCreated++;
        return;
      }
      case 'websocket-open': {
        const tally = this.#tally(event.client);
        tally.sessionsOpened++;
        tally.sessionsOpen++;
        return;
      }
      case 'websocket-close': {
        const tally = this.#tally(event.client);
        this.#count(tally, event.group, event.status);
        tally.bytesUp += event.bytesReceived;
        tally.bytesDown += event.bytesSent;
        if (event.opened) {
          tally.sessionsOpen--;
          tally.sessionMs += event.durationMs;
        }
      }
    }
  };

  report(): AmpUsageReport {
    const clients: Record<string, AmpClientUsage> = {};
    for (const [name, tally] of this.#clients) {
      const requests: AmpClientUsage['requests'] = {};
      for (const [group, byStatus] of tally.requests) requests[group] = Object.fromEntries(byStatus);
      clients[name] = {
        requests,
        threadsCreated: tally.threadsCreated,
        sessions: {
          opened: tally.sessionsOpened,
          open: tally.sessionsOpen,
          seconds: Math.round(tally.sessionMs) / 1000,
        },
        bytes: { up: tally.bytesUp, down: tally.bytesDown },
        lastSeen: new Date(tally.lastSeen).toISOString(),
      };
    }
    return { since: new Date(this.#since).toISOString(), clients };
  }
}
