import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseTemplate, RouterBuilder, TemplateSyntaxError } from '../src/routing/index.ts';

/** Compact view of a template: segments as text, variables as "a.b[1,3)". */
function describe(text: string): { segments: string; verb: string | undefined; variables: string[] } {
  const t = parseTemplate(text);
  return {
    segments: t.segments.map((s) => (s.kind === 'literal' ? s.value : s.kind)).join('/'),
    verb: t.verb,
    variables: t.variables.map((v) => `${v.fieldPath.join('.')}[${v.start},${v.end})`),
  };
}

test('parses templates into segments, verb and variable ranges', () => {
  const table: Array<[string, string, string | undefined, string[]]> = [
    ['/v1/books', 'v1/books', undefined, []],
    ['/v1/{name}', 'v1/*', undefined, ['name[1,2)']],
    ['/v1/{name=*}', 'v1/*', undefined, ['name[1,2)']],
    ['/v1/{name=shelves/*/books/*}', 'v1/shelves/*/books/*', undefined, ['name[1,5)']],
    ['/v1/{book.name=shelves/*}/x', 'v1/shelves/*/x', undefined, ['book.name[1,3)']],
    ['/v1/{a.b.c}', 'v1/*', undefined, ['a.b.c[1,2)']],
    ['/v1/{name=**}', 'v1/**', undefined, ['name[1,2)']],
    ['/v1/{name=**}:undelete', 'v1/**', 'undelete', ['name[1,2)']],
    ['/v1/*/**', 'v1/*/**', undefined, []],
    ['/v1/{name=books/*}:publish', 'v1/books/*', 'publish', ['name[1,3)']],
    [
      '/v1/{parent=projects/*/databases/*/documents/*/**}/{collection_id}',
      'v1/projects/*/databases/*/documents/*/**/*',
      undefined,
      ['parent[1,8)', 'collection_id[8,9)'],
    ],
    ['/v1/{shelf}/books/{book}', 'v1/*/books/*', undefined, ['shelf[1,2)', 'book[3,4)']],
    ['/{a=**}', '**', undefined, ['a[0,1)']],
    ["/v1/a-b.c_d~e!$&'()+,;@/%41%2f", "v1/a-b.c_d~e!$&'()+,;@/%41%2f", undefined, []],
    ['/v1/{_x9.Y_}', 'v1/*', undefined, ['_x9.Y_[1,2)']],
  ];
  for (const [text, segments, verb, variables] of table) {
    assert.deepEqual(describe(text), { segments, verb, variables }, text);
  }
});

test('treats {var} and {var=*} as the same template and prints the short form', () => {
  assert.deepEqual(parseTemplate('/v1/{name}'), parseTemplate('/v1/{name=*}'));
  assert.equal(parseTemplate('/v1/{name=*}').toString(), '/v1/{name}');
  assert.equal(parseTemplate('/v1/{name=books/*}:do').toString(), '/v1/{name=books/*}:do');
});

test('reports a multi-segment variable for ranges over one segment, and for "**"', () => {
  const t = parseTemplate('/v1/{a}/{b=x}/{c=**}/{d=y/*}');
  assert.deepEqual(
    t.variables.map((v) => t.isMultiSegment(v)),
    [false, false, true, true],
  );
});

