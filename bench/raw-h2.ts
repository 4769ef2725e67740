/**
 * A SPIKE, not product code: the least HTTP/2 client a unary gRPC call needs (RFC 9113 framing, RFC 7541 HPACK
 * decoding, connection and stream windows), written to measure one question: what does protogate's REST path look
 * like without node:http2? node:http2 turns every received header name and value into an external string, which V8
 * always allocates in old space (BENCHMARKS.md, session 5), so a gateway on it runs a Mark-Compact every few
 * seconds under load. Here headers are ordinary young strings and a call is a few JS objects.
 *
 * Used by bench/floor-gateway.ts with FLOOR_RAW_H2=1. Plaintext (h2c prior knowledge) only; no priorities, no
 * server push (disabled in SETTINGS), no CONTINUATION on the request side (our header blocks are small), padding
 * accepted. Not hardened against a hostile peer. HPACK is src/upstream/h2/hpack.ts.
 */
import net from 'node:net';
import { HpackDecoder, encodeHeaders } from '../src/upstream/h2/hpack.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const enum Type { DATA = 0, HEADERS = 1, RST_STREAM = 3, SETTINGS = 4, PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9 }
const END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY = 0x20;
/** Our receive windows: large, so that a unary response never waits for a WINDOW_UPDATE from us. */
const STREAM_WINDOW = 16 << 20;
const CONNECTION_WINDOW = 1 << 30;

export interface RawReply { status: number; message: string; body: Buffer }
type Done = (err: Error | undefined, reply?: RawReply) => void;

interface Call { id: number; done: Done; chunks: Buffer[]; headersSeen: boolean; httpStatus: number; sendBytes: Buffer | undefined }

function frame(type: Type, flags: number, stream: number, payload: Buffer | undefined): Buffer {
  const len = payload ? payload.length : 0;
  const f = Buffer.allocUnsafe(9 + len);
  f.writeUIntBE(len, 0, 3);
  f[3] = type;
  f[4] = flags;
  f.writeUInt32BE(stream, 5);
  if (payload) payload.copy(f, 9);
  return f;
}

export class RawH2Client {
  readonly #sock: net.Socket;
  readonly #authority: string;
  // Calls by stream id in a fixed ring, not a Map: a Map churned once per call is the V8 table trap of
  // src/upstream/stream-tables.ts (its rehashed tables end up in old space and keep finished calls alive).
  readonly #calls = new CallRing();
  readonly #blocks = new Map<string, Buffer>();
  readonly #hpack = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 20 });
  #nextId = 1;
  #pending: Buffer | undefined;
  #out: Buffer[] = [];
  #flushScheduled = false;
  #connSendWindow = 65535;
  #peerInitialWindow = 65535;
  #received = 0;
  #queued: number[] = [];
  #headerBlock: { stream: number; flags: number; parts: Buffer[] } | undefined;
  #failed: Error | undefined;

  constructor(host: string, port: number) {
    this.#authority = `${host}:${port}`;
    this.#sock = net.connect({ host, port, noDelay: true });
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(0x2, 0); settings.writeUInt32BE(0, 2); // ENABLE_PUSH = 0
    settings.writeUInt16BE(0x4, 6); settings.writeUInt32BE(STREAM_WINDOW, 8); // INITIAL_WINDOW_SIZE
    const update = Buffer.alloc(4);
    update.writeUInt32BE(CONNECTION_WINDOW - 65535, 0);
    this.#sock.write(Buffer.concat([PREFACE, frame(Type.SETTINGS, 0, 0, settings), frame(Type.WINDOW_UPDATE, 0, 0, update)]));
    this.#sock.on('data', (d: Buffer) => this.#onData(d));
    this.#sock.on('error', (e) => this.#fail(e));
    this.#sock.on('close', () => this.#fail(new Error('connection closed')));
  }

