#!/usr/bin/env node
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { defaultSecretsFile, DEFAULT_UPSTREAM, readAmbientKey } from '../auth/upstream-key.js';
import { DEFAULT_POLICIES } from '../config/resolve-options.js';
import { ampRouter, attachUpgrade } from '../index.js';

const DEFAULT_PORT = 8317;
const DEFAULT_HOST = '127.0.0.1';
const SHUTDOWN_GRACE_MS = 10_000;
const USAGE = `Usage: amp-proxy [--port N] [--host H] [--upstream URL]

Runs a standalone Amp gateway with the default policies: provider routes spend the server key
(AMP_API_KEY or the Amp CLI secrets file), every other route forwards the user's own token.

  --port N        listen port (env AMP_PROXY_PORT, default ${DEFAULT_PORT})
  --host H        listen address (env AMP_PROXY_HOST, default ${DEFAULT_HOST})
  --upstream URL  the Amp server (env AMP_PROXY_UPSTREAM, default ${DEFAULT_UPSTREAM})
  --help          show this help`;

function fail(message: string): never {
  process.stderr.write(`amp-proxy: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) fail(`--port: expected 0-65535, got "${value}"`);
  return port;
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        upstream: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    fail((error as Error).message);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = parsePort(args.port ?? process.env.AMP_PROXY_PORT ?? String(DEFAULT_PORT));
  const host = args.host ?? process.env.AMP_PROXY_HOST ?? DEFAULT_HOST;
  const upstream = args.upstream ?? process.env.AMP_PROXY_UPSTREAM ?? DEFAULT_UPSTREAM;

  let router;
  try {
    router = ampRouter({ upstream });
  } catch (error) {
    fail((error as Error).message);
  }
  const notFound = (res: ServerResponse) => () => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not_found' }));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok' }));
      return;
    }
    router(req, res, notFound(res));
  });
  attachUpgrade(server, router);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  const listening =
    typeof address === 'object' && address ? `http://${host}:${address.port}` : String(address);
  const { source } = await readAmbientKey(upstream, defaultSecretsFile());
  const rows: [string, string][] = [
    ['listening', listening],
    ['upstream', upstream],
    ...Object.entries(DEFAULT_POLICIES).map(([group, policy]): [string, string] => [
      `policy ${group}`,
      policy,
    ]),
    [
      'server key',
      source === 'env' ? 'env AMP_API_KEY' : source === 'secrets-file' ? 'Amp secrets file' : 'none',
    ],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  process.stdout.write(
    `amp-proxy\n${rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n')}\n`,
  );

  const shutdown = (): void => {
    server.close(() => {
      void router.close().then(() => process.exit(0));
    });
    server.closeIdleConnections();
    // Streams still open after the grace period are cut rather than holding the exit forever.
    setTimeout(() => {
      server.closeAllConnections();
      void router.close().then(() => process.exit(0));
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`amp-proxy: ${(error as Error).message ?? String(error)}\n`);
  process.exit(1);
});
