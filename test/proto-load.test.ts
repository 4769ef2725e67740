import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadProtos, bundledProtoDir } from '../src/proto/load.ts';
import { StartupError } from '../src/errors/index.ts';

function tmpTree(t: { after(fn: () => void): void }, files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-proto-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const SHELF = `syntax = "proto3";
package shop.v1;
import "google/api/annotations.proto";
import "google/protobuf/timestamp.proto";
import "shop/v1/common.proto";
message Item { string name = 1; google.protobuf.Timestamp created = 2; Money price = 3; map<string, Money> by_region = 4; }
message GetItemRequest { string name = 1; }
service Shop {
  rpc GetItem(GetItemRequest) returns (Item) {
    option (google.api.http) = {
      get: "/v1/{name=items/*}"
      additional_bindings { get: "/v1/legacy/{name=items/*}" }
      additional_bindings { custom: { kind: "HEAD" path: "/v1/{name=items/*}" } }
    };
  }
  rpc Watch(GetItemRequest) returns (stream Item) { option (google.api.http) = { get: "/v1/{name=items/*}:watch" }; }
  rpc NoRule(GetItemRequest) returns (Item);
}
`;
const COMMON = `syntax = "proto3";\npackage shop.v1;\nmessage Money { string currency = 1; int64 units = 2; }\n`;

test('loads services, kinds and every additional binding from .proto files with imports', (t) => {
  const dir = tmpTree(t, { 'shop/v1/shop.proto': SHELF, 'shop/v1/common.proto': COMMON });
  const set = loadProtos({ includeDirs: [dir], files: [path.join(dir, 'shop/v1/shop.proto')] });
  assert.deepEqual([...set.services.keys()], ['shop.v1.Shop']);
  const byName = new Map(set.methods.map((m) => [m.name, m]));
  const get = byName.get('GetItem')!;
  assert.equal(get.path, '/shop.v1.Shop/GetItem');
  assert.equal(get.kind, 'unary');
  assert.equal(get.file, 'shop/v1/shop.proto');
  assert.deepEqual(get.rules.map((r) => [r.method, r.pattern, r.binding]), [
    ['GET', '/v1/{name=items/*}', 0],
    ['GET', '/v1/legacy/{name=items/*}', 1],
    ['HEAD', '/v1/{name=items/*}', 2],
  ]);
  assert.equal(byName.get('Watch')!.kind, 'server_streaming');
  assert.deepEqual(byName.get('NoRule')!.rules, []);
  // Types from imported files resolve, with their real file names.
  const item = set.registry.getMessage('shop.v1.Item')!;
  assert.equal(item.file.name, 'shop/v1/shop');
  assert.equal(item.field.price.message?.file.name, 'shop/v1/common');
  // google.rpc error details are always known, for grpc-status-details-bin.
  assert.ok(set.registry.getMessage('google.rpc.BadRequest'));
  assert.ok(set.registry.getMessage('google.api.HttpBody'));
});

test('a copy of a google/api proto in the user include dirs takes precedence, without duplicate definitions', (t) => {
  const bundled = fs.readFileSync(path.join(bundledProtoDir(), 'google/api/http.proto'), 'utf8');
  const dir = tmpTree(t, {
    'google/api/http.proto': bundled + '\nmessage ProtogateMarker { string x = 1; }\n',
    'shop/v1/shop.proto': SHELF,
    'shop/v1/common.proto': COMMON,
  });
  const set = loadProtos({ includeDirs: [dir], files: [path.join(dir, 'shop/v1/shop.proto')] });
  assert.ok(set.registry.getMessage('google.api.ProtogateMarker'), 'the user copy was loaded');
  assert.equal(set.methods.length, 3);
});

test('the first include dir holding a file wins, as with protoc -I', (t) => {
  const a = tmpTree(t, { 'shop/v1/common.proto': COMMON.replace('int64 units = 2;', 'int64 units = 2; string from_a = 3;') });
  const b = tmpTree(t, { 'shop/v1/common.proto': COMMON.replace('int64 units = 2;', 'int64 units = 2; string from_b = 3;'), 'shop/v1/shop.proto': SHELF });
  const set = loadProtos({ includeDirs: [a, b], files: [path.join(b, 'shop/v1/shop.proto')] });
  const money = set.registry.getMessage('shop.v1.Money')!;
  assert.ok(money.field.fromA);
  assert.equal(money.field.fromB, undefined);
});

test('expands globs in sorted order and rejects a pattern matching nothing', (t) => {
  const dir = tmpTree(t, { 'shop/v1/shop.proto': SHELF, 'shop/v1/common.proto': COMMON });
  const set = loadProtos({ includeDirs: [dir], files: [path.join(dir, 'shop/**/*.proto')] });
  assert.deepEqual([...set.services.keys()], ['shop.v1.Shop']);
  assert.throws(() => loadProtos({ includeDirs: [dir], files: [path.join(dir, 'nothing/*.proto')] }), /protos\.files\[0\]: the pattern .* matches no file/);
  assert.throws(() => loadProtos({ includeDirs: [dir], files: [path.join(dir, 'missing.proto')] }), /protos\.files\[0\]: .*missing\.proto does not exist/);
});

test('a missing import names the importing file, the import and every dir searched', (t) => {
  const dir = tmpTree(t, { 'a.proto': 'syntax = "proto3";\nimport "nope/missing.proto";\nmessage A {}\n' });
  assert.throws(() => loadProtos({ includeDirs: [dir], files: [path.join(dir, 'a.proto')] }), (err: unknown) => {
    assert.ok(err instanceof StartupError);
    assert.match(err.message, /a\.proto imports "nope\/missing\.proto"/);
    assert.ok(err.message.includes(dir), 'names the user include dir');
    assert.ok(err.message.includes(bundledProtoDir()), 'names the bundled dir');
    assert.match(err.message, /Fix: add the directory/);
    return true;
  });
});

test('a syntax error names the file and the line', (t) => {
  const dir = tmpTree(t, { 'bad.proto': 'syntax = "proto3";\nmessage A {\n  string x = ;\n}\n' });
  assert.throws(() => loadProtos({ includeDirs: [dir], files: [path.join(dir, 'bad.proto')] }), (err: unknown) => {
    assert.ok(err instanceof StartupError);
    assert.match(err.message, /bad\.proto/);
    assert.match(err.message, /line 3/);
    return true;
  });
});

test('an unresolvable type names the type', (t) => {
  const dir = tmpTree(t, { 'u.proto': 'syntax = "proto3";\nmessage A { Missing m = 1; }\n' });
  assert.throws(() => loadProtos({ includeDirs: [dir], files: [path.join(dir, 'u.proto')] }), /Missing/);
});

test('an invalid HTTP rule names the method and file', (t) => {
  const dir = tmpTree(t, {
    'r.proto': 'syntax = "proto3";\nimport "google/api/annotations.proto";\nmessage A {}\nservice S { rpc M(A) returns (A) { option (google.api.http) = { body: "*" }; } }\n',
  });
  assert.throws(() => loadProtos({ includeDirs: [dir], files: [path.join(dir, 'r.proto')] }), /S\.M \(r\.proto\): an HttpRule needs one of get/);
});

test('a protoc FileDescriptorSet gives the same methods and rules as the source it was built from', () => {
  const dir = path.resolve('test/fixtures/descriptor-set');
  const fromSet = loadProtos({ includeDirs: [], files: [path.join(dir, 'shop.pb')] });
  const fromSource = loadProtos({ includeDirs: [dir], files: [path.join(dir, 'shop/v1/shop.proto')] });
  const summary = (s: typeof fromSet) => s.methods.map((m) => ({ path: m.path, kind: m.kind, file: m.file, rules: m.rules, input: m.input.typeName }));
  assert.deepEqual(summary(fromSet), summary(fromSource));
  // Only the set's roots are exposed: google/api and friends inside the set are dependencies, not services.
  assert.deepEqual([...fromSet.services.keys()], ['shop.v1.Shop']);
  const a = fromSet.registry.getMessage('shop.v1.Item')!;
  const b = fromSource.registry.getMessage('shop.v1.Item')!;
  assert.deepEqual(a.fields.map((f) => [f.name, f.number, f.jsonName, f.fieldKind]), b.fields.map((f) => [f.name, f.number, f.jsonName, f.fieldKind]));
});

test('a file that is not a FileDescriptorSet says how to make one', (t) => {
  const dir = tmpTree(t, { 'x.pb': 'this is not protobuf at all \u0000\u0001' });
  assert.throws(() => loadProtos({ includeDirs: [], files: [path.join(dir, 'x.pb')] }), /x\.pb is not a FileDescriptorSet.*protoc --include_imports/);
});