  unary(path: string, grpcFrame: Buffer, done: Done): void {
    if (this.#failed) { done(this.#failed); return; }
    const id = this.#nextId;
    this.#nextId += 2;
    let block = this.#blocks.get(path);
    if (!block) {
      block = encodeHeaders([[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', this.#authority],
        ['content-type', 'application/grpc'], ['te', 'trailers']]);
      this.#blocks.set(path, block);
    }
    this.#calls.set(id, { id, done, chunks: [], headersSeen: false, httpStatus: 0, sendBytes: undefined });
    this.#push(frame(Type.HEADERS, END_HEADERS, id, block));
    const call = this.#calls.get(id)!;
    call.sendBytes = grpcFrame;
    this.#queued.push(id);
    this.#sendQueued();
  }

  close(): void { this.#sock.end(); }

  /** DATA within the peer's connection window (its stream windows start at INITIAL_WINDOW_SIZE, >= our bodies). */
  #sendQueued(): void {
    while (this.#queued.length > 0) {
      const id = this.#queued[0]!;
      const call = this.#calls.get(id);
      if (!call || !call.sendBytes) { this.#queued.shift(); continue; }
      const len = call.sendBytes.length;
      if (len > this.#connSendWindow || len > this.#peerInitialWindow) return;
      this.#connSendWindow -= len;
      // SETTINGS_MAX_FRAME_SIZE is at least 16,384: bigger bodies go out in several DATA frames.
      for (let at = 0; at < len || at === 0; at += 16384) {
        const last = at + 16384 >= len;
        this.#push(frame(Type.DATA, last ? END_STREAM : 0, id, call.sendBytes.subarray(at, Math.min(len, at + 16384))));
        if (last) break;
      }
      call.sendBytes = undefined;
      this.#queued.shift();
    }
  }

  /** Frames of one event-loop turn go out in one write. */
  #push(f: Buffer): void {
    this.#out.push(f);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(() => {
        this.#flushScheduled = false;
        const out = this.#out;
        this.#out = [];
        this.#sock.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      });
    }
  }

  #onData(d: Buffer): void {
    const buf = this.#pending ? Buffer.concat([this.#pending, d]) : d;
    let pos = 0;
    while (buf.length - pos >= 9) {
      const len = buf.readUIntBE(pos, 3);
      if (buf.length - pos < 9 + len) break;
      const type = buf[pos + 3]!, flags = buf[pos + 4]!, stream = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      this.#onFrame(type, flags, stream, buf.subarray(pos + 9, pos + 9 + len));
      pos += 9 + len;
    }
    this.#pending = pos < buf.length ? Buffer.from(buf.subarray(pos)) : undefined;
  }

  #onFrame(type: number, flags: number, stream: number, p: Buffer): void {
    switch (type) {
      case Type.DATA: {
        const call = this.#calls.get(stream);
        let data = p;
        if (flags & PADDED) data = p.subarray(1, p.length - p[0]!);
        if (call && data.length > 0) call.chunks.push(Buffer.from(data));
        this.#received += p.length;
        if (this.#received > CONNECTION_WINDOW / 2) {
          const u = Buffer.alloc(4);
          u.writeUInt32BE(this.#received, 0);
          this.#received = 0;
          this.#push(frame(Type.WINDOW_UPDATE, 0, 0, u));
        }
        if (flags & END_STREAM) this.#finish(stream, undefined);
        return;
      }
      case Type.HEADERS: {
        let block = p;
        if (flags & PADDED) block = block.subarray(1, block.length - block[0]!);
        if (flags & PRIORITY) block = block.subarray(5);
        if (flags & END_HEADERS) this.#onHeaders(stream, flags, block);
        else this.#headerBlock = { stream, flags, parts: [Buffer.from(block)] };
        return;
      }
      case Type.CONTINUATION: {
        const hb = this.#headerBlock;
        if (!hb || hb.stream !== stream) { this.#fail(new Error('unexpected CONTINUATION')); return; }
        hb.parts.push(Buffer.from(p));
        if (flags & END_HEADERS) {
          this.#headerBlock = undefined;
          this.#onHeaders(stream, hb.flags, Buffer.concat(hb.parts));
        }
        return;
      }
      case Type.RST_STREAM:
        this.#finish(stream, new Error(`stream reset (code ${p.readUInt32BE(0)})`));
        return;
      case Type.SETTINGS:
        if (flags & ACK) return;
        for (let i = 0; i + 6 <= p.length; i += 6) {
          const id = p.readUInt16BE(i), v = p.readUInt32BE(i + 2);
          if (id === 0x4) this.#peerInitialWindow = v;
        }
        this.#push(frame(Type.SETTINGS, ACK, 0, undefined));
        this.#sendQueued();
        return;
      case Type.PING:
        if (!(flags & ACK)) this.#push(frame(Type.PING, ACK, 0, p));
        return;
      case Type.GOAWAY:
        this.#fail(new Error(`GOAWAY (code ${p.readUInt32BE(4)})`));
        return;
      case Type.WINDOW_UPDATE:
        if (stream === 0) this.#connSendWindow += p.readUInt32BE(0) & 0x7fffffff;
        this.#sendQueued();
        return;
      default:
        return; // PRIORITY and unknown types are ignored, as RFC 9113 requires
    }
  }

  #onHeaders(stream: number, flags: number, block: Buffer): void {
    // Decoded even for streams we no longer track: the HPACK dynamic table must see every block.
    const fields = this.#hpack.decode(block);
    const call = this.#calls.get(stream);
    if (!call) return;
    if (!call.headersSeen) {
      call.headersSeen = true;
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === ':status') call.httpStatus = Number(fields[i + 1]);
    }
    if (flags & END_STREAM) {
      let status = -1, message = '';
      for (let i = 0; i < fields.length; i += 2) {
        if (fields[i] === 'grpc-status') status = Number(fields[i + 1]);
        else if (fields[i] === 'grpc-message') message = fields[i + 1]!;
      }
      this.#calls.delete(stream);
      if (call.httpStatus !== 200 || status < 0) { call.done(new Error(`HTTP ${call.httpStatus}, grpc-status ${status}`)); return; }
      const body = call.chunks.length === 1 ? call.chunks[0]! : Buffer.concat(call.chunks);
      call.done(undefined, { status, message, body });
    }
  }