test('rejects malformed templates naming the position and what was expected', () => {
  const table: Array<[string, number, RegExp]> = [
    ['', 0, /'\/' at the start/],
    ['v1/books', 0, /'\/' at the start/],
    ['/', 1, /a segment/],
    ['/v1/', 4, /a segment/],
    ['/v1//books', 4, /a segment/],
    ['/v1/{name=}', 10, /a segment/],
    ['/v1/{name=a/}', 12, /a segment/],
    ['/v1/{name', 9, /'\.', '=' or '}'/],
    ['/v1/{}', 5, /a field name/],
    ['/v1/{1abc}', 5, /a field name/],
    ['/v1/{a.}', 7, /a field name/],
    ['/v1/{a=b', 8, /'\/' or '}' to close/],
    ['/v1/{a={b}}', 7, /variables cannot be nested/],
    ['/v1/{a}/{a}', 9, /'a' is bound twice/],
    ['/v1/{a}/{a.b}', 9, /overlapping another binding/],
    ['/v1/**/x/**', 9, /at most one '\*\*'/],
    ['/v1/{a=**}/{b=**}', 14, /at most one '\*\*'/],
    ['/v1/books:', 10, /a custom verb/],
    ['/v1/books:a:b', 11, /the end of the template after the verb/],
    ['/v1/books:a/b', 11, /the end of the template after the verb/],
    ['/v1/***', 6, /'\/', ':verb' or the end/],
    ['/v1/*x', 5, /'\/', ':verb' or the end/],
    ['/v1/a b', 5, /'\/', ':verb' or the end/],
    ['/v1/a?b', 5, /'\/', ':verb' or the end/],
    ['/v1/a%zz', 5, /percent-escape/],
    ['/v1/a%4', 5, /percent-escape/],
    ['/v1/a}', 5, /'\/', ':verb' or the end/],
    ['/v1/a=b', 5, /'\/', ':verb' or the end/],
  ];
  for (const [text, position, expected] of table) {
    assert.throws(
      () => parseTemplate(text),
      (err: unknown) => {
        assert.ok(err instanceof TemplateSyntaxError, `${text}: ${String(err)}`);
        assert.equal(err.template, text);
        assert.equal(err.position, position, `${text}: ${err.message}`);
        assert.match(err.expected, expected, text);
        assert.ok(err.message.includes(JSON.stringify(text)), err.message);
        return true;
      },
    );
  }
});

// ---- property: toString() round-trips -------------------------------------------------------------------------

type Piece = { kind: 'literal'; text: string } | { kind: '*' } | { kind: '**' };
type Item = Piece | { kind: 'var'; inner: Piece[] | undefined };

const literal = fc.oneof(
  fc.stringMatching(/^[a-z0-9\-._~!$&'()+,;@]{1,5}$/),
  fc.constantFrom('v1', 'books', '%41b', 'a%2Fb', '%7e'),
);
const piece: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 3, arbitrary: literal.map((text) => ({ kind: 'literal' as const, text })) },
  { weight: 2, arbitrary: fc.constant({ kind: '*' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: '**' as const }) },
);
const item: fc.Arbitrary<Item> = fc.oneof(
  { weight: 3, arbitrary: piece },
  {
    weight: 2,
    arbitrary: fc.option(fc.array(piece, { minLength: 1, maxLength: 3 }), { nil: undefined }).map((inner) => ({
      kind: 'var' as const,
      inner,
    })),
  },
);

/** Renders generated items as template text, keeping at most one '**' and giving each variable its own field. */
function render(items: Item[], verb: string | undefined): string {
  let seenDoubleStar = false;
  const fix = (p: Piece): string => {
    if (p.kind === 'literal') return p.text;
    if (p.kind === '**' && !seenDoubleStar) return (seenDoubleStar = true), '**';
    return '*';
  };
  const parts = items.map((it, i) => {
    if (it.kind !== 'var') return fix(it);
    const name = i % 2 === 0 ? `f${i}` : `m${i}.sub_${i}`;
    return it.inner === undefined ? `{${name}}` : `{${name}=${it.inner.map(fix).join('/')}}`;
  });
  return '/' + parts.join('/') + (verb === undefined ? '' : ':' + verb);
}

const templateText = fc
  .tuple(fc.array(item, { minLength: 1, maxLength: 6 }), fc.option(literal, { nil: undefined }))
  .map(([items, verb]) => render(items, verb));

test('parse(t.toString()) equals t for generated templates', () => {
  fc.assert(
    fc.property(templateText, (text) => {
      const t = parseTemplate(text);
      const again = parseTemplate(t.toString());
      assert.deepEqual(again, t);
      assert.equal(again.toString(), t.toString());
    }),
    { numRuns: 500 },
  );
});

test('never throws anything but TemplateSyntaxError on arbitrary input', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (text) => {
      try {
        parseTemplate('/' + text);
      } catch (err) {
        assert.ok(err instanceof TemplateSyntaxError, String(err));
      }
    }),
    { numRuns: 1000 },
  );
});

// ---- property: expanding a template per http.proto and matching the path gives the bindings back ----------------

type ValuePiece = { kind: 'literal'; text: string } | { kind: '*'; value: string } | { kind: '**'; values: string[] };
type ValueItem = { piece: ValuePiece; variable: boolean } | { pieces: ValuePiece[]; variable: true; multi: true };

