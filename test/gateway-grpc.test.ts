/**
 * The gRPC port of a whole gateway built from config: one process serves REST and gRPC for the same backends,
 * routes by service (exact names from loaded protos, package wildcards for services it never loaded), and both
 * ports share one backend list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startLibraryBackend } from '../examples/library-backend.ts';
import { startBackend, rawClient, methodPath } from './helpers/passthrough-backend.ts';
import { startGateway } from './helpers/gateway.ts';

const ROOT = path.resolve('.');
const GOOGLE = path.dirname(createRequire(import.meta.url).resolve('google-proto-files/package.json'));

test('one gateway: REST and gRPC to a loaded service, gRPC to an unloaded one by wildcard, UNIMPLEMENTED for unknown', async (t) => {
  const library = await startLibraryBackend({ host: '127.0.0.1', port: 0 });
  const echo = await startBackend();
  const gw = await startGateway({
    protos: { includeDirs: ['protos'], files: ['protos/library/v1/library.proto'] },
    backends: [
      { name: 'library', services: ['library.v1.LibraryService'], endpoints: [`127.0.0.1:${library.port}`] },
      { name: 'echo', services: ['test.passthrough.*'], endpoints: [`127.0.0.1:${echo.port}`] },
    ],
  });
  t.after(async () => {
    await gw.close();
    await library.close();
    await echo.close();
  });
  const grpcAddress = `127.0.0.1:${gw.gateway.addresses().grpc!.port}`;

  // REST and gRPC reach the same backend.
  const rest = (await (await fetch(`${gw.url}/v1/shelves/fiction/books/dune`)).json()) as { title: string };
  assert.equal(rest.title, 'Dune');
  const def = protoLoader.loadSync(path.join(ROOT, 'protos/library/v1/library.proto'), { includeDirs: [path.join(ROOT, 'protos'), GOOGLE], keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { library: { v1: { LibraryService: grpc.ServiceClientConstructor } } };
  const client = new pkg.library.v1.LibraryService(grpcAddress, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const book = await new Promise<{ title: string }>((resolve, reject) =>
    client['GetBook']!({ name: 'shelves/fiction/books/dune' }, (err: grpc.ServiceError | null, res: { title: string }) => (err ? reject(err) : resolve(res))));
  assert.equal(book.title, 'Dune');

  // A service whose protos the gateway never loaded, routed by package wildcard: bytes in, bytes out.
  const raw = rawClient(grpcAddress);
  t.after(() => raw.close());
  const payload = Buffer.from('opaque bytes \u0000\u00ff');
  const echoed = await new Promise<Buffer>((resolve, reject) =>
    raw.makeUnaryRequest(methodPath('Unary'), (b: Buffer) => b, (b: Buffer) => b, payload, (err, res) => (err ? reject(err) : resolve(res!))));
  assert.deepEqual(echoed, payload);

  // No backend for this service: UNIMPLEMENTED from the gateway itself.
  const err = await new Promise<grpc.ServiceError>((resolve) =>
    raw.makeUnaryRequest('/nobody.v1.Home/Call', (b: Buffer) => b, (b: Buffer) => b, payload, (e) => resolve(e!)));
  assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  assert.match(err.details, /nobody\.v1\.Home/);

  // The gRPC port's calls show up in the metrics by service, method and code, with their bytes (frames with their
  // 5-byte prefix: 16 bytes of payload each way).
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  assert.match(text, /protogate_grpc_streams_total\{service="library\.v1\.LibraryService",method="GetBook",grpc_code="OK"\} 1/);
  assert.match(text, /protogate_grpc_streams_total\{service="test\.passthrough\.v1\.Echo",method="Unary",grpc_code="OK"\} 1/);
  assert.match(text, /protogate_grpc_streams_total\{service="nobody\.v1\.Home",method="Call",grpc_code="UNIMPLEMENTED"\} 1/);
  assert.match(text, /protogate_grpc_received_bytes_total\{service="test\.passthrough\.v1\.Echo",method="Unary"\} 21/);
  assert.match(text, /protogate_grpc_sent_bytes_total\{service="test\.passthrough\.v1\.Echo",method="Unary"\} 21/);
  assert.match(text, /protogate_grpc_streams_in_flight 0/);
});
