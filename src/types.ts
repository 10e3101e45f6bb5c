// The public types, in one module that imports nothing at run time and nothing of the library's:
// every other module may depend on it, so it can be part of no import cycle.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** A gateway key that the host hands to one of its users. */
export interface AmpClient {
  /**
   * The key the user's Amp CLI sends (as `AMP_API_KEY`). Must be unique and made of A-Z, a-z,
   * 0-9, `_` and `-` only, so that the gateway recognises it wherever it appears; make it long
   * and random (a common word as a key would be found in ordinary requests).
   */
  key: string;
  /** A label for logs. Defaults to none. */
  name?: string | undefined;
  /**
   * This user's own Amp key. Defaults to none: `inject` routes then spend the server key, and
   * `passthrough`/`dual-token` routes need the user's own token on the request.
   */
  upstreamKey?: string | undefined;
}

/** What a client directory answers for a key it knows. */
export interface AmpDirectoryClient {
  /** Who holds the key, for logs, metrics and limits. */
  name: string;
  /** A group of clients, for limits per team. Defaults to none. */
  team?: string;
  /** This user's own Amp key, as `AmpClient.upstreamKey`. Defaults to none. */
  upstreamKey?: string;
  /** When the key stops working (ms since the epoch): the cache keeps the answer no longer. */
  expiresAt?: number;
  /** This client's own limits, instead of `limits.perClient`. Defaults to those. */
  limits?: AmpLimitSet;
}

/**
 * Looks up a presented gateway key in a directory (a database, Vault, an SSO-backed service):
 * the client it belongs to, or `undefined` for a key it does not know (or one revoked or
 * expired). Throwing or rejecting refuses the request with `503 amp_directory_unavailable`.
 */
export type AmpClientResolver = (key: string) => Promise<AmpDirectoryClient | undefined>;

/**
 * What the keys of a directory look like, so the gateway can find one anywhere in a request
 * (misplaced keys refused, logs masked) without knowing it: its length, and a prefix, a test,
 * or both. `'gateway'` is the shape of the keys `amp-proxy keys add` issues.
 */
export type AmpKeyShape = 'gateway' | { length: number; prefix?: string; test?: (token: string) => boolean };

/** How long and how many directory answers are kept (by digest of the key, never the key). */
export interface AmpDirectoryCache {
  /** Defaults to 10000. */
  maxEntries?: number;
  /** How long a known key is trusted before the directory is asked again: the revocation lag. Defaults to 30000. */
  positiveTtlMs?: number;
  /** How long an unknown key is refused without asking again. Defaults to 5000. */
  negativeTtlMs?: number;
}

interface AmpDirectorySettings {
  cache?: AmpDirectoryCache;
  /** How long a lookup may take before the request fails with `503`. Defaults to 2000. */
  timeoutMs?: number;
}

/**
 * A client directory instead of a static list: a resolver of your own, or the SQLite file that
 * `amp-proxy keys` manages (relative paths from the working directory).
 */
export type AmpClientDirectory =
  | (AmpDirectorySettings & { resolve: AmpClientResolver; keyShape?: AmpKeyShape })
  | (AmpDirectorySettings & { sqlite: string });

/** Limits of one client, or of one team (all its clients together). Each defaults to none. */
export interface AmpLimitSet {
  /** Requests per minute, per route group (fixed one-minute windows). */
  requestsPerMinute?: Partial<Record<AmpGroup, number>>;
  /** Agent WebSockets open at once. */
  concurrentWebSockets?: number;
  /**
   * New threads (`POST /api/thread-actors`) per hour, in fixed one-hour windows. A creation is
   * charged when it is asked for, before the upstream answers, so concurrent ones cannot exceed it.
   */
  threadsPerHour?: number;
}

