/**
 * One HTTP/2 client connection (RFC 9113) on a socket we own: the in-house upstream client behind
 * `transport: 'socket'` (socket-session.ts; hpack.ts says why node:http2 is being replaced). It does what a gRPC
 * client needs and no more: requests with header blocks, DATA both ways under both flow-control windows, trailers,
 * RST_STREAM, SETTINGS, PING, GOAWAY. No server push (disabled in our SETTINGS), no priorities, no HTTP/1 upgrade.
 *
 * Receive-side backpressure is the caller's: a stream's DATA is handed over as it arrives and the stream window is
 * given back only when the caller calls `consumed(n)`, so a slow consumer stops the peer at the stream window. The
 * connection window is given back on receipt: the stream windows bound what waits, and a stopped stream never
 * blocks the others.
 *
 * A protocol violation by the peer ends the connection (GOAWAY with the error code, every open stream fails);
 * a stream-level one resets that stream. Frames of one event-loop turn go out in one socket write.
 */
import type { Socket } from 'node:net';
import { HpackDecoder, HpackError, encodeHeaders } from './hpack.ts';
import { ChurnMap, ChurnSet } from '../stream-tables.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const enum FrameType { DATA = 0, HEADERS = 1, PRIORITY = 2, RST_STREAM = 3, SETTINGS = 4, PUSH_PROMISE = 5, PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9 }
const END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY_FLAG = 0x20;

/** RFC 9113, section 7. */
export const ErrorCode = {
  NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3, SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5, FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7, CANCEL: 0x8, COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa, ENHANCE_YOUR_CALM: 0xb, INADEQUATE_SECURITY: 0xc, HTTP_1_1_REQUIRED: 0xd,
} as const;

const DEFAULT_WINDOW = 65535;
const MAX_WINDOW = 2 ** 31 - 1;
/** Stream ids are 31 bits; a client's are odd. */
const MAX_STREAM_ID = 2 ** 31 - 1;

export interface H2ConnectionOptions {
  /** Our SETTINGS_INITIAL_WINDOW_SIZE: how much one stream may have in flight toward us. Default 1 MiB. */
  streamWindow?: number;
  /** How much all streams together may have in flight toward us. Default 16 MiB. */
  connectionWindow?: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE. Default 64 KiB. */
  maxHeaderListSize?: number;
  /** The last stream id this connection may use. Default 2^31 - 1 (RFC 9113); lowered only by tests. */
  maxStreamId?: number;
}

/** Why a stream ended without its trailers: the connection went away, or the peer reset it. */
export class H2StreamError extends Error {
  /** RFC 9113 error code (RST_STREAM's, GOAWAY's, or ours). */
  readonly code: number;
  /** The request did not reach the application: safe to send again (REFUSED_STREAM, or above GOAWAY's last id). */
  readonly unprocessed: boolean;
  /** The whole connection failed or closed (not this stream alone). */
  readonly connection: boolean;
  constructor(message: string, code: number, unprocessed: boolean, connection = false) {
    super(message);
    this.code = code;
    this.unprocessed = unprocessed;
    this.connection = connection;
  }
}

export interface StreamHandlers {
  /** A header block: the response headers, then (with endStream) the trailers. [name, value, ...]. */
  onHeaders(fields: string[], endStream: boolean): void;
  /** Payload of one DATA frame; call stream.consumed(n) when it is processed, to let the peer send more. */
  onData(chunk: Buffer, endStream: boolean): void;
  /** The stream ended without trailers: reset by the peer, or the connection failed. */
  onError(err: H2StreamError): void;
}

export class H2Stream {
  readonly id: number;
  readonly #conn: H2Connection;
  readonly handlers: StreamHandlers;
  /** What the peer still lets us send on this stream. */
  sendWindow: number;
  /** Body bytes waiting for window, and whether END_STREAM follows them. */
  pending: Buffer[] = [];
  pendingEnd = false;
  localClosed = false;
  remoteClosed = false;
  headersReceived = false;
  /** Bytes the peer sent that have not been given back with a WINDOW_UPDATE yet (padding included). */
  recvOutstanding = 0;
  #unconsumed = 0;

  constructor(conn: H2Connection, id: number, handlers: StreamHandlers, sendWindow: number) {
    this.#conn = conn;
    this.id = id;
    this.handlers = handlers;
    this.sendWindow = sendWindow;
  }

