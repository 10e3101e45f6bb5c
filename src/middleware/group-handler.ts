import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { readCredentials, type PresentedCredentials } from '../auth/credentials.js';
import type { ResolvedConfig } from '../config/resolve-options.js';
import { rejectUpgrade, sendAmpError, type AmpErrorCode } from '../errors.js';
import { createPolicy, type PolicyDecision } from '../policy/policies.js';
import { createRequestGate } from '../access/request-gate.js';
import { createTracer, type RequestTrace } from '../observability/events.js';
import { rewriteLocalResponse } from '../provider/local-response.js';
import { routeProviderCall, type ProviderRoute } from '../provider/provider-routing.js';
import type { RewriteSpec } from '../provider/response-rewriter.js';
import type { GroupProxy } from '../proxy/group-proxy.js';
import { OutboundRequest, type Destination } from '../proxy/outbound-request.js';
import { recoverConsumedBody, type HeldBody } from '../proxy/request-body.js';
import {
  announcesBody,
  framingOf,
  type OutboundBody,
  type RequestFraming,
} from '../proxy/request-framing.js';
import type { UpstreamHeaderBuilder } from '../proxy/upstream-headers.js';
import type { AmpGroup } from '../routing/route-groups.js';

/** Serves one route group: gate, framing, credentials, policy, provider route, outbound request, proxy. */
export interface GroupHandler {
  http(req: IncomingMessage, res: ServerResponse, ampPath: string, query: string): void;
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, ampPath: string, query: string): void;
}

type Forward = Extract<PolicyDecision, { kind: 'forward' }>;

/** Why a stage stopped the request: answered with `code`, `where` naming the place (never a secret). */
class Refusal {
  constructor(
    readonly code: AmpErrorCode,
    readonly where?: string,
  ) {}
}

const NO_BODY: OutboundBody = { kind: 'none' };
const EMPTY_BODY: OutboundBody = { kind: 'bytes', bytes: Buffer.alloc(0) };

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
): { body: OutboundBody; decoded: boolean } | Refusal {
  if (held) return { body: { kind: 'bytes', bytes: held.bytes }, decoded: !held.asReceived };
  if (framing.kind === 'none') return { body: NO_BODY, decoded: false };
  if (framing.kind === 'length' && framing.length === 0) return { body: EMPTY_BODY, decoded: false };
  if (!req.readableEnded) return { body: { kind: 'stream', source: req, framing }, decoded: false };
  const recovered = recoverConsumedBody(req);
  if (recovered === 'unavailable') return new Refusal('amp_body_unavailable');
  return { body: { kind: 'bytes', bytes: recovered.bytes }, decoded: true };
}

