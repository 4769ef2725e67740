/**
 * The request fast path: a proto3 JSON object -> binary message in one walk, without building @bufbuild message
 * objects (fromJson + toBinary cost ~20 µs of a ~450 µs REST call, most of it allocation).
 *
 * It is compiled once per request message type and is only ever a shortcut: for any input it is not sure about
 * (strings in number fields, NaN, null, unknown keys, two members of a oneof, enum numbers it does not know,
 * proto2 required fields, groups...) it returns undefined and the caller runs the conformant codec, which either
 * produces the message or the error with its wording. For every input it accepts, its bytes are those of
 * `toBinary(fromJson(...))` — fields in field-number order, implicit-presence zero values omitted, packed
 * repeated scalars — which test/json-binary.test.ts checks byte for byte on random messages. Well-known types
 * with a custom JSON form (Timestamp, Duration, Struct, Any, wrappers...) are encoded by the codec itself, one
 * sub-message at a time, so their JSON rules live in one place.
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { ScalarType, fromJson, toBinary, type DescEnum, type DescField, type DescMessage, type JsonValue, type Registry } from '@bufbuild/protobuf';
import { hasCustomJson, isBase64 } from './fields.ts';

/** Returns the encoded message, or undefined: "not sure, ask the codec". */
export type FastEncoder = (json: Record<string, JsonValue>) => Uint8Array | undefined;

/** Thrown inside a walk to give up; never escapes this module. */
const BAIL = Symbol('bail');

/** Writes one validated value (tag included); throws BAIL for a value the codec should judge. */
type WriteValue = (w: BinaryWriter, v: JsonValue) => void;

interface FieldPlan {
  /** Position in field-number order: where its value waits until the message is written. */
  slot: number;
  oneof: string | undefined;
  /** Writes the field (tag included) from its JSON value; writes nothing for an implicit-presence zero. */
  write: WriteValue;
}

interface MessagePlan {
  byKey: Map<string, FieldPlan>;
  slots: number;
  /** Slot -> writer, in field-number order. */
  order: WriteValue[];
}

// Presence per google/protobuf/descriptor.proto FeatureSet.FieldPresence.
const IMPLICIT = 2;
const LEGACY_REQUIRED = 3;
const FLOAT32_MAX = 3.4028234663852886e38;
const INT64_TEXT = /^-?(?:0|[1-9][0-9]{0,19})$/;
const U32 = 2 ** 32 - 1;
const I64_MIN = -(2n ** 63n), I64_MAX = 2n ** 63n - 1n, U64_MAX = 2n ** 64n - 1n;

