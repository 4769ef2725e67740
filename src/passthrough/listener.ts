/**
 * The raw gRPC port: accepts HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2) and forwards each stream to
 * the backend owning its service, without decoding anything.
 *
 * h2c: node:http2 cannot answer HTTP/1 on a cleartext port (it replies GOAWAY to the bad preface), so a plain
 * net.Server looks at the first bytes: the HTTP/2 preface goes on to the http2 server, anything else gets an
 * HTTP/1.1 426 and is closed. TLS: ALPN selects h2; a client offering only http/1.1 gets a TLS alert
 * (no_application_protocol), one without ALPN gets the same 426 on the TLS socket.
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Http2SecureServer, Http2Server, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { Code, type GatewayError } from '../errors/index.ts';
import { accessLogLine, requestId } from '../observability/access-log.ts';
import type { GrpcMethodMetrics, Metrics } from '../observability/metrics.ts';
import type { GrpcSpan } from '../observability/tracing.ts';
import { BackendRouter } from './backends.ts';
import { StreamForwarder } from './forward.ts';
import type { CallRecord, ForwardContext } from './forward.ts';
import { isGrpcContentType, serviceFromPath, trailersOnlyHeaders } from './grpc-wire.ts';
import { DEFAULT_CLOSE_GRACE_MS, resolveLimits } from './options.ts';
import type { PassthroughOptions, PassthroughStats, ResolvedLimits } from './options.ts';
import { ClientSessionGuard } from './session-guard.ts';
import { grpcHookRequest } from './hook.ts';
import { settleHook } from '../config/hooks.ts';
import { rateLimiter } from './rate-limit.ts';
import { ChurnSet, renewOnStreams } from '../upstream/stream-tables.ts';

export interface PassthroughServer {
  address: AddressInfo;
  /**
   * GOAWAY to every client, wait up to `graceMs` (default 10000) for open streams, then end the rest with
   * UNAVAILABLE. Called again while closing, a shorter `graceMs` (counted from that call) cuts sooner.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
  stats(): PassthroughStats;
  /** Replaces the TLS key and certificate for new connections (rotation); a no-op on an h2c listener. */
  setTls(pair: { cert: string | Buffer; key: string | Buffer }): void;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export async function startPassthrough(options: PassthroughOptions): Promise<PassthroughServer> {
  const limits = resolveLimits(options.limits);
  const logger = options.logger;
  const tracing = options.tracing;
  const hook = options.onRequest;
  const limit = options.rateLimit ? rateLimiter(options.rateLimit) : undefined;
  const backends = new BackendRouter(options.upstream);
  const sessions = new Set<ServerHttp2Session>();
  const pendingSockets = new Set<Socket>();
  const counters = { activeStreams: 0, streamsTotal: 0, streamResets: 0, calmGoaways: 0, rejected: 0 };
  const guards = new WeakMap<ServerHttp2Session, ClientSessionGuard>();

  const serverOptions: http2.ServerOptions = {
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderListSize,
      initialWindowSize: limits.initialWindowSize,
      enablePush: false,
    },
    maxHeaderListPairs: 512,
    // See PassthroughLimits.maxSessionMemoryMb: flow control bounds memory, this cap must not refuse streams.
    maxSessionMemory: limits.maxSessionMemoryMb,
  };
  const h2: Http2Server | Http2SecureServer = options.tls
    ? http2.createSecureServer({
        ...serverOptions,
        cert: options.tls.cert,
        key: options.tls.key,
        // node:http2 offers only h2 unless allowHTTP1 (which would run the HTTP/1 compat layer on every stream):
        // a client offering only http/1.1 gets a TLS no_application_protocol alert at once; one without ALPN
        // completes the handshake and reads our 426 ('unknownProtocol').
        ALPNProtocols: ['h2'],
        allowHTTP1: false,
        handshakeTimeout: limits.handshakeTimeoutMs,
      })
    : http2.createServer(serverOptions);

  h2.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    renewOnStreams(session);
    session.on('error', (err) => logger?.warn({ err: err.message }, 'passthrough: client connection error'));
    session.once('close', () => sessions.delete(session));
    session.once('connect', () => {
      if (limits.connectionWindowSize > 65_535 && !session.destroyed) session.setLocalWindowSize(limits.connectionWindowSize);
    });
    guards.set(session, new ClientSessionGuard(session, limits, logger, () => counters.calmGoaways++));
  });

  const lookupMetrics = options.metrics ? methodMetricsCache(options.metrics) : undefined;
  const opens = new OpenScheduler();
  /** Calls being forwarded, so the shutdown deadline can fail their backend streams. */
  const live = new ChurnSet<StreamForwarder<PassthroughCall>>();
  const forwardContext: ForwardContext<PassthroughCall> = {
    backends,
    logger,
    streamIdleTimeoutMs: limits.streamIdleTimeoutMs,
    cutError: undefined,
    onStreamClosed: (call, rstCode) => {
      if (call.forwarder) live.delete(call.forwarder);
      finish(call, rstCode);
    },
  };

  /** Accounting once per stream, however it ended: counters, the reset guard, metrics, the access log. */
  const finish = (call: PassthroughCall, rstCode: number): void => {
    counters.activeStreams--;
    if (rstCode !== http2.constants.NGHTTP2_NO_ERROR) counters.streamResets++;
    call.guard?.streamClosed(rstCode);
    call.span?.end(call.grpcCode ?? Code.CANCELLED);
    if (!call.metrics && !logger) return;
    const grpcCode = call.grpcCode ?? Code.CANCELLED;
    const ms = performance.now() - call.started;
    call.metrics?.finish(grpcCode, ms / 1000);
    logger?.info(accessLogLine({
      method: String(call.headers[':method']),
      route: undefined,
      grpcMethod: call.grpcMethod,
      // No response at all: the client went away first (REST logs the same case as 499).
      status: call.httpStatus,
      grpcCode,
      durationMs: ms,
      reqBytes: call.reqBytes,
      resBytes: call.resBytes,
      requestId: call.requestId!,
      remoteAddress: call.guard?.remoteAddress,
      headers: call.headers,
    }), 'request');
  };

  h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    counters.streamsTotal++;
    counters.activeStreams++;
    const guard = guards.get(stream.session as ServerHttp2Session);
    guard?.streamOpened();
    const path = headers[':path'];
    const metrics = lookupMetrics?.(path);
    metrics?.start();
    const call = new PassthroughCall(guard, metrics, headers, path);
    if (logger) call.requestId = requestId(headers);
    const backend = admit(stream, headers, options, call);
    if (!backend) {
      counters.rejected++;
      call.grpcCode ??= Code.UNIMPLEMENTED;
      stream.on('error', () => {});
      stream.once('close', () => finish(call, stream.rstCode ?? 0));
      return;
    }
    // The id follows the call: a generated one (none or an unusable one came in) goes to the backend too.
    if (call.requestId !== undefined && headers['x-request-id'] !== call.requestId) headers['x-request-id'] = call.requestId;
    if (tracing && call.grpcMethod !== undefined) {
      // Only routed calls get a span: names of unknown services come from clients (scanners), unbounded.
      call.span = tracing.startGrpcSpan(call.service!, call.method!, headers, call.guard?.remoteAddress);
      // The backend's spans nest under the gateway's; tracestate goes on as received.
      headers['traceparent'] = call.span.traceparent;
    }
    const forwarder = new StreamForwarder(stream, headers, backend, forwardContext, call);
    call.forwarder = forwarder;
    live.add(forwarder);
    // Timers and listeners first: a deadline also covers the time the hook takes.
    forwarder.start();
    const limited = limit?.(headers, guard?.remoteAddress);
    if (limited !== undefined) {
      forwarder.reject(Code.RESOURCE_EXHAUSTED, limited);
      return;
    }
    if (!hook) {
      opens.submit(forwarder, guard?.suspicious() ?? false);
      return;
    }
    const request = grpcHookRequest(headers, { service: call.service!, method: call.method!, backend: backend.name }, guard?.remoteAddress);
    settleHook(hook, request, backend.name).then(
      (chosen) => {
        if (chosen !== undefined && chosen !== backend.name) {
          const other = options.backendByName?.(chosen);
          if (!other) return forwarder.reject(Code.INTERNAL, `the onRequest hook chose backend "${chosen}", which is not configured`);
          forwarder.retarget(other);
        }
        opens.submit(forwarder, guard?.suspicious() ?? false);
      },
      (err: GatewayError) => {
        if (err.code === Code.INTERNAL) logger?.error({ err: err.cause, grpcMethod: call.grpcMethod }, 'passthrough: the onRequest hook failed');
        forwarder.reject(err.code, err.message);
      },
    );
  });

  if (options.tls) {
    (h2 as Http2SecureServer).on('unknownProtocol', (socket) => rejectHttp1(socket, 'h2'));
  }

  const listener: net.Server = options.tls
    ? h2
    : net.createServer((socket) => sniff(socket, h2, limits, pendingSockets));

  // Every TCP connection, so shutdown can end the ones that are not (or no longer) HTTP/2 sessions.
  const sockets = new Set<Socket>();
  listener.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(options.port, options.host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  const address = listener.address() as AddressInfo;
  logger?.info({ address: address.address, port: address.port, tls: Boolean(options.tls) }, 'passthrough: listening');

  let closing: Promise<void> | undefined;
  let cutTimer: NodeJS.Timeout | undefined;
  let destroyTimer: NodeJS.Timeout | undefined;
  let cutAt = Infinity;
  return {
    address,
    stats: () => ({
      connections: sessions.size,
      activeStreams: counters.activeStreams,
      streamsTotal: counters.streamsTotal,
      streamResets: counters.streamResets,
      calmGoaways: counters.calmGoaways,
      rejected: counters.rejected,
      upstream: backends.stats(),
    }),
    setTls: (pair) => {
      if (options.tls) (h2 as Http2SecureServer).setSecureContext({ ...pair, ALPNProtocols: ['h2'] } as never);
    },
    close: (opts = {}) => {
      const graceMs = opts.graceMs ?? DEFAULT_CLOSE_GRACE_MS;
      closing ??= shutdown();
      // The earliest deadline asked for wins.
      if (Date.now() + graceMs < cutAt) {
        cutAt = Date.now() + graceMs;
        clearTimeout(cutTimer);
        cutTimer = setTimeout(cut, graceMs);
      }
      return closing;
    },
  };

  /**
   * Lifecycle: listening -> draining (listener closed, GOAWAY(NO_ERROR) sent, open streams continue) -> cut at the
   * grace deadline (streams still open end with UNAVAILABLE) -> closed (sessions, sockets and own balancers gone).
   */
  async function shutdown(): Promise<void> {
    const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const socket of pendingSockets) socket.destroy();
    const drained = Promise.all(
      [...sessions].map((s) => new Promise<void>((resolve) => {
        if (s.destroyed) return resolve();
        s.once('close', () => resolve());
        s.close(); // GOAWAY(NO_ERROR); open streams continue
      })),
    );
    await drained;
    clearTimeout(cutTimer);
    clearTimeout(destroyTimer);
    await backends.close(0);
    for (const socket of sockets) socket.destroy();
    await listenerClosed;
  }

  /**
   * The grace is over. Each stream still open has its backend stream failed, so its forwarder ends the client
   * stream the way a lost backend does: UNAVAILABLE in a Trailers-Only response or in trailers after the messages
   * already relayed. Sessions still open CUT_GRACE_MS later (a client not reading its last frames) are destroyed.
   */
  function cut(): void {
    const open = counters.activeStreams;
    if (open > 0) logger?.warn({ streams: open }, 'passthrough: shutdown grace over, ending open streams with UNAVAILABLE');
    const err = new Error('the gateway is shutting down');
    forwardContext.cutError = err;
    for (const forwarder of live) forwarder.cut(err);
    destroyTimer = setTimeout(() => {
      for (const s of sessions) s.destroy();
    }, CUT_GRACE_MS);
  }
}

