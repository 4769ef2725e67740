/**
 * The socket transport's connection lifecycle (socket-session.ts under Http2Pool): what test/passthrough-pool.test.ts
 * checks for node:http2 sessions, through real calls (h2Unary) against a node:http2 backend that holds, counts and
 * drops connections on request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Code, GatewayError } from '../src/errors/index.ts';
import { SocketPool } from '../src/upstream/socket-session.ts';
import { h2Unary, type CallError, type H2CallOptions } from '../src/upstream/h2-grpc-client.ts';
import type { Http2PoolOptions } from '../src/upstream/http2-pool.ts';
import { startFreezableRelay, startRawBackend, type RawBackend } from './helpers/passthrough-raw-backend.ts';
import { until } from './helpers/wait.ts';

const opts = (): H2CallOptions =>
  ({ metadata: new grpc.Metadata(), deadline: Date.now() + 10_000, maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20, scheme: 'http' });
const call = (pool: SocketPool, method: string) =>
  h2Unary(pool, `/raw.Raw/${method}`, Buffer.alloc(0), opts()).then((r) => r.message.toString(), (e: CallError) => `${grpc.status[e.code]}: ${e.details}`);

async function setup(t: { after(fn: () => Promise<void>): void }, backend: Parameters<typeof startRawBackend>[0] = {}, options: Omit<Http2PoolOptions, 'createSession' | 'onStateChange'> = {}) {
  const raw: RawBackend = await startRawBackend(backend);
  const pool = new SocketPool(`127.0.0.1:${raw.port}`, options);
  t.after(async () => {
    await pool.close();
    await raw.close();
  });
  return { raw, pool };
}

test('socket pool: one connection for sequential and concurrent calls', { timeout: 15_000 }, async (t) => {
  const { raw, pool } = await setup(t);
  for (let i = 0; i < 5; i++) assert.equal(await call(pool, 'Ok'), 'UNIMPLEMENTED: backend sent no message for a unary call');
  await Promise.all(Array.from({ length: 20 }, () => call(pool, 'EchoTimeout')));
  assert.equal(raw.sessions.length, 1);
  assert.equal(pool.stats().sessionsOpened, 1);
});

test("socket pool: calls beyond the backend's MAX_CONCURRENT_STREAMS go on more connections, none is refused", { timeout: 15_000 }, async (t) => {
  const { raw, pool } = await setup(t, { maxConcurrentStreams: 2 });
  const calls = Array.from({ length: 5 }, () => call(pool, 'Hold'));
  await until(() => raw.held.length === 5, 'five calls held at the backend');
  assert.equal(raw.sessions.length, 3);
  assert.deepEqual(pool.stats().sessions.map((s) => s.activeStreams).sort(), [1, 2, 2]);
  for (let i = 0; i < 5; i++) raw.release(i);
  assert.deepEqual(await Promise.all(calls), ['released', 'released', 'released', 'released', 'released']);
});

test('socket pool: GOAWAY from the backend lets the call in flight finish; the next call gets a new connection', { timeout: 15_000 }, async (t) => {
  const { raw, pool } = await setup(t);
  const inflight = call(pool, 'Hold');
  await until(() => raw.held.length === 1, 'the call to reach the backend');
  raw.sessions[0]!.goaway(0, 1); // NO_ERROR, last stream id 1: our stream 1 may complete
  await until(() => pool.stats().sessions[0]?.state === 'draining', 'the connection to drain');
  const next = call(pool, 'Hold');
  await until(() => raw.held.length === 2, 'the next call to reach the backend');
  assert.equal(raw.sessions.length, 2, 'the next call went on a new connection');
  raw.release(0);
  raw.release(1);
  assert.deepEqual(await Promise.all([inflight, next]), ['released', 'released']);
  await until(() => pool.stats().sessions.length === 1, 'the drained connection to close');
});

test('socket pool: a connection that has used its last stream id drains, and the pool opens the next one', { timeout: 15_000 }, async (t) => {
  // Ids 1, 3, 5, 7: four streams per connection (2^30 in production, hours of traffic on one connection).
  const { raw, pool } = await setup(t, {}, { maxStreamId: 7 });
  const outcomes: string[] = [];
  for (let i = 0; i < 10; i++) outcomes.push(await call(pool, 'EchoTimeout'));
  assert.deepEqual(new Set(outcomes), new Set(['ok']));
  assert.equal(raw.sessions.length, 3);
  await until(() => pool.stats().sessions.length === 1, 'the used-up connections to close');
});

test('socket pool: keepalive pings while calls are open; an unanswered ping fails the call UNAVAILABLE and drops the connection', { timeout: 15_000 }, async (t) => {
  const raw = await startRawBackend();
  const relay = await startFreezableRelay(raw.port);
  const pool = new SocketPool(`127.0.0.1:${relay.port}`, { keepaliveTimeMs: 50, keepaliveTimeoutMs: 200 });
  t.after(async () => {
    await pool.close();
    await relay.close();
    await raw.close();
  });
  const held = call(pool, 'Hold');
  await until(() => raw.pings >= 2, 'keepalive pings at the backend');
  relay.freeze();
  const t0 = Date.now();
  assert.match(await held, /^UNAVAILABLE: connection to 127\.0\.0\.1:\d+ lost$/);
  assert.ok(Date.now() - t0 < 5_000, 'the unanswered ping ended it long before the call deadline');
  await until(() => pool.stats().sessions.length === 0, 'the dead connection to leave the pool');
});

test('socket pool: a connection idle for idleTimeoutMs closes; the next call connects again', { timeout: 15_000 }, async (t) => {
  const { raw, pool } = await setup(t, {}, { idleTimeoutMs: 100 });
  assert.equal(await call(pool, 'EchoTimeout'), 'ok');
  await until(() => pool.stats().sessions.length === 0 && pool.connectivity === 'idle', 'the idle connection to close');
  assert.equal(await call(pool, 'EchoTimeout'), 'ok');
  assert.equal(raw.sessions.length, 2);
});

test('socket pool: an unreachable endpoint fails calls UNAVAILABLE naming it, retryable, and backs off', { timeout: 15_000 }, async (t) => {
  const pool = new SocketPool('127.0.0.1:1', { connectTimeoutMs: 1000 });
  t.after(() => pool.close());
  const err = await h2Unary(pool, '/raw.Raw/Ok', Buffer.alloc(0), opts()).catch((e: CallError) => e);
  assert.equal((err as CallError).code, grpc.status.UNAVAILABLE);
  assert.equal((err as CallError).retryable, true, 'no stream was opened: another endpoint may take it');
  assert.match((err as CallError).details, /cannot reach 127\.0\.0\.1:1/);
  assert.equal(pool.connectivity, 'transient_failure');
});

test('socket pool: a request without stream handlers fails alone with INTERNAL; the connection keeps serving', { timeout: 15_000 }, async (t) => {
  const { pool } = await setup(t);
  assert.equal(await call(pool, 'EchoTimeout'), 'ok');
  const headers = { ':method': 'POST', ':path': '/raw.Raw/Ok', 'content-type': 'application/grpc', te: 'trailers' };
  await assert.rejects(pool.request(headers, {} as never), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, Code.INTERNAL);
    assert.match(err.message, /needs its handlers/);
    return true;
  });
  assert.deepEqual(pool.stats().sessions.map((s) => s.state), ['ready']);
  assert.equal(await call(pool, 'EchoTimeout'), 'ok');
});
