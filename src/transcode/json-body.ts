/**
 * JSON text -> value with our limits, and the explanation of a rejected value.
 *
 * The codec (@bufbuild/protobuf fromJson) decodes the happy path. When it rejects a value, its message names the
 * message type and field ("cannot decode field testpb.Nested.value from JSON: ...") but not where in the request
 * the value sits. `explain` then walks the JSON alongside the descriptors, re-trying one member at a time, to name
 * the field by its proto path ("nested.child.value", "items[2]", "labels[\"k\"]") and the problem in our words.
 * That walk runs only on the error path.
 */
import { ScalarType, fromJson, type DescField, type DescMessage, type JsonValue, type Registry } from '@bufbuild/protobuf';
import { invalidArgument, type GatewayError } from '../errors/index.ts';
import { codecReason, elementLabel, hasCustomJson, jsonValueProblem, leafOf, typeLabel } from './fields.ts';

const OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d, OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;

/**
 * Parses JSON text. The nesting depth is checked by a flat scan before JSON.parse runs, so a hostile body is
 * refused without building it; duplicate object keys (which JSON.parse would silently collapse, dropping data)
 * are found by the same scan and rejected after the syntax check.
 */
export function parseJson(text: string, maxDepth: number, what: string, lossy?: Set<number>): JsonValue {
  const duplicate = scan(text, maxDepth, what, lossy);
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (err) {
    throw invalidArgument(`${what} is not valid JSON: ${(err as Error).message}`, err);
  }
  if (duplicate !== undefined) throw invalidArgument(`${what} has the key ${JSON.stringify(duplicate)} twice in one object`);
  return value;
}

/** Returns the first duplicate key, throws on excess depth. Tolerates malformed input (JSON.parse judges it). */
function scan(text: string, maxDepth: number, what: string, lossy: Set<number> | undefined): string | undefined {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  let duplicate: string | undefined;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Jump from quote to quote (indexOf is far faster than a char loop); a quote preceded by an odd run of
      // backslashes is escaped and does not end the string.
      const start = i + 1;
      let end = text.indexOf('"', start);
      while (end !== -1 && isEscaped(text, end)) end = text.indexOf('"', end + 1);
      i = end === -1 ? n : end;
      const keys = stack.length > 0 ? stack[stack.length - 1] : null;
      if (expectKey && keys && duplicate === undefined) {
        let key = text.slice(start, i);
        if (key.includes('\\')) {
          try { key = JSON.parse(text.slice(start - 1, i + 1)) as string; } catch { /* malformed: JSON.parse reports it */ }
        }
        if (keys.has(key)) duplicate = key;
        else keys.add(key);
      }
      expectKey = false;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (stack.length >= maxDepth) throw invalidArgument(`${what} nests deeper than ${maxDepth} levels`);
      stack.push(c === OPEN_BRACE ? new Set() : null);
      expectKey = c === OPEN_BRACE;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      stack.pop();
      expectKey = false;
    } else if (c === COMMA) {
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    } else if (c === COLON) {
      expectKey = false;
    } else if ((c >= 0x30 && c <= 0x39) || c === 0x2d) {
      let end = i + 1;
      while (end < n && isNumberChar(text.charCodeAt(end))) end++;
      // 2^53 has 16 digits: shorter integer literals are always exact. Longer ones that a double cannot hold are
      // rounded by JSON.parse without a trace; remembered here so that one landing in a 64-bit integer field (an id
      // changing silently) is refused. In a double field the rounding is what the JSON mapping means.
      if (lossy && end - i >= 16) {
        const rounded = roundedInteger(text.slice(i, end));
        if (rounded !== undefined) lossy.add(rounded);
      }
      i = end - 1;
    }
  }
  return duplicate;
}

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

/** The double an integer literal parses to, when that double is not the literal's exact value. */
function roundedInteger(token: string): number | undefined {
  if (!/^-?\d+$/.test(token)) return undefined;
  const n = Number(token);
  return Number.isFinite(n) && BigInt(n) === BigInt(token) ? undefined : n;
}

