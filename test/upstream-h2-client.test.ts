import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Http2Pool } from '../src/upstream/http2-pool.ts';
import { SocketPool } from '../src/upstream/socket-session.ts';
import { startRawBackend } from './helpers/passthrough-raw-backend.ts';
import { FrameDecoder, H2ServerStream, decodeGrpcMessage, encodeFrame, grpcTimeoutHeader, h2Unary } from '../src/upstream/h2-grpc-client.ts';
import { abortToken, cancelToken } from '../src/upstream/http2-pool.ts';
import type { CallError, H2CallOptions } from '../src/upstream/h2-grpc-client.ts';
import { configSchema } from '../src/config/schema.ts';

const identity = (b: Buffer): Buffer => b;
const def = (path: string, responseStream = false): grpc.MethodDefinition<Buffer, Buffer> =>
  ({ path, requestStream: false, responseStream, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity });

type Kind = 'node:http2' | 'socket';
const KINDS: Kind[] = ['node:http2', 'socket'];
const poolFor = (kind: Kind, endpoint: string): Http2Pool | SocketPool => (kind === 'socket' ? new SocketPool(endpoint) : new Http2Pool(endpoint));

async function server(t: import('node:test').TestContext, kind: Kind) {
  const seen: { metadata?: grpc.Metadata; cancelled: boolean; deadline?: Date | number } = { cancelled: false };
  const s = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  s.addService({ Echo: def('/t.S/Echo'), Fail: def('/t.S/Fail'), Hang: def('/t.S/Hang'), Big: def('/t.S/Big'), Stream: def('/t.S/Stream', true) }, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.metadata = call.metadata;
      seen.deadline = call.getDeadline();
      const md = new grpc.Metadata();
      md.set('x-head', 'h');
      md.set('x-head-bin', Buffer.from([1, 2, 255]));
      call.sendMetadata(md);
      const trailers = new grpc.Metadata();
      trailers.set('x-trail', 't');
      cb(null, call.request, trailers);
    },
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const md = new grpc.Metadata();
      md.set('grpc-status-details-bin', Buffer.from([8, 5]));
      cb({ code: grpc.status.NOT_FOUND, details: 'no such böök: 100%', metadata: md });
    },
    Hang: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      call.on('cancelled', () => { seen.cancelled = true; });
    },
    Big: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.alloc(2048)),
    Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < 5; i++) call.write(Buffer.alloc(100_000, i));
      call.end();
    },
  });
  const port = await new Promise<number>((res, rej) => s.bindAsync('127.0.0.50:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const pool = poolFor(kind, `127.0.0.50:${port}`);
  t.after(async () => {
    await pool.close();
    s.forceShutdown();
  });
  return { pool, seen };
}

const opts = (over: Partial<H2CallOptions> = {}): H2CallOptions =>
  ({ metadata: new grpc.Metadata(), deadline: undefined, maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20, scheme: 'http', ...over });

// Both pool kinds run the same call code over different HTTP/2 clients: every test holds for each.
for (const kind of KINDS) {
  test(`h2 unary: message, header and trailer metadata (incl. -bin), grpc-timeout reaches the backend (${kind})`, async (t) => {
    const { pool, seen } = await server(t, kind);
    const md = new grpc.Metadata();
    md.set('x-req', 'r');
    md.set('x-req-bin', Buffer.from([0, 9]));
    const r = await h2Unary(pool, '/t.S/Echo', Buffer.from('hello'), opts({ metadata: md, deadline: Date.now() + 5_000 }));
    assert.equal(r.message.toString(), 'hello');
    assert.deepEqual(r.headers.get('x-head'), ['h']);
    assert.deepEqual(r.headers.get('x-head-bin'), [Buffer.from([1, 2, 255])]);
    assert.deepEqual(r.trailers.get('x-trail'), ['t']);
    assert.deepEqual(r.trailers.get('grpc-status'), []);
    assert.deepEqual(seen.metadata!.get('x-req-bin'), [Buffer.from([0, 9])]);
    const d = seen.deadline;
    const left = (d instanceof Date ? d.getTime() : Number(d)) - Date.now();
    assert.ok(left > 3_000 && left <= 5_000, `backend deadline ${left} ms away`);
  });

  test(`h2 unary: an error status comes back ServiceError-shaped with percent-decoded message and status details (${kind})`, async (t) => {
    const { pool } = await server(t, kind);
    const err = await h2Unary(pool, '/t.S/Fail', Buffer.alloc(0), opts()).catch((e: CallError) => e);
    assert.equal((err as CallError).code, grpc.status.NOT_FOUND);
    assert.equal((err as CallError).details, 'no such böök: 100%');
    assert.deepEqual((err as CallError).metadata.get('grpc-status-details-bin'), [Buffer.from([8, 5])]);
  });

  test(`h2 unary: deadline exceeded and cancellation reset the stream; the backend sees the cancel (${kind})`, async (t) => {
    const { pool, seen } = await server(t, kind);
    const late = await h2Unary(pool, '/t.S/Hang', Buffer.alloc(0), opts({ deadline: Date.now() + 100 })).catch((e: CallError) => e);
    assert.equal((late as CallError).code, grpc.status.DEADLINE_EXCEEDED);
    seen.cancelled = false;
    const token = cancelToken();
    const p = h2Unary(pool, '/t.S/Hang', Buffer.alloc(0), opts(), token).catch((e: CallError) => e);
    setTimeout(() => abortToken(token), 50);
    assert.equal(((await p) as CallError).code, grpc.status.CANCELLED);
    const until = Date.now() + 2_000;
    while (!seen.cancelled && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.cancelled, true);
  });

  test(`h2 unary: a response over maxReceiveMessageBytes is RESOURCE_EXHAUSTED; unknown method is UNIMPLEMENTED (${kind})`, async (t) => {
    const { pool } = await server(t, kind);
    const big = await h2Unary(pool, '/t.S/Big', Buffer.alloc(0), opts({ maxReceiveMessageBytes: 1024 })).catch((e: CallError) => e);
    assert.equal((big as CallError).code, grpc.status.RESOURCE_EXHAUSTED);
    const none = await h2Unary(pool, '/t.S/Nope', Buffer.alloc(0), opts()).catch((e: CallError) => e);
    assert.equal((none as CallError).code, grpc.status.UNIMPLEMENTED);
  });

  test(`h2 server stream: messages in order with pause/resume, then end (${kind})`, async (t) => {
    const { pool } = await server(t, kind);
    const call = new H2ServerStream(() => ({ pool, done: () => {} }), '/t.S/Stream', Buffer.alloc(0), opts());
    const got: number[] = [];
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: Buffer) => {
        got.push(m[0]!);
        call.pause();
        setTimeout(() => call.resume(), 5);
      });
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
  });

  test(`h2 unary: how a stream that ends without a status maps to a gRPC code (${kind})`, async (t) => {
    const raw = await startRawBackend();
    const pool = poolFor(kind, `127.0.0.1:${raw.port}`);
    t.after(async () => {
      await pool.close();
      await raw.close();
    });
    const outcome = (method: string) => h2Unary(pool, `/raw.Raw/${method}`, Buffer.alloc(0), opts({ deadline: Date.now() + 5_000 }))
      .then(() => 'OK', (e: CallError) => `${grpc.status[e.code]}${e.retryable ? ' retryable' : ''}: ${e.details.replace(pool.endpoint, 'EP')}`);
    // RST_STREAM codes (RFC 9113 section 7 -> gRPC's http-grpc-status-mapping), a dropped connection, no trailers.
    assert.equal(await outcome('Refused'), 'UNAVAILABLE retryable: EP refused the stream');
    assert.equal(await outcome('Cancel'), 'CANCELLED: EP cancelled the stream');
    assert.equal(await outcome('Internal'), 'INTERNAL: EP closed the stream without a status (HTTP/2 code 2)');
    assert.equal(await outcome('Calm'), 'RESOURCE_EXHAUSTED: backend asked us to slow down (ENHANCE_YOUR_CALM)');
    assert.equal(await outcome('ResetMidStream'), 'INTERNAL: EP closed the stream without a status (HTTP/2 code 2)');
    // node:http2 reports these as CANCEL resets; a backend that went away is UNAVAILABLE (the bug this test caught).
    assert.equal(await outcome('DropConnection'), 'UNAVAILABLE: connection to EP lost');
    assert.equal(await outcome('EndSocket'), 'UNAVAILABLE: connection to EP lost');
    assert.equal(await outcome('GoawayError'), 'UNAVAILABLE: connection to EP lost');
    assert.equal(await outcome('NoTrailers'), 'UNAVAILABLE: EP closed the stream without a status (HTTP/2 code 0)');
    assert.equal(await outcome('Ok'), 'UNIMPLEMENTED: backend sent no message for a unary call', 'a Trailers-Only OK without a message is not a unary answer');
    assert.equal(await outcome('BadStatus'), 'UNKNOWN: from the future', 'a grpc-status outside 0-16 is UNKNOWN');
  });
}

