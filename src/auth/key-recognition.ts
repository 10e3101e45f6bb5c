import { hash } from 'node:crypto';

/**
 * The one recogniser of keys in text. A gateway key is made of the characters A-Z, a-z, 0-9, `_`
 * and `-` only, so every other character separates tokens and a key is recognised exactly, as a
 * whole token (a maximal run of those characters), wherever it appears: after any scheme word,
 * inside quotes, JSON, cookies or query syntax, followed by other text. Texts are also examined
 * percent-decoded (and with JSON `\u` escapes decoded), and `Basic` credentials base64-decoded.
 *
 * Cheap by construction: nothing runs when the table is empty or a text is shorter than the
 * shortest key; a text is probed every `shortest key length` characters, so runs too short to be
 * a key are mostly skipped unread; a token is hashed only when its length is that of some key.
 */

/** For the validation error and the README: the characters a gateway key may contain. */
export const KEY_CHARACTERS = 'A-Z, a-z, 0-9, _ and -';

/** 1 for the characters a key is made of; indexed by UTF-16 code unit, so no range check is needed. */
const IS_KEY_CHAR = new Uint8Array(0x10000);
for (const char of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-') {
  IS_KEY_CHAR[char.charCodeAt(0)] = 1;
}
/** Hex digit values, -1 for anything else. */
const HEX = new Int8Array(0x10000).fill(-1);
for (let digit = 0; digit < 16; digit++) {
  HEX['0123456789abcdef'.charCodeAt(digit)] = digit;
  HEX['0123456789ABCDEF'.charCodeAt(digit)] = digit;
}
/** Characters of a base64 (or base64url) token after `Basic `. */
const IS_BASE64_CHAR = IS_KEY_CHAR.slice();
for (const char of '+/=') IS_BASE64_CHAR[char.charCodeAt(0)] = 1;

const SPACE = 0x20;
const TAB = 0x09;
/**
 * Decoding rounds after the raw text (`%2567` is `g` to a server that decodes twice): three cover
 * any realistic chain of decoders (a proxy, a framework, the application).
 */
const MAX_DECODING_ROUNDS = 3;
/** `Basic` credentials are decoded once; a `Basic` inside their payload is not decoded again. */
const MAX_BASIC_DEPTH = 1;

/** Whether `value` is one whole token: non-empty and made only of the characters a key may contain. */
export function isKeyToken(value: string): boolean {
  if (value === '') return false;
  for (let i = 0; i < value.length; i++) if (IS_KEY_CHAR[value.charCodeAt(i)] === 0) return false;
  return true;
}

/**
 * What `findKeys` searches with: which token lengths can be keys, and what a token of such a
 * length stands for. A `KeyTable` knows its keys; a key shape (see `src/directory/key-shape.ts`)
 * knows what every key of a directory looks like.
 */
export interface KeyRecogniser<T> {
  /** How many keys it stands for: 0 when none, so gateway keys are not required at all. */
  readonly size: number;
  /** The length of the shortest key (`Infinity` while there is none). */
  readonly shortest: number;
  hasKeyOfLength(length: number): boolean;
  lookup(token: string): T | undefined;
}

/**
 * Keys looked up by their SHA-256 digest: the lookup's timing depends on the digest, never on how
 * many leading characters of a guessed key were right. The table keeps the lengths of its keys
 * (the only thing about a key looked at before hashing), so tokens of other lengths cost nothing.
 */
export class KeyTable<T> implements KeyRecogniser<T> {
  readonly #byDigest = new Map<string, T>();
  /** `#lengths[n]` is 1 when some key is `n` characters long. */
  #lengths = new Uint8Array(0);
  #shortest = Infinity;

