import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { AmpProxyConfigError } from '../errors.js';
import type { AmpProxyOptions } from '../options.js';
import { resolveOptions } from './resolve-options.js';

const MODULE_NAME = 'amp-proxy';
const SEARCH_PLACES = [
  'package.json',
  '.amp-proxyrc',
  '.amp-proxyrc.json',
  '.amp-proxyrc.yaml',
  '.amp-proxyrc.yml',
  '.amp-proxyrc.js',
  '.amp-proxyrc.cjs',
  '.amp-proxyrc.mjs',
  'amp-proxy.config.js',
  'amp-proxy.config.cjs',
  'amp-proxy.config.mjs',
  'amp-proxy.config.json',
  'amp-proxy.config.yaml',
];
export const DEFAULT_GATEWAY_PORT = 8317;
export const DEFAULT_GATEWAY_HOST = '127.0.0.1';

/** Settings of the standalone gateway, which the middleware itself does not take. */
export interface AmpGatewaySettings {
  /** Listen port. Defaults to 8317; env `AMP_PROXY_PORT` overrides the file. */
  port: number;
  /** Listen address. Defaults to `127.0.0.1`; env `AMP_PROXY_HOST` overrides the file. */
  host: string;
  /** Where Prometheus metrics are served, when `prom-client` is installed. Defaults to none. */
  metricsPath: string | undefined;
}

export interface LoadedAmpConfig {
  /** Options for `ampRouter`, validated, with secret references resolved and env overrides applied. */
  options: AmpProxyOptions;
  gateway: AmpGatewaySettings;
  /** The file the configuration came from; `undefined` when none was found (defaults apply). */
  filepath: string | undefined;
  /** The config file and every secret file it references: a change to any of them calls for a reload. */
  watchFiles: string[];
  /** Where the server key comes from, for humans: never the key itself. */
  upstreamKeyOrigin: string | undefined;
}

