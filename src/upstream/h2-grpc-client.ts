/**
 * A lean gRPC client for unary and server-streaming calls on pooled node:http2 streams (Http2Pool.request()).
 * Messages stay Buffers: serialization happens in transcode/. Identity encoding only: we send
 * `grpc-accept-encoding: identity`, so a compressed response is a protocol error (INTERNAL).
 *
 * Wire format (PROTOCOL-HTTP2.md): each message is 1 byte compressed-flag + 4 bytes big-endian length + payload;
 * the status arrives in trailers, or in the response HEADERS alone with END_STREAM ("Trailers-Only").
 *
 * Errors have the shape of a grpc-js ServiceError (`code`, `details`, `metadata` = trailers) so the REST layer maps
 * them the same way whichever transport ran the call; `retryable` says the request provably never reached the
 * backend's application (no stream, or REFUSED_STREAM, which also covers streams above a GOAWAY's last id).
 */
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { Code, GatewayError } from '../errors/index.ts';
import { abortToken, cancelToken, type CancelToken, type Http2Pool } from './http2-pool.ts';
import { ErrorCode, type H2Stream, type H2StreamError, type StreamHandlers } from './h2/connection.ts';
import { SocketPool } from './socket-session.ts';

/** Either kind of pool: node:http2 sessions, or protogate's own connections (`transport: 'socket'`). */
export type CallPool = Http2Pool | SocketPool;

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_NO_ERROR, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY, NGHTTP2_FLAG_END_STREAM } = http2.constants;

export interface H2CallOptions {
  metadata: grpc.Metadata;
  /** Absolute deadline, ms since epoch. */
  deadline: number | undefined;
  /** Largest response message accepted (RESOURCE_EXHAUSTED above). */
  maxReceiveMessageBytes: number;
  /** Largest request message sent (RESOURCE_EXHAUSTED above, nothing is sent). */
  maxSendMessageBytes: number;
  /** ':scheme' of the request. */
  scheme: 'http' | 'https';
  /** ':authority'; default the endpoint. */
  authority?: string;
}

export interface UnaryResult {
  message: Buffer;
  headers: grpc.Metadata;
  trailers: grpc.Metadata;
}

/** A grpc-js ServiceError look-alike. */
export class CallError extends Error {
  readonly code: number;
  readonly details: string;
  readonly metadata: grpc.Metadata;
  /** The backend never saw the request: safe to send it to another endpoint. */
  readonly retryable: boolean;

  constructor(code: number, details: string, metadata = new grpc.Metadata(), retryable = false) {
    super(`${code} ${grpc.status[code] ?? 'UNKNOWN'}: ${details}`);
    this.code = code;
    this.details = details;
    this.metadata = metadata;
    this.retryable = retryable;
  }
}

/** What a server-streaming call looks like to the REST layer (the subset of grpc-js ClientReadableStream it uses). */
export interface ServerStreamCall {
  on(event: 'metadata', listener: (md: grpc.Metadata) => void): this;
  on(event: 'data', listener: (message: Buffer) => void): this;
  on(event: 'status', listener: (status: grpc.StatusObject) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end' | 'close', listener: () => void): this;
  pause(): this;
  resume(): this;
  cancel(): void;
}

export function encodeFrame(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/** Incremental decoder of length-prefixed messages: chunk boundaries may fall anywhere. */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #max: number;

  constructor(maxMessageBytes: number) {
    this.#max = maxMessageBytes;
  }

  get pending(): number {
    return this.#buffered;
  }

  /** Returns the complete messages; throws a CallError on a compressed or oversized message. */
  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: Buffer[] = [];
    while (this.#buffered >= 5) {
      const head = this.#chunks[0]!.length >= 5 ? this.#chunks[0]! : this.#flatten();
      if (head[0] !== 0) throw new CallError(Code.INTERNAL, 'backend sent a compressed message although only identity was accepted');
      const length = head.readUInt32BE(1);
      if (length > this.#max) {
        throw new CallError(Code.RESOURCE_EXHAUSTED, `response message of ${length} bytes exceeds the limit of ${this.#max} bytes`);
      }
      if (this.#buffered < 5 + length) break;
      const all = this.#flatten();
      out.push(all.subarray(5, 5 + length));
      const rest = all.subarray(5 + length);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
    }
    return out;
  }

  #flatten(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks, this.#buffered)];
    return this.#chunks[0]!;
  }
}

