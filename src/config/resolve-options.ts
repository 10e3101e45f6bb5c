import type { ClientTable } from '../auth/clients.js';
import type { ClientDirectory } from '../directory/client-directory.js';
import type { LimitsConfig } from '../limits/limiter.js';
import { SERVER_KEY_FROM_ENV, createServerKeyResolver, type ServerKeyResolver } from '../auth/server-key.js';
import { chooseEgressProxy, laterEgress, type EgressProxy } from '../egress/egress-proxy.js';
import { shownProxy } from '../egress/proxy-url.js';
import { upstreamTrustBundle } from '../egress/trusted-cas.js';
import { createUpstreamConnection, type UpstreamConnection } from '../egress/upstream-connection.js';
import { createHostScope, type HostScope } from '../access/host-scope.js';
import { auditListener } from '../observability/audit.js';
import { loggingListener } from '../observability/logger.js';
import { createRedactor } from '../observability/redact.js';
import type { ProviderRoutingConfig } from '../provider/provider-routing.js';
import { actorTokenOf, forwardsCookies, validateOptions, type ValidatedOptions } from './validate-options.js';
import { createActorTokenStage, type ActorTokenStage } from '../actors/actor-token.js';
import { createPublicBase, type PublicBaseOf } from '../access/public-base.js';
import { IdentityProxy, type ConnectionFor } from '../identity/identity-proxy.js';
import { destinationOf } from '../proxy/outbound-request.js';
import { byGroup } from '../routing/route-groups.js';
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
  /** Whether a request is for a host this router serves; `undefined` when it serves every host. */
  readonly hostScope: HostScope | undefined;
  /** Where request and WebSocket events go; `undefined` when nobody listens, so nothing is traced. */
  readonly emit: AmpProxyEventListener | undefined;
  /** Whether usage is kept (`usage: true`). */
  readonly usage: boolean;
  /** Masks credentials in logs and events, including every key this config knows. */
  readonly redactor: Redactor;
  /** Tells the host about a mistake in how it uses the middleware: its logger, else a process warning. */
  readonly warn: (code: string, message: string) => void;
  /** How provider calls are routed by model; `undefined` when nothing needs the body read. */
  readonly providerRouting: ProviderRoutingConfig | undefined;
  /** Adds the actor token to tokenless actor requests; `undefined` when no token is in force. */
  readonly actorToken: ActorTokenStage | undefined;
  /** Where clients reach the gateway, per request (`publicUrl`, else the request's own host). */
  readonly publicBase: PublicBaseOf;
  /** Carries the identity provider's calls; `undefined` unless `identityProxy` is on. */
  readonly identity: IdentityProxy | undefined;
  /** The host's own headers each group never sends upstream: its cookies unless forwarded, `dropHeaders`. */
  readonly hostHeaders: Readonly<Record<AmpGroup, readonly string[]>>;
  /** Limits per client and team; `undefined` when none are set, so nothing is counted. */
  readonly limits: LimitsConfig | undefined;
}

/**
 * Where the host hears of a mistake: its logger, else a process warning. A logger that throws is
 * host code failing; the warning then goes to the process, and nothing reaches the request.
 */
function warningsTo(logger: ValidatedOptions['logger']): ResolvedConfig['warn'] {
  const emitWarning = (code: string, message: string): void => process.emitWarning(message, { code });
  if (!logger) return emitWarning;
  return (code, message) => {
    try {
      logger.warn({ code }, message);
    } catch {
      emitWarning(code, message);
    }
  };
}

/**
 * One listener for several. Listeners are host code: one that throws loses its own event and
 * breaks nothing else; its first failure is reported (by the error's name only, as a message
 * could hold anything), later ones are not, since a broken listener fails on every event.
 * `undefined` when there is none, so that nothing is traced.
 */
