import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startAdminServer, type Readiness } from '../src/http/admin.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { Code } from '../src/errors/index.ts';

async function start(t: import('node:test').TestContext, readiness: () => Readiness, metrics = new Metrics({ defaultMetrics: false })) {
  const admin = await startAdminServer({ host: '127.0.0.1', port: 0, metrics, readiness });
  t.after(() => admin.close());
  return { admin, metrics, base: `http://127.0.0.1:${admin.address.port}` };
}

const ready = (): Readiness => ({ ready: true, checks: [{ name: 'listeners', ok: true }] });

test('binds the requested host and a real port for port 0', async (t) => {
  const { admin } = await start(t, ready);
  assert.equal(admin.address.address, '127.0.0.1');
  assert.ok(admin.address.port > 0);
});

test('GET /healthz answers 200 {"status":"ok"} as JSON, even when not ready', async (t) => {
  const { base } = await start(t, () => ({ ready: false, checks: [] }));
  for (const path of ['/healthz', '/healthz?probe=1']) {
    const res = await fetch(base + path);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await res.json(), { status: 'ok' });
  }
});

test('GET /readyz follows the readiness callback on every request and lists the checks', async (t) => {
  let state: Readiness = ready();
  const { base } = await start(t, () => state);

  let res = await fetch(`${base}/readyz`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ready', checks: [{ name: 'listeners', ok: true }] });

  state = {
    ready: false,
    checks: [
      { name: 'listeners', ok: true },
      { name: 'draining', ok: false, detail: 'SIGTERM received' },
    ],
  };
  res = await fetch(`${base}/readyz`);
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), {
    status: 'not ready',
    checks: [
      { name: 'listeners', ok: true },
      { name: 'draining', ok: false, detail: 'SIGTERM received' },
    ],
  });
});

test('GET /readyz answers 503 when the readiness callback throws', async (t) => {
  const { base } = await start(t, () => {
    throw new Error('boom');
  });
  const res = await fetch(`${base}/readyz`);
  assert.equal(res.status, 503);
  const body = (await res.json()) as { status: string; checks: Array<{ ok: boolean; detail?: string }> };
  assert.equal(body.status, 'not ready');
  assert.equal(body.checks[0]!.ok, false);
  assert.doesNotMatch(JSON.stringify(body), /boom/, 'the error text is logged, not served');
});

test('GET /metrics serves the registry in the Prometheus text format', async (t) => {
  const { base, metrics } = await start(t, ready, new Metrics());
  const route = metrics.httpRoute('/v1/{name=shelves/*}', 'library.v1.LibraryService/GetShelf');
  route.start();
  route.finish(Code.OK, 200, 0.002);

  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), metrics.contentType);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  const text = await res.text();
  assert.match(
    text,
    /^protogate_http_requests_total\{route="\/v1\/\{name=shelves\/\*\}",grpc_method="library\.v1\.LibraryService\/GetShelf",grpc_code="OK",http_status="200"\} 1$/m,
  );
  assert.match(text, /^process_cpu_user_seconds_total /m);
});

test('answers 404 JSON for other paths and 405 with Allow for other methods', async (t) => {
  const { base } = await start(t, ready);
  for (const path of ['/', '/health', '/metrics/extra', '/readyz/']) {
    const res = await fetch(base + path);
    assert.equal(res.status, 404, path);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(((await res.json()) as { error: string }).error, 'not found');
  }
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    const res = await fetch(`${base}/healthz`, { method });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    assert.match(((await res.json()) as { error: string }).error, new RegExp(method));
  }
});

test('answers HEAD like GET without a body', async (t) => {
  const { base } = await start(t, () => ({ ready: false, checks: [] }));
  const res = await fetch(`${base}/readyz`, { method: 'HEAD' });
  assert.equal(res.status, 503);
  assert.equal(await res.text(), '');
});

test('close() returns promptly although a client holds a keep-alive connection, and stops listening', async () => {
  const admin = await startAdminServer({ host: '127.0.0.1', port: 0, metrics: new Metrics({ defaultMetrics: false }), readiness: ready });
  const agent = new http.Agent({ keepAlive: true });
  const status = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: admin.address.port, path: '/healthz', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
  assert.equal(status, 200);
  const started = Date.now();
  await admin.close();
  assert.ok(Date.now() - started < 2000, 'did not wait for the keep-alive timeout');
  await assert.rejects(fetch(`http://127.0.0.1:${admin.address.port}/healthz`));
  agent.destroy();
});

test('rejects when the port is taken instead of starting half-way', async (t) => {
  const { admin } = await start(t, ready);
  await assert.rejects(
    startAdminServer({ host: '127.0.0.1', port: admin.address.port, metrics: new Metrics({ defaultMetrics: false }), readiness: ready }),
    /EADDRINUSE/,
  );
});
