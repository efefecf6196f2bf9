// Internet checksum (RFC 1071) and its incremental update (RFC 1624), checked
// against byte fixtures, the RFC examples, and the builder's independent
// RFC 1071 loop (`inetChecksum`).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  checksum,
  csumReplace16,
  csumReplace32,
  fold,
  pseudoSumV4,
  pseudoSumV6,
  sumWords,
  udpCsumReplace16,
  udpCsumReplace32,
} from "../../src/packet/checksum.js";
import { fromHex, inetChecksum, ipv4Tcp, ipv4Udp, ipv6Tcp, ipv6Udp } from "../helpers/packets.js";
import { u16, u32 } from "./arb.js";

const u16at = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;

describe("sumWords / fold / checksum", () => {
  it("RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7", () => {
    const b = fromHex("00 01 f2 03 f4 f5 f6 f7");
    expect(sumWords(b, 0, 8, 0)).toBe(0x2ddf0);
    expect(fold(0x2ddf0)).toBe(0xddf2);
    expect(checksum(b, 0, 8)).toBe(0x220d);
  });

  it("pads an odd tail with a zero byte and honours the offset", () => {
    const b = fromHex("ff 12 34 56 ff");
    expect(sumWords(b, 1, 3, 0)).toBe(0x1234 + 0x5600);
    expect(sumWords(b, 1, 1, 7)).toBe(7 + 0x1200);
    expect(sumWords(b, 1, 0, 9)).toBe(9);
    expect(checksum(b, 1, 3)).toBe(~(0x1234 + 0x5600) & 0xffff);
    // Lengths that exercise both the 4-byte and the 2-byte loop.
    for (let n = 0; n <= 9; n++) {
      const d = Uint8Array.from({ length: n }, (_, i) => 0x11 * (i + 1));
      expect(checksum(d, 0, n), `len ${n}`).toBe(inetChecksum(d));
    }
  });

  it("folds with end-around carry, including sums beyond 2^32", () => {
    expect(fold(0)).toBe(0);
    expect(fold(0xffff)).toBe(0xffff);
    expect(fold(0x10000)).toBe(1);
    expect(fold(0x1ffff)).toBe(1); // 0xffff + 1 = 0x10000 -> 0x0001
    expect(fold(0x1fffe)).toBe(0xffff);
    // 64 KiB of 0xff bytes, and a sum past 2^32.
    const big = new Uint8Array(65536).fill(0xff);
    expect(fold(sumWords(big, 0, big.length, 0))).toBe(0xffff);
    const s = 0x1_2345_6789;
    const ref = Number(BigInt(s) % 0xffffn) || 0xffff;
    expect(fold(s)).toBe(ref);
  });

  it("computes the classic IPv4 header checksum (b861) and verifies to zero", () => {
    const h = fromHex("45 00 00 73 00 00 40 00 40 11 00 00 c0 a8 00 01 c0 a8 00 c7");
    expect(checksum(h, 0, 20)).toBe(0xb861);
    h[10] = 0xb8;
    h[11] = 0x61;
    expect(checksum(h, 0, 20)).toBe(0);
    expect(fold(sumWords(h, 0, 20, 0))).toBe(0xffff);
  });

  it("checksum of all-zero data is 0xffff (the one representation full computation gives for zero)", () => {
    expect(checksum(new Uint8Array(8), 0, 8)).toBe(0xffff);
    expect(checksum(new Uint8Array(0), 0, 0)).toBe(0xffff);
  });

  it("takes an initial sum", () => {
    const b = fromHex("12 34");
    expect(checksum(b, 0, 2, 0x0001)).toBe(~0x1235 & 0xffff);
  });
});

