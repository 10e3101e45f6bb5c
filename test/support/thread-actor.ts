import type { IncomingMessage } from 'node:http';
import type { RawData, WebSocket } from 'ws';
import { WaitableList } from './events.js';

/**
 * A fake of Amp's thread actor: as much of it as `amp -x` needs to send a prompt and print the
 * answer, behind a fake edge (`startAmpEdge({ serveActor: actor.serve })`).
 *
 * What the pinned CLI speaks on `/actors/gateway/threadActor/websocket/` (read in its bundle and
 * seen on the wire): the socket is RivetKit's raw WebSocket, not its action/event connection, so
 * the `rivet_encoding.bare` subprotocol it offers names no framing of these frames. The frames are
 * text JSON-RPC 2.0 messages of Amp's thread protocol (a request carries an `id` and gets a
 * response; a notification's `method` is the message type), plus a `ping` text heartbeat that
 * any server frame answers (no frame for a while and the client reconnects). The inference runs
 * in the actor: the CLI calls no provider route, it receives the assistant's message as events.
 */

type JsonObject = Record<string, unknown>;

/** One message of the thread protocol: a request when it has an `id`, else a notification. */
export interface ThreadFrame {
  id?: string | number;
  method: string;
  params: JsonObject;
}

export interface ThreadActorOptions {
  threadId: string;
  /** The `wsToken` `/api/thread-actors` hands out: a socket whose connection parameters lack it is refused. */
  wsToken: string;
  /** The fake assistant's answer to a user message. */
  answer: (prompt: string) => string;
}

export interface FakeThreadActor {
  /** Serves one actor WebSocket the edge accepted. */
  serve: (socket: WebSocket, req: IncomingMessage) => void;
  /** Every thread-protocol frame clients sent, in arrival order (heartbeats left out). */
  received: WaitableList<ThreadFrame>;
}

/** The close code this fake refuses a socket with when its connection parameters lack the wsToken (its own choice). */
export const ACTOR_REFUSED = 4003;

/** `getThreadTail`'s result for a thread the actor has just created: no message yet. */
export function emptyThreadTail(threadId: string) {
  return {
    thread: {
      data: { id: threadId, v: 0, title: null, agentMode: 'medium', meta: { usesThreadActors: true } },
    },
    messages: [],
    hasMoreBefore: false,
  };
}

/** The connection parameters RivetKit puts in a `rivet_conn_params.<url-encoded JSON>` subprotocol. */
function connectionParams(req: IncomingMessage): JsonObject | undefined {
  const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',');
  const encoded = offered.map((name) => name.trim()).find((name) => name.startsWith('rivet_conn_params.'));
  if (encoded === undefined) return undefined;
  try {
    return JSON.parse(decodeURIComponent(encoded.slice('rivet_conn_params.'.length))) as JsonObject;
  } catch {
    return undefined;
  }
}

function parseFrame(data: RawData): ThreadFrame | undefined {
  try {
    const frame = JSON.parse(data.toString()) as Partial<ThreadFrame>;
    return typeof frame.method === 'string'
      ? { ...frame, method: frame.method, params: frame.params ?? {} }
      : undefined;
  } catch {
    return undefined;
  }
}

function promptOf(params: JsonObject): string {
  const content = Array.isArray(params.content) ? (params.content as { type?: string; text?: string }[]) : [];
  return content
    .filter((block) => block.type === 'text')
    .map((block) => block.text)
    .join('');
}

/**
 * A message id as the protocol shapes them, `M-` and 22 letters or digits: the CLI drops a message
 * whose id has another shape, and `amp -x` then waits for its answer until killed.
 */
function messageId(n: number): string {
  return `M-fakeAnswer${String(n).padStart(12, '0')}`;
}

export function startThreadActor({ threadId, wsToken, answer }: ThreadActorOptions): FakeThreadActor {
  const received = new WaitableList<ThreadFrame>();
  /** The thread's event sequence: the client resumes from the last `seq` it saw. */
  let seq = 0;
  let turns = 0;

  const serve = (socket: WebSocket, req: IncomingMessage): void => {
    if (connectionParams(req)?.wsToken !== wsToken) return socket.close(ACTOR_REFUSED, 'invalid wsToken');
    const send = (frame: ThreadFrame | { id: string | number; result: unknown }): void =>
      socket.send(JSON.stringify({ jsonrpc: '2.0', ...frame }));
    const notify = (method: string, params: JsonObject): void => send({ method, params });

    const runTurn = (params: JsonObject): void => {
      const assistantId = messageId(++turns);
      notify('message_added', {
        seq: ++seq,
        message: { threadId, role: 'user', messageId: params.messageId, content: params.content },
      });
      notify('agent_state', { state: 'working', messageId: assistantId });
      notify('message_added', {
        seq: ++seq,
        message: {
          threadId,
          role: 'assistant',
          messageId: assistantId,
          content: [{ type: 'text', text: answer(promptOf(params)) }],
          state: { type: 'complete' },
        },
      });
      notify('agent_state', { state: 'idle' });
    };

    socket.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'ping') return socket.send('pong');
      const frame = parseFrame(data);
      if (frame === undefined) return socket.close(1003, 'not a thread-protocol frame');
      received.push(frame);
      // Every request is acknowledged; the few that change the thread are then acted on.
      if (frame.id !== undefined) send({ id: frame.id, result: {} });
      if (frame.method === 'executor_connect') {
        notify('executor_connected', {
          executorId: frame.params.clientId,
          registeredToolCount: 0,
          guidanceInventory: [],
        });
      } else if (frame.method === 'client_append_user_msg') {
        runTurn(frame.params);
      }
    });
    // The client counts a connection as live once a frame arrives (an observer waits for one):
    // the real actor opens with state snapshots, this one with who else is watching.
    notify('observers', { count: 0, observers: [] });
  };

  return { serve, received };
}
