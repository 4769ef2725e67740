/**
 * The `connecting` state of an upstream session ends within connectTimeoutMs whatever the backend does: accept TCP
 * and stay silent, stall the TLS handshake, or hang up right after it. The pool reports UNAVAILABLE naming the
 * endpoint and backs off, and closing the pool never waits for a backend that does not answer. Last, the grpc-js
 * transport's retry of calls that never reached a backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Code, GatewayError } from '../src/errors/index.ts';
import { Http2Pool, type Http2PoolOptions } from '../src/upstream/http2-pool.ts';
import { SocketPool } from '../src/upstream/socket-session.ts';
import { BackendUpstream, drive, invokerFor, settings, startBackends } from './helpers/upstream-backend.ts';
import { until } from './helpers/wait.ts';

const FIX = path.resolve('test/fixtures');
const headers = { ':method': 'POST', ':path': '/raw.Raw/Ok', 'content-type': 'application/grpc', te: 'trailers' };
const caTls = { ca: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), serverName: 'localhost' };

interface SilentServer {
  port: number;
  /** Bytes received per connection: proof the client got past TCP connect. */
  received: number[];
  close(): Promise<void>;
}

/**
 * Accepts TCP connections, reads everything, never writes a byte and never closes: a hung process, whose kernel
 * still completes the TCP handshake and acknowledges our FIN.
 */
async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<net.Socket>();
  const received: number[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const i = received.push(0) - 1;
    sockets.add(socket);
    socket.on('data', (d) => (received[i] += d.length));
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Both session kinds share the pool and its connect contract: each test below runs on both. */
type AnyPool = Http2Pool | SocketPool;
const KINDS: Array<{ name: string; pool(endpoint: string, options: Http2PoolOptions): AnyPool }> = [
  { name: 'node:http2', pool: (e, o) => new Http2Pool(e, o) },
  { name: 'socket', pool: (e, o) => new SocketPool(e, o as object) },
];
const noHandlers = { onHeaders() {}, onData() {}, onError() {} };
const open = (pool: AnyPool): Promise<unknown> =>
  pool instanceof SocketPool ? pool.request(headers, { handlers: noHandlers }) : pool.request(headers);

async function expectFastUnavailable(pool: AnyPool, boundMs: number, message: RegExp): Promise<void> {
  const started = Date.now();
  await assert.rejects(open(pool), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, Code.UNAVAILABLE);
    assert.match(err.message, new RegExp(pool.endpoint.replaceAll('.', '\\.')));
    assert.match(err.message, message);
    return true;
  });
  const elapsed = Date.now() - started;
  assert.ok(elapsed < boundMs, `failed after ${elapsed} ms`);
  const stats = pool.stats();
  assert.deepEqual(stats.sessions, [], 'no session left behind in connecting');
  assert.equal(stats.connectFailures, 1);
  assert.equal(stats.connectivity, 'transient_failure', 'the reconnect waits for the backoff');
}

// The pool has no deadline of its own: a session stuck in `connecting` would hang these tests, hence the timeouts.
for (const kind of KINDS) {
  test(`a backend that accepts TCP but never speaks HTTP/2 fails the request after connectTimeoutMs (${kind.name})`, { timeout: 15_000 }, async (t) => {
    const silent = await startSilentServer();
    const pool = kind.pool(`127.0.0.1:${silent.port}`, { connectTimeoutMs: 500 });
    t.after(async () => {
      await pool.close();
      await silent.close();
    });
    await expectFastUnavailable(pool, 500 + 1500, /timed out after 500 ms.*SETTINGS/);
    assert.ok(silent.received[0]! > 0, 'the client preface was sent: the timer covered the wait for SETTINGS, not just TCP');
  });

  test(`a TLS backend that accepts TCP but never answers the handshake fails the request after connectTimeoutMs (${kind.name})`, { timeout: 15_000 }, async (t) => {
    const silent = await startSilentServer();
    const pool = kind.pool(`127.0.0.1:${silent.port}`, { connectTimeoutMs: 500, tls: caTls });
    t.after(async () => {
      await pool.close();
      await silent.close();
    });
    await expectFastUnavailable(pool, 500 + 1500, /timed out after 500 ms.*TLS handshake/);
    assert.ok(silent.received[0]! > 0, 'the ClientHello was sent');
  });

  test(`a TLS backend that hangs up right after the handshake fails the request at once, long before connectTimeoutMs (${kind.name})`, { timeout: 15_000 }, async (t) => {
    const server = tls.createServer({
      key: fs.readFileSync(path.join(FIX, 'passthrough-key.pem')),
      cert: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')),
      ALPNProtocols: ['h2'],
    }, (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const pool = kind.pool(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, { connectTimeoutMs: 10_000, tls: caTls });
    t.after(async () => {
      await pool.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    await expectFastUnavailable(pool, 3_000, /closed .*before .*SETTINGS/);
  });

  test(`a backend address that answers HTTP/1 fails at once, saying it did not answer in HTTP/2 (${kind.name})`, { timeout: 15_000 }, async (t) => {
    const server = http.createServer((_req, res) => res.end('not grpc'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const pool = kind.pool(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, { connectTimeoutMs: 10_000 });
    t.after(async () => {
      await pool.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    await expectFastUnavailable(pool, 5_000, /HTTP\/2.*is this its gRPC port, and does it accept HTTP\/2 without TLS \(h2c\)\?/);
  });

  test(`closing the pool while a session is still connecting to a silent backend does not wait for the backend (${kind.name})`, { timeout: 15_000 }, async (t) => {
    const silent = await startSilentServer();
    t.after(() => silent.close());
    const pool = kind.pool(`127.0.0.1:${silent.port}`, { connectTimeoutMs: 60_000 });
    const queued = assert.rejects(open(pool), (err: unknown) => err instanceof GatewayError && err.code === Code.UNAVAILABLE);
    await until(() => silent.received.length === 1 && silent.received[0]! > 0, 'the connection to reach the backend');
    const started = Date.now();
    await pool.close();
    assert.ok(Date.now() - started < 2_000, `close took ${Date.now() - started} ms`);
    await queued;
    assert.deepEqual(pool.stats().sessions, []);
  });
}

test('socket pool: a TLS backend that does not agree to h2 in ALPN fails the request at once, saying so', { timeout: 15_000 }, async (t) => {
  // No ALPNProtocols: the server completes the handshake without selecting a protocol, as an HTTP/1 server would.
  const server = tls.createServer({
    key: fs.readFileSync(path.join(FIX, 'passthrough-key.pem')),
    cert: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')),
  }, (socket) => socket.on('error', () => {}));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pool = new SocketPool(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, { connectTimeoutMs: 10_000, tls: caTls });
  t.after(async () => {
    await pool.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await expectFastUnavailable(pool, 3_000, /did not agree to HTTP\/2 in the TLS handshake \(ALPN: none\)/);
});

// grpc-js reports no structured "never sent" signal, so the invoker matches its text (see grpc-invoker.ts): this
// breaks if an upgrade rewords it.
test('grpc-js transport: a call whose connect was refused is retried on another endpoint', async (t) => {
  const backends = await startBackends(2, 60);
  await backends[0]!.kill();
  const upstream = new BackendUpstream(settings('svc', backends.map((b) => b.address), { policy: 'pick_first' }));
  t.after(async () => {
    await upstream.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  const { byHost, errors } = await drive(invokerFor(upstream, 'grpc-js'), 5, 1);
  assert.deepEqual(errors, []);
  assert.equal(byHost.get(backends[1]!.host), 5);
});
