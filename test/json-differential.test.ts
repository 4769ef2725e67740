/**
 * Differential test of our JSON paths against protobufjs' protojson (conformant, unrelated implementation) on
 * random testpb.AllTypes messages, both directions:
 *   binary -> JSON: protobufjs encodes a message; our response transcoder renders it; protojson renders it too.
 *   JSON -> binary: a random proto3 JSON text (random name spelling, int64 as number or string, URL-safe or
 *     unpadded base64, enum aliases...) goes through our request transcoder (body "*"); protojson parses the same
 *     text; both messages are compared through protojson. About 1 in 8 texts is made invalid on purpose: both
 *     must then reject it.
 * A seeded generator; set DIFF_SEED to replay, DIFF_RUNS to change the count. The seed is printed on failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { GatewayError } from '../src/errors/index.ts';
import { compileRequest, DEFAULT_REQUEST_OPTIONS } from '../src/transcode/request.ts';
import { compileResponse, DEFAULT_RESPONSE_OPTIONS } from '../src/transcode/response.ts';
import { findMethod, findRule, loadEverything, loadEverythingPbjs, protojson } from './transcode-fixtures.ts';

const RUNS = Number(process.env.DIFF_RUNS ?? 10_000);
const SEED = Number(process.env.DIFF_SEED ?? (Date.now() % 2 ** 31));

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** mulberry32: small, seedable, good enough to explore inputs. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, chance: (p: number) => next() < p, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)] };
}
type Rng = ReturnType<typeof rng>;

const LIMITS: Partial<Record<ScalarType, [bigint, bigint]>> = {
  [ScalarType.INT32]: [-(2n ** 31n), 2n ** 31n - 1n], [ScalarType.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SFIXED32]: [-(2n ** 31n), 2n ** 31n - 1n], [ScalarType.UINT32]: [0n, 2n ** 32n - 1n],
  [ScalarType.FIXED32]: [0n, 2n ** 32n - 1n], [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n], [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n], [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n],
};

function bigintIn(r: Rng, lo: bigint, hi: bigint): bigint {
  if (r.chance(0.2)) return r.pick([lo, hi, 0n, lo === 0n ? 1n : -1n]);
  const span = hi - lo;
  const bits = BigInt(r.int(Number(span.toString(2).length)) + 1);
  let v = 0n;
  for (let i = 0n; i < bits; i += 16n) v = (v << 16n) | BigInt(r.int(65536));
  return lo + (v % (span + 1n));
}

const CHARS = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\u0000', 'é', '✓', '😀', '\u2028', '日'];
function str(r: Rng, max = 8): string {
  let s = '';
  for (let i = r.int(max); i > 0; i--) s += r.chance(0.6) ? String.fromCharCode(97 + r.int(26)) : r.pick(CHARS);
  return s;
}

function base64(r: Rng, bytes: Uint8Array): string {
  let s = Buffer.from(bytes).toString('base64');
  if (r.chance(0.3)) s = s.replace(/\+/g, '-').replace(/\//g, '_');
  if (r.chance(0.3)) s = s.replace(/=+$/, '');
  return s;
}

function scalar(r: Rng, t: ScalarType): Json {
  const lim = LIMITS[t];
  if (lim) {
    const v = bigintIn(r, lim[0], lim[1]);
    // Numbers only where they are exact in a double (JSON.parse would round the rest).
    const safe = v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER);
    return safe && r.chance(0.6) ? Number(v) : v.toString();
  }
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      if (r.chance(0.1)) return r.pick(['NaN', 'Infinity', '-Infinity']);
      let d = r.chance(0.3) ? r.int(2000) - 1000 : (r.next() - 0.5) * 10 ** (r.int(40) - 20);
      if (t === ScalarType.FLOAT) d = Math.fround(d);
      return r.chance(0.15) ? String(d) : d;
    }
    case ScalarType.BOOL: return r.chance(0.5);
    case ScalarType.STRING: return str(r);
    case ScalarType.BYTES: return base64(r, Uint8Array.from({ length: r.int(9) }, () => r.int(256)));
  }
  throw new Error(`scalar ${t}`);
}

const ANY_TYPES = ['testpb.Author', 'testpb.Nested', 'google.protobuf.Timestamp', 'google.protobuf.Duration',
  'google.protobuf.Int32Value', 'google.protobuf.StringValue', 'google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.Empty', 'google.protobuf.FieldMask'];

function structValue(r: Rng, depth: number): Json {
  switch (r.int(depth > 2 ? 4 : 6)) {
    case 0: return null;
    case 1: return r.chance(0.5);
    case 2: return r.chance(0.5) ? r.int(1000) - 500 : (r.next() - 0.5) * 1e6;
    case 3: return str(r);
    case 4: return Array.from({ length: r.int(3) }, () => structValue(r, depth + 1));
    default: return Object.fromEntries(Array.from({ length: r.int(3) }, () => [str(r, 4), structValue(r, depth + 1)]));
  }
}

function wkt(r: Rng, desc: DescMessage, depth: number, lookup: (n: string) => DescMessage): Json | undefined {
  switch (desc.typeName) {
    case 'google.protobuf.Timestamp': {
      const secs = -62135596800 + r.int(253402300799 + 62135596800);
      const d = new Date(secs * 1000).toISOString().slice(0, 19);
      const frac = r.pick(['', `.${String(r.int(1000)).padStart(3, '0')}`, `.${String(r.int(1e6)).padStart(6, '0')}`, `.${String(r.int(1e9)).padStart(9, '0')}`]);
      return `${d}${frac}Z`;
    }
    case 'google.protobuf.Duration': {
      const s = r.int(315576000000);
      const n = r.pick([0, r.int(1000) * 1e6, r.int(1e9)]);
      const neg = r.chance(0.3) && (s > 0 || n > 0) ? '-' : '';
      return `${neg}${s}${n ? '.' + String(n).padStart(9, '0') : ''}s`;
    }
    case 'google.protobuf.FieldMask':
      return Array.from({ length: r.int(3) }, () => Array.from({ length: 1 + r.int(2) }, () => r.pick(['a', 'fooBar', 'x', 'bazQux'])).join('.')).join(',');
    case 'google.protobuf.Struct': return Object.fromEntries(Array.from({ length: r.int(3) }, () => [str(r, 4), structValue(r, 1)]));
    case 'google.protobuf.Value': return structValue(r, 0);
    case 'google.protobuf.ListValue': return Array.from({ length: r.int(3) }, () => structValue(r, 1));
    case 'google.protobuf.Empty': return {};
    case 'google.protobuf.Any': {
      if (depth > 3) return {};
      const name = r.pick(ANY_TYPES);
      const inner = message(r, lookup(name), depth + 1, lookup);
      const url = `type.googleapis.com/${name}`;
      if (inner !== null && typeof inner === 'object' && !Array.isArray(inner) && !name.startsWith('google.protobuf.') || name === 'google.protobuf.Empty') {
        return { '@type': url, ...(inner as Record<string, Json>) };
      }
      return { '@type': url, value: inner };
    }
  }
  if (desc.typeName.startsWith('google.protobuf.') && desc.typeName.endsWith('Value') && desc.fields.length === 1) {
    return scalar(r, desc.fields[0].scalar!);
  }
  return undefined;
}

function element(r: Rng, f: DescField, kind: 'scalar' | 'enum' | 'message', depth: number, lookup: (n: string) => DescMessage): Json {
  if (kind === 'scalar') return scalar(r, f.scalar!);
  if (kind === 'enum') {
    const e = f.enum!;
    if (e.typeName === 'google.protobuf.NullValue') return null;
    const v = r.pick(e.values);
    return r.chance(0.7) ? v.name : v.number;
  }
  return message(r, f.message!, depth + 1, lookup);
}

function message(r: Rng, desc: DescMessage, depth: number, lookup: (n: string) => DescMessage): Json {
  const special = wkt(r, desc, depth, lookup);
  if (special !== undefined) return special;
  const out: Record<string, Json> = {};
  const p = depth === 0 ? 0.3 : depth > 3 ? 0 : 0.25;
  const oneofsSet = new Set<string>();
  for (const f of desc.fields) {
    if (!r.chance(p)) continue;
    if (f.oneof) {
      if (oneofsSet.has(f.oneof.name)) continue;
      oneofsSet.add(f.oneof.name);
    }
    const key = r.chance(0.5) ? f.jsonName : f.name;
    switch (f.fieldKind) {
      case 'scalar': out[key] = scalar(r, f.scalar); break;
      case 'enum': out[key] = element(r, f, 'enum', depth, lookup); break;
      case 'message': out[key] = message(r, f.message, depth + 1, lookup); break;
      case 'list': out[key] = Array.from({ length: r.int(4) }, () => element(r, f, f.listKind, depth, lookup)); break;
      case 'map': {
        const m: Record<string, Json> = {};
        for (let i = r.int(3); i > 0; i--) {
          const k = f.mapKey === ScalarType.BOOL ? String(r.chance(0.5)) : f.mapKey === ScalarType.STRING ? str(r, 5) : String(scalar(r, f.mapKey));
          m[k] = element(r, f, f.mapKind, depth, lookup);
        }
        out[key] = m;
      }
    }
  }
  return out;
}

/** Breaks a valid JSON object in one of the ways the mapping must reject. */
function corrupt(r: Rng, json: Record<string, Json>): Record<string, Json> {
  const bad: Array<[string, Json]> = [
    ['int32Value', 1.5], ['int32Value', 2147483648], ['uint32Value', -1], ['int64Value', '9223372036854775808'],
    ['color', 'NO_SUCH_COLOR'], ['unknownField', 1], ['timestamp', '2020-01-01'], ['duration', '1'], ['boolValue', 'true'],
    ['stringValue', 5], ['nested', []], ['repeatedInt32', [1, 'x']], ['mapInt32String', { x: 'a' }], ['floatValue', 1e39],
    ['bytesValue', '%%%'], ['any', { '@type': 'type.googleapis.com/nope.Nope' }],
  ];
  const [k, v] = r.pick(bad);
  if (r.chance(0.15)) return { ...json, choiceString: 'a', choiceInt64: '1' };
  return { ...json, [k]: v };
}

