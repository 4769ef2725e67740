import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fromBinary, toJson } from '@bufbuild/protobuf';
import { GatewayError } from '../src/errors/index.ts';
import { compileRequest, DEFAULT_REQUEST_OPTIONS, type RequestOptions } from '../src/transcode/request.ts';
import { findMethod, findRule, loadEverything, loadEverythingPbjs, pbjsJson, templateVariables } from './transcode-fixtures.ts';

const set = loadEverything();
const pbRoot = loadEverythingPbjs();

/** GET /v1/everything/{string_value}/nested/{nested.name}: everything else of AllTypes comes from the query. */
function transcoder(options: Partial<RequestOptions> = {}, methodName = 'Get', pattern?: string) {
  const method = findMethod(set, methodName);
  const rule = findRule(method, pattern);
  const t = compileRequest(method, rule, templateVariables(rule.pattern), set.registry, { ...DEFAULT_REQUEST_OPTIONS, ...options });
  return (query: string, params: Record<string, string> = {}, body?: string) => {
    const bytes = t.transcode({
      params: Object.entries(params).map(([k, value]) => ({ fieldPath: k.split('.'), value })),
      query,
      body: body === undefined ? undefined : Buffer.from(body),
      contentType: undefined,
    });
    const ours = toJson(method.input, fromBinary(method.input, bytes), { registry: set.registry });
    assert.deepEqual(pbjsJson(pbRoot, method.input.typeName, bytes), ours, 'protobufjs reads the bytes differently');
    return ours;
  };
}

const get = transcoder();

const cases: Array<[string, string, unknown]> = [
  ['double', 'double_value=-1.25e3', { doubleValue: -1250 }],
  ['double NaN', 'double_value=NaN', { doubleValue: 'NaN' }],
  ['double -Infinity', 'doubleValue=-Infinity', { doubleValue: '-Infinity' }],
  ['float', 'float_value=0.5', { floatValue: 0.5 }],
  ['int32', 'int32_value=-2147483648', { int32Value: -2147483648 }],
  ['int64 beyond 2^53', 'int64_value=-9223372036854775808', { int64Value: '-9223372036854775808' }],
  ['uint32', 'uint32_value=4294967295', { uint32Value: 4294967295 }],
  ['uint64', 'uint64_value=18446744073709551615', { uint64Value: '18446744073709551615' }],
  ['sint32', 'sint32_value=-5', { sint32Value: -5 }],
  ['sint64', 'sint64_value=-5', { sint64Value: '-5' }],
  ['fixed32', 'fixed32_value=7', { fixed32Value: 7 }],
  ['fixed64', 'fixed64_value=007', { fixed64Value: '7' }],
  ['sfixed32', 'sfixed32_value=-7', { sfixed32Value: -7 }],
  ['sfixed64', 'sfixed64_value=-7', { sfixed64Value: '-7' }],
  ['bool true', 'bool_value=true', { boolValue: true }],
  ['bool 1 (strconv.ParseBool spellings)', 'bool_value=1', { boolValue: true }],
  ['bool False', 'bool_value=False', {}],
  ['string with + as space and percent escapes', 'name=a+b%2Fc%20d%E2%9C%93', { name: 'a b/c d✓' }],
  ['string with an invalid percent escape kept literally', 'name=100%zz', { name: '100%zz' }],
  ['empty string value', 'name=', {}],
  ['bytes, URL-safe without padding', 'bytes_value=-_8', { bytesValue: '+/8=' }],
  ['bytes, standard with padding (percent-encoded)', 'bytes_value=%2B%2F8%3D', { bytesValue: '+/8=' }],
  ['enum by name', 'color=BLUE', { color: 'BLUE' }],
  ['enum by number', 'color=2', { color: 'GREEN' }],
  ['enum by unknown number (open enum)', 'color=42', { color: 42 }],
  ['enum alias and negative value', 'level=MID&repeated_color=RED', { level: 'MEDIUM', repeatedColor: ['RED'] }],
  ['negative enum by name', 'level=NEGATIVE', { level: 'NEGATIVE' }],
  ['repeated by repeating the key, both spellings', 'repeated_int32=1&repeatedInt32=2&repeated_int32=3', { repeatedInt32: [1, 2, 3] }],
  ['repeated strings are not split on commas', 'repeated_string=a,b&repeated_string=c', { repeatedString: ['a,b', 'c'] }],
  ['repeated bytes and enums', 'repeated_bytes=AQ&repeated_color=2&repeated_color=BLUE', { repeatedBytes: ['AQ=='], repeatedColor: ['GREEN', 'BLUE'] }],
  ['nested message fields by dot path', 'nested.value=10&nested.child.child.tags=x&nested.color=RED', { nested: { value: 10, color: 'RED', child: { child: { tags: ['x'] } } } }],
  ['json_name overrides and original names', 'customName=a&other=3', { customName: 'a', other: 3 }],
  ['original name of a json_name field', 'renamed=a&other_renamed=4', { customName: 'a', other: 4 }],
  ['proto3 optional set to its default', 'optional_int32=0&optional_string=&optional_bool=false', { optionalInt32: 0, optionalString: '', optionalBool: false }],
  ['oneof member', 'choice_int64=12', { choiceInt64: '12' }],
  ['oneof Timestamp member', 'choice_timestamp=2020-02-02T00:00:00Z', { choiceTimestamp: '2020-02-02T00:00:00Z' }],
  ['Timestamp with offset (percent-encoded +)', 'timestamp=2020-01-01T01:00:00%2B01:00', { timestamp: '2020-01-01T00:00:00Z' }],
  ['Duration', 'duration=1.5s', { duration: '1.500s' }],
  ['FieldMask', 'field_mask=a,b.cD', { fieldMask: 'a,b.cD' }],
  ['repeated Timestamp and Duration', 'repeated_timestamp=1970-01-01T00:00:01Z&repeated_duration=-2s', { repeatedTimestamp: ['1970-01-01T00:00:01Z'], repeatedDuration: ['-2s'] }],
  ['every wrapper', 'double_wrapper=1.5&float_wrapper=Infinity&int64_wrapper=-1&uint64_wrapper=2&int32_wrapper=-3&uint32_wrapper=4&bool_wrapper=false&string_wrapper=&bytes_wrapper=AA',
    { doubleWrapper: 1.5, floatWrapper: 'Infinity', int64Wrapper: '-1', uint64Wrapper: '2', int32Wrapper: -3, uint32Wrapper: 4, boolWrapper: false, stringWrapper: '', bytesWrapper: 'AA==' }],
  ['repeated wrappers', 'repeated_int32_wrapper=1&repeated_string_wrapper=x', { repeatedInt32Wrapper: [1], repeatedStringWrapper: ['x'] }],
  ['map with string keys', 'map_string_int32[a]=1&map_string_int32[b.c]=2', { mapStringInt32: { a: 1, 'b.c': 2 } }],
  ['map with int keys', 'map_int32_string[-1]=x&map_int64_string[9223372036854775807]=y&map_fixed32_int64[3]=4', { mapInt32String: { '-1': 'x' }, mapInt64String: { '9223372036854775807': 'y' }, mapFixed32Int64: { '3': '4' } }],
  ['map with bool keys', 'map_bool_string[true]=t&map_uint32_bool[1]=true', { mapBoolString: { true: 't' }, mapUint32Bool: { '1': true } }],
  ['map with enum and bytes values', 'map_string_color[k]=BLUE&map_sint64_bytes[-2]=AQ', { mapStringColor: { k: 'BLUE' }, mapSint64Bytes: { '-2': 'AQ==' } }],
  ['map keys percent-decoded', 'map_string_string%5Bk%20y%5D=v', { mapStringString: { 'k y': 'v' } }],
  ['NullValue field', 'null_value=NULL_VALUE', {}],
  ['unknown parameters ignored by default', 'foo=1&nested.bar=2&int32_value=5', { int32Value: 5 }],
];

