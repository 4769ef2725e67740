/**
 * The transcoding conformance table: {request, expected upstream message, scripted upstream reply, expected HTTP
 * response}, run through a real protogate against a real @grpc/grpc-js backend on 127.0.0.1:0 that records what
 * it received (decoded with protobufjs' protojson, independently of the gateway's codec).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startRecordingBackend, type RecordingBackend, type ScriptedReply } from './helpers/recording-backend.ts';
import { startGateway, type RunningGateway } from './helpers/gateway.ts';

const PROTO_DIR = path.resolve('test/protos');
const SVC = '/testpb.Everything';

interface Row {
  name: string;
  request: { method: string; path: string; body?: string | Buffer; headers?: Record<string, string> };
  /** The message the backend must have received (proto3 JSON), or null: nothing may reach it. */
  upstream: { method: string; message: unknown; metadata?: Record<string, string> } | null;
  reply?: ScriptedReply;
  http: { status: number; json?: unknown; text?: string; headers?: Record<string, string | RegExp>; messageMatch?: RegExp };
}

const book = { name: 'shelves/s1/books/b1', title: 'Dune', author: { name: 'Frank', age: 65 }, tags: ['sf'], createTime: '1965-08-01T00:00:00Z', pageCount: '412', color: 'BLUE' };

