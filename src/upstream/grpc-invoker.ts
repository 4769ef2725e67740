/**
 * The dynamic invoker used by transcoding: unary and server-streaming calls with already-serialized request
 * bytes, on @grpc/grpc-js channels. Messages stay Buffers end to end (identity serializers): serialization
 * happens in transcode/, with converters compiled at startup, never via reflection here.
 *
 * One channel per endpoint and a per-call round-robin pick across them. (The upstream layer of balancers,
 * health and DNS re-resolution replaces this pick; the call surface stays.)
 */
import * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;

export interface CallOptions {
  metadata: grpc.Metadata;
  /** Absolute deadline (ms since epoch) or undefined for none. */
  deadline: number | undefined;
}

export interface UnaryResult {
  message: Buffer;
  headers: grpc.Metadata;
  trailers: grpc.Metadata;
}

export interface BackendTarget {
  name: string;
  endpoints: string[];
}

export class GrpcInvoker {
  readonly backend: string;
  readonly #clients: grpc.Client[];
  #next = 0;

  constructor(target: BackendTarget, channelOptions: grpc.ChannelOptions = {}) {
    this.backend = target.name;
    this.#clients = target.endpoints.map(
      (ep) =>
        new grpc.Client(ep, grpc.credentials.createInsecure(), {
          // Transcoded messages are bounded by the HTTP body limit on the way in; the way out is bounded here.
          'grpc.max_receive_message_length': 64 * 1024 * 1024,
          'grpc.keepalive_time_ms': 30_000,
          ...channelOptions,
        }),
    );
  }

  #pick(): grpc.Client {
    const c = this.#clients[this.#next]!;
    this.#next = (this.#next + 1) % this.#clients.length;
    return c;
  }

  /**
   * Starts a unary call. Resolves with the response and both metadata sets; rejects with the grpc-js
   * ServiceError (code, details, metadata = trailers). `signal` aborts cancel the call.
   */
  unary(path: string, request: Buffer, options: CallOptions, signal: AbortSignal): Promise<UnaryResult> {
    return new Promise((resolve, reject) => {
      let headers = new grpc.Metadata();
      let message: Buffer | undefined;
      const call = this.#pick().makeUnaryRequest<Buffer, Buffer>(
        path,
        identity,
        identity,
        request,
        options.metadata,
        { deadline: options.deadline ?? Infinity },
        (err, value) => {
          if (err) return reject(err);
          message = value;
        },
      );
      call.on('metadata', (md) => { headers = md; });
      call.on('status', (status) => {
        if (status.code === grpc.status.OK && message) resolve({ message, headers, trailers: status.metadata });
      });
      const onAbort = (): void => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      call.on('status', () => signal.removeEventListener('abort', onAbort));
    });
  }

  serverStream(path: string, request: Buffer, options: CallOptions): grpc.ClientReadableStream<Buffer> {
    return this.#pick().makeServerStreamRequest<Buffer, Buffer>(path, identity, identity, request, options.metadata, {
      deadline: options.deadline ?? Infinity,
    });
  }

  close(): void {
    for (const c of this.#clients) c.close();
  }
}
