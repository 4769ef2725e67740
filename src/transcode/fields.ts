/**
 * Field lookups and the "scalar form" of a field: how a single string (a path variable or a query value) becomes
 * the proto3 JSON value of that field. Everything here is computed at compile time; the converters it returns
 * are what the request path calls.
 *
 * Strings are validated strictly here (not left to the JSON codec) so that a 400 names the parameter as sent and
 * says what is wrong with it; the result is a canonical proto3 JSON value the codec then accepts as-is.
 */
import { ScalarType, fromJson, type DescEnum, type DescField, type DescMessage, type JsonValue, type Registry } from '@bufbuild/protobuf';

export const HTTP_BODY = 'google.api.HttpBody';

/** Message types whose proto3 JSON form is a string: one query/path string sets the whole message. */
const STRING_WKTS = new Set(['google.protobuf.Timestamp', 'google.protobuf.Duration', 'google.protobuf.FieldMask']);
const WRAPPERS = new Set([
  'google.protobuf.DoubleValue', 'google.protobuf.FloatValue', 'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value', 'google.protobuf.Int32Value', 'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue', 'google.protobuf.StringValue', 'google.protobuf.BytesValue',
]);

/** A leaf a string can be converted to. */
export type Leaf =
  | { kind: 'scalar'; scalar: ScalarType }
  | { kind: 'enum'; enum: DescEnum }
  | { kind: 'wkt'; message: DescMessage };

/** Thrown by converters; the caller adds the field / parameter name. */
export class ValueProblem extends Error {}

export type Converter = (s: string) => JsonValue;

const CUSTOM_JSON = new Set([
  ...STRING_WKTS, ...WRAPPERS,
  'google.protobuf.Any', 'google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue',
]);

/** A message whose proto3 JSON form is not an object of its fields: dotted paths may not reach inside it. */
export function hasCustomJson(desc: DescMessage): boolean {
  return CUSTOM_JSON.has(desc.typeName);
}

/** The scalar form of a message type, or undefined when one string cannot express it (Struct, Any, plain messages). */
export function leafOfMessage(desc: DescMessage): Leaf | undefined {
  if (STRING_WKTS.has(desc.typeName)) return { kind: 'wkt', message: desc };
  if (WRAPPERS.has(desc.typeName)) return { kind: 'scalar', scalar: desc.fields[0].scalar! };
  return undefined;
}

/** The leaf of a singular field or of one element of a repeated field / map value. */
export function leafOf(field: DescField): Leaf | undefined {
  switch (field.fieldKind) {
    case 'scalar': return { kind: 'scalar', scalar: field.scalar };
    case 'enum': return { kind: 'enum', enum: field.enum };
    case 'message': return leafOfMessage(field.message);
    case 'list':
      if (field.listKind === 'scalar') return { kind: 'scalar', scalar: field.scalar };
      if (field.listKind === 'enum') return { kind: 'enum', enum: field.enum };
      return leafOfMessage(field.message);
    case 'map':
      if (field.mapKind === 'scalar') return { kind: 'scalar', scalar: field.scalar };
      if (field.mapKind === 'enum') return { kind: 'enum', enum: field.enum };
      return leafOfMessage(field.message);
  }
}

export function scalarName(t: ScalarType): string {
  return ScalarType[t].toLowerCase();
}

/** "int32", "testpb.Color", "google.protobuf.Timestamp", "repeated string", "map<string, int32>". */
export function typeLabel(field: DescField): string {
  switch (field.fieldKind) {
    case 'scalar': return scalarName(field.scalar);
    case 'enum': return field.enum.typeName;
    case 'message': return field.message.typeName;
    case 'list': return `repeated ${elementLabel(field)}`;
    case 'map': return `map<${scalarName(field.mapKey)}, ${elementLabel(field)}>`;
  }
}

export function elementLabel(field: DescField): string {
  if (field.fieldKind === 'list' || field.fieldKind === 'map') {
    const k = field.fieldKind === 'list' ? field.listKind : field.mapKind;
    if (k === 'scalar') return scalarName(field.scalar!);
    if (k === 'enum') return field.enum!.typeName;
    return field.message!.typeName;
  }
  return typeLabel(field);
}

export function leafLabel(leaf: Leaf): string {
  if (leaf.kind === 'scalar') return scalarName(leaf.scalar);
  return leaf.kind === 'enum' ? leaf.enum.typeName : leaf.message.typeName;
}

/** Both names a proto3 JSON parser accepts (proto name and json_name), for every message reachable from root. */
export function indexFields(root: DescMessage): Map<DescMessage, Map<string, DescField>> {
  const out = new Map<DescMessage, Map<string, DescField>>();
  const visit = (desc: DescMessage): void => {
    if (out.has(desc)) return;
    const byName = new Map<string, DescField>();
    out.set(desc, byName);
    for (const f of desc.fields) {
      byName.set(f.name, f);
      byName.set(f.jsonName, f);
      if (f.message) visit(f.message);
    }
  };
  visit(root);
  return out;
}

const INT = /^-?\d+$/;
const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
// strconv.ParseBool's spellings, as grpc-gateway accepts them in query parameters.
const TRUE = new Set(['true', 'True', 'TRUE', 't', 'T', '1']);
const FALSE = new Set(['false', 'False', 'FALSE', 'f', 'F', '0']);
const FLOAT_MAX = 3.4028234663852886e38;

const RANGES: Partial<Record<ScalarType, readonly [bigint, bigint]>> = {
  [ScalarType.INT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SFIXED32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.UINT32]: [0n, 2n ** 32n - 1n],
  [ScalarType.FIXED32]: [0n, 2n ** 32n - 1n],
  [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n],
  [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n],
};

