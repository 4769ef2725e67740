/** Admin endpoints, metrics, access logs and the graceful drain, on a real gateway and backend. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startRecordingBackend } from './helpers/recording-backend.ts';
import { startGateway } from './helpers/gateway.ts';

const PROTO_DIR = path.resolve('test/protos');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function setup(t: { after(fn: () => Promise<void>): void }, delayMs = 0, shutdown = { drainDelayMs: 0, timeoutMs: 5000 }) {
  const backend = await startRecordingBackend({
    includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')],
    script: () => ({ response: { title: 'ok' }, delayMs }),
  });
  const { logger, lines } = captureLogger();
  const gw = await startGateway({ protos, shutdown, backends: [{ name: 'everything', services: ['testpb.Everything'], endpoints: [backend.address] }] }, process.cwd(), { logger });
  t.after(async () => {
    await gw.close();
    await backend.close();
  });
  return { backend, gw, lines };
}

test('writes one access-log line per request with the route template, gRPC method, codes and request id; never secrets', async (t) => {
  const { gw, lines } = await setup(t);
  const res = await fetch(`${gw.url}/v1/shelves/s1/books/b1`, { headers: { authorization: 'Bearer secret-token', cookie: 'sid=secret-cookie', 'x-request-id': 'abc-123' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-request-id'), 'abc-123');
  await fetch(`${gw.url}/nope`);
  await new Promise((r) => setTimeout(r, 50));
  const access = lines.filter((l) => l['msg'] === 'request');
  assert.equal(access.length, 2);
  assert.equal(access[0]!['route'], 'GET /v1/{name=shelves/*/books/*}');
  assert.equal(access[0]!['grpcMethod'], 'testpb.Everything/GetBook');
  assert.equal(access[0]!['status'], 200);
  assert.equal(access[0]!['grpcCode'], 'OK');
  assert.equal(access[0]!['requestId'], 'abc-123');
  assert.ok(Number(access[0]!['resBytes']) > 0);
  assert.equal(access[1]!['status'], 404);
  assert.equal(access[1]!['route'], null);
  const all = JSON.stringify(lines);
  assert.ok(!all.includes('secret-token') && !all.includes('secret-cookie'), 'no secret in any log line');
});

test('a client that disconnects is logged and counted as 499 CANCELLED, not UNKNOWN', async (t) => {
  const { gw, lines, backend } = await setup(t, 5_000);
  const aborter = new AbortController();
  const pending = fetch(`${gw.url}/v1/shelves/s1/books/gone`, { signal: aborter.signal }).catch((err: Error) => err);
  const deadline = Date.now() + 5_000;
  while (backend.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  aborter.abort();
  assert.ok((await pending) instanceof Error);
  while (!lines.some((l) => l['msg'] === 'request') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const access = lines.filter((l) => l['msg'] === 'request');
  assert.equal(access.length, 1);
  assert.equal(access[0]!['status'], 499);
  assert.equal(access[0]!['grpcCode'], 'CANCELLED');
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  assert.ok(metrics.includes('grpc_method="testpb.Everything/GetBook",grpc_code="CANCELLED",http_status="499"} 1'), metrics);
});

test('generates a request id when absent and forwards it and the W3C trace context as metadata', async (t) => {
  const { gw, backend } = await setup(t);
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const res = await fetch(`${gw.url}/v1/shelves/s1/books/b1`, { headers: { traceparent, tracestate: 'k=v' } });
  const id = res.headers.get('x-request-id');
  assert.match(id ?? '', /^[0-9a-f-]{36}$/);
  const md = backend.received[0]!.metadata;
  assert.deepEqual(md['x-request-id'], [id]);
  assert.deepEqual(md['traceparent'], [traceparent]);
  assert.deepEqual(md['tracestate'], ['k=v']);
});

test('serves /healthz, /readyz and Prometheus /metrics labelled by route template', async (t) => {
  const { gw } = await setup(t);
  assert.equal((await fetch(`${gw.adminUrl}/healthz`)).status, 200);
  assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200);
  await fetch(`${gw.url}/v1/shelves/s1/books/b1`);
  await new Promise((r) => setTimeout(r, 20));
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  assert.match(text, /protogate_http_requests_total\{route="GET \/v1\/\{name=shelves\/\*\/books\/\*\}",grpc_method="testpb\.Everything\/GetBook",grpc_code="OK",http_status="200"\} 1/);
  assert.match(text, /protogate_http_requests_in_flight 0/);
});

test('drains on shutdown: readiness fails at once, in-flight requests finish, then new connections are refused', async (t) => {
  const { gw } = await setup(t, 600, { drainDelayMs: 300, timeoutMs: 5000 });
  const slow = fetch(`${gw.url}/v1/shelves/s1/books/slow`).then(async (r) => ({ status: r.status, body: await r.text() }));
  await new Promise((r) => setTimeout(r, 100));
  const done = gw.gateway.shutdown();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 503, 'readiness fails as soon as draining starts');
  // During the drain delay the REST port still answers new requests.
  const during = await fetch(`${gw.url}/v1/shelves/s1/books/b2`, { headers: { connection: 'close' } });
  assert.equal(during.status, 200);
  const r = await slow;
  assert.equal(r.status, 200, 'the in-flight request finished');
  assert.deepEqual(JSON.parse(r.body), { title: 'ok' });
  await done;
  await assert.rejects(fetch(`${gw.url}/v1/shelves/s1/books/b3`), 'closed listener refuses connections');
});
