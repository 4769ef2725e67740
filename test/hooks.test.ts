/** hooks.onRequest with the worked JWT example: refuse, pass identity as metadata, pick a backend. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startRecordingBackend } from './helpers/recording-backend.ts';
import { startGateway } from './helpers/gateway.ts';
import { jwtAuth, signJwt } from '../examples/jwt-auth.ts';

const PROTO_DIR = path.resolve('test/protos');
const protos = { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] };
const SECRET = 'test-secret-of-reasonable-length';

async function backend(t: { after(fn: () => Promise<void>): void }, title: string) {
  const b = await startRecordingBackend({ includeDirs: [PROTO_DIR], files: [path.join(PROTO_DIR, 'everything.proto')], script: () => ({ response: { title } }) });
  t.after(() => b.close());
  return b;
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
  const main = await backend(t, 'main');
  const canary = await backend(t, 'canary');
  const gw = await startGateway({
    protos,
    backends: [
      { name: 'main', services: ['testpb.Everything'], endpoints: [main.address] },
      { name: 'canary', endpoints: [canary.address] },
    ],
    hooks: {
      onRequest: (req) => {
        if (req.headers['x-boom']) throw new Error('bug in hook');
        return req.headers['x-canary'] ? { backend: 'canary' } : undefined;
      },
    },
  });
  t.after(() => gw.close());
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