  /** Queues body bytes; `end` sends END_STREAM after them. */
  write(data: Buffer | undefined, end: boolean): void {
    if (this.localClosed || this.pendingEnd) throw new Error(`stream ${this.id}: write after end`);
    if (data && data.length > 0) this.pending.push(data);
    this.pendingEnd = end;
    this.#conn.flushStream(this);
  }

  /** Gives n bytes of receive window back to the peer. */
  consumed(n: number): void {
    this.#unconsumed += n;
    // Batched: a WINDOW_UPDATE per DATA frame would double the frames on the wire.
    if (this.#unconsumed >= this.#conn.streamWindow / 4 && !this.remoteClosed) {
      this.#conn.windowUpdate(this.id, this.#unconsumed);
      this.recvOutstanding -= this.#unconsumed;
      this.#unconsumed = 0;
    }
  }

  /** Ends the stream from our side with RST_STREAM (CANCEL by default); no handler is called afterwards. */
  reset(code: number = ErrorCode.CANCEL): void {
    this.#conn.resetStream(this, code);
  }
}

export class H2Connection {
  readonly streamWindow: number;
  readonly #socket: Socket;
  readonly #connectionWindow: number;
  readonly #maxHeaderList: number;
  readonly #decoder: HpackDecoder;
  // Churned once per call: renewed tables, or V8 keeps finished calls alive through them (stream-tables.ts).
  readonly #streams = new ChurnMap<number, H2Stream>();
  #nextId = 1;
  readonly #maxStreamId: number;
  #out: Buffer[] = [];
  #flushQueued = false;
  #inbound: Buffer | undefined;
  #prefaceSeen = false;
  #headerBlock: { stream: number; endStream: boolean; parts: Buffer[]; size: number } | undefined;
  #connSendWindow = DEFAULT_WINDOW;
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = 16384;
  #peerMaxStreams = Infinity;
  /** DATA bytes received on the connection and not yet given back with a WINDOW_UPDATE. */
  #connCredit = 0;
  /** We sent GOAWAY: no new streams, close when the last one ends. */
  #draining = false;
  /** Streams with body bytes waiting for the connection window, oldest first. */
  #blocked = new ChurnSet<H2Stream>();
  #goawayLastId = -1;
  #closed: H2StreamError | undefined;
  #pings: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /**
   * Settles with the peer's first SETTINGS frame (its limits are known from then on), or rejects if the connection
   * fails before it: what a pool waits for before it counts a connection as ready.
   */
  readonly ready: Promise<void>;
  #settled: { resolve: () => void; reject: (e: Error) => void } | undefined;
  onGoaway: ((lastStreamId: number, code: number) => void) | undefined;
  onClose: ((err: H2StreamError) => void) | undefined;
  /** Room for a new stream may have appeared: a stream ended, or the peer's SETTINGS changed its limit. */
  onCapacity: (() => void) | undefined;

