import type { UpstreamConnection } from '../egress/upstream-connection.js';
import { isPlainObject } from '../plain-object.js';
import { destinationOf, type Destination } from '../proxy/outbound-request.js';
import { IDENTITY_PATH } from '../routing/public-routes.js';

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

/**
 * Carries `amp login`'s identity provider calls (device flow, token refresh) for clients that may
 * reach only the gateway. The provider is `configured`, else the one the upstream names in its
 * `/api/auth/oauth-config` reply (the CLI fetches that before every device flow and refresh), and
 * that reply's `apiURL` is rewritten to the gateway's own identity path.
 */
export class IdentityProxy {
  #learned: Destination | undefined;
  readonly #configured: Destination | undefined;

  constructor(
    configured: string | undefined,
    private readonly connection: UpstreamConnection,
    private readonly timeoutMs: number,
  ) {
    this.#configured = configured === undefined ? undefined : this.#destinationOf(configured);
  }

  /** Where an identity call goes: `undefined` until a provider is known. */
  get provider(): Destination | undefined {
    return this.#configured ?? this.#learned;
  }

  /** The provider's path for a gateway path under `IDENTITY_PATH`. */
  providerPath(ampPath: string): string {
    return ampPath.slice(IDENTITY_PATH.length) || '/';
  }

  /** Learns the provider from an oauth-config reply and points its `apiURL` at the gateway. */
  rewriteOAuthConfig(gatewayBase: string | undefined): (document: unknown) => void {
    return (document) => {
      if (!isPlainObject(document) || typeof document.apiURL !== 'string') return;
      const provider = identityProviderBase(document.apiURL);
      if (provider === undefined) return;
      if (this.#learned?.upstreamBase !== provider) this.#learned = this.#destinationOf(provider);
      if (gatewayBase !== undefined) document.apiURL = `${gatewayBase}${IDENTITY_PATH}`;
    };
  }

  #destinationOf(base: string): Destination {
    return destinationOf(base, this.timeoutMs, this.connection);
  }
}
