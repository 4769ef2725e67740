/**
 * A seeded generator of random proto3 JSON for a message type (random name spelling, int64 as number or string,
 * URL-safe or unpadded base64, enum names or numbers, every well-known type), and the ways to break one that the
 * mapping must reject. Shared by the JSON differential tests.
 */
import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** mulberry32: small, seedable, good enough to explore inputs. */
export function rng(seed: number) {
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
export type Rng = ReturnType<typeof rng>;

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

export function message(r: Rng, desc: DescMessage, depth: number, lookup: (n: string) => DescMessage): Json {
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
export function corrupt(r: Rng, json: Record<string, Json>): Record<string, Json> {
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

