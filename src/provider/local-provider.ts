import type { IncomingMessage } from 'node:http';
import type { NamedModel } from './json-body.js';
import type { LocalProvider, LocalProviderHandler } from '../types.js';

/**
 * The host's handler for `model`, if it serves that model. Called, it finds in `req.body` what an
 * Express body parser would have left there, naming the model it serves. It is set only then, and
 * on a copy: routing itself changes nothing on the request, nor the body a host parser produced.
 * A body too complex to parse in one go is refused rather than handed over.
 */
export function localHandlerFor(
  localProvider: LocalProvider | undefined,
  model: string,
  req: IncomingMessage,
  named: NamedModel | undefined,
): LocalProviderHandler | 'amp_body_too_complex' | undefined {
  const handler = localProvider?.(model, req);
  if (!handler) return undefined;
  const body = named?.parsedWithModel(model);
  if (body === 'amp_body_too_complex') return body;
  return (request, res, next) => {
    request.body = body;
    return handler(request, res, next);
  };
}