/** The part of an ioredis client the Redis limits store uses (create it with `enableOfflineQueue: false`). */
export interface AmpRedisClient {
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** Limits per named client and per team, counted in memory or in Redis shared by replicas. */
export interface AmpLimits {
  perClient?: AmpLimitSet;
  perTeam?: AmpLimitSet;
  /**
   * Where counters live. Defaults to `'memory'` (this process; kept across `reload`). Several
   * replicas share `{ redis }`, an ioredis client or a `redis://` URL (needs ioredis installed):
   * every check is one atomic Lua script. `prefix` defaults to `amp-proxy:`, `timeoutMs` (how
   * long Redis may take to answer) to 500.
   */
  store?: 'memory' | { redis: AmpRedisClient | string; prefix?: string; timeoutMs?: number };
  /**
   * When the store cannot answer: `'closed'` refuses with `503 amp_limits_unavailable` (limits
   * protect money), `'open'` lets requests through unlimited, warning once a minute. Defaults to `'closed'`.
   */
  onStoreError?: 'closed' | 'open';
}

/** The gateway client a request identified itself as, as seen by a custom policy. */
export interface AmpPolicyClient {
  readonly name: string | undefined;
  readonly upstreamKey: string | undefined;
}

/** What a custom policy knows about the request, beyond the request itself. */
export interface AmpPolicyContext {
  readonly group: AmpGroup;
  /** The gateway client identified by a presented gateway key, if any. */
  readonly client: AmpPolicyClient | undefined;
  /** The `Authorization` token without its scheme, unless it is a gateway key. */
  readonly authorizationToken: string | undefined;
  /** The `tokenHeader` value, unless it is a gateway key. */
  readonly tokenHeaderValue: string | undefined;
  /**
   * Resolves the server key (option `upstreamKey`, env, secrets file). A key that turns out to be
   * a gateway key is not handed out: this resolves to `undefined` and the request fails with
   * `503 amp_upstream_key_conflict`.
   */
  serverKey(): Promise<string | undefined>;
}

/** What a custom policy decides. */
export interface AmpPolicyResult {
  /**
   * Headers to send upstream (names are case-insensitive). A string sets the header, `null`
   * removes it. The request's own credential headers are already removed before this applies.
   */
  headers?: Record<string, string | null> | undefined;
  /** Refuse the request with this error instead of forwarding it. */
  reject?: 'amp_client_unauthorized' | 'amp_token_required' | undefined;
}

/**
 * A policy written by the host. It starts from a request with every client credential removed;
 * whatever it returns is checked so that a gateway key never leaves the gateway.
 */
export type AmpCustomPolicy = (
  req: IncomingMessage,
  context: AmpPolicyContext,
) => AmpPolicyResult | undefined | Promise<AmpPolicyResult | undefined>;

export type AmpPolicyName = 'inject' | 'passthrough' | 'dual-token' | 'redirect';
export type AmpPolicy = AmpPolicyName | AmpCustomPolicy;

/** The auth-header policy of each route group. */
export interface AmpPolicies {
  /** `/api/provider/**`. Defaults to `'inject'`. */
  provider?: Exclude<AmpPolicy, 'redirect'> | undefined;
  /** Every other `/api/**` path. Defaults to `'passthrough'`. */
  management?: Exclude<AmpPolicy, 'redirect'> | undefined;
  /** `/actors/**`. Defaults to `'passthrough'`. */
  actors?: Exclude<AmpPolicy, 'redirect'> | undefined;
  /**
   * Browser pages (`/auth`, `/threads`, `/docs`, `/settings`, their sub-paths, `/threads.rss`,
   * `/news.rss`). Defaults to `'passthrough'`. `'inject'` is refused: these pages never carry
   * the server key.
   */
  browser?: Exclude<AmpPolicy, 'inject'> | undefined;
}

export interface AmpProxyOptions {
  /** The Amp server. A path in it is a prefix for every forwarded path. Defaults to `https://ampcode.com`. */
  upstream?: string | undefined;
  /**
   * The server-side Amp key that `inject` routes spend: a string, or a function of the request.
   * `'env'` opts in to the keys of the process: env `AMP_PROXY_UPSTREAM_KEY`, else `AMP_API_KEY`,
   * then the Amp CLI's secrets file (entry `apiKey@<upstream>`), re-read at most every 30 s.
   * Defaults to none (as do `null` and `false`): `inject` routes then answer
   * `503 amp_upstream_key_missing` to callers without a mapped `clients[].upstreamKey`. The
   * middleware never reads a key from its environment unless told to.
   */
  upstreamKey?: string | UpstreamKeyFunction | null | false | undefined;
  /**
   * Gateway keys handed to users: a list, a resolver (a function, or `{ resolve, keyShape? }`),
   * or `{ sqlite: file }`. Defaults to none: `inject` routes then accept any caller.
   */
  clients?: readonly AmpClient[] | AmpClientResolver | AmpClientDirectory | undefined;
  /** The auth-header policy of each group. Defaults to `inject` for provider, `passthrough` elsewhere. */
  policies?: AmpPolicies | undefined;
  /** The header that carries the user's Amp token under `dual-token`. Defaults to `x-amp-token`. */
  tokenHeader?: string | undefined;
  /**
   * How long the upstream may stay silent (before answering, or between two chunks of a stream)
   * before the request fails with `504 amp_upstream_timeout`. Defaults to 600000 (10 minutes).
   */
  timeoutMs?: number | undefined;
  /** The Amp CLI secrets file read under `upstreamKey: 'env'`. Defaults to `~/.local/share/amp/secrets.json`. */
  secretsFile?: string | undefined;
  /**
   * The egress proxy every connection to the upstream goes through, WebSockets included:
   * `http://`, `https://` (both tunnel with `CONNECT`), `socks5://` or `socks5h://` (the proxy
   * resolves the upstream's name), with optional `user:password@`. `'env'` reads `HTTPS_PROXY` /
   * `HTTP_PROXY` (per the upstream's scheme; lower case first, then `ALL_PROXY`) and `NO_PROXY`
   * when the middleware is created. Defaults to `false`: direct, whatever the environment says
   * (the standalone gateway and `loadAmpConfig` default to `'env'`).
   */
  upstreamProxy?: string | false | undefined;
  /**
   * CA certificates (PEM text, or `{ file }`) trusted for TLS to the upstream and to an `https:`
   * egress proxy, besides Node's roots and `NODE_EXTRA_CA_CERTS`: for a TLS-inspecting proxy or a
   * private upstream. Defaults to none.
   */
  upstreamCa?: string | { file: string } | undefined;
  /**
   * Answer `403 amp_localhost_only` on the management, actors and browser groups to clients that
   * are not on this machine (127.0.0.0/8, ::1), judged by the TCP peer address. Defaults to `false`.
   */
  restrictManagementToLocalhost?: boolean | undefined;
  /**
   * Addresses or CIDR ranges of reverse proxies in front of the gateway. Only when the TCP peer is
   * one of them is `X-Forwarded-For` consulted to find the client's address. Defaults to none.
   */
  trustedProxies?: readonly string[] | undefined;
  /**
   * The host names this middleware serves, for an app that also has routes of its own: exact
   * names (`amp.corp.example`) and `*.suffix` (any name ending in `.suffix`), case-insensitive,
   * on any port. Requests for other hosts go to `next()` untouched, and their upgrades to the
   * server's other listeners. The name is read from `Host`, or from `X-Forwarded-Host` when the
   * TCP peer is one of `trustedProxies`. Defaults to none: every host.
   */
  hosts?: readonly string[] | undefined;
  /**
   * A pino-style logger (`info`/`warn`/`error`/`debug`, object first). It gets one line per
   * finished request and WebSocket, with group, policy, method, redacted path, status, duration,
   * bytes, key source and outcome. Defaults to none: the middleware logs nothing.
   */
  logger?: AmpLogger | undefined;
  /** Called with every request and WebSocket event, for hosts that do their own accounting. Defaults to none. */
  onProxyEvent?: AmpProxyEventListener | undefined;
  /**
   * Provider group: send calls for one model as calls for another. Exact rules (case-insensitive)
   * win over `regex` rules, which are tried in order. Responses name the requested model again.
   * Defaults to none.
   */
  modelMappings?: readonly ModelMapping[] | undefined;
  /**
   * Provider group: return an Express-style handler to serve a call for `model` inside the host
   * app, or `undefined` to send it upstream. The handler finds the parsed body in `req.body`.
   * Defaults to none.
   */
  localProvider?: LocalProvider | undefined;
  /**
   * Apply `modelMappings` before asking `localProvider` about the requested model. Defaults to
   * `false`: a model served locally is served as requested, and mappings apply to the rest.
   */
  forceModelMappings?: boolean | undefined;
  /**
   * Groups on which the `Cookie` header the client sent goes upstream, e.g. `{ browser: true }`.
   * Defaults to none: the Amp CLI sends no cookie, and a cookie that reaches an Amp route of a
   * host app is the host's own (its SSO session), which must not leave for Amp.
   */
  forwardCookies?: Partial<Record<AmpGroup, boolean>> | undefined;
  /**
   * More of the host's own headers that never go upstream (a company JWT header, a tenant id):
   * `all` for every group, and per group. Names are checked when the middleware is created.
   * Defaults to none.
   */
  dropHeaders?: AmpDropHeaders | undefined;
  /**
   * The largest request body read to find a provider call's model (only when `modelMappings` or
   * `localProvider` is set); larger ones get `413 amp_body_too_large`. Defaults to 16777216 (16 MiB).
   */
  maxBodyBytes?: number | undefined;
  /**
   * Actors group: the Rivet actor token added to actor requests that arrive without one (as
   * `rvt-token` in the query, and as an `x-rivet-token` header on plain HTTP), the way the Amp CLI
   * sends it to any server but `localhost`. `false`: never add one. Defaults to Amp's public token
   * for `https://ampcode.com` (and for its staging host), none for other upstreams.
   */
  actorToken?: string | false | undefined;
  /**
   * Where clients reach the gateway (`https://amp-gw.example.com`), for replies that tell the
   * client a URL to use (RivetKit's `/actors/metadata`). Defaults to the request's `Host` and
   * scheme; `X-Forwarded-Proto` and `X-Forwarded-Host` count only from `trustedProxies`.
   */
  publicUrl?: string | undefined;
  /**
   * Carry `amp login`'s identity provider calls (OAuth device flow, token refresh) for clients that
   * may reach only the gateway: the `apiURL` of `/api/auth/oauth-config` is rewritten to the
   * gateway's `/api/amp-proxy/identity`, which forwards to the provider, through `upstreamProxy`,
   * with no credential added. `true`: the provider the upstream names; a URL: that provider.
   * Defaults to `false`: clients call the provider themselves.
   */
  identityProxy?: boolean | string | undefined;
  /** Limits per client and per team (see `AmpLimits`). Defaults to none. */
  limits?: AmpLimits | undefined;
  /**
   * Keep usage per client in this process, for `middleware.usage()`: requests by group and status,
   * threads created, agent sessions, bytes, last seen. Defaults to `false` (nothing is traced for it).
   */
  usage?: boolean | undefined;
  /**
   * An audit stream: one `info` line per request, thread created, agent session opened and closed,
   * and refusal by a limit, naming the client (never a key, a body or a query). Defaults to none.
   */
  audit?: AmpAuditLogger | undefined;
}

/** Where audit lines go: a pino-style logger (`info(object, message)`), e.g. a child logger to its own file. */
export interface AmpAuditLogger {
  info: LogMethod;
}

/** One client's usage in this process (see `AmpUsageReport`). */
export interface AmpClientUsage {
  /** Finished requests (WebSocket upgrades included) by route group, then status (`none`: no answer sent). */
  requests: Partial<Record<AmpGroup, Record<string, number>>>;
  /** `POST /api/thread-actors` creations the upstream answered with 2xx. */
  threadsCreated: number;
  /** Agent WebSockets (tunnels the upstream opened): how many, how many are open now, their seconds in all (closed ones). */
  sessions: { opened: number; open: number; seconds: number };
  /** Bytes from the client (`up`: bodies, WebSocket frames) and to it (`down`: responses with their heads, frames). */
  bytes: { up: number; down: number };
  /** ISO time of the client's last request or WebSocket event. */
  lastSeen: string;
}

/** `middleware.usage()`: usage per client name since `since`; requests without a named client count as `unnamed`. */
export interface AmpUsageReport {
  since: string;
  clients: Record<string, AmpClientUsage>;
  /**
   * From `usageAcrossReplicas()`: `'replicas'` when the report adds up every replica sharing the
   * limits' Redis store, `'process'` when it is this process's alone (no Redis store, or it did not answer).
   */
  scope?: 'process' | 'replicas';
}

/** Header names (any case) per group, and for every group under `all`: see `dropHeaders`. */
export type AmpDropHeaders = { readonly all?: readonly string[] } & {
  readonly [Group in AmpGroup]?: readonly string[];
};

export type NextFunction = (error?: unknown) => void;

/** Who a request came from, as the host's own middleware may know it: never a key. */
export interface AmpRequestClient {
  /** The `name` of the gateway client whose key the request presented. */
  readonly name: string | undefined;
  /** Its `team`, when a client directory answered one. */
  readonly team?: string;
}

/** What every factory returns: Express/Connect middleware with WebSocket and shutdown hooks. */
export interface AmpMiddleware {
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void;
  /**
   * Proxies a WebSocket upgrade whose path (relative to the Amp server root) this middleware
   * owns, and returns `true`. Returns `false` and leaves the socket alone otherwise, so the
   * host's other upgrade handlers can take it.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /**
   * Validates `options` and swaps them in atomically: requests already under way finish with the
   * options they started with. Invalid options throw an `AmpProxyConfigError` and change nothing.
   */
  reload(options?: AmpProxyOptions): void;
  /**
   * For shutdown: ends open WebSocket tunnels with close code 1001 and closes idle upstream
   * connections. Resolves once the tunnels are closed (their closes logged and counted; a client
   * that does not answer the close is cut off after 1 s). Requests under way finish; their
   * connections close as they do.
   */
  close(): Promise<void>;
  /** Usage per client in this process since the middleware was created, with `usage: true`; else `undefined`. */
  usage(): AmpUsageReport | undefined;
  /**
   * With `usage: true` and a Redis `limits.store`, usage added up across every replica sharing
   * that Redis (each adds its counts every second and on `close()`); else, or while Redis does not
   * answer, this process's (see `scope`). `undefined` without `usage: true`.
   */
  usageAcrossReplicas(): Promise<AmpUsageReport | undefined>;
  /**
   * Sends one `HEAD` request to the upstream the way requests go (through `upstreamProxy`,
   * trusting `upstreamCa`) and says whether it answered, with any status; if not, why, as the
   * `cause` of a failed request says it (`ECONNREFUSED`, `CERT_HAS_EXPIRED`, `PROXY_407`, …).
   * For readiness probes; the standalone gateway's `/readyz` is this. Gives up after 3 s.
   */
  checkUpstream(): Promise<AmpUpstreamCheck>;
  /**
   * The gateway client (`clients`) a request identifies itself as by the key it presents, or
   * `undefined`: for the host's middleware before or after this one (a rate limiter's key, a
   * budget, an access log). Works on any request, without the request reaching this middleware;
   * the answer is remembered per request. Never the key.
   */
  clientOf(req: IncomingMessage): AmpRequestClient | undefined;
}

/** What `checkUpstream()` found. */
export type AmpUpstreamCheck = { ready: true } | { ready: false; cause: string };

/**
 * The one place that decides which route group a request belongs to. Everything downstream
 * (policy, proxy instance, logging) keys off the group chosen here.
 */
export type AmpGroup = 'provider' | 'management' | 'actors' | 'browser';

/** Where the server key of a request came from; logged instead of the key itself. */
export type UpstreamKeySource = 'config' | 'function' | 'env' | 'secrets-file' | 'none';

export type UpstreamKeyFunction = (req: IncomingMessage) => string | undefined | Promise<string | undefined>;

/** Which key a forwarded request spends: the server's, a mapped client's, or the user's own. */
export type KeySource = UpstreamKeySource | `client:${string}` | 'user' | 'custom';

/** How a proxied request ended. */
export type AmpRequestOutcome = 'completed' | 'refused' | 'client-aborted' | 'upstream-error' | 'timeout';

export interface AmpRequestStartEvent {
  readonly type: 'request-start';
  readonly group: AmpGroup;
  readonly method: string;
  /** Path and query relative to the Amp root, credential parameters redacted. */
  readonly path: string;
  /** The id the host's request logger gave the request (pino-http's `req.id`), when it has one. */
  readonly requestId?: string;
}

export interface AmpRequestEndEvent {
  readonly type: 'request-end';
  readonly group: AmpGroup;
  /** The group's policy: a built-in name, or `custom`. */
  readonly policy: string;
  readonly method: string;
  readonly path: string;
  /** The id the host's request logger gave the request (pino-http's `req.id`), when it has one. */
  readonly requestId?: string;
  /** The status sent to the client; `undefined` when no response was sent (the client left first). */
  readonly status: number | undefined;
  readonly durationMs: number;
  /** Bytes written to the client connection for this response, headers included. */
  readonly bytesSent: number;
  /**
   * Bytes read from the client connection for this request, head and body: what the connection
   * read since the previous request traced on it ended (a host's own requests on the same
   * keep-alive connection in between count here too).
   */
  readonly bytesReceived: number;
  /** Which key the request spent: `config`, `function`, `env`, `secrets-file`, `client:<name>`, `user`, `custom`. */
  readonly keySource: KeySource | undefined;
  /**
   * The `name` of the gateway client the request identified itself as, if any: known once its
   * credentials are read, so a refusal by the policy or a limit names it too.
   */
  readonly client: string | undefined;
  /** Provider calls: `upstream`, `mapped:<from>-><to>` or `local:<model>`. */
  readonly route: string | undefined;
  readonly outcome: AmpRequestOutcome;
  /** The error code the gateway answered with, if it answered one. */
  readonly error: AmpErrorCode | undefined;
  /**
   * Why the upstream failed, on `upstream-error` and `timeout`: the system or TLS error code
   * (`ECONNREFUSED`, `ENOTFOUND`, `ETIMEDOUT`, `CERT_HAS_EXPIRED`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
   * …), `timeout`, or `reset` when the upstream cut a response short. Never a message or a key.
   */
  readonly cause?: string | undefined;
}

/**
 * How a WebSocket ended: as a request's outcomes, plus `upstream-refused` when the upstream
 * would not serve it (answered the upgrade without 101, or closed the tunnel with an error code:
 * Amp refused, not the gateway).
 */
export type AmpWebSocketOutcome = AmpRequestOutcome | 'upstream-refused';

/** Only for a tunnel that opened: the upstream answered the upgrade with 101. */
export interface AmpWebSocketOpenEvent {
  readonly type: 'websocket-open';
  readonly group: AmpGroup;
  readonly path: string;
  /** The `name` of the gateway client whose key opened it, if any. */
  readonly client: string | undefined;
  readonly durationMs: undefined;
}

/** Every upgrade the group took on, opened or not, ends with one of these. */
export interface AmpWebSocketCloseEvent {
  readonly type: 'websocket-close';
  readonly group: AmpGroup;
  readonly path: string;
  /** From the upgrade's arrival to the client socket's close. */
  readonly durationMs: number;
  /** The `name` of the gateway client whose key it presented, if any (known once its credentials were read). */
  readonly client: string | undefined;
  /** Bytes the gateway wrote to the client socket after the handshake (the tunnel's frames down). */
  readonly bytesSent: number;
  /** Bytes read from the client socket after the handshake (the tunnel's frames up). */
  readonly bytesReceived: number;
  /** Whether the tunnel opened (a `websocket-open` was emitted for it). */
  readonly opened: boolean;
  /** The upgrade's answer: 101, the upstream's refusal, or the gateway's own; `undefined` when none was sent. */
  readonly status: number | undefined;
  readonly outcome: AmpWebSocketOutcome;
  /** The error code the gateway answered the upgrade with, if it answered one. */
  readonly error: AmpErrorCode | undefined;
  /** Why the upstream could not be reached, on `upstream-error` and `timeout`: as a request's `cause`. */
  readonly cause?: string | undefined;
  /** The close code of the upstream's close frame, when it sent one through the tunnel. */
  readonly upstreamCloseCode?: number | undefined;
  /** That close frame's reason, redacted (`Redactor.text`) and cut short. */
  readonly upstreamCloseReason?: string | undefined;
}

export type AmpWebSocketEvent = AmpWebSocketOpenEvent | AmpWebSocketCloseEvent;

/** Everything the middleware reports to `logger`, `onProxyEvent` and metrics. */
export type AmpProxyEvent = AmpRequestStartEvent | AmpRequestEndEvent | AmpWebSocketEvent;

export type AmpProxyEventListener = (event: AmpProxyEvent) => void;

export type LogMethod = (object: object, message?: string) => void;

/** A pino-style logger: an object first, then a message. pino, bunyan-likes and console-shaped wrappers fit. */
export interface AmpLogger {
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  debug?: LogMethod | undefined;
}

/** What the gateway passes to prom-client's metric constructors. */
interface PromMetricConfig {
  name: string;
  help: string;
  labelNames?: readonly string[];
  registers?: readonly PromRegistryLike[];
}

// The metric constructors are declared as classes (nothing at run time) because a class
// constructor's parameters compare bivariantly, like a method's: prom-client's constructors take
// only its own `Registry` in `registers`, which a structural type that does not import
// prom-client cannot name, so a plain `new (config) => …` type would refuse the real module.
/* eslint-disable @typescript-eslint/no-unused-vars -- only their types are used */
declare class PromCounterLike {
  constructor(config: PromMetricConfig);
  inc(labels: Record<string, string>, value?: number): void;
}

declare class PromGaugeLike {
  constructor(config: PromMetricConfig);
  inc(labels: Record<string, string>): void;
  dec(labels: Record<string, string>): void;
  set(labels: Record<string, string>, value: number): void;
}

declare class PromHistogramLike {
  constructor(config: PromMetricConfig & { buckets?: number[] });
  observe(labels: Record<string, string>, value: number): void;
}
/* eslint-enable @typescript-eslint/no-unused-vars */

/**
 * The part of `prom-client` (15) this uses. The module itself fits, imported as
 * `import * as promClient`, as a default import, or picked apart (`{ Registry, Counter, Gauge,
 * Histogram }`). Taking the module as an argument keeps `prom-client` an optional peer: the
 * library imports neither it nor its types, and the host's own copy (and registry) is used.
 */
export interface PromClientLike {
  Registry: new () => PromRegistryLike;
  Counter: typeof PromCounterLike;
  Gauge: typeof PromGaugeLike;
  Histogram: typeof PromHistogramLike;
}

/** The part of a prom-client registry a metrics endpoint needs. */
export interface PromRegistryLike {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface AmpMetrics {
  /** Pass as `onProxyEvent` (or call from yours). */
  readonly onProxyEvent: AmpProxyEventListener;
  /** The registry the metrics are registered in: the one passed in, or a new one. */
  readonly registry: PromRegistryLike;
}

export interface Redactor {
  /**
   * A path with query string, safe to log: the value of every parameter whose name looks like a
   * credential (see `isSecretName`; names are decoded first, `&` and `;` both separate), and every
   * known secret anywhere in the path or query, masked.
   */
  url(url: string): string;
  /**
   * A copy of `headers` that is safe to log: credential headers (by name, plus `tokenHeader`),
   * cookie values, WebSocket conn params, and every known secret in any other value, masked.
   */
  headers(headers: IncomingHttpHeaders, tokenHeader?: string): Record<string, string>;
  /**
   * Free text from elsewhere (an upstream's WebSocket close reason), safe to log: every known
   * secret and every run of 24 or more key characters masked, cut after 120 code points.
   */
  text(text: string): string;
}

/** Send calls for `from` to `to` instead. */
export interface ModelMapping {
  /** The model name a client asks for; case-insensitive. With `regex`, a regular expression. */
  from: string;
  /** The model to use instead. A thinking suffix of its own (`name(high)`) wins over the request's. */
  to: string;
  /** Treat `from` as a case-insensitive regular expression. Defaults to `false`. */
  regex?: boolean | undefined;
}

/**
 * An Express-style handler that serves a provider call inside the host app; `req.body` holds the
 * parsed JSON body. Declared through a method so that handlers typed with Express's own `Request`
 * and `Response` fit (method parameters are compared bivariantly).
 */
export type LocalProviderHandler = {
  handle(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the parsed body, typed as Express types it
    req: IncomingMessage & { body?: any },
    res: ServerResponse,
    next: (error?: unknown) => void,
  ): unknown;
}['handle'];

/** Returns the handler that serves `model` locally, or `undefined` to send the call upstream. */
export type LocalProvider = (model: string, req: IncomingMessage) => LocalProviderHandler | undefined;

/** The JSON body of every error response. */
/** One problem of a configuration: the option path and what is wrong with it (never a secret). */
export interface AmpConfigProblem {
  readonly option: string;
  readonly problem: string;
}

export interface AmpErrorBody {
  error: AmpErrorCode;
  message: string;
  /** Where the problem was found (a header name, `query`, `path`); never a secret. */
  where?: string;
  /**
   * Why the upstream could not be reached (502, 504): the error code the log line has
   * (`ECONNREFUSED`, `PROXY_407`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `timeout`), never an address.
   */
  cause?: string;
}

/** Settings of the standalone gateway, which the middleware itself does not take. */
export interface AmpGatewaySettings {
  /** Listen port. Defaults to 8317; env `AMP_PROXY_PORT` overrides the file, `--port` both. */
  port: number;
  /** Listen address. Defaults to `127.0.0.1`; env `AMP_PROXY_HOST` overrides the file, `--host` both. */
  host: string;
  /** Where Prometheus metrics are served, when `prom-client` is installed. Defaults to none. */
  metricsPath: string | undefined;
  /**
   * How long a shutdown lets requests and streams finish before it cuts them, in milliseconds.
   * Defaults to 10000; env `AMP_PROXY_DRAIN_MS` overrides the file, `--drain-ms` both.
   */
  drainMs: number;
  /**
   * The audit stream's file (JSON lines, appended), relative to the config file. Defaults to none.
   * Opened at start: a change takes a restart.
   */
  auditLog: string | undefined;
  /**
   * Where the usage report (`middleware.usage()`) is served, to `Authorization: Bearer` with the
   * token in env `AMP_PROXY_USAGE_TOKEN` (required with it). Defaults to none.
   */
  usagePath: string | undefined;
}

/** Gateway settings given on the command line, which win over env and the config file. */
export interface AmpGatewayOverrides {
  /** `--port`: a number, or the text given on the command line. */
  port?: number | string | undefined;
  /** `--host`. */
  host?: string | undefined;
  /** `--drain-ms`: a number, or the text given on the command line. */
  drainMs?: number | string | undefined;
}

/**
 * The options as the resolver resolved them, for people to read: every default applied, every
 * secret cut to its first characters, code given as an option shown as `'custom'`. One entry per
 * option: an option added to `AmpProxyOptions` does not compile until it is described here.
 */
export interface AmpEffectiveOptions extends Record<keyof AmpProxyOptions, unknown> {
  upstream: string;
  /** The server key the middleware spends, redacted; `'custom'` for a function; `null` when there is none. */
  upstreamKey: string | null;
  clients: { name: string | null; key: string; upstreamKey: string | null }[];
  /** Where gateway keys are looked up when `clients` is a directory (`sqlite /path/keys.db`, `resolver`), else `null`. */
  clientDirectory: string | null;
  /** The limits in force, with the store named (`memory` or `redis`), or `null`. */
  limits: {
    perClient: AmpLimitSet | null;
    perTeam: AmpLimitSet | null;
    store: 'memory' | 'redis';
    onStoreError: 'closed' | 'open';
  } | null;
  policies: Record<AmpGroup, AmpPolicyName | 'custom'>;
  tokenHeader: string;
  timeoutMs: number;
  secretsFile: string;
  /**
   * `direct`, or the proxy's scheme, host and port (never its credentials), and why:
   * `http://proxy:3128 (from HTTPS_PROXY)`.
   */
  upstreamProxy: string;
  /**
   * How many certificates from where, each with its subject and the start of its SHA-256
   * fingerprint; `null` when none.
   */
  upstreamCa: string | null;
  restrictManagementToLocalhost: boolean;
  trustedProxies: string[];
  /** `null`: every host. */
  hosts: string[] | null;
  logger: 'custom' | null;
  onProxyEvent: 'custom' | null;
  usage: boolean;
  audit: 'custom' | null;
  modelMappings: { from: string; to: string; regex: boolean }[];
  localProvider: 'custom' | null;
  forceModelMappings: boolean;
  maxBodyBytes: number;
  /** The actor token added to tokenless actor requests, redacted; `null` when none is. */
  actorToken: string | null;
  /** `null`: taken from each request. */
  publicUrl: string | null;
  /** `false`, `true` (the provider the upstream names) or the provider's URL. */
  identityProxy: boolean | string;
  forwardCookies: Record<AmpGroup, boolean>;
  /** Per group, `all` merged in, lower case. */
  dropHeaders: Record<AmpGroup, string[]>;
}

export interface LoadedAmpConfig {
  /** Options for `ampRouter`, validated, with secret references resolved and env overrides applied. */
  options: AmpProxyOptions;
  gateway: AmpGatewaySettings;
  /** The file the configuration came from; `undefined` when none was found (defaults apply). */
  filepath: string | undefined;
  /**
   * The files a change to which calls for a reload: the config file, every secret file it
   * references, and the Amp CLI secrets file when no option names the server key.
   */
  watchFiles: string[];
  /** Where the server key comes from, for humans: never the key itself. */
  upstreamKeyOrigin: string;
  /** What the resolver made of `options`, secrets redacted: what `amp-proxy --print-config` shows. */
  effective: AmpEffectiveOptions;
}

export interface LoadAmpConfigOptions {
  /** Where the search starts. Defaults to `process.cwd()`. */
  cwd?: string | undefined;
  /** Load this file instead of searching. */
  configFile?: string | undefined;
  /** The environment to read overrides from. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv | undefined;
  /** Gateway settings from the command line (`--port`, `--host`); they win over env and the file. */
  overrides?: AmpGatewayOverrides | undefined;
  /**
   * A file holding the server key (`--upstream-key-file`), relative to `cwd`: wins over
   * `AMP_PROXY_UPSTREAM_KEY` and the config file's `upstreamKey`, and is watched for a rotation.
   */
  upstreamKeyFile?: string | undefined;
}

export interface AttachUpgradeOptions {
  /** The path the middleware is mounted under in the host app, such as `/amp`. Defaults to none. */
  prefix?: string | undefined;
}

/**
 * Every error the middleware answers with (see `AMP_ERRORS` for each one's status and message).
 * The code is the stable contract: clients and dashboards match on it.
 */
export type AmpErrorCode =
  | 'amp_bad_request'
  | 'amp_method_not_allowed'
  | 'amp_gateway_key_misplaced'
  | 'amp_websocket_not_attached'
  | 'amp_bad_path'
  | 'amp_client_unauthorized'
  | 'amp_localhost_only'
  | 'amp_preflight_forbidden'
  | 'amp_body_too_large'
  | 'amp_body_too_compressed'
  | 'amp_body_too_complex'
  | 'amp_body_ambiguous'
  | 'amp_uri_too_long'
  | 'amp_token_required'
  | 'amp_upstream_key_conflict'
  | 'amp_upstream_key_missing'
  | 'amp_identity_provider_unknown'
  | 'amp_directory_unavailable'
  | 'amp_rate_limited'
  | 'amp_session_limit'
  | 'amp_limits_unavailable'
  | 'amp_body_unavailable'
  | 'amp_local_provider_error'
  | 'amp_policy_error'
  | 'amp_factory_not_called'
  | 'amp_internal_error'
  | 'amp_upstream_proxy_error'
  | 'amp_upstream_timeout';

/**
 * The type of the factories' rest parameter, which no value has: it makes `app.use(ampRouter)`
 * (the factory itself, not the middleware it returns) a type error in both Express majors, and
 * its name, shown in that error, says what to write. At run time the
 * middleware answers `500 amp_factory_not_called`.
 */
export interface WriteAppUseAmpRouterWithParentheses {
  readonly 'app.use(ampRouter) passes the factory: write app.use(ampRouter()) to pass the middleware': never;
}
