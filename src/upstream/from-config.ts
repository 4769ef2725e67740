/**
 * Backend config -> balancer settings, done once at startup. TLS files are read here so a missing file is a
 * StartupError naming the backend, not a failed call later.
 */
import fs from 'node:fs';
import type { BackendConfig } from '../config/index.ts';
import { StartupError } from '../errors/index.ts';
import { BackendUpstream } from './backend-upstream.ts';
import type { UpstreamLogger, UpstreamObserver, UpstreamSettings } from './backend-upstream.ts';
import type { Http2UpstreamTls } from './http2-pool.ts';

export function upstreamSettings(b: BackendConfig): UpstreamSettings {
  return {
    name: b.name,
    endpoints: b.endpoints.map((e) => (typeof e === 'string' ? { address: e, weight: 1 } : { address: e.address, weight: e.weight })),
    policy: b.policy,
    resolveIntervalMs: b.resolveIntervalMs,
    dnsServers: b.dnsServers,
    tls: b.tls ? readTls(b.name, b.tls) : undefined,
    pool: {
      connectTimeoutMs: b.connectTimeoutMs,
      keepaliveTimeMs: b.keepalive.timeMs,
      keepaliveTimeoutMs: b.keepalive.timeoutMs,
      maxSessions: b.maxConnectionsPerEndpoint,
      maxHeaderListSize: b.maxHeaderListSize,
      idleTimeoutMs: b.idleTimeoutMs,
      reconnectBackoff: { initialMs: b.reconnectBackoff.initialMs, maxMs: b.reconnectBackoff.maxMs },
    },
    healthCheck: b.healthCheck,
    outlierDetection: b.outlierDetection,
    socketCalls: b.transport === 'socket',
  };
}

function readTls(backend: string, tls: NonNullable<BackendConfig['tls']>): Http2UpstreamTls {
  const read = (what: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new StartupError(`backend "${backend}": cannot read tls.${what} "${file}": ${(err as Error).message}`);
    }
  };
  return {
    ca: read('caFile', tls.caFile),
    cert: read('certFile', tls.certFile),
    key: read('keyFile', tls.keyFile),
    serverName: tls.serverName,
    rejectUnauthorized: !tls.insecureSkipVerify,
  };
}

export function createUpstreams(backends: readonly BackendConfig[], deps: { observer?: UpstreamObserver; logger?: UpstreamLogger } = {}): Map<string, BackendUpstream> {
  return new Map(backends.map((b) => [b.name, new BackendUpstream(upstreamSettings(b), deps)]));
}
