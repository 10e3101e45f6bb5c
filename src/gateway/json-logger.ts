import type { Writable } from 'node:stream';
import type { AmpLogger } from '../index.js';

/** The standalone gateway's logger: one JSON object per line, in pino's shape, without pino. */
export function jsonLogger(stream: Writable): Required<AmpLogger> {
  const write =
    (level: string) =>
    (object: object, message?: string): void => {
      stream.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg: message, ...object })}\n`);
    };
  return { info: write('info'), warn: write('warn'), error: write('error'), debug: () => undefined };
}
