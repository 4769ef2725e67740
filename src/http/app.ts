/**
 * The REST listener: the only module that imports Fastify. One catch-all route in front of our own matcher,
 * because find-my-way cannot express `**` mid-path or a verb after a variable (STACK-NOTES), and a raw-body
 * content-type parser so that Fastify never parses bodies itself: transcode/ does, exactly per proto3 JSON.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyBaseLogger } from 'fastify';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import { Code, GatewayError, StartupError, toGatewayError } from '../errors/index.ts';
import { PathDecodeError } from '../routing/index.ts';
import { accessLogLine, requestId as makeRequestId } from '../observability/access-log.ts';
import { UNMATCHED_ROUTE, type HttpRouteMetrics, type Metrics } from '../observability/metrics.ts';
import type { TracedRoute, Tracing } from '../observability/tracing.ts';
import type { RouteEntry, RouteTable } from './routes.ts';
import { handleTranscode, sendStatus, type HandlerContext, type Outcome } from './transcode-handler.ts';

export interface HttpAppOptions {
  routes: RouteTable;
  context: HandlerContext;
  bodyLimit: number;
  logger: FastifyBaseLogger;
  metrics: Metrics;
  /** Requests in flight, for the graceful drain and maxConcurrentRequests. */
  inFlight: { count: number };
  maxHeaderSize: number;
  /** 0 = no limit. */
  maxConcurrentRequests: number;
  /** PEM key and certificate: HTTPS, with HTTP/2 through ALPN. */
  tls?: { key: Buffer; cert: Buffer };
  cors?: Record<string, unknown>;
  rateLimit?: { max: number; timeWindowMs: number; keyHeader?: string };
  /** OpenTelemetry spans; undefined = tracing off (the default), which costs one check per request. */
  tracing?: Tracing;
}

/** Methods Fastify knows without registration; custom-verb kinds from HTTP rules are added on top. */
const BASE_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];

