import { watch, type FSWatcher } from 'node:fs';
import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { defaultSecretsFile, DEFAULT_UPSTREAM, readAmbientKey } from '../auth/upstream-key.js';
import { loadAmpConfig, type LoadedAmpConfig } from '../config/load-config.js';
import {
  combineListeners,
  DEFAULT_POLICIES,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_TOKEN_HEADER,
} from '../config/resolve-options.js';
import { AmpProxyConfigError } from '../errors.js';
import { ampRouter, attachUpgrade } from '../index.js';
import type { AmpProxyOptions } from '../options.js';
import { createAmpMetrics, type AmpMetrics, type PromClientLike } from '../observability/metrics.js';
import { redactSecret } from '../observability/redact.js';
import { jsonLogger } from './json-logger.js';

const READY_PROBE_TIMEOUT_MS = 3000;
const RELOAD_DEBOUNCE_MS = 150;

export interface GatewayOptions {
  cwd?: string;
  configFile?: string;
  /** Overrides the config file and env. */
  port?: number;
  host?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the start table and the JSON log lines go. Defaults to `process.stdout`. */
  output?: Writable;
  /** Reload when the config file or a secret file changes. Defaults to `true`. */
  watch?: boolean;
}

export interface RunningGateway {
  readonly url: string;
  readonly server: Server;
  /** Loads the configuration again and swaps it in; keeps the old one if the new one is invalid. */
  reload(): Promise<void>;
  /** Stops accepting, ends WebSockets with 1001, lets requests finish for `graceMs`, then cuts the rest. */
  shutdown(graceMs: number): Promise<void>;
}

/** Option paths whose values differ, for a reload log that never shows a value. */
function changedPaths(before: unknown, after: unknown, path = ''): string[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const isRecord = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null;
  if (!isRecord(before) || !isRecord(after) || Array.isArray(before) !== Array.isArray(after))
    return [path || '(all)'];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].flatMap((key) =>
    changedPaths(
      before[key],
      after[key],
      Array.isArray(before) ? `${path}[${key}]` : path ? `${path}.${key}` : key,
    ),
  );
}

async function loadMetrics(
  metricsPath: string | undefined,
  file: string | undefined,
): Promise<AmpMetrics | undefined> {
  if (metricsPath === undefined) return undefined;
  let client: PromClientLike;
  try {
    client = (await import('prom-client')) as unknown as PromClientLike;
  } catch {
    throw new AmpProxyConfigError(
      'metricsPath',
      'needs the optional dependency prom-client: npm install prom-client',
      file,
    );
  }
  return createAmpMetrics(client);
}

