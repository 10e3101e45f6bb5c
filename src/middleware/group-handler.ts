import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { readCredentials, type PresentedCredentials } from '../auth/credentials.js';
import type { ResolvedConfig } from '../config/resolve-options.js';
import { rejectUpgrade, sendAmpError, type AmpErrorCode } from '../errors.js';
import { createPolicy, type PolicyDecision } from '../policy/policies.js';
import { createRequestGate } from '../access/request-gate.js';
import type { Destination, GroupProxy } from '../proxy/group-proxy.js';
import { createTracer } from '../observability/events.js';
import { recoverConsumedBody, type ForwardBody } from '../proxy/request-body.js';
import { rewriteLocalResponse } from '../provider/local-response.js';
import { routeProviderCall, type ProviderRoute } from '../provider/provider-routing.js';
import type { RewriteSpec } from '../provider/response-rewriter.js';
import type { UpstreamHeaderBuilder } from '../proxy/upstream-headers.js';
import type { AmpGroup } from '../routing/route-groups.js';

/** Serves one route group: reads credentials, asks the group's policy, forwards. */
export interface GroupHandler {
  http(req: IncomingMessage, res: ServerResponse, pathname: string, query: string): void;
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, pathname: string, query: string): void;
}

type Forward = Extract<PolicyDecision, { kind: 'forward' }>;

/** Hands a provider call to the host's handler; its response gets the requested model back. */
function serveLocally(
  req: IncomingMessage,
  res: ServerResponse,
  route: Extract<ProviderRoute, { kind: 'local' }>,
  answer: (code: AmpErrorCode) => void,
): void {
  rewriteLocalResponse(res, route.rewrite);
  // A local handler must answer; handing the call back (next) or failing is an error.
  const fail = (): void => answer('amp_local_provider_error');
  try {
    const result: unknown = route.handler(req, res, fail);
    if (result instanceof Promise) result.catch(fail);
  } catch {
    fail();
  }
}

function withQuery(pathname: string, query: string): string {
  return query === '' ? pathname : `${pathname}?${query}`;
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
  const destination: Destination = { upstreamBase: config.upstreamBase, timeoutMs: config.timeoutMs };
  const policySpec = config.policies[group];
  const tracer = config.emit
    ? createTracer(group, typeof policySpec === 'function' ? 'custom' : policySpec, config.emit)
    : undefined;

  /** Runs the policy and hands its verdict on, synchronously whenever the policy is. */
  function decide(
    req: IncomingMessage,
    query: string,
    onDecision: (decision: PolicyDecision, credentials: PresentedCredentials) => void,
    onFailure: (code: AmpErrorCode) => void,
  ): void {
    const credentials = readCredentials(req.headers, query, config.tokenHeader, config.clients);
    let decision: ReturnType<typeof policy>;
    try {
      decision = policy(req, credentials);
    } catch {
      onFailure('amp_policy_error');
      return;
    }
    if (decision instanceof Promise) {
      decision.then(
        (settled) => onDecision(settled, credentials),
        () => onFailure('amp_policy_error'),
      );
    } else {
      onDecision(decision, credentials);
    }
  }

  function rewriteForUpstream(
    req: IncomingMessage,
    decision: Forward,
    credentials: PresentedCredentials,
    pathname: string,
    isUpgrade: boolean,
  ): void {
    req.headers = buildHeaders(req.headers, decision.headers, isUpgrade);
    req.url = withQuery(pathname, credentials.upstreamQuery(decision.query));
  }

  return {
    http(req, res, pathname, query) {
      const trace = tracer?.request(req, res, withQuery(pathname, query));
      const answer = (code: AmpErrorCode): void => {
        trace?.answered(code);
        sendAmpError(res, code);
      };
      const refused = gate?.(req);
      if (refused) return answer(refused);
      const forward = (
        decision: Forward,
        credentials: PresentedCredentials,
        path: string,
        body: ForwardBody | undefined,
        rewrite?: RewriteSpec,
      ): void => {
        trace?.keySpent(decision.keySource, credentials.client?.name);
        rewriteForUpstream(req, decision, credentials, path, false);
        proxy.web(req, res, destination, body, rewrite);
      };

      decide(
        req,
        query,
        (decision, credentials) => {
          // A call served by a local provider spends no key, so a missing one is decided later.
          const keyMissing = decision.kind === 'reject' && decision.code === 'amp_upstream_key_missing';
          if (decision.kind === 'reject' && !(routing && keyMissing)) return answer(decision.code);
          if (decision.kind === 'redirect') {
            const location =
              config.upstreamBase + withQuery(pathname, credentials.upstreamQuery('all-credentials'));
            res.writeHead(302, { location, 'content-length': 0 });
            res.end();
            return;
          }
          if (!routing) {
            const body = recoverConsumedBody(req);
            if (body === 'unavailable') return answer('amp_body_unavailable');
            if (decision.kind === 'forward') forward(decision, credentials, pathname, body);
            return;
          }
          routeProviderCall(req, pathname, routing).then(
            (route) => {
              if (route.kind === 'too-large') {
                // The rest of the body is never read, so the connection cannot carry another request.
                res.shouldKeepAlive = false;
                return answer('amp_body_too_large');
              }
              if (route.kind === 'local') {
                trace?.routed(`local:${route.model}`);
                return serveLocally(req, res, route, answer);
              }
              if (decision.kind !== 'forward') return answer(decision.code);
              const body = route.body ?? recoverConsumedBody(req);
              if (body === 'unavailable') return answer('amp_body_unavailable');
              if (route.kind === 'mapped') {
                trace?.routed(`mapped:${route.from}->${route.to}`);
                return forward(decision, credentials, route.path, body, route.rewrite);
              }
              trace?.routed('upstream');
              forward(decision, credentials, pathname, body);
            },
            () => answer('amp_policy_error'),
          );
        },
        answer,
      );
    },

    upgrade(req, socket, head, pathname, query) {
      const refused = gate?.(req);
      if (refused) return rejectUpgrade(socket, refused);
      decide(
        req,
        query,
        (decision, credentials) => {
          if (decision.kind === 'reject') return rejectUpgrade(socket, decision.code);
          if (decision.kind === 'redirect') return rejectUpgrade(socket, 'amp_bad_path');
          tracer?.tunnel(socket, withQuery(pathname, query));
          rewriteForUpstream(req, decision, credentials, pathname, true);
          proxy.upgrade(req, socket, head, destination);
        },
        (code) => rejectUpgrade(socket, code),
      );
    },
  };
}
