/** backends[].retryPolicies for transcoded unary calls that reached a backend and failed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startRecordingBackend } from './helpers/recording-backend.ts';
import { startGateway } from './helpers/gateway.ts';
import { StartupError } from '../src/errors/index.ts';
import type { GatewayConfig } from '../src/config/index.ts';

const PROTO_DIR = path.resolve('test/protos');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };

/** A backend whose first `failures` calls fail with `code`. */
async function flaky(t: { after(fn: () => Promise<void>): void }, failures: number, code: number) {
  let calls = 0;
  const backend = await startRecordingBackend({
    includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')],
    script: () => (++calls <= failures ? { error: { code, message: `failure ${calls}` } } : { response: { title: 'ok' } }),
  });
  t.after(() => backend.close());
  return backend;
}

async function gateway(t: { after(fn: () => Promise<void>): void }, address: string, retryPolicies?: NonNullable<GatewayConfig['backends']>[number]['retryPolicies']) {
  const gw = await startGateway({ protos, backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: [address], retryPolicies }] });
  t.after(() => gw.close());
  return gw;
}

test('a matching policy retries UNAVAILABLE until the call succeeds', async (t) => {
  const b = await flaky(t, 2, 14);
  const gw = await gateway(t, b.address, [{ methods: ['testpb.Everything/GetBook'], maxAttempts: 3, initialBackoffMs: 5 }]);
  const res = await fetch(`${gw.url}/v1/shelves/s/books/b`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { title: 'ok' });
  assert.equal(b.received.length, 3);
});

test('without a policy, a call that reached the backend is not retried', async (t) => {
  const b = await flaky(t, 1, 14);
  const gw = await gateway(t, b.address);
  assert.equal((await fetch(`${gw.url}/v1/shelves/s/books/b`)).status, 503);
  assert.equal(b.received.length, 1);
});

test('a policy stops at maxAttempts, skips codes it does not list, and matches Service/* and *', async (t) => {
  const a = await flaky(t, 10, 14);
  const gwA = await gateway(t, a.address, [{ methods: ['testpb.Everything/*'], maxAttempts: 2, initialBackoffMs: 5 }]);
  assert.equal((await fetch(`${gwA.url}/v1/shelves/s/books/b`)).status, 503);
  assert.equal(a.received.length, 2, 'maxAttempts counts the first try');

  const b = await flaky(t, 10, 13);
  const gwB = await gateway(t, b.address, [{ methods: ['*'], retryableCodes: ['UNAVAILABLE'], initialBackoffMs: 5 }]);
  assert.equal((await fetch(`${gwB.url}/v1/shelves/s/books/b`)).status, 500);
  assert.equal(b.received.length, 1, 'INTERNAL is not in retryableCodes');
});

test('a malformed policy stops startup naming the field', async () => {
  await assert.rejects(
    startGateway({ protos, backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: ['127.0.0.1:1'], retryPolicies: [{ methods: ['GetBook'] }] }] }),
    (err: unknown) => err instanceof StartupError && /backends\[0\]\.retryPolicies\[0\]\.methods\[0\]: expected "pkg\.Service\/Method"/.test(err.message),
  );
});
