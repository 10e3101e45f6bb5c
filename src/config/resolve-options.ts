import type { ClientTable } from '../auth/clients.js';
import type { ClientDirectory } from '../directory/client-directory.js';
import type { LimitsConfig } from '../limits/limiter.js';
import { createServerKeyResolver, type ServerKeyResolver } from '../auth/upstream-key.js';
import { chooseEgressProxy, type EgressProxy } from '../egress/egress-proxy.js';
import { upstreamTrustBundle } from '../egress/trusted-cas.js';
import { createUpstreamConnection, type UpstreamConnection } from '../egress/upstream-connection.js';
import { loggingListener } from '../observability/logger.js';
import { createRedactor } from '../observability/redact.js';
import type { ProviderRoutingConfig } from '../provider/provider-routing.js';
import { validateOptions, type ValidatedOptions } from './validate-options.js';
import type { AmpCustomPolicy, AmpGroup, AmpPolicyName, AmpProxyEventListener, Redactor } from '../types.js';

/** Options after validation, with everything that can be computed once computed. */
export interface ResolvedConfig {
  /** The upstream without a trailing slash: origin plus optional path prefix. */
  readonly upstreamBase: string;
  /** The gateway keys: a list, or a directory that resolves them when presented. */
  readonly clients: ClientTable | ClientDirectory;
  readonly policies: Readonly<Record<AmpGroup, AmpPolicyName | AmpCustomPolicy>>;
  readonly tokenHeader: string;
  readonly timeoutMs: number;
  readonly upstreamConnection: UpstreamConnection;
  readonly serverKey: ServerKeyResolver;
  readonly restrictToLocalhost: boolean;
  readonly trustedProxies: readonly string[];
  /** Where request and WebSocket events go; `undefined` when nobody listens, so nothing is traced. */
  readonly emit: AmpProxyEventListener | undefined;
  /** Masks credentials in logs and events, including every key this config knows. */
  readonly redactor: Redactor;
  /** Tells the host about a mistake in how it uses the middleware: its logger, else a process warning. */
  readonly warn: (code: string, message: string) => void;
  /** How provider calls are routed by model; `undefined` when nothing needs the body read. */
  readonly providerRouting: ProviderRoutingConfig | undefined;
  /** Limits per client and team; `undefined` when none are set, so nothing is counted. */
  readonly limits: LimitsConfig | undefined;
}

/**
 * One listener for several. Listeners are host code: one that throws loses its own event and
 * breaks nothing else. `undefined` when there is none, so that nothing is traced.
 */
function combineListeners(
  listeners: readonly (AmpProxyEventListener | undefined)[],
): AmpProxyEventListener | undefined {
  const present = listeners.filter((listener) => listener !== undefined);
  if (present.length === 0) return undefined;
  return (event) => {
    for (const listener of present) {
      try {
        listener(event);
      } catch {
        // isolated on purpose
      }
    }
  };
}

function providerRouting(options: ValidatedOptions): ProviderRoutingConfig | undefined {
  const { mapModel } = options.modelMappings;
  const { localProvider, forceModelMappings, maxBodyBytes } = options;
  if (!mapModel && !localProvider) return undefined;
  return { mapModel, localProvider, forceModelMappings, maxBodyBytes };
}

/** The egress proxy's credentials, as the redactor must know them: written in its URL, and decoded. */
function proxyCredentials(proxy: EgressProxy | undefined): string[] {
  if (!proxy) return [];
  const { username, password } = proxy.url;
  return [username, password, decodeURIComponent(username), decodeURIComponent(password)].filter(
    (secret) => secret !== '',
  );
}

/** Validates options once, in the factory, and precomputes what requests need. */
export function resolveOptions(options: unknown): ResolvedConfig {
  const validated = validateOptions(options);
  const { upstream, upstreamKey, clients, logger } = validated;
  const { proxy } = chooseEgressProxy(validated.upstreamProxy, new URL(upstream.base));
  const serverKeys = typeof upstreamKey === 'string' ? [upstreamKey] : [];
  return {
    upstreamBase: upstream.base,
    clients: clients.directory ?? clients.table,
    policies: validated.policies,
    tokenHeader: validated.tokenHeader,
    timeoutMs: validated.timeoutMs,
    upstreamConnection: createUpstreamConnection(
      proxy,
      validated.upstreamCa && upstreamTrustBundle(validated.upstreamCa),
      validated.timeoutMs,
    ),
    serverKey: createServerKeyResolver(upstreamKey, upstream.asWritten, validated.secretsFile),
    restrictToLocalhost: validated.restrictManagementToLocalhost,
    trustedProxies: validated.trustedProxies,
    emit: combineListeners([logger && loggingListener(logger), validated.onProxyEvent]),
    redactor: createRedactor(
      [...clients.secrets, ...serverKeys, ...proxyCredentials(proxy)],
      clients.directory?.recogniser,
    ),
    providerRouting: providerRouting(validated),
    limits: validated.limits,
    warn: logger
      ? (code, message) => logger.warn({ code }, message)
      : (code, message) => process.emitWarning(message, { code }),
  };
}
