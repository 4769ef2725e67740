/**
 * OpenTelemetry export, end to end: a real gateway in front of a real recording backend, exporting to a real OTLP/HTTP
 * receiver (a node:http server on 127.0.0.1:0) whose protobuf bodies are decoded with protobufjs from the OTLP trace
 * schema below, independently of the exporter's own serializer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import pb from 'protobufjs';
import { pino } from 'pino';
import { startRecordingBackend, type RecordingBackend, type ScriptedReply } from './helpers/recording-backend.ts';
import { startGateway, type RunningGateway } from './helpers/gateway.ts';
import { until } from './helpers/wait.ts';
import { resolveConfig, type GatewayConfig } from '../src/config/index.ts';
import { createTracing } from '../src/observability/tracing.ts';
import { StartupError } from '../src/errors/index.ts';

const PROTO_DIR = path.resolve('test/protos');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };

/**
 * ExportTraceServiceRequest with the fields these tests read, numbered as in opentelemetry-proto
 * (collector/trace/v1/trace_service.proto, trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto).
 */
const OTLP_SCHEMA = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  Status status = 15;
  fixed32 flags = 16;
}
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
`;
const ExportRequest = pb.parse(OTLP_SCHEMA, { keepCase: true }).root.lookupType('otlp.ExportTraceServiceRequest');
const SPAN_KIND_SERVER = 2;
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  status: number;
  resource: Record<string, unknown>;
  scope: string;
}

interface Received {
  path: string | undefined;
  headers: http.IncomingHttpHeaders;
  spans: ExportedSpan[];
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('hex');

function anyValue(v: Obj | undefined): unknown {
  if (!v) return undefined;
  if ('string_value' in v) return v['string_value'];
  if ('bool_value' in v) return v['bool_value'];
  if ('int_value' in v) return Number(v['int_value']);
  if ('double_value' in v) return v['double_value'];
  if ('array_value' in v) return (v['array_value']['values'] ?? []).map(anyValue);
  if ('bytes_value' in v) return hex(v['bytes_value']);
  return undefined;
}

const attributes = (kvs: Obj[] | undefined): Record<string, unknown> =>
  Object.fromEntries((kvs ?? []).map((kv) => [kv['key'], anyValue(kv['value'])]));

function decodeSpans(body: Buffer): ExportedSpan[] {
  const req = ExportRequest.toObject(ExportRequest.decode(body), { longs: String }) as Obj;
  const out: ExportedSpan[] = [];
  for (const rs of req['resource_spans'] ?? []) {
    const resource = attributes(rs['resource']?.['attributes']);
    for (const ss of rs['scope_spans'] ?? []) {
      for (const s of ss['spans'] ?? []) {
        out.push({
          traceId: hex(s['trace_id']),
          spanId: hex(s['span_id']),
          parentSpanId: hex(s['parent_span_id']),
          traceState: s['trace_state'] ?? '',
          name: s['name'],
          kind: s['kind'] ?? 0,
          attributes: attributes(s['attributes']),
          status: s['status']?.['code'] ?? STATUS_UNSET,
          resource,
          scope: ss['scope']?.['name'] ?? '',
        });
      }
    }
  }
  return out;
}

/** An OTLP/HTTP receiver: records every POST and answers an empty ExportTraceServiceResponse (full success). */
async function startCollector(t: { after(fn: () => Promise<void>): void }) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      received.push({ path: req.url, headers: req.headers, spans: decodeSpans(body) });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    endpoint: `http://127.0.0.1:${port}/v1/traces`,
    received,
    spans: (): ExportedSpan[] => received.flatMap((r) => r.spans),
  };
}

function captureLogger() {
  const text: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      text.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'trace' }, sink), text };
}

