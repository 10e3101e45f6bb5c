import type { AmpGroup } from '../types.js';
import { classifyAmpPath } from './route-groups.js';

/**
 * Routes served without any credential, which every policy lets through (carrying none), so
 * that no mode can lock a client out of them: the one place this exemption is decided.
 * - `actor-metadata`: RivetKit's discovery probe (`GET /actors/metadata`); a refused probe
 *   makes the client retry forever.
 * - `oauth-config`: the first call of `amp login` (`GET /api/auth/oauth-config`).
 * - `cli-login`: the login page `amp login` opens in the user's browser (`GET /auth/cli-login`).
 * - `identity`: with `identityProxy`, the identity provider's device-flow and refresh calls,
 *   which carry their own codes in their bodies.
 */
export type PublicRoute = 'actor-metadata' | 'oauth-config' | 'cli-login' | 'identity';

/** Where `amp login` learns its identity provider. */
export const OAUTH_CONFIG_PATH = '/api/auth/oauth-config';

const PUBLIC_ROUTES: ReadonlyMap<string, PublicRoute> = new Map([
  ['/actors/metadata', 'actor-metadata'],
  [OAUTH_CONFIG_PATH, 'oauth-config'],
  ['/auth/cli-login', 'cli-login'],
]);
/** Most paths are ruled out by their length alone, before any copy is made. */
const PUBLIC_PATH_LENGTHS: ReadonlySet<number> = new Set(
  [...PUBLIC_ROUTES.keys()].map((path) => path.length),
);
/** Where the gateway serves the identity provider's routes (`identityProxy`): under Amp's `/api`, named after us. */
export const IDENTITY_PATH = '/api/amp-proxy/identity';
const IDENTITY_SUBTREE = `${IDENTITY_PATH}/`;

/** Whether any public route lies in `group`: the others skip the lookup on their hot path. */
export function hasPublicRoutes(group: AmpGroup): boolean {
  return [...PUBLIC_ROUTES.keys(), IDENTITY_PATH].some((path) => classifyAmpPath(path) === group);
}

/** The public route a request is for, if any; matched ignoring case, like the groups. */
export function publicRouteOf(
  method: string | undefined,
  ampPath: string,
  identityProxy: boolean,
): PublicRoute | undefined {
  if (identityProxy && ampPath.slice(0, IDENTITY_SUBTREE.length).toLowerCase() === IDENTITY_SUBTREE) {
    return 'identity';
  }
  if ((method !== 'GET' && method !== 'HEAD') || !PUBLIC_PATH_LENGTHS.has(ampPath.length)) return undefined;
  return PUBLIC_ROUTES.get(ampPath.toLowerCase());
}
