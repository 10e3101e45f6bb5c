import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { headerValue, parseResponse, type RawResponse } from './raw-http.js';

export type { RawResponse } from './raw-http.js';

/** `RawResponse` with the accessors tests use. */
export interface ClientRawResponse extends RawResponse {
  header(name: string): string | undefined;
  readonly text: string;
  json(): unknown;
}

function withAccessors(response: RawResponse): ClientRawResponse {
  return {
    ...response,
    header: (name) => headerValue(response, name),
    text: response.body.toString('utf8'),
    json: () => JSON.parse(response.body.toString('utf8')),
  };
}

/**
 * One client TCP connection that writes exact bytes and reads responses one at a time, keeping
 * the connection open in between (for `Expect: 100-continue`, pipelining and partial bodies).
 */
export class RawClient {
  readonly socket: Socket;
  private received = Buffer.alloc(0);
  private offset = 0;
  private ended = false;
  private readonly listeners = new Set<() => void>();
  readonly whenClosed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.notify();
    });
    socket.on('error', () => undefined);
    this.whenClosed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.notify();
        resolve();
      }),
    );
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Everything received so far and not consumed as a response, as latin1 text. */
  get unread(): string {
    return this.received.toString('latin1', this.offset);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  write(data: string | Buffer): void {
    if (this.socket.destroyed) return;
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /**
   * The next response on the connection, interim (1xx) ones included. `method` is the request's
   * (no body follows a response to HEAD). Rejects when the connection closes first, or after
   * `timeoutMs`.
   */
  response({
    method = 'GET',
    timeoutMs = 2000,
  }: { method?: string; timeoutMs?: number } = {}): Promise<ClientRawResponse> {
    return new Promise((resolve, reject) => {
      const attempt = (): boolean => {
        const step = parseResponse(this.received, this.offset, { requestMethod: method, closed: this.ended });
        if (step.kind === 'complete') {
          this.offset = step.end;
          resolve(withAccessors(step.message));
          return true;
        }
        if (step.kind === 'error' || this.ended) {
          const why = step.kind === 'error' ? step.reason : 'the connection closed';
          reject(
            new Error(`raw client: no complete response (${why}); received ${JSON.stringify(this.unread)}`),
          );
          return true;
        }
        return false;
      };
      if (attempt()) return;
      const listener = (): void => {
        if (!attempt()) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(
          new Error(
            `raw client: no complete response within ${timeoutMs} ms; received ${JSON.stringify(this.unread)}`,
          ),
        );
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }

  /** The next final (non-1xx) response; interim responses are skipped. */
  async finalResponse(options: { method?: string; timeoutMs?: number } = {}): Promise<ClientRawResponse> {
    for (;;) {
      const response = await this.response(options);
      if (response.status >= 200 || response.status === 101) return response;
    }
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Sends `bytes` on a fresh connection and resolves with the first final response; then hangs up. */
export async function exchangeRaw(
  port: number,
  bytes: string | Buffer,
  options: { method?: string; timeoutMs?: number } = {},
): Promise<ClientRawResponse> {
  const client = await RawClient.open(port);
  try {
    client.write(bytes);
    return await client.finalResponse(options);
  } finally {
    client.destroy();
  }
}
