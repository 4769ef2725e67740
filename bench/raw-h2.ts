/**
 * A SPIKE, not product code: the least HTTP/2 client a unary gRPC call needs (RFC 9113 framing, RFC 7541 HPACK
 * decoding, connection and stream windows), written to measure one question: what does protogate's REST path look
 * like without node:http2? node:http2 turns every received header name and value into an external string, which V8
 * always allocates in old space (BENCHMARKS.md, session 5), so a gateway on it runs a Mark-Compact every few
 * seconds under load. Here headers are ordinary young strings and a call is a few JS objects.
 *
 * Used by bench/floor-gateway.ts with FLOOR_RAW_H2=1. Plaintext (h2c prior knowledge) only; no priorities, no
 * server push (disabled in SETTINGS), no CONTINUATION on the request side (our header blocks are small), padding
 * accepted. Not hardened against a hostile peer.
 */
import net from 'node:net';

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

function hpackString(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

function hpackInt(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const out = [firstByteFlags | max];
  value -= max;
  while (value >= 128) { out.push((value & 127) | 128); value >>>= 7; }
  out.push(value);
  return Buffer.from(out);
}

export class RawH2Client {
  readonly #sock: net.Socket;
  readonly #authority: string;
  // Calls by stream id in a fixed ring, not a Map: a Map churned once per call is the V8 table trap of
  // src/upstream/stream-tables.ts (its rehashed tables end up in old space and keep finished calls alive).
  readonly #calls = new CallRing();
  readonly #blocks = new Map<string, Buffer>();
  readonly #hpack = new HpackDecoder();
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
      // :method POST and :scheme http are static-table entries 3 and 6; the rest are literals without indexing.
      block = Buffer.concat([
        Buffer.from([0x83, 0x86]),
        hpackInt(4, 4, 0), hpackString(path),
        hpackInt(1, 4, 0), hpackString(this.#authority),
        hpackInt(31, 4, 0), hpackString('application/grpc'),
        Buffer.from([0]), hpackString('te'), hpackString('trailers'),
      ]);
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
          if (id === 0x1) this.#hpack.maxAllowed = v;
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

/** RFC 7541, Appendix A. */
const STATIC: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** RFC 7541, Appendix B: code lengths of symbols 0..255 (EOS is 30 bits). The code is canonical, so lengths suffice. */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

/** Binary decode tree in two Int32Arrays: child[node*2 + bit] (> 0: node, <= 0: -(symbol) - 1 leaf marker). */
const TREE = (() => {
  const symbols = HUFFMAN_LENGTHS.map((len, sym) => ({ len, sym })).sort((a, b) => a.len - b.len || a.sym - b.sym);
  const child = new Int32Array(2 * 600).fill(0);
  let nodes = 1;
  let code = 0, prevLen = symbols[0]!.len;
  for (const { len, sym } of symbols) {
    code <<= len - prevLen;
    prevLen = len;
    let node = 0;
    for (let bit = len - 1; bit >= 0; bit--) {
      const b = (code >>> bit) & 1;
      if (bit === 0) { child[node * 2 + b] = -sym - 1; break; }
      let next = child[node * 2 + b]!;
      if (next <= 0) { next = nodes++; child[node * 2 + b] = next; }
      node = next;
    }
    code++;
  }
  return child;
})();

function huffmanDecode(src: Buffer, start: number, end: number): string {
  let out = '';
  let node = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const next = TREE[node * 2 + ((byte >>> bit) & 1)]!;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === 256) throw new Error('HPACK: EOS in a string');
        out += String.fromCharCode(sym);
        node = 0;
      } else {
        node = next;
      }
    }
  }
  return out; // the padding (up to 7 one bits, a prefix of EOS) is left in `node`, as RFC 7541 allows
}

class HpackDecoder {
  /** SETTINGS_HEADER_TABLE_SIZE we announced: the default. */
  maxAllowed = 4096;
  #max = 4096;
  #size = 0;
  #table: Array<[string, string]> = []; // newest first

  decode(b: Buffer): string[] {
    const out: string[] = [];
    let pos = 0;
    const int = (prefix: number): number => {
      const mask = (1 << prefix) - 1;
      let v = b[pos++]! & mask;
      if (v < mask) return v;
      let shift = 0, byte;
      do { byte = b[pos++]!; v += (byte & 127) * 2 ** shift; shift += 7; } while (byte & 128);
      return v;
    };
    const str = (): string => {
      const huffman = (b[pos]! & 0x80) !== 0;
      const len = int(7);
      const s = huffman ? huffmanDecode(b, pos, pos + len) : b.toString('latin1', pos, pos + len);
      pos += len;
      return s;
    };
    const entry = (index: number): readonly [string, string] => {
      if (index >= 1 && index <= STATIC.length) return STATIC[index - 1]!;
      const e = this.#table[index - STATIC.length - 1];
      if (!e) throw new Error(`HPACK: index ${index} out of range`);
      return e;
    };
    while (pos < b.length) {
      const first = b[pos]!;
      if (first & 0x80) {
        const [n, v] = entry(int(7));
        out.push(n, v);
      } else if (first & 0x40) {
        const index = int(6);
        const name = index ? entry(index)[0] : str();
        const value = str();
        out.push(name, value);
        this.#add(name, value);
      } else if (first & 0x20) {
        const size = int(5);
        if (size > this.maxAllowed) throw new Error('HPACK: table size over the limit');
        this.#max = size;
        this.#evict();
      } else {
        const index = int(4);
        const name = index ? entry(index)[0] : str();
        out.push(name, str());
      }
    }
    return out;
  }

  #add(name: string, value: string): void {
    this.#table.unshift([name, value]);
    this.#size += 32 + name.length + value.length;
    this.#evict();
  }

  #evict(): void {
    while (this.#size > this.#max && this.#table.length > 0) {
      const [n, v] = this.#table.pop()!;
      this.#size -= 32 + n.length + v.length;
    }
  }
}
