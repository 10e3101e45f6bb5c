import type { IncomingHttpHeaders } from 'node:http';
import type { ClientTable, ResolvedClient } from './clients.js';

/** Headers that can carry a credential the user presented to the gateway. */
export const CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'x-goog-api-key'] as const;
export type CredentialHeader = (typeof CREDENTIAL_HEADERS)[number];

/** Query parameters that can carry a credential (Google-style `?key=`, Amp's `?auth_token=`). */
const CREDENTIAL_PARAMS = new Set(['key', 'auth_token']);
const MAY_HOLD_CREDENTIAL_PARAM = /key|auth_token|%/i;
const BEARER = /^bearer\s+/i;

export interface HeaderCredential {
  readonly header: CredentialHeader;
  /** The header value exactly as received. */
  readonly raw: string;
  readonly carriesGatewayKey: boolean;
}

interface QueryParam {
  readonly raw: string;
  readonly isCredential: boolean;
  readonly carriesGatewayKey: boolean;
}

/** What a request presented, read once per request and shared by every policy. */
export interface PresentedCredentials {
  readonly headers: readonly HeaderCredential[];
  /** The `Authorization` token without its scheme, unless it is a gateway key. */
  readonly userToken: string | undefined;
  /** The `tokenHeader` value without a scheme, unless it is a gateway key. */
  readonly ampToken: string | undefined;
  /** The gateway client identified by any presented gateway key. */
  readonly client: ResolvedClient | undefined;
  /** Keys of two different gateway clients were presented together. */
  readonly conflictingClients: boolean;
  readonly gatewayKeyPresented: boolean;
  /**
   * The query string to forward (without `?`), with credential parameters removed: all of them,
   * or only those holding a gateway key.
   */
  upstreamQuery(drop: 'all-credentials' | 'gateway-keys'): string;
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

/**
 * The gateway clients whose keys appear in `value`: any comma-separated part, with or without a
 * `Bearer` scheme (Node joins repeated `X-Api-Key` headers with commas, and a client may do the
 * same inside one header).
 */
function gatewayClientsIn(value: string, clients: ClientTable): ResolvedClient[] {
  if (clients.size === 0) return [];
  const found: ResolvedClient[] = [];
  for (const part of value.split(',')) {
    const candidate = withoutScheme(part);
    const client = candidate === '' ? undefined : clients.lookup(candidate);
    if (client) found.push(client);
  }
  return found;
}

/** True when `value` holds a gateway key in any of the forms `gatewayClientsIn` accepts. */
export function containsGatewayKey(value: string, clients: ClientTable): boolean {
  return gatewayClientsIn(value, clients).length > 0;
}

/** Reads credential values and remembers which gateway client they identify. */
class CredentialReader {
  client: ResolvedClient | undefined;
  conflictingClients = false;
  gatewayKeyPresented = false;

  constructor(private readonly clients: ClientTable) {}

  carriesGatewayKey(value: string): boolean {
    const found = gatewayClientsIn(value, this.clients);
    for (const client of found) {
      if (this.client && this.client !== client) this.conflictingClients = true;
      this.client ??= client;
    }
    if (found.length > 0) this.gatewayKeyPresented = true;
    return found.length > 0;
  }
}

/**
 * Reads the query's credential parameters. With gateway clients configured every parameter is
 * inspected: a gateway key must not leave even inside an unrelated parameter.
 */
function readQuery(query: string, reader: CredentialReader, clients: ClientTable): QueryParam[] | undefined {
  const inspectAll = clients.size > 0;
  if (!inspectAll && !MAY_HOLD_CREDENTIAL_PARAM.test(query)) return undefined;
  let anyToDrop = false;
  const params = query.split('&').map((raw): QueryParam => {
    const eq = raw.indexOf('=');
    const name = decodeQueryComponent(eq === -1 ? raw : raw.slice(0, eq))
      .trim()
      .toLowerCase();
    const isCredential = CREDENTIAL_PARAMS.has(name);
    if (!isCredential && !inspectAll) return { raw, isCredential, carriesGatewayKey: false };
    const value = eq === -1 ? '' : decodeQueryComponent(raw.slice(eq + 1));
    const carriesGatewayKey = isCredential
      ? reader.carriesGatewayKey(value)
      : containsGatewayKey(value, clients);
    anyToDrop ||= isCredential || carriesGatewayKey;
    return { raw, isCredential, carriesGatewayKey };
  });
  return anyToDrop ? params : undefined;
}

/** Reads every credential a request presents, in headers and in the query string. */
export function readCredentials(
  headers: IncomingHttpHeaders,
  query: string,
  tokenHeader: string,
  clients: ClientTable,
): PresentedCredentials {
  const reader = new CredentialReader(clients);
  const found: HeaderCredential[] = [];
  let userToken: string | undefined;
  for (const header of CREDENTIAL_HEADERS) {
    const raw = firstValue(headers[header]);
    if (raw === undefined) continue;
    const carriesGatewayKey = reader.carriesGatewayKey(raw);
    found.push({ header, raw, carriesGatewayKey });
    if (header === 'authorization' && !carriesGatewayKey) userToken = withoutScheme(raw) || undefined;
  }

  const rawAmpToken = firstValue(headers[tokenHeader]);
  const ampToken =
    rawAmpToken === undefined || reader.carriesGatewayKey(rawAmpToken)
      ? undefined
      : withoutScheme(rawAmpToken) || undefined;

  const params = query === '' ? undefined : readQuery(query, reader, clients);

  return {
    headers: found,
    userToken,
    ampToken,
    client: reader.client,
    conflictingClients: reader.conflictingClients,
    gatewayKeyPresented: reader.gatewayKeyPresented,
    upstreamQuery(drop) {
      if (!params) return query;
      return params
        .filter((param) => !param.carriesGatewayKey && !(drop === 'all-credentials' && param.isCredential))
        .map((param) => param.raw)
        .join('&');
    },
  };
}
