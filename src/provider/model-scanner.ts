/**
 * A byte-level JSON scanner for provider call bodies: it finds what provider routing needs (the
 * top-level `model`, and the request's tool names) without building a single object, and checks
 * the whole body is JSON as it goes. It is fed the body chunk by chunk as it arrives, so its work
 * is spread over the body's arrival and bounded by its bytes, and it holds a few numbers per
 * nesting level and per tool name, whatever the body contains.
 */

/** Where a string token lies in the body: from its opening quote to just past its closing one. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/** What the scan of a body found. */
export type BodyScan =
  /** Not a JSON object: not JSON, truncated, or JSON of another kind. */
  | { readonly kind: 'not-an-object' }
  | {
      readonly kind: 'object';
      /** The last top-level `model` value (the one `JSON.parse` keeps), when it is a string. */
      readonly model: Span | undefined;
      /** How many times the top-level object has the key `model`. */
      readonly modelKeys: number;
      /**
       * `tools[].name` and `tools[].function.name` strings of the last top-level `tools` array, in
       * document order, at most MAX_TOOL_NAMES of them.
       */
      readonly toolNames: readonly Span[];
      /** Values in the document (objects, arrays and scalars), and its deepest nesting. */
      readonly values: number;
      readonly depth: number;
    };

/** Tool names kept; a request declaring more gets the casing of the first ones restored. */
export const MAX_TOOL_NAMES = 1024;
/** A key longer than this (raw, escapes included) cannot be one we look for: `\u0066…` is 6 bytes a letter. */
const MAX_WATCHED_KEY_BYTES = 6 * 'function'.length;

// Scanner states.
const START = 0;
const VALUE = 1;
const VALUE_OR_CLOSE = 2;
const KEY_OR_CLOSE = 3;
const KEY = 4;
const COLON = 5;
const AFTER_VALUE = 6;
const STRING = 7;
const ESCAPE = 8;
const UNICODE = 9;
const LITERAL = 10;
const NUM_MINUS = 11;
const NUM_ZERO = 12;
const NUM_INT = 13;
const NUM_DOT = 14;
const NUM_FRAC = 15;
const NUM_E = 16;
const NUM_E_SIGN = 17;
const NUM_EXP = 18;
const DONE = 19;
const FAILED = 20;

// What a container is, for the fields we look for.
const OTHER = 0;
const TOP = 1;
const TOOLS = 2;
const TOOL = 3;
const TOOL_FUNCTION = 4;
/** Containers deeper than this are always OTHER. */
const ROLE_DEPTH = 4;

// What the key just read names, in a container whose role watches keys.
const NO_KEY = 0;
const MODEL_KEY = 1;
const TOOLS_KEY = 2;
const NAME_KEY = 3;
const FUNCTION_KEY = 4;

// Where a string value being read is recorded.
const NOWHERE = 0;
const TO_MODEL = 1;
const TO_TOOL_NAME = 2;
const TO_FUNCTION_NAME = 3;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON_BYTE = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const LITERALS: Record<number, Uint8Array> = {
  0x74: new TextEncoder().encode('true'),
  0x66: new TextEncoder().encode('false'),
  0x6e: new TextEncoder().encode('null'),
};
const WATCHED_KEYS: ReadonlyMap<string, number> = new Map([
  ['model', MODEL_KEY],
  ['tools', TOOLS_KEY],
  ['name', NAME_KEY],
  ['function', FUNCTION_KEY],
]);

const isWhitespace = (byte: number): boolean =>
  byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
const isDigit = (byte: number): boolean => byte >= ZERO && byte <= NINE;
const isHexDigit = (byte: number): boolean =>
  isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