for (const [name, query, expected] of cases) {
  test(`query: ${name}`, () => assert.deepEqual(get(query), expected));
}

test('query: does not apply parameters naming path-bound fields (path wins)', () => {
  assert.deepEqual(get('string_value=q&nested.name=q&nested.value=1', { string_value: 'p', 'nested.name': 'pn' }), { stringValue: 'p', nested: { name: 'pn', value: 1 } });
});

test('query: does not apply parameters naming the body field or below it', () => {
  const create = transcoder({}, 'CreateBook');
  assert.deepEqual(create('book.title=q&book_id=x', { parent: 'shelves/1' }, '{"title":"b"}'), { parent: 'shelves/1', bookId: 'x', book: { title: 'b' } });
});

const errors: Array<[string, string, string, Partial<RequestOptions>?]> = [
  ['a non-integer', 'int32_value=abc', 'invalid value for query parameter "int32_value" (int32): "abc" is not an integer'],
  ['a fractional integer', 'int64_value=1.0', '(int64): "1.0" is not an integer'],
  ['an int32 out of range', 'sfixed32_value=2147483648', '2147483648 is out of range for sfixed32'],
  ['a negative uint', 'uint64_value=-1', '-1 is out of range for uint64'],
  ['a float out of range', 'float_value=1e39', '1e39 is out of range for float'],
  ['a number with spaces', 'double_value=%201', '" 1" is not a number'],
  ['a bad bool', 'bool_value=yes', '"yes" is not a boolean'],
  ['bad base64', 'bytes_value=a', '"a" is not base64'],
  ['an unknown enum name', 'color=PURPLE', 'query parameter "color" (testpb.Color): "PURPLE" is not a value of testpb.Color'],
  ['a bad Timestamp', 'timestamp=2020-13-01T00:00:00Z', 'query parameter "timestamp" (google.protobuf.Timestamp)'],
  ['a bad Duration', 'duration=5', 'query parameter "duration" (google.protobuf.Duration)'],
  ['a comma list for a repeated int', 'repeated_int32=1,2', 'query parameter "repeated_int32" (int32): "1,2" is not an integer'],
  ['a non-repeated field given twice', 'int32_value=1&int32Value=2', 'query parameter "int32Value" is given more than once'],
  ['a message without scalar form', 'nested=x', 'field "nested" is a testpb.Nested, which has no query form'],
  ['a Struct', 'struct_value=x', 'google.protobuf.Struct, which has no query form; it can only be set in a JSON body'],
  ['a Value', 'value=1', 'google.protobuf.Value, which has no query form'],
  ['an Any', 'any=x', 'google.protobuf.Any, which has no query form'],
  ['a field inside a Timestamp', 'timestamp.seconds=1', 'google.protobuf.Timestamp is set as a whole'],
  ['a field inside a repeated message', 'repeated_nested.name=x', '"repeated_nested" is a repeated field'],
  ['a map without a key', 'map_string_int32=1', 'set entries with map_string_int32[key]=value'],
  ['a bad map key', 'map_int32_string[x]=a', 'invalid map key for query parameter "map_int32_string[x]" (int32)'],
  ['a bad map value', 'map_string_int32[a]=b', 'invalid value for query parameter "map_string_int32[a]" (int32)'],
  ['a map of messages', 'map_string_nested[a]=b', 'map values of type testpb.Nested have no query form'],
  ['a map key on a non-map', 'int32_value[a]=1', '"int32_value" is not a map field'],
  ['a repeated map key', 'map_string_int32[a]=1&map_string_int32[a]=2', 'is given more than once'],
  ['two members of one oneof', 'choice_string=a&choice_int64=1', 'fields "choice_string" and "choice_int64" are both set, but they belong to oneof "choice"'],
  ['an unknown parameter under reject', 'int32_value=1&bogus=1', 'unknown query parameter "bogus"', { unknownQueryParams: 'reject' }],
  ['an unknown nested parameter under reject', 'nested.bogus=1', 'unknown query parameter "nested.bogus": testpb.Nested has no field "bogus"', { unknownQueryParams: 'reject' }],
  ['a path-bound field under reject', 'string_value=x', 'unknown query parameter "string_value": the field is bound by the URL path', { unknownQueryParams: 'reject' }],
];

