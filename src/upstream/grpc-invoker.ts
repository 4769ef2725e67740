/**
 * The dynamic invoker used by transcoding: unary and server-streaming calls with already-serialized request
 * bytes. Messages stay Buffers end to end: serialization happens in transcode/, with converters compiled at
 * startup, never via reflection here.
 *
 * Every call picks its endpoint from the backend's balancer (the same picker the passthrough uses), and reports
 * its outcome back (outstanding count for least_request, passive ejection). Three transports:
 *  - 'socket'  (default) the lean client of h2-grpc-client.ts on protogate's own HTTP/2 connections
 *              (socket-session.ts), the endpoint's callPool: no node:http2 on the call path, and with it none of
 *              the old-space garbage that sets its p99; transparent retry of calls that never reached a backend;
 *  - 'h2'      the same client on the endpoint's pooled node:http2 sessions (the passthrough's pool);
 *  - 'grpc-js' one @grpc/grpc-js channel per endpoint; a call failing UNAVAILABLE before any response header is
 *              retried on another endpoint only for connection failures grpc-js reports before sending.
 */
import * as grpc from '@grpc/grpc-js';
import { Code, GatewayError } from '../errors/index.ts';
import type { BackendUpstream } from './backend-upstream.ts';
import type { UpstreamEndpoint } from './endpoint.ts';
import type { CancelToken } from './http2-pool.ts';
import { CallError, H2ServerStream, h2Unary } from './h2-grpc-client.ts';
import type { H2CallOptions, ServerStreamCall, UnaryResult } from './h2-grpc-client.ts';

export type { UnaryResult, ServerStreamCall } from './h2-grpc-client.ts';

const identity = (b: Buffer): Buffer => b;

export interface CallOptions {
  metadata: grpc.Metadata;
  /** Absolute deadline (ms since epoch) or undefined for none. */
  deadline: number | undefined;
}

export interface InvokerOptions {
  transport: 'h2' | 'socket' | 'grpc-js';
  maxReceiveMessageBytes: number;
  maxSendMessageBytes: number;
  /** Extra grpc-js channel options (transport 'grpc-js'). */
  channelOptions?: grpc.ChannelOptions;
  retryPolicies?: RetryPolicy[];
}

export interface RetryPolicy {
  methods: string[];
  retryableCodes: string[];
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** A policy compiled for one method: codes as numbers. */
interface MethodRetry {
  codes: Set<number>;
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export class GrpcInvoker {
  readonly backend: string;
  readonly upstream: BackendUpstream;
  readonly #options: InvokerOptions;
  /** gRPC path -> its retry policy (or null): matched once per method, then looked up. */
  readonly #retries = new Map<string, MethodRetry | null>();

  constructor(upstream: BackendUpstream, options: InvokerOptions) {
    this.backend = upstream.name;
    this.upstream = upstream;
    this.#options = options;
  }

  /** The most specific policy naming the method: "pkg.Svc/Method" beats "pkg.Svc/*" beats "*". */
  #retryFor(path: string): MethodRetry | null {
    let r = this.#retries.get(path);
    if (r !== undefined) return r;
    const name = path.slice(1);
    const service = name.slice(0, name.indexOf('/'));
    const policies = this.#options.retryPolicies ?? [];
    const p = policies.find((x) => x.methods.includes(name))
      ?? policies.find((x) => x.methods.includes(`${service}/*`))
      ?? policies.find((x) => x.methods.includes('*'));
    r = p ? {
      codes: new Set(p.retryableCodes.map((c) => grpc.status[c as keyof typeof grpc.status] as number)),
      maxAttempts: p.maxAttempts,
      initialBackoffMs: p.initialBackoffMs,
      maxBackoffMs: p.maxBackoffMs,
    } : null;
    this.#retries.set(path, r);
    return r;
  }

  get transport(): 'h2' | 'socket' | 'grpc-js' {
    return this.#options.transport;
  }

  /**
   * Starts a unary call. Resolves with the response and both metadata sets; rejects with a ServiceError-shaped
   * error (code, details, metadata = trailers), or a GatewayError UNAVAILABLE naming the backend when no endpoint
   * is usable. Aborting `signal` (abortToken) cancels the call.
   */
  async unary(path: string, request: Buffer, options: CallOptions, signal: CancelToken): Promise<UnaryResult> {
    const up = this.upstream;
    const tried = new Set<UpstreamEndpoint>();
    let last: CallError | undefined;
    let attempts = 0;
    for (;;) {
      // A policy retry prefers an endpoint not tried yet, but may go back to one (a single-endpoint backend).
      const ep = up.pick(tried) ?? (attempts > 0 && last && !last.retryable ? up.pick(new Set()) : undefined);
      if (!ep) throw up.unavailable(last?.details);
      attempts++;
      tried.add(ep);
      up.begin(ep);
      try {
        const result = this.#options.transport !== 'grpc-js'
          ? await h2Unary(ep.callPool, path, request, this.#h2Options(options), signal)
          : await this.#grpcJsUnary(ep, path, request, options, signal);
        up.end(ep, Code.OK);
        return result;
      } catch (err) {
        const e = err as CallError;
        up.end(ep, typeof e.code === 'number' ? e.code : Code.UNKNOWN, e.retryable === true);
        if (signal.aborted) throw err;
        if (e.retryable) {
          if (!up.mayRetry(tried.size)) throw err;
        } else {
          // Reached a backend: retried only when a policy for this method says so, within its attempts and the deadline.
          const policy = this.#retryFor(path);
          if (!policy || attempts >= policy.maxAttempts || !policy.codes.has(e.code)) throw err;
          const backoff = Math.random() * Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (attempts - 1));
          if (options.deadline !== undefined && Date.now() + backoff >= options.deadline) throw err;
          await new Promise((r) => setTimeout(r, backoff));
          if (signal.aborted) throw err;
        }
        last = e;
      }
    }
  }

