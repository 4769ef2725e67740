/**
 * A process-wide workaround for a cost Node puts on every HTTP/2 client request.
 *
 * `ClientHttp2Session.request()` (Node 20 and later, still in 22 and 24) binds each request's connect callback with
 * `new AsyncResource(...).bind()`, and since DEP0172 (nodejs/node#46432) `bind()` defines a deprecated
 * `asyncResource` accessor on the bound function whose getter and setter are two fresh `deprecate()` wrappers. Each
 * wrapper gets a fresh function as its prototype (`Object.setPrototypeOf`), so V8 creates new hidden classes for
 * every request; those live in old space and die there. Measured on the REST path (BENCHMARKS.md, session 3): this
 * was 17 % of everything that outlived the young generation, it drove a Mark-Compact every ~3 s, and the two
 * wrappers cost 5.6 % of the CPU per request. With the replacement below: GC pause time -58 %, and +9 % (Echo) /
 * +16 % (Get) req/s in interleaved runs with the config switch (+20 to +40 % in a first set of runs).
 *
 * The replacement is Node's own `bind()` (same scope, `this`, arguments, return value, `length`) with
 * `asyncResource` as a plain data property instead of the deprecated accessor: a reader gets the same resource,
 * only without the deprecation warning. It is installed only when the running Node has the deprecated accessor,
 * once per process, and can be turned off with `runtime.lightAsyncBind: false` in the config.
 */
import { AsyncResource } from 'node:async_hooks';

let installed = false;

/** Whether this Node's AsyncResource#bind defines the deprecated accessor (what the replacement removes). */
export function hasDeprecatedAsyncBind(): boolean {
  const probe = new AsyncResource('protogate-probe').bind(() => undefined);
  return typeof Object.getOwnPropertyDescriptor(probe, 'asyncResource')?.get === 'function';
}

/** Installs the light AsyncResource#bind; returns whether it is in place. Idempotent. */
export function installLightAsyncBind(): boolean {
  if (installed) return true;
  if (!hasDeprecatedAsyncBind()) return false;
  const original = AsyncResource.prototype.bind;
  AsyncResource.prototype.bind = function bind<Func extends (...args: any[]) => any>(this: AsyncResource, fn: Func, thisArg?: unknown) {
    // Node's own argument check and error.
    if (typeof fn !== 'function') return Reflect.apply(original, this, [fn, thisArg]) as never;
    const resource = this;
    const bound = thisArg === undefined
      ? function (this: unknown, ...args: unknown[]): unknown { return resource.runInAsyncScope(fn, this, ...args); }
      : resource.runInAsyncScope.bind(resource, fn, thisArg);
    Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, value: fn.length, writable: false });
    // A plain assignment makes the same configurable, enumerable, writable property, without a descriptor object.
    (bound as { asyncResource?: AsyncResource }).asyncResource = resource;
    return bound as Func & { asyncResource: AsyncResource };
  } as typeof AsyncResource.prototype.bind;
  installed = true;
  return true;
}
