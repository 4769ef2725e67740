// Route matching for google.api.http templates: RouterBuilder collects (method, template) pairs, reports duplicate
// and overlapping routes with both sources named, and builds an immutable Router.
//
// ## Precedence: which template wins when several match one request path
//
// Only templates of the request's HTTP method compete. The winner never depends on registration order.
//
// 1. Custom verb first. If the last path segment ends in `:<verb>` and a template of this method has that verb,
//    the templates with that verb are tried first, on the path with `:<verb>` cut off (a segment that was only
//    `:<verb>` disappears, as a trailing slash does: `/v1/:undelete` is `/v1:undelete`).
//    Only if none of them matches is the ':' ordinary text of the last segment, and templates without a verb are
//    tried: `/v1/books/1:publish` goes to `/v1/{name=books/*}:publish`, `/v1/books/urn:isbn:1` to `/v1/{name=books/*}`.
// 2. Otherwise templates are compared segment by segment, left to right, in template order; a variable counts as
//    the segments inside it (`{name}` is `*`, `{name=shelves/*}` is `shelves/*`). At the first segment where two
//    templates differ:
//    a. a literal beats `*`, and `*` beats `**`;
//    b. if both are `**`, the one followed by more segments wins, i.e. the `**` that captures fewer path segments:
//       `/v1/{parent=projects/*/databases/*/documents/*/**}/{collection_id}` beats
//       `/v1/{name=projects/*/databases/*/documents/*/**}`;
//    c. if one template has ended where the other continues with a final `**` (matching zero segments), the one
//       that ended wins: `/v1/{name=books/*}` beats `/v1/{name=books/*/**}` on `/v1/books/1`.
// 3. Templates with the same segments and verb (variable names and placement ignored) are duplicates: the one whose
//    template text, then source, sorts first is used.
//
// ## Conflicts reported by build()
//
// - `duplicate`: same method, same shape (rule 3); the route used is the `winner`.
// - `overlap`: same method, some path matches both, and the winner was decided by a `**` rule (2b or 2c). Overlaps
//   decided by rule 1 or 2a are deliberate specialisation (`/v1/users/me` next to `/v1/users/{id}`) and are not
//   reported.
//
// ## Request paths
//
// - `rawPath` is the path without the query string, percent-encoded as received. It must start with '/'.
// - One trailing slash is ignored (`/v1/books/` is `/v1/books`). Empty segments (`/v1//books`, `/v1/books//`)
//   never match: no template can produce one. `.` and `..` are ordinary segments, never resolved.
// - `*` matches one non-empty segment; `**` matches zero or more (http.proto), so `/v1/{name=**}:undelete`
//   matches `/v1/a/b:undelete` (name "a/b") and `/v1:undelete` or `/v1/:undelete` (name "").
// - Literals (and verbs) are compared after RFC 3986 normalisation: escaped unreserved characters are decoded, so
//   `/v1/%62ooks` matches literal `books`; `%2F` never splits a segment. An escaped colon (`%3A`) never starts a verb.
// - Bound values follow http.proto: a variable of one segment (`{id}`, `{id=*}`) is fully decoded (`%2F` -> '/');
//   a variable of several segments or with `**` is decoded except `%2F`/`%2f`, which stay as sent. A value that is
//   not valid percent-encoded UTF-8 makes match() throw PathDecodeError (answer 400).
import { decodeFailure, decodeSegment, literalKey } from './encoding.ts';
import { PathDecodeError, TemplateSyntaxError } from './errors.ts';
import { explainPrecedence, overlapWitness } from './precedence.ts';
import { parseTemplate } from './template.ts';
import type { PathTemplate } from './template.ts';
import { MethodTrie } from './trie.ts';

export interface RouteConflict {
  kind: 'duplicate' | 'overlap';
  method: string;
  a: { template: string; source: string };
  b: { template: string; source: string };
  /** The route that requests go to. */
  winner?: 'a' | 'b';
  message: string;
}

