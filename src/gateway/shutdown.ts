import type { Server, ServerResponse } from 'node:http';
import type { ConfigWatcher } from './config-watcher.js';
import type { AmpLogger, AmpMiddleware } from '../index.js';

export interface Drain {
  /** Set once a shutdown starts: `/readyz` answers 503 from then on, so no new work is routed here. */
  readonly draining: boolean;
  /** Counts a response as open until it closes, so that a shutdown waits for its last log line. */
  track(res: ServerResponse): void;
}

export function createDrain() {
  const open = new Set<ServerResponse>();
  let wake: (() => void) | undefined;
  const drain = {
    draining: false,
    track(res: ServerResponse): void {
      open.add(res);
      res.once('close', () => {
        open.delete(res);
        if (open.size === 0) wake?.();
      });
    },
    start(): void {
      drain.draining = true;
    },
    /** Resolves once every tracked response has closed (and written its `request-end` line). */
    settled(): Promise<void> {
      return open.size === 0 ? Promise.resolve() : new Promise((resolve) => (wake = resolve));
    },
  };
  return drain;
}

/**
 * Marks the gateway draining (before the listener closes, so a readiness probe on a kept-alive
 * connection sees 503), stops accepting and reloading, ends WebSockets with 1001 (the router's
 * `close`), lets requests and streams finish for `drainMs`, then cuts the connections still open.
 * Resolves only once every cut request has closed, so that its `request-end` line is written
 * before the process exits.
 */
export async function shutDown(
  server: Server,
  router: Pick<AmpMiddleware, 'close'>,
  watcher: ConfigWatcher | undefined,
  drain: ReturnType<typeof createDrain>,
  drainMs: number,
  logger: AmpLogger,
): Promise<void> {
  drain.start();
  logger.info({ drainMs }, 'draining started');
  watcher?.close();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  await router.close();
  let cutOff = false;
  const deadline = setTimeout(() => {
    cutOff = true;
    server.closeAllConnections();
  }, drainMs);
  await closed;
  clearTimeout(deadline);
  // A cut response closes after its socket, later than the server: its line comes then.
  await drain.settled();
  logger.info({ cutOff }, 'draining ended');
}
