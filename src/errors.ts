import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { isCorsHeader } from './access/cors.js';
import type { AmpConfigProblem, AmpErrorBody, AmpErrorCode } from './types.js';

/**
 * Why a stage of the request pipeline (a policy included) stopped the request: answered with
 * `code`, `where` naming the place (never a secret).
 */
export class Refusal {
  /** Tells it from the other decisions a stage returns (`forward`, `spend-server-key`). */
  readonly kind = 'refusal';
  constructor(
    readonly code: AmpErrorCode,
    readonly where?: string,
    /** Set by limits: answered in the shape the Amp CLI shows for the route (`limits/refusals.ts`). */
    readonly limited?: { readonly code: AmpErrorCode; readonly retryAfterSeconds?: number },
  ) {}
}

/**
 * Every error the middleware answers with. The code is the stable contract (clients and
 * dashboards match on it); the message is for humans and may change.
 */
export const AMP_ERRORS = {
  amp_bad_request: {
    status: 400,
    message:
      'The request is framed ambiguously (conflicting or invalid Content-Length / Transfer-Encoding, a body on a WebSocket upgrade) and was refused.',
  },
  amp_method_not_allowed: {
    status: 405,
    message:
      'TRACE, TRACK and CONNECT are not served on Amp routes (an intermediary would echo the request back, credentials included), and a WebSocket handshake must be a GET.',
    /** The `Allow` header a 405 must carry (RFC 9110 §15.5.6): what Amp routes serve. */
    allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
  },
  amp_gateway_key_misplaced: {
    status: 400,
    message:
      'A gateway key was found where it would be forwarded upstream; send it only in Authorization, X-Api-Key, X-Goog-Api-Key or the token header.',
  },
  amp_websocket_not_attached: {
    status: 426,
    message:
      'This route is a WebSocket endpoint, but upgrades do not reach the gateway: the host must call attachUpgrade(server, middleware) once its HTTP server exists.',
  },
  amp_bad_path: {
    status: 400,
    message:
      'The request path is ambiguous (dot segments, encoded slashes or dots, empty segments, backslashes or NUL) and was refused.',
  },
  amp_client_unauthorized: {
    status: 401,
    message: 'A valid gateway client key is required for this route.',
  },
  amp_localhost_only: {
    status: 403,
    message: 'This route is restricted to clients on this machine.',
  },
  amp_preflight_forbidden: {
    status: 403,
    message: 'Cross-origin requests to Amp identity routes are not allowed.',
  },
  amp_body_too_large: {
    status: 413,
    message: 'The request body is larger than this gateway reads (option maxBodyBytes).',
  },
  amp_body_too_compressed: {
    status: 413,
    message:
      'The compressed request body decodes to more than 100 times its size; send it uncompressed or less compressed.',
  },
  amp_body_too_complex: {
    status: 413,
    message:
      'The request body holds more JSON values (100,000) or deeper nesting (128) than the local provider is given.',
  },
  amp_body_ambiguous: {
    status: 400,
    message: 'The request body names its model more than once (a repeated top-level "model" key).',
  },
  amp_uri_too_long: {
    status: 414,
    message: 'The request URL is too long.',
  },
  amp_token_required: {
    status: 401,
    message:
      "This route needs the user's own Amp token; a gateway key cannot be forwarded and no Amp key is mapped to this client.",
  },
  amp_upstream_key_conflict: {
    status: 503,
    message:
      'The upstream key resolved for this request equals a gateway client key, so it was not sent; give the gateway and its clients different keys.',
  },
  amp_identity_provider_unknown: {
    status: 503,
    message:
      "The identity provider is not known: the upstream's /api/auth/oauth-config could not be read or names none the CLI would call; try again, or set identityProxy to its URL.",
  },
  amp_upstream_key_missing: {
    status: 503,
    message:
      'No upstream Amp key is configured for this route (set upstreamKey, or a clients[].upstreamKey; the standalone gateway also reads AMP_PROXY_UPSTREAM_KEY).',
  },
  amp_directory_unavailable: {
    status: 503,
    message:
      'The client directory did not answer (it failed or timed out), so the gateway key could not be checked.',
  },
  amp_rate_limited: {
    status: 429,
    message: 'Too many requests for this client or team; try again after Retry-After seconds.',
  },
  amp_session_limit: {
    status: 429,
    message: 'Too many agent sessions are open for this client or team; close one and try again.',
  },
  amp_limits_unavailable: {
    status: 503,
    message: 'The limits store did not answer, so the request could not be counted and was refused.',
  },
  amp_body_unavailable: {
    status: 500,
    message:
      'A middleware mounted before the proxy consumed the request body in a form that cannot be re-sent; mount amp-proxy-middleware before body parsers.',
  },
  amp_local_provider_error: {
    status: 500,
    message: 'The local provider for this model failed.',
  },
  amp_policy_error: {
    status: 500,
    message: 'The auth policy for this route failed.',
  },
  amp_factory_not_called: {
    status: 500,
    message:
      'The gateway was mounted without being created: write app.use(ampRouter()) (or ampProviderProxy(), ampManagementProxy()), not app.use(ampRouter).',
  },
  amp_internal_error: {
    status: 500,
    message: 'The gateway failed while handling this request.',
  },
  amp_upstream_proxy_error: {
    status: 502,
    message: 'Failed to reach the Amp upstream.',
  },
  amp_upstream_timeout: {
    status: 504,
    message: 'The Amp upstream did not answer in time.',
  },
} as const satisfies Record<AmpErrorCode, { status: number; message: string; allow?: string }>;

