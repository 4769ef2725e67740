/**
 * src/upstream/h2/hpack.ts against a real HPACK encoder: node:http2's server (nghttp2) answers requests that our
 * encoder built, on a plain socket, with generated header sets (Huffman where nghttp2 finds it shorter, the
 * dynamic table with eviction, never-indexed fields); our decoder must give back exactly what the server sent.
 * Then the malformed blocks a peer could send, each refused with an HpackError.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { HpackDecoder, HpackError, encodeHeaders, huffmanDecode } from '../src/upstream/h2/hpack.ts';

/** A small seeded generator, so that a failure can be replayed with its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-';
const VALUE_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&\'()*+,-./:;<=>?@[]^_`{|}~"';

function headerSets(seed: number, count: number): Array<Array<[string, string]>> {
  const r = rng(seed);
  const pick = (chars: string, n: number): string => Array.from({ length: n }, () => chars[Math.floor(r() * chars.length)]).join('');
  // Some names and values come back often (the dynamic table serves them), some are long (eviction).
  const common: Array<[string, string]> = Array.from({ length: 12 }, (_, i) => [`x-common-${i}`, pick(VALUE_CHARS, 4 + Math.floor(r() * 40))]);
  return Array.from({ length: count }, () => {
    const set: Array<[string, string]> = [];
    const n = 1 + Math.floor(r() * 8);
    for (let i = 0; i < n; i++) {
      const kind = r();
      if (kind < 0.4) set.push(common[Math.floor(r() * common.length)]!);
      else if (kind < 0.5) set.push([`x-long-${Math.floor(r() * 4)}`, pick(VALUE_CHARS, 200 + Math.floor(r() * 900))]);
      else set.push([`x-${pick(NAME_CHARS, 1 + Math.floor(r() * 20))}`, pick(VALUE_CHARS, Math.floor(r() * 60))]);
    }
    // No leading or trailing spaces (node:http2 would refuse them) and no repeated names (they would be joined).
    const seen = new Set<string>();
    return set.map(([k, v]) => [k, v.trim()] as [string, string]).filter(([k]) => !seen.has(k) && seen.add(k));
  });
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(9 + payload.length);
  f.writeUIntBE(payload.length, 0, 3);
  f[3] = type;
  f[4] = flags;
  f.writeUInt32BE(stream, 5);
  payload.copy(f, 9);
  return f;
}

test('hpack: decodes what nghttp2 encodes (Huffman, dynamic table, eviction, sensitive fields), and nghttp2 accepts our request blocks', async (t) => {
  const seed = Number(process.env.HPACK_SEED ?? Date.now() % 1_000_000);
  const sets = headerSets(seed, 300);
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const i = Number(String(headers[':path']).slice(1));
    const set = sets[i]!;
    const out: Record<string | symbol, unknown> = { ':status': 200, date: 'Fri, 04 Dec 2026 08:00:00 GMT' };
    for (const [k, v] of set) out[k] = v;
    // Every fifth set marks its fields sensitive: nghttp2 sends them "never indexed".
    if (i % 5 === 0) out[http2.sensitiveHeaders] = set.map(([k]) => k);
    stream.respond(out as http2.OutgoingHttpHeaders, { endStream: true });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as net.AddressInfo;

  const sock = net.connect(port, '127.0.0.1');
  t.after(() => sock.destroy());
  await once(sock, 'connect');
  const requests = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(4, 0, 0, Buffer.alloc(0))];
  for (let i = 0; i < sets.length; i++) {
    const block = encodeHeaders([[':method', 'GET'], [':scheme', 'http'], [':path', `/${i}`], [':authority', 'hpack.test']]);
    requests.push(frame(1, 0x5, 2 * i + 1, block)); // END_STREAM | END_HEADERS
  }
  sock.write(Buffer.concat(requests));

  const decoder = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 20 });
  const got = new Map<number, string[]>();
  let buf = Buffer.alloc(0);
  let continuing: { stream: number; parts: Buffer[] } | undefined;
  let huffmanSeen = false;
  while (got.size < sets.length) {
    const [chunk] = (await once(sock, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3), type = buf[3]!, flags = buf[4]!, stream = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === 4 && !(flags & 1)) sock.write(frame(4, 1, 0, Buffer.alloc(0)));
      if (type === 7) assert.fail(`the server sent GOAWAY (code ${payload.readUInt32BE(4)}): it refused one of our request blocks`);
      if (type !== 1 && type !== 9) continue;
      const parts = type === 1 ? [Buffer.from(payload)] : [...continuing!.parts, Buffer.from(payload)];
      if (!(flags & 0x4)) { continuing = { stream, parts }; continue; }
      continuing = undefined;
      const block = Buffer.concat(parts);
      const fields = decoder.decode(block);
      // A long value that is not in the block as it is was sent Huffman-coded.
      if (fields.some((v, k) => k % 2 === 1 && v.length >= 20 && !block.includes(Buffer.from(v, 'latin1')))) huffmanSeen = true;
      got.set(stream, fields);
    }
  }
  for (let i = 0; i < sets.length; i++) {
    const expected = [':status', '200', 'date', 'Fri, 04 Dec 2026 08:00:00 GMT', ...sets[i]!.flat()];
    const actual = got.get(2 * i + 1)!;
    const asMap = (l: string[]): Map<string, string> => new Map(Array.from({ length: l.length / 2 }, (_, k) => [l[2 * k]!, l[2 * k + 1]!]));
    assert.deepEqual(asMap(actual), asMap(expected), `response ${i} (HPACK_SEED=${seed})`);
  }
  assert.ok(huffmanSeen, 'the run exercised Huffman-coded strings');
  assert.ok(decoder.tableSize > 0 && decoder.tableSize <= 4096, `the dynamic table was used and kept its bound (${decoder.tableSize})`);
});

test('hpack: Huffman strings decode; EOS inside a string, padding that is not all ones or longer than 7 bits is refused', () => {
  // RFC 7541 C.4.1: "www.example.com".
  assert.equal(huffmanDecode(Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex'), 0, 12), 'www.example.com');
  // 'a' is 00011: padded with ones it is valid, with zeros it is not.
  assert.equal(huffmanDecode(Buffer.from([0x1f]), 0, 1), 'a');
  assert.throws(() => huffmanDecode(Buffer.from([0x18]), 0, 1), /padding/);
  assert.throws(() => huffmanDecode(Buffer.from([0x1f, 0xff]), 0, 2), /padding/); // 11 bits of padding
  assert.throws(() => huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xfc]), 0, 4), /EOS/); // 30 ones = EOS
});

test('hpack: malformed header blocks are refused with an HpackError naming the problem', () => {
  const fresh = (): HpackDecoder => new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 16 });
  const refuses = (bytes: number[], pattern: RegExp): void => {
    assert.throws(() => fresh().decode(Buffer.from(bytes)), (e: unknown) => e instanceof HpackError && pattern.test(e.message) && !e.listTooLarge);
  };
  refuses([0x80], /index 0/);
  refuses([0xbe], /beyond the static and dynamic tables/); // index 62, empty dynamic table
  refuses([0xff], /ends inside an integer/);
  refuses([0xff, 0x80], /ends inside an integer/);
  refuses([0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], /larger than 2\^32/);
  refuses([0x40, 0x05, 0x61], /longer than the rest/);
  refuses([0x3f, 0xe2, 0x1f], /over our SETTINGS_HEADER_TABLE_SIZE 4096/); // size update to 4097
  refuses([0x82, 0x20], /size update after a header field/);
  refuses([0x00], /ends before a string/);
});

test('hpack: literals without indexing and never indexed are decoded and leave the dynamic table alone', () => {
  const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 16 });
  // 0000 (without indexing) and 0001 (never indexed), each with a new name, then one with static name 23.
  assert.deepEqual(d.decode(Buffer.from([0x00, 0x01, 0x61, 0x01, 0x62, 0x10, 0x01, 0x63, 0x01, 0x64, 0x1f, 0x08, 0x02, 0x78, 0x79])),
    ['a', 'b', 'c', 'd', 'authorization', 'xy']);
  assert.equal(d.tableSize, 0);
});

test('hpack: a header list over the limit fails the block, but the dynamic table still took its entries', () => {
  const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 40 });
  // Literal with incremental indexing, new name "a", value "bbbbbbbbbb": 1 + 10 + 32 = 43 > 40.
  const block = Buffer.from([0x40, 0x01, 0x61, 0x0a, ...Buffer.from('bbbbbbbbbb')]);
  assert.throws(() => d.decode(block), (e: unknown) => e instanceof HpackError && e.listTooLarge && /43 bytes is over the limit of 40/.test(e.message));
  assert.equal(d.tableSize, 43);
  assert.throws(() => d.decode(Buffer.from([0xbe])), (e: unknown) => e instanceof HpackError && e.listTooLarge, 'index 62 is that entry (still too large)');
  const roomy = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1000 });
  roomy.decode(block);
  assert.deepEqual(roomy.decode(Buffer.from([0xbe])), ['a', 'bbbbbbbbbb']);
});

test('hpack: the dynamic table evicts oldest first, empties for an entry larger than itself, and follows size updates', () => {
  const d = new HpackDecoder({ maxTableSize: 100, maxHeaderListSize: 1 << 16 });
  const add = (name: string, value: string): Buffer => Buffer.from([0x40, name.length, ...Buffer.from(name), value.length, ...Buffer.from(value)]);
  d.decode(add('k1', 'v1')); // 36 bytes
  d.decode(add('k2', 'v2')); // 72
  d.decode(add('k3', 'v3')); // 108 > 100: k1 goes
  assert.equal(d.tableSize, 72);
  assert.deepEqual(d.decode(Buffer.from([0xbe, 0xbf])), ['k3', 'v3', 'k2', 'v2']); // 62 = newest
  assert.throws(() => d.decode(Buffer.from([0xc0])), /beyond/); // 64: k1 was evicted
  d.decode(add('big', 'x'.repeat(80))); // 115 > 100: the table empties and the entry is not added
  assert.equal(d.tableSize, 0);
  d.decode(add('k4', 'v4'));
  d.decode(Buffer.from([0x20])); // size update to 0 evicts everything
  assert.equal(d.tableSize, 0);
  assert.throws(() => d.decode(Buffer.from([0xbe])), /beyond/);
});

test('hpack: encodeHeaders uses the static table for known names and literals otherwise, round-tripping through the decoder', () => {
  const fields: Array<[string, string]> = [[':method', 'POST'], [':path', '/pkg.Svc/Method'], ['content-type', 'application/grpc'], ['te', 'trailers'], ['x-long', 'y'.repeat(300)]];
  const block = encodeHeaders(fields);
  assert.equal(block[0], 0x02, ':method by static name index 2, literal without indexing');
  assert.deepEqual(new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 16 }).decode(block), fields.flat());
});
