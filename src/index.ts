import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createAmpMiddleware } from './middleware/amp-middleware.js';
import { AMP_GROUPS, GROUP_MOUNT_PATH } from './routing/route-groups.js';
import type { AmpMiddleware, AmpProxyOptions, AttachUpgradeOptions } from './types.js';

export type {
  AmpClient,
  AmpClientDirectory,
  AmpClientResolver,
  AmpDirectoryCache,
  AmpDirectoryClient,
  AmpKeyShape,
  AmpLimits,
  AmpLimitSet,
  AmpRedisClient,
  AmpCustomPolicy,
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
  AmpRequestEndEvent,
  AmpRequestOutcome,
  AmpRequestStartEvent,
  AmpUpstreamCheck,
  AmpWebSocketEvent,
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
} from './types.js';
export { createAmpMetrics } from './observability/metrics.js';
export { createRedactor, redactHeaders, redactSecret, redactUrl } from './observability/redact.js';
export { AMP_ERRORS, AmpProxyConfigError, upstreamFailureCause } from './errors.js';
export { loadAmpConfig } from './config/load-config.js';
export { generateGatewayKey, isGatewayKey } from './directory/key-shape.js';

// The factories' `never` rest parameter makes `app.use(ampRouter)` (the factory itself, not the
// middleware it returns) a type error in both Express majors; see `answerFactoryCalledAsMiddleware`.

/**
 * Every Amp route group behind one middleware. Mount it where the Amp server root should be
 * (`app.use(ampRouter())` or `app.use('/amp', ampRouter())`); paths that are not Amp's go to `next()`.
 */
export function ampRouter(options?: AmpProxyOptions, ...notAMiddleware: never[]): AmpMiddleware {
  return createAmpMiddleware(options, { name: 'ampRouter', groups: AMP_GROUPS }, notAMiddleware);
}

/** The provider group (`/api/provider/**`) alone. Mount it at `/api/provider` (under any prefix) or at the root. */
export function ampProviderProxy(options?: AmpProxyOptions, ...notAMiddleware: never[]): AmpMiddleware {
  return createAmpMiddleware(
    options,
    { name: 'ampProviderProxy', groups: ['provider'], mountPath: GROUP_MOUNT_PATH.provider },
    notAMiddleware,
  );
}

/** The management group (every `/api/**` path but the provider's) alone. Mount it at `/api` (under any prefix) or at the root. */
export function ampManagementProxy(options?: AmpProxyOptions, ...notAMiddleware: never[]): AmpMiddleware {
  return createAmpMiddleware(
    options,
    { name: 'ampManagementProxy', groups: ['management'], mountPath: GROUP_MOUNT_PATH.management },
    notAMiddleware,
  );
}

/**
 * Sends the server's WebSocket upgrades to `middleware`. Upgrades it does not own are left to
 * the server's other `upgrade` listeners, or refused with 404 when there are none (as Node does
 * without any listener). Returns a function that detaches it.
 */
export function attachUpgrade(
  server: Server,
  middleware: Pick<AmpMiddleware, 'upgrade'>,
  { prefix = '' }: AttachUpgradeOptions = {},
): () => void {
  const base = prefix.replace(/\/+$/, '');
  const listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = req.url ?? '/';
    const inside = base === '' || url === base || url.startsWith(`${base}/`) || url.startsWith(`${base}?`);
    if (inside) {
      const original = url;
      req.url = url.slice(base.length) || '/';
      if (middleware.upgrade(req, socket, head)) return;
      req.url = original;
    }
    if (server.listenerCount('upgrade') === 1) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    }
  };
  server.on('upgrade', listener);
  return () => server.off('upgrade', listener);
}
