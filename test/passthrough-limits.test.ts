import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { methodPath, rawClient, startBackend } from './helpers/passthrough-backend.ts';
import type { TestBackend } from './helpers/passthrough-backend.ts';
import { startGateway, unary } from './helpers/passthrough-gateway.ts';

const cert = readFileSync(new URL('./fixtures/passthrough-cert.pem', import.meta.url));
const key = readFileSync(new URL('./fixtures/passthrough-key.pem', import.meta.url));
const grpcHeaders = (path: string) => ({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });

describe('passthrough: client-side protections', () => {
  let backend: TestBackend;
  before(async () => {
    backend = await startBackend();
  });
  after(() => backend.close());
  const echo = () => [{ name: 'echo', endpoints: [`127.0.0.1:${backend.port}`], services: ['test.passthrough.*'] }];

  test('rapid reset flood (HEADERS + RST_STREAM x 5000): GOAWAY ENHANCE_YOUR_CALM, gateway stays responsive', async (t) => {
    const gateway = await startGateway(echo());
    t.after(() => gateway.close({ graceMs: 0 }));
    const callsBefore = backend.calls.length;
    const rssBefore = process.memoryUsage().rss;
    const session = http2.connect(`http://${gateway.target}`);
    session.on('error', () => {});
    const goaway = new Promise<number>((resolve) => session.on('goaway', (code) => resolve(code)));
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    let sent = 0;
    for (; sent < 5000 && !session.destroyed && !session.closed; sent++) {
      const req = session.request(grpcHeaders(methodPath('Unary')));
      req.on('error', () => {});
      req.close(http2.constants.NGHTTP2_CANCEL);
      if (sent % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    const code = await Promise.race([goaway, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
    session.destroy();
    assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.ok(gateway.stats().calmGoaways >= 1);
    // Reset streams mostly never reach the backend, and none stays open there.
    const reached = backend.calls.length - callsBefore;
    assert.ok(reached < 300, `backend saw ${reached} of ${sent} reset streams`);
    for (let i = 0; i < 100 && gateway.stats().upstream.some((p) => p.sessions.some((s) => s.activeStreams > 0)); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(gateway.stats().upstream.flatMap((p) => p.sessions).reduce((n, s) => n + s.activeStreams, 0), 0);
    assert.ok(process.memoryUsage().rss - rssBefore < 100 * 2 ** 20);
    // Still serving other clients.
    const client = rawClient(gateway.target);
    t.after(() => client.close());
    const r = await unary(client, methodPath('Unary'), Buffer.from('still here'));
    assert.deepEqual(r.response, Buffer.from('still here'));
  });

  test('max concurrent streams per connection is advertised and enforced', async (t) => {
    const gateway = await startGateway(echo(), { limits: { maxConcurrentStreams: 3 } });
    t.after(() => gateway.close({ graceMs: 0 }));
    const session = http2.connect(`http://${gateway.target}`);
    t.after(() => session.destroy());
    session.on('error', () => {});
    const settings = await new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve));
    assert.equal(settings.maxConcurrentStreams, 3);
    // grpc-js honours the limit by queueing: 10 hanging-then-deadline calls never exceed 3 at the backend.
    const client = rawClient(gateway.target);
    t.after(() => client.close());
    const before = backend.calls.length;
    const md = new grpc.Metadata();
    md.set('x-behavior', 'hang');
    const calls = Array.from({ length: 6 }, () => unary(client, methodPath('Unary'), Buffer.from('x'), md, { deadline: Date.now() + 300 }));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(backend.calls.length - before, 3);
    await Promise.all(calls);
  });

  test('request headers above maxHeaderListSize are refused, the connection survives', async (t) => {
    const gateway = await startGateway(echo(), { limits: { maxHeaderListSize: 4096 } });
    t.after(() => gateway.close({ graceMs: 0 }));
    const client = rawClient(gateway.target);
    t.after(() => client.close());
    const md = new grpc.Metadata();
    md.set('x-big', 'a'.repeat(8000));
    const big = await unary(client, methodPath('Unary'), Buffer.from('x'), md);
    assert.notEqual(big.error, null);
    const ok = await unary(client, methodPath('Unary'), Buffer.from('x'));
    assert.equal(ok.error, null);
  });

  test('idle timeout: a connection without streams gets GOAWAY', async (t) => {
    const gateway = await startGateway(echo(), { limits: { idleTimeoutMs: 200 } });
    t.after(() => gateway.close({ graceMs: 0 }));
    const session = http2.connect(`http://${gateway.target}`);
    t.after(() => session.destroy());
    session.on('error', () => {});
    const t0 = Date.now();
    await new Promise((resolve) => session.once('goaway', resolve));
    assert.ok(Date.now() - t0 >= 150);
  });

  test('TLS with ALPN h2: a grpc-js client over TLS reaches the backend; HTTP/1 TLS clients fail fast', async (t) => {
    const gateway = await startGateway(echo(), { tls: { cert, key } });
    t.after(() => gateway.close({ graceMs: 0 }));
    const client = rawClient(`localhost:${gateway.address.port}`, grpc.credentials.createSsl(cert));
    t.after(() => client.close());
    const r = await unary(client, methodPath('Unary'), Buffer.from('over tls'));
    assert.equal(r.error, null);
    assert.deepEqual(r.response, Buffer.from('over tls'));

    // ALPN http/1.1 only: the handshake fails with no_application_protocol.
    const h1 = tls.connect({ port: gateway.address.port, host: '127.0.0.1', ca: cert, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    const alert = await new Promise<Error>((resolve) => h1.on('error', resolve));
    assert.match(alert.message, /no application protocol/);
    // No ALPN at all: the handshake completes and the client reads a 426.
    const socket = tls.connect({ port: gateway.address.port, host: '127.0.0.1', ca: cert, servername: 'localhost' });
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\nhost: localhost\r\n\r\n');
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    await new Promise((resolve) => socket.on('close', resolve));
    assert.match(text, /^HTTP\/1\.1 426 /);
  });

  test('TLS towards the backend: the pool verifies the backend certificate with the configured CA', async (t) => {
    const tlsBackend = await startBackend({});
    t.after(() => tlsBackend.close());
    // The echo backend is h2c; put a TLS passthrough in front of it and chain a second gateway to it over TLS.
    const front = await startGateway(echo(), { tls: { cert, key } });
    t.after(() => front.close({ graceMs: 0 }));
    const chained = await startGateway([
      { name: 'tls-hop', endpoints: [`127.0.0.1:${front.address.port}`], services: ['test.passthrough.*'], tls: { ca: cert, serverName: 'localhost' } },
    ]);
    t.after(() => chained.close({ graceMs: 0 }));
    const client = rawClient(chained.target);
    t.after(() => client.close());
    const r = await unary(client, methodPath('Unary'), Buffer.from('two hops'));
    assert.equal(r.error, null, r.error?.details);
    assert.deepEqual(r.response, Buffer.from('two hops'));
  });
});
