import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { SERVICE, methodPath, rawClient, startBackend } from './helpers/passthrough-backend.ts';
import type { TestBackend } from './helpers/passthrough-backend.ts';
import { startGateway, unary } from './helpers/passthrough-gateway.ts';
import { until } from './helpers/wait.ts';

const SECRET = 'Bearer sekrit-token-4f9a';

describe('passthrough: one access-log line per call', () => {
  let backend: TestBackend;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  let client: grpc.Client;
  /** Every line the logger wrote, as serialized JSON (what a log pipeline would see). */
  const written: string[] = [];
  const requests = (): Array<Record<string, unknown>> =>
    written.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'request');

  before(async () => {
    backend = await startBackend();
    const logger = pino({ level: 'info' }, { write: (line: string) => void written.push(line) });
    gateway = await startGateway([{ name: 'echo', endpoints: [`127.0.0.1:${backend.port}`], services: ['test.passthrough.*'] }], { logger });
    client = rawClient(gateway.target);
  });
  after(async () => {
    client.close();
    await gateway.close({ graceMs: 100 });
    await backend.close();
  });

  function md(entries: Record<string, string>): grpc.Metadata {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(entries)) m.set(k, v);
    return m;
  }

  test('a unary call: method, grpcMethod, status, code, bytes both ways, the client\'s request id and address', async () => {
    const before = requests().length;
    const r = await unary(client, methodPath('Unary'), Buffer.from('hello'), md({ 'x-request-id': 'req-0042', authorization: SECRET }));
    assert.equal(r.error, null);
    await until(() => requests().length > before, 'the access-log line');
    const lines = requests().slice(before);
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line['method'], 'POST');
    assert.equal(line['route'], null);
    assert.equal(line['grpcMethod'], `${SERVICE}/Unary`);
    assert.equal(line['status'], 200);
    assert.equal(line['grpcCode'], 'OK');
    // gRPC message bytes as framed on the wire: 5-byte prefix + payload, each way.
    assert.equal(line['reqBytes'], 5 + 5);
    assert.equal(line['resBytes'], 5 + 5);
    assert.equal(line['requestId'], 'req-0042');
    assert.equal(line['remoteAddress'], '127.0.0.1');
    assert.match(String(line['userAgent']), /grpc-node-js/);
    assert.equal(typeof line['durationMs'], 'number');
    assert.ok((line['durationMs'] as number) >= 0);
    // The client's id went on to the backend unchanged.
    assert.equal(backend.calls.at(-1)!.metadata.get('x-request-id')[0], 'req-0042');
  });

  test('without a usable x-request-id the gateway generates one, logs it and forwards it to the backend', async () => {
    for (const given of [undefined, 'has spaces and is not sane']) {
      const before = requests().length;
      const r = await unary(client, methodPath('Unary'), Buffer.from('x'), given ? md({ 'x-request-id': given }) : new grpc.Metadata());
      assert.equal(r.error, null);
      await until(() => requests().length > before, 'the access-log line');
      const id = requests().at(-1)!['requestId'] as string;
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.deepEqual(backend.calls.at(-1)!.metadata.get('x-request-id'), [id]);
    }
  });

  test('the forwarded grpc-status is logged: a backend error, and the gateway\'s own UNIMPLEMENTED', async () => {
    let before = requests().length;
    const failed = await unary(client, methodPath('Unary'), Buffer.from('x'), md({ 'x-behavior': 'error', 'x-code': String(grpc.status.NOT_FOUND) }));
    assert.equal(failed.error?.code, grpc.status.NOT_FOUND);
    await until(() => requests().length > before, 'the access-log line');
    assert.equal(requests().at(-1)!['grpcCode'], 'NOT_FOUND');
    assert.equal(requests().at(-1)!['status'], 200);

    before = requests().length;
    const unknown = await unary(client, '/acme.nowhere.v1.Svc/Call', Buffer.from('x'));
    assert.equal(unknown.error?.code, grpc.status.UNIMPLEMENTED);
    await until(() => requests().length > before, 'the access-log line');
    const line = requests().at(-1)!;
    assert.equal(line['grpcCode'], 'UNIMPLEMENTED');
    assert.equal(line['grpcMethod'], 'acme.nowhere.v1.Svc/Call');
  });

  test('a server stream is one line, with every response byte counted', async () => {
    const before = requests().length;
    const call = client.makeServerStreamRequest(methodPath('ServerStream'), (b: Buffer) => b, (b: Buffer) => b, Buffer.from('chunk'), md({ 'x-count': '20' }));
    call.on('data', () => {});
    await new Promise((resolve) => call.on('status', resolve));
    await until(() => requests().length > before, 'the access-log line');
    const lines = requests().slice(before);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!['resBytes'], 20 * (5 + 5));
    assert.equal(lines[0]!['grpcMethod'], `${SERVICE}/ServerStream`);
  });

  test('no line carries the authorization value', async () => {
    await unary(client, methodPath('Unary'), Buffer.from('x'), md({ authorization: SECRET }));
    await until(() => requests().length > 0, 'an access-log line');
    assert.ok(written.length > 0);
    for (const l of written) assert.ok(!l.includes('sekrit'), l);
  });
});
