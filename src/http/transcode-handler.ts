/**
 * One REST request -> one gRPC call -> one HTTP response. Everything here is per request; everything derivable
 * from config and protos was compiled into the RouteEntry at startup.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { FileRegistry } from '@bufbuild/protobuf';
import { Code, GatewayError, httpStatusFromCode, type StatusJson } from '../errors/index.ts';
import type { GrpcInvoker } from '../upstream/grpc-invoker.ts';
import { abortToken, cancelToken } from '../upstream/http2-pool.ts';
import { statusBody } from '../transcode/status.ts';
import type { RouteEntry } from './routes.ts';
import type { OnRequestHook } from '../config/hook-types.ts';
import { settleHook } from '../config/hooks.ts';
import { metadataHeaders, parseGrpcTimeout, requestMetadata, type MetadataPolicy } from './metadata.ts';

export interface HandlerContext {
  onRequest?: OnRequestHook;
  /** Server streams silent this long are ended (0 = never). */
  streamIdleTimeoutMs: number;
  registry: FileRegistry;
  invokers: Map<string, GrpcInvoker>;
  timeouts: Map<string, number>;
  metadata: MetadataPolicy;
}

export interface TranscodeRequest {
  entry: RouteEntry;
  /** The request path as received, without the query string. */
  path: string;
  params: ReadonlyArray<{ fieldPath: readonly string[]; value: string }>;
  query: string;
  body: Buffer | undefined;
  headers: IncomingHttpHeaders;
  remoteAddress: string | undefined;
  /** The raw response: unary answers are written whole, streams are written with backpressure. */
  /** An http.ServerResponse, or with TLS an Http2ServerResponse: only the API both share is used. */
  res: ServerResponse;
  requestId: string;
  /** The gateway span's traceparent, sent instead of the client's; undefined when tracing is off. */
  traceparent?: string;
  /** Filled in as the request goes: what the access log and metrics report. */
  outcome: Outcome;
}

export interface Outcome {
  grpcCode: number;
  resBytes: number;
}

export async function handleTranscode(ctx: HandlerContext, req: TranscodeRequest): Promise<void> {
  const { entry, res } = req;
  const metadata = requestMetadata(req.headers, ctx.metadata, req.remoteAddress, req.requestId, req.traceparent);
  // The hook runs before the body is parsed: an unauthenticated request is refused as such, not as bad input.
  const backend = ctx.onRequest ? await runHook(ctx.onRequest, req, metadata) : entry.backend;
  const contentType = req.headers['content-type'];
  const encoded = entry.request.transcode({ params: req.params, query: req.query, body: req.body, contentType });
  const requestBytes = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength); // a view, not a copy
  const invoker = backend ? ctx.invokers.get(backend) : undefined;
  if (!invoker && backend !== entry.backend) {
    throw new GatewayError(Code.INTERNAL, `the onRequest hook chose backend "${backend}", which is not configured`);
  }
  if (!invoker) {
    throw new GatewayError(Code.UNAVAILABLE, `no backend serves ${entry.method.service}`);
  }
  // A backend's default timeout bounds unary calls; a stream (a watch, a download) may rightly run for hours, so it
  // gets a deadline only when the client asks for one with Grpc-Timeout.
  const streaming = entry.method.kind === 'server_streaming';
  const deadline = callDeadline(req.headers['grpc-timeout'], streaming ? 0 : ctx.timeouts.get(invoker.backend) ?? 0);

  if (streaming) {
    await streamResponse(ctx, entry, invoker, requestBytes, metadata, deadline, res, req.outcome);
    return;
  }

  // A client that goes away cancels the call: 'close' on the response before it finished means the socket died.
  const abort = cancelToken();
  const onClose = (): void => { if (!res.writableEnded) abortToken(abort); };
  res.on('close', onClose);
  try {
    const result = await invoker.unary(entry.method.path, requestBytes, { metadata, deadline }, abort);
    const out = entry.response.body(result.message);
    writeHeaders(res, 200, out.contentType, result.headers, result.trailers);
    req.outcome.grpcCode = 0;
    req.outcome.resBytes = Buffer.byteLength(out.body);
    res.end(out.body);
  } catch (err) {
    if (abort.aborted) {
      req.outcome.grpcCode = Code.CANCELLED;
      return;
    }
    const status = grpcErrorStatus(ctx.registry, err);
    req.outcome.grpcCode = status.code;
    req.outcome.resBytes = sendStatus(res, status, (err as grpc.ServiceError).metadata);
  } finally {
    res.off('close', onClose);
  }
}

function runHook(hook: OnRequestHook, req: TranscodeRequest, metadata: grpc.Metadata): Promise<string | undefined> {
  const { entry } = req;
  return settleHook(hook, {
    method: entry.rule.method,
    path: req.path,
    query: req.query,
    headers: req.headers,
    remoteAddress: req.remoteAddress,
    route: { template: entry.rule.pattern, service: entry.method.service, method: entry.method.name, backend: entry.backend },
    metadata: {
      get: (k) => metadata.get(k),
      set: (k, v) => metadata.set(k, v),
      add: (k, v) => metadata.add(k, v),
      remove: (k) => metadata.remove(k),
    },
  }, entry.backend);
}

function callDeadline(header: string | string[] | undefined, backendTimeoutMs: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  let ms = backendTimeoutMs > 0 ? backendTimeoutMs : Infinity;
  if (value !== undefined) ms = Math.min(ms, parseGrpcTimeout(value));
  return ms === Infinity ? undefined : Date.now() + ms;
}

