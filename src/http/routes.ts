/**
 * Compiles the route table once at startup: every HTTP rule of every loaded method -> parsed template, request
 * and response transcoders, and the backend invoker. A request then only does a trie lookup and runs the
 * compiled transcoders. Startup problems (bad template, duplicate route, unserved service) name the method and
 * the file they come from.
 */
import type { FileRegistry } from '@bufbuild/protobuf';
import { StartupError } from '../errors/index.ts';
import type { MethodInfo, ProtoSet, HttpRule } from '../proto/load.ts';
import { parseTemplate, RouterBuilder, type Router, type RouteConflict } from '../routing/index.ts';
import { compileRequest, type RequestTranscoder } from '../transcode/request.ts';
import { compileResponse, type ResponseTranscoder } from '../transcode/response.ts';
import type { ResolvedConfig } from '../config/index.ts';
import { buildServiceMatcher } from '../upstream/service-matcher.ts';

export interface RouteEntry {
  method: MethodInfo;
  rule: HttpRule;
  request: RequestTranscoder;
  response: ResponseTranscoder;
  /** Backend name, or undefined when no backend serves the service (allowUnservedServices). */
  backend: string | undefined;
  /** "library.v1.LibraryService.GetBook (library/v1/library.proto)" */
  source: string;
}

export interface RouteTable {
  router: Router<RouteEntry>;
  conflicts: RouteConflict[];
  /** Every HTTP method a rule uses, for registering custom methods with the HTTP server. */
  httpMethods: Set<string>;
  count: number;
  /** Methods with HTTP rules that cannot be transcoded (client or bidi streaming), for a startup warning. */
  skipped: string[];
  registry: FileRegistry;
}

export function buildRouteTable(protos: ProtoSet, config: ResolvedConfig, configFile: string): RouteTable {
  const t = config.transcoding;
  const builder = new RouterBuilder<RouteEntry>();
  const httpMethods = new Set<string>();
  const unserved = new Map<string, string>();
  const backendOf = buildServiceMatcher(config.backends);
  const skipped: string[] = [];
  let count = 0;

  for (const method of protos.methods) {
    if (method.rules.length === 0) continue;
    const backend = backendOf(method.service)?.name;
    if (!backend) unserved.set(method.service, method.file);
    if (method.kind === 'client_streaming' || method.kind === 'bidi_streaming') {
      // grpc-gateway maps these to newline-delimited request bodies; we do not (yet): say so instead of guessing.
      skipped.push(`${method.service}.${method.name} (${method.file}): ${method.kind.replace('_', ' ')} methods are served on the gRPC port only`);
      continue;
    }
    for (const rule of method.rules) {
      const source = `${method.service}.${method.name} (${method.file})`;
      let template;
      try {
        template = parseTemplate(rule.pattern);
      } catch (err) {
        throw new StartupError(`protos: ${source}: invalid path template "${rule.pattern}": ${(err as Error).message}`);
      }
      const vars = template.variables.map((v) => v.fieldPath);
      const entry: RouteEntry = {
        method,
        rule,
        request: compileRequest(method, rule, vars, protos.registry, {
          unknownQueryParams: t.unknownQueryParams,
          unknownBodyFields: t.unknownBodyFields,
          maxJsonDepth: t.maxJsonDepth,
        }),
        response: compileResponse(method, rule, protos.registry, {
          emitUnpopulated: t.emitUnpopulated,
          useProtoNames: t.useProtoNames,
          enumsAsInts: t.enumsAsInts,
        }),
        backend,
        source,
      };
      builder.add(rule.method, template, entry, source);
      httpMethods.add(rule.method);
      count++;
    }
  }

  // A backend naming a service that no loaded file declares is a typo or a missing proto: fail loudly. Passthrough
  // traffic does not need protos, so this only applies to exact names of services that have HTTP rules.
  if (unserved.size && !t.allowUnservedServices) {
    const list = [...unserved].map(([s, f]) => `  - ${s} (${f})`).join('\n');
    throw new StartupError(
      `config: ${configFile}: these services have HTTP rules but no backend serves them:\n${list}\n` +
        'Fix: add them to a backend\'s services (or a "pkg.*" wildcard), or set transcoding.allowUnservedServices: true.',
    );
  }

  const { router, conflicts } = builder.build();
  const duplicates = conflicts.filter((c) => c.kind === 'duplicate');
  if (duplicates.length && t.duplicateRoutes === 'error') {
    throw new StartupError(
      `protos: duplicate HTTP routes:\n${duplicates.map((c) => `  - ${c.message}`).join('\n')}\n` +
        'Fix: change one of the templates, or set transcoding.duplicateRoutes: "warn" to keep the first by precedence.',
    );
  }
  return { router, conflicts, httpMethods, count, skipped, registry: protos.registry };
}

/**
 * A backend naming an exact service that no loaded proto declares is a startup error: it is almost always a typo
 * or a forgotten proto. Services reached only through the gRPC port need no proto: a `pkg.*` wildcard or the
 * default backend covers them.
 */
export function checkBackendServices(protos: ProtoSet, config: ResolvedConfig, configFile: string): void {
  const problems: string[] = [];
  config.backends.forEach((b, i) => {
    b.services.forEach((s, j) => {
      if (!s.includes('*') && !protos.services.has(s)) {
        problems.push(`  backends[${i}].services[${j}]: "${s}" is not declared by any loaded proto`);
      }
    });
  });
  if (problems.length) {
    throw new StartupError(
      `config: ${configFile}:\n${problems.join('\n')}\n` +
        'Fix: correct the name, add its .proto to protos.files, or use a wildcard ("pkg.*") for services reached only through the gRPC port.',
    );
  }
}
