/** A response header that grants a cross-origin page some access (`Access-Control-*`). */
export function isCorsHeader(lowerCaseName: string): boolean {
  return lowerCaseName.startsWith('access-control-');
}
