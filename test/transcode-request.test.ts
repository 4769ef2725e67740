import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary, toJson } from '@bufbuild/protobuf';
import { GatewayError, StartupError } from '../src/errors/index.ts';
import { compileRequest, DEFAULT_REQUEST_OPTIONS, type RequestOptions } from '../src/transcode/request.ts';
import { compileResponse, DEFAULT_RESPONSE_OPTIONS } from '../src/transcode/response.ts';
import type { MethodInfo } from '../src/proto/load.ts';
import { findMethod, findRule, loadEverything, loadEverythingPbjs, pbjsJson, templateVariables } from './transcode-fixtures.ts';

const set = loadEverything();
const pbRoot = loadEverythingPbjs();

interface Case {
  name: string;
  method: string;
  pattern?: string;
  params?: Record<string, string>;
  query?: string;
  body?: string | Buffer;
  contentType?: string;
  options?: Partial<RequestOptions>;
  expected: unknown;
}

function run(c: Omit<Case, 'expected' | 'name'>): { method: MethodInfo; bytes: Uint8Array } {
  const method = findMethod(set, c.method);
  const rule = findRule(method, c.pattern);
  const t = compileRequest(method, rule, templateVariables(rule.pattern), set.registry, { ...DEFAULT_REQUEST_OPTIONS, ...c.options });
  const bytes = t.transcode({
    params: Object.entries(c.params ?? {}).map(([k, value]) => ({ fieldPath: k.split('.'), value })),
    query: c.query ?? '',
    body: c.body === undefined ? undefined : Buffer.from(c.body),
    contentType: c.contentType,
  });
  return { method, bytes };
}

