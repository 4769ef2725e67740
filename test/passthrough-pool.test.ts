import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import type { ClientHttp2Stream } from 'node:http2';
import { Code, GatewayError } from '../src/errors/index.ts';
import { Http2Pool } from '../src/upstream/http2-pool.ts';
import { startFreezableRelay, startRawBackend } from './helpers/passthrough-raw-backend.ts';

const post = (method: string) => ({ ':method': 'POST', ':path': `/raw.Raw/${method}`, 'content-type': 'application/grpc', te: 'trailers' });

async function finish(stream: ClientHttp2Stream): Promise<string | undefined> {
  stream.end();
  stream.resume();
  let status: string | undefined;
  stream.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
  stream.on('trailers', (t) => (status = t['grpc-status'] as string));
  stream.on('error', () => {});
  await once(stream, 'close');
  return status;
}

describe('upstream Http2Pool', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test('reuses one session for sequential and concurrent requests', async () => {
    const raw = await startRawBackend();
    const pool = new Http2Pool(`127.0.0.1:${raw.port}`);
    cleanups.push(() => pool.close(), () => raw.close());
    for (let i = 0; i < 5; i++) assert.equal(await finish(await pool.request(post('Ok'))), '0');
    await Promise.all(Array.from({ length: 20 }, async () => finish(await pool.request(post('Ok')))));
    assert.equal(raw.sessions.length, 1);
    assert.equal(pool.stats().sessionsOpened, 1);
  });

  test('a request node:http2 refuses (bad header) fails alone: INTERNAL, the session stays up, no reconnect loop', async () => {
    const raw = await startRawBackend();
    const pool = new Http2Pool(`127.0.0.1:${raw.port}`);
    cleanups.push(() => pool.close(), () => raw.close());
    assert.equal(await finish(await pool.request(post('Ok'))), '0');
    const outcome = await Promise.race([
      pool.request({ ...post('Ok'), connection: 'keep-alive' }).then(() => 'resolved', (err: GatewayError) => err),
      new Promise<string>((r) => setTimeout(() => r('still pending after 3 s'), 3000)),
    ]);
    assert.ok(outcome instanceof GatewayError, `rejected, not ${String(outcome)}`);
    assert.equal(outcome.code, Code.INTERNAL);
    assert.match(outcome.message, /connection/i);
    assert.deepEqual(pool.stats().sessions.map((s) => s.state), ['ready'], 'the healthy session was not drained for it');
    assert.equal(pool.stats().sessionsOpened, 1);
    assert.equal(await finish(await pool.request(post('Ok'))), '0');
  });

  test('opens another session when the backend MAX_CONCURRENT_STREAMS is reached, never a refused stream', async () => {
    const raw = await startRawBackend({ maxConcurrentStreams: 2 });
    const pool = new Http2Pool(`127.0.0.1:${raw.port}`);
    cleanups.push(() => pool.close(), () => raw.close());
    const streams = await Promise.all(Array.from({ length: 5 }, () => pool.request(post('Hold'))));
    for (const s of streams) s.on('error', () => {});
    while (raw.held.length < 5) await new Promise((r) => setTimeout(r, 5));
    assert.equal(raw.sessions.length, 3);
    assert.deepEqual(pool.stats().sessions.map((s) => s.activeStreams).sort(), [1, 2, 2]);
    for (let i = 0; i < 5; i++) raw.release(i);
    const statuses = await Promise.all(streams.map(finish));
    assert.deepEqual(statuses, ['0', '0', '0', '0', '0']);
  });

  test('GOAWAY from the backend: in-flight stream finishes, the next request gets a new session', async () => {
    const raw = await startRawBackend();
    const pool = new Http2Pool(`127.0.0.1:${raw.port}`);
    cleanups.push(() => pool.close(), () => raw.close());
    const inflight = await pool.request(post('Hold'));
    while (raw.held.length < 1) await new Promise((r) => setTimeout(r, 5));
    const first = raw.sessions[0];
    first.goaway(0, 1); // NO_ERROR, last stream id 1: stream 1 may complete
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pool.stats().sessions.find((s) => s.activeStreams === 1)?.state, 'draining');
    const next = await pool.request(post('Ok'));
    assert.equal(await finish(next), '0');
    assert.equal(raw.sessions.length, 2);
    raw.release(0);
    assert.equal(await finish(inflight), '0');
  });

  test('keepalive: pings while streams are open; an unanswered ping kills the session', async () => {
    const raw = await startRawBackend();
    const relay = await startFreezableRelay(raw.port);
    const pool = new Http2Pool(`127.0.0.1:${relay.port}`, { keepaliveTimeMs: 50, keepaliveTimeoutMs: 200 });
    cleanups.push(() => pool.close(), () => relay.close(), () => raw.close());
    const stream = await pool.request(post('Hold'));
    stream.on('error', () => {});
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(raw.pings >= 2, `pings seen: ${raw.pings}`);
    relay.freeze();
    const t0 = Date.now();
    await new Promise((resolve) => stream.once('close', resolve));
    assert.ok(Date.now() - t0 < 5_000, 'the unanswered ping killed the session long before any other timeout');
    for (let i = 0; i < 100 && pool.stats().sessions.length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(pool.stats().sessions.length, 0);
  });

  test('unreachable endpoint: UNAVAILABLE naming it; a queued request can be aborted', async () => {
    const pool = new Http2Pool('127.0.0.1:1', { connectTimeoutMs: 500 });
    cleanups.push(() => pool.close());
    await assert.rejects(pool.request(post('Ok')), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, Code.UNAVAILABLE);
      assert.match(err.message, /127\.0\.0\.1:1/);
      return true;
    });
    const ac = new AbortController();
    const p = pool.request(post('Ok'), { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, (err: unknown) => err instanceof GatewayError && err.code === Code.CANCELLED);
  });
});
