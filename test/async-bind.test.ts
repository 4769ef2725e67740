/**
 * runtime.lightAsyncBind (src/upstream/async-bind.ts): the replacement AsyncResource#bind keeps Node's semantics
 * (async scope, AsyncLocalStorage context, this, arguments, thisArg, return value, length, the asyncResource
 * property, argument errors) without the deprecated accessor, and the gateway installs it unless told not to.
 * node:test runs each file in its own process, so the process-wide change stays in this file's process; the
 * opt-out is checked in a child process of its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { fileURLToPath } from 'node:url';
import { hasDeprecatedAsyncBind, installLightAsyncBind } from '../src/upstream/async-bind.ts';
import { startGateway } from './helpers/gateway.ts';
import path from 'node:path';
import { startRecordingBackend } from './helpers/recording-backend.ts';

const deprecatedBefore = hasDeprecatedAsyncBind();

test('the light bind replaces the deprecated asyncResource accessor (when this Node has one) and keeps bind semantics', () => {
  assert.equal(installLightAsyncBind(), deprecatedBefore);
  if (!deprecatedBefore) return; // a Node without the accessor keeps its own bind: nothing to compare
  assert.equal(hasDeprecatedAsyncBind(), false);
  assert.equal(installLightAsyncBind(), true, 'idempotent');

  const warnings: Error[] = [];
  const onWarning = (w: Error): void => { warnings.push(w); };
  process.on('warning', onWarning);
  try {
    const als = new AsyncLocalStorage<string>();
    const resource = als.run('request-context', () => new AsyncResource('test-resource'));
    const seen: Array<{ id: number; store: string | undefined; self: unknown; args: unknown[] }> = [];
    function probe(this: unknown, a: number, b: number, c: number): string {
      seen.push({ id: executionAsyncId(), store: als.getStore(), self: this, args: [a, b, c] });
      return 'returned';
    }
    type Bound = typeof probe & { asyncResource: AsyncResource };
    const bound = resource.bind(probe) as Bound;
    const receiver = { name: 'receiver' };
    assert.equal(bound.call(receiver, 1, 2, 3), 'returned');
    assert.deepEqual(seen[0], { id: resource.asyncId(), store: 'request-context', self: receiver, args: [1, 2, 3] });
    assert.equal(bound.length, 3);
    assert.equal(bound.asyncResource, resource);
    assert.deepEqual(Object.getOwnPropertyDescriptor(bound, 'asyncResource'), { value: resource, writable: true, enumerable: true, configurable: true });

    const fixed = { name: 'fixed' };
    // @types/node declares bind(fn) only; Node takes bind(fn, thisArg).
    const withThis = Reflect.apply(resource.bind, resource, [probe, fixed]) as Bound;
    withThis.call(receiver, 4, 5, 6);
    assert.equal(seen[1]!.self, fixed, 'thisArg wins over the call receiver');
    assert.equal(seen[1]!.id, resource.asyncId());

    const viaStatic = AsyncResource.bind(() => executionAsyncId()) as (() => number) & { asyncResource: AsyncResource };
    assert.equal(typeof viaStatic.asyncResource, 'object');
    assert.equal(viaStatic(), viaStatic.asyncResource.asyncId(), 'AsyncResource.bind goes through the same bind');

    assert.throws(() => resource.bind('not a function' as never), { code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings.map((w) => w.message), [], 'reading asyncResource warns no more');
});

test('a gateway installs the light bind by default, and transcoded calls work through it', async () => {
  const protoDir = path.resolve('test/protos');
  const backend = await startRecordingBackend({
    includeDirs: [protoDir], files: [path.join(protoDir, 'everything.proto')],
    script: () => ({ response: { name: 'shelves/s/books/b', title: 'Dune' } }),
  });
  const gw = await startGateway({
    protos: { includeDirs: [protoDir], files: ['test/protos/everything.proto'] },
    backends: [{ name: 'everything', services: ['testpb.Everything'], endpoints: [backend.address] }],
  });
  try {
    assert.equal(hasDeprecatedAsyncBind(), false);
    const res = await fetch(`${gw.url}/v1/shelves/s/books/b`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: 'shelves/s/books/b', title: 'Dune' });
    assert.equal(backend.received.length, 1);
  } finally {
    await gw.close();
    await backend.close();
  }
});

test('runtime.lightAsyncBind: false leaves Node\'s own bind in place; the default replaces it', () => {
  const protos = { includeDirs: [path.resolve('test/protos')], files: [path.resolve('test/protos/everything.proto')] };
  const base = JSON.stringify({ log: { level: 'silent' }, protos, transcoding: { allowUnservedServices: true } });
  const child = `
    import { resolveConfig } from ${JSON.stringify(fileURLToPath(new URL('../src/config/index.ts', import.meta.url)))};
    import { createGateway } from ${JSON.stringify(fileURLToPath(new URL('../src/gateway.ts', import.meta.url)))};
    import { hasDeprecatedAsyncBind } from ${JSON.stringify(fileURLToPath(new URL('../src/upstream/async-bind.ts', import.meta.url)))};
    createGateway(resolveConfig({ ...${base}, runtime: { lightAsyncBind: false } }, '/tmp/x.config.ts'));
    const off = hasDeprecatedAsyncBind();
    createGateway(resolveConfig(${base}, '/tmp/x.config.ts'));
    console.log(JSON.stringify({ off, on: hasDeprecatedAsyncBind() }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  // On a Node without the deprecated accessor both read false: there is nothing to replace.
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { off: deprecatedBefore, on: false });
});
