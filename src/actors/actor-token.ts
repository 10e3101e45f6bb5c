import type { IncomingHttpHeaders } from 'node:http';

/**
 * Amp's public (publishable) Rivet actor tokens, by the host name of the deployment they belong
 * to. The Amp CLI puts the one for its server into its actor endpoint unless that server is
 * `localhost` or `127.0.0.1`, where it sends none; Amp's edge closes a tokenless actor WebSocket
 * right after the upgrade.
 */
const PUBLIC_ACTOR_TOKENS: ReadonlyMap<string, string> = new Map([
  ['ampcode.com', 'pk_9tm4qz3zrMerdZXTlBRLRsmJIzSQIPH24meKBqiL6vVpscTvc4w1YPiBgymXf9Az'],
  ['staging.ampcodedev.org', 'lq36zI3tZy5CSZjGUcVUSuJbUpwEQCcuZ8kC9kgbXdhTZeQ5KjQYziwLUNWDJnsP'],
]);

const TOKEN_PARAM = 'rvt-token';
const TOKEN_HEADER = 'x-rivet-token';
/** Rivet's subprotocol that carries the token on a WebSocket aimed at one actor. */
const TOKEN_SUBPROTOCOL = 'rivet_token.';
/** Cheap test before the query is split: could any parameter be the token one? */
const MAY_NAME_TOKEN_PARAM = /rvt|%/i;

/** The token the Amp CLI would send to `upstreamBase`; `undefined` for deployments it does not know. */
export function publicActorToken(upstreamBase: string): string | undefined {
  const url = new URL(upstreamBase);
  return url.protocol === 'https:' ? PUBLIC_ACTOR_TOKENS.get(url.hostname) : undefined;
}

/**
 * Amp's public tokens, every deployment's. The CLI picks one by the host name of its Amp URL, so
 * through a gateway it reaches by name it sends Amp's production token whatever the upstream is:
 * a guess about a deployment it cannot see, not a token of its own.
 */
const PUBLIC_TOKENS: ReadonlySet<string> = new Set(PUBLIC_ACTOR_TOKENS.values());

function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function namesTokenParam(query: string): boolean {
  if (!MAY_NAME_TOKEN_PARAM.test(query)) return false;
  return query.split('&').some((param) => {
    const eq = param.indexOf('=');
    return decoded(eq === -1 ? param : param.slice(0, eq)) === TOKEN_PARAM;
  });
}

/** `query` with each `rvt-token` that holds another deployment's public token set to `param`. */
function withUpstreamToken(query: string, token: string, param: string): string {
  if (!MAY_NAME_TOKEN_PARAM.test(query)) return query;
  let replaced = false;
  const params = query.split('&').map((part) => {
    const eq = part.indexOf('=');
    if (eq === -1 || decoded(part.slice(0, eq)) !== TOKEN_PARAM) return part;
    const value = decoded(part.slice(eq + 1));
    if (value === undefined || value === token || !PUBLIC_TOKENS.has(value)) return part;
    replaced = true;
    return param;
  });
  return replaced ? params.join('&') : query;
}

function carriesToken(headers: IncomingHttpHeaders, query: string): boolean {
  if (headers[TOKEN_HEADER] !== undefined) return true;
  if (headers['sec-websocket-protocol']?.includes(TOKEN_SUBPROTOCOL)) return true;
  return namesTokenParam(query);
}

/**
 * Adds the actor token to an actor request that came without one, where the Amp CLI puts it:
 * `rvt-token` in the query, and on plain HTTP also an `x-rivet-token` header. Returns the query to
 * send; `outgoing` (the gateway's own header object) gets the header. A client's token, in any of
 * the places Rivet reads one, is never doubled, nor replaced unless it is Amp's public token of
 * another deployment (in the query or the header), which becomes this one.
 */
export type ActorTokenStage = (
  incoming: IncomingHttpHeaders,
  query: string,
  outgoing: IncomingHttpHeaders,
  isUpgrade: boolean,
) => string;

export function createActorTokenStage(token: string): ActorTokenStage {
  const param = `${TOKEN_PARAM}=${encodeURIComponent(token)}`;
  return (incoming, query, outgoing, isUpgrade) => {
    if (!carriesToken(incoming, query)) {
      if (!isUpgrade) outgoing[TOKEN_HEADER] = token;
      return query === '' ? param : `${query}&${param}`;
    }
    const header = incoming[TOKEN_HEADER];
    if (typeof header === 'string' && header !== token && PUBLIC_TOKENS.has(header)) {
      outgoing[TOKEN_HEADER] = token;
    }
    return withUpstreamToken(query, token, param);
  };
}
