import { EventEmitter } from 'node:events';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { UpstreamConnection } from '../egress/upstream-connection.js';
import type { RequestTrace, TunnelTrace } from '../observability/events.js';
import type { RewriteSpec } from '../provider/response-rewriter.js';
import { writeBody, type OutboundBody } from './request-framing.js';
import type { ReplyRewrite } from './json-reply.js';

/**
 * Where a request goes, how it gets there and how long the upstream may stay silent: taken from
 * the options the request started with, so that a `reload` never sends one request half by the
 * old options.
 */
export interface Destination {
  readonly upstreamBase: string;
  /** `upstreamBase` parsed once, for the proxy engine. */
  readonly target: URL;
  readonly protocol: 'http:' | 'https:';
  readonly timeoutMs: number;
  readonly connection: UpstreamConnection;
}

/** Where requests to `upstreamBase` go, parsed once. */
export function destinationOf(
  upstreamBase: string,
  timeoutMs: number,
  connection: UpstreamConnection,
): Destination {
  const target = new URL(upstreamBase);
  const protocol = target.protocol as Destination['protocol'];
  return { upstreamBase, target, protocol, timeoutMs, connection };
}

/** Everything an `OutboundRequest` is made of. */
export type OutboundRequestInit = Omit<
  OutboundRequest,
  keyof EventEmitter | 'client' | 'socket' | 'pipe' | 'releaseRequest'
> & { readonly client: IncomingMessage };

const NO_HEADERS: IncomingHttpHeaders = Object.freeze({});

/**
 * The request the gateway sends upstream, built whole by the pipeline and handed to
 * httpxy in place of the client's request. The client's `req` is never rewritten, so the
 * host's own middleware and access logs never see the server key; and httpxy's "pipe the
 * request" step writes this request's body with framing the gateway chose.
 */
export class OutboundRequest extends EventEmitter {
  // `declare`: set by the constructor's one assignment, not initialised field by field.
  /** The client's request; `undefined` once the upstream answered (`releaseRequest`). */
  declare client: IncomingMessage | undefined;
  /** The client's connection: httpxy and http-proxy-middleware read it. */
  declare readonly socket: IncomingMessage['socket'];
  declare readonly response: ServerResponse | undefined;
  declare readonly method: string;
  /** Path and query as the upstream gets them, relative to `destination.upstreamBase`. */
  declare readonly url: string;
  declare headers: IncomingHttpHeaders;
  declare readonly body: OutboundBody;
  declare readonly destination: Destination;
  declare readonly rewrite: RewriteSpec | undefined;
  /** A small JSON reply to rewrite before the client gets it (URLs that must name the gateway). */
  declare readonly reply: ReplyRewrite | undefined;
  declare readonly trace: RequestTrace | undefined;
  /** An upgrade's trace, in place of `trace`. */
  declare readonly tunnel?: TunnelTrace | undefined;

  constructor(init: OutboundRequestInit) {
    super();
    Object.assign(this, init);
    this.socket = init.client.socket;
  }

  /**
   * Lets go of the client's request and of the headers sent upstream (credentials among them)
   * once the upstream answered: the engine's listeners keep this object for as long as the
   * response streams or the tunnel is open, and thousands may be.
   */
  releaseRequest(): void {
    this.client = undefined;
    this.headers = NO_HEADERS;
  }

  /** Called by httpxy as `req.pipe(proxyReq)` once the upstream request has a socket: writes the body, framed by the gateway. */
  pipe<T extends ClientRequest>(proxyReq: T): T {
    writeBody(proxyReq, this.body);
    return proxyReq;
  }
}
