import { isPlainObject } from '../plain-object.js';
import { isEventStream, isJson } from '../http/body-encoding.js';
import type { Json } from './json-body.js';

/** What to restore in a mapped or locally served response. */
export interface RewriteSpec {
  /** The model the client asked for; replaces the served model's name. */
  readonly requestedModel: string;
  /** The request's own tool names, by lower-case name, to restore their casing in `tool_use` blocks. */
  readonly toolNames: ReadonlyMap<string, string>;
}

/** Where a response names its model (OpenAI, Anthropic, Responses API, Gemini). */
const MODEL_PATHS: readonly (readonly string[])[] = [
  ['model'],
  ['message', 'model'],
  ['response', 'model'],
  ['modelVersion'],
  ['response', 'modelVersion'],
];
/** Past this, a JSON response to rewrite is cut off rather than held in memory. */
export const MAX_REWRITTEN_BODY_BYTES = 32 * 1024 * 1024;

/**
 * What to restore in the answer to a call for `requestedModel`: the model's name, and the
 * request's tool names as the request spelled them (a served model may change their case).
 */
export function rewriteSpecFor(requestedModel: string, requestToolNames: readonly string[]): RewriteSpec {
  const toolNames = new Map<string, string>();
  for (const name of requestToolNames) toolNames.set(name.toLowerCase(), name);
  return { requestedModel, toolNames };
}

/** Amp's client needs `signature` on thinking blocks and the tool names it sent, as it sent them. */
function fixContentBlock(block: unknown, spec: RewriteSpec): boolean {
  if (!isPlainObject(block)) return false;
  if (block.type === 'tool_use' && typeof block.name === 'string') {
    const original = spec.toolNames.get(block.name.toLowerCase());
    if (original !== undefined && original !== block.name) {
      block.name = original;
      return true;
    }
  }
  if (block.type === 'thinking' && block.signature === undefined) {
    block.signature = '';
    return true;
  }
  return false;
}

/** Rewrites one parsed JSON document in place; true when anything changed. */
function rewriteDocument(document: Json, spec: RewriteSpec): boolean {
  let changed = false;
  for (const path of MODEL_PATHS) {
    let holder: unknown = document;
    for (const key of path.slice(0, -1)) holder = isPlainObject(holder) ? holder[key] : undefined;
    const last = path[path.length - 1]!;
    if (isPlainObject(holder) && typeof holder[last] === 'string' && holder[last] !== spec.requestedModel) {
      holder[last] = spec.requestedModel;
      changed = true;
    }
  }
  const contents = [document.content, isPlainObject(document.message) ? document.message.content : undefined];
  for (const content of contents) {
    if (Array.isArray(content))
      for (const block of content) changed = fixContentBlock(block, spec) || changed;
  }
  changed = fixContentBlock(document.content_block, spec) || changed;
  return changed;
}

/**
 * The JSON text with the spec applied; the same text, byte for byte, when nothing applies or
 * when the document cannot be written back: `JSON.parse` reads any depth, but `JSON.stringify`
 * recurses and throws `RangeError` on a few thousand levels of nesting, which an upstream can send.
 */
export function rewriteJsonText(text: string, spec: RewriteSpec): string {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return text;
  }
  if (!isPlainObject(document) || !rewriteDocument(document, spec)) return text;
  try {
    return JSON.stringify(document);
  } catch {
    return text;
  }
}

const DATA_PREFIX = 'data:';
/**
 * What an event must contain for the rewrite to touch it. Most events of a stream are text
 * deltas that name no model and carry no tool or thinking block: one test lets them through
 * without parsing JSON.
 */
const MAY_NEED_REWRITE = /"model|"type"\s*:\s*"(?:tool_use|thinking)"/;

function rewriteSseLine(line: string, spec: RewriteSpec): string {
  if (!line.startsWith(DATA_PREFIX) || !MAY_NEED_REWRITE.test(line)) return line;
  const payloadStart =
    line.charCodeAt(DATA_PREFIX.length) === 32 ? DATA_PREFIX.length + 1 : DATA_PREFIX.length;
  const payload = line.slice(payloadStart);
  if (!payload.startsWith('{')) return line;
  const rewritten = rewriteJsonText(payload, spec);
  return rewritten === payload ? line : line.slice(0, payloadStart) + rewritten;
}

