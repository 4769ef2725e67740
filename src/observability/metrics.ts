/**
 * The one list of metrics. Every metric protogate exports is declared in METRIC_DEFS below, with its help text
 * and labels; the registry is built from that list, so the README table (METRICS_DOC) and /metrics cannot drift.
 *
 * Each gateway owns a Registry of its own (never prom-client's global one), so two gateways in one process or
 * one test file do not collide. Imports nothing from the rest of the gateway.
 *
 * Cardinality: every label value comes from a bounded set fixed at startup or by the upstream topology:
 *   route        the path TEMPLATE of the matched rule ("/v1/{name=shelves/*}"), never the raw path
 *   grpc_method  "pkg.Service/Method" of a proto-declared method
 *   grpc_code    one of the 17 code names; anything else is reported as UNKNOWN
 *   service, method (passthrough) come from the client's :path and are NOT bounded by any proto, so the number of
 *                distinct pairs is capped (maxPassthroughMethods); past the cap they are counted as "(other)"
 *   backend, endpoint  from the config and the resolver; removed again when an endpoint goes away
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client';

export interface MetricDoc {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly labels: readonly string[];
  readonly help: string;
}

/**
 * Latency buckets in seconds. A gateway adds well under a millisecond, so the low end must resolve 0.5 ms; the
 * high end stops at 10 s because longer unary calls are outliers whose exact value matters less than their count.
 */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Passthrough calls include long-lived streams (watches, chat), so this histogram also covers minutes and an hour. */
export const STREAM_BUCKETS: readonly number[] = [...LATENCY_BUCKETS, 30, 60, 300, 1800, 3600];

const METRIC_DEFS = {
  // REST/JSON transcoding (the HTTP listener).
  httpRequests: {
    name: 'protogate_http_requests_total',
    type: 'counter',
    labels: ['route', 'grpc_method', 'grpc_code', 'http_status'],
    help: 'REST requests answered, by route template, gRPC method, gRPC status code and HTTP status.',
  },
  httpDuration: {
    name: 'protogate_http_request_duration_seconds',
    type: 'histogram',
    labels: ['route', 'grpc_method'],
    help: 'Time from receiving a REST request to sending the last byte of its response, in seconds.',
  },
  httpInFlight: {
    name: 'protogate_http_requests_in_flight',
    type: 'gauge',
    labels: [],
    help: 'REST requests being handled right now.',
  },
  httpRequestBytes: {
    name: 'protogate_http_request_bytes_total',
    type: 'counter',
    labels: ['route', 'grpc_method'],
    help: 'REST request body bytes received.',
  },
  httpResponseBytes: {
    name: 'protogate_http_response_bytes_total',
    type: 'counter',
    labels: ['route', 'grpc_method'],
    help: 'REST response body bytes sent.',
  },
  // gRPC passthrough (the HTTP/2 listener).
  grpcStreams: {
    name: 'protogate_grpc_streams_total',
    type: 'counter',
    labels: ['service', 'method', 'grpc_code'],
    help: 'Passthrough gRPC calls finished, by service, method and gRPC status code.',
  },
  grpcInFlight: {
    name: 'protogate_grpc_streams_in_flight',
    type: 'gauge',
    labels: [],
    help: 'Passthrough gRPC calls open right now.',
  },
  grpcDuration: {
    name: 'protogate_grpc_stream_duration_seconds',
    type: 'histogram',
    labels: ['service', 'method'],
    help: 'Duration of a passthrough gRPC call from its request headers to its trailers, in seconds.',
  },
  grpcReceivedBytes: {
    name: 'protogate_grpc_received_bytes_total',
    type: 'counter',
    labels: ['service', 'method'],
    help: 'Passthrough bytes received from clients (gRPC frames, including the 5-byte prefixes).',
  },
  grpcSentBytes: {
    name: 'protogate_grpc_sent_bytes_total',
    type: 'counter',
    labels: ['service', 'method'],
    help: 'Passthrough bytes sent to clients (gRPC frames, including the 5-byte prefixes).',
  },
  // Upstream backends.
  upstreamConnections: {
    name: 'protogate_upstream_connections',
    type: 'gauge',
    labels: ['backend', 'endpoint'],
    help: 'Open HTTP/2 connections to each backend endpoint.',
  },
  upstreamHealthy: {
    name: 'protogate_upstream_endpoint_healthy',
    type: 'gauge',
    labels: ['backend', 'endpoint'],
    help: '1 if the endpoint is currently eligible for traffic, 0 if health checks or connection failures took it out.',
  },
  // Configuration.
  configReloads: {
    name: 'protogate_config_reloads_total',
    type: 'counter',
    labels: ['result'],
    help: 'Configuration reloads attempted, by result ("success" or "failure").',
  },
} as const satisfies Record<string, MetricDoc>;