export function compileFastEncoder(root: DescMessage, registry: Registry): FastEncoder | undefined {
  if (hasCustomJson(root)) return undefined;
  const plans = new Map<DescMessage, MessagePlan | null>();
  const codecOptions = { registry };

  /** The plan of a message type, or null when its encoding has rules this path does not take on. */
  function planOf(desc: DescMessage): MessagePlan | null {
    const known = plans.get(desc);
    if (known !== undefined) return known;
    if (desc.fields.some((f) => f.presence === LEGACY_REQUIRED || ('delimitedEncoding' in f && f.delimitedEncoding))) {
      plans.set(desc, null);
      return null;
    }
    const plan: MessagePlan = { byKey: new Map(), slots: desc.fields.length, order: [] };
    plans.set(desc, plan); // before the fields: recursive types find it
    const sorted = [...desc.fields].sort((a, b) => a.number - b.number);
    sorted.forEach((field, slot) => {
      const fp: FieldPlan = { slot, oneof: field.oneof?.name, write: fieldWriter(field) };
      plan.order.push(fp.write);
      plan.byKey.set(field.name, fp).set(field.jsonName, fp);
    });
    return plan;
  }

  function messageBody(desc: DescMessage): (w: BinaryWriter, v: JsonValue) => void {
    if (desc.typeName === 'google.protobuf.Timestamp') return writeTimestamp;
    if (hasCustomJson(desc)) {
      return (w, v) => {
        if (v === null) throw BAIL;
        let bytes: Uint8Array;
        try {
          bytes = toBinary(desc, fromJson(desc, v, codecOptions));
        } catch {
          throw BAIL;
        }
        w.raw(bytes);
      };
    }
    // Resolved on first use: the plan of a recursive type may not exist yet while its fields compile.
    let plan: MessagePlan | null | undefined;
    return (w, v) => {
      if (plan === undefined) plan = planOf(desc);
      if (plan === null || v === null || typeof v !== 'object' || Array.isArray(v)) throw BAIL;
      writeMessage(w, plan, v);
    };
  }

  function fieldWriter(field: DescField): WriteValue {
    const no = field.number;
    switch (field.fieldKind) {
      case 'scalar':
      case 'enum': {
        const value = field.fieldKind === 'enum' ? enumValue(field.enum) : scalarValue(field.scalar);
        const wire = field.fieldKind === 'enum' ? WireType.Varint : wireTypeOf(field.scalar);
        const skipZero = field.presence === IMPLICIT && !field.oneof;
        const zero = field.fieldKind === 'enum' ? zeroEnum(field.enum) : isZero(field.scalar);
        return (w, v) => {
          if (skipZero && zero(v)) return;
          w.tag(no, wire);
          value(w, v);
        };
      }
      case 'message': {
        const body = messageBody(field.message);
        return (w, v) => {
          w.tag(no, WireType.LengthDelimited).fork();
          body(w, v);
          w.join();
        };
      }
      case 'list': {
        if (field.listKind === 'message') {
          const body = messageBody(field.message);
          return (w, v) => {
            if (!Array.isArray(v)) throw BAIL;
            for (let i = 0; i < v.length; i++) {
              w.tag(no, WireType.LengthDelimited).fork();
              body(w, v[i]!);
              w.join();
            }
          };
        }
        const value = field.listKind === 'enum' ? enumValue(field.enum) : scalarValue(field.scalar);
        const wire = field.listKind === 'enum' ? WireType.Varint : wireTypeOf(field.scalar);
        const packed = field.packed;
        return (w, v) => {
          if (!Array.isArray(v)) throw BAIL;
          if (v.length === 0) return;
          if (packed) w.tag(no, WireType.LengthDelimited).fork();
          for (let i = 0; i < v.length; i++) {
            if (!packed) w.tag(no, wire);
            value(w, v[i]!);
          }
          if (packed) w.join();
        };
      }
      case 'map': {
        const key = mapKey(field.mapKey);
        const keyWire = wireTypeOf(field.mapKey);
        let value: WriteValue;
        if (field.mapKind === 'message') {
          const body = messageBody(field.message);
          value = (w, v) => {
            w.tag(2, WireType.LengthDelimited).fork();
            body(w, v);
            w.join();
          };
        } else {
          const scalar = field.mapKind === 'enum' ? enumValue(field.enum) : scalarValue(field.scalar);
          const wire = field.mapKind === 'enum' ? WireType.Varint : wireTypeOf(field.scalar);
          value = (w, v) => {
            w.tag(2, wire);
            scalar(w, v);
          };
        }
        return (w, v) => {
          if (v === null || typeof v !== 'object' || Array.isArray(v)) throw BAIL;
          for (const k of Object.keys(v)) {
            w.tag(no, WireType.LengthDelimited).fork();
            w.tag(1, keyWire);
            key(w, k);
            value(w, v[k]!);
            w.join();
          }
        };
      }
    }
  }

  function writeMessage(w: BinaryWriter, plan: MessagePlan, json: Record<string, JsonValue>): void {
    const values: Array<JsonValue | undefined> = new Array(plan.slots);
    const keys = Object.keys(json);
    let oneofs: string[] | undefined;
    for (let i = 0; i < keys.length; i++) {
      const fp = plan.byKey.get(keys[i]!);
      const v = json[keys[i]!]!;
      // null (a default, or NullValue), unknown keys, a field under both names: the codec's call.
      if (fp === undefined || v === null || values[fp.slot] !== undefined) throw BAIL;
      if (fp.oneof !== undefined) {
        if (oneofs?.includes(fp.oneof)) throw BAIL;
        (oneofs ??= []).push(fp.oneof);
      }
      values[fp.slot] = v;
    }
    for (let s = 0; s < values.length; s++) {
      const v = values[s];
      if (v !== undefined) plan.order[s]!(w, v);
    }
  }

  const rootPlan = planOf(root);
  if (rootPlan === null) return undefined;
  return (json) => {
    const w = new BinaryWriter();
    try {
      writeMessage(w, rootPlan, json);
    } catch (err) {
      if (err === BAIL) return undefined;
      throw err;
    }
    return w.finish();
  };
}

