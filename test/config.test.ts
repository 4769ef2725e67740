import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfigFile, resolveConfig } from '../src/config/index.ts';
import { StartupError } from '../src/errors/index.ts';

const minimal = {
  protos: { files: ['a.proto'] },
  backends: [{ name: 'lib', services: ['library.v1.LibraryService'], endpoints: ['127.0.0.1:50051'] }],
};

test('fills every default and resolves paths relative to the config file', () => {
  const dir = os.tmpdir();
  const cfg = resolveConfig({ ...minimal, protos: { includeDirs: ['.'], files: ['protos/a.proto'] } }, path.join(dir, 'gateway.config.ts'));
  assert.deepEqual(cfg.protos.includeDirs, [dir]);
  assert.equal(cfg.http.port, 8080);
  assert.equal(cfg.http.host, '127.0.0.1');
  assert.equal(cfg.grpc.port, 9090);
  assert.equal(cfg.http.bodyLimit, 4 * 1024 * 1024);
  assert.deepEqual(cfg.protos.files, [path.join(dir, 'protos/a.proto')]);
  assert.equal(cfg.transcoding.unknownBodyFields, 'reject');
  assert.equal(cfg.transcoding.unknownQueryParams, 'ignore');
  assert.equal(cfg.backends[0]!.timeoutMs, 30000);
});

const invalid: Array<[string, unknown, RegExp]> = [
  ['a non-object export', 42, /default export must be an object.*got 42/],
  ['a port out of range', { ...minimal, http: { port: 70000 } }, /http\.port: .*(<=|less than or equal|too big).*got 70000/i],
  ['an endpoint without port', { ...minimal, backends: [{ name: 'b', endpoints: ['localhost'] }] }, /backends\[0\]\.endpoints\[0\]: expected "host:port".*got "localhost"/],
  ['a backend with no endpoint', { ...minimal, backends: [{ name: 'b', endpoints: [] }] }, /backends\[0\]\.endpoints: a backend needs at least one endpoint/],
  ['a misspelt key', { ...minimal, bakends: [] }, /\(root\): Unrecognized key.*"bakends"/],
  ['no proto files', { protos: { files: [] } }, /protos\.files: list at least one/],
  ['a bad service name', { ...minimal, backends: [{ name: 'b', services: ['not a name'], endpoints: ['h:1'] }] }, /backends\[0\]\.services\[0\]: expected a fully-qualified service name/],
  ['a wrong enum value', { ...minimal, transcoding: { unknownBodyFields: 'drop' } }, /transcoding\.unknownBodyFields: .*"reject".*"ignore".*got "drop"/],
  ['duplicate backend names', { ...minimal, backends: [{ name: 'b', endpoints: ['h:1'] }, { name: 'b', endpoints: ['h:2'] }] }, /backends\[1\]\.name: "b" is also the name of backends\[0\]/],
  ['a service served twice', { ...minimal, backends: [{ name: 'a', services: ['x.S'], endpoints: ['h:1'] }, { name: 'b', services: ['x.S'], endpoints: ['h:2'] }] }, /backends\[1\]\.services\[0\]: "x\.S" is already served by backend "a"/],
  ['a missing include dir', { ...minimal, protos: { includeDirs: ['nope'], files: ['a.proto'] } }, /protos\.includeDirs: \/srv\/nope does not exist/],
  ['two default backends', { ...minimal, backends: [{ name: 'a', default: true, endpoints: ['h:1'] }, { name: 'b', default: true, endpoints: ['h:2'] }] }, /"a", "b" are all marked default/],
];

for (const [name, raw, expected] of invalid) {
  test(`rejects ${name}, naming the file and the field`, () => {
    assert.throws(() => resolveConfig(raw, '/srv/gateway.config.ts'), (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.match(err.message, /\/srv\/gateway\.config\.ts/);
      assert.match(err.message, expected);
      return true;
    });
  });
}

test('loads .ts (defineConfig, type imports), .mts, .mjs and .js configs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const index = path.resolve('src/config/define.ts');
  const files: Record<string, string> = {
    'a.ts': `import { defineConfig, type GatewayConfig } from ${JSON.stringify(index)};\nconst port: number = 1234;\nexport default defineConfig({ http: { port }, protos: { files: ['x.proto'] } } satisfies GatewayConfig);\n`,
    'b.mts': `export default { http: { port: 1234 }, protos: { files: ['x.proto'] } } as const;\n`,
    'c.mjs': `export default { http: { port: 1234 }, protos: { files: ['x.proto'] } };\n`,
    'd.js': `export default { http: { port: 1234 }, protos: { files: ['x.proto'] } };\n`,
  };
  for (const [name, text] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), text);
    const cfg = await loadConfigFile(path.join(dir, name));
    assert.equal(cfg.http.port, 1234, name);
    assert.deepEqual(cfg.protos.files, [path.join(dir, 'x.proto')], name);
  }
});

test('a config that fails to load names the file', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'broken.ts');
  fs.writeFileSync(file, 'export default {{;\n');
  await assert.rejects(loadConfigFile(file), (err: unknown) => err instanceof StartupError && err.message.includes(file));
  await assert.rejects(loadConfigFile(path.join(dir, 'missing.ts')), /does not exist/);
});
