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
    let state = this.#state;
    let i = 0;
    scan: while (i < length) {
      let byte = chunk[i]!;
      switch (state) {
        case STRING: {
          // The tight loop: most of a body is the inside of strings.
          let j = i;
          while (j < length) {
            const b = chunk[j]!;
            if (b === QUOTE || b === BACKSLASH || b < 0x20) break;
            j++;
          }
          if (this.#keyWatched) this.#collectKey(chunk, i, j);
          if (j === length) break scan;
          byte = chunk[j]!;
          i = j + 1;
          if (byte === QUOTE) state = this.#endString(this.#offset + i);
          else if (byte === BACKSLASH) {
            this.#keyEscaped = true;
            if (this.#keyWatched) this.#collectKey(chunk, j, i);
            state = ESCAPE;
          } else state = FAILED;
          break;
        }
        case ESCAPE:
          if (byte === 0x75) {
            state = UNICODE;
            this.#hexLeft = 4;
          } else state = ESCAPABLE.has(byte) ? STRING : FAILED;
          if (this.#keyWatched) this.#collectKey(chunk, i, i + 1);
          i++;
          break;
        case UNICODE:
          if (!isHexDigit(byte)) state = FAILED;
          else if (--this.#hexLeft === 0) state = STRING;
          if (this.#keyWatched) this.#collectKey(chunk, i, i + 1);
          i++;
          break;
        case LITERAL:
          if (byte !== this.#literal[this.#literalIndex]) state = FAILED;
          else if (++this.#literalIndex === this.#literal.length) state = AFTER_VALUE;
          i++;
          break;
        case NUM_MINUS:
        case NUM_DOT:
        case NUM_E_SIGN:
          // A digit must follow.
          if (!isDigit(byte)) state = FAILED;
          else
            state =
              state === NUM_MINUS
                ? byte === ZERO
                  ? NUM_ZERO
                  : NUM_INT
                : state === NUM_DOT
                  ? NUM_FRAC
                  : NUM_EXP;
          i++;
          break;
        case NUM_E:
          if (byte === PLUS || byte === MINUS) state = NUM_E_SIGN;
          else state = isDigit(byte) ? NUM_EXP : FAILED;
          i++;
          break;
        case NUM_ZERO:
        case NUM_INT:
        case NUM_FRAC:
        case NUM_EXP:
          if (state !== NUM_ZERO) {
            while (i < length && isDigit(chunk[i]!)) i++;
            if (i === length) break scan;
            byte = chunk[i]!;
          }
          if (byte === DOT && (state === NUM_ZERO || state === NUM_INT)) {
            state = NUM_DOT;
            i++;
          } else if ((byte === 0x65 || byte === 0x45) && state !== NUM_EXP) {
            state = NUM_E;
            i++;
          } else if (isDigit(byte)) {
            state = FAILED; // a leading zero
          } else {
            state = AFTER_VALUE; // the byte ends the number and is read again
          }
          break;
        default:
          i++;
          // The separator between values, the commonest byte outside strings, without a call.
          if (byte === COMMA && state === AFTER_VALUE)
            state = this.#kinds[this.#depth - 1] === 1 ? KEY : VALUE;
          else if (!isWhitespace(byte)) state = this.#structural(state, byte, this.#offset + i - 1);
      }
      if (state === FAILED) break;
    }
    this.#state = state;
  }

  /** The state after `byte` outside strings, numbers and literals. */
  #structural(state: number, byte: number, at: number): number {
    switch (state) {
      case AFTER_VALUE: {
        const inObject = this.#kinds[this.#depth - 1] === 1;
        if (byte === COMMA) return inObject ? KEY : VALUE;
        if (byte === (inObject ? CLOSE_OBJECT : CLOSE_ARRAY)) return this.#close();
        return FAILED;
      }
      case VALUE:
        return this.#startValue(byte, at);
      case VALUE_OR_CLOSE:
        return byte === CLOSE_ARRAY ? this.#close() : this.#startValue(byte, at);
      case KEY:
        return byte === QUOTE ? this.#startKey() : FAILED;
      case KEY_OR_CLOSE:
        if (byte === QUOTE) return this.#startKey();
        return byte === CLOSE_OBJECT ? this.#close() : FAILED;
      case COLON:
        return byte === COLON_BYTE ? VALUE : FAILED;
      case START:
        if (byte !== OPEN_OBJECT) return FAILED;
        this.#values++;
        return this.#open(1, TOP);
      default:
        // DONE: nothing but whitespace may follow the object.
        return FAILED;
    }
  }

  #role(depth: number): number {
    return depth <= ROLE_DEPTH ? this.#roles[depth]! : OTHER;
  }

  #open(kind: number, role: number): number {
    if (this.#depth === this.#kinds.length) {
      const grown = new Uint8Array(this.#kinds.length * 2);
      grown.set(this.#kinds);
      this.#kinds = grown;
    }
    const depth = ++this.#depth;
    this.#kinds[depth - 1] = kind;
    if (depth > this.#maxDepth) this.#maxDepth = depth;
    if (depth <= ROLE_DEPTH) {
      this.#roles[depth] = role;
      if (role === TOOL) {
        this.#toolName = undefined;
        this.#functionName = undefined;
      }
    }
    return kind === 1 ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
  }

  /** Closes the innermost container; the caller checked the byte closes its kind. */
  #close(): number {
    const depth = this.#depth;
    if (depth <= ROLE_DEPTH && this.#roles[depth] === TOOL) {
      this.#keepToolName(this.#toolName);
      this.#keepToolName(this.#functionName);
    }
    this.#depth = depth - 1;
    return depth === 1 ? DONE : AFTER_VALUE;
  }

  #keepToolName(name: Span | undefined): void {
    if (name && this.#toolNames.length < MAX_TOOL_NAMES) this.#toolNames.push(name);
  }

  #startKey(): number {
    const role = this.#role(this.#depth);
    this.#inKey = true;
    this.#keyWatched = role === TOP || role === TOOL || role === TOOL_FUNCTION;
    this.#keyLength = 0;
    this.#keyEscaped = false;
    return STRING;
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

  #startValue(byte: number, at: number): number {
    this.#values++;
    const role = this.#role(this.#depth);
    const key = this.#key;
    // Only a watched key, or an element of `tools`, needs bookkeeping.
    if (key !== NO_KEY || role === TOOLS) return this.#startWatchedValue(byte, at, role, key);
    if (byte === QUOTE) {
      this.#inKey = false;
      this.#keyWatched = false;
      this.#stringTarget = NOWHERE;
      return STRING;
    }
    return this.#startOther(byte, OTHER);
  }

  #startWatchedValue(byte: number, at: number, role: number, key: number): number {
    this.#key = NO_KEY;
    this.#stringTarget = NOWHERE;
    let opened = OTHER;
    if (role === TOP && key === MODEL_KEY) {
      this.#modelKeys++;
      this.#model = undefined;
      if (byte === QUOTE) this.#stringTarget = TO_MODEL;
    } else if (role === TOP && key === TOOLS_KEY) {
      // The last `tools` is the one JSON.parse keeps.
      this.#toolNames = [];
      if (byte === OPEN_ARRAY) opened = TOOLS;
    } else if (key === NAME_KEY) {
      if (role === TOOL) this.#toolName = undefined;
      else this.#functionName = undefined;
      if (byte === QUOTE) this.#stringTarget = role === TOOL ? TO_TOOL_NAME : TO_FUNCTION_NAME;
    } else if (key === FUNCTION_KEY) {
      this.#functionName = undefined;
      if (byte === OPEN_OBJECT) opened = TOOL_FUNCTION;
    } else if (role === TOOLS && byte === OPEN_OBJECT) {
      opened = TOOL;
    }
    if (byte === QUOTE) {
      this.#inKey = false;
      this.#keyWatched = false;
      this.#stringStart = at;
      return STRING;
    }
    return this.#startOther(byte, opened);
  }

  /** A value that is not a string; `role` is the role of a container it opens. */
  #startOther(byte: number, role: number): number {
    if (byte === OPEN_OBJECT) return this.#open(1, role);
    if (byte === OPEN_ARRAY) return this.#open(0, role);
    if (byte === MINUS) return NUM_MINUS;
    if (byte === ZERO) return NUM_ZERO;
    if (isDigit(byte)) return NUM_INT;
    const literal = LITERALS[byte];
    if (!literal) return FAILED;
    this.#literal = literal;
    this.#literalIndex = 1;
    return LITERAL;
  }

  #endString(end: number): number {
    if (this.#inKey) {
      this.#inKey = false;
      this.#key = this.#watchedKey();
      this.#keyWatched = false;
      return COLON;
    }
    const target = this.#stringTarget;
    if (target !== NOWHERE) {
      const span = { start: this.#stringStart, end };
      if (target === TO_MODEL) this.#model = span;
      else if (target === TO_TOOL_NAME) this.#toolName = span;
      else this.#functionName = span;
    }
    return AFTER_VALUE;
  }
}