const cases: Case[] = [
  {
    name: 'binds nested path variables and a scalar query value',
    method: 'Get',
    params: { string_value: 'a b/c', 'nested.name': 'n1' },
    query: 'int32_value=7',
    expected: { stringValue: 'a b/c', int32Value: 7, nested: { name: 'n1' } },
  },
  {
    name: 'converts path variables to int32 and enum, two levels deep',
    method: 'Get',
    pattern: '/v1/everything/{int32_value}/{nested.child.value}/{color}',
    params: { int32_value: '-12', 'nested.child.value': '3', color: 'GREEN' },
    expected: { int32Value: -12, color: 'GREEN', nested: { child: { value: 3 } } },
  },
  {
    name: 'binds a multi-segment name variable',
    method: 'GetBook',
    params: { name: 'shelves/1/books/2' },
    query: 'read_mask=title,author.name',
    expected: { name: 'shelves/1/books/2', readMask: 'title,author.name' },
  },
  {
    name: 'maps the whole JSON body with body "*"',
    method: 'Echo',
    body: '{"int64Value":"-9007199254740993","uint64_value":"18446744073709551615","sfixed64Value":-9007199254740991,"doubleValue":"-Infinity","bytesValue":"-_8","customName":"j","nested":{"name":"x"}}',
    expected: { int64Value: '-9007199254740993', uint64Value: '18446744073709551615', sfixed64Value: '-9007199254740991', doubleValue: '-Infinity', bytesValue: '+/8=', customName: 'j', nested: { name: 'x' } },
  },
  {
    name: 'lets the path variable win over the same field in a body "*"',
    method: 'Echo',
    pattern: '/v1/echo/{string_value}',
    params: { string_value: 'from-path' },
    body: '{"stringValue":"from-body","int32Value":1}',
    expected: { stringValue: 'from-path', int32Value: 1 },
  },
  {
    name: 'overrides a nested path field inside the body but keeps its siblings',
    method: 'UpdateBook',
    params: { 'book.name': 'shelves/1/books/2' },
    body: '{"name":"ignored","title":"T","author":{"name":"A"}}',
    query: 'update_mask=title&allow_missing=true',
    expected: { book: { name: 'shelves/1/books/2', title: 'T', author: { name: 'A' } }, updateMask: 'title', allowMissing: true },
  },
  {
    name: 'maps body "field" into that field and the rest from path and query',
    method: 'CreateBook',
    params: { parent: 'shelves/9' },
    query: 'book_id=b1',
    body: '{"title":"Dune","pageCount":412,"createTime":"2020-01-02T03:04:05.123Z"}',
    expected: { parent: 'shelves/9', bookId: 'b1', book: { title: 'Dune', pageCount: '412', createTime: '2020-01-02T03:04:05.123Z' } },
  },
  {
    name: 'treats an empty body as an empty message',
    method: 'Echo',
    body: '',
    expected: {},
  },
  {
    name: 'treats a whitespace-only body as empty',
    method: 'Echo',
    body: ' \n ',
    expected: {},
  },
  {
    name: 'ignores a body on a rule without body mapping',
    method: 'DeleteBook',
    params: { name: 'shelves/1/books/1' },
    body: '{"name":"x"}',
    expected: { name: 'shelves/1/books/1' },
  },
  {
    name: 'accepts null for a field (default) and for a Value (NullValue)',
    method: 'Echo',
    body: '{"int32Value":null,"value":null,"nested":null,"repeatedInt32":null}',
    expected: { value: null },
  },
  {
    name: 'decodes every well-known type in a body',
    method: 'Echo',
    body: JSON.stringify({
      timestamp: '1972-01-01T10:00:20.021+01:00', duration: '-1.5s', fieldMask: 'a.bC,d', structValue: { a: [1, 'x', null, { b: true }] },
      listValue: [1, 'two'], any: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '3s' }, empty: {},
      doubleWrapper: 'NaN', floatWrapper: 1.5, int64Wrapper: '5', uint64Wrapper: 6, int32Wrapper: -7, uint32Wrapper: '8',
      boolWrapper: false, stringWrapper: '', bytesWrapper: 'AQ', nullValue: null,
    }),
    expected: {
      timestamp: '1972-01-01T09:00:20.021Z', duration: '-1.500s', fieldMask: 'a.bC,d', structValue: { a: [1, 'x', null, { b: true }] },
      listValue: [1, 'two'], any: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '3s' }, empty: {},
      doubleWrapper: 'NaN', floatWrapper: 1.5, int64Wrapper: '5', uint64Wrapper: '6', int32Wrapper: -7, uint32Wrapper: 8,
      boolWrapper: false, stringWrapper: '', bytesWrapper: 'AQ==',
    },
  },
  {
    name: 'accepts an Any holding a message of the file',
    method: 'Echo',
    body: '{"repeatedAny":[{"@type":"type.googleapis.com/testpb.Book","title":"x","author":{"age":3}}]}',
    expected: { repeatedAny: [{ '@type': 'type.googleapis.com/testpb.Book', title: 'x', author: { age: 3 } }] },
  },
  {
    name: 'ignores unknown body fields when configured to',
    method: 'Echo',
    body: '{"nope":1,"nested":{"alsoNope":[1]},"int32Value":2}',
    options: { unknownBodyFields: 'ignore' },
    expected: { int32Value: 2, nested: {} },
  },
  {
    name: 'puts raw bytes and the Content-Type into an HttpBody request (body "*")',
    method: 'UploadRaw',
    body: Buffer.from([0, 1, 2, 255]),
    contentType: 'image/png',
    expected: { contentType: 'image/png', data: 'AAEC/w==' },
  },
  {
    name: 'puts raw bytes into an HttpBody field and the rest from path and query',
    method: 'Upload',
    params: { parent: 'shelves/3' },
    query: 'tag=v1',
    body: 'not json {',
    contentType: 'text/plain; charset=utf-8',
    expected: { parent: 'shelves/3', tag: 'v1', file: { contentType: 'text/plain; charset=utf-8', data: 'bm90IGpzb24gew==' } },
  },
  {
    name: 'maps a body "field" on the nested message for a custom verb binding',
    method: 'Echo',
    pattern: '/v1/echo:nested',
    body: '{"name":"n","tags":["a","b"]}',
    query: 'int32_value=1',
    expected: { int32Value: 1, nested: { name: 'n', tags: ['a', 'b'] } },
  },
];

for (const c of cases) {
  test(`request: ${c.name}`, () => {
    const { method, bytes } = run(c);
    assert.deepEqual(toJson(method.input, fromBinary(method.input, bytes), { registry: set.registry }), c.expected);
    // The same bytes, decoded by an unrelated implementation, must say the same.
    assert.deepEqual(pbjsJson(pbRoot, method.input.typeName, bytes), c.expected);
  });
}

interface ErrorCase {
  name: string;
  method: string;
  pattern?: string;
  params?: Record<string, string>;
  query?: string;
  body?: string;
  options?: Partial<RequestOptions>;
  error: string;
}

