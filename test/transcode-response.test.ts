import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromJson, toBinary, type DescMessage, type JsonValue } from '@bufbuild/protobuf';
import { compileResponse, DEFAULT_RESPONSE_OPTIONS, type ResponseOptions } from '../src/transcode/response.ts';
import { statusBody } from '../src/transcode/status.ts';
import { findMethod, findRule, loadEverything } from './transcode-fixtures.ts';

const set = loadEverything();

function bin(desc: DescMessage, json: JsonValue): Uint8Array {
  return toBinary(desc, fromJson(desc, json, { registry: set.registry }));
}

function render(methodName: string, pattern: string | undefined, json: JsonValue, options: Partial<ResponseOptions> = {}) {
  const method = findMethod(set, methodName);
  const r = compileResponse(method, findRule(method, pattern), set.registry, { ...DEFAULT_RESPONSE_OPTIONS, ...options });
  return r.body(bin(method.output, json));
}

const BOOK = { name: 'shelves/1/books/2', title: 'Dune', author: { name: 'Frank', age: 0 }, tags: ['sf'], pageCount: '412', color: 'RED' };

const cases: Array<{ name: string; method: string; pattern?: string; message: JsonValue; options?: Partial<ResponseOptions>; body: unknown }> = [
  { name: 'renders canonical proto3 JSON', method: 'GetBook', message: BOOK, body: { name: 'shelves/1/books/2', title: 'Dune', author: { name: 'Frank' }, tags: ['sf'], pageCount: '412', color: 'RED' } },
  { name: 'emits unpopulated fields when asked', method: 'GetBook', message: { title: 'x' }, options: { emitUnpopulated: true },
    body: { name: '', title: 'x', tags: [], pageCount: '0', color: 'COLOR_UNSPECIFIED' } },
  { name: 'uses proto names when asked', method: 'GetBook', message: { pageCount: 3 }, options: { useProtoNames: true }, body: { page_count: '3' } },
  { name: 'writes enums as numbers when asked', method: 'GetBook', message: { color: 'BLUE' }, options: { enumsAsInts: true }, body: { color: 3 } },
  { name: 'renders json_name, WKTs and Any', method: 'Echo', message: {
    customName: 'c', timestamp: '2020-01-01T00:00:00.5Z', duration: '3s', fieldMask: 'aB,c', structValue: { k: [1, null] }, int64Wrapper: '0',
    any: { '@type': 'type.googleapis.com/testpb.Author', name: 'a' }, bytesValue: '+/8=', doubleValue: 'NaN', mapBoolString: { true: 'x' },
  }, body: {
    customName: 'c', timestamp: '2020-01-01T00:00:00.500Z', duration: '3s', fieldMask: 'aB,c', structValue: { k: [1, null] }, int64Wrapper: '0',
    any: { '@type': 'type.googleapis.com/testpb.Author', name: 'a' }, bytesValue: '+/8=', doubleValue: 'NaN', mapBoolString: { true: 'x' },
  } },
  { name: 'renders a scalar response_body', method: 'GetBookTitle', message: BOOK, body: 'Dune' },
  { name: 'renders a scalar response_body at its default', method: 'GetBookTitle', message: {}, body: '' },
  { name: 'renders a message response_body with the caller options', method: 'GetBookAuthor', message: BOOK, options: { useProtoNames: true }, body: { name: 'Frank' } },
  { name: 'renders an unset message response_body as null', method: 'GetBookAuthor', message: {}, body: null },
  { name: 'renders a repeated response_body', method: 'GetBookTags', message: BOOK, body: ['sf'] },
  { name: 'renders an empty repeated response_body as []', method: 'GetBookTags', message: {}, body: [] },
  { name: 'renders a response_body of repeated messages', method: 'EchoField', pattern: '/v1/field/repeated', message: { repeatedNested: [{ name: 'a' }, {}] }, body: [{ name: 'a' }, {}] },
  { name: 'renders a response_body of repeated messages with emitUnpopulated', method: 'EchoField', pattern: '/v1/field/repeated', message: { repeatedNested: [{ name: 'a' }] },
    options: { emitUnpopulated: true }, body: [{ name: 'a', value: 0, tags: [], color: 'COLOR_UNSPECIFIED' }] },
  { name: 'renders a map response_body', method: 'EchoField', pattern: '/v1/field/map', message: { mapStringNested: { k: { value: 2 } } }, body: { k: { value: 2 } } },
  { name: 'renders an int64 response_body as a string', method: 'EchoField', pattern: '/v1/field/int64', message: { int64Value: '-5' }, body: '-5' },
  { name: 'renders a WKT response_body', method: 'EchoField', pattern: '/v1/field/timestamp', message: { timestamp: '1999-12-31T23:59:59Z' }, body: '1999-12-31T23:59:59Z' },
  { name: 'renders a Struct response_body', method: 'EchoField', pattern: '/v1/field/struct', message: { structValue: { a: 'b' } }, body: { a: 'b' } },
  { name: 'renders an enum response_body as a name or number', method: 'EchoField', pattern: '/v1/field/color', message: { color: 'GREEN' }, options: { enumsAsInts: true }, body: 2 },
  { name: 'renders a nested response_body', method: 'EchoField', pattern: '/v1/field/nested', message: { nested: { child: { name: 'c' } } }, body: { child: { name: 'c' } } },
];

