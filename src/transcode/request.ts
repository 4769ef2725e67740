/**
 * HTTP request (path variables, query string, body) -> binary gRPC request message, per google/api/http.proto.
 *
 * compileRequest() resolves every field path, converter and body mode once per binding; transcode() assembles a
 * proto3 JSON object from the three sources and decodes it with @bufbuild/protobuf (conformant), so a body and a
 * query/path value reach the message through the same, single JSON mapping. The common case skips the codec's
 * message objects (json-binary.ts writes the same bytes in one walk) and falls back to it whenever unsure.
 *
 * Precedence, as grpc-gateway (it decodes the body, then sets path parameters over it, then filters query
 * parameters that name path-bound or body fields):
 *   path variable  >  body  >  query.
 * A body member naming a path-bound field is overwritten by the path value; a query parameter naming a
 * path-bound field, the body field, or anything below them is not applied (an "unknown" parameter).
 */
import { create, fromJson, toBinary, type DescField, type DescMessage, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { GatewayError, invalidArgument, StartupError } from '../errors/index.ts';
import type { HttpRule, MethodInfo } from '../proto/load.ts';
import { compileConverter, hasCustomJson, HTTP_BODY, indexFields, leafOf, typeLabel, ValueProblem, type Converter } from './fields.ts';
import { explain, findRounded64, parseJson } from './json-body.ts';
import { compileFastEncoder } from './json-binary.ts';
import { QueryMapper, type JsonObject } from './query.ts';

export interface RequestOptions {
  /** Query parameters naming no field: 'ignore' (default, as grpc-gateway and Envoy) or 'reject' (400). */
  unknownQueryParams: 'ignore' | 'reject';
  /** Body members naming no field: 'reject' (default: never drop data silently) or 'ignore'. */
  unknownBodyFields: 'reject' | 'ignore';
  /** Deepest nesting of arrays/objects accepted in a JSON body (default 64). */
  maxJsonDepth: number;
}

export const DEFAULT_REQUEST_OPTIONS: RequestOptions = { unknownQueryParams: 'ignore', unknownBodyFields: 'reject', maxJsonDepth: 64 };

export interface RequestInput {
  params: ReadonlyArray<{ fieldPath: readonly string[]; value: string }>;
  /** Raw query string without '?', maybe ''. */
  query: string;
  body: Buffer | undefined;
  contentType: string | undefined;
}

export interface RequestTranscoder {
  transcode(input: RequestInput): Uint8Array;
}

interface PathBinding {
  fields: DescField[];
  label: string;
  convert: Converter;
}

type BodyMode =
  | { kind: 'none' }
  | { kind: 'json-root' }
  | { kind: 'json-field'; field: DescField }
  | { kind: 'httpbody-root' }
  | { kind: 'httpbody-field'; field: DescField };

export function compileRequest(
  method: MethodInfo,
  rule: HttpRule,
  pathVariables: ReadonlyArray<readonly string[]>,
  registry: FileRegistry,
  options: RequestOptions,
): RequestTranscoder {
  const where = `${method.service}.${method.name} (${method.file}), binding ${rule.method} ${rule.pattern}`;
  const input = method.input;
  const index = indexFields(input);
  const bindings = new Map<string, PathBinding>();
  for (const segments of pathVariables) {
    bindings.set(segments.join('.'), compilePathVariable(input, segments, registry, where));
  }
  const body = compileBody(input, rule, where);
  const excluded: string[][] = [...bindings.values()].map((b) => b.fields.map((f) => f.name));
  if (body.kind === 'json-field' || body.kind === 'httpbody-field') excluded.push([body.field.name]);
  const star = body.kind === 'json-root' || body.kind === 'httpbody-root';
  const query = new QueryMapper(input, index, registry, {
    unknown: options.unknownQueryParams,
    closedReason: star ? 'the rule maps the whole body (body: "*"), so no field is set from the query' : undefined,
    excluded,
  });
  const httpBodyDesc = registry.getMessage(HTTP_BODY);
  const readOptions = {
    registry,
    ignoreUnknownFields: options.unknownBodyFields === 'ignore',
    // The codec's own guard counts messages; our scan already bounds the JSON nesting it can see.
    recursionLimit: Math.max(100, options.maxJsonDepth + 1),
  };
  const explainCtx = { registry, ignoreUnknownFields: readOptions.ignoreUnknownFields, index };
  // HttpBody requests carry raw bytes the JSON walk does not see: those always take the codec.
  const fast = body.kind === 'httpbody-root' || body.kind === 'httpbody-field' ? undefined : compileFastEncoder(input, registry);

  return {
    transcode(req: RequestInput): Uint8Array {
      let root: JsonObject = {};
      let rounded: Set<number> | undefined;
      if ((body.kind === 'json-root' || body.kind === 'json-field') && req.body !== undefined && req.body.length > 0) {
        const text = req.body.toString('utf8');
        if (text.trim() !== '') {
          rounded = new Set();
          const json = parseJson(text, options.maxJsonDepth, 'request body', rounded);
          if (body.kind === 'json-root') {
            if (json === null || typeof json !== 'object' || Array.isArray(json)) {
              throw invalidArgument(`the request body must be a JSON object (${input.typeName}), got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`);
            }
            root = json;
          } else {
            root[body.field.name] = json;
          }
        }
      }
      for (const p of req.params) {
        const b = bindings.get(p.fieldPath.join('.'));
        if (!b) continue; // the router only reports variables of this template; anything else is not ours to set
        let value: JsonValue;
        try {
          value = b.convert(p.value);
        } catch (err) {
          if (!(err instanceof ValueProblem)) throw err;
          throw invalidArgument(`invalid value for path variable "${p.fieldPath.join('.')}" (${b.label}): ${err.message}`);
        }
        setOverriding(root, b.fields, value);
      }
      query.apply(root, req.query);
      if (rounded !== undefined && rounded.size > 0) {
        const at = findRounded64(input, root, rounded, index);
        if (at !== undefined) {
          throw invalidArgument(`invalid value for field "${at}": a JSON number cannot carry this 64-bit integer exactly; send it as a string`);
        }
      }

      const encoded = fast?.(root);
      if (encoded !== undefined) return encoded;
      let message;
      try {
        message = fromJson(input, root, readOptions);
      } catch (err) {
        if (err instanceof GatewayError) throw err;
        throw explain(input, root, err, explainCtx);
      }
      if (body.kind === 'httpbody-root' || body.kind === 'httpbody-field') {
        const data = req.body === undefined ? new Uint8Array(0) : new Uint8Array(req.body.buffer, req.body.byteOffset, req.body.byteLength);
        const contentType = req.contentType ?? '';
        if (body.kind === 'httpbody-root') {
          const m = message as unknown as { contentType: string; data: Uint8Array };
          m.contentType = contentType;
          m.data = data;
        } else {
          setMessageField(message as unknown as Record<string, unknown>, body.field, create(httpBodyDesc!, { contentType, data }));
        }
      }
      return toBinary(input, message);
    },
  };
}

/** A path binding: a chain of singular messages ending in a non-repeated field with a scalar form. */
function compilePathVariable(input: DescMessage, segments: readonly string[], registry: FileRegistry, where: string): PathBinding {
  const fields: DescField[] = [];
  let desc: DescMessage = input;
  const shown = segments.join('.');
  for (let i = 0; i < segments.length; i++) {
    const f = desc.fields.find((x) => x.name === segments[i]) ?? desc.fields.find((x) => x.jsonName === segments[i]);
    if (!f) {
      throw new StartupError(`${where}: the path variable {${shown}} names no field: ${desc.typeName} has no field "${segments[i]}". ` +
        'Fix: use the proto field name of a field of the request message in the template.');
    }
    fields.push(f);
    if (i < segments.length - 1) {
      if (f.fieldKind !== 'message' || hasCustomJson(f.message)) {
        throw new StartupError(`${where}: the path variable {${shown}} goes through "${f.name}" (${typeLabel(f)}), which is not a message with fields. ` +
          'Fix: bind a field of a singular message field.');
      }
      desc = f.message;
    }
  }
  const last = fields[fields.length - 1];
  const leaf = last.fieldKind === 'list' || last.fieldKind === 'map' ? undefined : leafOf(last);
  if (!leaf) {
    throw new StartupError(`${where}: the path variable {${shown}} binds "${last.name}" (${typeLabel(last)}), which has no single-string form. ` +
      'Fix: google/api/http.proto allows path variables only on non-repeated fields of scalar type (or a well-known type with a string form).');
  }
  return { fields, label: typeLabel(last), convert: compileConverter(leaf, registry) };
}

function compileBody(input: DescMessage, rule: HttpRule, where: string): BodyMode {
  if (rule.body === '') return { kind: 'none' };
  if (rule.body === '*') return input.typeName === HTTP_BODY ? { kind: 'httpbody-root' } : { kind: 'json-root' };
  const field = input.fields.find((f) => f.name === rule.body);
  if (!field) {
    const hint = input.fields.find((f) => f.jsonName === rule.body);
    throw new StartupError(`${where}: body: "${rule.body}" names no field of ${input.typeName}. ` +
      (hint ? `Fix: write the proto field name, body: "${hint.name}".` : `Fix: use "*", "" or one of: ${input.fields.map((f) => f.name).join(', ')}.`));
  }
  if (field.fieldKind === 'message' && field.message.typeName === HTTP_BODY) return { kind: 'httpbody-field', field };
  return { kind: 'json-field', field };
}

/** Sets a path value into the body object, replacing whatever the body had there under either name. */
function setOverriding(root: JsonObject, fields: DescField[], value: JsonValue): void {
  let obj = root;
  for (let i = 0; i < fields.length - 1; i++) {
    const f = fields[i];
    const key = Object.hasOwn(obj, f.name) ? f.name : Object.hasOwn(obj, f.jsonName) ? f.jsonName : undefined;
    const next = key === undefined ? undefined : obj[key];
    if (next !== null && typeof next === 'object' && !Array.isArray(next)) {
      obj = next;
    } else {
      if (key !== undefined) delete obj[key];
      obj = obj[f.name] = {};
    }
  }
  const last = fields[fields.length - 1];
  if (last.jsonName !== last.name) delete obj[last.jsonName];
  obj[last.name] = value;
}

function setMessageField(message: Record<string, unknown>, field: DescField, value: unknown): void {
  if (field.oneof) message[field.oneof.localName] = { case: field.localName, value };
  else message[field.localName] = value;
}
