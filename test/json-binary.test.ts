/**
 * The request fast path (src/transcode/json-binary.ts) against the conformant codec it shortcuts, byte for byte:
 * whenever the fast path returns bytes, @bufbuild's toBinary(fromJson(json)) must accept the same JSON and
 * produce the very same bytes; whenever it is unsure it must say so (undefined), never guess.
 * Random testpb.AllTypes messages as the differential test makes them (every scalar, WKT, map key kind, oneof,
 * both name spellings, strings for numbers...), and in their canonical form, which the fast path must take.
 * DIFF_SEED replays a run, DIFF_RUNS changes the count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromJson, toBinary, toJson, type DescMessage, type JsonValue } from '@bufbuild/protobuf';
import { compileFastEncoder } from '../src/transcode/json-binary.ts';
import { compileRequest, DEFAULT_REQUEST_OPTIONS } from '../src/transcode/request.ts';
import { corrupt, message, rng, type Json } from './helpers/random-json.ts';
import { findMethod, findRule, loadEverything } from './transcode-fixtures.ts';

const RUNS = Number(process.env.DIFF_RUNS ?? 10_000);
const SEED = Number(process.env.DIFF_SEED ?? (Date.now() % 2 ** 31));

const set = loadEverything();
const echo = findMethod(set, 'Echo');
const AllTypes = echo.input;
const registry = set.registry;
const fast = compileFastEncoder(AllTypes, registry)!;

function codec(desc: DescMessage, json: Json): Uint8Array | Error {
  try {
    return toBinary(desc, fromJson(desc, json as JsonValue, { registry }));
  } catch (err) {
    return err as Error;
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test(`json-binary: ${RUNS} random AllTypes JSON objects, raw and canonical, agree byte for byte with the codec (seed ${SEED})`, () => {
  const r = rng(SEED);
  const lookup = (n: string): DescMessage => registry.getMessage(n)!;
  let rawHits = 0, canonicalHits = 0, canonicalTotal = 0;
  for (let i = 0; i < RUNS; i++) {
    let json = message(r, AllTypes, 0, lookup) as Record<string, Json>;
    if (r.chance(0.125)) json = corrupt(r, json);
    const expected = codec(AllTypes, json);
    const ours = fast(json as Record<string, JsonValue>);
    if (ours !== undefined) {
      rawHits++;
      if (expected instanceof Error) assert.fail(`#${i} (DIFF_SEED=${SEED}): fast path accepted what the codec rejects (${expected.message}): ${JSON.stringify(json)}`);
      if (hex(ours) !== hex(expected)) assert.fail(`#${i} (DIFF_SEED=${SEED}): bytes differ\nfast  ${hex(ours)}\ncodec ${hex(expected)}\ninput ${JSON.stringify(json)}`);
    }
    if (expected instanceof Error) continue;
    // The canonical form of the same message (what a client that uses a protobuf library sends).
    const canonical = toJson(AllTypes, fromJson(AllTypes, json as JsonValue, { registry }), { registry }) as Record<string, JsonValue>;
    canonicalTotal++;
    const c = fast(canonical);
    if (c === undefined) continue;
    canonicalHits++;
    if (hex(c) !== hex(expected)) assert.fail(`#${i} (DIFF_SEED=${SEED}): canonical bytes differ\nfast  ${hex(c)}\ncodec ${hex(expected)}\ninput ${JSON.stringify(canonical)}`);
  }
  // The shortcut must actually be taken: canonical JSON only misses it for NaN/Infinity strings and nulls.
  assert.ok(canonicalHits > canonicalTotal / 2, `fast path took only ${canonicalHits} of ${canonicalTotal} canonical messages`);
  assert.ok(rawHits > 0, 'fast path never taken on raw input');
});

test('json-binary: presence rules match the codec (implicit zeros dropped, -0 / optional / oneof zeros kept, packed lists)', () => {
  const cases: Array<Record<string, JsonValue>> = [
    { int32Value: 0, stringValue: '', boolValue: false, doubleValue: 0, color: 'COLOR_UNSPECIFIED', bytesValue: '', int64Value: '0' },
    { doubleValue: -0 },
    { optionalInt32: 0, optionalString: '', optionalBool: false, optionalColor: 'COLOR_UNSPECIFIED', optionalDouble: 0, optionalBytes: '' },
    { choiceInt64: '0' },
    { choiceColor: 0 },
    { repeatedInt32: [1, -1, 0, 2147483647], repeatedSint64: ['-9223372036854775808', 5], repeatedString: ['a', ''], repeatedColor: ['RED', 3] },
    { mapInt32String: { '-1': 'a', '7': '' }, mapUint32Bool: { '4294967295': false }, mapBoolString: { true: 'x', false: '' }, mapFixed32Int64: { '0': '1' } },
    { map_string_nested: { k: { name: 'n', child: { value: 3 } } }, nested: {} },
    { timestamp: '2024-02-29T12:00:00.5Z', duration: '-1.5s', struct_value: { a: [1, 'x', true] }, fieldMask: 'a.b,fooBar' },
    { level: 'MID', uint64Value: '18446744073709551615', fixed64Value: 12, sfixed32Value: -5, floatValue: 1.5, bytesValue: 'AQID_-8' },
    { customName: 'x', other: 2 },
  ];
  for (const json of cases) {
    const ours = fast(json);
    const expected = codec(AllTypes, json);
    assert.ok(!(expected instanceof Error), `codec rejects ${JSON.stringify(json)}`);
    assert.ok(ours !== undefined, `fast path declined ${JSON.stringify(json)}`);
    assert.equal(hex(ours), hex(expected), JSON.stringify(json));
  }
});

test('json-binary: declines what the codec must judge (unknown keys, both spellings, two oneof members, null, string numbers)', () => {
  const declined: Array<Record<string, JsonValue>> = [
    { noSuchField: 1 },
    { int32Value: 1, int32_value: 1 },
    { choiceString: 'a', choiceInt64: '1' },
    { nested: null },
    { int32Value: '5' },
    { doubleValue: 'NaN' },
    { int32Value: 1.5 },
    { uint32Value: -1 },
    { int64Value: '9223372036854775808' },
    { color: 'NO_SUCH_COLOR' },
    { bytesValue: '%%%' },
    { mapInt32String: { '01': 'a' } },
    { floatValue: 1e39 },
    { timestamp: 'yesterday' },
    { stringValue: 'lone \ud800 surrogate' },
    { choiceNull: null },
  ];
  for (const json of declined) assert.equal(fast(json), undefined, JSON.stringify(json));
});

test('json-binary: the request transcoder returns the codec bytes through the fast path, and the codec error when it declines', () => {
  const req = compileRequest(echo, findRule(echo), [], registry, DEFAULT_REQUEST_OPTIONS);
  const body = { int64Value: '42', nested: { name: 'n', tags: ['a'] }, timestamp: '2020-01-01T00:00:00Z', repeatedDouble: [1.5, 2.5] };
  const out = req.transcode({ params: [], query: '', body: Buffer.from(JSON.stringify(body)), contentType: 'application/json' });
  assert.equal(hex(out), hex(codec(AllTypes, body) as Uint8Array));
  assert.throws(() => req.transcode({ params: [], query: '', body: Buffer.from('{"choiceString":"a","choiceInt64":"1"}'), contentType: 'application/json' }),
    /oneof "choice"/);
});
