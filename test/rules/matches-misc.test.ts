/**
 * -m iprange, length, ttl, hl, pkttype, mac, owner, frag, comment and
 * addrtype. addrtype and pkttype run over the route mirror's snapshot of
 * test/route/fixtures (lan0 = ifindex 3, 10.0.1.1/24 and 2001:db8:1::1/64;
 * wan0 = 5, 203.0.113.1/24 and 2001:db8:2::1/64; blackhole 192.0.2.0/24,
 * unreachable 192.0.2.128/25, prohibit 2001:db8:dead::/48); the expected
 * types are what Linux 6.18 answered for the same kinds of addresses in
 * two namespaces joined by a veth (see misc.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildSnapshot } from "../../src/route/mirror.js";
import { HOOK } from "../../src/rules/context.js";
import { setAccountFiles } from "../../src/rules/matches/accounts.js";
import { fragmentV6, ipv4Tcp, ipv4Udp, ipv6Udp } from "../helpers/packets.js";
import { Rig } from "./matches-helpers.js";

const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`../route/fixtures/${name}`, import.meta.url), "utf8"));
const routes = buildSnapshot(fixture("addr.json"), fixture("route4.json"), fixture("route6.json"), 1);
const LAN = 3, WAN = 5;

const u4 = (src: string, dst: string, extra: object = {}): Uint8Array => ipv4Udp({ src, dst, sport: 1, dport: 9, ...extra });
const u6 = (src: string, dst: string, extra: object = {}): Uint8Array => ipv6Udp({ src, dst, sport: 1, dport: 9, ...extra });

const dir = mkdtempSync(join(tmpdir(), "sluice-matches-misc-"));
writeFileSync(join(dir, "passwd"), "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n# bob:x:5:5\n");
writeFileSync(join(dir, "group"), "root:x:0:\nstaff:x:50:alice\n");
setAccountFiles({ passwd: join(dir, "passwd"), group: join(dir, "group") });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("-m iprange", () => {
  const r = new Rig();
  it("inclusive ranges, unsigned order (across 128.0.0.0), negation, both sides", () => {
    expect(r.test("-m iprange --src-range 10.0.0.1-10.0.0.9", u4("10.0.0.1", "1.1.1.1"))).toBe(true);
    expect(r.test("-m iprange --src-range 10.0.0.1-10.0.0.9", u4("10.0.0.9", "1.1.1.1"))).toBe(true);
    expect(r.test("-m iprange --src-range 10.0.0.1-10.0.0.9", u4("10.0.0.10", "1.1.1.1"))).toBe(false);
    expect(r.test("-m iprange --src-range 127.255.255.250-128.0.0.5", u4("128.0.0.1", "1.1.1.1"))).toBe(true);
    expect(r.test("-m iprange --src-range 127.255.255.250-128.0.0.5", u4("127.0.0.1", "1.1.1.1"))).toBe(false);
    expect(r.test("-m iprange --dst-range 192.168.0.0-192.168.255.255", u4("1.1.1.1", "192.168.7.7"))).toBe(true);
    expect(r.test("-m iprange --dst-range 192.168.0.0-192.168.255.255", u4("1.1.1.1", "10.0.0.1"))).toBe(false);
    expect(r.test("-m iprange ! --dst-range 192.168.0.0-192.168.255.255", u4("1.1.1.1", "10.0.0.1"))).toBe(true);
    expect(r.test("-m iprange --src-range 10.0.0.1 --dst-range 1.1.1.1-1.1.1.1", u4("10.0.0.1", "1.1.1.1"))).toBe(true);
    expect(r.test("-m iprange --src-range 10.0.0.9-10.0.0.1", u4("10.0.0.5", "1.1.1.1"))).toBe(false); // reversed: never
    expect(r.test("-m iprange --src-range 10.0.0.1-10.0.1", u4("10.0.1.0", "1.1.1.1"))).toBe(true); // 10.0.1 = 10.0.1.0
  });
  it("IPv6", () => {
    const r6 = new Rig(6);
    expect(r6.test("-m iprange --src-range 2001:db8::1-2001:db8::ff", u6("2001:db8::80", "2001:db8::1"))).toBe(true);
    expect(r6.test("-m iprange --src-range 2001:db8::1-2001:db8::ff", u6("2001:db8::100", "2001:db8::1"))).toBe(false);
    expect(r6.test("-m iprange --src-range 2001:db8::-2001:db9::", u6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::1"))).toBe(true);
    expect(r6.test("-m iprange ! --dst-range ff00::-ffff::", u6("2001:db8::80", "ff02::1"))).toBe(false);
  });
  it("refusals", () => {
    expect(r.error("-m iprange")).toBe("t.rules:1:1: iprange match: You must specify `--src-range' or `--dst-range'");
    expect(r.error("-m iprange --src-range 10.0.0.1-foo")).toBe('t.rules:1:12: iprange: Bad value for "--src-range" option: "foo"');
    expect(r.error("-m iprange --src-range 10.0.0.256")).toBe('t.rules:1:12: iprange: Bad value for "--src-range" option: "10.0.0.256"');
  });
});

describe("-m length, -m ttl, -m hl", () => {
  const r = new Rig();
  const p = u4("10.0.0.1", "10.0.0.2", { payload: "x".repeat(72), ttl: 7 }); // 20 + 8 + 72 = 100
  it("length: the IP datagram's length", () => {
    expect(r.test("-m length --length 100", p)).toBe(true);
    expect(r.test("-m length --length 101:", p)).toBe(false);
    expect(r.test("-m length --length :100", p)).toBe(true);
    expect(r.test("-m length --length 90:110", p)).toBe(true);
    expect(r.test("-m length ! --length 90:110", p)).toBe(false);
    expect(r.test("-m length --length 110:90", p)).toBe(false);
    const r6 = new Rig(6);
    expect(r6.test("-m length --length 60", u6("::1", "::2", { payload: "y".repeat(12) }))).toBe(true); // 40 + 8 + 12
    expect(r.error("-m length --length x")).toBe('t.rules:1:11: length: bad value for option "--length" near "x", or out of range (0-65535).');
    expect(r.error("-m length --length 70000")).toBe('t.rules:1:11: length: bad value for option "--length" near "70000", or out of range (0-65535).');
  });
  it("ttl: eq, ! eq, lt, gt", () => {
    expect(r.test("-m ttl --ttl-eq 7", p)).toBe(true);
    expect(r.test("-m ttl ! --ttl-eq 7", p)).toBe(false);
    expect(r.test("-m ttl --ttl-lt 8", p)).toBe(true);
    expect(r.test("-m ttl --ttl-lt 7", p)).toBe(false);
    expect(r.test("-m ttl --ttl-gt 6", p)).toBe(true);
    expect(r.test("-m ttl --ttl-gt 7", p)).toBe(false);
    expect(r.error("-m ttl --ttl-lt 5 --ttl-gt 3")).toBe('t.rules:1:19: ttl: option "--ttl-lt" cannot be used together with "--ttl-gt".');
    expect(r.error("-m ttl --ttl-eq 256")).toBe('t.rules:1:8: ttl: bad value for option "--ttl-eq", or out of range (0-255).');
    expect(r.error("-m ttl")).toBe("t.rules:1:1: TTL match: You must specify one of `--ttl-eq', `--ttl-lt', `--ttl-gt'");
    expect(r.error("-m hl --hl-eq 5")).toMatch(/-m hl is IPv6 only/);
  });
  it("hl: the hop limit", () => {
    const r6 = new Rig(6);
    const q = u6("::1", "::2", { hopLimit: 255 });
    expect(r6.test("-m hl --hl-eq 255", q)).toBe(true);
    expect(r6.test("-m hl --hl-lt 255", q)).toBe(false);
    expect(r6.test("-m hl ! --hl-eq 1", q)).toBe(true);
    expect(r6.error("-m ttl --ttl-eq 5")).toMatch(/-m ttl is IPv4 only/);
  });
});

describe("-m pkttype", () => {
  it("derived from the destination and the route mirror", () => {
    const r = new Rig();
    r.c.routes = routes;
    r.c.inIfindex = LAN;
    const t = (type: string, dst: string): boolean => r.test(`-m pkttype --pkt-type ${type}`, u4("10.0.1.2", dst));
    expect(t("unicast", "10.0.1.1")).toBe(true);
    expect(t("host", "8.8.8.8")).toBe(true);
    expect(t("broadcast", "10.0.1.255")).toBe(true); // lan0's subnet broadcast, arriving on lan0
    expect(t("bcast", "255.255.255.255")).toBe(true);
    expect(t("unicast", "203.0.113.255")).toBe(true); // wan0's broadcast, routed to us from lan0: unicast (Linux agrees)
    expect(t("multicast", "224.0.0.5")).toBe(true);
    expect(t("MCAST", "239.1.2.3")).toBe(true);
    expect(t("otherhost", "10.0.1.1")).toBe(false);
    expect(r.test("-m pkttype ! --pkt-type unicast", u4("10.0.1.2", "224.0.0.5"))).toBe(true);
    // Locally generated: PACKET_HOST whatever the destination, as Linux's OUTPUT sees it.
    r.c.localOut = true;
    r.c.hook = HOOK.OUTPUT;
    expect(t("multicast", "224.0.0.5")).toBe(false);
    expect(t("unicast", "224.0.0.5")).toBe(true);
  });
  it("IPv6: ff00::/8 is multicast", () => {
    const r6 = new Rig(6);
    r6.c.routes = routes;
    expect(r6.test("-m pkttype --pkt-type multicast", u6("2001:db8:1::2", "ff02::1"))).toBe(true);
    expect(r6.test("-m pkttype --pkt-type unicast", u6("2001:db8:1::2", "2001:db8:1::1"))).toBe(true);
  });
  it("refusal", () => {
    expect(new Rig().error("-m pkttype --pkt-type 1")).toBe("t.rules:1:12: Bad packet type '1'");
  });
});

describe("-m mac", () => {
  it("the ingress Ethernet source; unknown (hwLen 0): no match, negated or not", () => {
    const r = new Rig();
    const p = u4("10.0.0.1", "10.0.0.2");
    const m = r.compile("-m mac --mac-source 0:11:22:aa:bb:CC"), nm = r.compile("-m mac ! --mac-source 00:11:22:aa:bb:cc");
    r.load(p);
    expect([r.eval(m), r.eval(nm)]).toEqual([false, false]);
    r.c.hwBuf = Uint8Array.from([0xff, 0xff, 0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc]);
    r.c.hwOff = 2;
    r.c.hwLen = 6;
    expect([r.eval(m), r.eval(nm)]).toEqual([true, false]);
    r.c.hwOff = 1;
    expect([r.eval(m), r.eval(nm)]).toEqual([false, true]);
    expect(r.error("-m mac --mac-source 00:11:22:33:44")).toBe("t.rules:1:8: Invalid MAC address specified.");
    expect(r.error("-m mac --mac-source 00-11-22-33-44-55")).toBe("t.rules:1:8: Invalid MAC address specified.");
  });
});

describe("-m owner", () => {
  it("uid and gid (numbers, ranges, names from the passwd/group files); socket-exists", () => {
    const r = new Rig();
    r.chain = "OUTPUT";
    r.c.hook = HOOK.OUTPUT;
    r.c.localOut = true;
    r.load(u4("10.0.0.1", "10.0.0.2"));
    const t = (s: string): boolean => r.eval(r.compile(`-m owner ${s}`));
    r.c.uid = 1000;
    r.c.gid = 50;
    expect(t("--uid-owner 1000")).toBe(true);
    expect(t("--uid-owner alice")).toBe(true);
    expect(t("--uid-owner root")).toBe(false);
    expect(t("--uid-owner 0-999")).toBe(false);
    expect(t("--uid-owner 500:2000")).toBe(true);
    expect(t("! --uid-owner 0")).toBe(true);
    expect(t("--gid-owner staff")).toBe(true);
    expect(t("--uid-owner 1000 ! --gid-owner 50")).toBe(false);
    expect(t("--socket-exists")).toBe(true);
    expect(t("! --socket-exists")).toBe(false);
    r.c.uid = 4294967294; // the largest valid uid
    expect(t("--uid-owner 4000000000-4294967294")).toBe(true);
    expect(t("--uid-owner 0-4000000000")).toBe(false);
    // No socket (a forwarded packet, or the I/O path does not know): only all-negated options match.
    r.c.uid = -1;
    r.c.gid = -1;
    expect(t("--uid-owner 1000")).toBe(false);
    expect(t("! --uid-owner 1000")).toBe(true);
    expect(t("! --socket-exists")).toBe(true);
    expect(t("--socket-exists")).toBe(false);
    expect(t("! --uid-owner 0 --gid-owner 0")).toBe(false);
  });
  it("refusals", () => {
    const r = new Rig();
    r.chain = "OUTPUT";
    expect(r.error("-m owner")).toBe("t.rules:1:1: owner: At least one of --uid-owner, --gid-owner or --socket-exists is required");
    expect(r.error("-m owner --uid-owner nosuchuser")).toBe('t.rules:1:10: owner: Bad value for "--uid-owner" option: "nosuchuser"');
    expect(r.error("-m owner --uid-owner 10-5")).toMatch(/^t\.rules:1:10: owner: --uid-owner 10-5: the range is reversed/);
    expect(r.error("-m owner --uid-owner 4294967295")).toBe('t.rules:1:10: owner: Bad value for "--uid-owner" option: "4294967295"');
    expect(r.error("-m owner --suppl-groups")).toBe('t.rules:1:10: owner: Bad value for "--suppl-groups" option: "you need to use --gid-owner first"');
    expect(r.error("-m owner --gid-owner 0 --suppl-groups")).toMatch(/^t\.rules:1:24: owner: --suppl-groups is not supported by sluice/);
  });
});

describe("-m frag (IPv6)", () => {
  const r = new Rig(6);
  const frags = fragmentV6(u6("2001:db8::1", "2001:db8::2", { payload: "z".repeat(40) }), 16, 0x12345678);
  it("id ranges and first / more / last", () => {
    const [first, mid, last] = [frags[0]!, frags[1]!, frags[frags.length - 1]!];
    expect(r.test("-m frag", first)).toBe(true);
    expect(r.test("-m frag", u6("2001:db8::1", "2001:db8::2"))).toBe(false);
    expect(r.test("-m frag --fragid 0x12345678", mid)).toBe(true);
    expect(r.test("-m frag --fragid 305419895", mid)).toBe(false);
    expect(r.test("-m frag --fragid 305419000:305420000", mid)).toBe(true);
    expect(r.test("-m frag ! --fragid 0x12345678", mid)).toBe(false);
    expect(r.test("-m frag --fragfirst", first)).toBe(true);
    expect(r.test("-m frag --fragfirst", mid)).toBe(false);
    expect(r.test("-m frag --fragmore", first)).toBe(true);
    expect(r.test("-m frag --fragmore", last)).toBe(false);
    expect(r.test("-m frag --fraglast", last)).toBe(true);
    expect(r.test("-m frag --fraglast --fragres", last)).toBe(true);
    expect(r.test("-m frag --fraglen 8", last)).toBe(true); // parsed, not compared (ip6t_frag)
    const big = fragmentV6(u6("2001:db8::1", "2001:db8::2"), 8, 0xfffffff0);
    expect(r.test("-m frag --fragid 4000000000:4294967295", big[0]!)).toBe(true);
    expect(r.error("-m frag --fragmore --fraglast")).toBe('t.rules:1:20: frag: option "--fragmore" cannot be used together with "--fraglast".');
  });
});

describe("-m comment", () => {
  it("always matches; --comment is required", () => {
    const r = new Rig();
    expect(r.test("-m comment --comment 'allow ssh'", u4("10.0.0.1", "10.0.0.2"))).toBe(true);
    expect(r.error("-m comment")).toBe('t.rules:1:1: comment: option "--comment" must be specified');
  });
});

describe("-m addrtype", () => {
  it("IPv4: types as Linux gives them (the FIB lookup fails on reject routes: UNICAST)", () => {
    const r = new Rig();
    r.c.routes = routes;
    r.c.inIfindex = LAN;
    const type = (dst: string): string => {
      const hits: string[] = [];
      for (const t of ["UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW"]) {
        if (r.test(`-m addrtype --dst-type ${t}`, u4("10.0.1.2", dst))) hits.push(t);
      }
      return hits.join(",");
    };
    expect(type("10.0.1.1")).toBe("LOCAL");
    expect(type("10.0.1.255")).toBe("BROADCAST");
    expect(type("203.0.113.1")).toBe("LOCAL");
    expect(type("203.0.113.5")).toBe("UNICAST");
    expect(type("203.0.113.255")).toBe("BROADCAST");
    expect(type("192.0.2.1")).toBe("UNICAST"); // blackhole route
    expect(type("192.0.2.200")).toBe("UNICAST"); // unreachable route
    expect(type("224.0.0.5")).toBe("MULTICAST");
    expect(type("255.255.255.255")).toBe("BROADCAST");
    expect(type("0.0.0.0")).toBe("BROADCAST");
    expect(type("0.0.0.1")).toBe("UNICAST");
    expect(type("127.0.0.1")).toBe("LOCAL");
  });
  it("IPv4: --limit-iface-in, lists, negation, source", () => {
    const r = new Rig();
    r.c.routes = routes;
    r.c.inIfindex = LAN;
    const p = (dst: string): Uint8Array => u4("10.0.1.2", dst);
    expect(r.test("-m addrtype --dst-type LOCAL --limit-iface-in", p("10.0.1.1"))).toBe(true);
    expect(r.test("-m addrtype --dst-type LOCAL --limit-iface-in", p("203.0.113.1"))).toBe(false);
    expect(r.test("-m addrtype --dst-type UNICAST --limit-iface-in", p("203.0.113.1"))).toBe(true);
    expect(r.test("-m addrtype --dst-type UNICAST,LOCAL", p("10.0.1.1"))).toBe(true);
    expect(r.test("-m addrtype ! --dst-type LOCAL", p("10.0.1.1"))).toBe(false);
    expect(r.test("-m addrtype ! --dst-type LOCAL", p("8.8.8.8"))).toBe(true);
    expect(r.test("-m addrtype --src-type unicast --dst-type local", p("10.0.1.1"))).toBe(true);
    expect(r.test("-m addrtype --src-type LOCAL", p("10.0.1.1"))).toBe(false);
    r.chain = "FORWARD";
    r.c.outIfindex = WAN;
    expect(r.test("-m addrtype --dst-type LOCAL --limit-iface-out", p("203.0.113.1"))).toBe(true);
  });
  it("IPv6: class checks AND route types; reject routes and unrouted destinations are UNREACHABLE", () => {
    const r = new Rig(6);
    r.c.routes = routes;
    r.c.inIfindex = LAN;
    const type = (dst: string, extra = ""): string => {
      const hits: string[] = [];
      for (const t of ["UNSPEC", "UNICAST", "LOCAL", "ANYCAST", "MULTICAST", "UNREACHABLE"]) {
        if (r.test(`-m addrtype --dst-type ${t} ${extra}`, u6("2001:db8:1::2", dst))) hits.push(t);
      }
      return hits.join(",");
    };
    expect(type("2001:db8:1::1")).toBe("UNICAST,LOCAL");
    expect(type("2001:db8:1::1", "--limit-iface-in")).toBe("UNICAST,LOCAL");
    expect(type("2001:db8:2::")).toBe("UNICAST,ANYCAST");
    expect(type("2001:db8:2::", "--limit-iface-in")).toBe("UNICAST,UNREACHABLE");
    expect(type("2001:db8:2::5")).toBe("UNICAST");
    expect(type("2001:db8:2::5", "--limit-iface-in")).toBe("UNICAST,UNREACHABLE");
    expect(type("2001:db8:dead::1")).toBe("UNICAST,UNREACHABLE");
    expect(type("ff02::1")).toBe("MULTICAST");
    expect(type("::")).toBe("UNSPEC");
    expect(type("::ffff:10.0.0.1")).toBe(""); // v4-mapped is no unicast (__ipv6_addr_type); it takes the default route
    expect(r.test("-m addrtype --dst-type MULTICAST,LOCAL", u6("2001:db8:1::2", "ff02::1"))).toBe(false);
  });
  it("refusals (iptables and the kernel's checkentry)", () => {
    const r = new Rig();
    expect(r.error("-m addrtype --src-type FOO")).toBe('t.rules:1:13: addrtype: bad type "FOO"');
    expect(r.error("-m addrtype --limit-iface-in")).toBe("t.rules:1:1: addrtype: you must specify --src-type or --dst-type");
    expect(r.error("-m addrtype --dst-type LOCAL --limit-iface-out")).toBe("t.rules:1:30: addrtype: output interface limitation not valid in PREROUTING and INPUT");
    r.chain = "OUTPUT";
    expect(r.error("-m addrtype --dst-type LOCAL --limit-iface-in")).toBe("t.rules:1:30: addrtype: input interface limitation not valid in POSTROUTING and OUTPUT");
    r.chain = "FORWARD";
    expect(r.error("-m addrtype --dst-type LOCAL --limit-iface-in --limit-iface-out")).toBe(
      't.rules:1:47: addrtype: option "--limit-iface-in" cannot be used together with "--limit-iface-out".',
    );
    const r6 = new Rig(6);
    expect(r6.error("-m addrtype --dst-type BROADCAST")).toBe("t.rules:1:13: addrtype: ipv6 does not support BROADCAST matching");
    expect(r6.error("-m addrtype --src-type LOCAL --dst-type BLACKHOLE")).toBe("t.rules:1:30: addrtype: ipv6 BLACKHOLE matching not supported");
    expect(r6.error("-m addrtype --dst-type PROHIBIT")).toBe("t.rules:1:13: addrtype: ipv6 PROHIBIT (THROW, NAT ..) matching not supported");
  });
});

// The TCP builder is used by the allocation test rig; referenced here to keep one import list per file.
void ipv4Tcp;
