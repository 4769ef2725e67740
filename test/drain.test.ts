/**
 * Graceful shutdown of a real `protogate` process under load: SIGTERM while REST (keep-alive) and gRPC clients keep
 * calling a slow backend. Readiness fails at once, the ports keep serving for drainDelayMs, then refuse new
 * connections (GOAWAY on HTTP/2), every request already accepted finishes, and the process exits 0. Streams still
 * open at shutdown.timeoutMs end with UNAVAILABLE, not with a reset.
 *
 * What counts (REST): a request is "accepted" once the backend has seen it (each request carries a unique id in its
 * path). Every accepted request must answer 200 with its own body. A request that fails without the backend ever
 * seeing it is a refusal, allowed only as a connection error on a connection the client had to open: ECONNREFUSED,
 * or ECONNRESET / "socket hang up" on a fresh (not reused) socket (the kernel resets connections still in the
 * closed listener's accept queue). A reset on a reused keep-alive socket is a failure: the gateway must have told
 * that client `Connection: close` instead of closing under it. Any HTTP error status is a failure.
 * What counts (gRPC): the same, by call id; the only allowed failure is UNAVAILABLE from a channel that could not
 * connect ("No connection established" / ECONNREFUSED), for a call the backend never saw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { bundledProtoDir } from '../src/proto/load.ts';

const ROOT = path.resolve('.');
const PROTO_DIR = path.join(ROOT, 'test/protos');
const PROTO_FILE = path.join(PROTO_DIR, 'everything.proto');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Book { name: string; title: string }
type EverythingClient = grpc.Client & {
  GetBook(req: { name: string }, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Book) => void): grpc.ClientUnaryCall;
  ListBooks(req: { parent: string }): grpc.ClientReadableStream<Book>;
};

function loadEverything(): grpc.ServiceClientConstructor & { service: grpc.ServiceDefinition } {
  const def = protoLoader.loadSync(PROTO_FILE, { includeDirs: [PROTO_DIR, bundledProtoDir()], keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { testpb: { Everything: grpc.ServiceClientConstructor } };
  return pkg.testpb.Everything;
}

/** A @grpc/grpc-js backend: GetBook answers after 50-150 ms; ListBooks sends a book every 100 ms until cancelled. */
async function startBackend(t: { after(fn: () => Promise<void>): void }) {
  const seen = new Set<string>();
  const streams: Array<{ parent: string; sent: number; cancelled: boolean }> = [];
  const server = new grpc.Server();
  const Everything = loadEverything();
  server.addService(Everything.service, {
    GetBook(call: grpc.ServerUnaryCall<{ name: string }, Book>, cb: grpc.sendUnaryData<Book>) {
      seen.add(call.request.name);
      setTimeout(() => cb(null, { name: call.request.name, title: 'ok' }), 50 + Math.random() * 100);
    },
    ListBooks(call: grpc.ServerWritableStream<{ parent: string }, Book>) {
      const s = { parent: call.request.parent, sent: 0, cancelled: false };
      streams.push(s);
      const timer = setInterval(() => {
        call.write({ name: `${s.parent}/books/${s.sent}`, title: `book ${s.sent}` });
        s.sent++;
      }, 100);
      call.on('cancelled', () => {
        s.cancelled = true;
        clearInterval(timer);
      });
    },
  } as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.after(() => new Promise<void>((resolve) => {
    server.forceShutdown();
    resolve();
  }));
  return { address: `127.0.0.1:${port}`, seen, streams };
}

/** A port free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface Child {
  proc: ChildProcess;
  http: number;
  grpc: number;
  admin: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  output(): string;
}

/** `node bin/protogate.mjs --config <tmp>/gateway.config.ts`, resolved once it logs that it is listening. */
async function spawnGateway(t: { after(fn: () => void): void }, backend: string, shutdown: { drainDelayMs: number; timeoutMs: number }): Promise<Child> {
  const [httpPort, grpcPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-drain-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'gateway.config.ts');
  fs.writeFileSync(file, `export default {
  log: { level: 'info' },
  http: { host: '127.0.0.1', port: ${httpPort} },
  grpc: { host: '127.0.0.1', port: ${grpcPort} },
  admin: { host: '127.0.0.1', port: ${adminPort} },
  shutdown: ${JSON.stringify(shutdown)},
  protos: { includeDirs: [${JSON.stringify(PROTO_DIR)}], files: [${JSON.stringify(PROTO_FILE)}] },
  backends: [{ name: 'everything', services: ['testpb.Everything'], endpoints: [${JSON.stringify(backend)}] }],
};\n`);
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin/protogate.mjs'), '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => void proc.kill('SIGKILL'));
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null, at: Date.now() }));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start; output:\n${out}`)), 20_000);
    const check = (): void => {
      if (!out.includes('protogate listening')) return;
      clearTimeout(timer);
      proc.stdout!.off('data', check);
      resolve();
    };
    proc.stdout!.on('data', check);
    void exited.then(({ code }) => reject(new Error(`the gateway exited early (${code}); output:\n${out}`)));
  });
  return { proc, http: httpPort, grpc: grpcPort, admin: adminPort, exited, output: () => out };
}

/** Resolves with the connect error code, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

interface Outcome {
  kind: 'rest' | 'grpc';
  id: string;
  start: number;
  end: number;
  ok: boolean;
  /** Why it failed: HTTP status, error code, gRPC status and details. */
  error?: string;
  /** REST: the request went out on a reused keep-alive socket. */
  reused?: boolean;
  /** REST: the response carried `Connection: close`. */
  connectionClose?: boolean;
  /** A connection-level refusal (see the header comment); decided after the run, with the backend's record. */
  refused?: boolean;
}

function restGet(agent: http.Agent, port: number, id: string): Promise<Outcome> {
  const start = Date.now();
  return new Promise((resolve) => {
    let reused = false;
    const req = http.get({ host: '127.0.0.1', port, path: `/v1/shelves/rest/books/${id}`, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'rest', id, start, end: Date.now(), ok: false, reused, error: `response ${err.code ?? err.message}` }));
      res.on('end', () => {
        let ok = res.statusCode === 200;
        try {
          ok &&= (JSON.parse(body) as Book).name === `shelves/rest/books/${id}`;
        } catch {
          ok = false;
        }
        resolve({
          kind: 'rest', id, start, end: Date.now(), ok, reused,
          connectionClose: res.headers.connection === 'close',
          error: ok ? undefined : `HTTP ${res.statusCode}: ${body.slice(0, 200)}`,
        });
      });
    });
    req.on('socket', () => { reused = req.reusedSocket; });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'rest', id, start, end: Date.now(), ok: false, reused, error: err.code ?? err.message }));
  });
}

function grpcGet(client: EverythingClient, id: string): Promise<Outcome> {
  const start = Date.now();
  return new Promise((resolve) => {
    client.GetBook({ name: `shelves/grpc/books/${id}` }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => {
      const ok = !err && res?.name === `shelves/grpc/books/${id}`;
      resolve({ kind: 'grpc', id, start, end: Date.now(), ok, error: err ? `${grpc.status[err.code]}: ${err.details}` : ok ? undefined : 'wrong response' });
    });
  });
}

/** A load client: calls in a loop until stopped, it is refused, or it made `max` calls. */
async function loop(call: (id: string) => Promise<Outcome>, prefix: string, out: Outcome[], stop: { now: boolean }, max: number): Promise<void> {
  for (let i = 0; i < max && !stop.now; i++) {
    const o = await call(`${prefix}-${i}`);
    out.push(o);
    if (!o.ok && /ECONNREFUSED|ECONNRESET|socket hang up|No connection established|UNAVAILABLE/.test(o.error ?? '')) return;
  }
}

test('SIGTERM under REST and gRPC load: readiness fails at once, no accepted request fails, new connections are refused, exit 0', async (t) => {
  const drainDelayMs = 1000;
  const timeoutMs = 5000;
  const backend = await startBackend(t);
  const gw = await spawnGateway(t, backend.address, { drainDelayMs, timeoutMs });
  const N = 16;
  const outcomes: Outcome[] = [];
  const stop = { now: false };
  const Everything = loadEverything();

  // A raw HTTP/2 connection to the gRPC port, to see its GOAWAY.
  const h2 = http2.connect(`http://127.0.0.1:${gw.grpc}`);
  h2.on('error', () => {});
  let goawayAt: number | undefined;
  h2.on('goaway', () => { goawayAt ??= Date.now(); });
  await once(h2, 'connect');
  t.after(() => void h2.destroy());

  const agents: http.Agent[] = [];
  const clients: EverythingClient[] = [];
  const loops: Array<Promise<void>> = [];
  for (let i = 0; i < N; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    loops.push(loop((id) => restGet(agent, gw.http, id), `r${i}`, outcomes, stop, 1000));
    // A local subchannel pool: one connection per client, as N separate client processes would have.
    const client = new Everything(`127.0.0.1:${gw.grpc}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as EverythingClient;
    clients.push(client);
    loops.push(loop((id) => grpcGet(client, id), `g${i}`, outcomes, stop, 1000));
  }
  t.after(() => {
    stop.now = true;
    for (const a of agents) a.destroy();
    for (const c of clients) c.close();
  });
  const hardStop = setTimeout(() => { stop.now = true; }, 15_000);
  t.after(() => clearTimeout(hardStop));

  await sleep(1000);
  const before = outcomes.length;
  assert.ok(before > N, `load is running (${before} calls in the first second)`);

  // Readiness, polled on fresh connections from just before the signal.
  const sigAt = Date.now();
  gw.proc.kill('SIGTERM');
  let notReadyAt: number | undefined;
  while (Date.now() - sigAt < 1000) {
    const status = await fetch(`http://127.0.0.1:${gw.admin}/readyz`, { headers: { connection: 'close' } }).then((r) => r.status, () => 0);
    if (status === 503) {
      notReadyAt = Date.now();
      break;
    }
    await sleep(5);
  }
  assert.ok(notReadyAt !== undefined, 'readiness fails after SIGTERM');
  // ~100 ms is the aim; the bound leaves room for a loaded CI machine (both processes run 32 busy clients' worth of
  // work) while still proving readiness failed well before the listeners close.
  t.diagnostic(`readiness failed ${notReadyAt - sigAt} ms after SIGTERM`);
  // What matters is the order: readiness fails before the listeners stop accepting (typically ~100 ms after SIGTERM).
  assert.ok(notReadyAt - sigAt < drainDelayMs, `readiness failed ${notReadyAt - sigAt} ms after SIGTERM, after the drain delay`);

  // Not ready, but still serving new connections during the drain delay, on both ports.
  const duringAt = Date.now();
  assert.ok(duringAt - sigAt < drainDelayMs - 200, 'time is left in the drain delay to try new connections');
  const duringGrpc = new Everything(`127.0.0.1:${gw.grpc}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as EverythingClient;
  const [during, duringGrpcCall] = await Promise.all([
    restGet(new http.Agent({ keepAlive: false }), gw.http, 'during-drain'),
    grpcGet(duringGrpc, 'during-drain'),
  ]);
  duringGrpc.close();
  assert.equal(during.ok, true, `a new REST connection during the drain delay is served: ${during.error}`);
  assert.equal(duringGrpcCall.ok, true, `a new gRPC connection during the drain delay is served: ${duringGrpcCall.error}`);

  // After the delay (and a margin for in-flight work to hold the process open) both ports refuse connections.
  await sleep(sigAt + drainDelayMs + 150 - Date.now());
  const [httpConnect, grpcConnect] = await Promise.all([tryConnect(gw.http), tryConnect(gw.grpc)]);
  assert.equal(httpConnect, 'ECONNREFUSED', 'the REST port refuses new connections after the drain delay');
  assert.equal(grpcConnect, 'ECONNREFUSED', 'the gRPC port refuses new connections after the drain delay');

  const exit = await Promise.race([gw.exited, sleep(drainDelayMs + timeoutMs + 2000).then(() => undefined)]);
  assert.ok(exit, `the gateway exits within drainDelayMs + timeoutMs + 2 s; output:\n${gw.output().slice(-3000)}`);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, gw.output().slice(-3000));
  stop.now = true;
  await Promise.all(loops);

  assert.ok(goawayAt !== undefined, 'the gRPC port sent GOAWAY');
  assert.ok(goawayAt - sigAt >= drainDelayMs - 50, `GOAWAY came after the drain delay (${goawayAt - sigAt} ms)`);

  // Classify every call, with the backend's record of what it was given.
  const seen = (o: Outcome) => backend.seen.has(`shelves/${o.kind}/books/${o.id}`);
  for (const o of outcomes) {
    if (o.ok || seen(o)) continue;
    o.refused = o.kind === 'rest'
      ? o.error === 'ECONNREFUSED' || (!o.reused && /^(ECONNRESET|socket hang up)$/.test(o.error ?? ''))
      : /^UNAVAILABLE: .*(No connection established|ECONNREFUSED)/.test(o.error ?? '');
  }
  const failed = outcomes.filter((o) => !o.ok && !o.refused);
  const summary = {
    total: outcomes.length,
    ok: outcomes.filter((o) => o.ok).length,
    okAfterSignal: outcomes.filter((o) => o.ok && o.end > sigAt).length,
    refused: outcomes.filter((o) => o.refused).length,
    refusedBy: outcomes.filter((o) => o.refused).reduce<Record<string, number>>((acc, o) => {
      const key = `${o.kind} ${o.error?.slice(0, 60)}`;
      acc[key] = (acc[key] ?? 0) + 1;
      return acc;
    }, {}),
    failed: failed.length,
  };
  t.diagnostic(JSON.stringify(summary));
  assert.deepEqual(failed.map((o) => `${o.kind} ${o.id} reused=${o.reused} +${o.start - sigAt}ms..+${o.end - sigAt}ms: ${o.error}`), [],
    'no accepted request fails');
  for (const o of outcomes) if (seen(o)) assert.ok(o.ok, `${o.kind} ${o.id} reached the backend and must succeed`);
  // Calls started during the drain delay were served, on both ports.
  for (const kind of ['rest', 'grpc'] as const) {
    const inDelay = outcomes.filter((o) => o.kind === kind && o.start > sigAt + 20 && o.end < sigAt + drainDelayMs - 20);
    assert.ok(inDelay.length > 0 && inDelay.every((o) => o.ok), `${kind} calls during the drain delay succeed (${inDelay.length})`);
  }
  // Keep-alive REST clients were told to go: responses after the signal close their connection.
  const lateRest = outcomes.filter((o) => o.kind === 'rest' && o.ok && o.start > sigAt + 50);
  assert.ok(lateRest.length > 0 && lateRest.every((o) => o.connectionClose), 'REST responses while draining carry Connection: close');
  // Every load client ended by being refused or by the hard stop, none by a failure.
  assert.ok(summary.refused > 0, 'clients that came back after the listeners closed were refused');
});

test('a stream still open at shutdown.timeoutMs ends with UNAVAILABLE (gRPC status, NDJSON error line) and the process exits 0', async (t) => {
  const drainDelayMs = 200;
  const timeoutMs = 1000;
  const backend = await startBackend(t);
  const gw = await spawnGateway(t, backend.address, { drainDelayMs, timeoutMs });

  // gRPC server stream through the gRPC port.
  const Everything = loadEverything();
  const client = new Everything(`127.0.0.1:${gw.grpc}`, grpc.credentials.createInsecure()) as unknown as EverythingClient;
  t.after(() => client.close());
  const grpcStream = client.ListBooks({ parent: 'shelves/grpc' });
  let grpcMessages = 0;
  grpcStream.on('data', () => { grpcMessages++; });
  const grpcEnd = new Promise<{ code: number; details: string; at: number }>((resolve) => {
    grpcStream.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details, at: Date.now() }));
    grpcStream.on('status', (s: grpc.StatusObject) => { if (s.code === grpc.status.OK) resolve({ code: 0, details: s.details, at: Date.now() }); });
  });

  // REST NDJSON stream.
  const restEnd = new Promise<{ lines: string[]; ended: boolean; error?: string; at: number }>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: gw.http, path: '/v1/shelves/rest/books:stream' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ lines: body.split('\n').filter(Boolean), ended: true, at: Date.now() }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ lines: body.split('\n').filter(Boolean), ended: false, error: err.code ?? err.message, at: Date.now() }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ lines: [], ended: false, error: err.code ?? err.message, at: Date.now() }));
  });

  await sleep(500);
  assert.equal(backend.streams.length, 2, 'both streams reached the backend');
  assert.ok(grpcMessages > 0, 'the gRPC stream is flowing');
  const sigAt = Date.now();
  gw.proc.kill('SIGTERM');

  const g = await grpcEnd;
  assert.equal(grpc.status[g.code], 'UNAVAILABLE', `the gRPC stream ends UNAVAILABLE: ${g.details}`);
  const cutAfter = g.at - sigAt;
  assert.ok(cutAfter >= drainDelayMs + timeoutMs - 100 && cutAfter < drainDelayMs + timeoutMs + 1000,
    `the gRPC stream is cut at the timeout (${cutAfter} ms after SIGTERM)`);

  const r = await restEnd;
  assert.equal(r.error, undefined, `the NDJSON response ends cleanly, not with a reset (${r.error}); lines: ${r.lines.slice(-2).join(' | ')}`);
  assert.ok(r.lines.length > 1, 'messages arrived before the cut');
  const last = JSON.parse(r.lines.at(-1)!) as { error?: { code: number; message: string } };
  assert.equal(last.error?.code, 14, `the last NDJSON line is an UNAVAILABLE error: ${r.lines.at(-1)}`);
  for (const line of r.lines.slice(0, -1)) assert.match((JSON.parse(line) as { result: Book }).result.title, /^book \d+$/);
  t.diagnostic(`gRPC: ${g.details}; NDJSON: ${r.lines.at(-1)}`);

  const exit = await Promise.race([gw.exited, sleep(drainDelayMs + timeoutMs + 3000).then(() => undefined)]);
  assert.ok(exit, `the gateway exits; output:\n${gw.output().slice(-3000)}`);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, gw.output().slice(-3000));
  assert.ok(exit.at - sigAt < drainDelayMs + timeoutMs + 1500, `exit ${exit.at - sigAt} ms after SIGTERM`);
  await sleep(50);
  assert.ok(backend.streams.every((s) => s.cancelled), 'the backend saw both stream calls cancelled');
});
