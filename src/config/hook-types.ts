/**
 * The request hook a config may define (`hooks.onRequest`). Plain data in, plain data out, so a config file needs
 * no import from the gateway to write one. Types only.
 */

export interface HookRequest {
  /** HTTP method and path as received (path without the query string). */
  method: string;
  path: string;
  /** Raw query string without '?'. */
  query: string;
  /** Lower-case request headers. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  remoteAddress: string | undefined;
  /** The matched rule. */
  route: { template: string; service: string; method: string; backend: string | undefined };
  /** The outgoing gRPC metadata: add, replace or remove entries (keys lower-case; `-bin` keys take Buffers). */
  metadata: {
    get(key: string): Array<string | Buffer>;
    set(key: string, value: string | Buffer): void;
    add(key: string, value: string | Buffer): void;
    remove(key: string): void;
  };
}

export interface HookResult {
  /** Answer now with this gRPC status (its HTTP status follows the usual table) instead of calling the backend. */
  reject?: { code: number; message: string; details?: unknown[] };
  /** Send the call to this backend (by name) instead of the one serving the service. */
  backend?: string;
}

/**
 * Runs once per REST request and once per routed call on the gRPC port (there `path` and `route.template` are the
 * call's `:path`); may be async. Throwing an Error with a numeric `code` (1-16) rejects with it.
 */
export type OnRequestHook = (request: HookRequest) => void | HookResult | Promise<void | HookResult>;
