import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { readCredentials, type PresentedCredentials } from '../auth/credentials.js';
import type { ResolvedConfig } from '../config/resolve-options.js';
import { DirectoryUnavailable } from '../directory/client-cache.js';
import { ClientDirectory } from '../directory/client-directory.js';
import { isAnswered, Refusal, rejectUpgrade, sendAmpError } from '../errors.js';
import {
  createPolicy,
  createServerKeyStage,
  type Forward,
  type ForwardingPolicyName,
  type Policy,
  type ServerKeyStage,
} from '../policy/policies.js';
import { createRequestGate, type RequestGate } from '../access/request-gate.js';
import type { Limiter } from '../limits/limiter.js';
import { closeWithPolicyViolation, sendLimitRefusal } from '../limits/refusals.js';
import {
  containedTracer,
  createTracer,
  type RequestTrace,
  type Tracer,
  type TunnelTrace,
} from '../observability/events.js';
import { rewriteLocalResponse } from '../provider/local-response.js';
import {
  routeProviderCall,
  type ProviderRoute,
  type ProviderRoutingConfig,
} from '../provider/provider-routing.js';
import type { RewriteSpec } from '../provider/response-rewriter.js';
import type { GroupProxy } from '../proxy/group-proxy.js';
import { destinationOf, OutboundRequest, type Destination } from '../proxy/outbound-request.js';
import type { HeldBody } from '../http/held-body.js';
import { recoverConsumedBody } from '../proxy/request-body.js';
import {
  announcesBody,
  framingOf,
  type OutboundBody,
  type RequestFraming,
} from '../proxy/request-framing.js';
import type { UpstreamHeaderBuilder } from '../proxy/upstream-headers.js';
import type { ActorTokenStage } from '../actors/actor-token.js';
import { rewriteActorMetadata } from '../actors/metadata-reply.js';
import type { PublicBaseOf } from '../access/public-base.js';
import type { ReplyRewrite } from '../proxy/json-reply.js';
import { hasPublicRoutes, publicRouteOf, type PublicRoute } from '../routing/public-routes.js';
import { createsThread, ROUTE_GROUPS } from '../routing/route-groups.js';
import type { IdentityProxy } from '../identity/identity-proxy.js';
import type { AmpCustomPolicy, AmpGroup } from '../types.js';

/**
 * Serves one route group. Requests go through named stages — framing, admission (gate and
 * credentials), policy, provider route, server key, outbound request, proxy — each taking what
 * the one before returned; a stage that stops the request returns a `Refusal`.
 */
export interface GroupHandler {
  http(req: IncomingMessage, res: ServerResponse, ampPath: string, query: string): void;
  /** Absent for groups whose routes never upgrade (browser pages). */
  readonly upgrade?: (
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    ampPath: string,
    query: string,
  ) => void;
}

const NO_BODY: OutboundBody = { kind: 'none' };
const EMPTY_BODY: OutboundBody = { kind: 'bytes', chunks: [] };
const AS_RECEIVED: ProviderRoute = { kind: 'upstream', body: undefined };
const NO_BODY_TO_SEND: BodyToSend = { body: NO_BODY, decoded: false };
/** What every policy decides for a public route: forwarded, carrying no credential at all. */
const CARRY_NO_CREDENTIAL: Forward = {
  kind: 'forward',
  headers: {},
  query: 'all-credentials',
  keySource: undefined,
};

interface BodyToSend {
  readonly body: OutboundBody;
  /** The body is not the client's encoded bytes, so `Content-Encoding` must go. */
  readonly decoded: boolean;
}

function withQuery(pathname: string, query: string): string {
  return query === '' ? pathname : `${pathname}?${query}`;
}

