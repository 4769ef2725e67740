/**
 * End-to-end behaviours of the REST path that a table row cannot express: cancellation when the HTTP client goes
 * away, backpressure from a slow HTTP client into the gRPC stream, and the startup checks that tie protos to
 * backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRecordingBackend, type RecordingBackend } from './helpers/recording-backend.ts';
import { startGateway } from './helpers/gateway.ts';
import { until } from './helpers/wait.ts';
import { StartupError } from '../src/errors/index.ts';

const PROTO_DIR = path.resolve('test/protos');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };

async function setup(t: { after(fn: () => Promise<void>): void }, script: Parameters<typeof startRecordingBackend>[0]['script'], transport: 'h2' | 'socket' = 'h2', backendOptions: { maxHeaderListSize?: number; idleTimeoutMs?: number } = {}) {
  const backend: RecordingBackend = await startRecordingBackend({ includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script });
  const gw = await startGateway({ protos, backends: [{ name: 'everything', services: ['testpb.Everything'], endpoints: [backend.address], transport, ...backendOptions }] });
  t.after(async () => {
    await gw.close();
    await backend.close();
  });
  return { backend, gw };
}

// Cancellation and backpressure are the transport's job: both transports that carry transcoded calls are held to them.
for (const transport of ['h2', 'socket'] as const) {
  test(`a client that disconnects cancels the unary gRPC call at the backend (${transport})`, async (t) => {
    const { backend, gw } = await setup(t, () => ({ response: {}, delayMs: 3000 }), transport);
    const ac = new AbortController();
    const pending = fetch(`${gw.url}/v1/shelves/s/books/b`, { signal: ac.signal }).catch(() => undefined);
    await until(() => backend.received.length === 1, 'the call to reach the backend');
    ac.abort();
    await pending;
    await until(() => backend.received[0]!.cancelled, 'the backend to see the cancellation');
  });

  test(`a client that disconnects mid-stream cancels the server stream at the backend (${transport})`, async (t) => {
    const { backend, gw } = await setup(t, () => ({ generate: { count: 1_000_000, item: (i) => ({ title: `t${i}` }) } }), transport);
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${gw.url}/v1/shelves/s/books:stream`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.setTimeout(5000, () => reject(new Error('no data')));
    });
    await until(() => backend.received[0]?.cancelled === true, 'the backend to see the cancellation');
    assert.ok(backend.received[0]!.written < 1_000_000);
  });

  test(`a slow HTTP client throttles the gRPC stream: the backend stops writing while the client does not read (${transport})`, async (t) => {
    const payload = 'x'.repeat(64 * 1024);
    const count = 20_000; // 1.25 GiB if it were all buffered
    const { backend, gw } = await setup(t, () => ({ generate: { count, item: () => ({ title: payload }) } }), transport);
    const req = http.get(`${gw.url}/v1/shelves/s/books:stream`);
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
    res.pause();
    await until(() => (backend.received[0]?.written ?? 0) > 0, 'the stream to start');
    // Let every buffer between backend and client fill up, then check it stopped.
    let last = -1;
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      const now = backend.received[0]!.written;
      if (now === last) break;
      last = now;
    }
    const stalled = backend.received[0]!.written;
    await sleep(300);
    assert.equal(backend.received[0]!.written, stalled, 'the backend is blocked while the client does not read');
    // Socket buffers and HTTP/2 windows hold a few MiB at most: far fewer than the 20,000 messages on offer.
    assert.ok(stalled < 400, `backend wrote ${stalled} messages of 64 KiB with a paused client`);
    // Reading again lets the stream go on.
    res.resume();
    await until(() => backend.received[0]!.written > stalled + 100, 'the stream to resume');
    req.destroy();
    await until(() => backend.received[0]!.cancelled, 'the backend to see the cancellation');
  });
}

test('response headers over backends[].maxHeaderListSize fail the call with 500 INTERNAL; smaller ones pass', async (t) => {
  const { gw } = await setup(t, (_method, request) => ({
    response: {},
    headers: { 'x-size': 'a'.repeat((request as { stringValue?: string }).stringValue === 'big' ? 4000 : 100) },
  }), 'socket', { maxHeaderListSize: 2048 });
  const echo = (v: string) => fetch(`${gw.url}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stringValue: v }) });
  const small = await echo('small');
  assert.equal(small.status, 200);
  assert.equal(small.headers.get('grpc-metadata-x-size')?.length, 100);
  const big = await echo('big');
  assert.equal(big.status, 500);
  const body = (await big.json()) as { code: number; message: string };
  assert.equal(body.code, 13);
  assert.match(body.message, /response headers too large/);
});

test('an upstream connection without calls for backends[].idleTimeoutMs is closed; the next call connects again', async (t) => {
  const { gw } = await setup(t, () => ({ response: {} }), 'socket', { idleTimeoutMs: 200 });
  const connections = async (): Promise<number> => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('protogate_upstream_connections{backend="everything"'));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  const get = () => fetch(`${gw.url}/v1/shelves/s/books/b`).then((r) => r.status);
  assert.equal(await get(), 200);
  assert.equal(await connections(), 1);
  for (const end = Date.now() + 5000; (await connections()) !== 0; await sleep(50)) assert.ok(Date.now() < end, 'the idle connection closed');
  assert.equal(await get(), 200);
  assert.equal(await connections(), 1);
});

test('a service with HTTP rules that no backend serves stops startup, unless allowUnservedServices; then its routes answer 503', async (t) => {
  await assert.rejects(startGateway({ protos, backends: [] }), (err: unknown) => {
    assert.ok(err instanceof StartupError);
    assert.match(err.message, /testpb\.Everything \(everything\.proto\)/);
    assert.match(err.message, /allowUnservedServices/);
    return true;
  });
  const gw = await startGateway({ protos, backends: [], transcoding: { allowUnservedServices: true } });
  t.after(() => gw.close());
  const res = await fetch(`${gw.url}/v1/shelves/s/books/b`);
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { code: 14, message: 'no backend serves testpb.Everything', details: [] });
});

test('a backend naming a service no loaded proto declares stops startup', async () => {
  await assert.rejects(
    startGateway({ protos, backends: [{ name: 'b', services: ['testpb.Everything', 'testpb.Typo'], endpoints: ['127.0.0.1:1'] }] }),
    /backends\[0\]\.services\[1\]: "testpb\.Typo" is not declared by any loaded proto/,
  );
});

test('an unreachable backend answers 503 UNAVAILABLE', async (t) => {
  const gw = await startGateway({ protos, backends: [{ name: 'down', services: ['testpb.*'], endpoints: ['127.0.0.1:1'], timeoutMs: 2000 }] });
  t.after(() => gw.close());
  const res = await fetch(`${gw.url}/v1/shelves/s/books/b`);
  assert.equal(res.status, 503);
  const body = (await res.json()) as { code: number };
  assert.equal(body.code, 14);
});

test('a body over http.bodyLimit answers 413 with a google.rpc.Status', async (t) => {
  const { backend, gw } = await setup(t, () => ({ response: {} }));
  void backend;
  const big = JSON.stringify({ stringValue: 'x'.repeat(5 * 1024 * 1024) });
  const res = await fetch(`${gw.url}/v1/echo`, { method: 'POST', body: big, headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 413);
  const body = (await res.json()) as { code: number; message: string };
  assert.equal(body.code, 8);
  assert.match(body.message, /bodyLimit/);
});
