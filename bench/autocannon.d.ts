// Minimal types for the parts of autocannon 8 that bench/rest.ts uses (the package ships none).
declare module 'autocannon' {
  namespace autocannon {
    interface Options {
      url: string;
      method?: string;
      connections?: number;
      duration?: number;
      pipelining?: number;
      timeout?: number;
      body?: string | Buffer;
      headers?: Record<string, string>;
    }
    interface Histogram { average: number; mean: number; p50: number; p90: number; p99: number; max: number; min: number }
    interface Result {
      requests: Histogram & { total: number };
      latency: Histogram;
      throughput: Histogram;
      duration: number;
      errors: number;
      timeouts: number;
      non2xx: number;
    }
  }
  function autocannon(opts: autocannon.Options): Promise<autocannon.Result>;
  export default autocannon;
}
