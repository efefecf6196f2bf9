/**
 * Longest-prefix match compiled to a sorted interval table.
 *
 * A set of CIDR prefixes cuts the address space into elementary intervals
 * within which the longest matching prefix does not change. At compile time
 * we compute those intervals (a sweep over the prefixes sorted by start,
 * keeping a stack of the enclosing prefixes); at lookup time one binary
 * search over the interval starts finds the interval holding the address,
 * and the route stored beside it is the answer:
 *
 *     prefixes: 10.0.0.0/8 -> A, 10.1.0.0/16 -> B, 0.0.0.0/0 -> D
 *
 *     starts:   0.0.0.0   10.0.0.0   10.1.0.0   10.2.0.0   11.0.0.0
 *     routes:   D         A          B          A          D
 *
 * n prefixes give at most 2n + 1 intervals, so a lookup costs
 * ceil(log2(2n + 1)) comparisons (~11 for a thousand routes), touches two
 * typed arrays and allocates nothing. Unlike a trie, the work does not grow
 * with the prefix length, which matters for IPv6.
 *
 * Keys are stored biased (`x ^ 0x80000000`) in Int32Arrays so that unsigned
 * order becomes signed int32 order: the comparisons stay on small integers
 * whether the caller passes addresses as int32 or uint32. IPv6 keys are four
 * such words per interval, compared most significant first.
 *
 * Route values are caller-defined integers; -1 means "no prefix covers this".
 */

/** Flips the sign bit: unsigned 32-bit order as signed int32 order. */
const BIAS = 0x80000000 | 0;

/** One prefix to compile. `start` must have its host bits clear. */
export interface LpmPrefix {
  /** First address of the prefix (32- or 128-bit unsigned). */
  start: bigint;
  prefixLen: number;
  /** The value a lookup returns for addresses this prefix wins (>= 0). */
  route: number;
}

/**
 * Compiles prefixes of a `bits`-wide address space into interval starts and
 * their routes. Prefixes must be unique by (start, prefixLen); the caller
 * resolves duplicates first (metric tie-breaking is a routing decision, not
 * an LPM one).
 */
export function compileIntervals(prefixes: readonly LpmPrefix[], bits: 32 | 128): { starts: bigint[]; routes: number[] } {
  const width = BigInt(bits);
  const top = (1n << width) - 1n;
  const sorted = [...prefixes].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.prefixLen - b.prefixLen));
  const starts: bigint[] = [0n];
  const routes: number[] = [-1];
  const emit = (s: bigint, r: number): void => {
    const n = starts.length - 1;
    if (starts[n] === s) routes[n] = r;
    else {
      starts.push(s);
      routes.push(r);
    }
  };
  const stack: { end: bigint; route: number }[] = [];
  const pop = (): void => {
    const t = stack.pop()!;
    if (t.end < top) emit(t.end + 1n, stack.length > 0 ? stack[stack.length - 1]!.route : -1);
  };
  for (const p of sorted) {
    const end = p.start + (1n << (width - BigInt(p.prefixLen))) - 1n;
    while (stack.length > 0 && stack[stack.length - 1]!.end < p.start) pop();
    stack.push({ end, route: p.route });
    emit(p.start, p.route);
  }
  while (stack.length > 0) pop();
  // Adjacent intervals with the same route are one interval.
  const s2: bigint[] = [];
  const r2: number[] = [];
  for (let i = 0; i < starts.length; i++) {
    if (i > 0 && routes[i] === r2[r2.length - 1]) continue;
    s2.push(starts[i]!);
    r2.push(routes[i]!);
  }
  return { starts: s2, routes: r2 };
}

/** IPv4 longest-prefix match: a sorted table of interval starts (biased int32) and their routes. */
export class Lpm4 {
  /** Interval starts, biased (`start ^ 0x80000000`), ascending as int32; starts[0] is 0.0.0.0. */
  readonly keys: Int32Array;
  /** The route of each interval, or -1. */
  readonly routes: Int32Array;

  constructor(prefixes: readonly LpmPrefix[]) {
    const { starts, routes } = compileIntervals(prefixes, 32);
    this.keys = new Int32Array(starts.length);
    this.routes = new Int32Array(routes);
    for (let i = 0; i < starts.length; i++) this.keys[i] = Number(starts[i]!) ^ BIAS;
  }

  /** The route of the longest prefix holding `addr` (int32 or uint32), or -1. */
  lookup(addr: number): number {
    const a = addr ^ BIAS;
    const k = this.keys;
    let lo = 0;
    let hi = k.length - 1;
    // Invariant: k[lo] <= a (k[0] is the minimum), and the answer is in [lo, hi].
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (k[mid]! <= a) lo = mid;
      else hi = mid - 1;
    }
    return this.routes[lo]!;
  }
}

/** IPv6 longest-prefix match: interval starts as four biased words each, and their routes. */
export class Lpm6 {
  /** Interval starts, four biased words per interval (most significant first), ascending. */
  readonly keys: Int32Array;
  /** The route of each interval, or -1. */
  readonly routes: Int32Array;

  constructor(prefixes: readonly LpmPrefix[]) {
    const { starts, routes } = compileIntervals(prefixes, 128);
    this.keys = new Int32Array(starts.length * 4);
    this.routes = new Int32Array(routes);
    for (let i = 0; i < starts.length; i++) {
      const s = starts[i]!;
      for (let w = 0; w < 4; w++) this.keys[i * 4 + w] = Number((s >> BigInt(96 - 32 * w)) & 0xffffffffn) ^ BIAS;
    }
  }

  /** The route of the longest prefix holding the address w0..w3 (int32 or uint32 words), or -1. */
  lookup(w0: number, w1: number, w2: number, w3: number): number {
    const a0 = w0 ^ BIAS;
    const a1 = w1 ^ BIAS;
    const a2 = w2 ^ BIAS;
    const a3 = w3 ^ BIAS;
    const k = this.keys;
    let lo = 0;
    let hi = (k.length >>> 2) - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      const o = mid << 2;
      // keys[mid] <= address, word by word.
      let le: boolean;
      const k0 = k[o]!;
      if (k0 !== a0) le = k0 < a0;
      else {
        const k1 = k[o + 1]!;
        if (k1 !== a1) le = k1 < a1;
        else {
          const k2 = k[o + 2]!;
          if (k2 !== a2) le = k2 < a2;
          else le = k[o + 3]! <= a3;
        }
      }
      if (le) lo = mid;
      else hi = mid - 1;
    }
    return this.routes[lo]!;
  }
}
