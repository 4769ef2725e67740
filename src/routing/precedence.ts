/**
 * The precedence order between templates (documented in router.ts) as a comparator, and the overlap test used to
 * report conflicts. The trie in trie.ts is built so that its depth-first search finds exactly the template this
 * comparator ranks first among those matching a path; test/routing-router.test.ts checks the two agree.
 */
import { literalKey } from './encoding.ts';
import type { PathTemplate, TemplateSegment } from './template.ts';

/** Why one template ranks before another; the first rule that told them apart. */
export type PrecedenceReason =
  | 'same-shape' // identical segments and verb: a duplicate
  | 'verb' // a template with a custom verb before one without
  | 'verb-text' // different verbs: never match the same path, ordered by text
  | 'literal' // a literal before '*' or '**' at the first differing segment
  | 'star' // '*' before '**' at the first differing segment
  | 'literal-text' // different literals: never match the same path, ordered by text
  | 'double-star-suffix' // same '**' position: more segments after the '**' (it captures fewer) first
  | 'double-star-empty' // T before T/** : a '**' that would have to match nothing loses
  | 'length'; // shorter before longer: never match the same path

export interface Precedence {
  /** < 0 when `a` ranks first, > 0 when `b` does, 0 for the same shape. */
  readonly order: number;
  readonly reason: PrecedenceReason;
  /** Template segment index where the rule applied (segments.length for verb or end-of-template rules). */
  readonly index: number;
}

function rank(segment: TemplateSegment): number {
  return segment.kind === 'literal' ? 0 : segment.kind === '*' ? 1 : 2;
}

function compareText(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Explains the precedence between two templates; independent of registration order. */
export function explainPrecedence(a: PathTemplate, b: PathTemplate): Precedence {
  if ((a.verb === undefined) !== (b.verb === undefined)) {
    return { order: a.verb !== undefined ? -1 : 1, reason: 'verb', index: Math.min(a.segments.length, b.segments.length) };
  }
  if (a.verb !== undefined && b.verb !== undefined) {
    const order = compareText(literalKey(a.verb), literalKey(b.verb));
    if (order !== 0) return { order, reason: 'verb-text', index: Math.min(a.segments.length, b.segments.length) };
  }
  const sa = a.segments;
  const sb = b.segments;
  for (let i = 0; ; i++) {
    if (i === sa.length || i === sb.length) {
      if (sa.length === sb.length) return { order: 0, reason: 'same-shape', index: i };
      const order = sa.length < sb.length ? -1 : 1;
      const longer = sa.length < sb.length ? sb : sa;
      const emptyStar = longer.length === i + 1 && longer[i].kind === '**';
      return { order, reason: emptyStar ? 'double-star-empty' : 'length', index: i };
    }
    const x = sa[i];
    const y = sb[i];
    const rx = rank(x);
    const ry = rank(y);
    if (rx !== ry) return { order: rx - ry, reason: Math.min(rx, ry) === 0 ? 'literal' : 'star', index: i };
    if (x.kind === 'literal' && y.kind === 'literal') {
      const order = compareText(literalKey(x.value), literalKey(y.value));
      if (order !== 0) return { order, reason: 'literal-text', index: i };
    } else if (x.kind === '**') {
      const suffixA = sa.length - i - 1;
      const suffixB = sb.length - i - 1;
      if (suffixA !== suffixB) return { order: suffixB - suffixA, reason: 'double-star-suffix', index: i };
    }
  }
}

export function comparePrecedence(a: PathTemplate, b: PathTemplate): number {
  return explainPrecedence(a, b).order;
}

/** A constraint on one path segment: a literal key, or undefined for "any non-empty segment". */
type Constraint = string | undefined;

function constraintAt(t: PathTemplate, length: number, i: number): Constraint {
  const segs = t.segments;
  const d = t.doubleStarIndex;
  let segment: TemplateSegment;
  if (d < 0 || i < d) segment = segs[i];
  else if (i >= length - (segs.length - d - 1)) segment = segs[i - length + segs.length];
  else return undefined;
  return segment.kind === 'literal' ? literalKey(segment.value) : undefined;
}

/**
 * A path (as segments, plus the verb) matching both templates, or undefined when no path does. Two templates with
 * at most one '**' each overlap iff some path length admits both and the constraints agree position by position;
 * the longest length either needs is enough to decide, since a longer path only widens the '**' gaps.
 */
export function overlapWitness(a: PathTemplate, b: PathTemplate): string | undefined {
  if ((a.verb === undefined ? '' : literalKey(a.verb)) !== (b.verb === undefined ? '' : literalKey(b.verb))) {
    return undefined;
  }
  const fixedA = a.doubleStarIndex < 0;
  const fixedB = b.doubleStarIndex < 0;
  let length: number;
  if (fixedA && fixedB) {
    if (a.segments.length !== b.segments.length) return undefined;
    length = a.segments.length;
  } else if (fixedA || fixedB) {
    const [fixed, open] = fixedA ? [a, b] : [b, a];
    if (fixed.segments.length < open.segments.length - 1) return undefined;
    length = fixed.segments.length;
  } else {
    const dA = a.doubleStarIndex;
    const dB = b.doubleStarIndex;
    length = Math.max(dA, dB) + Math.max(a.segments.length - dA - 1, b.segments.length - dB - 1);
  }
  const path: string[] = [];
  for (let i = 0; i < length; i++) {
    const x = constraintAt(a, length, i);
    const y = constraintAt(b, length, i);
    if (x !== undefined && y !== undefined && x !== y) return undefined;
    path.push(x ?? y ?? 'x');
  }
  return '/' + path.join('/') + (a.verb === undefined ? '' : ':' + a.verb);
}
