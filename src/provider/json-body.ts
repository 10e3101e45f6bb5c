import type { IncomingMessage } from 'node:http';
import { isPlainObject } from '../plain-object.js';
import { decodeWhole, decoderFor } from '../http/body-encoding.js';
import type { HeldBody } from '../http/held-body.js';

export type Json = Record<string, unknown>;

/** A request body read for the JSON in it. */
export interface JsonBody {
  /** The parsed body, when it is a JSON object. */
  readonly json: Json | undefined;
  /** The bytes as received, when the gateway read the stream (rather than a host body parser). */
  readonly received: HeldBody | undefined;
}

function readStream(req: IncomingMessage, maxBytes: number): Promise<Buffer | 'too-large'> {
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
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function parseObject(text: Buffer): Json | undefined {
  try {
    const json: unknown = JSON.parse(text.toString('utf8'));
    return isPlainObject(json) ? json : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The request body as JSON, read once: at most `maxBytes` of it, and no more than that once
 * decoded if it came compressed. A body that is not JSON, or is in a coding the gateway does not
 * decode, is still returned as received: it goes upstream for the upstream to judge.
 */
export async function readJsonBody(
  req: IncomingMessage & { body?: unknown },
  maxBytes: number,
): Promise<JsonBody | 'too-large'> {
  if (req.readableEnded) {
    // A host body parser got here first; what it parsed is all there is.
    return { json: isPlainObject(req.body) ? req.body : undefined, received: undefined };
  }
  const raw = await readStream(req, maxBytes);
  if (raw === 'too-large') return raw;
  const received: HeldBody = { bytes: raw, asReceived: true };
  const decoder = decoderFor(req.headers['content-encoding']);
  if (decoder === 'unsupported') return { json: undefined, received };
  const text = decoder ? await decodeWhole(raw, decoder, maxBytes) : raw;
  if (text === 'too-large') return text;
  if (text === 'broken') return { json: undefined, received };
  return { json: parseObject(text), received };
}
