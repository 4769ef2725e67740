/**
 * `serve` with `workers > 1`: one primary process and `workers` worker processes (node:cluster).
 *
 * The primary loads the config (main.ts), builds a gateway once to validate protos and routes and throws it away,
 * starts the admin listener, forks the workers and then only supervises: it never listens on the REST or gRPC
 * port itself. Each worker re-runs the CLI entry (bin/protogate.mjs, which registers tsx before importing any .ts)
 * with `serve --config <same file>` and is a whole gateway; node:cluster shares the REST and gRPC listening sockets
 * (the primary accepts and hands connections to the workers round-robin; the passthrough's plain net.Server and
 * its http2 session handling work on a handed-over socket like on any other).
 *
 * Admin (/healthz, /readyz, /metrics) runs in the PRIMARY, not in the workers: a shared admin port would answer
 * each scrape from whichever worker got the connection, so counters would jump between workers' values and
 * rate() would see a reset on every scrape. /metrics is prom-client's AggregatorRegistry: the primary asks every
 * worker for its registry over the cluster IPC channel and sums them (the endpoint-health gauge takes the minimum).
 * /readyz is ready when every worker has started and no shutdown signal has arrived.
 *
 * Lifecycle of the primary:
 *   starting  forks `workers` workers; a worker that exits before every worker has started fails the whole start
 *             (exit 1): a port in use or an unreachable file will not fix itself by restarting
 *   serving   a worker that exits is logged and forked again after a backoff (100 ms doubling to 5 s); more than
 *             RESTART.maxCrashes exits within RESTART.windowMs and the primary gives up: stops the rest, exits 1
 *   stopping  SIGTERM/SIGINT: readiness fails, the signal goes to every worker (each drains with gateway.shutdown());
 *             exit 0 once all have exited with code 0, 1 otherwise. Further signals are ignored (workers are
 *             already draining; a worker ignores repeats of a signal too, e.g. Ctrl-C reaching the whole group).
 *
 * Log lines carry `worker: <cluster id>` and `pid` (workers) or `role: "primary"` and `pid` (the primary).
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import type { ResolvedConfig } from '../config/index.ts';
import { createGateway } from '../gateway.ts';
import { startAdminServer, type Readiness } from '../http/admin.ts';
import { createLogger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

/** What every worker runs: the package bin, so tsx is registered in the worker exactly as in the primary. */
const WORKER_ENTRY = fileURLToPath(new URL('../../bin/protogate.mjs', import.meta.url));

/** Sent by a worker over the cluster IPC channel once its listeners are up. */
const STARTED = 'protogate:worker-started';

/** Restarts after an unexpected worker exit: backoff initialDelayMs × 2^(n-1) up to maxDelayMs; give up past maxCrashes per window. */
const RESTART = { initialDelayMs: 100, maxDelayMs: 5_000, windowMs: 60_000, maxCrashes: 5 } as const;

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** `serve` for a config with workers > 1, in whichever role this process has. */
export function serveCluster(config: ResolvedConfig, configFile: string): Promise<number> {
  return cluster.isPrimary ? servePrimary(config, configFile) : serveWorker(config, configFile);
}

async function serveWorker(config: ResolvedConfig, configFile: string): Promise<number> {
  const logger = createLogger(config.log.level, { worker: cluster.worker?.id, pid: process.pid });
  // Handlers go in before the (slow) proto loading: a signal during startup is acted on once started, instead of
  // killing the worker with the default action. A repeated or second signal is ignored: the drain is under way.
  let signalled: string | undefined;
  let onSignal: (() => void) | undefined;
  for (const s of SIGNALS) {
    process.on(s, () => {
      if (signalled) return;
      signalled = s;
      onSignal?.();
    });
  }
  // The primary serves admin for all workers (see the top of this file).
  const gateway = createGateway({ ...config, admin: { ...config.admin, enabled: false } }, { configFile, logger });
  // Answer the primary's metric requests with this gateway's registry (prom-client keeps the list per process).
  AggregatorRegistry.setRegistries([gateway.metrics.registry]);
  new AggregatorRegistry();
  await gateway.start();
  process.send?.({ type: STARTED });
  await new Promise<void>((resolve) => {
    onSignal = resolve;
    if (signalled) resolve();
  });
  logger.info({ signal: signalled }, 'shutting down');
  await gateway.shutdown().catch((err: unknown) => logger.error({ err }, 'shutdown failed'));
  return 0;
}

interface WorkerState {
  readonly worker: Worker;
  started: boolean;
}

