/**
 * Query parameters -> fields of the request message (google/api/http.proto: "any fields in the request message
 * which are not bound by the path template automatically become HTTP query parameters if there is no HTTP request
 * body"). Values are merged into the proto3 JSON object the request is decoded from.
 *
 * Decoding: application/x-www-form-urlencoded per WHATWG (URLSearchParams: `+` is a space, invalid percent
 * escapes stay literal). Keys: dotted field paths in proto or json_name spelling, `map[key]=value` for map
 * entries (as grpc-gateway). Repeated fields: one parameter per element (`a=1&a=2`); values are never split on
 * commas, as grpc-gateway does not (a comma is data: `a=1,2` is the single element "1,2", which an int field
 * rejects). A non-repeated field given twice is a 400. Converters and field tables are built in the constructor.
 */
import { type DescField, type DescMessage, type JsonValue, type Registry } from '@bufbuild/protobuf';
import { invalidArgument } from '../errors/index.ts';
import { compileConverter, hasCustomJson, leafLabel, leafOf, ValueProblem, type Converter, type Leaf } from './fields.ts';

export type JsonObject = { [k: string]: JsonValue };

export interface QueryMapperOptions {
  /** Parameters naming no field (or a field the path or body already sets): ignore (default) or 400. */
  unknown: 'ignore' | 'reject';
  /**
   * Why no parameter can apply at all (body "*": every field not bound by the path comes from the body);
   * undefined when parameters map to fields.
   */
  closedReason: string | undefined;
  /** Field paths (proto names) set by the path template or the body: parameters at or below them do not apply. */
  excluded: ReadonlyArray<readonly string[]>;
}

interface CompiledLeaf {
  leaf: Leaf;
  convert: Converter;
}

export class QueryMapper {
  readonly #root: DescMessage;
  readonly #index: Map<DescMessage, Map<string, DescField>>;
  readonly #leaves = new Map<DescField, CompiledLeaf>();
  readonly #mapKeys = new Map<DescField, Converter>();
  readonly #options: QueryMapperOptions;

