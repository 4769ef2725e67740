/**
 * HTTP headers <-> gRPC metadata for transcoded calls, following grpc-gateway's conventions so clients moving
 * over keep working: `Authorization` and `Grpc-Metadata-<key>` (prefix removed) are forwarded, plus an allow-list
 * from config; response header metadata comes back as `Grpc-Metadata-<key>`, trailers as `Grpc-Trailer-<key>`.
 * Plain header objects in, plain header objects out: no Fastify here.
 */
import * as grpc from '@grpc/grpc-js';
import { Code, GatewayError } from '../errors/index.ts';

const METADATA_PREFIX = 'grpc-metadata-';

/**
 * Never forwarded even when listed: HTTP/1.1 hop-by-hop headers (RFC 9110 §7.6.1), HTTP/2 pseudo and connection
 * headers, and everything gRPC itself owns (content-type, te, user-agent, grpc-*), which the client library sets.
 */
const NEVER_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'proxy-authenticate', 'proxy-authorization', 'host', 'content-length', 'content-type', 'user-agent',
  'accept-encoding', 'expect', 'http2-settings',
]);

export interface MetadataPolicy {
  /** Lower-cased extra header names to forward as-is. */
  forwardHeaders: ReadonlySet<string>;
}

/** Always forwarded: W3C trace context (so traces cross the gateway) and the request id. */
const TRACE_HEADERS = new Set(['traceparent', 'tracestate']);

export function isForwardable(key: string): boolean {
  return !NEVER_FORWARDED.has(key) && !key.startsWith('grpc-') && !key.startsWith(':');
}

/**
 * Builds the outgoing metadata. `remoteAddress` and `host` feed X-Forwarded-For / X-Forwarded-Host. `traceparent`,
 * when tracing is on, is the gateway span's and replaces the client's, so the backend's spans nest under the gateway's.
 */
export function requestMetadata(
  headers: Record<string, string | string[] | undefined>,
  policy: MetadataPolicy,
  remoteAddress: string | undefined,
  requestId: string,
  traceparent?: string,
): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-request-id', requestId);
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    let key: string | undefined;
    if (name.startsWith(METADATA_PREFIX)) key = name.slice(METADATA_PREFIX.length);
    else if (name === 'authorization' || TRACE_HEADERS.has(name) || policy.forwardHeaders.has(name)) key = name;
    if (!key || !isForwardable(key) || key === 'x-request-id') continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (key.endsWith('-bin')) {
        const buf = Buffer.from(v, 'base64');
        md.add(key, buf);
      } else {
        md.add(key, v);
      }
    }
  }
  if (traceparent !== undefined) md.set('traceparent', traceparent);
  const xff = headers['x-forwarded-for'];
  const prior = Array.isArray(xff) ? xff.join(', ') : xff;
  if (remoteAddress) md.set('x-forwarded-for', prior ? `${prior}, ${remoteAddress}` : remoteAddress);
  const host = headers['x-forwarded-host'] ?? headers['host'];
  if (host) md.set('x-forwarded-host', Array.isArray(host) ? host[0]! : host);
  return md;
}

/** HTTP/2 response headers that grpc-js hands over as metadata but that belong to the backend's HTTP layer. */
const NOT_METADATA = new Set(['date', 'server', 'content-type', 'content-length', 'content-encoding', 'accept-encoding']);

/** Response metadata -> HTTP headers with a prefix; binary values are sent base64 as gRPC-Web does. */
export function metadataHeaders(md: grpc.Metadata | undefined, prefix: 'Grpc-Metadata-' | 'Grpc-Trailer-'): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!md) return out;
  const keys = Object.keys(md.getMap());
  if (keys.length === 0) return out;
  for (const key of keys) {
    if (key.startsWith('grpc-') || NEVER_FORWARDED.has(key) || NOT_METADATA.has(key)) continue;
    const all = md.get(key);
    out[prefix + key] = all.map((v) => (typeof v === 'string' ? v : Buffer.from(v).toString('base64')));
  }
  return out;
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * Parses a Grpc-Timeout header ("TimeoutValue TimeoutUnit", at most 8 digits, PROTOCOL-HTTP2.md) to ms.
 * A malformed value is a client error, not something to ignore silently.
 */
export function parseGrpcTimeout(value: string): number {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (!m) {
    throw new GatewayError(Code.INVALID_ARGUMENT,
      `invalid Grpc-Timeout header "${value}": expected 1-8 digits followed by one unit of H, M, S, m, u, n (e.g. "5S", "250m")`);
  }
  return Number(m[1]) * TIMEOUT_UNITS[m[2]!]!;
}
