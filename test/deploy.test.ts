/**
 * deploy/ cannot be run here (no Docker daemon, no cluster), so this suite checks what can go wrong silently:
 * ports, paths and timings that must agree between the config schema, the admin server, the Dockerfile and the
 * Kubernetes manifests, and that the ConfigMap's config and protos load as the container would see them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinModules } from 'node:module';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { configSchema, type ResolvedConfig } from '../src/config/schema.ts';
import { loadConfigFile } from '../src/config/index.ts';
import { loadProtos } from '../src/proto/load.ts';
import { startAdminServer, type Readiness } from '../src/http/admin.ts';
import { Metrics } from '../src/observability/metrics.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const K8S = path.join(ROOT, 'deploy/kubernetes');
const DEFAULTS = configSchema.parse({ protos: { files: ['x.proto'] } });

// ---- manifests -------------------------------------------------------------------------------------------------

/** A loose view of the parts of Kubernetes objects this suite reads. */
type Obj = Record<string, any>;

function loadYaml(file: string): Obj[] {
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
  return docs.map((d) => {
    assert.equal(d.errors.length, 0, `${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Obj;
  });
}

const kustomization = loadYaml(path.join(K8S, 'kustomization.yaml'))[0]!;
const objects = (kustomization.resources as string[]).flatMap((f) => loadYaml(path.join(K8S, f)));
const one = (kind: string, name?: string): Obj => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ''} in the kustomization`);
  return found[0]!;
};
const deployment = one('Deployment');
const service = one('Service');
const hpa = one('HorizontalPodAutoscaler');
const pdb = one('PodDisruptionBudget');
const pod = deployment.spec.template.spec as Obj;
const container = (pod.containers as Obj[])[0]!;
const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;

function containerPort(ref: string | number): number {
  if (typeof ref === 'number') return ref;
  const p = (container.ports as Obj[]).find((x) => x.name === ref);
  assert.ok(p, `container port named "${ref}" exists`);
  return p.containerPort as number;
}

function selects(selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => podLabels[k] === v);
}

function mebibytes(quantity: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(quantity);
  assert.ok(m, `memory quantity ${quantity} in Mi or Gi`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

// ---- the config volume, laid out as the kubelet does ------------------------------------------------------------

const CONFIG_KEY = 'gateway.config.ts';
const configMount = (container.volumeMounts as Obj[]).find((m) => m.name === 'config');

/**
 * Writes the projected config volume into `dir` the way the kubelet's atomic writer does: the files under
 * ..data/, and a symlink per top-level entry pointing into it.
 */
function materializeConfigVolume(dir: string): void {
  const volume = (pod.volumes as Obj[]).find((v) => v.name === 'config');
  assert.ok(volume?.projected, 'the config volume is a projected volume');
  const data = path.join(dir, '..data');
  for (const source of volume.projected.sources as Obj[]) {
    const cm = one('ConfigMap', source.configMap.name);
    const entries: Array<[string, string]> = source.configMap.items
      ? (source.configMap.items as Obj[]).map((i) => {
          assert.ok(i.key in cm.data, `ConfigMap ${cm.metadata.name} has key ${i.key}`);
          return [i.path as string, cm.data[i.key] as string];
        })
      : Object.entries(cm.data as Record<string, string>);
    for (const [rel, content] of entries) {
      fs.mkdirSync(path.dirname(path.join(data, rel)), { recursive: true });
      fs.writeFileSync(path.join(data, rel), content);
    }
  }
  for (const top of fs.readdirSync(data)) fs.symlinkSync(path.join('..data', top), path.join(dir, top));
}

async function loadClusterConfig(t: import('node:test').TestContext): Promise<ResolvedConfig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protogate-deploy-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  materializeConfigVolume(dir);
  return loadConfigFile(path.join(dir, CONFIG_KEY));
}

// ---- Dockerfile --------------------------------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  body: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const logical = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    assert.ok(op && args !== undefined, `Dockerfile line parses: ${line}`);
    if (op.toUpperCase() === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      assert.ok(from, `FROM parses: ${line}`);
      stages.push({ from, name, body: [] });
    } else if (stages.length) {
      stages.at(-1)!.body.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

const dockerfile = fs.readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const runtime = stages.at(-1)!;
const last = (stage: Stage, op: string): string | undefined => stage.body.filter((i) => i.op === op).at(-1)?.args;
const dockerignore = fs
  .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

// ---- tests -------------------------------------------------------------------------------------------------------

test('the kustomization lists every manifest in deploy/kubernetes, and each parses', () => {
  const files = fs.readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
  assert.deepEqual([...(kustomization.resources as string[])].sort(), files.sort());
  for (const o of objects) assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${o.kind} is a complete object`);
});

test('the ConfigMap config loads through loadConfigFile, imports nothing and listens on every interface', async (t) => {
  const source = one('ConfigMap', 'protogate-config').data[CONFIG_KEY] as string;
  assert.doesNotMatch(source, /^\s*import\s/m, '/etc/protogate has no node_modules to import from');
  assert.match(source, /export default \{/);
  const cfg = await loadClusterConfig(t);
  for (const listener of ['http', 'grpc', 'admin'] as const) {
    assert.ok(['0.0.0.0', '::'].includes(cfg[listener].host), `${listener}.host ${cfg[listener].host} is reachable from outside the pod`);
    assert.equal(cfg[listener].port, DEFAULTS[listener].port, `${listener}.port stays at the default the manifests name`);
  }
  assert.equal(cfg.admin.enabled, true, 'probes need the admin listener');
  assert.equal(cfg.grpc.enabled, true, 'the Service exposes the passthrough port');
});

test("the ConfigMap's protos load from the mounted layout and declare every service a backend names", async (t) => {
  const cfg = await loadClusterConfig(t);
  const protos = loadProtos(cfg.protos);
  assert.ok(cfg.backends.length > 0);
  for (const b of cfg.backends) for (const s of b.services) assert.ok(protos.services.has(s), `${s} (backend ${b.name}) is declared`);
  assert.ok(protos.methods.some((m) => m.rules.length > 0), 'the example carries an HTTP rule, so REST routes exist');
});

test('container ports and Service ports agree with the config defaults', () => {
  const expected = { http: DEFAULTS.http.port, grpc: DEFAULTS.grpc.port, admin: DEFAULTS.admin.port };
  assert.deepEqual(
    Object.fromEntries((container.ports as Obj[]).map((p) => [p.name, p.containerPort])),
    expected,
  );
  assert.ok(selects(service.spec.selector), 'the Service selects the pods');
  const ports = Object.fromEntries((service.spec.ports as Obj[]).map((p) => [p.name, p]));
  assert.deepEqual(Object.keys(ports).sort(), Object.keys(expected).sort());
  for (const [name, port] of Object.entries(expected)) {
    assert.equal(ports[name]!.port, port, `Service port ${name}`);
    assert.equal(containerPort(ports[name]!.targetPort), port, `Service ${name} targets the container's ${name} port`);
  }
  assert.equal(ports.grpc!.appProtocol, 'kubernetes.io/h2c');
  const annotations = deployment.spec.template.metadata.annotations as Record<string, string>;
  assert.equal(annotations['prometheus.io/port'], String(DEFAULTS.admin.port));
  assert.equal(annotations['prometheus.io/path'], '/metrics');
});

test('the probes point at the admin port and at paths the admin server answers 200 when ready', async (t) => {
  let state: Readiness = { ready: true, checks: [{ name: 'listeners', ok: true }] };
  const admin = await startAdminServer({ host: '127.0.0.1', port: 0, metrics: new Metrics({ defaultMetrics: false }), readiness: () => state });
  t.after(() => admin.close());
  const probes = { startupProbe: container.startupProbe, livenessProbe: container.livenessProbe, readinessProbe: container.readinessProbe };
  for (const [kind, probe] of Object.entries(probes)) {
    assert.ok(probe?.httpGet, `${kind} is an httpGet probe`);
    assert.equal(containerPort(probe.httpGet.port), DEFAULTS.admin.port, `${kind} uses the admin port`);
    const res = await fetch(`http://127.0.0.1:${admin.address.port}${probe.httpGet.path}`);
    assert.equal(res.status, 200, `${kind} ${probe.httpGet.path}`);
  }
  state = { ready: false, checks: [{ name: 'draining', ok: false }] };
  const readiness = await fetch(`http://127.0.0.1:${admin.address.port}${container.readinessProbe.httpGet.path}`);
  assert.equal(readiness.status, 503, 'the readiness probe fails while draining');
  const liveness = await fetch(`http://127.0.0.1:${admin.address.port}${container.livenessProbe.httpGet.path}`);
  assert.equal(liveness.status, 200, 'the liveness probe does not kill a draining pod');
});

test('terminationGracePeriodSeconds outlasts the drain delay plus the shutdown timeout', async (t) => {
  const cfg = await loadClusterConfig(t);
  for (const s of [DEFAULTS.shutdown, cfg.shutdown]) {
    assert.ok(
      pod.terminationGracePeriodSeconds > (s.drainDelayMs + s.timeoutMs) / 1000,
      `${pod.terminationGracePeriodSeconds} s > ${s.drainDelayMs} ms + ${s.timeoutMs} ms`,
    );
  }
});

test('rolls out with zero downtime and keeps a pod through disruptions', () => {
  assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
  assert.equal(deployment.spec.replicas, undefined, 'the HPA owns the replica count');
  assert.ok(selects(deployment.spec.selector.matchLabels));
  assert.equal(hpa.apiVersion, 'autoscaling/v2');
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
  assert.ok(
    (hpa.spec.metrics as Obj[]).some((m) => m.type === 'Resource' && m.resource.name === 'cpu' && m.resource.target.type === 'Utilization'),
  );
  assert.equal(pdb.spec.minAvailable, 1);
  assert.ok(selects(pdb.spec.selector.matchLabels), 'the PDB selects the pods');
  assert.ok(hpa.spec.minReplicas > pdb.spec.minAvailable, 'with minReplicas above minAvailable a node drain can always evict one pod');
});

test('runs as non-root on a read-only root filesystem with a writable /tmp and bounded resources', () => {
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  const tmp = (container.volumeMounts as Obj[]).find((m) => m.mountPath === '/tmp');
  assert.ok(tmp && (pod.volumes as Obj[]).find((v) => v.name === tmp.name)?.emptyDir, "tsx's cache needs a writable /tmp");
  for (const kind of ['requests', 'limits']) {
    assert.ok(container.resources[kind].cpu && container.resources[kind].memory, `resources.${kind} set`);
  }
  const heap = /--max-old-space-size=(\d+)/.exec((container.env as Obj[]).find((e) => e.name === 'NODE_OPTIONS')?.value ?? '');
  if (heap) assert.ok(Number(heap[1]) < mebibytes(container.resources.limits.memory), 'the V8 heap cap is below the memory limit');
});

test('the config path the container is started with is where the ConfigMap is mounted', () => {
  assert.ok(configMount, 'the config volume is mounted');
  const configPath = path.posix.join(configMount.mountPath, CONFIG_KEY);
  assert.deepEqual(container.args, ['--config', configPath]);
  assert.deepEqual(JSON.parse(last(runtime, 'CMD')!), ['--config', configPath]);
  assert.equal(configMount.readOnly, true);
});

test('the Dockerfile exposes the config default ports, runs as non-root and starts bin/protogate.mjs', () => {
  assert.ok(stages.length >= 2, 'multi-stage');
  assert.ok(stages.every((s) => /node:\d+-slim/.test(s.from) || s.from === '${NODE_IMAGE}'));
  assert.match(dockerfile, /^ARG NODE_IMAGE=node:(20|22|24)-slim$/m);
  const exposed = last(runtime, 'EXPOSE')!.split(/\s+/).map(Number).sort();
  assert.deepEqual(exposed, [DEFAULTS.http.port, DEFAULTS.grpc.port, DEFAULTS.admin.port].sort());
  const user = last(runtime, 'USER');
  assert.ok(user, 'the runtime stage sets USER');
  const [uid] = user.split(':');
  assert.match(uid!, /^\d+$/, 'a numeric uid, so runAsNonRoot can be verified');
  assert.notEqual(Number(uid), 0);
  assert.equal(Number(uid), pod.securityContext.runAsUser);
  assert.deepEqual(JSON.parse(last(runtime, 'ENTRYPOINT')!), ['node', '--enable-source-maps', 'bin/protogate.mjs']);
  assert.ok(fs.existsSync(path.join(ROOT, 'bin/protogate.mjs')));
});

test('the Dockerfile installs everything to build and only production dependencies to run', () => {
  const runs = (s: Stage) => s.body.filter((i) => i.op === 'RUN').map((i) => i.args);
  assert.ok(stages.slice(0, -1).some((s) => runs(s).some((r) => /\bnpm ci\b(?!.*--omit)/.test(r))), 'a build stage runs npm ci');
  assert.ok(runs(runtime).some((r) => /\bnpm ci --omit=dev\b/.test(r)), 'the runtime stage runs npm ci --omit=dev');
  const copied = runtime.body.filter((i) => i.op === 'COPY').map((i) => i.args);
  for (const dir of ['bin', 'dist']) assert.ok(copied.some((c) => c.includes(`/app/${dir} ./${dir}`)), `the runtime stage has ${dir}/`);
  assert.ok(!copied.some((c) => c.includes('/app/src')), 'the runtime stage runs dist/, so it must not carry src/ (bin/ would prefer it)');
  assert.ok(stages.slice(0, -1).some((s) => runs(s).some((r) => /\bnpm run build\b/.test(r))), 'a build stage compiles dist/');
});

test('every COPY source from the build context exists and is not excluded by .dockerignore', () => {
  assert.ok(dockerignore.includes('node_modules') && dockerignore.includes('.git'));
  for (const stage of stages) {
    for (const copy of stage.body.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const src of sources) {
        if (src === '.') continue;
        assert.ok(fs.existsSync(path.join(ROOT, src)), `${src} exists`);
        assert.ok(!dockerignore.includes(src.split('/')[0]!), `${src} is not in .dockerignore`);
      }
    }
  }
  for (const needed of ['bin', 'src', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
    assert.ok(!dockerignore.includes(needed), `${needed} reaches the build context`);
  }
});

test('every package src/ and bin/ load at run time is a production dependency (npm ci --omit=dev suffices)', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const builtins = new Set(builtinModules);
  const files = [
    ...fs.readdirSync(path.join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).map((f) => path.join(ROOT, 'src', f)),
    path.join(ROOT, 'bin/protogate.mjs'),
  ].filter((f) => /\.(ts|mts|mjs|js)$/.test(f));
  const missing = new Set<string>();
  const seen = new Set<string>();
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    // Type-only imports are erased (verbatimModuleSyntax) and need nothing at run time.
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      seen.add(name);
      if (!(name in pkg.dependencies)) missing.add(`${name} (${path.relative(ROOT, file)})`);
    }
    for (const m of text.matchAll(/\bimport\(\s*['"]([^'".][^'"]*)['"]\s*\)/g)) {
      const name = m[1]!.startsWith('@') ? m[1]!.split('/').slice(0, 2).join('/') : m[1]!.split('/')[0]!;
      seen.add(name);
      if (!m[1]!.startsWith('node:') && !builtins.has(m[1]!) && !(name in pkg.dependencies)) missing.add(`${name} (${path.relative(ROOT, file)})`);
    }
  }
  assert.deepEqual([...missing], []);
  for (const known of ['zod', 'prom-client', 'tsx']) assert.ok(seen.has(known), `the scan sees the import of ${known}`);
  assert.ok('tsx' in pkg.dependencies, 'tsx runs the sources in production');
});

// ---- the runtime stage, assembled without Docker ------------------------------------------------------------------

/**
 * No Docker engine here, so the image is rebuilt by hand from the Dockerfile's runtime stage: its COPY lines (build
 * stage paths map to the repository, which the build stage copies whole), its ENV, and its `npm ci --omit=dev`, run
 * for real. Then ENTRYPOINT + CMD start the gateway on the ConfigMap's config and protos as the kubelet mounts them
 * (listeners moved to 127.0.0.1:0, the endpoint to a real backend here), and a REST call goes through it. What this
 * catches that the static checks above cannot: a runtime import of a dev dependency, a file the image lacks, a
 * config or proto that only loads from the repository checkout.
 */
test('the runtime stage, assembled from the Dockerfile with production dependencies only, serves the ConfigMap config', { timeout: 240_000 }, async (t) => {
  const { spawn } = await import('node:child_process');
  const grpc = await import('@grpc/grpc-js');
  const protoLoader = await import('@grpc/proto-loader');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'protogate-image-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const workdir = last(runtime, 'WORKDIR');
  assert.equal(workdir, '/app');
  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  // The build stage's /app: the repository (its `COPY . .`) plus dist/ from its `npm run build`, run here into a
  // separate directory so the checkout's own dist/ (if any) plays no part.
  const buildDir = path.join(tmp, 'build');
  const built = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(buildDir, 'dist')],
    { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  assert.equal(built.status, 0, `npm run build (tsc -p tsconfig.build.json) failed:\n${built.stdout}${built.stderr}`);
  const fromBuildStage = (p: string): string => (p === '/app/dist' || p.startsWith('/app/dist/') ? path.join(buildDir, path.relative('/app', p)) : path.join(ROOT, path.relative('/app', p)));
  for (const copy of runtime.body.filter((i) => i.op === 'COPY')) {
    const words = copy.args.split(/\s+/);
    const fromBuild = words[0]!.startsWith('--from=');
    const parts = fromBuild ? words.slice(1) : words;
    const dest = path.join(app, parts.at(-1)!);
    for (const src of parts.slice(0, -1)) {
      const from = fromBuild ? fromBuildStage(src) : path.join(ROOT, src);
      const to = parts.length > 2 || dest.endsWith('/') || parts.at(-1) === './' ? path.join(dest, path.basename(src)) : dest;
      fs.cpSync(from, to, { recursive: true });
    }
  }
  const env: Record<string, string> = {};
  for (const e of runtime.body.filter((i) => i.op === 'ENV')) {
    const [, k, v] = /^(\w+)=(\S+)$/.exec(e.args) ?? [];
    assert.ok(k && v, `ENV ${e.args} parses`);
    env[k] = v;
  }
  const runs = runtime.body.filter((i) => i.op === 'RUN').map((i) => i.args);
  assert.equal(runs.length, 1);
  assert.match(runs[0]!, /^npm ci --omit=dev( && npm cache clean --force)?$/);
  // The cache clean would empty this machine's shared npm cache: only the install itself is run.
  const install = spawnSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, encoding: 'utf8', timeout: 180_000 });
  assert.equal(install.status, 0, `npm ci --omit=dev failed:\n${install.stderr}`);
  for (const dev of ['typescript', 'fast-check', 'autocannon']) {
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', dev)), `${dev} (a dev dependency) is not in the image`);
  }
  assert.ok(!fs.existsSync(path.join(app, 'src')) && fs.existsSync(path.join(app, 'dist/cli/main.js')), 'the image runs dist/, not src/');
  // tsx is a production dependency (checkouts run src/ through it), but the image must not need it: without it here,
  // any path that still loads TypeScript at run time fails to start.
  fs.rmSync(path.join(app, 'node_modules/tsx'), { recursive: true, force: true });

  // The config volume, with the listeners on loopback and the endpoint at a backend started here.
  const etc = path.join(tmp, 'etc-protogate');
  fs.mkdirSync(etc);
  materializeConfigVolume(etc);
  const protoFile = fs.readdirSync(path.join(etc, 'protos'), { recursive: true, encoding: 'utf8' }).find((f) => f.endsWith('.proto'))!;
  const def = protoLoader.loadSync(path.join(etc, 'protos', protoFile), { includeDirs: [path.join(ROOT, 'node_modules/google-proto-files')] });
  const Greeter = (grpc.loadPackageDefinition(def) as any).acme.greeter.v1.Greeter as import('@grpc/grpc-js').ServiceClientConstructor;
  const server = new grpc.Server();
  server.addService(Greeter.service, { SayHello: (call: any, cb: any) => cb(null, { message: `Hello ${call.request.name}` }) });
  const backendPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.after(() => server.forceShutdown());
  const configFile = path.join(etc, '..data', CONFIG_KEY);
  const original = fs.readFileSync(configFile, 'utf8');
  const local = original
    .replaceAll("host: '0.0.0.0' }", "host: '127.0.0.1', port: 0 }")
    .replace(/endpoints: \[[^\]]*\]/, `endpoints: ['127.0.0.1:${backendPort}']`)
    .replace(/drainDelayMs: \d+/, 'drainDelayMs: 100');
  assert.equal(local.match(/127\.0\.0\.1', port: 0/g)?.length, 3, 'the three listeners moved to loopback');
  fs.writeFileSync(configFile, local);

  const entrypoint = JSON.parse(last(runtime, 'ENTRYPOINT')!) as string[];
  const cmd = JSON.parse(last(runtime, 'CMD')!) as string[];
  assert.equal(cmd.at(-1), `${configMount?.mountPath}/${CONFIG_KEY}`);
  const nodeOptions = (container.env as Obj[]).find((e) => e.name === 'NODE_OPTIONS')?.value as string | undefined;
  assert.equal(entrypoint[0], 'node');
  const proc = spawn(process.execPath, [...entrypoint.slice(1), ...cmd.slice(0, -1), path.join(etc, CONFIG_KEY)], {
    cwd: app,
    env: { PATH: process.env['PATH'] ?? '', HOME: tmp, ...env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => void proc.kill('SIGKILL'));
  let out = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const listening = await new Promise<{ http: string; admin: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start; output:\n${out}`)), 60_000);
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of out.split('\n')) {
        if (!line.includes('protogate listening')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as { http: string; admin: string });
      }
    });
    proc.once('exit', (code) => reject(new Error(`the gateway exited (${code}):\n${out}`)));
  });
  assert.equal((await fetch(`http://${listening.admin}/healthz`)).status, 200);
  const res = await fetch(`http://${listening.http}/v1/greetings/image`);
  assert.equal(res.status, 200, await res.clone().text());
  assert.deepEqual(await res.json(), { message: 'Hello image' });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  assert.equal(await exited, 0, `exit code after SIGTERM; output:\n${out}`);
});
