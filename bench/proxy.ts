/**
 * One proxy under test, alone in its process so that its RSS is its own.
 * Usage (by bench/run.ts): proxy.ts <bare|amp> <upstream url> [mapped]
 * `mapped` (amp only) adds `modelMappings: [{ from: MAPPED_MODEL, to: MAPPED_TO }]`.
 */
import {
  Agent,
  createServer,
  type ClientRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import type * as AmpLibrary from '../src/index.js';
import { serveCommands } from './child-runtime.js';
import { MAPPED_MODEL, MAPPED_TO, SERVER_KEY, type ProxyCommands } from './protocol.js';

const [kind, upstream, variant] = process.argv.slice(2);
if (
  (kind !== 'bare' && kind !== 'amp') ||
  !upstream ||
  (variant !== undefined && (variant !== 'mapped' || kind !== 'amp'))
) {
  throw new Error('usage: proxy.ts <bare|amp> <upstream url> [mapped]');
}

function swapAuth(proxyReq: ClientRequest): void {
  proxyReq.removeHeader('authorization');
  proxyReq.removeHeader('x-api-key');
  proxyReq.setHeader('Authorization', `Bearer ${SERVER_KEY}`);
  proxyReq.setHeader('X-Api-Key', SERVER_KEY);
}

const app = express();
const server = createServer(app);

if (kind === 'bare') {
  // What a host would write by hand: one proxy, one auth rule for every route.
  const proxy = createProxyMiddleware<IncomingMessage, ServerResponse>({
    target: upstream,
    changeOrigin: true,
    agent: new Agent({ keepAlive: true }),
    on: { proxyReq: swapAuth, proxyReqWs: swapAuth },
  });
  app.use(proxy);
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
    proxy.upgrade(req, socket, head),
  );
} else {
  // Loaded only here, so the bare process does not carry the library's modules in its RSS. The
  // built package is measured, as users run it: tsx's transform of src/ adds its own per-closure
  // cost that the bare proxy (plain JavaScript from node_modules) does not pay.
  const builtPackage = '../dist/esm/index.js';
  const { ampRouter, attachUpgrade } = (await import(builtPackage)) as typeof AmpLibrary;
  const router = ampRouter({
    upstream,
    upstreamKey: SERVER_KEY,
    // Makes the router read the body of every provider POST, so only its own phase uses it.
    ...(variant === 'mapped' ? { modelMappings: [{ from: MAPPED_MODEL, to: MAPPED_TO }] } : {}),
  });
  app.use(router);
  attachUpgrade(server, router);
}

// RSS is sampled only between peak-start and peak-stop, so the timer costs nothing elsewhere.
let peak = 0;
let peakTimer: NodeJS.Timeout | undefined;
let maxRssAtStart = 0;

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
    'peak-stop': () => {
      clearInterval(peakTimer);
      // A new high-water mark is exact where sampling may miss a short spike.
      const maxRss = process.resourceUsage().maxRSS;
      return Math.max(peak, process.memoryUsage.rss(), maxRss > maxRssAtStart ? maxRss * 1024 : 0);
    },
  });
});
