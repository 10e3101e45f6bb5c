import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { UpstreamConnection } from '../egress/upstream-connection.js';
import { isPlainObject } from '../plain-object.js';
import { MAX_REWRITTEN_REPLY_BYTES } from '../proxy/json-reply.js';
import { destinationOf, type Destination } from '../proxy/outbound-request.js';
import { IDENTITY_PATH, OAUTH_CONFIG_PATH } from '../routing/public-routes.js';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** An identity provider base the Amp CLI itself would call: https, or http on this machine. */
export function identityProviderBase(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const allowed = url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
  if (!allowed || url.username || url.password || url.search || url.hash) return undefined;
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/** The provider named by an oauth-config reply, if it names one the CLI would call. */
function providerNamedBy(document: unknown): string | undefined {
  if (!isPlainObject(document) || typeof document.apiURL !== 'string') return undefined;
  return identityProviderBase(document.apiURL);
}

/** How the gateway reaches a host: through the egress proxy, unless `NO_PROXY` exempts that host. */
export type ConnectionFor = (target: URL) => UpstreamConnection;

/**
 * How long identity calls wait for the upstream's oauth-config: a small reply, which must not hold
 * every login for as long as `timeoutMs` allows a model to think.
 */
const DISCOVERY_TIMEOUT_MS = 10_000;

/**
 * Asks the upstream's oauth-config itself, with no credential, as the CLI does: read whole or not
 * at all, within the discovery timeout and the size a reply is rewritten at.
 */
function fetchOAuthConfig(upstream: Destination): Promise<unknown> {
  const { protocol, connection, upstreamBase } = upstream;
  const timeoutMs = Math.min(upstream.timeoutMs, DISCOVERY_TIMEOUT_MS);
  const agent = connection.createAgent(protocol, false, timeoutMs);
  const request = protocol === 'https:' ? httpsRequest : httpRequest;
  const reply = new Promise<unknown>((resolve, reject) => {
    const req = request(
      `${upstreamBase}${OAUTH_CONFIG_PATH}`,
      { agent, timeout: timeoutMs, headers: { accept: 'application/json', 'accept-encoding': 'identity' } },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_REWRITTEN_REPLY_BYTES) return req.destroy(new Error('oauth-config reply too large'));
          chunks.push(chunk);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`oauth-config answered ${res.statusCode}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch (error) {
            reject(error as Error);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('oauth-config timed out')));
    req.on('error', reject);
    req.end();
  });
  return reply.finally(() => agent.destroy());
}

/**
 * Carries `amp login`'s identity provider calls (device flow, token refresh) for clients that may
 * reach only the gateway. The provider is `configured`, else the one the upstream names in its
 * `/api/auth/oauth-config` reply, whose `apiURL` is rewritten to the gateway's own identity path.
 * A gateway that has not seen such a reply (just started or reloaded, or another replica served
 * it) asks the upstream itself, once for all the calls waiting.
 */
export class IdentityProxy {
  #learned: Destination | undefined;
  #discovering: Promise<Destination | undefined> | undefined;
  readonly #configured: Destination | undefined;

  constructor(
    configured: string | undefined,
    private readonly upstream: Destination,
    private readonly connectionFor: ConnectionFor,
  ) {
    this.#configured = configured === undefined ? undefined : this.#destinationOf(configured);
  }

  /** Where an identity call goes: `undefined` when the upstream names no provider it can reach. */
  async provider(): Promise<Destination | undefined> {
    return this.#configured ?? this.#learned ?? (this.#discovering ??= this.#discover());
  }

  /** The provider's path for a gateway path under `IDENTITY_PATH`. */
  providerPath(ampPath: string): string {
    return ampPath.slice(IDENTITY_PATH.length) || '/';
  }

  /** Learns the provider from an oauth-config reply and points its `apiURL` at the gateway. */
  rewriteOAuthConfig(gatewayBase: string | undefined): (document: unknown) => void {
    return (document) => {
      const provider = providerNamedBy(document);
      if (provider === undefined) return;
      this.#learn(provider);
      if (gatewayBase !== undefined)
        (document as { apiURL: string }).apiURL = `${gatewayBase}${IDENTITY_PATH}`;
    };
  }

  async #discover(): Promise<Destination | undefined> {
    try {
      const provider = providerNamedBy(await fetchOAuthConfig(this.upstream));
      if (provider !== undefined) this.#learn(provider);
      return this.#learned;
    } catch {
      // The call is answered `amp_identity_provider_unknown`; the next one asks again.
      return undefined;
    } finally {
      this.#discovering = undefined;
    }
  }

  #learn(provider: string): void {
    if (this.#learned?.upstreamBase !== provider) this.#learned = this.#destinationOf(provider);
  }

  #destinationOf(base: string): Destination {
    return destinationOf(base, this.upstream.timeoutMs, this.connectionFor(new URL(base)));
  }
}
