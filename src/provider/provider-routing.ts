import type { IncomingMessage } from 'node:http';
import type { HeldBody } from '../http/held-body.js';
import { readJsonBody, type Json, type JsonBody } from './json-body.js';
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
  | { readonly kind: 'too-large' };

/** Gemini names the model in the path, not the body. */
const GEMINI_MODEL_IN_PATH = /^(\/api\/provider\/google\/.*\/models\/)([^/:]+)(:[^/]*)?$/i;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
const TOO_LARGE: ProviderRoute = { kind: 'too-large' };

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

function serialised(json: Json): HeldBody {
  return { bytes: Buffer.from(JSON.stringify(json)), asReceived: false };
}

/**
 * Decides where a provider call goes: served by the host (`localProvider`), sent upstream under
 * another model name (`modelMappings`), or sent upstream as it came. The body is read only when
 * the model can be in it (JSON, or no type given), with a size cap.
 */
export async function routeProviderCall(
  req: IncomingMessage & { body?: unknown },
  ampPath: string,
  config: ProviderRoutingConfig,
): Promise<ProviderRoute> {
  const inPath = GEMINI_MODEL_IN_PATH.exec(ampPath);
  let body: JsonBody | undefined;
  if (!inPath && BODY_METHODS.has(req.method ?? '') && mayNameModel(req.headers['content-type'])) {
    const read = await readJsonBody(req, config.maxBodyBytes);
    if (read === 'too-large') return TOO_LARGE;
    body = read;
  }
  const json = body?.json;
  const model = inPath ? modelInPath(inPath) : typeof json?.model === 'string' ? json.model : undefined;
  // A call that goes upstream unchanged takes the bytes received; a body a host parser consumed is
  // rebuilt where every consumed body is (`recoverConsumedBody`), true to its content type.
  const unchanged: ProviderRoute = { kind: 'upstream', body: body?.received };
  if (model === undefined) return unchanged;

  // What the client asked for is restored in whatever answers it, local or mapped.
  const servedLocally = (served: string): ProviderRoute | undefined => {
    const handler = localHandlerFor(config.localProvider, served, req, json);
    return handler && { kind: 'local', model: served, handler, rewrite: rewriteSpecFor(model, json) };
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
        body: json && serialised({ ...json, model: mapped }),
        rewrite: rewriteSpecFor(model, json),
      }
    );
  }
  return (config.forceModelMappings ? servedLocally(model) : undefined) ?? unchanged;
}
