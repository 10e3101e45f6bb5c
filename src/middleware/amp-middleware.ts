import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ClientDirectory } from '../directory/client-directory.js';
import { MemoryLimitStore } from '../limits/limit-store.js';
import { Limiter } from '../limits/limiter.js';
import { resolveOptions, type ResolvedConfig } from '../config/resolve-options.js';
import { AmpProxyConfigError, isAnswered, rejectUpgrade, sendAmpError } from '../errors.js';
import { createGroupProxy, type GroupProxy } from '../proxy/group-proxy.js';
import { endTunnel } from '../proxy/tunnels.js';
import { createUpstreamHeaderBuilder } from '../proxy/upstream-headers.js';
import { originForm, splitRequestTarget } from '../routing/request-target.js';
import { classifyAmpPath, route, ROUTE_GROUPS } from '../routing/route-groups.js';
import { createGroupHandler, type GroupHandler } from './group-handler.js';
import { probeUpstream } from '../egress/upstream-probe.js';
import { RedisLimitStore } from '../limits/redis-store.js';
import { UsageLedger } from '../observability/usage.js';
import { presentedClient } from '../auth/credentials.js';
import type { UpstreamConnection } from '../egress/upstream-connection.js';
import type { AmpGroup, AmpMiddleware, AmpRequestClient, AmpUpstreamCheck, NextFunction } from '../types.js';

/**
 * Methods whose answer reflects the request: an intermediary that answers TRACE (Apache's default)
 * echoes it back, a key the gateway added included (RFC 9110 §9.3.8). CONNECT and TRACK never
 * reach a `request` listener (Node's parser), but a host may hand them over itself.
 */
const REFLECTING_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);

/** Amp's own URLs are short; a much longer one is a probe or a mistake (Node's header cap is 16 KiB). */
const MAX_URL_LENGTH = 8192;

/** What a factory serves: its name (for messages), its groups and where it expects to be mounted. */
interface MiddlewareScope {
  readonly name: string;
  readonly groups: readonly AmpGroup[];
  /** Where a single-group middleware expects to be mounted; the router is mounted at the Amp root. */
  readonly mountPath?: string;
}

/** Node removes its own error listener from upgraded sockets; a client reset must not crash the host. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

function looksLikeRequest(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    'socket' in value &&
    'headers' in value &&
    'method' in value
  );
}

/** Factories already reported as passed to `app.use()` without being called. */
const reportedUncalled = new Set<string>();

/**
 * `app.use(ampRouter)` (JavaScript only: the types refuse it) makes Express call the factory with
 * each request. Every request on the factory's paths gets a 500 that says what to write (and the
 * process one warning saying it too); other paths go on to the host's routes, which a thrown
 * error would break.
 */
function answerFactoryCalledAsMiddleware(
  scope: MiddlewareScope,
  req: IncomingMessage,
  [res, next]: readonly unknown[],
): AmpMiddleware {
  const { name } = scope;
  const error = new AmpProxyConfigError(
    name,
    `was passed to app.use() without being called; write app.use(${name}()) or app.use(${name}(options))`,
  );
  if (typeof (res as ServerResponse | undefined)?.writeHead !== 'function') throw error;
  if (!reportedUncalled.has(name)) {
    reportedUncalled.add(name);
    process.emitWarning(error.message, { code: 'amp_factory_not_called' });
  }
  const ampPath = ampPathOf(req, splitRequestTarget(originForm(req.url ?? '/')).path, scope.mountPath);
  const group = classifyAmpPath(ampPath);
  if (group !== undefined && scope.groups.includes(group)) {
    sendAmpError(res as ServerResponse, 'amp_factory_not_called');
  } else {
    (typeof next === 'function' ? (next as NextFunction) : notFound(res as ServerResponse))();
  }
  // Express ignores what a middleware returns; this one only answers that it was never set up.
  return Object.assign(
    (_req: IncomingMessage, answer: ServerResponse) => sendAmpError(answer, 'amp_factory_not_called'),
    {
      upgrade: () => false,
      reload: () => undefined,
      close: async () => undefined,
      checkUpstream: async () => ({ ready: false, cause: 'amp_factory_not_called' }) as const,
      clientOf: () => undefined,
      usage: () => undefined,
      usageAcrossReplicas: async () => undefined,
    },
  );
}

function notFound(res: ServerResponse): NextFunction {
  return () => {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('Not Found');
  };
}

/**
 * The Amp path of a request inside a single-group middleware: Express strips the mount path
 * from `req.url`, so it is put back when the middleware sits at its documented mount point.
 */
function ampPathOf(req: IncomingMessage, pathname: string, mountPath: string | undefined): string {
  if (mountPath === undefined) return pathname;
  const baseUrl = (req as { baseUrl?: string }).baseUrl;
  if (!baseUrl || !baseUrl.toLowerCase().endsWith(mountPath)) return pathname;
  return pathname === '/' ? mountPath : mountPath + pathname;
}

