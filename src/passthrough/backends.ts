/**
 * Backend name -> its balancer (BackendUpstream). The gateway hands over the shared balancers (the same ones the
 * transcoded calls use) on each PassthroughBackend; a backend without one (tests, embedders) gets a round_robin
 * balancer of its own here, created on first use, with the passthrough's pool options.
 */
import type { OutgoingHttpHeaders } from 'node:http2';
import { Code, GatewayError } from '../errors/index.ts';
import { BackendUpstream } from '../upstream/backend-upstream.ts';
import type { OpenedStream } from '../upstream/backend-upstream.ts';
import type { CancelToken, Http2PoolOptions, Http2PoolStats } from '../upstream/http2-pool.ts';
import type { PassthroughBackend } from './options.ts';

export type { OpenedStream } from '../upstream/backend-upstream.ts';

export class BackendRouter {
  #poolOptions: Omit<Http2PoolOptions, 'tls'>;
  /** Balancers created here (and so closed here); shared ones belong to the gateway. */
  #own = new Map<string, BackendUpstream>();
  #seen = new Set<BackendUpstream>();
  #closed = false;

  constructor(poolOptions: Omit<Http2PoolOptions, 'tls'> = {}) {
    this.#poolOptions = poolOptions;
  }

  /** Rejects with UNAVAILABLE naming the backend when no endpoint can be reached, CANCELLED when `cancel` aborts. */
  open(backend: PassthroughBackend, headers: OutgoingHttpHeaders, cancel: CancelToken): Promise<OpenedStream> {
    if (this.#closed) return Promise.reject(new GatewayError(Code.UNAVAILABLE, 'gateway is shutting down'));
    return this.#upstream(backend).openStream(headers, cancel);
  }

  stats(): Http2PoolStats[] {
    return [...this.#seen].flatMap((u) => u.picker.endpoints.map((e) => e.pool.stats()));
  }

  async close(graceMs = 0): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#own.values()].map((u) => u.close(graceMs)));
  }

  #upstream(backend: PassthroughBackend): BackendUpstream {
    let up = backend.upstream ?? this.#own.get(backend.name);
    if (!up) {
      up = new BackendUpstream({
        name: backend.name,
        endpoints: backend.endpoints.map((address) => ({ address, weight: 1 })),
        policy: 'round_robin',
        resolveIntervalMs: 30_000,
        tls: backend.tls,
        pool: this.#poolOptions,
        healthCheck: { enabled: false, intervalMs: 5000, timeoutMs: 1000, service: '', healthyThreshold: 1, unhealthyThreshold: 2 },
        outlierDetection: { enabled: false, consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
      });
      void up.start();
      this.#own.set(backend.name, up);
    }
    this.#seen.add(up);
    return up;
  }
}
