/**
 * Composition root: config -> protos -> route table -> listeners. Everything derivable is built here, once,
 * before anything listens; a bad config or proto stops here with a StartupError.
 */
import type { AddressInfo } from 'node:net';
import type { ResolvedConfig } from './config/index.ts';
import { loadProtos, type ProtoSet } from './proto/load.ts';
import { buildRouteTable, checkBackendServices, type RouteTable } from './http/routes.ts';
import { createHttpApp } from './http/app.ts';
import { GrpcInvoker } from './upstream/grpc-invoker.ts';
import { createLogger, type Logger } from './observability/logger.ts';

export interface GatewayOptions {
  /** Named in startup errors. */
  configFile?: string;
  logger?: Logger;
}

export interface Gateway {
  readonly protos: ProtoSet;
  readonly routes: RouteTable;
  readonly logger: Logger;
  /** Starts the listeners; resolves with their bound addresses (port 0 gets a real port). */
  start(): Promise<{ http: AddressInfo }>;
  close(): Promise<void>;
}

export function createGateway(config: ResolvedConfig, options: GatewayOptions = {}): Gateway {
  const configFile = options.configFile ?? '(config object)';
  const logger = options.logger ?? createLogger(config.log.level);
  const protos = loadProtos(config.protos);
  checkBackendServices(protos, config, configFile);
  const routes = buildRouteTable(protos, config, configFile);

  const invokers = new Map<string, GrpcInvoker>();
  const timeouts = new Map<string, number>();
  for (const b of config.backends) {
    invokers.set(b.name, new GrpcInvoker(b));
    timeouts.set(b.name, b.timeoutMs);
  }
  const app = createHttpApp({
    routes,
    bodyLimit: config.http.bodyLimit,
    logger,
    context: {
      registry: protos.registry,
      invokers,
      timeouts,
      metadata: { forwardHeaders: new Set(config.transcoding.forwardHeaders.map((h) => h.toLowerCase())) },
    },
  });

  for (const c of routes.conflicts) logger.warn({ conflict: c.kind, method: c.method }, c.message);
  for (const s of routes.skipped) logger.warn(s);

  return {
    protos,
    routes,
    logger,
    async start() {
      await app.listen({ host: config.http.host, port: config.http.port });
      const http = app.server.address() as AddressInfo;
      logger.info(
        { http: `${http.address}:${http.port}`, services: protos.services.size, routes: routes.count },
        `protogate listening: REST on http://${http.address}:${http.port}, ${protos.services.size} services, ${routes.count} routes`,
      );
      return { http };
    },
    async close() {
      await app.close();
      for (const inv of invokers.values()) inv.close();
    },
  };
}
