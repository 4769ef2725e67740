/**
 * Fully-qualified service name -> backend. Built once at startup, frozen, O(depth of the package name) per lookup.
 *
 * Entries per backend:
 *   "acme.billing.v1.Invoices"  exact service name
 *   "acme.billing.*"            any service whose name starts with "acme.billing." (any depth below)
 *   default: true               backend for everything else
 * Precedence: exact > longest wildcard prefix > default. Two backends claiming the same exact name or the same
 * wildcard, or two defaults, is a startup error naming both.
 */
import { StartupError } from '../errors/index.ts';

export interface ServiceMatcherEntry {
  name: string;
  services: string[];
  default?: boolean;
}

export type ServiceLookup<T> = (service: string) => T | undefined;

const SEGMENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function buildServiceMatcher<T extends ServiceMatcherEntry>(backends: readonly T[]): ServiceLookup<T> {
  const exact = new Map<string, T>();
  const prefixes = new Map<string, T>();
  let fallback: T | undefined;

  for (const backend of backends) {
    for (const raw of backend.services) {
      const entry = raw.trim();
      if (entry.endsWith('.*')) {
        const prefix = entry.slice(0, -2);
        assertName(prefix, raw, backend.name);
        claim(prefixes, prefix, backend, `wildcard "${raw}"`);
      } else {
        assertName(entry, raw, backend.name);
        claim(exact, entry, backend, `service "${raw}"`);
      }
    }
    if (backend.default) {
      if (fallback) throw new StartupError(`backends "${fallback.name}" and "${backend.name}" are both marked default; keep one`);
      fallback = backend;
    }
  }

  return (service: string): T | undefined => {
    const hit = exact.get(service);
    if (hit) return hit;
    // Walk prefixes from the longest: "a.b.c.Svc" tries "a.b.c", "a.b", "a".
    let end = service.lastIndexOf('.');
    while (end > 0) {
      const p = prefixes.get(service.slice(0, end));
      if (p) return p;
      end = service.lastIndexOf('.', end - 1);
    }
    return fallback;
  };
}

function assertName(name: string, raw: string, backend: string): void {
  if (name === '' || !name.split('.').every((s) => SEGMENT.test(s))) {
    throw new StartupError(
      `backend "${backend}": "${raw}" is not a service name ("pkg.Service") or a package wildcard ("pkg.*")`,
    );
  }
}

function claim<T extends ServiceMatcherEntry>(map: Map<string, T>, key: string, backend: T, what: string): void {
  const prior = map.get(key);
  if (prior && prior !== backend) {
    throw new StartupError(`${what} is claimed by backends "${prior.name}" and "${backend.name}"; keep it in one`);
  }
  map.set(key, backend);
}
