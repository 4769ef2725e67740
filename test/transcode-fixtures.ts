/**
 * Shared by the transcode suites: test/protos/everything.proto loaded twice, by the gateway's loader (@bufbuild
 * descriptors, what the code under test uses) and independently by protobufjs (whose protojson extension checks
 * the bytes we produce with a second, unrelated implementation).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pb from 'protobufjs';
import protojson from 'protobufjs/ext/protojson.js';
import { bundledProtoDir, loadProtos, type MethodInfo, type ProtoSet } from '../src/proto/load.ts';
import type { HttpRule } from '../src/proto/http-rule.ts';

export const PROTO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'protos');
export const EVERYTHING_PROTO = path.join(PROTO_DIR, 'everything.proto');

export function loadEverything(): ProtoSet {
  return loadProtos({ includeDirs: [PROTO_DIR], files: [EVERYTHING_PROTO] });
}

/** protobufjs view of the same file (keepCase off: protojson maps names itself). */
export function loadEverythingPbjs(): pb.Root {
  const dirs = [PROTO_DIR, bundledProtoDir()];
  const root = new pb.Root();
  root.resolvePath = (origin: string, target: string): string => {
    if (path.isAbsolute(target)) return target;
    for (const d of dirs) {
      const p = path.join(d, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync(EVERYTHING_PROTO);
  root.resolveAll();
  return root;
}

export function findMethod(set: ProtoSet, name: string): MethodInfo {
  const m = set.methods.find((x) => x.name === name);
  if (!m) throw new Error(`no method ${name}`);
  return m;
}

/** The binding of `method` whose pattern is `pattern` (or the primary one). */
export function findRule(method: MethodInfo, pattern?: string): HttpRule {
  const r = pattern === undefined ? method.rules[0] : method.rules.find((x) => x.pattern === pattern);
  if (!r) throw new Error(`no rule ${pattern} on ${method.name}`);
  return r;
}

/** The variables a template binds, in order: "{a.b=x/*}" -> ["a","b"]. Enough for the test templates. */
export function templateVariables(pattern: string): string[][] {
  return [...pattern.matchAll(/\{([^}=]+)(?:=[^}]*)?\}/g)].map((m) => m[1].split('.'));
}

/** Decodes bytes with protobufjs and prints them with its protojson: the independent view of a message. */
export function pbjsJson(root: pb.Root, typeName: string, bytes: Uint8Array): unknown {
  const t = root.lookupType(typeName);
  return protojson.toJson(t, t.decode(bytes));
}

export { protojson };
