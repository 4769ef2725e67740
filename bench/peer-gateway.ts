/**
 * protogate as the GATEWAY_CMD of ../shared/peers/bench.sh (the grpc-gateway side-by-side benchmark):
 *
 *   GATEWAY_NAME=protogate GATEWAY_CMD="node --import tsx $PWD/bench/peer-gateway.ts" ../shared/peers/bench.sh
 *
 * bench.sh passes GATEWAY_HOST, GATEWAY_PORT, BACKEND_ADDR, PROTO_ROOT and PROTO_FILE; this builds the same
 * config a user would write and starts the gateway in this process (so CPU and RSS are measured on it).
 */
import { resolveConfig } from '../src/config/index.ts';
import { createGateway } from '../src/gateway.ts';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`bench/peer-gateway.ts: ${name} is not set (run it through bench.sh)`);
  return v;
};
const config = resolveConfig(
  {
    http: { host: env('GATEWAY_HOST'), port: Number(env('GATEWAY_PORT')) },
    grpc: { enabled: false },
    protos: { includeDirs: [env('PROTO_ROOT')], files: [`${env('PROTO_ROOT')}/${env('PROTO_FILE')}`] },
    backends: [{ name: 'bench', services: ['bench.v1.*'], endpoints: [env('BACKEND_ADDR')] }],
    log: { level: 'warn' },
  },
  'bench/peer-gateway.ts',
);
const gateway = createGateway(config, { configFile: 'bench/peer-gateway.ts' });
await gateway.start();
const stop = (): void => void gateway.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
