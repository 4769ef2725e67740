/**
 * Message -> proto3 JSON text, compiled once per message type. Produces what @bufbuild/protobuf's toJson +
 * JSON.stringify produce (the differential test holds both to protobufjs' protojson), without the intermediate
 * object tree and with Node's native base64: on a stream of bytes fields, @bufbuild's pure-JS base64 plus a second
 * JSON.stringify pass over it cost ~8x more than Buffer#toString('base64') (BENCHMARKS.md).
 *
 * Well-known types with their own JSON form (Timestamp, Duration, Any, Struct, wrappers...) are delegated to
 * @bufbuild, which is exact for them; they are rare on hot paths.
 */
import {
  ScalarType,
  isFieldSet,
  toJson,
  type DescEnum,
  type DescField,
  type DescMessage,
  type Registry,
} from '@bufbuild/protobuf';
import { hasCustomJson } from './fields.ts';

export interface JsonWriterOptions {
  registry: Registry;
  alwaysEmitImplicit: boolean;
  useProtoFieldName: boolean;
  enumAsInteger: boolean;
}

type Msg = Record<string, unknown>;
/** Writes one message as a JSON object. */
export type MessageWriter = (message: Msg) => string;
type ValueWriter = (value: unknown) => string;

/** Compiles writers for a message type and everything it reaches; recursion is resolved lazily through the cache. */
export class JsonWriters {
  readonly #options: JsonWriterOptions;
  readonly #cache = new Map<DescMessage, MessageWriter>();

  constructor(options: JsonWriterOptions) {
    this.#options = options;
  }

  writer(desc: DescMessage): MessageWriter {
    let w = this.#cache.get(desc);
    if (w) return w;
    if (desc.typeName === 'google.protobuf.Timestamp') {
      this.#cache.set(desc, timestampJson);
      return timestampJson;
    }
    if (hasCustomJson(desc)) {
      const opts = this.#options;
      w = (m) => JSON.stringify(toJson(desc, m as never, opts));
      this.#cache.set(desc, w);
      return w;
    }
    // Placeholder first, so a recursive type finds an entry while its own fields compile.
    let compiled: MessageWriter | undefined;
    this.#cache.set(desc, (m) => compiled!(m));
    compiled = this.#compileMessage(desc);
    this.#cache.set(desc, compiled);
    return compiled;
  }

  #compileMessage(desc: DescMessage): MessageWriter {
    const parts: Array<(m: Msg) => string | undefined> = [];
    const seenOneofs = new Set<string>();
    for (const member of desc.members) {
      if (member.kind === 'oneof') {
        if (seenOneofs.has(member.name)) continue;
        seenOneofs.add(member.name);
        const cases = new Map<string, (v: unknown) => string>();
        for (const f of member.fields) cases.set(f.localName, this.#prefixed(f, this.#single(f)));
        const local = member.localName;
        parts.push((m) => {
          const o = m[local] as { case: string | undefined; value?: unknown };
          return o.case === undefined ? undefined : cases.get(o.case)!(o.value);
        });
        continue;
      }
      parts.push(this.#field(member));
    }
    return (m) => {
      let out = '';
      for (let i = 0; i < parts.length; i++) {
        const s = parts[i]!(m);
        if (s !== undefined) out = out === '' ? s : out + ',' + s;
      }
      return '{' + out + '}';
    };
  }

  #prefixed(f: DescField, value: ValueWriter): (v: unknown) => string {
    const key = JSON.stringify(this.#options.useProtoFieldName ? f.name : f.jsonName) + ':';
    return (v) => key + value(v);
  }

  #field(f: DescField): (m: Msg) => string | undefined {
    const local = f.localName;
    const emitAll = this.#options.alwaysEmitImplicit;
    if (f.fieldKind === 'list') {
      const item = this.#listItem(f);
      const write = this.#prefixed(f, (v) => {
        const arr = v as unknown[];
        let out = '';
        for (let i = 0; i < arr.length; i++) out += (i === 0 ? '' : ',') + item(arr[i]);
        return '[' + out + ']';
      });
      return (m) => {
        const arr = m[local] as unknown[];
        return arr.length > 0 || emitAll ? write(arr) : undefined;
      };
    }
    if (f.fieldKind === 'map') {
      const item = this.#mapValue(f);
      const write = this.#prefixed(f, (v) => {
        let out = '';
        for (const k of Object.keys(v as object)) {
          out += (out === '' ? '' : ',') + JSON.stringify(k) + ':' + item((v as Record<string, unknown>)[k]);
        }
        return '{' + out + '}';
      });
      return (m) => {
        const obj = m[local] as object;
        return emitAll || Object.keys(obj).length > 0 ? write(obj) : undefined;
      };
    }
    const write = this.#prefixed(f, this.#single(f));
    if (f.fieldKind === 'message') {
      return (m) => (m[local] === undefined ? undefined : write(m[local]));
    }
    // Scalars and enums: explicit presence (proto2, proto3 `optional`) writes what is set, even a zero value;
    // implicit presence skips the zero value unless asked to emit it.
    if (f.presence !== IMPLICIT) return (m) => (isFieldSet(m as never, f) ? write(m[local]) : undefined);
    if (emitAll) return (m) => write(m[local]);
    const isZero = zeroTest(f);
    return (m) => (isZero(m[local]) ? undefined : write(m[local]));
  }

  /**
   * A message-typed value as @bufbuild stores it: Struct fields hold a plain JSON object (except inside Value), and
   * singular wrapper fields outside a oneof hold the bare scalar.
   */
  #messageValue(field: DescField, desc: DescMessage, singular: boolean): ValueWriter {
    if (desc.typeName === 'google.protobuf.Struct' && field.parent.typeName !== 'google.protobuf.Value') {
      return (v) => JSON.stringify(v);
    }
    if (singular && !field.oneof && WRAPPERS.has(desc.typeName)) return scalarWriter(desc.fields[0]!.scalar!);
    return (v) => this.writer(desc)(v as Msg);
  }

  #single(f: DescField): ValueWriter {
    if (f.fieldKind === 'message') return this.#messageValue(f, f.message, true);
    if (f.fieldKind === 'enum') return enumWriter(f.enum, this.#options.enumAsInteger);
    if (f.fieldKind === 'scalar') return scalarWriter(f.scalar);
    throw new Error(`unexpected field kind for ${f.name}`);
  }

  #listItem(f: DescField & { fieldKind: 'list' }): ValueWriter {
    if (f.listKind === 'message') return this.#messageValue(f, f.message, false);
    if (f.listKind === 'enum') return enumWriter(f.enum, this.#options.enumAsInteger);
    return scalarWriter(f.scalar);
  }

  #mapValue(f: DescField & { fieldKind: 'map' }): ValueWriter {
    if (f.mapKind === 'message') return this.#messageValue(f, f.message, false);
    if (f.mapKind === 'enum') return enumWriter(f.enum, this.#options.enumAsInteger);
    return scalarWriter(f.scalar);
  }
}

