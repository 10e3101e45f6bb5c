import type { AmpGroup } from '../types.js';

/** Identity routes are for the Amp client, never for a cross-origin page in a browser. */
const NO_CROSS_ORIGIN = new Set<AmpGroup>(['management', 'actors']);

/** Whether responses of `group` must carry no CORS permissions. */
export function forbidsCrossOrigin(group: AmpGroup): boolean {
  return NO_CROSS_ORIGIN.has(group);
}

/** A response header that grants a cross-origin page some access (`Access-Control-*`). */
export function isCorsHeader(lowerCaseName: string): boolean {
  return lowerCaseName.startsWith('access-control-');
}
