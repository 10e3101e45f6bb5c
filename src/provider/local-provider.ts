import type { IncomingMessage } from 'node:http';
import type { Json } from './json-body.js';
import type { LocalProvider, LocalProviderHandler } from '../types.js';

/**
 * The host's handler for `model`, if it serves that model. Called, it finds in `req.body` what an
 * Express body parser would have left there, naming the model it serves. It is set only then, and
 * on a copy: routing itself changes nothing on the request, nor the body a host parser produced.
 */
export function localHandlerFor(
  localProvider: LocalProvider | undefined,
  model: string,
  req: IncomingMessage,
  json: Json | undefined,
): LocalProviderHandler | undefined {
  const handler = localProvider?.(model, req);
  if (!handler) return undefined;
  const body = json && { ...json, model };
  return (request, res, next) => {
    request.body = body;
    return handler(request, res, next);
  };
}
