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
import { H2ServerStream, h2Unary, type CallError } from '../src/upstream/h2-grpc-client.ts';

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

/** A peer that answers every connection with the script of its own seed, then ends it; and a pool towards it. */
async function fuzzPeer(t: { after(fn: () => Promise<void>): void }): Promise<{ pool: SocketPool; seed(): number }> {
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
  return { pool, seed: () => next - 1 };
}

const callOptions = () => ({
  metadata: new grpc.Metadata(), deadline: Date.now() + 1000, maxReceiveMessageBytes: 64, maxSendMessageBytes: 1 << 20, scheme: 'http' as const,
});

test(`socket transport: ${CALLS} calls against a backend sending seeded random frames all end, none throws`, { timeout: 120_000 }, async (t) => {
  const { pool, seed } = await fuzzPeer(t);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < CALLS; i++) {
    const started = Date.now();
    const outcome = await h2Unary(pool, '/fuzz.F/Call', Buffer.from('x'), callOptions()).then(() => 'OK', (e: CallError) => {
      assert.ok(Number.isInteger(e.code) && e.code >= 1 && e.code <= 16, `call ${i}: a gRPC status code, not ${String(e)}`);
      return grpc.status[e.code]!;
    });
    assert.ok(Date.now() - started < 3000, `call ${i} (connection seed ${seed()}) ended within its deadline`);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  // The script must reach more than one outcome, or it tests nothing but one path.
  t.diagnostic(JSON.stringify(Object.fromEntries(outcomes)));
  assert.ok(outcomes.size >= 4, `outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
});

test(`socket transport: ${CALLS / 2} server streams against the same peer, consumer pausing at random, each ends exactly once`, { timeout: 120_000 }, async (t) => {
  const { pool } = await fuzzPeer(t);
  const r = rng(12345);
  let pauses = 0;
  for (let i = 0; i < CALLS / 2; i++) {
    const call = new H2ServerStream(() => ({ pool, done: () => {} }), '/fuzz.F/Stream', Buffer.from('x'), callOptions());
    const events: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream ${i} did not end: ${events.join(' ')}`)), 3000);
      call.on('data', () => {
        events.push('data');
        if (r() < 0.5) {
          pauses++;
          call.pause();
          setImmediate(() => call.resume());
        }
      });
      call.on('status', (st) => events.push(`status ${st.code}`));
      call.on('error', () => events.push('error'));
      call.on('end', () => events.push('end'));
      call.on('close', () => {
        clearTimeout(timer);
        // close must be the last event; give a stray late one a chance to show up.
        setImmediate(() => (events.indexOf('close') === events.length - 1 ? resolve() : reject(new Error(`stream ${i}: ${events.join(' ')}`))));
        events.push('close');
      });
    });
    assert.equal(events.filter((e) => e.startsWith('status')).length, 1, `stream ${i}: one status: ${events.join(' ')}`);
    assert.equal(events.filter((e) => e === 'end' || e === 'error').length, 1, `stream ${i}: end or error, once`);
  }
  assert.ok(pauses >= 10, `the consumer paused ${pauses} times: the held-data path was exercised`);
});