function writeHeaders(res: ServerResponse, status: number, contentType: string, headers?: grpc.Metadata, trailers?: grpc.Metadata): void {
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  for (const [k, v] of Object.entries(metadataHeaders(headers, 'Grpc-Metadata-'))) res.setHeader(k, v);
  for (const [k, v] of Object.entries(metadataHeaders(trailers, 'Grpc-Trailer-'))) res.setHeader(k, v);
}

/** Writes a google.rpc.Status response; returns the body length. */
export function sendStatus(res: ServerResponse, status: StatusJson & { httpStatus?: number; headers?: Record<string, string> }, trailers?: grpc.Metadata): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  const body = JSON.stringify({ code: status.code, message: status.message, details: status.details });
  writeHeaders(res, status.httpStatus ?? httpStatusFromCode(status.code), 'application/json', undefined, trailers);
  for (const [k, v] of Object.entries(status.headers ?? {})) res.setHeader(k, v);
  const length = Buffer.byteLength(body);
  res.setHeader('content-length', length);
  res.end(body);
  return length;
}

/** A grpc-js error -> google.rpc.Status JSON, with details decoded from grpc-status-details-bin. */
function grpcErrorStatus(registry: FileRegistry, err: unknown): StatusJson {
  if (err instanceof GatewayError) return err.toStatusJson();
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code !== 'number') return { code: Code.INTERNAL, message: 'internal error', details: [] };
  // grpc-js words a deadline it enforced itself with LB timings and the backend's address: not for clients.
  if (e.code === grpc.status.DEADLINE_EXCEEDED && e.details?.startsWith('Deadline exceeded after')) {
    return { code: e.code, message: "deadline exceeded (Grpc-Timeout header or the backend's timeoutMs)", details: [] };
  }
  const bin = e.metadata?.get('grpc-status-details-bin')[0];
  return statusBody(e.code, e.details ?? '', typeof bin === 'string' ? Buffer.from(bin, 'base64') : bin, registry);
}

/**
 * Server streaming as NDJSON. The HTTP status waits for the first message (or the status): a stream that fails
 * before any data gets a real HTTP error; after data, a last `{"error": ...}` line. Backpressure: when the socket
 * buffer is full the gRPC stream is paused, which stops grpc-js reading and so the HTTP/2 window to the backend.
 */
function streamResponse(ctx: HandlerContext, entry: RouteEntry, invoker: GrpcInvoker, request: Buffer,
  metadata: grpc.Metadata, deadline: number | undefined, res: ServerResponse, outcome: Outcome): Promise<void> {
  return new Promise((resolve) => {
    const call = invoker.serverStream(entry.method.path, request, { metadata, deadline });
    let headers: grpc.Metadata | undefined;
    let started = false;
    let failure: unknown;
    let done = false;
    const start = (first?: Buffer): void => {
      if (started) return;
      started = true;
      // HttpBody streams take their content type from the first message.
      const type = first ? entry.response.streamContentTypeOf(first) : entry.response.streamContentType;
      writeHeaders(res, 200, type, headers);
    };
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      res.off('close', onClose);
      res.off('drain', onDrain);
      if (failure !== undefined) {
        const status = grpcErrorStatus(ctx.registry, failure);
        outcome.grpcCode = status.code;
        if (!started) {
          outcome.resBytes += sendStatus(res, status, (failure as grpc.ServiceError).metadata);
        } else {
          const line = JSON.stringify({ error: status }) + '\n';
          outcome.resBytes += Buffer.byteLength(line);
          res.end(line);
        }
      } else {
        outcome.grpcCode = 0;
        start();
        res.end();
      }
      resolve();
    };
    // Idle = no message from the backend while we are ready for one: paused for a slow client does not count.
    const idleMs = ctx.streamIdleTimeoutMs;
    const idle = idleMs > 0 ? setTimeout(() => {
      if (done) return;
      failure = new GatewayError(Code.DEADLINE_EXCEEDED, `no message for ${idleMs} ms (http.streamIdleTimeoutMs)`);
      // finish() first: cancelling reports CANCELLED synchronously, which must not replace our status.
      finish();
      call.cancel();
    }, idleMs) : undefined;
    const onDrain = (): void => {
      idle?.refresh();
      call.resume();
    };
    const onClose = (): void => {
      if (!res.writableEnded && !done) {
        done = true;
        clearTimeout(idle);
        outcome.grpcCode = Code.CANCELLED;
        call.cancel();
        resolve();
      }
    };
    res.on('close', onClose);
    res.on('drain', onDrain);
    call.on('metadata', (md) => { headers = md; });
    call.on('data', (msg: Buffer) => {
      if (done) return;
      let chunk: string | Buffer;
      try {
        chunk = entry.response.streamChunk(msg);
      } catch (err) {
        failure = err instanceof GatewayError ? err : new GatewayError(Code.INTERNAL, 'cannot encode response message', { cause: err });
        finish();
        call.cancel();
        return;
      }
      start(msg);
      outcome.resBytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
      idle?.refresh();
      if (!res.write(chunk)) {
        call.pause();
        // Waiting on the client: the backend is not idle, so no idle deadline until 'drain'.
        clearTimeout(idle);
      }
    });
    // grpc-js may report the status before buffered messages were delivered: end only on 'end'.
    call.on('error', (err) => {
      if ((err as grpc.ServiceError).code === grpc.status.CANCELLED && done) return;
      failure = err;
    });
    call.on('end', finish);
    call.on('close', () => { if (failure !== undefined) finish(); });
  });
}
