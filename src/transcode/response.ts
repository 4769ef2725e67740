/**
 * Binary gRPC response message -> HTTP response body, per google/api/http.proto (`response_body`) and the proto3
 * JSON mapping; server streams as newline-delimited JSON (`{"result": ...}` per message, as grpc-gateway) or, for
 * google.api.HttpBody streams, the raw `data` of each message.
 */
import { create, fromBinary, toJson, type DescField, type DescMessage, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { StartupError } from '../errors/index.ts';
import type { HttpRule, MethodInfo } from '../proto/load.ts';
import { HTTP_BODY } from './fields.ts';
import { JsonWriters } from './json-writer.ts';
import { compileWireJson } from './wire-json.ts';

export interface ResponseOptions {
  /** Emit fields with default values (proto3 JSON "emit unpopulated"). */
  emitUnpopulated: boolean;
  /** Use proto field names instead of lowerCamelCase / json_name. */
  useProtoNames: boolean;
  /** Emit enum numbers instead of names. */
  enumsAsInts: boolean;
}

export const DEFAULT_RESPONSE_OPTIONS: ResponseOptions = { emitUnpopulated: false, useProtoNames: false, enumsAsInts: false };

export interface ResponseTranscoder {
  /** unary: the HTTP body + content type */
  body(message: Uint8Array): { body: string | Buffer; contentType: string };
  /** server streaming: one NDJSON line '{"result":...}\n' (or raw bytes for HttpBody streams) */
  streamChunk(message: Uint8Array): string | Buffer;
  /** Content type of a stream: application/x-ndjson, or for HttpBody streams the default before any message. */
  readonly streamContentType: string;
  /**
   * The content type to send for a stream whose first message is `first`: for HttpBody streams, that message's
   * content_type (default application/octet-stream); otherwise streamContentType.
   */
  streamContentTypeOf(first: Uint8Array): string;
}

export const JSON_CONTENT_TYPE = 'application/json';
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
const OCTET_STREAM = 'application/octet-stream';

interface HttpBodyShape {
  contentType: string;
  data: Uint8Array;
}

export function compileResponse(method: MethodInfo, rule: HttpRule, registry: FileRegistry, options: ResponseOptions): ResponseTranscoder {
  const output = method.output;
  const writeOptions = {
    registry,
    alwaysEmitImplicit: options.emitUnpopulated,
    useProtoFieldName: options.useProtoNames,
    enumAsInteger: options.enumsAsInts,
  };
  let field: DescField | undefined;
  if (rule.responseBody !== '') {
    field = output.fields.find((f) => f.name === rule.responseBody);
    if (!field) {
      const hint = output.fields.find((f) => f.jsonName === rule.responseBody);
      throw new StartupError(`${method.service}.${method.name} (${method.file}), binding ${rule.method} ${rule.pattern}: ` +
        `response_body: "${rule.responseBody}" names no field of ${output.typeName}. ` +
        (hint ? `Fix: write the proto field name, response_body: "${hint.name}".` : `Fix: use "" or one of: ${output.fields.map((f) => f.name).join(', ')}.`));
    }
  }

  // HttpBody, as the whole response or as the response_body field: the raw bytes, not JSON.
  const rawBody: ((bytes: Uint8Array) => HttpBodyShape | undefined) | undefined =
    field === undefined
      ? output.typeName === HTTP_BODY ? (bytes) => fromBinary(output, bytes) as unknown as HttpBodyShape : undefined
      : field.fieldKind === 'message' && field.message.typeName === HTTP_BODY
        ? (bytes) => readField(fromBinary(output, bytes) as unknown as Record<string, unknown>, field!) as HttpBodyShape | undefined
        : undefined;

  const writers = new JsonWriters(writeOptions);
  const json: (bytes: Uint8Array) => string = field === undefined
    ? compileMessageJson(output, writers, options)
    : compileFieldJson(output, field, writeOptions);

  if (rawBody) {
    const contentTypeOf = (b: HttpBodyShape | undefined): string => (b && b.contentType !== '' ? b.contentType : OCTET_STREAM);
    return {
      body(bytes) {
        const b = rawBody(bytes);
        return { body: toBuffer(b?.data), contentType: contentTypeOf(b) };
      },
      streamChunk: (bytes) => toBuffer(rawBody(bytes)?.data),
      streamContentType: OCTET_STREAM,
      streamContentTypeOf: (first) => contentTypeOf(rawBody(first)),
    };
  }
  return {
    body: (bytes) => ({ body: json(bytes), contentType: JSON_CONTENT_TYPE }),
    streamChunk: (bytes) => `{"result":${json(bytes)}}\n`,
    streamContentType: NDJSON_CONTENT_TYPE,
    streamContentTypeOf: () => NDJSON_CONTENT_TYPE,
  };
}

function compileMessageJson(output: DescMessage, writers: JsonWriters, options: ResponseOptions): (bytes: Uint8Array) => string {
  const write = writers.writer(output);
  const reference = (bytes: Uint8Array): string => write(fromBinary(output, bytes) as unknown as Record<string, unknown>);
  // "Emit unpopulated" prints fields that are not on the wire: only the reference knows them all.
  const fast = options.emitUnpopulated ? undefined
    : compileWireJson(output, writers, { useProtoFieldName: options.useProtoNames, enumAsInteger: options.enumsAsInts });
  return fast === undefined ? reference : (bytes) => fast(bytes) ?? reference(bytes);
}

/**
 * One field rendered as its proto3 JSON value. A field at its default value is still rendered (the response body
 * cannot be absent): scalars as their zero value, lists as [], maps as {}, an unset message or unset proto3
 * `optional` field as null (what "emit unpopulated" prints for them). Nested messages keep the caller's options.
 */
function compileFieldJson(output: DescMessage, field: DescField, writeOptions: Parameters<typeof toJson>[2] & object): (bytes: Uint8Array) => string {
  const key = writeOptions.useProtoFieldName ? field.name : field.jsonName;
  const zeroJson = (toJson(output, create(output), { ...writeOptions, alwaysEmitImplicit: true }) as Record<string, JsonValue>)[key];
  return (bytes) => {
    const message = fromBinary(output, bytes) as unknown as Record<string, unknown>;
    const value = readField(message, field);
    if (value === undefined) return 'null';
    const only = create(output) as unknown as Record<string, unknown>;
    writeField(only, field, value);
    const obj = toJson(output, only as never, writeOptions) as Record<string, JsonValue>;
    const v = obj[key];
    return v === undefined ? JSON.stringify(zeroJson ?? null) : JSON.stringify(v);
  };
}

function readField(message: Record<string, unknown>, field: DescField): unknown {
  if (field.oneof) {
    const o = message[field.oneof.localName] as { case: string | undefined; value?: unknown };
    return o.case === field.localName ? o.value : undefined;
  }
  return message[field.localName];
}

function writeField(message: Record<string, unknown>, field: DescField, value: unknown): void {
  if (field.oneof) message[field.oneof.localName] = { case: field.localName, value };
  else message[field.localName] = value;
}

function toBuffer(data: Uint8Array | undefined): Buffer {
  return data === undefined ? Buffer.alloc(0) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
