/**
 * Options of the passthrough listener and their defaults, in one place. Validation happens in config/; these
 * types are what the composition root hands over.
 */
import type { Metrics } from '../observability/metrics.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { OnRequestHook } from '../config/hook-types.ts';
import type { RateLimitOptions } from './rate-limit.ts';
import type { Http2PoolOptions, Http2PoolStats, Http2UpstreamTls } from '../upstream/http2-pool.ts';
import type { BackendUpstream } from '../upstream/backend-upstream.ts';

export interface PassthroughBackend {
  /** Named in logs and in UNAVAILABLE messages. */
  name: string;
  /** "host:port" (IPv6 as "[::1]:port"). Tried round-robin; an unreachable one is skipped for the next. */
  endpoints: string[];
  /** TLS with ALPN h2 towards this backend; default h2c. */
  tls?: Http2UpstreamTls;
  /** The backend's shared balancer (the gateway's); without it the listener builds a round_robin one from `endpoints`. */
  upstream?: BackendUpstream;
}

export interface PassthroughLimits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to each client connection. Default 1000. */
  maxConcurrentStreams?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE for client requests, bytes (HPACK-decoded, +32 per field). Default 16384 (gRPC core's hard metadata limit). */
  maxHeaderListSize?: number;
  /** A client connection without open streams for this long gets a graceful GOAWAY; 0 disables. Default 300000 ms (gRPC core: GRPC_ARG_MAX_CONNECTION_IDLE_MS). */
  idleTimeoutMs?: number;
  /** Time for a new connection to send its first bytes (h2c) or finish TLS. Default 10000 ms. */
  handshakeTimeoutMs?: number;
  /** A call with no bytes in either direction for this long ends with DEADLINE_EXCEEDED; 0 disables. Default 300000 ms (Envoy's stream_idle_timeout). */
  streamIdleTimeoutMs?: number;
  /**
   * Rapid-reset guard (CVE-2023-44487): a token bucket of stream resets per client connection, in either direction.
   * Emptying it ends the connection with GOAWAY ENHANCE_YOUR_CALM. Default burst 200.
   */
  maxStreamResetBurst?: number;
  /** Refill rate of that bucket, resets per second. Default 33 (the rate nghttp2 uses for its own guard). */
  streamResetRatePerSecond?: number;
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE) for client connections. Default 1 MiB. */
  initialWindowSize?: number;
  /** Connection receive window for client connections, raised with setLocalWindowSize(). Default 4 MiB. */
  connectionWindowSize?: number;
  /**
   * Node's maxSessionMemory (MB) per client connection. Default 1024. Node's 10 MB default makes a session refuse
   * new streams with ENHANCE_YOUR_CALM after one large write that is still unflushed; memory is bounded by flow
   * control windows and pipe() backpressure instead, so this cap only has to stay out of the way.
   */
  maxSessionMemoryMb?: number;
}

export interface PassthroughLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface PassthroughOptions {
  host: string;
  port: number;
  /** Route a fully-qualified service name ("acme.billing.v1.Invoices") to a backend; undefined = unknown. */
  resolveService(service: string): PassthroughBackend | undefined;
  /** When set: TLS with ALPN h2 only; else h2c (prior knowledge). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  limits?: PassthroughLimits;
  /** Upstream session pools (one per backend endpoint); see Http2PoolOptions for each default. */
  upstream?: Omit<Http2PoolOptions, 'tls'>;
  logger?: PassthroughLogger;
  /** Per-method stream metrics (protogate_grpc_*); none when absent. */
  metrics?: Metrics;
  /** OpenTelemetry spans (one per routed call); undefined = tracing off, the default. */
  tracing?: Tracing;
  /**
   * hooks.onRequest of the config, run for every routed call before its backend stream opens (authentication,
   * metadata, backend choice), as for REST requests. `backendByName` resolves a backend the hook names.
   */
  onRequest?: OnRequestHook;
  /** Per-client call limit (grpc.rateLimit); none when absent. */
  rateLimit?: RateLimitOptions;
  backendByName?: (name: string) => PassthroughBackend | undefined;
}

export interface PassthroughStats {
  /** Client connections open now. */
  connections: number;
  /** Client streams being forwarded now. */
  activeStreams: number;
  /** Client streams accepted since start. */
  streamsTotal: number;
  /** Client streams that ended with RST_STREAM (either side) since start. */
  streamResets: number;
  /** Connections ended with GOAWAY ENHANCE_YOUR_CALM by the rapid-reset guard. */
  calmGoaways: number;
  /** Answered by the gateway itself: unknown service, bad :path, non-gRPC request. */
  rejected: number;
  upstream: Http2PoolStats[];
}

export interface ResolvedLimits {
  maxConcurrentStreams: number;
  maxHeaderListSize: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  streamIdleTimeoutMs: number;
  maxStreamResetBurst: number;
  streamResetRatePerSecond: number;
  initialWindowSize: number;
  connectionWindowSize: number;
  maxSessionMemoryMb: number;
}

export const PASSTHROUGH_LIMIT_DEFAULTS: ResolvedLimits = Object.freeze({
  maxConcurrentStreams: 1000,
  maxHeaderListSize: 16_384,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 10_000,
  streamIdleTimeoutMs: 300_000,
  maxStreamResetBurst: 200,
  streamResetRatePerSecond: 33,
  initialWindowSize: 1 << 20,
  connectionWindowSize: 4 << 20,
  maxSessionMemoryMb: 1024,
});

/** Default grace for close(): in-flight streams get this long after GOAWAY before they are reset. */
export const DEFAULT_CLOSE_GRACE_MS = 10_000;

export function resolveLimits(limits: PassthroughLimits = {}): ResolvedLimits {
  const out = { ...PASSTHROUGH_LIMIT_DEFAULTS };
  for (const key of Object.keys(out) as Array<keyof ResolvedLimits>) {
    const v = limits[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}
