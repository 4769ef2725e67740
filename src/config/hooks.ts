/**
 * Running hooks.onRequest, shared by both ports so a hook's answer means the same on each: its result or its
 * throw becomes the backend to call, or a GatewayError the port answers with (REST: google.rpc.Status with the
 * HTTP status of its code; gRPC: that status).
 */
import { Code, GatewayError } from '../errors/index.ts';
import type { HookRequest, HookResult, OnRequestHook } from './hook-types.ts';

/**
 * Calls the hook; returns the backend to use (the hook's choice, else `backend`). Throws a GatewayError for a
 * rejection: the hook's own code (1-16; another number becomes UNKNOWN), or INTERNAL, with the hook's throw as
 * cause, when it failed without one.
 */
export async function settleHook(hook: OnRequestHook, request: HookRequest, backend: string | undefined): Promise<string | undefined> {
  let result: void | HookResult;
  try {
    result = await hook(request);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number' && code > 0 && code <= 16) throw new GatewayError(code, (err as Error).message ?? 'rejected');
    throw new GatewayError(Code.INTERNAL, 'the onRequest hook failed', { cause: err });
  }
  if (!result) return backend;
  if (result.reject) {
    const { code, message, details } = result.reject;
    throw new GatewayError(code > 0 && code <= 16 ? code : Code.UNKNOWN, message, { details: details ?? [] });
  }
  return result.backend ?? backend;
}