export function createGroupHandler(
  group: AmpGroup,
  config: ResolvedConfig,
  proxy: GroupProxy,
  buildHeaders: UpstreamHeaderBuilder,
): GroupHandler {
  const policy = createPolicy(config.policies[group], {
    group,
    clients: config.clients,
    serverKey: config.serverKey,
  });
  const gate = createRequestGate(group, {
    restrictToLocalhost: config.restrictToLocalhost,
    trustedProxies: config.trustedProxies,
  });
  const routing = group === 'provider' ? config.providerRouting : undefined;
  const destination: Destination = {
    upstreamBase: config.upstreamBase,
    protocol: new URL(config.upstreamBase).protocol as Destination['protocol'],
    timeoutMs: config.timeoutMs,
  };
  const policySpec = config.policies[group];
  const tracer = config.emit
    ? createTracer(
        group,
        typeof policySpec === 'function' ? 'custom' : policySpec,
        config.emit,
        config.redactor.url,
      )
    : undefined;

  /** Stages shared by requests and upgrades: who may ask, what they presented, what the policy says. */
  async function authorise(
    req: IncomingMessage,
    ampPath: string,
    query: string,
  ): Promise<{ decision: PolicyDecision; credentials: PresentedCredentials } | Refusal> {
    const refused = gate?.(req);
    if (refused) return new Refusal(refused);
    const credentials = readCredentials(req.headers, ampPath, query, config.tokenHeader, config.clients);
    if (credentials.misplacedGatewayKey !== undefined) {
      return new Refusal('amp_gateway_key_misplaced', credentials.misplacedGatewayKey);
    }
    try {
      return { decision: await policy(req, credentials), credentials };
    } catch {
      return new Refusal('amp_policy_error');
    }
  }

  function outbound(
    req: IncomingMessage,
    res: ServerResponse | undefined,
    forward: Forward,
    credentials: PresentedCredentials,
    path: string,
    body: { body: OutboundBody; decoded: boolean },
    rewrite: RewriteSpec | undefined,
    trace: RequestTrace | undefined,
  ): OutboundRequest {
    return new OutboundRequest({
      client: req,
      response: res,
      method: req.method ?? 'GET',
      url: withQuery(path, credentials.upstreamQuery(forward.query)),
      headers: buildHeaders(req.headers, forward.headers, { isUpgrade: !res, decodedBody: body.decoded }),
      body: body.body,
      destination,
      rewrite,
      trace,
    });
  }

  async function serve(
    req: IncomingMessage,
    res: ServerResponse,
    ampPath: string,
    query: string,
    trace: RequestTrace | undefined,
    answer: (refusal: Refusal) => void,
  ): Promise<Refusal | undefined> {
    const framing = framingOf(req);
    if (!framing) return new Refusal('amp_bad_request');
    const authorised = await authorise(req, ampPath, query);
    if (authorised instanceof Refusal) return authorised;
    const { decision, credentials } = authorised;
    if (decision.kind === 'redirect') {
      const location = config.upstreamBase + withQuery(ampPath, credentials.upstreamQuery('all-credentials'));
      res.writeHead(302, { location, 'content-length': 0 });
      res.end();
      return undefined;
    }
    // A call served by a local provider spends no key, so a missing one matters only upstream.
    const keyMissing = decision.kind === 'reject' && decision.code === 'amp_upstream_key_missing';
    if (decision.kind === 'reject' && !(routing && keyMissing)) return new Refusal(decision.code);

    let route: ProviderRoute = { kind: 'upstream', body: undefined };
    if (routing) route = await routeProviderCall(req, ampPath, routing);
    if (route.kind === 'too-large') {
      // The rest of the body is never read, so the connection cannot carry another request.
      res.shouldKeepAlive = false;
      return new Refusal('amp_body_too_large');
    }
    if (route.kind === 'local') {
      trace?.routed(`local:${route.model}`);
      serveLocally(req, res, route, answer);
      return undefined;
    }
    if (decision.kind !== 'forward') return new Refusal(decision.code);
    const body = bodyToSend(req, framing, route.body);
    if (body instanceof Refusal) return body;
    if (routing) trace?.routed(route.kind === 'mapped' ? `mapped:${route.from}->${route.to}` : 'upstream');
    trace?.keySpent(decision.keySource, credentials.client?.name);
    // A client that left while a stage awaited must not start a call that bills upstream.
    if (res.destroyed) return undefined;
    const path = route.kind === 'mapped' ? route.path : ampPath;
    const rewrite = route.kind === 'mapped' ? route.rewrite : undefined;
    proxy.web(outbound(req, res, decision, credentials, path, body, rewrite, trace), res);
    return undefined;
  }

  return {
    http(req, res, ampPath, query) {
      // Attached before any asynchronous step, so no ending of the request can be missed.
      const trace = tracer?.request(req, res, withQuery(ampPath, query));
      const answer = (refusal: Refusal): void => {
        trace?.answered(refusal.code);
        sendAmpError(res, refusal.code, refusal.where);
      };
      // The one error boundary: whatever a stage or host code does, the client gets an answer
      // (or a cut connection once a response started) and nothing reaches the host as an error.
      serve(req, res, ampPath, query, trace, answer).then(
        (refusal) => refusal && answer(refusal),
        () => answer(new Refusal('amp_internal_error')),
      );
    },

    upgrade(req, socket, head, ampPath, query) {
      const refuse = (refusal: Refusal): void => rejectUpgrade(socket, refusal.code, refusal.where);
      if (announcesBody(req)) return refuse(new Refusal('amp_bad_request'));
      authorise(req, ampPath, query).then(
        (authorised) => {
          if (authorised instanceof Refusal) return refuse(authorised);
          const { decision, credentials } = authorised;
          // Upgradable groups do not allow the redirect policy.
          if (decision.kind !== 'forward')
            return refuse(new Refusal(decision.kind === 'reject' ? decision.code : 'amp_internal_error'));
          tracer?.tunnel(socket, withQuery(ampPath, query));
          const request = outbound(
            req,
            undefined,
            decision,
            credentials,
            ampPath,
            { body: NO_BODY, decoded: false },
            undefined,
            undefined,
          );
          proxy.upgrade(request, socket, head);
        },
        () => refuse(new Refusal('amp_internal_error')),
      );
    },
  };
}
