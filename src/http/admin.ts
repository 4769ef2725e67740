/**
 * The admin listener: liveness, readiness and Prometheus metrics, on a port of its own and on plain node:http,
 * so that probes and scrapes never queue behind traffic and keep answering while the traffic listeners drain.
 *
 *   GET /healthz  200 {"status":"ok"} for as long as the process can answer at all (liveness)
 *   GET /readyz   200 when every readiness check passes, else 503; the checks are in the body either way
 *   GET /metrics  the Prometheus text exposition of the gateway's registry
 *
 * HEAD is answered like GET (without a body); any other method is 405, any other path 404, both with JSON bodies.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface Readiness {
  ready: boolean;
  checks: ReadinessCheck[];
}

export interface AdminServerOptions {
  host: string;
  port: number;
  metrics: Metrics;
  /** Called on every GET /readyz; must be cheap (report state, do not probe backends from here). */
  readiness: () => Readiness;
  logger?: Logger;
}

export interface AdminServer {
  readonly address: AddressInfo;
  /** Stops listening and closes idle keep-alive connections (a scraper's, typically); resolves when all are gone. */
  close(): Promise<void>;
}

const ALLOW = 'GET, HEAD';

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { metrics, readiness, logger } = options;

  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const known = path === '/healthz' || path === '/readyz' || path === '/metrics';
    if (!known) return sendJson(res, 404, { error: 'not found', paths: ['/healthz', '/readyz', '/metrics'] });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendJson(res, 405, { error: `method ${req.method} not allowed` }, { allow: ALLOW });
    }

    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });

    if (path === '/readyz') {
      let state: Readiness;
      try {
        state = readiness();
      } catch (err) {
        logger?.error({ err }, 'readiness check threw');
        state = { ready: false, checks: [{ name: 'readiness', ok: false, detail: 'readiness check threw' }] };
      }
      return sendJson(res, state.ready ? 200 : 503, { status: state.ready ? 'ready' : 'not ready', checks: state.checks });
    }

    metrics.render().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      },
      (err: unknown) => {
        logger?.error({ err }, 'rendering metrics failed');
        sendJson(res, 500, { error: 'rendering metrics failed' });
      },
    );
  });
  // A misbehaving client must not keep the admin port busy; probes send tiny requests.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger?.error({ err }, 'admin listener error'));
  const address = server.address() as AddressInfo;
  logger?.info({ admin: `${address.address}:${address.port}` }, `admin listening on http://${address.address}:${address.port}`);

  return {
    address,
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Scrapers hold keep-alive connections open; without this close() would wait for their idle timeout.
        server.closeIdleConnections();
      });
    },
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