async function setup(
  t: { after(fn: () => Promise<void>): void },
  tracing: GatewayConfig['tracing'],
  script: (method: string) => ScriptedReply = () => ({ response: { name: 'shelves/s1/books/b1', title: 'ok' } }),
  extra: Partial<GatewayConfig> = {},
) {
  const backend: RecordingBackend = await startRecordingBackend({
    includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script,
  });
  const { logger, text } = captureLogger();
  const gw: RunningGateway = await startGateway({
    protos,
    tracing,
    shutdown: { drainDelayMs: 0, timeoutMs: 5000 },
    backends: [{ name: 'everything', services: ['testpb.Everything'], endpoints: [backend.address] }],
    ...extra,
  }, process.cwd(), { logger });
  t.after(async () => {
    await gw.close();
    await backend.close();
  });
  return { backend, gw, logs: text };
}

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

function backendTraceparent(backend: RecordingBackend, i = 0): { traceId: string; parentId: string; flags: string } {
  const values = backend.received[i]!.metadata['traceparent'];
  assert.equal(values?.length, 1, 'exactly one traceparent reaches the backend');
  const m = TRACEPARENT.exec(String(values[0]));
  assert.ok(m, `a valid traceparent: ${String(values[0])}`);
  return { traceId: m[1]!, parentId: m[2]!, flags: m[3]! };
}

async function exported(collector: { spans(): ExportedSpan[] }, traceId: string, what: string): Promise<ExportedSpan> {
  await until(() => collector.spans().some((s) => s.traceId === traceId), what);
  const spans = collector.spans().filter((s) => s.traceId === traceId);
  assert.equal(spans.length, 1, `one span for trace ${traceId}`);
  return spans[0]!;
}

test('exports one SERVER span per REST request, a child of the client span, and the backend span becomes its child', async (t) => {
  const collector = await startCollector(t);
  const { backend, gw } = await setup(t, {
    otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20, serviceName: 'edge-gateway', headers: { authorization: 'Bearer otlp-key' } },
  });
  const res = await fetch(`${gw.url}/v1/shelves/s1/books`, {
    method: 'POST',
    headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc,other=1', 'x-request-id': 'req-42' },
    body: JSON.stringify({ title: 'Dune' }),
  });
  assert.equal(res.status, 200);
  await res.arrayBuffer();

  const span = await exported(collector, CLIENT_TRACE, 'the gateway span to be exported');
  assert.equal(span.parentSpanId, CLIENT_SPAN);
  assert.equal(span.name, 'POST /v1/{parent=shelves/*}/books');
  assert.equal(span.kind, SPAN_KIND_SERVER);
  assert.equal(span.status, STATUS_UNSET);
  assert.equal(span.traceState, 'vendor=abc,other=1');
  assert.equal(span.scope, 'protogate');
  assert.equal(span.resource['service.name'], 'edge-gateway');
  assert.deepEqual(
    { ...span.attributes, 'client.address': undefined },
    {
      'http.request.method': 'POST',
      'http.route': '/v1/{parent=shelves/*}/books',
      'http.response.status_code': 200,
      'url.scheme': 'http',
      'network.protocol.version': '1.1',
      'http.response.header.x-request-id': ['req-42'],
      'client.address': undefined,
      'rpc.system.name': 'grpc',
      'rpc.method': 'testpb.Everything/CreateBook',
      'rpc.status_code': 'OK',
      'rpc.system': 'grpc',
      'rpc.service': 'testpb.Everything',
      'rpc.grpc.status_code': 0,
    },
  );
  assert.match(String(span.attributes['client.address']), /127\.0\.0\.1/);

  // The backend's parent is the exported gateway span, in the client's trace; tracestate passes unchanged.
  const forwarded = backendTraceparent(backend);
  assert.deepEqual(forwarded, { traceId: CLIENT_TRACE, parentId: span.spanId, flags: '01' });
  assert.notEqual(span.spanId, CLIENT_SPAN);
  assert.deepEqual(backend.received[0]!.metadata['tracestate'], ['vendor=abc,other=1']);

  // Real OTLP/HTTP: protobuf to the configured path, with the configured headers.
  const request = collector.received[0]!;
  assert.equal(request.path, '/v1/traces');
  assert.equal(request.headers['content-type'], 'application/x-protobuf');
  assert.equal(request.headers['authorization'], 'Bearer otlp-key');
});

