/**
 * protobufjs reflection -> google.protobuf.FileDescriptorProto, one per source file, in dependency order.
 *
 * Why: protobufjs parses .proto text well, but its JSON codec is not the proto3 JSON mapping. @bufbuild/protobuf
 * is conformant and fast, but needs descriptors. protobufjs' own `toDescriptor()` groups by package (losing files
 * and imports) and leaks options, so we write the descriptors ourselves, the way protoc would, from the resolved
 * reflection tree. Only what changes encoding or JSON is carried over (types, labels, packed, json_name,
 * proto3 optional, map entries, oneofs, proto2 defaults); options such as google.api.http are read elsewhere.
 */
import pb from 'protobufjs';
import { create, type DescFile } from '@bufbuild/protobuf';
import {
  type DescriptorProto,
  DescriptorProtoSchema,
  type EnumDescriptorProto,
  EnumDescriptorProtoSchema,
  type FieldDescriptorProto,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as FieldType,
  FieldDescriptorProtoSchema,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  file_google_protobuf_any,
  file_google_protobuf_api,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_source_context,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_type,
  file_google_protobuf_wrappers,
} from '@bufbuild/protobuf/wkt';
import { StartupError } from '../errors/index.ts';

/** The well-known types come from @bufbuild/protobuf itself: canonical, and what its JSON codec special-cases. */
export const WELL_KNOWN_FILES: readonly DescFile[] = [
  file_google_protobuf_descriptor,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_source_context,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_type,
  file_google_protobuf_wrappers,
  file_google_protobuf_api,
];

const SCALAR_TYPES: Record<string, FieldType> = {
  double: FieldType.DOUBLE,
  float: FieldType.FLOAT,
  int64: FieldType.INT64,
  uint64: FieldType.UINT64,
  int32: FieldType.INT32,
  fixed64: FieldType.FIXED64,
  fixed32: FieldType.FIXED32,
  bool: FieldType.BOOL,
  string: FieldType.STRING,
  bytes: FieldType.BYTES,
  uint32: FieldType.UINT32,
  sfixed32: FieldType.SFIXED32,
  sfixed64: FieldType.SFIXED64,
  sint32: FieldType.SINT32,
  sint64: FieldType.SINT64,
};

export interface ConvertInput {
  root: pb.Root;
  /** absolute path protobufjs loaded -> the name it is imported by ("google/api/http.proto") */
  logicalName(absPath: string): string;
}

/** Converts every file protobufjs loaded into FileDescriptorProtos, dependencies first. */
export function toFileDescriptors(input: ConvertInput): FileDescriptorProto[] {
  const wktFileOfType = new Map<string, string>();
  const wktNames = new Set<string>();
  for (const f of WELL_KNOWN_FILES) {
    wktNames.add(f.name + '.proto');
    for (const m of f.messages) wktFileOfType.set(m.typeName, f.name + '.proto');
    for (const e of f.enums) wktFileOfType.set(e.typeName, f.name + '.proto');
  }

  const files = new Map<string, FileBuilder>();
  const fileOf = (obj: pb.ReflectionObject): string => {
    const full = obj.fullName.slice(1);
    const wkt = wktFileOfType.get(full);
    if (wkt) return wkt;
    let top: pb.ReflectionObject = obj;
    while (top.parent && (top.parent instanceof pb.Type)) top = top.parent;
    if (!top.filename) {
      throw new StartupError(`protos: type ${full} has no source file (a protobufjs built-in that is not a well-known type)`);
    }
    return input.logicalName(top.filename);
  };
  const builder = (name: string, pkg: string, syntax: string): FileBuilder => {
    let b = files.get(name);
    if (!b) {
      b = new FileBuilder(name, pkg, syntax, fileOf);
      files.set(name, b);
    } else if (b.pkg !== pkg) {
      throw new StartupError(`protos: ${name} declares types in two packages (${b.pkg}, ${pkg})`);
    }
    return b;
  };

  const walk = (ns: pb.NamespaceBase, pkg: string): void => {
    for (const obj of ns.nestedArray) {
      if (obj instanceof pb.Type || obj instanceof pb.Enum || obj instanceof pb.Service) {
        const name = fileOf(obj);
        if (wktNames.has(name)) continue;
        const syntax = fileSyntax(obj, name);
        const b = builder(name, pkg, syntax);
        if (obj instanceof pb.Type) b.proto.messageType.push(b.message(obj));
        else if (obj instanceof pb.Enum) b.proto.enumType.push(enumProto(obj));
        else b.service(obj);
      } else if (obj instanceof pb.Namespace) {
        walk(obj, pkg ? `${pkg}.${obj.name}` : obj.name);
      }
      // Extension declarations (pb.Field at namespace level) are not carried over: the gateway reads the one
      // it needs (google.api.http) from protobufjs directly.
    }
  };
  walk(input.root, '');

  // Topological order: bufbuild resolves type names against files added before.
  const out: FileDescriptorProto[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    const st = state.get(name);
    if (st === 'done') return;
    if (st === 'visiting') throw new StartupError(`protos: import cycle: ${[...chain, name].join(' -> ')}`);
    state.set(name, 'visiting');
    const b = files.get(name);
    if (b) {
      for (const dep of b.proto.dependency) visit(dep, [...chain, name]);
      out.push(b.proto);
    }
    state.set(name, 'done');
  };
  for (const name of [...files.keys()].sort()) visit(name, []);
  return out;
}

