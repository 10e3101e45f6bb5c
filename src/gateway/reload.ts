import { AmpProxyConfigError } from '../index.js';
import { printableConfig } from './config-report.js';
import type { AmpLogger, LoadedAmpConfig } from '../index.js';

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
    if (next.gateway.port !== current.gateway.port || next.gateway.host !== current.gateway.host) {
      logger.warn({ changed: ['port', 'host'] }, 'listen address changes need a restart');
    }
    logger.info(
      { changed: changedPaths(printableConfig(current), printableConfig(next)) },
      'configuration reloaded',
    );
    return next;
  } catch (error) {
    const detail = error instanceof AmpProxyConfigError ? { option: error.option, file: error.file } : {};
    logger.error({ ...detail, error: (error as Error).message }, 'configuration not reloaded');
    return current;
  }
}
