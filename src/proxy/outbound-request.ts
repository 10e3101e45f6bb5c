import { EventEmitter } from 'node:events';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { RequestTrace } from '../observability/events.js';
import type { RewriteSpec } from '../provider/response-rewriter.js';
import { writeBody, type OutboundBody } from './request-framing.js';

/**
 * Where a request goes and how long the upstream may stay silent: taken from the options the
 * request started with, so that a `reload` never sends one request half by the old options.
 */
export interface Destination {
  readonly upstreamBase: string;
  readonly protocol: 'http:' | 'https:';
  readonly timeoutMs: number;
}

export interface OutboundRequestInit {
  readonly client: IncomingMessage;
  readonly response: ServerResponse | undefined;
  readonly method: string;
  /** Path and query as the upstream gets them, relative to `destination.upstreamBase`. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: OutboundBody;
  readonly destination: Destination;
  readonly rewrite?: RewriteSpec | undefined;
  readonly trace?: RequestTrace | undefined;
}

/**
 * The request the gateway sends upstream, built whole by the pipeline and handed to
 * http-proxy in place of the client's request. The client's `req` is never rewritten, so the
 * host's own middleware and access logs never see the server key; and http-proxy's "pipe the
 * request" step writes this request's body with framing the gateway chose.
 */
export class OutboundRequest extends EventEmitter {
  readonly client: IncomingMessage;
  readonly response: ServerResponse | undefined;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: OutboundBody;
  readonly destination: Destination;
  readonly rewrite: RewriteSpec | undefined;
  readonly trace: RequestTrace | undefined;

  constructor(init: OutboundRequestInit) {
    super();
    this.client = init.client;
    this.response = init.response;
    this.method = init.method;
    this.url = init.url;
    this.headers = init.headers;
    this.body = init.body;
    this.destination = init.destination;
    this.rewrite = init.rewrite;
    this.trace = init.trace;
  }

  /** The client's connection: http-proxy and http-proxy-middleware read it. */
  get socket(): IncomingMessage['socket'] {
    return this.client.socket;
  }

  /** Called by http-proxy as `req.pipe(proxyReq)`: writes the body, framed by the gateway. */
  pipe<T extends ClientRequest>(proxyReq: T): T {
    writeBody(proxyReq, this.body);
    return proxyReq;
  }
}
