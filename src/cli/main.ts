/**
 * protogate [serve] --config <file>     start the gateway (default command)
 * protogate routes  --config <file>     print the route table and exit
 * protogate backends --config <file>    connect to every backend endpoint, print policy, connectivity, health; exit
 */
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { StartupError } from '../errors/index.ts';
import { loadConfigFile } from '../config/index.ts';
import { createGateway } from '../gateway.ts';
import { serveCluster } from './cluster.ts';
import { formatRouteTable } from './routes-table.ts';
import { describeBackends, formatBackends, probeBackends } from '../upstream/describe.ts';

const USAGE = `Usage:
  protogate [serve] [--config <file>]   start the gateway (default config: ./gateway.config.ts)
  protogate routes  [--config <file>]   print the route table (HTTP method, template, gRPC method, source file)
  protogate backends [--config <file>]  print each backend's policy and endpoints with connectivity and health
  protogate --help`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`protogate: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const command = parsed.positionals[0] ?? 'serve';
  if (!['serve', 'routes', 'backends'].includes(command) || parsed.positionals.length > 1) {
    process.stderr.write(`protogate: unknown command "${parsed.positionals.join(' ')}"\n${USAGE}\n`);
    return 2;
  }
  const configFile = path.resolve(parsed.values.config ?? 'gateway.config.ts');
  try {
    const config = await loadConfigFile(configFile);
    if (command === 'routes' || command === 'backends') config.log.level = 'silent';
    // workers > 1: this process is the cluster primary or one of its workers (src/cli/cluster.ts).
    if (command === 'serve' && (config.workers > 1 || cluster.isWorker)) return await serveCluster(config, configFile);
    const gateway = createGateway(config, { configFile });
    if (command === 'routes') {
      process.stdout.write(formatRouteTable(gateway.routes.router.routes()));
      await gateway.close();
      return 0;
    }
    if (command === 'backends') {
      await probeBackends(gateway.upstreams, 3_000);
      process.stdout.write(formatBackends(describeBackends(gateway.upstreams)));
      await gateway.close();
      return 0;
    }
    await gateway.start();
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        gateway.logger.info({ signal }, 'shutting down');
        gateway.shutdown().then(resolve, resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`protogate: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`protogate: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}
