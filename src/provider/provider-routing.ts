import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import type { HeldBody } from '../proxy/request-body.js';
import type { ModelMapper } from './model-mappings.js';
import type { RewriteSpec } from './response-rewriter.js';

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

const decoders: Record<string, (input: Buffer, options: { maxOutputLength: number }) => Promise<Buffer>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress),
};
/** Gemini names the model in the path, not the body. */
const GEMINI_MODEL_IN_PATH = /^(\/api\/provider\/google\/.*\/models\/)([^/:]+)(:[^/]*)?$/i;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

type Json = Record<string, unknown>;

function readStream(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
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

/** The request body as JSON, read once with a size cap, decoded if it came compressed. */
async function readJsonBody(
  req: IncomingMessage & { body?: unknown },
  limit: number,
): Promise<{ json: Json | undefined; original: HeldBody | undefined } | 'too-large'> {
  if (req.readableEnded) {
    // A host body parser got here first; what it parsed is all there is.
    const parsed = req.body;
    return {
      json: typeof parsed === 'object' && parsed !== null ? (parsed as Json) : undefined,
      original: undefined,
    };
  }
  const raw = await readStream(req, limit);
  if (raw === 'too-large') return raw;
  const original: HeldBody = { bytes: raw, asReceived: true };
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  let text: Buffer = raw;
  if (encoding && encoding !== 'identity') {
    const decode = decoders[encoding];
    if (!decode) return { json: undefined, original };
    try {
      text = await decode(raw, { maxOutputLength: limit });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return 'too-large';
      return { json: undefined, original }; // not ours to judge: the upstream answers a broken body
    }
  }
  try {
    const json: unknown = JSON.parse(text.toString('utf8'));
    return {
      json: typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Json) : undefined,
      original,
    };
  } catch {
    return { json: undefined, original };
  }
}

function toolNames(json: Json | undefined): Map<string, string> {
  const names = new Map<string, string>();
  if (!json || !Array.isArray(json.tools)) return names;
  for (const tool of json.tools as unknown[]) {
    if (typeof tool !== 'object' || tool === null) continue;
    const { name, function: fn } = tool as { name?: unknown; function?: { name?: unknown } };
    for (const candidate of [name, fn?.name]) {
      if (typeof candidate === 'string') names.set(candidate.toLowerCase(), candidate);
    }
  }
  return names;
}

/**
 * Decides where a provider call goes: served by the host (`localProvider`), sent upstream under
 * another model name (`modelMappings`), or sent upstream as it came. The body is read only when
 * the model can be in it, with a size cap.
 */
export async function routeProviderCall(
  req: IncomingMessage & { body?: unknown },
  ampPath: string,
  config: ProviderRoutingConfig,
): Promise<ProviderRoute> {
  const inPath = GEMINI_MODEL_IN_PATH.exec(ampPath);
  let json: Json | undefined;
  let original: HeldBody | undefined;
  if (!inPath && BODY_METHODS.has(req.method ?? '')) {
    const read = await readJsonBody(req, config.maxBodyBytes);
    if (read === 'too-large') return { kind: 'too-large' };
    ({ json, original } = read);
  }
  let requested: string | undefined;
  if (inPath) {
    try {
      requested = decodeURIComponent(inPath[2]!);
    } catch {
      requested = inPath[2];
    }
  } else if (typeof json?.model === 'string') {
    requested = json.model;
  }
  const unchanged: ProviderRoute = {
    kind: 'upstream',
    body: original ?? (json ? { bytes: Buffer.from(JSON.stringify(json)), asReceived: false } : undefined),
  };
  if (requested === undefined) return unchanged;
  const model = requested;

  const mapped = config.mapModel?.(model);
  // What the client asked for is restored in whatever answers it, local or mapped.
  const rewrite: RewriteSpec = { requestedModel: model, toolNames: toolNames(json) };
  const serveLocally = (served: string): ProviderRoute | undefined => {
    const handler = config.localProvider?.(served, req);
    if (!handler) return undefined;
    if (json) json.model = served;
    req.body = json;
    return { kind: 'local', model: served, handler, rewrite };
  };

  if (!config.forceModelMappings) {
    const local = serveLocally(model);
    if (local) return local;
  }
  if (mapped !== undefined) {
    const local = serveLocally(mapped);
    if (local) return local;
    let path = ampPath;
    let body = unchanged.kind === 'upstream' ? unchanged.body : undefined;
    if (inPath) {
      path = `${inPath[1]}${encodeURIComponent(mapped)}${inPath[3] ?? ''}`;
    } else if (json) {
      json.model = mapped;
      body = { bytes: Buffer.from(JSON.stringify(json)), asReceived: false };
    }
    return { kind: 'mapped', from: model, to: mapped, path, body, rewrite };
  }
  return (config.forceModelMappings ? serveLocally(model) : undefined) ?? unchanged;
}
