/**
 * Composition root: config -> protos -> route table -> listeners. Everything derivable is built here, once,
 * before anything listens; a bad config or proto stops here with a StartupError.
 *
 * Lifecycle: created -> started (listeners up, ready) -> draining (readiness fails, listeners still accept for
 * shutdown.drainDelayMs so endpoint removal can propagate) -> closing (no new connections; in-flight requests get
 * shutdown.timeoutMs) -> closed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ResolvedConfig } from './config/index.ts';
import { loadProtos, type ProtoSet } from './proto/load.ts';
import { buildRouteTable, checkBackendServices, type RouteTable } from './http/routes.ts';
import { createHttpApp } from './http/app.ts';
import { startAdminServer, type AdminServer } from './http/admin.ts';
import { GrpcInvoker } from './upstream/grpc-invoker.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { createTracing } from './observability/tracing.ts';
import { CertificateFiles } from './http/certificates.ts';
import { startPassthrough, type PassthroughServer } from './passthrough/index.ts';
import { buildServiceMatcher } from './upstream/service-matcher.ts';
import { createUpstreams } from './upstream/from-config.ts';
import { describeBackends } from './upstream/describe.ts';
import type { BackendUpstream } from './upstream/backend-upstream.ts';
import { installLightAsyncBind } from './upstream/async-bind.ts';
import { ChurnSet, renewOnStreams, setStreamTableRenewal } from './upstream/stream-tables.ts';

export interface GatewayOptions {
  /** Named in startup errors. */
  configFile?: string;
  logger?: Logger;
}

export interface GatewayAddresses {
  http: AddressInfo;
  grpc?: AddressInfo;
  admin?: AddressInfo;
}

export interface Gateway {
  readonly protos: ProtoSet;
  readonly routes: RouteTable;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** One balancer per backend (shared by REST and passthrough), by backend name. */
  readonly upstreams: ReadonlyMap<string, BackendUpstream>;
  /** Starts the listeners; resolves with their bound addresses (port 0 gets a real port). */
  start(): Promise<GatewayAddresses>;
  /** The bound addresses once started. */
  addresses(): GatewayAddresses;
  /** Graceful: fail readiness, wait drainDelayMs, stop accepting, let in-flight work finish up to timeoutMs. */
  shutdown(): Promise<void>;
  /** Immediate: close everything now. */
  close(): Promise<void>;
}

