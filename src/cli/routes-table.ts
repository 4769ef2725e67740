import type { RouteEntry } from '../http/routes.ts';

/** Fixed-width text table of the routes, in the router's stable order. */
export function formatRouteTable(routes: Array<{ method: string; template: string; source: string; value: RouteEntry }>): string {
  const rows = routes.map((r) => [r.method, r.template, `${r.value.method.service}/${r.value.method.name}`, r.value.method.file, r.value.backend ?? '-']);
  const header = ['METHOD', 'TEMPLATE', 'GRPC METHOD', 'SOURCE', 'BACKEND'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + `\n${routes.length} routes\n`;
}
