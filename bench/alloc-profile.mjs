/**
 * Where protogate allocates, per request, including the objects the GC has already collected (V8's sampling heap
 * profiler with includeObjectsCollectedByMinorGC/MajorGC): the view the GC cost needs, which a CPU profile and
 * --heap-prof (live objects only) do not give. Runs dist/ (`npm run build` first) in this process against the Go
 * peer backend, loads it with autocannon in a child process (-c 64, 3 s warm-up, 5 s sampled), prints the top
 * allocation sites by bytes. Bounded: ~10 s.
 *
 *   node bench/alloc-profile.mjs                                   # GET /v1/items/abc123
 *   node bench/alloc-profile.mjs /v1/echo '{"message":"hi","count":"1"}'   # POST with a JSON body
 *   node bench/alloc-profile.mjs --promoted    # only what outlived the young generation (promoted, then
 *                                              # collected by a major GC or still live): what drives Mark-Compacts
 *   node bench/alloc-profile.mjs --promoted --warmup 15   # longer warm-up (default 3 s): the steady state after the
 *                                              # first Mark-Compacts, which can differ from the first seconds'
 */
import { spawn, spawnSync } from 'node:child_process';
import inspector from 'node:inspector/promises';
import { createServer } from 'node:net';
const freePort = () => new Promise((r) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const bport = await freePort(), gport = await freePort();
const be = spawn('/tmp/peers-bin/peer-go-backend', ['-listen', `127.0.0.1:${bport}`], { stdio: 'ignore' });
Object.assign(process.env, { GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: String(gport), BACKEND_ADDR: `127.0.0.1:${bport}`, PROTO_ROOT: '/work/shared/peers/proto', PROTO_FILE: 'bench/v1/bench.proto' });
const { peerConfig } = await import('./peer-config.mjs');
const { resolveConfig } = await import('../dist/config/index.js');
const { createGateway } = await import('../dist/gateway.js');
const gw = createGateway(resolveConfig(peerConfig('x'), 'x'), { configFile: 'x' });
await new Promise((r) => setTimeout(r, 300));
await gw.start();
const promotedOnly = process.argv.includes('--promoted');
const warmIdx = process.argv.indexOf('--warmup');
const warmup = warmIdx > 0 ? Number(process.argv[warmIdx + 1]) : 3;
const args = process.argv.slice(2).filter((a, i, all) => a !== '--promoted' && a !== '--warmup' && all[i - 1] !== '--warmup');
const path = args[0] ?? '/v1/items/abc123';
const body = args[1];
const ac = (d) => spawn(process.execPath, [new URL('../node_modules/autocannon/autocannon.js', import.meta.url).pathname, '-c', '64', '-d', String(d), ...(body ? ['-m', 'POST', '-H', 'content-type=application/json', '-b', body] : []), `http://127.0.0.1:${gport}${path}`], { stdio: 'ignore' });
await new Promise((r) => ac(warmup).on('exit', r)); // warm-up
const session = new inspector.Session(); session.connect();
await session.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !promotedOnly });
const t0 = Date.now();
await new Promise((r) => ac(5).on('exit', r));
const { profile } = await session.post('HeapProfiler.stopSampling');
const by = new Map(); let total = 0;
const walk = (n) => { const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace('file:///work/main/', '')}:${n.callFrame.lineNumber + 1}`; by.set(key, (by.get(key) ?? 0) + n.selfSize); total += n.selfSize; for (const c of n.children) walk(c); };
walk(profile.head);
console.log('sampled bytes', (total / 1e6).toFixed(1), 'MB over', ((Date.now() - t0) / 1000).toFixed(1), 's');
for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 45)) console.log((v / total * 100).toFixed(1).padStart(5) + '%', k);
await gw.close(); be.kill(); process.exit(0);
