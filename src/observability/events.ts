import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AMP_ERRORS } from '../errors.js';
import type {
  AmpErrorCode,
  AmpGroup,
  AmpProxyEventListener,
  AmpRequestOutcome,
  AmpWebSocketOutcome,
  KeySource,
  Redactor,
} from '../types.js';

/** What the pipeline tells a request's trace as it goes. */
export interface RequestTrace {
  /** The gateway client the request presented a key of (its name; `undefined` when unnamed or none). */
  identified(client: string | undefined): void;
  keySpent(source: KeySource | undefined, client: string | undefined): void;
  answered(code: AmpErrorCode): void;
  failed(outcome: 'upstream-error' | 'timeout', cause: string): void;
  routed(route: string): void;
}

/** What the upgrade pipeline and the proxy tell a WebSocket's trace as it goes. */
export interface TunnelTrace {
  /** As a request's: the client whose key opened the WebSocket. */
  identified(client: string | undefined): void;
  /** The gateway answered the upgrade with the error `code` (its refusal, or the upstream's failure). */
  rejected(code: AmpErrorCode): void;
  /** The upstream answered the upgrade: 101 opens the tunnel, anything else is its refusal. */
  answered(status: number): void;
  failed(outcome: 'upstream-error' | 'timeout', cause: string): void;
  /** The upstream's close frame went through the tunnel. */
  upstreamClosed(code: number | undefined, reason: Buffer): void;
  /** Another `upgrade` listener answered the socket: not ours to report. */
  abandoned(): void;
}

export interface Tracer {
  request(req: IncomingMessage, res: ServerResponse, path: string): RequestTrace;
  tunnel(socket: Duplex, path: string): TunnelTrace;
}

/** What a request whose trace failed tells: nothing. */
const UNTRACED: RequestTrace = {
  identified: () => undefined,
  keySpent: () => undefined,
  answered: () => undefined,
  failed: () => undefined,
  routed: () => undefined,
};

const UNTRACED_TUNNEL: TunnelTrace = {
  identified: () => undefined,
  rejected: () => undefined,
  answered: () => undefined,
  failed: () => undefined,
  upstreamClosed: () => undefined,
  abandoned: () => undefined,
};

/** Close codes that end a WebSocket without blaming anyone: normal, going away, no status. */
const UNREMARKABLE_CLOSE_CODES = new Set([1000, 1001, 1005]);

/**
 * A tracer whose own failure (a bug of ours) costs the events of a request, never its answer:
 * the first failure is reported through `warn`, later ones are not, as they would repeat it.
 */
export function containedTracer(tracer: Tracer, warn: (code: string, message: string) => void): Tracer {
  let reported = false;
  const report = (error: unknown): void => {
    if (reported) return;
    reported = true;
    const kind = error instanceof Error ? error.name : typeof error;
    warn(
      'amp_trace_error',
      `amp-proxy-middleware: tracing a request failed (${kind}); requests are served, their events may be missing`,
    );
  };
  return {
    request(req, res, path) {
      try {
        return tracer.request(req, res, path);
      } catch (error) {
        report(error);
        return UNTRACED;
      }
    },
    tunnel(socket, path) {
      try {
        return tracer.tunnel(socket, path);
      } catch (error) {
        report(error);
        return UNTRACED_TUNNEL;
      }
    },
  };
}

/**
 * The id a host's request logger gave the request (pino-http's `req.id`, a number or a string),
 * redacted like a path: a host may take it from a client's header, which can hold anything.
 */
function requestIdOf(req: IncomingMessage, redactUrl: (url: string) => string): { requestId?: string } {
  const id = (req as { id?: unknown }).id;
  if (typeof id === 'string' && id !== '') return { requestId: redactUrl(id) };
  if (typeof id === 'number') return { requestId: String(id) };
  return NO_REQUEST_ID;
}

const NO_REQUEST_ID: { requestId?: string } = Object.freeze({});

/** Per connection: how much of what it read the requests traced on it were charged. */
const accountedReads = new WeakMap<Socket, number>();

function readSince(socket: Socket, readBefore: number): number {
  const read = socket.bytesRead;
  accountedReads.set(socket, read);
  return Math.max(0, read - readBefore);
}

/**
 * Emits the events of one group; `emit` isolates its listeners from each other and from us.
 * `redactor` is the config's (`ResolvedConfig.redactor`), which also knows the gateway's keys;
 * every path and close reason in an event has been through it. Long because each event's fields
 * are listed where they are gathered, in the closures that gather them.
 */
