/**
 * One proxy under test, alone in its process so that its RSS is its own.
 * Usage (by bench/run.ts): proxy.ts <bare|amp> <upstream url> [mapped|clients]
 * BENCH_BASELINE=hpm3 makes `bare` http-proxy-middleware 3 on http-proxy (the engine amp left),
 * for the record; by default it is http-proxy-middleware 4 on httpxy, amp's own engine.
 * `mapped` (amp only) adds `modelMappings: [{ from: MAPPED_MODEL, to: MAPPED_TO }]`;
 * `clients` (amp only) serves two routers instead of one: without clients under `/no-clients`,
 * with BENCH_CLIENTS gateway clients under `/clients`.
 */
import {
  Agent,
  createServer,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { createProxyMiddleware as createProxyMiddlewareV3 } from 'http-proxy-middleware-v3';
import type * as Clients from '../src/auth/clients.js';
import type * as Credentials from '../src/auth/credentials.js';
import type * as AmpLibrary from '../src/index.js';
import { serveCommands } from './child-runtime.js';
import {
  BENCH_CLIENTS,
  benchGatewayKey,
  MAPPED_MODEL,
  MAPPED_TO,
  SERVER_KEY,
  type ProxyCommands,
} from './protocol.js';
import { median } from './report.js';

const [kind, upstream, variant] = process.argv.slice(2);
if (
  (kind !== 'bare' && kind !== 'amp') ||
  !upstream ||
  (variant !== undefined && ((variant !== 'mapped' && variant !== 'clients') || kind !== 'amp'))
) {
  throw new Error('usage: proxy.ts <bare|amp> <upstream url> [mapped|clients]');
}

function swapAuth(proxyReq: ClientRequest): void {
  proxyReq.removeHeader('authorization');
  proxyReq.removeHeader('x-api-key');
  proxyReq.setHeader('Authorization', `Bearer ${SERVER_KEY}`);
  proxyReq.setHeader('X-Api-Key', SERVER_KEY);
}

const app = express();
const server = createServer(app);
/**
 * The built package is measured, as users run it: tsx's transform of src/ adds its own
 * per-closure cost that the bare proxy (plain JavaScript from node_modules) does not pay.
 */
// BENCH_PACKAGE (an absolute path to another build's dist/esm) lets a phase compare two builds.
const BUILT_PACKAGE = process.env.BENCH_PACKAGE ?? '../dist/esm';
/** What the `recognition` command measures on; set by the `clients` variant. */
let recognitionCost: (() => Promise<number>) | undefined;

/**
 * The CPU time per request that reading credentials takes with `keys` as gateway keys, minus the
 * same without any: the recogniser's own cost. Measured on the header objects of requests this
 * process served (Node's own objects, many of them, so not all in cache, as under load), on the
 * built package's own modules, with the samples of both alternating.
 */
async function measureRecognition(
  served: readonly [IncomingHttpHeaders, string][],
  keys: string[],
): Promise<number> {
  const { readCredentials } = (await import(`${BUILT_PACKAGE}/auth/credentials.js`)) as typeof Credentials;
  const { ClientTable } = (await import(`${BUILT_PACKAGE}/auth/clients.js`)) as typeof Clients;
  const withClients = new ClientTable();
  keys.forEach((key, index) => withClients.add(key, { name: `client-${index}`, upstreamKey: undefined }));
  const withoutClients = new ClientTable();
  const perRequest = (clients: Clients.ClientTable): number => {
    const before = process.cpuUsage();
    for (const [headers, path] of served) readCredentials(headers, path, '', 'x-amp-token', clients);
    const { user, system } = process.cpuUsage(before);
    return (user + system) / served.length;
  };
  const samples: number[] = [];
  for (let round = 0; round < 25; round++) samples.push(perRequest(withClients) - perRequest(withoutClients));
  return median(samples.slice(5)); // the first rounds compile the code paths
}

if (kind === 'bare') {
  // What a host would write by hand: one proxy, one auth rule for every route.
  const options = {
    target: upstream,
    changeOrigin: true,
    agent: new Agent({ keepAlive: true }),
    on: { proxyReq: swapAuth, proxyReqWs: swapAuth },
  };
  const proxy =
    process.env.BENCH_BASELINE === 'hpm3'
      ? createProxyMiddlewareV3<IncomingMessage, ServerResponse>(options)
      : createProxyMiddleware<IncomingMessage, ServerResponse>(options);
  app.use(proxy);
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
    proxy.upgrade(req, socket, head),
  );
} else {
  // Loaded only here, so the bare process does not carry the library's modules in its RSS.
  const { ampRouter, attachUpgrade } = (await import(`${BUILT_PACKAGE}/index.js`)) as typeof AmpLibrary;
  const router = ampRouter({
    upstream,
    upstreamKey: SERVER_KEY,
    // Makes the router read the body of every provider POST, so only its own phase uses it.
    ...(variant === 'mapped' ? { modelMappings: [{ from: MAPPED_MODEL, to: MAPPED_TO }] } : {}),
  });
  if (variant === 'clients') {
    // Both in one process, so that both are measured on the same heap (10,000 clients' worth),
    // JIT state and core: the difference between them is what looking for keys costs. One layer
    // dispatches to both, so that neither pays for passing the other's mount point.
    const clients = Array.from({ length: BENCH_CLIENTS }, (_, index) => ({
      key: benchGatewayKey(index),
      name: `client-${index}`,
    }));
    const withClients = ampRouter({ upstream, upstreamKey: SERVER_KEY, clients });
    const served: [IncomingHttpHeaders, string][] = [];
    app.use((req, res, next) => {
      const prefix = /^\/(no-clients|clients)\//.exec(req.url)?.[1];
      if (!prefix) return next();
      req.url = req.url.slice(prefix.length + 1);
      if (prefix === 'no-clients') return router(req, res, next);
      if (served.length < 2000) served.push([req.headers, req.url]);
      return withClients(req, res, next);
    });
    recognitionCost = () =>
      measureRecognition(
        served,
        clients.map((client) => client.key),
      );
  } else {
    app.use(router);
    attachUpgrade(server, router);
  }
}

