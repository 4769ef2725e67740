/**
 * Passthrough vs direct, same run, same client and backend (@grpc/grpc-js, Buffer serializers, in this process);
 * the gateway runs in a child process so its peak RSS (VmHWM, Linux /proc, reset before each scenario) and CPU time
 * are its own.
 *
 *   node --import tsx bench/passthrough.ts                 # 1 GiB each way, ~2-4 min on 2 cores
 *   node --import tsx bench/passthrough.ts --mib 128 --unary-seconds 2
 *   node --import tsx bench/passthrough.ts --only down,up --reps 5 --floor   # interleaved repeats, medians
 *   node --import tsx bench/passthrough.ts --only c64 --cpu-prof /tmp/prof  # then bench/profile-summary.ts
 *
 * Flags: --mib N (bytes per transfer, default 1024), --no-single (skip the one-message transfers),
 * --unary-n N (sequential calls for p50, default 2000), --unary-warmup N (sequential calls before them, default 5000:
 * the gateway's relay path needs thousands of calls before V8 has optimized all of it; with 200, a 2000-call
 * median still carried JIT warm-up, +0.40 ms where a steady-state median is +0.30), --unary-seconds S
 * (concurrency-64 run, default 5),
 * --only LIST (any of down,up,down1,up1,p50,c64), --reps N (each scenario N times, the targets taking turns to go
 * first; medians reported with min-max), --floor (also through a plain TCP relay child: what any extra hop costs
 * on this machine), --log (the gateway logs at info, access log included, to /dev/null), --metrics (the gateway
 * keeps its per-method metrics; --log --metrics is what `protogate` runs with), --cpu-prof DIR (V8 CPU profile of
 * the gateway process, written when it exits), --gateway-args="..." (more node flags for the gateway, e.g.
 * "--perf-basic-prof" for `perf record -p PID`; its pid is printed on stderr), --pin (one core each: this process,
 * client and backend, on core 1, the gateway and the relay on core 0; 2+ cores and taskset needed), --node-bind (the
 * gateway keeps Node's own AsyncResource#bind instead of runtime.lightAsyncBind's), --no-renew (the gateway leaves
 * node:http2's stream tables alone: runtime.renewStreamTables false).
 * Targets (issue #3): peak RSS <= idle + 64 MiB; throughput >= 90% of direct; unary added p50 <= 0.3 ms;
 * req/s at concurrency 64 >= 80% of direct.
 * Also printed: the gateway's CPU seconds per GiB or per call (its runs only, all reps; /proc utime + stime, all
 * threads) and, on stderr, how busy this process and the gateway were. On a shared 2-core machine CPU time moves
 * much less than wall-clock rates, and "this process under 100 %" tells a run limited by waiting from one limited
 * by CPU.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { methodPath, rawClient, ser, startBackend } from '../test/helpers/passthrough-backend.ts';
import { spawnGateway } from '../test/helpers/passthrough-child.ts';
import type { GatewayChild } from '../test/helpers/passthrough-child.ts';

const { values: flags } = parseArgs({
  options: {
    mib: { type: 'string', default: '1024' },
    'no-single': { type: 'boolean', default: false },
    'unary-n': { type: 'string', default: '2000' },
    'unary-warmup': { type: 'string', default: '5000' },
    'unary-seconds': { type: 'string', default: '5' },
    only: { type: 'string', default: 'down,up,down1,up1,p50,c64' },
    reps: { type: 'string', default: '1' },
    floor: { type: 'boolean', default: false },
    log: { type: 'boolean', default: false },
    metrics: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'gateway-args': { type: 'string', default: '' },
    pin: { type: 'boolean', default: false },
    'node-bind': { type: 'boolean', default: false },
    'no-renew': { type: 'boolean', default: false },
  },
});
const only = new Set(flags.only.split(','));
if (flags['no-single']) {
  only.delete('down1');
  only.delete('up1');
}
const REPS = Number(flags.reps);
const TOTAL = Number(flags.mib) * 2 ** 20;
const CHUNK = 64 * 1024;
const WARMUP = Number(flags['unary-warmup']);
// Read by grpc-js's client transport only: grpc-js 1.14's server ignores it, so the backend's receive windows (which
// bound uploads) stay at Node's 64 KiB in every mode (BENCHMARKS.md, session 4).
const WINDOW = { 'grpc-node.flow_control_window': 1 << 20 };

const backend = await startBackend({ serverOptions: WINDOW });
const nodeArgs = [
  ...(flags['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', flags['cpu-prof']] : []),
  ...flags['gateway-args'].split(' ').filter(Boolean),
];
const endpoints = [`127.0.0.1:${backend.port}`];
const gateway = await spawnGateway({ endpoints, services: ['test.passthrough.*'], log: flags.log, metrics: flags.metrics, lightAsyncBind: !flags['node-bind'], renewStreamTables: !flags['no-renew'] }, nodeArgs);
console.error(`gateway pid ${gateway.pid}`);
const relay = flags.floor ? await spawnGateway({ endpoints, services: [] }, [], 'tcp-relay') : undefined;
if (flags.pin) {
  // One core each, as the REST comparison runs: client + backend (this process, all threads) on core 1, the proxy
  // on core 0. The direct baseline then has the same one core for client + backend as the proxied runs, and the
  // proxy does not compete with them for it.
  const pin = (pid: number, core: number): void => {
    const r = spawnSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`taskset failed (needs util-linux): ${r.stderr}`);
  };
  pin(process.pid, 1);
  pin(gateway.pid, 0);
  if (relay) pin(relay.pid, 0);
}

interface Target {
  name: string;
  client: grpc.Client;
  /** The proxy process in between, if any. */
  proxy: GatewayChild | undefined;
}
const direct: Target = { name: 'direct', client: rawClient(endpoints[0]!, undefined, WINDOW), proxy: undefined };
const viaGateway: Target = { name: 'gateway', client: rawClient(`127.0.0.1:${gateway.port}`, undefined, WINDOW), proxy: gateway };
const viaRelay: Target | undefined = relay && { name: 'TCP relay', client: rawClient(`127.0.0.1:${relay.port}`, undefined, WINDOW), proxy: relay };
const targets = [direct, viaGateway, ...(viaRelay ? [viaRelay] : [])];

