/**
 * A node:http2 backend that misbehaves on purpose, for failure modes grpc-js servers never produce: RST_STREAM
 * with a chosen code, GOAWAY, a lost connection, a body without trailers, a response that stops mid-way; and one
 * that echoes the grpc-timeout it was given. The method name picks the behaviour.
 * Also counts sessions and pings, and can send GOAWAY on demand (graceful drain tests).
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';

const C = http2.constants;

export interface RawBackend {
  port: number;
  sessions: ServerHttp2Session[];
  pings: number;
  /** Streams held open by `/raw.Raw/Hold`, in arrival order; `release(i)` completes one with OK. */
  held: ServerHttp2Stream[];
  release(i: number): void;
  close(): Promise<void>;
}

function grpcFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export async function startRawBackend(settings: http2.Settings = {}): Promise<RawBackend> {
  const server = http2.createServer({ settings });
  // The raw TCP sockets: node:http2 forbids touching them through a session, and EndSocket needs to.
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const state: RawBackend = {
    port: 0,
    sessions: [],
    pings: 0,
    held: [],
    release(i) {
      const s = state.held[i];
      if (s.destroyed) return;
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end(grpcFrame(Buffer.from('released')));
    },
    close: () => new Promise((resolve) => {
      for (const s of state.sessions) s.destroy();
      server.close(() => resolve());
    }),
  };
  server.on('session', (session) => {
    state.sessions.push(session);
    session.on('ping', () => state.pings++);
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const method = String(headers[':path']).split('/')[2];
    const ok = { ':status': 200, 'content-type': 'application/grpc' };
    switch (method) {
      case 'Refused': return void stream.close(C.NGHTTP2_REFUSED_STREAM);
      case 'Cancel': return void stream.close(C.NGHTTP2_CANCEL);
      case 'Internal': return void stream.close(C.NGHTTP2_INTERNAL_ERROR);
      case 'Calm': return void stream.close(C.NGHTTP2_ENHANCE_YOUR_CALM);
      case 'ResetMidStream':
        stream.respond(ok);
        // close(code) ends the data first (looks clean to the peer); destroy(err) sends a real RST_STREAM.
        stream.write(grpcFrame(Buffer.from('first')), () => setTimeout(() => stream.destroy(new Error('boom')), 20));
        return;
      case 'DropConnection':
        stream.respond(ok);
        stream.write(grpcFrame(Buffer.from('first')), () => setTimeout(() => stream.session?.destroy(), 20));
        return;
      case 'EndSocket':
        // The backend's TCP connection closes under the stream (no RST_STREAM, no GOAWAY), mid-response.
        stream.respond(ok);
        stream.write(grpcFrame(Buffer.from('first')), () => setTimeout(() => { for (const sock of sockets) sock.destroy(); }, 20));
        return;
      case 'GoawayError':
        return void stream.session?.destroy(undefined, C.NGHTTP2_INTERNAL_ERROR);
      case 'BadStatus':
        // A grpc-status outside the spec's 0-16.
        return void stream.respond({ ...ok, 'grpc-status': '99', 'grpc-message': 'from the future' }, { endStream: true });
      case 'NoTrailers':
        stream.respond(ok);
        stream.end(grpcFrame(Buffer.from('only')));
        return;
      case 'Hold':
        state.held.push(stream);
        return;
      case 'HoldAfterFirst':
        // Mid-response: headers and one message, then nothing until the test does something to the connection.
        stream.respond(ok);
        stream.write(grpcFrame(Buffer.from('first')));
        state.held.push(stream);
        return;
      case 'EchoTimeout':
        // The grpc-timeout this backend was given, back in a trailer.
        stream.respond(ok, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-grpc-timeout': String(headers['grpc-timeout'] ?? '') }));
        stream.end(grpcFrame(Buffer.from('ok')));
        stream.resume();
        return;
      default:
        stream.respond({ ...ok, 'grpc-status': '0' }, { endStream: true });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as net.AddressInfo).port;
  return state;
}

/** A TCP relay that can be frozen: bytes stop flowing both ways but the sockets stay open (a dead peer). */
export async function startFreezableRelay(targetPort: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((a) => {
    const b = net.connect(targetPort, '127.0.0.1');
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    a.on('data', (d) => { if (!frozen) b.write(d); });
    b.on('data', (d) => { if (!frozen) a.write(d); });
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => { frozen = true; },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/**
 * A TCP relay that connects to the target only `delayMs` after a client connects (the client's first bytes wait):
 * an upstream whose connection takes that long to become usable, e.g. a slow TLS handshake.
 */
export async function startDelayedRelay(targetPort: number, delayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer((a) => {
    sockets.add(a);
    a.on('error', () => {});
    a.on('close', () => sockets.delete(a));
    a.pause();
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (a.destroyed) return;
      const b = net.connect(targetPort, '127.0.0.1');
      sockets.add(b);
      b.on('error', () => {});
      b.on('close', () => sockets.delete(b));
      a.pipe(b);
      b.pipe(a);
      a.on('close', () => b.destroy());
      b.on('close', () => a.destroy());
    }, delayMs);
    timers.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((resolve) => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
