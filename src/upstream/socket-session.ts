/**
 * One pooled connection to one upstream endpoint on protogate's own HTTP/2 client (h2/connection.ts) instead of
 * node:http2: the session behind `transport: 'socket'`. Same state machine and timers as http2-session.ts (read
 * that file's header), so the pool, the balancer and the backoff treat both kinds alike:
 *
 *   connecting ──peer's first SETTINGS──▶ ready ──GOAWAY received / ids exhausted / idle timeout / drain()──▶ draining
 *       │                                   │                                                                   │
 *       │ socket error or close,            │ socket error or close, keepalive ping timeout,                    │ last
 *       │ connect timeout, drain()          │ HTTP/2 connection error                                           │ stream ends
 *       ▼                                   ▼                                                                   ▼
 *     closed ◀───────────────────────────── closed ◀───────────────────────────────────────────────────────── closed
 *
 * Why a second client exists at all: node:http2 makes every received header name and value an external string,
 * which V8 always allocates in old space; at a few thousand calls per second that alone runs a Mark-Compact every
 * few seconds, and those pauses set a REST gateway's p99 (BENCHMARKS.md, sessions 5 and 6).
 */
import type { Socket } from 'node:net';
import type { OutgoingHttpHeaders } from 'node:http2';
import { ErrorCode, H2Connection, type H2Stream, type H2StreamError, type StreamHandlers } from './h2/connection.ts';
import { Http2Pool } from './http2-pool.ts';
import type { Http2PoolOptions, PoolSession, PoolSessionEvents } from './http2-pool.ts';
import { NOT_H2_HINT, RequestRefused, SessionTimers, closedBeforeSettings, connectTimeout, describeConnectError, openUpstreamSocket, splitHostPort } from './http2-session.ts';
import type { Http2SessionSettings, Http2SessionState } from './http2-session.ts';

export interface SocketRequestOptions {
  /** Where the stream's headers, data and errors go; fixed when the stream opens (the first frame may follow at once). */
  handlers: StreamHandlers;
}

/** How long a closed connection's socket may take to finish its GOAWAY and FIN before it is destroyed. */
const LINGER_MS = 1000;

export class SocketUpstreamSession implements PoolSession<H2Stream, SocketRequestOptions> {
  readonly endpoint: string;
  #state: Http2SessionState = 'connecting';
  readonly #socket: Socket;
  readonly #conn: H2Connection;
  readonly #settings: Http2SessionSettings;
  readonly #events: PoolSessionEvents<H2Stream, SocketRequestOptions>;
  #handshakeDone = false;
  #error: Error | undefined;
  readonly #timers: SessionTimers;
  #everReady = false;
  #busy = false;
  #streamsOpened = 0;

