/**
 * The access log: ONE line per request, built here and only here, so every request is logged with the same
 * fields and no caller can add a body or a credential by accident. The builder takes the few header values it
 * needs by name (User-Agent); it never copies a header map, so Authorization and Cookie cannot reach the line.
 * Imports nothing from the rest of the gateway.
 */
import { randomUUID } from 'node:crypto';
import { grpcCodeName } from './metrics.ts';

/** Header values as node:http and http2 present them. */
export type HeaderBag = Readonly<Record<string, string | string[] | undefined>>;

export interface AccessLogInput {
  method: string;
  /** The matched path template, or undefined when no route matched. Never the raw path (it may carry ids/PII). */
  route: string | undefined;
  /** "pkg.Service/Method", or undefined when no method was reached. */
  grpcMethod: string | undefined;
  status: number;
  grpcCode: number;
  durationMs: number;
  reqBytes: number;
  resBytes: number;
  requestId: string;
  remoteAddress: string | undefined;
  headers: HeaderBag;
}

export interface AccessLogLine {
  method: string;
  route: string | null;
  grpcMethod: string | null;
  status: number;
  /** The code name ("NOT_FOUND"), as in the metrics' grpc_code label. */
  grpcCode: string;
  /** Rounded to microseconds. */
  durationMs: number;
  reqBytes: number;
  resBytes: number;
  requestId: string;
  remoteAddress: string | null;
  userAgent: string | null;
}

/** User agents are client-chosen; a cap keeps one client from making every log line huge. */
const MAX_USER_AGENT = 256;

export function accessLogLine(input: AccessLogInput): AccessLogLine {
  return {
    method: input.method,
    route: input.route ?? null,
    grpcMethod: input.grpcMethod ?? null,
    status: input.status,
    grpcCode: grpcCodeName(input.grpcCode),
    durationMs: Math.round(input.durationMs * 1000) / 1000,
    reqBytes: input.reqBytes,
    resBytes: input.resBytes,
    requestId: input.requestId,
    remoteAddress: input.remoteAddress ?? null,
    userAgent: userAgent(input.headers['user-agent']),
  };
}

function userAgent(value: string | string[] | undefined): string | null {
  const ua = Array.isArray(value) ? value[0] : value;
  if (ua === undefined || ua === '') return null;
  return ua.length > MAX_USER_AGENT ? ua.slice(0, MAX_USER_AGENT) : ua;
}

/** What an incoming X-Request-Id must look like to be kept: short, and safe in logs, headers and URLs. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * The request's id: the client's (or the load balancer's) X-Request-Id when it is sane, so one id follows a request
 * through every hop; otherwise a fresh random UUID. A repeated header is not trusted (which copy is right?).
 */
export function requestId(headers: HeaderBag): string {
  const given = headers['x-request-id'];
  if (typeof given === 'string' && SANE_REQUEST_ID.test(given)) return given;
  return randomUUID();
}
