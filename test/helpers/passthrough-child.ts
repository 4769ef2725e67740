/** Spawns test/helpers/passthrough-server.ts and reads its memory from /proc (Linux). */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface GatewayChild {
  port: number;
  pid: number;
  /** kB values from /proc/<pid>/status. */
  memory(): { rssKb: number; hwmKb: number };
  stop(): Promise<void>;
}

export async function spawnGateway(config: { endpoints: string[]; services: string[] }): Promise<GatewayChild> {
  const entry = fileURLToPath(new URL('./passthrough-server.ts', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', entry, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(buf.slice(0, nl)) as { port: number }).port);
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
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin!.end();
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    }),
  };
}
