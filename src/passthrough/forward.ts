/**
 * Forwards one client gRPC stream to one backend stream, frame payloads untouched.
 *
 * Backpressure contract: both directions are `pipe()`d. When the reader's destination is full, pipe pauses the
 * source; a paused node:http2 stream sends no WINDOW_UPDATE, so the peer stops within one flow-control window.
 * Memory per stream is therefore bounded by the windows, never by message or stream size.
 *
 * Ending: exactly one of
 *  - the backend's response headers + body + trailers are relayed (trailers sent from 'wantTrailers');
 *  - a Trailers-Only response (backend's, or ours when no backend stream exists yet);
 *  - on failure after response headers were sent: our status trailers after what was already relayed;
 *  - the client went away: the backend stream is reset with CANCEL so the backend call sees 'cancelled'.
 */
import http2 from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { Code, GatewayError } from '../errors/index.ts';
import type { BackendRouter } from './backends.ts';
import { codeFromHttp2Error, parseGrpcTimeout, relayHeaders, statusTrailers, trailersOnlyHeaders } from './grpc-wire.ts';
import type { PassthroughBackend, PassthroughLogger } from './options.ts';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

export interface ForwardContext {
  backends: BackendRouter;
  logger: PassthroughLogger | undefined;
  /** Called once when the client stream closes: `rstCode` as node:http2 reports it, the gRPC status the client got. */
  onStreamClosed(rstCode: number, grpcCode: number): void;
  /** Request bytes as they go to the backend (metrics). */
  onRequestBytes?: (n: number) => void;
  /** No bytes either way for this long ends the call with DEADLINE_EXCEEDED; 0 = never. */
  streamIdleTimeoutMs?: number;
}

export class StreamForwarder {
  readonly #client: ServerHttp2Stream;
  readonly #headers: IncomingHttpHeaders;
  readonly #backend: PassthroughBackend;
  readonly #ctx: ForwardContext;
  readonly #abort = new AbortController();
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
  #touch: (() => void) | undefined;
  /** The grpc-status sent to the client; undefined until one is. */
  #grpcCode: number | undefined;

  constructor(client: ServerHttp2Stream, headers: IncomingHttpHeaders, backend: PassthroughBackend, ctx: ForwardContext) {
    this.#client = client;
    this.#headers = headers;
    this.#backend = backend;
    this.#ctx = ctx;
  }

