import type { IncomingHttpHeaders } from 'node:http';
import type { ResolvedClient } from './clients.js';
import { CREDENTIAL_HEADERS, CREDENTIAL_PARAMS, type CredentialHeader } from './credential-names.js';
import { containsKey, findKeys, type KeyRecogniser } from './key-recognition.js';

const IS_CREDENTIAL_HEADER: ReadonlySet<string> = new Set(CREDENTIAL_HEADERS);
/** Cheap test before the query is split: could any parameter name be a credential one? */
const MAY_HOLD_CREDENTIAL_PARAM = new RegExp([...CREDENTIAL_PARAMS, '%'].join('|'), 'i');
const BEARER = /^bearer\s+/i;

export interface HeaderCredential {
  readonly header: CredentialHeader;
  /** The header value exactly as received. */
  readonly raw: string;
  readonly carriesGatewayKey: boolean;
}

/** What a request presented, read once per request and shared by every policy. */
export interface PresentedCredentials {
  readonly headers: readonly HeaderCredential[];
  /** The `Authorization` token without its scheme, unless it carries a gateway key. */
  readonly authorizationToken: string | undefined;
  /** The `tokenHeader` value without a scheme, unless it carries a gateway key. */
  readonly tokenHeaderValue: string | undefined;
  /** The gateway client identified by a gateway key in a credential header. */
  readonly client: ResolvedClient | undefined;
  /** Keys of two different gateway clients were presented together. */
  readonly conflictingClients: boolean;
  readonly gatewayKeyPresented: boolean;
  /**
   * Where a gateway key appears outside the credential headers, so that forwarding the request
   * would hand it to the upstream: a header name as in `req.headers` (lower-case), `'query'`,
   * `'path'`, or `'header name'` when the name of a header is a key. Never the key itself.
   * A request with one must be refused (`amp_gateway_key_misplaced`) before anything is sent.
   */
  readonly misplacedGatewayKey: string | undefined;
  /**
   * The query string to forward (without `?`): as it came, or without the user's credential
   * parameters (`key`, `auth_token`), removed byte-exactly. A gateway key never needs removing
   * here: one anywhere in the query makes the request misplaced.
   */
  upstreamQuery(drop: 'all-credentials' | 'none'): string;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function withoutScheme(value: string): string {
  return value.trim().replace(BEARER, '').trim();
}

function decodeQueryComponent(component: string): string {
  try {
    return decodeURIComponent(component.replace(/\+/g, ' '));
  } catch {
    return component;
  }
}

function isCredentialParam(param: string): boolean {
  const eq = param.indexOf('=');
  const name = decodeQueryComponent(eq === -1 ? param : param.slice(0, eq));
  return CREDENTIAL_PARAMS.has(name.trim().toLowerCase());
}

function withoutCredentialParams(query: string): string {
  if (!MAY_HOLD_CREDENTIAL_PARAM.test(query)) return query;
  return query
    .split('&')
    .filter((param) => !isCredentialParam(param))
    .join('&');
}

/** Reads credential values and remembers which gateway client they identify. */
class CredentialReader {
  client: ResolvedClient | undefined;
  conflictingClients = false;
  gatewayKeyPresented = false;
  #found = false;
  readonly #visit = (client: ResolvedClient): void => {
    this.#found = true;
    if (this.client && this.client !== client) this.conflictingClients = true;
    this.client ??= client;
  };

  constructor(private readonly clients: KeyRecogniser<ResolvedClient>) {}

  /** Any scheme word or none, quoted, with other text around it, or inside `Basic` credentials. */
  carriesGatewayKey(value: string): boolean {
    this.#found = false;
    findKeys(value, this.clients, this.#visit);
    if (this.#found) this.gatewayKeyPresented = true;
    return this.#found;
  }
}

/** The first place outside the credential headers where a gateway key appears (see `misplacedGatewayKey`). */
function findMisplacedKey(
  headers: IncomingHttpHeaders,
  path: string,
  query: string,
  tokenHeader: string,
  clients: KeyRecogniser<ResolvedClient>,
): string | undefined {
  // Most names and values are shorter than any key: those are skipped without a call.
  const shortest = clients.shortest;
  // Object.keys, not for…in: request headers are a dictionary-mode object, where it is faster.
  const names = Object.keys(headers);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (IS_CREDENTIAL_HEADER.has(name) || name === tokenHeader) continue;
    if (name.length >= shortest && containsKey(name, clients)) return 'header name';
    const value = headers[name];
    if (typeof value === 'string') {
      if (value.length >= shortest && containsKey(value, clients)) return name;
    } else if (value?.some((item) => containsKey(item, clients))) {
      return name;
    }
  }
  if (containsKey(query, clients)) return 'query';
  if (containsKey(path, clients)) return 'path';
  return undefined;
}

/**
 * Reads every credential a request presents and finds every gateway key it carries: in the
 * credential headers (`Authorization`, `X-Api-Key`, `X-Goog-Api-Key`, `tokenHeader`) a key is
 * the caller's own; anywhere else (any header, the query, the path) it is misplaced.
 */
export function readCredentials(
  headers: IncomingHttpHeaders,
  path: string,
  query: string,
  tokenHeader: string,
  clients: KeyRecogniser<ResolvedClient>,
): PresentedCredentials {
  const reader = new CredentialReader(clients);
  const found: HeaderCredential[] = [];
  let authorizationToken: string | undefined;
  for (const header of CREDENTIAL_HEADERS) {
    const raw = firstValue(headers[header]);
    if (raw === undefined) continue;
    const carriesGatewayKey = reader.carriesGatewayKey(raw);
    found.push({ header, raw, carriesGatewayKey });
    if (header === 'authorization' && !carriesGatewayKey)
      authorizationToken = withoutScheme(raw) || undefined;
  }

  const rawAmpToken = firstValue(headers[tokenHeader]);
  const tokenHeaderValue =
    rawAmpToken === undefined || reader.carriesGatewayKey(rawAmpToken)
      ? undefined
      : withoutScheme(rawAmpToken) || undefined;

  return {
    headers: found,
    authorizationToken,
    tokenHeaderValue,
    client: reader.client,
    conflictingClients: reader.conflictingClients,
    gatewayKeyPresented: reader.gatewayKeyPresented,
    misplacedGatewayKey:
      clients.size === 0 ? undefined : findMisplacedKey(headers, path, query, tokenHeader, clients),
    upstreamQuery: (drop) => (drop === 'none' || query === '' ? query : withoutCredentialParams(query)),
  };
}

/**
 * The gateway client a request's credential headers identify, for the host's own middleware
 * (`clientOf`); `undefined` for none, and for keys of two clients, which the gateway refuses.
 */
export function presentedClient(
  headers: IncomingHttpHeaders,
  tokenHeader: string,
  clients: KeyRecogniser<ResolvedClient>,
): ResolvedClient | undefined {
  if (clients.size === 0) return undefined;
  const reader = new CredentialReader(clients);
  for (const header of [...CREDENTIAL_HEADERS, tokenHeader]) {
    const raw = firstValue(headers[header]);
    if (raw !== undefined) reader.carriesGatewayKey(raw);
  }
  return reader.conflictingClients ? undefined : reader.client;
}
