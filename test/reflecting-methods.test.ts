import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startGateway as startStandaloneGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { exchangeRaw, RawClient } from './support/raw-client.js';
import {
  ALICE,
  GROUPS,
  HOSTS,
  SERVER_KEY,
  gatewayOptions,
  rawRequest,
  startGateway,
  type FramingGateway,
} from './support/raw-gateway.js';
import { headerValue } from './support/raw-http.js';
import { describeConnections, startRawUpstream, type RawUpstream } from './support/raw-upstream.js';

const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
const WEBSOCKET_HEADERS =
  'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

function assertRefusedMethod(response: {
  status: number;
  text: string;
  header(name: string): string | undefined;
}) {
  assert.equal(response.status, 405, response.text);
  assert.equal(response.header('allow'), ALLOW);
  assert.equal((JSON.parse(response.text) as { error: string }).error, 'amp_method_not_allowed');
  for (const secret of [SERVER_KEY, ALICE.key, ALICE.upstreamKey]) assert.ok(!response.text.includes(secret));
}

function assertUpstreamGotNothing(upstream: RawUpstream): void {
  assert.equal(upstream.connections.length, 0, describeConnections(upstream.connections));
}

for (const host of HOSTS) {
  describe(`${host}: methods that reflect a request are refused before any policy runs`, () => {
    let upstream: RawUpstream;
    let gateway: FramingGateway;
    before(async () => {
      upstream = await startRawUpstream();
      gateway = await startGateway(host, gatewayOptions(upstream.url), { upgrades: true });
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    it('TRACE on every group, with a gateway key and Max-Forwards: 0, gets 405 with Allow; the upstream gets nothing', async () => {
      for (const group of GROUPS) {
        for (const method of ['TRACE', 'trace']) {
          const response = await exchangeRaw(
            gateway.port,
            rawRequest({
              method,
              target: group.target,
              authorization: group.alice.sent,
              label: 'trace',
              headers: 'Max-Forwards: 0\r\n',
            }),
            { method },
          );
          // Node reads methods case-sensitively: a lower-case `trace` is no method it knows.
          if (method === 'trace') assert.equal(response.status, 400, response.raw);
          else assertRefusedMethod(response);
        }
      }
      assertUpstreamGotNothing(upstream);
    });

    it('a WebSocket handshake with TRACE, or any method but GET, is refused the same way', async () => {
      for (const [group, method] of GROUPS.filter(({ group }) => group !== 'browser').flatMap((group) =>
        ['TRACE', 'DELETE', 'POST'].map((method) => [group, method] as const),
      )) {
        const response = await exchangeRaw(
          gateway.port,
          rawRequest({
            method,
            target: group.target,
            authorization: group.alice.sent,
            label: 'ws',
            headers: WEBSOCKET_HEADERS,
          }),
          { method },
        );
        assertRefusedMethod(response);
      }
      assertUpstreamGotNothing(upstream);
    });

    it("TRACK never reaches the middleware: Node's parser answers 400", async () => {
      const response = await exchangeRaw(
        gateway.port,
        rawRequest({
          method: 'TRACK',
          target: GROUPS[0]!.target,
          authorization: GROUPS[0]!.alice.sent,
          label: 'track',
        }),
      );
      assert.equal(response.status, 400, response.raw);
      assertUpstreamGotNothing(upstream);
    });

    it("CONNECT never reaches the middleware: with no 'connect' listener Node closes the connection", async () => {
      for (const target of ['/api/provider/anthropic/v1/messages', 'ampcode.com:443']) {
        const client = await RawClient.open(gateway.port);
        client.write(
          `CONNECT ${target} HTTP/1.1\r\nHost: ampcode.com:443\r\nAuthorization: Bearer ${ALICE.key}\r\n\r\n`,
        );
        await client.whenClosed;
        assert.equal(client.unread, '');
      }
      assertUpstreamGotNothing(upstream);
    });

    it('Max-Forwards is never forwarded', async () => {
      for (const group of GROUPS) {
        const response = await exchangeRaw(
          gateway.port,
          rawRequest({
            method: 'GET',
            target: group.target,
            authorization: group.alice.sent,
            label: 'mf',
            headers: 'Max-Forwards: 0\r\n',
          }),
          { method: 'GET' },
        );
        assert.equal(response.status, 200, response.raw);
      }
      const forwarded = upstream.arrivals().filter(({ request }) => headerValue(request, 'x-case') === 'mf');
      assert.equal(forwarded.length, GROUPS.length);
      for (const { request } of forwarded) assert.equal(headerValue(request, 'max-forwards'), undefined);
    });
  });
}

describe('the standalone gateway refuses CONNECT', () => {
  let upstream: RawUpstream;
  let dir: string;
  let gateway: RunningGateway;
  before(async () => {
    upstream = await startRawUpstream();
    dir = await mkdtemp(join(tmpdir(), 'amp-methods-'));
    await writeFile(
      join(dir, '.amp-proxyrc.json'),
      JSON.stringify({ upstream: upstream.url, upstreamKey: SERVER_KEY }),
    );
    gateway = await startStandaloneGateway({
      cwd: dir,
      port: 0,
      env: {},
      output: new PassThrough(),
      watch: false,
    });
  });
  after(async () => {
    await gateway.shutdown(100);
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('CONNECT, to an Amp path or a host, gets 405 with Allow; TRACE too; the upstream gets nothing', async () => {
    const port = Number(new URL(gateway.url).port);
    for (const target of ['/api/provider/anthropic/v1/messages', 'ampcode.com:443', '/healthz']) {
      const response = await exchangeRaw(
        port,
        `CONNECT ${target} HTTP/1.1\r\nHost: ampcode.com:443\r\nAuthorization: Bearer ${SERVER_KEY}\r\n\r\n`,
        { method: 'CONNECT' },
      );
      assertRefusedMethod(response);
    }
    const trace = await exchangeRaw(
      port,
      rawRequest({ method: 'TRACE', target: '/api/internal', label: 't' }),
      {
        method: 'TRACE',
      },
    );
    assertRefusedMethod(trace);
    assertUpstreamGotNothing(upstream);
  });
});
