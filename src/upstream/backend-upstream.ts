/**
 * The balancer of one backend: holds the endpoint set (from its resolver), their pools, health and ejection
 * state, and publishes an immutable Picker that every call (transcoded or passthrough) picks from.
 *
 * It never opens connections itself: pools come from the `helper` (gRPC's ChannelControlHelper idea), which is
 * how tests and the CLI swap them. Addresses that disappear from DNS leave the picker at once and their pools
 * drain (open streams finish, up to `drainGraceMs`).
 *
 * Retries: a call whose request provably never reached a backend (no stream could be opened, REFUSED_STREAM,
 * streams above a GOAWAY's last id) goes to another endpoint, at most `maxTransparentRetries` times. Anything
 * else is final here; per-method retry policies for transcoded unary calls live in GrpcInvoker (they replay the
 * request bytes, which the passthrough never holds).
 */
import type { ClientHttp2Session, ClientHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import http2 from 'node:http2';
import { Code, GatewayError } from '../errors/index.ts';
import { Http2Pool } from './http2-pool.ts';
import { SocketPool } from './socket-session.ts';
import type { CancelToken, Http2PoolOptions, Http2UpstreamTls } from './http2-pool.ts';
import { UpstreamEndpoint } from './endpoint.ts';
import type { HealthCheckSettings, OutlierSettings } from './endpoint.ts';
import { buildPicker } from './picker.ts';
import type { BalancingPolicy, Picker } from './picker.ts';
import { EndpointResolver } from './resolver.ts';
import type { EndpointSpec, ResolvedAddress } from './resolver.ts';

export interface UpstreamSettings {
  name: string;
  endpoints: EndpointSpec[];
  policy: BalancingPolicy;
  resolveIntervalMs: number;
  dnsServers?: string[];
  tls?: Http2UpstreamTls;
  pool: Omit<Http2PoolOptions, 'tls' | 'onStateChange'>;
  healthCheck: HealthCheckSettings;
  outlierDetection: OutlierSettings;
  /** Extra endpoints tried for a call that never reached a backend. Default 2. */
  maxTransparentRetries?: number;
  /** How long a removed endpoint's open streams may run before its pool is closed. Default 30000 ms. */
  drainGraceMs?: number;
  /** Transcoded calls and health probes get their own SocketPool per endpoint (`transport: 'socket'`). */
  socketCalls?: boolean;
}

/** The subset of Metrics the balancer reports to. */
export interface UpstreamObserver {
  setUpstreamConnections(backend: string, endpoint: string, connections: number): void;
  setUpstreamHealthy(backend: string, endpoint: string, healthy: boolean): void;
  removeUpstreamEndpoint(backend: string, endpoint: string): void;
}

export interface UpstreamLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Creates the connection pool for an address: the only way the balancer gets connections. */
export interface UpstreamHelper {
  createPool(address: string, onStateChange: () => void): Http2Pool;
  /** The pool for transcoded calls when `socketCalls` is set. */
  createSocketPool?(address: string, onStateChange: () => void): SocketPool;
}

export interface OpenedStream {
  stream: ClientHttp2Stream;
  /** Captured now: node:http2 clears `stream.session` when the stream is destroyed. */
  session: ClientHttp2Session;
}

export interface BackendDescription {
  name: string;
  policy: BalancingPolicy;
  endpoints: Array<ReturnType<UpstreamEndpoint['describe']>>;
  usable: number;
}

export class BackendUpstream {
  readonly name: string;
  readonly policy: BalancingPolicy;
  readonly scheme: 'http' | 'https';
  readonly settings: UpstreamSettings;
  #endpoints = new Map<string, UpstreamEndpoint>();
  #picker: Picker<UpstreamEndpoint> = buildPicker('round_robin', []);
  #resolver: EndpointResolver;
  #helper: UpstreamHelper;
  #observer: UpstreamObserver | undefined;
  #logger: UpstreamLogger | undefined;
  #draining = new Set<Promise<void>>();
  #closed = false;
  #maxRetries: number;
  #started: Promise<void> | undefined;

  constructor(settings: UpstreamSettings, deps: { helper?: UpstreamHelper; observer?: UpstreamObserver; logger?: UpstreamLogger } = {}) {
    this.name = settings.name;
    this.policy = settings.policy;
    this.settings = settings;
    this.scheme = settings.tls ? 'https' : 'http';
    this.#observer = deps.observer;
    this.#logger = deps.logger;
    this.#maxRetries = settings.maxTransparentRetries ?? 2;
    this.#helper = deps.helper ?? {
      createPool: (address, onStateChange) =>
        new Http2Pool(address, { ...settings.pool, tls: settings.tls, onStateChange: () => onStateChange() }),
      createSocketPool: (address, onStateChange) =>
        new SocketPool(address, { ...settings.pool, tls: settings.tls, onStateChange: () => onStateChange() }),
    };
    this.#resolver = new EndpointResolver(settings.endpoints, {
      resolveIntervalMs: settings.resolveIntervalMs,
      dnsServers: settings.dnsServers,
      onAddresses: (list) => this.#setAddresses(list),
      onError: (name, err) => this.#logger?.warn({ backend: this.name, name, err: err.message }, 'upstream: DNS lookup failed; keeping the last answer'),
    });
    this.#resolver.publish();
  }

  /** DNS names are resolved before this resolves (static endpoints are usable from construction). Idempotent. */
  start(): Promise<void> {
    this.#started ??= this.#resolver.start();
    return this.#started;
  }

  endpoints(): UpstreamEndpoint[] {
    return [...this.#endpoints.values()];
  }

  get picker(): Picker<UpstreamEndpoint> {
    return this.#picker;
  }

  /** An endpoint for a new call, skipping `tried`; undefined when none is usable. */
  pick(tried?: ReadonlySet<UpstreamEndpoint>): UpstreamEndpoint | undefined {
    const ep = this.#picker.pick();
    if (!tried || !ep || !tried.has(ep)) return ep;
    for (const other of this.#picker.endpoints) if (!tried.has(other)) return other;
    return undefined;
  }

  /** Whether another try is allowed after `tries` attempts. */
  mayRetry(tries: number): boolean {
    return tries <= this.#maxRetries;
  }

  begin(ep: UpstreamEndpoint): void {
    ep.outstanding++;
    ep.calls++;
  }

  /**
   * A call on `ep` ended with `code` (a gRPC status code). `neverSent`: it failed before a stream existed; the
   * pool's reconnect backoff already keeps calls away from an unreachable endpoint, so it does not count toward
   * ejection.
   */
  end(ep: UpstreamEndpoint, code: number, neverSent = false): void {
    ep.outstanding--;
    const outlier = this.settings.outlierDetection;
    if (!neverSent && ep.record(code, outlier) && this.#mayEject()) {
      this.#logger?.warn({ backend: this.name, endpoint: ep.address }, 'upstream: endpoint ejected after consecutive failures');
      ep.eject(outlier);
    }
    if (code === Code.UNAVAILABLE) void this.#resolver.resolveNow();
  }

  /** The error of a call that found no usable endpoint, or ran out of them. */
  unavailable(lastError?: string): GatewayError {
    const all = [...this.#endpoints.values()];
    if (all.length === 0) return new GatewayError(Code.UNAVAILABLE, `backend "${this.name}" has no endpoints`);
    const down = all.filter((e) => e.connectivity === 'transient_failure').length;
    const sick = all.filter((e) => e.health === 'not_serving').length;
    const ejected = all.filter((e) => e.ejected).length;
    const parts = [down && `${down} unreachable`, sick && `${sick} not serving`, ejected && `${ejected} ejected`].filter(Boolean);
    return new GatewayError(Code.UNAVAILABLE,
      `backend "${this.name}" unavailable: no usable endpoint of ${all.length}${parts.length ? ` (${parts.join(', ')})` : ''}` +
      (lastError ? `; last error: ${lastError}` : ''));
  }

  /**
   * Passthrough: a raw HTTP/2 stream on a picked endpoint. Retries on another endpoint only while no stream was
   * opened (the client's request body has not been read yet). Outstanding count and outcome follow the stream.
   */
  async openStream(headers: OutgoingHttpHeaders, cancel: CancelToken): Promise<OpenedStream> {
    const tried = new Set<UpstreamEndpoint>();
    let last: string | undefined;
    for (;;) {
      if (this.#closed) throw new GatewayError(Code.UNAVAILABLE, 'gateway is shutting down');
      const ep = this.pick(tried);
      if (!ep) throw this.unavailable(last);
      tried.add(ep);
      this.begin(ep);
      let stream: ClientHttp2Stream;
      try {
        stream = await ep.pool.request(headers, { cancel });
      } catch (err) {
        const code = err instanceof GatewayError ? err.code : Code.UNAVAILABLE;
        this.end(ep, code, true);
        if (cancel.aborted || code === Code.CANCELLED || !this.mayRetry(tried.size)) throw err;
        last = err instanceof Error ? err.message : String(err);
        continue;
      }
      this.#track(ep, stream);
      return { stream, session: stream.session as ClientHttp2Session };
    }
  }

  describe(): BackendDescription {
    return {
      name: this.name,
      policy: this.policy,
      endpoints: [...this.#endpoints.values()].map((e) => {
        const d = e.describe();
        return this.settings.healthCheck.enabled ? d : { ...d, health: 'not checked' };
      }),
      usable: this.#picker.endpoints.length,
    };
  }

  async close(graceMs = 0): Promise<void> {
    this.#closed = true;
    this.#resolver.close();
    const closing = [...this.#endpoints.values()].map((e) => {
      e.close();
      return e.closePools(graceMs);
    });
    this.#endpoints.clear();
    this.#picker = buildPicker(this.policy, []);
    await Promise.all([...closing, ...this.#draining]);
  }

  /** The outcome of a passthrough stream: grpc-status from headers or trailers, else derived from how it closed. */
  #track(ep: UpstreamEndpoint, stream: ClientHttp2Stream): void {
    let code: number | undefined;
    const read = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] !== undefined) code = Number(h['grpc-status']);
    };
    stream.once('response', read);
    stream.once('trailers', read);
    stream.once('close', () => {
      if (code === undefined) {
        const rst = stream.rstCode;
        code = rst === http2.constants.NGHTTP2_CANCEL ? Code.CANCELLED : rst === http2.constants.NGHTTP2_NO_ERROR ? Code.OK : Code.UNAVAILABLE;
      }
      this.end(ep, code);
    });
  }

  #mayEject(): boolean {
    const n = this.#endpoints.size;
    let ejected = 0;
    for (const e of this.#endpoints.values()) if (e.ejected) ejected++;
    return ejected + 1 <= Math.floor((n * this.settings.outlierDetection.maxEjectionPercent) / 100);
  }

  #setAddresses(list: ResolvedAddress[]): void {
    if (this.#closed) return;
    const next = new Map(list.map((a) => [a.address, a]));
    for (const [address, ep] of this.#endpoints) {
      if (next.has(address)) continue;
      this.#endpoints.delete(address);
      ep.close();
      this.#observer?.removeUpstreamEndpoint(this.name, address);
      const drained = ep.closePools(this.settings.drainGraceMs ?? 30_000);
      this.#draining.add(drained);
      void drained.then(() => this.#draining.delete(drained));
    }
    for (const a of list) {
      const existing = this.#endpoints.get(a.address);
      if (existing) {
        existing.weight = a.weight;
        continue;
      }
      let ep: UpstreamEndpoint | undefined;
      const onStateChange = (): void => {
        if (ep && this.#endpoints.get(a.address) === ep) this.#onEndpointChange(ep);
      };
      const pool = this.#helper.createPool(a.address, onStateChange);
      let callPool: SocketPool | undefined;
      if (this.settings.socketCalls) {
        if (!this.#helper.createSocketPool) throw new Error(`backend "${this.name}": socketCalls needs a helper with createSocketPool`);
        callPool = this.#helper.createSocketPool(a.address, onStateChange);
      }
      ep = new UpstreamEndpoint(a.address, a.weight, pool, () => this.#rebuild(), callPool);
      this.#endpoints.set(a.address, ep);
      ep.startHealthChecks(this.settings.healthCheck, this.scheme);
    }
    this.#logger?.info({ backend: this.name, endpoints: list.map((a) => a.address) }, 'upstream: endpoints updated');
    this.#rebuild();
  }

  #onEndpointChange(ep: UpstreamEndpoint): void {
    ep.noteConnectivity();
    this.#observer?.setUpstreamConnections(this.name, ep.address, ep.sessionCount);
    if (ep.connectivity === 'transient_failure') void this.#resolver.resolveNow();
    this.#rebuild();
  }

  #rebuild(): void {
    if (this.#closed) return;
    const usable: UpstreamEndpoint[] = [];
    for (const ep of this.#endpoints.values()) {
      const ok = ep.eligible;
      this.#observer?.setUpstreamHealthy(this.name, ep.address, ok);
      if (ok) usable.push(ep);
    }
    this.#picker = buildPicker(this.policy, usable);
  }
}
