/**
 * runtime.renewStreamTables (src/upstream/stream-tables.ts): node:http2's per-session stream tables and our per-request
 * sets are replaced by fresh copies, so that after a Mark-Compact finished requests are not kept alive (and promoted)
 * by V8's obsolete hash tables; node:http2 keeps working on the copies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { AddressInfo } from 'node:net';
import {
  ChurnMap, ChurnSet, RENEW_EVERY, renewals, renewOnStreams, renewSessionTables, setStreamTableRenewal, streamTableRenewal,
} from '../src/upstream/stream-tables.ts';
import { methodPath, rawClient, startBackend } from './helpers/passthrough-backend.ts';
import { startGateway as startPassthrough, unary } from './helpers/passthrough-gateway.ts';
import { startGateway } from './helpers/gateway.ts';
import { resolveConfig } from '../src/config/index.ts';
import { createGateway } from '../src/gateway.ts';

v8.setFlagsFromString('--expose-gc');
const fullGc = vm.runInNewContext('gc') as () => void;

function stateOf(session: http2.Http2Session): { streams: { size: number }; pendingStreams: { size: number } } {
  const k = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state')!;
  return (session as unknown as Record<symbol, { streams: { size: number }; pendingStreams: { size: number } }>)[k];
}

async function h2Pair(onStream: (s: http2.ServerHttp2Stream) => void): Promise<{ client: http2.ClientHttp2Session; server: http2.Http2Server; serverSessions: http2.ServerHttp2Session[] }> {
  const server = http2.createServer();
  const serverSessions: http2.ServerHttp2Session[] = [];
  // Errors are what the first test causes on purpose (destroy with an error): the tests read 'close'.
  server.on('session', (s) => { serverSessions.push(s); s.on('error', () => {}); });
  server.on('stream', (s) => { s.on('error', () => {}); onStream(s); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on('error', () => {});
  await new Promise((r) => client.once('connect', r));
  return { client, server, serverSessions };
}

function body(stream: http2.ClientHttp2Stream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => { text += c; });
    // 'close' (after 'end'): by then node:http2 has taken the stream out of its tables.
    stream.on('close', () => resolve(text));
    stream.on('error', reject);
  });
}

test('renewing a session\'s tables keeps its streams: in-flight ones complete, destroy() still reaches new ones', async () => {
  const held: http2.ServerHttp2Stream[] = [];
  const { client, server } = await h2Pair((s) => held.push(s));
  try {
    // On a connected session request() assigns the id at once: the streams are in `streams`, not `pendingStreams`.
    const first = [0, 1, 2].map(() => client.request({ ':path': '/' }));
    const before = stateOf(client).streams;
    assert.equal(before.size, 3);
    assert.equal(renewSessionTables(client), true);
    const after = stateOf(client).streams;
    assert.notEqual(after, before);
    assert.equal(after.size, 3);
    const bodies = first.map(body);
    while (held.length < 3) await new Promise((r) => setTimeout(r, 5));
    for (const s of held.splice(0)) { s.respond(); s.end('ok'); }
    assert.deepEqual(await Promise.all(bodies), ['ok', 'ok', 'ok']);
    assert.equal(stateOf(client).streams.size, 0);

    // Streams in the tables at a renewal are in the copies, and destroy() reaches them there.
    const open = client.request({ ':path': '/' });
    const other = client.request({ ':path': '/' });
    assert.equal(renewSessionTables(client), true);
    const closed = [open, other].map((s) => new Promise<unknown>((r) => s.on('close', () => r(s.destroyed))));
    ignoreErrors(open, other);
    client.destroy(new Error('gone'));
    assert.deepEqual(await Promise.all(closed), [true, true]);
  } finally {
    client.destroy();
    server.close();
  }
});

function ignoreErrors(...streams: http2.ClientHttp2Stream[]): void {
  for (const s of streams) s.on('error', () => {});
}

test('runtime.renewStreamTables: false turns renewal off (process-wide); the default turns it on', () => {
  const protos = { includeDirs: [path.resolve('test/protos')], files: [path.resolve('test/protos/everything.proto')] };
  const base = { log: { level: 'silent' as const }, protos, transcoding: { allowUnservedServices: true } };
  createGateway(resolveConfig({ ...base, runtime: { renewStreamTables: false } }, '/tmp/x.config.ts'));
  assert.equal(streamTableRenewal(), false);
  createGateway(resolveConfig(base, '/tmp/x.config.ts'));
  assert.equal(streamTableRenewal(), true);
});

const oldSpaceUsed = (): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;

/** Old-space growth over `churn(10_000, 20_000)`, after a warm-up `churn(0, 2000)` and a full GC (which promotes the table). */
function growthAfterFullGc(churn: (from: number, n: number) => void): number {
  churn(0, 2000);
  fullGc();
  const before = oldSpaceUsed();
  churn(10_000, 20_000);
  return oldSpaceUsed() - before;
}

