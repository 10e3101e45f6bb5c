import type { Server } from 'node:http';
import type { ConfigWatcher } from './config-watcher.js';
import type { AmpMiddleware } from '../index.js';

/**
 * Stops accepting and reloading, ends WebSockets with 1001 (the router's `close`), lets requests
 * and streams finish for `graceMs`, then cuts the connections still open.
 */
export async function shutDown(
  server: Server,
  router: Pick<AmpMiddleware, 'close'>,
  watcher: ConfigWatcher | undefined,
  graceMs: number,
): Promise<void> {
  watcher?.close();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  await router.close();
  const cutOff = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(cutOff);
}
