/**
 * Loads .proto files and FileDescriptorSets into one registry: method -> {types, streaming kind, HTTP rules}.
 *
 * Import resolution follows `protoc -I`: include dirs are searched in order and the first one holding the file
 * wins; the googleapis protos bundled with google-proto-files are searched last, so `google/api/*`,
 * `google/rpc/*` and `google/protobuf/*` resolve even when the user ships none, and a user's copy takes
 * precedence without duplicate definitions (each import name maps to exactly one file).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import pb from 'protobufjs';
import { globSync, isDynamicPattern } from 'tinyglobby';
import {
  create,
  createFileRegistry,
  fromBinary,
  toJson,
  type DescMessage,
  type DescMethod,
  type FileRegistry,
} from '@bufbuild/protobuf';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import {
  type FileDescriptorProto,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import { StartupError } from '../errors/index.ts';
import { toFileDescriptors, WELL_KNOWN_FILES } from './descriptors.ts';
import { normalizeRule, rulesFromParsedOptions, type HttpRule } from './http-rule.ts';

export type { HttpRule } from './http-rule.ts';

export type MethodKind = 'unary' | 'server_streaming' | 'client_streaming' | 'bidi_streaming';

export interface MethodInfo {
  /** Fully-qualified service name, e.g. "library.v1.LibraryService". */
  service: string;
  /** Method name, e.g. "GetBook". */
  name: string;
  /** The gRPC path, "/library.v1.LibraryService/GetBook". */
  path: string;
  input: DescMessage;
  output: DescMessage;
  kind: MethodKind;
  rules: HttpRule[];
  /** The proto file (import name) that declares the service. */
  file: string;
  desc: DescMethod;
}

export interface ProtoSet {
  /** Every message and enum loaded (also the google.rpc error details and well-known types): resolves Any. */
  registry: FileRegistry;
  /** Methods of the services declared in the listed files, in a stable order. */
  methods: MethodInfo[];
  /** Service name -> the file declaring it. */
  services: Map<string, string>;
}

export interface ProtoSources {
  /** Absolute include directories, searched in order. */
  includeDirs: string[];
  /** Absolute paths or glob patterns of .proto files and descriptor sets (.pb, .binpb, .desc, .protoset). */
  files: string[];
}

/** Always loaded, so that error details and HttpBody are known even when no user proto imports them. */
const ALWAYS_LOADED = [
  'google/api/annotations.proto',
  'google/api/httpbody.proto',
  'google/rpc/status.proto',
  'google/rpc/error_details.proto',
  'google/rpc/code.proto',
];

const DESCRIPTOR_SET_EXT = /\.(pb|binpb|desc|protoset|bin)$/i;
const HTTP_RULE_EXTENSION_NUMBER = 72295728;

export function bundledProtoDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('google-proto-files/package.json'));
}

