/**
 * End-to-end REST benchmark of protogate against a direct @grpc/grpc-js client, in ONE run (same machine state):
 *
 *   node --import tsx bench/rest.ts [--duration 10] [--connections 64] [--warmup 2] [--reps 1]
 *                                   [--stream-count 4096] [--chunk-size 65536] [--no-pin] [--json FILE] [--sut floor|dist]
 *
 * Processes and cores (2-core machine; --no-pin leaves placement to the kernel):
 *   core 0  protogate (child: `taskset -c 0 node --import tsx bench/peer-gateway.ts`, the same entry bench.sh uses)
 *   core 1  this process (autocannon in-process, the direct grpc-js client, curl for the stream) and the Go
 *           backend (/tmp/peers-bin/peer-go-backend, GOMAXPROCS=1 under taskset). The Go backend needs ~15-30 % of
 *           a core at these rates, so the load generator and the backend share core 1 and protogate owns core 0.
 *   direct gRPC rows: the backend is moved to core 0 for the run (taskset -a -p) and back, as ../shared/peers/bench.sh
 *           does, so the direct client (core 1) and the backend do not share a core.
 * The direct grpc-js client saturates its own core at ~10-14k req/s: that column is a ceiling of the grpc-js
 * *client*, not of the backend (see ../shared/peers/README.md). Every load loop is bounded by --duration.
 *
 * Options: --tests echo,get,stream (subset), --no-direct (protogate rows only), --cpu-prof DIR (profile protogate;
 * see bench/profile-summary.ts), --json FILE (raw rows).
 * Environment: SUT_NODE_ARGS="--trace-gc-nvp ..." adds node flags to the protogate process; SUT_LOG=FILE appends its
 * stdout/stderr (e.g. those GC traces) to FILE.
 *
 * Falls back to ../shared/peers/node/backend.js (Node backend, costs far more CPU) when the Go binary is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const PEERS = resolve(REPO, '../shared/peers');
const PROTO_ROOT = join(PEERS, 'proto');
const PROTO_FILE = 'bench/v1/bench.proto';
const GO_BACKEND = process.env.GO_BACKEND ?? '/tmp/peers-bin/peer-go-backend';
const HOST = '127.0.0.1';

// ------------------------------------------------------------------ args
const argv = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} needs a number`);
  return v;
};
const DURATION = Math.min(arg('duration', 10), 120);
const CONNECTIONS = Math.min(arg('connections', 64), 1024);
const WARMUP = Math.min(arg('warmup', 2), 30);
const REPS = Math.max(1, Math.min(arg('reps', 1), 10));
const STREAM_COUNT = Math.min(arg('stream-count', 4096), 65536);
const CHUNK = Math.min(arg('chunk-size', 65536), 4 << 20);
const PIN = !argv.includes('--no-pin') && cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0;
const strArg = (name: string): string | undefined => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : undefined);
const JSON_OUT = strArg('json');
/** --cpu-prof DIR: run protogate under `node --cpu-prof` (profile written to DIR when it exits); implies --no-direct. */
const CPU_PROF = strArg('cpu-prof');
const TESTS = new Set((strArg('tests') ?? 'echo,get,stream').split(','));
/**
 * --sut floor: run bench/floor-gateway.ts (node:http + node:http2 + protobufjs, no gateway logic) in protogate's place;
 * --sut dist: protogate compiled to dist/ (`npm run build` first) without tsx, as the container image runs it.
 */
const SUT = ({ floor: 'floor', dist: 'protogate-dist' } as Record<string, string>)[strArg('sut') ?? ''] ?? 'protogate';
const SUT_ENTRY = SUT === 'floor' ? 'floor-gateway.ts' : SUT === 'protogate-dist' ? 'peer-gateway-dist.mjs' : 'peer-gateway.ts';
const DIRECT = !argv.includes('--no-direct') && CPU_PROF === undefined;

// The body bench.sh posts (echo-body.json): 302 bytes, every field kind.
const ECHO_BODY = '{"message":"hello world","count":"42","tags":["a","b","c"],"meta":{"key":"k1","version":"7","labels":["x","y"]},"kind":"KIND_SMALL","payload":"aGVsbG8gd29ybGQ=","createdAt":"2024-01-01T00:00:00Z","items":[{"key":"i1","version":"1"},{"key":"i2","version":"2","labels":["z"]}],"score":3.5,"enabled":true}';
// The same message for the direct client (as ../shared/peers/node/grpc-load.js).
const ECHO_REQ = {
  message: 'hello world', count: '42', tags: ['a', 'b', 'c'],
  meta: { key: 'k1', version: '7', labels: ['x', 'y'] },
  kind: 'KIND_SMALL', payload: Buffer.from('hello world'),
  createdAt: { seconds: '1704067200', nanos: 0 },
  items: [{ key: 'i1', version: '1' }, { key: 'i2', version: '2', labels: ['z'] }],
  score: 3.5, enabled: true,
};
const GET_REQ = { id: 'abc123' };

