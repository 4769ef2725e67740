/**
 * Per-client-connection protections that node:http2 does not give us.
 *
 * Rapid reset (CVE-2023-44487): nghttp2 (in Node >= 20.8.1) keeps a token bucket of RST_STREAM frames *received*
 * (burst 1000, 33/s) and sends GOAWAY(INTERNAL_ERROR) when it runs dry. Up to that point every reset stream still
 * reaches our 'stream' handler, and resets the server generates itself ("MadeYouReset", CVE-2025-8671) are not
 * counted at all. So we add, per connection:
 *  - a smaller bucket counting streams that ended with any non-zero RST_STREAM code, either direction, ending the
 *    connection with GOAWAY ENHANCE_YOUR_CALM when empty;
 *  - (listener.ts, OpenScheduler) on a connection whose bucket is not full (it has reset streams recently), a
 *    deferral of one event-loop turn before a new stream opens its backend stream, so a stream reset in the same
 *    read as its HEADERS never reaches the backend. Connections without resets skip it: it is latency on every call.
 * SETTINGS_MAX_CONCURRENT_STREAMS still bounds the streams that are open at once, reset or not.
 *
 * Idle: a connection with no open stream for `idleTimeoutMs` is closed with a graceful GOAWAY (open streams are
 * never cut, however quiet they are: a long-lived watch is legitimate).
 */
import http2 from 'node:http2';
import type { ServerHttp2Session } from 'node:http2';
import type { PassthroughLogger, ResolvedLimits } from './options.ts';

const { NGHTTP2_NO_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

export class ClientSessionGuard {
  readonly #session: ServerHttp2Session;
  readonly #limits: ResolvedLimits;
  readonly #logger: PassthroughLogger | undefined;
  readonly #onCalm: () => void;
  /** The client's address, read once: `session.socket` is a Proxy, too slow to ask per call (access log). */
  readonly remoteAddress: string | undefined;
  #tokens: number;
  #refilledAt = performance.now();
  #active = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #calmed = false;

  constructor(session: ServerHttp2Session, limits: ResolvedLimits, logger: PassthroughLogger | undefined, onCalm: () => void) {
    this.#session = session;
    this.#limits = limits;
    this.#logger = logger;
    this.#onCalm = onCalm;
    this.#tokens = limits.maxStreamResetBurst;
    this.remoteAddress = session.socket?.remoteAddress;
    session.once('close', () => clearTimeout(this.#idleTimer));
    this.#armIdle();
  }

  streamOpened(): void {
    // The idle timer is left running: when it fires with streams open it does nothing, and the last stream to
    // close re-arms it. One timer per connection instead of a clear + setTimeout per call at concurrency 1.
    this.#active++;
  }

  streamClosed(rstCode: number): void {
    this.#active--;
    if (rstCode !== NGHTTP2_NO_ERROR && !this.#takeResetToken()) {
      this.#calm();
      return;
    }
    if (this.#active === 0) this.#armIdle();
  }

  /** Streams were reset on this connection recently (the bucket has not refilled): new streams wait a turn. */
  suspicious(): boolean {
    if (this.#tokens >= this.#limits.maxStreamResetBurst) return false;
    this.#refill();
    return this.#tokens < this.#limits.maxStreamResetBurst;
  }

  #refill(): void {
    const now = performance.now();
    const refill = ((now - this.#refilledAt) / 1000) * this.#limits.streamResetRatePerSecond;
    this.#tokens = Math.min(this.#limits.maxStreamResetBurst, this.#tokens + refill);
    this.#refilledAt = now;
  }

  #takeResetToken(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #calm(): void {
    const session = this.#session;
    if (session.destroyed || this.#calmed) return;
    this.#calmed = true;
    const socket = session.socket;
    this.#logger?.warn(
      { remoteAddress: socket?.remoteAddress, remotePort: socket?.remotePort },
      'passthrough: too many stream resets on one connection, sending GOAWAY ENHANCE_YOUR_CALM',
    );
    this.#onCalm();
    // No grace period for an abusive peer: GOAWAY, then drop the connection once the frame is on its way.
    // (destroy(undefined, code) would be shorter, but node 20 sends its final GOAWAY with NO_ERROR regardless.)
    session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    setImmediate(() => session.destroy());
  }

  #armIdle(): void {
    if (this.#limits.idleTimeoutMs <= 0 || this.#session.destroyed) return;
    if (this.#idleTimer) {
      this.#idleTimer.refresh();
      return;
    }
    this.#idleTimer = setTimeout(() => {
      if (this.#active === 0 && !this.#session.closed) this.#session.close();
    }, this.#limits.idleTimeoutMs);
    this.#idleTimer.unref();
  }
}
