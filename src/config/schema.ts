/**
 * The config: types, validation and defaults in one place. The schema is the documentation of every option's
 * default; the README's config reference is written from it.
 */
import { z } from 'zod';
import type { OnRequestHook } from './hook-types.ts';

const port = z.number().int().min(0).max(65535);

/**
 * host:port, [v6]:port, or dns:///name:port (resolved by the resolver of the upstream layer). A port is
 * required: a gateway in front of many services should never guess one.
 */
const ENDPOINT = /^(?:dns:\/\/\/)?(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;
const endpoint = z.string().regex(ENDPOINT, {
  message: 'expected "host:port", "[ipv6]:port" or "dns:///name:port"',
});

/** A fully-qualified service name ("acme.billing.v1.Invoices") or a package wildcard ("acme.billing.*"). */
const SERVICE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\.\*)?$/;
const serviceName = z.string().regex(SERVICE, {
  message: 'expected a fully-qualified service name such as "library.v1.LibraryService" or a wildcard "library.*"',
});

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, { message: 'expected an HTTP header name' });

/** A fixed window per client (address, or the value of keyHeader), as @fastify/rate-limit counts. */
const rateLimitSchema = z.strictObject({
  /** Requests per client per window. */
  max: z.number().int().positive(),
  timeWindowMs: z.number().int().positive().default(60_000),
  /** Identify the client by this request header (e.g. "x-api-key") instead of its IP address. */
  keyHeader: z.string().min(1).optional(),
});

/** PEM files, relative to the config file. */
const tlsSchema = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
});

const positiveMs = z.number().int().positive();

/** An endpoint: "host:port" (weight 1), or {address, weight}. */
const weightedEndpoint = z.union([
  endpoint,
  z.strictObject({ address: endpoint, weight: z.number().int().min(1).max(10_000).default(1) }),
]);

const CODE_NAMES = ['CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL',
  'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'] as const;

