import { Transform, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** The content codings the gateway can decode, by their `Content-Encoding` token. */
const DECODERS = new Map<string, () => Transform>([
  ['gzip', createGunzip],
  ['x-gzip', createGunzip],
  ['deflate', createInflate],
  ['br', createBrotliDecompress],
]);

/** Event streams go out event by event: nothing may hold them back to look at them whole. */
export function isEventStream(contentType: string): boolean {
  return contentType.startsWith('text/event-stream');
}

export function isJson(contentType: string): boolean {
  return /json/i.test(contentType);
}

/**
 * A fresh decoder for a `Content-Encoding` value: `undefined` when the bytes are plain,
 * `'unsupported'` for a coding (or a list of codings) the gateway does not decode.
 */
export function decoderFor(contentEncoding: string | undefined): Transform | undefined | 'unsupported' {
  const coding = contentEncoding?.trim().toLowerCase();
  if (!coding || coding === 'identity') return undefined;
  return DECODERS.get(coding)?.() ?? 'unsupported';
}

/**
 * Fails the stream once more than `maxBytes` have passed: placed after a decoder, so that a small
 * compressed body cannot inflate into more memory than the gateway means to spend on it.
 */
export class SizeCap extends Transform {
  #seen = 0;
  constructor(private readonly maxBytes: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.maxBytes) callback(new Error('decoded body exceeds the size cap'));
    else callback(null, chunk);
  }
}

/**
 * How many times its own size a compressed request body may grow once decoded. Real JSON bodies
 * compress 3 to 20 times (a long context repeating itself a little more); a bomb compresses
 * hundreds to millions of times, which would let a few bytes make the gateway do the work of
 * megabytes. Bodies that decode to at most DECODED_FLOOR_BYTES are never refused for it (a small
 * body's headers weigh in its ratio); a bomb is refused as soon as the floor, or 100 times its
 * size, has come out of the decoder.
 */
export const MAX_COMPRESSION_RATIO = 100;
export const DECODED_FLOOR_BYTES = 64 * 1024;

/**
 * Decodes a body held in memory into the chunks the decoder makes (never joined, so that no one
 * copy of megabytes holds up other requests), handing each to `onChunk` as it comes out:
 * `'too-large'` once more than `maxBytes` come out, `'too-compressed'` once more than
 * MAX_COMPRESSION_RATIO times the encoded size (and DECODED_FLOOR_BYTES) do, `'broken'` when the
 * bytes are not valid in their coding.
 */
export function decodeWhole(
  encoded: readonly Buffer[],
  decoder: Transform,
  maxBytes: number,
  onChunk?: (chunk: Buffer) => void,
): Promise<Buffer[] | 'too-large' | 'too-compressed' | 'broken'> {
  let encodedLength = 0;
  for (const chunk of encoded) encodedLength += chunk.length;
  const ratioCap = Math.max(DECODED_FLOOR_BYTES, encodedLength * MAX_COMPRESSION_RATIO);
  const overCap = ratioCap < maxBytes ? 'too-compressed' : 'too-large';
  return new Promise((resolve) => {
    const capped = new SizeCap(Math.min(maxBytes, ratioCap));
    const chunks: Buffer[] = [];
    capped.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      onChunk?.(chunk);
    });
    capped.once('end', () => resolve(chunks));
    capped.once('error', () => {
      decoder.destroy();
      resolve(overCap);
    });
    decoder.once('error', () => resolve('broken'));
    decoder.pipe(capped);
    for (const chunk of encoded) decoder.write(chunk);
    decoder.end();
  });
}