async function servePrimary(config: ResolvedConfig, configFile: string): Promise<number> {
  const logger = createLogger(config.log.level, { role: 'primary', pid: process.pid });
  // Protos, routes and backends are checked here once, so a bad one fails with one message before any worker forks.
  await createGateway(config, { configFile, logger: createLogger('silent') }).close();

  const workers = new Map<number, WorkerState>();
  let stopping: string | undefined;
  let allStarted = false;
  let failed = false;

  const aggregator = new AggregatorRegistry();
  const metrics: Pick<Metrics, 'render' | 'contentType'> = {
    render: () => aggregator.clusterMetrics(),
    get contentType() {
      return aggregator.contentType;
    },
  };
  const readiness = (): Readiness => {
    const started = [...workers.values()].filter((w) => w.started).length;
    const checks = [
      { name: 'workers', ok: started === config.workers, detail: `${started}/${config.workers} workers started` },
      { name: 'draining', ok: stopping === undefined, detail: stopping ? 'shutting down' : undefined },
    ];
    return { ready: checks.every((c) => c.ok), checks };
  };
  const admin = config.admin.enabled
    ? await startAdminServer({ host: config.admin.host, port: config.admin.port, metrics: metrics as Metrics, readiness, logger })
    : undefined;

  cluster.setupPrimary({ exec: WORKER_ENTRY, args: ['serve', '--config', configFile] });
  const fork = (): void => {
    const worker = cluster.fork();
    workers.set(worker.id, { worker, started: false });
  };

  return new Promise<number>((resolve) => {
    const crashes: number[] = [];
    const restarts = new Set<NodeJS.Timeout>();

    const stopAll = (signal: NodeJS.Signals): void => {
      stopping = signal;
      for (const t of restarts) clearTimeout(t);
      restarts.clear();
      for (const { worker } of workers.values()) worker.process.kill(signal);
      if (workers.size === 0) void finish();
    };
    const giveUp = (message: string): void => {
      logger.fatal({ workers: workers.size }, message);
      failed = true;
      if (!stopping) stopAll('SIGTERM');
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      logger.info({ signal, workers: workers.size }, 'shutting down: signalling every worker');
      stopAll(signal);
    };
    const onMessage = (worker: Worker, message: unknown): void => {
      if ((message as { type?: unknown } | null)?.type !== STARTED) return;
      const state = workers.get(worker.id);
      if (state) state.started = true;
      if (allStarted) logger.info({ startedWorker: worker.id, startedPid: worker.process.pid }, 'worker started');
      if (!allStarted && [...workers.values()].filter((w) => w.started).length === config.workers) {
        allStarted = true;
        logger.info(
          { workers: config.workers, pids: [...workers.values()].map((w) => w.worker.process.pid), admin: admin && `${admin.address.address}:${admin.address.port}` },
          `protogate primary: ${config.workers} workers serving`,
        );
      }
    };
    const onExit = (worker: Worker, code: number | null, signal: string | null): void => {
      workers.delete(worker.id);
      const clean = code === 0 && signal === null;
      const fields = { exitedWorker: worker.id, exitedPid: worker.process.pid, code, signal };
      if (stopping) {
        if (!clean) failed = true;
        if (clean) logger.info(fields, 'worker exited');
        else logger.error(fields, 'worker exited with an error during shutdown');
        if (workers.size === 0) void finish();
        return;
      }
      logger.error(fields, 'worker exited unexpectedly');
      if (!allStarted) return giveUp('a worker exited while starting; stopping');
      const now = Date.now();
      crashes.push(now);
      while (crashes[0]! < now - RESTART.windowMs) crashes.shift();
      if (crashes.length > RESTART.maxCrashes) {
        return giveUp(`${crashes.length} worker exits within ${RESTART.windowMs / 1000} s; giving up`);
      }
      const delayMs = Math.min(RESTART.initialDelayMs * 2 ** (crashes.length - 1), RESTART.maxDelayMs);
      logger.info({ delayMs }, 'restarting worker');
      const timer = setTimeout(() => {
        restarts.delete(timer);
        if (!stopping) fork();
      }, delayMs);
      restarts.add(timer);
    };
    const finish = async (): Promise<void> => {
      for (const s of SIGNALS) process.off(s, onSignal);
      cluster.off('message', onMessage);
      cluster.off('exit', onExit);
      await admin?.close().catch((err: unknown) => logger.error({ err }, 'closing the admin listener failed'));
      logger.info({ exitCode: failed ? 1 : 0 }, 'all workers exited');
      resolve(failed ? 1 : 0);
    };

    for (const s of SIGNALS) process.on(s, onSignal);
    cluster.on('message', onMessage);
    cluster.on('exit', onExit);
    for (let i = 0; i < config.workers; i++) fork();
  });
}