test('ChurnSet: members added and removed after a full GC are not promoted through the set (old space stays flat)', () => {
  const churn = (set: { add(v: object): void; delete(v: object): boolean }): number => {
    const live: object[] = [];
    return growthAfterFullGc((from, n) => {
      for (let i = from; i < from + n; i++) { const o = { ballast: new Array(500).fill(i) }; set.add(o); live.push(o); if (live.length > 32) set.delete(live.shift()!); }
    });
  };
  // The ChurnSet first: after the plain Set's run, V8 may pretenure these allocation sites (their objects survived),
  // and objects allocated in old space to begin with would show up as growth whatever the set.
  const renewed = churn(new ChurnSet());
  const plain = churn(new Set());
  console.log(`old-space growth over 20,000 members: ${(plain / 2 ** 20).toFixed(1)} MiB with a Set, ${(renewed / 2 ** 20).toFixed(1)} MiB with a ChurnSet`);
  assert.ok(renewed < 16 * 2 ** 20, `old space grew by ${renewed} bytes`);
});

test('ChurnMap: entries set and deleted after a full GC are not promoted through the map (old space stays flat)', () => {
  const churn = (map: { set(k: number, v: object): void; delete(k: number): boolean }): number => growthAfterFullGc((from, n) => {
    for (let i = from; i < from + n; i++) { map.set(i, { ballast: new Array(500).fill(i) }); if (i - from >= 32) map.delete(i - 32); }
    for (let i = from + n - 32; i < from + n; i++) map.delete(i);
  });
  // The ChurnMap first, for the reason given in the ChurnSet test above.
  const renewed = churn(new ChurnMap());
  const plain = churn(new Map());
  console.log(`old-space growth over 20,000 entries: ${(plain / 2 ** 20).toFixed(1)} MiB with a Map, ${(renewed / 2 ** 20).toFixed(1)} MiB with a ChurnMap`);
  assert.ok(renewed < 16 * 2 ** 20, `old space grew by ${renewed} bytes`);
});

test('ChurnMap keeps Map semantics across renewals', () => {
  const map = new ChurnMap<number, string>();
  const n = RENEW_EVERY * 3 + 7;
  for (let i = 0; i < n; i++) map.set(i, `v${i}`);
  for (let i = 0; i < n; i += 2) assert.equal(map.delete(i), true);
  assert.equal(map.delete(0), false);
  assert.equal(map.size, Math.floor(n / 2));
  assert.equal(map.get(1), 'v1');
  assert.equal(map.has(2), false);
  map.set(1, 'again');
  assert.deepEqual([...map.values()].slice(0, 2), ['again', 'v3']);
  map.clear();
  assert.equal(map.size, 0);
});

test('ChurnSet keeps Set semantics across renewals', () => {
  const set = new ChurnSet<object>();
  const members = Array.from({ length: RENEW_EVERY * 3 + 7 }, (_, i) => ({ i }));
  for (const m of members) set.add(m);
  for (let i = 0; i < members.length; i += 2) assert.equal(set.delete(members[i]!), true);
  assert.equal(set.delete(members[0]!), false);
  assert.equal(set.size, Math.floor(members.length / 2));
  assert.equal(set.has(members[1]!), true);
  assert.equal(set.has(members[2]!), false);
  assert.deepEqual([...set], members.filter((_, i) => i % 2 === 1));
  set.clear();
  assert.equal(set.size, 0);
});

