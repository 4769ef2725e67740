/**
 * A tiny authoritative DNS server for the discovery tests: UDP on 127.0.0.1:0, answers A and AAAA queries from a
 * map the test edits (RFC 1035 §4: header, question echoed, answers with a name pointer to offset 12).
 */
import dgram from 'node:dgram';
import net from 'node:net';

export interface TestDnsServer {
  server: string;
  records: Map<string, string[]>;
  queries: number;
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const socket = dgram.createSocket('udp4');
  const state: TestDnsServer = { server: '', records: new Map(), queries: 0, close: () => new Promise((r) => socket.close(() => r())) };
  socket.on('message', (msg, rinfo) => {
    state.queries++;
    const reply = answer(msg, state.records);
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  state.server = `127.0.0.1:${socket.address().port}`;
  return state;
}

function answer(query: Buffer, records: Map<string, string[]>): Buffer | undefined {
  if (query.length < 12) return undefined;
  let i = 12;
  const labels: string[] = [];
  while (i < query.length && query[i] !== 0) {
    const len = query[i]!;
    labels.push(query.subarray(i + 1, i + 1 + len).toString('ascii'));
    i += 1 + len;
  }
  const questionEnd = i + 5;
  const qtype = query.readUInt16BE(i + 1);
  const name = labels.join('.').toLowerCase();
  const known = records.has(name);
  const ips = (records.get(name) ?? []).filter((ip) => (qtype === 1 ? net.isIPv4(ip) : qtype === 28 ? net.isIPv6(ip) : false));
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // QR, AA, RD copied, NXDOMAIN
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(ips.length, 6);
  const answers = ips.map((ip) => {
    const rdata = qtype === 1 ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(1, 6); // TTL 1 s
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, k) => out.writeUInt16BE(parseInt(g, 16), k * 2));
  return out;
}
