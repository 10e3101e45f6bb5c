import { dirname, resolve as resolvePath } from 'node:path';
import { AmpProxyConfigError } from '../errors.js';
import type { AmpGatewayOverrides, AmpGatewaySettings } from '../types.js';

/** Everything a gateway setting may come from. */
export interface GatewaySettingSources {
  /** The config file's contents (its middleware options included). */
  readonly fromFile: Readonly<Record<string, unknown>>;
  readonly file: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly overrides: AmpGatewayOverrides;
}

/** Where one value came from: errors name the flag, variable or file entry the user can fix. */
interface GivenSetting {
  readonly option: string;
  readonly value: unknown;
  readonly file?: string;
}

const DEFAULT_PORT = 8317;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_DRAIN_MS = 10_000;

function invalid({ option, file }: GivenSetting, problem: string): never {
  throw new AmpProxyConfigError(option, problem, file);
}

const FLAGS = { port: '--port', host: '--host', drainMs: '--drain-ms' } as const;

/** The command line wins over env, env over the file. A variable set to nothing counts as unset, as for AMP_PROXY_UPSTREAM. */
function firstGiven(
  setting: keyof typeof FLAGS,
  envName: string,
  { fromFile, file, env, overrides }: GatewaySettingSources,
): GivenSetting | undefined {
  const fromEnv = env[envName]?.trim() ? env[envName] : undefined;
  return [
    { option: FLAGS[setting], value: overrides[setting] },
    { option: envName, value: fromEnv },
    { option: setting, value: fromFile[setting], file },
  ].find((given) => given.value !== undefined);
}

/** A port number, or its text from the command line or env. */
function parsePort(given: GivenSetting): number {
  const { value } = given;
  const port = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    invalid(given, `expected a port number from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

/** Milliseconds, or their text from the command line or env. */
function parseDrainMs(given: GivenSetting): number {
  const { value } = given;
  const ms = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0) {
    invalid(given, `expected a whole number of milliseconds, 0 or more, got ${JSON.stringify(value)}`);
  }
  return ms;
}

function parseHost(given: GivenSetting): string {
  if (typeof given.value !== 'string' || given.value === '') {
    invalid(given, `expected a listen address, got ${JSON.stringify(given.value)}`);
  }
  return given.value;
}

function parseRoutePath(given: GivenSetting): string | undefined {
  const { value } = given;
  if (value !== undefined && (typeof value !== 'string' || !value.startsWith('/'))) {
    invalid(given, `expected a path starting with "/", got ${JSON.stringify(value)}`);
  }
  return value;
}

function parseAuditLog(given: GivenSetting): string | undefined {
  const { value, file } = given;
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') {
    invalid(given, `expected a file path, got ${JSON.stringify(value)}`);
  }
  return file === undefined ? resolvePath(value) : resolvePath(dirname(file), value);
}

/** Keyed by every setting: a setting added to AmpGatewaySettings does not compile until it is resolved here. */
const SETTING_RESOLVERS: {
  readonly [Setting in keyof AmpGatewaySettings]-?: (
    sources: GatewaySettingSources,
  ) => AmpGatewaySettings[Setting];
} = {
  port: (sources) => {
    const given = firstGiven('port', 'AMP_PROXY_PORT', sources);
    return given ? parsePort(given) : DEFAULT_PORT;
  },
  host: (sources) => {
    const given = firstGiven('host', 'AMP_PROXY_HOST', sources);
    return given ? parseHost(given) : DEFAULT_HOST;
  },
  metricsPath: ({ fromFile, file }) =>
    parseRoutePath({ option: 'metricsPath', value: fromFile.metricsPath, file }),
  usagePath: ({ fromFile, file }) => parseRoutePath({ option: 'usagePath', value: fromFile.usagePath, file }),
  auditLog: ({ fromFile, file }) => parseAuditLog({ option: 'auditLog', value: fromFile.auditLog, file }),
  drainMs: (sources) => {
    const given = firstGiven('drainMs', 'AMP_PROXY_DRAIN_MS', sources);
    return given ? parseDrainMs(given) : DEFAULT_DRAIN_MS;
  },
};

/** The entries of a config file that are the gateway's own, not middleware options. */
export const GATEWAY_SETTING_NAMES: ReadonlySet<string> = new Set(Object.keys(SETTING_RESOLVERS));

/** Every setting resolved; an invalid one throws after all are checked, naming every problem. */
export function resolveGatewaySettings(sources: GatewaySettingSources): AmpGatewaySettings {
  const problems: AmpProxyConfigError[] = [];
  const resolve = <Setting extends keyof AmpGatewaySettings>(
    setting: Setting,
  ): AmpGatewaySettings[Setting] => {
    try {
      return SETTING_RESOLVERS[setting](sources) as AmpGatewaySettings[Setting];
    } catch (error) {
      if (!(error instanceof AmpProxyConfigError)) throw error;
      problems.push(error);
      return undefined as never;
    }
  };
  const settings: AmpGatewaySettings = {
    port: resolve('port'),
    host: resolve('host'),
    metricsPath: resolve('metricsPath'),
    drainMs: resolve('drainMs'),
    auditLog: resolve('auditLog'),
    usagePath: resolve('usagePath'),
  };
  if (problems.length === 0) return settings;
  // Each problem's file, if any, is the config file: only a problem in the file names it.
  throw AmpProxyConfigError.combine(problems, problems[0]!.file);
}