/**
 * Old-space growth over `n` requests, right after a full GC (which promotes the live tables), through one client
 * session and one server session in this process; each stream carries ~4 KB that lives only as long as its request.
 */
async function oldSpaceGrowth(n: number): Promise<number> {
  const { client, server, serverSessions } = await h2Pair((s) => {
    (s as unknown as { ballast: number[] }).ballast = new Array(500).fill(s.id);
    s.respond();
    s.end('ok');
  });
  renewOnStreams(serverSessions[0]!);
  let opened = 0;
  const one = async (): Promise<void> => {
    const s = client.request({ ':path': '/' });
    // As the upstream session does (src/upstream/http2-session.ts).
    if (++opened % RENEW_EVERY === 0) renewSessionTables(client);
    (s as unknown as { ballast: number[] }).ballast = new Array(500).fill(1);
    await body(s);
  };
  try {
    for (let i = 0; i < 500; i++) await one(); // warm-up: compiled code, grown tables
    fullGc();
    const used = (): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;
    const before = used();
    let done = 0;
    await Promise.all(Array.from({ length: 32 }, async () => { while (done++ < n) await one(); }));
    return used() - before;
  } finally {
    client.destroy();
    server.close();
  }
}

test('after a full GC, finished requests are not promoted through the stream tables (old space stays flat)', async () => {
  const N = 6000;
  // With renewal first, for the reason given in the ChurnSet test above.
  setStreamTableRenewal(true);
  const withRenewal = await oldSpaceGrowth(N);
  setStreamTableRenewal(false);
  const without = await oldSpaceGrowth(N);
  setStreamTableRenewal(true);
  console.log(`old-space growth over ${N} requests: ${(without / 2 ** 20).toFixed(1)} MiB without renewal, ${(withRenewal / 2 ** 20).toFixed(1)} MiB with`);
  // Measured here: ~57 MiB without, ~6 MiB with (what stays is requests in flight across two scavenges).
  assert.ok(withRenewal < 16 * 2 ** 20, `old space grew by ${withRenewal} bytes over ${N} requests`);
});

test('the gRPC port renews both its client-facing session and its upstream session every RENEW_EVERY calls', async () => {
  setStreamTableRenewal(true);
  const backend = await startBackend();
  const gw = await startPassthrough([{ name: 'b', services: ['test.passthrough.*'], endpoints: [`127.0.0.1:${backend.port}`] }]);
  const client = rawClient(gw.target);
  try {
    const before = renewals();
    for (let i = 0; i < 3 * RENEW_EVERY; i++) {
      const r = await unary(client, methodPath('Unary'), Buffer.from('x'));
      assert.equal(r.error, null);
    }
    const after = renewals();
    // One client connection and one upstream session: three renewals each.
    assert.deepEqual({ client: after.client - before.client, server: after.server - before.server }, { client: 3, server: 3 });
  } finally {
    client.close();
    await gw.close();
    await backend.close();
  }
});

test('the REST port over TLS (HTTP/2) renews each client session\'s tables every RENEW_EVERY requests', async (t) => {
  setStreamTableRenewal(true);
  const FIX = path.resolve('test/fixtures');
  const protos = { includeDirs: [path.resolve('test/protos')], files: [path.resolve('test/protos/everything.proto')] };
  const gw = await startGateway({
    http: { tls: { cert: path.join(FIX, 'passthrough-cert.pem'), key: path.join(FIX, 'passthrough-key.pem') } },
    protos, transcoding: { allowUnservedServices: true }, backends: [],
  });
  t.after(() => gw.close());
  const session = http2.connect(gw.url.replace('http:', 'https:'), { ca: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), servername: 'localhost' });
  session.on('error', () => {});
  t.after(() => session.destroy());
  const before = renewals();
  for (let i = 0; i < 2 * RENEW_EVERY; i++) {
    // No route: a 404 is still one stream on the gateway's session.
    const status = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/no/such/route' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
      s.resume();
    });
    assert.equal(status, 404);
  }
  assert.equal(renewals().server - before.server, 2);
});