export interface PathParam {
  readonly fieldPath: readonly string[];
  readonly value: string;
}

export type MatchResult<T> =
  | { kind: 'found'; value: T; template: PathTemplate; params: PathParam[] }
  | { kind: 'method-not-allowed'; allow: string[] }
  | { kind: 'not-found' };

export interface RouteInfo<T> {
  method: string;
  template: string;
  source: string;
  value: T;
}

export interface Router<T> {
  /** Throws PathDecodeError (only) when a bound value is not valid percent-encoded UTF-8. */
  match(httpMethod: string, rawPath: string): MatchResult<T>;
  /** Every registered route, duplicates included, sorted by template text, method, source. */
  routes(): RouteInfo<T>[];
}

interface Entry<T> {
  readonly method: string;
  readonly template: PathTemplate;
  readonly text: string;
  readonly source: string;
  readonly value: T;
  readonly order: number;
  readonly variables: ReadonlyArray<{ fieldPath: readonly string[]; start: number; end: number; multi: boolean }>;
}

// RFC 9110 token: what an HTTP method may be.
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NOT_FOUND: MatchResult<never> = Object.freeze({ kind: 'not-found' });

export class RouterBuilder<T> {
  readonly #entries: Entry<T>[] = [];
  #built = false;

  add(httpMethod: string, template: string | PathTemplate, value: T, source: string): void {
    if (this.#built) throw new Error('RouterBuilder.add() after build(): the router is frozen');
    if (!METHOD.test(httpMethod)) throw new Error(`invalid HTTP method ${JSON.stringify(httpMethod)} (in ${source})`);
    let parsed: PathTemplate;
    try {
      parsed = typeof template === 'string' ? parseTemplate(template) : template;
    } catch (err) {
      if (err instanceof TemplateSyntaxError) {
        throw new TemplateSyntaxError(err.template, err.position, err.expected, source);
      }
      throw err;
    }
    this.#entries.push({
      method: httpMethod,
      template: parsed,
      text: parsed.toString(),
      source,
      value,
      order: this.#entries.length,
      variables: parsed.variables.map((v) => ({ ...v, multi: parsed.isMultiSegment(v) })),
    });
  }

  build(): { router: Router<T>; conflicts: RouteConflict[] } {
    this.#built = true;
    const byMethod = new Map<string, Entry<T>[]>();
    for (const entry of this.#entries) {
      let list = byMethod.get(entry.method);
      if (list === undefined) byMethod.set(entry.method, (list = []));
      list.push(entry);
    }
    const conflicts: RouteConflict[] = [];
    const tries = new Map<string, MethodTrie<Entry<T>>>();
    for (const method of [...byMethod.keys()].sort()) {
      const unique = dedupe(method, byMethod.get(method)!, conflicts);
      findOverlaps(method, unique, conflicts);
      const trie = new MethodTrie<Entry<T>>();
      for (const entry of unique) trie.insert(entry.template, entry);
      tries.set(method, trie);
    }
    conflicts.sort(compareConflicts);
    const routes = [...this.#entries].sort(
      (x, y) => cmp(x.text, y.text) || cmp(x.method, y.method) || cmp(x.source, y.source) || x.order - y.order,
    );
    return { router: new FrozenRouter(tries, routes), conflicts };
  }
}

class FrozenRouter<T> implements Router<T> {
  readonly #tries: ReadonlyMap<string, MethodTrie<Entry<T>>>;
  readonly #routes: readonly Entry<T>[];

  constructor(tries: ReadonlyMap<string, MethodTrie<Entry<T>>>, routes: readonly Entry<T>[]) {
    this.#tries = tries;
    this.#routes = routes;
  }