const { allow } = AMP_ERRORS.amp_method_not_allowed;

/**
 * Thrown by the factories, `reload` and `loadAmpConfig` when options are invalid. `option` names
 * the offending option path (for example `policies.browser`) and `file` the config file it came
 * from, so a host can point its user at the exact setting. `problems` lists every problem found
 * (one per option), so that a file is fixed in one go; `option` and `problem` are its first.
 */
export class AmpProxyConfigError extends Error {
  readonly code = 'amp_invalid_options';
  readonly option: string;
  readonly problem: string;
  readonly file: string | undefined;
  readonly problems: readonly AmpConfigProblem[];

  constructor(option: string, problem: string, file?: string, more: readonly AmpConfigProblem[] = []) {
    const problems = [{ option, problem }, ...more];
    const where = `amp-proxy-middleware: ${file ? `${file}: ` : ''}`;
    super(
      problems.length === 1
        ? `${where}${option}: ${problem}`
        : `${where}${problems.length} problems:\n${problems.map((each) => `  ${each.option}: ${each.problem}`).join('\n')}`,
    );
    this.name = 'AmpProxyConfigError';
    this.option = option;
    this.problem = problem;
    this.file = file;
    this.problems = problems;
  }

  /** One error listing every problem of `errors`, in order, for `file`. */
  static combine(errors: readonly AmpProxyConfigError[], file?: string): AmpProxyConfigError {
    const [first, ...rest] = errors.flatMap((error) => error.problems);
    if (!first) throw new TypeError('AmpProxyConfigError.combine: no errors');
    return new AmpProxyConfigError(first.option, first.problem, file, rest);
  }
}

const serialisedBodies = Object.fromEntries(
  Object.entries(AMP_ERRORS).map(([code, { message }]) => [
    code,
    JSON.stringify({ error: code, message } satisfies { error: string; message: string }),
  ]),
) as Record<AmpErrorCode, string>;

function errorBody(code: AmpErrorCode, where: string | undefined, cause: string | undefined): string {
  if (where === undefined && cause === undefined) return serialisedBodies[code];
  return JSON.stringify({
    error: code,
    message: AMP_ERRORS[code].message,
    where,
    cause,
  } satisfies AmpErrorBody);
}

/**
 * Answers an HTTP request with the JSON error for `code`, unless the client is gone. `where`
 * names the place of the problem (a header name, `query`), `cause` why the upstream failed (an
 * error code from `upstreamFailureCause`); neither may ever hold a secret or an address. Our own
 * answers grant no CORS permission, whatever a host `cors()` set before the proxy ran.
 */
export function sendAmpError(res: ServerResponse, code: AmpErrorCode, where?: string, cause?: string): void {
  if (res.headersSent || res.destroyed) {
    // A response already under way cannot turn into JSON; cutting it is the only honest signal.
    res.destroy();
    return;
  }
  for (const name of res.getHeaderNames()) if (isCorsHeader(name)) res.removeHeader(name);
  const body = errorBody(code, where, cause);
  res.writeHead(AMP_ERRORS[code].status, {
    ...(code === 'amp_method_not_allowed' && { allow }),
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/**
 * Why a request to the upstream failed, as a code an operator can act on: Node's system and TLS
 * error codes (`ECONNREFUSED`, `ENOTFOUND`, `CERT_HAS_EXPIRED`, …) are short upper-case words;
 * anything else is `unknown`, since a message could hold a URL or a header.
 */
export function upstreamFailureCause(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : 'unknown';
}

/**
 * An upgrade socket that already has its answer: another `upgrade` listener (a host's `ws`
 * server answering 400 to paths not its own, say) ended it with its answer, or destroyed it.
 */
export function isAnswered(socket: Duplex): boolean {
  return socket.destroyed || socket.writableEnded;
}

/** Answers a WebSocket upgrade request with the JSON error for `code` and closes the socket. */
export function rejectUpgrade(socket: Duplex, code: AmpErrorCode, where?: string, cause?: string): void {
  if (isAnswered(socket)) return;
  const { status } = AMP_ERRORS[code];
  const body = errorBody(code, where, cause);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Connection: close\r\n' +
      (code === 'amp_method_not_allowed' ? `Allow: ${allow}\r\n` : '') +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
      body,
  );
}