/** Everything built from one set of options; `reload` swaps it whole. */
interface Runtime {
  readonly handlers: ReadonlyMap<AmpGroup, GroupHandler>;
  readonly clientOf: (req: IncomingMessage) => AmpRequestClient | undefined;
  readonly hostScope: ResolvedConfig['hostScope'];
  readonly warn: ResolvedConfig['warn'];
  readonly keepsUsage: boolean;
  readonly checkUpstream: () => Promise<AmpUpstreamCheck>;
}

/** A WebSocket handshake that Node handed to the request handler: no `upgrade` listener took it. */
function isUpgradeRequest(req: IncomingMessage): boolean {
  return req.headers.upgrade !== undefined && /\bupgrade\b/i.test(req.headers.connection ?? '');
}

/**
 * The pieces that outlive a reload: one proxy (with its own keep-alive connections) per group.
 * Requests carry their own destination, so these need no options.
 */
function createProxyPool(groups: readonly AmpGroup[]) {
  const proxies = new Map(
    groups.map((group) => [group, createGroupProxy(ROUTE_GROUPS[group].forbidsCrossOrigin)]),
  );
  return {
    proxyFor: (group: AmpGroup): GroupProxy => proxies.get(group)!,
    connectThrough(connection: UpstreamConnection): void {
      for (const proxy of proxies.values()) proxy.connectThrough(connection);
    },
    /** Limit counters kept in memory outlive reloads: a reload must not hand out fresh allowances. */
    limitStore: new MemoryLimitStore(),
    /** Usage, too, is the process's, not one configuration's. */
    usage: new UsageLedger(),
    closeIdle(): void {
      for (const proxy of proxies.values()) proxy.closeIdle();
    },
  };
}

function buildRuntime(
  options: unknown,
  groups: readonly AmpGroup[],
  pool: ReturnType<typeof createProxyPool>,
): Runtime {
  const config = resolveOptions(options, pool.usage.record);
  if (config.clients instanceof ClientDirectory && config.clients.isShapeless) {
    config.warn(
      'amp_directory_shapeless',
      'clients is a resolver without keyShape: gateway keys are recognised only in the credential headers, so a key misplaced elsewhere (query, path, other headers) is forwarded and not masked in logs; declare keyShape',
    );
  }
  const { limits } = config;
  const limiter = limits && new Limiter(limits, limits.store ?? pool.limitStore, config.warn);
  const handlers = new Map(
    groups.map((group) => [
      group,
      createGroupHandler(
        group,
        config,
        pool.proxyFor(group),
        createUpstreamHeaderBuilder(config.tokenHeader, config.hostHeaders[group]),
        limiter,
      ),
    ]),
  );
  // Last: options that fail to build leave the connections of the runtime in use untouched.
  pool.connectThrough(config.upstreamConnection);
  // Replicas that share limits through Redis add up their usage there too.
  const sharedStore = limits?.store instanceof RedisLimitStore ? limits.store : undefined;
  pool.usage.share(config.usage ? sharedStore : undefined, config.warn);
  return {
    handlers,
    clientOf: (req) => {
      const { clients, tokenHeader } = config;
      const client =
        clients instanceof ClientDirectory
          ? clients.cachedClient(req.headers, tokenHeader)
          : presentedClient(req.headers, tokenHeader, clients);
      if (!client) return undefined;
      return client.team === undefined ? { name: client.name } : { name: client.name, team: client.team };
    },
    hostScope: config.hostScope,
    warn: config.warn,
    keepsUsage: config.usage,
    checkUpstream: () => probeUpstream(config.upstreamBase, config.upstreamConnection),
  };
}

/**
 * The middleware and its hooks share one closure over `runtime`, the value `reload` swaps; each of
 * the parts below is short.
 */