  match(httpMethod: string, rawPath: string): MatchResult<T> {
    const segments = splitPath(rawPath);
    if (segments === undefined) return NOT_FOUND;
    const hit = this.#tries.get(httpMethod)?.lookup(segments);
    if (hit !== undefined) {
      const entry = hit.leaf;
      return { kind: 'found', value: entry.value, template: entry.template, params: bind(entry, hit.segments) };
    }
    const allow: string[] = [];
    // #tries is in sorted method order, so allow comes out sorted and without duplicates.
    for (const [method, trie] of this.#tries) {
      if (method !== httpMethod && trie.lookup(segments) !== undefined) allow.push(method);
    }
    return allow.length > 0 ? { kind: 'method-not-allowed', allow } : NOT_FOUND;
  }

  routes(): RouteInfo<T>[] {
    return this.#routes.map((e) => ({ method: e.method, template: e.text, source: e.source, value: e.value }));
  }
}

/** Splits a raw path into segments; undefined when no template can match it (no leading '/', empty segment). */
function splitPath(rawPath: string): string[] | undefined {
  if (rawPath.charCodeAt(0) !== 0x2f) return undefined;
  if (rawPath.length === 1) return [];
  const end = rawPath.charCodeAt(rawPath.length - 1) === 0x2f ? rawPath.length - 1 : rawPath.length;
  const segments = rawPath.slice(1, end).split('/');
  for (const segment of segments) if (segment.length === 0) return undefined;
  return segments;
}

function bind<T>(entry: Entry<T>, segments: readonly string[]): PathParam[] {
  const template = entry.template;
  const d = template.doubleStarIndex;
  // Template index -> path index: shift everything after the '**' by the number of extra segments it took.
  const shift = d < 0 ? 0 : segments.length - template.segments.length;
  const params: PathParam[] = [];
  for (const variable of entry.variables) {
    const start = d < 0 || variable.start <= d ? variable.start : variable.start + shift;
    const end = d < 0 || variable.end <= d ? variable.end : variable.end + shift;
    let value: string;
    if (!variable.multi) {
      value = decodeOrThrow(segments[start], false, variable.fieldPath);
    } else {
      value = '';
      for (let i = start; i < end; i++) {
        value += (i === start ? '' : '/') + decodeOrThrow(segments[i], true, variable.fieldPath);
      }
    }
    params.push({ fieldPath: variable.fieldPath, value });
  }
  return params;
}

function decodeOrThrow(segment: string, keepSlash: boolean, fieldPath: readonly string[]): string {
  const decoded = decodeSegment(segment, keepSlash);
  if (decoded === undefined) throw new PathDecodeError(segment, fieldPath.join('.'), decodeFailure(segment));
  return decoded;
}

/** Same method, same shape: keeps the first by precedence tie-break (text, source, order); reports the rest. */
function dedupe<T>(method: string, entries: Entry<T>[], conflicts: RouteConflict[]): Entry<T>[] {
  const groups = new Map<string, Entry<T>[]>();
  for (const entry of entries) {
    const key = shapeKey(entry.template);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = []));
    group.push(entry);
  }
  const unique: Entry<T>[] = [];
  for (const group of groups.values()) {
    group.sort((x, y) => cmp(x.text, y.text) || cmp(x.source, y.source) || x.order - y.order);
    const [winner, ...losers] = group;
    unique.push(winner);
    for (const loser of losers) {
      conflicts.push(
        conflict('duplicate', method, winner, loser, (w, l) =>
          `duplicate route ${method} ${w.text}: ${JSON.stringify(w.source)} and ${JSON.stringify(l.source)}` +
          (w.text === l.text ? '' : ` (${l.text})`) +
          ` have the same path shape; ${JSON.stringify(w.source)} is used`,
        ),
      );
    }
  }
  return unique;
}

/**
 * Only pairs involving a '**' template can be settled by a '**' rule, so each '**' template is checked against
 * the others of its method and verb: O(#'**' templates x #templates), not O(n^2). A cheap look at the first and
 * last segments skips most pairs before the full overlap test.
 */
