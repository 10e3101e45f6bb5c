import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express4 from 'express4';
import express5 from 'express';
import { closeServer } from './upstream.js';

type ExpressFactory = typeof express5;

/** Every test that mounts the middleware runs on both supported Express majors. */
export const EXPRESS_VERSIONS: ReadonlyArray<readonly [name: string, express: ExpressFactory]> = [
  ['express 4', express4 as unknown as ExpressFactory],
  ['express 5', express5],
];

export interface RunningApp {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export async function listen(app: Parameters<typeof createServer>[1]): Promise<RunningApp> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, server, close: () => closeServer(server) };
}
