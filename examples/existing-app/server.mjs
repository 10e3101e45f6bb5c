// An Express app with its own routes, compression and CORS, that also serves Amp.
// Run from this folder: npm install && node server.mjs   (see README.md)
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import compression from 'compression';
import cors from 'cors';
import express from 'express';
import { ampRouter, attachUpgrade } from 'amp-proxy-middleware';

/**
 * Builds the app. `upstream` and `upstreamKey` are parameters so that tests (or a staging
 * deployment) can point the Amp routes somewhere other than ampcode.com.
 */
export function createApp({
  upstream = process.env.AMP_UPSTREAM ?? 'https://ampcode.com',
  // Unset, there is no server key: provider routes answer 503 amp_upstream_key_missing. The
  // library reads no key of its environment by itself ('env' would opt in to that).
  upstreamKey = process.env.AMP_SERVER_KEY || undefined,
} = {}) {
  // Created once at startup: a bad option throws here, not on some user's first request.
  const amp = ampRouter({ upstream, upstreamKey });
  const app = express();

  // Covers every response. Amp's event streams are marked `no-transform`, which compression()
  // honours, so agent output still arrives token by token instead of in buffered lumps.
  app.use(compression());

  // Amp goes before cors() and the body parsers:
  // - request bodies (the Amp CLI gzips large ones) then stream to Amp untouched, instead of
  //   being inflated, parsed and rebuilt;
  // - Amp's identity routes act as the user and must never answer a browser's cross-origin
  //   request: the router refuses their preflights itself, and cors() never gets to allow them.
  // Paths that are not Amp's fall through to the routes below.
  app.use(amp);

  app.use(cors());
  app.use(express.json());

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // `/api-docs`, not `/docs`: `/docs` (like `/api/**`, `/actors/**`, `/auth`, `/threads` and
  // `/settings`) belongs to Amp once the router sits at the root. If the app needs those paths
  // itself, give Amp a host name of its own (`ampRouter({ hosts: ['amp.corp.example'] })`): the
  // Amp CLI keeps only the origin of AMP_URL, so a prefix mount cannot reach it.
  app.get('/api-docs', (_req, res) => {
    res.json({ openapi: '3.1.0', info: { title: 'Orders API', version: '1.0.0' }, paths: {} });
  });

  // The app's own JSON API; an in-memory store stands in for a database.
  const orders = [];
  app.get('/v1/orders', (_req, res) => {
    res.json({ orders });
  });
  app.post('/v1/orders', (req, res) => {
    const { sku, quantity } = req.body ?? {};
    if (typeof sku !== 'string' || !Number.isInteger(quantity) || quantity < 1) {
      res
        .status(400)
        .json({ error: 'invalid_order', message: 'expected { sku: string, quantity: integer >= 1 }' });
      return;
    }
    const order = { id: orders.length + 1, sku, quantity };
    orders.push(order);
    res.status(201).json(order);
  });

  return { app, amp };
}

/** Starts the app on `host:port` (port 0 picks a free one) with Amp's WebSockets wired. */
export async function startServer({ port = 8080, host = '127.0.0.1', ...options } = {}) {
  const { app, amp } = createApp(options);
  const server = createServer(app);
  // Express never sees WebSocket upgrades, and Amp's agent transport (/actors/gateway/**) is
  // one. Upgrades to paths that are not Amp's are answered 404. If the app has WebSocket
  // endpoints of its own, call `amp.upgrade(req, socket, head)` first in your own `upgrade`
  // listener instead: it returns false for paths that are not Amp's.
  attachUpgrade(server, amp);

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}`;

  return {
    app,
    amp,
    server,
    url,
    /** Stops accepting, lets open requests finish for `graceMs`, then cuts what is left. */
    async close(graceMs = 10_000) {
      const closed = new Promise((resolve) => server.close(resolve));
      // Agent sessions keep a WebSocket open indefinitely: end them (close code 1001) now.
      await amp.close();
      const deadline = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(deadline);
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const running = await startServer({
    port: Number(process.env.PORT ?? 8080),
    host: process.env.HOST ?? '127.0.0.1',
  });
  console.log(`existing-app listening on ${running.url}`);
  console.log(`Amp routes go to ${process.env.AMP_UPSTREAM ?? 'https://ampcode.com'}`);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      running.close().then(() => process.exit(0));
    });
  }
}