/** Every protogate metric, for the README's metric table. prom-client's default process_* and nodejs_* come on top. */
export const METRICS_DOC: readonly MetricDoc[] = Object.freeze(
  Object.values(METRIC_DEFS).map((d) => Object.freeze({ ...d, labels: Object.freeze([...d.labels]) })),
);

/** Names of google/rpc/code.proto by wire value; kept here because observability/ imports nothing. */
const GRPC_CODE_NAMES: readonly string[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED',
  'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

/** The label value of a gRPC code. Codes outside the enum are UNKNOWN, as gRPC itself treats them. */
export function grpcCodeName(code: number): string {
  return GRPC_CODE_NAMES[code] ?? 'UNKNOWN';
}

/** The route label of a REST request that matched no rule (404/405 before routing). */
export const UNMATCHED_ROUTE = '(unmatched)';
/** The service/method label of passthrough calls past the cardinality cap. */
export const OTHER = '(other)';

export interface MetricsOptions {
  /** Also register prom-client's process_* and nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
  /** Distinct passthrough (service, method) pairs labelled individually before the rest become "(other)". */
  maxPassthroughMethods?: number;
}

type Labels<K extends keyof typeof METRIC_DEFS> = (typeof METRIC_DEFS)[K]['labels'][number];

/** The metric families one kind of handle writes to; a handle derives its label children from them once. */
interface HttpFamilies {
  requests: Counter<Labels<'httpRequests'>>;
  duration: Histogram<Labels<'httpDuration'>>;
  inFlight: Gauge;
  requestBytes: Counter<Labels<'httpRequestBytes'>>;
  responseBytes: Counter<Labels<'httpResponseBytes'>>;
}
interface GrpcFamilies {
  streams: Counter<Labels<'grpcStreams'>>;
  duration: Histogram<Labels<'grpcDuration'>>;
  inFlight: Gauge;
  received: Counter<Labels<'grpcReceivedBytes'>>;
  sent: Counter<Labels<'grpcSentBytes'>>;
}

export class Metrics {
  readonly registry: Registry;
  readonly #http: HttpFamilies;
  readonly #grpc: GrpcFamilies;
  readonly #upstreamConnections: Gauge<Labels<'upstreamConnections'>>;
  readonly #upstreamHealthy: Gauge<Labels<'upstreamHealthy'>>;
  readonly #reloadSuccess: Counter.Internal;
  readonly #reloadFailure: Counter.Internal;
  readonly #routes = new Map<string, HttpRouteMetrics>();
  readonly #passthrough = new Map<string, GrpcMethodMetrics>();
  readonly #maxPassthroughMethods: number;

  constructor(options: MetricsOptions = {}) {
    const registry = new Registry();
    this.registry = registry;
    this.#maxPassthroughMethods = options.maxPassthroughMethods ?? 2000;
    const common = <K extends keyof typeof METRIC_DEFS>(k: K) => ({
      name: METRIC_DEFS[k].name, help: METRIC_DEFS[k].help, labelNames: METRIC_DEFS[k].labels, registers: [registry],
    });
    const counter = <K extends keyof typeof METRIC_DEFS>(k: K) => new Counter<Labels<K>>(common(k));
    const gauge = <K extends keyof typeof METRIC_DEFS>(k: K, aggregator: Aggregator = 'sum') =>
      new Gauge<Labels<K>>({ ...common(k), aggregator });
    const histogram = <K extends keyof typeof METRIC_DEFS>(k: K, buckets: readonly number[]) =>
      new Histogram<Labels<K>>({ ...common(k), buckets: [...buckets] });

    this.#http = {
      requests: counter('httpRequests'),
      duration: histogram('httpDuration', LATENCY_BUCKETS),
      inFlight: gauge('httpInFlight'),
      requestBytes: counter('httpRequestBytes'),
      responseBytes: counter('httpResponseBytes'),
    };
    this.#grpc = {
      streams: counter('grpcStreams'),
      inFlight: gauge('grpcInFlight'),
      duration: histogram('grpcDuration', STREAM_BUCKETS),
      received: counter('grpcReceivedBytes'),
      sent: counter('grpcSentBytes'),
    };
    this.#upstreamConnections = gauge('upstreamConnections');
    // With workers > 1 the primary sums the workers' registries (prom-client AggregatorRegistry); a 0/1 flag must
    // not add up to 2, so an endpoint counts as healthy only when every worker sees it so.
    this.#upstreamHealthy = gauge('upstreamHealthy', 'min');
    const reloads = counter('configReloads');
    // Both series exist at 0 from the start, so increase() and alerts on failures work from the first reload.
    this.#reloadSuccess = reloads.labels({ result: 'success' });
    this.#reloadFailure = reloads.labels({ result: 'failure' });
    this.#reloadSuccess.inc(0);
    this.#reloadFailure.inc(0);

    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  }

  /** The Content-Type of render()'s output (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric, for GET /metrics. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * The metrics of one REST route, created once when the route is registered. `route` is the path template, never
   * a request path; pass UNMATCHED_ROUTE and "" for requests that matched nothing.
   */
  httpRoute(route: string, grpcMethod: string): HttpRouteMetrics {
    const key = `${route}\n${grpcMethod}`;
    let m = this.#routes.get(key);
    if (!m) this.#routes.set(key, (m = new HttpRouteMetrics(route, grpcMethod, this.#http)));
    return m;
  }

  /**
   * The metrics of one passthrough method, looked up per call (the passthrough knows no method list). Past
   * maxPassthroughMethods distinct pairs, new pairs share the "(other)" series so a client inventing method names
   * cannot grow the registry without bound.
   */
  grpcMethod(service: string, method: string): GrpcMethodMetrics {
    let key = `${service}/${method}`;
    let m = this.#passthrough.get(key);
    if (m) return m;
    if (this.#passthrough.size >= this.#maxPassthroughMethods) {
      key = `${OTHER}/${OTHER}`;
      m = this.#passthrough.get(key);
      if (m) return m;
      service = method = OTHER;
    }
    this.#passthrough.set(key, (m = new GrpcMethodMetrics(service, method, this.#grpc)));
    return m;
  }

  /** Sets the open-connection count of one backend endpoint. */
  setUpstreamConnections(backend: string, endpoint: string, connections: number): void {
    this.#upstreamConnections.set({ backend, endpoint }, connections);
  }

  setUpstreamHealthy(backend: string, endpoint: string, healthy: boolean): void {
    this.#upstreamHealthy.set({ backend, endpoint }, healthy ? 1 : 0);
  }

  /** Drops an endpoint's series when the resolver no longer returns it, so dead endpoints do not linger forever. */
  removeUpstreamEndpoint(backend: string, endpoint: string): void {
    this.#upstreamConnections.remove({ backend, endpoint });
    this.#upstreamHealthy.remove({ backend, endpoint });
  }

  configReloaded(ok: boolean): void {
    (ok ? this.#reloadSuccess : this.#reloadFailure).inc();
  }
}

