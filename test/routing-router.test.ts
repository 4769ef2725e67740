import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  comparePrecedence,
  parseTemplate,
  PathDecodeError,
  RouterBuilder,
  TemplateSyntaxError,
} from '../src/routing/index.ts';
import type { MatchResult, PathTemplate } from '../src/routing/index.ts';

type Route = [method: string, template: string];

function build(routes: Route[]) {
  const builder = new RouterBuilder<string>();
  for (const [method, template] of routes) builder.add(method, template, `${method} ${template}`, `src:${template}`);
  return builder.build();
}

/** "found <template> a=1 b.c=2" | "405 GET,POST" | "404": one line per result keeps the tables readable. */
function show(result: MatchResult<string>): string {
  if (result.kind === 'not-found') return '404';
  if (result.kind === 'method-not-allowed') return `405 ${result.allow.join(',')}`;
  const params = result.params.map((p) => ` ${p.fieldPath.join('.')}=${p.value}`).join('');
  return `${result.template.toString()}${params}`;
}

const FIRESTORE_LIST = '/v1/{parent=projects/*/databases/*/documents/*/**}/{collection_id}';
const FIRESTORE_GET = '/v1/{name=projects/*/databases/*/documents/*/**}';

test('matches paths and binds variables', () => {
  const { router } = build([
    ['GET', '/v1/{name=shelves/*/books/*}'],
    ['GET', '/v1/shelves/{shelf}'],
    ['GET', '/v1/{book.name=authors/*}/profile'],
    ['GET', '/v1/files/{path=**}'],
    ['GET', '/v1/static/*/index'],
    ['GET', FIRESTORE_LIST],
  ]);
  const table: Array<[string, string]> = [
    ['/v1/shelves/s1/books/b1', '/v1/{name=shelves/*/books/*} name=shelves/s1/books/b1'],
    ['/v1/shelves/s1', '/v1/shelves/{shelf} shelf=s1'],
    ['/v1/authors/ann/profile', '/v1/{book.name=authors/*}/profile book.name=authors/ann'],
    ['/v1/files/a/b/c.txt', '/v1/files/{path=**} path=a/b/c.txt'],
    ['/v1/files', '/v1/files/{path=**} path='],
    ['/v1/static/x/index', '/v1/static/*/index'],
    [
      '/v1/projects/p/databases/d/documents/c/doc/sub',
      `${FIRESTORE_LIST} parent=projects/p/databases/d/documents/c/doc collection_id=sub`,
    ],
    ['/v1/shelves', '404'],
    ['/v1/shelves/s1/books', '404'],
    ['/v2/shelves/s1', '404'],
    ['/v1/static/x/y/index', '404'],
    ['v1/shelves/s1', '404'],
    ['', '404'],
  ];
  for (const [path, expected] of table) assert.equal(show(router.match('GET', path)), expected, path);
});

