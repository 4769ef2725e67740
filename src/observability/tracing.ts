/**
 * Optional OpenTelemetry tracing: one SERVER span per REST request (and, through startGrpcSpan, per gRPC passthrough
 * call), exported with OTLP/HTTP (protobuf) when `tracing.otlp` is configured.
 *
 * Off by default, and off costs nothing: createTracing() returns undefined, the OpenTelemetry SDK is never even
 * loaded, callers test one `undefined` per request, and traceparent/tracestate reach the backend exactly as received.
 *
 * On: the client's W3C traceparent/tracestate is the parent of the gateway's span, and the traceparent sent to the
 * backend is the gateway span's own, so the backend's spans nest under the gateway's (tracestate is passed on
 * unchanged). No global OpenTelemetry state is touched (no global provider, propagator or context manager): the
 * provider belongs to one gateway, so two gateways in one process never share spans or a shutdown.
 *
 * Semantic conventions (@opentelemetry/semantic-conventions 1.45): HTTP server spans (http.request.method,
 * http.route, http.response.status_code, url.scheme, error.type; status ERROR for 5xx only) and the stable RPC
 * attributes (rpc.system.name, rpc.method = "pkg.Service/Method", rpc.status_code = "NOT_FOUND"), plus the
 * deprecated rpc.system / rpc.service / rpc.grpc.status_code that many trace UIs still key on. The raw path
 * (url.path) is never recorded: like the logs and metrics, spans carry the route template, not ids from the URL.
 *
 * Imports nothing from the rest of the gateway except types.
 */
import { createRequire } from 'node:module';
import type { Attributes, Span, SpanContext, Tracer } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { HeaderBag } from './access-log.ts';
import type { Logger } from './logger.ts';

/** `tracing.otlp` of the resolved config (structurally: this layer does not import config/). */
export interface OtlpTracingConfig {
  /** The full OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces. */
  endpoint: string;
  /** Sent with every export (API keys): never logged. */
  headers: Record<string, string>;
  serviceName: string;
  /** Share of new traces recorded (0..1); a client's sampled flag is always followed (parent-based). */
  sampleRatio: number;
  exportTimeoutMs: number;
  scheduledDelayMs: number;
  maxQueueSize: number;
  maxExportBatchSize: number;
}

/** A REST route's span name and attributes, built once when the route table is built. */
export interface TracedRoute {
  readonly name: string;
  readonly attributes: Readonly<Attributes>;
}

export interface HttpSpanStart {
  method: string;
  headers: HeaderBag;
  requestId: string;
  clientAddress: string | undefined;
  scheme: 'http' | 'https';
  /** As node:http reports it: "1.1", "2.0". */
  httpVersion: string;
}

/** The span of one REST request. */
export interface HttpSpan {
  /** The traceparent to send to the backend instead of the client's: this span's context. */
  readonly traceparent: string;
  /** The request matched a rule: the span takes the route's name and RPC attributes. */
  matched(route: TracedRoute): void;
  /** Call once, when the response closed (sent, failed or abandoned by the client). */
  end(httpStatus: number, grpcCode: number): void;
}

/** The span of one gRPC passthrough call. */
export interface GrpcSpan {
  /** The traceparent to send to the backend instead of the client's: this span's context. */
  readonly traceparent: string;
  /** Call once, with the call's final gRPC status code. */
  end(grpcCode: number): void;
}

export interface Tracing {
  /** For the route table: a rule's span name ("POST /v1/{parent=shelves/*}/books") and RPC attributes. */
  route(httpMethod: string, template: string, service: string, method: string): TracedRoute;
  startHttpSpan(start: HttpSpanStart): HttpSpan;
  /**
   * For the passthrough port: a SERVER span named "pkg.Service/Method", parented by the call's traceparent and
   * tracestate headers. `service`/`method` become span name and attributes: pass a capped value (as the metrics do)
   * for services that no backend names, so a scanner cannot create unbounded span names.
   */
  startGrpcSpan(service: string, method: string, headers: HeaderBag, clientAddress?: string): GrpcSpan;
  /** Exports what is queued, then stops; waits at most exportTimeoutMs so a dead collector cannot block exit. */
  shutdown(): Promise<void>;
}

/**
 * The SDK is loaded on demand, with require() because createGateway() is synchronous: ~150 ms of module loading
 * (measured on a 2-core build machine) that a gateway without tracing never pays. All of these packages ship CommonJS.
 */
const require = createRequire(import.meta.url);
type ApiModule = typeof import('@opentelemetry/api');
type CoreModule = typeof import('@opentelemetry/core');
type ResourcesModule = typeof import('@opentelemetry/resources');
type SdkModule = typeof import('@opentelemetry/sdk-trace-base');
type ExporterModule = typeof import('@opentelemetry/exporter-trace-otlp-proto');
type SemconvModule = typeof import('@opentelemetry/semantic-conventions');