export function createGateway(config: ResolvedConfig, options: GatewayOptions = {}): Gateway {
  const configFile = options.configFile ?? '(config object)';
  // Before any HTTP/2 session exists: every upstream request goes through AsyncResource#bind.
  if (config.runtime.lightAsyncBind) installLightAsyncBind();
  setStreamTableRenewal(config.runtime.renewStreamTables);
  const logger = options.logger ?? createLogger(config.log.level);
  const protos = loadProtos(config.protos);
  checkBackendServices(protos, config, configFile);
  const routes = buildRouteTable(protos, config, configFile);
  const metrics = new Metrics();
  // Undefined unless tracing.otlp is set. Creating it opens nothing: the exporter connects with the first batch.
  const tracing = createTracing(config.tracing.otlp, logger);

  // One balancer per backend, shared by transcoded calls and passthrough streams.
  const upstreams = createUpstreams(config.backends, { observer: metrics, logger });
  const invokers = new Map<string, GrpcInvoker>();
  const timeouts = new Map<string, number>();
  for (const b of config.backends) {
    invokers.set(b.name, new GrpcInvoker(upstreams.get(b.name)!, {
      transport: b.transport,
      maxReceiveMessageBytes: b.maxReceiveMessageBytes,
      maxSendMessageBytes: b.maxSendMessageBytes,
      retryPolicies: b.retryPolicies,
    }));
    timeouts.set(b.name, b.timeoutMs);
  }
  const inFlight = { count: 0 };
  const httpTls = config.http.tls ? new CertificateFiles(config.http.tls, logger) : undefined;
  const grpcTls = config.grpc.tls ? new CertificateFiles(config.grpc.tls, logger) : undefined;
  const app = createHttpApp({
    routes,
    bodyLimit: config.http.bodyLimit,
    logger,
    metrics,
    inFlight,
    maxHeaderSize: config.http.maxHeaderSize,
    maxConcurrentRequests: config.http.maxConcurrentRequests,
    tls: httpTls?.current(),
    cors: config.http.cors,
    rateLimit: config.http.rateLimit,
    tracing,
    context: {
      onRequest: config.hooks.onRequest,
      streamIdleTimeoutMs: config.http.streamIdleTimeoutMs,
      registry: protos.registry,
      invokers,
      timeouts,
      metadata: { forwardHeaders: new Set(config.transcoding.forwardHeaders.map((h) => h.toLowerCase())) },
    },
  });

  const restDrain = trackRestConnections(app.server as unknown as RestServer);

  for (const c of routes.conflicts) logger.warn({ conflict: c.kind, method: c.method }, c.message);
  for (const s of routes.skipped) logger.warn(s);

  let state: 'created' | 'started' | 'draining' | 'closed' = 'created';
  let admin: AdminServer | undefined;
  let passthrough: PassthroughServer | undefined;
  let httpUp = false;
  let bound: GatewayAddresses | undefined;
  const passthroughBackends = config.backends.map((b) => {
    const upstream = upstreams.get(b.name)!;
    return { name: b.name, services: b.services, default: b.default, endpoints: [], tls: upstream.settings.tls, upstream };
  });
  const backendOf = buildServiceMatcher(passthroughBackends);
  const backendByName = new Map(passthroughBackends.map((b) => [b.name, b]));

  const readiness = () => {
    const checks = [
      { name: 'protos', ok: true, detail: `${protos.services.size} services, ${routes.count} routes` },
      { name: 'http', ok: httpUp },
      ...(config.grpc.enabled ? [{ name: 'grpc', ok: passthrough !== undefined }] : []),
      { name: 'draining', ok: state === 'started', detail: state === 'draining' ? 'shutting down' : undefined },
    ];
    return { ready: checks.every((c) => c.ok), checks };
  };

  let closing: Promise<void> | undefined;
  const closeAll = (): Promise<void> => (closing ??= doClose());
  const doClose = async (): Promise<void> => {
    state = 'closed';
    httpTls?.close();
    grpcTls?.close();
    (app.server as unknown as { closeAllConnections?(): void }).closeAllConnections?.();
    // After a drain the server is already closed; Fastify still runs its onClose hooks.
    await app.close().catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_SERVER_NOT_RUNNING') throw err;
    });
    for (const inv of invokers.values()) inv.close();
    await passthrough?.close({ graceMs: 0 });
    await Promise.all([...upstreams.values()].map((u) => u.close(0)));
    await admin?.close();
    // Last, once every request has ended and so every span: export what is queued, within exportTimeoutMs.
    await tracing?.shutdown();
  };

  return {
    protos,
    routes,
    logger,
    metrics,
    upstreams,
    addresses() {
      if (!bound) throw new Error('the gateway has not started');
      return bound;
    },
    async start() {
      // The admin listener comes up first: liveness answers while the rest starts.
      if (config.admin.enabled) {
        admin = await startAdminServer({ host: config.admin.host, port: config.admin.port, metrics, readiness, logger });
      }
      // DNS names resolve before the first call; an unresolvable one is logged and re-tried, not fatal.
      await Promise.all([...upstreams.values()].map((u) => u.start()));
      for (const d of describeBackends(upstreams)) {
        logger.info({ backend: d.name, policy: d.policy, endpoints: d.endpoints.map((e) => `${e.address} w=${e.weight}`) },
          `upstream: backend "${d.name}" (${d.policy}): ${d.endpoints.length} endpoints`);
      }
      await app.listen({ host: config.http.host, port: config.http.port });
      httpUp = true;
      httpTls?.watch((ctx) => (app.server as unknown as { setSecureContext(c: object): void }).setSecureContext(ctx));
      if (config.grpc.enabled) {
        passthrough = await startPassthrough({
          host: config.grpc.host,
          port: config.grpc.port,
          resolveService: backendOf,
          metrics,
          limits: { streamIdleTimeoutMs: config.grpc.streamIdleTimeoutMs },
          tls: grpcTls?.current(),
          logger,
          tracing,
          onRequest: config.hooks.onRequest,
          rateLimit: config.grpc.rateLimit,
          backendByName: (name) => backendByName.get(name),
        });
        const server = passthrough;
        grpcTls?.watch((pair) => server.setTls(pair));
      }
      state = 'started';
      const http = app.server.address() as AddressInfo;
      const grpc = passthrough?.address;
      logger.info(
        {
          http: `${http.address}:${http.port}`,
          grpc: grpc ? `${grpc.address}:${grpc.port}` : undefined,
          admin: admin ? `${admin.address.address}:${admin.address.port}` : undefined,
          services: protos.services.size,
          routes: routes.count,
        },
        `protogate listening: REST on http://${http.address}:${http.port}` +
          (grpc ? `, gRPC on ${grpc.address}:${grpc.port}` : '') +
          `, ${protos.services.size} services, ${routes.count} routes`,
      );
      bound = { http, grpc, admin: admin?.address };
      return bound;
    },
    async shutdown() {
      if (state !== 'started') return closeAll();
      state = 'draining';
      const { drainDelayMs, timeoutMs } = config.shutdown;
      // From now on REST responses on HTTP/1.1 say `Connection: close`: keep-alive clients (load balancers) open
      // their next connection elsewhere instead of reusing one this process is about to close under them.
      restDrain.startDraining();
      logger.info({ drainDelayMs }, 'draining: readiness fails, still serving');
      await sleep(drainDelayMs);
      // No new connections; idle keep-alive connections go now, busy ones when their request ends. HTTP/2 clients
      // on either port get GOAWAY; open streams finish within the same timeout.
      const grpcDrained = passthrough?.close({ graceMs: timeoutMs });
      const server = app.server as unknown as RestServer;
      server.close();
      server.closeIdleConnections?.();
      restDrain.goaway();
      const deadline = Date.now() + timeoutMs;
      const busy = (): boolean => inFlight.count > 0 || (passthrough?.stats().activeStreams ?? 0) > 0;
      while (busy() && Date.now() < deadline) {
        await sleep(20);
        server.closeIdleConnections?.();
      }
      if (busy()) {
        logger.warn({ inFlight: inFlight.count, grpcStreams: passthrough?.stats().activeStreams ?? 0 },
          'shutdown timeout: cancelling requests still in flight with UNAVAILABLE');
        // Passthrough streams get UNAVAILABLE from the listener's cut, now (not when its own timer fires). Closing
        // the backend connections then ends every transcoded call through the path a lost backend takes: 503, or
        // with the headers sent, a last NDJSON `{"error": {"code": 14}}` line. The responses get a moment to reach
        // their clients before the sockets close.
        void passthrough?.close({ graceMs: 0 });
        for (const inv of invokers.values()) inv.close();
        await Promise.all([...upstreams.values()].map((u) => u.close(0)));
        const cutDeadline = Date.now() + CUT_GRACE_MS;
        while (busy() && Date.now() < cutDeadline) await sleep(10);
      }
      await grpcDrained;
      await closeAll();
    },
    close: closeAll,
  };
}

