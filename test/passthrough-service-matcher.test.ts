import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StartupError } from '../src/errors/index.ts';
import { buildServiceMatcher } from '../src/upstream/service-matcher.ts';

const backends = [
  { name: 'billing', services: ['acme.billing.*'] },
  { name: 'invoices', services: ['acme.billing.v1.Invoices', 'acme.billing.v2.*'] },
  { name: 'acme', services: ['acme.*'] },
  { name: 'fallback', services: [], default: true },
];
const lookup = buildServiceMatcher(backends);

const table: Array<[string, string]> = [
  ['acme.billing.v1.Invoices', 'invoices'], // exact beats any wildcard
  ['acme.billing.v1.Payments', 'billing'], // longest wildcard: acme.billing.* over acme.*
  ['acme.billing.v2.Payments', 'invoices'], // acme.billing.v2.* is longer still
  ['acme.users.v1.Users', 'acme'],
  ['acme.billing', 'acme'], // "acme.billing.*" needs something below acme.billing
  ['acmex.Svc', 'fallback'], // prefixes match whole segments only
  ['other.v1.Svc', 'fallback'],
  ['Bare', 'fallback'],
];
for (const [service, expected] of table) {
  test(`routes ${service} to ${expected}`, () => {
    assert.equal(lookup(service)?.name, expected);
  });
}

test('without a default, unmatched services are undefined', () => {
  assert.equal(buildServiceMatcher([{ name: 'a', services: ['a.*'] }])('b.Svc'), undefined);
});

const invalid: Array<[string, Array<{ name: string; services: string[]; default?: boolean }>, RegExp]> = [
  ['same exact name twice', [{ name: 'a', services: ['x.S'] }, { name: 'b', services: ['x.S'] }], /"x\.S" is claimed by backends "a" and "b"/],
  ['same wildcard twice', [{ name: 'a', services: ['x.*'] }, { name: 'b', services: ['x.*'] }], /"x\.\*" is claimed by backends "a" and "b"/],
  ['two defaults', [{ name: 'a', services: [], default: true }, { name: 'b', services: [], default: true }], /both marked default/],
  ['malformed entry', [{ name: 'a', services: ['x.*.y'] }], /backend "a": "x\.\*\.y" is not a service name/],
  ['bare star', [{ name: 'a', services: ['*'] }], /is not a service name/],
];
for (const [what, entries, message] of invalid) {
  test(`rejects ${what} at startup`, () => {
    assert.throws(() => buildServiceMatcher(entries), (err: unknown) => err instanceof StartupError && message.test(err.message));
  });
}
