/**
 * Backend name -> one Http2Pool per endpoint, created on first use. Endpoint choice is plain round-robin with
 * failover to the next endpoint when one cannot be reached; real balancing and health checks replace this later.
 */
import type { ClientHttp2Session, ClientHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import { Code, GatewayError } from '../errors/index.ts';
import { Http2Pool } from '../upstream/http2-pool.ts';
import type { Http2PoolOptions, Http2PoolStats } from '../upstream/http2-pool.ts';
import type { PassthroughBackend } from './options.ts';

interface BackendPools {
  pools: Http2Pool[];
  next: number;
}

export interface OpenedStream {
  stream: ClientHttp2Stream;
  /** Captured now: node:http2 clears `stream.session` when the stream is destroyed. */
  session: ClientHttp2Session;
}

export class BackendRouter {
  #poolOptions: Omit<Http2PoolOptions, 'tls'>;
  #backends = new Map<string, BackendPools>();
  #closed = false;

  constructor(poolOptions: Omit<Http2PoolOptions, 'tls'> = {}) {
    this.#poolOptions = poolOptions;
  }

  /** Rejects with UNAVAILABLE naming the backend when no endpoint can be reached, CANCELLED when `signal` aborts. */
  async open(backend: PassthroughBackend, headers: OutgoingHttpHeaders, signal: AbortSignal): Promise<OpenedStream> {
    if (this.#closed) throw new GatewayError(Code.UNAVAILABLE, 'gateway is shutting down');
    const entry = this.#pools(backend);
    const n = entry.pools.length;
    if (n === 0) throw new GatewayError(Code.UNAVAILABLE, `backend "${backend.name}" has no endpoints`);
    const start = entry.next;
    entry.next = (start + 1) % n;
    const failures: string[] = [];
    for (let i = 0; i < n; i++) {
      const pool = entry.pools[(start + i) % n];
      try {
        const stream = await pool.request(headers, { signal });
        return { stream, session: stream.session as ClientHttp2Session };
      } catch (err) {
        if (signal.aborted || (err instanceof GatewayError && err.code === Code.CANCELLED)) throw err;
        failures.push(err instanceof Error ? err.message : String(err));
      }
    }
    throw new GatewayError(Code.UNAVAILABLE, `backend "${backend.name}" unavailable: ${failures.join('; ')}`);
  }

  stats(): Http2PoolStats[] {
    return [...this.#backends.values()].flatMap((b) => b.pools.map((p) => p.stats()));
  }

  async close(graceMs = 0): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#backends.values()].flatMap((b) => b.pools.map((p) => p.close({ graceMs }))));
  }

  #pools(backend: PassthroughBackend): BackendPools {
    let entry = this.#backends.get(backend.name);
    if (!entry) {
      entry = {
        pools: backend.endpoints.map((ep) => new Http2Pool(ep, { ...this.#poolOptions, tls: backend.tls })),
        next: 0,
      };
      this.#backends.set(backend.name, entry);
    }
    return entry;
  }
}