const INT64_KINDS = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);
const INT64_WRAPPERS = new Set(['google.protobuf.Int64Value', 'google.protobuf.UInt64Value']);

/**
 * The proto path of a 64-bit integer field holding one of the rounded numbers, if any. Runs only when the scan saw a
 * lossy literal, so the common request pays nothing.
 */
export function findRounded64(desc: DescMessage, json: JsonValue, rounded: ReadonlySet<number>,
  index: Map<DescMessage, Map<string, DescField>>, path = ''): string | undefined {
  const hit = (v: JsonValue): boolean => typeof v === 'number' && rounded.has(v);
  if (INT64_WRAPPERS.has(desc.typeName)) return hit(json) ? path : undefined;
  if (hasCustomJson(desc) || !isObject(json)) return undefined;
  const fields = index.get(desc);
  for (const key of Object.keys(json)) {
    const field = fields?.get(key);
    if (!field) continue;
    const v = json[key]!;
    const p = join(path, field.name);
    if (field.fieldKind === 'scalar') {
      if (INT64_KINDS.has(field.scalar) && hit(v)) return p;
    } else if (field.fieldKind === 'message') {
      const found = findRounded64(field.message, v, rounded, index, p);
      if (found) return found;
    } else if (field.fieldKind === 'list' && Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (field.listKind === 'scalar' && INT64_KINDS.has(field.scalar) && hit(v[i]!)) return `${p}[${i}]`;
        if (field.listKind === 'message') {
          const found = findRounded64(field.message, v[i]!, rounded, index, `${p}[${i}]`);
          if (found) return found;
        }
      }
    } else if (field.fieldKind === 'map' && isObject(v)) {
      for (const k of Object.keys(v)) {
        if (field.mapKind === 'scalar' && INT64_KINDS.has(field.scalar) && hit(v[k]!)) return `${p}[${JSON.stringify(k)}]`;
        if (field.mapKind === 'message') {
          const found = findRounded64(field.message, v[k]!, rounded, index, `${p}[${JSON.stringify(k)}]`);
          if (found) return found;
        }
      }
    }
  }
  return undefined;
}

function isEscaped(text: string, quoteAt: number): boolean {
  let backslashes = 0;
  for (let j = quoteAt - 1; text.charCodeAt(j) === BACKSLASH; j--) backslashes++;
  return backslashes % 2 === 1;
}

export interface ExplainContext {
  registry: Registry;
  ignoreUnknownFields: boolean;
  index: Map<DescMessage, Map<string, DescField>>;
}

/** The 400 for a value the codec rejected, naming the field by proto path. */
export function explain(root: DescMessage, json: JsonValue, err: unknown, ctx: ExplainContext): GatewayError {
  let found: string | undefined;
  try {
    found = explainMessage(root, json, '', ctx);
  } catch {
    found = undefined; // the explanation is best effort; never let it mask the original error
  }
  return invalidArgument(found ?? `invalid request: ${codecReason(err)}`, err);
}