for (const [name, query, message, options] of errors) {
  test(`query: rejects ${name}`, () => {
    const run = options ? transcoder(options) : get;
    assert.throws(() => run(query), (err: unknown) => {
      assert.ok(err instanceof GatewayError, String(err));
      assert.equal(err.httpStatus, 400);
      assert.ok(err.message.includes(message), `"${err.message}" should contain "${message}"`);
      return true;
    });
  });
}

// Property: any value of a scalar field, written as its canonical proto3 JSON text into the query, comes back as
// the same value. Covers every scalar kind, repeated keys and percent-encoding of arbitrary strings.
test('query: round-trips arbitrary scalar values through the query string', () => {
  const int = (bits: number, signed: boolean) => signed
    ? fc.bigInt(-(2n ** BigInt(bits - 1)), 2n ** BigInt(bits - 1) - 1n)
    : fc.bigInt(0n, 2n ** BigInt(bits) - 1n);
  const arb = fc.record({
    int32Value: int(32, true).map(Number),
    uint32Value: int(32, false).map(Number),
    sint64Value: int(64, true).map(String),
    fixed64Value: int(64, false).map(String),
    doubleValue: fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => d !== 0),
    floatValue: fc.float({ noNaN: true, noDefaultInfinity: true }).filter((d) => d !== 0),
    name: fc.string({ unit: 'grapheme', minLength: 1 }),
    bytesValue: fc.uint8Array({ minLength: 1, maxLength: 20 }).map((b) => Buffer.from(b).toString('base64')),
    repeatedString: fc.array(fc.string({ minLength: 0 }), { minLength: 1, maxLength: 4 }),
    boolValue: fc.constant(true),
  });
  fc.assert(fc.property(arb, (v) => {
    const params = new URLSearchParams();
    for (const [k, val] of Object.entries(v)) {
      if (Array.isArray(val)) for (const x of val) params.append(k, x);
      else params.append(k, String(val));
    }
    // proto3 JSON omits fields at their zero value.
    const expected = Object.fromEntries(Object.entries(v).filter(([, val]) => val !== 0 && val !== '0'));
    assert.deepEqual(get(params.toString()), expected);
  }), { numRuns: 300 });
});
