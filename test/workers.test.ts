/**
 * `workers: 2`: the real command, a cluster primary and two workers sharing the REST and gRPC ports, in front of
 * the example library backend. The access-log lines on stdout carry each worker's pid, so the test can see who
 * served what.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startLibraryBackend } from '../examples/library-backend.ts';

const ROOT = path.resolve('.');
const GOOGLE = path.dirname(createRequire(import.meta.url).resolve('google-proto-files/package.json'));

type LogLine = Record<string, unknown>;

/** GET on a connection of its own (agent: false, Connection: close), so the cluster hands each one to a worker afresh. */
function getFresh(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('workers: 2 serves REST and gRPC from two worker processes on shared ports, aggregates /metrics in the primary and exits 0 on SIGTERM', { timeout: 30_000 }, async (t) => {
  const library = await startLibraryBackend({ host: '127.0.0.1', port: 0 });
  t.after(() => library.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-workers-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'gateway.config.ts');
  // Port 0 works under node:cluster: the primary binds once per listener and every worker gets that same port.
  fs.writeFileSync(file, `export default {
  workers: 2,
  http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 },
  shutdown: { drainDelayMs: 0, timeoutMs: 5000 },
  protos: { includeDirs: [${JSON.stringify(path.join(ROOT, 'protos'))}], files: [${JSON.stringify(path.join(ROOT, 'protos/library/v1/library.proto'))}] },
  backends: [{ name: 'library', services: ['library.v1.LibraryService'], endpoints: ['127.0.0.1:${library.port}'] }],
};\n`);

  const child = spawn(process.execPath, [path.join(ROOT, 'bin/protogate.mjs'), '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const workerPids: number[] = [];
  t.after(() => {
    child.kill('SIGKILL');
    for (const pid of workerPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop()!;
    for (const p of parts) if (p.startsWith('{')) lines.push(JSON.parse(p) as LogLine);
    for (const w of waiters) w();
  });
  const waitFor = (what: string, ok: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!ok()) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; stderr: ${stderr}`));
      }, 20_000);
      waiters.add(check);
      check();
    });

  await waitFor('the primary to report every worker serving', () => lines.some((l) => String(l['msg']).includes('2 workers serving')));
  const primary = lines.find((l) => String(l['msg']).includes('2 workers serving'))!;
  assert.equal(primary['role'], 'primary');
  assert.equal(primary['pid'], child.pid);
  workerPids.push(...(primary['pids'] as number[]));
  assert.equal(new Set(workerPids).size, 2);
  assert.ok(!workerPids.includes(child.pid!), 'the primary serves no traffic itself');

  // Each process writes its own lines to the shared stdout, so a worker's line may land after the primary's.
  const listeningLines = (): LogLine[] => lines.filter((l) => String(l['msg']).startsWith('protogate listening'));
  await waitFor('both workers\' listening lines', () => listeningLines().length === 2);
  const listening = listeningLines();
  assert.deepEqual(new Set(listening.map((l) => l['pid'])), new Set(workerPids));
  assert.deepEqual(new Set(listening.map((l) => l['worker'])), new Set([1, 2]));
  // Both workers bound the same shared ports.
  assert.equal(new Set(listening.map((l) => l['http'])).size, 1);
  assert.equal(new Set(listening.map((l) => l['grpc'])).size, 1);
  const restUrl = `http://${String(listening[0]!['http'])}`;
  const grpcAddress = String(listening[0]!['grpc']);
  const adminUrl = `http://${String(primary['admin'])}`;

  // REST: every request on a fresh connection succeeds, and both workers answer some of them.
  const N = 40;
  const results = await Promise.all(Array.from({ length: N }, () => getFresh(`${restUrl}/v1/shelves`)));
  for (const r of results) assert.equal(r.status, 200, r.body);
  const accessLines = (): LogLine[] => lines.filter((l) => l['route'] === 'GET /v1/shelves' && l['status'] === 200);
  await waitFor(`${N} access-log lines`, () => accessLines().length >= N);
  const servedBy = new Set(accessLines().map((l) => l['pid'] as number));
  assert.deepEqual(servedBy, new Set(workerPids));
  for (const l of accessLines()) assert.ok(l['worker'] === 1 || l['worker'] === 2);

  // gRPC passthrough through the shared net.Server: fresh clients (new connections) all succeed.
  const def = protoLoader.loadSync(path.join(ROOT, 'protos/library/v1/library.proto'), { includeDirs: [path.join(ROOT, 'protos'), GOOGLE], keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { library: { v1: { LibraryService: grpc.ServiceClientConstructor } } };
  const G = 6;
  for (let i = 0; i < G; i++) {
    const client = new pkg.library.v1.LibraryService(grpcAddress, grpc.credentials.createInsecure());
    try {
      const res = await new Promise<{ shelves: unknown[] }>((resolve, reject) =>
        client['ListShelves']!({}, (err: grpc.ServiceError | null, r: { shelves: unknown[] }) => (err ? reject(err) : resolve(r))));
      assert.ok(res.shelves.length > 0);
    } finally {
      client.close();
    }
  }

  // Admin lives in the primary: /metrics is the sum over the workers, /readyz knows both started.
  const metrics = await getFresh(`${adminUrl}/metrics`);
  assert.equal(metrics.status, 200);
  const sum = (name: string): number =>
    metrics.body.split('\n').filter((l) => l.startsWith(`${name}{`)).reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  assert.equal(sum('protogate_http_requests_total'), N);
  assert.equal(sum('protogate_grpc_streams_total'), G);
  assert.match(metrics.body, /^protogate_upstream_endpoint_healthy\{backend="library",endpoint="127\.0\.0\.1:\d+"\} 1$/m);
  const ready = await getFresh(`${adminUrl}/readyz`);
  assert.equal(ready.status, 200, ready.body);

  child.kill('SIGTERM');
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
  assert.equal(code, 0, `exit ${code} ${signal}; stderr: ${stderr}`);
  for (const pid of workerPids) assert.equal(alive(pid), false, `worker ${pid} is still running`);
  const exits = lines.filter((l) => l['msg'] === 'worker exited');
  assert.deepEqual(new Set(exits.map((l) => l['exitedPid'])), new Set(workerPids));
  for (const e of exits) assert.equal(e['code'], 0);
});
