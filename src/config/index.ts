/**
 * Loading and validating gateway.config.{ts,mts,mjs,js}. Node 20 cannot strip types, so the file is loaded with
 * jiti (it handles TS, ESM and CJS alike, see STACK-NOTES). Errors name the file, the field path, the bad value
 * and what is expected, and stop startup before anything listens.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createJiti } from 'jiti';
import { StartupError } from '../errors/index.ts';
import { configSchema, type ResolvedConfig } from './schema.ts';

export type { GatewayConfig, ResolvedConfig, BackendConfig } from './schema.ts';
export { defineConfig } from './define.ts';

const EXTENSIONS = new Set(['.ts', '.mts', '.mjs', '.js', '.cts', '.cjs']);

export async function loadConfigFile(file: string): Promise<ResolvedConfig> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) {
    throw new StartupError(`config: ${abs} does not exist. Fix: pass --config <file> naming your gateway.config.ts`);
  }
  if (!EXTENSIONS.has(path.extname(abs))) {
    throw new StartupError(`config: ${abs}: expected a .ts, .mts, .mjs or .js file`);
  }
  let raw: unknown;
  try {
    const jiti = createJiti(import.meta.url, { moduleCache: false, fsCache: false });
    raw = await jiti.import(abs, { default: true });
  } catch (err) {
    throw new StartupError(`config: cannot load ${abs}: ${(err as Error).message}`, { cause: err });
  }
  return resolveConfig(raw, abs);
}

/**
 * Validates a config object and resolves its paths relative to `configFile`'s directory. `configFile` is named
 * in every error; for configs built in code pass a descriptive name and the directory paths are relative to.
 */
export function resolveConfig(raw: unknown, configFile: string, baseDir = path.dirname(configFile)): ResolvedConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new StartupError(
      `config: ${configFile}: the default export must be an object (export default defineConfig({...})), got ${describe(raw)}`,
    );
  }
  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const where = formatPath(issue.path);
      const got = 'input' in issue && issue.code !== 'unrecognized_keys' && !isSecret(issue.path) ? ` (got ${describe(issue.input)})` : '';
      return `  ${where}: ${issue.message}${got}`;
    });
    throw new StartupError(`config: ${configFile} is invalid:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  config.protos.includeDirs = config.protos.includeDirs.map((d) => path.resolve(baseDir, d));
  config.protos.files = config.protos.files.map((f) => path.resolve(baseDir, f));
  for (const b of config.backends) {
    const tls = b.tls;
    if (!tls) continue;
    if (tls.caFile) tls.caFile = path.resolve(baseDir, tls.caFile);
    if (tls.certFile) tls.certFile = path.resolve(baseDir, tls.certFile);
    if (tls.keyFile) tls.keyFile = path.resolve(baseDir, tls.keyFile);
  }
  for (const tls of [config.http.tls, config.grpc.tls]) {
    if (!tls) continue;
    tls.cert = path.resolve(baseDir, tls.cert);
    tls.key = path.resolve(baseDir, tls.key);
  }
  checkSemantics(config, configFile);
  return config;
}

function checkSemantics(config: ResolvedConfig, file: string): void {
  const problems: string[] = [];
  const names = new Map<string, number>();
  const owner = new Map<string, string>();
  config.backends.forEach((b, i) => {
    const prev = names.get(b.name);
    if (prev !== undefined) problems.push(`backends[${i}].name: "${b.name}" is also the name of backends[${prev}]; names must be unique`);
    names.set(b.name, i);
    b.services.forEach((s, j) => {
      const other = owner.get(s);
      if (other !== undefined) {
        problems.push(`backends[${i}].services[${j}]: "${s}" is already served by backend "${other}"; list each service once`);
      }
      owner.set(s, b.name);
    });
  });
  const defaults = config.backends.filter((b) => b.default);
  if (defaults.length > 1) problems.push(`backends: ${defaults.map((b) => `"${b.name}"`).join(', ')} are all marked default; at most one may be`);
  for (const [where, tls] of [['http.tls', config.http.tls], ['grpc.tls', config.grpc.tls]] as const) {
    if (!tls) continue;
    for (const k of ['cert', 'key'] as const) {
      if (!fs.existsSync(tls[k])) problems.push(`${where}.${k}: ${tls[k]} does not exist (paths are relative to the config file)`);
    }
  }
  for (const dir of config.protos.includeDirs) {
    if (!fs.existsSync(dir)) problems.push(`protos.includeDirs: ${dir} does not exist`);
  }
  if (problems.length) throw new StartupError(`config: ${file} is invalid:\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

/** tracing.otlp.headers carries credentials (API keys): an error names the field but never echoes the value. */
function isSecret(p: ReadonlyArray<PropertyKey>): boolean {
  return p.length >= 3 && p[0] === 'tracing' && p[1] === 'otlp' && p[2] === 'headers';
}

function formatPath(p: ReadonlyArray<PropertyKey>): string {
  if (p.length === 0) return '(root)';
  let out = '';
  for (const seg of p) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${String(seg)}` : String(seg);
  return out;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? s.slice(0, 77) + '...' : s;
  } catch {
    return String(v);
  }
}
