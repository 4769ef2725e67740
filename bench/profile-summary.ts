/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `bench/rest.ts --cpu-prof DIR`) by module:
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top 30]
 * Prints: self time by category (Fastify, router, transcode request/response, @bufbuild codec split by file,
 * grpc-js, node http/net/http2, GC, ...), the top functions by self time, and the inclusive time of key functions.
 * Percentages are of the busy (non-idle) samples. Startup (module loading, proto compile) is skipped: samples count
 * from the first one whose stack contains --from FUNC (default handleTranscode, i.e. the first request).
 */
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface Node { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const file = process.argv[2];
if (!file) throw new Error('usage: profile-summary.ts FILE.cpuprofile [--top N]');
const TOP = process.argv.includes('--top') ? Number(process.argv[process.argv.indexOf('--top') + 1]) : 30;
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const FROM = process.argv.includes('--from') ? process.argv[process.argv.indexOf('--from') + 1]! : 'handleTranscode';

const byId = new Map<number, Node>();
const parent = new Map<number, number>();
for (const n of prof.nodes) byId.set(n.id, n);
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

export function category(cf: CallFrame): string {
  const u = cf.url;
  const f = cf.functionName;
  if (u === '') {
    if (f === '(garbage collector)') return 'GC';
    if (f === '(idle)') return '(idle)';
    if (f === '(program)') return '(program: native/V8, unattributed)';
    if (f === '(root)') return '(root)';
    return `native: ${f}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(u);
  if (nm) {
    const pkg = nm[1]!;
    if (pkg === '@bufbuild/protobuf') {
      const rest = nm[2]!;
      if (/from-json/.test(rest)) return '@bufbuild/protobuf fromJson';
      if (/to-json/.test(rest)) return '@bufbuild/protobuf toJson';
      if (/to-binary|wire\/binary-encoding|wire\/text-encoding|wire\/varint/.test(rest)) return '@bufbuild/protobuf binary (toBinary/fromBinary/wire)';
      if (/from-binary/.test(rest)) return '@bufbuild/protobuf binary (toBinary/fromBinary/wire)';
      if (/reflect/.test(rest)) return '@bufbuild/protobuf reflect (message access)';
      return `@bufbuild/protobuf other (${rest.split('/').slice(-1)[0]})`;
    }
    if (['fastify', 'find-my-way', 'light-my-request', 'avvio', 'fast-json-stringify', 'abstract-logging', '@fastify/error',
      'fastify-plugin', 'process-warning', 'toad-cache', 'safe-regex2', 'ret', 'fast-querystring', 'fast-decode-uri-component',
      'rfdc', '@fastify/ajv-compiler', 'secure-json-parse', 'content-type', '@fastify/fast-json-stringify-compiler',
      '@fastify/forwarded', '@fastify/proxy-addr', 'proxy-addr'].includes(pkg)) return 'Fastify (+ its deps)';
    if (pkg.startsWith('pino') || pkg === 'sonic-boom' || pkg === 'thread-stream') return 'pino (logger)';
    if (pkg === '@grpc/grpc-js') return 'grpc-js (client, JS part)';
    if (pkg === 'tsx' || pkg === 'esbuild' || pkg === 'get-tsconfig') return 'tsx loader';
    return `pkg: ${pkg}`;
  }
  if (/\/src\/routing\//.test(u)) return 'ours: router (src/routing)';
  if (/\/src\/transcode\/response/.test(u)) return 'ours: transcode response';
  if (/\/src\/transcode\//.test(u)) return 'ours: transcode request (request/query/json-body/fields)';
  if (/\/src\/http\/metadata/.test(u)) return 'ours: metadata (src/http/metadata)';
  if (/\/src\/http\/transcode-handler/.test(u)) return 'ours: handler glue (transcode-handler)';
  if (/\/src\/http\/app/.test(u)) return 'ours: Fastify glue (src/http/app)';
  if (/\/src\/upstream\//.test(u)) return 'ours: invoker (src/upstream)';
  if (/\/src\/observability\//.test(u)) return 'ours: observability';
  if (/\/src\//.test(u)) return `ours: ${u.replace(/^.*\/src\//, 'src/')}`;
  if (/^node:internal\/http2|^node:http2/.test(u)) return 'node http2 (grpc-js transport)';
  if (/^node:_http|^node:http$|^node:internal\/http/.test(u)) return 'node http (HTTP/1.1 server)';
  if (/^node:net|^node:internal\/stream_base|^node:internal\/net|^node:internal\/dns/.test(u)) return 'node net/socket';
  if (/^node:internal\/streams|^node:stream/.test(u)) return 'node streams';
  if (/^node:internal\/(timers|process\/task_queues|async_hooks|process\/)|^node:timers/.test(u)) return 'node timers/microtasks/async';
  if (/^node:events|^node:internal\/event_target|^node:internal\/abort_controller/.test(u)) return 'node events/EventTarget/AbortController';
  if (/^node:buffer|^node:internal\/buffer/.test(u)) return 'node buffer';
  if (/^node:/.test(u)) return `node other (${u.replace(/^node:(internal\/)?/, '')})`;
  return `other: ${u}`;
}

function stackHas(id: number | undefined, fn: string): boolean {
  for (; id !== undefined; id = parent.get(id)) if (byId.get(id)!.callFrame.functionName === fn) return true;
  return false;
}
let first = prof.samples.findIndex((id) => stackHas(id, FROM));
if (first < 0) first = 0;
let skippedUs = 0;
for (let i = 0; i < first; i++) skippedUs += prof.timeDeltas[i] ?? 0;

// Self time per node.
const self = new Map<number, number>();
let total = 0;
let idle = 0;
for (let i = first; i < prof.samples.length; i++) {
  const id = prof.samples[i]!;
  const dt = prof.timeDeltas[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  total += dt;
  const cf = byId.get(id)!.callFrame;
  if (cf.functionName === '(idle)') idle += dt;
}
const busy = total - idle;
const pct = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`;

const selfByCat = new Map<string, number>();
const selfByFn = new Map<string, number>();
for (const [id, us] of self) {
  const cf = byId.get(id)!.callFrame;
  const c = category(cf);
  if (c === '(idle)') continue;
  selfByCat.set(c, (selfByCat.get(c) ?? 0) + us);
  const key = `${cf.functionName || '(anonymous)'}  ${cf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/src\//, 'src/')}:${cf.lineNumber + 1}`;
  selfByFn.set(key, (selfByFn.get(key) ?? 0) + us);
}

// Inclusive time of key functions (counted once per sample even when recursive).
const KEY = ['handleTranscode', 'handler', 'transcode', 'body', 'json', 'requestMetadata', 'metadataHeaders', 'writeHeaders', 'unary',
  'match', 'parseJson', 'scan', 'fromJson', 'toJson', 'toBinary', 'fromBinary', 'makeUnaryRequest', 'apply', 'callDeadline',
  'runPreParsing', 'handleRequest', 'emit', 'end', 'write', 'parserOnIncoming', 'onStreamRead'];
const inclusive = new Map<string, number>();
for (let i = first; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
  const seen = new Set<string>();
  let id: number | undefined = prof.samples[i]!;
  while (id !== undefined) {
    const cf = byId.get(id)!.callFrame;
    if (KEY.includes(cf.functionName)) {
      const k = `${cf.functionName} (${category(cf)})`;
      if (!seen.has(k)) { seen.add(k); inclusive.set(k, (inclusive.get(k) ?? 0) + dt); }
    }
    id = parent.get(id);
  }
}

const durS = (prof.endTime - prof.startTime) / 1e6;
console.log(`profile: ${file}`);
console.log(`skipped the first ${(skippedUs / 1e6).toFixed(1)} s (startup, before the first ${FROM})`);
console.log(`wall ${durS.toFixed(1)} s, sampled ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (${((100 * busy) / total).toFixed(0)}% of samples)\n`);
console.log('| category (self time) | % of busy |');
console.log('|---|---:|');
for (const [c, us] of [...selfByCat].sort((a, b) => b[1] - a[1])) if (us / busy >= 0.002) console.log(`| ${c} | ${pct(us)} |`);
console.log(`\n| top ${TOP} functions (self) | % of busy |`);
console.log('|---|---:|');
for (const [f, us] of [...selfByFn].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`| \`${f}\` | ${pct(us)} |`);
console.log('\n| key function (inclusive) | % of busy |');
console.log('|---|---:|');
for (const [f, us] of [...inclusive].sort((a, b) => b[1] - a[1])) if (us / busy >= 0.005) console.log(`| ${f} | ${pct(us)} |`);
