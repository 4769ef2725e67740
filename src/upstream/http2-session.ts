/**
 * One pooled HTTP/2 client session to one upstream endpoint, and its lifecycle.
 *
 * State machine (the pool reads `state` and `hasCapacity()`; nothing else decides where a stream goes):
 *
 *   connecting ──first SETTINGS ('remoteSettings')──▶ ready ──GOAWAY received / stream ids exhausted──▶ draining
 *       │                                               │     / idle timeout / pool closing                 │
 *       │ socket error or close, connect timeout,       │ socket error or close, keepalive ping timeout     │ last open
 *       │ pool closing                                  │                                                   │ stream closes
 *       ▼                                               ▼                                                   ▼
 *     closed ◀──────────────────────────────────────── closed ◀────────────────────────────────────────── closed
 *
 * - Streams are opened only in `ready`: a stream opened before the peer's SETTINGS is refused (REFUSED_STREAM) beyond
 *   its MAX_CONCURRENT_STREAMS, and we would not know that limit yet.
 * - The connect timer runs from the first line of the constructor until SETTINGS: TCP connect, TLS handshake and the
 *   wait for a backend that accepted the connection but does not speak HTTP/2 all count against connectTimeoutMs.
 * - `draining` takes no new streams but lets the open ones finish: that is how a backend's graceful GOAWAY and our
 *   own shutdown stay invisible to in-flight calls. A `connecting` session has nothing to drain and closes at once.
 * - `closed` is final; the pool forgets the session and opens a new one when it needs capacity.
 * - The session owns its socket (`createConnection`) and reaches `closed` when the socket closes or when we give up
 *   on it, never by waiting for node:http2's 'close'. That event can fail to come: when a TLS 1.3 backend rejects
 *   our client certificate, its alert arrives after the handshake as a socket error; node:http2 marks the session
 *   destroyed, then waits for a write on the dead TLS socket that never completes, so it emits neither 'error' nor
 *   'close', and session.destroy() is a no-op from then on (Node 20). Destroying the socket ourselves is the only
 *   way out.
 */
import http2 from 'node:http2';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ClientHttp2Session, ClientHttp2Stream, ClientSessionRequestOptions, OutgoingHttpHeaders } from 'node:http2';
import type { SecureClientSessionOptions } from 'node:http2';
import { RENEW_EVERY, renewSessionTables } from './stream-tables.ts';
import type { PoolSession, PoolSessionEvents } from './http2-pool.ts';

export type Http2SessionState = 'connecting' | 'ready' | 'draining' | 'closed';

/** TLS towards an upstream. Without it the pool speaks h2c (prior knowledge, no upgrade). */
export interface Http2UpstreamTls {
  /** PEM CA bundle to verify the backend; default: Node's root store. */
  ca?: string | Buffer;
  /** PEM client certificate and key, for backends that require mTLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** SNI and certificate name to verify; default: the endpoint host. */
  serverName?: string;
  /** Default true. Turn off only for tests against self-signed backends without a CA at hand. */
  rejectUnauthorized?: boolean;
}

/** Fully resolved session settings (the pool fills in defaults; see Http2PoolOptions for their documentation). */
export interface Http2SessionSettings {
  tls: Http2UpstreamTls | undefined;
  connectTimeoutMs: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  keepalivePermitWithoutCalls: boolean;
  idleTimeoutMs: number;
  initialWindowSize: number;
  connectionWindowSize: number;
  maxSessionMemoryMb: number;
  maxHeaderListSize: number;
  /** Socket sessions only (node:http2 drains on ERR_HTTP2_OUT_OF_STREAMS). */
  maxStreamId: number | undefined;
}

export type Http2SessionEvents = PoolSessionEvents<ClientHttp2Stream, ClientSessionRequestOptions | undefined>;

export class Http2UpstreamSession implements PoolSession<ClientHttp2Stream, ClientSessionRequestOptions | undefined> {
  readonly endpoint: string;
  #state: Http2SessionState = 'connecting';
  #session: ClientHttp2Session;
  #socket: Socket;
  #handshakeDone = false;
  #settings: Http2SessionSettings;
  #events: Http2SessionEvents;
  #active = 0;
  #maxStreams = Number.POSITIVE_INFINITY;
  #streamsOpened = 0;
  #error: Error | undefined;
  #timers: SessionTimers;
  #goawayReceived = false;
  #everReady = false;

