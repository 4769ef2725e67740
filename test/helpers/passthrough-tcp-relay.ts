/**
 * Child-process entry for bench/passthrough.ts --floor: a plain TCP relay (no HTTP/2, no parsing) in front of the
 * backend, the cheapest proxy there can be. Its cost next to direct calls is what any extra hop costs on this
 * machine. Same protocol as passthrough-server.ts: argv[2] JSON {"endpoints": ["127.0.0.1:port"]}, prints
 * {"port": n}, exits when stdin closes.
 */
import net from 'node:net';

const config = JSON.parse(process.argv[2] ?? '{}') as { endpoints: string[] };
const [host, port] = config.endpoints[0]!.split(':') as [string, string];
const server = net.createServer((client) => {
  const backend = net.connect(Number(port), host);
  // No Nagle on either leg: a unary call's small writes would otherwise wait for ACKs (40 ms stalls).
  client.setNoDelay(true);
  backend.setNoDelay(true);
  client.pipe(backend);
  backend.pipe(client);
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
  client.on('close', () => backend.destroy());
  backend.on('close', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
