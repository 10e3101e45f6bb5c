import type { LoadedAmpConfig } from '../index.js';

/**
 * The configuration as the gateway runs it, secrets redacted: what `--print-config` prints and
 * what a reload compares.
 */
export function printableConfig(loaded: LoadedAmpConfig) {
  return {
    file: loaded.filepath ?? null,
    // JSON drops `undefined`; a setting left unset is shown as such.
    gateway: {
      ...loaded.gateway,
      metricsPath: loaded.gateway.metricsPath ?? null,
      auditLog: loaded.gateway.auditLog ?? null,
      usagePath: loaded.gateway.usagePath ?? null,
    },
    upstreamKeyOrigin: loaded.upstreamKeyOrigin,
    ...loaded.effective,
  };
}

/** The table printed at start: what to check before pointing anyone's Amp CLI at the gateway. */
export function startTable(loaded: LoadedAmpConfig, url: string): string {
  const { effective } = loaded;
  const rows: [name: string, value: string][] = [
    ['listening', url],
    ['config file', loaded.filepath ?? 'none (defaults)'],
    ['upstream', effective.upstream],
    ['upstream proxy', effective.upstreamProxy],
    ...(effective.upstreamCa ? [['upstream CA', effective.upstreamCa] as [string, string]] : []),
    ...Object.entries(effective.policies).map(([group, policy]): [string, string] => [
      `policy ${group}`,
      policy,
    ]),
    ['server key', loaded.upstreamKeyOrigin],
    ['actor token', effective.actorToken ?? 'none: tokenless actor requests go as they came'],
    ['clients', effective.clientDirectory ?? String(effective.clients.length)],
    ['localhost only', effective.restrictManagementToLocalhost ? 'yes (management, actors, browser)' : 'no'],
    ['metrics', loaded.gateway.metricsPath ?? 'off'],
    ['audit log', loaded.gateway.auditLog ?? 'off'],
    ['usage', loaded.gateway.usagePath ?? 'off'],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return `amp-proxy\n${rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n')}\n`;
}