for (const c of cases) {
  test(`response: ${c.name}`, () => {
    const out = render(c.method, c.pattern, c.message, c.options);
    assert.equal(out.contentType, 'application/json');
    assert.equal(typeof out.body, 'string');
    assert.deepEqual(JSON.parse(out.body as string), c.body);
  });
}

test('response: sends an HttpBody output as raw data with its content type', () => {
  const out = render('Download', undefined, { contentType: 'image/png', data: 'AAEC' });
  assert.equal(out.contentType, 'image/png');
  assert.deepEqual(out.body, Buffer.from([0, 1, 2]));
});

test('response: defaults an HttpBody without content type to application/octet-stream', () => {
  const out = render('Download', undefined, {});
  assert.equal(out.contentType, 'application/octet-stream');
  assert.deepEqual(out.body, Buffer.alloc(0));
});

test('response: sends an HttpBody response_body field raw', () => {
  const out = render('GetBlobContent', undefined, { name: 'blobs/1', content: { contentType: 'text/csv', data: 'YSxi' } });
  assert.equal(out.contentType, 'text/csv');
  assert.equal(out.body.toString(), 'a,b');
});

test('response: frames a server stream as NDJSON result lines', () => {
  const method = findMethod(set, 'ListBooks');
  const r = compileResponse(method, findRule(method), set.registry, DEFAULT_RESPONSE_OPTIONS);
  assert.equal(r.streamContentType, 'application/x-ndjson');
  const a = r.streamChunk(bin(method.output, { title: 'a' }));
  const b = r.streamChunk(bin(method.output, {}));
  assert.equal(a, '{"result":{"title":"a"}}\n');
  assert.equal(b, '{"result":{}}\n');
  assert.equal(r.streamContentTypeOf(bin(method.output, {})), 'application/x-ndjson');
});

test('response: streams HttpBody messages as raw chunks, content type from the first', () => {
  const method = findMethod(set, 'DownloadStream');
  const r = compileResponse(method, findRule(method), set.registry, DEFAULT_RESPONSE_OPTIONS);
  const first = bin(method.output, { contentType: 'video/mp4', data: 'AAE=' });
  assert.equal(r.streamContentTypeOf(first), 'video/mp4');
  assert.deepEqual(r.streamChunk(first), Buffer.from([0, 1]));
  assert.deepEqual(r.streamChunk(bin(method.output, { data: 'Ag==' })), Buffer.from([2]));
});

function statusBin(details: Array<{ typeUrl: string; value: Uint8Array }>): Buffer {
  const statusDesc = set.registry.getMessage('google.rpc.Status')!;
  const anyDesc = set.registry.getMessage('google.protobuf.Any')!;
  const msg = create(statusDesc, { code: 3, message: 'bad', details: details.map((d) => create(anyDesc, d)) } as never);
  return Buffer.from(toBinary(statusDesc, msg));
}

