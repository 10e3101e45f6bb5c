import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import { ampRouter } from '../src/index.js';
import { EDGE_ACTOR_TOKEN, startAmpEdge, type FakeAmpEdge } from './support/amp-edge.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { WaitableList } from './support/events.js';
import { openSocket, startGatewayApp } from './support/gateway-harness.js';
import { ACTOR_REFUSED, startThreadActor, type FakeThreadActor } from './support/thread-actor.js';

/**
 * The exchange `amp -x` has with Amp's thread actor (`npm run test:real-client` runs the real
 * CLI), played by a `ws` client through the gateway in the localhost shape: the CLI's
 * subprotocols, no actor token (the gateway adds it), text JSON-RPC frames both ways.
 */
const THREAD_ID = 'T-00000000-0000-4000-8000-000000000002';
const WS_TOKEN = 'ws-token-thread-actor';
const LOCALHOST_SHAPE = `/actors/gateway/threadActor/websocket/?rvt-namespace=default&rvt-method=get&rvt-key=${THREAD_ID}&rvt-skip-ready-wait=true`;

function protocols(wsToken: string): string[] {
  const params = encodeURIComponent(JSON.stringify({ wsToken, transport: 'json-rpc' }));
  return ['rivet', 'rivet_encoding.bare', 'rivet_skip_ready_wait', `rivet_conn_params.${params}`];
}

interface Frame {
  id?: string;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
}

/** Every text frame the client receives, parsed when it is JSON. */
function framesOf(socket: WebSocket): WaitableList<Frame | string> {
  const frames = new WaitableList<Frame | string>();
  socket.on('message', (data: Buffer) => {
    const text = data.toString();
    frames.push(text.startsWith('{') ? (JSON.parse(text) as Frame) : text);
  });
  return frames;
}

const request = (id: string, method: string, params: Record<string, unknown>) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, params });

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`a thread actor behind the edge, through the gateway (${name})`, () => {
    let actor: FakeThreadActor;
    let edge: FakeAmpEdge;
    let gateway: Awaited<ReturnType<typeof startGatewayApp>>;
    let ws: string;

    before(async () => {
      actor = startThreadActor({
        threadId: THREAD_ID,
        wsToken: WS_TOKEN,
        answer: (prompt) => `echo: ${prompt}`,
      });
      edge = await startAmpEdge({ serveActor: actor.serve });
      gateway = await startGatewayApp(
        express,
        ampRouter({ upstream: edge.url, actorToken: EDGE_ACTOR_TOKEN }),
      );
      ws = gateway.url.replace('http:', 'ws:');
    });
    after(async () => {
      await gateway.close();
      await edge.close();
    });

    it('carries the executor handshake, a prompt and its answer, and the heartbeat', async () => {
      const received = actor.received.mark();
      const socket = await openSocket(`${ws}${LOCALHOST_SHAPE}`, protocols(WS_TOKEN));
      const frames = framesOf(socket);
      socket.send(request('r-1', 'executor_connect', { clientId: 'amp-x-test', handshakeSeq: 1 }));
      await frames.until(0, (got) =>
        got.some((f) => typeof f === 'object' && f.method === 'executor_connected'),
      );
      socket.send(
        request('r-2', 'client_append_user_msg', {
          content: [{ type: 'text', text: 'say hi' }],
          messageId: 'M-0000000000000000000001',
        }),
      );
      const turn = await frames.until(0, (got) =>
        got.some((f) => typeof f === 'object' && f.method === 'agent_state' && f.params?.state === 'idle'),
      );
      socket.send('ping');
      await frames.until(0, (got) => got.includes('pong'));
      socket.close(1000);
      await once(socket, 'close');

      const objects = turn.filter((f): f is Frame => typeof f === 'object');
      assert.deepEqual(
        objects.filter((f) => f.id !== undefined).map((f) => [f.id, f.result]),
        [
          ['r-1', {}],
          ['r-2', {}],
        ],
      );
      const assistant = objects
        .filter((f) => f.method === 'message_added')
        .map((f) => f.params?.message as { role: string; content: unknown })
        .find((message) => message.role === 'assistant');
      assert.deepEqual(assistant?.content, [{ type: 'text', text: 'echo: say hi' }]);
      assert.deepEqual(
        actor.received.since(received).map((f) => f.method),
        ['executor_connect', 'client_append_user_msg'],
      );
      const [handshake] = edge.handshakes.items.slice(-1);
      assert.equal(new URL(handshake!.url, 'http://edge').searchParams.get('rvt-token'), EDGE_ACTOR_TOKEN);
    });

    it('a socket without the wsToken is refused by the actor, and the client learns the close code', async () => {
      const received = actor.received.mark();
      const socket = await openSocket(`${ws}${LOCALHOST_SHAPE}`, protocols('someone-else'));
      const [code] = (await once(socket, 'close')) as [number, Buffer];
      assert.equal(code, ACTOR_REFUSED);
      assert.deepEqual(actor.received.since(received), []);
    });
  });
}
