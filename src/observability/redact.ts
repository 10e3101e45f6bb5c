import type { IncomingHttpHeaders } from 'node:http';

/**
 * The one redaction step every log line and error detail passes through: a secret shows at most
 * its first 4 characters, enough to tell two keys apart in a log, never enough to use one.
 */
export function redactSecret(value: string): string {
  return value.length > 8 ? `${value.slice(0, 4)}…` : '…';
}

const SECRET_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'x-goog-api-key',
  'x-amp-token',
  'x-rivet-token',
  'x-rivet-conn-params',
]);
const SECRET_PARAMS = new Set(['key', 'auth_token', 'rvt-token', 'authtoken']);

function redactHeaderValue(name: string, value: string, extraSecretHeader: string | undefined): string {
  if (name === 'authorization' || name === 'proxy-authorization') {
    const match = /^(\w+)\s+(.*)$/.exec(value);
    return match ? `${match[1]} ${redactSecret(match[2]!)}` : redactSecret(value);
  }
  if (SECRET_HEADERS.has(name) || name === extraSecretHeader) return redactSecret(value);
  if (name === 'sec-websocket-protocol') {
    // Amp sends its wsToken inside `rivet_conn_params.<json>`.
    return value.replace(/(rivet_conn_params\.)[^,\s]+/g, (_all, prefix: string) => `${prefix}…`);
  }
  if (name === 'cookie' || name === 'set-cookie') {
    return value.replace(/=([^;,]*)/g, (_all, secret: string) => `=${redactSecret(secret)}`);
  }
  return value;
}

/** A copy of `headers` that is safe to log. */
export function redactHeaders(headers: IncomingHttpHeaders, tokenHeader?: string): Record<string, string> {
  const safe: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const joined = Array.isArray(value) ? value.join(', ') : value;
    safe[name] = redactHeaderValue(name.toLowerCase(), joined, tokenHeader);
  }
  return safe;
}

/** A path with query string, with the values of credential parameters redacted. */
export function redactUrl(url: string): string {
  const at = url.indexOf('?');
  if (at === -1) return url;
  const query = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name);
      } catch {
        // an undecodable name is logged as it came
      }
      if (!SECRET_PARAMS.has(name.toLowerCase())) return pair;
      let value = pair.slice(eq + 1);
      try {
        value = decodeURIComponent(value);
      } catch {
        // redacted either way
      }
      return `${pair.slice(0, eq)}=${encodeURIComponent(redactSecret(value))}`;
    })
    .join('&');
  return `${url.slice(0, at)}?${query}`;
}
