/**
 * Routes Amp serves without any credential, which every policy lets through (carrying none), so
 * that no mode can lock a client out of them: the one place this exemption is decided.
 * - `actor-metadata`: RivetKit's discovery probe (`GET /actors/metadata`); a refused probe
 *   makes the client retry forever.
 * - `oauth-config`: the first call of `amp login` (`GET /api/auth/oauth-config`).
 */
export type PublicRoute = 'actor-metadata' | 'oauth-config';

const PUBLIC_ROUTES: ReadonlyMap<string, PublicRoute> = new Map([
  ['/actors/metadata', 'actor-metadata'],
  ['/api/auth/oauth-config', 'oauth-config'],
]);

/** The public route a request is for, if any; matched ignoring case, like the groups. */
export function publicRouteOf(method: string | undefined, ampPath: string): PublicRoute | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  return PUBLIC_ROUTES.get(ampPath.toLowerCase());
}
