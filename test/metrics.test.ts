import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  LATENCY_BUCKETS,
  METRICS_DOC,
  Metrics,
  OTHER,
  UNMATCHED_ROUTE,
  grpcCodeName,
} from '../src/observability/metrics.ts';
import { Code } from '../src/errors/index.ts';

/** The value of one series, or undefined when the series does not exist. */
async function value(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = m.registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  const { values } = await metric.get();
  const hit = values.find(
    (v) =>
      Object.keys(labels).length === Object.keys(v.labels).filter((k) => k !== 'le').length &&
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return hit?.value;
}

test('METRICS_DOC lists unique, well-formed protogate_ names with help and labels', () => {
  const names = METRICS_DOC.map((d) => d.name);
  assert.equal(new Set(names).size, names.length);
  for (const d of METRICS_DOC) {
    assert.match(d.name, /^protogate_[a-z_]+$/);
    assert.ok(d.help.length > 10, `${d.name} has help`);
    if (d.type === 'counter') assert.match(d.name, /_total$/, `${d.name}: counters end in _total`);
    if (d.type === 'histogram') assert.match(d.name, /_seconds$/, `${d.name}: histograms are in seconds`);
    for (const l of d.labels) assert.match(l, /^[a-z_]+$/);
  }
  for (const required of [
    'protogate_http_requests_total',
    'protogate_http_request_duration_seconds',
    'protogate_http_requests_in_flight',
    'protogate_http_request_bytes_total',
    'protogate_http_response_bytes_total',
    'protogate_grpc_streams_total',
    'protogate_grpc_streams_in_flight',
    'protogate_grpc_stream_duration_seconds',
    'protogate_upstream_connections',
    'protogate_upstream_endpoint_healthy',
    'protogate_config_reloads_total',
  ]) {
    assert.ok(names.includes(required), `${required} is documented`);
  }
});

test('registers exactly the documented metrics (plus the default process metrics) with their types', async () => {
  const m = new Metrics();
  const text = await m.render();
  for (const d of METRICS_DOC) {
    assert.ok(text.includes(`# TYPE ${d.name} ${d.type}\n`), `${d.name} is exposed as a ${d.type}`);
    assert.ok(text.includes(`# HELP ${d.name} ${d.help}\n`), `${d.name} carries the documented help`);
  }
  const own = m.registry.getMetricsAsArray().map((x) => x.name).filter((n) => n.startsWith('protogate_'));
  assert.deepEqual(own.sort(), METRICS_DOC.map((d) => d.name).sort());
  assert.match(text, /^process_cpu_user_seconds_total /m);
  assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
});

test('leaves the default process metrics out when asked', async () => {
  const text = await new Metrics({ defaultMetrics: false }).render();
  assert.doesNotMatch(text, /process_cpu_user_seconds_total/);
  assert.match(text, /protogate_http_requests_total/);
});

test('two gateways in one process keep separate registries', async () => {
  const a = new Metrics();
  const b = new Metrics();
  a.httpRoute('/v1/{name=shelves/*}', 'library.v1.LibraryService/GetShelf').start();
  assert.equal(await value(a, 'protogate_http_requests_in_flight'), 1);
  assert.equal(await value(b, 'protogate_http_requests_in_flight'), 0);
});

test('counts a REST request under its route template, gRPC method, code name and HTTP status', async () => {
  const m = new Metrics({ defaultMetrics: false });
  const route = m.httpRoute('/v1/{name=shelves/*/books/*}', 'library.v1.LibraryService/GetBook');
  assert.equal(m.httpRoute('/v1/{name=shelves/*/books/*}', 'library.v1.LibraryService/GetBook'), route, 'created once');

  route.start();
  assert.equal(await value(m, 'protogate_http_requests_in_flight'), 1);
  route.requestBytes(12);
  route.responseBytes(30);
  route.responseBytes(0);
  route.finish(Code.NOT_FOUND, 404, 0.0004);
  route.start();
  route.finish(Code.NOT_FOUND, 404, 0.003);
  route.start();
  route.finish(Code.OK, 200, 2);
  assert.equal(await value(m, 'protogate_http_requests_in_flight'), 0);

  const labels = { route: '/v1/{name=shelves/*/books/*}', grpc_method: 'library.v1.LibraryService/GetBook' };
  assert.equal(await value(m, 'protogate_http_requests_total', { ...labels, grpc_code: 'NOT_FOUND', http_status: '404' }), 2);
  assert.equal(await value(m, 'protogate_http_requests_total', { ...labels, grpc_code: 'OK', http_status: '200' }), 1);
  assert.equal(await value(m, 'protogate_http_request_bytes_total', labels), 12);
  assert.equal(await value(m, 'protogate_http_response_bytes_total', labels), 30);

  const text = await m.render();
  // 0.4 ms lands in the first (0.5 ms) bucket; the highest finite bucket is 10 s.
  assert.match(text, /protogate_http_request_duration_seconds_bucket\{le="0\.0005",route="\/v1\/\{name=shelves\/\*\/books\/\*\}",grpc_method="library\.v1\.LibraryService\/GetBook"\} 1\n/);
  assert.match(text, /protogate_http_request_duration_seconds_bucket\{le="5",.*\} 3\n/);
  assert.match(text, /protogate_http_request_duration_seconds_bucket\{le="1",.*\} 2\n/);
  assert.match(text, /protogate_http_request_duration_seconds_count\{.*\} 3\n/);
  assert.equal(LATENCY_BUCKETS[0], 0.0005);
  assert.equal(LATENCY_BUCKETS.at(-1), 10);
});

test('reports codes outside the enum as UNKNOWN and unmatched requests under one route label', async () => {
  const m = new Metrics({ defaultMetrics: false });
  const none = m.httpRoute(UNMATCHED_ROUTE, '');
  none.start();
  none.finish(99, 404, 0.001);
  none.start();
  none.finish(-1, 404, 0.001);
  assert.equal(
    await value(m, 'protogate_http_requests_total', { route: UNMATCHED_ROUTE, grpc_method: '', grpc_code: 'UNKNOWN', http_status: '404' }),
    2,
  );
});

test('grpcCodeName agrees with the Code enum for every code', () => {
  for (let c = 0; c <= 16; c++) assert.equal(grpcCodeName(c), Code[c]);
  assert.equal(grpcCodeName(17), 'UNKNOWN');
});

test('counts passthrough calls and bytes by service, method and code', async () => {
  const m = new Metrics({ defaultMetrics: false });
  const call = m.grpcMethod('library.v1.LibraryService', 'StreamBooks');
  call.start();
  call.start();
  assert.equal(await value(m, 'protogate_grpc_streams_in_flight'), 2);
  call.receivedBytes(5);
  call.sentBytes(100);
  call.sentBytes(50);
  call.finish(Code.OK, 1.5);
  call.finish(Code.CANCELLED, 120);
  assert.equal(await value(m, 'protogate_grpc_streams_in_flight'), 0);
  const labels = { service: 'library.v1.LibraryService', method: 'StreamBooks' };
  assert.equal(await value(m, 'protogate_grpc_streams_total', { ...labels, grpc_code: 'OK' }), 1);
  assert.equal(await value(m, 'protogate_grpc_streams_total', { ...labels, grpc_code: 'CANCELLED' }), 1);
  assert.equal(await value(m, 'protogate_grpc_received_bytes_total', labels), 5);
  assert.equal(await value(m, 'protogate_grpc_sent_bytes_total', labels), 150);
  // A two-minute stream is still inside a finite bucket.
  assert.match(await m.render(), /protogate_grpc_stream_duration_seconds_bucket\{le="300",service="library\.v1\.LibraryService",method="StreamBooks"\} 2\n/);
});

test('caps the number of passthrough method series, folding the rest into (other)', async () => {
  const m = new Metrics({ defaultMetrics: false, maxPassthroughMethods: 2 });
  m.grpcMethod('a.S', 'One').start();
  m.grpcMethod('a.S', 'Two').start();
  const third = m.grpcMethod('evil.S', 'Invented1');
  const fourth = m.grpcMethod('evil.S', 'Invented2');
  assert.equal(third, fourth);
  assert.equal(third.service, OTHER);
  third.finish(Code.UNIMPLEMENTED, 0.001);
  fourth.finish(Code.UNIMPLEMENTED, 0.001);
  assert.equal(m.grpcMethod('a.S', 'One').service, 'a.S', 'known pairs keep their own series');
  assert.equal(await value(m, 'protogate_grpc_streams_total', { service: OTHER, method: OTHER, grpc_code: 'UNIMPLEMENTED' }), 2);
  const text = await m.render();
  assert.doesNotMatch(text, /Invented/);
});

test('tracks upstream connections and health per endpoint and forgets removed endpoints', async () => {
  const m = new Metrics({ defaultMetrics: false });
  m.setUpstreamConnections('library', '10.0.0.1:50051', 2);
  m.setUpstreamHealthy('library', '10.0.0.1:50051', true);
  m.setUpstreamHealthy('library', '10.0.0.2:50051', false);
  assert.equal(await value(m, 'protogate_upstream_connections', { backend: 'library', endpoint: '10.0.0.1:50051' }), 2);
  assert.equal(await value(m, 'protogate_upstream_endpoint_healthy', { backend: 'library', endpoint: '10.0.0.1:50051' }), 1);
  assert.equal(await value(m, 'protogate_upstream_endpoint_healthy', { backend: 'library', endpoint: '10.0.0.2:50051' }), 0);
  m.removeUpstreamEndpoint('library', '10.0.0.1:50051');
  assert.equal(await value(m, 'protogate_upstream_connections', { backend: 'library', endpoint: '10.0.0.1:50051' }), undefined);
  assert.equal(await value(m, 'protogate_upstream_endpoint_healthy', { backend: 'library', endpoint: '10.0.0.1:50051' }), undefined);
  assert.equal(await value(m, 'protogate_upstream_endpoint_healthy', { backend: 'library', endpoint: '10.0.0.2:50051' }), 0);
});

test('exposes both config reload series from the start', async () => {
  const m = new Metrics({ defaultMetrics: false });
  assert.equal(await value(m, 'protogate_config_reloads_total', { result: 'success' }), 0);
  assert.equal(await value(m, 'protogate_config_reloads_total', { result: 'failure' }), 0);
  m.configReloaded(true);
  m.configReloaded(false);
  m.configReloaded(true);
  assert.equal(await value(m, 'protogate_config_reloads_total', { result: 'success' }), 2);
  assert.equal(await value(m, 'protogate_config_reloads_total', { result: 'failure' }), 1);
});
