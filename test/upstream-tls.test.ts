/** TLS and mTLS towards a backend, configured with files relative to the config file, for both ports. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Code, GatewayError } from '../src/errors/index.ts';
import { Http2Pool } from '../src/upstream/http2-pool.ts';
import { SocketPool } from '../src/upstream/socket-session.ts';
import { startGateway } from './helpers/gateway.ts';
import { serviceDefinition, rawClient, methodPath } from './helpers/passthrough-backend.ts';

const FIX = path.resolve('test/fixtures');
const PROTO_DIR = path.resolve('test/protos');

test('mTLS backend: the gateway presents its client certificate and verifies the server against the CA', async (t) => {
  const seen: string[] = [];
  const port = await startMtlsServer(t, seen);

  // Paths relative to the config file's directory (the repo root for this helper).
  const tls = { caFile: 'test/fixtures/passthrough-cert.pem', certFile: 'test/fixtures/rotated-cert.pem', keyFile: 'test/fixtures/rotated-key.pem', serverName: 'localhost' };
  const gw = await startGateway({
    protos: { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] },
    transcoding: { allowUnservedServices: true },
    backends: [{ name: 'secure', services: ['test.passthrough.*'], endpoints: [`127.0.0.1:${port}`], tls }],
  });
  t.after(() => gw.close());
  const client = rawClient(`127.0.0.1:${gw.gateway.addresses().grpc!.port}`);
  t.after(() => client.close());
  const payload = Buffer.from('over mTLS');
  const echoed = await new Promise<Buffer>((resolve, reject) =>
    client.makeUnaryRequest(methodPath('Unary'), (b: Buffer) => b, (b: Buffer) => b, payload, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r!))));
  assert.deepEqual(echoed, payload);
  assert.deepEqual(seen, ['unary']);
});

/**
 * A grpc-js server on the localhost fixture certificate that requires a client certificate signed by the rotated
 * fixture (self-signed, so it is its own CA). Unary echoes; each call it sees is pushed to `seen`.
 */
async function startMtlsServer(t: { after(fn: () => void): void }, seen: string[] = []): Promise<number> {
  const server = new grpc.Server();
  server.addService(serviceDefinition('test.passthrough.v1.Echo'), {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push('unary');
      cb(null, call.request);
    },
    ServerStream: () => {}, ClientStream: () => {}, Bidi: () => {},
  });
  const creds = grpc.ServerCredentials.createSsl(
    fs.readFileSync(path.join(FIX, 'rotated-cert.pem')),
    [{ cert_chain: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), private_key: fs.readFileSync(path.join(FIX, 'passthrough-key.pem')) }],
    true,
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  // forceShutdown: the gateway's pooled connections to this server close only after this hook.
  t.after(() => server.forceShutdown());
  return port;
}

// With TLS 1.3 the client finishes its handshake before the server has looked at the (missing) client certificate:
// the rejection arrives afterwards as an alert, when Node's http2 already has the socket.
// The pool itself has no deadline: without the fix this request would wait forever.
for (const kind of ['node:http2', 'socket'] as const) {
  test(`a backend that rejects the missing client certificate after the TLS 1.3 handshake: the pool fails fast and backs off (${kind})`, { timeout: 15_000 }, async (t) => {
    const port = await startMtlsServer(t);
    const connectTimeoutMs = 2000;
    const options = {
      tls: { ca: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), serverName: 'localhost' },
      connectTimeoutMs,
    };
    const pool = kind === 'socket' ? new SocketPool(`127.0.0.1:${port}`, options) : new Http2Pool(`127.0.0.1:${port}`, options);
    t.after(() => pool.close());
    const started = Date.now();
    const headers = { ':method': 'POST', ':path': methodPath('Unary'), 'content-type': 'application/grpc', te: 'trailers' };
    await assert.rejects(pool instanceof SocketPool ? pool.request(headers, { handlers: { onHeaders() {}, onData() {}, onError() {} } }) : pool.request(headers), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, Code.UNAVAILABLE);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(err.message, /TLS: .*rejected.*certificate/);
      return true;
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < connectTimeoutMs + 1500, `failed after ${elapsed} ms`);
    const stats = pool.stats();
    assert.deepEqual(stats.sessions, [], 'no session left behind in connecting');
    assert.equal(stats.queued, 0);
    assert.equal(stats.connectFailures, 1);
    assert.equal(stats.connectivity, 'transient_failure', 'the reconnect waits for the backoff');
  });
}

test('a backend that rejects the missing client certificate: both ports answer UNAVAILABLE naming the backend, not at the deadline', { timeout: 60_000 }, async (t) => {
  const port = await startMtlsServer(t);
  const connectTimeoutMs = 2000;
  // One backend per port, so each call meets a fresh connection attempt rather than the other's backoff.
  const tls = { caFile: 'test/fixtures/passthrough-cert.pem', serverName: 'localhost' };
  const gw = await startGateway({
    protos: { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] },
    transcoding: { allowUnservedServices: true },
    backends: [
      { name: 'secure-rest', services: ['testpb.*'], endpoints: [`127.0.0.1:${port}`], tls, connectTimeoutMs, timeoutMs: 20_000 },
      { name: 'secure-grpc', services: ['test.passthrough.*'], endpoints: [`127.0.0.1:${port}`], tls, connectTimeoutMs },
    ],
  });
  t.after(() => gw.close());

  let started = Date.now();
  const res = await fetch(`${gw.url}/v1/shelves/s/books/b`);
  let elapsed = Date.now() - started;
  assert.equal(res.status, 503);
  const body = (await res.json()) as { code: number; message: string };
  assert.equal(body.code, 14);
  assert.match(body.message, /secure-rest/);
  assert.match(body.message, /certificate/);
  assert.ok(elapsed < connectTimeoutMs + 1500, `REST call failed after ${elapsed} ms (its deadline is 20 s)`);

  const client = rawClient(`127.0.0.1:${gw.gateway.addresses().grpc!.port}`);
  t.after(() => client.close());
  started = Date.now();
  const err = await new Promise<grpc.ServiceError | null>((resolve) =>
    client.makeUnaryRequest(methodPath('Unary'), (b: Buffer) => b, (b: Buffer) => b, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (e) => resolve(e)));
  elapsed = Date.now() - started;
  assert.equal(err?.code, grpc.status.UNAVAILABLE, err?.details);
  assert.match(err!.details, /secure-grpc/);
  assert.match(err!.details, /certificate/);
  assert.ok(elapsed < connectTimeoutMs + 1500, `gRPC call failed after ${elapsed} ms (its deadline is 20 s)`);
});
