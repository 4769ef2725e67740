import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { methodPath, rawClient, ser, startBackend } from './helpers/passthrough-backend.ts';
import { spawnGateway } from './helpers/passthrough-child.ts';
import { collect, unary } from './helpers/passthrough-gateway.ts';

const SIZE = 256 * 2 ** 20;
const LIMIT_KB = 100 * 1024;

test('one 256 MiB message each way grows the gateway process (child) by less than 100 MiB', async (t) => {
  const backend = await startBackend();
  t.after(() => backend.close());
  const gateway = await spawnGateway({ endpoints: [`127.0.0.1:${backend.port}`], services: ['test.passthrough.*'] });
  t.after(() => gateway.stop());
  const client = rawClient(`127.0.0.1:${gateway.port}`);
  t.after(() => client.close());

  // Warm up so idle includes the sessions and code paths, not just a bare listener.
  assert.equal((await unary(client, methodPath('Unary'), Buffer.from('warm'))).error, null);
  const idle = gateway.memory().rssKb;

  const md = new grpc.Metadata();
  md.set('x-behavior', 'big');
  md.set('x-size', String(SIZE));
  const down = await collect(client.makeServerStreamRequest(methodPath('ServerStream'), ser, ser, Buffer.alloc(0), md));
  assert.equal(down.status.code, grpc.status.OK);
  assert.equal(down.messages[0]?.length, SIZE);
  down.messages.length = 0;

  const upMd = new grpc.Metadata();
  upMd.set('x-behavior', 'size');
  const up = await unary(client, methodPath('Unary'), Buffer.alloc(SIZE, 1), upMd);
  assert.equal(up.error, null);
  assert.equal(up.response!.readBigUInt64BE(), BigInt(SIZE));

  const peak = gateway.memory().hwmKb;
  t.diagnostic(`gateway idle RSS ${Math.round(idle / 1024)} MiB, peak ${Math.round(peak / 1024)} MiB`);
  assert.ok(peak - idle < LIMIT_KB, `gateway grew by ${Math.round((peak - idle) / 1024)} MiB`);
});
