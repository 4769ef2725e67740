/** The protogate command as a user runs it: `npx --no -- protogate ...` from the checkout, real processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';

const ROOT = path.resolve('.');

function tmpConfig(t: { after(fn: () => void): void }, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-cli-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'gateway.config.ts');
  fs.writeFileSync(file, text);
  return file;
}

const protogate = (args: string[]) => spawnSync('npx', ['--no', '--', 'protogate', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });

test('an invalid config exits 1 before listening, naming the file, the field, the value and what is expected', (t) => {
  const file = tmpConfig(t, `export default { http: { port: 'eighty' }, protos: { files: ['x.proto'] } };\n`);
  const run = protogate(['--config', file]);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is invalid`));
  assert.match(run.stderr, /http\.port: .*expected number.*\(got "eighty"\)/);
});

test('a proto that fails to load exits 1 naming the proto file and line', (t) => {
  const file = tmpConfig(t, `export default { protos: { files: ['bad.proto'] } };\n`);
  fs.writeFileSync(path.join(path.dirname(file), 'bad.proto'), 'syntax = "proto3";\nmessage A {\n  int32 = 1;\n}\n');
  const run = protogate(['--config', file]);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /bad\.proto.*line 3/);
});

test('routes prints the route table with method, template, gRPC method and source file', () => {
  const run = protogate(['routes', '--config', 'gateway.config.ts']);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^METHOD\s+TEMPLATE\s+GRPC METHOD\s+SOURCE\s+BACKEND/m);
  assert.match(run.stdout, /^GET\s+\/v1\/\{name=shelves\/\*\/books\/\*\}\s+library\.v1\.LibraryService\/GetBook\s+library\/v1\/library\.proto\s+library$/m);
  assert.match(run.stdout, /^POST\s+\/v1\/\{name=shelves\/\*\/books\/\*\}:checkout\s+library\.v1\.LibraryService\/CheckoutBook/m);
  assert.match(run.stdout, /^\d+ routes$/m);
});

test('an unknown command or flag exits 2 with the usage', () => {
  const run = protogate(['frobnicate']);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /Usage:/);
  assert.equal(protogate(['--nope']).status, 2);
});

test('serve logs its addresses and the number of services and routes, and exits 0 on SIGTERM', async (t) => {
  const file = tmpConfig(t, `export default {
  http: { port: 0 }, grpc: { port: 0 }, admin: { port: 0 }, shutdown: { drainDelayMs: 0 },
  protos: { includeDirs: [${JSON.stringify(path.join(ROOT, 'protos'))}], files: [${JSON.stringify(path.join(ROOT, 'protos/library/v1/library.proto'))}] },
  backends: [{ name: 'library', services: ['library.v1.LibraryService'], endpoints: ['127.0.0.1:1'] }],
};\n`);
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/protogate.mjs'), '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line; got: ${out}`)), 30_000);
    child.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes('protogate listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const line = JSON.parse(out.split('\n').find((l) => l.includes('protogate listening'))!) as Record<string, unknown>;
  assert.match(String(line['http']), /^127\.0\.0\.1:\d+$/);
  assert.equal(line['services'], 1);
  assert.equal(line['routes'], 11);
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});
