/**
 * What `protogate backends` prints and the start log line reports: each backend's policy and endpoints with
 * their connectivity, health and ejection state.
 */
import type { BackendDescription, BackendUpstream } from './backend-upstream.ts';

export function describeBackends(upstreams: ReadonlyMap<string, BackendUpstream>): BackendDescription[] {
  return [...upstreams.values()].map((u) => u.describe());
}

/**
 * Connects every endpoint and waits (at most `timeoutMs`) until each has a verdict: connected or failed, and a
 * health probe answered when probes are on.
 */
export async function probeBackends(upstreams: ReadonlyMap<string, BackendUpstream>, timeoutMs: number): Promise<void> {
  const all = [...upstreams.values()];
  await Promise.all(all.map((u) => u.start()));
  for (const u of all) for (const e of u.endpoints()) e.callPool.connect();
  const deadline = Date.now() + timeoutMs;
  const settled = (): boolean => all.every((u) => u.endpoints().every((e) => {
    const c = e.connectivity;
    const connected = c === 'ready' || c === 'transient_failure';
    return connected && (!u.settings.healthCheck.enabled || e.health !== 'unknown');
  }));
  while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
}

export function formatBackends(list: readonly BackendDescription[]): string {
  const lines: string[] = [];
  for (const b of list) {
    lines.push(`backend ${b.name}  policy=${b.policy}  usable=${b.usable}/${b.endpoints.length}`);
    const rows = b.endpoints.map((e) => [
      e.address, `weight=${e.weight}`, `conn=${e.connectivity}`, `health=${e.health}`, e.ejected ? 'EJECTED' : '', e.eligible ? 'usable' : 'NOT USABLE',
    ]);
    const widths = rows.reduce<number[]>((w, r) => r.map((c, i) => Math.max(w[i] ?? 0, c.length)), []);
    for (const r of rows) lines.push('  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  }
  return lines.join('\n') + '\n';
}