/** grpc-timeout: at most 8 digits; the coarsest unit that keeps millisecond precision. */
export function grpcTimeoutHeader(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1e8) return `${v}m`;
  if (v / 1000 < 1e8) return `${Math.ceil(v / 1000)}S`;
  return `${Math.min(99_999_999, Math.ceil(v / 3_600_000))}H`;
}

export function decodeGrpcMessage(raw: string | undefined): string {
  if (!raw) return '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // spec: an invalid percent-encoding is passed through, not an error
  }
}

/** HTTP status of a non-gRPC reply -> gRPC code (doc/http-grpc-status-mapping.md). */
function codeFromHttpStatus(status: number): number {
  switch (status) {
    case 400: return Code.INTERNAL;
    case 401: return Code.UNAUTHENTICATED;
    case 403: return Code.PERMISSION_DENIED;
    case 404: return Code.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return Code.UNAVAILABLE;
    default: return Code.UNKNOWN;
  }
}

const RESPONSE_HEADERS_NOT_METADATA = ['content-type', 'grpc-encoding', 'grpc-accept-encoding', 'grpc-status', 'grpc-message'];
const TRAILERS_NOT_METADATA = ['grpc-status', 'grpc-message', 'content-type'];

/**
 * Whether any header besides pseudo-headers and `skip` is present. Most backends send none, and then the empty
 * Metadata is built directly instead of through grpc-js' fromHttp2Headers() plus the removals, per call.
 */
function hasMetadata(headers: IncomingHttpHeaders, skip: readonly string[]): boolean {
  for (const k in headers) if (k.charCodeAt(0) !== 0x3a && !skip.includes(k)) return true;
  return false;
}

function headersToMetadata(headers: IncomingHttpHeaders, skip: readonly string[]): grpc.Metadata {
  if (!hasMetadata(headers, skip)) return new grpc.Metadata();
  const md = grpc.Metadata.fromHttp2Headers(headers);
  for (const k of skip) md.remove(k);
  return md;
}

/**
 * A header block as h2/connection.ts delivers it ([name, value, ...]) -> Metadata, the way grpc-js's
 * fromHttp2Headers() reads one: `-bin` values are base64 (several may be comma-joined), a key grpc-js would not
 * accept is left out rather than failing the call.
 */
function fieldsToMetadata(fields: readonly string[], skip: readonly string[]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.charCodeAt(0) === 0x3a || skip.includes(name)) continue;
    const value = fields[i + 1]!;
    try {
      if (name.endsWith('-bin')) for (const part of value.split(',')) md.add(name, Buffer.from(part.trim(), 'base64'));
      else md.add(name, value);
    } catch {
      // grpc-js logs and drops such a key too
    }
  }
  return md;
}

/** A grpc-status outside the 17 codes of the spec (statuscodes.md) is UNKNOWN, as grpc-js and grpc-go read it. */
function statusCode(code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= 16 ? code : Code.UNKNOWN;
}

function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function requestHeaders(pool: { endpoint: string }, path: string, options: H2CallOptions): OutgoingHttpHeaders {
  // Our fixed headers first, then the metadata copied key by key where it does not collide with them (ours win, as
  // gRPC owns these). Not `{ ...metadata.toHttp2Headers(), ... }`: V8 takes a slow path for that spread, ~13 µs
  // per call (measured), 2-3 % of a transcoded call's CPU.
  const headers: OutgoingHttpHeaders = {
    ':method': 'POST',
    ':scheme': options.scheme,
    ':path': path,
    ':authority': options.authority ?? pool.endpoint,
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-accept-encoding': 'identity',
    'user-agent': 'protogate',
  };
  if (options.deadline !== undefined) headers['grpc-timeout'] = grpcTimeoutHeader(options.deadline - Date.now());
  const md = options.metadata.toHttp2Headers();
  for (const k in md) if (headers[k] === undefined) headers[k] = md[k];
  return headers;
}