function is64(t: ScalarType): boolean {
  return t === ScalarType.INT64 || t === ScalarType.SINT64 || t === ScalarType.SFIXED64 ||
    t === ScalarType.UINT64 || t === ScalarType.FIXED64;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? s.slice(0, 57) + '...' : s);
}

/** string -> canonical proto3 JSON value for a leaf. Throws ValueProblem with a reason naming the bad value. */
export function compileConverter(leaf: Leaf, registry: Registry): Converter {
  if (leaf.kind === 'enum') return enumConverter(leaf.enum);
  if (leaf.kind === 'wkt') {
    const desc = leaf.message;
    return (s) => {
      try {
        fromJson(desc, s, { registry });
      } catch (err) {
        throw new ValueProblem(`${quote(s)}: ${codecReason(err)}`);
      }
      return s;
    };
  }
  const t = leaf.scalar;
  const range = RANGES[t];
  if (range) {
    const wide = is64(t);
    return (s) => {
      if (!INT.test(s)) throw new ValueProblem(`${quote(s)} is not an integer`);
      const v = BigInt(s);
      if (v < range[0] || v > range[1]) throw new ValueProblem(`${s} is out of range for ${scalarName(t)}`);
      return wide ? v.toString() : Number(v);
    };
  }
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return (s) => {
        if (s === 'NaN' || s === 'Infinity' || s === '-Infinity') return s;
        if (!DECIMAL.test(s)) throw new ValueProblem(`${quote(s)} is not a number`);
        const v = Number(s);
        if (!Number.isFinite(v) || (t === ScalarType.FLOAT && Math.abs(v) > FLOAT_MAX)) {
          throw new ValueProblem(`${s} is out of range for ${scalarName(t)}`);
        }
        return v;
      };
    case ScalarType.BOOL:
      return (s) => {
        if (TRUE.has(s)) return true;
        if (FALSE.has(s)) return false;
        throw new ValueProblem(`${quote(s)} is not a boolean (true or false)`);
      };
    case ScalarType.BYTES:
      return (s) => {
        if (!isBase64(s)) throw new ValueProblem(`${quote(s)} is not base64 (standard or URL-safe)`);
        return s;
      };
    default:
      return (s) => s;
  }
}

export function isBase64(s: string): boolean {
  if (!BASE64.test(s)) return false;
  const unpadded = s.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) return false;
  return s.length === unpadded.length || s.length % 4 === 0;
}

function enumConverter(e: DescEnum): Converter {
  const names = new Set(e.values.map((v) => v.name));
  const numbers = new Set(e.values.map((v) => v.number));
  return (s) => {
    if (names.has(s)) return s;
    if (INT.test(s)) {
      const n = Number(s);
      // Open (proto3) enums keep unknown numbers, closed (proto2) ones do not.
      if (n >= -(2 ** 31) && n < 2 ** 31 && (e.open || numbers.has(n))) return n;
    }
    throw new ValueProblem(`${quote(s)} is not a value of ${e.typeName}`);
  };
}

/**
 * Why a typed JSON value is wrong for a scalar or enum, in our words; undefined when we cannot tell (the caller
 * then falls back to the codec's own reason).
 */
export function jsonValueProblem(leaf: Leaf, v: unknown): string | undefined {
  const shown = typeof v === 'string' ? quote(v) : v === null ? 'null' : Array.isArray(v) ? 'an array' :
    typeof v === 'object' ? 'an object' : String(v);
  if (leaf.kind === 'enum') {
    if (typeof v === 'string') return `${shown} is not a value of ${leaf.enum.typeName}`;
    if (typeof v === 'number') return Number.isInteger(v) ? `${v} is out of range for an enum` : `${v} is not an integer`;
    return `expected a ${leaf.enum.typeName} name or number, got ${shown}`;
  }
  if (leaf.kind === 'wkt') return undefined;
  const t = leaf.scalar;
  const range = RANGES[t];
  if (range) {
    let n: number | bigint;
    if (typeof v === 'number') n = v;
    else if (typeof v === 'string' && v.trim() === v && v !== '' && !Number.isNaN(Number(v))) n = INT.test(v) ? BigInt(v) : Number(v);
    else return `expected an integer, got ${shown}`;
    if (typeof n === 'number') {
      if (!Number.isInteger(n)) return `${shown} is not an integer`;
      n = BigInt(n);
    }
    if (n < range[0] || n > range[1]) return `${shown} is out of range for ${scalarName(t)}`;
    return undefined;
  }
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (typeof v === 'string' && (v === 'NaN' || v === 'Infinity' || v === '-Infinity')) return undefined;
      if (typeof v === 'number' || (typeof v === 'string' && v.trim() === v && v !== '' && !Number.isNaN(Number(v)))) {
        const n = Number(v);
        if (!Number.isFinite(n) || (t === ScalarType.FLOAT && Math.abs(n) > FLOAT_MAX)) return `${shown} is out of range for ${scalarName(t)}`;
        return undefined;
      }
      return typeof v === 'string' ? `${shown} is not a number` : `expected a number, got ${shown}`;
    case ScalarType.BOOL:
      return typeof v === 'boolean' ? undefined : `expected true or false, got ${shown}`;
    case ScalarType.STRING:
      return typeof v === 'string' ? undefined : `expected a string, got ${shown}`;
    case ScalarType.BYTES:
      if (typeof v !== 'string') return `expected a base64 string, got ${shown}`;
      return isBase64(v) ? undefined : `${shown} is not base64 (standard or URL-safe)`;
  }
  return undefined;
}

/** The codec's reason without its "cannot decode X from JSON:" preamble. */
export function codecReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/^cannot decode [^:]*? from JSON:? ?/, '');
}