test('a request without traceparent starts a new trace that the backend joins', async (t) => {
  const collector = await startCollector(t);
  const { backend, gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20 } });
  assert.equal((await fetch(`${gw.url}/v1/shelves/s1/books/b1`)).status, 200);
  const forwarded = backendTraceparent(backend);
  const span = await exported(collector, forwarded.traceId, 'the gateway span to be exported');
  assert.equal(span.parentSpanId, '', 'a root span');
  assert.equal(span.spanId, forwarded.parentId);
  assert.equal(span.name, 'GET /v1/{name=shelves/*/books/*}');
  assert.equal(span.resource['service.name'], 'protogate');
});

test('404 and 405 get spans named by the method alone, without route or RPC attributes, not errors', async (t) => {
  const collector = await startCollector(t);
  const { backend, gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20 } });
  const notFound = await fetch(`${gw.url}/v1/nothing/here`, { headers: { traceparent: `00-${'1'.repeat(32)}-${CLIENT_SPAN}-01` } });
  assert.equal(notFound.status, 404);
  const notAllowed = await fetch(`${gw.url}/v1/echo`, { method: 'DELETE', headers: { traceparent: `00-${'2'.repeat(32)}-${CLIENT_SPAN}-01` } });
  assert.equal(notAllowed.status, 405);

  for (const [trace, method, status] of [['1'.repeat(32), 'GET', 404], ['2'.repeat(32), 'DELETE', 405]] as const) {
    const span = await exported(collector, trace, `the ${status} span`);
    assert.equal(span.name, method);
    assert.equal(span.parentSpanId, CLIENT_SPAN);
    assert.equal(span.status, STATUS_UNSET, 'a 4xx is the client\'s error, not the server\'s');
    assert.equal(span.attributes['http.response.status_code'], status);
    assert.equal(span.attributes['http.request.method'], method);
    assert.equal(span.attributes['http.route'], undefined, 'never the raw path');
    assert.equal(span.attributes['rpc.method'], undefined);
    assert.ok(!JSON.stringify(span).includes('/v1/nothing/here'), 'the raw path is not exported');
  }
  assert.equal(backend.received.length, 0);
});

test('a request refused before routing (body over http.bodyLimit) gets a span too', async (t) => {
  const collector = await startCollector(t);
  const { backend, gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20 } }, undefined, { http: { bodyLimit: 16 } });
  const res = await fetch(`${gw.url}/v1/echo`, {
    method: 'POST', headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` }, body: JSON.stringify({ stringValue: 'x'.repeat(100) }),
  });
  assert.equal(res.status, 413);
  const span = await exported(collector, CLIENT_TRACE, 'the refused request span');
  assert.equal(span.name, 'POST');
  assert.equal(span.parentSpanId, CLIENT_SPAN);
  assert.equal(span.attributes['http.response.status_code'], 413);
  assert.equal(backend.received.length, 0);
});

test('a 5xx span has status ERROR and the gRPC code of the backend failure', async (t) => {
  const collector = await startCollector(t);
  const { gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20 } },
    () => ({ error: { code: 14, message: 'backend down' } }));
  const res = await fetch(`${gw.url}/v1/shelves/s1/books/b1`, { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` } });
  assert.equal(res.status, 503);
  const span = await exported(collector, CLIENT_TRACE, 'the failed request span');
  assert.equal(span.status, STATUS_ERROR);
  assert.equal(span.attributes['error.type'], '503');
  assert.equal(span.attributes['rpc.status_code'], 'UNAVAILABLE');
  assert.equal(span.attributes['rpc.grpc.status_code'], 14);
});

