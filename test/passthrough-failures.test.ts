import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseGrpcTimeout } from '../src/passthrough/grpc-wire.ts';
import { BackendUpstream } from '../src/upstream/backend-upstream.ts';
import { methodPath, rawClient, ser, startBackend } from './helpers/passthrough-backend.ts';
import type { TestBackend } from './helpers/passthrough-backend.ts';
import { collect, startGateway, unary } from './helpers/passthrough-gateway.ts';
import { startDelayedRelay, startRawBackend } from './helpers/passthrough-raw-backend.ts';
import type { RawBackend } from './helpers/passthrough-raw-backend.ts';

/** A port with nothing listening: bind, read the port, close. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('passthrough: failure modes', () => {
  let raw: RawBackend;
  let echo: TestBackend;
  let dead: number;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  let client: grpc.Client;

  before(async () => {
    raw = await startRawBackend();
    echo = await startBackend();
    dead = await deadPort();
    gateway = await startGateway([
      { name: 'raw', endpoints: [`127.0.0.1:${raw.port}`], services: ['raw.Raw'] },
      { name: 'nowhere', endpoints: [`127.0.0.1:${dead}`], services: ['acme.down.*'] },
      { name: 'failover', endpoints: [`127.0.0.1:${dead}`, `127.0.0.1:${echo.port}`], services: ['test.passthrough.v1.Echo'] },
    ]);
    client = rawClient(gateway.target);
  });
  after(async () => {
    client.close();
    await gateway.close({ graceMs: 100 });
    await raw.close();
    await echo.close();
  });

  const table: Array<[string, grpc.status, RegExp]> = [
    ['Refused', grpc.status.UNAVAILABLE, /error code 7/],
    ['Cancel', grpc.status.CANCELLED, /error code 8/],
    ['Internal', grpc.status.INTERNAL, /error code 2/],
    ['Calm', grpc.status.RESOURCE_EXHAUSTED, /error code 11/],
    ['ResetMidStream', grpc.status.INTERNAL, /reset the stream/],
    ['DropConnection', grpc.status.UNAVAILABLE, /connection to backend "raw" lost/],
    ['GoawayError', grpc.status.UNAVAILABLE, /lost/],
    ['NoTrailers', grpc.status.INTERNAL, /sent no grpc-status/],
    ['EndSocket', grpc.status.UNAVAILABLE, /connection to backend "raw" lost/],
  ];
  for (const [method, code, message] of table) {
    test(`backend ${method} -> client sees ${grpc.status[code]}`, async () => {
      const r = await unary(client, `/raw.Raw/${method}`, Buffer.from('x'));
      assert.equal(r.error?.code, code, r.error?.details);
      assert.match(r.error!.details, message);
    });
  }

  test('no reachable endpoint: UNAVAILABLE naming the backend and the endpoint', async () => {
    const r = await unary(client, '/acme.down.v1.Svc/Call', Buffer.from('x'));
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error!.details, /backend "nowhere"/);
    assert.match(r.error!.details, new RegExp(`127\\.0\\.0\\.1:${dead}`));
  });

  test('an unreachable endpoint is skipped for the next one of the same backend', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await unary(client, methodPath('Unary'), Buffer.from('hi'));
      assert.equal(r.error, null);
    }
  });

  test('wrong content-type: HTTP 415', async () => {
    const session = http2.connect(`http://${gateway.target}`);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/raw.Raw/Ok', 'content-type': 'application/json' });
      req.end('{}');
      const status = await new Promise((resolve) => req.on('response', (h) => resolve(h[':status'])));
      assert.equal(status, 415);
      const getReq = session.request({ ':method': 'GET', ':path': '/raw.Raw/Ok', 'content-type': 'application/grpc' });
      getReq.end();
      assert.equal(await new Promise((resolve) => getReq.on('response', (h) => resolve(h[':status']))), 405);
    } finally {
      session.close();
    }
  });

  test('HTTP/1.1 request on the h2c port: 426 and the connection closes (no hang)', async () => {
    const socket = net.connect(gateway.address.port, '127.0.0.1');
    socket.write('POST /raw.Raw/Ok HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\n\r\n');
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    await new Promise((resolve) => socket.on('close', resolve));
    assert.match(text, /^HTTP\/1\.1 426 /);
    assert.match(text, /gRPC over HTTP\/2/);
  });
});

describe('passthrough: the gateway loses its own backend connection mid-response', () => {
  let raw: RawBackend;
  before(async () => {
    raw = await startRawBackend();
  });
  after(() => raw.close());

  // The balancer the gateway shares with transcoding; closing it is what a drain or a DNS change does to a backend.
  const balancer = (port: number): BackendUpstream =>
    new BackendUpstream({
      name: 'raw',
      endpoints: [{ address: `127.0.0.1:${port}`, weight: 1 }],
      policy: 'round_robin',
      resolveIntervalMs: 30_000,
      pool: {},
      healthCheck: { enabled: false, intervalMs: 5000, timeoutMs: 1000, service: '', healthyThreshold: 1, unhealthyThreshold: 2 },
      outlierDetection: { enabled: false, consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
    });

  test('session torn down without an error mid-response (no GOAWAY or RST_STREAM from the backend) -> UNAVAILABLE', async (t) => {
    // The balancer closing its pools destroys the session without an error: node:http2 then closes the open stream
    // with no error and rstCode NO_ERROR, which looks like a clean end of a response without trailers (INTERNAL,
    // "sent no grpc-status"). It is a lost connection. The backend's own failure modes (GOAWAY, a closed socket)
    // come with an error or a CANCEL code and are covered above.
    const upstream = balancer(raw.port);
    t.after(() => upstream.close(0));
    const gateway = await startGateway([{ name: 'raw', endpoints: [], services: ['raw.Raw'], upstream }]);
    t.after(() => gateway.close({ graceMs: 0 }));
    const client = rawClient(gateway.target);
    t.after(() => client.close());
    const call = client.makeServerStreamRequest('/raw.Raw/HoldAfterFirst', ser, ser, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 10_000 });
    const result = collect(call);
    await new Promise((resolve) => call.once('data', resolve));
    await upstream.close(0);
    const { messages, status } = await result;
    assert.deepEqual(messages.map(String), ['first']);
    assert.equal(status.code, grpc.status.UNAVAILABLE, status.details);
    assert.match(status.details, /connection to backend "raw" lost/);
  });

  test('grpc-timeout reaches the backend reduced by the time the call waited for a connection', async (t) => {
    const delayMs = 400;
    const relay = await startDelayedRelay(raw.port, delayMs);
    t.after(() => relay.close());
    const gateway = await startGateway([{ name: 'slow', endpoints: [`127.0.0.1:${relay.port}`], services: ['raw.Raw'] }]);
    t.after(() => gateway.close({ graceMs: 0 }));
    const client = rawClient(gateway.target);
    t.after(() => client.close());
    const deadlineMs = 20_000;
    const r = await unary(client, '/raw.Raw/EchoTimeout', Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
    assert.equal(r.error, null, r.error?.details);
    const forwarded = parseGrpcTimeout(String(r.trailers!.get('x-grpc-timeout')[0]));
    assert.ok(forwarded !== undefined, `backend got grpc-timeout ${String(r.trailers!.get('x-grpc-timeout')[0])}`);
    // The first connection to the backend took at least delayMs, all of it spent at the gateway.
    assert.ok(forwarded <= deadlineMs - delayMs, `forwarded ${forwarded} ms of a ${deadlineMs} ms deadline after waiting ${delayMs} ms`);
    assert.ok(forwarded > 0);
  });
});
