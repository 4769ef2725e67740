/**
 * The few pieces of the gRPC-over-HTTP/2 wire protocol the passthrough needs without ever decoding a message:
 * content-type and :path checks, grpc-timeout, status trailers, and the HTTP/2 error code -> gRPC status table.
 * Spec: grpc/grpc doc/PROTOCOL-HTTP2.md.
 */
import http2 from 'node:http2';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { Code } from '../errors/index.ts';

const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_PROTOCOL_ERROR,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_FLOW_CONTROL_ERROR,
  NGHTTP2_SETTINGS_TIMEOUT,
  NGHTTP2_STREAM_CLOSED,
  NGHTTP2_FRAME_SIZE_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_CANCEL,
  NGHTTP2_COMPRESSION_ERROR,
  NGHTTP2_CONNECT_ERROR,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_HTTP_1_1_REQUIRED,
} = http2.constants;

/** `application/grpc`, `application/grpc+proto`, `application/grpc;...`. grpc-web is a different protocol. */
export function isGrpcContentType(value: string | undefined): boolean {
  if (!value) return false;
  const v = value.toLowerCase();
  return v === 'application/grpc' || v.startsWith('application/grpc+') || v.startsWith('application/grpc;');
}

/** `/<package.Service>/<Method>` -> `package.Service`; undefined when :path is not of that shape. */
export function serviceFromPath(path: string | undefined): string | undefined {
  if (!path || path.charCodeAt(0) !== 47 /* / */) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash <= 1 || slash === path.length - 1 || path.indexOf('/', slash + 1) !== -1) return undefined;
  if (path.includes('?')) return undefined;
  return path.slice(1, slash);
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * grpc-timeout: `TimeoutValue TimeoutUnit`, at most 8 ASCII digits then one of H M S m u n.
 * Returns milliseconds (at least 1 for any positive value), or undefined when absent or malformed.
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const ms = Number(m[1]) * TIMEOUT_UNIT_MS[m[2]];
  return ms === 0 ? 0 : Math.max(1, Math.ceil(ms));
}

/**
 * RST_STREAM / GOAWAY error code received from the backend -> the status the client sees
 * (PROTOCOL-HTTP2.md, "Errors": NO_ERROR..CONNECT_ERROR are INTERNAL except the ones below).
 */
export function codeFromHttp2Error(errorCode: number): Code {
  switch (errorCode) {
    case NGHTTP2_REFUSED_STREAM: return Code.UNAVAILABLE; // not processed: safe to retry
    case NGHTTP2_CANCEL: return Code.CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM: return Code.RESOURCE_EXHAUSTED; // the exhausted resource is bandwidth
    case NGHTTP2_INADEQUATE_SECURITY: return Code.PERMISSION_DENIED;
    case NGHTTP2_NO_ERROR:
    case NGHTTP2_PROTOCOL_ERROR:
    case NGHTTP2_INTERNAL_ERROR:
    case NGHTTP2_FLOW_CONTROL_ERROR:
    case NGHTTP2_SETTINGS_TIMEOUT:
    case NGHTTP2_STREAM_CLOSED:
    case NGHTTP2_FRAME_SIZE_ERROR:
    case NGHTTP2_COMPRESSION_ERROR:
    case NGHTTP2_CONNECT_ERROR:
    case NGHTTP2_HTTP_1_1_REQUIRED:
    default:
      return Code.INTERNAL;
  }
}

/**
 * grpc-message is percent-encoded UTF-8: bytes outside %x20-%x7E, and '%' itself, become %XX.
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Trailers carrying a gateway-generated status. */
export function statusTrailers(code: Code, message: string): OutgoingHttpHeaders {
  return { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) };
}

/** A Trailers-Only response: one HEADERS frame with END_STREAM (PROTOCOL-HTTP2.md "Trailers-Only"). */
export function trailersOnlyHeaders(code: Code, message: string): OutgoingHttpHeaders {
  return { ':status': 200, 'content-type': 'application/grpc', ...statusTrailers(code, message) };
}

// RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2; node:http2 throws on them.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host'];

/**
 * Makes a received header block fit to relay, in place: drops connection-specific fields, keeps `te` only as
 * `trailers`, keeps -bin values as sent. In place because each block is relayed once and read by nobody after
 * that, and copying three blocks per call showed in the unary profile (~1 % of the gateway's CPU); the block's own
 * list of never-indexed (sensitive) fields travels with it too, which a copy would lose.
 */
export function relayHeadersInPlace(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const h = headers as Record<string, unknown>;
  for (let i = 0; i < HOP_BY_HOP.length; i++) {
    if (h[HOP_BY_HOP[i]] !== undefined) delete h[HOP_BY_HOP[i]];
  }
  const te = headers.te;
  if (te !== undefined && te !== 'trailers') delete h.te;
  return headers;
}

/**
 * Milliseconds -> grpc-timeout (at most 8 digits, the finest unit that fits); at least 1 ms, so a deadline that has
 * just run out still reaches the backend as one (our own timer ends the call anyway).
 */
export function encodeGrpcTimeout(ms: number): string {
  if (!(ms > 1)) return '1m';
  const us = Math.floor(ms * 1000);
  if (us < 1e8) return `${us}u`;
  const whole = Math.floor(ms);
  if (whole < 1e8) return `${whole}m`;
  const s = Math.floor(ms / 1000);
  if (s < 1e8) return `${s}S`;
  return `${Math.min(99_999_999, Math.floor(s / 60))}M`;
}