const utf8 = new TextEncoder();
/** http.proto client rule: everything but [-_.~0-9a-zA-Z] (and '/' for multi-segment values) is percent-encoded. */
function encode(value: string, keepSlash: boolean): string {
  let out = '';
  for (const byte of utf8.encode(value)) {
    const c = String.fromCharCode(byte);
    out += /[-_.~0-9a-zA-Z]/.test(c) || (keepSlash && c === '/') ? c : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

const valueLiteral = fc.oneof(fc.stringMatching(/^[a-z0-9\-._~!$&'()+,;@]{1,4}$/), fc.constantFrom('%41', 'a%2Fb'));
const anyValue = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }),
  fc.constantFrom('/', ':', '%', '%2F', 'a b', '?#', 'x:y', '€'),
);
const segmentValue = anyValue.filter((v) => !v.includes('/'));
const valuePiece: fc.Arbitrary<ValuePiece> = fc.oneof(
  { weight: 3, arbitrary: valueLiteral.map((text) => ({ kind: 'literal' as const, text })) },
  { weight: 2, arbitrary: segmentValue.map((value) => ({ kind: '*' as const, value })) },
  {
    weight: 1,
    arbitrary: fc.array(segmentValue, { maxLength: 3 }).map((values) => ({ kind: '**' as const, values })),
  },
);
const valueItem: fc.Arbitrary<ValueItem> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ piece: valuePiece, variable: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.array(valuePiece, { minLength: 2, maxLength: 3 }).map((pieces) => ({ pieces, variable: true as const, multi: true as const })),
  },
);

/** A template, a concrete path expanding it, and the bindings the path must give back. */
const expansion = fc
  .tuple(fc.array(valueItem, { minLength: 1, maxLength: 5 }), fc.option(valueLiteral, { nil: undefined }), anyValue)
  .map(([items, verb, singleValue]) => {
    let doubleStars = 0;
    // At most one '**' per template: later ones become '*'.
    const fix = (p: ValuePiece): ValuePiece => (p.kind === '**' && doubleStars++ > 0 ? { kind: '*', value: p.values[0] ?? 'z' } : p);
    const templateParts: string[] = [];
    const pathParts: string[] = [];
    const bindings: string[] = [];
    items.forEach((it, i) => {
      const pieces = ('pieces' in it ? it.pieces : [it.piece]).map(fix);
      const text = pieces.map((p) => (p.kind === 'literal' ? p.text : p.kind)).join('/');
      const name = `f${i}`;
      if (!it.variable) {
        templateParts.push(text);
        for (const p of pieces) pathParts.push(...(p.kind === 'literal' ? [p.text] : p.kind === '*' ? [encode(p.value, false)] : p.values.map((v) => encode(v, true))));
        return;
      }
      templateParts.push(`{${name}=${text}}`);
      const only = pieces.length === 1 ? pieces[0] : undefined;
      if (only?.kind === '*') {
        pathParts.push(encode(singleValue, false));
        bindings.push(`${name}=${singleValue}`);
        return;
      }
      if (only?.kind === 'literal') {
        // One segment: fully decoded, %2F included.
        pathParts.push(only.text);
        bindings.push(`${name}=${decodeURIComponent(only.text)}`);
        return;
      }
      const values: string[] = [];
      for (const p of pieces) {
        const vs = p.kind === 'literal' ? [decodeURIComponent(p.text.replace(/%2F/gi, '%252F'))] : p.kind === '*' ? [p.value] : p.values;
        values.push(...vs);
        pathParts.push(...(p.kind === 'literal' ? [p.text] : vs.map((v) => encode(v, true))));
      }
      bindings.push(`${name}=${values.join('/')}`);
    });
    const template = '/' + templateParts.join('/') + (verb === undefined ? '' : ':' + verb);
    const path = '/' + pathParts.join('/') + (verb === undefined ? '' : ':' + verb);
    return { template, path, bindings };
  });

test('matching an expanded template gives back the bindings it was expanded from', () => {
  fc.assert(
    fc.property(expansion, ({ template, path, bindings }) => {
      const builder = new RouterBuilder<string>();
      builder.add('GET', template, 'x', 'property');
      const { router } = builder.build();
      const result = router.match('GET', path);
      assert.equal(result.kind, 'found', `${template} ${path}`);
      if (result.kind !== 'found') return;
      assert.deepEqual(result.params.map((p) => `${p.fieldPath.join('.')}=${p.value}`), bindings);
    }),
    { numRuns: 1000 },
  );
});
