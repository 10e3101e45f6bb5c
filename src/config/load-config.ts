import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { AmpProxyConfigError } from '../errors.js';
import { SERVER_KEY_FROM_ENV } from '../auth/server-key.js';
import { chooseEgressProxy } from '../egress/egress-proxy.js';
import { describeOptions, findServerKeyFromEnv } from './effective-options.js';
import {
  GATEWAY_SETTING_NAMES,
  resolveGatewaySettings,
  type GatewaySettingSources,
} from './gateway-settings.js';
import { isPlainObject } from '../plain-object.js';
import { FILE_OPTION_NAMES, validateOptions, type ValidatedOptions } from './validate-options.js';
import type { AmpGatewaySettings, AmpProxyOptions, LoadAmpConfigOptions, LoadedAmpConfig } from '../types.js';

const COSMICONFIG_NAME = 'amp-proxy';
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
const SECRET_REFERENCE_KINDS = new Set(['env', 'file']);

/** A secret value and where it came from, in words. */
interface ReadSecret {
  readonly value: unknown;
  readonly origin: string;
}

/** Reads the secrets a config file refers to, and remembers which files they are in. */
class SecretReferenceReader {
  readonly files: string[] = [];

  constructor(
    private readonly configFile: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private fail(option: string, problem: string): never {
    throw new AmpProxyConfigError(option, problem, this.configFile);
  }

  /** A secret given inline, as `{ env: NAME }`, or as `{ file: PATH }` (relative to the config file). */
  async read(option: string, value: unknown): Promise<ReadSecret> {
    if (!isPlainObject(value)) {
      return { value, origin: typeof value === 'function' ? 'function in the config file' : 'config file' };
    }
    const kinds = Object.keys(value);
    if (kinds.length !== 1 || !SECRET_REFERENCE_KINDS.has(kinds[0]!)) {
      this.fail(option, 'expected a string, { env: "NAME" } or { file: "path" }');
    }
    if (typeof value.env === 'string') {
      const fromEnv = this.env[value.env];
      if (fromEnv === undefined || fromEnv.trim() === '') this.fail(option, `env ${value.env} is not set`);
      return { value: fromEnv.trim(), origin: `env ${value.env} (named in the config file)` };
    }
    if (typeof value.file === 'string') {
      const path = resolvePath(dirname(this.configFile), value.file);
      this.files.push(path);
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
function describeLoadFailure(error: unknown): { problem: string; file: string | undefined } {
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

/** The config file and its contents; none found means the defaults. */
async function findConfigFile(
  cwd: string,
  configFile: string | undefined,
): Promise<{ filepath: string | undefined; contents: Record<string, unknown> }> {
  // Loaded on demand: hosts that configure in code never pay for the config machinery.
  const { cosmiconfig } = await import('cosmiconfig');
  const explorer = cosmiconfig(COSMICONFIG_NAME, {
    searchPlaces: SEARCH_PLACES,
    packageProp: 'ampProxy',
    searchStrategy: 'project',
    cache: false,
  });
  let found;
  try {
    found = configFile ? await explorer.load(resolvePath(cwd, configFile)) : await explorer.search(cwd);
  } catch (error) {
    const { problem, file } = describeLoadFailure(error);
    throw new AmpProxyConfigError(
      'config',
      `cannot be loaded: ${problem}`,
      file ?? (configFile ? resolvePath(cwd, configFile) : undefined),
    );
  }
  const contents: unknown = found?.config ?? {};
  if (!isPlainObject(contents))
    throw new AmpProxyConfigError('config', 'expected an object of options', found?.filepath);
  return { filepath: found?.filepath, contents };
}

/** The server key the loader found, as the middleware option that spends it, and where it came from. */
interface ChosenServerKey {
  readonly value: unknown;
  readonly origin: string;
}

/** A key given in an environment variable, trimmed; `undefined` when unset or blank. */
function keyInEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const key = env[name]?.trim();
  return key ? key : undefined;
}

/**
 * The server key, by the first source that names one: the command line's key file, env
 * `AMP_PROXY_UPSTREAM_KEY` (the gateway's own variable), the config file's `upstreamKey` (a key, a
 * secret reference, or `null`/`false` for none), then env `AMP_API_KEY`, the Amp CLI user's own
 * key, which must never win over a key the operator configured. When nothing names one,
 * `'env'`: the Amp CLI secrets file, as the Amp CLI itself falls back from `AMP_API_KEY` to it.
 * The origin names the sources that lost, so that an operator sees which one won.
 */
async function chooseServerKey(
  fromFile: unknown,
  reader: SecretReferenceReader,
  env: NodeJS.ProcessEnv,
  keyFile: string | undefined,
): Promise<ChosenServerKey> {
  const fileNamesOne = fromFile !== undefined && fromFile !== SERVER_KEY_FROM_ENV;
  const sources: { name: string; read: () => Promise<ChosenServerKey> | ChosenServerKey }[] = [];
  if (keyFile !== undefined) {
    sources.push({ name: '--upstream-key-file', read: () => readKeyFile(keyFile, reader) });
  }
  const gatewayKey = keyInEnv(env, 'AMP_PROXY_UPSTREAM_KEY');
  if (gatewayKey) {
    sources.push({
      name: 'env AMP_PROXY_UPSTREAM_KEY',
      read: () => ({ value: gatewayKey, origin: 'env AMP_PROXY_UPSTREAM_KEY' }),
    });
  }
  if (fileNamesOne) {
    sources.push({
      name: "the config file's upstreamKey",
      read: async () =>
        fromFile === null || fromFile === false
          ? { value: fromFile, origin: `none (upstreamKey: ${String(fromFile)} in the config file)` }
          : reader.read('upstreamKey', fromFile),
    });
  }
  const userKey = keyInEnv(env, 'AMP_API_KEY');
  if (userKey) {
    sources.push({ name: 'env AMP_API_KEY', read: () => ({ value: userKey, origin: 'env AMP_API_KEY' }) });
  }
  const [winner, ...losers] = sources;
  if (!winner) return { value: SERVER_KEY_FROM_ENV, origin: '' };
  const chosen = await winner.read();
  if (losers.length === 0) return chosen;
  return { ...chosen, origin: `${chosen.origin}, over ${losers.map(({ name }) => name).join(', ')}` };
}

async function readKeyFile(file: string, reader: SecretReferenceReader): Promise<ChosenServerKey> {
  let key: string;
  try {
    key = (await readFile(file, 'utf8')).trim();
  } catch (error) {
    throw new AmpProxyConfigError(
      '--upstream-key-file',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  if (key === '') throw new AmpProxyConfigError('--upstream-key-file', `${file} is empty`);
  reader.files.push(file);
  return { value: key, origin: `file ${file} (--upstream-key-file)` };
}

/**
 * The middleware options of a config file with their secret references read and env overrides
 * applied, and where the server key came from (empty when the middleware looks for it itself).
 */
async function readMiddlewareOptions(
  contents: Record<string, unknown>,
  filepath: string | undefined,
  reader: SecretReferenceReader,
  env: NodeJS.ProcessEnv,
  keyFile: string | undefined,
): Promise<{ options: Record<string, unknown>; upstreamKeyOrigin: string }> {
  const options = Object.fromEntries(
    Object.entries(contents).filter(([name]) => !GATEWAY_SETTING_NAMES.has(name)),
  );
  const serverKey = await chooseServerKey(options.upstreamKey, reader, env, keyFile);
  options.upstreamKey = serverKey.value;
  if (Array.isArray(options.clients)) {
    options.clients = await Promise.all(
      options.clients.map(async (client: unknown, index) => {
        if (!isPlainObject(client)) return client;
        const resolved = { ...client };
        for (const field of ['key', 'upstreamKey'] as const) {
          if (resolved[field] !== undefined) {
            resolved[field] = (await reader.read(`clients[${index}].${field}`, resolved[field])).value;
          }
        }
        return resolved;
      }),
    );
  }
  if (env.AMP_PROXY_UPSTREAM) options.upstream = env.AMP_PROXY_UPSTREAM;
  if (typeof options.secretsFile === 'string' && filepath) {
    options.secretsFile = resolvePath(dirname(filepath), options.secretsFile);
  }
  // A proxy URL may carry a password, so it can be a secret reference like a key.
  if (isPlainObject(options.upstreamProxy)) {
    options.upstreamProxy = (await reader.read('upstreamProxy', options.upstreamProxy)).value;
  }
  // A gateway runs where the proxy variables describe the network (resolved once validated).
  options.upstreamProxy ??= 'env';
  const caFile = isPlainObject(options.upstreamCa) ? options.upstreamCa.file : undefined;
  if (typeof caFile === 'string' && filepath) {
    const file = resolvePath(dirname(filepath), caFile);
    options.upstreamCa = { file };
    reader.files.push(file);
  }
  return { options, upstreamKeyOrigin: serverKey.origin };
}

/** The options and the gateway settings, checked together so that one error names every problem. */
function validateFile(
  options: Record<string, unknown>,
  filepath: string | undefined,
  gatewaySources: GatewaySettingSources,
): { validated: ValidatedOptions; gateway: AmpGatewaySettings } {
  const problems: AmpProxyConfigError[] = [];
  const attempt = <T>(check: () => T): T | undefined => {
    try {
      return check();
    } catch (error) {
      if (!(error instanceof AmpProxyConfigError)) throw error;
      problems.push(error);
      return undefined;
    }
  };
  const validated = attempt(() => validateOptions(options, [...FILE_OPTION_NAMES, ...GATEWAY_SETTING_NAMES]));
  const gateway = attempt(() => resolveGatewaySettings(gatewaySources));
  if (validated && gateway) return { validated, gateway };
  // The options come from the file; a gateway setting from a flag or a variable names no file.
  throw AmpProxyConfigError.combine(problems, validated ? problems[0]!.file : filepath);
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
  overrides = {},
  upstreamKeyFile,
}: LoadAmpConfigOptions = {}): Promise<LoadedAmpConfig> {
  const { filepath, contents } = await findConfigFile(cwd, configFile);
  const reader = new SecretReferenceReader(filepath ?? resolvePath(cwd, 'amp-proxy.config'), env);
  const keyFile = upstreamKeyFile === undefined ? undefined : resolvePath(cwd, upstreamKeyFile);
  const { options, upstreamKeyOrigin } = await readMiddlewareOptions(
    contents,
    filepath,
    reader,
    env,
    keyFile,
  );
  const { validated, gateway } = validateFile(options, filepath, {
    fromFile: contents,
    file: filepath,
    env,
    overrides,
  });
  if (validated.upstreamProxy === 'env') {
    // Resolved here, against `env`, so that a middleware built from these options connects the
    // way `effective` says, whichever environment the caller passed.
    const { proxy } = chooseEgressProxy('env', new URL(validated.upstream.base), env);
    options.upstreamProxy = proxy ? proxy.url.href : false;
  }
  const lookedFor = validated.upstreamKey === SERVER_KEY_FROM_ENV;
  const serverKey = lookedFor
    ? await findServerKeyFromEnv(validated)
    : {
        key: typeof validated.upstreamKey === 'string' ? validated.upstreamKey : undefined,
        origin: upstreamKeyOrigin,
      };
  const watchFiles = filepath ? [filepath, ...reader.files] : reader.files;
  // The middleware re-reads the Amp CLI secrets file by itself; a reload makes a new key count at once.
  if (lookedFor) watchFiles.push(validated.secretsFile);
  return {
    options: options as AmpProxyOptions,
    gateway,
    filepath,
    watchFiles,
    upstreamKeyOrigin: serverKey.origin,
    effective: describeOptions(validated, serverKey.key, env),
  };
}