function probeUpstream(upstream: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = upstream.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(upstream, { method: 'HEAD', timeout: READY_PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function json(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function describeKeySource(loaded: LoadedAmpConfig): Promise<string> {
  if (loaded.upstreamKeyOrigin) return loaded.upstreamKeyOrigin;
  if (typeof loaded.options.upstreamKey === 'function') return 'function in the config file';
  const { source } = await readAmbientKey(
    loaded.options.upstream ?? DEFAULT_UPSTREAM,
    loaded.options.secretsFile ?? defaultSecretsFile(),
  );
  return (
    { env: 'env AMP_API_KEY', 'secrets-file': 'Amp CLI secrets file', none: 'none' }[source as 'env'] ??
    source
  );
}

/** The effective configuration, secrets redacted: what `--print-config` shows. */
export function printableConfig(loaded: LoadedAmpConfig): object {
  const { options } = loaded;
  return {
    file: loaded.filepath ?? null,
    gateway: loaded.gateway,
    upstream: options.upstream ?? DEFAULT_UPSTREAM,
    upstreamKey:
      typeof options.upstreamKey === 'string'
        ? redactSecret(options.upstreamKey)
        : (options.upstreamKey ?? null),
    policies: Object.fromEntries(
      Object.entries({ ...DEFAULT_POLICIES, ...options.policies }).map(([group, policy]) => [
        group,
        typeof policy === 'function' ? 'custom' : policy,
      ]),
    ),
    clients: (options.clients ?? []).map((client) => ({
      name: client.name ?? null,
      key: redactSecret(client.key),
      upstreamKey: client.upstreamKey ? redactSecret(client.upstreamKey) : null,
    })),
    tokenHeader: options.tokenHeader ?? DEFAULT_TOKEN_HEADER,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    restrictManagementToLocalhost: options.restrictManagementToLocalhost ?? false,
    trustedProxies: options.trustedProxies ?? [],
  };
}

function routerOptions(
  loaded: LoadedAmpConfig,
  logger: ReturnType<typeof jsonLogger>,
  metrics: AmpMetrics | undefined,
): AmpProxyOptions {
  return {
    ...loaded.options,
    logger: loaded.options.logger ?? logger,
    onProxyEvent: combineListeners([loaded.options.onProxyEvent, metrics?.onProxyEvent]),
  };
}

/** Runs the standalone gateway: what `amp-proxy` and `npm start` start. */
export async function startGateway(options: GatewayOptions = {}): Promise<RunningGateway> {
  const env = options.env ?? process.env;
  const output = options.output ?? process.stdout;
  const logger = jsonLogger(output);
  let loaded = await loadAmpConfig({ cwd: options.cwd, configFile: options.configFile, env });
  const port = options.port ?? loaded.gateway.port;
  const host = options.host ?? loaded.gateway.host;
  const metrics = await loadMetrics(loaded.gateway.metricsPath, loaded.filepath);
  const router = ampRouter(routerOptions(loaded, logger, metrics));
  const upstream = (): string => loaded.options.upstream ?? DEFAULT_UPSTREAM;

  const server = createServer((req, res) => {
    const path = req.url?.split('?', 1)[0];
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      void probeUpstream(upstream()).then((ready) =>
        json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'upstream unreachable' }),
      );
      return;
    }
    if (metrics && path === loaded.gateway.metricsPath) {
      void metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      });
      return;
    }
    router(req, res, () => json(res, 404, { error: 'not_found' }));
  });
  attachUpgrade(server, router);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: boundPort } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;

  const printed = printableConfig(loaded) as { policies: Record<string, string> };
  const rows: [string, string][] = [
    ['listening', url],
    ['config file', loaded.filepath ?? 'none (defaults)'],
    ['upstream', upstream()],
    ...Object.entries(printed.policies).map(([group, policy]): [string, string] => [
      `policy ${group}`,
      policy,
    ]),
    ['server key', await describeKeySource(loaded)],
    ['clients', String(loaded.options.clients?.length ?? 0)],
    [
      'localhost only',
      loaded.options.restrictManagementToLocalhost ? 'yes (management, actors, browser)' : 'no',
    ],
    ['metrics', loaded.gateway.metricsPath ?? 'off'],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  output.write(`amp-proxy\n${rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n')}\n`);

  const reload = async (): Promise<void> => {
    try {
      const next = await loadAmpConfig({
        cwd: options.cwd,
        configFile: loaded.filepath ?? options.configFile,
        env,
      });
      router.reload(routerOptions(next, logger, metrics));
      const changed = changedPaths(printableConfig(loaded), printableConfig(next));
      if (next.gateway.port !== loaded.gateway.port || next.gateway.host !== loaded.gateway.host) {
        logger.warn({ changed: ['port', 'host'] }, 'listen address changes need a restart');
      }
      loaded = next;
      logger.info({ changed }, 'configuration reloaded');
    } catch (error) {
      // The old configuration stays in force.
      const detail = error instanceof AmpProxyConfigError ? { option: error.option, file: error.file } : {};
      logger.error({ ...detail, error: (error as Error).message }, 'configuration not reloaded');
    }
  };

  const watchers: FSWatcher[] = [];
  if (options.watch ?? true) {
    // Editors replace files by renaming, which ends a watch on the file itself: watch directories.
    const files = [...loaded.watchFiles];
    if (loaded.options.upstreamKey === undefined)
      files.push(loaded.options.secretsFile ?? defaultSecretsFile());
    const byDirectory = new Map<string, Set<string>>();
    for (const file of files) {
      const names = byDirectory.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      byDirectory.set(dirname(file), names);
    }
    let pending: NodeJS.Timeout | undefined;
    for (const [directory, names] of byDirectory) {
      try {
        const watcher = watch(directory, (_event, name) => {
          if (!name || !names.has(String(name))) return;
          clearTimeout(pending);
          pending = setTimeout(() => void reload(), RELOAD_DEBOUNCE_MS);
        });
        watcher.on('error', () => watcher.close());
        watchers.push(watcher);
      } catch {
        // A directory that does not exist yet (no secrets file) has nothing to watch.
      }
    }
  }

  return {
    url,
    server,
    reload,
    async shutdown(graceMs) {
      for (const watcher of watchers) watcher.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await router.close();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