const ROWS: Row[] = [
  {
    name: 'binds path variables into nested fields and converts query parameters of every kind',
    request: { method: 'GET', path: '/v1/everything/abc/nested/n1?int64Value=-9007199254740993&repeated_string=a&repeatedString=b&color=RED&timestamp=2020-01-02T03:04:05.5Z&duration=1.5s&fieldMask=a.b,cD&int32Wrapper=7&boolValue=true&bytesValue=AAE-_w&nested.value=3&customName=r&map_string_color[k]=GREEN' },
    upstream: { method: 'Get', message: { stringValue: 'abc', nested: { name: 'n1', value: 3 }, int64Value: '-9007199254740993', repeatedString: ['a', 'b'], color: 'RED', timestamp: '2020-01-02T03:04:05.500Z', duration: '1.500s', fieldMask: 'a.b,cD', int32Wrapper: 7, boolValue: true, bytesValue: 'AAE+/w==', customName: 'r', mapStringColor: { k: 'GREEN' } } },
    reply: { response: { stringValue: 'ok', int64Value: '12', color: 'GREEN' } },
    http: { status: 200, json: { stringValue: 'ok', int64Value: '12', color: 'GREEN' } },
  },
  {
    name: 'fully decodes a single-segment variable (%2F becomes /)',
    request: { method: 'GET', path: '/v1/everything/a%2Fb%20c/nested/x' },
    upstream: { method: 'Get', message: { stringValue: 'a/b c', nested: { name: 'x' } } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'keeps %2F encoded inside a multi-segment capture',
    request: { method: 'GET', path: '/v1/shelves/s%2F1/books/b%201/everything' },
    upstream: { method: 'Get', message: { name: 'shelves/s%2F1/books/b 1' } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'converts path variables to int, nested int and enum fields (additional binding)',
    request: { method: 'GET', path: '/v1/everything/42/-7/BLUE' },
    upstream: { method: 'Get', message: { int32Value: 42, nested: { child: { value: -7 } }, color: 'BLUE' } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'maps body "*" to the whole message, every WKT in proto3 JSON both ways',
    request: { method: 'POST', path: '/v1/echo', body: JSON.stringify({ double_value: 'NaN', floatValue: 'Infinity', uint64Value: '18446744073709551615', sint64Value: '-5', fixed64Value: '7', bytesValue: 'AAH-_w', structValue: { a: [1, 'x', null, true, { b: {} }] }, any: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' }, listValue: [1, 2], empty: {}, choiceNull: null, optionalInt32: 0, repeatedTimestamp: ['1970-01-01T00:00:00Z'] }) },
    upstream: { method: 'Echo', message: { doubleValue: 'NaN', floatValue: 'Infinity', uint64Value: '18446744073709551615', sint64Value: '-5', fixed64Value: '7', bytesValue: 'AAH+/w==', structValue: { a: [1, 'x', null, true, { b: {} }] }, any: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' }, listValue: [1, 2], empty: {}, choiceNull: null, optionalInt32: 0, repeatedTimestamp: ['1970-01-01T00:00:00Z'] } },
    reply: { response: { doubleValue: '-Infinity', uint64Value: '18446744073709551615', bytesValue: '/w==', structValue: { k: 'v' }, any: { '@type': 'type.googleapis.com/google.protobuf.Timestamp', value: '2020-01-01T00:00:00Z' }, choiceNull: null, optionalInt32: 0 } },
    http: { status: 200, json: { doubleValue: '-Infinity', uint64Value: '18446744073709551615', bytesValue: '/w==', structValue: { k: 'v' }, any: { '@type': 'type.googleapis.com/google.protobuf.Timestamp', value: '2020-01-01T00:00:00Z' }, choiceNull: null, optionalInt32: 0 } },
  },
  {
    name: 'rejects an unknown body field with 400 naming it, nothing reaches the backend',
    request: { method: 'POST', path: '/v1/echo', body: '{"stringValue":"x","bogus":1}' },
    upstream: null,
    http: { status: 400, messageMatch: /bogus/ },
  },
  {
    name: 'rejects two members of one oneof',
    request: { method: 'POST', path: '/v1/echo', body: '{"choiceString":"x","choiceInt64":"1"}' },
    upstream: null,
    http: { status: 400, messageMatch: /choice/ },
  },
  {
    name: 'rejects an out-of-range int32',
    request: { method: 'POST', path: '/v1/echo', body: '{"int32Value":2147483648}' },
    upstream: null,
    http: { status: 400, messageMatch: /int32_value|int32Value/ },
  },
  {
    name: 'rejects invalid JSON',
    request: { method: 'POST', path: '/v1/echo', body: '{"stringValue":' },
    upstream: null,
    http: { status: 400, messageMatch: /JSON/i },
  },
  {
    name: 'rejects a bad query value naming the parameter',
    request: { method: 'GET', path: '/v1/everything/a/nested/b?int32Value=abc' },
    upstream: null,
    http: { status: 400, messageMatch: /int32Value/ },
  },
  {
    name: 'path wins over the body for a path-bound field (PUT binding)',
    request: { method: 'PUT', path: '/v1/echo/from-path', body: '{"stringValue":"from-body","int32Value":5}' },
    upstream: { method: 'Echo', message: { stringValue: 'from-path', int32Value: 5 } },
    reply: { response: { int32Value: 5 } },
    http: { status: 200, json: { int32Value: 5 } },
  },
  {
    name: 'routes a custom method kind (PURGE) with query parameters',
    request: { method: 'PURGE', path: '/v1/echo/p?int32Value=3' },
    upstream: { method: 'Echo', message: { stringValue: 'p', int32Value: 3 } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'routes a custom verb on a resource name',
    request: { method: 'POST', path: '/v1/echo/shelves/s9:custom', body: '{"int32Value":1}' },
    upstream: { method: 'Echo', message: { name: 'shelves/s9', int32Value: 1 } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'maps body "field" to that field and the rest from the query',
    request: { method: 'POST', path: '/v1/echo:nested?stringValue=q', body: '{"name":"inner","tags":["t"]}' },
    upstream: { method: 'Echo', message: { stringValue: 'q', nested: { name: 'inner', tags: ['t'] } } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'renders a scalar response_body as a JSON string',
    request: { method: 'POST', path: '/v1/field/string', body: '{}' },
    upstream: { method: 'EchoField', message: {} },
    reply: { response: { stringValue: 'hello', int32Value: 1 } },
    http: { status: 200, json: 'hello' },
  },
  {
    name: 'renders a repeated response_body as an array and an int64 one as a string',
    request: { method: 'POST', path: '/v1/field/repeated', body: '{}' },
    upstream: { method: 'EchoField', message: {} },
    reply: { response: { repeatedNested: [{ name: 'a' }, { value: 2 }] } },
    http: { status: 200, json: [{ name: 'a' }, { value: 2 }] },
  },
  {
    name: 'renders a Timestamp response_body in RFC 3339',
    request: { method: 'POST', path: '/v1/field/timestamp', body: '{}' },
    upstream: { method: 'EchoField', message: {} },
    reply: { response: { timestamp: '2021-05-06T07:08:09.123Z' } },
    http: { status: 200, json: '2021-05-06T07:08:09.123Z' },
  },
  {
    name: 'PATCH with body "book" and an update_mask from the query',
    request: { method: 'PATCH', path: '/v1/shelves/s1/books/b1?updateMask=title,author.name', body: JSON.stringify({ title: 'New', author: { name: 'A' } }) },
    upstream: { method: 'UpdateBook', message: { book: { name: 'shelves/s1/books/b1', title: 'New', author: { name: 'A' } }, updateMask: 'title,author.name' } },
    reply: { response: book },
    http: { status: 200, json: book },
  },
  {
    name: 'DELETE returning Empty answers {}',
    request: { method: 'DELETE', path: '/v1/shelves/s1/books/b1' },
    upstream: { method: 'DeleteBook', message: { name: 'shelves/s1/books/b1' } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'maps a gRPC error to its HTTP status with google.rpc details, "@type" first',
    request: { method: 'GET', path: '/v1/shelves/s1/books/missing' },
    upstream: { method: 'GetBook', message: { name: 'shelves/s1/books/missing' } },
    reply: { error: { code: 5, message: 'no such book', details: [{ type: 'google.rpc.ResourceInfo', value: { resourceType: 'Book', resourceName: 'shelves/s1/books/missing' } }] } },
    http: { status: 404, json: { code: 5, message: 'no such book', details: [{ '@type': 'type.googleapis.com/google.rpc.ResourceInfo', resourceType: 'Book', resourceName: 'shelves/s1/books/missing' }] } },
  },
  ...([
    [1, 499], [2, 500], [3, 400], [4, 504], [6, 409], [7, 403], [8, 429], [9, 400], [10, 409], [11, 400], [12, 501], [13, 500], [14, 503], [15, 500], [16, 401],
  ] as const).map(([code, status]): Row => ({
    name: `maps gRPC code ${code} to HTTP ${status}`,
    request: { method: 'GET', path: `/v1/shelves/s/books/code${code}` },
    upstream: { method: 'GetBook', message: { name: `shelves/s/books/code${code}` } },
    reply: { error: { code, message: `failed with ${code}` } },
    http: { status, json: { code, message: `failed with ${code}`, details: [] } },
  })),
  {
    name: 'forwards Authorization, Grpc-Metadata-* and X-Forwarded-*, never reserved grpc-* headers; returns metadata as headers',
    request: { method: 'GET', path: '/v1/shelves/s1/books/b1', headers: { authorization: 'Bearer t0k', 'grpc-metadata-tenant': 'acme', 'grpc-metadata-grpc-status': '0', cookie: 'c=1', 'x-forwarded-for': '10.9.8.7' } },
    upstream: { method: 'GetBook', message: { name: 'shelves/s1/books/b1' }, metadata: { authorization: 'Bearer t0k', tenant: 'acme', 'x-forwarded-for': '10.9.8.7, 127.0.0.1' } },
    reply: { response: book, headers: { 'x-served-by': 'b1' }, trailers: { 'x-cost': '3' } },
    http: { status: 200, json: book, headers: { 'grpc-metadata-x-served-by': 'b1', 'grpc-trailer-x-cost': '3', 'grpc-metadata-date': '', 'grpc-metadata-content-type': '' } },
  },
  {
    name: 'takes raw bytes of any content type into an HttpBody request',
    request: { method: 'POST', path: '/v1/raw', body: Buffer.from([0, 1, 2, 255]), headers: { 'content-type': 'application/x-thing' } },
    upstream: { method: 'UploadRaw', message: { contentType: 'application/x-thing', data: 'AAEC/w==' } },
    reply: { response: {} },
    http: { status: 200, json: {} },
  },
  {
    name: 'sends an HttpBody response raw with its content type',
    request: { method: 'GET', path: '/v1/blobs/x:download' },
    upstream: { method: 'Download', message: { name: 'blobs/x' } },
    reply: { response: { contentType: 'text/csv', data: Buffer.from('a,b\n1,2\n').toString('base64') } },
    http: { status: 200, text: 'a,b\n1,2\n', headers: { 'content-type': /^text\/csv/ } },
  },
  {
    name: 'answers an unknown path with 404 google.rpc.Status',
    request: { method: 'GET', path: '/v2/nothing/here' },
    upstream: null,
    http: { status: 404, messageMatch: /no route/ },
  },
  {
    name: 'answers a known path with another method with 405 and Allow',
    request: { method: 'POST', path: '/v1/shelves/s1/books/b1' },
    upstream: null,
    http: { status: 405, headers: { allow: 'DELETE, GET, PATCH' } },
  },
  {
    name: 'rejects a malformed Grpc-Timeout header',
    request: { method: 'GET', path: '/v1/shelves/s1/books/b1', headers: { 'grpc-timeout': 'soon' } },
    upstream: null,
    http: { status: 400, messageMatch: /Grpc-Timeout/ },
  },
  {
    name: 'answers 504 when the Grpc-Timeout deadline expires',
    request: { method: 'GET', path: '/v1/shelves/s1/books/slow', headers: { 'grpc-timeout': '100m' } },
    upstream: { method: 'GetBook', message: { name: 'shelves/s1/books/slow' } },
    reply: { response: book, delayMs: 1500 },
    http: { status: 504, json: { code: 4, message: 'deadline exceeded (Grpc-Timeout header or the backend\'s timeoutMs)', details: [] } },
  },
  {
    name: 'streams NDJSON {"result"} lines',
    request: { method: 'GET', path: '/v1/shelves/s1/books:stream' },
    upstream: { method: 'ListBooks', message: { parent: 'shelves/s1' } },
    reply: { stream: [{ title: 'a' }, { title: 'b' }] },
    http: { status: 200, text: '{"result":{"title":"a"}}\n{"result":{"title":"b"}}\n', headers: { 'content-type': /application\/x-ndjson/ } },
  },
  {
    name: 'ends a stream that fails after data with an {"error"} line',
    request: { method: 'GET', path: '/v1/shelves/s2/books:stream' },
    upstream: { method: 'ListBooks', message: { parent: 'shelves/s2' } },
    reply: { stream: [{ title: 'a' }], error: { code: 13, message: 'disk on fire' } },
    http: { status: 200, text: '{"result":{"title":"a"}}\n{"error":{"code":13,"message":"disk on fire","details":[]}}\n' },
  },
  {
    name: 'answers a stream that fails before data with a real HTTP status',
    request: { method: 'GET', path: '/v1/shelves/s3/books:stream' },
    upstream: { method: 'ListBooks', message: { parent: 'shelves/s3' } },
    reply: { error: { code: 7, message: 'not yours' } },
    http: { status: 403, json: { code: 7, message: 'not yours', details: [] } },
  },
];

/** Key order differs between what a row writes and what protojson prints: compare canonically. */
const canonical = (v: unknown): string => JSON.stringify(v, (_k, x) =>
  x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x);

// The whole table runs over each upstream transport that carries transcoded calls: they must not differ in any row.
for (const transport of ['h2', 'socket'] as const) describe(`transport ${transport}`, () => {
  let backend: RecordingBackend;
  let gw: RunningGateway;
  const replies = new Map<string, ScriptedReply>();

  before(async () => {
    backend = await startRecordingBackend({
      includeDirs: [PROTO_DIR],
      files: [path.join(PROTO_DIR, 'everything.proto')],
      script: (_method, request) => replies.get(canonical(request)) ?? { response: {} },
    });
    gw = await startGateway({
      protos: { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] },
      backends: [{ name: 'everything', services: ['testpb.Everything'], endpoints: [backend.address], transport }],
    });
  });
  after(async () => {
    await gw?.close();
    await backend?.close();
  });

  for (const row of ROWS) {
    test(row.name, async () => {
      if (row.upstream && row.reply) replies.set(canonical(row.upstream.message), row.reply);
      const seen = backend.received.length;
      const res = await fetch(gw.url + row.request.path, {
        method: row.request.method,
        headers: { ...(row.request.body !== undefined && !row.request.headers?.['content-type'] ? { 'content-type': 'application/json' } : {}), ...row.request.headers },
        body: row.request.body as BodyInit | undefined,
      });
      const text = await res.text();
      const fresh = backend.received.slice(seen);
      if (row.upstream === null) {
        assert.equal(fresh.length, 0, 'nothing may reach the backend');
      } else {
        assert.equal(fresh.length, 1);
        const got = fresh[0]!;
        assert.equal(got.method, `${SVC}/${row.upstream.method}`);
        assert.deepEqual(got.request, row.upstream.message);
        for (const [k, v] of Object.entries(row.upstream.metadata ?? {})) {
          assert.deepEqual(got.metadata[k], [v], `metadata ${k}`);
        }
        if (row.upstream.metadata) {
          for (const k of Object.keys(got.metadata)) {
            assert.ok(!k.startsWith('grpc-metadata') && k !== 'cookie' && k !== 'grpc-status', `must not forward ${k}`);
          }
        }
      }
      assert.equal(res.status, row.http.status, `HTTP status; body: ${text}`);
      if (row.http.json !== undefined) assert.deepEqual(JSON.parse(text), row.http.json);
      if (row.http.text !== undefined) assert.equal(text, row.http.text);
      if (row.http.messageMatch) {
        const body = JSON.parse(text) as { code: number; message: string; details: unknown[] };
        assert.match(body.message, row.http.messageMatch);
        assert.ok(Array.isArray(body.details));
      }
      for (const [k, v] of Object.entries(row.http.headers ?? {})) {
        const got = res.headers.get(k) ?? '';
        if (v instanceof RegExp) assert.match(got, v, k);
        else assert.equal(got, v, k);
      }
    });
  }

  test('refuses an integer literal that a JSON number would silently round (int64 beyond 2^53), and accepts it as a string', async () => {
    const seen = backend.received.length;
    const bad = await fetch(`${gw.url}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"int64Value": 9007199254740993}' });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /"int64_value": a JSON number cannot carry this 64-bit integer exactly; send it as a string/);
    assert.equal(backend.received.length, seen, 'nothing reached the backend');
    // The same literal in a double field is ordinary JSON-number rounding, not an error.
    replies.set(canonical({ doubleValue: 9007199254740992 }), { response: {} });
    const dbl = await fetch(`${gw.url}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"doubleValue": 9007199254740993}' });
    assert.equal(dbl.status, 200);
    // Exactly representable long literals stay fine, and the string form carries any int64.
    replies.set(canonical({ int64Value: '9007199254740992', uint64Value: '18446744073709551615' }), { response: { int64Value: '1' } });
    const ok = await fetch(`${gw.url}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"int64Value": 9007199254740992, "uint64Value": "18446744073709551615"}' });
    assert.equal(ok.status, 200);
    assert.deepEqual(backend.received.at(-1)!.request, { int64Value: '9007199254740992', uint64Value: '18446744073709551615' });
  });
});