  constructor(socket: Socket, options: H2ConnectionOptions = {}) {
    this.#socket = socket;
    this.ready = new Promise((resolve, reject) => { this.#settled = { resolve, reject }; });
    this.ready.catch(() => undefined); // a caller that never waits for it must not see an unhandled rejection
    this.#maxStreamId = Math.min(options.maxStreamId ?? MAX_STREAM_ID, MAX_STREAM_ID);
    this.streamWindow = options.streamWindow ?? 1 << 20;
    this.#connectionWindow = options.connectionWindow ?? 16 << 20;
    const maxList = options.maxHeaderListSize ?? 64 << 10;
    this.#maxHeaderList = maxList;
    this.#decoder = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: maxList });
    const settings = Buffer.alloc(18);
    settings.writeUInt16BE(0x2, 0); settings.writeUInt32BE(0, 2); // ENABLE_PUSH
    settings.writeUInt16BE(0x4, 6); settings.writeUInt32BE(this.streamWindow, 8); // INITIAL_WINDOW_SIZE
    settings.writeUInt16BE(0x6, 12); settings.writeUInt32BE(maxList, 14); // MAX_HEADER_LIST_SIZE
    this.#push(PREFACE);
    this.#push(frame(FrameType.SETTINGS, 0, 0, settings));
    if (this.#connectionWindow > DEFAULT_WINDOW) this.windowUpdate(0, this.#connectionWindow - DEFAULT_WINDOW);
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', (e) => this.#fail(new H2StreamError(`connection error: ${e.message}`, ErrorCode.INTERNAL_ERROR, false, true)));
    socket.on('close', () => this.#fail(new H2StreamError('connection closed', ErrorCode.INTERNAL_ERROR, false, true)));
  }

  /** Streams open now. */
  get activeStreams(): number {
    return this.#streams.size;
  }

  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (Infinity until it sets one). */
  get maxConcurrentStreams(): number {
    return this.#peerMaxStreams;
  }

  /** Whether a new stream may be opened: not closing, under the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  get available(): boolean {
    return this.#closed === undefined && !this.#draining && this.#goawayLastId < 0 && this.#streams.size < this.#peerMaxStreams && !this.streamIdsExhausted;
  }

  /** Every stream id has been used: the connection must be replaced (a long-lived busy one gets there in hours). */
  get streamIdsExhausted(): boolean {
    return this.#nextId > this.#maxStreamId;
  }

  /** Opens a stream with a HEADERS frame (END_STREAM when `endStream`: a request without a body). */
  request(headers: ReadonlyArray<readonly [string, string]>, handlers: StreamHandlers, endStream = false): H2Stream {
    if (this.#closed) throw this.#closed;
    if (!this.available) throw new H2StreamError('the connection takes no new streams (GOAWAY or MAX_CONCURRENT_STREAMS)', ErrorCode.REFUSED_STREAM, true);
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new H2Stream(this, id, handlers, this.#peerInitialWindow);
    this.#streams.set(id, stream);
    const block = encodeHeaders(headers);
    // A header block over the peer's frame size goes out as HEADERS + CONTINUATION frames.
    const max = this.#peerMaxFrame;
    for (let at = 0; at === 0 || at < block.length; at += max) {
      const last = at + max >= block.length;
      const part = block.subarray(at, Math.min(block.length, at + max));
      const flags = (last ? END_HEADERS : 0) | (at === 0 && endStream ? END_STREAM : 0);
      this.#push(frame(at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, flags, id, part));
      if (last) break;
    }
    if (endStream) stream.localClosed = true;
    return stream;
  }

  /** Round trip to the peer and back (PING); resolves on the ACK. */
  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#closed) { reject(this.#closed); return; }
      this.#pings.push({ resolve, reject });
      this.#push(frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
    });
  }

  /** GOAWAY(NO_ERROR) and close once the open streams have ended (or at once with `force`). */
  close(force = false): void {
    if (this.#closed) return;
    // Last stream id 0: a client accepts no streams from the server.
    this.#push(goaway(0, ErrorCode.NO_ERROR));
    this.#draining = true;
    if (force || this.#streams.size === 0) this.#end();
  }

  flushStream(stream: H2Stream): void {
    while (stream.pending.length > 0) {
      const chunk = stream.pending[0]!;
      const n = Math.min(chunk.length, stream.sendWindow, this.#connSendWindow, this.#peerMaxFrame);
      if (n <= 0) {
        if (this.#connSendWindow <= 0) this.#blocked.add(stream);
        return;
      }
      const last = n === chunk.length && stream.pending.length === 1;
      const payload = n === chunk.length ? chunk : chunk.subarray(0, n);
      if (n === chunk.length) stream.pending.shift();
      else stream.pending[0] = chunk.subarray(n);
      stream.sendWindow -= n;
      this.#connSendWindow -= n;
      const end = last && stream.pendingEnd;
      this.#push(frame(FrameType.DATA, end ? END_STREAM : 0, stream.id, payload));
      if (end) { stream.localClosed = true; this.#maybeDone(stream); }
    }
    if (stream.pendingEnd && !stream.localClosed) {
      this.#push(frame(FrameType.DATA, END_STREAM, stream.id, undefined));
      stream.localClosed = true;
      this.#maybeDone(stream);
    }
    this.#blocked.delete(stream);
  }

  windowUpdate(stream: number, n: number): void {
    if (this.#closed || n <= 0) return;
    const p = Buffer.allocUnsafe(4);
    p.writeUInt32BE(n, 0);
    this.#push(frame(FrameType.WINDOW_UPDATE, 0, stream, p));
  }

  resetStream(stream: H2Stream, code: number): void {
    if (!this.#streams.has(stream.id)) return;
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    // Closed both ways: a later write() must not put frames on a stream the peer has been told is gone.
    stream.localClosed = stream.remoteClosed = true;
    stream.pending.length = 0;
    const p = Buffer.allocUnsafe(4);
    p.writeUInt32BE(code, 0);
    if (!this.#closed) this.#push(frame(FrameType.RST_STREAM, 0, stream.id, p));
    this.#afterStreamEnd();
  }

  #push(f: Buffer): void {
    this.#out.push(f);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    // setImmediate, not nextTick: the frames of every call started in this turn of the event loop (each HTTP
    // request is its own I/O callback) go out in one write. With nextTick each call paid its own write() syscall
    // (two, while its HEADERS and DATA were pushed in different microtasks): a quarter of the gateway's CPU under
    // load (strace and --cpu-prof, BENCHMARKS.md session 6).
    setImmediate(() => {
      this.#flushQueued = false;
      const out = this.#out;
      this.#out = [];
      if (!this.#socket.destroyed) this.#socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    });
  }

  #onData(d: Buffer): void {
    const buf = this.#inbound ? Buffer.concat([this.#inbound, d]) : d;
    let pos = 0;
    while (buf.length - pos >= 9 && !this.#closed) {
      if (!this.#prefaceSeen && !this.#checkPreface(buf)) return;
      const len = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (len > 16384) { this.#connectionError(ErrorCode.FRAME_SIZE_ERROR, `a frame of ${len} bytes (our SETTINGS_MAX_FRAME_SIZE is 16384)`); return; }
      if (buf.length - pos < 9 + len) break;
      const type = buf[pos + 3]!, flags = buf[pos + 4]!, stream = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      this.#onFrame(type, flags, stream, buf.subarray(pos + 9, pos + 9 + len));
      pos += 9 + len;
    }
    this.#inbound = pos < buf.length ? Buffer.from(buf.subarray(pos)) : undefined;
  }

  /**
   * The server's connection preface is a SETTINGS frame (RFC 9113, 3.4). Anything else is not an HTTP/2 server, and
   * the commonest case, an HTTP/1 server answering our preface with "HTTP/1.1 400 ...", deserves words an operator
   * can act on rather than a frame-size error.
   */
  #checkPreface(buf: Buffer): boolean {
    this.#prefaceSeen = true;
    if (buf.subarray(0, 5).toString('latin1') === 'HTTP/') {
      const line = buf.subarray(0, 80).toString('latin1').split('\r\n')[0];
      this.#connectionError(ErrorCode.PROTOCOL_ERROR, `the backend answered in HTTP/1 ("${line}"), not HTTP/2`);
      return false;
    }
    if (buf[3] !== FrameType.SETTINGS) {
      this.#connectionError(ErrorCode.PROTOCOL_ERROR, "the backend's first frame is not SETTINGS: it does not speak HTTP/2 here");
      return false;
    }
    return true;
  }

  #onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.#headerBlock && type !== FrameType.CONTINUATION) {
      this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'a frame inside a header block (CONTINUATION expected)');
      return;
    }
    switch (type) {
      case FrameType.DATA: return this.#onDataFrame(flags, id, p);
      case FrameType.HEADERS: {
        if (id === 0) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
        let block = p;
        if (flags & PADDED) {
          if (block.length < 1 || block[0]! >= block.length) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS padding too long');
          block = block.subarray(1, block.length - block[0]!);
        }
        if (flags & PRIORITY_FLAG) block = block.subarray(5);
        this.#headerBlock = { stream: id, endStream: (flags & END_STREAM) !== 0, parts: [block], size: block.length };
        if (flags & END_HEADERS) this.#endHeaderBlock();
        return;
      }
      case FrameType.CONTINUATION: {
        const hb = this.#headerBlock;
        if (!hb || hb.stream !== id) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block');
        hb.parts.push(p);
        hb.size += p.length;
        // A CONTINUATION flood: more compressed bytes than the decoded list may have is an attack or a bug.
        if (hb.size > 4 * this.#maxHeaderList) return this.#connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block larger than our SETTINGS_MAX_HEADER_LIST_SIZE');
        if (flags & END_HEADERS) this.#endHeaderBlock();
        return;
      }
      case FrameType.RST_STREAM: {
        if (p.length !== 4) return this.#connectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM of the wrong size');
        const stream = this.#streams.get(id);
        if (!stream) return;
        const code = p.readUInt32BE(0);
        this.#streams.delete(id);
        this.#blocked.delete(stream);
        stream.handlers.onError(new H2StreamError(`stream reset by the peer (${errorName(code)})`, code, code === ErrorCode.REFUSED_STREAM));
        this.#afterStreamEnd();
        return;
      }
      case FrameType.SETTINGS: return this.#onSettings(flags, id, p);
      case FrameType.PING:
        if (p.length !== 8 || id !== 0) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'malformed PING');
        if (flags & ACK) this.#pings.shift()?.resolve();
        else this.#push(frame(FrameType.PING, ACK, 0, p));
        return;
      case FrameType.GOAWAY: {
        if (p.length < 8) return this.#connectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY too short');
        const last = p.readUInt32BE(0) & 0x7fffffff, code = p.readUInt32BE(4);
        this.#goawayLastId = last;
        // Streams the peer never saw fail as unprocessed: a caller may send them again on another connection.
        for (const s of [...this.#streams.values()]) {
          if (s.id > last) {
            this.#streams.delete(s.id);
            s.handlers.onError(new H2StreamError(`the backend is going away (GOAWAY ${errorName(code)}) before this stream`, code, true));
          }
        }
        this.onGoaway?.(last, code);
        this.#afterStreamEnd();
        return;
      }
      case FrameType.WINDOW_UPDATE: {
        if (p.length !== 4) return this.#connectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of the wrong size');
        const n = p.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) {
          if (n === 0) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
          this.#connSendWindow += n;
          if (this.#connSendWindow > MAX_WINDOW) return this.#connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window over 2^31 - 1');
          for (const s of [...this.#blocked]) this.flushStream(s);
          return;
        }
        const stream = this.#streams.get(id);
        if (!stream) return;
        if (n === 0) return this.resetStream(stream, ErrorCode.PROTOCOL_ERROR);
        stream.sendWindow += n;
        if (stream.sendWindow > MAX_WINDOW) return this.resetStream(stream, ErrorCode.FLOW_CONTROL_ERROR);
        this.flushStream(stream);
        return;
      }
      case FrameType.PUSH_PROMISE:
        return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE although SETTINGS_ENABLE_PUSH is 0');
      default:
        return; // PRIORITY and unknown frame types are ignored (RFC 9113, 4.1 and 5.5)
    }
  }

  #onDataFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    // The whole frame, padding included, counts against both windows.
    this.#connCredit += p.length;
    if (this.#connCredit > this.#connectionWindow) return this.#connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'the peer sent more than the connection window');
    if (this.#connCredit >= this.#connectionWindow / 4) {
      this.windowUpdate(0, this.#connCredit);
      this.#connCredit = 0;
    }
    let data = p;
    if (flags & PADDED) {
      if (p.length < 1 || p[0]! >= p.length) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'DATA padding too long');
      data = p.subarray(1, p.length - p[0]!);
    }
    const stream = this.#streams.get(id);
    if (!stream) return;
    if (!stream.headersReceived) {
      this.resetStream(stream, ErrorCode.PROTOCOL_ERROR);
      stream.handlers.onError(new H2StreamError('DATA before the response headers', ErrorCode.PROTOCOL_ERROR, false));
      return;
    }
    stream.recvOutstanding += p.length;
    if (stream.recvOutstanding > this.streamWindow) {
      this.resetStream(stream, ErrorCode.FLOW_CONTROL_ERROR);
      stream.handlers.onError(new H2StreamError('the backend sent more than the stream window', ErrorCode.FLOW_CONTROL_ERROR, false));
      return;
    }
    const end = (flags & END_STREAM) !== 0;
    if (end) stream.remoteClosed = true;
    // Padding is nobody's to consume: given back at once.
    if (data.length < p.length) stream.consumed(p.length - data.length);
    stream.handlers.onData(data, end);
    if (end) this.#maybeDone(stream);
  }

  #endHeaderBlock(): void {
    const hb = this.#headerBlock!;
    this.#headerBlock = undefined;
    let fields: string[];
    try {
      // Decoded even for a stream we reset: the dynamic table must see every block.
      fields = this.#decoder.decode(hb.parts.length === 1 ? hb.parts[0]! : Buffer.concat(hb.parts));
    } catch (err) {
      const e = err as HpackError;
      const stream = this.#streams.get(hb.stream);
      if (e instanceof HpackError && e.listTooLarge) {
        if (stream) {
          this.resetStream(stream, ErrorCode.PROTOCOL_ERROR);
          stream.handlers.onError(new H2StreamError(`response headers too large: ${e.message}`, ErrorCode.PROTOCOL_ERROR, false));
        }
        return;
      }
      this.#connectionError(ErrorCode.COMPRESSION_ERROR, e.message);
      return;
    }
    const stream = this.#streams.get(hb.stream);
    if (!stream) return;
    stream.headersReceived = true;
    if (hb.endStream) stream.remoteClosed = true;
    stream.handlers.onHeaders(fields, hb.endStream);
    if (hb.endStream) this.#maybeDone(stream);
  }

  #onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & ACK) return;
    if (p.length % 6 !== 0) return this.#connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS length not a multiple of 6');
    for (let i = 0; i < p.length; i += 6) {
      const key = p.readUInt16BE(i), v = p.readUInt32BE(i + 2);
      if (key === 0x3) this.#peerMaxStreams = v;
      else if (key === 0x4) {
        if (v > MAX_WINDOW) return this.#connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE over 2^31 - 1');
        // A change applies to every open stream's window (RFC 9113, 6.9.2).
        const delta = v - this.#peerInitialWindow;
        this.#peerInitialWindow = v;
        for (const s of this.#streams.values()) s.sendWindow += delta;
      } else if (key === 0x5) {
        if (v < 16384 || v > 16777215) return this.#connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range');
        this.#peerMaxFrame = v;
      }
    }
    this.#push(frame(FrameType.SETTINGS, ACK, 0, undefined));
    this.#settled?.resolve();
    this.#settled = undefined;
    for (const s of [...this.#streams.values()]) if (s.pending.length > 0 || (s.pendingEnd && !s.localClosed)) this.flushStream(s);
    this.onCapacity?.();
  }

  #maybeDone(stream: H2Stream): void {
    if (stream.localClosed && stream.remoteClosed && this.#streams.get(stream.id) === stream) {
      this.#streams.delete(stream.id);
      this.#afterStreamEnd();
    }
  }

  #afterStreamEnd(): void {
    if ((this.#draining || this.#goawayLastId >= 0) && this.#streams.size === 0) this.#end();
    else this.onCapacity?.();
  }

  #connectionError(code: number, message: string): void {
    if (this.#closed) return;
    this.#push(goaway(0, code));
    this.#fail(new H2StreamError(`HTTP/2 ${errorName(code)}: ${message}`, code, false, true));
    this.#end();
  }

  #end(): void {
    process.nextTick(() => this.#socket.end());
    this.#fail(new H2StreamError('connection closed', ErrorCode.NO_ERROR, false, true));
  }

  #fail(err: H2StreamError): void {
    if (this.#closed) return;
    this.#closed = err;
    this.#settled?.reject(err);
    this.#settled = undefined;
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#blocked.clear();
    for (const s of streams) s.handlers.onError(err);
    for (const p of this.#pings.splice(0)) p.reject(err);
    this.onClose?.(err);
  }
}

function frame(type: FrameType, flags: number, stream: number, payload: Buffer | undefined): Buffer {
  const len = payload ? payload.length : 0;
  const f = Buffer.allocUnsafe(9 + len);
  f[0] = len >>> 16; f[1] = (len >>> 8) & 0xff; f[2] = len & 0xff;
  f[3] = type;
  f[4] = flags;
  f.writeUInt32BE(stream, 5);
  if (payload) payload.copy(f, 9);
  return f;
}

function goaway(lastStream: number, code: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastStream, 0);
  p.writeUInt32BE(code, 4);
  return frame(FrameType.GOAWAY, 0, 0, p);
}

function errorName(code: number): string {
  for (const [k, v] of Object.entries(ErrorCode)) if (v === code) return k;
  return `error 0x${code.toString(16)}`;
}
