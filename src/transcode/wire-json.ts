/**
 * The response fast path: binary message -> proto3 JSON text in one pass over the wire format, without building
 * @bufbuild message objects first (fromBinary was ~40 % of rendering a typical 0.5 KiB response).
 *
 * Like the request fast path it is only a shortcut: for anything it is not sure about (a wire type that does not
 * match the field, a group, invalid UTF-8, excessive nesting, "emit unpopulated" output) it returns undefined and
 * the caller renders with fromBinary + JsonWriters, which stays the reference. For every message it renders, its
 * text is the reference's text, character for character (test/wire-json.test.ts, on random messages, merged
 * concatenations and unknown fields): fields in declaration order, implicit-presence zeros left out, the last
 * value of a repeated singular field winning, repeated occurrences of a message field merged (rendered from the
 * concatenation of their bytes, which is what merging means in the protobuf wire format), a map's later entry for
 * a key replacing an earlier one, the last member of a oneof winning. Well-known types with their own JSON form
 * are decoded by the codec and rendered by the reference writers, one sub-message at a time.
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { ScalarType, fromBinary, type DescEnum, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { hasCustomJson } from './fields.ts';
import { enumWriter, scalarWriter as scalarFormat, scalarZeroTest, type JsonWriters } from './json-writer.ts';
import { wireTypeOf } from './json-binary.ts';

export type WireJson = (bytes: Uint8Array) => string | undefined;

export interface WireJsonOptions {
  useProtoFieldName: boolean;
  enumAsInteger: boolean;
}

/** Thrown inside a pass to give up; never escapes this module. */
const BAIL = Symbol('bail');
// Presence per google/protobuf/descriptor.proto FeatureSet.FieldPresence.
const IMPLICIT = 2;
/** The codec's default recursion limit: deeper messages are for the codec to refuse. */
const MAX_DEPTH = 100;

type Read = (r: BinaryReader) => unknown;
type Format = (v: unknown) => string;

interface FieldPlan {
  field: DescField;
  /** '"jsonName":' */
  key: string;
  kind: 'single' | 'message' | 'list' | 'list-message' | 'map';
  /** Wire type of one value (the packed form of a list is LengthDelimited as well). */
  wire: WireType;
  read: Read;
  format: Format;
  /** For 'single': whether the value is left out (implicit presence at its zero value). */
  skip: (v: unknown) => boolean;
  /** For 'map'. */
  mapKey?: { wire: WireType; read: Read; zero: string };
  mapValue?: { wire: WireType; read: Read; format: Format; zero: () => unknown };
  oneof: number;
  /** For 'message' / 'list-message': renders the message at [start, end) of the reader's buffer. */
  sub?: Sub;
  /** Index of this field's value in a message's value array. */
  slot: number;
}

/** Renders the message at [start, end) of buf, which r reads; leaves r.pos anywhere. */
type Sub = (r: BinaryReader, buf: Uint8Array, start: number, end: number) => string;

interface MessagePlan {
  /** Field number -> plan: an array for the usual small numbers, a Map past DENSE_MAX. */
  dense: Array<FieldPlan | undefined>;
  sparse: Map<number, FieldPlan>;
  /** Output order: declaration order, a oneof where its first member is declared. */
  members: Array<FieldPlan | FieldPlan[]>;
  fieldCount: number;
  oneofCount: number;
}

const DENSE_MAX = 2048;

