/**
 * hooks.onRequest on the gRPC port: the same hook REST requests get, so authentication written once in the config
 * covers both ports (a JWT check on REST alone would leave every service open on the gRPC port). On this port the
 * metadata the hook edits is the header block forwarded to the backend itself; nothing is decoded.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { HookRequest, HookResult, OnRequestHook } from '../config/hook-types.ts';
import { Code } from '../errors/index.ts';

/** gRPC metadata keys (PROTOCOL-HTTP2.md); `grpc-*` and connection-level names belong to the protocol, not to hooks. */
const LEGAL_KEY = /^[0-9a-z_.-]+$/;
const RESERVED = new Set(['content-type', 'te', 'user-agent', 'host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

export interface GrpcHookOutcome {
  /** Answer with this status instead of forwarding. */
  reject?: { code: number; message: string };
  /** Forward to this backend (by name) instead. */
  backend?: string;
  /** The hook threw something without a gRPC code: for the log (the client gets INTERNAL without it). */
  error?: unknown;
}

export async function runGrpcHook(
  hook: OnRequestHook,
  headers: IncomingHttpHeaders,
  route: { service: string; method: string; backend: string },
  remoteAddress: string | undefined,
): Promise<GrpcHookOutcome> {
  const h = headers as Record<string, string | string[] | undefined>;
  const key = (name: string): string => {
    const k = name.toLowerCase();
    if (!LEGAL_KEY.test(k) || k.startsWith('grpc-') || RESERVED.has(k)) throw new TypeError(`metadata key "${name}" cannot be set by a hook`);
    return k;
  };
  const values = (k: string): string[] => {
    const v = h[k];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  };
  // -bin values travel base64-encoded in HTTP/2 headers; hooks see and give Buffers, as with grpc-js Metadata.
  const encode = (k: string, v: string | Buffer): string => (k.endsWith('-bin') ? Buffer.from(v).toString('base64') : String(v));
  const path = String(headers[':path'] ?? '');
  const request: HookRequest = {
    method: 'POST',
    path,
    query: '',
    headers,
    remoteAddress,
    route: { template: path, service: route.service, method: route.method, backend: route.backend },
    metadata: {
      get: (name) => {
        const k = name.toLowerCase();
        return values(k).map((v) => (k.endsWith('-bin') ? Buffer.from(v, 'base64') : v));
      },
      set: (name, v) => {
        const k = key(name);
        h[k] = encode(k, v);
      },
      add: (name, v) => {
        const k = key(name);
        const prev = values(k);
        h[k] = prev.length > 0 ? [...prev, encode(k, v)] : encode(k, v);
      },
      remove: (name) => {
        delete h[key(name)];
      },
    },
  };
  let result: void | HookResult;
  try {
    result = await hook(request);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number' && code > 0 && code <= 16) return { reject: { code, message: (err as Error).message ?? 'rejected' } };
    return { reject: { code: Code.INTERNAL, message: 'the onRequest hook failed' }, error: err };
  }
  if (!result) return {};
  if (result.reject) {
    const { code, message } = result.reject;
    return { reject: { code: code > 0 && code <= 16 ? code : Code.UNKNOWN, message } };
  }
  return { backend: result.backend };
}
