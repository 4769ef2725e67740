/**
 * src/upstream/h2/connection.ts against real @grpc/grpc-js servers on 127.0.0.1 (the passthrough tests' backend:
 * echo with metadata, scripted errors, hangs, big messages, server streams), and against a raw TCP peer for the
 * protocol violations a grpc-js server would never send.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { H2Connection, H2StreamError, ErrorCode, type H2Stream } from '../src/upstream/h2/connection.ts';
import { methodPath, serviceDefinition, startBackend, type TestBackend } from './helpers/passthrough-backend.ts';

interface Reply {
  headers: Map<string, string>;
  body: Buffer;
  trailers: Map<string, string>;
}

const toMap = (fields: string[]): Map<string, string> => {
  const m = new Map<string, string>();
  for (let i = 0; i < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  return m;
};

/** A gRPC message frame: no compression, 4-byte length, the message. */
function grpcFrame(msg: Buffer): Buffer {
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  msg.copy(f, 5);
  return f;
}

async function connect(port: number, options = {}): Promise<H2Connection> {
  const sock = net.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  return new H2Connection(sock, options);
}

function call(conn: H2Connection, path: string, body: Buffer, metadata: Array<[string, string]> = [],
  opts: { consume?: boolean; onStream?: (s: H2Stream) => void } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let headers: Map<string, string> | undefined;
    const chunks: Buffer[] = [];
    const stream = conn.request([
      [':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'test'],
      ['content-type', 'application/grpc'], ['te', 'trailers'], ...metadata,
    ], {
      onHeaders(fields, end) {
        if (!headers && !end) { headers = toMap(fields); return; }
        resolve({ headers: headers ?? new Map(), body: Buffer.concat(chunks), trailers: toMap(fields) });
      },
      onData(chunk) {
        chunks.push(Buffer.from(chunk));
        if (opts.consume !== false) stream.consumed(chunk.length);
      },
      onError: reject,
    });
    opts.onStream?.(stream);
    stream.write(grpcFrame(body), true);
  });
}

async function withBackend(t: test.TestContext, options?: grpc.ServerOptions): Promise<TestBackend> {
  const backend = await startBackend(options ? { serverOptions: options } : {});
  t.after(() => backend.close());
  return backend;
}

test('h2 connection: a unary call to grpc-js carries metadata both ways, the message and the trailers', { timeout: 20_000 }, async (t) => {
  const backend = await withBackend(t);
  const conn = await connect(backend.port);
  t.after(() => conn.close(true));
  const reply = await call(conn, methodPath('Unary'), Buffer.from('hello'), [['x-tenant', 'acme']]);
  assert.equal(reply.headers.get(':status'), '200');
  assert.equal(reply.headers.get('echo-x-tenant'), 'acme');
  assert.deepEqual(reply.body, grpcFrame(Buffer.from('hello')));
  assert.equal(reply.trailers.get('grpc-status'), '0');
  assert.equal(reply.trailers.get('x-trailer'), 'from-backend');
  assert.equal(backend.calls[0]!.metadata.get('x-tenant')[0], 'acme');
});

test('h2 connection: an error status arrives in the trailers with its message and details', { timeout: 20_000 }, async (t) => {
  const backend = await withBackend(t);
  const conn = await connect(backend.port);
  t.after(() => conn.close(true));
  const reply = await call(conn, methodPath('Unary'), Buffer.from('x'), [['x-behavior', 'error'], ['x-code', String(grpc.status.NOT_FOUND)]]);
  assert.equal(reply.trailers.get('grpc-status'), String(grpc.status.NOT_FOUND));
  assert.equal(decodeURIComponent(reply.trailers.get('grpc-message')!), 'scripted failure: é');
  assert.equal(Buffer.from(reply.trailers.get('grpc-status-details-bin')!, 'base64').toString('latin1'), 'details:\u0000\u00ff');
});

