/**
 * What a config file imports: `import { defineConfig } from 'protogate/config'`. Kept free of runtime imports so
 * that loading a config does not pull the gateway itself through the config loader.
 */
import type { GatewayConfig } from './schema.ts';

export type { GatewayConfig, ResolvedConfig, BackendConfig } from './schema.ts';
export type { HookRequest, HookResult, OnRequestHook } from './hook-types.ts';

/** Types only: `export default defineConfig({...})` gives editor completion and type checks. */
export function defineConfig(config: GatewayConfig): GatewayConfig {
  return config;
}