export function createTracer(
  group: AmpGroup,
  policy: string,
  emit: AmpProxyEventListener,
  redactor: Pick<Redactor, 'url' | 'text'>,
): Tracer {
  const redactUrl = redactor.url;
  return {
    request(req, res, rawPath) {
      const started = performance.now();
      const path = redactUrl(rawPath);
      const method = req.method ?? 'GET';
      const bytesBefore = req.socket.bytesWritten;
      // A small request's body arrives with its head, both read before this: a request is charged
      // what its connection read since the last request traced on it ended.
      const readBefore = accountedReads.get(req.socket) ?? 0;
      const requestId = requestIdOf(req, redactUrl);
      let keySource: KeySource | undefined;
      let client: string | undefined;
      let route: string | undefined;
      let error: AmpErrorCode | undefined;
      let failure: 'upstream-error' | 'timeout' | undefined;
      let cause: string | undefined;
      const trace: RequestTrace = {
        identified: (clientName) => (client = clientName),
        keySpent: (source, clientName) => {
          keySource = source;
          client = clientName;
        },
        answered: (code) => (error = code),
        failed: (outcome, why) => {
          failure = outcome;
          cause = why;
        },
        routed: (taken) => (route = taken),
      };
      // Attached before any asynchronous step, so no ending can be missed.
      res.once('close', () => {
        const outcome: AmpRequestOutcome =
          failure ??
          (error === 'amp_upstream_proxy_error' || error === 'amp_upstream_timeout'
            ? 'upstream-error'
            : error
              ? 'refused'
              : res.writableFinished
                ? 'completed'
                : 'client-aborted');
        emit({
          type: 'request-end',
          group,
          policy,
          method,
          path,
          ...requestId,
          status: res.headersSent ? res.statusCode : undefined,
          durationMs: Math.round((performance.now() - started) * 1000) / 1000,
          bytesSent: req.socket.bytesWritten - bytesBefore,
          bytesReceived: readSince(req.socket, readBefore),
          keySource,
          client,
          route,
          outcome,
          error,
          cause,
        });
      });
      emit({ type: 'request-start', group, method, path, ...requestId });
      return trace;
    },
    tunnel(socket, rawPath) {
      const started = performance.now();
      const path = redactUrl(rawPath);
      let status: number | undefined;
      let error: AmpErrorCode | undefined;
      let failure: 'upstream-error' | 'timeout' | undefined;
      let cause: string | undefined;
      let upstreamCloseCode: number | undefined;
      let upstreamCloseReason: string | undefined;
      let client: string | undefined;
      let abandoned = false;
      // The handshake was read before this; the tunnel's frames are what the socket moves from now on.
      const readBefore = (socket as Partial<Socket>).bytesRead ?? 0;
      const writtenBefore = (socket as Partial<Socket>).bytesWritten ?? 0;
      // Attached before any asynchronous step, so no ending can be missed.
      socket.once('close', () => {
        if (abandoned) return;
        const opened = status === 101;
        const outcome: AmpWebSocketOutcome =
          failure ??
          (error
            ? 'refused'
            : status === undefined
              ? 'client-aborted'
              : !opened ||
                  (upstreamCloseCode !== undefined && !UNREMARKABLE_CLOSE_CODES.has(upstreamCloseCode))
                ? 'upstream-refused'
                : 'completed');
        emit({
          type: 'websocket-close',
          group,
          path,
          durationMs: Math.round(performance.now() - started),
          client,
          bytesSent: ((socket as Partial<Socket>).bytesWritten ?? 0) - writtenBefore,
          bytesReceived: ((socket as Partial<Socket>).bytesRead ?? 0) - readBefore,
          opened,
          status,
          outcome,
          error,
          cause,
          upstreamCloseCode,
          upstreamCloseReason,
        });
      });
      return {
        identified: (clientName) => (client = clientName),
        rejected: (code) => {
          error = code;
          status = AMP_ERRORS[code].status;
        },
        answered: (answer) => {
          status = answer;
          if (answer === 101) emit({ type: 'websocket-open', group, path, client, durationMs: undefined });
        },
        failed: (outcome, why) => {
          failure = outcome;
          cause = why;
        },
        upstreamClosed: (code, reason) => {
          upstreamCloseCode = code;
          upstreamCloseReason = reason.length > 0 ? redactor.text(reason.toString('utf8')) : undefined;
        },
        abandoned: () => (abandoned = true),
      };
    },
  };
}
