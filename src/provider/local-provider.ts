import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Json } from './json-body.js';

/**
 * An Express-style handler that serves a provider call inside the host app; `req.body` holds the
 * parsed JSON body. Declared through a method so that handlers typed with Express's own `Request`
 * and `Response` fit (method parameters are compared bivariantly).
 */
export type LocalProviderHandler = {
  handle(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the parsed body, typed as Express types it
    req: IncomingMessage & { body?: any },
    res: ServerResponse,
    next: (error?: unknown) => void,
  ): unknown;
}['handle'];
/** Returns the handler that serves `model` locally, or `undefined` to send the call upstream. */
export type LocalProvider = (model: string, req: IncomingMessage) => LocalProviderHandler | undefined;

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