export function loadProtos(sources: ProtoSources): ProtoSet {
  const searchDirs = [...sources.includeDirs, bundledProtoDir()];
  const protoFiles: string[] = [];
  const setFiles: string[] = [];
  for (const f of expandFiles(sources.files)) (DESCRIPTOR_SET_EXT.test(f) ? setFiles : protoFiles).push(f);

  const logical = new Map<string, string>(); // absolute path -> import name
  // As protoc names a file: relative to the first include dir that contains it. A file outside every include
  // dir keeps its absolute path, which cannot collide with another file's name.
  const nameOfListed = (abs: string): string => {
    for (const dir of searchDirs) {
      const rel = path.relative(dir, abs);
      if (!rel.startsWith('..') && !path.isAbsolute(rel)) return rel.split(path.sep).join('/');
    }
    return abs;
  };

  const root = new pb.Root();
  root.resolvePath = (origin: string, target: string): string => {
    if (!origin) return target; // a listed file, already absolute
    for (const dir of searchDirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) {
        if (!logical.has(candidate)) logical.set(candidate, target);
        return candidate;
      }
    }
    const importer = logical.get(origin) ?? origin;
    throw new StartupError(
      `protos: ${importer} imports "${target}", which is in none of the include dirs searched:\n` +
        searchDirs.map((d) => `  - ${d}`).join('\n') +
        `\nFix: add the directory that holds ${target} to protos.includeDirs in the config.`,
    );
  };

  const listed = new Set<string>();
  const loadOne = (abs: string, displayName: string): void => {
    try {
      root.loadSync(abs, { keepCase: true });
    } catch (err) {
      if (err instanceof StartupError) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      throw new StartupError(`protos: cannot load ${displayName}: ${msg}`, { cause: err });
    }
  };
  for (const abs of protoFiles) {
    const name = nameOfListed(abs);
    // Loading a file that is also reachable by import under the same name must yield one file, not two.
    const viaInclude = searchDirs.map((d) => path.join(d, name)).find((p) => fs.existsSync(p));
    const canonical = viaInclude && fs.realpathSync(viaInclude) === fs.realpathSync(abs) ? viaInclude : abs;
    logical.set(canonical, name);
    listed.add(name);
    loadOne(canonical, abs);
  }
  for (const name of ALWAYS_LOADED) {
    const abs = root.resolvePath('<protogate>', name) as string;
    loadOne(abs, name);
  }
  try {
    root.resolveAll();
  } catch (err) {
    throw new StartupError(`protos: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  const fromProto = toFileDescriptors({ root, logicalName: (abs) => logical.get(abs) ?? abs });
  const rulesByPath = new Map<string, HttpRule[]>();
  collectRules(root, rulesByPath, (abs) => logical.get(abs) ?? abs);

  const fromSets: FileDescriptorProto[] = [];
  const setRoots = new Set<string>();
  for (const file of setFiles) {
    const files = readDescriptorSet(file);
    const imported = new Set(files.flatMap((f) => f.dependency));
    for (const f of files) {
      fromSets.push(f);
      if (!imported.has(f.name)) setRoots.add(f.name);
    }
  }

  const registry = buildRegistry(fromProto, fromSets);
  const httpRuleDesc = registry.getMessage('google.api.HttpRule');
  if (!httpRuleDesc) throw new StartupError('protos: google.api.HttpRule is missing (google/api/http.proto)');

  const methods: MethodInfo[] = [];
  const services = new Map<string, string>();
  const fromSetNames = new Set(fromSets.map((f) => f.name));
  for (const file of registry.files) {
    const exposed = fromSetNames.has(file.proto.name) ? setRoots.has(file.proto.name) : listed.has(file.proto.name);
    if (!exposed) continue;
    for (const svc of file.services) {
      if (services.has(svc.typeName)) continue;
      services.set(svc.typeName, file.proto.name);
      for (const m of svc.methods) {
        const where = `${svc.typeName}.${m.name} (${file.proto.name})`;
        const grpcPath = `/${svc.typeName}/${m.name}`;
        const rules = rulesByPath.get(grpcPath) ?? rulesFromOptions(m, httpRuleDesc, where);
        methods.push({
          service: svc.typeName,
          name: m.name,
          path: grpcPath,
          input: m.input,
          output: m.output,
          kind: m.methodKind,
          rules,
          file: file.proto.name,
          desc: m,
        });
      }
    }
  }
  return { registry, methods, services };
}

/** Globs expand in sorted order, so that the route table and conflict reports do not depend on the disk. */
function expandFiles(files: string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  files.forEach((f, i) => {
    let matches: string[];
    if (isDynamicPattern(f)) {
      const rel = path.relative('/', f).split(path.sep).join('/');
      matches = globSync(rel, { cwd: '/', absolute: true }).sort();
      if (matches.length === 0) throw new StartupError(`protos.files[${i}]: the pattern ${f} matches no file`);
    } else {
      if (!fs.existsSync(f)) throw new StartupError(`protos.files[${i}]: ${f} does not exist. Fix: paths are relative to the config file`);
      matches = [f];
    }
    for (const m of matches) if (!seen.has(m)) { seen.add(m); out.push(m); }
  });
  return out;
}

function collectRules(ns: pb.NamespaceBase, out: Map<string, HttpRule[]>, nameOf: (abs: string) => string): void {
  for (const obj of ns.nestedArray) {
    if (obj instanceof pb.Service) {
      const svcName = obj.fullName.slice(1);
      for (const m of obj.methodsArray) {
        const where = `${svcName}.${m.name} (${obj.filename ? nameOf(obj.filename) : '?'})`;
        out.set(`/${svcName}/${m.name}`, rulesFromParsedOptions(m.parsedOptions, where));
      }
    } else if (obj instanceof pb.Namespace && !(obj instanceof pb.Type)) {
      collectRules(obj, out, nameOf);
    }
  }
}

/** Descriptor-set input: the rule is an unparsed extension field in MethodOptions' unknown fields. */
function rulesFromOptions(m: DescMethod, httpRuleDesc: DescMessage, where: string): HttpRule[] {
  const unknown = m.proto.options?.$unknown ?? [];
  const rules: HttpRule[] = [];
  for (const u of unknown) {
    if (u.no !== HTTP_RULE_EXTENSION_NUMBER) continue;
    // Unknown length-delimited fields keep their length prefix.
    const msg = fromBinary(httpRuleDesc, new BinaryReader(u.data).bytes());
    const obj = toJson(httpRuleDesc, msg, { useProtoFieldName: true }) as Record<string, unknown>;
    rules.push(...normalizeRule(obj, where));
  }
  return rules.map((r, i) => ({ ...r, binding: i }));
}

function readDescriptorSet(file: string): FileDescriptorProto[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new StartupError(`protos: cannot read descriptor set ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return fromBinary(FileDescriptorSetSchema, bytes).file;
  } catch (err) {
    throw new StartupError(
      `protos: ${file} is not a FileDescriptorSet (${(err as Error).message}). ` +
        'Fix: produce it with `protoc --include_imports -o x.pb` or `buf build -o x.binpb`.',
      { cause: err },
    );
  }
}

function buildRegistry(fromProto: FileDescriptorProto[], fromSets: FileDescriptorProto[]): FileRegistry {
  const byName = new Map<string, FileDescriptorProto>();
  for (const f of WELL_KNOWN_FILES) byName.set(f.proto.name, f.proto);
  // Parsed sources first: a name both parsed and present in a set is the same file; the first one wins.
  for (const f of [...fromProto, ...fromSets]) if (!byName.has(f.name)) byName.set(f.name, f);

  const ordered: FileDescriptorProto[] = [];
  const done = new Set<string>();
  const visit = (name: string, importer: string): void => {
    if (done.has(name)) return;
    const f = byName.get(name);
    if (!f) throw new StartupError(`protos: ${importer} depends on ${name}, which no loaded file or descriptor set provides`);
    done.add(name);
    for (const dep of f.dependency) visit(dep, name);
    ordered.push(f);
  };
  for (const name of byName.keys()) visit(name, name);
  try {
    return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
  } catch (err) {
    throw new StartupError(`protos: invalid descriptors: ${(err as Error).message}`, { cause: err });
  }
}