// RSS is sampled only between peak-start and peak-stop, so the timer costs nothing elsewhere.
let peak = 0;
let peakTimer: NodeJS.Timeout | undefined;
let maxRssAtStart = 0;
let loopDelay: IntervalHistogram | undefined;
let heapPeak = 0;
let heapTimer: NodeJS.Timeout | undefined;

function collectGarbage(): void {
  // Two passes: the first can only queue finalizers of weakly held objects.
  globalThis.gc?.();
  globalThis.gc?.();
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  serveCommands<ProxyCommands>(`http://127.0.0.1:${port}`, {
    memory: () => {
      collectGarbage();
      const { rss, heapUsed } = process.memoryUsage();
      return { rss, heapUsed };
    },
    'peak-start': () => {
      clearInterval(peakTimer);
      peak = process.memoryUsage.rss();
      maxRssAtStart = process.resourceUsage().maxRSS;
      peakTimer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 2);
      return null;
    },
    cpu: () => {
      const { user, system } = process.cpuUsage();
      return user + system;
    },
    recognition: () => {
      if (!recognitionCost) throw new Error('only the clients variant measures key recognition');
      return recognitionCost();
    },
    'heap-start': () => {
      clearInterval(heapTimer);
      heapPeak = process.memoryUsage().heapUsed;
      heapTimer = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 2);
      return null;
    },
    'heap-stop': () => {
      clearInterval(heapTimer);
      return Math.max(heapPeak, process.memoryUsage().heapUsed);
    },
    'loop-start': () => {
      loopDelay?.disable();
      loopDelay = monitorEventLoopDelay({ resolution: 1 });
      loopDelay.enable();
      return null;
    },
    'loop-stop': () => {
      if (!loopDelay) throw new Error('loop-stop without loop-start');
      loopDelay.disable();
      return { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 };
    },
    'peak-stop': () => {
      clearInterval(peakTimer);
      // A new high-water mark is exact where sampling may miss a short spike.
      const maxRss = process.resourceUsage().maxRSS;
      return Math.max(peak, process.memoryUsage.rss(), maxRss > maxRssAtStart ? maxRss * 1024 : 0);
    },
  });
});