  #finish(stream: number, err: Error | undefined): void {
    const call = this.#calls.get(stream);
    if (!call) return;
    if (err) { this.#calls.delete(stream); call.done(err); }
    // END_STREAM on DATA without trailers is a protocol error for gRPC: reported when the trailers never come.
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = err;
    for (const call of this.#calls.drain()) call.done(err);
  }
}

/** In-flight calls by stream id; ids are odd and increase, so (id >> 1) mod size is a slot until size are in flight. */
class CallRing {
  static readonly SIZE = 8192;
  readonly #slots = new Array<Call | undefined>(CallRing.SIZE).fill(undefined);
  readonly #overflow = new Map<number, Call>();

  get(id: number): Call | undefined {
    const c = this.#slots[(id >>> 1) % CallRing.SIZE];
    return c !== undefined && c.id === id ? c : this.#overflow.get(id);
  }

  set(id: number, call: Call): void {
    const i = (id >>> 1) % CallRing.SIZE;
    if (this.#slots[i] === undefined) this.#slots[i] = call;
    else this.#overflow.set(id, call);
  }

  delete(id: number): void {
    const i = (id >>> 1) % CallRing.SIZE;
    if (this.#slots[i]?.id === id) this.#slots[i] = undefined;
    else this.#overflow.delete(id);
  }

  drain(): Call[] {
    const all = [...this.#slots.filter((c): c is Call => c !== undefined), ...this.#overflow.values()];
    this.#slots.fill(undefined);
    this.#overflow.clear();
    return all;
  }
}
