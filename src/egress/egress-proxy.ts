import { AmpProxyConfigError } from '../errors.js';
import { isExemptFromProxy } from './no-proxy.js';
import { parseProxyUrl, shownProxy } from './proxy-url.js';

/** `upstreamProxy` once validated: a proxy URL, `'env'` (the proxy variables decide), or direct. */
export type UpstreamProxySetting = URL | 'env' | false;

/** The proxy connections to the upstream go through. */
export interface EgressProxy {
  readonly url: URL;
  /** Scheme, host and port: what logs, `--print-config` and the start table show. */
  readonly shown: string;
}

/** Which proxy the upstream is reached through, and why, in words for `--print-config`. */
export interface EgressChoice {
  readonly proxy: EgressProxy | undefined;
  readonly description: string;
}

/** Lower case first, as curl reads them; `ALL_PROXY` covers both schemes. */
const PROXY_VARIABLES: Readonly<Record<string, readonly string[]>> = {
  'https:': ['https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'],
  'http:': ['http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'],
};

function firstSet(
  env: NodeJS.ProcessEnv,
  names: readonly string[],
): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return { name, value };
  }
  return undefined;
}

function fromEnv(upstream: URL, env: NodeJS.ProcessEnv): EgressChoice {
  const variable = firstSet(env, PROXY_VARIABLES[upstream.protocol] ?? []);
  if (!variable) return { proxy: undefined, description: 'direct (no proxy variable set)' };
  const noProxy = firstSet(env, ['no_proxy', 'NO_PROXY']);
  if (noProxy && isExemptFromProxy(noProxy.value, upstream)) {
    return { proxy: undefined, description: `direct (${noProxy.name} exempts ${upstream.host})` };
  }
  const url = parseProxyUrl(variable.value, true);
  if (!(url instanceof URL)) throw new AmpProxyConfigError(variable.name, url.problem);
  const shown = shownProxy(url);
  return { proxy: { url, shown }, description: `${shown} (from ${variable.name})` };
}

/**
 * The one place that decides whether the upstream is reached through a proxy. `'env'` reads the
 * proxy variables of `env` for the upstream's scheme and honours `NO_PROXY`; nothing else reads them.
 */
export function chooseEgressProxy(
  setting: UpstreamProxySetting,
  upstream: URL,
  env: NodeJS.ProcessEnv = process.env,
): EgressChoice {
  if (setting === 'env') return fromEnv(upstream, env);
  if (setting === false) return { proxy: undefined, description: 'direct' };
  const shown = shownProxy(setting);
  return { proxy: { url: setting, shown }, description: shown };
}