test('a client that disconnects still ends the span (499)', async (t) => {
  const collector = await startCollector(t);
  const { backend, gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20 } },
    () => ({ response: {}, delayMs: 3000 }));
  const ac = new AbortController();
  const pending = fetch(`${gw.url}/v1/shelves/s1/books/b1`, {
    signal: ac.signal, headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` },
  }).catch(() => undefined);
  await until(() => backend.received.length === 1, 'the call to reach the backend');
  ac.abort();
  await pending;
  const span = await exported(collector, CLIENT_TRACE, 'the abandoned request span');
  assert.equal(span.attributes['http.response.status_code'], 499);
  assert.equal(span.name, 'GET /v1/{name=shelves/*/books/*}');
});

test('parent-based sampling: an unsampled client trace is not exported, and the backend is told it is unsampled', async (t) => {
  const collector = await startCollector(t);
  const { backend, gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20 } });
  const sampledTrace = 'a'.repeat(32);
  await (await fetch(`${gw.url}/v1/shelves/s1/books/b1`, { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00` } })).arrayBuffer();
  await (await fetch(`${gw.url}/v1/shelves/s1/books/b1`, { headers: { traceparent: `00-${sampledTrace}-${CLIENT_SPAN}-01` } })).arrayBuffer();
  const unsampled = backendTraceparent(backend, 0);
  assert.equal(unsampled.traceId, CLIENT_TRACE);
  assert.equal(unsampled.flags, '00');
  assert.notEqual(unsampled.parentId, CLIENT_SPAN, 'the gateway still takes part: its own (unrecorded) span id');
  await exported(collector, sampledTrace, 'the sampled request span');
  await gw.close(); // flushes everything queued
  assert.ok(!collector.spans().some((s) => s.traceId === CLIENT_TRACE), 'the unsampled request was not exported');
});

test('shutdown flushes spans still queued, before the gateway closes', async (t) => {
  const collector = await startCollector(t);
  // A batch would only go out after 10 minutes: only the shutdown flush can deliver it.
  const { gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 600_000 } });
  for (let i = 1; i <= 3; i++) {
    const traceparent = `00-${String(i).repeat(32)}-${CLIENT_SPAN}-01`;
    assert.equal((await fetch(`${gw.url}/v1/shelves/s1/books/b${i}`, { headers: { traceparent } })).status, 200);
  }
  assert.equal(collector.received.length, 0, 'nothing exported before shutdown');
  await gw.gateway.shutdown();
  assert.deepEqual(collector.spans().map((s) => s.traceId).sort(), ['1', '2', '3'].map((d) => d.repeat(32)));
});

test('an unresponsive collector cannot hold up shutdown, and the export headers are never logged', async (t) => {
  // Accepts connections and requests, never answers.
  const hung: http.ServerResponse[] = [];
  const blackhole = http.createServer((_req, res) => { hung.push(res); });
  await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    blackhole.closeAllConnections();
    await new Promise<void>((resolve) => blackhole.close(() => resolve()));
  });
  const { port } = blackhole.address() as { port: number };
  const { gw, logs } = await setup(t, {
    otlp: {
      endpoint: `http://127.0.0.1:${port}/v1/traces`, exportTimeoutMs: 300, scheduledDelayMs: 600_000,
      headers: { 'x-api-key': 'sup3r-s3cret-key' },
    },
  });
  assert.equal((await fetch(`${gw.url}/v1/shelves/s1/books/b1`)).status, 200);
  await gw.gateway.shutdown();
  assert.equal(hung.length, 1, 'the flush reached the collector');
  const text = logs.join('');
  assert.match(text, /tracing: exporting spans with OTLP\/HTTP to http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);
  assert.match(text, /tracing: (OTLP export failed|spans not exported within exportTimeoutMs)/);
  assert.ok(!text.includes('sup3r-s3cret-key'), 'no export header value in any log line');
});