  serverStream(path: string, request: Buffer, options: CallOptions): ServerStreamCall {
    const up = this.upstream;
    if (this.#options.transport === 'grpc-js') {
      const ep = up.pick();
      if (!ep) return failedStream(up.unavailable());
      up.begin(ep);
      const call = this.#client(ep).makeServerStreamRequest<Buffer, Buffer>(path, identity, identity, request, options.metadata, {
        deadline: options.deadline ?? Infinity,
      });
      call.on('status', (s) => up.end(ep, s.code));
      return call as unknown as ServerStreamCall;
    }
    const tried = new Set<UpstreamEndpoint>();
    return new H2ServerStream((previous) => {
      if (previous && !up.mayRetry(tried.size)) return previous;
      const ep = up.pick(tried);
      if (!ep) {
        const ge = up.unavailable(previous?.details);
        return new CallError(ge.code, ge.message);
      }
      tried.add(ep);
      up.begin(ep);
      return { pool: ep.callPool, done: (err) => up.end(ep, err?.code ?? Code.OK, err?.retryable === true) };
    }, path, request, this.#h2Options(options));
  }

  /** Closes grpc-js channels; pools belong to the upstream, which the gateway closes. */
  close(): void {
    for (const ep of this.upstream.picker.endpoints) {
      ep.grpcClient?.close();
      ep.grpcClient = undefined;
    }
  }

  #h2Options(options: CallOptions): H2CallOptions {
    return {
      metadata: options.metadata,
      deadline: options.deadline,
      maxReceiveMessageBytes: this.#options.maxReceiveMessageBytes,
      maxSendMessageBytes: this.#options.maxSendMessageBytes,
      scheme: this.upstream.scheme,
    };
  }

  #client(ep: UpstreamEndpoint): grpc.Client {
    if (!ep.grpcClient) {
      const tls = this.upstream.settings.tls;
      const creds = tls
        ? grpc.credentials.createSsl(toBuf(tls.ca), toBuf(tls.key), toBuf(tls.cert))
        : grpc.credentials.createInsecure();
      const pool = this.upstream.settings.pool;
      ep.grpcClient = new grpc.Client(ep.address, creds, {
        'grpc.max_receive_message_length': this.#options.maxReceiveMessageBytes,
        'grpc.max_send_message_length': this.#options.maxSendMessageBytes,
        'grpc.keepalive_time_ms': pool.keepaliveTimeMs ?? 300_000,
        'grpc.keepalive_timeout_ms': pool.keepaliveTimeoutMs ?? 20_000,
        ...(tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {}),
        ...this.#options.channelOptions,
      });
    }
    return ep.grpcClient;
  }

  #grpcJsUnary(ep: UpstreamEndpoint, path: string, request: Buffer, options: CallOptions, signal: CancelToken): Promise<UnaryResult> {
    return new Promise((resolve, reject) => {
      let headers: grpc.Metadata | undefined;
      let message: Buffer | undefined;
      const call = this.#client(ep).makeUnaryRequest<Buffer, Buffer>(path, identity, identity, request, options.metadata,
        { deadline: options.deadline ?? Infinity },
        (err, value) => {
          signal.onAbort = undefined;
          if (err) {
            // Only a call grpc-js never handed to a connection may go to another endpoint. grpc-js knows which ones
            // (its internal RpcProgress) but strips that field before the status reaches a public callback
            // (retrying-call.js, 1.14), and even marks a failed pick as PROCESSED, so its own text is the only
            // signal: the picker's "No connection established" (no transport stream was created) and "Stream
            // refused by server" (REFUSED_STREAM: the server did not process it). Anything broader would retry calls
            // that may have run: "Connection dropped" comes after the request was sent, and a backend's own
            // UNAVAILABLE details ("cannot connect to db") arrive without response headers when trailers-only.
            const retryable = err.code === grpc.status.UNAVAILABLE && headers === undefined &&
              /No connection established|^Stream refused by server$/.test(err.details);
            return reject(Object.assign(err, { retryable }));
          }
          message = value;
        });
      call.on('metadata', (md) => { headers = md; });
      call.on('status', (status) => {
        if (status.code === grpc.status.OK && message) resolve({ message, headers: headers ?? new grpc.Metadata(), trailers: status.metadata });
      });
      const onAbort = (): void => call.cancel();
      if (signal.aborted) call.cancel();
      else signal.onAbort = onAbort;
    });
  }
}

function toBuf(v: string | Buffer | undefined): Buffer | null {
  return v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v);
}

/** A stream that fails at once (no usable endpoint), with the events the REST layer listens to. */
function failedStream(err: GatewayError): ServerStreamCall {
  const stream = new H2ServerStream(() => new CallError(err.code, err.message), '', Buffer.alloc(0), {
    metadata: new grpc.Metadata(), deadline: undefined, maxReceiveMessageBytes: 0, maxSendMessageBytes: 0, scheme: 'http',
  });
  return stream;
}
