/**
 * HPACK (RFC 7541) for protogate's own HTTP/2 client (connection.ts), which carries transcoded calls with
 * `transport: 'socket'`, the default. Why replace a built-in: node:http2 turns every header name and value it receives into an
 * external string, which V8 always allocates in old space, so a gateway on it runs a Mark-Compact every few seconds
 * under load, and the whole binding costs a Node gateway a quarter to a third of its rate (BENCHMARKS.md, session 5:
 * the floor and protogate with and without the bench/raw-h2.ts spike). npm has no maintained HPACK codec (hpack.js
 * is unmaintained and stream-based), hence this one.
 *
 * Decoding is the part with a peer on the other side: every field of a header block is checked (index range,
 * integer and string bounds, Huffman padding and EOS, table size updates only at the start and within our
 * SETTINGS_HEADER_TABLE_SIZE) and the decoded list is bounded like SETTINGS_MAX_HEADER_LIST_SIZE (name + value +
 * 32 per field). Any violation is an HpackError: for the connection a COMPRESSION_ERROR, except `listTooLarge`,
 * which fails only the stream (the block was still decoded to the end, so the dynamic table stays in sync).
 * Encoding is for our requests: literals without indexing, with the static table's name index where there is one,
 * no Huffman, so no dynamic table is ever needed on the peer's side for us.
 */

export class HpackError extends Error {
  /** True when only the header list's size was over the limit: the table is intact, the stream alone fails. */
  readonly listTooLarge: boolean;
  constructor(message: string, listTooLarge = false) {
    super(`HPACK: ${message}`);
    this.listTooLarge = listTooLarge;
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

/** Header name -> its first static-table index, for the encoder. */
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC.forEach(([name], i) => { if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1); });

/**
 * RFC 7541, Appendix B: code lengths of symbols 0..255 and EOS (256). The code is canonical (codes of one length are
 * consecutive, in symbol order, each length continuing from the last code of the shorter one), so the lengths
 * determine every code.
 */
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
const EOS = 256;

/**
 * The decoding tree, flat: node n's children are TREE[2n] (bit 0) and TREE[2n + 1] (bit 1); a value > 0 is a
 * node, < 0 is the leaf of symbol -value - 1, 0 is no code. DEPTH[n] = bits consumed to reach node n, and ALL_ONES[n]
 * whether they were all ones: what tells valid padding (at most 7 bits, all ones, a prefix of EOS) from garbage.
 */
const { TREE, DEPTH, ALL_ONES } = (() => {
  const symbols = HUFFMAN_LENGTHS.map((len, sym) => ({ len, sym })).sort((a, b) => a.len - b.len || a.sym - b.sym);
  const tree = new Int32Array(2 * 512);
  const depth = new Uint8Array(512);
  const allOnes = new Uint8Array(512);
  allOnes[0] = 1;
  let nodes = 1;
  let code = 0;
  let prevLen = symbols[0]!.len;
  for (const { len, sym } of symbols) {
    code *= 2 ** (len - prevLen);
    prevLen = len;
    let node = 0;
    for (let bit = len - 1; bit >= 0; bit--) {
      const b = Math.floor(code / 2 ** bit) % 2;
      const slot = node * 2 + b;
      if (bit === 0) {
        tree[slot] = -sym - 1;
        break;
      }
      if (tree[slot] === 0) {
        tree[slot] = nodes;
        depth[nodes] = depth[node]! + 1;
        allOnes[nodes] = allOnes[node]! & b;
        nodes++;
      }
      node = tree[slot]!;
    }
    code++;
  }
  return { TREE: tree, DEPTH: depth, ALL_ONES: allOnes };
})();

export function huffmanDecode(src: Uint8Array, start: number, end: number): string {
  let out = '';
  let node = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const next = TREE[node * 2 + ((byte >>> bit) & 1)]!;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === EOS) throw new HpackError('EOS inside a Huffman-coded string');
        out += String.fromCharCode(sym);
        node = 0;
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code');
      } else {
        node = next;
      }
    }
  }
  if (node !== 0 && (DEPTH[node]! > 7 || ALL_ONES[node] !== 1)) {
    throw new HpackError('Huffman padding longer than 7 bits or not all ones');
  }
  return out;
}

export interface HpackDecoderOptions {
  /** Our SETTINGS_HEADER_TABLE_SIZE: the most the peer may make the dynamic table. */
  maxTableSize: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE: sum of name + value + 32 over one block's fields. */
  maxHeaderListSize: number;
}

export class HpackDecoder {
  readonly #maxAllowed: number;
  readonly #maxList: number;
  #max: number;
  #size = 0;
  /** Newest first, as HPACK numbers them. */
  #table: Array<readonly [string, string]> = [];

  constructor(options: HpackDecoderOptions) {
    this.#maxAllowed = options.maxTableSize;
    this.#max = options.maxTableSize;
    this.#maxList = options.maxHeaderListSize;
  }

