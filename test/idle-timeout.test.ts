/** Stream idle timeouts on both ports: a silent stream is ended and the backend call cancelled; a slow reader is not idle. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startRecordingBackend } from './helpers/recording-backend.ts';
import { startGateway } from './helpers/gateway.ts';
import { until } from './helpers/wait.ts';
import { startBackend, rawClient, methodPath } from './helpers/passthrough-backend.ts';

const PROTO_DIR = path.resolve('test/protos');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };

test('REST: a server stream silent for http.streamIdleTimeoutMs ends with a DEADLINE_EXCEEDED line and cancels the call', async (t) => {
  const backend = await startRecordingBackend({ includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script: () => ({ stream: [{ title: 'a' }], hold: true }) });
  const gw = await startGateway({ protos, http: { streamIdleTimeoutMs: 300 }, backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: [backend.address] }] });
  t.after(async () => { await gw.close(); await backend.close(); });
  const started = Date.now();
  const text = await (await fetch(`${gw.url}/v1/shelves/s/books:stream`)).text();
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, { code?: number; message?: string }>);
  assert.deepEqual(lines[0], { result: { title: 'a' } });
  assert.equal(lines[1]!['error']!.code, 4);
  assert.match(lines[1]!['error']!.message!, /no message for 300 ms \(http\.streamIdleTimeoutMs\)/);
  assert.ok(Date.now() - started < 10_000, 'ended by the idle timeout, not by something much later');
  await until(() => backend.received[0]!.cancelled, 'the backend to see the cancellation');
});

test('REST: waiting on a slow HTTP client does not count as idle', async (t) => {
  const backend = await startRecordingBackend({ includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script: () => ({ generate: { count: 400, item: () => ({ title: 'x'.repeat(64 * 1024) }) } }) });
  const gw = await startGateway({ protos, http: { streamIdleTimeoutMs: 200 }, backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: [backend.address] }] });
  t.after(async () => { await gw.close(); await backend.close(); });
  const body = await new Promise<string>((resolve, reject) => {
    http.get(`${gw.url}/v1/shelves/s/books:stream`, (res) => {
      res.pause();
      setTimeout(() => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.resume();
      }, 800); // four idle periods without reading
    }).on('error', reject);
  });
  const lines = body.trim().split('\n');
  assert.equal(lines.length, 400);
  assert.ok(!body.includes('"error"'));
});

test('gRPC port: a call with no bytes either way for grpc.streamIdleTimeoutMs ends with DEADLINE_EXCEEDED; the backend sees the cancel', async (t) => {
  const backend = await startBackend();
  const gw = await startGateway({ protos, grpc: { streamIdleTimeoutMs: 300 }, transcoding: { allowUnservedServices: true }, backends: [{ name: 'echo', services: ['test.passthrough.*'], endpoints: [`127.0.0.1:${backend.port}`] }] });
  t.after(async () => { await gw.close(); await backend.close(); });
  const client = rawClient(`127.0.0.1:${gw.gateway.addresses().grpc!.port}`);
  t.after(() => client.close());
  const md = new grpc.Metadata();
  md.set('x-behavior', 'hang');
  md.set('x-call-id', 'idle-1');
  const err = await new Promise<grpc.ServiceError>((resolve) =>
    client.makeUnaryRequest(methodPath('Unary'), (b: Buffer) => b, (b: Buffer) => b, Buffer.from('x'), md, (e) => resolve(e!)));
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
  assert.match(err.details, /idle/);
  await backend.waitCancelled('idle-1', 3000);
});
