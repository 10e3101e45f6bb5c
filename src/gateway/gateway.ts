import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { ampRouter, AmpProxyConfigError, attachUpgrade, createAmpMetrics, loadAmpConfig } from '../index.js';
import { startTable } from './config-report.js';
import { watchConfigFiles } from './config-watcher.js';
import { jsonLogger } from './json-logger.js';
import { reloadConfig } from './reload.js';
import { gatewayRoutes, refuseConnect, usageTokenCheck } from './routes.js';
import { createDrain, shutDown } from './shutdown.js';
import type {
  AmpAuditLogger,
  AmpGatewaySettings,
  AmpLogger,
  AmpMetrics,
  AmpProxyOptions,
  LoadedAmpConfig,
  PromClientLike,
} from '../index.js';

export interface GatewayOptions {
  cwd?: string;
  configFile?: string;
  /** As `--port`: wins over env and the config file, and is checked like them. */
  port?: number | string;
  /** As `--host`: wins over env and the config file. */
  host?: string;
  /** As `--drain-ms`: wins over env and the config file. */
  drainMs?: number | string;
  /** As `--upstream-key-file`: the server key's file, which wins over env and the config file. */
  upstreamKeyFile?: string;
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
  /**
   * Answers `/readyz` with 503, stops accepting, ends WebSockets with 1001, lets requests finish
   * for `drainMs` (the configured drain time by default), then cuts the rest.
   */
  shutdown(drainMs?: number): Promise<void>;
}

/** prom-client is an optional dependency: only a config that asks for metrics needs it. */
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

/** The `auditLog` file, opened for appending; one that cannot be opened stops the start. */
async function openAuditLog(
  path: string | undefined,
  file: string | undefined,
  logger: AmpLogger,
): Promise<{ audit: AmpAuditLogger; close(): void } | undefined> {
  if (path === undefined) return undefined;
  const stream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  try {
    await once(stream, 'open');
  } catch (error) {
    throw new AmpProxyConfigError(
      'auditLog',
      `cannot open ${path} for appending (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      file,
    );
  }
  let reported = false;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (reported) return;
    reported = true;
    logger.error({ code: 'amp_audit_log_error', cause: error.code }, 'the audit log cannot be written');
  });
  return { audit: jsonLogger(stream), close: () => stream.end() };
}

/** The token `usagePath` asks for; a usage report names every client, so it is never served without one. */
function usageToken(loaded: LoadedAmpConfig, env: NodeJS.ProcessEnv): string | undefined {
  if (loaded.gateway.usagePath === undefined) return undefined;
  const token = env.AMP_PROXY_USAGE_TOKEN?.trim();
  if (!token) {
    throw new AmpProxyConfigError(
      'usagePath',
      'needs env AMP_PROXY_USAGE_TOKEN: the usage report is served only to Authorization: Bearer <that token>',
      loaded.filepath,
    );
  }
  return token;
}

/**
 * The config's options with the gateway's log lines, metrics and audit log added (a config's own
 * logger wins), and usage kept when `usagePath` serves it.
 */
function routerOptions(
  loaded: LoadedAmpConfig,
  logger: AmpLogger,
  metrics: AmpMetrics | undefined,
  audit?: AmpAuditLogger,
): AmpProxyOptions {
  const { options } = loaded;
  const hostListener = options.onProxyEvent;
  // The router isolates this listener from the logger; metrics go first, so that a host
  // listener that throws cannot cost them an event.
  const onProxyEvent: AmpProxyOptions['onProxyEvent'] =
    metrics && hostListener
      ? (event) => {
          metrics.onProxyEvent(event);
          hostListener(event);
        }
      : (metrics?.onProxyEvent ?? hostListener);
  const audited = audit && !options.audit ? { audit } : {};
  const usage = options.usage ?? loaded.gateway.usagePath !== undefined;
  return { ...options, logger: options.logger ?? logger, onProxyEvent, usage, ...audited };
}

/**
 * Listens, and returns the URL to reach the gateway at (the bound port when `port` is 0). A port
 * in use is a setting to change: the error says which ones choose it.
 */
async function listen(
  server: Server,
  { port, host }: AmpGatewaySettings,
  file: string | undefined,
): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    const refused = (error: NodeJS.ErrnoException): void => {
      if (error.code !== 'EADDRINUSE') return reject(error);
      reject(
        new AmpProxyConfigError(
          'port',
          `${port} on ${host} is already in use (EADDRINUSE): stop the other process, or choose another port with --port, AMP_PROXY_PORT or the config file's port`,
          file,
        ),
      );
    };
    server.once('error', refused);
    server.listen(port, host, () => {
      server.off('error', refused);
      resolve();
    });
  });
  const { port: boundPort } = server.address() as AddressInfo;
  return `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
}

/** The configuration as the gateway loads it, at start and on every reload; `--print-config` shows it. */
export function loadGatewayConfig(
  options: GatewayOptions,
  configFile = options.configFile,
): Promise<LoadedAmpConfig> {
  return loadAmpConfig({
    cwd: options.cwd,
    configFile,
    env: options.env ?? process.env,
    overrides: { port: options.port, host: options.host, drainMs: options.drainMs },
    upstreamKeyFile: options.upstreamKeyFile,
  });
}

/** Runs the standalone gateway: what `amp-proxy` and `npm start` start. */
export async function startGateway(options: GatewayOptions = {}): Promise<RunningGateway> {
  const output = options.output ?? process.stdout;
  const logger = jsonLogger(output);
  let loaded = await loadGatewayConfig(options);
  const metrics = await loadMetrics(loaded.gateway.metricsPath, loaded.filepath);
  const auditLog = await openAuditLog(loaded.gateway.auditLog, loaded.filepath, logger);
  const token = usageToken(loaded, options.env ?? process.env);
  const router = ampRouter(routerOptions(loaded, logger, metrics, auditLog?.audit));
  const drain = createDrain();
  const server = createServer(
    gatewayRoutes(
      router,
      metrics,
      () => loaded,
      drain,
      token === undefined ? undefined : usageTokenCheck(token),
    ),
  );
  attachUpgrade(server, router);
  server.on('connect', (_req, socket) => refuseConnect(socket));
  const url = await listen(server, loaded.gateway, loaded.filepath);
  output.write(startTable(loaded, url));

  const reload = async (): Promise<void> => {
    loaded = await reloadConfig(
      loaded,
      // The file found at start stays the file: searching again could find another one.
      () => loadGatewayConfig(options, loaded.filepath ?? options.configFile),
      (next) => router.reload(routerOptions(next, logger, metrics, auditLog?.audit)),
      logger,
    );
  };
  const watcher =
    (options.watch ?? true) ? watchConfigFiles(loaded.watchFiles, () => void reload()) : undefined;
  return {
    url,
    server,
    reload,
    shutdown: async (drainMs = loaded.gateway.drainMs) => {
      await shutDown(server, router, watcher, drain, drainMs, logger);
      auditLog?.close();
    },
  };
}
