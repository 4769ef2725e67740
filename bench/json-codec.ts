/**
 * µs/op for the JSON codec on a ~1.4 KB testpb.AllTypes message, in one run:
 *   ours      — src/transcode (response body(): binary -> JSON text; request transcode(): JSON text -> binary)
 *   bufbuild  — raw @bufbuild/protobuf: fromBinary+toJson+JSON.stringify / JSON.parse+fromJson+toBinary
 *   protojson — protobufjs + protobufjs/ext/protojson: decode+toJson+stringify / parse+fromJson+encode
 * Every column goes bytes <-> text, the work a transcoding gateway does per message.
 * Run: node --import tsx bench/json-codec.ts   (bounded: ~8 s)
 */
import os from 'node:os';
import { fromBinary, fromJson, toBinary, toJson, type JsonValue } from '@bufbuild/protobuf';
import { compileRequest, DEFAULT_REQUEST_OPTIONS } from '../src/transcode/request.ts';
import { compileResponse, DEFAULT_RESPONSE_OPTIONS } from '../src/transcode/response.ts';
import { findMethod, findRule, loadEverything, loadEverythingPbjs, protojson } from '../test/transcode-fixtures.ts';

const MESSAGE: JsonValue = {
  doubleValue: 3.141592653589793, floatValue: 1.5, int32Value: -123456, int64Value: '-9007199254740993', uint32Value: 4000000000,
  uint64Value: '18446744073709551615', sint32Value: -7, sint64Value: '-77', fixed32Value: 99, fixed64Value: '999',
  sfixed32Value: -99, sfixed64Value: '-999', boolValue: true, stringValue: 'hello, world ✓', bytesValue: 'AAECAwQFBgcICQ==',
  color: 'BLUE', level: 'HIGH', name: 'shelves/1/books/2',
  nested: { name: 'inner', value: 42, tags: ['a', 'b', 'c'], color: 'RED', child: { name: 'leaf', value: 1 } },
  repeatedInt32: [1, 2, 3, 4, 5], repeatedInt64: ['1', '-2', '3'], repeatedDouble: [0.5, -1.25], repeatedString: ['x', 'y', 'zz'],
  repeatedBytes: ['AQI=', 'AwQ='], repeatedColor: ['RED', 'GREEN'], repeatedBool: [true, false],
  repeatedNested: [{ name: 'n1', value: 1 }, { name: 'n2', value: 2, tags: ['t'] }],
  optionalInt32: 0, optionalString: 'opt',
  mapStringString: { k1: 'v1', k2: 'v2' }, mapStringInt32: { a: 1, b: 2 }, mapInt32String: { '1': 'one', '-2': 'minus two' },
  mapInt64String: { '9007199254740993': 'big' }, mapBoolString: { true: 'yes' }, mapStringColor: { c: 'GREEN' },
  mapStringNested: { n: { name: 'mapped', value: 7 } }, mapStringDouble: { pi: 3.14 },
  choiceString: 'the choice', customName: 'renamed', other: 5,
  timestamp: '2024-05-06T07:08:09.123456789Z', duration: '-12.500s', fieldMask: 'nested.name,repeatedInt32',
  structValue: { s: 'x', n: 1.5, b: true, z: null, l: [1, 'two', { three: 3 }], o: { deep: { deeper: 'yes' } } },
  value: { kind: 'value' }, listValue: [1, 'a', null, false],
  any: { '@type': 'type.googleapis.com/testpb.Author', name: 'Ann', age: 33 },
  doubleWrapper: 2.5, int64Wrapper: '-5', uint32Wrapper: 6, boolWrapper: true, stringWrapper: 'wrapped', bytesWrapper: 'AQ==',
  repeatedTimestamp: ['2020-01-01T00:00:00Z', '2021-02-03T04:05:06.700Z'], repeatedInt32Wrapper: [1, 2],
  repeatedAny: [{ '@type': 'type.googleapis.com/google.protobuf.Duration', value: '1s' }],
  recursive: { int32Value: 1, stringValue: 'rec', nested: { name: 'r' } },
};

const set = loadEverything();
const root = loadEverythingPbjs();
const T = root.lookupType('testpb.AllTypes');
const echo = findMethod(set, 'Echo');
const desc = echo.input;
const registry = set.registry;
const req = compileRequest(echo, findRule(echo), [], registry, DEFAULT_REQUEST_OPTIONS);
const res = compileResponse(echo, findRule(echo), registry, DEFAULT_RESPONSE_OPTIONS);

const bytes = toBinary(desc, fromJson(desc, MESSAGE, { registry }));
const text = JSON.stringify(toJson(desc, fromBinary(desc, bytes), { registry }));
const body = Buffer.from(text);

let sink = 0;
function measureOnce(fn: () => unknown, ms: number): number {
  const start = performance.now();
  const end = start + ms;
  let n = 0;
  while (performance.now() < end) { for (let i = 0; i < 50; i++) fn(); n += 50; }
  sink += n;
  return ((performance.now() - start) * 1000) / n;
}

const rows: Array<[string, () => unknown, () => unknown]> = [
  ['ours (src/transcode)',
    () => res.body(bytes),
    () => req.transcode({ params: [], query: '', body, contentType: 'application/json' })],
  ['@bufbuild/protobuf raw',
    () => JSON.stringify(toJson(desc, fromBinary(desc, bytes), { registry })),
    () => toBinary(desc, fromJson(desc, JSON.parse(body.toString('utf8')), { registry }))],
  ['protobufjs/ext/protojson',
    () => JSON.stringify(protojson.toJson(T, T.decode(bytes))),
    () => T.encode(protojson.fromJson(T, JSON.parse(body.toString('utf8')))).finish()],
];

console.log(`message: testpb.AllTypes, ${bytes.length} B binary, ${text.length} B JSON`);
console.log(`machine: ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, node ${process.version}, ${os.platform()} ${os.arch()}`);
console.log('');
// Cells are interleaved over ROUNDS rounds and the median kept: the machine is shared and noisy.
const ROUNDS = 5;
const cells = rows.flatMap(([, out, inp]) => [out, inp]);
for (const fn of cells) measureOnce(fn, 250); // warm-up: let the JIT settle
const samples: number[][] = cells.map(() => []);
for (let r = 0; r < ROUNDS; r++) cells.forEach((fn, i) => samples[i].push(measureOnce(fn, 200)));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`median of ${ROUNDS} interleaved rounds`);
console.log('| codec                      | message->JSON µs/op | JSON->message µs/op |');
console.log('|----------------------------|--------------------:|--------------------:|');
rows.forEach(([name], i) => {
  console.log(`| ${name.padEnd(26)} | ${median(samples[2 * i]).toFixed(1).padStart(19)} | ${median(samples[2 * i + 1]).toFixed(1).padStart(19)} |`);
});
if (sink < 0) console.log(sink);
