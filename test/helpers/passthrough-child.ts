/** Spawns test/helpers/passthrough-server.ts (or the TCP relay) and reads its memory and CPU time from /proc (Linux). */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** USER_HZ: 100 on every Linux architecture Node supports. */
const CLOCK_TICKS = 100;

export interface GatewayChild {
  port: number;
  pid: number;
  /** kB values from /proc/<pid>/status. */
  memory(): { rssKb: number; hwmKb: number };
  /**
   * Resets VmHWM to the current RSS (`/proc/<pid>/clear_refs` = 5, Linux >= 4.0), so the next `memory().hwmKb` is the
   * peak of what ran since: one scenario's peak instead of the run's.
   */
  resetPeak(): void;
  /** CPU seconds (user + system) the child has used so far, from /proc/<pid>/stat. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export interface GatewayChildConfig {
  endpoints: string[];
  services: string[];
  /** Log (access log included) at info to /dev/null, to measure the logging cost. */
  log?: boolean;
  /** Keep the per-method metrics, as the gateway does. */
  metrics?: boolean;
  /** false: keep Node's own AsyncResource#bind (the gateway replaces it by default: runtime.lightAsyncBind). */
  lightAsyncBind?: boolean;
  /** false: leave node:http2's stream tables alone (the gateway renews them by default: runtime.renewStreamTables). */
  renewStreamTables?: boolean;
}

/**
 * `nodeArgs` go before the entry, e.g. ['--cpu-prof', '--cpu-prof-dir', dir] to profile the gateway. `entry` picks
 * the child: the passthrough (default) or the plain TCP relay that benchmarks use as the floor of any proxy.
 */
export async function spawnGateway(config: GatewayChildConfig, nodeArgs: string[] = [], entry: 'passthrough' | 'tcp-relay' = 'passthrough'): Promise<GatewayChild> {
  const file = fileURLToPath(new URL(entry === 'passthrough' ? './passthrough-server.ts' : './passthrough-tcp-relay.ts', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', file, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    // Node flags such as --trace-gc print to stdout too: the port is on the line that starts with {"port".
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('{"port"')) resolve((JSON.parse(line) as { port: number }).port);
        else process.stderr.write(`gateway: ${line}\n`);
      }
    });
    child.once('exit', (code) => reject(new Error(`gateway child exited early (${code})`)));
  });
  const pid = child.pid!;
  return {
    port,
    pid,
    memory() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
      return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
    },
    resetPeak() {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
    },
    cpuSeconds() {
      // Fields 14 and 15 (utime, stime) in clock ticks; the command name (field 2) may hold spaces, so count after ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    },
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin!.end();
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    }),
  };
}