// ------------------------------------------------------------------ process helpers
const children: ChildProcess[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CLK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim() || 100);

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, HOST, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}
function cpuTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch { return NaN; }
}
function resetHwm(pid: number): void {
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); } catch { /* not permitted: HWM is then the lifetime peak */ }
}
function hwmMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch { return NaN; }
}
function machineBusyTicks(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  return f[1]! + f[2]! + f[3]! + f[6]! + f[7]! + f[8]!;
}
function pinPid(pid: number, core: number): void {
  if (PIN) spawnSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
}
function start(name: string, core: number, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const [c, a] = PIN ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
  const child = spawn(c, a, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (d: Buffer): void => { log = (log + d.toString()).slice(-4000); if (process.env.SUT_LOG && name !== 'backend') appendFileSync(process.env.SUT_LOG, d); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('exit', (code, sig) => { if (!stopping) console.error(`${name} exited (${code ?? sig}):\n${log}`); });
  children.push(child);
  return child;
}
let stopping = false;
function stopAll(): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGTERM');
}
process.on('exit', stopAll);
process.on('SIGINT', () => { stopAll(); process.exit(130); });

async function waitHttp200(url: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

// ------------------------------------------------------------------ measurement wrapper
interface Row {
  test: string;
  system: 'protogate' | 'direct grpc-js';
  rep: number;
  rps?: number;
  p50?: number;
  p99?: number;
  mean?: number;
  errors: number;
  mibs?: number;
  wireMibs?: number;
  sutCpu: number;
  backendCpu?: number;
  loadgenCpu: number;
  machineCpu: number;
  sutRssMiB: number;
}

async function measured<T>(sutPid: number, backendPid: number | undefined, fn: () => Promise<T>):
  Promise<{ value: T; sutCpu: number; backendCpu?: number; loadgenCpu: number; machineCpu: number; sutRssMiB: number }> {
  resetHwm(sutPid);
  const t0 = performance.now();
  const s0 = cpuTicks(sutPid);
  const b0 = backendPid ? cpuTicks(backendPid) : 0;
  const m0 = machineBusyTicks();
  const u0 = process.cpuUsage();
  const value = await fn();
  const u = process.cpuUsage(u0);
  const sec = (performance.now() - t0) / 1000;
  const pct = (ticks: number): number => Math.round((100 * ticks) / CLK / sec);
  return {
    value,
    sutCpu: pct(cpuTicks(sutPid) - s0),
    backendCpu: backendPid ? pct(cpuTicks(backendPid) - b0) : undefined,
    loadgenCpu: Math.round(((u.user + u.system) / 1e6 / sec) * 100),
    machineCpu: pct(machineBusyTicks() - m0),
    sutRssMiB: hwmMiB(sutPid),
  };
}

// ------------------------------------------------------------------ loads
async function httpLoad(url: string, method: 'GET' | 'POST', seconds: number): Promise<autocannon.Result> {
  const opts: autocannon.Options = {
    url, method, connections: CONNECTIONS, duration: seconds, pipelining: 1, timeout: 5,
    ...(method === 'POST' ? { body: ECHO_BODY, headers: { 'content-type': 'application/json' } } : {}),
  };
  return autocannon(opts);
}

type UnaryFn = (req: unknown, cb: (err: grpc.ServiceError | null) => void) => void;
async function grpcLoad(call: UnaryFn, req: unknown, seconds: number, record: boolean):
  Promise<{ rps: number; p50: number; p99: number; mean: number; errors: number }> {
  let stop = false, count = 0, errors = 0, inflight = 0;
  const lat: number[] = [];
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  const one = (): void => {
    if (stop) { if (--inflight === 0) resolveDone(); return; }
    const t = performance.now();
    call(req, (err) => {
      if (err) errors++;
      else { count++; if (record) lat.push(performance.now() - t); }
      one();
    });
  };
  const t0 = performance.now();
  for (let i = 0; i < CONNECTIONS; i++) { inflight++; one(); }
  await sleep(seconds * 1000);
  stop = true;
  const sec = (performance.now() - t0) / 1000;
  const c = count;
  await done;
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] ?? NaN;
  return { rps: c / sec, p50: pct(50), p99: pct(99), mean: lat.reduce((a, b) => a + b, 0) / (lat.length || 1), errors };
}

function curlStream(url: string): Promise<{ code: number; bytes: number; seconds: number }> {
  return new Promise((res, rej) => {
    const c = spawn('curl', ['-s', '-o', '/dev/null', '--max-time', '300', '-w', '%{http_code} %{size_download} %{time_total}', url]);
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.on('error', rej);
    c.on('exit', () => {
      const [code, size, secs] = out.trim().split(' ').map(Number);
      res({ code: code!, bytes: size!, seconds: secs! });
    });
  });
}

// ------------------------------------------------------------------ main
const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  node: process.version,
  kernel: spawnSync('uname', ['-r']).stdout.toString().trim(),
  date: new Date().toISOString(),
};
if (PIN) pinPid(process.pid, 1);

