import type { IncomingHttpHeaders } from 'node:http';
import { isSecretName } from '../auth/credential-names.js';
import {
  containsKey,
  findKeys,
  isKeyToken,
  KeyTable,
  unionOf,
  type KeyRecogniser,
} from '../auth/key-recognition.js';
import { splitRequestTarget } from '../routing/request-target.js';
import type { Redactor } from '../types.js';

/**
 * The one redaction step every log line and event passes through: a secret shows at most its
 * first 4 code points, enough to tell two keys apart in a log, never enough to use one.
 */
export function redactSecret(value: string): string {
  return `${shownPart(value)}…`;
}

/**
 * Where the first `count` code points of `text` end, or -1 when it has fewer. Counted in code
 * points so that a cut never splits a surrogate pair (an emoji in a query value).
 */
function endOfCodePoints(text: string, count: number): number {
  let end = 0;
  for (let seen = 0; seen < count; seen++) {
    if (end >= text.length) return -1;
    end += text.codePointAt(end)! > 0xffff ? 2 : 1;
  }
  return end;
}

function shownPart(secret: string): string {
  return endOfCodePoints(secret, 9) === -1 ? '' : secret.slice(0, endOfCodePoints(secret, 4));
}

/** `…` as it is written in a URL. */
const ENCODED_ELLIPSIS = encodeURIComponent('…');
const QUERY_SEPARATOR = /([&;])/;
/**
 * In free text, a run of key characters long enough to be a credential nobody told us about (a
 * user's own token echoed back): words and dotted codes such as `guard.missing_header` are shorter.
 */
const TOKEN_LIKE = /[A-Za-z0-9_-]{24,}/g;
/** Free text from elsewhere is cut here: a log line needs its gist, not its bulk. */
const MAX_TEXT_CODE_POINTS = 120;
/** A lone surrogate, which `encodeURIComponent` throws on (a `u` regex reads pairs as one). */
const LONE_SURROGATE = /\p{Cs}/gu;

/** Percent-encoding that cannot throw: a lone surrogate is written as U+FFFD, as UTF-8 would. */
function encodeComponent(text: string): string {
  return encodeURIComponent(text.replace(LONE_SURROGATE, '\uFFFD'));
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
export function createRedactor(
  knownSecrets: Iterable<string> = [],
  keyShape?: KeyRecogniser<unknown>,
): Redactor {
  return new KnownSecretsRedactor(knownSecrets, keyShape);
}

class KnownSecretsRedactor implements Redactor {
  /** The known secrets that are tokens, and any token of a directory's key shape. */
  readonly #tokens: KeyRecogniser<unknown>;
  readonly #verbatim: string[] = [];

  constructor(knownSecrets: Iterable<string>, keyShape: KeyRecogniser<unknown> | undefined) {
    const tokens = new KeyTable<true>();
    for (const secret of knownSecrets) {
      if (isKeyToken(secret)) tokens.add(secret, true);
      else if (secret !== '') this.#verbatim.push(secret);
    }
    this.#tokens = keyShape ? unionOf(tokens, keyShape) : tokens;
  }

  // Arrow properties: the redactor's functions are handed around on their own (`redactor.url`).
  readonly url = (rawUrl: string): string => {
    const { path, query } = splitRequestTarget(this.#maskVerbatim(rawUrl, ENCODED_ELLIPSIS));
    const safePath =
      this.#tokens.size > 0
        ? path
            .split('/')
            .map((segment) => this.#maskSecrets(segment, ENCODED_ELLIPSIS))
            .join('/')
        : path;
    if (query === undefined) return safePath;
    const safeQuery = query
      .split(QUERY_SEPARATOR)
      .map((part) => (part === '&' || part === ';' ? part : this.#redactParam(part)))
      .join('');
    return `${safePath}?${safeQuery}`;
  };

  readonly headers = (headers: IncomingHttpHeaders, tokenHeader?: string): Record<string, string> => {
    const safe: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined) continue;
      const joined = this.#maskVerbatim(Array.isArray(value) ? value.join(', ') : value, '…');
      safe[this.#maskSecrets(name, '…')] = this.#redactHeaderValue(name.toLowerCase(), joined, tokenHeader);
    }
    return safe;
  };

  readonly text = (text: string): string => {
    const masked = this.#maskSecrets(this.#maskVerbatim(text, '…'), '…').replace(TOKEN_LIKE, (token) =>
      redactSecret(token),
    );
    const end = endOfCodePoints(masked, MAX_TEXT_CODE_POINTS);
    return end === -1 ? masked : `${masked.slice(0, end)}…`;
  };

  /** Secrets that are not tokens, masked where they appear as they are, before text is split up. */
  #maskVerbatim(text: string, ellipsis: string): string {
    let masked = text;
    for (const secret of this.#verbatim) masked = masked.replaceAll(secret, ellipsis);
    return masked;
  }

  /**
   * `text` with every known token masked in place, showing its first characters; a token that
   * shows only once decoded masks the whole text, as nothing narrower is known.
   */
  #maskSecrets(text: string, ellipsis: string): string {
    if (this.#tokens.size === 0) return text;
    let located = '';
    let copied = 0;
    findKeys(text, this.#tokens, (_secret, start, end) => {
      if (start < 0) return;
      located += text.slice(copied, start) + shownPart(text.slice(start, end)) + ellipsis;
      copied = end;
    });
    const masked = copied > 0 ? located + text.slice(copied) : text;
    return containsKey(masked, this.#tokens) ? ellipsis : masked;
  }

  #redactParam(param: string): string {
    const eq = param.indexOf('=');
    const rawName = eq === -1 ? param : param.slice(0, eq);
    const name = this.#maskSecrets(rawName, ENCODED_ELLIPSIS);
    if (eq === -1) return name;
    const value = param.slice(eq + 1);
    if (isSecretName(decodeComponent(rawName.replace(/\+/g, ' ')).trim().toLowerCase())) {
      return `${name}=${encodeComponent(redactSecret(decodeComponent(value)))}`;
    }
    return `${name}=${this.#maskSecrets(value, ENCODED_ELLIPSIS)}`;
  }

  #redactHeaderValue(name: string, value: string, tokenHeader: string | undefined): string {
    if (name === 'authorization' || name === 'proxy-authorization') {
      const match = /^(\w+)\s+(.*)$/.exec(value);
      return match ? `${match[1]} ${redactSecret(match[2]!)}` : redactSecret(value);
    }
    if (name === 'cookie' || name === 'set-cookie') {
      const masked = value.replace(/=([^;,]*)/g, (_all, secret: string) => `=${redactSecret(secret)}`);
      return this.#maskSecrets(masked, '…');
    }
    if (name === 'sec-websocket-protocol') {
      // Amp sends its wsToken inside `rivet_conn_params.<json>`.
      const masked = value.replace(/(rivet_conn_params\.)[^,\s]+/g, (_all, prefix: string) => `${prefix}…`);
      return this.#maskSecrets(masked, '…');
    }
    if (isSecretName(name) || name === tokenHeader) return redactSecret(value);
    return this.#maskSecrets(value, '…');
  }
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
