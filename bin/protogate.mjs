#!/usr/bin/env node
// The package bin. protogate runs from its TypeScript sources through tsx's loader (Node 20 cannot strip types),
// so a checkout and an installed package behave the same.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exit(await main(process.argv.slice(2)));