function md(entries: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) m.set(k, v);
  return m;
}

function unaryCall(client: grpc.Client, body: Buffer, meta = new grpc.Metadata()): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(methodPath('Unary'), ser, ser, body, meta, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

/** Bytes received on a server stream until it ends OK; rejects with its status otherwise. */
async function drain(call: grpc.ClientReadableStream<Buffer>): Promise<number> {
  let bytes = 0;
  call.on('data', (b: Buffer) => (bytes += b.length));
  await new Promise<void>((resolve, reject) => {
    call.on('status', (s: grpc.StatusObject) => (s.code === 0 ? resolve() : reject(new Error(s.details))));
    call.on('error', reject);
  });
  return bytes;
}

function downChunks(client: grpc.Client): Promise<number> {
  return drain(client.makeServerStreamRequest(methodPath('ServerStream'), ser, ser, Buffer.alloc(CHUNK, 3), md({ 'x-count': String(TOTAL / CHUNK) })));
}

async function upChunks(client: grpc.Client): Promise<number> {
  const chunk = Buffer.alloc(CHUNK, 4);
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest(methodPath('ClientStream'), ser, ser, new grpc.Metadata(), (err, res) =>
      err ? reject(err) : resolve((JSON.parse(res!.toString()) as { bytes: number }).bytes));
    let sent = 0;
    const pump = (): void => {
      while (sent < TOTAL) {
        sent += CHUNK;
        if (!call.write(chunk)) return void call.once('drain', pump);
      }
      call.end();
    };
    pump();
  });
}

