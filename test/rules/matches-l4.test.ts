/**
 * -m tcp, udp, sctp, icmp, icmp6 and multiport on real packet bytes:
 * ranges, negation, non-first fragments, and iptables' load-time refusals
 * (messages checked against iptables 1.8.9 / Linux 6.18 in a netns).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { setNameFiles } from "../../src/rules/names.js";
import {
  fragmentV4, fragmentV6, ipv4Generic, ipv4Icmp, ipv4IcmpError, ipv4Tcp, ipv4Udp, ipv6Icmp, ipv6Tcp, ipv6Udp,
} from "../helpers/packets.js";
import { Rig } from "./matches-helpers.js";

const A = { src: "10.0.0.1", dst: "10.0.0.2" };
const A6 = { src: "2001:db8::1", dst: "2001:db8::2" };
const tcp = (sport: number, dport: number, flags = "S", extra: object = {}): Uint8Array => ipv4Tcp({ ...A, sport, dport, flags, ...extra });

// A services file of our own, so the test does not depend on the machine's /etc/services.
const dir = mkdtempSync(join(tmpdir(), "sluice-matches-"));
writeFileSync(join(dir, "services"), "ssh\t22/tcp\nhttp\t80/tcp www\nhttps\t443/tcp\ndomain\t53/tcp\ndomain\t53/udp\nsctpsvc\t3000/sctp\n");
setNameFiles({ services: join(dir, "services") });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("-m tcp ports", () => {
  const r = new Rig();
  it("single ports, ranges a:b, :b, a:, names from /etc/services", () => {
    expect(r.test("-p tcp -m tcp --dport 22", tcp(1000, 22))).toBe(true);
    expect(r.test("-p tcp -m tcp --dport 22", tcp(1000, 23))).toBe(false);
    expect(r.test("-p tcp -m tcp --sport 1000", tcp(1000, 23))).toBe(true);
    expect(r.test("-p tcp -m tcp --dport 20:25", tcp(1, 20))).toBe(true);
    expect(r.test("-p tcp -m tcp --dport 20:25", tcp(1, 25))).toBe(true);
    expect(r.test("-p tcp -m tcp --dport 20:25", tcp(1, 26))).toBe(false);
    expect(r.test("-p tcp -m tcp --dport :25", tcp(1, 0))).toBe(true);
    expect(r.test("-p tcp -m tcp --dport 65000:", tcp(1, 65535))).toBe(true);
    expect(r.test("-p tcp -m tcp --dport 65000:", tcp(1, 64999))).toBe(false);
    expect(r.test("-p tcp -m tcp --dport ssh", tcp(1, 22))).toBe(true);
    expect(r.test("-p tcp --destination-port http:https", tcp(1, 100))).toBe(true);
    // strtoul base 0, as iptables: hex and octal.
    expect(r.test("-p tcp --dport 0x16", tcp(1, 22))).toBe(true);
    expect(r.test("-p tcp --dport 022", tcp(1, 18))).toBe(true);
  });
  it("negation of each port option; both must hold", () => {
    expect(r.test("-p tcp ! --dport 22", tcp(1, 22))).toBe(false);
    expect(r.test("-p tcp ! --dport 22", tcp(1, 23))).toBe(true);
    expect(r.test("-p tcp --sport 1 ! --dport 22", tcp(1, 23))).toBe(true);
    expect(r.test("-p tcp --sport 2 ! --dport 22", tcp(1, 23))).toBe(false);
    expect(r.test("-p tcp ! --sport 1:10 --dport 22", tcp(11, 22))).toBe(true);
  });
  it("without options every TCP segment matches", () => {
    expect(r.test("-p tcp -m tcp", tcp(5, 6))).toBe(true);
  });
  it("IPv6 and extension headers", () => {
    const r6 = new Rig(6);
    const p = ipv6Tcp({ ...A6, sport: 5, dport: 443, flags: "S", ext: [{ type: 0 }, { type: 60 }] });
    expect(r6.test("-p tcp --dport 443", p)).toBe(true);
    expect(r6.test("-p tcp ! --dport 443", p)).toBe(false);
  });
});

describe("-m tcp flags and options", () => {
  const r = new Rig();
  it("--tcp-flags MASK COMP, names case-insensitive, ALL is the six classic flags", () => {
    expect(r.test("-p tcp --tcp-flags SYN,ACK SYN", tcp(1, 2, "S"))).toBe(true);
    expect(r.test("-p tcp --tcp-flags SYN,ACK SYN", tcp(1, 2, "SA"))).toBe(false);
    expect(r.test("-p tcp --tcp-flags syn,ack syn,ack", tcp(1, 2, "SA"))).toBe(true);
    expect(r.test("-p tcp --tcp-flags ALL NONE", tcp(1, 2, ""))).toBe(true);
    expect(r.test("-p tcp --tcp-flags ALL NONE", tcp(1, 2, "E"))).toBe(true); // ECE is not in ALL
    expect(r.test("-p tcp --tcp-flags ALL FIN,PSH,URG", tcp(1, 2, "FPU"))).toBe(true);
    // iptables 1.8.9: "Unknown TCP flag `ECE'" (libxt_tcp has no ECE/CWR names).
    expect(r.error("-p tcp --tcp-flags ECE,CWR ECE")).toMatch(/Unknown TCP flag `ECE'/);
    expect(r.test("-p tcp ! --tcp-flags SYN,ACK SYN", tcp(1, 2, "S"))).toBe(false);
    expect(r.test("-p tcp --tcp-flags SYN,,ACK SYN", tcp(1, 2, "S"))).toBe(true);
  });
  it("--syn is SYN,RST,ACK,FIN SYN", () => {
    expect(r.test("-p tcp --syn", tcp(1, 2, "S"))).toBe(true);
    expect(r.test("-p tcp --syn", tcp(1, 2, "SE"))).toBe(true);
    expect(r.test("-p tcp --syn", tcp(1, 2, "SA"))).toBe(false);
    expect(r.test("-p tcp --syn", tcp(1, 2, "SR"))).toBe(false);
    expect(r.test("-p tcp ! --syn", tcp(1, 2, "A"))).toBe(true);
  });
  it("--tcp-option finds an option kind in the header", () => {
    const syn = tcp(1, 2, "S", { options: { mss: 1460, sackPerm: true, ts: [1, 0], wscale: 7 } });
    expect(r.test("-p tcp --tcp-option 2", syn)).toBe(true);
    expect(r.test("-p tcp --tcp-option 3", syn)).toBe(true);
    expect(r.test("-p tcp --tcp-option 4", syn)).toBe(true);
    expect(r.test("-p tcp --tcp-option 8", syn)).toBe(true);
    expect(r.test("-p tcp --tcp-option 5", syn)).toBe(false);
    expect(r.test("-p tcp ! --tcp-option 5", syn)).toBe(true);
    // No options at all: tcp_find_option returns `invert`.
    expect(r.test("-p tcp --tcp-option 2", tcp(1, 2))).toBe(false);
    expect(r.test("-p tcp ! --tcp-option 2", tcp(1, 2))).toBe(true);
    // A NOP (1) is found too.
    expect(r.test("-p tcp --tcp-option 1", syn)).toBe(true);
    // Kind bytes inside another option's data are skipped over.
    const raw = tcp(1, 2, "S", { rawOptions: Uint8Array.from([2, 4, 0x1e, 0x1e]) }); // MSS 7710: data bytes 0x1e
    expect(r.test("-p tcp --tcp-option 30", raw)).toBe(false);
  });
});

describe("fragments", () => {
  const r = new Rig();
  it("a non-first fragment never matches a port match, negated or not (xt_tcp: fragoff != 0)", () => {
    const [first, second] = fragmentV4(tcp(1000, 22, "PA", { payload: "x".repeat(64) }), 24);
    expect(r.test("-p tcp --dport 22", first!)).toBe(true); // offset 0: the header is there
    expect(r.test("-p tcp --dport 22", second!)).toBe(false);
    // A first fragment too short for the TCP header: Linux hot-drops it; here it does not match.
    expect(r.test("-p tcp ! --dport 23", fragmentV4(tcp(1000, 22, "PA", { payload: "x".repeat(64) }), 16)[0]!)).toBe(false);
    expect(r.test("-p tcp ! --dport 22", second!)).toBe(false);
    expect(r.test("-p tcp ! --dport 23", second!)).toBe(false);
    expect(r.test("-p tcp -m tcp", second!)).toBe(false);
    const u = fragmentV4(ipv4Udp({ ...A, sport: 1, dport: 53, payload: "y".repeat(40) }), 16);
    expect(r.test("-p udp ! --dport 1", u[1]!)).toBe(false);
    expect(r.test("-p tcp -m multiport ! --dports 1,2", second!)).toBe(false);
    const ic = fragmentV4(ipv4Icmp({ ...A, payload: "z".repeat(40) }), 16);
    expect(r.test("-p icmp ! --icmp-type 0", ic[1]!)).toBe(false);
  });
  it("IPv6: the same with the fragment header", () => {
    const r6 = new Rig(6);
    const f = fragmentV6(ipv6Udp({ ...A6, sport: 7, dport: 53, payload: "q".repeat(64) }), 16, 77);
    expect(r6.test("-p udp --dport 53", f[0]!)).toBe(true);
    expect(r6.test("-p udp --dport 53", f[1]!)).toBe(false);
    expect(r6.test("-p udp ! --dport 53", f[1]!)).toBe(false);
  });
});

describe("-m udp, -m sctp", () => {
  const r = new Rig();
  it("ports", () => {
    const u = ipv4Udp({ ...A, sport: 5353, dport: 53 });
    expect(r.test("-p udp --dport 53", u)).toBe(true);
    expect(r.test("-p udp -m udp --sport 5000:6000 --dport domain", u)).toBe(true);
    expect(r.test("-p udp ! --sport 5353", u)).toBe(false);
    // SCTP common header: ports, verification tag, checksum.
    const sctp = ipv4Generic({ ...A, proto: 132, payload: Uint8Array.from([0x13, 0x88, 0x0b, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0]) });
    expect(r.test("-p sctp --sport 5000 --dport 3000", sctp)).toBe(true);
    expect(r.test("-p sctp -m sctp ! --dport 3000", sctp)).toBe(false);
    const short = ipv4Generic({ ...A, proto: 132, payload: Uint8Array.from([0x13, 0x88, 0x0b, 0xb8]) });
    expect(r.test("-p sctp --dport 3000", short)).toBe(false);
  });
  it("refusals", () => {
    expect(r.error("-p sctp -m sctp --chunk-types any DATA")).toMatch(/^t\.rules:1:17: sctp: --chunk-types is not supported/);
    expect(r.error("-p udp -m udp --dport 70000")).toBe("t.rules:1:15: invalid port/service `70000' specified");
  });
});

describe("-m icmp, -m icmp6", () => {
  const r = new Rig();
  const echo = ipv4Icmp({ ...A, type: 8, code: 0 });
  const unreach = ipv4IcmpError({ ...A, type: 3, code: 3, inner: ipv4Udp({ ...A, sport: 1, dport: 2 }) });
  it("names, abbreviations, numbers, type/code, any", () => {
    expect(r.test("-p icmp --icmp-type echo-request", echo)).toBe(true);
    expect(r.test("-p icmp --icmp-type ping", echo)).toBe(true);
    expect(r.test("-p icmp --icmp-type ECHO-REQ", echo)).toBe(true);
    expect(r.test("-p icmp --icmp-type 8", echo)).toBe(true);
    expect(r.test("-p icmp --icmp-type 8/0", echo)).toBe(true);
    expect(r.test("-p icmp --icmp-type 8/1", echo)).toBe(false);
    expect(r.test("-p icmp --icmp-type echo-reply", echo)).toBe(false);
    expect(r.test("-p icmp --icmp-type destination-unreachable", unreach)).toBe(true);
    expect(r.test("-p icmp --icmp-type port-unreachable", unreach)).toBe(true);
    expect(r.test("-p icmp --icmp-type host-unreachable", unreach)).toBe(false);
    expect(r.test("-p icmp --icmp-type 3/3", unreach)).toBe(true);
    expect(r.test("-p icmp --icmp-type any", unreach)).toBe(true);
    expect(r.test("-p icmp --icmp-type 255", echo)).toBe(true); // 255 is `any` in ipt_icmp
    expect(r.test("-p icmp ! --icmp-type any", echo)).toBe(false);
    expect(r.test("-p icmp ! --icmp-type echo-request", unreach)).toBe(true);
    expect(r.test("-p icmp -m icmp", unreach)).toBe(true);
  });
  it("ICMPv6: its own table, no `any`, no 255 wildcard", () => {
    const r6 = new Rig(6);
    const e6 = ipv6Icmp({ ...A6, type: 128, code: 0 });
    expect(r6.test("-p icmpv6 --icmpv6-type echo-request", e6)).toBe(true);
    expect(r6.test("-p ipv6-icmp -m icmp6 --icmpv6-type 128", e6)).toBe(true);
    expect(r6.test("-p icmpv6 -m icmpv6 --icmpv6-type ping", e6)).toBe(true);
    expect(r6.test("-p icmpv6 --icmpv6-type echo-reply", e6)).toBe(false);
    expect(r6.test("-p icmpv6 --icmpv6-type 255", e6)).toBe(false);
    expect(r6.test("-p icmpv6 ! --icmpv6-type neighbor-solicitation", e6)).toBe(true);
    const ns = ipv6Icmp({ ...A6, type: 135, code: 0 });
    expect(r6.test("-p icmpv6 --icmpv6-type neighbour-solicitation", ns)).toBe(true);
    expect(r6.error("-p icmpv6 --icmpv6-type any")).toBe("t.rules:1:11: Unknown ICMPv6 type `any'");
    expect(r6.error("-p icmpv6 --icmpv6-type echo")).toBe("t.rules:1:11: Ambiguous ICMPv6 type `echo': `echo-request' or `echo-reply'?");
    expect(r6.error("-m icmp6 --icmpv6-type 128")).toBe("t.rules:1:1: icmp6 match: only valid for protocol 58: the rule needs -p icmpv6");
  });
  it("iptables' messages for bad types", () => {
    expect(r.error("-p icmp --icmp-type foo")).toBe("t.rules:1:9: Unknown ICMP type `foo'");
    expect(r.error("-p icmp --icmp-type echo")).toBe("t.rules:1:9: Ambiguous ICMP type `echo': `echo-reply' or `echo-request'?");
    expect(r.error("-p icmp --icmp-type 256")).toBe("t.rules:1:9: Unknown ICMP type `256'");
    expect(r.error("-p icmp --icmp-type 8/")).toBe("t.rules:1:9: Unknown ICMP code `8/'");
    expect(r.error("-p icmp --icmp-type 3/300")).toBe("t.rules:1:9: Unknown ICMP code `3/300'");
    expect(r.error("-p icmp --icmp-type 3/1/2")).toBe("t.rules:1:9: unknown character /");
    expect(r.error("-p tcp -m icmp --icmp-type 8")).toBe("t.rules:1:8: icmp match: only valid for protocol 1: the rule needs -p icmp");
  });
});

describe("-m multiport", () => {
  const r = new Rig();
  it("lists and ranges, source / destination / either", () => {
    expect(r.test("-p tcp -m multiport --dports 22,80,443", tcp(1, 80))).toBe(true);
    expect(r.test("-p tcp -m multiport --dports 22,80,443", tcp(1, 81))).toBe(false);
    expect(r.test("-p tcp -m multiport --dports 1000:2000,3000", tcp(1, 1500))).toBe(true);
    expect(r.test("-p tcp -m multiport --dports ssh,http", tcp(1, 80))).toBe(true);
    expect(r.test("-p tcp -m multiport --sports 1:5", tcp(3, 80))).toBe(true);
    expect(r.test("-p tcp -m multiport --sports 1:5", tcp(6, 3))).toBe(false);
    expect(r.test("-p tcp -m multiport --ports 7", tcp(7, 1))).toBe(true);
    expect(r.test("-p tcp -m multiport --ports 7", tcp(1, 7))).toBe(true);
    expect(r.test("-p tcp -m multiport --ports 2:3,7", tcp(1, 2))).toBe(true);
    expect(r.test("-p tcp -m multiport ! --dports 22,80", tcp(1, 80))).toBe(false);
    expect(r.test("-p tcp -m multiport ! --dports 22,80", tcp(1, 81))).toBe(true);
    expect(r.test("-p udp -m multiport --dports 53", ipv4Udp({ ...A, sport: 9, dport: 53 }))).toBe(true);
  });
  it("15 ports, a range counting as two", () => {
    const fifteen = Array.from({ length: 15 }, (_, i) => i + 1).join(",");
    expect(r.test(`-p tcp -m multiport --dports ${fifteen}`, tcp(1, 15))).toBe(true);
    expect(r.error(`-p tcp -m multiport --dports ${fifteen},16`)).toBe("t.rules:1:21: too many ports specified");
    expect(r.test("-p tcp -m multiport --dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15", tcp(1, 15))).toBe(true);
    expect(r.error("-p tcp -m multiport --dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15:16")).toBe("t.rules:1:21: too many ports specified");
  });
  it("iptables' refusals", () => {
    expect(r.error("-m multiport --dports 1,2")).toBe("t.rules:1:1: multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
    expect(r.error("-p icmp -m multiport --dports 1")).toBe("t.rules:1:9: multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP");
    expect(r.error("! -p tcp -m multiport --dports 1")).toBe("t.rules:1:10: multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP");
    expect(r.error("-p tcp -m multiport --dports 5:1")).toBe("t.rules:1:21: invalid portrange specified");
    expect(r.error("-p tcp -m multiport --dports 5:5")).toBe("t.rules:1:21: invalid portrange specified");
    expect(r.error("-p tcp -m multiport --dports 1,,2")).toBe("t.rules:1:21: invalid port/service `' specified");
    expect(r.error("-p tcp -m multiport --dports 1:")).toBe("t.rules:1:21: invalid port/service `' specified");
    expect(r.error("-p tcp -m multiport --sports 1 --dports 2")).toBe(
      't.rules:1:32: multiport: option "--sports" cannot be used together with "--dports".',
    );
    expect(r.error("-p tcp -m multiport")).toMatch(/^t\.rules:1:8: multiport expects an option/);
  });
});

describe("load-time refusals of -m tcp", () => {
  const r = new Rig();
  it("needs -p tcp, not negated (x_tables: only valid for protocol 6)", () => {
    expect(r.error("-m tcp --dport 22")).toBe("t.rules:1:1: tcp match: only valid for protocol 6: the rule needs -p tcp");
    expect(r.error("-p udp -m tcp --dport 22")).toBe("t.rules:1:8: tcp match: only valid for protocol 6: the rule needs -p tcp");
    expect(r.error("! -p tcp -m tcp --dport 22")).toBe("t.rules:1:10: tcp match: only valid for protocol 6: not with ! -p tcp");
    expect(r.error("-m udp")).toBe("t.rules:1:1: udp match: only valid for protocol 17: the rule needs -p udp");
    expect(r.error("-m sctp")).toBe("t.rules:1:1: sctp match: only valid for protocol 132: the rule needs -p sctp");
  });
  it("bad ports and ranges, with the option's position", () => {
    expect(r.error("-p tcp --dport 70000")).toBe("t.rules:1:8: invalid port/service `70000' specified");
    expect(r.error("-p tcp --dport 65536")).toBe("t.rules:1:8: invalid port/service `65536' specified");
    expect(r.error("-p tcp --dport -1")).toBe("t.rules:1:8: invalid port/service `-1' specified");
    expect(r.error("-p tcp --dport SSH")).toBe("t.rules:1:8: invalid port/service `SSH' specified");
    expect(r.error("-p tcp --sport 5:3")).toBe("t.rules:1:8: invalid portrange (min > max)");
    expect(r.error("-p tcp --dport 1:2:3")).toBe("t.rules:1:8: invalid port/service `2:3' specified");
    expect(r.error("-p tcp --dport ''")).toBe("t.rules:1:8: invalid port/service `' specified");
  });
  it("flags and options", () => {
    expect(r.error("-p tcp --tcp-flags FOO SYN")).toBe("t.rules:1:8: Unknown TCP flag `FOO'");
    expect(r.error("-p tcp --tcp-option 0")).toBe('t.rules:1:8: Bad TCP option "0"');
    expect(r.error("-p tcp --tcp-option 256")).toBe('t.rules:1:8: Bad TCP option "256"');
    expect(r.error("-p tcp --syn --tcp-flags SYN SYN")).toBe("t.rules:1:14: Only one of `--syn' or `--tcp-flags'  allowed");
    expect(r.error("-p tcp --dport 1 --dport 2")).toBe('t.rules:1:18: tcp: option "--dport" can only be used once.');
  });
});