  /** Adds `key` (a key token, see `isKeyToken`); false when it is already in the table. */
  add(key: string, value: T): boolean {
    const id = digest(key);
    if (this.#byDigest.has(id)) return false;
    this.#byDigest.set(id, value);
    if (key.length >= this.#lengths.length) {
      const grown = new Uint8Array(key.length + 1);
      grown.set(this.#lengths);
      this.#lengths = grown;
    }
    this.#lengths[key.length] = 1;
    this.#shortest = Math.min(this.#shortest, key.length);
    return true;
  }

  get size(): number {
    return this.#byDigest.size;
  }

  /** The length of the shortest key (`Infinity` while there is none). */
  get shortest(): number {
    return this.#shortest;
  }

  lookup(token: string): T | undefined {
    return this.#byDigest.get(digest(token));
  }

  hasKeyOfLength(length: number): boolean {
    return this.#lengths[length] === 1;
  }
}

/** The SHA-256 digest keys are looked up and cached by, never the key itself. */
export function digest(key: string): string {
  return hash('sha256', key, 'base64');
}

/** Recognises what either recogniser does (the first one's value wins). */
export function unionOf<T>(first: KeyRecogniser<T>, second: KeyRecogniser<T>): KeyRecogniser<T> {
  return {
    size: first.size + second.size,
    shortest: Math.min(first.shortest, second.shortest),
    hasKeyOfLength: (length) => first.hasKeyOfLength(length) || second.hasKeyOfLength(length),
    lookup: (token) =>
      (first.hasKeyOfLength(token.length) ? first.lookup(token) : undefined) ??
      (second.hasKeyOfLength(token.length) ? second.lookup(token) : undefined),
  };
}

/**
 * Called for every key found. `start`/`end` locate the token in the text as given, or are -1 when
 * it was found in a decoded form (percent-encoded, escaped or inside `Basic` credentials).
 * Returning true stops the search.
 */
export type KeyVisitor<T> = (value: T, start: number, end: number) => unknown;

/**
 * Looks for the keys of `table` in `text`: raw, percent- and escape-decoded (repeatedly, up to
 * three rounds; anything that does not decode stays as it is), and inside `Basic <base64>`
 * credentials. Returns true when `visit` stopped the search.
 */
export function findKeys<T>(text: string, table: KeyRecogniser<T>, visit: KeyVisitor<T>): boolean {
  // Decoding only ever shortens a text, so a text shorter than every key holds none in any form.
  if (text.length < table.shortest) return false;
  return examine(text, { table, visit }, 0, true);
}

/** Whether `text` holds any key of `table`, in any of the forms `findKeys` recognises. */
export function containsKey(text: string, table: KeyRecogniser<unknown>): boolean {
  return findKeys(text, table, stop);
}

const stop = (): boolean => true;

/** What a search looks for and whom it tells. */
interface Search<T> {
  readonly table: KeyRecogniser<T>;
  readonly visit: KeyVisitor<T>;
}

function examine<T>(text: string, search: Search<T>, basicDepth: number, located: boolean): boolean {
  if (scanTokens(text, search, basicDepth, located)) return true;
  let form = text;
  for (let round = 0; round < MAX_DECODING_ROUNDS; round++) {
    const decoded = decodeEscapes(form);
    if (decoded === form) break;
    form = decoded;
    if (scanTokens(form, search, basicDepth, false)) return true;
  }
  return false;
}

/**
 * Finds the tokens of `text` that have the length of a key. Base64 characters (key characters
 * and `+/=`) come in chunks; a chunk holds tokens separated by `+/=`, and after `Basic ` it is a
 * credential payload. A chunk at least as long as the shortest key always covers one of the
 * positions probed every `shortest` characters, and nothing shorter can hold a key, so only the
 * chunks under a probe are read, each character once.
 */
function scanTokens<T>(
  text: string,
  { table, visit }: Search<T>,
  basicDepth: number,
  located: boolean,
): boolean {
  const length = text.length;
  const stride = table.shortest;
  let probe = stride - 1;
  while (probe < length) {
    if (IS_BASE64_CHAR[text.charCodeAt(probe)] === 0) {
      probe += stride;
      continue;
    }
    // Back from the probe to the start of its token, and on to the start of its chunk (for `Basic`).
    let start = probe;
    while (start > 0 && IS_KEY_CHAR[text.charCodeAt(start - 1)] === 1) start--;
    let chunkStart = start;
    while (chunkStart > 0 && IS_BASE64_CHAR[text.charCodeAt(chunkStart - 1)] === 1) chunkStart--;
    // Forward: the probe's token and the chunk's tokens after it. Those before it lie between two
    // probes, so they are shorter than any key.
    let i = probe;
    for (;;) {
      while (i < length && IS_KEY_CHAR[text.charCodeAt(i)] === 1) i++;
      if (table.hasKeyOfLength(i - start)) {
        const value = table.lookup(text.slice(start, i));
        if (value !== undefined && visit(value, located ? start : -1, located ? i : -1) === true) return true;
      }
      if (i === length || IS_BASE64_CHAR[text.charCodeAt(i)] === 0) break;
      start = ++i; // past one of `+/=`
    }
    if (basicDepth < MAX_BASIC_DEPTH && followsBasicScheme(text, chunkStart)) {
      if (examineBasic(text.slice(chunkStart, i), { table, visit }, basicDepth)) return true;
    }
    // `i` is a separator: the next chunk long enough to matter covers `i + stride`.
    probe = i + stride;
  }
  return false;
}

/**
 * Whether the chunk at `at` follows the scheme word `Basic` (any casing) and whitespace. `| 0x20`
 * lower-cases ASCII letters and maps no other key character onto one of them.
 */
function followsBasicScheme(text: string, at: number): boolean {
  let word = at;
  while (word > 0 && (text.charCodeAt(word - 1) === SPACE || text.charCodeAt(word - 1) === TAB)) word--;
  word -= 5;
  return (
    word < at - 5 &&
    word >= 0 &&
    (word === 0 || IS_KEY_CHAR[text.charCodeAt(word - 1)] === 0) &&
    (text.charCodeAt(word) | 0x20) === 0x62 &&
    (text.charCodeAt(word + 1) | 0x20) === 0x61 &&
    (text.charCodeAt(word + 2) | 0x20) === 0x73 &&
    (text.charCodeAt(word + 3) | 0x20) === 0x69 &&
    (text.charCodeAt(word + 4) | 0x20) === 0x63
  );
}

/** `Basic` credentials: base64 of `user:password`, where either may be a key. */
function examineBasic<T>(payload: string, search: Search<T>, basicDepth: number): boolean {
  // Node decodes base64 and base64url alike and skips what is neither.
  const decoded = Buffer.from(payload, 'base64').toString('latin1');
  return examine(decoded, search, basicDepth + 1, false);
}

/**
 * Decodes `%XX` and `\uXXXX` and leaves everything else as it is, so a stray `%` cannot hide
 * the rest of a text; returns `text` itself when there is nothing to decode. Bytes become single
 * characters: every key character is ASCII, so a byte of a multi-byte UTF-8 sequence (>= 0x80)
 * only ever separates tokens, as the character would.
 */
function decodeEscapes(text: string): string {
  let percent = text.indexOf('%');
  let backslash = text.indexOf('\\');
  let decoded = '';
  let copied = 0;
  while (percent !== -1 || backslash !== -1) {
    const isPercent = backslash === -1 || (percent !== -1 && percent < backslash);
    const at = isPercent ? percent : backslash;
    let code = -1;
    if (isPercent) code = hexValue(text, at + 1, 2);
    else if (text.charCodeAt(at + 1) === 0x75 /* u */) code = hexValue(text, at + 2, 4);
    let from = at + 1;
    if (code >= 0) {
      decoded += text.slice(copied, at) + String.fromCharCode(code);
      copied = from = at + (isPercent ? 3 : 6);
    }
    // Each kind is searched for again only once decoding has passed it, so the text is read once.
    if (percent !== -1 && percent < from) percent = text.indexOf('%', from);
    if (backslash !== -1 && backslash < from) backslash = text.indexOf('\\', from);
  }
  return copied === 0 ? text : decoded + text.slice(copied);
}

/** The value of `digits` hex digits at `at`, or -1. */
function hexValue(text: string, at: number, digits: number): number {
  if (at + digits > text.length) return -1;
  let value = 0;
  for (let i = at; i < at + digits; i++) {
    const digit = HEX[text.charCodeAt(i)]!;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}