test('applies the documented precedence, whatever the registration order', () => {
  const table: Array<{ templates: string[]; path: string; winner: string }> = [
    { templates: ['/v1/users/{id}', '/v1/users/me'], path: '/v1/users/me', winner: '/v1/users/me' },
    { templates: ['/v1/users/{id}', '/v1/users/me'], path: '/v1/users/you', winner: '/v1/users/{id}' },
    { templates: ['/v1/{a}/x', '/v1/b/{c}'], path: '/v1/b/x', winner: '/v1/b/{c}' },
    { templates: ['/v1/{a=**}', '/v1/{a}'], path: '/v1/x', winner: '/v1/{a}' },
    { templates: ['/v1/{a=**}', '/v1/x/{b=**}'], path: '/v1/x/y', winner: '/v1/x/{b=**}' },
    { templates: ['/v1/{a=*/**}', '/v1/{a=**}/z'], path: '/v1/y/z', winner: '/v1/{a=*/**}' },
    { templates: ['/v1/{a=books/*}', '/v1/{a=books/*/**}'], path: '/v1/books/1', winner: '/v1/{a=books/*}' },
    { templates: ['/v1/{a=**}', '/v1/{a=**}/x'], path: '/v1/q/x', winner: '/v1/{a=**}/x' },
    { templates: ['/v1/{a=**}/*', '/v1/{a=**}/x'], path: '/v1/q/x', winner: '/v1/{a=**}/x' },
    { templates: ['/v1/{a=**}/x/*', '/v1/{a=**}/*/x'], path: '/v1/x/x', winner: '/v1/{a=**}/x/*' },
    { templates: [FIRESTORE_LIST, FIRESTORE_GET], path: '/v1/projects/p/databases/d/documents/c/doc', winner: FIRESTORE_LIST },
    { templates: [FIRESTORE_LIST, FIRESTORE_GET], path: '/v1/projects/p/databases/d/documents/c', winner: FIRESTORE_GET },
    { templates: ['/v1/{n=books/*}:run', '/v1/books/{id}'], path: '/v1/books/1:run', winner: '/v1/{n=books/*}:run' },
    { templates: ['/v1/{n=**}:run', '/v1/books/{id}'], path: '/v1/books/1:run', winner: '/v1/{n=**}:run' },
    { templates: ['/v1/{n=**}:run', '/v1/books/{id}'], path: '/v1/books/1:walk', winner: '/v1/books/{id}' },
  ];
  for (const { templates, path, winner } of table) {
    for (const order of [templates, [...templates].reverse()]) {
      const { router } = build(order.map((t) => ['GET', t]));
      const result = router.match('GET', path);
      assert.equal(result.kind === 'found' ? result.template.toString() : result.kind, winner, `${path} ${order}`);
    }
  }
});