test('h2 connection: 200 concurrent calls on one connection, and a 3 MiB request past the peer\'s 64 KiB windows', { timeout: 20_000 }, async (t) => {
  const backend = await withBackend(t);
  const conn = await connect(backend.port);
  t.after(() => conn.close(true));
  const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => call(conn, methodPath('Unary'), Buffer.from(`m${i}`))));
  replies.forEach((r, i) => assert.deepEqual(r.body.subarray(5).toString(), `m${i}`));
  const big = Buffer.alloc(3 << 20, 9);
  const sized = await call(conn, methodPath('Unary'), big, [['x-behavior', 'size']]);
  assert.equal(sized.body.subarray(5).readBigUInt64BE(), BigInt(big.length));
});

test('h2 connection: a consumer that does not give the window back stops the backend at the stream window', { timeout: 20_000 }, async (t) => {
  const backend = await withBackend(t);
  const streamWindow = 256 << 10;
  const conn = await connect(backend.port, { streamWindow });
  t.after(() => conn.close(true));
  let received = 0;
  let stream: H2Stream | undefined;
  const size = 8 << 20;
  const done = new Promise<Reply>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream = conn.request([[':method', 'POST'], [':scheme', 'http'], [':path', methodPath('ServerStream')], [':authority', 't'],
      ['content-type', 'application/grpc'], ['te', 'trailers'], ['x-behavior', 'big'], ['x-size', String(size)]], {
      onHeaders(fields, end) { if (end) resolve({ headers: new Map(), body: Buffer.concat(chunks), trailers: toMap(fields) }); },
      onData(chunk) { received += chunk.length; chunks.push(Buffer.from(chunk)); },
      onError: reject,
    });
    stream.write(grpcFrame(Buffer.from('go')), true);
  });
  // Nothing is consumed: the backend must stop at our window, however long we wait.
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(received > 0 && received <= streamWindow, `received ${received} bytes with a window of ${streamWindow}`);
  stream!.consumed(received);
  const step = setInterval(() => stream!.consumed(received), 5);
  // From here on every byte is consumed as it arrives.
  const reply = await done.finally(() => clearInterval(step));
  assert.equal(reply.trailers.get('grpc-status'), '0');
  assert.equal(reply.body.length, size + 5);
});

test('h2 connection: reset(CANCEL) cancels the call at the backend', { timeout: 20_000 }, async (t) => {
  const backend = await withBackend(t);
  const conn = await connect(backend.port);
  t.after(() => conn.close(true));
  let stream: H2Stream | undefined;
  const pending = call(conn, methodPath('Unary'), Buffer.from('x'), [['x-behavior', 'hang'], ['x-call-id', 'c1']], { onStream: (s) => { stream = s; } });
  pending.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  stream!.reset();
  const rec = await backend.waitCancelled('c1');
  assert.equal(rec.cancelled, true);
  assert.equal(conn.activeStreams, 0);
  // The connection stays usable.
  assert.equal((await call(conn, methodPath('Unary'), Buffer.from('after'))).trailers.get('grpc-status'), '0');
});