/** How long responses cut at shutdown.timeoutMs get to reach their clients before the sockets close. */
const CUT_GRACE_MS = 1_000;

/** The parts of the REST listener (node:http Server, or Http2SecureServer with allowHTTP1) the drain uses. */
interface RestServer {
  close(): void;
  closeIdleConnections?(): void;
  prependListener(event: 'request', fn: (req: IncomingMessage, res: ServerResponse) => void): void;
  on(event: 'session', fn: (session: ServerHttp2Session) => void): void;
}

/**
 * Connection bookkeeping for the REST drain. HTTP/1.1: once draining, every response not yet started carries
 * `Connection: close` and the server closes the connection after it, including responses already under way when
 * draining began (so those are tracked while running; a streamed response whose headers went out earlier keeps its
 * connection until it ends, then the idle-connection sweep closes it). HTTP/2 (TLS with ALPN): node:http2 v20's
 * server.close() does not tell open sessions, so each gets GOAWAY here; its open streams continue.
 */
function trackRestConnections(server: RestServer): { startDraining(): void; goaway(): void } {
  const open = new ChurnSet<ServerResponse>();
  const sessions = new Set<ServerHttp2Session>();
  let draining = false;
  const closeAfter = (res: ServerResponse): void => {
    if (!res.headersSent) res.shouldKeepAlive = false;
  };
  server.prependListener('request', (req, res) => {
    if (req.httpVersionMajor !== 1) return;
    if (draining) return closeAfter(res);
    open.add(res);
    res.once('close', () => open.delete(res));
  });
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    renewOnStreams(session);
  });
  return {
    startDraining() {
      draining = true;
      for (const res of open) closeAfter(res);
      open.clear();
    },
    goaway() {
      for (const s of sessions) if (!s.closed && !s.destroyed) s.close();
    },
  };
}
