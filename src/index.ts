import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { isAnswered } from './errors.js';
import { createAmpMiddleware } from './middleware/amp-middleware.js';
import { originForm } from './routing/request-target.js';
import { AMP_GROUPS, GROUP_MOUNT_PATH } from './routing/route-groups.js';
import type {
  AmpMiddleware,
  AmpProxyOptions,
  AttachUpgradeOptions,
  WriteAppUseAmpRouterWithParentheses,
} from './types.js';

export type {
  AmpClient,
  AmpClientDirectory,
  AmpClientResolver,
  AmpConfigProblem,
  AmpDirectoryCache,
  AmpDirectoryClient,
  AmpKeyShape,
  AmpLimits,
  AmpLimitSet,
  AmpAuditLogger,
  AmpClientUsage,
  AmpUsageReport,
  AmpRedisClient,
  AmpCustomPolicy,
  AmpDropHeaders,
  AmpEffectiveOptions,
  AmpErrorBody,
  AmpErrorCode,
  AmpGatewayOverrides,
  AmpGatewaySettings,
  AmpGroup,
  AmpLogger,
  AmpMetrics,
  AmpMiddleware,
  AmpPolicies,
  AmpPolicy,
  AmpPolicyClient,
  AmpPolicyContext,
  AmpPolicyName,
  AmpPolicyResult,
  AmpProxyEvent,
  AmpProxyEventListener,
  AmpProxyOptions,
  AmpRequestClient,
  AmpRequestEndEvent,
  AmpRequestOutcome,
  AmpRequestStartEvent,
  AmpUpstreamCheck,
  AmpWebSocketCloseEvent,
  AmpWebSocketEvent,
  AmpWebSocketOpenEvent,
  AmpWebSocketOutcome,
  AttachUpgradeOptions,
  KeySource,
  LoadAmpConfigOptions,
  LoadedAmpConfig,
  LocalProvider,
  LocalProviderHandler,
  ModelMapping,
  NextFunction,
  PromClientLike,
  PromRegistryLike,
  Redactor,
  UpstreamKeyFunction,
  UpstreamKeySource,
  WriteAppUseAmpRouterWithParentheses,
} from './types.js';
export { createAmpMetrics } from './observability/metrics.js';
export { createRedactor, redactHeaders, redactSecret, redactUrl } from './observability/redact.js';
export { AMP_ERRORS, AmpProxyConfigError, upstreamFailureCause } from './errors.js';
export { loadAmpConfig } from './config/load-config.js';
export { generateGatewayKey, isGatewayKey } from './directory/key-shape.js';

// The factories' rest parameter (`WriteAppUseAmpRouterWithParentheses`, no value has it) makes
// `app.use(ampRouter)` a type error that says what to write; at run time, see `answerFactoryCalledAsMiddleware`.

/**
 * Every Amp route group behind one middleware, at the root of an origin of its own: the Amp CLI
 * keeps only the origin of `AMP_URL`. In an app with routes of its own, scope it with `hosts`;
 * paths (and hosts) that are not Amp's go to `next()`.
 */
export function ampRouter(
  options?: AmpProxyOptions,
  ...factoryPassedUncalled: WriteAppUseAmpRouterWithParentheses[]
): AmpMiddleware {
  return createAmpMiddleware(options, { name: 'ampRouter', groups: AMP_GROUPS }, factoryPassedUncalled);
}

/** The provider group (`/api/provider/**`) alone. Mount it at `/api/provider` (under any prefix) or at the root. */
export function ampProviderProxy(
  options?: AmpProxyOptions,
  ...factoryPassedUncalled: WriteAppUseAmpRouterWithParentheses[]
): AmpMiddleware {
  return createAmpMiddleware(
    options,
    { name: 'ampProviderProxy', groups: ['provider'], mountPath: GROUP_MOUNT_PATH.provider },
    factoryPassedUncalled,
  );
}

/** The management group (every `/api/**` path but the provider's) alone. Mount it at `/api` (under any prefix) or at the root. */
export function ampManagementProxy(
  options?: AmpProxyOptions,
  ...factoryPassedUncalled: WriteAppUseAmpRouterWithParentheses[]
): AmpMiddleware {
  return createAmpMiddleware(
    options,
    { name: 'ampManagementProxy', groups: ['management'], mountPath: GROUP_MOUNT_PATH.management },
    factoryPassedUncalled,
  );
}

/**
 * No `upgrade` listener answered the socket or took it on. A listener that handles a socket later
 * (after an asynchronous check) attaches an `error` listener first, as `ws` does and must: Node
 * removed its own, so an unhandled reset would crash the process.
 */
function isUntouched(socket: Duplex): boolean {
  return (
    !isAnswered(socket) &&
    socket.listenerCount('error') === 0 &&
    socket.listenerCount('data') === 0 &&
    socket.listenerCount('close') === 0
  );
}

/**
 * Sends the server's WebSocket upgrades to `middleware`. Upgrades it does not own are left to
 * the server's other `upgrade` listeners, and refused with 404 when none of them answered or took
 * the socket. Returns a function that detaches it.
 */
export function attachUpgrade(
  server: Server,
  middleware: Pick<AmpMiddleware, 'upgrade'>,
  { prefix = '' }: AttachUpgradeOptions = {},
): () => void {
  const base = prefix.replace(/\/+$/, '');
  const listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const original = req.url ?? '/';
    const url = originForm(original);
    const inside = base === '' || url === base || url.startsWith(`${base}/`) || url.startsWith(`${base}?`);
    if (inside) {
      req.url = url.slice(base.length) || '/';
      if (middleware.upgrade(req, socket, head)) return;
      req.url = original;
    }
    // Once every listener has run: a socket none of them answered or started handling would
    // hang until the client gives up.
    process.nextTick(() => {
      if (isUntouched(socket)) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    });
  };
  server.on('upgrade', listener);
  return () => server.off('upgrade', listener);
}