/** Codes outside the enum count as UNKNOWN, so a misbehaving upstream cannot add series. */
function knownCode(code: number): number {
  return GRPC_CODE_NAMES[code] === undefined ? 2 : code;
}

/**
 * One REST route's series. Contract: every start() is followed by exactly one finish(); bytes may be added
 * as they flow (so a long server-streaming response shows up before it ends).
 */
export class HttpRouteMetrics {
  readonly route: string;
  readonly grpcMethod: string;
  readonly #requests: HttpFamilies['requests'];
  /** (grpc code * 1000 + http status) -> child; a route sees only a handful of pairs. */
  readonly #outcomes = new Map<number, Counter.Internal>();
  readonly #duration: Histogram.Internal<Labels<'httpDuration'>>;
  readonly #inFlight: Gauge;
  readonly #requestBytes: Counter.Internal;
  readonly #responseBytes: Counter.Internal;

  constructor(route: string, grpcMethod: string, families: HttpFamilies) {
    const labels = { route, grpc_method: grpcMethod };
    this.route = route;
    this.grpcMethod = grpcMethod;
    this.#requests = families.requests;
    this.#duration = families.duration.labels(labels);
    this.#inFlight = families.inFlight;
    this.#requestBytes = families.requestBytes.labels(labels);
    this.#responseBytes = families.responseBytes.labels(labels);
  }