describe("pseudo-header sums", () => {
  it("IPv4 (RFC 793): src, dst, proto, length — the segment then verifies", () => {
    const p = ipv4Tcp({ src: "192.0.2.1", dst: "198.51.100.7", sport: 1, dport: 2, payload: "xyz" });
    const l4 = p.length - 20;
    const ps = pseudoSumV4(p, 0, 6, l4);
    expect(ps).toBe(0xc000 + 0x0201 + 0xc633 + 0x6407 + 6 + l4);
    expect(fold(sumWords(p, 20, l4, ps))).toBe(0xffff);
    const u = ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", payload: "odd" });
    expect(fold(sumWords(u, 20, u.length - 20, pseudoSumV4(u, 0, 17, u.length - 20)))).toBe(0xffff);
  });

  it("IPv6 (RFC 8200 §8.1): src, dst, 32-bit length, next header", () => {
    const p = ipv6Tcp({ src: "2001:db8::1", dst: "2001:db8::2", payload: "abcde" });
    const l4 = p.length - 40;
    const ps = pseudoSumV6(p, 0, 6, l4);
    expect(ps).toBe(0x2001 + 0x0db8 + 1 + 0x2001 + 0x0db8 + 2 + 6 + l4);
    expect(fold(sumWords(p, 40, l4, ps))).toBe(0xffff);
    const u = ipv6Udp({ src: "fe80::1", dst: "ff02::fb", payload: "q" });
    expect(fold(sumWords(u, 40, u.length - 40, pseudoSumV6(u, 0, 17, u.length - 40)))).toBe(0xffff);
  });

  it("IPv6 length above 16 bits is split into two words", () => {
    const b = new Uint8Array(40);
    expect(pseudoSumV6(b, 0, 17, 0x12345)).toBe(17 + 0x1 + 0x2345);
  });

  it("works at a non-zero IP offset", () => {
    const p = ipv4Tcp({ src: "10.1.1.1", dst: "10.2.2.2" });
    const buf = new Uint8Array(14 + p.length);
    buf.set(p, 14);
    expect(pseudoSumV4(buf, 14, 6, 20)).toBe(pseudoSumV4(p, 0, 6, 20));
  });
});

describe("RFC 1624 incremental update: fixtures", () => {
  it("RFC 1624 §4 example: eqn. 3 gives 0x0000 where eqn. 2 gave -0 (0xffff)", () => {
    // Sum of the other words 0xcd7a; m = 0x5555 -> m' = 0x3285. HC = ~(0xcd7a + 0x5555) = 0xdd2f.
    expect(csumReplace16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
    // And that equals a full recomputation over the same words.
    expect(checksum(fromHex("cd 7a 32 85"), 0, 4)).toBe(0x0000);
  });

  it("no change leaves the checksum alone; a change and its reverse round-trip", () => {
    expect(csumReplace16(0x1234, 0xabcd, 0xabcd)).toBe(0x1234);
    expect(csumReplace32(0x1234, 0xdeadbeef, 0xdeadbeef)).toBe(0x1234);
    expect(csumReplace16(csumReplace16(0x1234, 1, 2), 2, 1)).toBe(0x1234);
    expect(csumReplace32(csumReplace32(0x4321, 0x0a000001, 0xc0a80001), 0xc0a80001, 0x0a000001)).toBe(0x4321);
  });

  it("csumReplace32 on an IPv4 header address matches a full recomputation", () => {
    const h = fromHex("45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7");
    const c = csumReplace32(0xb861, 0xc0a80001, 0x0a000001);
    h.set([10, 0, 0, 1], 12);
    h[10] = 0;
    h[11] = 0;
    expect(c).toBe(inetChecksum(h));
  });

  it("the only disagreement with a full recomputation: data that becomes all zero", () => {
    // Full computation of all-zero data gives 0xffff; eqn. 3 gives 0x0000
    // (both are "zero" in one's complement, and a receiver accepts either).
    const c = checksum(fromHex("00 00 12 34"), 0, 4);
    expect(csumReplace16(c, 0x1234, 0)).toBe(0x0000);
    expect(checksum(fromHex("00 00 00 00"), 0, 4)).toBe(0xffff);
    expect(csumReplace32(checksum(fromHex("12 34 56 78"), 0, 4), 0x12345678, 0)).toBe(0x0000);
  });
});

describe("udpCsumReplace: fixtures", () => {
  it("a zero UDP checksum (none) stays zero", () => {
    expect(udpCsumReplace16(0, 0x1234, 0x4321)).toBe(0);
    expect(udpCsumReplace32(0, 0x0a000001, 0x0a000002)).toBe(0);
  });

  it("a computed zero is sent as 0xffff (RFC 768)", () => {
    expect(csumReplace16(0xdd2f, 0x5555, 0x3285)).toBe(0);
    expect(udpCsumReplace16(0xdd2f, 0x5555, 0x3285)).toBe(0xffff);
    // A 32-bit change 0 -> c makes eqn. 3 give 0: ~c + ~0x0000 + ~0x0000 + 0x0000 + c folds to 0xffff.
    expect(csumReplace32(0x1357, 0, 0x1357)).toBe(0);
    expect(udpCsumReplace32(0x1357, 0, 0x1357)).toBe(0xffff);
  });

  it("otherwise equals the plain update", () => {
    expect(udpCsumReplace16(0x1234, 1, 2)).toBe(csumReplace16(0x1234, 1, 2));
    expect(udpCsumReplace32(0x1234, 1, 2)).toBe(csumReplace32(0x1234, 1, 2));
  });
});

// ---------------------------------------------------------------- properties

/** Bytes biased towards 0x00 and 0xff so that the one's-complement corner cases occur. */
const biasedByte = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.constant(0xff) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xff }) },
);
const biased16 = fc.oneof(fc.constant(0), fc.constant(0xffff), u16);
const biased32 = fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.constant(0xffff0000), u32);
const evenData = (minWords: number) =>
  fc.array(biasedByte, { minLength: minWords * 2, maxLength: 64 }).filter((a) => a.length % 2 === 0).map((a) => Uint8Array.from(a));