/** How long streams ended at the shutdown deadline get to deliver their status before their session is destroyed. */
const CUT_GRACE_MS = 1_000;

/** Backend streams opened in one event-loop turn before the next ones wait for the following turn. */
const OPENS_PER_TURN = 8;

/**
 * When each new call opens its backend stream. node:http2 writes what a turn of the event loop produced only at
 * the end of that turn, so a burst of calls read from one socket (64 of them at concurrency 64, ~7 ms of work)
 * reached the backend all at once, after all of them were processed, and the backend's replies came back the same
 * way: gateway and backend took turns instead of working in parallel (strace: one 64-request writev, then idle).
 * Opening OPENS_PER_TURN at once and the rest over the next turns (setImmediate: each turn's writes go out before
 * the next batch is processed) lets the first calls reach the backend while the gateway works on the others:
 * bench/passthrough.ts concurrency-64 unary throughput went from 58-63 % to 70-79 % of direct calls (medians of
 * interleaved runs on a shared 2-core machine).
 * A backlog drains by at least a quarter per turn, so a sustained overload delays opens by a few turns, never
 * caps their rate.
 *
 * Rapid reset: calls from a connection that has been resetting streams always wait a turn, so RST_STREAM frames
 * read in the same chunk as their HEADERS land first and a flood costs no backend streams (checked in open()).
 */
