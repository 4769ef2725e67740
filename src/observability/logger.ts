/**
 * The process logger: pino JSON (Fastify's own logger), one instance passed explicitly to every part.
 * Imports nothing from the rest of the gateway.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** `base` adds fields to every line, e.g. `{ worker: 2, pid }` when several processes share one stdout. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { name: 'protogate', ...base },
    // Secrets never reach a log line, whatever a caller passes in.
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'], remove: true },
  });
}