export function createAmpMiddleware(
  options: unknown,
  scope: MiddlewareScope,
  middlewareArguments: readonly unknown[] = [],
): AmpMiddleware {
  if (looksLikeRequest(options)) {
    return answerFactoryCalledAsMiddleware(scope, options as IncomingMessage, middlewareArguments);
  }
  const pool = createProxyPool(scope.groups);
  let runtime = buildRuntime(options, scope.groups, pool);
  const tunnels = new Set<Duplex>();
  // Shared by every tunnel rather than a closure each: thousands may be open.
  function forgetTunnel(this: Duplex): void {
    tunnels.delete(this);
  }

  /** Who serves `ampPath`: a group of ours and its handler, `'bad-path'`, or `undefined` when the path is not ours. */
  function handlerFor(ampPath: string): { group: AmpGroup; handler: GroupHandler } | 'bad-path' | undefined {
    const group = route(ampPath);
    if (group === undefined || group === 'bad-path') return group;
    const handler = runtime.handlers.get(group);
    return handler && { group, handler };
  }

  const warned = new Set<string>();
  const warnOnce = (code: string, message: string): void => {
    if (warned.has(code)) return;
    warned.add(code);
    runtime.warn(code, message);
  };

  /**
   * A single-group middleware mounted where its paths cannot arrive (`ampProviderProxy` at `/api`)
   * would hand every Amp call to the host's 404 without a word; looked at only for requests that
   * fall through, so served requests pay nothing.
   */
  function warnIfMountedWhereNothingMatches(req: IncomingMessage, pathname: string): void {
    const baseUrl = (req as { baseUrl?: string }).baseUrl;
    if (scope.mountPath === undefined || !baseUrl || warned.has('amp_mount_path')) return;
    const group = classifyAmpPath(baseUrl + pathname);
    if (group === undefined || !scope.groups.includes(group)) return;
    warnOnce(
      'amp_mount_path',
      `amp-proxy-middleware: ${scope.name} is mounted at ${baseUrl}, where it never sees its paths; mount it at ${scope.mountPath} (under any prefix) or at the root`,
    );
  }

  const middleware = {
    [scope.name](req: IncomingMessage, res: ServerResponse, next?: NextFunction): void {
      if (runtime.hostScope && !runtime.hostScope(req)) return (next ?? notFound(res))();
      const url = req.url ?? '/';
      const { path: pathname, query = '' } = splitRequestTarget(originForm(url));
      const ampPath = ampPathOf(req, pathname, scope.mountPath);
      const target = handlerFor(ampPath);
      if (target === undefined) {
        warnIfMountedWhereNothingMatches(req, pathname);
        return (next ?? notFound(res))();
      }
      if (REFLECTING_METHODS.has(req.method!)) return sendAmpError(res, 'amp_method_not_allowed');
      if (target === 'bad-path' || query.includes('#')) return sendAmpError(res, 'amp_bad_path');
      if (url.length > MAX_URL_LENGTH) return sendAmpError(res, 'amp_uri_too_long');
      if (target.handler.upgrade && isUpgradeRequest(req)) {
        warnOnce(
          'amp_websocket_not_attached',
          `amp-proxy-middleware: ${scope.name} got a WebSocket upgrade as a plain request (answered 426): call attachUpgrade(server, middleware) once the HTTP server exists`,
        );
        return sendAmpError(res, 'amp_websocket_not_attached');
      }
      target.handler.http(req, res, ampPath, query);
    },
  }[scope.name] as AmpMiddleware;

  middleware.upgrade = (req, socket, head) => {
    if (runtime.hostScope && !runtime.hostScope(req)) return false;
    const url = req.url ?? '/';
    const { path: pathname, query = '' } = splitRequestTarget(originForm(url));
    const target = handlerFor(pathname);
    // A socket an earlier listener answered is left alone, even on our paths.
    if (target === undefined || isAnswered(socket)) return false;
    // `undefined` for a bad path, and for groups that never upgrade (left to other handlers).
    const upgrade = target === 'bad-path' ? undefined : target.handler.upgrade;
    if (target !== 'bad-path' && !upgrade) return false;
    socket.on('error', destroyOnError);
    if (req.method !== 'GET') {
      // A WebSocket handshake is a GET (RFC 6455 §4.1); http-proxy drops any other without a word.
      rejectUpgrade(socket, 'amp_method_not_allowed');
    } else if (!upgrade || query.includes('#')) {
      rejectUpgrade(socket, 'amp_bad_path');
    } else if (url.length > MAX_URL_LENGTH) {
      rejectUpgrade(socket, 'amp_uri_too_long');
    } else {
      tunnels.add(socket);
      socket.on('close', forgetTunnel);
      upgrade(req, socket as Socket, head, pathname, query);
    }
    return true;
  };

  middleware.reload = (nextOptions) => {
    runtime = buildRuntime(nextOptions, scope.groups, pool);
  };

  middleware.checkUpstream = () => runtime.checkUpstream();

  /** A rate limiter and an access log both ask about the same request: they get one answer. */
  const knownClients = new WeakMap<IncomingMessage, AmpRequestClient | undefined>();
  middleware.clientOf = (req) => {
    const known = knownClients.get(req);
    if (known) return known;
    // Only a client found is kept: a directory may know the key by the next call.
    const client = runtime.clientOf(req);
    if (client) knownClients.set(req, client);
    return client;
  };

  middleware.usage = () => (runtime.keepsUsage ? pool.usage.report() : undefined);
  middleware.usageAcrossReplicas = async () => (runtime.keepsUsage ? pool.usage.sharedReport() : undefined);

  middleware.close = async () => {
    const ended = [...tunnels].map(endTunnel);
    pool.closeIdle();
    await Promise.all(ended);
    // After the tunnels: their closes are counted too.
    await pool.usage.stop();
  };

  return middleware;
}
