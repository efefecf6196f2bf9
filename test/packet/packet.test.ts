// Packet.parse (PARSE codes per protocol and family), l4ChecksumValid
// (nf_checksum semantics), QuotedPacket (the packet inside an ICMP error),
// and the "never throws" fuzz properties for the whole packet layer.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { AF, IPPROTO, protoName } from "../../src/packet/constants.js";
import { PARSE, PARSE_NAMES, Packet, QuotedPacket } from "../../src/packet/packet.js";
import {
  fragmentV4,
  fragmentV6,
  ipv4Generic,
  ipv4Icmp,
  ipv4IcmpError,
  ipv4Tcp,
  ipv4Udp,
  ipv6Generic,
  ipv6Icmp,
  ipv6IcmpError,
  ipv6Tcp,
  ipv6Udp,
} from "../helpers/packets.js";
import { FUZZ_RUNS, anyPacket, fuzzInput, fuzzWindow, icmp4, icmp6, icmpErr4, icmpErr6, tcp4, tcp6, udp4, udp6 } from "./arb.js";

const V4 = { src: "10.0.0.1", dst: "10.0.0.2" } as const;
const V6 = { src: "2001:db8::1", dst: "2001:db8::2" } as const;

const pkt = new Packet();
function parse(b: Uint8Array, off = 0, len = b.length - off): number {
  return pkt.parse(b, off, len);
}

describe("PARSE codes", () => {
  it("are small integers with names", () => {
    expect(PARSE).toEqual({ OK: 0, BAD_L3: 1, FRAGMENT: 2, BAD_L4: 3 });
    expect(PARSE_NAMES[PARSE.BAD_L4]).toBe("bad-l4");
    expect(protoName(IPPROTO.GRE)).toBe("gre");
    expect(protoName(250)).toBe("unknown");
  });
});

describe("Packet.parse: OK", () => {
  it("TCP over IPv4 and IPv6 (with extension headers)", () => {
    const p4 = ipv4Tcp({ ...V4, payload: "abc" });
    expect(parse(p4)).toBe(PARSE.OK);
    expect([pkt.family, pkt.proto, pkt.off, pkt.length, pkt.l4Offset, pkt.l4Length, pkt.icmpError]).toEqual([AF.INET, 6, 0, 43, 20, 23, false]);
    expect(pkt.tcp.payloadLength).toBe(3);
    const p6 = ipv6Tcp({ ...V6, ext: [{ type: 0 }, { type: 60 }], payload: "abc" });
    expect(parse(p6)).toBe(PARSE.OK);
    expect([pkt.family, pkt.proto, pkt.length, pkt.l4Offset, pkt.l4Length]).toEqual([AF.INET6, 6, 79, 56, 23]);
  });

  it("UDP, ICMP echo, ICMPv6 echo", () => {
    expect(parse(ipv4Udp({ ...V4, payload: "x" }))).toBe(PARSE.OK);
    expect([pkt.proto, pkt.udp.length]).toEqual([17, 9]);
    expect(parse(ipv6Udp({ ...V6, payload: "x" }))).toBe(PARSE.OK);
    expect([pkt.family, pkt.proto, pkt.udp.length]).toEqual([AF.INET6, 17, 9]);
    expect(parse(ipv4Icmp({ ...V4, id: 7 }))).toBe(PARSE.OK);
    expect([pkt.proto, pkt.icmp.type, pkt.icmp.id, pkt.icmpError]).toEqual([1, 8, 7, false]);
    expect(parse(ipv6Icmp({ ...V6, id: 9 }))).toBe(PARSE.OK);
    expect([pkt.proto, pkt.icmp.type, pkt.icmp.id, pkt.icmpError]).toEqual([58, 128, 9, false]);
  });

  it("generic protocols (GRE, SCTP, ESP) with any payload, even empty", () => {
    for (const proto of [47, 132, 50, 41, 2]) {
      expect(parse(ipv4Generic({ ...V4, proto }))).toBe(PARSE.OK);
      expect([pkt.proto, pkt.l4Length]).toEqual([proto, 0]);
      expect(parse(ipv6Generic({ ...V6, proto, payload: "1" }))).toBe(PARSE.OK);
      expect([pkt.proto, pkt.l4Length]).toEqual([proto, 1]);
    }
  });

  it("ICMP over IPv6 and ICMPv6 over IPv4 are generic: OK even when shorter than 8 bytes", () => {
    expect(parse(ipv6Generic({ ...V6, proto: 1, payload: Uint8Array.of(3, 0) }))).toBe(PARSE.OK);
    expect([pkt.family, pkt.proto, pkt.icmpError]).toEqual([AF.INET6, 1, false]);
    expect(parse(ipv4Generic({ ...V4, proto: 58, payload: Uint8Array.of(1, 0) }))).toBe(PARSE.OK);
    expect([pkt.family, pkt.proto, pkt.icmpError]).toEqual([AF.INET, 58, false]);
  });

  it("a DF packet and an IPv6 atomic fragment are not fragments", () => {
    expect(parse(ipv4Tcp({ ...V4, df: true }))).toBe(PARSE.OK);
    expect(parse(ipv6Tcp({ ...V6, ext: [{ type: 44, fragId: 5 }] }))).toBe(PARSE.OK);
    expect(pkt.proto).toBe(6);
    expect(pkt.ip6.hasFragmentHeader).toBe(true);
  });

  it("at a non-zero offset, with trailing padding", () => {
    const p = ipv4Udp({ ...V4, payload: "pad me" });
    const b = new Uint8Array(14 + p.length + 10).fill(0x5a);
    b.set(p, 14);
    expect(parse(b, 14, p.length + 10)).toBe(PARSE.OK);
    expect([pkt.off, pkt.length, pkt.l4Offset, pkt.l4Length]).toEqual([14, p.length, 34, p.length - 20]);
    expect(pkt.l4ChecksumValid()).toBe(true);
  });
});

