/**
 * protogate as the GATEWAY_CMD of ../shared/peers/bench.sh (the grpc-gateway side-by-side benchmark):
 *
 *   GATEWAY_NAME=protogate GATEWAY_CMD="node --import $PWD/node_modules/tsx/dist/loader.mjs $PWD/bench/peer-gateway.ts" \
 *     ../shared/peers/bench.sh    (an absolute loader path: bench.sh runs from ../shared/peers, where tsx does not resolve)
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
    admin: { enabled: false },
    protos: { includeDirs: [env('PROTO_ROOT')], files: [`${env('PROTO_ROOT')}/${env('PROTO_FILE')}`] },
    // timeoutMs: 0 = no default deadline, like grpc-gateway: with the default (30 s) bench.sh's 1 GiB stream is cut
    // at 30 s with a trailing {"error": DEADLINE_EXCEEDED} line when protogate streams slower than ~34 MiB/s.
    backends: [{ name: 'bench', services: ['bench.v1.*'], endpoints: [env('BACKEND_ADDR')], timeoutMs: 0 }],
    log: { level: 'warn' },
  },
  'bench/peer-gateway.ts',
);
const gateway = createGateway(config, { configFile: 'bench/peer-gateway.ts' });
await gateway.start();
const stop = (): void => void gateway.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
