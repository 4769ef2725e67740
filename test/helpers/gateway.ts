/** Starts a real protogate (REST listener on 127.0.0.1:0) from a config object; closed by the caller. */
import path from 'node:path';
import { resolveConfig, type GatewayConfig } from '../../src/config/index.ts';
import { createGateway, type Gateway } from '../../src/gateway.ts';

export interface RunningGateway {
  gateway: Gateway;
  url: string;
  close(): Promise<void>;
}

export async function startGateway(config: GatewayConfig, baseDir = process.cwd()): Promise<RunningGateway> {
  const resolved = resolveConfig(
    { log: { level: (process.env['PG_TEST_LOG'] as 'silent') ?? 'silent' }, ...config, http: { host: '127.0.0.1', port: 0, ...config.http }, grpc: { port: 0, ...config.grpc } },
    path.join(baseDir, 'test.config.ts'),
  );
  const gateway = createGateway(resolved, { configFile: 'test.config.ts' });
  const { http } = await gateway.start();
  return { gateway, url: `http://127.0.0.1:${http.port}`, close: () => gateway.close() };
}