describe("Packet.parse: icmpError", () => {
  it("ICMP: set for types 3, 4, 5, 11, 12 only", () => {
    for (let type = 0; type < 256; type++) {
      expect(parse(ipv4Icmp({ ...V4, type }))).toBe(PARSE.OK);
      expect(pkt.icmpError, `type ${type}`).toBe([3, 4, 5, 11, 12].includes(type));
    }
  });

  it("ICMPv6: set for the types below 128", () => {
    for (let type = 0; type < 256; type++) {
      expect(parse(ipv6Icmp({ ...V6, type }))).toBe(PARSE.OK);
      expect(pkt.icmpError, `type ${type}`).toBe(type < 128);
    }
  });

  it("cleared by the next parse", () => {
    const inner = ipv4Tcp(V4);
    expect(parse(ipv4IcmpError({ ...V4, type: 3, code: 1, inner }))).toBe(PARSE.OK);
    expect(pkt.icmpError).toBe(true);
    expect(parse(ipv4Tcp(V4))).toBe(PARSE.OK);
    expect(pkt.icmpError).toBe(false);
    expect(parse(ipv4IcmpError({ ...V4, type: 3, code: 1, inner }))).toBe(PARSE.OK);
    expect(parse(new Uint8Array(0))).toBe(PARSE.BAD_L3);
    expect([pkt.icmpError, pkt.family]).toEqual([false, 0]);
  });
});

describe("Packet.parse: BAD_L3", () => {
  it("empty, unknown version, truncated headers", () => {
    expect(parse(new Uint8Array(0))).toBe(PARSE.BAD_L3);
    expect(parse(ipv4Tcp(V4), 0, 0)).toBe(PARSE.BAD_L3);
    const p4 = ipv4Tcp(V4);
    for (let len = 1; len < p4.length; len++) expect(parse(p4, 0, len), `v4 len ${len}`).toBe(PARSE.BAD_L3);
    const p6 = ipv6Udp(V6);
    for (let len = 1; len < p6.length; len++) expect(parse(p6, 0, len), `v6 len ${len}`).toBe(PARSE.BAD_L3);
    for (const first of [0x00, 0x55, 0x75, 0xf5]) {
      const b = ipv4Tcp(V4);
      b[0] = first;
      expect(parse(b)).toBe(PARSE.BAD_L3);
    }
    expect(pkt.family).toBe(0);
  });

  it("a window beyond the buffer", () => {
    const p = ipv4Tcp(V4);
    expect(parse(p, 0, p.length + 1)).toBe(PARSE.BAD_L3);
    expect(parse(p, p.length, 20)).toBe(PARSE.BAD_L3);
    expect(parse(p, -1, 20)).toBe(PARSE.BAD_L3);
  });

  it("a malformed IPv6 extension chain", () => {
    const b = ipv6Tcp({ ...V6, ext: [{ type: 60 }, { type: 0 }] });
    expect(parse(b)).toBe(PARSE.BAD_L3);
  });
});