export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const tls = options.tls;
  // HTTP/1.1, or HTTPS with HTTP/2 by ALPN: Fastify's types split these into overloads; the handlers only use the
  // compatibility API both share, so one (untyped) options object serves.
  const fastifyOptions = {
    ...(tls
      ? {
          http2: true as const,
          https: {
            allowHTTP1: true,
            key: tls.key,
            cert: tls.cert,
            maxHeaderSize: options.maxHeaderSize,
            settings: { maxHeaderListSize: options.maxHeaderSize },
          },
        }
      : { http: { maxHeaderSize: options.maxHeaderSize } }),
    // A request head over maxHeaderSize: answer 431 with a google.rpc.Status, as every other limit does.
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const [status, reason, code, message] = err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', Code.RESOURCE_EXHAUSTED, `request headers are larger than the limit (http.maxHeaderSize = ${options.maxHeaderSize} bytes)`]
        : [400, 'Bad Request', Code.INVALID_ARGUMENT, 'malformed HTTP request'];
      const body = JSON.stringify({ code, message, details: [] });
      socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    },
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimit,
    // One access-log line per request is written by the gateway itself, with the route template and gRPC code.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify makes a child logger per request; the access line carries the request id itself, so the shared
    // logger serves and a per-request allocation goes away.
    childLoggerFactory: (logger: FastifyBaseLogger) => logger,
    // Our matcher sees the path exactly as sent: Fastify must not rewrite or reject it first.
    routerOptions: { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 65535 },
    return503OnClosing: true,
    forceCloseConnections: true,
  };
  const app = Fastify(fastifyOptions as never) as unknown as FastifyInstance;

  // @fastify/cors answers preflights from its own OPTIONS route (in an onRequest hook, before anything else runs).
  const methods = new Set(options.cors ? BASE_METHODS.filter((m) => m !== 'OPTIONS') : BASE_METHODS);
  if (options.cors) {
    if (options.routes.httpMethods.has('OPTIONS')) {
      throw new StartupError('http.cors: an HTTP rule uses the OPTIONS method, which CORS preflight needs. Fix: remove http.cors or that rule.');
    }
    // Imported only when configured (as is @fastify/rate-limit below): heap that a gateway without them
    // would otherwise carry, and every Mark-Compact would trace. Fastify awaits the import in registration order.
    void app.register(import('@fastify/cors'), options.cors);
  }
  const limit = options.rateLimit;
  if (limit) {
    // @fastify/rate-limit runs in onRequest, before routing and body parsing, and sets the X-RateLimit-* and
    // Retry-After headers itself; only its error body is ours (google.rpc.Status through the error handler).
    void app.register(import('@fastify/rate-limit'), {
      max: limit.max,
      timeWindow: limit.timeWindowMs,
      keyGenerator: (req) => {
        const v = limit.keyHeader ? req.headers[limit.keyHeader.toLowerCase()] : undefined;
        return (Array.isArray(v) ? v[0] : v) ?? req.ip;
      },
      errorResponseBuilder: (_req, ctx) => new GatewayError(Code.RESOURCE_EXHAUSTED,
        `rate limit exceeded: ${ctx.max} requests per ${ctx.after}${limit.keyHeader ? ` per ${limit.keyHeader}` : ' per client address'}`,
        { httpStatus: 429 }),
    });
  }
  for (const m of options.routes.httpMethods) {
    if (!methods.has(m)) {
      if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
      methods.add(m);
    }
  }

  // What a request needs of its route (access-log template, metric label children, span name and attributes when
  // tracing is on) is made once here, so a request does one lookup.
  const tracing = options.tracing;
  const perRoute = new Map<RouteEntry, { template: string; metrics: HttpRouteMetrics; traced: TracedRoute | undefined }>();
  for (const r of options.routes.router.routes()) {
    const template = `${r.method} ${r.template}`;
    const { service, name } = r.value.method;
    perRoute.set(r.value, {
      template,
      metrics: options.metrics.httpRoute(template, `${service}/${name}`),
      traced: tracing?.route(r.method, r.template, service, name),
    });
  }
  const unmatched = options.metrics.httpRoute(UNMATCHED_ROUTE, '');
  const scheme = options.tls ? 'https' : 'http';

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const raw = request.raw;
    const res = reply.raw;
    const started = performance.now();
    const reqId = makeRequestId(raw.headers);
    const outcome: Outcome = { grpcCode: Code.UNKNOWN, resBytes: 0 };
    const reqBytes = (request.body as Buffer | undefined)?.length ?? 0;
    const span = tracing?.startHttpSpan({
      method: request.method, headers: raw.headers, requestId: reqId, clientAddress: raw.socket.remoteAddress, scheme,
      httpVersion: raw.httpVersion,
    });
    let entry: RouteEntry | undefined;
    // The in-flight gauge has no labels: start on any handle, finish on the route's once it is known.
    unmatched.start();
    options.inFlight.count++;
    // Headers set by hooks before us (CORS) live on the Fastify reply; we answer on the raw response.
    const preset = reply.getHeaders();
    reply.hijack();
    for (const k in preset) res.setHeader(k, preset[k] as string);
    res.setHeader('x-request-id', reqId);
    // One access-log line and one metrics sample per request, however it ends (answer, error, disconnect).
    res.once('close', () => {
      options.inFlight.count--;
      const status = res.writableEnded ? res.statusCode : 499;
      // A response closed before it ended is a client that went away: CANCELLED (code.proto maps it to 499). The
      // handler learns it only after this listener ran, so outcome.grpcCode would still say UNKNOWN here.
      if (!res.writableEnded) outcome.grpcCode = Code.CANCELLED;
      const seconds = (performance.now() - started) / 1000;
      const route = entry && perRoute.get(entry);
      const m = route?.metrics ?? unmatched;
      m.requestBytes(reqBytes);
      m.responseBytes(outcome.resBytes);
      m.finish(outcome.grpcCode, status, seconds);
      span?.end(status, outcome.grpcCode);
      request.log.info(accessLogLine({
        method: request.method,
        route: route?.template,
        grpcMethod: entry ? `${entry.method.service}/${entry.method.name}` : undefined,
        status,
        grpcCode: outcome.grpcCode,
        durationMs: seconds * 1000,
        reqBytes,
        resBytes: outcome.resBytes,
        requestId: reqId,
        remoteAddress: raw.socket.remoteAddress,
        headers: raw.headers,
      }), 'request');
    });
    try {
      if (options.maxConcurrentRequests > 0 && options.inFlight.count > options.maxConcurrentRequests) {
        throw new GatewayError(Code.UNAVAILABLE, `too many requests in flight (http.maxConcurrentRequests = ${options.maxConcurrentRequests}); retry shortly`, {
          headers: { 'retry-after': '1' },
        });
      }
      const url = raw.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const match = matchRoute(request.method, path);
      entry = match.value;
      span?.matched(perRoute.get(entry)!.traced!);
      await handleTranscode(options.context, {
        entry,
        path,
        params: match.params,
        query: q < 0 ? '' : url.slice(q + 1),
        body: request.body as Buffer | undefined,
        headers: raw.headers,
        remoteAddress: raw.socket.remoteAddress,
        res,
        requestId: reqId,
        traceparent: span?.traceparent,
        outcome,
      });
    } catch (err) {
      const e = toGatewayError(err);
      if (e.code === Code.INTERNAL) request.log.error({ err, requestId: reqId }, 'request failed');
      outcome.grpcCode = e.code;
      outcome.resBytes = sendStatus(res, { ...e.toStatusJson(), httpStatus: e.httpStatus, headers: e.headers });
    }
  };

  function matchRoute(method: string, path: string) {
    let match;
    try {
      match = options.routes.router.match(method, path);
    } catch (err) {
      if (err instanceof PathDecodeError) throw new GatewayError(Code.INVALID_ARGUMENT, err.message);
      throw err;
    }
    if (match.kind === 'not-found') {
      throw new GatewayError(Code.NOT_FOUND, `no route for ${method} ${path}`);
    }
    if (match.kind === 'method-not-allowed') {
      throw new GatewayError(Code.UNIMPLEMENTED, `method ${method} is not allowed for ${path}`, {
        httpStatus: 405,
        headers: { allow: match.allow.join(', ') },
      });
    }
    return match;
  }

  // Registered as a plugin so it loads after the CORS and rate-limit plugins: @fastify/rate-limit attaches itself to
  // routes as they are added, and a route added before it loads would go unlimited.
  void app.register(async (scope) => {
    scope.route({ method: [...methods], url: '*', exposeHeadRoute: false, handler });
  });
  app.setNotFoundHandler(handler);
  // Errors Fastify raises before our handler runs (body too large, bad Content-Length).
  app.setErrorHandler((err, request, reply) => {
    const e = fromFastifyError(err);
    if (e.code === Code.INTERNAL) request.log.error({ err }, 'request failed');
    const reqId = makeRequestId(request.headers);
    request.log.info(accessLogLine({
      method: request.method, route: undefined, grpcMethod: undefined, status: e.httpStatus, grpcCode: e.code,
      durationMs: 0, reqBytes: 0, resBytes: 0, requestId: reqId, remoteAddress: request.ip,
      headers: request.headers,
    }), 'request');
    tracing?.startHttpSpan({
      method: request.method, headers: request.headers, requestId: reqId, clientAddress: request.ip, scheme,
      httpVersion: request.raw.httpVersion,
    }).end(e.httpStatus, e.code);
    for (const [k, v] of Object.entries(e.headers ?? {})) void reply.header(k, v);
    void reply.code(e.httpStatus).type('application/json').send(JSON.stringify(e.toStatusJson()));
  });
  return app;
}

/** Fastify's own errors (body too large, bad content length...) as google.rpc.Status with the right HTTP status. */
function fromFastifyError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError(Code.RESOURCE_EXHAUSTED, `request body is larger than the limit (http.bodyLimit): ${e.message}`, { httpStatus: 413 });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError(Code.INVALID_ARGUMENT, 'request body length does not match Content-Length');
    default:
      if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
        return new GatewayError(Code.INVALID_ARGUMENT, e.message ?? 'bad request', { httpStatus: e.statusCode });
      }
      return toGatewayError(err);
  }
}