function sameJson(a: unknown, b: unknown, path: string): string | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a === b ? undefined : `${path}: ${a} !== ${b}`;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: length ${a.length} !== ${b.length}`;
    for (let i = 0; i < a.length; i++) { const d = sameJson(a[i], b[i], `${path}[${i}]`); if (d) return d; }
    return undefined;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    if (ka.join('\0') !== kb.join('\0')) return `${path}: keys ${JSON.stringify(ka)} !== ${JSON.stringify(kb)}`;
    for (const k of ka) { const d = sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`); if (d) return d; }
    return undefined;
  }
  return a === b ? undefined : `${path}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`;
}

test(`json differential: ${RUNS} random testpb.AllTypes messages agree with protobufjs protojson (seed ${SEED})`, () => {
  const set = loadEverything();
  const root = loadEverythingPbjs();
  const T = root.lookupType('testpb.AllTypes');
  const echo = findMethod(set, 'Echo');
  const req = compileRequest(echo, findRule(echo), [], set.registry, DEFAULT_REQUEST_OPTIONS);
  const res = compileResponse(echo, findRule(echo), set.registry, DEFAULT_RESPONSE_OPTIONS);
  const lookup = (n: string): DescMessage => set.registry.getMessage(n)!;
  const r = rng(SEED);
  let invalid = 0;
  let bytesTotal = 0;
  const fail = (i: number, what: string, text: string): never =>
    assert.fail(`message #${i} (DIFF_SEED=${SEED}): ${what}\ninput: ${text.slice(0, 2000)}`);

  for (let i = 0; i < RUNS; i++) {
    let json = message(r, echo.input, 0, lookup) as Record<string, Json>;
    const broken = r.chance(0.125);
    if (broken) json = corrupt(r, json);
    const text = JSON.stringify(json);

    // JSON -> binary
    let theirs: ReturnType<typeof protojson.fromJson> | undefined;
    let theirError: unknown;
    try { theirs = protojson.fromJson(T, JSON.parse(text)); } catch (err) { theirError = err; }
    let ours: Uint8Array | undefined;
    let ourError: unknown;
    try {
      ours = req.transcode({ params: [], query: '', body: Buffer.from(text), contentType: 'application/json' });
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      ourError = err;
    }
    if ((theirError === undefined) !== (ourError === undefined)) {
      fail(i, `accept/reject disagree: ours ${ourError ? 'rejects: ' + (ourError as Error).message : 'accepts'}, protojson ${theirError ? 'rejects: ' + (theirError as Error).message : 'accepts'}`, text);
    }
    if (ourError) {
      if (!broken) fail(i, `both reject a generated valid message: ${(ourError as Error).message}`, text);
      invalid++;
      continue;
    }
    const expected = protojson.toJson(T, theirs!);
    const diff1 = sameJson(protojson.toJson(T, T.decode(ours!)), expected, '$');
    if (diff1) fail(i, `JSON -> binary differs: ${diff1}`, text);

    // binary (encoded by protobufjs) -> JSON
    const bytes = T.encode(theirs!).finish();
    bytesTotal += bytes.length;
    const rendered = JSON.parse(res.body(bytes).body as string);
    const diff2 = sameJson(rendered, expected, '$');
    if (diff2) fail(i, `binary -> JSON differs: ${diff2}`, text);
  }
  assert.ok(invalid > RUNS / 20, `only ${invalid} invalid inputs exercised`);
  assert.ok(bytesTotal / RUNS > 50, 'messages are too small to mean much');
});
