import type { AmpGroup, AmpPolicyName } from '../types.js';
import { isAmbiguousPath, isPlainPath, normalisedPath } from './path-safety.js';

/**
 * What a route group is and may do: the one table that every per-group decision reads. The
 * policy itself is decided in `policy/policies.ts`, with the group's default from here; the
 * routes exempt from any policy are listed in `public-routes.ts`.
 */
export interface RouteGroupTraits {
  /** Path prefixes the group owns, each the whole prefix or followed by `/`. */
  readonly subtrees: readonly string[];
  /** Single paths the group owns (nothing under them). */
  readonly pages: readonly string[];
  /** Whether its routes carry WebSockets; browser pages never upgrade. */
  readonly upgrades: boolean;
  /**
   * Whether its responses must carry no CORS permission and its preflights are refused: identity
   * routes are for the Amp client, never for a cross-origin page in a browser.
   */
  readonly forbidsCrossOrigin: boolean;
  /** Whether `restrictManagementToLocalhost` covers it: groups that act as the user or show their pages. */
  readonly lockable: boolean;
  readonly defaultPolicy: AmpPolicyName;
  /** Browser pages never carry the server key; only browser pages can be redirected. */
  readonly allowedPolicies: readonly AmpPolicyName[];
  /**
   * Where its single-group middleware expects to be mounted (under any prefix), so that it can
   * rebuild the Amp path from Express's `baseUrl` + `url`; none for groups served only by the router.
   */
  readonly mountPath?: string;
}

export const ROUTE_GROUPS = {
  provider: {
    subtrees: ['/api/provider'],
    pages: [],
    upgrades: true,
    forbidsCrossOrigin: false,
    lockable: false,
    defaultPolicy: 'inject',
    allowedPolicies: ['inject', 'passthrough', 'dual-token'],
    mountPath: '/api/provider',
  },
  management: {
    subtrees: ['/api'],
    pages: [],
    upgrades: true,
    forbidsCrossOrigin: true,
    lockable: true,
    defaultPolicy: 'passthrough',
    allowedPolicies: ['inject', 'passthrough', 'dual-token'],
    mountPath: '/api',
  },
  actors: {
    subtrees: ['/actors'],
    pages: [],
    upgrades: true,
    forbidsCrossOrigin: true,
    lockable: true,
    defaultPolicy: 'passthrough',
    allowedPolicies: ['inject', 'passthrough', 'dual-token'],
  },
  browser: {
    subtrees: ['/auth', '/threads', '/docs', '/settings'],
    pages: ['/threads.rss', '/news.rss'],
    upgrades: false,
    forbidsCrossOrigin: false,
    lockable: true,
    defaultPolicy: 'passthrough',
    allowedPolicies: ['passthrough', 'dual-token', 'redirect'],
  },
} as const satisfies Record<AmpGroup, RouteGroupTraits>;

export const AMP_GROUPS: readonly AmpGroup[] = ['provider', 'management', 'actors', 'browser'];

/** An entry for every group, made by `value`. */
export function byGroup<T>(value: (group: AmpGroup) => T): Record<AmpGroup, T> {
  return Object.fromEntries(AMP_GROUPS.map((group) => [group, value(group)])) as Record<AmpGroup, T>;
}

/** Where each single-group middleware expects to be mounted. */
export const GROUP_MOUNT_PATH = {
  provider: ROUTE_GROUPS.provider.mountPath,
  management: ROUTE_GROUPS.management.mountPath,
} as const;

/** Every subtree, the most specific first (`/api/provider` before `/api`), with its group. */
const SUBTREES: ReadonlyArray<readonly [base: string, group: AmpGroup]> = AMP_GROUPS.flatMap((group) =>
  ROUTE_GROUPS[group].subtrees.map((base) => [base, group] as const),
).sort(([a], [b]) => b.length - a.length);
const PAGES: ReadonlyMap<string, AmpGroup> = new Map(
  AMP_GROUPS.flatMap((group) => ROUTE_GROUPS[group].pages.map((page) => [page, group] as const)),
);

const THREAD_ACTORS = '/api/thread-actors';

/**
 * Whether a request asks the upstream for a new thread: `POST /api/thread-actors` with no thread id
 * after it (its reply carries the new `threadId`). Matched without case, as routes are.
 */
export function createsThread(method: string | undefined, ampPath: string): boolean {
  if (method !== 'POST') return false;
  const path = ampPath.toLowerCase();
  return path === THREAD_ACTORS || path === `${THREAD_ACTORS}/`;
}

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
  const page = PAGES.get(path);
  if (page !== undefined) return page;
  for (const [base, group] of SUBTREES) {
    if (isAtOrUnder(path, base)) return group;
  }
  return undefined;
}

/**
 * Which group serves `ampPath`: a group, `'bad-path'` (refused with `amp_bad_path`), or
 * `undefined` when the path is not ours.
 */
export function route(ampPath: string): AmpGroup | 'bad-path' | undefined {
  const group = classifyAmpPath(ampPath);
  if (!isPlainPath(ampPath)) {
    // A path that reads as another group once decoded (`/api/%70rovider`, `/api/provider;x`)
    // would get this group's policy here and another's upstream — and skip host middleware
    // mounted on the other group's path. Refused when either reading is ours.
    const decodedGroup = classifyAmpPath(normalisedPath(ampPath));
    if (isAmbiguousPath(ampPath) || decodedGroup !== group) {
      return (group ?? decodedGroup) === undefined ? undefined : 'bad-path';
    }
  }
  return group;
}
