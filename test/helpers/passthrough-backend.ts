/**
 * A scripted @grpc/grpc-js backend for the passthrough tests, with raw Buffer (de)serializers: nothing here knows
 * a proto either. Behaviour is chosen per call by the `x-behavior` request metadata; every call is recorded,
 * including whether the server saw it cancelled.
 */
import * as grpc from '@grpc/grpc-js';

export const SERVICE = 'test.passthrough.v1.Echo';
const identity = (b: Buffer): Buffer => b;

export const METHODS = {
  Unary: { requestStream: false, responseStream: false },
  ServerStream: { requestStream: false, responseStream: true },
  ClientStream: { requestStream: true, responseStream: false },
  Bidi: { requestStream: true, responseStream: true },
} as const;

export type MethodName = keyof typeof METHODS;

export function methodPath(method: MethodName, service = SERVICE): string {
  return `/${service}/${method}`;
}

export function serviceDefinition(service = SERVICE): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  for (const [name, kind] of Object.entries(METHODS)) {
    def[name] = {
      path: methodPath(name as MethodName, service),
      ...kind,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: name,
    };
  }
  return def;
}

export interface RecordedCall {
  method: MethodName;
  metadata: grpc.Metadata;
  cancelled: boolean;
  received: number;
}

export interface TestBackend {
  port: number;
  calls: RecordedCall[];
  /** Resolves when a call with this `x-call-id` has been cancelled at the server. */
  waitCancelled(callId: string, timeoutMs?: number): Promise<RecordedCall>;
  close(): Promise<void>;
}

const BIG_OPTIONS = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };

/** Response metadata echoes every `x-*` request key; trailers carry `x-trailer` and `x-trailer-bin`. */
function echoMetadata(md: grpc.Metadata): grpc.Metadata {
  const out = new grpc.Metadata();
  for (const [key, values] of Object.entries(md.toJSON())) {
    if (!key.startsWith('x-')) continue;
    for (const v of values) out.add(`echo-${key}`, v);
  }
  return out;
}

function trailers(): grpc.Metadata {
  const t = new grpc.Metadata();
  t.set('x-trailer', 'from-backend');
  t.set('x-trailer-bin', Buffer.from([0, 1, 2, 255]));
  return t;
}

function scriptedError(md: grpc.Metadata): grpc.ServiceError | undefined {
  if (md.get('x-behavior')[0] !== 'error') return undefined;
  const meta = new grpc.Metadata();
  meta.set('grpc-status-details-bin', Buffer.from('details:\u0000\u00ff', 'latin1'));
  meta.set('x-error-detail', 'yes');
  return Object.assign(new Error('scripted failure'), {
    code: Number(md.get('x-code')[0] ?? grpc.status.FAILED_PRECONDITION),
    details: 'scripted failure: é',
    metadata: meta,
  }) as grpc.ServiceError;
}

export async function startBackend(opts: { service?: string; serverOptions?: grpc.ServerOptions } = {}): Promise<TestBackend> {
  const server = new grpc.Server({ ...BIG_OPTIONS, ...opts.serverOptions });
  const calls: RecordedCall[] = [];
  const cancelWaiters = new Map<string, (c: RecordedCall) => void>();

  type AnyCall = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerReadableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;
  const record = (method: MethodName, call: AnyCall): RecordedCall => {
    const rec: RecordedCall = { method, metadata: call.metadata, cancelled: false, received: 0 };
    calls.push(rec);
    (call as grpc.ServerUnaryCall<Buffer, Buffer>).on('cancelled', () => {
      rec.cancelled = true;
      const id = String(call.metadata.get('x-call-id')[0] ?? '');
      cancelWaiters.get(id)?.(rec);
    });
    return rec;
  };

  server.addService(serviceDefinition(opts.service), {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const rec = record('Unary', call);
      rec.received = call.request.length;
      const behavior = call.metadata.get('x-behavior')[0];
      if (behavior === 'hang') return;
      const err = scriptedError(call.metadata);
      if (err) return cb(err);
      if (behavior === 'size') {
        // Reply with the size of what arrived: lets a test send a huge message without echoing it back.
        const out = Buffer.alloc(8);
        out.writeBigUInt64BE(BigInt(call.request.length));
        call.sendMetadata(echoMetadata(call.metadata));
        return cb(null, out, trailers());
      }
      call.sendMetadata(echoMetadata(call.metadata));
      cb(null, call.request, trailers());
    },
    ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const rec = record('ServerStream', call);
      rec.received = call.request.length;
      const behavior = call.metadata.get('x-behavior')[0];
      if (behavior === 'hang') return;
      const err = scriptedError(call.metadata);
      if (err) return call.emit('error', err);
      call.sendMetadata(echoMetadata(call.metadata));
      if (behavior === 'big') {
        // One message of x-size bytes (the memory test's download).
        call.write(Buffer.alloc(Number(call.metadata.get('x-size')[0]), 7));
        call.end(trailers());
        return;
      }
      const count = Number(call.metadata.get('x-count')[0] ?? 3);
      let i = 0;
      const writeMore = (): void => {
        while (i < count) {
          i++;
          if (!call.write(call.request)) return void call.once('drain', writeMore);
        }
        call.end(trailers());
      };
      writeMore();
    },
    ClientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const rec = record('ClientStream', call);
      let messages = 0;
      call.on('data', (b: Buffer) => {
        messages++;
        rec.received += b.length;
      });
      call.on('end', () => {
        const err = scriptedError(call.metadata);
        if (err) return cb(err);
        call.sendMetadata(echoMetadata(call.metadata));
        cb(null, Buffer.from(JSON.stringify({ messages, bytes: rec.received })), trailers());
      });
    },
    Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const rec = record('Bidi', call);
      call.sendMetadata(echoMetadata(call.metadata));
      call.on('data', (b: Buffer) => {
        rec.received += b.length;
        call.write(b);
      });
      call.on('end', () => call.end(trailers()));
    },
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });

  return {
    port,
    calls,
    waitCancelled(callId, timeoutMs = 5_000) {
      const done = calls.find((c) => c.cancelled && c.metadata.get('x-call-id')[0] === callId);
      if (done) return Promise.resolve(done);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`call ${callId} not cancelled at the backend`)), timeoutMs);
        cancelWaiters.set(callId, (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
    },
    close: () => new Promise<void>((resolve) => {
      server.forceShutdown();
      resolve();
    }),
  };
}

/** A grpc-js client with Buffer serializers and unlimited message sizes. */
export function rawClient(target: string, creds = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(target, creds, { ...BIG_OPTIONS, ...options });
}

export const ser = identity;