const TIMESTAMP_MS_MIN = -62135596800000, TIMESTAMP_MS_MAX = 253402300799000;

/**
 * google.protobuf.Timestamp as @bufbuild's toJson writes it (same range checks and messages, same 0/3/6/9 fraction
 * digits), without its JSON tree and second stringify: it was the costliest part of rendering a typical response.
 */
function timestampJson(m: Msg): string {
  const ms = Number(m.seconds) * 1000;
  const nanos = m.nanos as number;
  const type = 'google.protobuf.Timestamp';
  if (ms < TIMESTAMP_MS_MIN || ms > TIMESTAMP_MS_MAX) {
    throw new Error(`cannot encode message ${type} to JSON: must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z inclusive`);
  }
  if (nanos < 0) throw new Error(`cannot encode message ${type} to JSON: nanos must not be negative`);
  if (nanos > 999999999) throw new Error(`cannot encode message ${type} to JSON: nanos must not be greater than 999999999`);
  const iso = new Date(ms).toISOString(); // always ends in ".000Z": the seconds are whole
  if (nanos === 0) return '"' + iso.slice(0, -5) + 'Z"';
  const digits = String(nanos + 1000000000).slice(1);
  const frac = digits.endsWith('000000') ? digits.slice(0, 3) : digits.endsWith('000') ? digits.slice(0, 6) : digits;
  return '"' + iso.slice(0, -5) + '.' + frac + 'Z"';
}

const WRAPPERS = new Set([
  'google.protobuf.DoubleValue', 'google.protobuf.FloatValue', 'google.protobuf.Int64Value', 'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value', 'google.protobuf.UInt32Value', 'google.protobuf.BoolValue', 'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);

const IMPLICIT = 2; // FieldPresence.IMPLICIT in @bufbuild's descriptor model

/** The zero value of an implicit-presence field, as @bufbuild's isFieldSet judges it (-0.0 is not zero). */
function zeroTest(f: DescField): (v: unknown) => boolean {
  if (f.fieldKind === 'enum') {
    const zero = f.enum.values[0]!.number;
    return (v) => v === zero;
  }
  return f.fieldKind === 'scalar' ? scalarZeroTest(f.scalar) : () => false;
}

/** The zero value of a scalar as @bufbuild's isFieldSet judges it (-0.0 is not zero). */
export function scalarZeroTest(t: ScalarType): (v: unknown) => boolean {
  switch (t) {
    case ScalarType.BOOL: return (v) => v === false;
    case ScalarType.STRING: return (v) => v === '';
    case ScalarType.BYTES: return (v) => (v as Uint8Array).byteLength === 0;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: return (v) => Object.is(v, 0);
    // Loose comparison: 0, 0n and "0" (64-bit fields with jstype = JS_STRING).
    default: return (v) => v == 0;
  }
}

/** An enum value: its name (the first declared one for an aliased number), or the number when unknown or asked. */
export function enumWriter(e: DescEnum, asInteger: boolean): ValueWriter {
  if (e.typeName === 'google.protobuf.NullValue') return () => 'null';
  if (asInteger) return (v) => String(v);
  const names = new Map<number, string>();
  for (const v of e.values) if (!names.has(v.number)) names.set(v.number, JSON.stringify(v.name));
  return (v) => names.get(v as number) ?? String(v);
}

/** What JSON.stringify would escape in a string: quote, backslash, controls, surrogates (paired or lone). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

export function scalarWriter(t: ScalarType): ValueWriter {
  switch (t) {
    case ScalarType.STRING:
      // Most strings need no escaping: quoting them directly is ~3x cheaper than JSON.stringify.
      return (v) => (NEEDS_ESCAPE.test(v as string) ? JSON.stringify(v) : '"' + (v as string) + '"');
    case ScalarType.BOOL:
      return (v) => (v ? 'true' : 'false');
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return (v) => '"' + String(v) + '"';
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return (v) => {
        const n = v as number;
        if (Number.isFinite(n)) return JSON.stringify(n);
        return Number.isNaN(n) ? '"NaN"' : n > 0 ? '"Infinity"' : '"-Infinity"';
      };
    case ScalarType.BYTES:
      return (v) => {
        const b = v as Uint8Array;
        return '"' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64') + '"';
      };
    default:
      return (v) => String(v);
  }
}