  constructor(endpoint: string, settings: Http2SessionSettings, events: Http2SessionEvents) {
    this.endpoint = endpoint;
    this.#settings = settings;
    this.#events = events;
    this.#timers = new SessionTimers(settings, { ping: () => this.#ping(), idle: () => this.drain() });
    const { host, port } = splitHostPort(endpoint);
    const tls = settings.tls;
    const authority = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const options: SecureClientSessionOptions = {
      settings: {
        initialWindowSize: settings.initialWindowSize,
        enablePush: false,
          maxHeaderListSize: settings.maxHeaderListSize,
      },
      // Node's 10 MB default makes a session refuse new streams (ENHANCE_YOUR_CALM) after one large write that has
      // not been flushed yet. Memory is bounded by flow control and pipe() backpressure instead, so the cap only
      // needs to stay out of the way.
      maxSessionMemory: settings.maxSessionMemoryMb,
      maxHeaderListPairs: 512,
    };
    // The same sockets http2.connect() would open, but ours: node:http2 only lends out a proxy that refuses destroy().
    const socket = openUpstreamSocket(host, port, tls, () => (this.#handshakeDone = true));
    this.#socket = socket;
    socket.on('error', (err) => this.#fail(this.#state === 'connecting' ? describeConnectError(err) : err));
    socket.on('close', () => this.#onClose());
    options.createConnection = () => socket;
    const session = http2.connect(authority, options);
    this.#session = session;
    this.#timers.connecting(() => this.#fail(connectTimeout(endpoint, settings, socket, this.#handshakeDone)));
    session.on('remoteSettings', (remote) => this.#onRemoteSettings(remote.maxConcurrentStreams));
    session.on('goaway', () => {
      // Node itself closes the session after a NO_ERROR GOAWAY (open streams continue) and destroys it after an
      // error GOAWAY; either way no new stream may go here.
      this.#goawayReceived = true;
      this.drain();
    });
    session.on('error', (err) => this.#fail(err));
    session.on('close', () => this.#onClose());
    // Keep the process alive only while streams are open; an idle pooled session must not block exit.
    session.unref();
  }

  get state(): Http2SessionState {
    return this.#state;
  }

  get activeStreams(): number {
    return this.#active;
  }

  get maxConcurrentStreams(): number {
    return this.#maxStreams;
  }

  /** The session reached `ready` at some point (tells a dead connection from a failed connect). */
  get everReady(): boolean {
    return this.#everReady;
  }

  get goawayReceived(): boolean {
    return this.#goawayReceived;
  }

  hasCapacity(): boolean {
    return this.#state === 'ready' && this.#active < this.#maxStreams;
  }

  /** Opens a stream. Throws when the session cannot take it (the pool then drains it and tries another). */
  open(headers: OutgoingHttpHeaders, options: ClientSessionRequestOptions | undefined): ClientHttp2Stream {
    if (!this.hasCapacity()) throw new Error(`session to ${this.endpoint} is ${this.#state}`);
    let stream: ClientHttp2Stream;
    try {
      stream = this.#session.request(headers, options);
    } catch (err) {
      // node:http2 also throws for a request it will not send (a connection-specific header, a bad value): that is
      // this request's fault, and the session is as good as before.
      if (!SESSION_ERRORS.has((err as NodeJS.ErrnoException).code ?? '') && !this.#session.destroyed && !this.#session.closed) {
        throw new RequestRefused(err as Error);
      }
      // ERR_HTTP2_OUT_OF_STREAMS after 2^31 stream ids, or the session went away between checks.
      this.drain();
      throw err;
    }
    this.#active++;
    this.#streamsOpened++;
    if (this.#streamsOpened % RENEW_EVERY === 0) renewSessionTables(this.#session);
    if (this.#active === 1) this.#onBusy();
    stream.once('close', () => {
      this.#active--;
      if (this.#active === 0) this.#onIdle();
      if (this.#state === 'draining' && this.#active === 0) this.#session.close();
      this.#events.onCapacity(this);
    });
    return stream;
  }

  /** Stop taking streams; close the connection once the open ones are done. */
  drain(): void {
    if (this.#state === 'closed' || this.#state === 'draining') return;
    // A graceful close of a half-open connection waits for the backend to answer our FIN, and one that never speaks
    // never will: with no stream to let finish, there is nothing to wait for.
    if (this.#state === 'connecting') {
      this.destroy(new Error(`connect to ${this.endpoint} abandoned before SETTINGS (session drained)`));
      return;
    }
    this.#state = 'draining';
    // An unref'd socket would let the process exit halfway through the GOAWAY exchange.
    this.#session.ref();
    this.#timers.clear();
    if (this.#active === 0) this.#session.close();
  }

  /** Close now; open streams fail. */
  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    if (error) this.#error ??= error;
    this.#teardown(error);
  }

  stats(): { state: Http2SessionState; activeStreams: number; maxConcurrentStreams: number; streamsOpened: number } {
    return {
      state: this.#state,
      activeStreams: this.#active,
      maxConcurrentStreams: this.#maxStreams,
      streamsOpened: this.#streamsOpened,
    };
  }

  #onRemoteSettings(maxConcurrentStreams: number | undefined): void {
    // Absent means "no limit" (RFC 9113 §6.5.2); a peer may change it at any time.
    this.#maxStreams = maxConcurrentStreams ?? Number.POSITIVE_INFINITY;
    if (this.#state === 'connecting') {
      this.#timers.ready();
      this.#state = 'ready';
      this.#everReady = true;
      // The connection window is a session-level setting with no SETTINGS entry: it has to be raised explicitly.
      if (this.#settings.connectionWindowSize > 65_535) {
        this.#session.setLocalWindowSize(this.#settings.connectionWindowSize);
      }
      this.#onIdle();
    }
    this.#events.onCapacity(this);
  }

  #onBusy(): void {
    this.#session.ref();
    this.#timers.busy();
  }

  #onIdle(): void {
    if (this.#state !== 'ready') return;
    this.#session.unref();
    this.#timers.idle();
  }

  #ping(): void {
    if (this.#session.destroyed) return;
    const timeout = setTimeout(() => {
      this.#fail(new Error(`keepalive ping to ${this.endpoint} not answered within ${this.#settings.keepaliveTimeoutMs} ms`));
    }, this.#settings.keepaliveTimeoutMs);
    timeout.unref();
    try {
      this.#session.ping((err) => {
        clearTimeout(timeout);
        if (err && !this.#session.destroyed) this.#fail(err);
      });
    } catch (err) {
      clearTimeout(timeout);
      this.#fail(err as Error);
    }
  }

  #fail(error: Error): void {
    if (this.#state === 'closed') return;
    this.#error ??= error;
    this.#teardown(error);
  }

  /** Ends the session now, without relying on node:http2 to ever report it closed (see the top of this file). */
  #teardown(error: Error | undefined): void {
    // session.destroy() first, so that open streams fail with `error` rather than with the socket's own.
    if (!this.#session.destroyed) this.#session.destroy(error);
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

/**
 * A pooled session's idle and keepalive timers, for both session kinds. Keepalive PINGs run while streams are open
 * (gRPC core: GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS=0), or always with keepalivePermitWithoutCalls; a session
 * without streams for idleTimeoutMs is told to go (`idle`).
 */
export class SessionTimers {
  readonly #settings: Http2SessionSettings;
  readonly #on: { ping(): void; idle(): void };
  #keepalive: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;
  #connect: NodeJS.Timeout | undefined;

  constructor(settings: Http2SessionSettings, on: { ping(): void; idle(): void }) {
    this.#settings = settings;
    this.#on = on;
  }

  /**
   * Runs from the first line of a session's constructor until its first SETTINGS (`ready()`): TCP connect, the TLS
   * handshake and the wait for a backend that accepted the connection but does not speak HTTP/2 all count.
   */
  connecting(onTimeout: () => void): void {
    this.#connect = setTimeout(onTimeout, this.#settings.connectTimeoutMs);
  }

  ready(): void {
    clearTimeout(this.#connect);
    this.#connect = undefined;
  }

  /** The first stream opened. */
  busy(): void {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    if (!this.#settings.keepalivePermitWithoutCalls) this.#startKeepalive();
  }

  /** Ready with no stream open. */
  idle(): void {
    if (!this.#settings.keepalivePermitWithoutCalls) this.#stopKeepalive();
    else this.#startKeepalive();
    if (this.#settings.idleTimeoutMs > 0) {
      clearTimeout(this.#idle);
      this.#idle = setTimeout(() => this.#on.idle(), this.#settings.idleTimeoutMs);
      this.#idle.unref();
    }
  }

  clear(): void {
    this.ready();
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#stopKeepalive();
  }

  #startKeepalive(): void {
    if (this.#keepalive || this.#settings.keepaliveTimeMs <= 0) return;
    this.#keepalive = setInterval(() => this.#on.ping(), this.#settings.keepaliveTimeMs);
    this.#keepalive.unref();
  }

  #stopKeepalive(): void {
    clearInterval(this.#keepalive);
    this.#keepalive = undefined;
  }
}

/**
 * Why a connection that closed before the backend's first SETTINGS failed, when no error said so. TLS 1.3 finishes
 * the client's handshake before the server has checked our certificate: a backend that rejects it without an alert
 * just hangs up then.
 */
export function closedBeforeSettings(endpoint: string, handshakeDone: boolean): Error {
  const hint = handshakeDone ? ' after the TLS handshake (did it reject our client certificate?)' : '';
  return new Error(`connection to ${endpoint} closed by the backend before SETTINGS${hint}`);
}

/** What a backend that does not answer in HTTP/2 most likely is, for the error both session kinds report. */
export const NOT_H2_HINT = 'is this its gRPC port, and does it accept HTTP/2 without TLS (h2c)?';

/** The connect timer fired: which phase the connection was stuck in (TCP, TLS, or the wait for SETTINGS). */
export function connectTimeout(endpoint: string, settings: Http2SessionSettings, socket: Socket, handshakeDone: boolean): Error {
  const phase = socket.connecting ? 'TCP connect' : settings.tls && !handshakeDone ? 'TLS handshake' : "the backend's HTTP/2 SETTINGS";
  return new Error(`connect to ${endpoint} timed out after ${settings.connectTimeoutMs} ms waiting for ${phase}`);
}

/** TCP, or TLS offering ALPN h2, to an upstream; `onHandshake` runs when TLS is established. */
export function openUpstreamSocket(host: string, port: number, tls: Http2UpstreamTls | undefined, onHandshake: () => void): Socket {
  if (!tls) return netConnect({ host, port });
  const tlsSocket = tlsConnect({
    host,
    port,
    ALPNProtocols: ['h2'],
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    servername: tls.serverName ?? (isIp(host) ? undefined : host),
    rejectUnauthorized: tls.rejectUnauthorized ?? true,
  });
  tlsSocket.once('secureConnect', onHandshake);
  return tlsSocket;
}

/**
 * A TLS alert from the backend, in words an operator can act on instead of OpenSSL's ("ssl3_read_bytes:tlsv13 alert
 * certificate required:../deps/openssl/..."); the original stays as `cause`. Only alerts (and node:http2's bare
 * "Protocol error" for a peer that is not an HTTP/2 server) are rewritten: they are the backend refusing us, while
 * errors of our own verification already read well.
 */
export function describeConnectError(err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  // nghttp2's whole verdict on a peer that is not an HTTP/2 server (an HTTP/1 port answering our preface), raised on
  // the socket before SETTINGS: say what it most likely means.
  if (code === 'ERR_HTTP2_ERROR') return new Error(`the backend did not answer in HTTP/2 (${err.message}): ${NOT_H2_HINT}`, { cause: err });
  const alert = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)$/.exec(code)?.[1]?.toLowerCase();
  if (!alert) return err;
  const hints: Record<string, string> = {
    certificate_required: 'it requires a client certificate and we sent none',
    bad_certificate: 'it did not accept our client certificate',
    unknown_ca: 'it does not trust the CA of our client certificate',
    certificate_unknown: 'it did not accept our client certificate',
    certificate_expired: 'it says our client certificate has expired',
    handshake_failure: 'no protocol version or cipher in common, or a client certificate it wanted',
  };
  const hint = hints[alert];
  return new Error(`TLS: the backend rejected the connection (alert ${alert}${hint ? `: ${hint}` : ''})`, { cause: err });
}

/** node:http2 errors of request() that mean the session can take no more streams (others are about the request). */
const SESSION_ERRORS = new Set(['ERR_HTTP2_OUT_OF_STREAMS', 'ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION']);

/** open() refused this request itself (its headers or options), on a session that is still fine. */
export class RequestRefused extends Error {
  constructor(cause: Error, by = 'node:http2') {
    super(`${by} refused the request: ${cause.message}`, { cause });
  }
}

export function splitHostPort(endpoint: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(endpoint) ?? /^([^:]+):(\d+)$/.exec(endpoint);
  if (!m) throw new Error(`endpoint "${endpoint}" is not host:port`);
  return { host: m[1], port: Number(m[2]) };
}

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}
