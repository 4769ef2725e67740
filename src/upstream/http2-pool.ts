/**
 * Pooled HTTP/2 client sessions to ONE upstream endpoint ("host:port").
 *
 * `request(headers)` hands out a stream on a ready session with room under the backend's MAX_CONCURRENT_STREAMS;
 * when every session is full it opens another (up to `maxSessions`), and queues the request meanwhile. Unlike
 * grpc-js, which queues calls on one connection when the backend's limit is reached, this spreads them over
 * sessions. Load balancing across endpoints, health and resolution live above this class: it never picks
 * endpoints and never retries on its own.
 *
 * The streams it returns are plain node:http2 ClientHttp2Streams: callers pipe them and own their lifecycle.
 *
 * Connectivity (what the balancer reads through `connectivity` and `onStateChange`; gRPC's subchannel states):
 *
 *   idle ──request()──▶ connecting ──SETTINGS──▶ ready ──last session closes cleanly (GOAWAY, idle)──▶ idle
 *                          │                       │
 *                          │ connect fails         │ last session dies abnormally: one immediate reconnect
 *                          ▼                       ▼
 *                   transient_failure ◀── that reconnect fails
 *                          │ backoff timer (initial × multiplier^n, ±jitter, capped) fires
 *                          └──────────▶ connecting (proactive: a restarted backend gets traffic without a request)
 *
 * Balancers give no calls to a pool in transient_failure; a request() that comes anyway connects at once (gRPC's
 * "request connection" overrides the backoff) and fails with UNAVAILABLE if that fails too. A reconnect that reaches `ready` resets the backoff. Extra sessions opened under load close after
 * `idleTimeoutMs` without streams.
 */
import type { ClientHttp2Stream, ClientSessionRequestOptions, OutgoingHttpHeaders } from 'node:http2';
import { Code, GatewayError } from '../errors/index.ts';
import { Http2UpstreamSession, RequestRefused } from './http2-session.ts';
import type { Http2SessionEvents, Http2SessionSettings, Http2SessionState, Http2UpstreamTls } from './http2-session.ts';

/**
 * What the pool needs of a session: the node:http2 one (http2-session.ts, streams are ClientHttp2Streams) or the
 * in-house one (socket-session.ts, streams are H2Streams). Both follow the state machine in http2-session.ts.
 */
export interface PoolSession<S, O> {
  readonly state: Http2SessionState;
  readonly activeStreams: number;
  readonly maxConcurrentStreams: number;
  readonly everReady: boolean;
  hasCapacity(): boolean;
  /** Throws RequestRefused for a request that no session would take; anything else drains the session. */
  open(headers: OutgoingHttpHeaders, options: O | undefined): S;
  drain(): void;
  destroy(error?: Error): void;
  stats(): { state: Http2SessionState; activeStreams: number; maxConcurrentStreams: number; streamsOpened: number };
}

export interface PoolSessionEvents<S, O> {
  /** Capacity may have appeared: the session became ready, a stream closed, or the peer raised its limit. */
  onCapacity(session: PoolSession<S, O>): void;
  /** The session reached `closed`. `error` is set when it never became ready or died abnormally. */
  onClosed(session: PoolSession<S, O>, error: Error | undefined): void;
}

export type SessionFactory<S, O> = (endpoint: string, settings: Http2SessionSettings, events: PoolSessionEvents<S, O>) => PoolSession<S, O>;

export type { Http2UpstreamTls, Http2SessionState } from './http2-session.ts';
export { splitHostPort } from './http2-session.ts';