/** Validates a JSON value and writes it (without tag); throws BAIL for a value the codec should judge. */
type ValueOf = (w: BinaryWriter, v: JsonValue) => void;

function int32Range(min: number, max: number, write: (w: BinaryWriter, n: number) => void): ValueOf {
  return (w, v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw BAIL;
    write(w, v);
  };
}

function int64Range(min: bigint, max: bigint, write: (w: BinaryWriter, n: bigint | number) => void): ValueOf {
  return (w, v) => {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || (min === 0n && v < 0)) throw BAIL;
      write(w, v);
      return;
    }
    if (typeof v !== 'string' || !INT64_TEXT.test(v)) throw BAIL;
    // Up to 15 digits a double is exact: no BigInt for the ids and counts most requests carry.
    if (v.length <= 15) {
      const n = Number(v);
      if (min === 0n && n < 0) throw BAIL;
      write(w, n);
      return;
    }
    const n = BigInt(v);
    if (n < min || n > max) throw BAIL;
    write(w, n);
  };
}

function scalarValue(t: ScalarType): ValueOf {
  switch (t) {
    case ScalarType.STRING:
      return (w, v) => {
        if (typeof v !== 'string' || !v.isWellFormed()) throw BAIL;
        w.string(v);
      };
    case ScalarType.BOOL:
      return (w, v) => {
        if (typeof v !== 'boolean') throw BAIL;
        w.bool(v);
      };
    case ScalarType.BYTES:
      return (w, v) => {
        if (typeof v !== 'string' || !isBase64(v)) throw BAIL;
        // Node's decoder reads both alphabets, padded or not; isBase64 has already refused anything else.
        w.bytes(Buffer.from(v, 'base64'));
      };
    case ScalarType.DOUBLE:
      return (w, v) => {
        // "NaN", "1.5": string forms are the codec's to read.
        if (typeof v !== 'number' || !Number.isFinite(v)) throw BAIL;
        w.double(v);
      };
    case ScalarType.FLOAT:
      return (w, v) => {
        if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > FLOAT32_MAX) throw BAIL;
        w.float(v);
      };
    case ScalarType.INT32: return int32Range(-(2 ** 31), 2 ** 31 - 1, (w, n) => w.int32(n));
    case ScalarType.SINT32: return int32Range(-(2 ** 31), 2 ** 31 - 1, (w, n) => w.sint32(n));
    case ScalarType.SFIXED32: return int32Range(-(2 ** 31), 2 ** 31 - 1, (w, n) => w.sfixed32(n));
    case ScalarType.UINT32: return int32Range(0, U32, (w, n) => w.uint32(n));
    case ScalarType.FIXED32: return int32Range(0, U32, (w, n) => w.fixed32(n));
    case ScalarType.INT64: return int64Range(I64_MIN, I64_MAX, (w, n) => w.int64(n));
    case ScalarType.SINT64: return int64Range(I64_MIN, I64_MAX, (w, n) => w.sint64(n));
    case ScalarType.SFIXED64: return int64Range(I64_MIN, I64_MAX, (w, n) => w.sfixed64(n));
    case ScalarType.UINT64: return int64Range(0n, U64_MAX, (w, n) => w.uint64(n));
    case ScalarType.FIXED64: return int64Range(0n, U64_MAX, (w, n) => w.fixed64(n));
  }
}