export const backendSchema = z.strictObject({
  /** Used in logs, metrics and errors ("no healthy endpoint for backend 'library'"). */
  name: z.string().min(1),
  /** The gRPC services this backend serves, fully qualified; `pkg.*` matches every service under `pkg`. */
  services: z.array(serviceName).default([]),
  /** At least one endpoint: "host:port", "dns:///name:port" (re-resolved), or {address, weight}. */
  endpoints: z.array(weightedEndpoint).min(1, { message: 'a backend needs at least one endpoint ("host:port")' }),
  /** Default deadline of a transcoded unary call without Grpc-Timeout (streams get none by default). 0 = none. */
  timeoutMs: z.number().int().min(0).default(30_000),
  /** Receives calls for services no backend names (passthrough port). */
  default: z.boolean().default(false),
  /** Per-call endpoint choice; the same picker serves REST and passthrough calls. */
  policy: z.enum(['round_robin', 'weighted_random', 'least_request', 'pick_first']).default('round_robin'),
  /**
   * How transcoded calls reach the backend: protogate's own HTTP/2 connections ('socket': no node:http2 on the call
   * path, a steadier p99, see README), pooled node:http2 sessions ('h2'), or @grpc/grpc-js channels. The gRPC port
   * always uses node:http2.
   */
  transport: z.enum(['h2', 'socket', 'grpc-js']).default('socket'),
  /** dns:/// endpoints are re-resolved this often (and after a connection failure). */
  resolveIntervalMs: positiveMs.default(30_000),
  /** DNS servers ("ip" or "ip:port") for dns:/// endpoints; default: the system resolver. */
  dnsServers: z.array(z.string().min(1)).optional(),
  /** TLS towards the backend (ALPN h2); absent: h2c. Files are read at start. */
  tls: z.strictObject({
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** SNI and the name the certificate must carry; default the endpoint host. */
    serverName: z.string().min(1).optional(),
    /** Only for tests against self-signed backends. */
    insecureSkipVerify: z.boolean().default(false),
  }).refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), { message: 'mTLS needs both certFile and keyFile' }).optional(),
  /** TCP + TLS + first SETTINGS. */
  connectTimeoutMs: positiveMs.default(5_000),
  keepalive: z.strictObject({
    /** PING interval on busy connections; 0 = off (gRPC core: GRPC_ARG_KEEPALIVE_TIME_MS). */
    timeMs: z.number().int().min(0).default(300_000),
    /** Unanswered PING kills the connection after this (GRPC_ARG_KEEPALIVE_TIMEOUT_MS). */
    timeoutMs: positiveMs.default(20_000),
  }).prefault({}),
  /** Largest response message from the backend (RESOURCE_EXHAUSTED above). */
  maxReceiveMessageBytes: positiveMs.default(64 * 1024 * 1024),
  /** Largest request message sent to the backend. */
  maxSendMessageBytes: positiveMs.default(64 * 1024 * 1024),
  /** Connections per endpoint; more open when the backend's MAX_CONCURRENT_STREAMS is reached. */
  maxConnectionsPerEndpoint: z.number().int().min(1).default(16),
  /**
   * Largest response header or trailer block taken from the backend (our SETTINGS_MAX_HEADER_LIST_SIZE, decoded
   * size); a call whose response goes over it fails INTERNAL.
   */
  maxHeaderListSize: z.number().int().min(1024).max(16 * 1024 * 1024).default(64 * 1024),
  /** A connection to an endpoint without calls for this long is closed (gRPC core: GRPC_ARG_CLIENT_IDLE_TIMEOUT_MS); 0 keeps it. */
  idleTimeoutMs: z.number().int().min(0).default(300_000),
  /** Reconnect backoff after a failed connect: initial × 1.6 per failure, ±20% jitter, capped. */
  reconnectBackoff: z.strictObject({ initialMs: positiveMs.default(1_000), maxMs: positiveMs.default(120_000) }).prefault({}),
  /** Active grpc.health.v1.Health/Check probes. Off by default: not every backend implements the health service. */
  healthCheck: z.strictObject({
    enabled: z.boolean().default(false),
    intervalMs: positiveMs.default(5_000),
    timeoutMs: positiveMs.default(1_000),
    /** HealthCheckRequest.service; '' asks about the whole server. */
    service: z.string().default(''),
    healthyThreshold: z.number().int().min(1).default(1),
    unhealthyThreshold: z.number().int().min(1).default(2),
  }).prefault({}),
  /** Passive ejection: consecutive UNAVAILABLE / DEADLINE_EXCEEDED calls eject an endpoint for a growing period. */
  outlierDetection: z.strictObject({
    enabled: z.boolean().default(true),
    consecutiveFailures: z.number().int().min(1).default(5),
    baseEjectionMs: positiveMs.default(30_000),
    maxEjectionMs: positiveMs.default(300_000),
    /** Never eject more than this share of the endpoints (rounded down: one endpoint alone is never ejected). */
    maxEjectionPercent: z.number().int().min(0).max(100).default(50),
  }).prefault({}),
  /**
   * Retries of transcoded unary calls that reached a backend and failed with a listed code (gRPC service config's
   * retryPolicy). Calls that never reached a backend are always retried on another endpoint, whatever this says.
   */
  retryPolicies: z.array(z.strictObject({
    /** "pkg.Service/Method", "pkg.Service/*" or "*". */
    methods: z.array(z.string().regex(/^(\*|[A-Za-z_][A-Za-z0-9_.]*\/(\*|[A-Za-z_][A-Za-z0-9_]*))$/, {
      message: 'expected "pkg.Service/Method", "pkg.Service/*" or "*"',
    })).min(1),
    retryableCodes: z.array(z.enum(CODE_NAMES)).min(1).default(['UNAVAILABLE']),
    /** Attempts in all, the first included. */
    maxAttempts: z.number().int().min(2).max(5).default(3),
    initialBackoffMs: z.number().int().min(1).default(100),
    maxBackoffMs: z.number().int().min(1).default(1000),
  })).default([]),
});

