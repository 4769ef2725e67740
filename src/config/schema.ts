/**
 * The config: types, validation and defaults in one place. The schema is the documentation of every option's
 * default; the README's config reference is written from it.
 */
import { z } from 'zod';

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

export const backendSchema = z.strictObject({
  /** Used in logs, metrics and errors ("no healthy endpoint for backend 'library'"). */
  name: z.string().min(1),
  /** The gRPC services this backend serves, fully qualified; `pkg.*` matches every service under `pkg`. */
  services: z.array(serviceName).default([]),
  /** At least one endpoint. */
  endpoints: z.array(endpoint).min(1, { message: 'a backend needs at least one endpoint ("host:port")' }),
  /** Default deadline of a transcoded unary call without Grpc-Timeout (streams get none by default). 0 = none. */
  timeoutMs: z.number().int().min(0).default(30_000),
  /** Receives calls for services no backend names (passthrough port). */
  default: z.boolean().default(false),
});

export const configSchema = z.strictObject({
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8080),
      /** Largest request body accepted, in bytes (413 above). */
      bodyLimit: z.number().int().positive().default(4 * 1024 * 1024),
    })
    .prefault({}),
  /** The gRPC passthrough listener. */
  grpc: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(9090),
      /** Turn the passthrough listener off. */
      enabled: z.boolean().default(true),
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
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

/** What a user writes: every option with a default is optional. */
export type GatewayConfig = z.input<typeof configSchema>;
/** What the gateway runs with: defaults applied, paths absolute. */
export type ResolvedConfig = z.output<typeof configSchema>;
export type BackendConfig = ResolvedConfig['backends'][number];
