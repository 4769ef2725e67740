/**
 * Graceful drain of the REST port over HTTPS with HTTP/2 (ALPN h2): the HTTP/1.1 drain relies on `Connection:
 * close`, which HTTP/2 does not have, so HTTP/2 clients must get GOAWAY, and node:http2 v20's server.close() does not
 * send it to open sessions by itself (src/gateway.ts trackRestConnections). One long-lived client session keeps
 * sending requests to a slow backend while the gateway drains:
 * - during drainDelayMs the session is still served (readiness already fails);
 * - then the session receives GOAWAY; every request the backend saw answers 200 with its own body, including
 *   those in flight when GOAWAY arrived; requests after it fail on the client without reaching the backend;
 * - a new connection is refused, and shutdown() resolves once the last stream ended.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { bundledProtoDir } from '../src/proto/load.ts';
import { startGateway } from './helpers/gateway.ts';

const ROOT = path.resolve('.');
const PROTO_DIR = path.join(ROOT, 'test/protos');
const PROTO_FILE = path.join(PROTO_DIR, 'everything.proto');
const FIX = path.join(ROOT, 'test/fixtures');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startSlowBackend(t: { after(fn: () => void): void }) {
  const def = protoLoader.loadSync(PROTO_FILE, { includeDirs: [PROTO_DIR, bundledProtoDir()], keepCase: true });
  const Everything = (grpc.loadPackageDefinition(def) as unknown as { testpb: { Everything: grpc.ServiceClientConstructor } }).testpb.Everything;
  const seen = new Set<string>();
  const server = new grpc.Server();
  server.addService(Everything.service, {
    GetBook(call: grpc.ServerUnaryCall<{ name: string }, { name: string; title: string }>, cb: grpc.sendUnaryData<{ name: string; title: string }>) {
      seen.add(call.request.name);
      setTimeout(() => cb(null, { name: call.request.name, title: 'ok' }), 100 + Math.random() * 100);
    },
  } as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.after(() => server.forceShutdown());
  return { address: `127.0.0.1:${port}`, seen };
}

interface Outcome { id: string; status?: number; body?: string; error?: string; sentAt: number; endedAt?: number }

test('HTTP/2 REST clients get GOAWAY after the drain delay; every request the backend saw answers 200; new connections are refused', async (t) => {
  const backend = await startSlowBackend(t);
  const gw = await startGateway({
    http: { tls: { cert: path.join(FIX, 'passthrough-cert.pem'), key: path.join(FIX, 'passthrough-key.pem') } },
    shutdown: { drainDelayMs: 600, timeoutMs: 10_000 },
    protos: { includeDirs: [PROTO_DIR], files: [PROTO_FILE] },
    backends: [{ name: 'everything', services: ['testpb.Everything'], endpoints: [backend.address] }],
  });
  t.after(() => gw.close());
  const origin = gw.url.replace('http:', 'https:');
  const tlsOptions = { ca: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), servername: 'localhost' };
  const session = http2.connect(origin, tlsOptions);
  t.after(() => session.destroy());
  session.on('error', () => {}); // outcomes are read per stream
  let goawayAt: number | undefined;
  session.once('goaway', () => { goawayAt = Date.now(); });
  await new Promise<void>((resolve, reject) => { session.once('connect', () => resolve()); session.once('error', reject); });
  assert.equal((session.socket as unknown as { alpnProtocol: string }).alpnProtocol, 'h2');

  const outcomes: Outcome[] = [];
  let seq = 0;
  const get = (): Promise<Outcome> => new Promise((resolve) => {
    const id = `shelves/s/books/b${seq++}`;
    const o: Outcome = { id, sentAt: Date.now() };
    outcomes.push(o);
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({ ':path': `/v1/${id}` });
    } catch (err) {
      o.error = (err as NodeJS.ErrnoException).code ?? String(err);
      return resolve(o);
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => { o.status = Number(h[':status']); });
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => { o.body = body; o.endedAt = Date.now(); resolve(o); });
    req.on('error', (err: NodeJS.ErrnoException) => { o.error = err.code ?? err.message; resolve(o); });
  });

  // 8 loops on the one session, each sending its next request as soon as the previous one ends, until GOAWAY.
  let shutdownAt = 0;
  const loops = Array.from({ length: 8 }, async () => {
    while (goawayAt === undefined && !session.closed && !session.destroyed) {
      const o = await get();
      if (o.error !== undefined) break;
    }
  });
  await sleep(400);
  shutdownAt = Date.now();
  const drained = gw.gateway.shutdown();
  const readyz = await fetch(`${gw.adminUrl}/readyz`);
  assert.equal(readyz.status, 503, 'readiness fails as soon as draining starts');
  await Promise.all(loops);
  // One request after GOAWAY: refused by the client's own session, never reaching the backend.
  const late = await get();
  await drained;

  assert.ok(goawayAt !== undefined, 'the HTTP/2 session received GOAWAY');
  assert.ok(goawayAt - shutdownAt >= 500, `GOAWAY came after the drain delay (${goawayAt - shutdownAt} ms after shutdown began)`);
  const servedDuringDelay = outcomes.filter((o) => o.sentAt > shutdownAt && o.sentAt < goawayAt! && o.status === 200);
  assert.ok(servedDuringDelay.length > 0, 'requests sent during the drain delay were served on the same session');
  for (const o of outcomes) {
    if (backend.seen.has(o.id)) {
      assert.equal(o.status, 200, `${o.id} reached the backend, so it must answer 200 (got ${o.status ?? o.error})`);
      assert.equal(JSON.parse(o.body!).name, o.id);
    } else {
      assert.ok(o.error !== undefined && o.status === undefined, `${o.id} never reached the backend: it may only fail on the client (got status ${o.status})`);
    }
  }
  const inFlightAtGoaway = outcomes.filter((o) => o.sentAt < goawayAt! && o.endedAt! > goawayAt! && o.status === 200);
  assert.ok(inFlightAtGoaway.length > 0, 'streams open when GOAWAY arrived still finished with 200');
  assert.ok(late.error !== undefined && !backend.seen.has(late.id), `a request after GOAWAY is refused on the client (${late.error})`);

  const fresh = http2.connect(origin, tlsOptions);
  const refused = await new Promise<string>((resolve) => {
    fresh.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    fresh.once('connect', () => resolve('connected'));
  });
  fresh.destroy();
  assert.equal(refused, 'ECONNREFUSED', 'a new connection after the drain is refused');
});
