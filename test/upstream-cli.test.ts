import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBackend } from './helpers/upstream-backend.ts';

test('protogate backends prints each backend with its policy, endpoints, connectivity and health', async (t) => {
  const live = await startBackend('127.0.0.70');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-backends-'));
  t.after(async () => {
    await live.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const protos = path.resolve('test/protos');
  const file = path.join(dir, 'gateway.config.ts');
  fs.writeFileSync(file, `export default {
    protos: { files: [${JSON.stringify(path.join(protos, 'everything.proto'))}], includeDirs: [${JSON.stringify(protos)}] },
    transcoding: { allowUnservedServices: true },
    backends: [{ name: 'inventory', endpoints: [${JSON.stringify(live.address)}, { address: '127.0.0.71:1', weight: 2 }],
      policy: 'least_request', healthCheck: { enabled: true, intervalMs: 100 } }],
  };\n`);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['bin/protogate.mjs', 'backends', '--config', file], { timeout: 20_000 }, (err, stdout, stderr) =>
      (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))));
  assert.match(out, /backend inventory\s+policy=least_request\s+usable=1\/2/);
  assert.match(out, new RegExp(`${live.address.replace(/\./g, '\\.')}\\s+weight=1\\s+conn=ready\\s+health=serving\\s+usable`));
  assert.match(out, /127\.0\.0\.71:1\s+weight=2\s+conn=transient_failure\s+health=not_serving.*NOT USABLE/);
});