/** Hands a provider call to the host's handler; its response gets the requested model back. */
function serveLocally(
  req: IncomingMessage,
  res: ServerResponse,
  route: Extract<ProviderRoute, { kind: 'local' }>,
  answer: (refusal: Refusal) => void,
): void {
  rewriteLocalResponse(res, route.rewrite);
  // A local handler must answer; handing the call back (next) or failing is an error.
  const fail = (): void => answer(new Refusal('amp_local_provider_error'));
  try {
    const result: unknown = route.handler(req, res, fail);
    if (result instanceof Promise) result.catch(fail);
  } catch {
    fail();
  }
}

/**
 * What goes upstream as the body: what the gateway holds, nothing, the client's stream under its
 * own framing, or — when a host parser read the stream — the body rebuilt from `req.body`.
 */
function bodyToSend(
  req: IncomingMessage,
  framing: RequestFraming,
  held: HeldBody | undefined,
): BodyToSend | Refusal {
  if (held) return { body: { kind: 'bytes', chunks: held.chunks }, decoded: !held.asReceived };
  if (framing.kind === 'none') return { body: NO_BODY, decoded: false };
  if (framing.kind === 'length' && framing.length === 0) return { body: EMPTY_BODY, decoded: false };
  if (!req.readableEnded) return { body: { kind: 'stream', source: req, framing }, decoded: false };
  const recovered = recoverConsumedBody(req);
  if (recovered === 'unavailable') return new Refusal('amp_body_unavailable');
  return { body: { kind: 'bytes', chunks: recovered.chunks }, decoded: true };
}

/** A group with the `redirect` policy (browser pages only): refused, or sent to the upstream itself. */
function createRedirectHandler(
  admission: Admission,
  tracer: Tracer | undefined,
  upstreamBase: string,
): GroupHandler {
  // Async only to be its own error boundary, as the forwarding pipeline's `http` is.
  const redirect = async (
    req: IncomingMessage,
    res: ServerResponse,
    ampPath: string,
    query: string,
    answer: Answer,
  ) => {
    answer.trace = tracer?.request(req, res, withQuery(ampPath, query));
    const admitted = admission.admit(req, ampPath, query);
    const credentials = admitted instanceof Promise ? await admitted : admitted;
    if (credentials instanceof Refusal) return answer.refuse(credentials);
    const location = upstreamBase + withQuery(ampPath, credentials.upstreamQuery('all-credentials'));
    res.writeHead(302, { location, 'content-length': 0 });
    res.end();
  };
  return {
    http(req, res, ampPath, query) {
      const answer = new Answer(res, ampPath);
      redirect(req, res, ampPath, query, answer).catch(() =>
        answer.refuse(new Refusal('amp_internal_error')),
      );
    },
  };
}

/**
 * Answers a refused request, telling its trace why. The trace is set by the stage that starts it,
 * inside the error boundary, and attaches its `close` listener before any asynchronous step, so
 * no ending of the request can be missed. A limit's refusal takes the shape the Amp CLI shows
 * for the route.
 */
class Answer {
  trace: RequestTrace | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly ampPath: string,
  ) {}

  readonly refuse = (refusal: Refusal): void => {
    this.trace?.answered(refusal.code);
    const { limited } = refusal;
    if (limited) sendLimitRefusal(this.res, this.ampPath, refusal.code, limited.retryAfterSeconds);
    else sendAmpError(this.res, refusal.code, refusal.where);
  };
}

/** Admission: who may use the group at all, and what credentials the request presents. */
class Admission {
  readonly #gate: RequestGate | undefined;

