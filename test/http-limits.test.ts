/** REST listener options: header size, concurrency limit, CORS, HTTPS with HTTP/2 by ALPN, certificate reload. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import https from 'node:https';
import http2 from 'node:http2';
import tls from 'node:tls';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRecordingBackend } from './helpers/recording-backend.ts';
import { startGateway } from './helpers/gateway.ts';
import type { GatewayConfig } from '../src/config/index.ts';

const PROTO_DIR = path.resolve('test/protos');
const FIX = path.resolve('test/fixtures');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };

async function setup(t: { after(fn: () => Promise<void>): void }, http: GatewayConfig['http'], delayMs = 0) {
  const backend = await startRecordingBackend({
    includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')],
    script: () => ({ response: { title: 'ok' }, delayMs }),
  });
  const gw = await startGateway({ protos, http, backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: [backend.address] }] });
  t.after(async () => {
    await gw.close();
    await backend.close();
  });
  return { gw, backend };
}

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => { out += d; });
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
  });
}

test('request headers over http.maxHeaderSize answer 431 with a google.rpc.Status', async (t) => {
  const { gw } = await setup(t, { maxHeaderSize: 2048 });
  const port = Number(new URL(gw.url).port);
  const answer = await rawRequest(port, `GET /v1/shelves/s/books/b HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(4096)}\r\n\r\n`);
  assert.match(answer, /^HTTP\/1\.1 431 /);
  const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { code: number; message: string };
  assert.equal(body.code, 8);
  assert.match(body.message, /http\.maxHeaderSize = 2048/);
});

test('requests beyond http.maxConcurrentRequests answer 503 with Retry-After; the others go through', async (t) => {
  const { gw } = await setup(t, { maxConcurrentRequests: 2 }, 400);
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => fetch(`${gw.url}/v1/shelves/s/books/b${i}`).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), body: await r.text() }))));
  const ok = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status === 503);
  assert.equal(ok.length, 2);
  assert.equal(refused.length, 3);
  for (const r of refused) {
    assert.equal(r.retry, '1');
    assert.match(r.body, /maxConcurrentRequests/);
  }
});

test('CORS: preflight is answered and real responses carry the CORS headers', async (t) => {
  const { gw } = await setup(t, { cors: { origin: ['https://app.example'], credentials: true } });
  const pre = await fetch(`${gw.url}/v1/echo`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
  const res = await fetch(`${gw.url}/v1/shelves/s/books/b`, { headers: { origin: 'https://app.example' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  const other = await fetch(`${gw.url}/v1/shelves/s/books/b`, { headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
});

test('HTTPS serves HTTP/1.1 and HTTP/2 (ALPN), and a rotated certificate is picked up without a restart', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  fs.copyFileSync(path.join(FIX, 'passthrough-cert.pem'), cert);
  fs.copyFileSync(path.join(FIX, 'passthrough-key.pem'), key);
  const { gw } = await setup(t, { tls: { cert, key } });
  const port = Number(new URL(gw.url).port);
  const ca = [fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), fs.readFileSync(path.join(FIX, 'rotated-cert.pem'))];

  const h1 = await new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/v1/shelves/s/books/b', ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body, alpn: (res.socket as tls.TLSSocket).alpnProtocol }));
    });
    req.on('error', reject);
  });
  assert.equal(h1.status, 200);
  assert.deepEqual(JSON.parse(h1.body), { title: 'ok' });

  const h2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'localhost' });
    session.on('error', reject);
    const req = session.request({ ':path': '/v1/shelves/s/books/b' });
    let status = 0;
    let body = '';
    req.on('response', (h) => { status = Number(h[':status']); });
    req.setEncoding('utf8');
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => { session.close(); resolve({ status, body }); });
    req.end();
  });
  assert.equal(h2.status, 200);
  assert.deepEqual(JSON.parse(h2.body), { title: 'ok' });

  const served = () => new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
  const before = await served();
  fs.copyFileSync(path.join(FIX, 'rotated-cert.pem'), cert);
  fs.copyFileSync(path.join(FIX, 'rotated-key.pem'), key);
  const rotated = new crypto.X509Certificate(fs.readFileSync(path.join(FIX, 'rotated-cert.pem'))).fingerprint256;
  assert.notEqual(before, rotated);
  const deadline = Date.now() + 10_000;
  let now = before;
  while (now !== rotated && Date.now() < deadline) {
    await sleep(250);
    now = await served();
  }
  assert.equal(now, rotated, 'new connections get the rotated certificate');
});

test('http.rateLimit: a client over its budget gets 429 RESOURCE_EXHAUSTED with Retry-After; another key is unaffected', async (t) => {
  const { gw, backend } = await setup(t, { rateLimit: { max: 3, timeWindowMs: 60_000, keyHeader: 'x-api-key' } });
  const call = (key: string) => fetch(`${gw.url}/v1/shelves/s/books/b`, { headers: { 'x-api-key': key } });
  for (let i = 0; i < 3; i++) assert.equal((await call('alice')).status, 200);
  const over = await call('alice');
  assert.equal(over.status, 429);
  assert.ok(Number(over.headers.get('retry-after')) > 0);
  const body = (await over.json()) as { code: number; message: string; details: unknown[] };
  assert.equal(body.code, 8);
  assert.match(body.message, /rate limit exceeded: 3 requests per .* per x-api-key/);
  assert.deepEqual(body.details, []);
  assert.equal((await call('bob')).status, 200);
  assert.equal(backend.received.length, 4, 'the refused request never reached the backend');
});

test('the gRPC port serves TLS with ALPN h2 and picks up a rotated certificate without a restart', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-grpc-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  fs.copyFileSync(path.join(FIX, 'passthrough-cert.pem'), cert);
  fs.copyFileSync(path.join(FIX, 'passthrough-key.pem'), key);
  const backend = await startRecordingBackend({ includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script: () => ({ response: { title: 'ok' } }) });
  const gw = await startGateway({ protos, grpc: { tls: { cert, key } }, backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: [backend.address] }] });
  t.after(async () => { await gw.close(); await backend.close(); });
  const port = gw.gateway.addresses().grpc!.port;
  const ca = [fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), fs.readFileSync(path.join(FIX, 'rotated-cert.pem'))];
  const served = () => new Promise<{ fp: string; alpn: string | false | null }>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      resolve({ fp: socket.getPeerX509Certificate()!.fingerprint256, alpn: socket.alpnProtocol });
      socket.end();
    });
    socket.on('error', reject);
  });
  const before = await served();
  assert.equal(before.alpn, 'h2');
  fs.copyFileSync(path.join(FIX, 'rotated-cert.pem'), cert);
  fs.copyFileSync(path.join(FIX, 'rotated-key.pem'), key);
  const rotated = new crypto.X509Certificate(fs.readFileSync(path.join(FIX, 'rotated-cert.pem'))).fingerprint256;
  const deadline = Date.now() + 10_000;
  let now = before;
  while (now.fp !== rotated && Date.now() < deadline) {
    await sleep(250);
    now = await served();
  }
  assert.equal(now.fp, rotated, 'new connections get the rotated certificate');
  assert.equal(now.alpn, 'h2', 'still h2 after the rotation');
});

test('grpc.rateLimit: calls over the limit get RESOURCE_EXHAUSTED without reaching the backend, counted per client key', async (t) => {
  const grpc = await import('@grpc/grpc-js');
  const backend = await startRecordingBackend({
    includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script: () => ({ response: { title: 'ok' } }),
  });
  const gw = await startGateway({
    protos,
    grpc: { rateLimit: { max: 2, timeWindowMs: 60_000, keyHeader: 'x-api-key' } },
    backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: [backend.address] }],
  });
  t.after(async () => {
    await gw.close();
    await backend.close();
  });
  const client = new grpc.Client(`127.0.0.1:${gw.gateway.addresses().grpc!.port}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const call = (key: string) => new Promise<{ code: number; details: string }>((resolve) => {
    const md = new grpc.Metadata();
    md.set('x-api-key', key);
    client.makeUnaryRequest('/testpb.Everything/GetBook', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md,
      (err: { code: number; details: string } | null) => resolve({ code: err?.code ?? 0, details: err?.details ?? '' }));
  });
  assert.equal((await call('alice')).code, 0);
  assert.equal((await call('alice')).code, 0);
  const third = await call('alice');
  assert.equal(third.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(third.details, /rate limit exceeded: 2 calls per 60000 ms per x-api-key; retry in \d+ s/);
  assert.equal(backend.received.length, 2, 'the refused call never reached the backend');
  assert.equal((await call('bob')).code, 0, 'another key has its own window');
  assert.equal(backend.received.length, 3);
});
