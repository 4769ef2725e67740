/** hooks.onRequest with the worked JWT example: refuse, pass identity as metadata, pick a backend. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startRecordingBackend } from './helpers/recording-backend.ts';
import * as grpc from '@grpc/grpc-js';
import { startGateway } from './helpers/gateway.ts';
import { jwtAuth, signJwt } from '../examples/jwt-auth.ts';
import type { OnRequestHook } from '../src/config/hook-types.ts';

const PROTO_DIR = path.resolve('test/protos');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };
const SECRET = 'test-secret-of-reasonable-length';

type After = { after(fn: () => Promise<void>): void };

async function backend(t: After, title: string) {
  const b = await startRecordingBackend({ includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script: () => ({ response: { title } }) });
  t.after(() => b.close());
  return b;
}

/** Backends "main" (serving testpb.Everything) and "canary" (serving nothing unless a hook picks it) behind one gateway. */
async function mainAndCanary(t: After, onRequest: OnRequestHook) {
  const main = await backend(t, 'main');
  const canary = await backend(t, 'canary');
  const gw = await startGateway({
    protos,
    backends: [
      { name: 'main', services: ['testpb.Everything'], endpoints: [main.address] },
      { name: 'canary', endpoints: [canary.address] },
    ],
    hooks: { onRequest },
  });
  t.after(() => gw.close());
  return { main, canary, gw };
}

test('the JWT hook refuses missing, forged and expired tokens with 401 before the body is read, and passes the caller on', async (t) => {
  const b = await backend(t, 'ok');
  const gw = await startGateway({ protos, backends: [{ name: 'e', services: ['testpb.Everything'], endpoints: [b.address] }], hooks: { onRequest: jwtAuth({ secret: SECRET }) } });
  t.after(() => gw.close());
  const call = (auth?: string, body = '{}') => fetch(`${gw.url}/v1/echo`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) } });

  for (const [auth, why] of [
    [undefined, /missing or malformed/],
    ['Bearer not.a.jwt!', /missing or malformed/],
    [`Bearer ${signJwt({ sub: 'u1' }, 'another-secret')}`, /invalid token signature/],
    [`Bearer ${signJwt({ sub: 'u1', exp: Math.floor(Date.now() / 1000) - 3600 }, SECRET)}`, /expired/],
  ] as const) {
    const res = await call(auth, '{"not json');
    assert.equal(res.status, 401, String(auth));
    const body = (await res.json()) as { code: number; message: string };
    assert.equal(body.code, 16);
    assert.match(body.message, why);
  }
  assert.equal(b.received.length, 0, 'nothing reached the backend');

  const token = signJwt({ sub: 'user-7', scope: 'books.read', exp: Math.floor(Date.now() / 1000) + 60 }, SECRET);
  const ok = await fetch(`${gw.url}/v1/shelves/s/books/b`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(ok.status, 200, await ok.clone().text());
  const md = b.received[0]!.metadata;
  assert.deepEqual(md['x-user-id'], ['user-7']);
  assert.deepEqual(md['x-user-scope'], ['books.read']);
  assert.equal(md['authorization'], undefined, 'the token itself is not forwarded');
});

test('a hook can pick another backend, and a throwing hook answers 500 without reaching a backend', async (t) => {
  const { main, canary, gw } = await mainAndCanary(t, (req) => {
    if (req.headers['x-boom']) throw new Error('bug in hook');
    return req.headers['x-canary'] ? { backend: 'canary' } : undefined;
  });
  const title = async (headers: Record<string, string>) => {
    const r = await fetch(`${gw.url}/v1/shelves/s/books/b`, { headers });
    return { status: r.status, body: (await r.json()) as { title?: string; code?: number } };
  };
  assert.equal((await title({})).body.title, 'main');
  assert.equal((await title({ 'x-canary': '1' })).body.title, 'canary');
  const boom = await title({ 'x-boom': '1' });
  assert.equal(boom.status, 500);
  assert.equal(boom.body.code, 13);
  assert.equal(main.received.length + canary.received.length, 2);
});

test('the gRPC port runs the same hook: JWT refused with UNAUTHENTICATED, identity passed as metadata, another backend picked', async (t) => {
  const jwt = jwtAuth({ secret: SECRET });
  const { main, canary, gw } = await mainAndCanary(t, async (req) => {
    const verdict = await jwt(req);
    if (verdict) return verdict;
    if (req.headers['x-boom']) throw new Error('bug in hook');
    return req.metadata.get('x-canary').length > 0 ? { backend: 'canary' } : undefined;
  });
  const client = new grpc.Client(`127.0.0.1:${gw.gateway.addresses().grpc!.port}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const call = (md: Record<string, string>) => new Promise<{ code: number; details: string }>((resolve) => {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) metadata.set(k, v);
    client.makeUnaryRequest('/testpb.Everything/GetBook', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), metadata,
      (err: grpc.ServiceError | null) => resolve({ code: err?.code ?? 0, details: err?.details ?? '' }));
  });

  const refused = await call({});
  assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
  assert.match(refused.details, /missing or malformed/);
  const forged = await call({ authorization: `Bearer ${signJwt({ sub: 'u1' }, 'another-secret')}` });
  assert.equal(forged.code, grpc.status.UNAUTHENTICATED);
  assert.equal(main.received.length + canary.received.length, 0, 'nothing reached a backend');

  const token = `Bearer ${signJwt({ sub: 'user-9', scope: 'books.read', exp: Math.floor(Date.now() / 1000) + 60 }, SECRET)}`;
  assert.deepEqual(await call({ authorization: token }), { code: 0, details: '' });
  const md = main.received[0]!.metadata;
  assert.deepEqual(md['x-user-id'], ['user-9']);
  assert.deepEqual(md['x-user-scope'], ['books.read']);
  assert.equal(md['authorization'], undefined, 'the token itself is not forwarded');

  assert.deepEqual(await call({ authorization: token, 'x-canary': '1' }), { code: 0, details: '' });
  assert.equal(canary.received.length, 1, 'the hook sent it to the canary backend');
  assert.equal(main.received.length, 1);

  const boom = await call({ authorization: token, 'x-boom': '1' });
  assert.equal(boom.code, grpc.status.INTERNAL);
  assert.equal(main.received.length + canary.received.length, 2, 'a failing hook reaches no backend');
});