test('reports duplicates and **-settled overlaps, naming both sources, in a stable order', () => {
  const { conflicts } = build([
    ['GET', FIRESTORE_GET],
    ['GET', FIRESTORE_LIST],
    ['GET', '/v1/{name=books/*}'],
    ['GET', '/v1/books/{id}'],
    ['POST', '/v1/books/{id}'],
    ['GET', '/v1/%62ooks/*'],
    ['GET', '/v1/users/{id}'],
    ['GET', '/v1/users/me'],
    ['GET', '/v1/{a=users/*/**}'],
    ['GET', '/v1/{x}:run'],
    ['GET', '/v1/{x}:run'],
    ['GET', '/v1/{x}:walk'],
  ]);
  const summary = conflicts.map((c) => `${c.kind} ${c.method} ${c.a.template} | ${c.b.template} -> ${c.winner}`);
  assert.deepEqual(summary, [
    'duplicate GET /v1/%62ooks/* | /v1/books/{id} -> a',
    'duplicate GET /v1/%62ooks/* | /v1/{name=books/*} -> a',
    'duplicate GET /v1/{x}:run | /v1/{x}:run -> a',
    'overlap GET /v1/users/{id} | /v1/{a=users/*/**} -> a',
    `overlap GET ${FIRESTORE_GET} | ${FIRESTORE_LIST} -> b`,
  ]);
  // '/v1/users/me' beats '/v1/{a=users/*/**}' by a literal (rule 2a): a deliberate specialisation, not reported.
  const firestore = conflicts.find((c) => c.b.template === FIRESTORE_LIST)!;
  assert.match(firestore.message, /src:\/v1\/\{parent=.*src:\/v1\/\{name=/);
  assert.match(firestore.message, /both match paths like \/v1\/projects\/x\/databases\/x\/documents\/x\/x;/);
  assert.match(conflicts[0].message, /"src:\/v1\/%62ooks\/\*" and "src:\/v1\/books\/\{id\}"/);
});

test('decodes bound values per http.proto', () => {
  const { router } = build([
    ['GET', '/v1/one/{id}'],
    ['GET', '/v1/lit/{id=x}'],
    ['GET', '/v1/many/{name=**}'],
    ['GET', '/v1/pair/{name=a/*}'],
  ]);
  const table: Array<[string, string]> = [
    ['/v1/one/a%2Fb', 'id=a/b'],
    ['/v1/one/a%2fb', 'id=a/b'],
    ['/v1/one/%E2%82%AC%20x', 'id=€ x'],
    ['/v1/one/a+b', 'id=a+b'],
    ['/v1/one/a%3Ab', 'id=a:b'],
    ['/v1/one/%25', 'id=%'],
    ['/v1/lit/%78', 'id=x'],
    ['/v1/many/a%2Fb/c', 'name=a%2Fb/c'],
    ['/v1/many/a%2fb', 'name=a%2fb'],
    ['/v1/many/%E2%82%AC/%3F', 'name=€/?'],
    ['/v1/many/%252F', 'name=%2F'],
    ['/v1/pair/%61/b%2Fc', 'name=a/b%2Fc'],
  ];
  for (const [path, expected] of table) {
    const result = router.match('GET', path);
    assert.equal(result.kind, 'found', path);
    if (result.kind === 'found') assert.equal(result.params.map((p) => `${p.fieldPath}=${p.value}`).join(' '), expected);
  }
});

test('keeps %2F encoded inside a ** capture but decodes it in a single-segment capture', () => {
  const { router } = build([['GET', '/v1/{name=**}'], ['GET', '/v2/{id}']]);
  const many = router.match('GET', '/v1/a%2Fb');
  const one = router.match('GET', '/v2/a%2Fb');
  assert.ok(many.kind === 'found' && one.kind === 'found');
  assert.equal(many.params[0].value, 'a%2Fb');
  assert.equal(one.params[0].value, 'a/b');
});

test('throws PathDecodeError for invalid percent-encoding in a bound value', () => {
  const { router } = build([['GET', '/v1/{id}'], ['GET', '/v2/{name=**}'], ['GET', '/v3/*']]);
  for (const path of ['/v1/%zz', '/v1/a%', '/v1/a%2', '/v1/%FF', '/v1/%C3', '/v2/a/%E2%82', '/v2/ok/%g0']) {
    assert.throws(() => router.match('GET', path), PathDecodeError, path);
  }
  assert.throws(() => router.match('GET', '/v1/%zz'), /malformed percent-escape "%zz".*field "id"/);
  assert.throws(() => router.match('GET', '/v1/%FF'), /not valid UTF-8/);
  // Not bound to a variable: nothing is decoded, so nothing can fail.
  assert.equal(router.match('GET', '/v3/%zz').kind, 'found');
});

test('compares literals after decoding escaped unreserved characters only', () => {
  const { router } = build([['GET', '/v1/books/{id}'], ['GET', '/v1/a%2Fb/{id}'], ['GET', '/v1/%7Euser/{id}']]);
  const table: Array<[string, string]> = [
    ['/v1/%62ooks/1', '/v1/books/{id} id=1'],
    ['/v1/%62%6F%6Fks/1', '/v1/books/{id} id=1'],
    ['/v1/a%2fb/1', '/v1/a%2Fb/{id} id=1'],
    ['/v1/a/b/1', '404'],
    ['/v1/~user/1', '/v1/%7Euser/{id} id=1'],
    ['/v1/boo%zz/1', '404'],
  ];
  for (const [path, expected] of table) assert.equal(show(router.match('GET', path)), expected, path);
});

test('reads a custom verb only when a template of the method has it, else the colon is part of the segment', () => {
  const { router } = build([
    ['POST', '/v1/{name=books/*}:publish'],
    ['GET', '/v1/{name=books/*}'],
    ['POST', '/v1/{name=**}:undelete'],
    ['POST', '/v1/things/{id}'],
  ]);
  const table: Array<[string, string, string]> = [
    ['POST', '/v1/books/1:publish', '/v1/{name=books/*}:publish name=books/1'],
    ['GET', '/v1/books/1:publish', '/v1/{name=books/*} name=books/1:publish'],
    ['GET', '/v1/books/urn:isbn:123', '/v1/{name=books/*} name=books/urn:isbn:123'],
    ['POST', '/v1/things/a:b', '/v1/things/{id} id=a:b'],
    ['POST', '/v1/things/a%3Apublish', '/v1/things/{id} id=a:publish'],
    ['POST', '/v1/books/1:%70ublish', '/v1/{name=books/*}:publish name=books/1'],
    ['POST', '/v1/a/b:undelete', '/v1/{name=**}:undelete name=a/b'],
    ['POST', '/v1:undelete', '/v1/{name=**}:undelete name='],
    ['POST', '/v1/:undelete', '/v1/{name=**}:undelete name='],
    ['POST', '/v1/books/1:unknown', '405 GET'],
    ['POST', '/v1/books/1', '405 GET'],
    ['GET', '/v1/books/1:', '/v1/{name=books/*} name=books/1:'],
    ['POST', '/v1/books:publish', '404'],
  ];
  for (const [method, path, expected] of table) assert.equal(show(router.match(method, path)), expected, `${method} ${path}`);
});

test('answers method-not-allowed with a sorted, deduplicated Allow list', () => {
  const { router } = build([
    ['PUT', '/v1/books/{id}'],
    ['GET', '/v1/books/{id}'],
    ['GET', '/v1/books/{name=**}'],
    ['DELETE', '/v1/{name=books/*}'],
    ['PURGE', '/v1/books/{id}'],
    ['OPTIONS', '/v1/other'],
  ]);
  assert.deepEqual(router.match('POST', '/v1/books/1'), { kind: 'method-not-allowed', allow: ['DELETE', 'GET', 'PURGE', 'PUT'] });
  assert.deepEqual(router.match('POST', '/v1/books/1/2'), { kind: 'method-not-allowed', allow: ['GET'] });
  assert.equal(router.match('PURGE', '/v1/books/1').kind, 'found');
  assert.equal(router.match('get', '/v1/books/1').kind, 'method-not-allowed');
  assert.deepEqual(router.match('GET', '/v2'), { kind: 'not-found' });
});

test('ignores one trailing slash and never matches empty segments', () => {
  const { router } = build([['GET', '/v1/books/{id}'], ['GET', '/v2/{name=**}']]);
  const table: Array<[string, string]> = [
    ['/v1/books/1/', '/v1/books/{id} id=1'],
    ['/v1/books/1//', '404'],
    ['/v1//books/1', '404'],
    ['//v1/books/1', '404'],
    ['/v2/', '/v2/{name=**} name='],
    ['/v2/a/b/', '/v2/{name=**} name=a/b'],
    ['/v2/a//b', '404'],
    ['/v2/./..', '/v2/{name=**} name=./..'],
  ];
  for (const [path, expected] of table) assert.equal(show(router.match('GET', path)), expected, path);
});

test('lists every route in a stable order and refuses changes after build', () => {
  const builder = new RouterBuilder<number>();
  builder.add('POST', '/v1/b', 1, 'B');
  builder.add('GET', '/v1/b', 2, 'B2');
  builder.add('GET', parseTemplate('/v1/{a=*}'), 3, 'A');
  builder.add('GET', '/v1/{x}', 4, 'A2');
  const { router } = builder.build();
  assert.deepEqual(
    router.routes().map((r) => `${r.method} ${r.template} ${r.source} ${r.value}`),
    ['GET /v1/b B2 2', 'POST /v1/b B 1', 'GET /v1/{a} A 3', 'GET /v1/{x} A2 4'],
  );
  assert.throws(() => builder.add('GET', '/v1/c', 5, 'C'), /after build/);
});

test('names the source of a template that does not parse, and rejects invalid methods', () => {
  const builder = new RouterBuilder<number>();
  assert.throws(
    () => builder.add('GET', '/v1/{a', 1, 'lib.v1.Lib.Get (protos/lib.proto)'),
    (err: unknown) => err instanceof TemplateSyntaxError && /in lib\.v1\.Lib\.Get \(protos\/lib\.proto\)/.test(err.message),
  );
  assert.throws(() => builder.add('GE T', '/v1', 1, 'x'), /invalid HTTP method/);
});

// ---- properties -----------------------------------------------------------------------------------------------

// Small alphabets so that generated templates overlap often.
const smallSegment = fc.constantFrom('a', 'b', '*', '*', '**');
const smallTemplate = fc
  .tuple(fc.array(smallSegment, { minLength: 1, maxLength: 4 }), fc.constantFrom(undefined, undefined, 'v', 'w'))
  .map(([segs, verb]) => {
    let seen = false;
    const fixed = segs.map((s) => (s === '**' ? (seen ? '*' : ((seen = true), '**')) : s));
    return '/' + fixed.map((s, i) => (s === 'a' || s === 'b' ? s : `{f${i}=${s}}`)).join('/') + (verb ? ':' + verb : '');
  });
const smallPath = fc
  .tuple(fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 5 }), fc.constantFrom('', '', ':v', ':w', ':x'))
  .map(([segs, verb]) => '/' + segs.join('/') + verb);

