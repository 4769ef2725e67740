/**
 * One endpoint (address) of a backend: its connection pool, the calls outstanding on it, and the three things
 * that decide whether it gets new calls:
 *
 *  - connectivity  the pool's state: not in transient_failure (a pool that never failed may still be connecting)
 *  - health        active grpc.health.v1.Health/Check probes: `unhealthyThreshold` failed probes in a row make it
 *                  not_serving, `healthyThreshold` passed probes in a row make it serving again. A probe fails on
 *                  any status other than SERVING, on an error, and on timeout. Before the first probe: unknown
 *                  (eligible), so a start or a scale-up does not wait for the first probe.
 *  - ejection      passive outlier detection: `consecutiveFailures` calls in a row failing with UNAVAILABLE or
 *                  DEADLINE_EXCEEDED (or not connecting) eject it for baseEjectionMs × times ejected, capped at
 *                  maxEjectionMs. The balancer decides whether an ejection is allowed (maxEjectionPercent).
 *
 * Every change of eligibility calls `onChange`, and the balancer builds a new picker.
 */
import * as grpc from '@grpc/grpc-js';
import { Code } from '../errors/index.ts';
import { CallError, h2Unary } from './h2-grpc-client.ts';
import type { CallPool } from './h2-grpc-client.ts';
import type { Http2Pool, PoolConnectivity } from './http2-pool.ts';
import type { Pickable } from './picker.ts';

export interface HealthCheckSettings {
  enabled: boolean;
  intervalMs: number;
  timeoutMs: number;
  /** Service name sent in HealthCheckRequest; '' asks about the server as a whole. */
  service: string;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export interface OutlierSettings {
  enabled: boolean;
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
}

export type HealthState = 'unknown' | 'serving' | 'not_serving';

/** Call outcomes that count against an endpoint: the backend was not there, or did not answer in time. */
export function isEndpointFailure(code: number): boolean {
  return code === Code.UNAVAILABLE || code === Code.DEADLINE_EXCEEDED;
}

export class UpstreamEndpoint implements Pickable {
  readonly address: string;
  /** node:http2 sessions: passthrough streams, and transcoded calls unless the backend has its own `callPool`. */
  readonly pool: Http2Pool;
  /** Where transcoded calls and health probes go: `pool`, or a SocketPool for `transport: 'socket'`. */
  readonly callPool: CallPool;
  weight: number;
  outstanding = 0;
  /** Calls started here since creation (for `protogate backends` and tests). */
  calls = 0;
  #health: HealthState = 'unknown';
  #healthDetail = '';
  #probeStreak = 0;
  #failures = 0;
  #ejectedUntil = 0;
  #ejections = 0;
  #ejectTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #onChange: () => void;
  #closed = false;
  #sawOutage = false;
  /** A grpc-js channel to this address, created on first use by the invoker when transport is 'grpc-js'. */
  grpcClient: grpc.Client | undefined;

  constructor(address: string, weight: number, pool: Http2Pool, onChange: () => void, callPool: CallPool = pool) {
    this.address = address;
    this.weight = weight;
    this.pool = pool;
    this.callPool = callPool;
    this.#onChange = onChange;
  }

  /** Both pools' view of the address together: one that works is enough to call it reachable. */
  get connectivity(): PoolConnectivity {
    const a = this.pool.connectivity;
    if (this.callPool === this.pool) return a;
    const b = this.callPool.connectivity;
    if (a === 'ready' || b === 'ready') return 'ready';
    if (a === 'transient_failure' || b === 'transient_failure') return 'transient_failure';
    return a === 'connecting' || b === 'connecting' ? 'connecting' : 'idle';
  }

  /** Connections open to the address, both pools. */
  get sessionCount(): number {
    return this.pool.sessionCount + (this.callPool === this.pool ? 0 : this.callPool.sessionCount);
  }

