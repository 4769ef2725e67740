/**
 * grpc.rateLimit: the REST port's per-client limit for the gRPC port. Counting is @fastify/rate-limit's own
 * LocalStore (a fixed window per key in an LRU of 5,000 keys), so both ports count the same way; only the answer
 * differs (RESOURCE_EXHAUSTED in a Trailers-Only response, as gRPC has no 429).
 */
import { createRequire } from 'node:module';
import type { IncomingHttpHeaders } from 'node:http2';

export interface RateLimitOptions {
  max: number;
  timeWindowMs: number;
  /** Lower- or mixed-case header naming the client (e.g. x-api-key); default: the client's address. */
  keyHeader?: string;
}

interface Store {
  incr(key: string, cb: (err: Error | null, res: { current: number; ttl: number }) => void, timeWindow: number, max: number): void;
}

const require = createRequire(import.meta.url);
const LocalStore = require('@fastify/rate-limit/store/LocalStore') as new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => Store;

/** Returns a check: undefined when the call may go on, else the message to refuse it with. */
export function rateLimiter(options: RateLimitOptions): (headers: IncomingHttpHeaders, remoteAddress: string | undefined) => string | undefined {
  const store = new LocalStore(false, false);
  const header = options.keyHeader?.toLowerCase();
  const per = header ? ` per ${header}` : ' per client address';
  return (headers, remoteAddress) => {
    const given = header ? headers[header] : undefined;
    const key = (Array.isArray(given) ? given[0] : given) ?? remoteAddress ?? '';
    let refused: string | undefined;
    // LocalStore answers synchronously.
    store.incr(key, (_err, res) => {
      if (res.current > options.max) {
        refused = `rate limit exceeded: ${options.max} calls per ${options.timeWindowMs} ms${per}; retry in ${Math.max(1, Math.ceil(res.ttl / 1000))} s`;
      }
    }, options.timeWindowMs, options.max);
    return refused;
  };
}
