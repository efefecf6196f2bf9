/**
 * The snapshot compiled from real `ip -json` output (test/route/fixtures/,
 * captured from iproute2 6.1 in a namespace with two veth pairs and: a
 * default route, two routes to one prefix with different metrics, ECMP
 * (IPv4 and IPv6), a nexthop-object route, an IPv4 route via an IPv6 next
 * hop, blackhole/unreachable/prohibit/throw routes, a TOS route and a route
 * in table 100).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERR, SluiceError } from "../../src/errors.js";
import { parseIPv4, parseIPv6 } from "../../src/route/addr.js";
import { RTN } from "../../src/route/constants.js";
import { buildSnapshot } from "../../src/route/mirror.js";
import type { RouteSnapshot } from "../../src/route/table.js";

const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"));
const snap = buildSnapshot(fixture("addr.json"), fixture("route4.json"), fixture("route6.json"), 1);

function a4(s: string): number {
  const a = parseIPv4(s);
  if (a < 0) throw new Error(`bad IPv4 ${s}`);
  return a | 0; // as the packet path reads it: an int32
}
const w = new Int32Array(4);
function a6(s: string): [number, number, number, number] {
  if (!parseIPv6(s, w)) throw new Error(`bad IPv6 ${s}`);
  return [w[0]!, w[1]!, w[2]!, w[3]!];
}
const route4 = (s: RouteSnapshot, a: string): string => s.describe(s.lookup4(a4(a)));
const route6 = (s: RouteSnapshot, a: string): string => s.describe(s.lookup6(...a6(a)));

describe("interfaces and addresses", () => {
  it("maps names and ifindexes both ways", () => {
    expect(snap.ifindexOf("lo")).toBe(1);
    expect(snap.ifindexOf("lan0")).toBe(3);
    expect(snap.ifindexOf("wan0")).toBe(5);
    expect(snap.ifindexOf("eth9")).toBe(-1);
    expect(snap.ifnameOf(2)).toBe("lan0p");
    expect(snap.ifnameOf(99)).toBeUndefined();
  });
  it("lists every address of both families", () => {
    const lan = snap.addresses.filter((a) => a.ifname === "lan0").map((a) => `${a.address}/${a.prefixLen} ${a.scope}`);
    expect(lan).toContain("10.0.1.1/24 global");
    expect(lan).toContain("2001:db8:1::1/64 global");
    expect(snap.addresses.some((a) => a.address === "127.0.0.1" && a.family === 4)).toBe(true);
  });
});

describe("IPv4: local or forwarded", () => {
  it("own addresses, 127/8, subnet broadcast, multicast and limited broadcast are local", () => {
    for (const a of ["10.0.1.1", "203.0.113.1", "127.0.0.1", "127.1.2.3", "10.0.1.255", "224.0.0.1", "239.1.2.3", "255.255.255.255"]) {
      expect(snap.isLocal4(a4(a)), a).toBe(true);
    }
    expect(snap.type[snap.lookup4(a4("10.0.1.255"))]).toBe(RTN.BROADCAST);
    expect(snap.type[snap.lookup4(a4("10.0.1.1"))]).toBe(RTN.LOCAL);
  });
  it("everything else is forwarded (or dropped by a reject route)", () => {
    for (const a of ["10.0.1.2", "203.0.113.2", "8.8.8.8", "192.0.2.1", "0.0.0.1"]) {
      expect(snap.isLocal4(a4(a)), a).toBe(false);
    }
  });
});

describe("IPv4: out interface and next hop", () => {
  it("connected, default and more-specific routes", () => {
    expect(route4(snap, "10.0.1.2")).toBe("10.0.1.0/24 dev lan0");
    expect(route4(snap, "10.0.1.200")).toBe("10.0.1.128/25 dev lan0 metric 50");
    expect(route4(snap, "8.8.8.8")).toBe("0.0.0.0/0 via 203.0.113.254 dev wan0");
    const r = snap.lookup4(a4("8.8.8.8"));
    expect(snap.type[r]).toBe(RTN.UNICAST);
    expect(snap.ifindex[r]).toBe(5);
    expect(snap.gwFamily[r]).toBe(4);
    expect(snap.gateway[r * 4]).toBe(parseIPv4("203.0.113.254"));
    const c = snap.lookup4(a4("203.0.113.77"));
    expect(snap.gwFamily[c]).toBe(0);
    expect(snap.ifindex[c]).toBe(5);
  });
  it("same prefix: the lowest metric wins; the other is reported", () => {
    expect(route4(snap, "198.51.100.7")).toBe("198.51.100.0/24 via 203.0.113.253 dev wan0 metric 5");
    expect(snap.skipped.some((s) => s.raw.includes("10.0.1.254") && /lower metric \(10 > 5\)/.test(s.reason))).toBe(true);
  });
  it("multipath: the first next hop; nexthop objects: the resolved hop; RFC 5549: an IPv6 next hop", () => {
    expect(route4(snap, "100.64.1.1")).toBe("100.64.0.0/10 via 10.0.1.253 dev lan0");
    expect(snap.routes[snap.lookup4(a4("100.64.1.1"))]!.nexthops).toBe(2);
    expect(route4(snap, "198.18.0.1")).toBe("198.18.0.0/15 via 203.0.113.77 dev wan0");
    const r = snap.lookup4(a4("172.16.5.5"));
    expect(snap.describe(r)).toBe("172.16.0.0/12 via fe80::1 dev wan0");
    expect(snap.gwFamily[r]).toBe(6);
    expect([...snap.gateway.subarray(r * 4, r * 4 + 4)]).toEqual([0xfe800000, 0, 0, 1]);
  });
  it("reject routes stop the lookup instead of falling through to the default route", () => {
    expect(snap.type[snap.lookup4(a4("192.0.2.1"))]).toBe(RTN.BLACKHOLE);
    expect(snap.type[snap.lookup4(a4("192.0.2.200"))]).toBe(RTN.UNREACHABLE);
    expect(snap.type[snap.lookup4(a4("10.66.1.1"))]).toBe(RTN.THROW);
    expect(snap.ifindex[snap.lookup4(a4("192.0.2.1"))]).toBe(0);
  });
  it("TOS routes and other tables are not mirrored (the default route answers)", () => {
    expect(route4(snap, "10.77.1.1")).toBe("0.0.0.0/0 via 203.0.113.254 dev wan0");
    expect(route4(snap, "10.99.1.1")).toBe("0.0.0.0/0 via 203.0.113.254 dev wan0");
    expect(snap.skipped.some((s) => s.raw.includes("10.77.0.0/16") && s.reason.includes("TOS"))).toBe(true);
    expect(snap.skipped.some((s) => s.raw.includes("10.99.0.0/16") && s.reason.includes("table 100"))).toBe(true);
  });
});

describe("IPv6", () => {
  it("own addresses, subnet-router anycast, link-local addresses, multicast are local", () => {
    for (const a of ["::1", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:1::", "fe80::9c6d:4eff:fe91:e1f9", "ff02::1", "ff05::2"]) {
      expect(snap.isLocal6(...a6(a)), a).toBe(true);
    }
    expect(snap.type[snap.lookup6(...a6("2001:db8:1::"))]).toBe(RTN.ANYCAST);
    for (const a of ["2001:db8:1::2", "2001:db8:2::5", "2606:4700::1", "fe80::1"]) {
      expect(snap.isLocal6(...a6(a)), a).toBe(false);
    }
  });
  it("routes: connected, via a gateway, multipath, prohibit, default, link-local", () => {
    expect(route6(snap, "2001:db8:1::5")).toBe("2001:db8:1::/64 dev lan0 metric 256");
    expect(route6(snap, "2001:db8:100::1")).toBe("2001:db8:100::/48 via 2001:db8:1::fffe dev lan0 metric 1024");
    expect(route6(snap, "2001:db8:200::1")).toBe("2001:db8:200::/48 via 2001:db8:1::fffd dev lan0 metric 1024");
    expect(snap.type[snap.lookup6(...a6("2001:db8:dead::1"))]).toBe(RTN.PROHIBIT);
    expect(route6(snap, "2606:4700::1")).toBe("::/0 via 2001:db8:2::fffe dev wan0 metric 1024");
    // Four fe80::/64 routes, one per interface: without a zone the first listed wins.
    expect(route6(snap, "fe80::1")).toBe("fe80::/64 dev lan0p metric 256");
    const r = snap.lookup6(...a6("2606:4700::1"));
    expect(snap.gwFamily[r]).toBe(6);
    expect([...snap.gateway.subarray(r * 4, r * 4 + 4)]).toEqual([0x20010db8, 0x00020000, 0, 0xfffe]);
  });
});

describe("odd input", () => {
  it("non-arrays are errors naming the command", () => {
    const e = (() => { try { buildSnapshot({}, [], []); } catch (x) { return x; } return null; })();
    expect(e).toBeInstanceOf(SluiceError);
    expect((e as SluiceError).code).toBe(ERR.ROUTE);
    expect((e as SluiceError).message).toMatch(/ip -json addr show: expected a JSON array/);
  });
  it("unknown types, bad prefixes and unmirrored types are skipped with a reason, never thrown", () => {
    const s = buildSnapshot(
      [{ ifindex: 1, ifname: "lo", flags: ["UP"], addr_info: [] }, { ifname: "noindex" }],
      [
        { dst: "10.0.0.0/8", dev: "lo", type: "weird" },
        { dst: "2001:db8::/32", dev: "lo" },
        { dst: "10.0.0.0/8", type: "multicast", dev: "lo" },
        { dst: "10.0.0.0/8", gateway: "not-an-ip" },
        { nodst: true },
        { dst: "default", dev: "ghost0" },
      ],
      [],
    );
    const reasons = s.skipped.map((x) => x.reason).join("\n");
    expect(reasons).toMatch(/unknown route type "weird"/);
    expect(reasons).toMatch(/"2001:db8::\/32" is not an IPv4 prefix/);
    expect(reasons).toMatch(/multicast routes in the main table/);
    expect(reasons).toMatch(/gateway "not-an-ip"/);
    expect(reasons).toMatch(/route without dst/);
    expect(reasons).toMatch(/link without ifindex/);
    // A device we do not know (a race between `ip addr` and `ip route`): ifindex 0 until the next reload.
    expect(s.ifindex[s.lookup4(a4("8.8.8.8"))]).toBe(0);
  });
  it("an empty namespace: no route anywhere, only the implicit IPv4 multicast/broadcast", () => {
    const s = buildSnapshot([], [], []);
    expect(s.lookup4(a4("10.0.0.1"))).toBe(-1);
    expect(s.lookup6(...a6("::1"))).toBe(-1);
    expect(s.isLocal4(a4("224.0.0.1"))).toBe(true);
    expect(s.describe(-1)).toBe("no route");
  });
});