function fileSyntax(obj: pb.ReflectionObject, file: string): string {
  const edition = (obj as unknown as { _edition?: string | null })._edition;
  if (edition === 'proto3' || edition === 'proto2' || edition == null) return edition ?? 'proto2';
  throw new StartupError(
    `protos: ${file} uses edition ${edition}; protogate supports syntax "proto2" and "proto3" files. ` +
      'Fix: compile it to a descriptor set (buf build -o x.binpb) and list that in protos.files instead.',
  );
}

class FileBuilder {
  readonly proto: FileDescriptorProto;
  readonly pkg: string;
  readonly #fileOf: (obj: pb.ReflectionObject) => string;
  readonly #deps = new Set<string>();

  constructor(name: string, pkg: string, syntax: string, fileOf: (obj: pb.ReflectionObject) => string) {
    this.pkg = pkg;
    this.#fileOf = fileOf;
    this.proto = create(FileDescriptorProtoSchema, { name, package: pkg, syntax: syntax === 'proto2' ? '' : syntax });
  }

  #ref(obj: pb.ReflectionObject): string {
    const file = this.#fileOf(obj);
    if (file !== this.proto.name && !this.#deps.has(file)) {
      this.#deps.add(file);
      this.proto.dependency.push(file);
    }
    return obj.fullName;
  }

  message(type: pb.Type): DescriptorProto {
    const proto3 = this.proto.syntax === 'proto3';
    const msg = create(DescriptorProtoSchema, { name: type.name });
    // Real oneofs first, synthetic ones (proto3 `optional`) last, as protoc orders them.
    const oneofs = [...type.oneofsArray].sort((a, b) => Number(isSynthetic(a)) - Number(isSynthetic(b)));
    const oneofIndex = new Map<pb.OneOf, number>();
    for (const o of oneofs) {
      oneofIndex.set(o, msg.oneofDecl.length);
      msg.oneofDecl.push({ $typeName: 'google.protobuf.OneofDescriptorProto', name: o.name });
    }
    for (const f of type.fieldsArray) {
      if (f instanceof pb.MapField) {
        const entryName = mapEntryName(f.name);
        const entry = create(DescriptorProtoSchema, { name: entryName, options: { mapEntry: true } });
        const key = this.#scalarOrRef('key', 1, f.keyType, null, Label.OPTIONAL);
        const value = this.#scalarOrRef('value', 2, f.type, f.resolvedType, Label.OPTIONAL);
        key.jsonName = 'key';
        value.jsonName = 'value';
        entry.field.push(key, value);
        msg.nestedType.push(entry);
        const field = create(FieldDescriptorProtoSchema, {
          name: f.name,
          number: f.id,
          label: Label.REPEATED,
          type: FieldType.MESSAGE,
          typeName: `${type.fullName}.${entryName}`,
        });
        setJsonName(field, f);
        msg.field.push(field);
        continue;
      }
      const label = f.repeated ? Label.REPEATED : f.required ? Label.REQUIRED : Label.OPTIONAL;
      const field = this.#scalarOrRef(f.name, f.id, f.type, f.resolvedType, label);
      setJsonName(field, f);
      if (f.partOf) {
        field.oneofIndex = oneofIndex.get(f.partOf) ?? 0;
        if (isSynthetic(f.partOf)) field.proto3Optional = true;
      }
      if (f.repeated && field.type !== FieldType.MESSAGE && field.type !== FieldType.STRING &&
          field.type !== FieldType.BYTES && field.type !== FieldType.GROUP) {
        // proto3 packs by default, proto2 does not: record only the deviation, as protoc does.
        const packed = f.packed;
        if (proto3 && !packed) field.options = { $typeName: 'google.protobuf.FieldOptions', packed: false } as never;
        if (!proto3 && packed) field.options = { $typeName: 'google.protobuf.FieldOptions', packed: true } as never;
      }
      const def = f.options?.['default'];
      if (!proto3 && def !== undefined && !f.repeated) field.defaultValue = defaultValueText(def, field.type);
      if (field.type === FieldType.MESSAGE && (f.resolvedType as unknown as { group?: boolean } | null)?.group) field.type = FieldType.GROUP;
      msg.field.push(field);
    }
    for (const nested of type.nestedArray) {
      if (nested instanceof pb.Type) msg.nestedType.push(this.message(nested));
      else if (nested instanceof pb.Enum) msg.enumType.push(enumProto(nested));
    }
    return msg;
  }

  #scalarOrRef(name: string, id: number, typeName: string, resolved: pb.ReflectionObject | null,
    label: Label): FieldDescriptorProto {
    const field = create(FieldDescriptorProtoSchema, { name, number: id, label });
    const scalar = SCALAR_TYPES[typeName];
    if (scalar !== undefined && !resolved) {
      field.type = scalar;
    } else if (resolved instanceof pb.Enum) {
      field.type = FieldType.ENUM;
      field.typeName = this.#ref(resolved);
    } else if (resolved instanceof pb.Type) {
      field.type = FieldType.MESSAGE;
      field.typeName = this.#ref(resolved);
    } else {
      throw new StartupError(`protos: ${this.proto.name}: field ${name} has unresolved type ${typeName}`);
    }
    return field;
  }

  service(svc: pb.Service): void {
    this.proto.service.push({
      $typeName: 'google.protobuf.ServiceDescriptorProto',
      name: svc.name,
      method: svc.methodsArray.map((m) => {
        m.resolve();
        return {
          $typeName: 'google.protobuf.MethodDescriptorProto' as const,
          name: m.name,
          inputType: this.#ref(m.resolvedRequestType as pb.Type),
          outputType: this.#ref(m.resolvedResponseType as pb.Type),
          clientStreaming: Boolean(m.requestStream),
          serverStreaming: Boolean(m.responseStream),
        };
      }),
    } as never);
  }
}

