import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Editors write a file in several steps; one reload for the lot. */
const SETTLE_MS = 150;

export interface ConfigWatcher {
  close(): void;
}

/**
 * Calls `onChange` once changes to any of `files` have settled. Editors replace files by
 * renaming, which ends a watch on the file itself: the directories are watched instead.
 */
export function watchConfigFiles(files: readonly string[], onChange: () => void): ConfigWatcher {
  const namesByDirectory = new Map<string, Set<string>>();
  for (const file of files) {
    const names = namesByDirectory.get(dirname(file)) ?? new Set<string>();
    names.add(basename(file));
    namesByDirectory.set(dirname(file), names);
  }
  let pending: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];
  for (const [directory, names] of namesByDirectory) {
    try {
      const watcher = watch(directory, (_event, name) => {
        if (!name || !names.has(String(name))) return;
        clearTimeout(pending);
        pending = setTimeout(onChange, SETTLE_MS);
      });
      watcher.on('error', () => watcher.close());
      watchers.push(watcher);
    } catch {
      // A directory that does not exist yet (no Amp CLI secrets file) has nothing to watch.
    }
  }
  return {
    close() {
      clearTimeout(pending);
      for (const watcher of watchers) watcher.close();
    },
  };
}
