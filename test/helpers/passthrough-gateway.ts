/** Starts an in-process passthrough on 127.0.0.1:0 and promisified grpc-js call helpers for the tests. */
import * as grpc from '@grpc/grpc-js';
import { buildServiceMatcher, startPassthrough } from '../../src/passthrough/index.ts';
import type { PassthroughBackend, PassthroughOptions, PassthroughServer } from '../../src/passthrough/index.ts';
import { ser } from './passthrough-backend.ts';

export interface GatewayBackend extends PassthroughBackend {
  services: string[];
  default?: boolean;
}

export async function startGateway(
  backends: GatewayBackend[],
  extra: Partial<Omit<PassthroughOptions, 'resolveService'>> = {},
): Promise<PassthroughServer & { target: string }> {
  const resolveService = buildServiceMatcher(backends);
  const server = await startPassthrough({ host: '127.0.0.1', port: 0, resolveService, ...extra });
  return Object.assign(server, { target: `127.0.0.1:${server.address.port}` });
}

export interface UnaryResult {
  error: grpc.ServiceError | null;
  response: Buffer | undefined;
  headers: grpc.Metadata | undefined;
  trailers: grpc.Metadata | undefined;
}

export function unary(
  client: grpc.Client,
  path: string,
  body: Buffer,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    let result: { error: grpc.ServiceError | null; response: Buffer | undefined } | undefined;
    let statusSeen = false;
    const finish = (): void => {
      if (result && statusSeen) resolve({ ...result, headers, trailers });
    };
    const call = client.makeUnaryRequest(path, ser, ser, body, metadata, options, (error, response) => {
      result = { error, response };
      finish();
    });
    call.on('metadata', (m) => (headers = m));
    call.on('status', (s) => {
      trailers = s.metadata;
      statusSeen = true;
      finish();
    });
  });
}

/** Collects a response stream: messages, headers, final status. */
export function collect(call: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>): Promise<{
  messages: Buffer[];
  headers: grpc.Metadata | undefined;
  status: grpc.StatusObject;
}> {
  return new Promise((resolve) => {
    const messages: Buffer[] = [];
    let headers: grpc.Metadata | undefined;
    let status: grpc.StatusObject | undefined;
    let ended = false;
    const finish = (): void => {
      if (status && ended) resolve({ messages, headers, status });
    };
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('data', (b: Buffer) => messages.push(b));
    call.on('error', () => {
      ended = true;
      finish();
    });
    call.on('end', () => {
      ended = true;
      finish();
    });
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      finish();
    });
  });
}
