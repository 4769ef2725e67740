/**
 * Passthrough vs direct, same run, same client and backend (@grpc/grpc-js, Buffer serializers, in this process);
 * the gateway runs in a child process so its peak RSS (VmHWM, Linux /proc) is its own.
 *
 *   node --import tsx bench/passthrough.ts                 # 1 GiB each way, ~2-4 min on 2 cores
 *   node --import tsx bench/passthrough.ts --mib 128 --unary-seconds 2
 *
 * Flags: --mib N (bytes per transfer, default 1024), --no-single (skip the one-message transfers),
 * --unary-n N (sequential calls for p50, default 2000), --unary-seconds S (concurrency-64 run, default 5).
 * Targets (issue #3): peak RSS <= idle + 64 MiB; throughput >= 90% of direct; unary added p50 <= 0.3 ms;
 * req/s at concurrency 64 >= 80% of direct.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { methodPath, rawClient, ser, startBackend } from '../test/helpers/passthrough-backend.ts';
import { spawnGateway } from '../test/helpers/passthrough-child.ts';

const { values: flags } = parseArgs({
  options: {
    mib: { type: 'string', default: '1024' },
    'no-single': { type: 'boolean', default: false },
    'unary-n': { type: 'string', default: '2000' },
    'unary-seconds': { type: 'string', default: '5' },
  },
});
const TOTAL = Number(flags.mib) * 2 ** 20;
const CHUNK = 64 * 1024;
const WINDOW = { 'grpc-node.flow_control_window': 1 << 20 };

const backend = await startBackend({ serverOptions: WINDOW });
const gateway = await spawnGateway({ endpoints: [`127.0.0.1:${backend.port}`], services: ['test.passthrough.*'] });
const direct = rawClient(`127.0.0.1:${backend.port}`, undefined, WINDOW);
const viaGateway = rawClient(`127.0.0.1:${gateway.port}`, undefined, WINDOW);

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

async function downChunks(client: grpc.Client): Promise<number> {
  const call = client.makeServerStreamRequest(methodPath('ServerStream'), ser, ser, Buffer.alloc(CHUNK, 3), md({ 'x-count': String(TOTAL / CHUNK) }));
  let bytes = 0;
  call.on('data', (b: Buffer) => (bytes += b.length));
  await new Promise<void>((resolve, reject) => {
    call.on('status', (s: grpc.StatusObject) => (s.code === 0 ? resolve() : reject(new Error(s.details))));
    call.on('error', reject);
  });
  return bytes;
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

async function downOne(client: grpc.Client): Promise<number> {
  const call = client.makeServerStreamRequest(methodPath('ServerStream'), ser, ser, Buffer.alloc(0), md({ 'x-behavior': 'big', 'x-size': String(TOTAL) }));
  let bytes = 0;
  call.on('data', (b: Buffer) => (bytes += b.length));
  await new Promise<void>((resolve, reject) => {
    call.on('status', (s: grpc.StatusObject) => (s.code === 0 ? resolve() : reject(new Error(s.details))));
    call.on('error', reject);
  });
  return bytes;
}

async function upOne(client: grpc.Client): Promise<number> {
  const res = await unaryCall(client, Buffer.alloc(TOTAL, 5), md({ 'x-behavior': 'size' }));
  return Number(res.readBigUInt64BE());
}

const rows: string[][] = [];
const mibps = (bytes: number, ms: number): number => bytes / 2 ** 20 / (ms / 1000);

async function throughput(name: string, run: (c: grpc.Client) => Promise<number>): Promise<void> {
  const results: number[] = [];
  for (const client of [direct, viaGateway]) {
    const t0 = performance.now();
    const bytes = await run(client);
    if (bytes !== TOTAL) throw new Error(`${name}: moved ${bytes} bytes, expected ${TOTAL}`);
    results.push(mibps(bytes, performance.now() - t0));
  }
  const hwm = gateway.memory().hwmKb / 1024;
  rows.push([name, `${results[0].toFixed(0)} MiB/s`, `${results[1].toFixed(0)} MiB/s`, `${((results[1] / results[0]) * 100).toFixed(0)}%`, `${hwm.toFixed(0)} MiB`]);
  console.error(`done: ${name}`);
}

async function unaryLatency(client: grpc.Client, n: number): Promise<number> {
  const body = Buffer.from('ping');
  for (let i = 0; i < 200; i++) await unaryCall(client, body);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await unaryCall(client, body);
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

async function unaryRate(client: grpc.Client, seconds: number, concurrency = 64): Promise<number> {
  const body = Buffer.from('ping');
  const until = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      await unaryCall(client, body);
      done++;
    }
  }));
  return done / seconds;
}

try {
  await unaryCall(viaGateway, Buffer.from('warm'));
  const idle = gateway.memory().rssKb / 1024;
  await throughput(`down ${flags.mib} MiB as 64 KiB msgs`, downChunks);
  await throughput(`up ${flags.mib} MiB as 64 KiB msgs`, upChunks);
  if (!flags['no-single']) {
    await throughput(`down ${flags.mib} MiB as ONE msg`, downOne);
    await throughput(`up ${flags.mib} MiB as ONE msg`, upOne);
  }
  const n = Number(flags['unary-n']);
  const seconds = Number(flags['unary-seconds']);
  const p50d = await unaryLatency(direct, n);
  const p50g = await unaryLatency(viaGateway, n);
  const rated = await unaryRate(direct, seconds);
  const rateg = await unaryRate(viaGateway, seconds);
  const peak = gateway.memory().hwmKb / 1024;

  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, node ${process.version}, ${os.platform()} ${os.release()}`);
  console.log(`command: node --import tsx bench/passthrough.ts ${process.argv.slice(2).join(' ')}`.trim());
  console.log('');
  const table = [['scenario', 'direct', 'via gateway', 'ratio', 'gateway VmHWM so far'], ...rows];
  table.push(['unary p50, concurrency 1', `${p50d.toFixed(3)} ms`, `${p50g.toFixed(3)} ms`, `+${(p50g - p50d).toFixed(3)} ms`, '']);
  table.push(['unary req/s, concurrency 64', rated.toFixed(0), rateg.toFixed(0), `${((rateg / rated) * 100).toFixed(0)}%`, '']);
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  for (const r of table) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  '));
  console.log('');
  console.log(`gateway RSS idle ${idle.toFixed(0)} MiB, peak (VmHWM) ${peak.toFixed(0)} MiB, growth ${(peak - idle).toFixed(0)} MiB (target <= 64)`);
} finally {
  direct.close();
  viaGateway.close();
  await gateway.stop();
  await backend.close();
}
