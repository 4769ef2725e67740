/**
 * bench/peer-gateway.ts as the container image runs it: compiled JavaScript from dist/ (`npm run build` first), no tsx
 * loader. Same environment and config (bench/peer-config.mjs):
 *
 *   npm run build && GATEWAY_NAME=protogate-dist GATEWAY_CMD="node $PWD/bench/peer-gateway-dist.mjs" ../shared/peers/bench.sh
 */
import { peerConfig } from './peer-config.mjs';

const { resolveConfig } = await import('../dist/config/index.js');
const { createGateway } = await import('../dist/gateway.js');

const gateway = createGateway(resolveConfig(peerConfig('bench/peer-gateway-dist.mjs'), 'bench/peer-gateway-dist.mjs'), { configFile: 'bench/peer-gateway-dist.mjs' });
await gateway.start();
const stop = () => void gateway.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
