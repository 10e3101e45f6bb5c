#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runKeysCommand } from '../directory/keys-command.js';
import { printableConfig } from '../gateway/config-report.js';
import { loadGatewayConfig, startGateway, type GatewayOptions } from '../gateway/gateway.js';
import { AmpProxyConfigError } from '../index.js';

/** Read first thing: a launcher that dies while the gateway starts must still count as gone. */
const LAUNCHER_PID = process.ppid;
const PARENT_CHECK_MS = 500;
const USAGE = `Usage: amp-proxy [--config FILE] [--port N] [--host H] [--upstream-key-file FILE]
                 [--drain-ms N] [--print-config]
       amp-proxy keys add|list|revoke …   (amp-proxy keys for details)

A standalone Amp gateway. Provider routes spend the server key; every other route forwards the
user's own token. Configuration comes from an amp-proxy config file (.amp-proxyrc, .amp-proxyrc.json,
.amp-proxyrc.yaml, amp-proxy.config.js, package.json "ampProxy", ...) searched from the current
directory, with env overrides: AMP_PROXY_UPSTREAM, AMP_PROXY_UPSTREAM_KEY, AMP_PROXY_PORT,
AMP_PROXY_HOST, AMP_PROXY_DRAIN_MS. SIGTERM or SIGINT drains and exits; SIGHUP reloads the
configuration.
The server key: --upstream-key-file, else AMP_PROXY_UPSTREAM_KEY, else the file's upstreamKey, else
AMP_API_KEY, else the Amp CLI secrets file (amp login); the start table says which one won.

  --config FILE              load this config file instead of searching
  --port N                   listen port (default 8317)
  --host H                   listen address (default 127.0.0.1)
  --upstream-key-file FILE   read the server key from FILE (a key on a command line shows in ps)
  --drain-ms N               on SIGTERM/SIGINT, let requests and streams finish for N ms (default 10000)
  --print-config             print the configuration the gateway would run (secrets redacted) and exit
  --version                  print the version and exit
  -h, --help                 show this help`;

/** This package's version, from its package.json (found upwards: the bin runs from src/ or dist/). */
function version(): string {
  for (let dir = new URL('.', import.meta.url); dir.pathname !== '/'; dir = new URL('..', dir)) {
    try {
      const manifest = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === 'amp-proxy-middleware') return manifest.version ?? 'unknown';
    } catch {
      // not here: look one folder up
    }
  }
  return 'unknown';
}

function usageError(message: string): never {
  process.stderr.write(`amp-proxy: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function parseFlags() {
  try {
    // `npx amp-proxy -- --print-config` hands the separator on.
    const args = process.argv.slice(2);
    return parseArgs({
      args: args[0] === '--' ? args.slice(1) : args,
      options: {
        config: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'upstream-key-file': { type: 'string' },
        'drain-ms': { type: 'string' },
        'print-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    return usageError((error as Error).message);
  }
}

async function main(): Promise<void> {
  // `npx amp-proxy -- keys list` hands the separator on.
  const args = process.argv[2] === '--' ? process.argv.slice(3) : process.argv.slice(2);
  if (args[0] === 'keys') {
    const io = {
      env: process.env,
      out: (text: string) => process.stdout.write(text),
      err: (text: string) => process.stderr.write(text),
    };
    process.exitCode = runKeysCommand(args.slice(1), io);
    return;
  }
  const flags = parseFlags();
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (flags.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const options: GatewayOptions = {
    configFile: flags.config,
    port: flags.port,
    host: flags.host,
    upstreamKeyFile: flags['upstream-key-file'],
    drainMs: flags['drain-ms'],
  };
  if (flags['print-config']) {
    // Loaded as the gateway loads it: what it would refuse is refused here too.
    const loaded = await loadGatewayConfig(options);
    process.stdout.write(`${JSON.stringify(printableConfig(loaded), null, 2)}\n`);
    return;
  }
  // The daemon convention: SIGHUP reloads (a bad file keeps the running configuration). Listened
  // for before the start table is printed: a SIGHUP sent once it shows must not end the process;
  // one that comes while starting has nothing to reload, the file being read afresh.
  const started: { gateway?: Awaited<ReturnType<typeof startGateway>> } = {};
  process.on('SIGHUP', () => void started.gateway?.reload());
  const gateway = await startGateway(options);
  started.gateway = gateway;
  const shutdown = (): void => {
    void gateway.shutdown().then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  drainWhenLauncherExits(shutdown);
}

/**
 * Under `npm start` or `npx amp-proxy`, a supervisor's SIGTERM goes to npm, whose `sh -c` dies
 * without passing it on: the gateway would live on under PID 1. Started by npm, the gateway takes
 * its parent's exit as that signal. (Started any other way — `nohup`, a service manager — it does
 * not, so a shell that exits does not stop it.)
 */
function drainWhenLauncherExits(shutdown: () => void): void {
  if (process.env.npm_lifecycle_event === undefined) return;
  const timer = setInterval(() => {
    if (process.ppid === LAUNCHER_PID) return;
    clearInterval(timer);
    shutdown();
  }, PARENT_CHECK_MS);
  timer.unref();
}

main().catch((error: unknown) => {
  const message =
    error instanceof AmpProxyConfigError ? error.message : String((error as Error).message ?? error);
  process.stderr.write(`amp-proxy: ${message}\n`);
  process.exit(error instanceof AmpProxyConfigError ? 2 : 1);
});