const ESCAPABLE = new Set([QUOTE, BACKSLASH, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

/**
 * Scans a body pushed to it in chunks; `end()` says what it found. Once the body is known not to
 * be a JSON object, the rest is not looked at.
 */
export class ModelScanner {
  #state = START;
  /** Bytes scanned before the current chunk: spans are offsets in the whole body. */
  #offset = 0;
  /** 1 for an object, 0 for an array, per open container. */
  #kinds = new Uint8Array(64);
  #depth = 0;
  #maxDepth = 0;
  #values = 0;
  /** The role of each open container up to ROLE_DEPTH (index = depth). */
  #roles = new Uint8Array(ROLE_DEPTH + 1);

  #inKey = false;
  #keyWatched = false;
  #keyBytes = new Uint8Array(MAX_WATCHED_KEY_BYTES);
  #keyLength = 0;
  #keyEscaped = false;
  #key = NO_KEY;

  #stringStart = 0;
  #stringTarget = NOWHERE;
  #hexLeft = 0;
  #literal: Uint8Array = LITERALS[0x74]!;
  #literalIndex = 0;

  #model: Span | undefined;
  #modelKeys = 0;
  #toolNames: Span[] = [];
  #toolName: Span | undefined;
  #functionName: Span | undefined;

  push(chunk: Uint8Array): void {
    if (this.#state !== FAILED) this.#scan(chunk);
    this.#offset += chunk.length;
  }

  end(): BodyScan {
    if (this.#state !== DONE) return { kind: 'not-an-object' };
    return {
      kind: 'object',
      model: this.#model,
      modelKeys: this.#modelKeys,
      toolNames: this.#toolNames,
      values: this.#values,
      depth: this.#maxDepth,
    };
  }

  #scan(chunk: Uint8Array): void {
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      const byte = chunk[i]!;
      switch (this.#state) {
        case STRING: {
          // The tight loop: most of a body is the inside of strings.
          let j = i;
          while (j < length) {
            const b = chunk[j]!;
            if (b === QUOTE || b === BACKSLASH || b < 0x20) break;
            j++;
          }
          if (this.#keyWatched) this.#collectKey(chunk, i, j);
          i = j;
          if (i === length) return;
          const b = chunk[i]!;
          if (b === QUOTE) this.#endString(this.#offset + i + 1);
          else if (b === BACKSLASH) {
            this.#keyEscaped = true;
            if (this.#keyWatched) this.#collectKey(chunk, i, i + 1);
            this.#state = ESCAPE;
          } else return this.#fail();
          i++;
          continue;
        }
        case ESCAPE:
          if (byte === 0x75) {
            this.#state = UNICODE;
            this.#hexLeft = 4;
          } else if (ESCAPABLE.has(byte)) this.#state = STRING;
          else return this.#fail();
          if (this.#keyWatched) this.#collectKey(chunk, i, i + 1);
          i++;
          continue;
        case UNICODE:
          if (!isHexDigit(byte)) return this.#fail();
          if (--this.#hexLeft === 0) this.#state = STRING;
          if (this.#keyWatched) this.#collectKey(chunk, i, i + 1);
          i++;
          continue;
        case LITERAL:
          if (byte !== this.#literal[this.#literalIndex]) return this.#fail();
          if (++this.#literalIndex === this.#literal.length) this.#endScalar();
          i++;
          continue;
        case NUM_MINUS:
          if (byte === ZERO) this.#state = NUM_ZERO;
          else if (isDigit(byte)) this.#state = NUM_INT;
          else return this.#fail();
          i++;
          continue;
        case NUM_ZERO:
        case NUM_INT:
        case NUM_FRAC:
        case NUM_EXP:
          if (isDigit(byte) && this.#state !== NUM_ZERO) i++;
          else if (byte === DOT && this.#state !== NUM_FRAC && this.#state !== NUM_EXP) {
            this.#state = NUM_DOT;
            i++;
          } else if ((byte === 0x65 || byte === 0x45) && this.#state !== NUM_EXP) {
            this.#state = NUM_E;
            i++;
          } else if (isDigit(byte))
            return this.#fail(); // a leading zero
          else this.#endScalar(); // the byte ends the number and is read again
          continue;
        case NUM_DOT:
          if (!isDigit(byte)) return this.#fail();
          this.#state = NUM_FRAC;
          i++;
          continue;
        case NUM_E:
          if (byte === PLUS || byte === MINUS) this.#state = NUM_E_SIGN;
          else if (isDigit(byte)) this.#state = NUM_EXP;
          else return this.#fail();
          i++;
          continue;
        case NUM_E_SIGN:
          if (!isDigit(byte)) return this.#fail();
          this.#state = NUM_EXP;
          i++;
          continue;
        default:
          break;
      }
      i++;
      if (isWhitespace(byte)) continue;
      switch (this.#state) {
        case START:
          if (byte !== OPEN_OBJECT) return this.#fail();
          this.#values++;
          this.#open(1, TOP);
          break;
        case VALUE:
        case VALUE_OR_CLOSE:
          if (byte === CLOSE_ARRAY && this.#state === VALUE_OR_CLOSE) this.#close(0);
          else this.#startValue(byte, this.#offset + i - 1);
          break;
        case KEY_OR_CLOSE:
        case KEY:
          if (byte === QUOTE) this.#startKey();
          else if (byte === CLOSE_OBJECT && this.#state === KEY_OR_CLOSE) this.#close(1);
          else return this.#fail();
          break;
        case COLON:
          if (byte !== COLON_BYTE) return this.#fail();
          this.#state = VALUE;
          break;
        case AFTER_VALUE: {
          const inObject = this.#kinds[this.#depth - 1] === 1;
          if (byte === COMMA) this.#state = inObject ? KEY : VALUE;
          else if (byte === (inObject ? CLOSE_OBJECT : CLOSE_ARRAY)) this.#close(inObject ? 1 : 0);
          else return this.#fail();
          break;
        }
        default:
          // DONE: nothing but whitespace may follow the object.
          return this.#fail();
      }
      if (this.#state === FAILED) return;
    }
  }

  #fail(): void {
    this.#state = FAILED;
  }

  #role(depth: number): number {
    return depth <= ROLE_DEPTH ? this.#roles[depth]! : OTHER;
  }

  #open(kind: number, role: number): void {
    if (this.#depth === this.#kinds.length) {
      const grown = new Uint8Array(this.#kinds.length * 2);
      grown.set(this.#kinds);
      this.#kinds = grown;
    }
    this.#kinds[this.#depth++] = kind;
    if (this.#depth > this.#maxDepth) this.#maxDepth = this.#depth;
    if (this.#depth <= ROLE_DEPTH) this.#roles[this.#depth] = role;
    if (role === TOOL) {
      this.#toolName = undefined;
      this.#functionName = undefined;
    }
    this.#state = kind === 1 ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
  }

  #close(kind: number): void {
    if (this.#role(this.#depth) === TOOL) {
      for (const name of [this.#toolName, this.#functionName]) {
        if (name && this.#toolNames.length < MAX_TOOL_NAMES) this.#toolNames.push(name);
      }
    }
    if (this.#kinds[this.#depth - 1] !== kind) return this.#fail();
    this.#depth--;
    this.#state = this.#depth === 0 ? DONE : AFTER_VALUE;
  }

  #startKey(): void {
    const role = this.#role(this.#depth);
    this.#inKey = true;
    this.#keyWatched = role === TOP || role === TOOL || role === TOOL_FUNCTION;
    this.#keyLength = 0;
    this.#keyEscaped = false;
    this.#state = STRING;
  }

  #collectKey(chunk: Uint8Array, from: number, to: number): void {
    const room = MAX_WATCHED_KEY_BYTES - this.#keyLength;
    if (to - from > room) {
      this.#keyWatched = false;
      return;
    }
    this.#keyBytes.set(chunk.subarray(from, to), this.#keyLength);
    this.#keyLength += to - from;
  }

  /** The key just read, if it is one the container's role looks for. */
  #watchedKey(): number {
    if (!this.#keyWatched) return NO_KEY;
    const raw = Buffer.from(this.#keyBytes.buffer, 0, this.#keyLength).toString('latin1');
    // Escapes (`"mod\u0065l"`) name the same key; such a key is short, so decoding it is cheap.
    const name = this.#keyEscaped ? (JSON.parse(`"${raw}"`) as string) : raw;
    const key = WATCHED_KEYS.get(name) ?? NO_KEY;
    const role = this.#role(this.#depth);
    if (role === TOP) return key === MODEL_KEY || key === TOOLS_KEY ? key : NO_KEY;
    if (role === TOOL) return key === NAME_KEY || key === FUNCTION_KEY ? key : NO_KEY;
    return key === NAME_KEY ? key : NO_KEY;
  }

  #startValue(byte: number, at: number): void {
    this.#values++;
    const role = this.#role(this.#depth);
    const key = this.#key;
    this.#key = NO_KEY;
    this.#stringTarget = NOWHERE;
    if (role === TOP && key === MODEL_KEY) {
      this.#modelKeys++;
      this.#model = undefined;
      if (byte === QUOTE) this.#stringTarget = TO_MODEL;
    } else if (role === TOP && key === TOOLS_KEY) {
      // The last `tools` is the one JSON.parse keeps.
      this.#toolNames = [];
    } else if (key === NAME_KEY) {
      if (role === TOOL) this.#toolName = undefined;
      else this.#functionName = undefined;
      if (byte === QUOTE) this.#stringTarget = role === TOOL ? TO_TOOL_NAME : TO_FUNCTION_NAME;
    } else if (key === FUNCTION_KEY) {
      this.#functionName = undefined;
    }

    if (byte === QUOTE) {
      this.#inKey = false;
      this.#keyWatched = false;
      this.#stringStart = at;
      this.#state = STRING;
    } else if (byte === OPEN_OBJECT) {
      const opened = role === TOOLS ? TOOL : role === TOOL && key === FUNCTION_KEY ? TOOL_FUNCTION : OTHER;
      this.#open(1, opened);
    } else if (byte === OPEN_ARRAY) {
      this.#open(0, role === TOP && key === TOOLS_KEY ? TOOLS : OTHER);
    } else if (byte === MINUS) this.#state = NUM_MINUS;
    else if (byte === ZERO) this.#state = NUM_ZERO;
    else if (isDigit(byte)) this.#state = NUM_INT;
    else if (LITERALS[byte]) {
      this.#literal = LITERALS[byte];
      this.#literalIndex = 1;
      this.#state = LITERAL;
    } else this.#fail();
  }

  #endString(end: number): void {
    if (this.#inKey) {
      this.#inKey = false;
      this.#key = this.#watchedKey();
      this.#keyWatched = false;
      this.#state = COLON;
      return;
    }
    const span = { start: this.#stringStart, end };
    if (this.#stringTarget === TO_MODEL) this.#model = span;
    else if (this.#stringTarget === TO_TOOL_NAME) this.#toolName = span;
    else if (this.#stringTarget === TO_FUNCTION_NAME) this.#functionName = span;
    this.#state = AFTER_VALUE;
  }

  #endScalar(): void {
    this.#state = AFTER_VALUE;
  }
}

/** The text of a string token the scan found. */
export function stringAt(body: Buffer, span: Span): string {
  return JSON.parse(body.toString('utf8', span.start, span.end)) as string;
}

/** Scans a body held whole. */
export function scanBody(body: Uint8Array): BodyScan {
  const scanner = new ModelScanner();
  scanner.push(body);
  return scanner.end();
}