/** Map keys are JSON object keys (strings): only the canonical text of the key type; "01", " 1" go to the codec. */
function mapKey(t: ScalarType): (w: BinaryWriter, k: string) => void {
  if (t === ScalarType.STRING) {
    return (w, k) => {
      if (!k.isWellFormed()) throw BAIL;
      w.string(k);
    };
  }
  if (t === ScalarType.BOOL) {
    return (w, k) => {
      if (k !== 'true' && k !== 'false') throw BAIL;
      w.bool(k === 'true');
    };
  }
  const value = scalarValue(t);
  const is64 = t === ScalarType.INT64 || t === ScalarType.SINT64 || t === ScalarType.SFIXED64 || t === ScalarType.UINT64 || t === ScalarType.FIXED64;
  return (w, k) => {
    if (!INT64_TEXT.test(k)) throw BAIL;
    value(w, is64 ? k : Number(k));
  };
}

function enumValue(e: DescEnum): ValueOf {
  // NullValue's JSON form is null, which the codec handles.
  if (e.typeName === 'google.protobuf.NullValue') return () => { throw BAIL; };
  const byName = new Map(e.values.map((x) => [x.name, x.number]));
  const numbers = new Set(e.values.map((x) => x.number));
  return (w, v) => {
    const n = typeof v === 'string' ? byName.get(v) : typeof v === 'number' && numbers.has(v) ? v : undefined;
    if (n === undefined) throw BAIL;
    w.int32(n);
  };
}

// The codec's own RFC 3339 pattern and range (@bufbuild/protobuf from-json.js), so both accept the same strings.
const RFC3339 = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:Z|([+-][0-9][0-9]:[0-9][0-9]))$/;
const TIMESTAMP_MS_MIN = -62135596800000, TIMESTAMP_MS_MAX = 253402300799000;

/**
 * google.protobuf.Timestamp from its JSON string, as the codec reads it: the sub-codec call it replaces was 40 % of
 * the fast path's time on a typical request.
 */
function writeTimestamp(w: BinaryWriter, v: JsonValue): void {
  const m = typeof v === 'string' ? RFC3339.exec(v) : null;
  if (m === null) throw BAIL;
  const ms = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${m[8] ?? 'Z'}`);
  if (!(ms >= TIMESTAMP_MS_MIN && ms <= TIMESTAMP_MS_MAX)) throw BAIL; // NaN fails too
  const seconds = ms / 1000;
  const nanos = m[7] === undefined ? 0 : Number(m[7].padEnd(9, '0'));
  if (seconds !== 0) w.tag(1, WireType.Varint).int64(seconds);
  if (nanos !== 0) w.tag(2, WireType.Varint).int32(nanos);
}

function zeroEnum(e: DescEnum): (v: JsonValue) => boolean {
  const zero = e.values[0]!;
  return (v) => v === zero.number || v === zero.name;
}

function isZero(t: ScalarType): (v: JsonValue) => boolean {
  switch (t) {
    case ScalarType.STRING: return (v) => v === '';
    case ScalarType.BOOL: return (v) => v === false;
    case ScalarType.BYTES: return (v) => v === '';
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return (v) => Object.is(v, 0); // -0 is written, as the codec does
    default: return (v) => v === 0 || v === '0';
  }
}

export function wireTypeOf(t: ScalarType): WireType {
  switch (t) {
    case ScalarType.BYTES:
    case ScalarType.STRING:
      return WireType.LengthDelimited;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.FLOAT:
      return WireType.Bit32;
    default:
      return WireType.Varint;
  }
}