function combineListeners(
  listeners: Readonly<
    Record<'logger' | 'onProxyEvent' | 'audit' | 'usage', AmpProxyEventListener | undefined>
  >,
  warn: ResolvedConfig['warn'],
): AmpProxyEventListener | undefined {
  const present = Object.entries(listeners).flatMap(([name, listener]) =>
    listener ? [{ name, listener, reported: false }] : [],
  );
  if (present.length === 0) return undefined;
  return (event) => {
    for (const entry of present) {
      try {
        entry.listener(event);
      } catch (error) {
        if (entry.reported) continue;
        entry.reported = true;
        const kind = error instanceof Error ? error.name : typeof error;
        warn(
          'amp_listener_error',
          `amp-proxy-middleware: ${entry.name} threw (${kind}) on a ${event.type} event; the event is lost to it, the request is unaffected, and its later failures are not reported`,
        );
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
/** `usage`: the middleware's ledger (it outlives reloads), listening only when the options ask for usage. */
export function resolveOptions(options: unknown, usage?: AmpProxyEventListener): ResolvedConfig {
  const validated = validateOptions(options);
  const { upstream, upstreamKey, clients, logger } = validated;
  const upstreamUrl = new URL(upstream.base);
  const { proxy } = chooseEgressProxy(validated.upstreamProxy, upstreamUrl);
  const serverKeys =
    typeof upstreamKey === 'string' && upstreamKey !== SERVER_KEY_FROM_ENV ? [upstreamKey] : [];
  const warn = warningsTo(logger);
  if (proxy && upstreamUrl.protocol === 'http:') {
    // A CONNECT tunnel to an http: upstream still carries plain HTTP: the proxy reads it all.
    warn(
      'amp_egress_cleartext',
      `amp-proxy-middleware: the upstream is http: and is reached through the egress proxy ${shownProxy(proxy.url)}, which sees every request in the clear, keys included; use an https: upstream`,
    );
  }
  const actorToken = actorTokenOf(validated);
  const trustedCas = validated.upstreamCa && upstreamTrustBundle(validated.upstreamCa);
  const upstreamConnection = createUpstreamConnection(proxy, trustedCas, validated.timeoutMs);
  const { identityProxy } = validated;
  const identityEgress = identityProxy === false ? undefined : laterEgress(validated.upstreamProxy);
  // The identity provider is another host: NO_PROXY may treat it apart from the upstream.
  const identityConnection: ConnectionFor = (target) => {
    const through = identityEgress?.proxyFor(target);
    return through?.url.href === proxy?.url.href
      ? upstreamConnection
      : createUpstreamConnection(through, trustedCas, validated.timeoutMs);
  };
  return {
    upstreamBase: upstream.base,
    clients: clients.directory ?? clients.table,
    policies: validated.policies,
    tokenHeader: validated.tokenHeader,
    timeoutMs: validated.timeoutMs,
    upstreamConnection,
    serverKey: createServerKeyResolver(upstreamKey, upstream.asWritten, validated.secretsFile),
    restrictToLocalhost: validated.restrictManagementToLocalhost,
    trustedProxies: validated.trustedProxies,
    hostScope: createHostScope(validated.hosts, validated.trustedProxies),
    emit: combineListeners(
      {
        logger: logger && loggingListener(logger),
        onProxyEvent: validated.onProxyEvent,
        audit: validated.audit && auditListener(validated.audit),
        usage: validated.usage ? usage : undefined,
      },
      warn,
    ),
    redactor: createRedactor(
      [
        ...clients.secrets,
        ...serverKeys,
        ...[proxy, ...(identityEgress?.proxies ?? [])].flatMap(proxyCredentials),
        ...(actorToken ? [actorToken] : []),
      ],
      clients.directory?.recogniser,
    ),
    providerRouting: providerRouting(validated),
    actorToken: actorToken === undefined ? undefined : createActorTokenStage(actorToken),
    publicBase: createPublicBase(validated.publicUrl, validated.trustedProxies),
    identity:
      identityProxy === false
        ? undefined
        : new IdentityProxy(
            typeof identityProxy === 'string' ? identityProxy : undefined,
            destinationOf(upstream.base, validated.timeoutMs, upstreamConnection),
            identityConnection,
          ),
    hostHeaders: byGroup((group) => [
      ...(forwardsCookies(validated, group) ? [] : ['cookie']),
      ...validated.dropHeaders[group],
    ]),
    limits: validated.limits,
    usage: validated.usage,
    warn,
  };
}