export function compileWireJson(root: DescMessage, writers: JsonWriters, options: WireJsonOptions): WireJson | undefined {
  if (hasCustomJson(root)) return undefined;
  const plans = new Map<DescMessage, MessagePlan | null>();

  function planOf(desc: DescMessage): MessagePlan | null {
    const known = plans.get(desc);
    if (known !== undefined) return known;
    if (desc.fields.some((f) => 'delimitedEncoding' in f && f.delimitedEncoding)) {
      plans.set(desc, null);
      return null;
    }
    const plan: MessagePlan = { dense: [], sparse: new Map(), members: [], fieldCount: desc.fields.length, oneofCount: desc.oneofs.length };
    plans.set(desc, plan);
    const fieldPlans = new Map<DescField, FieldPlan>();
    desc.fields.forEach((f, i) => {
      const p = fieldPlan(f, f.oneof ? desc.oneofs.indexOf(f.oneof) : -1);
      p.slot = i;
      fieldPlans.set(f, p);
      if (f.number <= DENSE_MAX) plan.dense[f.number] = p;
      else plan.sparse.set(f.number, p);
    });
    for (const m of desc.members) {
      plan.members.push(m.kind === 'oneof' ? m.fields.map((f) => fieldPlans.get(f)!) : fieldPlans.get(m)!);
    }
    return plan;
  }

  const enumFormat = (e: DescEnum): Format => enumWriter(e, options.enumAsInteger);
  /** Closed (proto2) enums: the codec keeps an unknown number as an unknown field, not as the value. */
  const enumReader = (e: DescEnum): Read => {
    if (e.open) return readInt32;
    const known = new Set(e.values.map((v) => v.number));
    return (r) => {
      const n = r.int32();
      if (!known.has(n)) throw BAIL;
      return n;
    };
  };

  function fieldPlan(f: DescField, oneof: number): FieldPlan {
    const key = JSON.stringify(options.useProtoFieldName ? f.name : f.jsonName) + ':';
    const base = { field: f, key, oneof, skip: never, read: readBytes, format: String as Format, slot: -1 };
    switch (f.fieldKind) {
      case 'scalar':
        return { ...base, kind: 'single', wire: wireTypeOf(f.scalar), read: scalarReader(f.scalar), format: scalarFormat(f.scalar),
          skip: f.presence === IMPLICIT && !f.oneof ? scalarZeroTest(f.scalar) : never };
      case 'enum': {
        const zero = f.enum.values[0]!.number;
        return { ...base, kind: 'single', wire: WireType.Varint, read: enumReader(f.enum), format: enumFormat(f.enum),
          skip: f.presence === IMPLICIT && !f.oneof ? (v) => v === zero : never };
      }
      case 'message':
        return { ...base, kind: 'message', wire: WireType.LengthDelimited, sub: messageSub(f.message) };
      case 'list':
        if (f.listKind === 'message') return { ...base, kind: 'list-message', wire: WireType.LengthDelimited, sub: messageSub(f.message) };
        if (f.listKind === 'enum') return { ...base, kind: 'list', wire: WireType.Varint, read: enumReader(f.enum), format: enumFormat(f.enum) };
        return { ...base, kind: 'list', wire: wireTypeOf(f.scalar), read: scalarReader(f.scalar), format: scalarFormat(f.scalar) };
      case 'map': {
        const mapKey = { wire: wireTypeOf(f.mapKey), read: scalarReader(f.mapKey), zero: f.mapKey === ScalarType.BOOL ? 'false' : f.mapKey === ScalarType.STRING ? '' : '0' };
        let mapValue: NonNullable<FieldPlan['mapValue']>;
        if (f.mapKind === 'message') {
          const sub = messageSub(f.message);
          const format: Format = (bytes) => {
            const b = bytes as Uint8Array;
            return sub(new BinaryReader(b), b, 0, b.length);
          };
          mapValue = { wire: WireType.LengthDelimited, read: readBytes, format, zero: () => new Uint8Array(0) };
        } else if (f.mapKind === 'enum') {
          const zero = f.enum.values[0]!.number;
          mapValue = { wire: WireType.Varint, read: enumReader(f.enum), format: enumFormat(f.enum), zero: () => zero };
        } else {
          const scalar = f.scalar;
          mapValue = { wire: wireTypeOf(scalar), read: scalarReader(scalar), format: scalarFormat(scalar), zero: () => scalarZero(scalar) };
        }
        return { ...base, kind: 'map', wire: WireType.LengthDelimited, mapKey, mapValue };
      }
    }
  }

  /** A message value -> JSON; one reader serves a whole response, nested messages are ranges of its buffer. */
  function messageSub(desc: DescMessage): Sub {
    if (desc.typeName === 'google.protobuf.Timestamp') {
      const write = writers.writer(desc);
      // Its two fields straight off the wire: fromBinary built a whole message object per timestamp (the writer
      // reads only seconds and nanos). Anything else in it goes to the codec, which stays the judge.
      return (r, buf, start, end) => write(secondsNanos(r, start, end) ?? fromBinary(desc, buf.subarray(start, end)) as unknown as Record<string, unknown>);
    }
    if (hasCustomJson(desc)) {
      const write = writers.writer(desc); // a leaf writer: no recursion to wait for
      return (_r, buf, start, end) => write(fromBinary(desc, buf.subarray(start, end)) as unknown as Record<string, unknown>);
    }
    let plan: MessagePlan | null | undefined;
    return (r, buf, start, end) => {
      if (plan === undefined) plan = planOf(desc);
      if (plan === null) throw BAIL;
      r.pos = start;
      return render(plan, r, buf, end);
    };
  }

  /** A message field's occurrences ([start, end) pairs): one is a range of the buffer, more merge by concatenation. */
  function renderOccurrences(sub: Sub, r: BinaryReader, buf: Uint8Array, ranges: number[]): string {
    if (ranges.length === 2) return sub(r, buf, ranges[0]!, ranges[1]!);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ranges.length; i += 2) parts.push(buf.subarray(ranges[i]!, ranges[i + 1]!));
    const merged = Buffer.concat(parts);
    return sub(new BinaryReader(merged), merged, 0, merged.length);
  }

  let depth = 0;
  function render(plan: MessagePlan, r: BinaryReader, buf: Uint8Array, end: number): string {
    if (++depth > MAX_DEPTH) throw BAIL;
    const values: unknown[] = new Array(plan.fieldCount);
    const oneofCase: Array<FieldPlan | undefined> = plan.oneofCount > 0 ? new Array(plan.oneofCount) : [];
    while (r.pos < end) {
      // The codec's tag checks, without its [no, wt] array per field.
      const tagAt = r.pos;
      const tag = r.uint32();
      const tagLength = r.pos - tagAt;
      const no = tag >>> 3, wt = tag & 7;
      if (no === 0 || wt > 5 || tagLength > 5 || (tagLength === 5 && buf[r.pos - 1]! > 0x0f)) throw BAIL;
      const p = no <= DENSE_MAX ? plan.dense[no] : plan.sparse.get(no);
      if (p === undefined) {
        r.skip(wt, no);
        continue;
      }
      const slot = p.slot;
      if (p.oneof >= 0) {
        const prior = oneofCase[p.oneof];
        // Another member of the oneof replaces the current one; the same message member merges.
        if (prior !== undefined && prior !== p) values[prior.slot] = undefined;
        oneofCase[p.oneof] = p;
      }
      switch (p.kind) {
        case 'single':
          if (wt !== p.wire) throw BAIL;
          values[slot] = p.read(r);
          break;
        case 'message':
        case 'list-message': {
          if (wt !== WireType.LengthDelimited) throw BAIL;
          const len = r.uint32();
          const start = r.pos;
          r.pos += len;
          if (r.pos > end) throw BAIL;
          const ranges = (values[slot] ??= []) as number[];
          ranges.push(start, r.pos);
          break;
        }
        case 'list': {
          const list = (values[slot] ??= []) as unknown[];
          if (wt === WireType.LengthDelimited && p.wire !== WireType.LengthDelimited) {
            const packedEnd = r.uint32() + r.pos;
            while (r.pos < packedEnd) list.push(p.read(r));
            if (r.pos !== packedEnd) throw BAIL;
          } else {
            if (wt !== p.wire) throw BAIL;
            list.push(p.read(r));
          }
          break;
        }
        case 'map': {
          if (wt !== WireType.LengthDelimited) throw BAIL;
          // Keys as the codec stores them: properties of a plain object, whose own key order the output keeps.
          const record = (values[slot] ??= Object.create(null)) as Record<string, unknown>;
          const entryEnd = r.uint32() + r.pos;
          const k = p.mapKey!, v = p.mapValue!;
          const isMessageMap = p.field.fieldKind === 'map' && p.field.mapKind === 'message';
          let key: string | undefined;
          let value: unknown;
          while (r.pos < entryEnd) {
            const [eno, ewt] = r.tag();
            if (eno === 1) {
              if (ewt !== k.wire) throw BAIL;
              key = String(k.read(r));
            } else if (eno === 2) {
              if (ewt !== v.wire) throw BAIL;
              // A message value given twice in one entry merges; a scalar's last value wins.
              value = isMessageMap && value !== undefined ? concat([value as Uint8Array, v.read(r) as Uint8Array]) : v.read(r);
            } else {
              r.skip(ewt, eno);
            }
          }
          if (r.pos !== entryEnd) throw BAIL;
          record[key ?? k.zero] = value ?? v.zero();
          break;
        }
      }
    }
    let out = '';
    for (const m of plan.members) {
      let p: FieldPlan | undefined;
      if (Array.isArray(m)) {
        p = oneofCase[m[0]!.oneof];
        if (p === undefined) continue;
      } else {
        p = m;
      }
      const v = values[p.slot];
      if (v === undefined) continue;
      let s: string;
      switch (p.kind) {
        case 'single':
          if (p.skip(v)) continue;
          s = p.format(v);
          break;
        case 'message':
          s = renderOccurrences(p.sub!, r, buf, v as number[]);
          break;
        case 'list-message': {
          const ranges = v as number[];
          s = '[';
          for (let i = 0; i < ranges.length; i += 2) s += (i === 0 ? '' : ',') + p.sub!(r, buf, ranges[i]!, ranges[i + 1]!);
          s += ']';
          break;
        }
        case 'list': {
          const list = v as unknown[];
          if (list.length === 0) continue;
          s = '[';
          for (let i = 0; i < list.length; i++) s += (i === 0 ? '' : ',') + p.format(list[i]);
          s += ']';
          break;
        }
        case 'map': {
          const record = v as Record<string, unknown>;
          const fmt = p.mapValue!.format;
          s = '';
          for (const k in record) s += (s === '' ? '{' : ',') + JSON.stringify(k) + ':' + fmt(record[k]);
          s = s === '' ? '{}' : s + '}';
          break;
        }
      }
      out += (out === '' ? '{' : ',') + p.key + s;
    }
    depth--;
    return out === '' ? '{}' : out + '}';
  }

  const rootPlan = planOf(root);
  if (rootPlan === null) return undefined;
  return (bytes) => {
    depth = 0;
    try {
      return render(rootPlan, new BinaryReader(bytes), bytes, bytes.length);
    } catch {
      // BAIL, or anything the reader refused (truncated input, invalid UTF-8): the reference path decides.
      return undefined;
    }
  };
}

