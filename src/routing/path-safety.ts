/**
 * Paths the upstream could read differently from us. A proxy that matches `/threads/../api/user`
 * as a browser page while the upstream serves `/api/user` has applied the wrong policy, so such
 * paths are refused before any group is chosen. Everything that needs a closer look contains one
 * of these; the common case is decided by this one test.
 */
const NEEDS_INSPECTION = /%|\\|\0|\/\.|\/\/|;|#/;
const ENCODED_SEPARATOR_OR_DOT = /%(?:2e|2f|5c|00)/i;

function isDotSegment(segment: string): boolean {
  // `..;jsessionid` is read as `..` by servers that honour path parameters.
  const semicolon = segment.indexOf(';');
  const name = semicolon === -1 ? segment : segment.slice(0, semicolon);
  return name === '.' || name === '..';
}

/** True when `pathname` has nothing another server could read differently (the common case). */
export function isPlainPath(pathname: string): boolean {
  return pathname.charCodeAt(0) === 47 && !NEEDS_INSPECTION.test(pathname);
}

/** True when `pathname` (no query string) must be refused with `amp_bad_path`. */
export function isAmbiguousPath(pathname: string): boolean {
  if (pathname.charCodeAt(0) !== 47) return true; // must start with '/'
  if (!NEEDS_INSPECTION.test(pathname)) return false;
  // A raw `#` ends the path for some servers and not for others.
  if (pathname.includes('\\') || pathname.includes('\0') || pathname.includes('#')) return true;

  const segments = pathname.split('/');
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const segment = segments[i]!;
    // Upstreams collapse `//`, which would move the request to another route.
    if (segment === '') {
      if (i !== last) return true;
      continue;
    }
    if (isDotSegment(segment)) return true;
    if (!segment.includes('%')) continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return true; // malformed escapes are read differently by every server
    }
    if (decoded.includes('/') || decoded.includes('\\') || decoded.includes('\0')) return true;
    if (isDotSegment(decoded)) return true;
    // Double encoding (`%252e`) turns into a dot or separator at a server that decodes twice.
    if (ENCODED_SEPARATOR_OR_DOT.test(decoded)) return true;
  }
  return false;
}

/**
 * The path an upstream that decodes, collapses slashes and resolves dot segments would serve.
 * Only used to decide whether an ambiguous path concerns this middleware at all.
 */
export function normalisedPath(pathname: string): string {
  let decoded = pathname;
  for (let round = 0; round < 3 && decoded.includes('%'); round++) {
    try {
      decoded = decodeURIComponent(decoded);
    } catch {
      break;
    }
  }
  const resolved: string[] = [];
  for (const raw of decoded.replace(/[\\]/g, '/').replace(/\0/g, '').split('/')) {
    const segment = raw.split(';', 1)[0]!;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') resolved.pop();
    else resolved.push(segment);
  }
  return `/${resolved.join('/')}`;
}
