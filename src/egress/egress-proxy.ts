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

/** The proxy a scheme's variables name, parsed (an invalid value is a configuration error). */
function envProxy(protocol: string, env: NodeJS.ProcessEnv): (EgressProxy & { from: string }) | undefined {
  const variable = firstSet(env, PROXY_VARIABLES[protocol] ?? []);
  if (!variable) return undefined;
  const url = parseProxyUrl(variable.value, true);
  if (!(url instanceof URL)) throw new AmpProxyConfigError(variable.name, url.problem);
  return { url, shown: shownProxy(url), from: variable.name };
}

const NO_PROXY_VARIABLES = ['no_proxy', 'NO_PROXY'];

function exemptBy(noProxy: { name: string; value: string } | undefined, target: URL): string | undefined {
  return noProxy && isExemptFromProxy(noProxy.value, target) ? noProxy.name : undefined;
}

function fromEnv(upstream: URL, env: NodeJS.ProcessEnv): EgressChoice {
  if (!firstSet(env, PROXY_VARIABLES[upstream.protocol] ?? [])) {
    return { proxy: undefined, description: 'direct (no proxy variable set)' };
  }
  const exempting = exemptBy(firstSet(env, NO_PROXY_VARIABLES), upstream);
  if (exempting) return { proxy: undefined, description: `direct (${exempting} exempts ${upstream.host})` };
  const { from, ...proxy } = envProxy(upstream.protocol, env)!;
  return { proxy, description: `${proxy.shown} (from ${from})` };
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

/** How hosts the gateway learns of after it started are reached. */
export interface LaterEgress {
  /** Every proxy `proxyFor` may answer: the redactor must know their credentials from the start. */
  readonly proxies: readonly EgressProxy[];
  proxyFor(target: URL): EgressProxy | undefined;
}

/**
 * The proxy for hosts the gateway learns of after it started (the identity provider the upstream
 * names), decided per host as for the upstream: with `'env'`, each scheme's proxy variable is
 * read and checked now, `NO_PROXY` is applied to each host as it comes.
 */
export function laterEgress(
  setting: UpstreamProxySetting,
  env: NodeJS.ProcessEnv = process.env,
): LaterEgress {
  if (setting !== 'env') {
    const proxy = setting === false ? undefined : { url: setting, shown: shownProxy(setting) };
    return { proxies: proxy ? [proxy] : [], proxyFor: () => proxy };
  }
  const byScheme = new Map(
    Object.keys(PROXY_VARIABLES).map((protocol) => [protocol, envProxy(protocol, env)] as const),
  );
  const noProxy = firstSet(env, NO_PROXY_VARIABLES);
  return {
    proxies: [...byScheme.values()].filter((proxy) => proxy !== undefined),
    proxyFor: (target) => (exemptBy(noProxy, target) ? undefined : byScheme.get(target.protocol)),
  };
}