function findOverlaps<T>(method: string, unique: Entry<T>[], conflicts: RouteConflict[]): void {
  const byVerb = new Map<string, Entry<T>[]>();
  for (const entry of unique) {
    const verb = entry.template.verb === undefined ? '' : literalKey(entry.template.verb);
    let group = byVerb.get(verb);
    if (group === undefined) byVerb.set(verb, (group = []));
    group.push(entry);
  }
  for (const group of byVerb.values()) {
    const ends = group.map((e) => edgeKeys(e.template));
    group.forEach((d, i) => {
      if (d.template.doubleStarIndex < 0) return;
      group.forEach((other, j) => {
        if (i === j || (other.template.doubleStarIndex >= 0 && j < i)) return;
        if (clash(ends[i].first, ends[j].first) || clash(ends[i].last, ends[j].last)) return;
        reportOverlap(method, d, other, conflicts);
      });
    });
  }
}

/** Literal keys of the first and last template segments; undefined for '*', '**' and '**'-shifted positions. */
function edgeKeys(t: PathTemplate): { first: string | undefined; last: string | undefined } {
  const segs = t.segments;
  const key = (i: number) => {
    const s = segs[i];
    return s !== undefined && s.kind === 'literal' ? literalKey(s.value) : undefined;
  };
  // On any path both templates match, each template's first segment sits at the first path position and its last
  // segment at the last one - unless that segment is the '**' itself.
  return { first: t.doubleStarIndex === 0 ? undefined : key(0), last: key(segs.length - 1) };
}

function clash(x: string | undefined, y: string | undefined): boolean {
  return x !== undefined && y !== undefined && x !== y;
}

function reportOverlap<T>(method: string, d: Entry<T>, other: Entry<T>, conflicts: RouteConflict[]): void {
  const p = explainPrecedence(d.template, other.template);
  if (p.reason !== 'double-star-suffix' && p.reason !== 'double-star-empty') return;
  const witness = overlapWitness(d.template, other.template);
  if (witness === undefined) return;
  const [winner, loser] = p.order < 0 ? [d, other] : [other, d];
  const why =
    p.reason === 'double-star-suffix'
      ? `its '**' is followed by more segments, so it captures fewer`
      : `the other's trailing '**' would have to match zero segments`;
  conflicts.push(
    conflict('overlap', method, winner, loser, (w, l) =>
      `overlapping routes ${method} ${w.text} (${w.source}) and ${method} ${l.text} (${l.source}): ` +
      `both match paths like ${witness}; ${JSON.stringify(w.source)} wins because ${why}`,
    ),
  );
}

function conflict<T>(
  kind: RouteConflict['kind'],
  method: string,
  winner: Entry<T>,
  loser: Entry<T>,
  message: (winner: Entry<T>, loser: Entry<T>) => string,
): RouteConflict {
  const winnerFirst = (cmp(winner.text, loser.text) || cmp(winner.source, loser.source) || winner.order - loser.order) <= 0;
  const [a, b] = winnerFirst ? [winner, loser] : [loser, winner];
  return {
    kind,
    method,
    a: { template: a.text, source: a.source },
    b: { template: b.text, source: b.source },
    winner: winnerFirst ? 'a' : 'b',
    message: message(winner, loser),
  };
}

function shapeKey(template: PathTemplate): string {
  // Variables dropped and literals normalised, so "{id=books/*}", "books/{id}" and "%62ooks/*" coincide.
  const parts = template.segments.map((s) => (s.kind === 'literal' ? '=' + literalKey(s.value) : s.kind));
  return parts.join('/') + (template.verb === undefined ? '' : ':' + literalKey(template.verb));
}

function compareConflicts(x: RouteConflict, y: RouteConflict): number {
  return (
    cmp(x.method, y.method) ||
    cmp(x.kind, y.kind) ||
    cmp(x.a.template, y.a.template) ||
    cmp(x.b.template, y.b.template) ||
    cmp(x.a.source, y.a.source) ||
    cmp(x.b.source, y.b.source)
  );
}

function cmp(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}
