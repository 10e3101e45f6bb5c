/** The client side of every measurement: plain node:http, ws and autocannon, all on 127.0.0.1. */
import { request, type Agent, type ClientRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { WebSocket } from 'ws';
import { UPSTREAM_MODEL_HEADER, USER_TOKEN } from './protocol.js';
import { median } from './report.js';

export const MESSAGES_PATH = '/api/provider/anthropic/v1/messages';
export const THREAD_PATH = '/api/threads/T-1';
const SSE_PATH = '/api/provider/anthropic/v1/sse';
const REQUEST_TIMEOUT_MS = 15_000;

const MESSAGE_BODY = JSON.stringify({
  model: 'claude-sonnet-4',
  max_tokens: 1024,
  messages: [{ role: 'user', content: 'Say hello.' }],
});
const AUTH = { authorization: `Bearer ${USER_TOKEN}` };

export interface LoadResult {
  requestsPerSecond: number;
  /** Median response time in ms, from every response (autocannon's own histogram rounds to 1 ms). */
  p50: number;
  /** Responses received, whatever their status. */
  responses: number;
  failures: number;
}

export async function load(
  base: string,
  {
    method,
    path,
    connections,
    seconds,
    headers = AUTH,
  }: {
    method: 'GET' | 'POST';
    path: string;
    connections: number;
    seconds: number;
    /** Sent with every request instead of the user token alone. */
    headers?: Record<string, string>;
  },
): Promise<LoadResult> {
  const times: number[] = [];
  const instance = autocannon({
    url: base + path,
    method,
    connections,
    duration: seconds,
    timeout: 10,
    headers: method === 'POST' ? { ...headers, 'content-type': 'application/json' } : headers,
    ...(method === 'POST' ? { body: MESSAGE_BODY } : {}),
  });
  instance.on('response', (_client, _status, _bytes, responseTime) => times.push(responseTime));
  const result = await instance;
  return {
    requestsPerSecond: result.requests.average,
    p50: median(times),
    responses: times.length,
    failures: result.errors + result.timeouts + result.non2xx,
  };
}

/** Header lines that pad a CLI request: tracing, flags, context, ids and prose, as clients add them. */
const PADDING_LINES: ReadonlyArray<readonly [string, string]> = [
  ['tracestate', 'amp=00f067aa0ba902b7,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'],
  ['baggage', 'userId=alice,serverNode=DF%2028,isProduction=false,team=platform%20tools'],
  [
    'x-amp-feature-flags',
    'tool-streaming,interleaved-thinking,oracle,librarian,subagents,diff-view,mcp-servers',
  ],
  ['x-amp-session-context', '{"cwd":"/home/alice/src/project","shell":"/bin/zsh","os":"linux","arch":"x64"}'],
  ['x-amp-request-id', 'req_01J9ZC3V6Q8WZ4K2N7P5R1T0XY'],
  ['x-amp-note', 'Summarise the failing tests in the CI run and propose a fix for each one of them'],
];

/**
 * What the Amp CLI sends with a provider call (its own headers, the Anthropic SDK's, tracing),
 * padded with further realistic lines to about `bytes` bytes of header text: what the gateway
 * examines for misplaced keys on every request.
 */
export function cliHeaders(authorization: string, bytes = 4096): Record<string, string> {
  const headers: Record<string, string> = {
    authorization,
    accept: 'application/json',
    'accept-encoding': 'gzip, deflate, br, zstd',
    'user-agent': 'amp/0.0.1790142911-g7618fb (linux; x64) node/v20.19.0',
    'x-amp-client-application': 'CLI Execute Mode',
    'x-amp-client-type': 'cli',
    'x-amp-client-version': '0.0.1790142911-g7618fb',
    'x-amp-installation-id': '7f6c1b1e-2b1a-4a55-9f0e-0d1c2b3a4f5e',
    'x-amp-device-fingerprint': 'v1:9c1e2f7a4b6d8e0f1a3c5e7b9d0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f',
    'x-amp-thread-id': 'T-0f9d3c2a-5b7e-4d1f-8a6c-2e4b6d8f0a1c',
    'anthropic-version': '2023-06-01',
    'anthropic-beta': 'interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14',
    'x-stainless-lang': 'js',
    'x-stainless-package-version': '0.60.0',
    'x-stainless-os': 'Linux',
    'x-stainless-arch': 'x64',
    'x-stainless-runtime': 'node',
    'x-stainless-runtime-version': 'v20.19.0',
    'x-stainless-retry-count': '0',
    'x-stainless-timeout': '600',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  };
  const size = (): number =>
    Object.entries(headers).reduce((total, [name, value]) => total + name.length + value.length + 4, 0);
  for (let line = 0; size() < bytes; line++) {
    const [name, value] = PADDING_LINES[line % PADDING_LINES.length]!;
    headers[`${name}-${line}`] = value;
  }
  return headers;
}

/** A request that fails instead of hanging the benchmark. */
function send(
  url: string,
  options: { method?: string; agent?: Agent | false; headers?: Record<string, string | number> },
  onResponse: (res: IncomingMessage, req: ClientRequest) => void,
  reject: (error: Error) => void,
): ClientRequest {
  const req = request(url, { agent: false, ...options, headers: { ...AUTH, ...options.headers } }, (res) => {
    if (res.statusCode !== 200) {
      res.resume();
      reject(new Error(`${url}: HTTP ${res.statusCode}`));
      return;
    }
    res.on('error', reject);
    onResponse(res, req);
  });
  req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${url}: timed out`)));
  req.on('error', reject);
  return req;
}

/**
 * A small request whose JSON answer is returned; for checking what the upstream saw. Anything but
 * a 200 rejects, with the status in the message.
 */
export function fetchJson(
  url: string,
  method: 'GET' | 'POST',
  extraHeaders: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const body = method === 'POST' ? MESSAGE_BODY : undefined;
    const headers: Record<string, string | number> = body
      ? { ...extraHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
      : extraHeaders;
    const req = send(
      url,
      { method, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>),
        );
      },
      reject,
    );
    req.end(body);
  });
}

/** Milliseconds from starting the request to the first `data:` line, over `agent`. */
export function timeToFirstEvent(base: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let elapsed: number | undefined;
    // A short stream that ends on its own, so the client's keep-alive socket is reused.
    const req = send(
      `${base}${SSE_PATH}?events=3&every=5`,
      { agent, headers: { accept: 'text/event-stream' } },
      (res) => {
        let seen = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (elapsed !== undefined) return;
          seen += chunk;
          if (/^data:/m.test(seen)) elapsed = performance.now() - started;
        });
        res.on('end', () =>
          elapsed === undefined ? reject(new Error('SSE ended without an event')) : resolve(elapsed),
        );
      },
      reject,
    );
    req.end();
  });
}

export interface StreamedMessage {
  /** The model the upstream was asked for (it echoes it in a header). */
  upstreamModel: string | undefined;
  /** The `model` of the `message_start` event the client received. */
  clientModel: string | undefined;
  /** `content_block_delta` events the client received. */
  deltas: number;
  /** `data:` lines (events) the client received. */
  events: number;
  /** The whole stream as the client received it. */
  text: string;
  /** Whether the client saw anything naming the model the upstream actually served. */
  leaked: boolean;
}

/**
 * A streamed Anthropic call for `model` (the fake upstream sends `deltas` text deltas as fast as
 * it can), read to the end over `agent`; returns what the client saw, for the driver to check.
 */
export function streamMessage(
  base: string,
  agent: Agent,
  model: string,
  deltas: number,
): Promise<StreamedMessage> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({
      model,
      max_tokens: 4096,
      stream: true,
      messages: [{ role: 'user', content: 'Say hello.' }],
    });
    const req = send(
      `${base}${MESSAGES_PATH}?events=${deltas}`,
      {
        method: 'POST',
        agent,
        headers: {
          accept: 'text/event-stream',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const upstreamModel = res.headers[UPSTREAM_MODEL_HEADER];
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          const start = /^data: (\{"type":"message_start".*)$/m.exec(text);
          let clientModel: string | undefined;
          try {
            clientModel = start
              ? (JSON.parse(start[1]!) as { message?: { model?: string } }).message?.model
              : undefined;
          } catch {
            clientModel = undefined;
          }
          resolve({
            upstreamModel: typeof upstreamModel === 'string' ? upstreamModel : undefined,
            clientModel,
            deltas: text.match(/^data: \{"type":"content_block_delta"/gm)?.length ?? 0,
            events: text.match(/^data:/gm)?.length ?? 0,
            text,
            leaked:
              typeof upstreamModel === 'string' &&
              upstreamModel !== model &&
              text.includes(JSON.stringify(upstreamModel)),
          });
        });
      },
      reject,
    );
    req.end(body);
  });
}

/** Downloads `bytes` and returns the seconds it took. */
export function download(base: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = send(
      `${base}/api/download?bytes=${bytes}`,
      {},
      (res) => {
        let received = 0;
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        res.on('end', () => {
          if (received !== bytes) reject(new Error(`download: got ${received} of ${bytes} bytes`));
          else resolve((performance.now() - started) / 1000);
        });
      },
      reject,
    );
    req.end();
  });
}

/** Uploads `bytes` (with backpressure, as a real client would) and returns the seconds it took. */
export function upload(base: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 'upload ');
    const started = performance.now();
    const req = send(
      `${base}/api/upload`,
      { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': bytes } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () => {
          const { bytes: counted } = JSON.parse(Buffer.concat(parts).toString('utf8')) as { bytes: number };
          if (counted !== bytes) reject(new Error(`upload: upstream counted ${counted} of ${bytes} bytes`));
          else resolve((performance.now() - started) / 1000);
        });
      },
      reject,
    );
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes) {
        const part = bytes - sent >= chunk.length ? chunk : chunk.subarray(0, bytes - sent);
        sent += part.length;
        if (!req.write(part)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/** Something held open that can be let go of. */
export interface Held {
  close(): void;
}

/** An SSE stream that has delivered its first event and then stays idle for about a minute. */
export function openIdleStream(base: string): Promise<Held> {
  return new Promise((resolve, reject) => {
    const req = send(
      `${base}${SSE_PATH}?events=2&every=60000`,
      { headers: { accept: 'text/event-stream' } },
      (res) => {
        res.once('data', () => resolve({ close: () => req.destroy() }));
      },
      reject,
    );
    // The timeout guards the opening only; an idle stream must not trip it afterwards.
    req.once('response', () => req.setTimeout(0));
    req.end();
  });
}

/** A WebSocket held open that can send a message and wait for the upstream's echo of it. */
export interface HeldSocket extends Held {
  echo(message: Buffer): Promise<void>;
}

export function openWebSocket(base: string): Promise<HeldSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/ws`, {
      headers: AUTH,
      handshakeTimeout: REQUEST_TIMEOUT_MS,
      perMessageDeflate: false,
    });
    ws.once('open', () =>
      resolve({
        close: () => ws.terminate(),
        echo: (message) =>
          new Promise((echoed) => {
            ws.once('message', () => echoed());
            ws.send(message);
          }),
      }),
    );
    ws.once('unexpected-response', (_req, res) => reject(new Error(`WebSocket: HTTP ${res.statusCode}`)));
    ws.on('error', reject);
  });
}

/** Opens `count` things, at most `concurrency` at a time, so the listen backlog never overflows. */
export async function openMany<T extends Held>(
  count: number,
  concurrency: number,
  open: () => Promise<T>,
): Promise<T[]> {
  const held: T[] = [];
  for (let start = 0; start < count; start += concurrency) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(concurrency, count - start) }, open),
    );
    for (const outcome of batch) if (outcome.status === 'fulfilled') held.push(outcome.value);
    const failed = batch.find((outcome) => outcome.status === 'rejected');
    if (failed) {
      for (const item of held) item.close();
      throw failed.reason;
    }
  }
  return held;
}
