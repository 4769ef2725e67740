/**
 * The response fast path (src/transcode/wire-json.ts) against the reference it shortcuts (fromBinary + JsonWriters,
 * itself held to protobufjs' protojson by the differential test), character for character: random AllTypes
 * messages under each output option, two messages concatenated (the wire format's merge), unknown fields, unpacked
 * lists, oneof members overriding each other. Whenever the fast path answers, its text must be the reference's.
 * DIFF_SEED replays a run, DIFF_RUNS changes the count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary, fromJson, toBinary, type DescMessage, type JsonValue } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { JsonWriters } from '../src/transcode/json-writer.ts';
import { compileWireJson } from '../src/transcode/wire-json.ts';
import { message, rng } from './helpers/random-json.ts';
import { findMethod, loadEverything } from './transcode-fixtures.ts';

const RUNS = Number(process.env.DIFF_RUNS ?? 5_000);
const SEED = Number(process.env.DIFF_SEED ?? (Date.now() % 2 ** 31));

const set = loadEverything();
const registry = set.registry;
const AllTypes = findMethod(set, 'Echo').output;

const OPTIONS = [
  { useProtoFieldName: false, enumAsInteger: false },
  { useProtoFieldName: true, enumAsInteger: false },
  { useProtoFieldName: false, enumAsInteger: true },
];
const renderers = OPTIONS.map((o) => {
  const writers = new JsonWriters({ registry, alwaysEmitImplicit: false, ...o });
  const write = writers.writer(AllTypes);
  return {
    name: JSON.stringify(o),
    fast: compileWireJson(AllTypes, writers, o)!,
    reference: (bytes: Uint8Array): string => write(fromBinary(AllTypes, bytes) as unknown as Record<string, unknown>),
  };
});

function randomBytes(r: ReturnType<typeof rng>): Uint8Array | undefined {
  const json = message(r, AllTypes, 0, (n: string): DescMessage => registry.getMessage(n)!);
  try {
    return toBinary(AllTypes, fromJson(AllTypes, json as JsonValue, { registry }));
  } catch {
    return undefined; // the generator's rare invalid combination: not this test's subject
  }
}

function check(bytes: Uint8Array, what: string): boolean {
  let hit = true;
  for (const { name, fast, reference } of renderers) {
    const ours = fast(bytes);
    if (ours === undefined) {
      hit = false;
      continue;
    }
    assert.equal(ours, reference(bytes), `${what} ${name} (DIFF_SEED=${SEED}) bytes ${Buffer.from(bytes).toString('hex')}`);
  }
  return hit;
}

test(`wire-json: ${RUNS} random AllTypes messages, merged pairs and unknown fields render as the reference renders them (seed ${SEED})`, () => {
  const r = rng(SEED);
  let total = 0, hits = 0;
  let previous: Uint8Array | undefined;
  for (let i = 0; i < RUNS; i++) {
    const bytes = randomBytes(r);
    if (!bytes) continue;
    total++;
    if (check(bytes, `#${i}`)) hits++;
    if (previous) check(Buffer.concat([previous, bytes]), `#${i} merged with #${i - 1}`);
    const unknown = new BinaryWriter().tag(999, WireType.Varint).uint32(7).tag(1000, WireType.LengthDelimited).bytes(new Uint8Array([1, 2])).finish();
    check(Buffer.concat([unknown, bytes, unknown]), `#${i} with unknown fields`);
    previous = bytes;
  }
  // Random messages only miss the fast path for invalid UTF-8 and the like, which the generator does not make.
  assert.ok(hits > total * 0.95, `fast path rendered only ${hits} of ${total} messages`);
});

test('wire-json: unpacked lists, repeated singular fields, explicit zeros, oneof overrides and map key repeats match the reference', () => {
  const field = (name: string): number => AllTypes.fields.find((f) => f.name === name)!.number;
  const w = new BinaryWriter();
  for (const n of [3, -1, 0]) w.tag(field('repeated_int32'), WireType.Varint).int32(n); // unpacked
  w.tag(field('repeated_int32'), WireType.LengthDelimited).fork().int32(9).int32(10).join(); // then packed
  w.tag(field('string_value'), WireType.LengthDelimited).string('first');
  w.tag(field('string_value'), WireType.LengthDelimited).string('last wins');
  w.tag(field('choice_string'), WireType.LengthDelimited).string('replaced');
  w.tag(field('choice_int64'), WireType.Varint).int64(5);
  w.tag(field('nested'), WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string('n').join();
  w.tag(field('nested'), WireType.LengthDelimited).fork().tag(2, WireType.Varint).int32(4).join(); // merges
  for (const v of ['a', 'b']) {
    w.tag(field('map_string_string'), WireType.LengthDelimited).fork()
      .tag(1, WireType.LengthDelimited).string('k').tag(2, WireType.LengthDelimited).string(v).join();
  }
  w.tag(field('map_int32_string'), WireType.LengthDelimited).fork().tag(2, WireType.LengthDelimited).string('no key').join();
  w.tag(field('double_value'), WireType.Bit64).double(-0);
  // Zeros written explicitly: implicit presence leaves them out, explicit presence (optional) keeps them.
  w.tag(field('int32_value'), WireType.Varint).int32(0);
  w.tag(field('bool_value'), WireType.Varint).bool(false);
  w.tag(field('optional_int32'), WireType.Varint).int32(0);
  // A oneof message member, another member, then the first again: the second occurrence starts afresh.
  w.tag(field('choice_nested'), WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string('old').join();
  w.tag(field('choice_string'), WireType.LengthDelimited).string('between');
  w.tag(field('choice_nested'), WireType.LengthDelimited).fork().tag(2, WireType.Varint).int32(1).join();
  const bytes = w.finish();
  assert.ok(check(bytes, 'hand-made'), 'the fast path declined a well-formed message');
  const text = renderers[0]!.fast(bytes)!;
  assert.match(text, /"stringValue":"last wins".*"nested":\{"name":"n","value":4\}/);
  assert.match(text, /"optionalInt32":0/);
  assert.doesNotMatch(text, /"int32Value"|"boolValue"|"old"/);
});

test('wire-json: declines what the reference must judge (truncated input, wrong wire type, invalid UTF-8)', () => {
  const field = (name: string): number => AllTypes.fields.find((f) => f.name === name)!.number;
  const good = new BinaryWriter().tag(field('string_value'), WireType.LengthDelimited).string('abc').finish();
  const fast = renderers[0]!.fast;
  assert.equal(fast(good.subarray(0, good.length - 1)), undefined, 'truncated');
  assert.equal(fast(new BinaryWriter().tag(field('int32_value'), WireType.Bit64).fixed64(1).finish()), undefined, 'wrong wire type');
  assert.equal(fast(new BinaryWriter().tag(field('string_value'), WireType.LengthDelimited).bytes(new Uint8Array([0xff, 0xfe])).finish()), undefined, 'invalid UTF-8');
});