function splitSmall(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

function fits(t: PathTemplate, s: string[]): boolean {
  const go = (i: number, p: number): boolean => {
    if (i === t.segments.length) return p === s.length;
    const seg = t.segments[i];
    if (seg.kind === '**') {
      for (let k = 0; p + k <= s.length; k++) if (go(i + 1, p + k)) return true;
      return false;
    }
    return p < s.length && (seg.kind === '*' || seg.value === s[p]) && go(i + 1, p + 1);
  };
  return go(0, 0);
}

/** Segments with ':verb' cut off the last one, as the router reads a verb. */
function cutVerb(segs: string[]): { verb: string; segs: string[] } | undefined {
  const last = segs.at(-1) ?? '';
  const colon = last.lastIndexOf(':');
  if (colon < 0) return undefined;
  return { verb: last.slice(colon + 1), segs: colon === 0 ? segs.slice(0, -1) : [...segs.slice(0, -1), last.slice(0, colon)] };
}

function fitsPath(t: PathTemplate, path: string): boolean {
  const segs = splitSmall(path);
  if (t.verb === undefined) return fits(t, segs);
  const cut = cutVerb(segs);
  return cut !== undefined && cut.verb === t.verb && fits(t, cut.segs);
}

/** Independent oracle: every template tried against the path, best one by comparePrecedence. */
function oracle(templates: PathTemplate[], path: string): PathTemplate | undefined {
  const segs = splitSmall(path);
  const best = (ts: PathTemplate[]) => [...ts].sort(comparePrecedence)[0];
  const cut = cutVerb(segs);
  if (cut !== undefined) {
    const withVerb = templates.filter((t) => t.verb === cut.verb && fits(t, cut.segs));
    if (withVerb.length > 0) return best(withVerb);
  }
  return best(templates.filter((t) => t.verb === undefined && fits(t, segs)));
}

test('picks the same route as an exhaustive search, whatever the registration order', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(smallTemplate, { minLength: 1, maxLength: 8 }),
      fc.array(smallPath, { minLength: 1, maxLength: 10 }),
      fc.integer(),
      (templates, paths, seed) => {
        const shuffled = fc.sample(fc.shuffledSubarray(templates, { minLength: templates.length }), { seed, numRuns: 1 })[0];
        const one = build(templates.map((t) => ['GET', t]));
        const two = build(shuffled.map((t) => ['GET', t]));
        assert.deepEqual(two.conflicts, one.conflicts);
        for (const c of one.conflicts.filter((x) => x.kind === 'overlap')) {
          // The example path in the message really matches both; the winner (or a third, better route) gets it.
          const witness = /both match paths like (\S+);/.exec(c.message)![1];
          assert.ok(fitsPath(parseTemplate(c.a.template), witness) && fitsPath(parseTemplate(c.b.template), witness));
          const result = one.router.match('GET', witness);
          assert.ok(result.kind === 'found', c.message);
          assert.ok(comparePrecedence(result.template, parseTemplate(c[c.winner!].template)) <= 0, c.message);
        }
        const parsed = templates.map(parseTemplate);
        for (const path of paths) {
          const a = one.router.match('GET', path);
          const b = two.router.match('GET', path);
          assert.deepEqual(show(b), show(a), path);
          const expected = oracle(parsed, path);
          if (expected === undefined) assert.equal(a.kind, 'not-found', `${path}: ${show(a)}`);
          else {
            assert.equal(a.kind, 'found', path);
            if (a.kind === 'found') assert.equal(comparePrecedence(a.template, expected), 0, `${path}: ${show(a)} vs ${expected}`);
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});