export interface Http2PoolOptions<S = ClientHttp2Stream, O = ClientSessionRequestOptions> {
  /** The session kind; default node:http2 (Http2UpstreamSession). */
  createSession?: SessionFactory<S, O>;
  /** TLS (with ALPN h2) towards the endpoint; default: h2c with prior knowledge. */
  tls?: Http2UpstreamTls;
  /** Time allowed for TCP + TLS + the backend's first SETTINGS frame. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * Interval between keepalive PINGs; 0 disables. Default 300000 ms (5 min), the smallest interval gRPC servers
   * accept by default without a "too_many_pings" GOAWAY. gRPC core: GRPC_ARG_KEEPALIVE_TIME_MS.
   */
  keepaliveTimeMs?: number;
  /** A PING unanswered this long kills the session. Default 20000 ms. gRPC core: GRPC_ARG_KEEPALIVE_TIMEOUT_MS. */
  keepaliveTimeoutMs?: number;
  /** Also ping sessions without open streams. Default false. gRPC core: GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS. */
  keepalivePermitWithoutCalls?: boolean;
  /** A session without streams for this long is closed; 0 keeps it. Default 300000 ms. gRPC core: GRPC_ARG_CLIENT_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). Default 1 MiB; Node's 64 KiB costs ~30% throughput. */
  initialWindowSize?: number;
  /** Connection-level receive window, raised with setLocalWindowSize() once connected. Default 4 MiB. */
  connectionWindowSize?: number;
  /** Node's maxSessionMemory in MB. Default 1024: backpressure, not this cap, bounds memory (see http2-session.ts). */
  maxSessionMemoryMb?: number;
  /** Largest response header/trailer block accepted from the backend (SETTINGS_MAX_HEADER_LIST_SIZE). Default 64 KiB. */
  maxHeaderListSize?: number;
  /** The last stream id a socket-transport connection uses before it is replaced. Default 2^31 - 1; for tests. */
  maxStreamId?: number;
  /** Sessions this pool may hold open at once (including draining ones). Default 16. */
  maxSessions?: number;
  /** Reconnect backoff after a failed connect (gRPC connection-backoff.md: 1 s, ×1.6, ±20% jitter, max 120 s). */
  reconnectBackoff?: { initialMs?: number; multiplier?: number; jitter?: number; maxMs?: number };
  /** Told about every connectivity change (balancers rebuild their picker from it). */
  onStateChange?: (pool: Http2Pool<S, O>, state: PoolConnectivity) => void;
}

export type PoolConnectivity = 'idle' | 'connecting' | 'ready' | 'transient_failure';

export type Http2RequestOptions<O = ClientSessionRequestOptions> = O & QueueOptions;

interface QueueOptions {
  /** Aborting removes a queued request (the promise rejects with CANCELLED); it does not touch an opened stream. */
  signal?: AbortSignal;
  /** The cheap alternative to `signal` for per-call hot paths. */
  cancel?: CancelToken;
}

export interface Http2PoolStats {
  endpoint: string;
  sessions: Array<{ state: Http2SessionState; activeStreams: number; maxConcurrentStreams: number; streamsOpened: number }>;
  queued: number;
  sessionsOpened: number;
  connectivity: PoolConnectivity;
  connectFailures: number;
}

interface Waiter<S, O> {
  headers: OutgoingHttpHeaders;
  options: O | undefined;
  resolve(stream: S): void;
  reject(err: Error): void;
  cleanup(): void;
}

export const HTTP2_POOL_DEFAULTS = {
  connectTimeoutMs: 5_000,
  keepaliveTimeMs: 300_000,
  keepaliveTimeoutMs: 20_000,
  keepalivePermitWithoutCalls: false,
  idleTimeoutMs: 300_000,
  initialWindowSize: 1 << 20,
  connectionWindowSize: 4 << 20,
  maxSessionMemoryMb: 1024,
  maxHeaderListSize: 64 << 10,
  maxSessions: 16,
} as const;

export class Http2Pool<S = ClientHttp2Stream, O = ClientSessionRequestOptions> {
  readonly endpoint: string;
  #settings: Http2SessionSettings;
  #maxSessions: number;
  #createSession: SessionFactory<S, O>;
  #sessions = new Set<PoolSession<S, O>>();
  #queue: Array<Waiter<S, O>> = [];
  #closed = false;
  #sessionsOpened = 0;
  #closeWaiters: Array<() => void> = [];
  #backoff: { initialMs: number; multiplier: number; jitter: number; maxMs: number };
  #onStateChange: Http2PoolOptions<S, O>['onStateChange'];
  #connectivity: PoolConnectivity = 'idle';
  #connectFailures = 0;
  #nextBackoffMs: number;
  #retryTimer: NodeJS.Timeout | undefined;
  #lastError = '';

