/**
 * The interval LPM against a brute-force longest match, on hand-made tables
 * and on random prefix sets (fast-check), for IPv4 and IPv6.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileIntervals, Lpm4, Lpm6, type LpmPrefix } from "../../src/route/lpm.js";

const ip4 = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

function p4(a: number, len: number, route: number): LpmPrefix {
  return { start: BigInt(a), prefixLen: len, route };
}

/** Longest match by scanning every prefix. */
function naive(prefixes: readonly LpmPrefix[], addr: bigint, bits: number): number {
  let best = -1;
  let bestLen = -1;
  for (const p of prefixes) {
    const host = BigInt(bits - p.prefixLen);
    if (addr >> host === p.start >> host && p.prefixLen > bestLen) {
      best = p.route;
      bestLen = p.prefixLen;
    }
  }
  return best;
}

/** Random unique prefixes with host bits clear, clustered so that they nest. */
function prefixes(bits: 32 | 128): fc.Arbitrary<LpmPrefix[]> {
  const top = (1n << BigInt(bits)) - 1n;
  const base = fc.bigInt({ min: 0n, max: top });
  return fc
    .array(fc.tuple(base, fc.integer({ min: 0, max: bits })), { maxLength: 40 })
    .map((xs) => {
      const seen = new Set<string>();
      const out: LpmPrefix[] = [];
      for (const [a, len] of xs) {
        // Cluster: keep only a few high bits random so prefixes overlap often.
        const host = BigInt(bits - len);
        const start = ((a & ~(top >> 6n)) >> host) << host;
        const key = `${start}/${len}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ start, prefixLen: len, route: out.length });
      }
      return out;
    });
}

describe("IPv4", () => {
  const table = [
    p4(0, 0, 0), // default
    p4(ip4(10, 0, 0, 0), 8, 1),
    p4(ip4(10, 1, 0, 0), 16, 2),
    p4(ip4(10, 1, 2, 0), 24, 3),
    p4(ip4(10, 1, 2, 255), 32, 4),
    p4(ip4(10, 255, 0, 0), 16, 5), // ends where 10/8 ends
    p4(ip4(255, 255, 255, 255), 32, 6), // the very last address
  ];
  const lpm = new Lpm4(table);

  it("longest prefix wins, and the enclosing prefix resumes after a nested one", () => {
    expect(lpm.lookup(ip4(9, 9, 9, 9))).toBe(0);
    expect(lpm.lookup(ip4(10, 0, 0, 1))).toBe(1);
    expect(lpm.lookup(ip4(10, 1, 0, 1))).toBe(2);
    expect(lpm.lookup(ip4(10, 1, 2, 3))).toBe(3);
    expect(lpm.lookup(ip4(10, 1, 2, 255))).toBe(4);
    expect(lpm.lookup(ip4(10, 1, 3, 0))).toBe(2);
    expect(lpm.lookup(ip4(10, 2, 0, 0))).toBe(1);
    expect(lpm.lookup(ip4(10, 255, 255, 255))).toBe(5);
    expect(lpm.lookup(ip4(11, 0, 0, 0))).toBe(0);
    expect(lpm.lookup(ip4(255, 255, 255, 254))).toBe(0);
    expect(lpm.lookup(ip4(255, 255, 255, 255))).toBe(6);
  });
  it("accepts addresses as int32 or uint32", () => {
    expect(lpm.lookup(ip4(255, 255, 255, 255) | 0)).toBe(6);
    expect(lpm.lookup(-1)).toBe(6);
    expect(lpm.lookup(ip4(192, 0, 2, 1) | 0)).toBe(0);
  });
  it("no prefix: -1 everywhere; intervals stay minimal", () => {
    const empty = new Lpm4([]);
    expect(empty.lookup(0)).toBe(-1);
    expect(empty.lookup(-1)).toBe(-1);
    expect(compileIntervals([p4(ip4(10, 0, 0, 0), 8, 7)], 32)).toEqual({
      starts: [0n, BigInt(ip4(10, 0, 0, 0)), BigInt(ip4(11, 0, 0, 0))],
      routes: [-1, 7, -1],
    });
  });
  it("agrees with a brute-force longest match on random tables", () => {
    fc.assert(
      fc.property(prefixes(32), fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 20, maxLength: 20 }), (ps, addrs) => {
        const l = new Lpm4(ps);
        // Probe random addresses and every prefix's first and last address and their neighbours.
        const probes = [...addrs.map(BigInt)];
        for (const p of ps) {
          const end = p.start + (1n << BigInt(32 - p.prefixLen)) - 1n;
          probes.push(p.start, end, p.start - 1n, end + 1n);
        }
        for (const a of probes) {
          if (a < 0n || a > 0xffffffffn) continue;
          expect(l.lookup(Number(a))).toBe(naive(ps, a, 32));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("IPv6", () => {
  const w = (a: bigint): [number, number, number, number] => [
    Number((a >> 96n) & 0xffffffffn), Number((a >> 64n) & 0xffffffffn), Number((a >> 32n) & 0xffffffffn), Number(a & 0xffffffffn),
  ];
  it("agrees with a brute-force longest match on random tables (words as uint32 or int32)", () => {
    fc.assert(
      fc.property(prefixes(128), fc.array(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), { minLength: 20, maxLength: 20 }), (ps, addrs) => {
        const l = new Lpm6(ps);
        const probes = [...addrs];
        for (const p of ps) {
          const end = p.start + (1n << BigInt(128 - p.prefixLen)) - 1n;
          probes.push(p.start, end, p.start - 1n, end + 1n);
        }
        for (const a of probes) {
          if (a < 0n || a >= 1n << 128n) continue;
          const [w0, w1, w2, w3] = w(a);
          const want = naive(ps, a, 128);
          expect(l.lookup(w0, w1, w2, w3)).toBe(want);
          expect(l.lookup(w0 | 0, w1 | 0, w2 | 0, w3 | 0)).toBe(want);
        }
      }),
      { numRuns: 300 },
    );
  });
  it("distinguishes addresses that differ only in the last word", () => {
    const base = 0x20010db8n << 96n;
    const l = new Lpm6([{ start: base, prefixLen: 32, route: 0 }, { start: base | 0x80000000n, prefixLen: 128, route: 1 }]);
    expect(l.lookup(0x20010db8, 0, 0, 0x80000000)).toBe(1);
    expect(l.lookup(0x20010db8, 0, 0, 0x7fffffff)).toBe(0);
    expect(l.lookup(0x20010db8, 0, 0, 0x80000001)).toBe(0);
    expect(l.lookup(0x20010db9, 0, 0, 0)).toBe(-1);
  });
});