test('with tracing absent nothing is exported, even with OTEL_* variables set, and traceparent passes unchanged', async (t) => {
  const collector = await startCollector(t);
  // If anything exported by default, these standard variables would send it to our receiver.
  const saved = { all: process.env['OTEL_EXPORTER_OTLP_ENDPOINT'], traces: process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] };
  process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = collector.endpoint.replace('/v1/traces', '');
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = collector.endpoint;
  t.after(async () => {
    for (const [k, v] of [['OTEL_EXPORTER_OTLP_ENDPOINT', saved.all], ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', saved.traces]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const { backend, gw } = await setup(t, undefined);
  const traceparent = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;
  assert.equal((await fetch(`${gw.url}/v1/shelves/s1/books/b1`, { headers: { traceparent, tracestate: 'vendor=abc' } })).status, 200);
  assert.equal((await fetch(`${gw.url}/v1/nothing`)).status, 404);
  await gw.gateway.shutdown();
  assert.deepEqual(backend.received[0]!.metadata['traceparent'], [traceparent]);
  assert.deepEqual(backend.received[0]!.metadata['tracestate'], ['vendor=abc']);
  assert.equal(collector.received.length, 0);
});

test('the gRPC port: one SERVER span per routed call, a child of the client span, and the backend joins it', async (t) => {
  const grpc = await import('@grpc/grpc-js');
  const collector = await startCollector(t);
  const { backend, gw } = await setup(t, { otlp: { endpoint: collector.endpoint, scheduledDelayMs: 20 } });
  const client = new grpc.Client(`127.0.0.1:${gw.gateway.addresses().grpc!.port}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const trace = 'aaf92f3577b34da6a3ce929d0e0e4736';
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${trace}-${CLIENT_SPAN}-01`);
  md.set('tracestate', 'vendor=grpc');
  await new Promise<void>((resolve, reject) => {
    client.makeUnaryRequest('/testpb.Everything/GetBook', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md,
      (err: Error | null) => (err ? reject(err) : resolve()));
  });
  const span = await exported(collector, trace, 'the gRPC-port span to be exported');
  assert.equal(span.name, 'testpb.Everything/GetBook');
  assert.equal(span.kind, SPAN_KIND_SERVER);
  assert.equal(span.parentSpanId, CLIENT_SPAN);
  assert.equal(span.attributes['rpc.method'], 'testpb.Everything/GetBook');
  assert.equal(span.attributes['rpc.status_code'], 'OK');
  assert.deepEqual(backendTraceparent(backend), { traceId: trace, parentId: span.spanId, flags: '01' });
  assert.deepEqual(backend.received[0]!.metadata['tracestate'], ['vendor=grpc']);

  // An unknown service is answered UNIMPLEMENTED without a span: its name comes from the client, unbounded.
  await new Promise<void>((resolve) => {
    client.makeUnaryRequest('/nope.Unknown/Call', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md, () => resolve());
  });
  const before = collector.spans().length;
  await gw.gateway.shutdown();
  assert.equal(collector.spans().length, before, 'the flush at shutdown brought no span for the unknown service');
});

test('startGrpcSpan (for the passthrough port): a SERVER span parented by the call headers, ERROR for server-side codes', async (t) => {
  const collector = await startCollector(t);
  const tracing = createTracing(
    resolveConfig({ protos: { files: ['a.proto'] }, tracing: { otlp: { endpoint: collector.endpoint } } }, '/srv/gateway.config.ts').tracing.otlp,
    pino({ level: 'silent' }),
  )!;
  const calls = [['1', 14], ['2', 5], ['3', 0]] as const;
  const forwarded = new Map<string, string>();
  for (const [digit, code] of calls) {
    const span = tracing.startGrpcSpan('library.v1.LibraryService', 'GetBook', {
      ':path': '/library.v1.LibraryService/GetBook', traceparent: `00-${digit.repeat(32)}-${CLIENT_SPAN}-01`, tracestate: 'k=v',
    }, '10.0.0.9');
    forwarded.set(digit.repeat(32), span.traceparent);
    span.end(code);
  }
  await tracing.shutdown();
  for (const [digit, code] of calls) {
    const trace = digit.repeat(32);
    const span = collector.spans().find((s) => s.traceId === trace);
    assert.ok(span, `span of trace ${trace}`);
    assert.equal(forwarded.get(trace), `00-${trace}-${span.spanId}-01`, 'the traceparent to forward names this span');
    assert.equal(span.parentSpanId, CLIENT_SPAN);
    assert.equal(span.traceState, 'k=v');
    assert.equal(span.name, 'library.v1.LibraryService/GetBook');
    assert.equal(span.kind, SPAN_KIND_SERVER);
    assert.equal(span.attributes['rpc.system.name'], 'grpc');
    assert.equal(span.attributes['rpc.method'], 'library.v1.LibraryService/GetBook');
    assert.equal(span.attributes['rpc.service'], 'library.v1.LibraryService');
    assert.equal(span.attributes['rpc.grpc.status_code'], code);
    assert.equal(span.attributes['client.address'], '10.0.0.9');
    // gRPC server conventions: UNAVAILABLE is the server's failure; NOT_FOUND is an answer, not an error.
    assert.equal(span.status, code === 14 ? STATUS_ERROR : STATUS_UNSET);
  }
  assert.equal(collector.spans().find((s) => s.traceId === '1'.repeat(32))!.attributes['rpc.status_code'], 'UNAVAILABLE');
});

const minimal = { protos: { files: ['a.proto'] } };
const badTracing: Array<[string, unknown, RegExp]> = [
  ['an endpoint without a scheme', { endpoint: 'collector:4318' }, /tracing\.otlp\.endpoint: expected an http\(s\) URL such as "http:\/\/collector:4318\/v1\/traces" \(got "collector:4318"\)/],
  ['a gRPC endpoint', { endpoint: 'grpc://collector:4317' }, /tracing\.otlp\.endpoint: expected an http\(s\) URL/],
  ['an endpoint without the traces path', { endpoint: 'http://collector:4318' }, /tracing\.otlp\.endpoint: expected the full traces URL including its path .*\/v1\/traces/],
  ['a sample ratio above 1', { endpoint: 'http://c:4318/v1/traces', sampleRatio: 2 }, /tracing\.otlp\.sampleRatio: .*(<=|less than or equal|too big).*got 2/i],
  ['a batch larger than the queue', { endpoint: 'http://c:4318/v1/traces', maxQueueSize: 10, maxExportBatchSize: 20 }, /tracing\.otlp\.maxExportBatchSize: must not be larger than maxQueueSize/],
  ['a misspelt option', { endpoint: 'http://c:4318/v1/traces', sampleRate: 0.5 }, /tracing\.otlp: Unrecognized key.*"sampleRate"/],
];
for (const [name, otlp, expected] of badTracing) {
  test(`config: rejects ${name}, naming the field and the fix`, () => {
    assert.throws(() => resolveConfig({ ...minimal, tracing: { otlp } }, '/srv/gateway.config.ts'), (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.match(err.message, expected);
      return true;
    });
  });
}

test('config: a bad export header value is named but never echoed', () => {
  const secret = 'Bearer s3cret\r\nx-injected: 1';
  assert.throws(() => resolveConfig({ ...minimal, tracing: { otlp: { endpoint: 'http://c:4318/v1/traces', headers: { authorization: secret } } } }, '/srv/gateway.config.ts'),
    (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.match(err.message, /tracing\.otlp\.headers\.authorization: expected a header value without control characters/);
      assert.ok(!err.message.includes('s3cret'), err.message);
      return true;
    });
});

test('config: tracing is off by default; an OTLP block gets its defaults', () => {
  assert.equal(resolveConfig(minimal, '/srv/gateway.config.ts').tracing.otlp, undefined);
  assert.deepEqual(resolveConfig({ ...minimal, tracing: { otlp: { endpoint: 'http://c:4318/v1/traces' } } }, '/srv/gateway.config.ts').tracing.otlp, {
    endpoint: 'http://c:4318/v1/traces', headers: {}, serviceName: 'protogate', sampleRatio: 1, exportTimeoutMs: 10_000,
    scheduledDelayMs: 5_000, maxQueueSize: 2048, maxExportBatchSize: 512,
  });
});
