/**
 * hooks.onRequest on the gRPC port: the same hook REST requests get, so authentication written once in the config
 * covers both ports (a JWT check on REST alone would leave every service open on the gRPC port). On this port the
 * metadata the hook edits is the header block forwarded to the backend itself; nothing is decoded.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { HookRequest } from '../config/hook-types.ts';

/** gRPC metadata keys (PROTOCOL-HTTP2.md); `grpc-*` and connection-level names belong to the protocol, not to hooks. */
const LEGAL_KEY = /^[0-9a-z_.-]+$/;
const RESERVED = new Set(['content-type', 'te', 'user-agent', 'host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

/**
 * The hook's request for one routed call; its `metadata` edits `headers`, the block forwarded to the backend.
 * Run it with settleHook (config/hooks.ts), as REST does.
 */
export function grpcHookRequest(
  headers: IncomingHttpHeaders,
  route: { service: string; method: string; backend: string },
  remoteAddress: string | undefined,
): HookRequest {
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
  return {
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
}
