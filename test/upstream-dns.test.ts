import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendUpstream, drive, invokerFor, settings, startBackend } from './helpers/upstream-backend.ts';
import { startDnsServer } from './helpers/upstream-dns.ts';

test('DNS discovery: traffic follows the answers (address added, address removed) without a restart', async (t) => {
  const dnsServer = await startDnsServer();
  const a = await startBackend('127.0.0.40');
  const b = await startBackend('127.0.0.41', { port: a.port });
  const upstream = new BackendUpstream(settings('svc', [`dns:///pods.test.local:${a.port}`], {
    dnsServers: [dnsServer.server],
    resolveIntervalMs: 100,
  }));
  t.after(async () => {
    await upstream.close();
    await Promise.all([a.close(), b.close(), dnsServer.close()]);
  });
  dnsServer.records.set('pods.test.local', ['127.0.0.40']);
  await upstream.start();
  const invoker = invokerFor(upstream);
  const first = await drive(invoker, 40, 4);
  assert.deepEqual(first.errors, []);
  assert.deepEqual([...first.byHost.keys()], ['127.0.0.40']);

  dnsServer.records.set('pods.test.local', ['127.0.0.40', '127.0.0.41']);
  const until = Date.now() + 3_000;
  while (upstream.picker.endpoints.length < 2 && Date.now() < until) await sleep(20);
  const both = await drive(invoker, 100, 4);
  assert.deepEqual(both.errors, []);
  assert.ok((both.byHost.get('127.0.0.41') ?? 0) >= 40, JSON.stringify([...both.byHost]));

  dnsServer.records.set('pods.test.local', ['127.0.0.41']);
  const until2 = Date.now() + 3_000;
  while (upstream.picker.endpoints.length !== 1 && Date.now() < until2) await sleep(20);
  const callsOnA = a.calls;
  const last = await drive(invoker, 50, 4);
  assert.deepEqual(last.errors, []);
  assert.equal(a.calls, callsOnA);
  assert.equal(last.byHost.get('127.0.0.41'), 50);
});

test('DNS discovery: a failing lookup keeps the last answer', async (t) => {
  const dnsServer = await startDnsServer();
  const a = await startBackend('127.0.0.42');
  const upstream = new BackendUpstream(settings('svc', [`dns:///keep.test.local:${a.port}`], {
    dnsServers: [dnsServer.server],
    resolveIntervalMs: 100,
  }));
  t.after(async () => {
    await upstream.close();
    await a.close();
  });
  dnsServer.records.set('keep.test.local', ['127.0.0.42']);
  await upstream.start();
  await dnsServer.close(); // lookups now time out
  await sleep(300);
  assert.equal(upstream.picker.endpoints.length, 1);
  assert.deepEqual((await drive(invokerFor(upstream), 10, 2)).errors, []);
});
