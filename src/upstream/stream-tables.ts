/**
 * Keeps per-request membership tables young, so finished requests are not kept alive by V8's old hash tables.
 *
 * V8 rehashes a Map or Set into a new backing table as entries come and go, and the obsolete table keeps its entries
 * and a link to its successor (for live iterators). The new table is allocated in the generation of the one it
 * replaces. While a busy table is young that is harmless: the obsolete ones die young. But a Mark-Compact promotes
 * every live young object, the current table included; from then on each rehash allocates in old space, every
 * obsolete table is a dead old object that still points at the entries it held, and the scavenger, which treats
 * old-to-new pointers as roots, keeps those entries (whole finished requests) alive until they are promoted too. The
 * next Mark-Compact frees them and promotes the then-current table again: the process stays in that state for good.
 *
 * Measured on the REST path (BENCHMARKS.md, session 4): Get at concurrency 64 ran with ~1.3 ms scavenges promoting
 * 4-60 KB each until the first Mark-Compact (5-8 s into a run), then with 4.5-8 ms scavenges promoting ~0.9-1.3 MB
 * each and a Mark-Compact every ~2 s, for as long as it ran; with the renewal, ~1.4 ms and ~120 KB after the first
 * Mark-Compact, and ~60 MiB less peak RSS. The tables that churn once per request are node:http2's per-session
 * `streams` Map and `pendingStreams` Set (client and server sessions alike), and our own sets of open responses and
 * calls.
 *
 * The remedy: every RENEW_EVERY additions, the table is replaced by a fresh copy, allocated young. The copy holds
 * only the live entries and nothing links to it from the old chain, so a promoted table is out of use within
 * RENEW_EVERY requests. For node:http2's tables this writes to the session's internal state (found by its symbol's
 * description, its two tables checked for the methods node:http2 uses, else left alone); `runtime.renewStreamTables:
 * false` in the config turns that off.
 */
import http2, { type Http2Session } from 'node:http2';

/**
 * Additions between renewals. A renewal copies the live entries (about the concurrency), once per 128 streams; a
 * promoted table is out of use after at most 128 more.
 */
export const RENEW_EVERY = 128;

let enabled = true;

/** Process-wide switch for renewing node:http2's session tables (config: runtime.renewStreamTables). */
export function setStreamTableRenewal(on: boolean): void {
  enabled = on;
}

export function streamTableRenewal(): boolean {
  return enabled;
}

const renewed = { client: 0, server: 0 };

/** How many times session tables were renewed in this process, by session kind (for tests and diagnostics). */
export function renewals(): { client: number; server: number } {
  return { ...renewed };
}

/** What node:http2 uses of its tables (primordials' SafeMap and SafeSet: not `instanceof` Map or Set). */
interface StreamMap {
  constructor: new () => StreamMap;
  get(id: number): unknown;
  set(id: number, stream: unknown): unknown;
  delete(id: number): boolean;
  forEach(fn: (stream: unknown, id: number) => void): void;
  readonly size: number;
}

interface StreamSet {
  constructor: new () => StreamSet;
  add(stream: unknown): unknown;
  delete(stream: unknown): boolean;
  forEach(fn: (stream: unknown) => void): void;
  readonly size: number;
}

interface SessionState {
  streams: StreamMap;
  pendingStreams: StreamSet;
}

function isTable(t: unknown, methods: readonly string[]): boolean {
  const o = t as Record<string, unknown> | null | undefined;
  return typeof o === 'object' && o !== null && typeof o.size === 'number' && typeof o.constructor === 'function'
    && methods.every((m) => typeof o[m] === 'function');
}

let stateSymbol: symbol | null | undefined;

function sessionState(session: Http2Session): SessionState | undefined {
  if (stateSymbol === undefined) {
    stateSymbol = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state') ?? null;
  }
  if (stateSymbol === null) return undefined;
  const state = (session as unknown as Record<symbol, Partial<SessionState> | undefined>)[stateSymbol];
  if (!isTable(state?.streams, ['get', 'set', 'delete', 'forEach'])) return undefined;
  if (!isTable(state?.pendingStreams, ['add', 'delete', 'forEach'])) return undefined;
  return state as SessionState;
}

/**
 * Replaces a session's stream tables with fresh copies of the same class and entries (what node:http2 iterates to
 * destroy or close the session's streams is unchanged). Returns whether it did.
 */
export function renewSessionTables(session: Http2Session): boolean {
  if (!enabled) return false;
  const state = sessionState(session);
  if (state === undefined) return false;
  // Filled through the methods node:http2 itself calls, in the same order.
  const streams = new state.streams.constructor();
  state.streams.forEach((stream, id) => streams.set(id, stream));
  const pending = new state.pendingStreams.constructor();
  state.pendingStreams.forEach((stream) => pending.add(stream));
  state.streams = streams;
  state.pendingStreams = pending;
  if (session.type === http2.constants.NGHTTP2_SESSION_SERVER) renewed.server++;
  else renewed.client++;
  return true;
}

/** For server sessions: renews every RENEW_EVERY 'stream' events (client sessions count the streams they open). */
export function renewOnStreams(session: Http2Session): void {
  if (!enabled || sessionState(session) === undefined) return;
  let streams = 0;
  session.on('stream', () => {
    if (++streams % RENEW_EVERY === 0) renewSessionTables(session);
  });
}

/**
 * A Set for members added and removed once per request on a long-lived owner (open responses, live calls): the
 * backing Set is replaced by a fresh copy every RENEW_EVERY additions, for the reason above.
 */
export class ChurnSet<T> implements Iterable<T> {
  #set = new Set<T>();
  #added = 0;

  add(value: T): void {
    this.#set.add(value);
    if (++this.#added < RENEW_EVERY) return;
    this.#added = 0;
    this.#set = new Set(this.#set);
  }

  delete(value: T): boolean {
    return this.#set.delete(value);
  }

  has(value: T): boolean {
    return this.#set.has(value);
  }

  clear(): void {
    this.#set = new Set();
  }

  get size(): number {
    return this.#set.size;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.#set[Symbol.iterator]();
  }
}

/** A Map with ChurnSet's renewal, for tables keyed per request (an HTTP/2 connection's streams by id). */
export class ChurnMap<K, V> {
  #map = new Map<K, V>();
  #added = 0;

  set(key: K, value: V): void {
    this.#map.set(key, value);
    if (++this.#added < RENEW_EVERY) return;
    this.#added = 0;
    this.#map = new Map(this.#map);
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map = new Map();
  }

  get size(): number {
    return this.#map.size;
  }

  values(): IterableIterator<V> {
    return this.#map.values();
  }
}