test('frame decoder gives the same messages whatever the chunk boundaries', () => {
  const wire = Buffer.concat([encodeFrame(Buffer.from('abc')), encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.from('defgh'))]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new FrameDecoder(100);
    const out = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))].map((b) => b.toString());
    assert.deepEqual(out, ['abc', '', 'defgh'], `cut at ${cut}`);
  }
});

test('grpc-timeout and grpc-message encodings', () => {
  assert.equal(grpcTimeoutHeader(1500), '1500m');
  assert.equal(grpcTimeoutHeader(200_000_000), '200000S');
  assert.equal(decodeGrpcMessage('a%20b%'), 'a%20b%');
  assert.equal(decodeGrpcMessage('caf%C3%A9'), 'café');
});

const base = { protos: { files: ['x.proto'] } };
for (const [name, backend, error] of [
  ['a weighted endpoint without address', { name: 'b', endpoints: [{ weight: 2 }] }, /backends\[0\]\.endpoints\[0\]/],
  ['an unknown policy', { name: 'b', endpoints: ['h:1'], policy: 'random' }, /backends\[0\]\.policy/],
  ['mTLS with a cert but no key', { name: 'b', endpoints: ['h:1'], tls: { certFile: 'c.pem' } }, /mTLS needs both certFile and keyFile/],
  ['a zero health interval', { name: 'b', endpoints: ['h:1'], healthCheck: { intervalMs: 0 } }, /healthCheck\.intervalMs/],
] as const) {
  test(`backend config rejects ${name}`, () => {
    const r = configSchema.safeParse({ ...base, backends: [backend] });
    assert.equal(r.success, false);
    const text = r.error!.issues.map((i) => `${i.path.join('.').replace(/\.(\d+)/g, '[$1]')}: ${i.message}`).join('\n');
    assert.match(text, error);
  });
}

test('backend config accepts the minimal form and fills the upstream defaults', () => {
  const cfg = configSchema.parse({ ...base, backends: [{ name: 'b', endpoints: ['h:1', { address: 'dns:///x.svc:80', weight: 3 }] }] });
  const b = cfg.backends[0]!;
  assert.equal(b.policy, 'round_robin');
  assert.equal(b.transport, 'socket');
  assert.equal(b.resolveIntervalMs, 30_000);
  assert.equal(b.healthCheck.enabled, false);
  assert.equal(b.outlierDetection.enabled, true);
  assert.deepEqual(b.endpoints, ['h:1', { address: 'dns:///x.svc:80', weight: 3 }]);
});