interface CallSink {
  headers(md: grpc.Metadata): void;
  message(m: Buffer): void;
  end(err: CallError | undefined, trailers: grpc.Metadata): void;
}

/**
 * One call on one endpoint: opens the stream, sends the single request message, decodes the response, and reports
 * exactly once through the sink's `headers` / `message` / `end`. Shared by unary and server streaming, and by both
 * kinds of pool: on a node:http2 stream it listens to the stream's events; on an H2Stream (SocketPool) the
 * connection calls its StreamHandlers methods, and pause() holds DATA back from the window instead of the socket.
 */
class H2Call implements StreamHandlers {
  stream: ClientHttp2Stream | undefined;
  #h2: H2Stream | undefined;
  /** H2Stream only: DATA that arrived while paused, delivered (and its window given back) on resume. */
  #held: Buffer[] = [];
  #paused = false;
  #remoteEnded = false;
  #gotHeaders = false;
  #decoder: FrameDecoder;
  #headers: grpc.Metadata | undefined;
  #status: { code: number; details: string; trailers: grpc.Metadata } | undefined;
  #ended = false;
  #timer: NodeJS.Timeout | undefined;
  #abort = cancelToken();
  #sink: CallSink;
  #endpoint = 'backend';

  constructor(options: H2CallOptions, sink: CallSink) {
    this.#decoder = new FrameDecoder(options.maxReceiveMessageBytes);
    this.#sink = sink;
  }