const errors: ErrorCase[] = [
  { name: 'invalid JSON', method: 'Echo', body: '{"a":', error: 'request body is not valid JSON' },
  { name: 'a body that is not an object for body "*"', method: 'Echo', body: '[1]', error: 'must be a JSON object' },
  { name: 'nesting deeper than maxJsonDepth', method: 'Echo', body: `{"value":${'['.repeat(70)}${']'.repeat(70)}}`, error: 'nests deeper than 64 levels' },
  { name: 'nesting deeper than a custom maxJsonDepth', method: 'Echo', body: '{"nested":{"child":{"child":{}}}}', options: { maxJsonDepth: 3 }, error: 'nests deeper than 3 levels' },
  { name: 'duplicate keys', method: 'Echo', body: '{"int32Value":1,"int32Value":2}', error: 'has the key "int32Value" twice' },
  { name: 'the same field by both names', method: 'Echo', body: '{"int32Value":1,"int32_value":2}', error: 'field "int32_value" is set twice' },
  { name: 'two members of one oneof', method: 'Echo', body: '{"choiceString":"a","choiceNested":{}}', error: 'fields "choice_string" and "choice_nested" are both set' },
  { name: 'an unknown body field', method: 'Echo', body: '{"nested":{"bogus":1}}', error: 'unknown field "nested.bogus"' },
  { name: 'an int32 out of range', method: 'Echo', body: '{"int32Value":2147483648}', error: 'invalid value for field "int32_value" (int32): 2147483648 is out of range for int32' },
  { name: 'a uint64 below zero', method: 'Echo', body: '{"uint64Value":"-1"}', error: '"uint64_value" (uint64): "-1" is out of range' },
  { name: 'a fractional integer', method: 'Echo', body: '{"sint64Value":1.5}', error: '"sint64_value" (sint64): 1.5 is not an integer' },
  { name: 'a non-numeric string for an int', method: 'Echo', body: '{"fixed32Value":"abc"}', error: '"fixed32_value" (fixed32): expected an integer, got "abc"' },
  { name: 'an unknown enum name', method: 'Echo', body: '{"repeatedColor":["RED","PURPLE"]}', error: 'field "repeated_color[1]" (testpb.Color): "PURPLE" is not a value of testpb.Color' },
  { name: 'bad base64', method: 'Echo', body: '{"bytesValue":"a$b"}', error: '"bytes_value" (bytes): "a$b" is not base64' },
  { name: 'a float out of range', method: 'Echo', body: '{"floatValue":3.5e38}', error: '"float_value" (float): 3.5e+38 is out of range for float' },
  { name: 'a bad Timestamp deep in a list', method: 'Echo', body: '{"recursive":{"repeatedTimestamp":["2020-01-01T00:00:00Z","yesterday"]}}', error: 'field "recursive.repeated_timestamp[1]" (google.protobuf.Timestamp): invalid RFC 3339 string' },
  { name: 'a bad Duration', method: 'Echo', body: '{"duration":"5"}', error: 'field "duration" (google.protobuf.Duration)' },
  { name: 'a wrong type in a map value', method: 'Echo', body: '{"mapStringNested":{"k":{"value":"x"}}}', error: 'field "map_string_nested["k"].value" (int32)' },
  { name: 'a bad bool map key', method: 'Echo', body: '{"mapBoolString":{"yes":"x"}}', error: 'invalid map key for field "map_bool_string"' },
  { name: 'a null list element', method: 'Echo', body: '{"repeatedString":["a",null]}', error: 'field "repeated_string[1]" (string): a list element may not be null' },
  { name: 'an Any of an unknown type', method: 'Echo', body: '{"any":{"@type":"type.googleapis.com/x.Y"}}', error: 'field "any" (google.protobuf.Any)' },
  { name: 'a string for a message', method: 'Echo', body: '{"nested":"x"}', error: 'field "nested" (testpb.Nested): expected a JSON object' },
  { name: 'a body "field" value of the wrong shape', method: 'CreateBook', params: { parent: 'shelves/1' }, body: '{"author":{"age":"old"}}', error: 'field "book.author.age" (int32)' },
  { name: 'a path variable that does not convert', method: 'Get', pattern: '/v1/everything/{int32_value}/{nested.child.value}/{color}', params: { int32_value: 'x', 'nested.child.value': '1', color: 'RED' }, error: 'invalid value for path variable "int32_value" (int32): "x" is not an integer' },
  { name: 'a path enum that is no value', method: 'Get', pattern: '/v1/everything/{int32_value}/{nested.child.value}/{color}', params: { int32_value: '1', 'nested.child.value': '1', color: 'PINK' }, error: 'path variable "color" (testpb.Color): "PINK" is not a value of testpb.Color' },
  { name: 'query parameters with body "*" under reject', method: 'Echo', query: 'int32_value=1', options: { unknownQueryParams: 'reject' }, error: 'unknown query parameter "int32_value": the rule maps the whole body' },
];

