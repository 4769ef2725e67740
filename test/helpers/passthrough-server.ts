/**
 * Child-process entry: runs only a passthrough, so a parent can measure the gateway's own memory
 * (/proc/<pid>/status VmRSS, VmHWM). argv[2] is JSON {"endpoints": ["127.0.0.1:port"], "services": ["pkg.*"]}.
 * Prints one JSON line {"port": n} when listening; exits when stdin closes.
 */
import { buildServiceMatcher, startPassthrough } from '../../src/passthrough/index.ts';

const config = JSON.parse(process.argv[2] ?? '{}') as { endpoints: string[]; services: string[] };
const resolveService = buildServiceMatcher([{ name: 'backend', endpoints: config.endpoints, services: config.services }]);
const server = await startPassthrough({ host: '127.0.0.1', port: 0, resolveService });
process.stdout.write(`${JSON.stringify({ port: server.address.port })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void server.close({ graceMs: 0 }).then(() => process.exit(0));
});
