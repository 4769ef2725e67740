/**
 * Composition root: config -> protos -> route table -> listeners. Everything derivable is built here, once,
 * before anything listens; a bad config or proto stops here with a StartupError.
 *
 * Lifecycle: created -> started (listeners up, ready) -> draining (readiness fails, listeners still accept for
 * shutdown.drainDelayMs so endpoint removal can propagate) -> closing (no new connections; in-flight requests get
 * shutdown.timeoutMs) -> closed.
 */
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
import { startPassthrough, type PassthroughServer } from './passthrough/index.ts';
import { buildServiceMatcher } from './upstream/service-matcher.ts';

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
  const logger = options.logger ?? createLogger(config.log.level);
  const protos = loadProtos(config.protos);
  checkBackendServices(protos, config, configFile);
  const routes = buildRouteTable(protos, config, configFile);
  const metrics = new Metrics();

  const invokers = new Map<string, GrpcInvoker>();
  const timeouts = new Map<string, number>();
  for (const b of config.backends) {
    invokers.set(b.name, new GrpcInvoker(b));
    timeouts.set(b.name, b.timeoutMs);
  }
  const inFlight = { count: 0 };
  const app = createHttpApp({
    routes,
    bodyLimit: config.http.bodyLimit,
    logger,
    metrics,
    inFlight,
    context: {
      registry: protos.registry,
      invokers,
      timeouts,
      metadata: { forwardHeaders: new Set(config.transcoding.forwardHeaders.map((h) => h.toLowerCase())) },
    },
  });

  for (const c of routes.conflicts) logger.warn({ conflict: c.kind, method: c.method }, c.message);
  for (const s of routes.skipped) logger.warn(s);

  let state: 'created' | 'started' | 'draining' | 'closed' = 'created';
  let admin: AdminServer | undefined;
  let passthrough: PassthroughServer | undefined;
  let httpUp = false;
  let bound: GatewayAddresses | undefined;
  const backendOf = buildServiceMatcher(config.backends);

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
    app.server.closeAllConnections();
    // After a drain the server is already closed; Fastify still runs its onClose hooks.
    await app.close().catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_SERVER_NOT_RUNNING') throw err;
    });
    for (const inv of invokers.values()) inv.close();
    await passthrough?.close({ graceMs: 0 });
    await admin?.close();
  };

  return {
    protos,
    routes,
    logger,
    metrics,
    addresses() {
      if (!bound) throw new Error('the gateway has not started');
      return bound;
    },
    async start() {
      // The admin listener comes up first: liveness answers while the rest starts.
      if (config.admin.enabled) {
        admin = await startAdminServer({ host: config.admin.host, port: config.admin.port, metrics, readiness, logger });
      }
      await app.listen({ host: config.http.host, port: config.http.port });
      httpUp = true;
      if (config.grpc.enabled) {
        passthrough = await startPassthrough({
          host: config.grpc.host,
          port: config.grpc.port,
          resolveService: backendOf,
          logger,
        });
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
      logger.info({ drainDelayMs: config.shutdown.drainDelayMs }, 'draining: readiness fails, still serving');
      await sleep(config.shutdown.drainDelayMs);
      // No new connections; idle keep-alive connections go now, busy ones when their request ends. The gRPC port
      // sends GOAWAY and lets open streams finish within the same timeout.
      const grpcDrained = passthrough?.close({ graceMs: config.shutdown.timeoutMs });
      app.server.close();
      app.server.closeIdleConnections();
      const deadline = Date.now() + config.shutdown.timeoutMs;
      while (inFlight.count > 0 && Date.now() < deadline) {
        await sleep(20);
        app.server.closeIdleConnections();
      }
      if (inFlight.count > 0) logger.warn({ inFlight: inFlight.count }, 'shutdown timeout: cancelling requests still in flight');
      await grpcDrained;
      await closeAll();
    },
    close: closeAll,
  };
}