export interface LoadAmpConfigOptions {
  /** Where the search starts. Defaults to `process.cwd()`. */
  cwd?: string;
  /** Load this file instead of searching. */
  configFile?: string;
  /** The environment to read overrides from. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
}

const GATEWAY_KEYS = new Set(['port', 'host', 'metricsPath']);
const SECRET_REFERENCE_KEYS = new Set(['env', 'file']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class FileConfigReader {
  readonly watchFiles: string[] = [];

  constructor(
    private readonly file: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  fail(option: string, problem: string): never {
    throw new AmpProxyConfigError(option, problem, this.file);
  }

  /** A secret given inline, as `{ env: NAME }`, or as `{ file: PATH }` (relative to the config file). */
  async secret(option: string, value: unknown): Promise<{ value: unknown; origin: string }> {
    if (!isObject(value)) return { value, origin: 'config file' };
    const keys = Object.keys(value);
    if (keys.length !== 1 || !SECRET_REFERENCE_KEYS.has(keys[0]!)) {
      this.fail(option, 'expected a string, { env: "NAME" } or { file: "path" }');
    }
    if (typeof value.env === 'string') {
      const fromEnv = this.env[value.env];
      if (fromEnv === undefined || fromEnv.trim() === '') this.fail(option, `env ${value.env} is not set`);
      return { value: fromEnv.trim(), origin: `env ${value.env} (named in the config file)` };
    }
    if (typeof value.file === 'string') {
      const path = resolvePath(dirname(this.file), value.file);
      this.watchFiles.push(path);
      try {
        return {
          value: (await readFile(path, 'utf8')).trim(),
          origin: `file ${path} (named in the config file)`,
        };
      } catch (error) {
        this.fail(option, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
    }
    return this.fail(option, 'expected { env: "NAME" } or { file: "path" } with a string');
  }
}

/**
 * Why a config file could not be loaded, and which file, without quoting it: parsers show the
 * text around the error (a YAML code frame, a JSON snippet, a JavaScript token), and a config
 * file may hold keys inline.
 */
function loadFailure(error: unknown): { problem: string; file: string | undefined } {
  const { name, message, reason, mark } = error as {
    name?: string;
    message?: string;
    reason?: string;
    mark?: { line: number; column: number };
  };
  // cosmiconfig puts `<Format> Error in <file>:` on a line of its own before the parser's message.
  const lines = String(message ?? error).split('\n');
  const file = / Error in (.+):$/.exec(lines[0]!)?.[1];
  let problem: string;
  if (name === 'YAMLException' && reason && mark) {
    problem = `not valid YAML: ${reason} at line ${mark.line + 1}, column ${mark.column + 1}`;
  } else if (name === 'JSONError') {
    problem = 'not valid JSON';
  } else if (error instanceof SyntaxError) {
    problem = 'not valid JavaScript';
  } else {
    // A missing file, a module that throws: its first line says what happened.
    problem = (file === undefined ? lines[0] : lines[1]) ?? String(error);
  }
  return { problem, file };
}

function parsePort(value: unknown, fail: (problem: string) => never): number {
  const port = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    fail(`expected a port number from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

function gatewaySettings(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, file: string | undefined) {
  const fail = (option: string) => (problem: string) => {
    throw new AmpProxyConfigError(option, problem, file);
  };
  const port = parsePort(
    env.AMP_PROXY_PORT ?? raw.port ?? DEFAULT_GATEWAY_PORT,
    fail(env.AMP_PROXY_PORT ? 'AMP_PROXY_PORT' : 'port'),
  );
  const host = env.AMP_PROXY_HOST ?? raw.host ?? DEFAULT_GATEWAY_HOST;
  if (typeof host !== 'string' || host === '')
    fail('host')(`expected a listen address, got ${JSON.stringify(host)}`);
  const metricsPath = raw.metricsPath;
  if (metricsPath !== undefined && (typeof metricsPath !== 'string' || !metricsPath.startsWith('/'))) {
    fail('metricsPath')(`expected a path starting with "/", got ${JSON.stringify(metricsPath)}`);
  }
  return { port, host: host as string, metricsPath: metricsPath as string | undefined };
}

/**
 * Finds and loads the gateway configuration (cosmiconfig, name `amp-proxy`), resolves secret
 * references, applies environment overrides and validates the result with the same rules as the
 * factories. Never called by the library itself: config files are the host's choice.
 */
export async function loadAmpConfig({
  cwd = process.cwd(),
  configFile,
  env = process.env,
}: LoadAmpConfigOptions = {}): Promise<LoadedAmpConfig> {
  // Loaded on demand: hosts that configure in code never pay for the config machinery.
  const { cosmiconfig } = await import('cosmiconfig');
  const explorer = cosmiconfig(MODULE_NAME, {
    searchPlaces: SEARCH_PLACES,
    packageProp: 'ampProxy',
    searchStrategy: 'project',
    cache: false,
  });
  let found;
  try {
    found = configFile ? await explorer.load(resolvePath(cwd, configFile)) : await explorer.search(cwd);
  } catch (error) {
    const { problem, file } = loadFailure(error);
    throw new AmpProxyConfigError(
      'config',
      `cannot be loaded: ${problem}`,
      file ?? (configFile ? resolvePath(cwd, configFile) : undefined),
    );
  }
  const filepath = found?.filepath;
  const raw: unknown = found?.config ?? {};
  if (!isObject(raw)) throw new AmpProxyConfigError('config', 'expected an object of options', filepath);

  const reader = new FileConfigReader(filepath ?? resolvePath(cwd, 'amp-proxy.config'), env);
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) if (!GATEWAY_KEYS.has(key)) options[key] = value;

  let upstreamKeyOrigin: string | undefined;
  if (options.upstreamKey !== undefined) {
    const secret = await reader.secret('upstreamKey', options.upstreamKey);
    options.upstreamKey = secret.value;
    upstreamKeyOrigin = secret.origin;
  }
  if (Array.isArray(options.clients)) {
    options.clients = await Promise.all(
      options.clients.map(async (client: unknown, index) => {
        if (!isObject(client)) return client;
        const resolved = { ...client };
        for (const field of ['key', 'upstreamKey'] as const) {
          if (resolved[field] !== undefined) {
            resolved[field] = (await reader.secret(`clients[${index}].${field}`, resolved[field])).value;
          }
        }
        return resolved;
      }),
    );
  }
  if (env.AMP_PROXY_UPSTREAM) options.upstream = env.AMP_PROXY_UPSTREAM;
  if (env.AMP_API_KEY?.trim()) {
    options.upstreamKey = env.AMP_API_KEY.trim();
    upstreamKeyOrigin = 'env AMP_API_KEY';
  }
  if (typeof options.secretsFile === 'string' && filepath) {
    options.secretsFile = resolvePath(dirname(filepath), options.secretsFile);
  }

  try {
    resolveOptions(options);
  } catch (error) {
    if (error instanceof AmpProxyConfigError)
      throw new AmpProxyConfigError(error.option, error.problem, filepath);
    throw error;
  }
  return {
    options: options as AmpProxyOptions,
    gateway: gatewaySettings(raw, env, filepath),
    filepath,
    watchFiles: filepath ? [filepath, ...reader.watchFiles] : reader.watchFiles,
    upstreamKeyOrigin,
  };
}
