/**
 * Forwards one client gRPC stream to one backend stream, frame payloads untouched.
 *
 * Backpressure contract: each direction goes through `Relay`: every chunk read from one side is written to the
 * other at once, and once the bytes queued toward the destination (its Writable buffer plus node:http2's outbound
 * queue, both counted in `writableLength`) reach RELAY_HIGH_WATER, the source is paused until 'drain'. A paused
 * node:http2 stream sends no WINDOW_UPDATE, so the peer stops within one flow-control window. Memory per stream is
 * therefore bounded by RELAY_HIGH_WATER plus the windows, never by message or stream size.
 *
 * Why not pipe(): pipe() pauses at the destination's highWaterMark, which for an Http2Stream is 16 KiB, one DATA
 * frame. A download then moved one frame per event-loop turn, one writev syscall each (strace: 45k writevs for
 * 512 MiB, an epoll_wait between every two), instead of letting node:http2 gather everything read from the other
 * socket into one write. pipe() also adds seven listeners per direction per call.
 *
 * Ending: exactly one of
 *  - the backend's response headers + body + trailers are relayed (trailers sent from 'wantTrailers');
 *  - a Trailers-Only response (backend's, or ours when no backend stream exists yet);
 *  - on failure after response headers were sent: our status trailers after what was already relayed;
 *  - the client went away: the backend stream is reset with CANCEL so the backend call sees 'cancelled'.
 */
import http2 from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { Code, GatewayError } from '../errors/index.ts';
import { abortToken, cancelToken, type CancelToken } from '../upstream/http2-pool.ts';
import type { BackendRouter, OpenedStream } from './backends.ts';
import { codeFromHttp2Error, encodeGrpcTimeout, parseGrpcTimeout, relayHeadersInPlace, statusTrailers, trailersOnlyHeaders } from './grpc-wire.ts';
import type { PassthroughBackend, PassthroughLogger } from './options.ts';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/**
 * Bytes queued toward one peer before the other side is paused: several DATA frames' worth, so a burst read from
 * the other socket goes out in a few large writes. 64 KiB, 256 KiB and 1 MiB measured alike (bench/passthrough.ts);
 * the smaller end keeps what a stream can hold at the gateway well under its 1 MiB flow-control window.
 */
const RELAY_HIGH_WATER = 256 * 1024;


/** Per-method byte counters (the metrics' GrpcMethodMetrics). */
export interface ByteCounters {
  receivedBytes(n: number): void;
  sentBytes(n: number): void;
}

/**
 * One call as the listener accounts for it (metrics, access log, rapid-reset guard); the forwarder fills in the
 * outcome and hands the record back through `onStreamClosed`.
 */
export interface CallRecord {
  readonly metrics: ByteCounters | undefined;
  /** performance.now() when the stream arrived. */
  readonly started: number;
  /** Message bytes (gRPC frames) received from the client and relayed to it. */
  reqBytes: number;
  resBytes: number;
  /** The :status sent to the client: 200 for gRPC, a non-gRPC backend's own, 499 (as the REST log) when none was. */
  httpStatus: number;
  /** The grpc-status sent to the client; undefined when none was (the client went away first). */
  grpcCode: number | undefined;
}

export interface ForwardContext<C extends CallRecord> {
  backends: BackendRouter;
  logger: PassthroughLogger | undefined;
  /** Called once when the client stream closes, with `rstCode` as node:http2 reports it. */
  onStreamClosed(call: C, rstCode: number): void;
  /** No bytes either way for this long ends the call with DEADLINE_EXCEEDED; 0 = never. */
  streamIdleTimeoutMs: number;
  /** Set at the shutdown deadline: backend streams that open from then on fail at once with this error. */
  cutError: Error | undefined;
}

export class StreamForwarder<C extends CallRecord> {
  readonly #client: ServerHttp2Stream;
  readonly #headers: IncomingHttpHeaders;
  #backend: PassthroughBackend;
  readonly #ctx: ForwardContext<C>;
  readonly #call: C;
  /** Only while the backend stream is being opened: a queued request must leave the pool's queue if the call ends. */
  #opening: CancelToken | undefined;
  #upstream: ClientHttp2Stream | undefined;
  #upstreamSession: ClientHttp2Session | undefined;
  #upstreamError: Error | undefined;
  #upstreamStatus = 0;
  #upstreamTrailers: OutgoingHttpHeaders | undefined;
  #upstreamClosed = false;
  /** Status trailers of our own, replacing the backend's after a failure mid-response. */
  #ownTrailers: OutgoingHttpHeaders | undefined;
  #headersSent = false;
  #wantTrailers = false;
  /** The response to the client is complete or abandoned: nothing more may be sent. */
  #done = false;
  #deadline: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;
  #up: Relay | undefined;
  #down: Relay | undefined;

