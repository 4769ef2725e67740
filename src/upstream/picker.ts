/**
 * Pickers: immutable snapshots of a backend's usable endpoints with one cheap `pick()`. The balancer
 * (BackendUpstream) builds a new picker whenever an endpoint's eligibility changes; a pick never allocates, never
 * looks at connection state and never blocks. Pure: no I/O, no timers.
 *
 * Policies (chosen per call, L7):
 *  - round_robin      next endpoint in turn; starts at a random offset so many gateways do not march in step.
 *  - weighted_random  endpoint i with probability weight_i / Σweight (binary search over cumulative weights).
 *  - least_request    power of two choices: two random endpoints, the one with the lower
 *                     (outstanding + 1) / weight wins (Envoy's LEAST_REQUEST with active_request_bias 1).
 *  - pick_first       the first usable endpoint in configured/resolved order; the others are hot standbys.
 */

export type BalancingPolicy = 'round_robin' | 'weighted_random' | 'least_request' | 'pick_first';

export const BALANCING_POLICIES: readonly BalancingPolicy[] = ['round_robin', 'weighted_random', 'least_request', 'pick_first'];

/** What a picker needs to know about an endpoint; `outstanding` is read live at pick time. */
export interface Pickable {
  readonly address: string;
  readonly weight: number;
  readonly outstanding: number;
}

export interface Picker<T extends Pickable> {
  /** The endpoints this snapshot picks from, in order. Empty: the backend has no usable endpoint. */
  readonly endpoints: readonly T[];
  pick(): T | undefined;
}

export function buildPicker<T extends Pickable>(policy: BalancingPolicy, endpoints: readonly T[], random: () => number = Math.random): Picker<T> {
  const list = Object.freeze([...endpoints]);
  if (list.length === 0) return { endpoints: list, pick: () => undefined };
  if (list.length === 1) {
    const only = list[0];
    return { endpoints: list, pick: () => only };
  }
  switch (policy) {
    case 'round_robin': return roundRobin(list, random);
    case 'weighted_random': return weightedRandom(list, random);
    case 'least_request': return leastRequest(list, random);
    case 'pick_first': return { endpoints: list, pick: () => list[0] };
  }
}

function roundRobin<T extends Pickable>(list: readonly T[], random: () => number): Picker<T> {
  const n = list.length;
  let next = Math.floor(random() * n);
  return {
    endpoints: list,
    pick() {
      const e = list[next]!;
      next = next + 1 === n ? 0 : next + 1;
      return e;
    },
  };
}

function weightedRandom<T extends Pickable>(list: readonly T[], random: () => number): Picker<T> {
  const cumulative = new Float64Array(list.length);
  let total = 0;
  for (let i = 0; i < list.length; i++) {
    total += list[i]!.weight;
    cumulative[i] = total;
  }
  return {
    endpoints: list,
    pick() {
      const r = random() * total;
      let lo = 0;
      let hi = cumulative.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cumulative[mid]! > r) hi = mid;
        else lo = mid + 1;
      }
      return list[lo];
    },
  };
}

function leastRequest<T extends Pickable>(list: readonly T[], random: () => number): Picker<T> {
  const n = list.length;
  // With equal weights the comparison reduces to outstanding counts; drawing candidates by weight would make a
  // heavy endpoint win twice (once in the draw, once in the comparison).
  return {
    endpoints: list,
    pick() {
      const i = Math.floor(random() * n);
      let j = Math.floor(random() * (n - 1));
      if (j >= i) j++;
      const a = list[i]!;
      const b = list[j]!;
      return (a.outstanding + 1) * b.weight <= (b.outstanding + 1) * a.weight ? a : b;
    },
  };
}
