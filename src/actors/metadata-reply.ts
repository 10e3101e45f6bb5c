import { isPlainObject } from '../plain-object.js';

/** Anything Rivet reads as the client's endpoint must stay under this path of the gateway. */
const ACTORS_PATH = '/actors';
const ABSOLUTE_URL = /^(?:https?|wss?):\/\//i;

function parsedUrl(value: string): URL | undefined {
  if (!ABSOLUTE_URL.test(value)) return undefined;
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/** `url` moved onto the gateway: same path (past the upstream's own prefix) and query. */
function ontoGateway(url: URL, gatewayBase: string, upstream: URL): string {
  const prefix = upstream.pathname.replace(/\/+$/, '');
  const path = prefix && url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
  const base = /^wss?:$/.test(url.protocol) ? gatewayBase.replace(/^http/, 'ws') : gatewayBase;
  return `${base}${path}${url.search}`;
}

/**
 * Rewrites RivetKit's metadata reply so that the client stays on the gateway: an absolute
 * `clientEndpoint` (which the client would adopt, with any `clientToken` and `clientNamespace`)
 * becomes the gateway's `/actors`, and any other URL naming the upstream's host names the gateway
 * instead. Without a known gateway base, `clientEndpoint` is dropped: the client then keeps the
 * endpoint it has, which is the gateway.
 */
export function rewriteActorMetadata(
  gatewayBase: string | undefined,
  upstreamBase: string,
): (document: unknown) => void {
  const upstream = new URL(upstreamBase);
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach((item, index) => {
        if (typeof item !== 'string') return visit(item);
        const url = parsedUrl(item);
        if (gatewayBase && url?.hostname === upstream.hostname)
          node[index] = ontoGateway(url, gatewayBase, upstream);
      });
      return;
    }
    if (!isPlainObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if (typeof value !== 'string') {
        visit(value);
        continue;
      }
      const url = parsedUrl(value);
      if (!url) continue;
      if (key === 'clientEndpoint') {
        if (gatewayBase) node[key] = `${gatewayBase}${ACTORS_PATH}`;
        else delete node.clientEndpoint;
      } else if (gatewayBase && url.hostname === upstream.hostname) {
        node[key] = ontoGateway(url, gatewayBase, upstream);
      }
    }
  };
  return visit;
}