  start(): void {
    this.#inFlight.inc();
  }

  requestBytes(n: number): void {
    if (n > 0) this.#requestBytes.inc(n);
  }

  responseBytes(n: number): void {
    if (n > 0) this.#responseBytes.inc(n);
  }

  finish(grpcCode: number, httpStatus: number, durationSeconds: number): void {
    this.#inFlight.dec();
    const code = knownCode(grpcCode);
    const key = code * 1000 + httpStatus;
    let child = this.#outcomes.get(key);
    if (!child) {
      const labels = { route: this.route, grpc_method: this.grpcMethod, grpc_code: grpcCodeName(code), http_status: String(httpStatus) };
      this.#outcomes.set(key, (child = this.#requests.labels(labels)));
    }
    child.inc();
    this.#duration.observe(durationSeconds);
  }
}

/** One passthrough method's series; the same start()/finish() contract as HttpRouteMetrics. */
export class GrpcMethodMetrics {
  readonly service: string;
  readonly method: string;
  readonly #streams: GrpcFamilies['streams'];
  /** Indexed by gRPC code. */
  readonly #outcomes: Array<Counter.Internal | undefined> = [];
  readonly #duration: Histogram.Internal<Labels<'grpcDuration'>>;
  readonly #inFlight: Gauge;
  readonly #received: Counter.Internal;
  readonly #sent: Counter.Internal;

  constructor(service: string, method: string, families: GrpcFamilies) {
    const labels = { service, method };
    this.service = service;
    this.method = method;
    this.#streams = families.streams;
    this.#duration = families.duration.labels(labels);
    this.#inFlight = families.inFlight;
    this.#received = families.received.labels(labels);
    this.#sent = families.sent.labels(labels);
  }

  start(): void {
    this.#inFlight.inc();
  }

  receivedBytes(n: number): void {
    if (n > 0) this.#received.inc(n);
  }

  sentBytes(n: number): void {
    if (n > 0) this.#sent.inc(n);
  }

  finish(grpcCode: number, durationSeconds: number): void {
    this.#inFlight.dec();
    const code = knownCode(grpcCode);
    let child = this.#outcomes[code];
    if (!child) this.#outcomes[code] = child = this.#streams.labels({ service: this.service, method: this.method, grpc_code: grpcCodeName(code) });
    child.inc();
    this.#duration.observe(durationSeconds);
  }
}