const NEWLINE = 0x0a;
const EMPTY = Buffer.alloc(0);

/**
 * Rewrites a response body on its way to the client, whoever produced it (the upstream or a local
 * handler): each chunk is pushed as it comes, and `end` is called once the body is complete.
 */
export interface BodyRewriter {
  /** The body is held until complete, so its length is known only when `end` returns. */
  readonly holdsWholeBody: boolean;
  /** What can be sent now; `undefined` once a held body has grown past its cap. */
  push(chunk: Buffer): Buffer | string | undefined;
  /** What is left to send. */
  end(): Buffer | string;
}

/**
 * An SSE rewriter that works line by line: every complete line goes out as soon as it arrives
 * (so no event waits for more than its own bytes), only a line still missing its end is held,
 * and everything but the JSON of `data:` lines — `event:`, `id:`, comments, blank-line framing,
 * CRLF or LF — passes byte for byte. Chunks are cut only at `\n` bytes, which never occur inside
 * a UTF-8 character, and chunks that cannot need a rewrite go out as the same bytes, undecoded.
 */
export class SseRewriter implements BodyRewriter {
  readonly holdsWholeBody = false;
  #pending: Buffer = EMPTY;

  constructor(private readonly spec: RewriteSpec) {}

  push(chunk: Buffer): Buffer | string {
    const lastBreak = chunk.lastIndexOf(NEWLINE);
    // The common case, a chunk of whole lines, takes no copies and no new Buffer views.
    if (lastBreak === chunk.length - 1 && this.#pending.length === 0) return this.#rewriteLines(chunk);
    if (lastBreak === -1) {
      this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
      return EMPTY;
    }
    const complete = chunk.subarray(0, lastBreak + 1);
    const lines = this.#pending.length === 0 ? complete : Buffer.concat([this.#pending, complete]);
    this.#pending = chunk.subarray(lastBreak + 1);
    return this.#rewriteLines(lines);
  }

  end(): Buffer | string {
    const rest = this.#pending;
    this.#pending = EMPTY;
    return this.#rewriteLines(rest);
  }

  #rewriteLines(lines: Buffer): Buffer | string {
    // Latin-1 is the cheapest way to a string, and exact for the ASCII patterns looked for.
    if (!MAY_NEED_REWRITE.test(lines.toString('latin1'))) return lines;
    const text = lines.toString('utf8');
    // Split keeping each line's own terminator (`\n` or `\r\n`).
    return text
      .split('\n')
      .map((line) => {
        const hasCr = line.endsWith('\r');
        const body = hasCr ? line.slice(0, -1) : line;
        return rewriteSseLine(body, this.spec) + (hasCr ? '\r' : '');
      })
      .join('\n');
  }
}

/** JSON is rewritten as one document: held until complete, which is when its new length is known. */
class JsonRewriter implements BodyRewriter {
  readonly holdsWholeBody = true;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(
    private readonly spec: RewriteSpec,
    private readonly maxBytes: number,
  ) {}

  push(chunk: Buffer): Buffer | undefined {
    this.#size += chunk.length;
    if (this.#size > this.maxBytes) {
      this.#chunks = [];
      return undefined;
    }
    this.#chunks.push(chunk);
    return EMPTY;
  }

  end(): Buffer {
    return Buffer.from(rewriteJsonText(Buffer.concat(this.#chunks).toString('utf8'), this.spec));
  }
}

/**
 * The rewriter a response body of this `Content-Type` needs: event streams line by line, JSON
 * whole (up to `maxJsonBytes`, so that its rewritten `Content-Length` can be sent), anything
 * else none.
 */
export function rewriterFor(
  contentType: string,
  spec: RewriteSpec,
  maxJsonBytes: number,
): BodyRewriter | undefined {
  if (isEventStream(contentType)) return new SseRewriter(spec);
  if (isJson(contentType)) return new JsonRewriter(spec, maxJsonBytes);
  return undefined;
}