function join(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

function isObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether the codec accepts `value` for this one field of `parent` (parsed on its own). */
function accepts(parent: DescMessage, field: DescField, value: JsonValue, ctx: ExplainContext): unknown {
  try {
    fromJson(parent, { [field.name]: value }, { registry: ctx.registry, ignoreUnknownFields: ctx.ignoreUnknownFields });
    return undefined;
  } catch (err) {
    return err;
  }
}

function explainMessage(desc: DescMessage, json: JsonValue, path: string, ctx: ExplainContext): string | undefined {
  const where = path === '' ? 'the request body' : `field "${path}"`;
  if (hasCustomJson(desc)) {
    try {
      fromJson(desc, json, { registry: ctx.registry, ignoreUnknownFields: ctx.ignoreUnknownFields });
      return undefined;
    } catch (err) {
      return `invalid value for ${where} (${desc.typeName}): ${codecReason(err)}`;
    }
  }
  if (!isObject(json)) return `invalid value for ${where} (${desc.typeName}): expected a JSON object`;
  const index = ctx.index.get(desc);
  const seen = new Map<DescField, string>();
  const oneofs = new Map<string, DescField>();
  for (const key of Object.keys(json)) {
    const field = index?.get(key);
    if (!field) {
      if (ctx.ignoreUnknownFields) continue;
      return `unknown field "${join(path, key)}" (${desc.typeName} has no field named "${key}")`;
    }
    const p = join(path, field.name);
    const prior = seen.get(field);
    if (prior !== undefined) return `field "${p}" is set twice, as "${prior}" and "${key}"`;
    seen.set(field, key);
    const value = json[key];
    if (field.oneof && !(value === null && field.fieldKind === 'scalar')) {
      const other = oneofs.get(field.oneof.name);
      if (other) return `fields "${join(path, other.name)}" and "${p}" are both set, but they belong to oneof "${field.oneof.name}"`;
      oneofs.set(field.oneof.name, field);
    }
    const err = accepts(desc, field, value, ctx);
    if (err === undefined) continue;
    return explainField(desc, field, value, p, ctx) ?? `invalid value for field "${p}" (${typeLabel(field)}): ${codecReason(err)}`;
  }
  return undefined;
}

function explainField(parent: DescMessage, field: DescField, value: JsonValue, p: string, ctx: ExplainContext): string | undefined {
  if (field.fieldKind === 'message') return explainMessage(field.message, value, p, ctx);
  if (field.fieldKind === 'scalar' || field.fieldKind === 'enum') return explainLeaf(field, value, p, typeLabel(field));
  if (field.fieldKind === 'list') {
    if (!Array.isArray(value)) return `invalid value for field "${p}" (${typeLabel(field)}): expected a JSON array`;
    for (let i = 0; i < value.length; i++) {
      if (accepts(parent, field, [value[i]], ctx) === undefined) continue;
      const ep = `${p}[${i}]`;
      if (value[i] === null) return `invalid value for field "${ep}" (${elementLabel(field)}): a list element may not be null`;
      if (field.listKind === 'message') return explainMessage(field.message, value[i], ep, ctx);
      return explainLeaf(field, value[i], ep, elementLabel(field));
    }
    return undefined;
  }
  if (!isObject(value)) return `invalid value for field "${p}" (${typeLabel(field)}): expected a JSON object`;
  for (const k of Object.keys(value)) {
    const v = value[k];
    if (accepts(parent, field, { [k]: v }, ctx) === undefined) continue;
    const ep = `${p}[${JSON.stringify(k)}]`;
    const keyProblem = jsonValueProblem({ kind: 'scalar', scalar: field.mapKey }, field.mapKey === ScalarType.STRING ? k : mapKeyAsJson(k));
    if (keyProblem) return `invalid map key for field "${p}" (${typeLabel(field)}): ${keyProblem}`;
    if (v === null && !(field.mapKind === 'message' && field.message.typeName === 'google.protobuf.Value')) {
      return `invalid value for field "${ep}" (${elementLabel(field)}): a map value may not be null`;
    }
    if (field.mapKind === 'message') return explainMessage(field.message, v, ep, ctx);
    return explainLeaf(field, v, ep, elementLabel(field));
  }
  return undefined;
}

/** Map keys are always JSON strings; bool keys must read "true"/"false", numeric keys a number. */
function mapKeyAsJson(k: string): JsonValue {
  if (k === 'true' || k === 'false') return k === 'true';
  return k;
}

function explainLeaf(field: DescField, value: JsonValue, p: string, label: string): string | undefined {
  const leaf = leafOf(field);
  const problem = leaf ? jsonValueProblem(leaf, value) : undefined;
  return problem ? `invalid value for field "${p}" (${label}): ${problem}` : undefined;
}
