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
import { peerConfig } from './peer-config.mjs';

const config = resolveConfig(peerConfig('bench/peer-gateway.ts'), 'bench/peer-gateway.ts');
const gateway = createGateway(config, { configFile: 'bench/peer-gateway.ts' });
await gateway.start();
const stop = (): void => void gateway.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