describe("Packet.parse: FRAGMENT", () => {
  it("every IPv4 fragment (first, middle, last)", () => {
    const frags = fragmentV4(ipv4Udp({ ...V4, payload: new Uint8Array(40) }), 16);
    expect(frags.length).toBe(3);
    for (const f of frags) {
      expect(parse(f)).toBe(PARSE.FRAGMENT);
      expect([pkt.family, pkt.proto]).toEqual([AF.INET, 17]);
    }
  });

  it("every IPv6 fragment; a non-first one names the fragment header's next header", () => {
    const frags = fragmentV6(ipv6Tcp({ ...V6, ext: [{ type: 0 }], payload: new Uint8Array(40) }), 16, 0x1234);
    expect(frags.length).toBe(4);
    for (const f of frags) {
      expect(parse(f)).toBe(PARSE.FRAGMENT);
      expect([pkt.family, pkt.proto]).toEqual([AF.INET6, 6]);
      expect(pkt.ip6.fragmentId).toBe(0x1234);
    }
  });

  it("a first fragment without the whole extension-header chain is BAD_L3 (RFC 8200 §4.5, RFC 7112)", () => {
    // Fragmentable part: AH (8 bytes) + dest options (8 bytes) + UDP; 8-byte fragments cut the chain.
    const whole = ipv6Udp({ ...V6, ext: [{ type: 51, data: new Uint8Array(6) }, { type: 60 }], payload: new Uint8Array(8) });
    const frags = fragmentV6(whole, 8, 7);
    expect(parse(frags[0]!)).toBe(PARSE.BAD_L3);
    for (const f of frags.slice(1)) expect(parse(f)).toBe(PARSE.FRAGMENT);
    // With the chain and the UDP header in the first fragment it is a fragment.
    expect(parse(fragmentV6(whole, 24, 7)[0]!)).toBe(PARSE.FRAGMENT);
  });

  it("fragments are reported before the L4 header is looked at", () => {
    // A first fragment holding only 8 bytes of a TCP header.
    const [first] = fragmentV4(ipv4Tcp({ ...V4, payload: new Uint8Array(16) }), 8);
    expect(parse(first!)).toBe(PARSE.FRAGMENT);
  });
});

describe("Packet.parse: BAD_L4", () => {
  it("TCP: truncated header, bad data offset", () => {
    for (let n = 0; n < 20; n++) expect(parse(ipv4Generic({ ...V4, proto: 6, payload: new Uint8Array(n).fill(0x50) })), `len ${n}`).toBe(PARSE.BAD_L4);
    const b = ipv4Tcp(V4);
    b[32] = 0x40;
    expect(parse(b)).toBe(PARSE.BAD_L4);
    b[32] = 0x60;
    expect(parse(b)).toBe(PARSE.BAD_L4);
    const b6 = ipv6Tcp(V6);
    b6[52] = 0x10;
    expect(parse(b6)).toBe(PARSE.BAD_L4);
  });

  it("UDP: truncated header, Length below 8 or beyond the datagram", () => {
    for (let n = 0; n < 8; n++) expect(parse(ipv6Generic({ ...V6, proto: 17, payload: new Uint8Array(n) }))).toBe(PARSE.BAD_L4);
    const b = ipv4Udp({ ...V4, payload: "abc" });
    b[25] = 7;
    expect(parse(b)).toBe(PARSE.BAD_L4);
    b[25] = 12;
    expect(parse(b)).toBe(PARSE.BAD_L4);
    b[25] = 10; // shorter than the datagram: fine
    expect(parse(b)).toBe(PARSE.OK);
  });

  it("ICMP and ICMPv6 shorter than 8 bytes", () => {
    for (let n = 0; n < 8; n++) {
      expect(parse(ipv4Generic({ ...V4, proto: 1, payload: new Uint8Array(n) }))).toBe(PARSE.BAD_L4);
      expect(parse(ipv6Generic({ ...V6, proto: 58, payload: new Uint8Array(n) }))).toBe(PARSE.BAD_L4);
    }
  });
});

