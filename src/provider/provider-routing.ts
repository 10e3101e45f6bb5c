import type { IncomingMessage } from 'node:http';
import type { HeldBody } from '../http/held-body.js';
import { readProviderBody, type BodyRefusal, type ProviderBody } from './json-body.js';
import { localHandlerFor } from './local-provider.js';
import type { ModelMapper } from './model-mappings.js';
import { rewriteSpecFor, type RewriteSpec } from './response-rewriter.js';
import type { LocalProvider, LocalProviderHandler } from '../types.js';

export interface ProviderRoutingConfig {
  readonly mapModel: ModelMapper | undefined;
  readonly localProvider: LocalProvider | undefined;
  readonly forceModelMappings: boolean;
  readonly maxBodyBytes: number;
}

export type ProviderRoute =
  | { readonly kind: 'upstream'; readonly body: HeldBody | undefined }
  | {
      readonly kind: 'mapped';
      readonly from: string;
      readonly to: string;
      readonly path: string;
      readonly body: HeldBody | undefined;
      readonly rewrite: RewriteSpec;
    }
  | {
      readonly kind: 'local';
      readonly model: string;
      readonly handler: LocalProviderHandler;
      readonly rewrite: RewriteSpec;
    }
  | { readonly kind: 'refused'; readonly error: BodyRefusal };

/** Gemini names the model in the path, not the body. */
const GEMINI_MODEL_IN_PATH = /^(\/api\/provider\/google\/.*\/models\/)([^/:]+)(:[^/]*)?$/i;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Only a JSON body (or one whose type is not given) can name a model. Anything else — a file
 * upload, a multipart form — is streamed to the upstream untouched, never held in memory.
 */
function mayNameModel(contentType: string | undefined): boolean {
  return contentType === undefined || contentType.trim() === '' || /json/i.test(contentType);
}

function modelInPath(match: RegExpExecArray): string {
  try {
    return decodeURIComponent(match[2]!);
  } catch {
    return match[2]!;
  }
}

/**
 * Decides where a provider call goes: served by the host (`localProvider`), sent upstream under
 * another model name (`modelMappings`), or sent upstream as it came. The body is read only when
 * the model can be in it (JSON, or no type given), with a size cap, and never parsed to find it.
 */
export async function routeProviderCall(
  req: IncomingMessage & { body?: unknown },
  ampPath: string,
  config: ProviderRoutingConfig,
): Promise<ProviderRoute> {
  const inPath = GEMINI_MODEL_IN_PATH.exec(ampPath);
  let body: ProviderBody | undefined;
  if (!inPath && BODY_METHODS.has(req.method ?? '') && mayNameModel(req.headers['content-type'])) {
    const read = await readProviderBody(req, config.maxBodyBytes);
    if (typeof read === 'string') return { kind: 'refused', error: read };
    body = read;
  }
  const named = body?.named;
  const model = inPath ? modelInPath(inPath) : named?.model;
  // A call that goes upstream unchanged takes the bytes received; a body a host parser consumed is
  // rebuilt where every consumed body is (`recoverConsumedBody`), true to its content type.
  const unchanged: ProviderRoute = { kind: 'upstream', body: body?.received };
  if (model === undefined) return unchanged;

  // What the client asked for is restored in whatever answers it, local or mapped.
  const rewrite = rewriteSpecFor(model, named?.toolNames ?? []);
  const servedLocally = (served: string): ProviderRoute | undefined => {
    const handler = localHandlerFor(config.localProvider, served, req, named);
    if (handler === 'amp_body_too_complex') return { kind: 'refused', error: handler };
    return handler && { kind: 'local', model: served, handler, rewrite };
  };
  if (!config.forceModelMappings) {
    const local = servedLocally(model);
    if (local) return local;
  }
  const mapped = config.mapModel?.(model);
  if (mapped !== undefined) {
    return (
      servedLocally(mapped) ?? {
        kind: 'mapped',
        from: model,
        to: mapped,
        path: inPath ? `${inPath[1]}${encodeURIComponent(mapped)}${inPath[3] ?? ''}` : ampPath,
        // A Gemini call's body was not read: it goes as the client sends it.
        body: named?.withModel(mapped),
        rewrite,
      }
    );
  }
  return (config.forceModelMappings ? servedLocally(model) : undefined) ?? unchanged;
}
