// A company-internal Amp gateway: SSO in front of the routes that spend money, every user on
// their own Amp key, provider calls counted per user.
// Run from this folder: npm install && node server.mjs   (see README.md)
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { ampManagementProxy, ampProviderProxy, ampRouter, attachUpgrade } from 'amp-proxy-middleware';

/** `[{ key, name, upstreamKey }]` from a JSON file: keys belong in a secret store, not in env. */
function readClients(file) {
  if (!file) {
    throw new Error('set AMP_GATEWAY_CLIENTS_FILE to a JSON file of [{ "key", "name", "upstreamKey" }]');
  }
  return JSON.parse(readFileSync(file, 'utf8'));
}

export function createGateway({
  upstream = process.env.AMP_UPSTREAM ?? 'https://ampcode.com',
  clients = readClients(process.env.AMP_GATEWAY_CLIENTS_FILE),
  // Set by the identity-aware proxy in front of the gateway (oauth2-proxy, Pomerium, IAP, …).
  identityHeader = process.env.IDENTITY_HEADER ?? 'x-auth-request-email',
  employeeDomain = process.env.EMPLOYEE_DOMAIN ?? 'example.com',
  logger,
} = {}) {
  const header = identityHeader.toLowerCase();

  /**
   * The employee the identity proxy vouches for, or undefined. The header is only as
   * trustworthy as the network: the gateway must be reachable through that proxy alone, and
   * the proxy must overwrite any copy of the header a client sends. It is removed here because
   * Amp has no business knowing who the employee is.
   */
  function takeEmployee(req) {
    const { [header]: value, ...others } = req.headers;
    req.headers = others;
    const email = typeof value === 'string' ? value.trim().toLowerCase() : '';
    return email.endsWith(`@${employeeDomain}`) ? email : undefined;
  }

  // Provider calls per gateway client, counted once a key was spent (refusals spend none).
  const usage = new Map();
  const onProxyEvent = (event) => {
    if (event.type !== 'request-end' || event.group !== 'provider') return;
    if (event.client === undefined || event.keySource === undefined) return;
    usage.set(event.client, (usage.get(event.client) ?? 0) + 1);
  };

  const options = {
    upstream,
    clients,
    // No shared server key (the default, said out loud): a client without an upstreamKey gets
    // 503 amp_upstream_key_missing instead of spending one.
    upstreamKey: null,
    // The Amp CLI sends its gateway key alone and gets its mapped Amp key upstream. Tools that
    // hold the user's own Amp token send it in `x-amp-token` next to the gateway key, and Amp
    // then sees that token: the gateway key always proves the caller is one of ours.
    policies: { management: 'dual-token' },
    onProxyEvent,
    logger,
  };
  const provider = ampProviderProxy(options);
  const management = ampManagementProxy(options);
  // Actors (the agent's WebSockets) and browser pages. Provider paths are served above; if one
  // ever reaches this router (a reordered mount, a WebSocket), it is refused rather than served
  // without the SSO check.
  const rest = ampRouter({
    ...options,
    policies: { ...options.policies, provider: () => ({ reject: 'amp_client_unauthorized' }) },
  });

  const app = express();
  app.disable('x-powered-by');
  app.use((req, _res, next) => {
    req.employee = takeEmployee(req);
    next();
  });

  function requireEmployee(req, res, next) {
    if (req.employee) return next();
    res.status(401).json({
      error: 'employee_sso_required',
      message: `sign in through the company SSO proxy with an @${employeeDomain} account`,
    });
  }

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/gateway/usage', requireEmployee, (_req, res) => {
    res.json(Object.fromEntries(usage));
  });

  // Provider routes spend money: only employees, and only with a valid gateway key (the
  // library answers 401 amp_client_unauthorized without one). Management routes act as the
  // user and Amp checks their token itself, so they need no SSO.
  app.use('/api/provider', requireEmployee, provider);
  app.use('/api', management);
  app.use(rest);

  // Express middleware never sees WebSocket upgrades, so the SSO rule is applied here too.
  const upgrade = (req, socket, head) => {
    const employee = takeEmployee(req);
    // Spellings an upstream could read as a provider path (`/api/%70rovider`) are refused by
    // the management group itself, so the SSO rule cannot be walked around.
    return (
      management.upgrade(req, socket, head) ||
      (employee !== undefined && provider.upgrade(req, socket, head)) ||
      rest.upgrade(req, socket, head)
    );
  };

  const close = () => Promise.all([provider.close(), management.close(), rest.close()]);
  return { app, upgrade, usage, close };
}

/** Starts the gateway on `host:port` (port 0 picks a free one). */
export async function startServer({ port = 8317, host = '127.0.0.1', ...options } = {}) {
  const gateway = createGateway(options);
  const server = createServer(gateway.app);
  attachUpgrade(server, gateway);

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}`;

  return {
    ...gateway,
    server,
    url,
    /** Stops accepting, lets open requests finish for `graceMs`, then cuts what is left. */
    async close(graceMs = 10_000) {
      const closed = new Promise((resolve) => server.close(resolve));
      await gateway.close();
      const deadline = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(deadline);
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // pino fits as is (`logger: pino()`); this prints the same object-first lines to the console.
  const line = (level) => (object, message) => console.log(JSON.stringify({ level, message, ...object }));
  const running = await startServer({
    port: Number(process.env.PORT ?? 8317),
    host: process.env.HOST ?? '127.0.0.1',
    logger: { info: line('info'), warn: line('warn'), error: line('error') },
  });
  console.log(`internal-gateway listening on ${running.url}`);
  console.log(`Amp routes go to ${process.env.AMP_UPSTREAM ?? 'https://ampcode.com'}`);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      running.close().then(() => process.exit(0));
    });
  }
}