describe("Packet.l4ChecksumValid", () => {
  const fixtures: [string, Uint8Array][] = [
    ["tcp4", ipv4Tcp({ ...V4, flags: "PA", seq: 5, payload: "hello" })],
    ["tcp6", ipv6Tcp({ ...V6, ext: [{ type: 0 }], flags: "S", options: { mss: 1440 } })],
    ["udp4", ipv4Udp({ ...V4, payload: "odd" })],
    ["udp6", ipv6Udp({ ...V6, payload: "even" })],
    ["icmp4", ipv4Icmp({ ...V4, payload: "ping" })],
    ["icmp6", ipv6Icmp({ ...V6, payload: "ping6" })],
    ["icmp4 error", ipv4IcmpError({ ...V4, type: 11, code: 0, inner: ipv4Tcp(V4) })],
    ["icmp6 error", ipv6IcmpError({ ...V6, type: 1, code: 3, inner: ipv6Udp(V6) })],
  ];

  it("true on builder packets", () => {
    for (const [name, b] of fixtures) {
      expect(parse(b), name).toBe(PARSE.OK);
      expect(pkt.l4ChecksumValid(), name).toBe(true);
    }
  });

  it("false after flipping any single bit of the L4 data or the pseudo-header addresses", () => {
    for (const [name, orig] of fixtures) {
      expect(parse(orig)).toBe(PARSE.OK);
      const l4 = pkt.l4Offset, end = pkt.l4Offset + pkt.l4Length;
      const v6 = pkt.family === AF.INET6;
      const proto = pkt.proto;
      const addrs: [number, number] = v6 ? [8, 40] : [12, 20];
      const at: number[] = [];
      for (let i = l4; i < end; i++) at.push(i);
      if (proto !== IPPROTO.ICMP) for (let i = addrs[0]; i < addrs[1]; i++) at.push(i); // ICMPv4 has no pseudo-header
      for (const i of at) {
        for (let bit = 0; bit < 8; bit++) {
          const b = orig.slice();
          b[i]! ^= 1 << bit;
          if (parse(b) !== PARSE.OK) continue; // a flipped length or data offset: not a checksum question
          const zeroUdp4 = proto === IPPROTO.UDP && !v6 && b[l4 + 6] === 0 && b[l4 + 7] === 0;
          expect(pkt.l4ChecksumValid(), `${name} byte ${i} bit ${bit}`).toBe(zeroUdp4);
        }
      }
    }
  });

  it("UDP zero checksum: none over IPv4 (valid), invalid over IPv6 (RFC 8200 §8.1)", () => {
    expect(parse(ipv4Udp({ ...V4, zeroChecksum: true, payload: "x" }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(true);
    expect(parse(ipv6Udp({ ...V6, zeroChecksum: true, payload: "x" }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(false);
  });

  it("bad checksums from the builder", () => {
    expect(parse(ipv4Tcp({ ...V4, badChecksum: true }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(false);
    expect(parse(ipv6Udp({ ...V6, badChecksum: true }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(false);
    expect(parse(ipv6Icmp({ ...V6, badChecksum: true }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(false);
  });

  it("generic protocols, ICMP over IPv6 and ICMPv6 over IPv4 pass", () => {
    expect(parse(ipv4Generic({ ...V4, proto: 47, payload: "\x00\x00\x08\x00" }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(true);
    expect(parse(ipv6Generic({ ...V6, proto: 1, payload: new Uint8Array(8) }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(true);
    expect(parse(ipv4Generic({ ...V4, proto: 58, payload: new Uint8Array(8) }))).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(true);
  });

  it("ignores padding after the datagram", () => {
    const p = ipv4Tcp({ ...V4, flags: "A" });
    const b = new Uint8Array(p.length + 6).fill(0xff);
    b.set(p);
    expect(parse(b)).toBe(PARSE.OK);
    expect(pkt.l4Length).toBe(20);
    expect(pkt.l4ChecksumValid()).toBe(true);
  });

  it("property: true on every random builder packet, false after any one bit flip", () => {
    fc.assert(
      fc.property(fc.oneof(tcp4, tcp6, udp4, udp6, icmp4, icmp6, icmpErr4, icmpErr6), fc.nat(), fc.nat(7), (orig, at, bit) => {
        expect(parse(orig)).toBe(PARSE.OK);
        expect(pkt.l4ChecksumValid()).toBe(true);
        const { l4Offset, l4Length, proto, family } = pkt;
        if (l4Length === 0) return;
        const b = orig.slice();
        const i = l4Offset + (at % l4Length);
        b[i]! ^= 1 << bit;
        if (parse(b) !== PARSE.OK) return;
        // A UDP checksum of 0 over IPv4 means "none": skip packets sent that way, and
        // expect "valid" where the flip itself produced 0 (from 0x0001, 0x8000, ...).
        if (proto === IPPROTO.UDP && family === AF.INET && (orig[l4Offset + 6]! | orig[l4Offset + 7]!) === 0) return;
        const udpCsumOff = proto === IPPROTO.UDP && (b[l4Offset + 6]! | b[l4Offset + 7]!) === 0;
        expect(pkt.l4ChecksumValid()).toBe(udpCsumOff && family === AF.INET);
      }),
      { numRuns: 500 },
    );
  });
});

describe("QuotedPacket", () => {
  const q = new QuotedPacket();

  it("an ICMP error quoting IPv4 header + 8 bytes parses", () => {
    const inner = ipv4Tcp({ ...V4, sport: 1234, dport: 80, payload: "lots of data" });
    const b = ipv4IcmpError({ src: "192.0.2.1", dst: "10.0.0.1", type: 3, code: 3, inner });
    expect(parse(b)).toBe(PARSE.OK);
    expect(pkt.icmpError).toBe(true);
    expect(q.parse(b, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET)).toBe(true);
    expect([q.family, q.proto, q.off, q.l4Offset, q.l4Length]).toEqual([AF.INET, 6, 28, 48, 8]);
    expect(q.ip4.totalLength).toBe(inner.length); // the quoted Total Length, beyond the quote
  });

  it("with IPv4 options in the quoted header", () => {
    const inner = ipv4Udp({ ...V4, ipOptions: Uint8Array.of(0x94, 4, 0, 0), payload: "x" });
    const b = ipv4IcmpError({ ...V4, type: 11, code: 0, inner });
    expect(parse(b)).toBe(PARSE.OK);
    expect(q.parse(b, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET)).toBe(true);
    expect([q.proto, q.l4Offset, q.l4Length]).toEqual([17, 28 + 24, 8]);
    // 23 bytes of a 24-byte header: not usable.
    const short = ipv4IcmpError({ ...V4, type: 11, code: 0, inner, quoteBytes: 23 });
    expect(parse(short)).toBe(PARSE.OK);
    expect(q.parse(short, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET)).toBe(false);
  });

  it("a quote shorter than the inner IPv4 header fails; header-only quotes parse with no L4 bytes", () => {
    const inner = ipv4Tcp(V4);
    for (let n = 0; n <= 28; n++) {
      const b = ipv4IcmpError({ ...V4, type: 3, code: 1, inner, quoteBytes: n });
      expect(parse(b)).toBe(PARSE.OK);
      expect(q.parse(b, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET), `quote ${n}`).toBe(n >= 20);
      if (n >= 20) expect(q.l4Length).toBe(n - 20);
    }
  });

  it("a quoted non-first fragment fails; a quoted first fragment parses", () => {
    const frags = fragmentV4(ipv4Udp({ ...V4, payload: new Uint8Array(32) }), 16);
    const first = ipv4IcmpError({ ...V4, type: 3, code: 1, inner: frags[0]! });
    expect(parse(first)).toBe(PARSE.OK);
    expect(q.parse(first, 28, pkt.icmp.innerLength, AF.INET)).toBe(true);
    const later = ipv4IcmpError({ ...V4, type: 3, code: 1, inner: frags[1]! });
    expect(parse(later)).toBe(PARSE.OK);
    expect(q.parse(later, 28, pkt.icmp.innerLength, AF.INET)).toBe(false);
    expect(q.family).toBe(0);
  });

  it("ICMPv6 errors: whole quote, header-only quote, truncated chain, non-first fragment", () => {
    const inner = ipv6Udp({ ...V6, ext: [{ type: 60 }], payload: "x" });
    const b = ipv6IcmpError({ src: "2001:db8::fe", dst: V6.src, type: 1, code: 0, inner });
    expect(parse(b)).toBe(PARSE.OK);
    expect(pkt.icmpError).toBe(true);
    expect(q.parse(b, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET6)).toBe(true);
    expect([q.family, q.proto, q.off, q.l4Offset, q.l4Length]).toEqual([AF.INET6, 17, 48, 48 + 48, 9]);
    for (let n = 0; n <= 56; n++) {
      const e = ipv6IcmpError({ ...V6, type: 3, code: 0, inner, quoteBytes: n });
      expect(parse(e)).toBe(PARSE.OK);
      expect(q.parse(e, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET6), `quote ${n}`).toBe(n >= 48);
    }
    const frags = fragmentV6(ipv6Tcp({ ...V6, payload: new Uint8Array(32) }), 16, 1);
    const e1 = ipv6IcmpError({ ...V6, type: 2, code: 0, mtu: 1280, inner: frags[0]! });
    expect(parse(e1)).toBe(PARSE.OK);
    expect(q.parse(e1, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET6)).toBe(true);
    expect(q.proto).toBe(6);
    const e2 = ipv6IcmpError({ ...V6, type: 2, code: 0, mtu: 1280, inner: frags[1]! });
    expect(parse(e2)).toBe(PARSE.OK);
    expect(q.parse(e2, pkt.icmp.innerOffset, pkt.icmp.innerLength, AF.INET6)).toBe(false);
  });

  it("the wrong or an unknown family fails", () => {
    const v4 = ipv4Tcp(V4);
    const v6 = ipv6Tcp(V6);
    expect(q.parse(v4, 0, v4.length, AF.INET6)).toBe(false);
    expect(q.parse(v6, 0, v6.length, AF.INET)).toBe(false);
    expect(q.parse(v4, 0, v4.length, 0)).toBe(false);
    expect(q.parse(v4, 0, v4.length, 7)).toBe(false);
    expect(q.family).toBe(0);
  });
});

describe("fuzz: never throws", () => {
  it("Packet.parse and l4ChecksumValid on random, truncated and mutated packets", () => {
    const p = new Packet();
    fc.assert(
      fc.property(fuzzWindow, ([b, off, len]) => {
        for (const [o, n] of [[0, b.length], [off, len]] as const) {
          const r = p.parse(b, o, n);
          if (r < PARSE.OK || r > PARSE.BAD_L4) return false;
          if (r === PARSE.OK) {
            if (p.l4Length < 0 || p.l4Offset + p.l4Length > o + n) return false;
            if (typeof p.l4ChecksumValid() !== "boolean") return false;
            if (p.proto === IPPROTO.TCP) p.tcp.parseOptions();
          }
        }
        return true;
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("QuotedPacket.parse on random bytes and on the quotes of mutated ICMP errors", () => {
    const p = new Packet();
    const qp = new QuotedPacket();
    fc.assert(
      fc.property(fuzzInput, fc.constantFrom(AF.INET, AF.INET6, 0, 99), fc.integer({ min: -2, max: 100 }), fc.integer({ min: -2, max: 140 }), (b, fam, off, len) => {
        if (qp.parse(b, off, len, fam) && (qp.l4Length < 0 || qp.l4Offset + qp.l4Length > off + len)) return false;
        if (p.parse(b, 0, b.length) === PARSE.OK && p.icmpError && qp.parse(b, p.icmp.innerOffset, p.icmp.innerLength, p.family)) {
          return qp.l4Offset + qp.l4Length <= p.icmp.innerOffset + p.icmp.innerLength;
        }
        return true;
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("every builder packet parses to OK or FRAGMENT", () => {
    const p = new Packet();
    fc.assert(
      fc.property(anyPacket, (b) => {
        const r = p.parse(b, 0, b.length);
        return r === PARSE.OK || r === PARSE.FRAGMENT;
      }),
      { numRuns: 500 },
    );
  });
});
