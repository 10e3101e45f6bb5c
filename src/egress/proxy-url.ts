/** The egress proxy kinds the gateway can tunnel through: HTTP(S) CONNECT and SOCKS5. */
export const PROXY_SCHEMES: readonly string[] = ['http:', 'https:', 'socks5:', 'socks5h:'];

/**
 * A proxy URL as messages may show it: scheme, host and port. Credentials, path and query are
 * never shown, since the userinfo is a password.
 */
export function shownProxy(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

/**
 * A URL's scheme as a message may show it (`"ftp:"`), or `undefined`: a long "scheme" is more
 * likely a key or a user name pasted before a colon (`sk-ant-…:x@host`) than a scheme.
 */
export function shownScheme(scheme: string): string | undefined {
  return /^[a-z][a-z0-9+.-]{0,9}:$/i.test(scheme) ? `"${scheme.toLowerCase()}"` : undefined;
}

/**
 * Parses a proxy URL, or returns what is wrong with it in words that never quote the URL (it may
 * hold a password). `assumeHttp`: proxy variables are often written without a scheme
 * (`proxy.corp:3128`), which curl and most tools read as `http://`.
 */
export function parseProxyUrl(text: string, assumeHttp: boolean): URL | { problem: string } {
  const trimmed = text.trim();
  // With credentials, a URL that does not parse, or parses with a path, is most often a password
  // holding a character that ends the credentials early.
  const hint = trimmed.includes('@')
    ? '; if the password holds "#", "@", "/" or "?", percent-encode them ("#" as "%23", "@" as "%40", "/" as "%2F", "?" as "%3F")'
    : '';
  const written = assumeHttp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? `http://${trimmed}` : trimmed;
  let url: URL;
  try {
    url = new URL(written);
  } catch {
    return {
      problem: `expected a proxy URL such as "http://proxy.example:3128" or "socks5h://proxy:1080"${hint}`,
    };
  }
  if (!PROXY_SCHEMES.includes(url.protocol)) {
    const scheme = shownScheme(url.protocol);
    return {
      problem: `expected an http:, https:, socks5: or socks5h: proxy URL, got ${scheme ? `the scheme ${scheme}` : 'no known scheme'}`,
    };
  }
  if (url.hostname === '') return { problem: 'expected a proxy URL with a host' };
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    // The agents decode them to build Proxy-Authorization, and would fail at the first request.
    return { problem: 'expected percent-encoded credentials ("%" written as "%25")' };
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    return {
      problem: `expected only a scheme, credentials, host and port, as in "${url.protocol}//host:port"${hint}`,
    };
  }
  return url;
}
