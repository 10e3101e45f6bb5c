import type { Server } from 'node:http';
import type { ConfigWatcher } from './config-watcher.js';
import type { AmpLogger, AmpMiddleware } from '../index.js';

export interface Drain {
  /** Set once a shutdown starts: `/readyz` answers 503 from then on, so no new work is routed here. */
  readonly draining: boolean;
}

export function createDrain(): Drain & { start(): void } {
  const drain = { draining: false, start: () => void (drain.draining = true) };
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
  // A cut response's `close` runs after its socket's: the turn after is when its line is written.
  await new Promise((resolve) => setImmediate(resolve));
  logger.info({ cutOff }, 'draining ended');
}
