import type { IncomingMessage } from 'node:http';
import type { AmpGroup } from './routing/route-groups.js';
import type { UpstreamKeyFunction } from './auth/upstream-key.js';
import type { AmpProxyEventListener } from './observability/events.js';
import type { AmpLogger } from './observability/logger.js';
import type { ModelMapping } from './provider/model-mappings.js';
import type { LocalProvider } from './provider/provider-routing.js';

/** A gateway key that the host hands to one of its users. */
export interface AmpClient {
  /**
   * The key the user's Amp CLI sends (as `AMP_API_KEY`). Must be unique and made of A-Z, a-z,
   * 0-9, `_` and `-` only, so that the gateway recognises it wherever it appears; make it long
   * and random (a common word as a key would be found in ordinary requests).
   */
  key: string;
  /** A label for logs. Defaults to none. */
  name?: string;
  /**
   * This user's own Amp key. Defaults to none: `inject` routes then spend the server key, and
   * `passthrough`/`dual-token` routes need the user's own token on the request.
   */
  upstreamKey?: string;
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
  readonly userToken: string | undefined;
  /** The `tokenHeader` value, unless it is a gateway key. */
  readonly ampToken: string | undefined;
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
  headers?: Record<string, string | null>;
  /** Refuse the request with this error instead of forwarding it. */
  reject?: 'amp_client_unauthorized' | 'amp_token_required';
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
  provider?: Exclude<AmpPolicy, 'redirect'>;
  /** Every other `/api/**` path. Defaults to `'passthrough'`. */
  management?: Exclude<AmpPolicy, 'redirect'>;
  /** `/actors/**`. Defaults to `'passthrough'`. */
  actors?: Exclude<AmpPolicy, 'redirect'>;
  /**
   * Browser pages (`/auth`, `/threads`, `/docs`, `/settings`, their sub-paths, `/threads.rss`,
   * `/news.rss`). Defaults to `'passthrough'`. `'inject'` is refused: these pages never carry
   * the server key.
   */
  browser?: Exclude<AmpPolicy, 'inject'>;
}

export interface AmpProxyOptions {
  /** The Amp server. A path in it is a prefix for every forwarded path. Defaults to `https://ampcode.com`. */
  upstream?: string;
  /**
   * The server-side Amp key that `inject` routes spend: a string, or a function of the request.
   * Defaults to env `AMP_API_KEY`, then the Amp CLI's secrets file (entry `apiKey@<upstream>`),
   * re-read at most every 30 s.
   */
  upstreamKey?: string | UpstreamKeyFunction;
  /** Gateway keys handed to users. Defaults to none: `inject` routes then accept any caller. */
  clients?: readonly AmpClient[];
  /** The auth-header policy of each group. Defaults to `inject` for provider, `passthrough` elsewhere. */
  policies?: AmpPolicies;
  /** The header that carries the user's Amp token under `dual-token`. Defaults to `x-amp-token`. */
  tokenHeader?: string;
  /**
   * How long the upstream may stay silent (before answering, or between two chunks of a stream)
   * before the request fails with `504 amp_upstream_timeout`. Defaults to 600000 (10 minutes).
   */
  timeoutMs?: number;
  /** The Amp CLI secrets file read when `upstreamKey` is not set. Defaults to `~/.local/share/amp/secrets.json`. */
  secretsFile?: string;
  /**
   * Answer `403 amp_localhost_only` on the management, actors and browser groups to clients that
   * are not on this machine (127.0.0.0/8, ::1), judged by the TCP peer address. Defaults to `false`.
   */
  restrictManagementToLocalhost?: boolean;
  /**
   * Addresses or CIDR ranges of reverse proxies in front of the gateway. Only when the TCP peer is
   * one of them is `X-Forwarded-For` consulted to find the client's address. Defaults to none.
   */
  trustedProxies?: readonly string[];
  /**
   * A pino-style logger (`info`/`warn`/`error`/`debug`, object first). It gets one line per
   * finished request and WebSocket, with group, policy, method, redacted path, status, duration,
   * bytes, key source and outcome. Defaults to none: the middleware logs nothing.
   */
  logger?: AmpLogger;
  /** Called with every request and WebSocket event, for hosts that do their own accounting. Defaults to none. */
  onProxyEvent?: AmpProxyEventListener;
  /**
   * Provider group: send calls for one model as calls for another. Exact rules (case-insensitive)
   * win over `regex` rules, which are tried in order. Responses name the requested model again.
   * Defaults to none.
   */
  modelMappings?: readonly ModelMapping[];
  /**
   * Provider group: return an Express-style handler to serve a call for `model` inside the host
   * app, or `undefined` to send it upstream. The handler finds the parsed body in `req.body`.
   * Defaults to none.
   */
  localProvider?: LocalProvider;
  /**
   * Apply `modelMappings` before asking `localProvider` about the requested model. Defaults to
   * `false`: a model served locally is served as requested, and mappings apply to the rest.
   */
  forceModelMappings?: boolean;
  /**
   * The largest request body read to find a provider call's model (only when `modelMappings` or
   * `localProvider` is set); larger ones get `413 amp_body_too_large`. Defaults to 33554432 (32 MiB).
   */
  maxBodyBytes?: number;
}
