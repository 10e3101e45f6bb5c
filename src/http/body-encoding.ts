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
 * Decodes a body held in memory: `'too-large'` once more than `maxBytes` come out, `'broken'`
 * when the bytes are not valid in their coding.
 */
export function decodeWhole(
  bytes: Buffer,
  decoder: Transform,
  maxBytes: number,
): Promise<Buffer | 'too-large' | 'broken'> {
  return new Promise((resolve) => {
    const capped = new SizeCap(maxBytes);
    const chunks: Buffer[] = [];
    capped.on('data', (chunk: Buffer) => chunks.push(chunk));
    capped.once('end', () => resolve(Buffer.concat(chunks)));
    capped.once('error', () => {
      decoder.destroy();
      resolve('too-large');
    });
    decoder.once('error', () => resolve('broken'));
    decoder.pipe(capped);
    decoder.end(bytes);
  });
}