  constructor(
    group: AmpGroup,
    private readonly config: ResolvedConfig,
  ) {
    this.#gate = createRequestGate(group, {
      restrictToLocalhost: config.restrictToLocalhost,
      trustedProxies: config.trustedProxies,
    });
  }

  /** Synchronous for a list of clients; a directory's lookup is the one asynchronous step. */
  admit(
    req: IncomingMessage,
    ampPath: string,
    query: string,
  ): PresentedCredentials | Refusal | Promise<PresentedCredentials | Refusal> {
    const refused = this.#gate?.(req);
    if (refused) return new Refusal(refused);
    const { tokenHeader, clients } = this.config;
    if (clients instanceof ClientDirectory) {
      const presented = clients.present(req.headers, ampPath, query, tokenHeader);
      if (!(presented instanceof Promise)) return refuseMisplaced(presented);
      return presented.then(refuseMisplaced, (error) => {
        // Fails closed: a key that cannot be checked lets nothing through.
        if (error instanceof DirectoryUnavailable) return new Refusal('amp_directory_unavailable');
        throw error;
      });
    }
    return refuseMisplaced(readCredentials(req.headers, ampPath, query, tokenHeader, clients));
  }
}

function refuseMisplaced(credentials: PresentedCredentials): PresentedCredentials | Refusal {
  if (credentials.misplacedGatewayKey !== undefined) {
    return new Refusal('amp_gateway_key_misplaced', credentials.misplacedGatewayKey);
  }
  return credentials;
}

/** The stages of a group whose policy forwards, precomputed from the options once. */
class ForwardingPipeline implements GroupHandler {
  readonly #policy: Policy;
  readonly #spendServerKey: ServerKeyStage;
  readonly #routing: ProviderRoutingConfig | undefined;
  readonly #destination: Destination;
  readonly #addActorToken: ActorTokenStage | undefined;
  readonly #publicBase: PublicBaseOf;
  readonly #identity: IdentityProxy | undefined;
  readonly #routesPublic: boolean;
  readonly #group: AmpGroup;
  readonly upgrade: GroupHandler['upgrade'];

  constructor(
    group: AmpGroup,
    policySpec: ForwardingPolicyName | AmpCustomPolicy,
    config: ResolvedConfig,
    private readonly admission: Admission,
    private readonly tracer: Tracer | undefined,
    private readonly proxy: GroupProxy,
    private readonly buildHeaders: UpstreamHeaderBuilder,
    private readonly limiter: Limiter | undefined,
  ) {
    this.#group = group;
    const { clients } = config;
    const recogniser = clients instanceof ClientDirectory ? clients.recogniser : clients;
    const dependencies = { group, clients: recogniser, serverKey: config.serverKey };
    this.#policy = createPolicy(policySpec, dependencies);
    this.#spendServerKey = createServerKeyStage(dependencies);
    this.#routing = group === 'provider' ? config.providerRouting : undefined;
    this.#addActorToken = group === 'actors' ? config.actorToken : undefined;
    this.#publicBase = config.publicBase;
    this.#identity = group === 'management' ? config.identity : undefined;
    this.#routesPublic = hasPublicRoutes(group);
    this.#destination = destinationOf(config.upstreamBase, config.timeoutMs, config.upstreamConnection);
    this.upgrade = ROUTE_GROUPS[group].upgrades ? this.#upgrade : undefined;
  }

