/**
 * Child-process entry: runs only a passthrough, so a parent can measure the gateway's own memory
 * (/proc/<pid>/status VmRSS, VmHWM). argv[2] is JSON {"endpoints": ["127.0.0.1:port"], "services": ["pkg.*"],
 * "log": false, "metrics": false}; with "log": true the passthrough logs at info (access log included) to /dev/null,
 * so a benchmark pays what a gateway with logging pays without flooding the parent's pipe; "metrics": true adds the
 * per-method metrics the gateway keeps.
 * "lightAsyncBind": false keeps Node's own AsyncResource#bind; by default it is replaced, as createGateway() does
 * (runtime.lightAsyncBind). "renewStreamTables": false leaves node:http2's stream tables alone (runtime.renewStreamTables).
 * Prints one JSON line {"port": n} when listening; exits when stdin closes.
 */
import { pino } from 'pino';
import { Metrics } from '../../src/observability/metrics.ts';
import { buildServiceMatcher, startPassthrough } from '../../src/passthrough/index.ts';
import { installLightAsyncBind } from '../../src/upstream/async-bind.ts';
import { setStreamTableRenewal } from '../../src/upstream/stream-tables.ts';

const config = JSON.parse(process.argv[2] ?? '{}') as { endpoints: string[]; services: string[]; log?: boolean; metrics?: boolean; lightAsyncBind?: boolean; renewStreamTables?: boolean };
if (config.lightAsyncBind !== false) installLightAsyncBind();
setStreamTableRenewal(config.renewStreamTables !== false);
const resolveService = buildServiceMatcher([{ name: 'backend', endpoints: config.endpoints, services: config.services }]);
const logger = config.log ? pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false })) : undefined;
const metrics = config.metrics ? new Metrics() : undefined;
const server = await startPassthrough({ host: '127.0.0.1', port: 0, resolveService, logger, metrics });
process.stdout.write(`${JSON.stringify({ port: server.address.port })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void server.close({ graceMs: 0 }).then(() => process.exit(0));
});