  constructor(root: DescMessage, index: Map<DescMessage, Map<string, DescField>>, registry: Registry, options: QueryMapperOptions) {
    this.#root = root;
    this.#index = index;
    this.#options = options;
    for (const fields of index.values()) {
      for (const f of fields.values()) {
        if (this.#leaves.has(f)) continue;
        const leaf = leafOf(f);
        if (leaf) this.#leaves.set(f, { leaf, convert: compileConverter(leaf, registry) });
        if (f.fieldKind === 'map') this.#mapKeys.set(f, compileConverter({ kind: 'scalar', scalar: f.mapKey }, registry));
      }
    }
  }

  /** Sets every parameter of `query` into `target` (an object built from proto names only). */
  apply(target: JsonObject, query: string): void {
    if (query === '') return;
    const assigned = new Set<string>();
    for (const [key, value] of new URLSearchParams(query)) this.#one(target, key, value, assigned);
  }

  #unknown(key: string, why: string): void {
    if (this.#options.unknown === 'reject') throw invalidArgument(`unknown query parameter "${key}": ${why}`);
  }

  #one(target: JsonObject, key: string, value: string, assigned: Set<string>): void {
    if (this.#options.closedReason !== undefined) return this.#unknown(key, this.#options.closedReason);
    let name = key;
    let mapKey: string | undefined;
    const bracket = key.indexOf('[');
    if (bracket > 0 && key.endsWith(']')) {
      name = key.slice(0, bracket);
      mapKey = key.slice(bracket + 1, -1);
    }
    const segments = name.split('.');
    const fields: DescField[] = [];
    let desc = this.#root;
    for (let i = 0; i < segments.length; i++) {
      const f = this.#index.get(desc)?.get(segments[i]);
      if (!f) return this.#unknown(key, `${desc.typeName} has no field "${segments[i]}"`);
      fields.push(f);
      if (i === segments.length - 1) break;
      if (f.fieldKind !== 'message') {
        if (f.fieldKind === 'list' || f.fieldKind === 'map') {
          throw invalidArgument(`query parameter "${key}": "${segments.slice(0, i + 1).join('.')}" is a ${f.fieldKind === 'map' ? 'map' : 'repeated'} field; its elements' fields cannot be set from the query`);
        }
        return this.#unknown(key, `${f.name} is a ${f.fieldKind} field and has no fields of its own`);
      }
      if (hasCustomJson(f.message)) {
        throw invalidArgument(`query parameter "${key}": ${f.message.typeName} is set as a whole (use "${segments.slice(0, i + 1).join('.')}=<value>")`);
      }
      desc = f.message;
    }
    if (this.#isExcluded(fields)) return this.#unknown(key, 'the field is bound by the URL path or the request body');

    const field = fields[fields.length - 1];
    const compiled = this.#leaves.get(field);
    if (mapKey !== undefined) {
      if (field.fieldKind !== 'map') throw invalidArgument(`query parameter "${key}": "${name}" is not a map field`);
      if (!compiled) throw invalidArgument(`query parameter "${key}": map values of type ${field.message!.typeName} have no query form`);
      const k = this.#convert(key, this.#mapKeys.get(field)!, { kind: 'scalar', scalar: field.mapKey }, mapKey, 'map key');
      const obj = this.#container(target, fields);
      const jsonKey = String(k);
      if (Object.hasOwn(obj, jsonKey)) throw invalidArgument(`query parameter "${key}" is given more than once`);
      obj[jsonKey] = this.#convert(key, compiled.convert, compiled.leaf, value, 'value');
      return;
    }
    if (field.fieldKind === 'map') throw invalidArgument(`query parameter "${key}": "${name}" is a map; set entries with ${name}[key]=value`);
    if (!compiled) {
      const fix = hasCustomJson(field.message!) ? 'it can only be set in a JSON body' : `set its fields with "${name}.<field>"`;
      throw invalidArgument(`query parameter "${key}": field "${fields.map((f) => f.name).join('.')}" is a ${field.message!.typeName}, which has no query form; ${fix}`);
    }
    const converted = this.#convert(key, compiled.convert, compiled.leaf, value, 'value');
    const obj = this.#container(target, fields);
    if (field.fieldKind === 'list') {
      const list = (obj[field.name] ??= []) as JsonValue[];
      list.push(converted);
      return;
    }
    const path = fields.map((f) => f.name).join('.');
    if (assigned.has(path)) throw invalidArgument(`query parameter "${key}" is given more than once, but "${path}" is not a repeated field`);
    assigned.add(path);
    obj[field.name] = converted;
  }

  #convert(key: string, convert: Converter, leaf: Leaf, raw: string, what: string): JsonValue {
    try {
      return convert(raw);
    } catch (err) {
      if (!(err instanceof ValueProblem)) throw err;
      throw invalidArgument(`invalid ${what} for query parameter "${key}" (${leafLabel(leaf)}): ${err.message}`);
    }
  }

  /** The object that holds the last field of `fields`, creating intermediate objects. */
  #container(target: JsonObject, fields: DescField[]): JsonObject {
    let obj = target;
    for (let i = 0; i < fields.length - 1; i++) {
      const name = fields[i].name;
      const next = obj[name];
      obj = (next !== null && typeof next === 'object' && !Array.isArray(next) ? next : (obj[name] = {})) as JsonObject;
    }
    const last = fields[fields.length - 1];
    if (last.fieldKind === 'map') {
      const m = obj[last.name];
      return (m !== null && typeof m === 'object' && !Array.isArray(m) ? m : (obj[last.name] = {})) as JsonObject;
    }
    return obj;
  }

  #isExcluded(fields: DescField[]): boolean {
    outer: for (const ex of this.#options.excluded) {
      if (ex.length > fields.length) continue;
      for (let i = 0; i < ex.length; i++) if (ex[i] !== fields[i].name) continue outer;
      return true;
    }
    return false;
  }
}
