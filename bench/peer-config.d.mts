/** Types of peer-config.mjs (plain JavaScript so the dist/ bench entry loads it without tsx). */
export function peerConfig(entry: string): Record<string, unknown>;
