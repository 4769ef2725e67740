/**
 * Backends for the upstream tests: real @grpc/grpc-js servers bound to distinct loopback addresses (127.0.0.2,
 * 127.0.0.3, ...), raw Buffer (de)serializers. Unary echoes the request and names the server in `x-served-by`;
 * a per-server delay makes one slow; Health/Check answers a status the test sets; kill()/restart() keep the port.
 */
import * as grpc from '@grpc/grpc-js';
import { cancelToken } from '../../src/upstream/http2-pool.ts';
import { BackendUpstream } from '../../src/upstream/backend-upstream.ts';
import type { UpstreamSettings } from '../../src/upstream/backend-upstream.ts';
import { GrpcInvoker } from '../../src/upstream/grpc-invoker.ts';

export const SERVICE = 'test.upstream.v1.Echo';
export const UNARY = `/${SERVICE}/Unary`;
export const STREAM = `/${SERVICE}/Stream`;
const identity = (b: Buffer): Buffer => b;

function method(path: string, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return { path, requestStream: false, responseStream, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
}

export interface UpstreamTestBackend {
  host: string;
  port: number;
  address: string;
  calls: number;
  /** Unary answers after this long; Infinity: never. */
  delayMs: number;
  /** 1 SERVING, 2 NOT_SERVING. */
  health: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startBackend(host: string, options: { maxConcurrentStreams?: number; port?: number } = {}): Promise<UpstreamTestBackend> {
  let server: grpc.Server | undefined;
  const pending = new Set<NodeJS.Timeout>();
  const backend: UpstreamTestBackend = {
    host, port: options.port ?? 0, address: '', calls: 0, delayMs: 0, health: 1,
    kill: async () => {
      for (const t of pending) clearTimeout(t);
      pending.clear();
      server?.forceShutdown();
      server = undefined;
    },
    restart: async () => {
      await listen();
    },
    close: async () => backend.kill(),
  };
  const listen = async (): Promise<void> => {
    const s = new grpc.Server(options.maxConcurrentStreams ? { 'grpc.max_concurrent_streams': options.maxConcurrentStreams } : {});
    s.addService({ Unary: method(UNARY, false), Stream: method(STREAM, true) }, {
      Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        backend.calls++;
        const md = new grpc.Metadata();
        md.set('x-served-by', host);
        call.sendMetadata(md);
        if (backend.delayMs === Infinity) return; // hangs until the client gives up
        const reply = (): void => cb(null, call.request);
        if (backend.delayMs <= 0) return reply();
        const t = setTimeout(() => {
          pending.delete(t);
          reply();
        }, backend.delayMs);
        pending.add(t);
      },
      Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        backend.calls++;
        const n = call.request.length > 0 ? call.request[0]! : 3;
        for (let i = 0; i < n; i++) call.write(Buffer.from([i]));
        call.end();
      },
    });
    s.addService({ Check: method('/grpc.health.v1.Health/Check', false) }, {
      Check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from([0x08, backend.health])),
    });
    backend.port = await new Promise<number>((resolve, reject) =>
      s.bindAsync(`${host}:${backend.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    backend.address = `${host}:${backend.port}`;
    server = s;
  };
  await listen();
  return backend;
}

export async function startBackends(count: number, firstOctet = 2, options: { maxConcurrentStreams?: number } = {}): Promise<UpstreamTestBackend[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startBackend(`127.0.0.${firstOctet + i}`, options)));
}

export function settings(name: string, addresses: Array<string | { address: string; weight: number }>, overrides: Partial<UpstreamSettings> = {}): UpstreamSettings {
  return {
    name,
    endpoints: addresses.map((a) => (typeof a === 'string' ? { address: a, weight: 1 } : a)),
    policy: 'round_robin',
    resolveIntervalMs: 30_000,
    pool: { reconnectBackoff: { initialMs: 100, maxMs: 400 } },
    healthCheck: { enabled: false, intervalMs: 100, timeoutMs: 200, service: '', healthyThreshold: 1, unhealthyThreshold: 1 },
    outlierDetection: { enabled: true, consecutiveFailures: 3, baseEjectionMs: 5_000, maxEjectionMs: 20_000, maxEjectionPercent: 50 },
    ...overrides,
  };
}

export function invokerFor(upstream: BackendUpstream, transport: 'h2' | 'socket' | 'grpc-js' = 'h2'): GrpcInvoker {
  return new GrpcInvoker(upstream, { transport, maxReceiveMessageBytes: 4 << 20, maxSendMessageBytes: 4 << 20 });
}

/** Calls Unary `count` times with `concurrency` in flight; returns how many each host served and the failures. */
export async function drive(invoker: GrpcInvoker, count: number, concurrency: number, timeoutMs = 2_000): Promise<{ byHost: Map<string, number>; errors: Array<{ code: number; details: string }> }> {
  const byHost = new Map<string, number>();
  const errors: Array<{ code: number; details: string }> = [];
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      try {
        const r = await invoker.unary(UNARY, Buffer.from('x'), { metadata: new grpc.Metadata(), deadline: Date.now() + timeoutMs }, cancelToken());
        const host = String(r.headers.get('x-served-by')[0]);
        byHost.set(host, (byHost.get(host) ?? 0) + 1);
      } catch (err) {
        const e = err as { code: number; details?: unknown; message: string };
        errors.push({ code: e.code, details: typeof e.details === 'string' ? e.details : e.message });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { byHost, errors };
}

export { BackendUpstream };