test('status: renders google.rpc error details with @type', () => {
  const badRequest = set.registry.getMessage('google.rpc.BadRequest')!;
  const errorInfo = set.registry.getMessage('google.rpc.ErrorInfo')!;
  const details = statusBin([
    { typeUrl: 'type.googleapis.com/google.rpc.BadRequest', value: bin(badRequest, { fieldViolations: [{ field: 'name', description: 'required' }] }) },
    { typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: bin(errorInfo, { reason: 'R', domain: 'd', metadata: { k: 'v' } }) },
  ]);
  assert.deepEqual(statusBody(3, 'bad', details, set.registry), {
    code: 3,
    message: 'bad',
    details: [
      { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: 'name', description: 'required' }] },
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'R', domain: 'd', metadata: { k: 'v' } },
    ],
  });
});

test('status: keeps an Any of an unknown type as @type + base64 value', () => {
  const details = statusBin([{ typeUrl: 'type.googleapis.com/acme.Secret', value: new Uint8Array([1, 2, 3]) }]);
  assert.deepEqual(statusBody(5, 'x', details, set.registry).details, [{ '@type': 'type.googleapis.com/acme.Secret', value: 'AQID' }]);
});

test('status: keeps a known type whose bytes do not decode as base64, and goes on', () => {
  const errorInfo = set.registry.getMessage('google.rpc.ErrorInfo')!;
  const details = statusBin([
    { typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: new Uint8Array([0xff, 0xff]) },
    { typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: bin(errorInfo, { reason: 'ok' }) },
  ]);
  assert.deepEqual(statusBody(2, 'x', details, set.registry).details, [
    { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', value: '//8=' },
    { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ok' },
  ]);
});

test('status: an undecodable or absent trailer gives no details, never a throw', () => {
  assert.deepEqual(statusBody(13, 'boom', Buffer.from([0x0a, 0xff, 0xff, 0xff]), set.registry), { code: 13, message: 'boom', details: [] });
  assert.deepEqual(statusBody(13, 'boom', undefined, set.registry), { code: 13, message: 'boom', details: [] });
});

test('status: applies the response options to details', () => {
  const errorInfo = set.registry.getMessage('google.rpc.ErrorInfo')!;
  const details = statusBin([{ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: bin(errorInfo, { reason: 'R' }) }]);
  const out = statusBody(3, 'bad', details, set.registry, { emitUnpopulated: true, useProtoNames: true, enumsAsInts: false });
  assert.deepEqual(out.details, [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'R', domain: '', metadata: {} }]);
});

test('response: Timestamps render as @bufbuild toJson renders them (fraction widths, range bounds, invalid values refused)', async () => {
  const { toJson } = await import('@bufbuild/protobuf');
  const method = findMethod(set, 'Echo');
  const r = compileResponse(method, findRule(method), set.registry, DEFAULT_RESPONSE_OPTIONS);
  const T = set.registry.getMessage('google.protobuf.Timestamp')!;
  const encode = (seconds: bigint, nanos: number): Uint8Array =>
    toBinary(method.output, create(method.output, { timestamp: create(T, { seconds, nanos }) } as never));
  const valid: Array<[bigint, number]> = [[0n, 0], [1n, 500_000_000], [1n, 120_000], [1n, 7], [-1n, 999_999_999],
    [-62135596800n, 0], [253402300799n, 999_999_999], [1700000000n, 1_000_000]];
  for (const [seconds, nanos] of valid) {
    const expected = (toJson(T, create(T, { seconds, nanos })) as string);
    assert.deepEqual(JSON.parse(r.body(encode(seconds, nanos)).body as string), { timestamp: expected }, `${seconds}s ${nanos}ns`);
  }
  for (const [seconds, nanos, why] of [[-62135596801n, 0, /0001-01-01/], [253402300800n, 0, /9999-12-31/], [0n, -1, /negative/], [0n, 1e9, /999999999/]] as const) {
    assert.throws(() => r.body(encode(seconds, nanos)), why, `${seconds}s ${nanos}ns`);
  }
});
