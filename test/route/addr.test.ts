/**
 * Address text at the edges: strict IPv4 (no octal, no short forms), RFC 4291
 * §2.2 IPv6 (one `::`, dotted IPv4 tail), RFC 5952 output, CIDR parsing.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIPv4, formatIPv6, isIpAddress, parseCidr, parseIPv4, parseIPv6 } from "../../src/route/addr.js";

function v6(s: string): number[] | null {
  const w = new Uint32Array(4);
  return parseIPv6(s, w) ? [...w] : null;
}

describe("IPv4", () => {
  it("parses dotted decimal to a uint32", () => {
    expect(parseIPv4("10.0.0.1")).toBe(0x0a000001);
    expect(parseIPv4("255.255.255.255")).toBe(0xffffffff);
    expect(parseIPv4("0.0.0.0")).toBe(0);
    expect(parseIPv4("203.0.113.7")).toBe(0xcb007107);
  });
  it("rejects leading zeros (no octal), short forms, out-of-range parts, junk", () => {
    for (const s of ["010.0.0.1", "10.0.0", "10.0.0.1.2", "256.0.0.1", "1..2.3", "", "a.b.c.d", "10.0.0.1 ", " 10.0.0.1", "10.0.0.1/8", "0x0a.0.0.1"]) {
      expect(parseIPv4(s), s).toBe(-1);
    }
  });
  it("round-trips through formatIPv4, signed or unsigned", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (a) => {
      expect(parseIPv4(formatIPv4(a))).toBe(a);
      expect(formatIPv4(a | 0)).toBe(formatIPv4(a));
    }));
  });
});

describe("IPv6", () => {
  it("parses full, compressed and IPv4-tailed forms into four words", () => {
    expect(v6("2001:db8::1")).toEqual([0x20010db8, 0, 0, 1]);
    expect(v6("::")).toEqual([0, 0, 0, 0]);
    expect(v6("::1")).toEqual([0, 0, 0, 1]);
    expect(v6("fe80::")).toEqual([0xfe800000, 0, 0, 0]);
    expect(v6("1:2:3:4:5:6:7:8")).toEqual([0x00010002, 0x00030004, 0x00050006, 0x00070008]);
    expect(v6("::ffff:192.0.2.1")).toEqual([0, 0, 0xffff, 0xc0000201]);
    expect(v6("64:ff9b::203.0.113.5")).toEqual([0x0064ff9b, 0, 0, 0xcb007105]);
    expect(v6("2001:DB8::A")).toEqual([0x20010db8, 0, 0, 0xa]);
  });
  it("rejects two '::', too many or too few groups, bad hex, misplaced IPv4, zones", () => {
    for (const s of ["1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2:3:4:5:6:7:8", "12345::", "g::", ":1", "1:",
      "1.2.3.4::", "::1.2.3.4:5", "fe80::1%eth0", "", ":::", "::ffff:1.2.3"]) {
      expect(v6(s), s).toBeNull();
    }
  });
  it("formats per RFC 5952 and round-trips", () => {
    expect(formatIPv6(0x20010db8, 0, 0, 1)).toBe("2001:db8::1");
    expect(formatIPv6(0, 0, 0, 0)).toBe("::");
    expect(formatIPv6(0x20010db8, 0, 1, 0)).toBe("2001:db8::1:0:0"); // longest run, the first of equals
    expect(formatIPv6(0x20010db8, 0x00010000, 0x00010001, 0x00010001)).toBe("2001:db8:1:0:1:1:1:1"); // no '::' for one group
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), (w) => {
      expect(v6(formatIPv6(w[0]!, w[1]!, w[2]!, w[3]!))).toEqual(w);
    }));
  });
});

describe("CIDR", () => {
  it("address/len, bare addresses as host prefixes", () => {
    expect(parseCidr("10.1.0.0/16")).toEqual({ family: 4, address: 0x0a010000n, prefixLen: 16 });
    expect(parseCidr("10.1.2.3")).toEqual({ family: 4, address: 0x0a010203n, prefixLen: 32 });
    expect(parseCidr("2001:db8::/32")).toEqual({ family: 6, address: 0x20010db8n << 96n, prefixLen: 32 });
    expect(parseCidr("::1")).toEqual({ family: 6, address: 1n, prefixLen: 128 });
    expect(parseCidr("10.1.2.3", false)).toBeNull();
  });
  it("rejects lengths beyond the family, leading zeros, junk", () => {
    for (const s of ["10.0.0.0/33", "::/129", "10.0.0.0/08", "10.0.0.0/", "10.0.0.0/-1", "x/8", "10.0.0.0/8/8"]) {
      expect(parseCidr(s), s).toBeNull();
    }
    expect(isIpAddress("127.0.0.1")).toBe(true);
    expect(isIpAddress("::")).toBe(true);
    expect(isIpAddress("localhost")).toBe(false);
  });
});