class OpenScheduler {
  #queue: Array<StreamForwarder<PassthroughCall>> = [];
  #head = 0;
  /** Opened since the last turn began. */
  #opened = 0;
  #scheduled = false;

  submit(forwarder: StreamForwarder<PassthroughCall>, defer: boolean): void {
    if (!defer && this.#opened < OPENS_PER_TURN && this.#head === this.#queue.length) {
      this.#opened++;
      this.#schedule();
      forwarder.open();
      return;
    }
    this.#queue.push(forwarder);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    this.#opened = 0;
    const queue = this.#queue;
    const budget = Math.max(OPENS_PER_TURN, Math.ceil((queue.length - this.#head) / 4));
    while (this.#head < queue.length && this.#opened < budget) {
      const forwarder = queue[this.#head]!;
      queue[this.#head++] = undefined as never;
      // A call that ended while it waited (reset, deadline) costs nothing from the budget.
      if (forwarder.open()) this.#opened++;
    }
    if (this.#head === queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else {
      this.#schedule();
    }
  }
}

/** One call on the gRPC port: what the forwarder reports back, plus what the listener needs to account for it. */
class PassthroughCall implements CallRecord {
  readonly guard: ClientSessionGuard | undefined;
  readonly metrics: GrpcMethodMetrics | undefined;
  readonly headers: IncomingHttpHeaders;
  /** "pkg.Service/Method" when :path has that shape (also for unknown services: what the client asked for). */
  readonly grpcMethod: string | undefined;
  /** grpcMethod's two parts. */
  readonly service: string | undefined;
  readonly method: string | undefined;
  readonly started = performance.now();
  /** Set only when there is an access log to write it to. */
  requestId: string | undefined = undefined;
  /** Set only when tracing is on and the call was routed. */
  span: GrpcSpan | undefined = undefined;
  forwarder: StreamForwarder<PassthroughCall> | undefined = undefined;
  reqBytes = 0;
  resBytes = 0;
  httpStatus = 499;
  grpcCode: number | undefined = undefined;

  constructor(guard: ClientSessionGuard | undefined, metrics: GrpcMethodMetrics | undefined, headers: IncomingHttpHeaders, path: string | undefined) {
    this.guard = guard;
    this.metrics = metrics;
    this.headers = headers;
    this.grpcMethod = path !== undefined && serviceFromPath(path) !== undefined ? path.slice(1) : undefined;
    const slash = this.grpcMethod?.indexOf('/') ?? -1;
    this.service = slash < 0 ? undefined : this.grpcMethod!.slice(0, slash);
    this.method = slash < 0 ? undefined : this.grpcMethod!.slice(slash + 1);
  }
}

/** Most distinct :path values whose metrics lookup is remembered; beyond it (clients inventing names) every call parses. */
const METRICS_CACHE_PATHS = 4096;

/**
 * Metrics for a call's /service/method, remembered per :path so a call costs one Map lookup (no regex, no key
 * string); none for requests that are not gRPC paths.
 */
function methodMetricsCache(metrics: Metrics): (path: string | undefined) => GrpcMethodMetrics | undefined {
  const byPath = new Map<string, GrpcMethodMetrics>();
  return (path) => {
    if (!path) return undefined;
    const known = byPath.get(path);
    if (known) return known;
    const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
    if (!m) return undefined;
    const found = metrics.grpcMethod(m[1]!, m[2]!);
    if (byPath.size < METRICS_CACHE_PATHS) byPath.set(path, found);
    return found;
  };
}

/** Checks a new stream is a gRPC call and finds its backend; answers it (and returns undefined) otherwise. */
function admit(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  options: PassthroughOptions,
  call: PassthroughCall,
): ReturnType<PassthroughOptions['resolveService']> {
  if (headers[':method'] !== 'POST') {
    call.httpStatus = 405;
    replyHttp(stream, 405, 'gRPC requests use POST\n', { allow: 'POST' });
    return undefined;
  }
  if (!isGrpcContentType(headers['content-type'])) {
    // PROTOCOL-HTTP2.md: servers answer an unsupported content-type with HTTP 415.
    call.httpStatus = 415;
    replyHttp(stream, 415, 'this port speaks gRPC: content-type must be application/grpc[+proto|+json|...]\n');
    return undefined;
  }
  const path = headers[':path'];
  const service = serviceFromPath(path);
  if (!service) {
    rejectCall(stream, call, `malformed gRPC :path "${path ?? ''}"`);
    return undefined;
  }
  const backend = options.resolveService(service);
  if (!backend) {
    rejectCall(stream, call, `unknown service ${service}`);
    return undefined;
  }
  return backend;
}

function rejectCall(stream: ServerHttp2Stream, call: PassthroughCall, message: string): void {
  call.httpStatus = 200;
  call.grpcCode = Code.UNIMPLEMENTED;
  stream.respond(trailersOnlyHeaders(Code.UNIMPLEMENTED, message), { endStream: true });
}

function replyHttp(stream: ServerHttp2Stream, status: number, body: string, extra: Record<string, string> = {}): void {
  stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', ...extra });
  stream.end(body);
  // The request body is irrelevant; reading it lets the stream close instead of waiting on a stalled upload.
  stream.resume();
}

/** Reads just enough of a cleartext connection to tell the HTTP/2 preface from anything else. */
function sniff(socket: Socket, h2: Http2Server | Http2SecureServer, limits: ResolvedLimits, pending: Set<Socket>): void {
  pending.add(socket);
  socket.setTimeout(limits.handshakeTimeoutMs);
  const onTimeout = (): void => void socket.destroy();
  socket.once('timeout', onTimeout);
  socket.on('error', () => socket.destroy());
  let seen = Buffer.alloc(0);
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) seen = Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    if (!seen.subarray(0, n).equals(PREFACE.subarray(0, n))) {
      done();
      rejectHttp1(socket, 'h2c');
      return;
    }
    if (n < PREFACE.length) return; // a prefix of the preface so far: wait for more
    done();
    socket.setTimeout(0);
    socket.off('timeout', onTimeout);
    socket.removeAllListeners('error');
    // node:http2 feeds bytes already read from the socket to nghttp2 before reading from the handle.
    socket.unshift(seen);
    h2.emit('connection', socket);
  };
  const done = (): void => {
    pending.delete(socket);
    socket.off('readable', onReadable);
  };
  socket.on('readable', onReadable);
  socket.once('close', () => pending.delete(socket));
}

function rejectHttp1(socket: Socket, upgrade: 'h2' | 'h2c'): void {
  const body = 'protogate: this port speaks gRPC over HTTP/2 only; use a gRPC client, or the HTTP/JSON port for REST\n';
  socket.on('error', () => socket.destroy());
  // Read (and drop) the rest of the request so the peer's FIN is seen and the socket actually closes.
  socket.resume();
  socket.end(
    'HTTP/1.1 426 Upgrade Required\r\n' +
      `upgrade: ${upgrade}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  socket.setTimeout(5_000);
  socket.once('timeout', () => socket.destroy());
}