  constructor(client: ServerHttp2Stream, headers: IncomingHttpHeaders, backend: PassthroughBackend, ctx: ForwardContext<C>, call: C) {
    this.#client = client;
    this.#headers = headers;
    this.#backend = backend;
    this.#ctx = ctx;
    this.#call = call;
  }

  /** Listeners and timers; the backend stream is opened by `open()`, when the listener's OpenScheduler says so. */
  start(): void {
    const client = this.#client;
    client.on('error', ignore); // surfaced through 'close' and rstCode; an unhandled 'error' would crash
    client.on('close', () => this.#onClientClose());
    client.on('wantTrailers', () => {
      this.#wantTrailers = true;
      this.#flushTrailers();
    });
    const timeoutMs = parseGrpcTimeout(this.#headers['grpc-timeout']);
    if (timeoutMs !== undefined) {
      // The backend enforces the deadline too (grpc-timeout is forwarded, reduced by the time spent here); this
      // covers time spent before the backend has the call, e.g. while connecting, and backends that ignore it.
      this.#deadline = setTimeout(() => this.#fail(Code.DEADLINE_EXCEEDED, 'deadline exceeded at the gateway'), timeoutMs);
      forwardRemainingTimeout(this.#headers, timeoutMs, this.#call.started);
    }
    const idleMs = this.#ctx.streamIdleTimeoutMs;
    if (idleMs > 0) {
      this.#idle = setTimeout(() => this.#fail(Code.DEADLINE_EXCEEDED, `no bytes either way for ${idleMs} ms (grpc stream idle timeout)`), idleMs);
    }
  }

  /** The onRequest hook chose another backend: only before open(). */
  retarget(backend: PassthroughBackend): void {
    this.#backend = backend;
  }

  /** Ends the call with a gateway status without reaching a backend (the onRequest hook refused it). */
  reject(code: Code, message: string): void {
    this.#fail(code, message);
  }

  /** Opens the backend stream; false when the call has already ended (reset by the client, timed out). */
  open(): boolean {
    if (this.#done || this.#client.destroyed) return false;
    const headers = relayHeadersInPlace(this.#headers) as OutgoingHttpHeaders;
    headers[':scheme'] = this.#backend.upstream?.scheme ?? (this.#backend.tls ? 'https' : 'http');
    // A plain token, not an AbortController: a controller + listener cost ~6 us per call (measured).
    const opening = cancelToken();
    this.#opening = opening;
    this.#ctx.backends.open(this.#backend, headers, opening).then(
      (opened) => this.#attach(opened),
      (err: unknown) => {
        this.#opening = undefined;
        const ge = err instanceof GatewayError ? err : new GatewayError(Code.UNAVAILABLE, `backend "${this.#backend.name}" unavailable`, { cause: err });
        if (ge.code === Code.UNAVAILABLE) this.#ctx.logger?.warn({ backend: this.#backend.name, err: ge.message }, 'passthrough: backend unavailable');
        this.#fail(ge.code, ge.message);
      },
    );
    return true;
  }

  #attach({ stream: upstream, session }: OpenedStream): void {
    this.#opening = undefined;
    if (this.#done || this.#client.destroyed) {
      upstream.close(NGHTTP2_CANCEL);
      return;
    }
    this.#upstream = upstream;
    this.#upstreamSession = session;
    upstream.on('error', (err) => {
      this.#upstreamError ??= err;
    });
    upstream.on('response', (headers, flags) => this.#onResponse(headers, flags));
    upstream.on('trailers', (trailers) => {
      this.#upstreamTrailers = relayHeadersInPlace(trailers) as OutgoingHttpHeaders;
      this.#flushTrailers();
    });
    upstream.on('close', () => this.#onUpstreamClose());
    if (this.#ctx.cutError) {
      // Listeners are attached: the error and close that follow end the call like a lost backend.
      upstream.destroy(this.#ctx.cutError);
      return;
    }
    const call = this.#call;
    const counters = call.metrics;
    this.#up = new Relay(this.#client, upstream, (n) => {
      call.reqBytes += n;
      counters?.receivedBytes(n);
      // The field, not a copy: a cleared timer would come back to life on refresh().
      this.#idle?.refresh();
    });
  }

  /**
   * The shutdown deadline: fails the backend stream with `err`, so the client gets what a lost backend gives
   * (UNAVAILABLE, in a Trailers-Only response or after what was relayed); the backend sees RST_STREAM. A call whose
   * backend stream is still being opened meets `cutError` in #attach.
   */
  cut(err: Error): void {
    const upstream = this.#upstream;
    if (upstream && !upstream.destroyed) upstream.destroy(err);
  }

  #onResponse(headers: IncomingHttpHeaders, flags: number): void {
    if (this.#done || this.#client.destroyed) return;
    this.#upstreamStatus = Number(headers[':status']);
    const out = relayHeadersInPlace(headers) as OutgoingHttpHeaders;
    if (flags & NGHTTP2_FLAG_END_STREAM) {
      // Trailers-Only: the status is in this one HEADERS frame; it must reach the client as one frame too.
      this.#respond(out, true);
      return;
    }
    this.#headersSent = true;
    this.#call.httpStatus = this.#upstreamStatus;
    this.#client.respond(out, { waitForTrailers: true });
    const call = this.#call;
    const counters = call.metrics;
    this.#down = new Relay(this.#upstream!, this.#client, (n) => {
      call.resBytes += n;
      counters?.sentBytes(n);
      this.#idle?.refresh();
    });
  }

  #onUpstreamClose(): void {
    this.#upstreamClosed = true;
    if (this.#done) return;
    const upstream = this.#upstream!;
    const rst = upstream.rstCode ?? NGHTTP2_NO_ERROR;
    // A stream "closed" without error because its whole connection went away (socket ended, session torn down) did
    // not end cleanly: without trailers it is a lost connection (UNAVAILABLE), not a broken response (INTERNAL).
    const connectionGone = this.#upstreamSession?.destroyed === true && this.#upstreamTrailers === undefined;
    const cleanEnd = this.#upstreamError === undefined && rst === NGHTTP2_NO_ERROR && !connectionGone;
    if (this.#headersSent && (cleanEnd || (this.#upstreamTrailers !== undefined && upstream.readableEnded))) {
      // Normal end: the relay ends the client stream, whose 'wantTrailers' relays the trailers.
      this.#flushTrailers();
      return;
    }
    const [code, message] = this.#upstreamFailure(rst);
    this.#fail(code, message);
  }

  /** RST_STREAM codes map per PROTOCOL-HTTP2.md; a lost connection (GOAWAY, reset socket, ping timeout) is UNAVAILABLE. */
  #upstreamFailure(rst: number): [Code, string] {
    const err = this.#upstreamError as (Error & { code?: string }) | undefined;
    const name = this.#backend.name;
    const sessionLost = this.#upstreamSession?.destroyed === true || (err !== undefined && err.code !== 'ERR_HTTP2_STREAM_ERROR');
    if (sessionLost) return [Code.UNAVAILABLE, `connection to backend "${name}" lost${err ? `: ${err.message}` : ''}`];
    if (rst === NGHTTP2_NO_ERROR) return [Code.INTERNAL, `backend "${name}" closed the stream without a response`];
    return [codeFromHttp2Error(rst), `backend "${name}" reset the stream (HTTP/2 error code ${rst})`];
  }

  #flushTrailers(): void {
    if (!this.#wantTrailers || this.#client.destroyed) return;
    let trailers = this.#ownTrailers ?? this.#upstreamTrailers;
    if (!trailers) {
      if (!this.#upstreamClosed) return; // the backend's trailers are still on their way
      // Body ended without trailers: a gRPC backend always sends grpc-status, so this is a broken response.
      // A non-200 reply (e.g. an HTTP proxy's 503) is left as is: clients derive the status from :status.
      trailers = this.#upstreamStatus === 200 ? statusTrailers(Code.INTERNAL, `backend "${this.#backend.name}" sent no grpc-status`) : {};
    }
    this.#wantTrailers = false;
    this.#done = true;
    this.#clearTimers();
    this.#call.grpcCode = statusOf(trailers);
    this.#client.sendTrailers(trailers);
  }

  /** Ends the exchange with a gateway status; resets the backend stream if it is still open. */
  #fail(code: Code, message: string): void {
    if (this.#done) return;
    this.#clearTimers();
    const upstream = this.#upstream;
    if (upstream && !upstream.destroyed) {
      this.#down?.stop();
      upstream.close(NGHTTP2_CANCEL);
    }
    if (this.#opening) abortToken(this.#opening);
    if (this.#client.destroyed) {
      this.#done = true;
      return;
    }
    if (!this.#headersSent) {
      this.#respond(trailersOnlyHeaders(code, message), true);
      return;
    }
    this.#ownTrailers = statusTrailers(code, message);
    if (this.#wantTrailers) this.#flushTrailers();
    else if (!this.#client.writableEnded) this.#client.end();
  }

  #respond(headers: OutgoingHttpHeaders, endStream: boolean): void {
    this.#done = true;
    this.#clearTimers();
    if (endStream) {
      this.#call.grpcCode = statusOf(headers);
      this.#call.httpStatus = Number(headers[':status']);
    }
    this.#client.respond(headers, { endStream });
    this.#discardRequestBody();
  }

  /** After the response is complete the request body has nowhere to go; drain it rather than stall the client. */
  #discardRequestBody(): void {
    this.#up?.stop();
    if (!this.#client.readableEnded) this.#client.resume();
  }

  #onClientClose(): void {
    this.#clearTimers();
    if (this.#opening) abortToken(this.#opening);
    const upstream = this.#upstream;
    if (upstream && !upstream.destroyed) {
      // RST_STREAM(CANCEL): the backend call observes 'cancelled'. A clean client close with the backend still
      // open (client got its status, backend still running) is also a cancel from the backend's point of view.
      upstream.close(NGHTTP2_CANCEL);
    }
    this.#done = true;
    this.#ctx.onStreamClosed(this.#call, this.#client.rstCode ?? NGHTTP2_NO_ERROR);
  }

  #clearTimers(): void {
    if (this.#deadline) {
      clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    if (this.#idle) {
      clearTimeout(this.#idle);
      this.#idle = undefined;
    }
  }
}

/**
 * Copies `src` into `dst` chunk by chunk (see the backpressure contract at the top) and ends `dst` when `src` ends.
 * `onChunk` sees every chunk's size. `stop()` detaches it without resuming `src`.
 * Its listeners are arrows assigned to fields: tsx compiles with keepNames, which wraps every arrow bound to a
 * named const in a defineProperty('name') call, per call here.
 */
class Relay {
  readonly #src: Readable;
  readonly #dst: Writable;
  readonly #onChunk: (n: number) => void;
  readonly #onData: (chunk: Buffer) => void;
  readonly #onEnd: () => void;
  readonly #onDrain: () => void;

  constructor(src: Readable, dst: Writable, onChunk: (n: number) => void) {
    this.#src = src;
    this.#dst = dst;
    this.#onChunk = onChunk;
    this.#onData = (chunk) => this.#data(chunk);
    this.#onEnd = () => {
      if (!dst.writableEnded && !dst.destroyed) dst.end();
    };
    this.#onDrain = () => {
      src.resume();
    };
    src.on('data', this.#onData);
    src.on('end', this.#onEnd);
  }

  stop(): void {
    this.#src.off('data', this.#onData);
    this.#src.off('end', this.#onEnd);
    this.#dst.off('drain', this.#onDrain);
  }

  #data(chunk: Buffer): void {
    this.#onChunk(chunk.length);
    const dst = this.#dst;
    // The other side finished or failed: the exchange's outcome is being decided elsewhere; the bytes have nowhere
    // to go (writing would raise write-after-end on that stream and be mistaken for a backend error).
    if (dst.writableEnded || dst.destroyed) return;
    if (!dst.write(chunk) && dst.writableLength >= RELAY_HIGH_WATER) {
      this.#src.pause();
      dst.once('drain', this.#onDrain);
    }
  }
}

/**
 * Forwards what is left of the caller's deadline rather than all of it. The value is computed when node:http2
 * serializes the headers, i.e. when the backend stream is actually opened, which may be after waiting for a
 * connection (the pool queues requests with this very headers object); a getter is the one hook at that moment.
 */
function forwardRemainingTimeout(headers: IncomingHttpHeaders, timeoutMs: number, started: number): void {
  const original = headers['grpc-timeout'];
  Object.defineProperty(headers, 'grpc-timeout', {
    enumerable: true,
    configurable: true,
    get() {
      const spent = performance.now() - started;
      // Under a millisecond spent (the usual case): the caller's own value, untouched.
      return spent < 1 ? original : encodeGrpcTimeout(timeoutMs - spent);
    },
  });
}

function ignore(): void {}

/** The grpc-status of a trailers block; a block without one (a non-gRPC reply) counts as UNKNOWN. */
function statusOf(headers: OutgoingHttpHeaders): number {
  const v = Number(headers['grpc-status']);
  return Number.isInteger(v) ? v : Code.UNKNOWN;
}