  /** One complete header block -> [name, value, name, value, ...]. */
  decode(b: Uint8Array): string[] {
    const out: string[] = [];
    let pos = 0;
    let listSize = 0;
    let fieldsSeen = false;
    const int = (prefixBits: number): number => {
      if (pos >= b.length) throw new HpackError('header block ends inside an integer');
      const mask = (1 << prefixBits) - 1;
      let v = b[pos++]! & mask;
      if (v < mask) return v;
      let shift = 0;
      for (;;) {
        if (pos >= b.length) throw new HpackError('header block ends inside an integer');
        const byte = b[pos++]!;
        v += (byte & 0x7f) * 2 ** shift;
        if (v > 0xffffffff) throw new HpackError('integer larger than 2^32 - 1');
        if ((byte & 0x80) === 0) return v;
        shift += 7;
      }
    };
    const str = (): string => {
      if (pos >= b.length) throw new HpackError('header block ends before a string');
      const huffman = (b[pos]! & 0x80) !== 0;
      const len = int(7);
      if (len > b.length - pos) throw new HpackError('string longer than the rest of the header block');
      const s = huffman ? huffmanDecode(b, pos, pos + len) : latin1(b, pos, pos + len);
      pos += len;
      return s;
    };
    const entry = (index: number): readonly [string, string] => {
      if (index === 0) throw new HpackError('index 0');
      if (index <= STATIC.length) return STATIC[index - 1]!;
      const e = this.#table[index - STATIC.length - 1];
      if (e === undefined) throw new HpackError(`index ${index} is beyond the static and dynamic tables`);
      return e;
    };
    const emit = (name: string, value: string): void => {
      fieldsSeen = true;
      listSize += name.length + value.length + 32;
      // Keep decoding past the limit: the dynamic table must see the whole block; the list is dropped at the end.
      if (listSize <= this.#maxList) out.push(name, value);
    };
    while (pos < b.length) {
      const first = b[pos]!;
      if (first & 0x80) {
        const [n, v] = entry(int(7));
        emit(n, v);
      } else if (first & 0x40) {
        const index = int(6);
        const name = index === 0 ? str() : entry(index)[0];
        const value = str();
        emit(name, value);
        this.#add(name, value);
      } else if (first & 0x20) {
        if (fieldsSeen) throw new HpackError('dynamic table size update after a header field');
        const size = int(5);
        if (size > this.#maxAllowed) throw new HpackError(`dynamic table size ${size} is over our SETTINGS_HEADER_TABLE_SIZE ${this.#maxAllowed}`);
        this.#max = size;
        this.#evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001): the same to a decoder that forwards nothing on.
        const index = int(4);
        const name = index === 0 ? str() : entry(index)[0];
        emit(name, str());
      }
    }
    if (listSize > this.#maxList) {
      throw new HpackError(`header list of ${listSize} bytes is over the limit of ${this.#maxList}`, true);
    }
    return out;
  }

  /** Bytes the dynamic table holds, as RFC 7541 counts them (name + value + 32 per entry). */
  get tableSize(): number {
    return this.#size;
  }

  #add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.#evict(size);
    // An entry bigger than the whole table empties it and is not added (RFC 7541, 4.4).
    if (size > this.#max) return;
    this.#table.unshift([name, value]);
    this.#size += size;
  }

  #evict(room: number): void {
    while (this.#size + room > this.#max && this.#table.length > 0) {
      const [n, v] = this.#table.pop()!;
      this.#size -= n.length + v.length + 32;
    }
  }
}

/**
 * A header block for a request: literals without indexing, name from the static table when it has it. Written in
 * one pass into one buffer: it runs once per call, and a Buffer per integer and string added up to ~30 per call.
 */
export function encodeHeaders(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  // Per field at most: a 1-byte literal marker, two integers of at most 6 bytes each, and the strings (latin1: one
  // byte per character).
  let max = 0;
  for (const [name, value] of fields) max += 13 + name.length + value.length;
  const out = Buffer.allocUnsafe(max);
  let pos = 0;
  for (const [name, value] of fields) {
    const index = STATIC_NAME_INDEX.get(name);
    if (index !== undefined) pos = writeInt(out, pos, index, 4);
    else {
      out[pos++] = 0x00;
      pos = writeString(out, pos, name);
    }
    pos = writeString(out, pos, value);
  }
  return out.subarray(0, pos);
}

function writeString(out: Buffer, pos: number, s: string): number {
  const at = writeInt(out, pos, s.length, 7);
  return at + out.write(s, at, 'latin1');
}

/** An HPACK integer with a `prefixBits` prefix and the pattern bits above it 0 (RFC 7541, 5.1). */
function writeInt(out: Buffer, pos: number, value: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[pos++] = value;
    return pos;
  }
  out[pos++] = max;
  let rest = value - max;
  while (rest >= 0x80) {
    out[pos++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[pos++] = rest;
  return pos;
}

function latin1(b: Uint8Array, start: number, end: number): string {
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('latin1');
}