function enumProto(e: pb.Enum): EnumDescriptorProto {
  const proto = create(EnumDescriptorProtoSchema, { name: e.name });
  const seen = new Set<number>();
  let alias = false;
  for (const [name, number] of Object.entries(e.values)) {
    if (seen.has(number)) alias = true;
    seen.add(number);
    proto.value.push({ $typeName: 'google.protobuf.EnumValueDescriptorProto', name, number } as never);
  }
  if (alias) proto.options = { $typeName: 'google.protobuf.EnumOptions', allowAlias: true } as never;
  return proto;
}

function isSynthetic(o: pb.OneOf): boolean {
  return o.fieldsArray.length === 1 && o.fieldsArray[0]?.options?.['proto3_optional'] === true;
}

/** protoc always fills json_name (and bufbuild relies on it): the explicit option, else ToJsonName(name). */
function setJsonName(field: FieldDescriptorProto, f: pb.Field): void {
  const explicit = f.options?.['json_name'];
  field.jsonName = typeof explicit === 'string' && explicit !== '' ? explicit : toJsonName(f.name);
}

function toJsonName(name: string): string {
  let out = '';
  let upper = false;
  for (const ch of name) {
    if (ch === '_') { upper = true; continue; }
    out += upper ? ch.toUpperCase() : ch;
    upper = false;
  }
  return out;
}

/** protoc: "foo_bar" -> "FooBarEntry" */
function mapEntryName(fieldName: string): string {
  let out = '';
  let upper = true;
  for (const ch of fieldName) {
    if (ch === '_') { upper = true; continue; }
    out += upper ? ch.toUpperCase() : ch;
    upper = false;
  }
  return out + 'Entry';
}

function defaultValueText(value: unknown, type: FieldType | undefined): string {
  if (type === FieldType.FLOAT || type === FieldType.DOUBLE) {
    if (value === Infinity) return 'inf';
    if (value === -Infinity) return '-inf';
    if (typeof value === 'number' && Number.isNaN(value)) return 'nan';
  }
  return String(value);
}
