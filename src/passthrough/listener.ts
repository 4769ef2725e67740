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
import type { ClientHttp2Stream, Http2SecureServer, Http2Server, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { Code } from '../errors/index.ts';
import { BackendRouter, type OpenedStream } from './backends.ts';
import { StreamForwarder } from './forward.ts';
import { isGrpcContentType, serviceFromPath, trailersOnlyHeaders } from './grpc-wire.ts';
import { DEFAULT_CLOSE_GRACE_MS, resolveLimits } from './options.ts';
import type { PassthroughBackend, PassthroughOptions, PassthroughStats, ResolvedLimits } from './options.ts';
import { ClientSessionGuard } from './session-guard.ts';

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
  const backends = new CuttableBackendRouter(options.upstream);
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
    session.on('error', (err) => logger?.warn({ err: err.message }, 'passthrough: client connection error'));
    session.once('close', () => sessions.delete(session));
    session.once('connect', () => {
      if (limits.connectionWindowSize > 65_535 && !session.destroyed) session.setLocalWindowSize(limits.connectionWindowSize);
    });
    guards.set(session, new ClientSessionGuard(session, limits, logger, () => counters.calmGoaways++));
  });

  h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    counters.streamsTotal++;
    counters.activeStreams++;
    const guard = guards.get(stream.session as ServerHttp2Session);
    guard?.streamOpened();
    let closed = false;
    const observe = methodMetrics(options, headers[':path']);
    const started = observe ? performance.now() : 0;
    observe?.start();
    const onClosed = (rstCode: number, grpcCode: number): void => {
      if (closed) return;
      closed = true;
      counters.activeStreams--;
      if (rstCode !== http2.constants.NGHTTP2_NO_ERROR) counters.streamResets++;
      guard?.streamClosed(rstCode);
      observe?.finish(grpcCode, (performance.now() - started) / 1000);
    };
    if (observe) {
      const write = stream.write.bind(stream);
      // Bytes to the client, counted where they leave (pipe() writes every chunk through here).
      stream.write = ((chunk: Buffer, ...rest: unknown[]) => {
        observe.sentBytes(chunk.length);
        return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof stream.write;
    }
    const backend = admit(stream, headers, options);
    if (!backend) {
      counters.rejected++;
      stream.on('error', () => {});
      stream.once('close', () => onClosed(stream.rstCode ?? 0, Code.UNIMPLEMENTED));
      return;
    }
    new StreamForwarder(stream, headers, backend, {
      backends,
      logger,
      onStreamClosed: onClosed,
      onRequestBytes: observe ? (n) => observe.receivedBytes(n) : undefined,
      streamIdleTimeoutMs: limits.streamIdleTimeoutMs,
    }).start();
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
    backends.cut(new Error('the gateway is shutting down'));
    destroyTimer = setTimeout(() => {
      for (const s of sessions) s.destroy();
    }, CUT_GRACE_MS);
  }
}

/** How long streams ended at the shutdown deadline get to deliver their status before their session is destroyed. */
const CUT_GRACE_MS = 1_000;

/** A BackendRouter that knows its open backend streams, so shutdown can fail them all at once. */
class CuttableBackendRouter extends BackendRouter {
  readonly #open = new Set<ClientHttp2Stream>();
  #cut: Error | undefined;

  override async open(backend: PassthroughBackend, headers: OutgoingHttpHeaders, signal: AbortSignal): Promise<OpenedStream> {
    const opened = await super.open(backend, headers, signal);
    const { stream } = opened;
    // The forwarder attaches its listeners in the continuation of this promise, before the error is emitted.
    if (this.#cut) stream.destroy(this.#cut);
    else if (!stream.destroyed) {
      this.#open.add(stream);
      stream.once('close', () => this.#open.delete(stream));
    }
    return opened;
  }

  /** Fails every open backend stream (and any opened from now on) with `err`; the backend sees RST_STREAM. */
  cut(err: Error): void {
    this.#cut ??= err;
    for (const stream of this.#open) stream.destroy(err);
    this.#open.clear();
  }
}

/** Metrics for a gRPC call's /service/method; none for requests that are not gRPC paths or when metrics are off. */
function methodMetrics(options: PassthroughOptions, path: string | undefined) {
  if (!options.metrics || !path) return undefined;
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  return m ? options.metrics.grpcMethod(m[1]!, m[2]!) : undefined;
}

/** Checks a new stream is a gRPC call and finds its backend; answers it (and returns undefined) otherwise. */
function admit(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  options: PassthroughOptions,
): ReturnType<PassthroughOptions['resolveService']> {
  if (headers[':method'] !== 'POST') {
    replyHttp(stream, 405, 'gRPC requests use POST\n', { allow: 'POST' });
    return undefined;
  }
  if (!isGrpcContentType(headers['content-type'])) {
    // PROTOCOL-HTTP2.md: servers answer an unsupported content-type with HTTP 415.
    replyHttp(stream, 415, 'this port speaks gRPC: content-type must be application/grpc[+proto|+json|...]\n');
    return undefined;
  }
  const path = headers[':path'];
  const service = serviceFromPath(path);
  if (!service) {
    stream.respond(trailersOnlyHeaders(Code.UNIMPLEMENTED, `malformed gRPC :path "${path ?? ''}"`), { endStream: true });
    return undefined;
  }
  const backend = options.resolveService(service);
  if (!backend) {
    stream.respond(trailersOnlyHeaders(Code.UNIMPLEMENTED, `unknown service ${service}`), { endStream: true });
    return undefined;
  }
  return backend;
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