const never = (): boolean => false;
const readBytes: Read = (r) => r.bytes();
const readInt32: Read = (r) => r.int32();

function concat(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function scalarReader(t: ScalarType): Read {
  switch (t) {
    case ScalarType.STRING: return (r) => r.string(true);
    case ScalarType.BOOL: return (r) => r.bool();
    case ScalarType.DOUBLE: return (r) => r.double();
    case ScalarType.FLOAT: return (r) => r.float();
    case ScalarType.INT32: return readInt32;
    case ScalarType.INT64: return (r) => r.int64();
    case ScalarType.UINT64: return (r) => r.uint64();
    case ScalarType.FIXED64: return (r) => r.fixed64();
    case ScalarType.BYTES: return readBytes;
    case ScalarType.FIXED32: return (r) => r.fixed32();
    case ScalarType.SFIXED32: return (r) => r.sfixed32();
    case ScalarType.SFIXED64: return (r) => r.sfixed64();
    case ScalarType.SINT64: return (r) => r.sint64();
    case ScalarType.UINT32: return (r) => r.uint32();
    case ScalarType.SINT32: return (r) => r.sint32();
  }
}

function scalarZero(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.BOOL: return false;
    case ScalarType.STRING: return '';
    case ScalarType.BYTES: return new Uint8Array(0);
    case ScalarType.INT64: case ScalarType.UINT64: case ScalarType.SINT64: case ScalarType.FIXED64: case ScalarType.SFIXED64: return 0n;
    default: return 0;
  }
}

/** Field 1 (int64, varint) and field 2 (int32, varint) of [start, end); undefined for any other tag or a bad varint. */
function secondsNanos(r: BinaryReader, start: number, end: number): { seconds: bigint | string; nanos: number } | undefined {
  let seconds: bigint | string = 0n;
  let nanos = 0;
  r.pos = start;
  try {
    while (r.pos < end) {
      const tag = r.uint32();
      if (tag === 8) seconds = r.int64();
      else if (tag === 16) nanos = r.int32();
      else return undefined;
    }
  } catch {
    return undefined;
  }
  return r.pos === end ? { seconds, nanos } : undefined;
}