export const configSchema = z.strictObject({
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8080),
      /** Largest request body accepted, in bytes (413 above). */
      bodyLimit: z.number().int().positive().default(4 * 1024 * 1024),
      /** Largest request head (request line + headers), in bytes (431 above). */
      maxHeaderSize: z.number().int().positive().default(16 * 1024),
      /**
       * A REST server stream with no message from the backend for this long is ended with a last {"error"} line
       * (DEADLINE_EXCEEDED); time spent waiting on a slow HTTP client does not count. 0 = never.
       */
      streamIdleTimeoutMs: z.number().int().min(0).default(300_000),
      /** REST requests handled at once; above it new ones get 503 with Retry-After. 0 = no limit. */
      maxConcurrentRequests: z.number().int().min(0).default(10_000),
      /** HTTPS (and HTTP/2 through ALPN) with these PEM files; reloaded when they change. */
      tls: tlsSchema.optional(),
      /** Per-client rate limit on the REST port (@fastify/rate-limit): 429 RESOURCE_EXHAUSTED with Retry-After. */
      rateLimit: rateLimitSchema.optional(),
      /** Browser callers: @fastify/cors options. Off unless set. */
      cors: z
        .strictObject({
          origin: z.union([z.boolean(), z.string(), z.array(z.string())]).default(true),
          methods: z.array(z.string()).optional(),
          allowedHeaders: z.array(z.string()).optional(),
          exposedHeaders: z.array(z.string()).optional(),
          credentials: z.boolean().default(false),
          maxAge: z.number().int().min(0).optional(),
        })
        .optional(),
    })
    .prefault({}),
  /** The gRPC passthrough listener. */
  grpc: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(9090),
      /** Turn the passthrough listener off. */
      enabled: z.boolean().default(true),
      /** A call with no bytes either way for this long is ended with DEADLINE_EXCEEDED. 0 = never. */
      streamIdleTimeoutMs: z.number().int().min(0).default(300_000),
      /** gRPC over TLS with ALPN h2 instead of h2c. */
      tls: tlsSchema.optional(),
      /** Per-client rate limit on the gRPC port, same window semantics as http.rateLimit: RESOURCE_EXHAUSTED. */
      rateLimit: rateLimitSchema.optional(),
    })
    .prefault({}),
  /** Health, readiness and metrics, on a listener of their own so probes never queue behind traffic. */
  admin: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(9901),
      enabled: z.boolean().default(true),
    })
    .prefault({}),
  /** Graceful drain on SIGTERM/SIGINT. */
  shutdown: z
    .strictObject({
      /** Readiness fails at once; listeners keep accepting for this long so endpoint removal can propagate. */
      drainDelayMs: z.number().int().min(0).default(5_000),
      /** In-flight requests and streams get this long to finish, then are cancelled with UNAVAILABLE. */
      timeoutMs: z.number().int().min(0).default(30_000),
    })
    .prefault({}),
  protos: z.strictObject({
    /** Searched in order for imports, like protoc -I; the bundled googleapis protos come last. */
    includeDirs: z.array(z.string().min(1)).default([]),
    /** .proto files (globs allowed) and descriptor sets (.pb, .binpb, .desc, .protoset). */
    files: z.array(z.string().min(1)).min(1, { message: 'list at least one .proto file or descriptor set' }),
  }),
  backends: z.array(backendSchema).default([]),
  transcoding: z
    .strictObject({
      /** A query parameter that names no field: ignore it, or reject the request with 400. */
      unknownQueryParams: z.enum(['ignore', 'reject']).default('ignore'),
      /** A JSON body field that names no field: reject with 400 (no field is ever silently dropped), or ignore. */
      unknownBodyFields: z.enum(['reject', 'ignore']).default('reject'),
      /** Output: also emit fields that hold their default value. */
      emitUnpopulated: z.boolean().default(false),
      /** Output: proto field names (snake_case) instead of lowerCamelCase json names. */
      useProtoNames: z.boolean().default(false),
      /** Output: enums as numbers instead of names. */
      enumsAsInts: z.boolean().default(false),
      /** Deepest JSON nesting accepted in a request body (400 above). */
      maxJsonDepth: z.number().int().positive().default(64),
      /** Request headers forwarded as gRPC metadata besides Authorization and Grpc-Metadata-*. */
      forwardHeaders: z.array(headerName).default([]),
      /** Start even if a service with HTTP rules has no backend; its routes then answer 503 UNAVAILABLE. */
      allowUnservedServices: z.boolean().default(false),
      /** Two rules with the same method and template: 'error' stops startup, 'warn' keeps the first by precedence. */
      duplicateRoutes: z.enum(['error', 'warn']).default('error'),
    })
    .prefault({}),
  /**
   * Processes serving the same ports (node:cluster): one per core a pod may use. Each worker is a whole gateway;
   * the primary only forwards signals and restarts a worker that dies.
   */
  workers: z.number().int().min(1).max(64).default(1),
  /** Process-wide adjustments to the Node runtime, applied when the gateway is created. */
  runtime: z
    .strictObject({
      /**
       * Replace Node's AsyncResource#bind with one without the deprecated `asyncResource` accessor, whose two
       * deprecate() wrappers per HTTP/2 client request cost 10-40 % of REST throughput (src/upstream/async-bind.ts).
       */
      lightAsyncBind: z.boolean().default(true),
      /**
       * Replace node:http2's per-session stream tables (a Map and a Set) with fresh copies every 128 streams, so
       * finished requests are not kept alive by V8's obsolete hash tables after a Mark-Compact
       * (src/upstream/stream-tables.ts). Writes to node:http2's internal session state; false turns that off.
       */
      renewStreamTables: z.boolean().default(true),
    })
    .prefault({}),
  /** Code run per request: see HookRequest in src/config/hook-types.ts. */
  hooks: z
    .strictObject({
      /** REST requests, after routing and before the body is read into a message: authenticate, add metadata, pick a backend. */
      onRequest: z.custom<OnRequestHook>((v) => typeof v === 'function', { message: 'expected a function (request) => void | HookResult' }).optional(),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  /**
   * OpenTelemetry. Off unless `otlp` is set: then no span exists and traceparent/tracestate are forwarded as received.
   * With `otlp`, one SERVER span per REST request, exported with OTLP/HTTP (protobuf); the backend gets the
   * gateway span's traceparent.
   */
  tracing: z
    .strictObject({
      otlp: z
        .strictObject({
          /** The full OTLP/HTTP traces URL: a collector's default is http://<host>:4318/v1/traces. */
          endpoint: z
            .url({ protocol: /^https?$/, message: 'expected an http(s) URL such as "http://collector:4318/v1/traces"' })
            .refine((u) => new URL(u).pathname !== '/', {
              message: 'expected the full traces URL including its path (OTLP/HTTP collectors listen on /v1/traces), e.g. "http://collector:4318/v1/traces"',
            }),
          /** Sent with every export, e.g. an API key. Never logged; OTEL_EXPORTER_OTLP_HEADERS is merged under these. */
          headers: z.record(headerName, z.string().regex(/^[\t\x20-\x7e\x80-\xff]*$/, {
            message: 'expected a header value without control characters (no CR or LF)',
          })).default({}),
          /** The resource's service.name. */
          serviceName: z.string().min(1).default('protogate'),
          /** Share of new traces recorded, 0..1; a request whose traceparent says "sampled" is always recorded (parent-based). */
          sampleRatio: z.number().min(0).max(1).default(1),
          /** Longest wait for one export, and for the last flush at shutdown. */
          exportTimeoutMs: positiveMs.default(10_000),
          /** Finished spans are sent in batches at least this often. */
          scheduledDelayMs: positiveMs.default(5_000),
          /** Spans waiting for export; above it new spans are dropped (a slow collector never grows memory). */
          maxQueueSize: z.number().int().min(1).default(2048),
          maxExportBatchSize: z.number().int().min(1).default(512),
        })
        .refine((o) => o.maxExportBatchSize <= o.maxQueueSize, {
          message: 'must not be larger than maxQueueSize (a batch is taken from the queue)',
          path: ['maxExportBatchSize'],
        })
        .optional(),
    })
    .prefault({}),
});

/** What a user writes: every option with a default is optional. */
export type GatewayConfig = z.input<typeof configSchema>;
/** What the gateway runs with: defaults applied, paths absolute. */
export type ResolvedConfig = z.output<typeof configSchema>;
export type BackendConfig = ResolvedConfig['backends'][number];
