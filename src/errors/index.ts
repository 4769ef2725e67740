/**
 * The one error type of protogate. Every error the gateway emits carries a gRPC status code; the HTTP status is
 * derived from it through the table in google/rpc/code.proto, and the body is a google.rpc.Status in JSON.
 * Imports nothing from the rest of the gateway.
 */

/** gRPC status codes (google/rpc/code.proto). A closed enum: the numbers are the wire values. */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/**
 * gRPC code -> HTTP status, exactly as the comments of google/rpc/code.proto map them ("HTTP Mapping: ...").
 * CANCELLED maps to 499 Client Closed Request. Codes outside the enum are treated as UNKNOWN (500).
 */
export function httpStatusFromCode(code: number): number {
  switch (code) {
    case Code.OK: return 200;
    case Code.CANCELLED: return 499;
    case Code.UNKNOWN: return 500;
    case Code.INVALID_ARGUMENT: return 400;
    case Code.DEADLINE_EXCEEDED: return 504;
    case Code.NOT_FOUND: return 404;
    case Code.ALREADY_EXISTS: return 409;
    case Code.PERMISSION_DENIED: return 403;
    case Code.RESOURCE_EXHAUSTED: return 429;
    case Code.FAILED_PRECONDITION: return 400;
    case Code.ABORTED: return 409;
    case Code.OUT_OF_RANGE: return 400;
    case Code.UNIMPLEMENTED: return 501;
    case Code.INTERNAL: return 500;
    case Code.UNAVAILABLE: return 503;
    case Code.DATA_LOSS: return 500;
    case Code.UNAUTHENTICATED: return 401;
    default: return 500;
  }
}

/** The JSON form of google.rpc.Status as protogate sends it: details already in proto3 JSON (with "@type"). */
export interface StatusJson {
  code: number;
  message: string;
  details: unknown[];
}

export interface GatewayErrorOptions {
  /** google.rpc.Status details in proto3 JSON form (each with "@type"). */
  details?: unknown[];
  /** Extra HTTP response headers, e.g. Allow for 405 or Retry-After for 503. */
  headers?: Record<string, string>;
  /** Overrides the HTTP status derived from the code (405, 413, 415, 431 have no gRPC code of their own). */
  httpStatus?: number;
  /** Logged, never sent to the client. */
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly code: Code;
  readonly details: unknown[];
  readonly headers: Record<string, string> | undefined;
  readonly httpStatus: number;

  constructor(code: Code, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.details = options.details ?? [];
    this.headers = options.headers;
    this.httpStatus = options.httpStatus ?? httpStatusFromCode(code);
  }

  toStatusJson(): StatusJson {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function invalidArgument(message: string, cause?: unknown): GatewayError {
  return new GatewayError(Code.INVALID_ARGUMENT, message, { cause });
}

/** Wraps anything thrown into a GatewayError; unknown errors become INTERNAL without leaking their text. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError(Code.INTERNAL, 'internal error', { cause: err });
}

/**
 * A configuration or proto problem found at startup. The message names the file, the field and the fix;
 * the CLI prints it and exits non-zero before listening.
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}
