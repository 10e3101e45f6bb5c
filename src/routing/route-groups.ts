import type { AmpGroup } from '../types.js';

export const AMP_GROUPS: readonly AmpGroup[] = ['provider', 'management', 'actors', 'browser'];

/** An entry for every group, made by `value`. */
export function byGroup<T>(value: (group: AmpGroup) => T): Record<AmpGroup, T> {
  return Object.fromEntries(AMP_GROUPS.map((group) => [group, value(group)])) as Record<AmpGroup, T>;
}

const BROWSER_SUBTREES = ['/auth', '/threads', '/docs', '/settings'];
const BROWSER_PAGES = new Set(['/threads.rss', '/news.rss']);

export function isAtOrUnder(path: string, base: string): boolean {
  return path.startsWith(base) && (path.length === base.length || path.charCodeAt(base.length) === 47); // '/'
}

/**
 * Classifies a path relative to the Amp server root (no query string). Matching ignores case:
 * an upstream that routes case-insensitively must never serve `/API/Provider/…` under a
 * laxer policy than the one chosen here.
 */
export function classifyAmpPath(pathname: string): AmpGroup | undefined {
  const path = pathname.toLowerCase();
  if (isAtOrUnder(path, '/api')) {
    return isAtOrUnder(path, '/api/provider') ? 'provider' : 'management';
  }
  if (isAtOrUnder(path, '/actors')) return 'actors';
  if (BROWSER_PAGES.has(path)) return 'browser';
  for (const base of BROWSER_SUBTREES) {
    if (isAtOrUnder(path, base)) return 'browser';
  }
  return undefined;
}

/**
 * Where each single-group middleware expects to be mounted (under any prefix), so that it can
 * rebuild the Amp path from Express's `baseUrl` + `url`.
 */
export const GROUP_MOUNT_PATH = {
  provider: '/api/provider',
  management: '/api',
} as const satisfies Partial<Record<AmpGroup, string>>;
