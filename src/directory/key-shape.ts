import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { KeyRecogniser } from '../auth/key-recognition.js';

/**
 * The shape of the keys the gateway issues: `ampgw_`, 32 random base62 characters (190 bits),
 * then 6 base62 characters of the CRC32 of everything before them. The prefix lets a secret
 * scanner (and a person) tell what leaked; the checksum lets it, and the gateway, dismiss a
 * look-alike without asking the directory.
 */
export const GATEWAY_KEY_PREFIX = 'ampgw_';
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const BODY_LENGTH = 32;
/** 62^6 > 2^32: every CRC32 fits. */
const CHECKSUM_LENGTH = 6;
export const GATEWAY_KEY_LENGTH = GATEWAY_KEY_PREFIX.length + BODY_LENGTH + CHECKSUM_LENGTH;
const IS_BASE62 = new Uint8Array(128);
for (const char of BASE62) IS_BASE62[char.charCodeAt(0)] = 1;
/** The largest multiple of 62 a byte can hold: bytes from 248 up are drawn again, so no character is likelier. */
const UNBIASED_LIMIT = 62 * 4;

function checksum(text: string): string {
  let value = crc32(text);
  let digits = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    digits = BASE62[value % 62]! + digits;
    value = Math.floor(value / 62);
  }
  return digits;
}

/** A new gateway key of the shape above. */
export function generateGatewayKey(): string {
  let body = '';
  while (body.length < BODY_LENGTH) {
    for (const byte of randomBytes(BODY_LENGTH)) {
      if (byte < UNBIASED_LIMIT && body.length < BODY_LENGTH) body += BASE62[byte % 62];
    }
  }
  const key = GATEWAY_KEY_PREFIX + body;
  return key + checksum(key);
}

/** Whether `token` has the shape of a key the gateway issues, checksum included. */
export function isGatewayKey(token: string): boolean {
  if (token.length !== GATEWAY_KEY_LENGTH || !token.startsWith(GATEWAY_KEY_PREFIX)) return false;
  const split = GATEWAY_KEY_LENGTH - CHECKSUM_LENGTH;
  for (let i = GATEWAY_KEY_PREFIX.length; i < GATEWAY_KEY_LENGTH; i++) {
    if (IS_BASE62[token.charCodeAt(i)] !== 1) return false;
  }
  return checksum(token.slice(0, split)) === token.slice(split);
}

/**
 * How a directory's keys look, declared by whoever writes its resolver: their length (what keeps
 * the search cheap: tokens of other lengths are never read twice) and a prefix, a test, or both.
 */
export interface KeyShape {
  readonly length: number;
  readonly prefix?: string;
  readonly test?: (token: string) => boolean;
}

/** The keys `amp-proxy keys add` issues. */
export const GATEWAY_KEY_SHAPE: KeyShape = {
  length: GATEWAY_KEY_LENGTH,
  prefix: GATEWAY_KEY_PREFIX,
  test: isGatewayKey,
};

/**
 * Recognises every token of a shape, wherever `findKeys` looks (raw, decoded, inside `Basic`),
 * as the token itself: which client it is, if any, only the directory can say.
 */
export class ShapeRecogniser implements KeyRecogniser<string> {
  /** It stands for every key of the shape: a caller without one is refused. */
  readonly size = Infinity;
  readonly shortest: number;

  constructor(private readonly shape: KeyShape) {
    this.shortest = shape.length;
  }

  hasKeyOfLength(length: number): boolean {
    return length === this.shape.length;
  }

  lookup(token: string): string | undefined {
    const { prefix, test } = this.shape;
    if (prefix !== undefined && !token.startsWith(prefix)) return undefined;
    return test === undefined || test(token) ? token : undefined;
  }
}
