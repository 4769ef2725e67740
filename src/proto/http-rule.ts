/**
 * google.api.HttpRule, normalised. Two sources produce it: protobufjs `method.parsedOptions` (for .proto input)
 * and the raw MethodOptions extension 72295728 (for descriptor-set input). Both end up as the same flat list:
 * the primary binding first, then additional_bindings in declaration order (they may not nest further).
 */
import { StartupError } from '../errors/index.ts';

export interface HttpRule {
  /** Upper-case HTTP method: GET, PUT, POST, DELETE, PATCH, or a custom kind. */
  method: string;
  /** The path template text, unparsed. */
  pattern: string;
  /** "" (no body), "*" or a top-level field name. */
  body: string;
  /** "" (whole response) or a top-level field name. */
  responseBody: string;
  /** 0 for the primary binding, 1.. for additional_bindings. */
  binding: number;
}

type RuleObject = Record<string, unknown>;

const PATTERN_KEYS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** Where a rule came from, for error messages: "library.v1.Library.GetBook (library.proto)". */
export function normalizeRule(rule: RuleObject, where: string): HttpRule[] {
  const out: HttpRule[] = [];
  push(rule, 0);
  const extra = rule['additional_bindings'] ?? rule['additionalBindings'];
  // protobufjs gives one additional binding as an object and several as an array.
  const list = extra === undefined ? [] : Array.isArray(extra) ? extra : [extra];
  for (const b of list as RuleObject[]) {
    if (b['additional_bindings'] !== undefined || b['additionalBindings'] !== undefined) {
      throw new StartupError(`protos: ${where}: additional_bindings may not contain additional_bindings (google/api/http.proto)`);
    }
    push(b, out.length);
  }
  return out;

  function push(r: RuleObject, binding: number): void {
    let method: string | undefined;
    let pattern: string | undefined;
    for (const key of PATTERN_KEYS) {
      const v = r[key];
      if (typeof v === 'string' && v !== '') {
        if (method) throw new StartupError(`protos: ${where}: an HttpRule sets both ${method.toLowerCase()} and ${key}`);
        method = key.toUpperCase();
        pattern = v;
      }
    }
    const custom = r['custom'] as RuleObject | undefined;
    if (custom && typeof custom === 'object' && (custom['kind'] || custom['path'])) {
      if (method) throw new StartupError(`protos: ${where}: an HttpRule sets both ${method.toLowerCase()} and custom`);
      const kind = String(custom['kind'] ?? '');
      if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(kind)) {
        throw new StartupError(`protos: ${where}: custom.kind "${kind}" is not an HTTP method token`);
      }
      method = kind.toUpperCase();
      pattern = String(custom['path'] ?? '');
    }
    if (!method || !pattern) {
      throw new StartupError(`protos: ${where}: an HttpRule needs one of get, put, post, delete, patch or custom with a path`);
    }
    out.push({
      method,
      pattern,
      body: String(r['body'] ?? ''),
      responseBody: String(r['response_body'] ?? r['responseBody'] ?? ''),
      binding,
    });
  }
}

/** Extracts the (google.api.http) option from protobufjs' parsedOptions array of one-key objects. */
export function rulesFromParsedOptions(parsedOptions: unknown, where: string): HttpRule[] {
  if (!Array.isArray(parsedOptions)) return [];
  const rules: HttpRule[] = [];
  for (const opt of parsedOptions as RuleObject[]) {
    const rule = opt['(google.api.http)'];
    if (rule && typeof rule === 'object') rules.push(...normalizeRule(rule as RuleObject, where));
  }
  // Several `option (google.api.http)...` statements are merged by protoc; we treat them as successive bindings.
  return rules.map((r, i) => ({ ...r, binding: i }));
}
