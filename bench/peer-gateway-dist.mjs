/**
 * bench/peer-gateway.ts as the container image runs it: compiled JavaScript from dist/ (`npm run build` first), no tsx
 * loader. Same environment variables and config as bench/peer-gateway.ts (../shared/peers/bench.sh's GATEWAY_CMD):
 *
 *   npm run build && GATEWAY_NAME=protogate-dist GATEWAY_CMD="node $PWD/bench/peer-gateway-dist.mjs" ../shared/peers/bench.sh
 */
const { resolveConfig } = await import('../dist/config/index.js');
const { createGateway } = await import('../dist/gateway.js');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`bench/peer-gateway-dist.mjs: ${name} is not set (run it through bench.sh)`);
  return v;
};
const config = resolveConfig(
  {
    http: { host: env('GATEWAY_HOST'), port: Number(env('GATEWAY_PORT')) },
    grpc: { enabled: false },
    admin: { enabled: false },
    protos: { includeDirs: [env('PROTO_ROOT')], files: [`${env('PROTO_ROOT')}/${env('PROTO_FILE')}`] },
    // No default deadline, like grpc-gateway (see bench/peer-gateway.ts).
    backends: [{ name: 'bench', services: ['bench.v1.*'], endpoints: [env('BACKEND_ADDR')], timeoutMs: 0 }],
    log: { level: 'warn' },
  },
  'bench/peer-gateway-dist.mjs',
);
const gateway = createGateway(config, { configFile: 'bench/peer-gateway-dist.mjs' });
await gateway.start();
const stop = () => void gateway.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
