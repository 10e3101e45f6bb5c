import type { IncomingMessage } from 'node:http';
import { isPlainObject } from '../plain-object.js';
import { decodeWhole, decoderFor } from '../http/body-encoding.js';
import type { HeldBody } from '../http/held-body.js';
import { ModelScanner, type BodyScan, type Span } from './model-scanner.js';

export type Json = Record<string, unknown>;

/** Why a provider call's body is refused before it goes anywhere. */
export type BodyRefusal =
  'amp_body_too_large' | 'amp_body_too_compressed' | 'amp_body_ambiguous' | 'amp_body_too_complex';

/**
 * Past these, a body is not parsed into objects for a local handler: the parse would take the
 * event loop for longer, and the heap for more, than any conversation needs. A long Amp thread
 * is mostly long strings: a thousand messages of a few content blocks, tens of tools with their
 * schemas, come to tens of thousands of values, nested a dozen deep.
 */
const MAX_PARSED_VALUES = 100_000;
const MAX_PARSED_DEPTH = 128;

/** A provider call's body, read for what routing needs. */
export interface ProviderBody {
  /** The bytes as received, when the gateway read the stream (rather than a host body parser). */
  readonly received: HeldBody | undefined;
  /** What the body says, when it is a JSON object whose `model` is a string. */
  readonly named: NamedModel | undefined;
}

export interface NamedModel {
  readonly model: string;
  /** `tools[].name` and `tools[].function.name`, in order, for restoring their casing. */
  readonly toolNames: readonly string[];
  /** The body to send upstream naming `model` instead of the requested one. */
  withModel(model: string): HeldBody;
  /** The body as objects, naming `model`, for a local handler's `req.body`. */
  parsedWithModel(model: string): Json | 'amp_body_too_complex';
}

function toolNamesIn(json: Json): string[] {
  const names: string[] = [];
  if (!Array.isArray(json.tools)) return names;
  for (const tool of json.tools as unknown[]) {
    if (!isPlainObject(tool)) continue;
    const { name, function: fn } = tool as { name?: unknown; function?: { name?: unknown } };
    for (const candidate of [name, fn?.name]) if (typeof candidate === 'string') names.push(candidate);
  }
  return names;
}

/** A body a host parser already turned into objects: what it made is all there is. */
function parsedByHost(json: Json): ProviderBody {
  const { model } = json;
  if (typeof model !== 'string') return { received: undefined, named: undefined };
  const named: NamedModel = {
    model,
    toolNames: toolNamesIn(json),
    withModel: (to) => ({ chunks: [Buffer.from(JSON.stringify({ ...json, model: to }))], asReceived: false }),
    parsedWithModel: (to) => ({ ...json, model: to }),
  };
  return { received: undefined, named };
}

/** A body held in the pieces it came in, and where each piece starts. */
class Pieces {
  readonly #starts: number[] = [];
  constructor(readonly chunks: readonly Buffer[]) {
    let at = 0;
    for (const chunk of chunks) {
      this.#starts.push(at);
      at += chunk.length;
    }
  }

  /** The index of the piece holding byte `offset`. */
  #pieceAt(offset: number): number {
    let low = 0;
    let high = this.#starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.#starts[middle]! <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  /** The text of a string token the scan found (a name: copying it is cheap). */
  stringAt(span: Span): string {
    const parts: Buffer[] = [];
    for (let index = this.#pieceAt(span.start); index < this.chunks.length; index++) {
      const start = this.#starts[index]!;
      if (start >= span.end) break;
      parts.push(this.chunks[index]!.subarray(Math.max(0, span.start - start), span.end - start));
    }
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as string;
  }

  /** The pieces with `replacement` in place of the span's bytes, sharing every other byte. */
  spliced(span: Span, replacement: Buffer): Buffer[] {
    const first = this.#pieceAt(span.start);
    const last = this.#pieceAt(span.end - 1);
    return [
      ...this.chunks.slice(0, first),
      this.chunks[first]!.subarray(0, span.start - this.#starts[first]!),
      replacement,
      this.chunks[last]!.subarray(span.end - this.#starts[last]!),
      ...this.chunks.slice(last + 1),
    ];
  }
}

/**
 * A body the gateway read itself, never parsed: the scan says where the model is, and the mapped
 * name is spliced into the decoded bytes in its place, every other byte as the client sent it.
 */
function scanned(received: HeldBody, decoded: readonly Buffer[], scan: BodyScan): ProviderBody | BodyRefusal {
  if (scan.kind !== 'object') return { received, named: undefined };
  // JSON parsers disagree on a repeated key (the last wins, the first wins, or an error): a body
  // naming two models could be routed as one and served as the other.
  if (scan.modelKeys > 1) return 'amp_body_ambiguous';
  const { model: span } = scan;
  if (!span) return { received, named: undefined };
  const body = new Pieces(decoded);
  const named: NamedModel = {
    model: body.stringAt(span),
    toolNames: scan.toolNames.map((name) => body.stringAt(name)),
    withModel: (to) => ({ chunks: body.spliced(span, Buffer.from(JSON.stringify(to))), asReceived: false }),
    parsedWithModel(to) {
      if (scan.values > MAX_PARSED_VALUES || scan.depth > MAX_PARSED_DEPTH) return 'amp_body_too_complex';
      const json = JSON.parse(Buffer.concat(decoded).toString('utf8')) as Json;
      json.model = to;
      return json;
    },
  };
  return { received, named };
}

function readStream(
  req: IncomingMessage,
  maxBytes: number,
  onChunk: ((chunk: Buffer) => void) | undefined,
): Promise<Buffer[] | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        req.pause();
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
      onChunk?.(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks));
    req.once('error', reject);
  });
}

/**
 * The request body, read once for what routing needs: at most `maxBytes` of it, and no more than
 * that once decoded if it came compressed (nor more than the compression ratio allows). It is
 * scanned chunk by chunk as it arrives or is decoded, and never parsed into objects unless a
 * local handler is to get it. A body that is not JSON, or is in a coding the gateway does not
 * decode, is still returned as received: it goes upstream for the upstream to judge.
 */
export async function readProviderBody(
  req: IncomingMessage & { body?: unknown },
  maxBytes: number,
): Promise<ProviderBody | BodyRefusal> {
  if (req.readableEnded) {
    return isPlainObject(req.body) ? parsedByHost(req.body) : { received: undefined, named: undefined };
  }
  const decoder = decoderFor(req.headers['content-encoding']);
  const scanner = new ModelScanner();
  const raw = await readStream(req, maxBytes, decoder ? undefined : (chunk) => scanner.push(chunk));
  if (raw === 'too-large') return 'amp_body_too_large';
  const received: HeldBody = { chunks: raw, asReceived: true };
  if (decoder === 'unsupported') return { received, named: undefined };
  if (!decoder) return scanned(received, raw, scanner.end());
  // The decoder works in its own thread on the whole body; only the scan runs here, chunk by chunk.
  const decoded = await decodeWhole(raw, decoder, maxBytes, (chunk) => scanner.push(chunk));
  if (decoded === 'too-large') return 'amp_body_too_large';
  if (decoded === 'too-compressed') return 'amp_body_too_compressed';
  if (decoded === 'broken') return { received, named: undefined };
  return scanned(received, decoded, scanner.end());
}
