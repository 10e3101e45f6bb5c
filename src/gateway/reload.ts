import { createHash } from 'node:crypto';
import { AmpProxyConfigError } from '../index.js';
import type { AmpClient, AmpLogger, LoadedAmpConfig } from '../index.js';
import { printableConfig } from './config-report.js';

/** A secret as something to compare: its digest, never the value. */
function digest(value: unknown): unknown {
  return typeof value === 'string' ? createHash('sha256').update(value).digest('base64') : typeof value;
}

/**
 * The secrets of a configuration by digest. The printed configuration shows a key's first 4
 * characters only, so a rotated key that keeps them would otherwise not count as a change.
 */
function secretDigests({ options }: LoadedAmpConfig): unknown {
  return {
    upstreamKey: digest(options.upstreamKey),
    // The printed proxy leaves out its credentials.
    upstreamProxy: digest(options.upstreamProxy),
    // A directory's keys are not in the configuration; `sqlite` is a path, printed as it is.
    clients: Array.isArray(options.clients)
      ? options.clients.map((client: AmpClient) => ({
          key: digest(client.key),
          upstreamKey: digest(client.upstreamKey),
        }))
      : undefined,
    // The printed limits name the store only: its URL may hold a password.
    limitsStore: digest(
      typeof options.limits?.store === 'object' && typeof options.limits.store.redis === 'string'
        ? options.limits.store.redis
        : undefined,
    ),
  };
}

/** The paths at which two JSON values differ, for a reload log that never shows a value. */
export function changedPaths(before: unknown, after: unknown, path = ''): string[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const comparable =
    typeof before === 'object' &&
    before !== null &&
    typeof after === 'object' &&
    after !== null &&
    Array.isArray(before) === Array.isArray(after);
  if (!comparable) return [path || '(all)'];
  const beforeEntries = new Map(Object.entries(before));
  const afterEntries = new Map(Object.entries(after));
  const keys = new Set([...beforeEntries.keys(), ...afterEntries.keys()]);
  return [...keys].flatMap((key) =>
    changedPaths(
      beforeEntries.get(key),
      afterEntries.get(key),
      Array.isArray(before) ? `${path}[${key}]` : path ? `${path}.${key}` : key,
    ),
  );
}

/**
 * Loads the configuration again and hands it to `apply`. Returns the configuration in force
 * afterwards: the old one when the new one is invalid, so a bad edit never stops the gateway.
 */
export async function reloadConfig(
  current: LoadedAmpConfig,
  load: () => Promise<LoadedAmpConfig>,
  apply: (next: LoadedAmpConfig) => void,
  logger: AmpLogger,
): Promise<LoadedAmpConfig> {
  try {
    const next = await load();
    apply(next);
    const listenChanges = (['port', 'host'] as const).filter(
      (setting) => next.gateway[setting] !== current.gateway[setting],
    );
    if (listenChanges.length > 0) {
      logger.warn({ changed: listenChanges }, 'listen address changes need a restart');
    }
    if (next.gateway.auditLog !== current.gateway.auditLog) {
      logger.warn({ changed: ['auditLog'] }, 'an audit log change needs a restart');
    }
    const changed = [
      ...new Set([
        ...changedPaths(printableConfig(current), printableConfig(next)),
        ...changedPaths(secretDigests(current), secretDigests(next)),
      ]),
    ];
    // An editor's save can touch a file without changing it: only a change is news.
    if (changed.length > 0) logger.info({ changed }, 'configuration reloaded');
    return next;
  } catch (error) {
    const detail = error instanceof AmpProxyConfigError ? { option: error.option, file: error.file } : {};
    logger.error({ ...detail, error: (error as Error).message }, 'configuration not reloaded');
    return current;
  }
}
