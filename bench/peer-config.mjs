/**
 * The config bench.sh's GATEWAY_CMD hook gets, built from its environment (GATEWAY_HOST, GATEWAY_PORT,
 * BACKEND_ADDR, PROTO_ROOT, PROTO_FILE): one place for bench/peer-gateway.ts (sources through tsx) and
 * bench/peer-gateway-dist.mjs (compiled dist/), so both variants measure the same gateway. Plain JavaScript so the
 * dist/ variant loads it without tsx.
 */
export function peerConfig(entry) {
  const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${entry}: ${name} is not set (run it through bench.sh)`);
    return v;
  };
  return {
    http: { host: env('GATEWAY_HOST'), port: Number(env('GATEWAY_PORT')) },
    grpc: { enabled: false },
    admin: { enabled: false },
    protos: { includeDirs: [env('PROTO_ROOT')], files: [`${env('PROTO_ROOT')}/${env('PROTO_FILE')}`] },
    // timeoutMs: 0 = no default deadline, like grpc-gateway: with the default (30 s) bench.sh's 1 GiB stream is cut
    // at 30 s with a trailing {"error": DEADLINE_EXCEEDED} line when protogate streams slower than ~34 MiB/s.
    // PEER_TRANSPORT=h2|socket|grpc-js picks the backend's transport (default: the config default).
    backends: [{
      name: 'bench', services: ['bench.v1.*'], endpoints: [env('BACKEND_ADDR')], timeoutMs: 0,
      ...(process.env.PEER_TRANSPORT ? { transport: process.env.PEER_TRANSPORT } : {}),
    }],
    log: { level: 'warn' },
    // PEER_NODE_BIND=1 keeps Node's own AsyncResource#bind, to measure what runtime.lightAsyncBind buys;
    // PEER_NO_RENEW=1 leaves node:http2's stream tables alone, to measure runtime.renewStreamTables.
    runtime: { lightAsyncBind: process.env.PEER_NODE_BIND !== '1', renewStreamTables: process.env.PEER_NO_RENEW !== '1' },
  };
}
