import { readServerKeyFromEnv } from '../auth/server-key.js';
import { chooseEgressProxy } from '../egress/egress-proxy.js';
import { describeUpstreamCa } from '../egress/trusted-cas.js';
import { redactSecret } from '../observability/redact.js';
import { byGroup } from '../routing/route-groups.js';
import { actorTokenOf, forwardsCookies, type ValidatedOptions } from './validate-options.js';
import type { AmpEffectiveOptions, UpstreamKeySource } from '../types.js';

/** A server key and where it comes from, in words. */
export interface FoundServerKey {
  readonly key: string | undefined;
  readonly origin: string;
}

function redactedOrNull(secret: string | undefined): string | null {
  return secret === undefined ? null : redactSecret(secret);
}

function customOrNone(value: unknown): 'custom' | null {
  return value === undefined ? null : 'custom';
}

/** The key the middleware would spend now when no option names one, found the way it finds it. */
export async function findServerKeyFromEnv(options: ValidatedOptions): Promise<FoundServerKey> {
  const { key, source, variable } = await readServerKeyFromEnv(
    options.upstream.asWritten,
    options.secretsFile,
  );
  const origins: Partial<Record<UpstreamKeySource, string>> = {
    env: `env ${variable}`,
    'secrets-file': `Amp CLI secrets file ${options.secretsFile}`,
  };
  return { key, origin: origins[source] ?? 'none' };
}

/** `serverKey` is the key in force: the options alone do not know it when it comes from env or the Amp CLI. */
export function describeOptions(
  options: ValidatedOptions,
  serverKey: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): AmpEffectiveOptions {
  return {
    upstream: options.upstream.base,
    upstreamKey:
      typeof options.upstreamKey === 'function' ? 'custom' : serverKey ? redactSecret(serverKey) : null,
    clients: options.clients.list.map((client) => ({
      name: client.name ?? null,
      key: redactSecret(client.key),
      upstreamKey: client.upstreamKey ? redactSecret(client.upstreamKey) : null,
    })),
    clientDirectory: options.clients.directory?.description ?? null,
    policies: Object.fromEntries(
      Object.entries(options.policies).map(([group, policy]) => [
        group,
        typeof policy === 'function' ? 'custom' : policy,
      ]),
    ) as AmpEffectiveOptions['policies'],
    tokenHeader: options.tokenHeader,
    timeoutMs: options.timeoutMs,
    secretsFile: options.secretsFile,
    upstreamProxy: chooseEgressProxy(options.upstreamProxy, new URL(options.upstream.base), env).description,
    upstreamCa: options.upstreamCa ? describeUpstreamCa(options.upstreamCa) : null,
    restrictManagementToLocalhost: options.restrictManagementToLocalhost,
    trustedProxies: [...options.trustedProxies],
    hosts: options.hosts ? [...options.hosts] : null,
    logger: customOrNone(options.logger),
    onProxyEvent: customOrNone(options.onProxyEvent),
    usage: options.usage,
    audit: customOrNone(options.audit),
    modelMappings: options.modelMappings.rules.map(({ from, to, regex }) => ({
      from,
      to,
      regex: regex ?? false,
    })),
    localProvider: customOrNone(options.localProvider),
    forceModelMappings: options.forceModelMappings,
    maxBodyBytes: options.maxBodyBytes,
    actorToken: redactedOrNull(actorTokenOf(options)),
    publicUrl: options.publicUrl ?? null,
    identityProxy: options.identityProxy,
    forwardCookies: byGroup((group) => forwardsCookies(options, group)),
    dropHeaders: byGroup((group) => [...options.dropHeaders[group]]),
    limits: options.limits
      ? {
          perClient: options.limits.perClient ?? null,
          perTeam: options.limits.perTeam ?? null,
          store: options.limits.store ? 'redis' : 'memory',
          onStoreError: options.limits.onStoreError,
        }
      : null,
  };
}