describe("RFC 1624 incremental update: properties", () => {
  /*
   * The exact relation, found by the properties below and by reasoning:
   * eqn. 3 computes ~(x) where x is a non-zero end-around-carry sum, so it
   * never yields 0xffff; a full computation yields 0xffff only for all-zero
   * data. Both are congruent mod 0xffff, and every non-zero folded sum lies in
   * 1..0xffff, so they are equal except when the new data is all zero: then
   * the incremental value is 0x0000 and the full one 0xffff.
   */
  it("csumReplace16 equals a full recomputation, except 0x0000 vs 0xffff for all-zero data", () => {
    fc.assert(
      fc.property(evenData(1), fc.nat(), biased16, (data, at, nw) => {
        const off = (at % (data.length / 2)) * 2;
        const before = inetChecksum(data);
        if (checksum(data, 0, data.length) !== before) return false;
        const old = u16at(data, off);
        data[off] = nw >>> 8;
        data[off + 1] = nw & 0xff;
        const inc = csumReplace16(before, old, nw);
        const full = inetChecksum(data);
        if (inc === 0xffff) return false; // eqn. 3 never produces 0xffff
        return data.every((b) => b === 0) ? inc === 0x0000 && full === 0xffff : inc === full;
      }),
      { numRuns: 2000 },
    );
  });

  it("csumReplace32 (at any even offset, not only 4-aligned) obeys the same relation", () => {
    fc.assert(
      fc.property(evenData(2), fc.nat(), biased32, (data, at, nv) => {
        const off = (at % (data.length / 2 - 1)) * 2;
        const before = inetChecksum(data);
        const old = ((u16at(data, off) << 16) | u16at(data, off + 2)) >>> 0;
        data.set([nv >>> 24, (nv >>> 16) & 0xff, (nv >>> 8) & 0xff, nv & 0xff], off);
        const inc = csumReplace32(before, old, nv);
        const full = inetChecksum(data);
        return data.every((b) => b === 0) ? inc === 0x0000 && full === 0xffff : inc === full;
      }),
      { numRuns: 2000 },
    );
  });

  it("a checksum field inside the data still verifies after an incremental update", () => {
    // As in a real header, where the checksum covers itself.
    fc.assert(
      fc.property(evenData(2), fc.nat(), fc.nat(), biased16, (data, ca, at, nw) => {
        const words = data.length / 2;
        const csOff = (ca % words) * 2;
        data[csOff] = 0;
        data[csOff + 1] = 0;
        const c = inetChecksum(data);
        data[csOff] = c >>> 8;
        data[csOff + 1] = c & 0xff;
        let off = (at % words) * 2;
        if (off === csOff) off = (off + 2) % data.length;
        if (off === csOff) return; // a single word: nothing else to change
        const old = u16at(data, off);
        data[off] = nw >>> 8;
        data[off + 1] = nw & 0xff;
        const nc = csumReplace16(u16at(data, csOff), old, nw);
        data[csOff] = nc >>> 8;
        data[csOff + 1] = nc & 0xff;
        const restIsZero = data.every((b, i) => b === 0 || i === csOff || i === csOff + 1);
        if (restIsZero) {
          // The same corner case: the right checksum of all-zero data is 0xffff,
          // eqn. 3 gives 0x0000, and the packet no longer verifies. Real headers
          // never get here (IPv4 has its version nibble, TCP/UDP/ICMPv6 the
          // protocol number in the pseudo-header).
          expect(nc).toBe(0);
        } else {
          expect(fold(sumWords(data, 0, data.length, 0))).toBe(0xffff);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("udpCsumReplace* never turns zero into non-zero nor non-zero into zero", () => {
    fc.assert(
      fc.property(fc.oneof(fc.constant(0), fc.constant(0xffff), u16), biased32, biased32, (check, a, b) => {
        const r16 = udpCsumReplace16(check, a & 0xffff, b & 0xffff);
        const r32 = udpCsumReplace32(check, a, b);
        if (check === 0) {
          expect(r16).toBe(0);
          expect(r32).toBe(0);
        } else {
          expect(r16).not.toBe(0);
          expect(r32).not.toBe(0);
          // Same one's-complement value as the plain update.
          expect(r16).toBe(csumReplace16(check, a & 0xffff, b & 0xffff) || 0xffff);
          expect(r32).toBe(csumReplace32(check, a, b) || 0xffff);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
