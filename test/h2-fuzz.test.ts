/**
 * The socket transport against a backend that answers with random HTTP/2 frames (seeded, so a failure replays).
 * With `transport: 'socket'` as the default, anything h2/connection.ts, hpack.ts or the call code throws from a
 * socket callback would take the whole gateway down: every call must end with a result or a gRPC error, within its
 * deadline, and nothing may escape as an uncaught exception (node:test fails the file on one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { SocketPool } from '../src/upstream/socket-session.ts';
import { h2Unary, type CallError } from '../src/upstream/h2-grpc-client.ts';

const CALLS = 400;

/** mulberry32: a small seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK literal without indexing, new name (RFC 7541 6.2.2), short strings only. */
const literal = (name: string, value: string): Buffer =>
  Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);

/** One response script: plausible frames (headers, gRPC DATA, trailers) mixed with random and mangled ones. */
function script(r: () => number): Buffer[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
  const stream = (): number => pick([1, 1, 1, 1, 0, 3, 2, Math.floor(r() * 2 ** 31)]);
  const out: Buffer[] = [];
  if (r() < 0.5) {
    // Half the scripts start like a real answer, so the random tail also reaches the call's later states.
    out.push(frame(1, 4, 1, Buffer.concat([Buffer.from([0x88]), literal('content-type', 'application/grpc')])));
    if (r() < 0.7) out.push(frame(0, 0, 1, Buffer.from([0, 0, 0, 0, 2, 8, 1])));
  }
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) {
    switch (pick(['headers', 'data', 'trailers', 'random', 'random', 'control'] as const)) {
      case 'headers':
        out.push(frame(1, pick([4, 5, 4 | 8, 4 | 0x20, 0]), stream(), Buffer.concat([Buffer.from([pick([0x88, 0x89, 0x8d, 0x80, 0xbe])]), r() < 0.5 ? literal('content-type', 'application/grpc') : bytes(Math.floor(r() * 6))])));
        break;
      case 'data': {
        const len = Math.floor(r() * 12);
        const msg = Buffer.concat([Buffer.from([pick([0, 0, 1])]), Buffer.from([0, 0, 0, pick([len, len, 255])]), bytes(len)]);
        out.push(frame(0, pick([0, 1, 8, 9]), stream(), r() < 0.8 ? msg : msg.subarray(0, Math.floor(r() * msg.length))));
        break;
      }
      case 'trailers':
        out.push(frame(1, pick([5, 5, 4, 1]), stream(), Buffer.concat([literal('grpc-status', pick(['0', '5', '13', 'x', '99', ''])), literal('grpc-message', pick(['ok', '%zz', '%41'])), literal('x-md-bin', pick(['AAE=', '!!', 'a,b']))])));
        break;
      case 'control':
        out.push(frame(pick([3, 4, 6, 7, 8, 9]), pick([0, 1]), stream(), bytes(pick([0, 4, 6, 8, 5]))));
        break;
      default:
        out.push(frame(Math.floor(r() * 12), Math.floor(r() * 256), stream(), bytes(Math.floor(r() * 40))));
    }
  }
  return out;
}

test(`socket transport: ${CALLS} calls against a backend sending seeded random frames all end, none throws`, { timeout: 120_000 }, async (t) => {
  let next = 0;
  const server = net.createServer((sock) => {
    const seed = next++;
    sock.on('error', () => undefined);
    sock.once('data', () => {
      const r = rng(seed);
      sock.write(frame(4, 0, 0, Buffer.alloc(0))); // SETTINGS: the peer is an HTTP/2 server as far as the preface goes
      // After the request's HEADERS and DATA have arrived, the scripted answer, then the connection ends.
      setTimeout(() => {
        for (const f of script(r)) sock.write(f);
        setTimeout(() => sock.end(), 5);
      }, 2);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const pool = new SocketPool(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, { reconnectBackoff: { initialMs: 1, maxMs: 5 } });
  t.after(async () => {
    await pool.close();
    server.close();
  });
  const outcomes = new Map<string, number>();
  for (let i = 0; i < CALLS; i++) {
    const started = Date.now();
    const outcome = await h2Unary(pool, '/fuzz.F/Call', Buffer.from('x'), {
      metadata: new grpc.Metadata(), deadline: Date.now() + 1000, maxReceiveMessageBytes: 64, maxSendMessageBytes: 1 << 20, scheme: 'http',
    }).then(() => 'OK', (e: CallError) => {
      assert.ok(Number.isInteger(e.code) && e.code >= 1 && e.code <= 16, `call ${i}: a gRPC status code, not ${String(e)}`);
      return grpc.status[e.code] ?? `code ${e.code}`;
    });
    assert.ok(Date.now() - started < 3000, `call ${i} (connection seed ${next - 1}) ended within its deadline`);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  // The script must reach more than one outcome, or it tests nothing but one path.
  t.diagnostic(JSON.stringify(Object.fromEntries(outcomes)));
  assert.ok(outcomes.size >= 4, `outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
});
