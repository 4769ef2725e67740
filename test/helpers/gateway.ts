/** Starts a real protogate (REST listener on 127.0.0.1:0) from a config object; closed by the caller. */
import path from 'node:path';
import { resolveConfig, type GatewayConfig } from '../../src/config/index.ts';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/gateway.ts';

export interface RunningGateway {
  gateway: Gateway;
  url: string;
  adminUrl: string | undefined;
  close(): Promise<void>;
}

export async function startGateway(config: GatewayConfig, baseDir = process.cwd(), options: GatewayOptions = {}): Promise<RunningGateway> {
  const resolved = resolveConfig(
    { log: { level: (process.env['PG_TEST_LOG'] as 'silent') ?? 'silent' }, ...config, http: { host: '127.0.0.1', port: 0, ...config.http }, grpc: { port: 0, ...config.grpc }, admin: { port: 0, ...config.admin } },
    path.join(baseDir, 'test.config.ts'),
  );
  const gateway = createGateway(resolved, { configFile: 'test.config.ts', ...options });
  const { http, admin } = await gateway.start();
  return {
    gateway,
    url: `http://127.0.0.1:${http.port}`,
    adminUrl: admin ? `http://127.0.0.1:${admin.port}` : undefined,
    close: () => gateway.close(),
  };
}