  constructor(endpoint: string, options: Http2PoolOptions<S, O> = {}) {
    this.endpoint = endpoint;
    this.#createSession = options.createSession
      // Without a factory S and O are node:http2's (the defaults); the compiler cannot see that through the generics.
      ?? ((e, s, ev) => new Http2UpstreamSession(e, s, ev as unknown as Http2SessionEvents) as unknown as PoolSession<S, O>);
    const d = HTTP2_POOL_DEFAULTS;
    this.#settings = {
      tls: options.tls,
      connectTimeoutMs: options.connectTimeoutMs ?? d.connectTimeoutMs,
      keepaliveTimeMs: options.keepaliveTimeMs ?? d.keepaliveTimeMs,
      keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? d.keepaliveTimeoutMs,
      keepalivePermitWithoutCalls: options.keepalivePermitWithoutCalls ?? d.keepalivePermitWithoutCalls,
      idleTimeoutMs: options.idleTimeoutMs ?? d.idleTimeoutMs,
      initialWindowSize: options.initialWindowSize ?? d.initialWindowSize,
      connectionWindowSize: options.connectionWindowSize ?? d.connectionWindowSize,
      maxSessionMemoryMb: options.maxSessionMemoryMb ?? d.maxSessionMemoryMb,
      maxHeaderListSize: options.maxHeaderListSize ?? d.maxHeaderListSize,
      maxStreamId: options.maxStreamId,
    };
    this.#maxSessions = options.maxSessions ?? d.maxSessions;
    const b = options.reconnectBackoff ?? {};
    this.#backoff = { initialMs: b.initialMs ?? 1000, multiplier: b.multiplier ?? 1.6, jitter: b.jitter ?? 0.2, maxMs: b.maxMs ?? 120_000 };
    this.#nextBackoffMs = this.#backoff.initialMs;
    this.#onStateChange = options.onStateChange;
  }

  get connectivity(): PoolConnectivity {
    return this.#connectivity;
  }

  /** Consecutive failed connection attempts (0 once a session reached ready). */
  get connectFailures(): number {
    return this.#connectFailures;
  }

  /** Sessions not yet closed. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Start connecting now (warm-up, or a balancer wanting the state of an idle endpoint). */
  connect(): void {
    if (this.#closed || this.#connectivity === 'transient_failure') return;
    if (this.#sessions.size === 0) this.#connect();
  }

  /**
   * Opens a stream to the endpoint. `headers` are sent as given (pseudo-headers included; `:authority` defaults to
   * the endpoint). Rejects with a GatewayError: UNAVAILABLE when no session could be established, CANCELLED when
   * `options.signal` aborts first.
   */
  request(headers: OutgoingHttpHeaders, options: Http2RequestOptions<O> = {} as Http2RequestOptions<O>): Promise<S> {
    const { signal, cancel, ...rest } = options;
    const requestOptions = rest as unknown as O;
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(new GatewayError(Code.UNAVAILABLE, `upstream pool for ${this.endpoint} is closed`));
        return;
      }
      if (signal?.aborted || cancel?.aborted) {
        reject(new GatewayError(Code.CANCELLED, 'request cancelled before it was sent upstream'));
        return;
      }
      const onAbort = (): void => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new GatewayError(Code.CANCELLED, 'request cancelled before it was sent upstream'));
      };
      const waiter: Waiter<S, O> = {
        headers,
        options: requestOptions,
        resolve,
        reject,
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort);
          if (cancel) cancel.onAbort = undefined;
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (cancel) cancel.onAbort = onAbort;
      this.#queue.push(waiter);
      this.#pump();
    });
  }

  /**
   * Opens a stream at once when a session has room and nobody is queued, else undefined (then use request()). The
   * common case without request()'s promise, queue entry and cancel hook: a unary call per REST request pays them.
   */
  tryOpen(headers: OutgoingHttpHeaders, options?: O): S | undefined {
    if (this.#closed || this.#queue.length > 0) return undefined;
    const session = this.#pick();
    if (!session) return undefined;
    try {
      return session.open(headers, options);
    } catch {
      return undefined; // request() will say what is wrong (a refused request, or a session that just drained)
    }
  }

  stats(): Http2PoolStats {
    return {
      endpoint: this.endpoint,
      sessions: [...this.#sessions].map((s) => s.stats()),
      queued: this.#queue.length,
      sessionsOpened: this.#sessionsOpened,
      connectivity: this.#connectivity,
      connectFailures: this.#connectFailures,
    };
  }

  /**
   * Stops taking requests, lets open streams finish for `graceMs` (default 0: close now), then destroys what is left.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    for (const w of this.#queue.splice(0)) {
      w.cleanup();
      w.reject(new GatewayError(Code.UNAVAILABLE, `upstream pool for ${this.endpoint} is closing`));
    }
    if (this.#sessions.size === 0) return;
    const done = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    for (const s of this.#sessions) s.drain();
    const grace = options.graceMs ?? 0;
    const timer = setTimeout(() => {
      for (const s of this.#sessions) s.destroy();
    }, grace);
    await done;
    clearTimeout(timer);
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const session = this.#pick();
      if (!session) {
        if (this.#shouldConnect()) this.#connect();
        return;
      }
      const waiter = this.#queue.shift()!;
      let stream: S;
      try {
        stream = session.open(waiter.headers, waiter.options);
      } catch (err) {
        if (err instanceof RequestRefused) {
          // Another session would refuse it too: fail this request alone (no drain, no reconnect loop).
          waiter.cleanup();
          waiter.reject(new GatewayError(Code.INTERNAL, err.message, { cause: err }));
          continue;
        }
        // The session drained itself (ids exhausted or going away): the waiter goes back for another session,
        // still cancellable (its abort listener stays until it leaves the queue for good).
        this.#queue.unshift(waiter);
        continue;
      }
      waiter.cleanup();
      waiter.resolve(stream);
    }
  }

  /** The ready session with the most free slots keeps streams packed on few connections but not on a full one. */
  #pick(): PoolSession<S, O> | undefined {
    let best: PoolSession<S, O> | undefined;
    for (const s of this.#sessions) {
      if (!s.hasCapacity()) continue;
      if (!best || s.maxConcurrentStreams - s.activeStreams > best.maxConcurrentStreams - best.activeStreams) best = s;
    }
    return best;
  }

  /** One connection attempt at a time: its SETTINGS tell us how many streams it takes before we open more. */
  #shouldConnect(): boolean {
    let live = 0;
    for (const s of this.#sessions) {
      if (s.state === 'connecting') return false;
      if (s.state !== 'closed') live++;
    }
    return live < this.#maxSessions;
  }

  #connect(): void {
    this.#sessionsOpened++;
    const session = this.#createSession(this.endpoint, this.#settings, {
      onCapacity: (s) => {
        if (s.state === 'ready' && this.#connectFailures > 0) {
          this.#connectFailures = 0;
          this.#nextBackoffMs = this.#backoff.initialMs;
        }
        this.#updateConnectivity();
        this.#pump();
      },
      onClosed: (s, error) => this.#onSessionClosed(s, error),
    });
    this.#sessions.add(session);
    this.#updateConnectivity();
  }

  #onSessionClosed(session: PoolSession<S, O>, error: Error | undefined): void {
    const wasReady = session.everReady;
    this.#sessions.delete(session);
    if (this.#closed) {
      if (this.#sessions.size === 0) for (const resolve of this.#closeWaiters.splice(0)) resolve();
      return;
    }
    const othersUsable = [...this.#sessions].some((s) => s.state === 'ready' || s.state === 'connecting');
    if (error && !othersUsable && (!wasReady || this.#queue.length > 0)) {
      // The endpoint is unreachable (or a connection died with requests waiting): fail them fast, retry the
      // connection after a backoff. A working connection that died with nothing waiting just goes idle: the next
      // request tells a restart apart from an outage.
      this.#lastError = error.message || String(error);
      this.#connectFailures++;
      for (const w of this.#queue.splice(0)) {
        w.cleanup();
        w.reject(new GatewayError(Code.UNAVAILABLE, `cannot reach ${this.endpoint}: ${this.#lastError}`, { cause: error }));
      }
      this.#scheduleReconnect();
      this.#updateConnectivity();
      return;
    }
    this.#updateConnectivity();
    this.#pump();
  }

  #scheduleReconnect(): void {
    const b = this.#backoff;
    const delay = this.#nextBackoffMs * (1 + b.jitter * (Math.random() * 2 - 1));
    this.#nextBackoffMs = Math.min(b.maxMs, this.#nextBackoffMs * b.multiplier);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#closed) return;
      this.#connect();
    }, Math.max(0, delay));
    this.#retryTimer.unref();
  }

  #updateConnectivity(): void {
    // Runs after every stream (onCapacity): a loop, not arrays of states, to leave no garbage per call.
    let ready = false;
    let connecting = false;
    for (const s of this.#sessions) {
      if (s.state === 'ready') ready = true;
      else if (s.state === 'connecting') connecting = true;
    }
    const next: PoolConnectivity = ready ? 'ready' : this.#retryTimer ? 'transient_failure' : connecting ? 'connecting' : 'idle';
    if (next === this.#connectivity) return;
    this.#connectivity = next;
    this.#onStateChange?.(this, next);
  }
}

/**
 * A cancellation flag with at most one listener: what a call needs from AbortSignal, without EventTarget, whose
 * cost showed up in the REST path's profile (two AbortControllers and three listeners per request).
 */
export interface CancelToken {
  aborted: boolean;
  onAbort: (() => void) | undefined;
}

export function cancelToken(): CancelToken {
  return { aborted: false, onAbort: undefined };
}

/** Marks the token aborted and runs its listener once. */
export function abortToken(token: CancelToken): void {
  if (token.aborted) return;
  token.aborted = true;
  const fn = token.onAbort;
  token.onAbort = undefined;
  fn?.();
}