function downOne(client: grpc.Client): Promise<number> {
  return drain(client.makeServerStreamRequest(methodPath('ServerStream'), ser, ser, Buffer.alloc(0), md({ 'x-behavior': 'big', 'x-size': String(TOTAL) })));
}

async function upOne(client: grpc.Client): Promise<number> {
  const res = await unaryCall(client, Buffer.alloc(TOTAL, 5), md({ 'x-behavior': 'size' }));
  return Number(res.readBigUInt64BE());
}

const rows: string[][] = [];
const mibps = (bytes: number, ms: number): number => bytes / 2 ** 20 / (ms / 1000);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** "median [min, max]" when there was more than one rep. */
const spread = (xs: number[], fmt: (x: number) => string): string =>
  xs.length > 1 ? `${fmt(median(xs))} [${fmt(Math.min(...xs))}, ${fmt(Math.max(...xs))}]` : fmt(xs[0]!);

interface Measured {
  /** Per target name: one value per rep. */
  values: Map<string, number[]>;
  /** Per target name: the proxy's CPU seconds over its runs. */
  proxyCpu: Map<string, number>;
}

/**
 * Runs `measure` REPS times per target, rotating which target goes first so a slow spell on the machine hits all,
 * and records each proxy's CPU seconds over its own runs.
 */
async function interleaved(measure: (t: Target) => Promise<number>): Promise<Measured> {
  const values = new Map(targets.map((t) => [t.name, [] as number[]]));
  const proxyCpu = new Map(targets.map((t) => [t.name, 0]));
  const own = new Map(targets.map((t) => [t.name, { cpu: 0, wall: 0 }]));
  // The RSS target holds "in every case": each row reports its own scenario's peak, not the run's.
  gateway.resetPeak();
  for (let rep = 0; rep < REPS; rep++) {
    const order = targets.map((_, i) => targets[(i + rep) % targets.length]!);
    for (const t of order) {
      const cpu0 = t.proxy?.cpuSeconds() ?? 0;
      const self0 = process.cpuUsage();
      const t0 = performance.now();
      values.get(t.name)!.push(await measure(t));
      const self = process.cpuUsage(self0);
      const acc = own.get(t.name)!;
      acc.cpu += (self.user + self.system) / 1e6;
      acc.wall += (performance.now() - t0) / 1000;
      if (t.proxy) proxyCpu.set(t.name, proxyCpu.get(t.name)! + t.proxy.cpuSeconds() - cpu0);
    }
  }
  const pct = (cpu: number, wall: number): string => `${((100 * cpu) / wall).toFixed(0)}%`;
  console.error('  busy: ' + targets.map((t) => {
    const o = own.get(t.name)!;
    return `${t.name}: bench ${pct(o.cpu, o.wall)}${t.proxy ? `, proxy ${pct(proxyCpu.get(t.name)!, o.wall)}` : ''}`;
  }).join('; '));
  return { values, proxyCpu };
}

/** Table row: direct, via gateway, gateway/direct, [TCP relay, gateway/relay], gateway CPU, this scenario's peak RSS over idle. */
function row(name: string, m: Measured, fmt: (x: number) => string, unit: string, compare: (gw: number, other: number) => number, cmpFmt: (x: number) => string, cpu: string): string[] {
  const d = m.values.get('direct')!;
  const g = m.values.get('gateway')!;
  const r = m.values.get('TCP relay');
  const out = [name, `${spread(d, fmt)}${unit}`, `${spread(g, fmt)}${unit}`, spread(d.map((x, i) => compare(g[i]!, x)), cmpFmt)];
  if (r) out.push(`${spread(r, fmt)}${unit}`, spread(r.map((x, i) => compare(g[i]!, x)), cmpFmt));
  const peak = gateway.memory().hwmKb / 1024;
  out.push(cpu, `${peak.toFixed(0)} MiB (+${(peak - idle).toFixed(0)})`);
  return out;
}

