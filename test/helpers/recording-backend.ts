/**
 * A real @grpc/grpc-js backend for transcoding tests: serves every service of the given protos, records each
 * request it receives (decoded to proto3 JSON with protobufjs' protojson, an implementation independent of the
 * gateway's @bufbuild codec), and answers from a script. Listens on 127.0.0.1:0.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pb from 'protobufjs';
import protojson from 'protobufjs/ext/protojson.js';
import { bundledProtoDir } from '../../src/proto/load.ts';

export interface ScriptedReply {
  /** Unary response (proto3 JSON of the output type). */
  response?: unknown;
  /** Server-streaming responses. */
  stream?: unknown[];
  /** A generated server stream of `count` messages (for streams too large to hold): message i = item(i). */
  generate?: { count: number; item(i: number): unknown };
  /** Fail with this status (after the stream messages, if any). */
  error?: { code: number; message: string; details?: Array<{ type: string; value: unknown }> };
  headers?: Record<string, string>;
  trailers?: Record<string, string>;
  /** Wait before answering (to test deadlines and cancellation). */
  delayMs?: number;
  /** Server streams: after the messages, neither end nor fail; wait until the client cancels. */
  hold?: boolean;
}

export interface Received {
  method: string;
  request: unknown;
  metadata: Record<string, Array<string | Buffer>>;
  deadline?: number;
  cancelled: boolean;
  /** Stream messages the backend has handed to grpc-js so far (it waits for 'drain' when told to). */
  written: number;
}

export interface RecordingBackend {
  address: string;
  received: Received[];
  root: pb.Root;
  close(): Promise<void>;
}

export async function startRecordingBackend(opts: {
  includeDirs: string[];
  files: string[];
  script: (method: string, request: unknown) => ScriptedReply;
}): Promise<RecordingBackend> {
  const root = new pb.Root();
  const dirs = [...opts.includeDirs, bundledProtoDir()];
  root.resolvePath = (origin, target) => {
    if (!origin) return target;
    for (const d of dirs) {
      const p = path.join(d, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync(opts.files, { keepCase: false });
  root.loadSync(path.join(bundledProtoDir(), 'google/rpc/status.proto'), { keepCase: false });
  root.loadSync(path.join(bundledProtoDir(), 'google/rpc/error_details.proto'), { keepCase: false });
  root.resolveAll();
  const received: Received[] = [];
  const server = new grpc.Server();

  const services: pb.Service[] = [];
  const walk = (ns: pb.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      if (o instanceof pb.Service) services.push(o);
      else if (o instanceof pb.Namespace && !(o instanceof pb.Type)) walk(o);
    }
  };
  walk(root);
  const statusType = root.lookupType('google.rpc.Status');

  for (const svc of services) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const m of svc.methodsArray) {
      m.resolve();
      const reqType = m.resolvedRequestType!;
      const resType = m.resolvedResponseType!;
      const methodPath = `/${svc.fullName.slice(1)}/${m.name}`;
      definition[m.name] = {
        path: methodPath,
        requestStream: Boolean(m.requestStream),
        responseStream: Boolean(m.responseStream),
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      };
      const encode = (json: unknown): Buffer => Buffer.from(resType.encode(protojson.fromJson(resType, json)).finish());
      const errorOf = (reply: ScriptedReply): grpc.ServiceError | null => {
        if (!reply.error) return null;
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(reply.trailers ?? {})) md.add(k, v);
        if (reply.error.details) {
          const status = protojson.fromJson(statusType, {
            code: reply.error.code,
            message: reply.error.message,
            details: reply.error.details.map((d) => ({ '@type': `type.googleapis.com/${d.type}`, ...(d.value as object) })),
          });
          md.add('grpc-status-details-bin', Buffer.from(statusType.encode(status).finish()));
        }
        return Object.assign(new Error(reply.error.message), { code: reply.error.code, details: reply.error.message, metadata: md });
      };
      const record = (call: grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>): Received => {
        const r: Received = {
          method: methodPath,
          request: protojson.toJson(reqType, reqType.decode(call.request)),
          metadata: call.metadata.getMap() as Record<string, never>,
          deadline: Number.isFinite(call.getDeadline() as number) ? Number(call.getDeadline()) : undefined,
          cancelled: false,
          written: 0,
        };
        r.metadata = Object.fromEntries(Object.keys(call.metadata.getMap()).map((k) => [k, call.metadata.get(k)]));
        received.push(r);
        call.on('cancelled', () => { r.cancelled = true; });
        return r;
      };
      const headersOf = (reply: ScriptedReply): grpc.Metadata => {
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(reply.headers ?? {})) md.add(k, v);
        return md;
      };
      const trailersOf = (reply: ScriptedReply): grpc.Metadata => {
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(reply.trailers ?? {})) md.add(k, v);
        return md;
      };
      if (!m.requestStream && !m.responseStream) {
        handlers[m.name] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
          const r = record(call);
          const reply = opts.script(methodPath, r.request);
          const answer = (): void => {
            if (r.cancelled) return;
            if (reply.headers) call.sendMetadata(headersOf(reply));
            const err = errorOf(reply);
            if (err) cb(err);
            else cb(null, encode(reply.response ?? {}), trailersOf(reply));
          };
          if (reply.delayMs) setTimeout(answer, reply.delayMs);
          else answer();
        };
      } else if (!m.requestStream && m.responseStream) {
        handlers[m.name] = (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          const r = record(call);
          const reply = opts.script(methodPath, r.request);
          const run = async (): Promise<void> => {
            if (reply.headers) call.sendMetadata(headersOf(reply));
            const send = async (msg: unknown): Promise<void> => {
              r.written++;
              if (!call.write(encode(msg))) await new Promise((res) => call.once('drain', res));
            };
            for (const msg of reply.stream ?? []) {
              if (r.cancelled) return;
              await send(msg);
            }
            for (let i = 0; reply.generate && i < reply.generate.count; i++) {
              if (r.cancelled) return;
              await send(reply.generate.item(i));
            }
            if (r.cancelled || reply.hold) return;
            const err = errorOf(reply);
            if (err) call.emit('error', err);
            else call.end(trailersOf(reply));
          };
          if (reply.delayMs) setTimeout(() => void run(), reply.delayMs);
          else void run();
        };
      }
    }
    server.addService(definition, handlers);
  }

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    received,
    root,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
