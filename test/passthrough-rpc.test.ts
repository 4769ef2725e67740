import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { SERVICE, methodPath, rawClient, ser, startBackend } from './helpers/passthrough-backend.ts';
import type { TestBackend } from './helpers/passthrough-backend.ts';
import { collect, startGateway, unary } from './helpers/passthrough-gateway.ts';

describe('passthrough: the four RPC kinds through a grpc-js client and backend', () => {
  let backend: TestBackend;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  let client: grpc.Client;

  before(async () => {
    backend = await startBackend();
    gateway = await startGateway([{ name: 'echo', endpoints: [`127.0.0.1:${backend.port}`], services: ['test.passthrough.*'] }]);
    client = rawClient(gateway.target);
  });
  after(async () => {
    client.close();
    await gateway.close({ graceMs: 100 });
    await backend.close();
  });

  function md(entries: Record<string, string | Buffer>): grpc.Metadata {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(entries)) m.set(k, v as string);
    return m;
  }

  test('unary: relays message, request metadata, -bin metadata, response headers and trailers', async () => {
    const bin = Buffer.from([0, 1, 0xfe, 0xff, 0x80]);
    const r = await unary(client, methodPath('Unary'), Buffer.from('hello'), md({ 'x-text': 'a b', 'x-data-bin': bin }));
    assert.equal(r.error, null);
    assert.deepEqual(r.response, Buffer.from('hello'));
    const seen = backend.calls.at(-1)!.metadata;
    assert.equal(seen.get('x-text')[0], 'a b');
    assert.deepEqual(seen.get('x-data-bin')[0], bin);
    assert.deepEqual(r.headers!.get('echo-x-data-bin')[0], bin);
    assert.equal(r.headers!.get('echo-x-text')[0], 'a b');
    assert.equal(r.trailers!.get('x-trailer')[0], 'from-backend');
    assert.deepEqual(r.trailers!.get('x-trailer-bin')[0], Buffer.from([0, 1, 2, 255]));
  });

  test('unary: forwards an empty message and a 1 MiB message byte for byte', async () => {
    for (const body of [Buffer.alloc(0), Buffer.alloc(1 << 20, 0xab)]) {
      const r = await unary(client, methodPath('Unary'), body);
      assert.equal(r.error, null);
      assert.deepEqual(r.response, body);
    }
  });

  test('server streaming: relays every message, headers and trailers', async () => {
    const call = client.makeServerStreamRequest(methodPath('ServerStream'), ser, ser, Buffer.from('chunk'), md({ 'x-count': '50', 'x-k': 'v' }));
    const r = await collect(call);
    assert.equal(r.status.code, grpc.status.OK);
    assert.equal(r.messages.length, 50);
    assert.ok(r.messages.every((m) => m.toString() === 'chunk'));
    assert.equal(r.headers!.get('echo-x-k')[0], 'v');
    assert.equal(r.status.metadata.get('x-trailer')[0], 'from-backend');
  });

  test('client streaming: relays every request message', async () => {
    const done = new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) => {
      const call = client.makeClientStreamRequest(methodPath('ClientStream'), ser, ser, md({ 'x-k': 'cs' }), (err, res) => resolve({ err, res }));
      for (let i = 0; i < 100; i++) call.write(Buffer.alloc(1000, i));
      call.end();
    });
    const { err, res } = await done;
    assert.equal(err, null);
    assert.deepEqual(JSON.parse(res!.toString()), { messages: 100, bytes: 100_000 });
  });

  test('bidi streaming: interleaves messages both ways', async () => {
    const call = client.makeBidiStreamRequest(methodPath('Bidi'), ser, ser, md({ 'x-k': 'bidi' }));
    const got: string[] = [];
    call.on('data', (b: Buffer) => {
      got.push(b.toString());
      if (got.length < 5) call.write(Buffer.from(`m${got.length}`));
      else call.end();
    });
    const result = collect(call);
    call.write(Buffer.from('m0'));
    const r = await result;
    assert.equal(r.status.code, grpc.status.OK);
    assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3', 'm4']);
    assert.equal(r.status.metadata.get('x-trailer')[0], 'from-backend');
  });

  test('trailers-only error: status, message, grpc-status-details-bin and metadata arrive intact', async () => {
    for (const path of [methodPath('Unary'), methodPath('ServerStream')]) {
      const meta = md({ 'x-behavior': 'error', 'x-code': String(grpc.status.FAILED_PRECONDITION) });
      const status: grpc.StatusObject = path.endsWith('Unary')
        ? await unary(client, path, Buffer.from('x'), meta).then((r) => ({ code: r.error!.code, details: r.error!.details, metadata: r.error!.metadata }))
        : await collect(client.makeServerStreamRequest(path, ser, ser, Buffer.from('x'), meta)).then((r) => r.status);
      assert.equal(status.code, grpc.status.FAILED_PRECONDITION, path);
      assert.equal(status.details, 'scripted failure: é');
      assert.deepEqual(status.metadata.get('grpc-status-details-bin')[0], Buffer.from('details:\u0000\u00ff', 'latin1'));
      assert.equal(status.metadata.get('x-error-detail')[0], 'yes');
    }
  });

  test('error after streaming started: trailers with status follow the messages', async () => {
    const call = client.makeClientStreamRequest(methodPath('ClientStream'), ser, ser, md({ 'x-behavior': 'error', 'x-code': '10' }), () => {});
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.write(Buffer.from('a'));
    call.end();
    const s = await status;
    assert.equal(s.code, grpc.status.ABORTED);
    assert.deepEqual(s.metadata.get('grpc-status-details-bin')[0], Buffer.from('details:\u0000\u00ff', 'latin1'));
  });

  test('grpc-timeout is forwarded and honoured: DEADLINE_EXCEEDED, and the backend call ends', async () => {
    const r = await unary(client, methodPath('Unary'), Buffer.from('x'), md({ 'x-behavior': 'hang', 'x-call-id': 'deadline-1' }), {
      deadline: Date.now() + 300,
    });
    assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
    const call = await backend.waitCancelled('deadline-1');
    assert.ok(call.metadata.get('grpc-timeout') !== undefined);
  });

  test('client cancel resets the backend stream: the server call sees cancelled', async () => {
    for (const [kind, id] of [['Unary', 'cancel-unary'], ['Bidi', 'cancel-bidi']] as const) {
      const meta = md({ 'x-behavior': 'hang', 'x-call-id': id });
      const call = kind === 'Unary'
        ? client.makeUnaryRequest(methodPath('Unary'), ser, ser, Buffer.from('x'), meta, () => {})
        : client.makeBidiStreamRequest(methodPath('Bidi'), ser, ser, meta);
      call.on('error', () => {});
      // Wait until the backend has the call, so the cancel has to travel through the gateway.
      for (let i = 0; i < 200 && !backend.calls.some((c) => c.metadata.get('x-call-id')[0] === id); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      call.cancel();
      const rec = await backend.waitCancelled(id);
      assert.equal(rec.cancelled, true, kind);
    }
  });

  test('unknown service: Trailers-Only UNIMPLEMENTED naming the service', async () => {
    const r = await unary(client, '/acme.nothing.v1.Nope/Do', Buffer.from('x'));
    assert.equal(r.error?.code, grpc.status.UNIMPLEMENTED);
    assert.match(r.error!.details, /acme\.nothing\.v1\.Nope/);
  });

  test('method unknown to the backend: the backend\'s own UNIMPLEMENTED is relayed', async () => {
    const r = await unary(client, `/${SERVICE}/Missing`, Buffer.from('x'));
    assert.equal(r.error?.code, grpc.status.UNIMPLEMENTED);
  });

  test('many concurrent unary calls share one upstream session', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => unary(client, methodPath('Unary'), Buffer.from(String(i)))));
    assert.ok(results.every((r, i) => r.error === null && r.response!.toString() === String(i)));
    const pools = gateway.stats().upstream;
    assert.equal(pools.length, 1);
    assert.equal(pools[0].sessionsOpened, 1);
  });
});
