import { AsyncLocalStorage } from 'node:async_hooks';

/** What the opening of an upstream connection needs of the client it is for: whether it left. */
export interface WaitingClient {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/**
 * The client whose request is opening an upstream connection. The proxy engine says nothing of a
 * request until a socket is assigned to it, which through an egress proxy is after the tunnel
 * (and its TLS handshake) is open: the agent finds its client here instead, by async context.
 */
const waiting = new AsyncLocalStorage<WaitingClient>();

/** Runs `start`, which hands a request to the proxy engine, so that its connection can see `client` leave. */
export function openingFor<T>(client: WaitingClient, start: () => T): T {
  return waiting.run(client, start);
}

/** The client of the request whose connection is being opened, if it was started by `openingFor`. */
export function waitingClient(): WaitingClient | undefined {
  return waiting.getStore();
}

/** The error a connection attempt fails with when its client has gone: nobody is answered with it. */
export function clientGone(): Error {
  return Object.assign(new Error('the client went away before the upstream connection was open'), {
    code: 'CLIENT_GONE',
  });
}