  start(): void {
    const client = this.#client;
    client.on('error', () => {}); // surfaced through 'close' and rstCode; an unhandled 'error' would crash
    client.once('close', () => this.#onClientClose());
    client.on('wantTrailers', () => {
      this.#wantTrailers = true;
      this.#flushTrailers();
    });
    const timeoutMs = parseGrpcTimeout(this.#headers['grpc-timeout']);
    if (timeoutMs !== undefined) {
      // The backend enforces the deadline too (grpc-timeout is forwarded); this covers time spent before the
      // backend has the call, e.g. while connecting, and backends that ignore it.
      this.#deadline = setTimeout(() => this.#fail(Code.DEADLINE_EXCEEDED, 'deadline exceeded at the gateway'), timeoutMs);
    }
    const idleMs = this.#ctx.streamIdleTimeoutMs ?? 0;
    if (idleMs > 0) {
      this.#idle = setTimeout(() => this.#fail(Code.DEADLINE_EXCEEDED, `no bytes either way for ${idleMs} ms (grpc stream idle timeout)`), idleMs);
      const touch = (): void => { this.#idle?.refresh(); };
      // Listening for 'data' here would start the flow before the backend is attached: count progress where the
      // bytes are written instead (request bytes to the backend, response bytes to the client).
      const write = client.write.bind(client);
      client.write = ((chunk: unknown, ...rest: unknown[]) => {
        touch();
        return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof client.write;
      this.#touch = touch;
    }
    // One turn of the event loop lets RST_STREAM frames read in the same chunk as the HEADERS land first, so a
    // rapid-reset flood costs no backend streams (and no backend connections).
    setImmediate(() => this.#open());
  }

  #open(): void {
    if (this.#done || this.#client.destroyed) return;
    const scheme = this.#backend.upstream?.scheme ?? (this.#backend.tls ? 'https' : 'http');
    const headers = relayHeaders(this.#headers, { ':scheme': scheme });
    this.#ctx.backends.open(this.#backend, headers, this.#abort.signal).then(
      ({ stream, session }) => this.#attach(stream, session),
      (err: unknown) => {
        const ge = err instanceof GatewayError ? err : new GatewayError(Code.UNAVAILABLE, `backend "${this.#backend.name}" unavailable`, { cause: err });
        if (ge.code === Code.UNAVAILABLE) this.#ctx.logger?.warn({ backend: this.#backend.name, err: ge.message }, 'passthrough: backend unavailable');
        this.#fail(ge.code, ge.message);
      },
    );
  }

  #attach(upstream: ClientHttp2Stream, session: ClientHttp2Session): void {
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
      this.#upstreamTrailers = relayHeaders(trailers);
      this.#flushTrailers();
    });
    upstream.once('close', () => this.#onUpstreamClose());
    this.#client.pipe(upstream);
    // Only once piped: a 'data' listener before that would start the flow with nowhere to send it.
    const count = this.#ctx.onRequestBytes;
    const touch = this.#touch;
    if (count || touch) {
      this.#client.on('data', (chunk: Buffer) => {
        count?.(chunk.length);
        touch?.();
      });
    }
  }

  #onResponse(headers: IncomingHttpHeaders, flags: number): void {
    if (this.#done || this.#client.destroyed) return;
    this.#upstreamStatus = Number(headers[':status']);
    const out = relayHeaders(headers);
    if (flags & NGHTTP2_FLAG_END_STREAM) {
      // Trailers-Only: the status is in this one HEADERS frame; it must reach the client as one frame too.
      this.#respond(out, true);
      return;
    }
    this.#headersSent = true;
    this.#client.respond(out, { waitForTrailers: true });
    this.#upstream!.pipe(this.#client);
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
      // Normal end: pipe() ends the client stream, whose 'wantTrailers' relays the trailers.
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
    this.#clearDeadline();
    this.#grpcCode = statusOf(trailers);
    this.#client.sendTrailers(trailers);
  }

  /** Ends the exchange with a gateway status; resets the backend stream if it is still open. */
  #fail(code: Code, message: string): void {
    if (this.#done) return;
    this.#clearDeadline();
    const upstream = this.#upstream;
    if (upstream && !upstream.destroyed) {
      upstream.unpipe(this.#client);
      upstream.close(NGHTTP2_CANCEL);
    }
    this.#abort.abort();
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
    this.#clearDeadline();
    if (endStream) this.#grpcCode = statusOf(headers);
    this.#client.respond(headers, { endStream });
    this.#discardRequestBody();
  }

  /** After the response is complete the request body has nowhere to go; drain it rather than stall the client. */
  #discardRequestBody(): void {
    const upstream = this.#upstream;
    if (upstream) this.#client.unpipe(upstream);
    if (!this.#client.readableEnded) this.#client.resume();
  }

  #onClientClose(): void {
    this.#clearDeadline();
    this.#abort.abort();
    const upstream = this.#upstream;
    if (upstream && !upstream.destroyed) {
      // RST_STREAM(CANCEL): the backend call observes 'cancelled'. A clean client close with the backend still
      // open (client got its status, backend still running) is also a cancel from the backend's point of view.
      upstream.close(NGHTTP2_CANCEL);
    }
    this.#done = true;
    this.#ctx.onStreamClosed(this.#client.rstCode ?? NGHTTP2_NO_ERROR, this.#grpcCode ?? Code.CANCELLED);
  }

  #clearDeadline(): void {
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
    clearTimeout(this.#idle);
    this.#idle = undefined;
  }
}

/** The grpc-status of a trailers block; a block without one (a non-gRPC reply) counts as UNKNOWN. */
function statusOf(headers: OutgoingHttpHeaders): number {
  const v = Number(headers['grpc-status']);
  return Number.isInteger(v) ? v : Code.UNKNOWN;
}