  constructor(endpoint: string, settings: Http2SessionSettings, events: PoolSessionEvents<H2Stream, SocketRequestOptions>) {
    this.endpoint = endpoint;
    this.#settings = settings;
    this.#events = events;
    this.#timers = new SessionTimers(settings, { ping: () => this.#ping(), idle: () => this.drain() });
    const { host, port } = splitHostPort(endpoint);
    const socket = openUpstreamSocket(host, port, settings.tls, () => {
      this.#handshakeDone = true;
      const alpn = (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol;
      if (alpn !== 'h2') this.#fail(new Error(`${endpoint} did not agree to HTTP/2 in the TLS handshake (ALPN: ${alpn || 'none'})`));
    });
    this.#socket = socket;
    // Small request frames must not wait for Nagle: one unary call is a HEADERS and a DATA frame each way.
    socket.setNoDelay(true);
    socket.on('error', (err) => this.#fail(this.#state === 'connecting' ? describeConnectError(err) : err));
    socket.on('close', () => this.#onClose());
    this.#timers.connecting(() => this.#fail(connectTimeout(endpoint, settings, socket, this.#handshakeDone)));
    const conn = new H2Connection(socket, {
      streamWindow: settings.initialWindowSize,
      connectionWindow: settings.connectionWindowSize,
      maxHeaderListSize: settings.maxHeaderListSize,
      maxStreamId: settings.maxStreamId,
    });
    this.#conn = conn;
    conn.ready.then(() => this.#onReady(), () => undefined); // a failed connection reports through onClose
    conn.onCapacity = () => this.#onCapacity();
    conn.onGoaway = () => this.drain();
    conn.onClose = (err) => this.#onConnectionClosed(err);
    // An idle pooled connection must not keep the process alive.
    socket.unref();
  }

  get state(): Http2SessionState {
    return this.#state;
  }

  get activeStreams(): number {
    return this.#conn.activeStreams;
  }

  get maxConcurrentStreams(): number {
    return this.#conn.maxConcurrentStreams;
  }

  get everReady(): boolean {
    return this.#everReady;
  }

  hasCapacity(): boolean {
    return this.#state === 'ready' && this.#conn.available;
  }

  open(headers: OutgoingHttpHeaders, options: SocketRequestOptions | undefined): H2Stream {
    // A programming error, not a session problem: thrown as RequestRefused so the pool fails this request alone
    // instead of offering it to the same session again.
    if (!options?.handlers) throw new RequestRefused(new Error('a socket-transport stream needs its handlers'), 'the socket session');
    if (!this.hasCapacity()) throw new Error(`session to ${this.endpoint} is ${this.#state}`);
    const list: Array<[string, string]> = [];
    for (const name in headers) {
      const v = headers[name];
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const one of v) list.push([name, one]);
      else list.push([name, typeof v === 'string' ? v : String(v)]);
    }
    let stream: H2Stream;
    try {
      stream = this.#conn.request(list, options.handlers);
    } catch (err) {
      this.drain();
      throw err;
    }
    this.#streamsOpened++;
    if (!this.#busy) this.#onBusy();
    // The last id went out: this connection finishes its streams and the pool opens a fresh one for the next.
    if (this.#conn.streamIdsExhausted) this.drain();
    return stream;
  }

  drain(): void {
    if (this.#state === 'closed' || this.#state === 'draining') return;
    if (this.#state === 'connecting') {
      this.destroy(new Error(`connect to ${this.endpoint} abandoned before SETTINGS (session drained)`));
      return;
    }
    this.#state = 'draining';
    // Held open until the GOAWAY exchange is over, even if nothing else keeps the process alive.
    this.#socket.ref();
    this.#timers.clear();
    this.#conn.close();
  }

  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    this.#fail(error ?? new Error(`connection to ${this.endpoint} closed`));
  }

  stats(): { state: Http2SessionState; activeStreams: number; maxConcurrentStreams: number; streamsOpened: number } {
    return { state: this.#state, activeStreams: this.activeStreams, maxConcurrentStreams: this.maxConcurrentStreams, streamsOpened: this.#streamsOpened };
  }

  #onReady(): void {
    if (this.#state !== 'connecting') return;
    this.#timers.ready();
    this.#state = 'ready';
    this.#everReady = true;
    this.#onIdle();
    this.#events.onCapacity(this);
  }

  #onCapacity(): void {
    if (this.#state === 'connecting') return; // the first SETTINGS: #onReady reports it
    if (this.#busy && this.#conn.activeStreams === 0) this.#onIdle();
    this.#events.onCapacity(this);
  }

  #onBusy(): void {
    this.#busy = true;
    this.#socket.ref();
    this.#timers.busy();
  }

  #onIdle(): void {
    this.#busy = false;
    if (this.#state !== 'ready') return;
    this.#socket.unref();
    this.#timers.idle();
  }

  #ping(): void {
    const timeout = setTimeout(() => {
      this.#fail(new Error(`keepalive ping to ${this.endpoint} not answered within ${this.#settings.keepaliveTimeoutMs} ms`));
    }, this.#settings.keepaliveTimeoutMs);
    timeout.unref();
    this.#conn.ping().then(() => clearTimeout(timeout), () => clearTimeout(timeout));
  }

  /**
   * The HTTP/2 connection ended: gracefully (our drain or the peer's GOAWAY, once the last stream ended) or not (a
   * protocol error, the socket failing). Its socket gets a moment to send the GOAWAY and FIN, then is destroyed.
   */
  #onConnectionClosed(err: H2StreamError): void {
    if (err.code !== ErrorCode.NO_ERROR) {
      const hint = this.#state === 'connecting' && err.code === ErrorCode.PROTOCOL_ERROR ? `: ${NOT_H2_HINT}` : '';
      this.#error ??= new Error(`connection to ${this.endpoint} failed: ${err.message}${hint}`);
    }
    const socket = this.#socket;
    if (!socket.destroyed) setTimeout(() => socket.destroy(), LINGER_MS).unref();
    this.#onClose();
  }

  #fail(error: Error): void {
    if (this.#state === 'closed') return;
    this.#error ??= error;
    this.#socket.destroy();
    this.#onClose();
  }

  #onClose(): void {
    if (this.#state === 'closed') return;
    const neverReady = this.#state === 'connecting';
    this.#state = 'closed';
    this.#timers.clear();
    this.#events.onClosed(this, this.#error ?? (neverReady ? closedBeforeSettings(this.endpoint, this.#handshakeDone) : undefined));
  }
}

/** A pool of SocketUpstreamSessions: what `transport: 'socket'` calls go through (h2-grpc-client.ts tells it apart by class). */
export class SocketPool extends Http2Pool<H2Stream, SocketRequestOptions> {
  constructor(endpoint: string, options: Omit<Http2PoolOptions<H2Stream, SocketRequestOptions>, 'createSession'> = {}) {
    super(endpoint, { ...options, createSession: (e, s, ev) => new SocketUpstreamSession(e, s, ev) });
  }
}