/** google.rpc.Code names, for rpc.status_code (the stable RPC conventions want the name, not the number). */
const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL',
  'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
const codeName = (code: number): string => CODE_NAMES[code] ?? 'UNKNOWN';

/** Codes that mark a gRPC SERVER span as failed (semantic conventions, gRPC): the server's fault, not the caller's. */
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);

/** Methods the HTTP conventions name; any other (a custom HTTP rule kind) is recorded as `_OTHER`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** Deprecated RPC attribute names, kept for tools that have not moved to the stable ones yet. */
const RPC_SYSTEM = 'rpc.system';
const RPC_SERVICE = 'rpc.service';
const RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';
/** The request id, as the response header that carries it (http.response.header.<name>): every response echoes it. */
const REQUEST_ID = 'http.response.header.x-request-id';

/** Failed exports are logged at most this often (a dead collector fails every batch). */
const EXPORT_WARN_INTERVAL_MS = 60_000;

/** Undefined when tracing is not configured: callers then skip every tracing call with one check. */
export function createTracing(config: OtlpTracingConfig | undefined, logger: Logger): Tracing | undefined {
  if (!config) return undefined;
  const api = require('@opentelemetry/api') as ApiModule;
  const core = require('@opentelemetry/core') as CoreModule;
  const resources = require('@opentelemetry/resources') as ResourcesModule;
  const sdk = require('@opentelemetry/sdk-trace-base') as SdkModule;
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto') as ExporterModule;
  const sc = require('@opentelemetry/semantic-conventions') as SemconvModule;

  const exporter = new LoggingExporter(new OTLPTraceExporter({
    url: config.endpoint,
    headers: config.headers,
    timeoutMillis: config.exportTimeoutMs,
  }), logger, core.ExportResultCode.SUCCESS);
  const provider = new sdk.BasicTracerProvider({
    resource: resources.defaultResource().merge(resources.resourceFromAttributes({ [sc.ATTR_SERVICE_NAME]: config.serviceName })),
    sampler: new sdk.ParentBasedSampler({
      root: config.sampleRatio >= 1 ? new sdk.AlwaysOnSampler() : new sdk.TraceIdRatioBasedSampler(config.sampleRatio),
    }),
    spanProcessors: [new sdk.BatchSpanProcessor(exporter, {
      maxQueueSize: config.maxQueueSize,
      maxExportBatchSize: config.maxExportBatchSize,
      scheduledDelayMillis: config.scheduledDelayMs,
      exportTimeoutMillis: config.exportTimeoutMs,
    })],
  });
  const tracer = provider.getTracer('protogate');
  const propagator = new core.W3CTraceContextPropagator();
  const getter = api.defaultTextMapGetter;
  const ROOT = api.ROOT_CONTEXT;
  const SERVER = api.SpanKind.SERVER;
  const ERROR = api.SpanStatusCode.ERROR;

  logger.info({ endpoint: safeUrl(config.endpoint), sampleRatio: config.sampleRatio, serviceName: config.serviceName },
    `tracing: exporting spans with OTLP/HTTP to ${safeUrl(config.endpoint)}`);

  const start = (name: string, headers: HeaderBag, attributes: Attributes): Span =>
    tracer.startSpan(name, { kind: SERVER, attributes }, propagator.extract(ROOT, headers, getter));

  class RestSpan implements HttpSpan {
    readonly traceparent: string;
    readonly #span: Span;
    #routed = false;
    constructor(span: Span) {
      this.#span = span;
      this.traceparent = traceparentOf(span.spanContext());
    }
    matched(route: TracedRoute): void {
      this.#routed = true;
      this.#span.updateName(route.name);
      this.#span.setAttributes(route.attributes);
    }
    end(httpStatus: number, grpcCode: number): void {
      const span = this.#span;
      span.setAttribute(sc.ATTR_HTTP_RESPONSE_STATUS_CODE, httpStatus);
      if (this.#routed) {
        span.setAttribute(sc.ATTR_RPC_STATUS_CODE, codeName(grpcCode));
        span.setAttribute(RPC_GRPC_STATUS_CODE, grpcCode);
      }
      // HTTP server conventions: only 5xx is the server's failure; a 4xx is the client's.
      if (httpStatus >= 500) {
        span.setAttribute(sc.ATTR_ERROR_TYPE, String(httpStatus));
        span.setStatus({ code: ERROR });
      }
      span.end();
    }
  }

  class PassthroughSpan implements GrpcSpan {
    readonly traceparent: string;
    readonly #span: Span;
    constructor(span: Span) {
      this.#span = span;
      this.traceparent = traceparentOf(span.spanContext());
    }
    end(grpcCode: number): void {
      const span = this.#span;
      const name = codeName(grpcCode);
      span.setAttribute(sc.ATTR_RPC_STATUS_CODE, name);
      span.setAttribute(RPC_GRPC_STATUS_CODE, grpcCode);
      if (GRPC_SERVER_ERRORS.has(grpcCode)) {
        span.setAttribute(sc.ATTR_ERROR_TYPE, name);
        span.setStatus({ code: ERROR });
      }
      span.end();
    }
  }

  let stopping: Promise<void> | undefined;
  return {
    route(httpMethod, template, service, method) {
      const known = KNOWN_METHODS.has(httpMethod);
      return Object.freeze({
        name: `${known ? httpMethod : 'HTTP'} ${template}`,
        attributes: Object.freeze({
          [sc.ATTR_HTTP_ROUTE]: template,
          [sc.ATTR_RPC_SYSTEM_NAME]: sc.RPC_SYSTEM_NAME_VALUE_GRPC,
          [sc.ATTR_RPC_METHOD]: `${service}/${method}`,
          [RPC_SYSTEM]: 'grpc',
          [RPC_SERVICE]: service,
        }),
      });
    },
    startHttpSpan(s) {
      const known = KNOWN_METHODS.has(s.method);
      const attributes: Attributes = {
        [sc.ATTR_HTTP_REQUEST_METHOD]: known ? s.method : '_OTHER',
        [sc.ATTR_URL_SCHEME]: s.scheme,
        [sc.ATTR_NETWORK_PROTOCOL_VERSION]: s.httpVersion === '2.0' ? '2' : s.httpVersion,
        [REQUEST_ID]: [s.requestId],
      };
      if (!known) attributes[sc.ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = s.method;
      if (s.clientAddress) attributes[sc.ATTR_CLIENT_ADDRESS] = s.clientAddress;
      // Until a route matches, the conventions' name for an HTTP server span is the method alone.
      return new RestSpan(start(known ? s.method : 'HTTP', s.headers, attributes));
    },
    startGrpcSpan(service, method, headers, clientAddress) {
      const attributes: Attributes = {
        [sc.ATTR_RPC_SYSTEM_NAME]: sc.RPC_SYSTEM_NAME_VALUE_GRPC,
        [sc.ATTR_RPC_METHOD]: `${service}/${method}`,
        [RPC_SYSTEM]: 'grpc',
        [RPC_SERVICE]: service,
      };
      if (clientAddress) attributes[sc.ATTR_CLIENT_ADDRESS] = clientAddress;
      return new PassthroughSpan(start(`${service}/${method}`, headers, attributes));
    },
    shutdown() {
      return (stopping ??= boundedShutdown(provider, config.exportTimeoutMs, logger));
    },
  };

  function traceparentOf(c: SpanContext): string {
    // W3C Trace Context: version 00, then trace id, parent id and flags in lower-case hex. Formatted directly: the
    // SDK always hands out a valid context (a new span id, or the client's ids when it is not sampled).
    return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  }
}

/** provider.shutdown() flushes the queue and closes the exporter; a collector that never answers is not waited out. */
async function boundedShutdown(provider: { shutdown(): Promise<void> }, timeoutMs: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, timeoutMs, 'timeout'); });
  try {
    const result = await Promise.race([provider.shutdown().then(() => 'done' as const), timedOut]);
    if (result === 'timeout') logger.warn({ timeoutMs }, 'tracing: spans not exported within exportTimeoutMs at shutdown; dropping them');
  } catch (err) {
    logger.warn({ error: (err as Error).message }, 'tracing: flushing spans at shutdown failed');
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The OTLP exporter reports failures only through the global diag logger (silent unless registered): a wrong
 * endpoint or a dead collector would lose every span without a word. This wrapper logs failed exports, at most once
 * a minute, with the error message only (never the headers, which carry API keys).
 */
class LoggingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #logger: Logger;
  /** ExportResultCode.SUCCESS, passed in because @opentelemetry/core is loaded on demand. */
  readonly #success: number;
  #lastWarn = -Infinity;
  #failedSince = 0;
  constructor(inner: SpanExporter, logger: Logger, success: number) {
    this.#inner = inner;
    this.#logger = logger;
    this.#success = success;
  }
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      if (result.code !== this.#success) this.#failed(spans.length, result.error);
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
  #failed(spans: number, error: Error | undefined): void {
    this.#failedSince += spans;
    const now = performance.now();
    if (now - this.#lastWarn < EXPORT_WARN_INTERVAL_MS) return;
    this.#logger.warn({ droppedSpans: this.#failedSince, error: error?.message }, 'tracing: OTLP export failed; spans dropped');
    this.#lastWarn = now;
    this.#failedSince = 0;
  }
}

/** The endpoint without credentials or query (either may hold a token), for the startup log line. */
function safeUrl(endpoint: string): string {
  const u = new URL(endpoint);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
