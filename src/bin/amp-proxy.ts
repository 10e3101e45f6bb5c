#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadAmpConfig } from '../config/load-config.js';
import { AmpProxyConfigError } from '../errors.js';
import { printableConfig, startGateway } from '../gateway/gateway.js';

const SHUTDOWN_GRACE_MS = 10_000;
const USAGE = `Usage: amp-proxy [--config FILE] [--port N] [--host H] [--print-config]

A standalone Amp gateway. Provider routes spend the server key; every other route forwards the
user's own token. Configuration comes from an amp-proxy config file (.amp-proxyrc, .amp-proxyrc.json,
.amp-proxyrc.yaml, amp-proxy.config.js, package.json "ampProxy", ...) searched from the current
directory, with env overrides: AMP_PROXY_UPSTREAM, AMP_API_KEY, AMP_PROXY_PORT, AMP_PROXY_HOST.

  --config FILE    load this config file instead of searching
  --port N         listen port (default 8317)
  --host H         listen address (default 127.0.0.1)
  --print-config   print the effective configuration (secrets redacted) and exit
  --help           show this help`;

function usageError(message: string): never {
  process.stderr.write(`amp-proxy: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function parsePort(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (value.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    usageError(`--port: expected 0-65535, got "${value}"`);
  }
  return port;
}

async function main(): Promise<void> {
  let values;
  try {
    values = parseArgs({
      options: {
        config: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'print-config': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    usageError((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values['print-config']) {
    const loaded = await loadAmpConfig({ configFile: values.config });
    process.stdout.write(`${JSON.stringify(printableConfig(loaded), null, 2)}\n`);
    return;
  }
  const gateway = await startGateway({
    configFile: values.config,
    port: parsePort(values.port),
    host: values.host,
  });
  const shutdown = (): void => {
    void gateway.shutdown(SHUTDOWN_GRACE_MS).then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  const message =
    error instanceof AmpProxyConfigError ? error.message : String((error as Error).message ?? error);
  process.stderr.write(`amp-proxy: ${message}\n`);
  process.exit(error instanceof AmpProxyConfigError ? 2 : 1);
});