const bePort = await freePort();
const gwPort = await freePort();
const backendAddr = `${HOST}:${bePort}`;
let backendKind: string;
let backend: ChildProcess;
if (existsSync(GO_BACKEND)) {
  backendKind = `Go (${GO_BACKEND})`;
  backend = start('backend', 1, GO_BACKEND, ['-listen', backendAddr, '-chunk-size', String(CHUNK)]);
} else {
  backendKind = 'Node (../shared/peers/node/backend.js)';
  backend = start('backend', 1, process.execPath, [join(PEERS, 'node/backend.js'), '--listen', backendAddr, '--chunk-size', String(CHUNK)]);
}
const profArgs = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', resolve(CPU_PROF)] : [];
const gateway = start('protogate', 0, process.execPath, [...profArgs, ...(process.env.SUT_NODE_ARGS ?? '').split(' ').filter(Boolean), ...(SUT === 'protogate-dist' ? [] : ['--import', 'tsx']), join(HERE, SUT_ENTRY)], {
  GATEWAY_HOST: HOST, GATEWAY_PORT: String(gwPort), BACKEND_ADDR: backendAddr, PROTO_ROOT, PROTO_FILE,
});
const base = `http://${HOST}:${gwPort}`;
await waitHttp200(`${base}/v1/items/ready`, 60_000);
const gwPid = gateway.pid!;
const bePid = backend.pid!;

