#!/usr/bin/env node
// The package bin. In a checkout (src/ present) protogate runs from its TypeScript sources through tsx's loader
// (Node 20 cannot strip types), so what you edit is what runs. The container image ships only dist/ (`npm run
// build`, see deploy/Dockerfile) and runs the compiled JavaScript: no loader thread, less memory, faster start.
// The choice is by presence of src/, never by a flag, so a stale dist/ in a checkout is never run.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exit(await main(process.argv.slice(2)));