  get eligible(): boolean {
    if (this.#health === 'not_serving' || this.#ejectedUntil > 0) return false;
    const c = this.connectivity;
    return c === 'ready' || (c !== 'transient_failure' && Math.max(this.pool.connectFailures, this.callPool.connectFailures) === 0);
  }

  /** Closes both pools (open streams get `graceMs` to finish). */
  closePools(graceMs: number): Promise<void> {
    const a = this.pool.close({ graceMs });
    return this.callPool === this.pool ? a : Promise.all([a, this.callPool.close({ graceMs })]).then(() => undefined);
  }

  get health(): HealthState {
    return this.#health;
  }

  get ejected(): boolean {
    return this.#ejectedUntil > 0;
  }

  describe(): { address: string; weight: number; connectivity: string; health: string; ejected: boolean; eligible: boolean; outstanding: number; calls: number } {
    return {
      address: this.address,
      weight: this.weight,
      connectivity: this.connectivity,
      health: this.#health + (this.#healthDetail ? ` (${this.#healthDetail})` : ''),
      ejected: this.ejected,
      eligible: this.eligible,
      outstanding: this.outstanding,
      calls: this.calls,
    };
  }

  /**
   * Passive outcome of a call. Returns true when this failure crossed the threshold: the balancer then calls
   * `eject()` if its ejection budget allows.
   */
  record(code: number, outlier: OutlierSettings): boolean {
    if (!isEndpointFailure(code)) {
      this.#failures = 0;
      return false;
    }
    this.#failures++;
    return outlier.enabled && !this.ejected && this.#failures >= outlier.consecutiveFailures;
  }

  /**
   * The pool reconnected after being unreachable: the pod restarted, its past failures say nothing about the new
   * process, so an ejection (earned by the calls that died with the old one) ends now.
   */
  noteConnectivity(): void {
    const c = this.connectivity;
    if (c === 'transient_failure') this.#sawOutage = true;
    else if (c === 'ready' && this.#sawOutage) {
      this.#sawOutage = false;
      this.#failures = 0;
      if (this.#ejectedUntil > 0) {
        clearTimeout(this.#ejectTimer);
        this.#ejectedUntil = 0;
      }
    }
  }

  eject(outlier: OutlierSettings): void {
    if (this.#closed) return;
    this.#ejections++;
    const ms = Math.min(outlier.maxEjectionMs, outlier.baseEjectionMs * this.#ejections);
    this.#ejectedUntil = Date.now() + ms;
    this.#failures = 0;
    clearTimeout(this.#ejectTimer);
    this.#ejectTimer = setTimeout(() => {
      this.#ejectedUntil = 0;
      this.#onChange();
    }, ms);
    this.#ejectTimer.unref();
    this.#onChange();
  }

  startHealthChecks(settings: HealthCheckSettings, scheme: 'http' | 'https'): void {
    if (!settings.enabled || this.#probeTimer) return;
    const request = encodeHealthCheckRequest(settings.service);
    const probe = (): void => {
      h2Unary(this.callPool, '/grpc.health.v1.Health/Check', request, {
        metadata: new grpc.Metadata(),
        deadline: Date.now() + settings.timeoutMs,
        maxReceiveMessageBytes: 4096,
        maxSendMessageBytes: 4096,
        scheme,
      }).then(
        (r) => {
          const status = decodeServingStatus(r.message);
          this.#probeResult(status === 1, status === 1 ? '' : `status ${SERVING_STATUS[status] ?? status}`, settings);
        },
        (err: CallError) => this.#probeResult(false, `${grpc.status[err.code] ?? err.code}: ${err.details}`, settings),
      );
    };
    this.#probeTimer = setInterval(probe, settings.intervalMs);
    this.#probeTimer.unref();
    probe();
  }

  close(): void {
    this.#closed = true;
    this.grpcClient?.close();
    clearInterval(this.#probeTimer);
    clearTimeout(this.#ejectTimer);
  }

  #probeResult(ok: boolean, detail: string, settings: HealthCheckSettings): void {
    if (this.#closed) return;
    const target: HealthState = ok ? 'serving' : 'not_serving';
    this.#healthDetail = detail;
    if (this.#health === target) {
      this.#probeStreak = 0;
      return;
    }
    this.#probeStreak++;
    const threshold = ok ? settings.healthyThreshold : settings.unhealthyThreshold;
    // The first probe decides at once: an endpoint that is down at start should not get calls until a threshold.
    if (this.#health === 'unknown' || this.#probeStreak >= threshold) {
      this.#health = target;
      this.#probeStreak = 0;
      this.#onChange();
    }
  }
}

const SERVING_STATUS: Record<number, string> = { 0: 'UNKNOWN', 1: 'SERVING', 2: 'NOT_SERVING', 3: 'SERVICE_UNKNOWN' };

/** grpc.health.v1.HealthCheckRequest { string service = 1; } */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  if (name.length === 0) return Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0x0a]), encodeVarint(name.length), name]);
}

/** grpc.health.v1.HealthCheckResponse { ServingStatus status = 1; } -> the status number (0 when absent). */
export function decodeServingStatus(message: Buffer): number {
  let i = 0;
  let status = 0;
  while (i < message.length) {
    const [tag, afterTag] = readVarint(message, i);
    const wire = tag & 7;
    i = afterTag;
    if (wire === 0) {
      const [v, next] = readVarint(message, i);
      if (tag >>> 3 === 1) status = v;
      i = next;
    } else if (wire === 2) {
      const [len, next] = readVarint(message, i);
      i = next + len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else break;
  }
  return status;
}

function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function readVarint(buf: Buffer, start: number): [number, number] {
  let result = 0;
  let shift = 0;
  let i = start;
  while (i < buf.length) {
    const b = buf[i++]!;
    if (shift < 28) result |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  return [result >>> 0, i];
}
