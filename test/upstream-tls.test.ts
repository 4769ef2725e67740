/** TLS and mTLS towards a backend, configured with files relative to the config file, for both ports. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startGateway } from './helpers/gateway.ts';
import { serviceDefinition, rawClient, methodPath } from './helpers/passthrough-backend.ts';

const FIX = path.resolve('test/fixtures');
const PROTO_DIR = path.resolve('test/protos');

test('mTLS backend: the gateway presents its client certificate and verifies the server against the CA', async (t) => {
  // Server: the fixture certificate for localhost/127.0.0.1; it requires a client certificate signed by the rotated
  // fixture (self-signed, so it is its own CA).
  const server = new grpc.Server();
  const seen: string[] = [];
  server.addService(serviceDefinition('test.passthrough.v1.Echo'), {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push('unary');
      cb(null, call.request);
    },
    ServerStream: () => {}, ClientStream: () => {}, Bidi: () => {},
  });
  const creds = grpc.ServerCredentials.createSsl(
    fs.readFileSync(path.join(FIX, 'rotated-cert.pem')),
    [{ cert_chain: fs.readFileSync(path.join(FIX, 'passthrough-cert.pem')), private_key: fs.readFileSync(path.join(FIX, 'passthrough-key.pem')) }],
    true,
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  // forceShutdown: the gateway's pooled connections to this server close only after this hook.
  t.after(() => server.forceShutdown());

  // Paths relative to the config file's directory (the repo root for this helper).
  const tls = { caFile: 'test/fixtures/passthrough-cert.pem', certFile: 'test/fixtures/rotated-cert.pem', keyFile: 'test/fixtures/rotated-key.pem', serverName: 'localhost' };
  const gw = await startGateway({
    protos: { includeDirs: [PROTO_DIR], files: ['test/protos/everything.proto'] },
    transcoding: { allowUnservedServices: true },
    backends: [{ name: 'secure', services: ['test.passthrough.*'], endpoints: [`127.0.0.1:${port}`], tls }],
  });
  t.after(() => gw.close());
  const client = rawClient(`127.0.0.1:${gw.gateway.addresses().grpc!.port}`);
  t.after(() => client.close());
  const payload = Buffer.from('over mTLS');
  const echoed = await new Promise<Buffer>((resolve, reject) =>
    client.makeUnaryRequest(methodPath('Unary'), (b: Buffer) => b, (b: Buffer) => b, payload, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r!))));
  assert.deepEqual(echoed, payload);
  assert.deepEqual(seen, ['unary']);
});