  start(pool: CallPool, path: string, request: Buffer, options: H2CallOptions): void {
    this.#endpoint = pool.endpoint;
    if (request.length > options.maxSendMessageBytes) {
      this.#finish(new CallError(Code.RESOURCE_EXHAUSTED, `request message of ${request.length} bytes exceeds the limit of ${options.maxSendMessageBytes} bytes`));
      return;
    }
    if (options.deadline !== undefined) {
      const left = options.deadline - Date.now();
      if (left <= 0) return this.#finish(new CallError(Code.DEADLINE_EXCEEDED, 'Deadline exceeded after 0 ms (before the call was sent)'));
      // grpc-js's wording: the REST layer recognises a deadline enforced by the client side by it.
      this.#timer = setTimeout(() => this.cancel(Code.DEADLINE_EXCEEDED, `Deadline exceeded after ${left} ms`), left);
    }
    const noStream = (err: unknown): void => {
      if (this.#ended) return;
      const ge = err instanceof GatewayError ? err : undefined;
      // No stream was ever opened: the backend cannot have seen the request.
      this.#finish(new CallError(ge?.code ?? Code.UNAVAILABLE, ge?.message ?? String(err), undefined, ge?.code === Code.UNAVAILABLE));
    };
    const headers = requestHeaders(pool, path, options);
    if (pool instanceof SocketPool) {
      const handlers = { handlers: this };
      const now = pool.tryOpen(headers, handlers);
      if (now) return this.#attachSocket(now, request);
      pool.request(headers, { ...handlers, cancel: this.#abort }).then((stream) => this.#attachSocket(stream, request), noStream);
    } else {
      const now = pool.tryOpen(headers);
      if (now) return this.#attach(now, request);
      pool.request(headers, { cancel: this.#abort }).then((stream) => this.#attach(stream, request), noStream);
    }
  }

  cancel(code: number = Code.CANCELLED, details = 'cancelled'): void {
    if (this.#ended) return;
    abortToken(this.#abort);
    // close(CANCEL) sends RST_STREAM: the backend sees the call cancelled.
    if (this.stream && !this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    this.#h2?.reset(ErrorCode.CANCEL);
    this.#finish(new CallError(code, details));
  }

  pause(): void {
    this.#paused = true;
    this.stream?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.stream?.resume();
    // What arrived while paused goes out now, in order, until the consumer pauses again.
    while (this.#held.length > 0 && !this.#paused && !this.#ended) this.#deliver(this.#held.shift()!);
    if (this.#held.length === 0 && this.#remoteEnded) this.#settle(NGHTTP2_NO_ERROR, false);
  }

  #attachSocket(stream: H2Stream, request: Buffer): void {
    if (this.#ended) {
      stream.reset(ErrorCode.CANCEL);
      return;
    }
    this.#h2 = stream;
    stream.write(encodeFrame(request), true);
  }

  /** StreamHandlers: a header block on the H2Stream (response headers, then trailers with endStream). */
  onHeaders(fields: string[], endStream: boolean): void {
    if (this.#ended) return;
    if (this.#gotHeaders) this.#statusFromFields(fields);
    else {
      this.#gotHeaders = true;
      const status = Number(field(fields, ':status'));
      if (status !== 200) {
        const message = field(fields, 'grpc-message');
        this.#status = { code: codeFromHttpStatus(status), details: message ? decodeGrpcMessage(message) : `backend answered HTTP ${status} instead of gRPC`, trailers: new grpc.Metadata() };
      } else if (endStream || field(fields, 'grpc-status') !== undefined) {
        this.#statusFromFields(fields); // Trailers-Only
      } else {
        this.#headers = fieldsToMetadata(fields, RESPONSE_HEADERS_NOT_METADATA);
        this.#sink.headers(this.#headers);
      }
    }
    if (endStream) this.#remoteEnd();
  }

  /** StreamHandlers: one DATA frame's payload. */
  onData(chunk: Buffer, endStream: boolean): void {
    if (this.#ended) return;
    if (this.#paused) this.#held.push(chunk);
    else this.#deliver(chunk);
    if (endStream) this.#remoteEnd();
  }

  /** StreamHandlers: the stream ended without trailers (reset by the backend, or the connection went). */
  onError(err: H2StreamError): void {
    if (this.#ended) return;
    if (err.unprocessed) this.#settle(ErrorCode.REFUSED_STREAM, false);
    else if (err.connection) this.#settle(NGHTTP2_NO_ERROR, true);
    else if (err.code === ErrorCode.PROTOCOL_ERROR || err.code === ErrorCode.FLOW_CONTROL_ERROR) {
      // Our own verdict on what the backend sent (headers over the limit, DATA before headers, window overrun).
      this.#finish(new CallError(Code.INTERNAL, `${this.#endpoint}: ${err.message}`));
    } else this.#settle(err.code, false);
  }

  #deliver(chunk: Buffer): void {
    const n = chunk.length;
    this.#onData(chunk);
    // The window goes back once the messages in it are handed over: a paused consumer holds the backend.
    if (!this.#ended) this.#h2?.consumed(n);
  }

  #remoteEnd(): void {
    this.#remoteEnded = true;
    if (this.#held.length === 0) this.#settle(NGHTTP2_NO_ERROR, false);
  }

  #statusFromFields(fields: readonly string[]): void {
    const raw = field(fields, 'grpc-status');
    const code = raw === undefined ? Code.UNKNOWN : Number(raw);
    const details = raw === undefined ? 'backend sent no grpc-status' : decodeGrpcMessage(field(fields, 'grpc-message'));
    this.#status = { code: statusCode(code), details, trailers: fieldsToMetadata(fields, TRAILERS_NOT_METADATA) };
  }

  #attach(stream: ClientHttp2Stream, request: Buffer): void {
    if (this.#ended) {
      stream.close(NGHTTP2_CANCEL);
      return;
    }
    this.stream = stream;
    stream.on('error', () => {}); // reported through 'close' and rstCode
    stream.on('response', (headers, flags) => this.#onResponse(headers, flags));
    stream.on('trailers', (trailers) => this.#onStatusHeaders(trailers));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    // Captured now: node:http2 clears stream.session when it destroys the stream, which would make every reset look
    // like a lost connection.
    const session = stream.session;
    stream.on('close', () => this.#onClose(stream, session));
    stream.end(encodeFrame(request));
  }

  #onResponse(headers: IncomingHttpHeaders, flags: number): void {
    const status = Number(headers[':status']);
    if (status !== 200) {
      const text = `backend answered HTTP ${status} instead of gRPC`;
      this.#status = { code: codeFromHttpStatus(status), details: headers['grpc-message'] ? decodeGrpcMessage(String(headers['grpc-message'])) : text, trailers: new grpc.Metadata() };
      return;
    }
    if (flags & NGHTTP2_FLAG_END_STREAM || headers['grpc-status'] !== undefined) {
      this.#onStatusHeaders(headers); // Trailers-Only
      return;
    }
    this.#headers = headersToMetadata(headers, RESPONSE_HEADERS_NOT_METADATA);
    this.#sink.headers(this.#headers);
  }

  #onStatusHeaders(trailers: IncomingHttpHeaders): void {
    const raw = trailers['grpc-status'];
    const code = raw === undefined ? Code.UNKNOWN : Number(raw);
    const md = headersToMetadata(trailers, TRAILERS_NOT_METADATA);
    const details = raw === undefined ? 'backend sent no grpc-status' : decodeGrpcMessage(trailers['grpc-message'] as string | undefined);
    this.#status = { code: statusCode(code), details, trailers: md };
  }

  #onData(chunk: Buffer): void {
    if (this.#ended) return;
    let messages: Buffer[];
    try {
      messages = this.#decoder.push(chunk);
    } catch (err) {
      this.stream?.close(NGHTTP2_CANCEL);
      this.#h2?.reset(ErrorCode.CANCEL);
      this.#finish(err as CallError);
      return;
    }
    for (const m of messages) this.#sink.message(m);
  }

  #onClose(stream: ClientHttp2Stream, session: ClientHttp2Stream['session']): void {
    this.#settle(stream.rstCode ?? NGHTTP2_NO_ERROR, session === undefined || session.destroyed);
  }

  /** The stream is over: its status if one came, else what its reset code (or the lost connection) says. */
  #settle(rst: number, lost: boolean): void {
    if (this.#ended) return;
    const status = this.#status;
    if (status) {
      if (status.code === Code.OK && this.#decoder.pending > 0) {
        return this.#finish(new CallError(Code.INTERNAL, 'backend ended the stream inside a message', status.trailers));
      }
      const err = status.code === Code.OK ? undefined : new CallError(status.code, status.details, status.trailers);
      return this.#finish(err, status.trailers);
    }
    if (rst === NGHTTP2_REFUSED_STREAM) {
      // Refused streams (also those above a GOAWAY's last stream id) were not processed: retry elsewhere is safe.
      return this.#finish(new CallError(Code.UNAVAILABLE, `${this.#endpointName()} refused the stream`, undefined, true));
    }
    // Before the reset code: node:http2 reports streams of a destroyed session as CANCEL, which the backend never sent.
    if (lost) return this.#finish(new CallError(Code.UNAVAILABLE, `connection to ${this.#endpointName()} lost`));
    if (rst === NGHTTP2_CANCEL) return this.#finish(new CallError(Code.CANCELLED, `${this.#endpointName()} cancelled the stream`));
    if (rst === NGHTTP2_ENHANCE_YOUR_CALM) return this.#finish(new CallError(Code.RESOURCE_EXHAUSTED, 'backend asked us to slow down (ENHANCE_YOUR_CALM)'));
    if (rst === NGHTTP2_INADEQUATE_SECURITY) return this.#finish(new CallError(Code.PERMISSION_DENIED, 'backend rejected the connection security'));
    this.#finish(new CallError(rst === NGHTTP2_NO_ERROR ? Code.UNAVAILABLE : Code.INTERNAL,
      `${this.#endpointName()} closed the stream without a status (HTTP/2 code ${rst})`));
  }

  #endpointName(): string {
    return this.#endpoint;
  }

  #finish(err: CallError | undefined, trailers = new grpc.Metadata()): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#sink.end(err, err ? err.metadata : trailers);
  }
}

/** One try of a streaming call: the endpoint's pool and the report of how the try ended (balancer bookkeeping). */
export type StreamAttempt = (previous: CallError | undefined) => { pool: CallPool; done(err: CallError | undefined): void } | CallError;

/** Unary call: resolves with the one response message and both metadata sets; rejects with a CallError. */
export function h2Unary(pool: CallPool, path: string, request: Buffer, options: H2CallOptions, signal?: CancelToken): Promise<UnaryResult> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    let message: Buffer | undefined;
    let extra = false;
    const onAbort = (): void => call.cancel();
    const call = new H2Call(options, {
      headers: (md) => { headers = md; },
      message: (m) => {
        if (message !== undefined) extra = true;
        message = m;
      },
      end: (err, trailers) => {
        if (signal) signal.onAbort = undefined;
        if (err) return reject(err);
        if (message === undefined || extra) {
          return reject(new CallError(Code.UNIMPLEMENTED, `backend sent ${extra ? 'more than one message' : 'no message'} for a unary call`, trailers));
        }
        resolve({ message, headers, trailers });
      },
    });
    if (signal?.aborted) return reject(new CallError(Code.CANCELLED, 'cancelled'));
    if (signal) signal.onAbort = onAbort;
    call.start(pool, path, request, options);
  });
}

/**
 * Server-streaming call with the events of a grpc-js ClientReadableStream: 'metadata', 'data', then 'status' and
 * either 'end' (OK) or 'error', then 'close'. pause() stops reading the HTTP/2 stream, so no WINDOW_UPDATE goes
 * out and the backend stops within one flow-control window.
 */
export class H2ServerStream extends EventEmitter implements ServerStreamCall {
  #call: H2Call | undefined;
  #paused = false;
  #cancelled = false;
  #path: string;
  #request: Buffer;
  #options: H2CallOptions;
  #attempt: StreamAttempt;

  /**
   * `attempt(previous)` names the endpoint of each try: called once, and again only after a retryable failure
   * before anything was delivered; it returns a CallError when no (other) endpoint is left.
   */
  constructor(attempt: StreamAttempt, path: string, request: Buffer, options: H2CallOptions) {
    super();
    this.#attempt = attempt;
    this.#path = path;
    this.#request = request;
    this.#options = options;
    // Listeners are attached by the caller after construction: start on the next tick.
    process.nextTick(() => this.#try(undefined));
  }

  #try(previous: CallError | undefined): void {
    if (this.#cancelled) return;
    const target = this.#attempt(previous);
    if (target instanceof CallError) return this.#end(target, target.metadata);
    let delivered = false;
    const call = new H2Call(this.#options, {
      headers: (md) => {
        delivered = true;
        this.emit('metadata', md);
      },
      message: (m) => {
        delivered = true;
        this.emit('data', m);
      },
      end: (err, trailers) => {
        target.done(err);
        if (err?.retryable && !delivered && !this.#cancelled) return this.#try(err);
        this.#end(err, trailers);
      },
    });
    this.#call = call;
    call.start(target.pool, this.#path, this.#request, this.#options);
    if (this.#paused) call.pause();
  }

  #end(err: CallError | undefined, trailers: grpc.Metadata): void {
    this.emit('status', { code: err?.code ?? Code.OK, details: err?.details ?? 'OK', metadata: trailers });
    if (err) this.emit('error', err);
    else this.emit('end');
    this.emit('close');
  }

  pause(): this {
    this.#paused = true;
    this.#call?.pause();
    return this;
  }

  resume(): this {
    this.#paused = false;
    this.#call?.resume();
    return this;
  }

  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    if (this.#call) this.#call.cancel();
    else process.nextTick(() => this.#end(new CallError(Code.CANCELLED, 'cancelled'), new grpc.Metadata()));
  }
}
