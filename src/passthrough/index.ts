/**
 * gRPC passthrough: HTTP/2 stream forwarding with end-to-end flow control, for every service whether or not its
 * protos were loaded. Never imports transcode/, proto/ or http/.
 */
export { startPassthrough } from './listener.ts';
export type { PassthroughServer } from './listener.ts';
export { buildServiceMatcher } from '../upstream/service-matcher.ts';
export type { ServiceLookup, ServiceMatcherEntry } from '../upstream/service-matcher.ts';
export { PASSTHROUGH_LIMIT_DEFAULTS, DEFAULT_CLOSE_GRACE_MS } from './options.ts';
export type {
  PassthroughBackend,
  PassthroughLimits,
  PassthroughLogger,
  PassthroughOptions,
  PassthroughStats,
} from './options.ts';
