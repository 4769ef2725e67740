/**
 * `npm start`: the bundled example backend and the gateway in one process, so a fresh clone has something to
 * curl. Production runs `protogate --config gateway.config.ts` against real backends instead.
 */
import { startLibraryBackend } from './library-backend.ts';
import { main } from '../src/cli/main.ts';

const backend = await startLibraryBackend({ host: '127.0.0.1', port: Number(process.env['LIBRARY_PORT'] ?? 50151) });
process.stderr.write(`example library backend listening on 127.0.0.1:${backend.port}\n`);
const code = await main(['--config', new URL('../gateway.config.ts', import.meta.url).pathname, ...process.argv.slice(2)]);
await backend.close();
process.exit(code);
