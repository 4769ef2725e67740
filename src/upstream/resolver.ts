/**
 * Resolvers turn a backend's endpoint specs into addresses. Static specs ("host:port", "[v6]:port") are one address
 * each; "dns:///name:port" is looked up at start, every `resolveIntervalMs`, and on demand (`resolveNow()`, which
 * the balancer calls when a connection fails) so new pods are found and removed pods drained without a restart.
 *
 * A failed lookup (timeout, SERVFAIL) keeps the last good answer: a DNS hiccup must not empty a healthy backend.
 * An answer without records (NXDOMAIN / NODATA) is an answer: the name currently has no addresses.
 */
import dns from 'node:dns';

export interface EndpointSpec {
  /** "host:port", "[v6]:port" or "dns:///name:port". */
  address: string;
  weight: number;
}

export interface ResolvedAddress {
  /** "ip:port" / "host:port" / "[v6]:port": the key of an endpoint. */
  address: string;
  weight: number;
}

export interface ResolverOptions {
  resolveIntervalMs: number;
  /** DNS servers ("ip" or "ip:port") for dns:/// names; default: the system resolver (getaddrinfo, /etc/hosts). */
  dnsServers?: string[];
  /** Per-query timeout of the DNS client used with `dnsServers`. Default 2000 ms. */
  dnsTimeoutMs?: number;
  /** The full address list, after every change. */
  onAddresses(addresses: ResolvedAddress[]): void;
  onError?(name: string, err: Error): void;
}

/** Smallest gap between two on-demand lookups: connection failures under load must not flood the DNS server. */
const MIN_RESOLVE_GAP_MS = 1000;
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND', 'NODATA', 'NOTFOUND']);

interface DnsTarget {
  name: string;
  port: number;
  weight: number;
  addresses: string[];
}

export class EndpointResolver {
  #static: ResolvedAddress[] = [];
  #dns: DnsTarget[] = [];
  #options: ResolverOptions;
  #resolver: dns.promises.Resolver | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastResolve = 0;
  #inFlight: Promise<void> | undefined;
  #closed = false;
  #lastPublished = '';

  constructor(specs: readonly EndpointSpec[], options: ResolverOptions) {
    this.#options = options;
    for (const spec of specs) {
      const m = /^dns:\/\/\/(.+):(\d+)$/.exec(spec.address);
      if (m) this.#dns.push({ name: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), weight: spec.weight, addresses: [] });
      else this.#static.push({ address: spec.address, weight: spec.weight });
    }
    if (this.#dns.length > 0 && options.dnsServers?.length) {
      this.#resolver = new dns.promises.Resolver({ timeout: options.dnsTimeoutMs ?? 2000, tries: 2 });
      this.#resolver.setServers(options.dnsServers);
    }
  }

  get dynamic(): boolean {
    return this.#dns.length > 0;
  }

  /** Publishes the static addresses at once; resolves DNS names before resolving, then keeps them fresh. */
  async start(): Promise<void> {
    this.publish();
    if (this.#dns.length === 0 || this.#closed) return;
    await this.#resolveAll();
    this.#timer = setInterval(() => void this.#resolveAll(), this.#options.resolveIntervalMs);
    this.#timer.unref();
  }

  /** Re-resolve soon (rate-limited). Resolves when that lookup is done. */
  resolveNow(): Promise<void> {
    if (this.#dns.length === 0 || this.#closed) return Promise.resolve();
    if (this.#inFlight) return this.#inFlight;
    if (Date.now() - this.#lastResolve < MIN_RESOLVE_GAP_MS) return Promise.resolve();
    return this.#resolveAll();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#resolver?.cancel();
  }

  #resolveAll(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    this.#lastResolve = Date.now();
    this.#inFlight = Promise.all(this.#dns.map((t) => this.#resolveOne(t))).then(() => {
      this.#inFlight = undefined;
      if (!this.#closed) this.publish();
    });
    return this.#inFlight;
  }

  async #resolveOne(target: DnsTarget): Promise<void> {
    try {
      const ips = await this.#lookup(target.name);
      target.addresses = ips.sort().map((ip) => (ip.includes(':') ? `[${ip}]:${target.port}` : `${ip}:${target.port}`));
    } catch (err) {
      this.#options.onError?.(target.name, err as Error);
    }
  }

  async #lookup(name: string): Promise<string[]> {
    if (!this.#resolver) {
      try {
        return (await dns.promises.lookup(name, { all: true })).map((a) => a.address);
      } catch (err) {
        if (NO_RECORDS.has((err as NodeJS.ErrnoException).code ?? '')) return [];
        throw err;
      }
    }
    const resolver = this.#resolver;
    const settle = async (p: Promise<string[]>): Promise<string[] | Error> => {
      try {
        return await p;
      } catch (err) {
        return NO_RECORDS.has((err as NodeJS.ErrnoException).code ?? '') ? [] : (err as Error);
      }
    };
    const [v4, v6] = await Promise.all([settle(resolver.resolve4(name)), settle(resolver.resolve6(name))]);
    if (v4 instanceof Error && v6 instanceof Error) throw v4;
    return [...(v4 instanceof Error ? [] : v4), ...(v6 instanceof Error ? [] : v6)];
  }

  /** Hands the current address list to `onAddresses` if it changed since the last time. */
  publish(): void {
    const byAddress = new Map<string, ResolvedAddress>();
    for (const a of this.#static) byAddress.set(a.address, a);
    for (const t of this.#dns) for (const address of t.addresses) if (!byAddress.has(address)) byAddress.set(address, { address, weight: t.weight });
    const list = [...byAddress.values()];
    const key = list.map((a) => `${a.address}*${a.weight}`).join(',');
    if (key === this.#lastPublished) return;
    this.#lastPublished = key;
    this.#options.onAddresses(list);
  }
}