const percent = (x: number): string => `${x.toFixed(0)}%`;
const ratio = (gw: number, other: number): number => (gw / other) * 100;
const added = (gw: number, other: number): number => gw - other;
const f0 = (x: number): string => x.toFixed(0);
const f3 = (x: number): string => x.toFixed(3);
const signed3 = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;

async function throughput(name: string, run: (c: grpc.Client) => Promise<number>): Promise<void> {
  const m = await interleaved(async (t) => {
    const t0 = performance.now();
    const bytes = await run(t.client);
    if (bytes !== TOTAL) throw new Error(`${name} (${t.name}): moved ${bytes} bytes, expected ${TOTAL}`);
    return mibps(bytes, performance.now() - t0);
  });
  const cpuPerGiB = m.proxyCpu.get('gateway')! / REPS / (TOTAL / 2 ** 30);
  rows.push(row(name, m, f0, ' MiB/s', ratio, percent, `${cpuPerGiB.toFixed(2)} s/GiB`));
  console.error(`done: ${name}`);
}

async function unaryLatency(client: grpc.Client, n: number): Promise<number> {
  const body = Buffer.from('ping');
  for (let i = 0; i < WARMUP; i++) await unaryCall(client, body);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await unaryCall(client, body);
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

/** Calls completed through the gateway in the concurrency-64 runs (for its CPU per call). */
let gatewayRateCalls = 0;
async function unaryRate(t: Target, seconds: number, concurrency = 64): Promise<number> {
  const body = Buffer.from('ping');
  const until = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      await unaryCall(t.client, body);
      done++;
    }
  }));
  if (t === viaGateway) gatewayRateCalls += done;
  return done / seconds;
}

/** The gateway's RSS after warm-up, MiB: every row's peak is reported against it. */
let idle = 0;
try {
  for (const t of targets) await unaryCall(t.client, Buffer.from('warm'));
  idle = gateway.memory().rssKb / 1024;
  if (only.has('down')) await throughput(`down ${flags.mib} MiB as 64 KiB msgs`, downChunks);
  if (only.has('up')) await throughput(`up ${flags.mib} MiB as 64 KiB msgs`, upChunks);
  if (only.has('down1')) await throughput(`down ${flags.mib} MiB as ONE msg`, downOne);
  if (only.has('up1')) await throughput(`up ${flags.mib} MiB as ONE msg`, upOne);
  const n = Number(flags['unary-n']);
  const seconds = Number(flags['unary-seconds']);
  if (only.has('p50')) {
    const m = await interleaved((t) => unaryLatency(t.client, n));
    const perCall = (m.proxyCpu.get('gateway')! / (REPS * (n + WARMUP))) * 1e6;
    rows.push(row('unary p50 ms, concurrency 1', m, f3, '', added, signed3, `${perCall.toFixed(0)} us/call`));
    console.error('done: p50');
  }
  if (only.has('c64')) {
    const m = await interleaved((t) => unaryRate(t, seconds));
    const perCall = (m.proxyCpu.get('gateway')! / gatewayRateCalls) * 1e6;
    rows.push(row('unary req/s, concurrency 64', m, f0, '', ratio, percent, `${perCall.toFixed(0)} us/call`));
    console.error('done: c64');
  }
  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, node ${process.version}, ${os.platform()} ${os.release()}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`date: ${new Date().toISOString()}`);
  console.log(`command: node --import tsx bench/passthrough.ts ${process.argv.slice(2).join(' ')}`.trim());
  console.log('');
  const head = ['scenario', 'direct', 'via gateway', 'gateway vs direct'];
  if (viaRelay) head.push('via TCP relay', 'gateway vs relay');
  head.push('gateway CPU', 'gateway peak RSS (over idle)');
  const table = [head, ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log('');
  console.log(`gateway RSS idle ${idle.toFixed(0)} MiB; peak per scenario in the last column (VmHWM reset before each; target <= idle + 64 MiB for the 1 GiB transfers)`);
} finally {
  for (const t of targets) t.client.close();
  await gateway.stop();
  await relay?.stop();
  await backend.close();
}
