/**
 * Micro-benchmark of src/routing: compile time (parse + build, conflict detection included) and lookup cost.
 *   node --import tsx bench/routing.ts
 * Scenarios: synthetic googleapis-shaped route sets of 1,000 and 5,000 routes, and - when google-proto-files is
 * installed - every google.api.http rule found in its .proto files (read with a regex, good enough for a bench).
 * Prints numbers only; bounded to a few seconds.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseTemplate, RouterBuilder } from '../src/routing/index.ts';
import type { Router } from '../src/routing/index.ts';

interface RouteSpec {
  method: string;
  template: string;
  source: string;
}

function syntheticRoutes(n: number): RouteSpec[] {
  const routes: RouteSpec[] = [];
  for (let i = 0; routes.length < n; i++) {
    const parent = `projects/*/locations/*`;
    const coll = `things${i}`;
    const src = `bench.v1.Service${i}`;
    routes.push({ method: 'GET', template: `/v1/{parent=${parent}}/${coll}`, source: `${src}.List` });
    routes.push({ method: 'POST', template: `/v1/{parent=${parent}}/${coll}`, source: `${src}.Create` });
    routes.push({ method: 'GET', template: `/v1/{name=${parent}/${coll}/*}`, source: `${src}.Get` });
    routes.push({ method: 'PATCH', template: `/v1/{thing.name=${parent}/${coll}/*}`, source: `${src}.Update` });
    routes.push({ method: 'POST', template: `/v1/{name=${parent}/${coll}/*}:act${i % 20}`, source: `${src}.Act` });
    if (i % 50 === 0) routes.push({ method: 'GET', template: `/v1/{name=${parent}/${coll}/*/files/**}`, source: `${src}.File` });
  }
  return routes.slice(0, n);
}

/** google.api.http rules from google-proto-files (get/put/post/delete/patch keys, additional_bindings included). */
function googleapisRoutes(): RouteSpec[] | undefined {
  const root = join(import.meta.dirname, '..', 'node_modules', 'google-proto-files', 'google');
  try {
    statSync(root);
  } catch {
    return undefined;
  }
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.proto')) files.push(path);
    }
  };
  walk(root);
  const routes: RouteSpec[] = [];
  for (const file of files.sort()) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\b(get|put|post|delete|patch)\s*:\s*"([^"]+)"/g)) {
      routes.push({ method: m[1].toUpperCase(), template: m[2], source: `${file.slice(root.length - 6)}#${m.index}` });
    }
  }
  return routes;
}

/** A concrete request path for a template: '*' -> a name, '**' -> two segments, verbs kept. */
function samplePath(template: string): string {
  const t = parseTemplate(template);
  const segs = t.segments.map((s, i) => (s.kind === 'literal' ? s.value : s.kind === '*' ? `id${i}` : `a${i}/b${i}`));
  return '/' + segs.join('/') + (t.verb === undefined ? '' : ':' + t.verb);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function compile(routes: RouteSpec[]): { router: Router<number>; conflicts: number; parseMs: number; buildMs: number } {
  const t0 = performance.now();
  const builder = new RouterBuilder<number>();
  routes.forEach((r, i) => builder.add(r.method, r.template, i, r.source));
  const t1 = performance.now();
  const { router, conflicts } = builder.build();
  const t2 = performance.now();
  return { router, conflicts: conflicts.length, parseMs: t1 - t0, buildMs: t2 - t1 };
}

function bench(name: string, routes: RouteSpec[]): void {
  const parsable = routes.filter((r) => {
    try {
      parseTemplate(r.template);
      return true;
    } catch {
      return false;
    }
  });
  const compiles = Array.from({ length: 5 }, () => compile(parsable));
  const { router, conflicts } = compiles[compiles.length - 1];
  const requests: Array<[string, string]> = parsable.map((r) => [r.method, samplePath(r.template)]);
  // Misses cost a lookup per other method (to build Allow), so measure them too.
  const misses: Array<[string, string]> = requests.map(([, p]) => ['PUT', p + '/nope']);
  const kinds = { found: 0, 'method-not-allowed': 0, 'not-found': 0 };
  for (const [m, p] of requests) kinds[router.match(m, p).kind]++;

  const perLookupUs = (reqs: Array<[string, string]>): number => {
    const rounds = Math.max(1, Math.floor(150_000 / reqs.length));
    const samples: number[] = [];
    for (let trial = 0; trial < 5; trial++) {
      const t0 = performance.now();
      for (let r = 0; r < rounds; r++) for (const [m, p] of reqs) router.match(m, p);
      samples.push(((performance.now() - t0) * 1000) / (rounds * reqs.length));
    }
    return median(samples);
  };
  const hit = perLookupUs(requests);
  const miss = perLookupUs(misses);
  console.log(
    `${name}: ${parsable.length} routes (${routes.length - parsable.length} unparsable skipped), ${conflicts} conflicts\n` +
      `  compile: parse+add ${median(compiles.map((c) => c.parseMs)).toFixed(1)} ms, ` +
      `build (trie + conflicts) ${median(compiles.map((c) => c.buildMs)).toFixed(1)} ms, ` +
      `first run ${(compiles[0].parseMs + compiles[0].buildMs).toFixed(1)} ms\n` +
      `  lookup: ${hit.toFixed(3)} us/op on route paths (${kinds.found} found, ${kinds['method-not-allowed']} 405, ` +
      `${kinds['not-found']} 404), ${miss.toFixed(3)} us/op on misses`,
  );
}

console.log(`node ${process.version}, ${process.arch}`);
bench('synthetic-1000', syntheticRoutes(1000));
bench('synthetic-5000', syntheticRoutes(5000));
const real = googleapisRoutes();
if (real === undefined) console.log('googleapis: google-proto-files not installed, skipped');
else bench('googleapis (google-proto-files)', real);