  http(req: IncomingMessage, res: ServerResponse, ampPath: string, query: string): void {
    const answer = new Answer(res, ampPath);
    // The one error boundary: whatever tracing, a stage or host code does, the client gets an
    // answer (or a cut connection once a response started) and nothing reaches the host as an
    // error.
    this.#serve(req, res, ampPath, query, answer).then(
      (refusal) => refusal && answer.refuse(refusal),
      () => answer.refuse(new Refusal('amp_internal_error')),
    );
  }

  readonly #upgrade = (
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    ampPath: string,
    query: string,
  ) => {
    const trace = this.tracer?.tunnel(socket, withQuery(ampPath, query));
    const refuse = (refusal: Refusal): void => {
      if (isAnswered(socket)) return trace?.abandoned();
      trace?.rejected(refusal.code);
      // A limit closes an accepted WebSocket with 1008, which the CLI reports rather than retries.
      if (refusal.limited && refusal.code !== 'amp_limits_unavailable')
        closeWithPolicyViolation(req, socket, refusal.code);
      else rejectUpgrade(socket, refusal.code, refusal.where);
    };
    this.#tunnel(req, socket, head, ampPath, query, trace).then(
      (refusal) => refusal && refuse(refusal),
      () => refuse(new Refusal('amp_internal_error')),
    );
  };

  /** Policy: forward with which credentials, spend the server key, or refuse. */
  async #applyPolicy(req: IncomingMessage, credentials: PresentedCredentials) {
    try {
      return await this.#policy(req, credentials);
    } catch {
      return new Refusal('amp_policy_error');
    }
  }

  /** Server key: run only for calls that go upstream, since a local provider spends none. */
  async #resolveServerKey(req: IncomingMessage): Promise<Forward | Refusal> {
    try {
      return await this.#spendServerKey(req);
    } catch {
      // A throwing `upstreamKey` function is the host's policy code failing.
      return new Refusal('amp_policy_error');
    }
  }

  /** Admission, then the policy's decision, or none for a public route: it carries no credential. */
  async #authorise(
    req: IncomingMessage,
    ampPath: string,
    query: string,
    trace: Pick<RequestTrace, 'identified'> | undefined,
    publicRoute?: PublicRoute,
  ) {
    const admitted = this.admission.admit(req, ampPath, query);
    const credentials = admitted instanceof Promise ? await admitted : admitted;
    if (credentials instanceof Refusal) return credentials;
    trace?.identified(credentials.client?.name);
    const decision = publicRoute ? CARRY_NO_CREDENTIAL : await this.#applyPolicy(req, credentials);
    if (decision instanceof Refusal) return decision;
    if (this.limiter) {
      const counted = this.limiter.admit(this.#group, credentials.client, createsThread(req.method, ampPath));
      const limited = counted instanceof Promise ? await counted : counted;
      if (limited) return new Refusal(limited.code, undefined, limited);
    }
    return { credentials, decision };
  }

  #outboundRequest(
    req: IncomingMessage,
    res: ServerResponse | undefined,
    forward: Forward,
    credentials: PresentedCredentials,
    path: string,
    { body, decoded }: BodyToSend,
    rewrite: RewriteSpec | undefined,
    trace: RequestTrace | undefined,
    reply?: ReplyRewrite,
    destination: Destination = this.#destination,
    tunnel?: TunnelTrace,
  ): OutboundRequest {
    const isUpgrade = !res;
    const headers = this.buildHeaders(req.headers, forward.headers, { isUpgrade, decodedBody: decoded });
    let query = credentials.upstreamQuery(forward.query);
    if (this.#addActorToken) query = this.#addActorToken(req.headers, query, headers, isUpgrade);
    return new OutboundRequest({
      client: req,
      response: res,
      method: req.method ?? 'GET',
      url: withQuery(path, query),
      headers,
      body,
      destination,
      rewrite,
      reply,
      trace,
      tunnel,
    });
  }

  /** What a public route's reply must say instead, so that the client stays on the gateway. */
  #replyRewrite(req: IncomingMessage, publicRoute: PublicRoute | undefined): ReplyRewrite | undefined {
    if (publicRoute === 'actor-metadata') {
      return rewriteActorMetadata(this.#publicBase(req), this.#destination.upstreamBase);
    }
    if (publicRoute === 'oauth-config') return this.#identity?.rewriteOAuthConfig(this.#publicBase(req));
    return undefined;
  }

  async #serve(
    req: IncomingMessage,
    res: ServerResponse,
    ampPath: string,
    query: string,
    answer: Answer,
  ): Promise<Refusal | undefined> {
    const trace = (answer.trace = this.tracer?.request(req, res, withQuery(ampPath, query)));
    const framing = framingOf(req);
    if (!framing) return new Refusal('amp_bad_request');
    const publicRoute = this.#routesPublic
      ? publicRouteOf(req.method, ampPath, this.#identity !== undefined)
      : undefined;
    const authorised = await this.#authorise(req, ampPath, query, trace, publicRoute);
    if (authorised instanceof Refusal) return authorised;
    const { credentials, decision } = authorised;
    const identityProvider = publicRoute === 'identity' ? await this.#identity?.provider() : undefined;
    if (publicRoute === 'identity' && !identityProvider) return new Refusal('amp_identity_provider_unknown');

    const route = this.#routing ? await routeProviderCall(req, ampPath, this.#routing) : AS_RECEIVED;
    if (route.kind === 'refused') {
      // The rest of a body too large is never read, so the connection cannot carry another request.
      if (route.error === 'amp_body_too_large') res.shouldKeepAlive = false;
      return new Refusal(route.error);
    }
    if (route.kind === 'local') {
      trace?.routed(`local:${route.model}`);
      serveLocally(req, res, route, answer.refuse);
      return undefined;
    }

    const forward = decision.kind === 'spend-server-key' ? await this.#resolveServerKey(req) : decision;
    if (forward instanceof Refusal) return forward;
    const body = bodyToSend(req, framing, route.body);
    if (body instanceof Refusal) return body;
    // A client that left while a stage awaited must not start a call that bills upstream.
    if (res.destroyed) return undefined;
    if (this.#routing)
      trace?.routed(route.kind === 'mapped' ? `mapped:${route.from}->${route.to}` : 'upstream');
    trace?.keySpent(forward.keySource, credentials.client?.name);
    const mapped = route.kind === 'mapped' ? route : undefined;
    const path = mapped?.path ?? (identityProvider ? this.#identity!.providerPath(ampPath) : ampPath);
    const reply = this.#replyRewrite(req, publicRoute);
    const outbound = this.#outboundRequest(
      req,
      res,
      forward,
      credentials,
      path,
      body,
      mapped?.rewrite,
      trace,
      reply,
      identityProvider,
    );
    this.proxy.web(outbound, res);
    return undefined;
  }

  async #tunnel(
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    ampPath: string,
    query: string,
    trace: TunnelTrace | undefined,
  ): Promise<Refusal | undefined> {
    if (announcesBody(req)) return new Refusal('amp_bad_request');
    const authorised = await this.#authorise(req, ampPath, query, trace);
    if (authorised instanceof Refusal) return authorised;
    const { credentials, decision } = authorised;
    const forward = decision.kind === 'spend-server-key' ? await this.#resolveServerKey(req) : decision;
    if (forward instanceof Refusal) return forward;
    if (this.limiter) {
      const session = await this.limiter.openSession(credentials.client);
      if ('code' in session) return new Refusal(session.code, undefined, session);
      if (socket.destroyed) session.release();
      else socket.once('close', session.release);
    }
    // Another upgrade listener may have answered the socket while the stages awaited; an
    // upstream tunnel for it would carry the user's credentials to a socket nobody reads.
    if (isAnswered(socket)) {
      trace?.abandoned();
      return undefined;
    }
    const request = this.#outboundRequest(
      req,
      undefined,
      forward,
      credentials,
      ampPath,
      NO_BODY_TO_SEND,
      undefined,
      undefined,
      undefined,
      undefined,
      trace,
    );
    this.proxy.upgrade(request, socket, head);
    return undefined;
  }
}

export function createGroupHandler(
  group: AmpGroup,
  config: ResolvedConfig,
  proxy: GroupProxy,
  buildHeaders: UpstreamHeaderBuilder,
  limiter?: Limiter,
): GroupHandler {
  const policySpec = config.policies[group];
  const tracer = config.emit
    ? containedTracer(
        createTracer(
          group,
          typeof policySpec === 'function' ? 'custom' : policySpec,
          config.emit,
          config.redactor,
        ),
        config.warn,
      )
    : undefined;
  const admission = new Admission(group, config);
  if (policySpec === 'redirect') return createRedirectHandler(admission, tracer, config.upstreamBase);
  return new ForwardingPipeline(group, policySpec, config, admission, tracer, proxy, buildHeaders, limiter);
}