const def = protoLoader.loadSync(PROTO_FILE, {
  keepCase: false, longs: String, enums: String, bytes: Buffer, defaults: false, oneofs: true, includeDirs: [PROTO_ROOT],
});
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pkg = (grpc.loadPackageDefinition(def) as any).bench.v1;
const client = new pkg.Echo(backendAddr, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
await new Promise<void>((r, j) => client.waitForReady(Date.now() + 5000, (e: Error | undefined) => (e ? j(e) : r())));
const rawClient = new grpc.Client(backendAddr, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
const streamMethod = (def['bench.v1.Echo'] as Record<string, protoLoader.MethodDefinition<object, object>>).ServerStream!;

console.error(`# machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, kernel ${machine.kernel}; pinned=${PIN}`);
console.error(`# backend: ${backendKind} at ${backendAddr}; protogate pid ${gwPid} on ${base}`);
console.error(`# duration ${DURATION}s (+${WARMUP}s warm-up), ${CONNECTIONS} connections / in flight, ${REPS} rep(s), stream ${STREAM_COUNT} x ${CHUNK} B`);

const rows: Row[] = [];
const unaryTests = [
  { key: 'echo', test: 'POST /v1/echo · Echo', path: '/v1/echo', method: 'POST' as const, grpcMethod: 'Echo', req: ECHO_REQ },
  { key: 'get', test: 'GET /v1/items/abc123 · Get', path: '/v1/items/abc123', method: 'GET' as const, grpcMethod: 'Get', req: GET_REQ },
].filter((t) => TESTS.has(t.key));
const STREAMING = STREAM_COUNT > 0 && TESTS.has('stream');

async function runProtogate(t: typeof unaryTests[number], rep: number): Promise<void> {
  await httpLoad(base + t.path, t.method, WARMUP);
  const m = await measured(gwPid, bePid, () => httpLoad(base + t.path, t.method, DURATION));
  const r = m.value;
  rows.push({
    test: t.test, system: 'protogate', rep, rps: r.requests.total / (r.duration || DURATION), p50: r.latency.p50, p99: r.latency.p99,
    mean: r.latency.mean, errors: r.errors + r.timeouts + r.non2xx, sutCpu: m.sutCpu, backendCpu: m.backendCpu,
    loadgenCpu: m.loadgenCpu, machineCpu: m.machineCpu, sutRssMiB: m.sutRssMiB,
  });
  log(rows[rows.length - 1]!);
}
async function runDirect(t: typeof unaryTests[number], rep: number): Promise<void> {
  pinPid(bePid, 0);
  const call: UnaryFn = (req, cb) => client[t.grpcMethod](req, cb);
  await grpcLoad(call, t.req, WARMUP, false);
  const m = await measured(bePid, undefined, () => grpcLoad(call, t.req, DURATION, true));
  pinPid(bePid, 1);
  const r = m.value;
  rows.push({
    test: t.test, system: 'direct grpc-js', rep, rps: r.rps, p50: r.p50, p99: r.p99, mean: r.mean, errors: r.errors,
    sutCpu: m.sutCpu, loadgenCpu: m.loadgenCpu, machineCpu: m.machineCpu, sutRssMiB: m.sutRssMiB,
  });
  log(rows[rows.length - 1]!);
}
const STREAM_TEST = `GET /v1/stream/${STREAM_COUNT}?chunk_size=${CHUNK} · ServerStream`;
async function runProtogateStream(rep: number): Promise<void> {
  await curlStream(`${base}/v1/stream/${Math.ceil(STREAM_COUNT / 16)}?chunk_size=${CHUNK}`);
  const m = await measured(gwPid, bePid, () => curlStream(`${base}/v1/stream/${STREAM_COUNT}?chunk_size=${CHUNK}`));
  const r = m.value;
  const payload = STREAM_COUNT * CHUNK;
  rows.push({
    test: STREAM_TEST, system: 'protogate', rep, errors: r.code === 200 && r.bytes >= (payload * 4) / 3 ? 0 : 1,
    mibs: payload / 1048576 / r.seconds, wireMibs: r.bytes / 1048576 / r.seconds,
    sutCpu: m.sutCpu, backendCpu: m.backendCpu, loadgenCpu: m.loadgenCpu, machineCpu: m.machineCpu, sutRssMiB: m.sutRssMiB,
  });
  log(rows[rows.length - 1]!);
}
function directStream(count: number): Promise<{ bytes: number; seconds: number; ok: boolean }> {
  return new Promise((res) => {
    const t0 = performance.now();
    let bytes = 0;
    const req = streamMethod.requestSerialize({ count: String(count), chunkSize: CHUNK });
    const call = rawClient.makeServerStreamRequest<Buffer, Buffer>('/bench.v1.Echo/ServerStream', (b) => b, (b) => b, req as Buffer,
      new grpc.Metadata(), { deadline: Date.now() + 300_000 });
    call.on('data', (b: Buffer) => { bytes += b.length; });
    let ok = true;
    call.on('error', () => { ok = false; });
    call.on('end', () => res({ bytes, seconds: (performance.now() - t0) / 1000, ok }));
  });
}
async function runDirectStream(rep: number): Promise<void> {
  pinPid(bePid, 0);
  await directStream(Math.ceil(STREAM_COUNT / 16));
  const m = await measured(bePid, undefined, () => directStream(STREAM_COUNT));
  pinPid(bePid, 1);
  const r = m.value;
  const payload = STREAM_COUNT * CHUNK;
  rows.push({
    test: STREAM_TEST, system: 'direct grpc-js', rep, errors: r.ok && r.bytes >= payload ? 0 : 1,
    mibs: payload / 1048576 / r.seconds, wireMibs: r.bytes / 1048576 / r.seconds,
    sutCpu: m.sutCpu, loadgenCpu: m.loadgenCpu, machineCpu: m.machineCpu, sutRssMiB: m.sutRssMiB,
  });
  log(rows[rows.length - 1]!);
}
function log(r: Row): void {
  const f = (v: number | undefined, d = 0): string => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
  console.error(`  rep ${r.rep} ${r.system.padEnd(15)} ${r.test.padEnd(28)} rps=${f(r.rps)} p50=${f(r.p50, 2)} p99=${f(r.p99, 2)} ` +
    `MiB/s=${f(r.mibs, 1)} err=${r.errors} cpu sut/be/lg/machine=${r.sutCpu}/${f(r.backendCpu)}/${r.loadgenCpu}/${r.machineCpu} rss=${f(r.sutRssMiB, 1)}`);
}

// Alternate the order per repetition so that drift (other tenants, thermal) does not favour one system.
for (let rep = 1; rep <= REPS; rep++) {
  for (const t of unaryTests) {
    if (!DIRECT) await runProtogate(t, rep);
    else if (rep % 2 === 1) { await runProtogate(t, rep); await runDirect(t, rep); } else { await runDirect(t, rep); await runProtogate(t, rep); }
  }
  if (STREAMING) {
    if (!DIRECT) await runProtogateStream(rep);
    else if (rep % 2 === 1) { await runProtogateStream(rep); await runDirectStream(rep); } else { await runDirectStream(rep); await runProtogateStream(rep); }
  }
}

// ------------------------------------------------------------------ table
const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pick = (test: string, system: Row['system'], k: keyof Row): number => median(rows.filter((r) => r.test === test && r.system === system).map((r) => r[k] as number));
const fmt = (v: number, d = 0): string => (Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-');

const lines: string[] = [];
lines.push(`Machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, Linux ${machine.kernel}; ${machine.date}`);
lines.push(`Backend: ${backendKind}; pinned: ${PIN ? 'protogate core 0; load gen + backend core 1 (backend on core 0 for direct rows)' : 'no'}`);
lines.push(`Load: ${CONNECTIONS} connections (autocannon) / ${CONNECTIONS} calls in flight on one channel (grpc-js), ${DURATION}s after ${WARMUP}s warm-up, median of ${REPS} rep(s)`);
lines.push('');
lines.push('| test | system | req/s | p50 ms | p99 ms | errors | SUT CPU % | backend CPU % | load-gen CPU % | SUT peak RSS MiB |');
lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const t of unaryTests) {
  for (const s of ['protogate', 'direct grpc-js'] as const) {
    lines.push(`| ${t.test} | ${s === 'direct grpc-js' ? 'direct grpc-js → backend (SUT = backend)' : SUT} | ${fmt(pick(t.test, s, 'rps'))} | ${fmt(pick(t.test, s, 'p50'), 2)} | ` +
      `${fmt(pick(t.test, s, 'p99'), 2)} | ${fmt(pick(t.test, s, 'errors'))} | ${fmt(pick(t.test, s, 'sutCpu'))} | ${fmt(pick(t.test, s, 'backendCpu'))} | ` +
      `${fmt(pick(t.test, s, 'loadgenCpu'))} | ${fmt(pick(t.test, s, 'sutRssMiB'), 1)} |`);
  }
}
if (STREAMING) {
  lines.push('');
  lines.push('| test | system | payload MiB/s | wire MiB/s | errors | SUT CPU % | backend CPU % | load-gen CPU % | SUT peak RSS MiB |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of ['protogate', 'direct grpc-js'] as const) {
    lines.push(`| ${STREAM_TEST} | ${s} | ${fmt(pick(STREAM_TEST, s, 'mibs'), 1)} | ${fmt(pick(STREAM_TEST, s, 'wireMibs'), 1)} | ${fmt(pick(STREAM_TEST, s, 'errors'))} | ` +
      `${fmt(pick(STREAM_TEST, s, 'sutCpu'))} | ${fmt(pick(STREAM_TEST, s, 'backendCpu'))} | ${fmt(pick(STREAM_TEST, s, 'loadgenCpu'))} | ${fmt(pick(STREAM_TEST, s, 'sutRssMiB'), 1)} |`);
  }
}
lines.push('');
lines.push('| ratio (protogate ÷ direct grpc-js, medians) | value |');
lines.push('|---|---:|');
for (const t of unaryTests) {
  lines.push(`| ${t.test} req/s | ${fmt(pick(t.test, 'protogate', 'rps') / pick(t.test, 'direct grpc-js', 'rps'), 2)} |`);
  lines.push(`| ${t.test} p99 | ${fmt(pick(t.test, 'protogate', 'p99') / pick(t.test, 'direct grpc-js', 'p99'), 2)} |`);
}
if (STREAMING) lines.push(`| stream payload MiB/s | ${fmt(pick(STREAM_TEST, 'protogate', 'mibs') / pick(STREAM_TEST, 'direct grpc-js', 'mibs'), 2)} |`);
console.log(lines.join('\n'));
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ machine, backend: backendKind, pinned: PIN, DURATION, WARMUP, CONNECTIONS, REPS, rows }, null, 2));

client.close();
rawClient.close();
if (CPU_PROF) {
  // SIGTERM -> peer-gateway.ts closes and exits, and node writes the .cpuprofile on exit: wait for that (bounded).
  stopping = true;
  const exited = new Promise((r) => gateway.once('exit', r));
  gateway.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  console.error(`# cpu profile in ${resolve(CPU_PROF)}`);
}
stopAll();
process.exit(0);