for (const c of errors) {
  test(`request: rejects ${c.name} with a 400 naming it`, () => {
    assert.throws(() => run(c), (err: unknown) => {
      assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
      assert.equal(err.httpStatus, 400);
      assert.ok(err.message.includes(c.error), `"${err.message}" should contain "${c.error}"`);
      return true;
    });
  });
}

test('request: ignores query parameters with body "*" by default', () => {
  const { method, bytes } = run({ method: 'Echo', query: 'int32_value=1', body: '{"int32Value":2}' });
  assert.deepEqual(toJson(method.input, fromBinary(method.input, bytes)), { int32Value: 2 });
});

test('request: a compiled transcoder is reusable and keeps no state between requests', () => {
  const method = findMethod(set, 'Get');
  const rule = findRule(method);
  const t = compileRequest(method, rule, templateVariables(rule.pattern), set.registry, DEFAULT_REQUEST_OPTIONS);
  const req = (q: string) => toJson(method.input, fromBinary(method.input, t.transcode({ params: [], query: q, body: undefined, contentType: undefined })));
  assert.deepEqual(req('repeated_int32=1'), { repeatedInt32: [1] });
  assert.deepEqual(req('repeated_int32=2'), { repeatedInt32: [2] });
});

function withRule(methodName: string, patch: Partial<MethodInfo['rules'][number]>) {
  const method = findMethod(set, methodName);
  return { method, rule: { ...method.rules[0], ...patch } };
}

const startupErrors: Array<{ name: string; build: () => unknown; error: RegExp }> = [
  {
    name: 'a body field that is not in the input message',
    build: () => { const { method, rule } = withRule('CreateBook', { body: 'bok' }); return compileRequest(method, rule, [['parent']], set.registry, DEFAULT_REQUEST_OPTIONS); },
    error: /CreateBook \(everything\.proto\).*body: "bok" names no field of testpb\.CreateBookRequest.*Fix:/s,
  },
  {
    name: 'a body given by json_name',
    build: () => { const { method, rule } = withRule('CreateBook', { body: 'bookId' }); return compileRequest(method, rule, [], set.registry, DEFAULT_REQUEST_OPTIONS); },
    error: /Fix: write the proto field name, body: "book_id"/,
  },
  {
    name: 'a path variable naming no field',
    build: () => { const { method, rule } = withRule('GetBook', {}); return compileRequest(method, rule, [['nam']], set.registry, DEFAULT_REQUEST_OPTIONS); },
    error: /GetBook \(everything\.proto\).*\{nam\} names no field/,
  },
  {
    name: 'a path variable on a repeated field',
    build: () => { const { method, rule } = withRule('Get', {}); return compileRequest(method, rule, [['repeated_string']], set.registry, DEFAULT_REQUEST_OPTIONS); },
    error: /\{repeated_string\} binds "repeated_string" \(repeated string\), which has no single-string form/,
  },
  {
    name: 'a path variable on a message field',
    build: () => { const { method, rule } = withRule('Get', {}); return compileRequest(method, rule, [['nested']], set.registry, DEFAULT_REQUEST_OPTIONS); },
    error: /\{nested\} binds "nested" \(testpb\.Nested\)/,
  },
  {
    name: 'a path variable through a scalar',
    build: () => { const { method, rule } = withRule('Get', {}); return compileRequest(method, rule, [['string_value', 'x']], set.registry, DEFAULT_REQUEST_OPTIONS); },
    error: /goes through "string_value" \(string\)/,
  },
  {
    name: 'a response_body naming no field',
    build: () => { const { method, rule } = withRule('GetBook', { responseBody: 'titel' }); return compileResponse(method, rule, set.registry, DEFAULT_RESPONSE_OPTIONS); },
    error: /GetBook \(everything\.proto\).*response_body: "titel" names no field of testpb\.Book/,
  },
];

for (const c of startupErrors) {
  test(`compile: refuses ${c.name} at startup`, () => {
    assert.throws(c.build, (err: unknown) => err instanceof StartupError && c.error.test(err.message));
  });
}

test('compile: a path variable may bind a well-known type with a string form', () => {
  const { method, rule } = withRule('Get', {});
  const t = compileRequest(method, rule, [['timestamp'], ['int32_wrapper']], set.registry, DEFAULT_REQUEST_OPTIONS);
  const bytes = t.transcode({ params: [{ fieldPath: ['timestamp'], value: '2001-02-03T04:05:06Z' }, { fieldPath: ['int32_wrapper'], value: '0' }], query: '', body: undefined, contentType: undefined });
  assert.deepEqual(toJson(method.input, fromBinary(method.input, bytes)), { timestamp: '2001-02-03T04:05:06Z', int32Wrapper: 0 });
});
