/**
 * The REST listener: the only module that imports Fastify. One catch-all route in front of our own matcher,
 * because find-my-way cannot express `**` mid-path or a verb after a variable (STACK-NOTES), and a raw-body
 * content-type parser so that Fastify never parses bodies itself: transcode/ does, exactly per proto3 JSON.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyBaseLogger } from 'fastify';
import { Code, GatewayError, toGatewayError } from '../errors/index.ts';
import { PathDecodeError } from '../routing/index.ts';
import type { RouteTable } from './routes.ts';
import { handleTranscode, sendStatus, type HandlerContext } from './transcode-handler.ts';

export interface HttpAppOptions {
  routes: RouteTable;
  context: HandlerContext;
  bodyLimit: number;
  logger: FastifyBaseLogger;
}

/** Methods Fastify knows without registration; custom-verb kinds from HTTP rules are added on top. */
const BASE_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];

export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimit,
    // One access-log line per request is written by the gateway itself, with the route template and gRPC code.
    logController: new LogController({ disableRequestLogging: true }),
    // Our matcher sees the path exactly as sent: Fastify must not rewrite or reject it first.
    routerOptions: { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 65535 },
    return503OnClosing: true,
    forceCloseConnections: true,
  });

  const methods = new Set(BASE_METHODS);
  for (const m of options.routes.httpMethods) {
    if (!methods.has(m)) {
      if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
      methods.add(m);
    }
  }

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const raw = request.raw;
    const url = raw.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    let match;
    try {
      match = options.routes.router.match(request.method, path);
    } catch (err) {
      if (err instanceof PathDecodeError) throw new GatewayError(Code.INVALID_ARGUMENT, err.message);
      throw err;
    }
    if (match.kind === 'not-found') {
      throw new GatewayError(Code.NOT_FOUND, `no route for ${request.method} ${path}`);
    }
    if (match.kind === 'method-not-allowed') {
      throw new GatewayError(Code.UNIMPLEMENTED, `method ${request.method} is not allowed for ${path}`, {
        httpStatus: 405,
        headers: { allow: match.allow.join(', ') },
      });
    }
    reply.hijack();
    try {
      await handleTranscode(options.context, {
        entry: match.value,
        params: match.params,
        query,
        body: request.body as Buffer | undefined,
        headers: raw.headers,
        remoteAddress: raw.socket.remoteAddress,
        res: reply.raw,
      });
    } catch (err) {
      const e = toGatewayError(err);
      if (e.code === Code.INTERNAL) request.log.error({ err }, 'transcoding failed');
      sendStatus(reply.raw, { ...e.toStatusJson(), httpStatus: e.httpStatus, headers: e.headers });
    }
  };

  app.route({ method: [...methods], url: '*', exposeHeadRoute: false, handler });
  app.setNotFoundHandler(handler);
  app.setErrorHandler((err, request, reply) => {
    const e = fromFastifyError(err);
    if (e.code === Code.INTERNAL) request.log.error({ err }, 'request failed');
    for (const [k, v] of Object.entries(e.headers ?? {})) void reply.header(k, v);
    void reply.code(e.httpStatus).type('application/json').send(JSON.stringify(e.toStatusJson()));
  });
  return app;
}

/** Fastify's own errors (body too large, bad content length...) as google.rpc.Status with the right HTTP status. */
function fromFastifyError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError(Code.RESOURCE_EXHAUSTED, `request body is larger than the limit (http.bodyLimit): ${e.message}`, { httpStatus: 413 });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError(Code.INVALID_ARGUMENT, 'request body length does not match Content-Length');
    default:
      if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
        return new GatewayError(Code.INVALID_ARGUMENT, e.message ?? 'bad request', { httpStatus: e.statusCode });
      }
      return toGatewayError(err);
  }
}
