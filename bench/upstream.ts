/**
 * Upstream layer benchmarks. Run: node --import tsx bench/upstream.ts [seconds-per-transport]
 *
 *  1. transcoded-unary call cost: @grpc/grpc-js channels vs the lean client on pooled node:http2 sessions ('h2')
 *     and on protogate's own HTTP/2 connections ('socket'), same run, same backend (a separate process, so only the client side is measured): requests per second of
 *     wall time and per second of this process's CPU (= per core).
 *  2. pick cost per policy (3 endpoints), ns per pick.
 *  3. spread over 3 endpoints at concurrency 64 for round_robin and least_request.
 *  4. time until a killed endpoint stops receiving calls.
 */
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { cancelToken } from '../src/upstream/http2-pool.ts';
import { BackendUpstream } from '../src/upstream/backend-upstream.ts';
import type { UpstreamSettings } from '../src/upstream/backend-upstream.ts';
import { GrpcInvoker } from '../src/upstream/grpc-invoker.ts';
import { buildPicker, BALANCING_POLICIES } from '../src/upstream/picker.ts';

const SECONDS = Number(process.argv[2] ?? 4);
const PATH = '/bench.Echo/Unary';

const SERVER = `
const grpc = require('@grpc/grpc-js');
const id = (b) => b;
const s = new grpc.Server();
s.addService({ Unary: { path: '${PATH}', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
  { Unary: (call, cb) => { const md = new grpc.Metadata(); md.set('x-served-by', process.argv[1]); call.sendMetadata(md); cb(null, call.request); } });
s.bindAsync(process.argv[1] + ':0', grpc.ServerCredentials.createInsecure(), (e, port) => { if (e) throw e; process.stdout.write(String(port) + '\\n'); });
`;

async function backend(host: string): Promise<{ address: string; kill(): void }> {
  const child = spawn(process.execPath, ['-e', SERVER, host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  return { address: `${host}:${port}`, kill: () => child.kill('SIGKILL') };
}

function settings(addresses: string[], policy: UpstreamSettings['policy']): UpstreamSettings {
  return {
    name: 'bench', endpoints: addresses.map((address) => ({ address, weight: 1 })), policy, resolveIntervalMs: 30_000,
    pool: { reconnectBackoff: { initialMs: 200, maxMs: 1000 } },
    healthCheck: { enabled: false, intervalMs: 1000, timeoutMs: 1000, service: '', healthyThreshold: 1, unhealthyThreshold: 1 },
    outlierDetection: { enabled: true, consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
  };
}

async function load(invoker: GrpcInvoker, ms: number, concurrency: number, byHost?: Map<string, number>): Promise<{ n: number; errors: number; wallS: number; cpuS: number }> {
  const body = Buffer.alloc(64, 7);
  const stopAt = Date.now() + ms;
  let n = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < stopAt) {
      try {
        const r = await invoker.unary(PATH, body, { metadata: new grpc.Metadata(), deadline: Date.now() + 5000 }, cancelToken());
        n++;
        if (byHost) {
          const h = String(r.headers.get('x-served-by')[0]);
          byHost.set(h, (byHost.get(h) ?? 0) + 1);
        }
      } catch {
        errors++;
      }
    }
  }));
  const cpu = process.cpuUsage(cpu0);
  return { n, errors, wallS: Number(process.hrtime.bigint() - t0) / 1e9, cpuS: (cpu.user + cpu.system) / 1e6 };
}

async function main(): Promise<void> {
  const backends = await Promise.all(['127.0.0.61', '127.0.0.62', '127.0.0.63'].map(backend));
  try {
    console.log(`# 1. unary call cost, 1 endpoint, concurrency 64, ${SECONDS} s each (client process only)`);
    const results: Record<string, number> = {};
    for (const round of [1, 2]) {
      for (const transport of ['grpc-js', 'h2', 'socket'] as const) {
        const up = new BackendUpstream({ ...settings([backends[0]!.address], 'round_robin'), socketCalls: transport === 'socket' });
        const inv = new GrpcInvoker(up, { transport, maxReceiveMessageBytes: 4 << 20, maxSendMessageBytes: 4 << 20 });
        await load(inv, 500, 64); // warm-up
        const r = await load(inv, SECONDS * 1000, 64);
        const perCore = r.n / r.cpuS;
        if (round === 2) results[transport] = perCore;
        console.log(`round ${round} ${transport.padEnd(7)} ${(r.n / r.wallS).toFixed(0).padStart(7)} req/s wall  ${perCore.toFixed(0).padStart(7)} req/s per core  errors ${r.errors}`);
        inv.close();
        await up.close();
      }
    }
    console.log(`per core: h2 / grpc-js ${(results['h2']! / results['grpc-js']!).toFixed(2)}x, socket / grpc-js ${(results['socket']! / results['grpc-js']!).toFixed(2)}x, socket / h2 ${(results['socket']! / results['h2']!).toFixed(2)}x`);

    console.log('\n# 2. pick cost, 3 endpoints');
    const eps = [0, 1, 2].map((i) => ({ address: `e${i}`, weight: i + 1, outstanding: i }));
    for (const policy of BALANCING_POLICIES) {
      const p = buildPicker(policy, eps);
      const N = 5_000_000;
      let sink = 0;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i++) sink += p.pick()!.weight;
      const ns = Number(process.hrtime.bigint() - t0) / N;
      console.log(`${policy.padEnd(16)} ${ns.toFixed(1)} ns/pick${sink < 0 ? '!' : ''}`);
    }

    console.log('\n# 3. spread over 3 endpoints at concurrency 64 (h2)');
    for (const policy of ['round_robin', 'least_request'] as const) {
      const up = new BackendUpstream(settings(backends.map((b) => b.address), policy));
      const inv = new GrpcInvoker(up, { transport: 'h2', maxReceiveMessageBytes: 4 << 20, maxSendMessageBytes: 4 << 20 });
      const byHost = new Map<string, number>();
      const r = await load(inv, 2000, 64, byHost);
      const even = r.n / 3;
      const dev = [...byHost.values()].map((v) => ((v - even) / even) * 100);
      console.log(`${policy.padEnd(14)} ${[...byHost.entries()].map(([h, v]) => `${h}=${v}`).join(' ')}  max deviation ${Math.max(...dev.map(Math.abs)).toFixed(1)}%`);
      await up.close();
    }

    console.log('\n# 4. killed endpoint: time until it stops receiving calls');
    const up = new BackendUpstream(settings(backends.map((b) => b.address), 'round_robin'));
    const inv = new GrpcInvoker(up, { transport: 'h2', maxReceiveMessageBytes: 4 << 20, maxSendMessageBytes: 4 << 20 });
    const running = load(inv, 2500, 64);
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = Date.now();
    backends[2]!.kill();
    while (up.picker.endpoints.length === 3 && Date.now() - killedAt < 5000) await new Promise((r) => setImmediate(r));
    console.log(`left the picker after ${Date.now() - killedAt} ms`);
    const r = await running;
    console.log(`calls during the run: ${r.n} ok, ${r.errors} failed (in flight on the killed endpoint)`);
    await up.close();
  } finally {
    for (const b of backends) b.kill();
  }
}

await main();
