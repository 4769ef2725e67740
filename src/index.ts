/** The public API: define a config, build a gateway from it, and the types involved. */
export { defineConfig, loadConfigFile, resolveConfig } from './config/index.ts';
export type { GatewayConfig, ResolvedConfig, BackendConfig } from './config/index.ts';
export { createGateway } from './gateway.ts';
export type { Gateway, GatewayOptions } from './gateway.ts';
export { Code, GatewayError, StartupError, httpStatusFromCode } from './errors/index.ts';