test('h2 connection: PING is answered; the backend\'s GOAWAY lets in-flight calls finish and refuses new streams as unprocessed', { timeout: 20_000 }, async (t) => {
  const server = new grpc.Server();
  let release: (() => void) | undefined;
  server.addService({
    Slow: { path: '/t.S/Slow', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
  }, { Slow: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { release = () => cb(null, c.request); } });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  t.after(() => server.forceShutdown());
  const conn = await connect(port);
  await conn.ping();
  let goaway: number | undefined;
  conn.onGoaway = (last) => { goaway = last; };
  const inflight = call(conn, '/t.S/Slow', Buffer.from('slow'));
  while (!release) await new Promise((r) => setTimeout(r, 10));
  const shutdown = new Promise<void>((r) => server.tryShutdown(() => r()));
  while (goaway === undefined) await new Promise((r) => setTimeout(r, 10));
  assert.equal(conn.available, false);
  assert.throws(() => conn.request([[':method', 'POST']], { onHeaders() {}, onData() {}, onError() {} }),
    (e: unknown) => e instanceof H2StreamError && e.unprocessed && e.code === ErrorCode.REFUSED_STREAM);
  release();
  const reply = await inflight;
  assert.equal(reply.trailers.get('grpc-status'), '0');
  assert.deepEqual(reply.body.subarray(5).toString(), 'slow');
  await shutdown;
});

/** A raw TCP peer: reads the preface, sends SETTINGS, then whatever bytes the test gives it. */
async function rawPeer(t: test.TestContext, send: (sock: net.Socket) => void): Promise<number> {
  const server = net.createServer((sock) => {
    sock.once('data', () => {
      sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
      send(sock);
    });
    sock.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

const headerFrame = (stream: number, flags: number, block: number[]): Buffer => Buffer.from([0, 0, block.length, 1, flags, 0, 0, 0, stream, ...block]);

for (const [name, bytes, code, pattern] of [
  ['a frame larger than our SETTINGS_MAX_FRAME_SIZE', () => Buffer.concat([Buffer.from([0, 0x4e, 0x20, 0, 0, 0, 0, 0, 1]), Buffer.alloc(20000)]), ErrorCode.FRAME_SIZE_ERROR, /FRAME_SIZE_ERROR/],
  ['PUSH_PROMISE (push is disabled)', () => Buffer.from([0, 0, 4, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2]), ErrorCode.PROTOCOL_ERROR, /PUSH_PROMISE/],
  ['a header block that does not decode', () => headerFrame(1, 0x4, [0x80]), ErrorCode.COMPRESSION_ERROR, /COMPRESSION_ERROR.*index 0/],
  ['a frame between HEADERS and its CONTINUATION', () => Buffer.concat([headerFrame(1, 0, [0x88]), Buffer.from([0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]), ErrorCode.PROTOCOL_ERROR, /CONTINUATION expected/],
  ['DATA beyond the stream window', () => Buffer.concat([headerFrame(1, 0x4, [0x88]), Buffer.from([0, 0x40, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(16384), Buffer.from([0, 0x40, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(16384)]), ErrorCode.FLOW_CONTROL_ERROR, /stream window/],
] as const) {
  test(`h2 connection: ${name} fails the call with ${Object.entries(ErrorCode).find(([, v]) => v === code)![0]}`, { timeout: 10_000 }, async (t) => {
    const port = await rawPeer(t, (sock) => setTimeout(() => sock.write(bytes()), 20));
    const conn = await connect(port, { streamWindow: 16384 });
    t.after(() => conn.close(true));
    // Nothing consumed: the DATA case counts on the window not being given back.
    const err = await call(conn, '/x/y', Buffer.from('x'), [], { consume: false }).then(() => assert.fail('the call succeeded'), (e: unknown) => e);
    assert.ok(err instanceof H2StreamError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
  });
}

test('h2 connection: request bodies wait for the peer\'s stream and connection windows and resume on WINDOW_UPDATE', { timeout: 20_000 }, async (t) => {
  // A raw peer announcing a 100-byte stream window, counting the DATA bytes it gets before it grants more.
  let dataBytes = 0;
  let granted = false;
  let resolveFirst: (() => void) | undefined;
  const firstBatch = new Promise<void>((r) => { resolveFirst = r; });
  let peer: net.Socket | undefined;
  const server = net.createServer((sock) => {
    peer = sock;
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let preface = false;
    sock.write(Buffer.from([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 100])); // SETTINGS INITIAL_WINDOW_SIZE = 100
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!preface) { if (buf.length < 24) return; buf = buf.subarray(24); preface = true; }
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3), type = buf[3]!, flags = buf[4]!;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === 6 && !(flags & 1)) sock.write(Buffer.concat([Buffer.from([0, 0, 8, 6, 1, 0, 0, 0, 0]), payload]));
        if (type !== 0) continue;
        dataBytes += len;
        if (!granted) {
          setTimeout(() => resolveFirst!(), 100);
        } else if (flags & 1) {
          // All of it arrived: answer with headers (:status 200) and trailers (grpc-status 0 as a literal).
          sock.write(Buffer.from([0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88]));
          const trailer = [0x00, 11, ...Buffer.from('grpc-status'), 1, 0x30];
          sock.write(Buffer.from([0, 0, trailer.length, 1, 5, 0, 0, 0, 1, ...trailer]));
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const conn = await connect((server.address() as net.AddressInfo).port);
  t.after(() => conn.close(true));
  // The peer's SETTINGS come before its PING ACK: from here on the stream window is 100. (Bytes sent before a
  // client has seen the peer's SETTINGS may use the default 65,535: RFC 9113 lets the window go negative then.)
  await conn.ping();
  const reply = call(conn, '/x/y', Buffer.alloc(995, 1)); // 1,000 bytes with the gRPC frame header
  reply.catch(() => undefined); // awaited below; a failed assertion before that must not leave it unhandled
  await firstBatch;
  assert.equal(dataBytes, 100, 'only the announced stream window was sent');
  granted = true;
  // Grant the rest on the stream; the connection window (65,535) is not the limit here.
  peer!.write(Buffer.from([0, 0, 4, 8, 0, 0, 0, 0, 1, 0, 0, 0x03, 0x84])); // WINDOW_UPDATE stream 1, +900
  const r = await reply;
  assert.equal(r.trailers.get('grpc-status'), '0');
  assert.equal(dataBytes, 1000);
});

test('h2 connection: works over TLS with ALPN h2 against a grpc-js TLS server', { timeout: 20_000 }, async (t) => {
  const server = new grpc.Server();
  server.addService(serviceDefinition(), {
    Unary: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, c.request),
    ServerStream: () => {}, ClientStream: () => {}, Bidi: () => {},
  });
  const creds = grpc.ServerCredentials.createSsl(null, [{
    cert_chain: fs.readFileSync('test/fixtures/passthrough-cert.pem'), private_key: fs.readFileSync('test/fixtures/passthrough-key.pem'),
  }], false);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
  t.after(() => server.forceShutdown());
  const sock = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync('test/fixtures/passthrough-cert.pem'), servername: 'localhost', ALPNProtocols: ['h2'] });
  await once(sock, 'secureConnect');
  assert.equal(sock.alpnProtocol, 'h2');
  const conn = new H2Connection(sock);
  t.after(() => conn.close(true));
  const reply = await call(conn, methodPath('Unary'), Buffer.from('over tls'));
  assert.equal(reply.trailers.get('grpc-status'), '0');
  assert.equal(reply.body.subarray(5).toString(), 'over tls');
});

test('h2 connection: ready settles with the peer\'s SETTINGS, and rejects when the connection ends before them', { timeout: 20_000 }, async (t) => {
  const backend = await withBackend(t);
  const conn = await connect(backend.port);
  t.after(() => conn.close(true));
  await conn.ready;
  // A peer that accepts the connection and closes it without a SETTINGS frame.
  const server = net.createServer((sock) => sock.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const dead = await connect((server.address() as net.AddressInfo).port);
  await assert.rejects(dead.ready, (e: unknown) => e instanceof H2StreamError && /connection (closed|error)/.test(e.message));
  assert.equal(dead.available, false);
});

test('h2 connection: a stream reset before its body was written takes no more writes', { timeout: 20_000 }, async (t) => {
  const backend = await withBackend(t);
  const conn = await connect(backend.port);
  t.after(() => conn.close(true));
  const stream = conn.request([[':method', 'POST'], [':scheme', 'http'], [':path', methodPath('Unary')], [':authority', 't'],
    ['content-type', 'application/grpc'], ['te', 'trailers']], { onHeaders() {}, onData() {}, onError() {} });
  stream.reset();
  assert.throws(() => stream.write(grpcFrame(Buffer.from('late')), true), /write after end/);
  // The connection is unharmed: nothing was sent on the reset stream.
  assert.equal((await call(conn, methodPath('Unary'), Buffer.from('next'))).trailers.get('grpc-status'), '0');
});
