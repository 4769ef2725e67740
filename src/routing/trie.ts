/**
 * The compiled matcher for ONE http method: a trie over template segments. Edges are literal keys (a Map, so one
 * lookup per segment), '*', and '**'. A '**' edge leads to one sub-trie per suffix length (segments after the
 * '**'); since a template holds at most one '**', a sub-trie is entered at a known path position and only walks
 * literals and '*' from there. Lookup is a depth-first search whose child order is the precedence order, so the
 * first leaf found is the winner; every (node, position) pair is visited at most once, so cost is bounded by the
 * path length and the trie's fan-out along it, never by the number of routes.
 */
import { literalKey } from './encoding.ts';
import type { PathTemplate } from './template.ts';

interface Node<L> {
  literals: Map<string, Node<L>> | undefined;
  star: Node<L> | undefined;
  /** Sorted by suffix length, longest first: the '**' that captures fewest segments is tried first. */
  doubleStar: Array<{ suffix: number; node: Node<L> }> | undefined;
  /** Leaves by normalised custom verb; '' for templates without a verb. */
  ends: Map<string, L> | undefined;
}

function newNode<L>(): Node<L> {
  return { literals: undefined, star: undefined, doubleStar: undefined, ends: undefined };
}

export interface TrieHit<L> {
  readonly leaf: L;
  /** The segments the leaf matched: with the ':verb' cut off the last one when it matched as a verb. */
  readonly segments: readonly string[];
}

export class MethodTrie<L> {
  readonly #root: Node<L> = newNode();
  readonly #verbs = new Set<string>();

  /** Inserts a template; the caller has already removed duplicates (same shape and verb). */
  insert(template: PathTemplate, leaf: L): void {
    let node = this.#root;
    const segments = template.segments;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i];
      if (segment.kind === 'literal') {
        node.literals ??= new Map();
        const key = literalKey(segment.value);
        let child = node.literals.get(key);
        if (child === undefined) node.literals.set(key, (child = newNode()));
        node = child;
      } else if (segment.kind === '*') {
        node = node.star ??= newNode();
      } else {
        node.doubleStar ??= [];
        const suffix = segments.length - i - 1;
        let entry = node.doubleStar.find((e) => e.suffix === suffix);
        if (entry === undefined) {
          entry = { suffix, node: newNode() };
          node.doubleStar.push(entry);
          node.doubleStar.sort((x, y) => y.suffix - x.suffix);
        }
        node = entry.node;
      }
    }
    const verb = template.verb === undefined ? '' : literalKey(template.verb);
    if (verb !== '') this.#verbs.add(verb);
    node.ends ??= new Map();
    if (node.ends.has(verb)) throw new Error(`internal: duplicate leaf for ${template.toString()}`);
    node.ends.set(verb, leaf);
  }

  /**
   * Finds the winning leaf for already split, non-empty path segments. If the last segment ends in ':verb' and a
   * template of this method has that verb, the verb reading is tried first; when it finds nothing, the ':' is
   * ordinary segment text (resource ids may contain ':').
   */
  lookup(segments: readonly string[]): TrieHit<L> | undefined {
    const n = segments.length;
    if (n > 0 && this.#verbs.size > 0) {
      const last = segments[n - 1];
      const colon = last.lastIndexOf(':');
      if (colon >= 0) {
        const verb = literalKey(last.slice(colon + 1));
        if (this.#verbs.has(verb)) {
          // "/v1/:undelete" is how a client expands /v1/{name=**}:undelete with an empty name: like a trailing
          // slash, a segment that is nothing but the verb disappears.
          const cut = colon === 0 ? segments.slice(0, n - 1) : segments.slice();
          if (colon > 0) cut[n - 1] = last.slice(0, colon);
          const leaf = search(this.#root, cut, 0, verb);
          if (leaf !== undefined) return { leaf, segments: cut };
        }
      }
    }
    const leaf = search(this.#root, segments, 0, '');
    return leaf === undefined ? undefined : { leaf, segments };
  }
}

// Child order = precedence: template ends here, literal, '*', then '**' capturing the fewest segments.
function search<L>(node: Node<L>, segments: readonly string[], pos: number, verb: string): L | undefined {
  const n = segments.length;
  if (pos === n) {
    const leaf = node.ends?.get(verb);
    if (leaf !== undefined) return leaf;
  } else {
    if (node.literals !== undefined) {
      const child = node.literals.get(literalKey(segments[pos]));
      if (child !== undefined) {
        const leaf = search(child, segments, pos + 1, verb);
        if (leaf !== undefined) return leaf;
      }
    }
    if (node.star !== undefined) {
      const leaf = search(node.star, segments, pos + 1, verb);
      if (leaf !== undefined) return leaf;
    }
  }
  if (node.doubleStar !== undefined) {
    const remaining = n - pos;
    for (const { suffix, node: child } of node.doubleStar) {
      if (suffix > remaining) continue;
      const leaf = search(child, segments, n - suffix, verb);
      if (leaf !== undefined) return leaf;
    }
  }
  return undefined;
}
