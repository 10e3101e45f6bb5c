import type { IncomingHttpHeaders } from 'node:http';
import { isSecretName } from '../auth/credential-names.js';
import { containsKey, findKeys, isKeyToken, KeyTable } from '../auth/key-recognition.js';
import { splitRequestTarget } from '../routing/request-target.js';

/**
 * The one redaction step every log line and event passes through: a secret shows at most its
 * first 4 characters, enough to tell two keys apart in a log, never enough to use one.
 */
export function redactSecret(value: string): string {
  return `${shownPart(value)}…`;
}

function shownPart(secret: string): string {
  return secret.length > 8 ? secret.slice(0, 4) : '';
}

/** `…` as it is written in a URL. */
const ENCODED_ELLIPSIS = encodeURIComponent('…');
const QUERY_SEPARATOR = /([&;])/;

export interface Redactor {
  /**
   * A path with query string, safe to log: the value of every parameter whose name looks like a
   * credential (see `isSecretName`; names are decoded first, `&` and `;` both separate), and every
   * known secret anywhere in the path or query, masked.
   */
  url(url: string): string;
  /**
   * A copy of `headers` that is safe to log: credential headers (by name, plus `tokenHeader`),
   * cookie values, WebSocket conn params, and every known secret in any other value, masked.
   */
  headers(headers: IncomingHttpHeaders, tokenHeader?: string): Record<string, string>;
}

function decodeComponent(component: string): string {
  try {
    return decodeURIComponent(component);
  } catch {
    return component;
  }
}

/**
 * A redactor that also masks `knownSecrets` (the gateway's keys: gateway keys, the server key,
 * clients' mapped keys) wherever they appear. A secret made of key characters is recognised as a
 * whole token, also percent-encoded or inside `Basic` credentials (as the gateway recognises
 * keys in requests); any other secret where it appears verbatim.
 */
export function createRedactor(knownSecrets: Iterable<string> = []): Redactor {
  const tokens = new KeyTable<true>();
  const verbatim: string[] = [];
  for (const secret of knownSecrets) {
    if (isKeyToken(secret)) tokens.add(secret, true);
    else if (secret !== '') verbatim.push(secret);
  }

  /** Secrets that are not tokens, masked where they appear as they are, before text is split up. */
  function maskVerbatim(text: string, ellipsis: string): string {
    let masked = text;
    for (const secret of verbatim) masked = masked.replaceAll(secret, ellipsis);
    return masked;
  }

  /**
   * `text` with every known token masked in place, showing its first characters; a token that
   * shows only once decoded masks the whole text, as nothing narrower is known.
   */
  function maskSecrets(text: string, ellipsis: string): string {
    if (tokens.size === 0) return text;
    let masked = text;
    let located = '';
    let copied = 0;
    findKeys(masked, tokens, (_secret, start, end) => {
      if (start < 0) return;
      located += masked.slice(copied, start) + shownPart(masked.slice(start, end)) + ellipsis;
      copied = end;
    });
    if (copied > 0) masked = located + masked.slice(copied);
    return containsKey(masked, tokens) ? ellipsis : masked;
  }

  function redactParam(param: string): string {
    const eq = param.indexOf('=');
    const rawName = eq === -1 ? param : param.slice(0, eq);
    const name = maskSecrets(rawName, ENCODED_ELLIPSIS);
    if (eq === -1) return name;
    const value = param.slice(eq + 1);
    if (isSecretName(decodeComponent(rawName.replace(/\+/g, ' ')).trim().toLowerCase())) {
      return `${name}=${encodeURIComponent(redactSecret(decodeComponent(value)))}`;
    }
    return `${name}=${maskSecrets(value, ENCODED_ELLIPSIS)}`;
  }

  function redactHeaderValue(name: string, value: string, tokenHeader: string | undefined): string {
    if (name === 'authorization' || name === 'proxy-authorization') {
      const match = /^(\w+)\s+(.*)$/.exec(value);
      return match ? `${match[1]} ${redactSecret(match[2]!)}` : redactSecret(value);
    }
    if (name === 'cookie' || name === 'set-cookie') {
      const masked = value.replace(/=([^;,]*)/g, (_all, secret: string) => `=${redactSecret(secret)}`);
      return maskSecrets(masked, '…');
    }
    if (name === 'sec-websocket-protocol') {
      // Amp sends its wsToken inside `rivet_conn_params.<json>`.
      const masked = value.replace(/(rivet_conn_params\.)[^,\s]+/g, (_all, prefix: string) => `${prefix}…`);
      return maskSecrets(masked, '…');
    }
    if (isSecretName(name) || name === tokenHeader) return redactSecret(value);
    return maskSecrets(value, '…');
  }

  return {
    url(rawUrl) {
      const { path, query } = splitRequestTarget(maskVerbatim(rawUrl, ENCODED_ELLIPSIS));
      const safePath =
        tokens.size > 0
          ? path
              .split('/')
              .map((segment) => maskSecrets(segment, ENCODED_ELLIPSIS))
              .join('/')
          : path;
      if (query === undefined) return safePath;
      const safeQuery = query
        .split(QUERY_SEPARATOR)
        .map((part) => (part === '&' || part === ';' ? part : redactParam(part)))
        .join('');
      return `${safePath}?${safeQuery}`;
    },
    headers(headers, tokenHeader) {
      const safe: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers)) {
        if (value === undefined) continue;
        const joined = maskVerbatim(Array.isArray(value) ? value.join(', ') : value, '…');
        safe[maskSecrets(name, '…')] = redactHeaderValue(name.toLowerCase(), joined, tokenHeader);
      }
      return safe;
    },
  };
}

/** Masks credential-like names and values; knows no secrets (see `createRedactor` for that). */
const defaultRedactor = createRedactor();

/** A copy of `headers` that is safe to log (see `Redactor.headers`). */
export function redactHeaders(headers: IncomingHttpHeaders, tokenHeader?: string): Record<string, string> {
  return defaultRedactor.headers(headers, tokenHeader);
}

/** A path with query string, with the values of credential-like parameters masked (see `Redactor.url`). */
export function redactUrl(url: string): string {
  return defaultRedactor.url(url);
}
