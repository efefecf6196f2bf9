/**
 * REJECT: `--reject-with` parsing as iptables 1.8.9 does it, and the reply
 * packets as Linux 6.18 builds them.
 *
 * The "kernel fixtures" are real replies captured once from a netns lab
 * (client 10.9.0.1 / fd09::1 — router 10.9.0.2 / fd09::2 — server net
 * 10.9.1.0/24, fd19::/64) with `iptables -A FORWARD -p udp -j REJECT`,
 * `-A INPUT -p udp -j REJECT --reject-with icmp-admin-prohibited`,
 * `-p tcp -j REJECT --reject-with tcp-reset` (and the ip6tables
 * equivalents), captured with tcpdump on the client. Payloads were runs of
 * 'x' (0x78), so each packet is stored as its header bytes plus a fill count.
 *
 * The kernel test (root only) sends the replies sluice builds into a real
 * client's connection through the raw socket: connect() and recv() must fail
 * with ECONNREFUSED, and a zero IPv4 source must be filled by the kernel.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAN_RUN_KERNEL_TESTS, Netns, run } from "../../native-bindings/test/netns.js";
import { PcapReader } from "../../src/io/pcap.js";
import { checksum, fold, pseudoSumV4, pseudoSumV6, sumWords } from "../../src/packet/checksum.js";
import { IPPROTO } from "../../src/packet/constants.js";
import { PARSE, Packet } from "../../src/packet/packet.js";
import { HOOK } from "../../src/rules/context.js";
import {
  REJECT4,
  REJECT6,
  REJECT_REASON,
  REJECT_REASON_NAMES,
  RejectBuilder,
  parseRejectWith,
  rejectRuleError,
  rejectWithName,
  type RejectCallOptions,
} from "../../src/rules/reject.js";
import {
  fragmentV4,
  fragmentV6,
  fromHex,
  inetChecksum,
  ipv4Generic,
  ipv4Icmp,
  ipv4IcmpError,
  ipv4Tcp,
  ipv4Udp,
  ipv6Icmp,
  ipv6IcmpError,
  ipv6Tcp,
  ipv6Udp,
  parseAddr,
} from "../helpers/packets.js";

// ---------------------------------------------------------------- helpers

function fx(head: string, fill = 0): Uint8Array {
  const h = fromHex(head);
  const out = new Uint8Array(h.length + fill).fill(0x78);
  out.set(h);
  return out;
}

function parsed(bytes: Uint8Array): Packet {
  const p = new Packet();
  const st = p.parse(bytes, 0, bytes.length);
  expect(st === PARSE.OK || st === PARSE.FRAGMENT || st === PARSE.BAD_L4).toBe(true);
  return p;
}

function call(o: Partial<RejectCallOptions> = {}): RejectCallOptions {
  return { srcIsLocalDst: false, ...o };
}

function words6(addr: string): number[] {
  const b = parseAddr(addr);
  return [0, 4, 8, 12].map((i) => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0);
}

const u32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;

/** Every checksum of a reply verifies (IPv4 header, TCP/ICMP/ICMPv6 with their pseudo-headers). */
function expectValidChecksums(r: Uint8Array): void {
  if (r[0]! >> 4 === 4) {
    const hl = (r[0]! & 15) * 4;
    expect(checksum(r, 0, hl)).toBe(0);
    const l4 = r.length - hl;
    if (r[9] === IPPROTO.TCP) expect(fold(sumWords(r, hl, l4, pseudoSumV4(r, 0, IPPROTO.TCP, l4)))).toBe(0xffff);
    else expect(inetChecksum(r.subarray(hl))).toBe(0);
  } else {
    expect(fold(sumWords(r, 40, r.length - 40, pseudoSumV6(r, 0, r[6]!, r.length - 40)))).toBe(0xffff);
  }
}

const out = new Uint8Array(2048);
function build(rb: RejectBuilder, code: number, pkt: Uint8Array, c: RejectCallOptions = call(), now = 0): Uint8Array | null {
  const n = rb.build(code, parsed(pkt), out, now, c);
  return n === 0 ? null : out.slice(0, n);
}

// ---------------------------------------------------------------- kernel fixtures

// Client → server UDP (1000 bytes of 'x', TOS 0xb9, DF), rejected at the router's FORWARD.
const UDP4_FWD = fx("45b9040416c1400040110a5b0a0900010a090102d8c1000903f01916", 1000);
const UDP4_FWD_REPLY = fx(
  "45d80240317a0000400132570a0900020a0900010303acd10000000045b9040416c140003f110b5b0a0900010a090102d8c1000903f01916",
  520,
);
// Client → router UDP (10 bytes, TOS 0x1c), rejected at INPUT with icmp-admin-prohibited.
const UDP4_LOCAL = fx("451c00268bf7400040119a9f0a0900010a090002a630000900121438", 10);
const UDP4_LOCAL_REPLY = fx(
  "45dc004231860000400134450a0900020a090001030de81400000000451c00268bf7400040119a9f0a0900010a090002a630000900121438",
  10,
);
const UDP6_FWD = fx("6b99139f05801140fd090000000000000000000000000001fd190000000000000000000000000002844100090580ffb7", 1400);
const UDP6_FWD_REPLY = fx(
  "600dea8404d83a40fd090000000000000000000000000002fd09000000000000000000000000000101044f9b000000006b99139f0580113ffd090000000000000000000000000001fd190000000000000000000000000002844100090580ffb7",
  1184,
);
const UDP6_LOCAL = fx("61cb780c00121140fd090000000000000000000000000001fd090000000000000000000000000002b2c900090012fa39", 10);
const UDP6_LOCAL_REPLY = fx(
  "600ff02600423a40fd090000000000000000000000000002fd090000000000000000000000000001010117b20000000061cb780c00121140fd090000000000000000000000000001fd090000000000000000000000000002b2c900090012fa39",
  10,
);
const SYN4 = fx("4500003c5b8040004006ca270a0900010a09010293b80050fd1feb9700000000a002faf015430000020405b40402080a3917d94f000000000103030a");
const SYN4_RST = fx("4500002800004000400625bc0a0901020a090001005093b800000000fd1feb9850140000152f0000");
const SYN6 = fx(
  "600fa15b00280640fd090000000000000000000000000001fd190000000000000000000000000002a8d000500e70fa8b00000000a002fd20fa540000020405a00402080a7150498c000000000103030a",
);
const SYN6_RST = fx("6000000000140640fd190000000000000000000000000002fd0900000000000000000000000000010050a8d0000000000e70fa8c50140000038d0000");

describe("--reject-with (iptables 1.8.9)", () => {
  it("parses names, aliases and prefixes, case-insensitive, first entry wins", () => {
    const cases4: [string, number][] = [
      ["icmp-port-unreachable", REJECT4.PORT_UNREACHABLE],
      ["port-unreach", REJECT4.PORT_UNREACHABLE],
      ["ICMP-PORT", REJECT4.PORT_UNREACHABLE],
      ["icmp-h", REJECT4.HOST_UNREACHABLE],
      ["", REJECT4.NET_UNREACHABLE],
      ["i", REJECT4.NET_UNREACHABLE],
      ["p", REJECT4.PROTO_UNREACHABLE],
      ["h", REJECT4.HOST_UNREACHABLE],
      ["a", REJECT4.ADMIN_PROHIBITED],
      ["n", REJECT4.NET_UNREACHABLE],
      ["tcp", REJECT4.TCP_RESET],
      ["tcp-rst", REJECT4.TCP_RESET],
      ["net-prohib", REJECT4.NET_PROHIBITED],
      ["icmp-host-prohibited", REJECT4.HOST_PROHIBITED],
      ["admin-prohib", REJECT4.ADMIN_PROHIBITED],
      ["proto", REJECT4.PROTO_UNREACHABLE],
    ];
    for (const [t, v] of cases4) expect([t, parseRejectWith(t, 4)]).toEqual([t, v]);
    const cases6: [string, number][] = [
      ["", REJECT6.NO_ROUTE],
      ["icmp6", REJECT6.NO_ROUTE],
      ["icmp6-a", REJECT6.ADM_PROHIBITED],
      ["a", REJECT6.ADM_PROHIBITED],
      ["addr-unreach", REJECT6.ADDR_UNREACH],
      ["p", REJECT6.PORT_UNREACH],
      ["icmp6-p", REJECT6.PORT_UNREACH],
      ["POLICY", REJECT6.POLICY_FAIL],
      ["r", REJECT6.REJECT_ROUTE],
      ["reject-route", REJECT6.REJECT_ROUTE],
      ["tcp", REJECT6.TCP_RESET],
      ["tcp-reset", REJECT6.TCP_RESET],
      ["no-route", REJECT6.NO_ROUTE],
    ];
    for (const [t, v] of cases6) expect([t, parseRejectWith(t, 6)]).toEqual([t, v]);
  });

  it("refuses what iptables refuses, listing the valid values", () => {
    expect(() => parseRejectWith("foo", 4)).toThrow(/unknown reject type "foo".*icmp-port-unreachable \(port-unreach\)/);
    expect(() => parseRejectWith("echo-reply", 4)).toThrow(/no longer supported/);
    expect(() => parseRejectWith("tcp-rst", 6)).toThrow(/icmp6-port-unreachable/);
    expect(() => parseRejectWith("admin", 6)).toThrow(/unknown/);
    expect(() => parseRejectWith("icmp-port-unreachable", 6)).toThrow(/unknown/);
    expect(() => parseRejectWith("icmp6-not-neighbor", 6)).toThrow(/unknown/);
  });

  it("names values as iptables-save does and round-trips every value", () => {
    expect(rejectWithName(REJECT4.TCP_RESET, 4)).toBe("tcp-reset");
    expect(rejectWithName(REJECT4.ADMIN_PROHIBITED, 4)).toBe("icmp-admin-prohibited");
    expect(rejectWithName(REJECT6.ADM_PROHIBITED, 6)).toBe("icmp6-adm-prohibited");
    for (const v of Object.values(REJECT4)) expect(parseRejectWith(rejectWithName(v, 4), 4)).toBe(v);
    for (const v of Object.values(REJECT6)) expect(parseRejectWith(rejectWithName(v, 6), 6)).toBe(v);
    expect(() => rejectWithName(4, 4)).toThrow();
  });

  it("tcp-reset needs -p tcp without ! (reject_tg_check)", () => {
    expect(rejectRuleError(REJECT4.TCP_RESET, 4, IPPROTO.TCP, false)).toBeNull();
    expect(rejectRuleError(REJECT4.TCP_RESET, 4, 0, false)).toMatch(/-p tcp/);
    expect(rejectRuleError(REJECT4.TCP_RESET, 4, IPPROTO.TCP, true)).toMatch(/-p tcp/);
    expect(rejectRuleError(REJECT6.TCP_RESET, 6, IPPROTO.UDP, false)).toMatch(/-p tcp/);
    expect(rejectRuleError(REJECT4.PORT_UNREACHABLE, 4, 0, false)).toBeNull();
  });
});

describe("replies identical to the kernel's", () => {
  it("ICMP port unreachable for a forwarded datagram: 576 bytes, TOS 0xd8, quote with TTL-1", () => {
    const rb = new RejectBuilder();
    // The source is left 0 (the kernel fills it); with the router's address the rest must match byte for byte but the id.
    const r0 = build(rb, REJECT4.PORT_UNREACHABLE, UDP4_FWD, call({ forwarded: true, csumUnnecessary: true }))!;
    expect(u32(r0, 12)).toBe(0);
    // The captured datagram carries a partial checksum (CHECKSUM_PARTIAL over veth), which Linux does not verify.
    const r = build(rb, REJECT4.PORT_UNREACHABLE, UDP4_FWD, call({ forwarded: true, csumUnnecessary: true, icmpSource4: 0x0a090002 }))!;
    expect(r.length).toBe(576);
    expectValidChecksums(r);
    const k = UDP4_FWD_REPLY.slice();
    expect(u16(r, 4)).toBe(0); // id: the kernel numbers it when sent (raw(7)); Linux's own ICMP got 12666
    k[4] = 0; k[5] = 0; k[10] = 0; k[11] = 0;
    k.set([(checksum(k, 0, 20) >> 8) & 0xff, checksum(k, 0, 20) & 0xff], 10);
    expect(Buffer.from(r).toString("hex")).toBe(Buffer.from(k).toString("hex"));
  });

  it("ICMP admin prohibited for a datagram to this host: source = the original destination", () => {
    const rb = new RejectBuilder();
    const r = build(rb, REJECT4.ADMIN_PROHIBITED, UDP4_LOCAL, call({ srcIsLocalDst: true, csumUnnecessary: true }))!;
    const k = UDP4_LOCAL_REPLY.slice();
    k[4] = 0; k[5] = 0; k[10] = 0; k[11] = 0;
    k.set([(checksum(k, 0, 20) >> 8) & 0xff, checksum(k, 0, 20) & 0xff], 10);
    expect(Buffer.from(r).toString("hex")).toBe(Buffer.from(k).toString("hex"));
  });

  it("ICMPv6 port unreachable for a forwarded datagram: 1280 bytes, quote with hop limit - 1", () => {
    const rb = new RejectBuilder();
    const r = build(rb, REJECT6.PORT_UNREACH, UDP6_FWD, call({ forwarded: true, csumUnnecessary: true, icmpSource6: words6("fd09::2") }))!;
    expect(r.length).toBe(1280);
    expectValidChecksums(r);
    const k = UDP6_FWD_REPLY.slice();
    k[1] = 0; k[2] = 0; k[3] = 0; // the kernel's automatic flow label; sluice sends 0
    expect(Buffer.from(r).toString("hex")).toBe(Buffer.from(k).toString("hex"));
  });

  it("ICMPv6 administratively prohibited for a datagram to this host", () => {
    const rb = new RejectBuilder();
    const r = build(rb, REJECT6.ADM_PROHIBITED, UDP6_LOCAL, call({ srcIsLocalDst: true, csumUnnecessary: true }))!;
    const k = UDP6_LOCAL_REPLY.slice();
    k[1] = 0; k[2] = 0; k[3] = 0;
    expect(Buffer.from(r).toString("hex")).toBe(Buffer.from(k).toString("hex"));
  });

  it("TCP RST for a SYN (IPv4): seq 0, ACK isn+1, id 0, DF, TTL 64, window 0", () => {
    const rb = new RejectBuilder();
    const r = build(rb, REJECT4.TCP_RESET, SYN4, call({ csumUnnecessary: true }))!;
    expectValidChecksums(r);
    // The captured RST carried a partial checksum (CHECKSUM_PARTIAL across veth): compare all but it.
    const a = r.slice(), k = SYN4_RST.slice();
    a[36] = a[37] = k[36] = k[37] = 0;
    expect(Buffer.from(a).toString("hex")).toBe(Buffer.from(k).toString("hex"));
  });

  it("TCP RST for a SYN (IPv6): byte for byte", () => {
    const rb = new RejectBuilder();
    const r = build(rb, REJECT6.TCP_RESET, SYN6, call({ csumUnnecessary: true }))!;
    expect(Buffer.from(r).toString("hex")).toBe(Buffer.from(SYN6_RST).toString("hex"));
  });
});

describe("TCP RST", () => {
  const base = { src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80 };
  const base6 = { src: "2001:db8::1", dst: "2001:db8::2", sport: 40000, dport: 80 };

  it("answers a segment without ACK with ACK = seq + SYN + FIN + payload, seq 0", () => {
    const rb = new RejectBuilder();
    const cases: [string, string, number][] = [
      ["S", "", 1001],
      ["F", "", 1001],
      ["SF", "", 1002],
      ["P", "hello", 1005],
      ["", "", 1000],
      ["SF", "abc", 1005],
    ];
    for (const [flags, payload, ack] of cases) {
      for (const p of [ipv4Tcp({ ...base, seq: 1000, flags, payload }), ipv6Tcp({ ...base6, seq: 1000, flags, payload })]) {
        const r = build(rb, p[0]! >> 4 === 4 ? REJECT4.TCP_RESET : REJECT6.TCP_RESET, p)!;
        const t = r[0]! >> 4 === 4 ? 20 : 40;
        expect(u32(r, t + 4)).toBe(0);
        expect(u32(r, t + 8)).toBe(ack);
        expect(r[t + 13]).toBe(0x14); // RST|ACK
        expect(u16(r, t)).toBe(80);
        expect(u16(r, t + 2)).toBe(40000);
        expect(u16(r, t + 14)).toBe(0); // window
        expectValidChecksums(r);
      }
    }
  });

  it("wraps the acknowledgment number at 2^32", () => {
    const rb = new RejectBuilder();
    const r = build(rb, REJECT4.TCP_RESET, ipv4Tcp({ ...base, seq: 0xffffffff, flags: "S", payload: "ab" }))!;
    expect(u32(r, 28)).toBe(2);
  });

  it("answers a segment with ACK with seq = its ack_seq and no ACK flag", () => {
    const rb = new RejectBuilder();
    for (const p of [
      ipv4Tcp({ ...base, seq: 5, ack: 0xdeadbeef, flags: "PA", payload: "data" }),
      ipv6Tcp({ ...base6, seq: 5, ack: 0xdeadbeef, flags: "FA" }),
    ]) {
      const r = build(rb, p[0]! >> 4 === 4 ? REJECT4.TCP_RESET : REJECT6.TCP_RESET, p)!;
      const t = r[0]! >> 4 === 4 ? 20 : 40;
      expect(u32(r, t + 4)).toBe(0xdeadbeef);
      expect(u32(r, t + 8)).toBe(0);
      expect(r[t + 13]).toBe(0x04);
      expectValidChecksums(r);
    }
  });

  it("comes from the original destination, with Linux's IPv4 header and a configurable TTL / hop limit", () => {
    const rb = new RejectBuilder({ ttl: 33, hopLimit: 17 });
    const r = build(rb, REJECT4.TCP_RESET, ipv4Tcp({ ...base, tos: 0x10, ttl: 5, flags: "S" }))!;
    expect(Array.from(r.subarray(0, 10))).toEqual([0x45, 0, 0, 40, 0, 0, 0x40, 0, 33, 6]);
    expect(Array.from(r.subarray(12, 20))).toEqual([10, 0, 0, 2, 10, 0, 0, 1]);
    const r6 = build(rb, REJECT6.TCP_RESET, ipv6Tcp({ ...base6, flowLabel: 0x12345, tos: 0x20, flags: "S" }))!;
    expect(Array.from(r6.subarray(0, 8))).toEqual([0x60, 0, 0, 0, 0, 20, 6, 17]);
    expect(Array.from(r6.subarray(8, 24))).toEqual(Array.from(parseAddr("2001:db8::2")));
    expect(Array.from(r6.subarray(24, 40))).toEqual(Array.from(parseAddr("2001:db8::1")));
  });

  it("walks IPv6 extension headers to the TCP header", () => {
    const rb = new RejectBuilder();
    const p = ipv6Tcp({ ...base6, seq: 7, flags: "S", ext: [{ type: 0 }, { type: 60 }, { type: 44 }] });
    const r = build(rb, REJECT6.TCP_RESET, p)!;
    expect(u32(r, 48)).toBe(8);
  });

  it("sends nothing for a RST, a bad checksum, a non-first fragment, a non-TCP packet", () => {
    const rb = new RejectBuilder();
    const no = (p: Uint8Array, reason: number, c = call(), code = p[0]! >> 4 === 4 ? REJECT4.TCP_RESET : REJECT6.TCP_RESET): void => {
      expect(build(rb, code, p, c)).toBeNull();
      expect(REJECT_REASON_NAMES[rb.lastReason]).toBe(REJECT_REASON_NAMES[reason]);
    };
    no(ipv4Tcp({ ...base, flags: "R" }), REJECT_REASON.RST);
    no(ipv4Tcp({ ...base, flags: "RA" }), REJECT_REASON.RST);
    no(ipv6Tcp({ ...base6, flags: "R" }), REJECT_REASON.RST);
    no(ipv4Tcp({ ...base, flags: "S", badChecksum: true }), REJECT_REASON.BAD_CHECKSUM);
    no(ipv6Tcp({ ...base6, flags: "S", badChecksum: true }), REJECT_REASON.BAD_CHECKSUM);
    // With csumUnnecessary (CHECKSUM_PARTIAL) Linux does not look.
    expect(build(rb, REJECT4.TCP_RESET, ipv4Tcp({ ...base, flags: "S", badChecksum: true }), call({ csumUnnecessary: true }))).not.toBeNull();
    const big4 = ipv4Tcp({ ...base, flags: "S", payload: new Uint8Array(100) });
    no(fragmentV4(big4, 48)[1]!, REJECT_REASON.FRAGMENT);
    const big6 = ipv6Tcp({ ...base6, flags: "S", payload: new Uint8Array(100) });
    no(fragmentV6(big6, 48, 9)[1]!, REJECT_REASON.FRAGMENT);
    // The first fragment has a TCP header, but its checksum covers data it does not hold.
    no(fragmentV4(big4, 48)[0]!, REJECT_REASON.BAD_CHECKSUM);
    no(ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2" }), REJECT_REASON.NOT_TCP);
    no(ipv6Udp({ src: "2001:db8::1", dst: "2001:db8::2" }), REJECT_REASON.NOT_TCP);
  });

  it("sends nothing to or from broadcast, multicast or unspecified addresses", () => {
    const rb = new RejectBuilder();
    const t4 = (src: string, dst: string): Uint8Array => ipv4Tcp({ src, dst, flags: "S" });
    expect(build(rb, REJECT4.TCP_RESET, t4("10.0.0.1", "10.0.0.255"), call({ dstIsBroadcast: true }))).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.NOT_UNICAST_DST);
    expect(build(rb, REJECT4.TCP_RESET, t4("10.0.0.1", "224.0.0.5"))).toBeNull();
    expect(build(rb, REJECT4.TCP_RESET, t4("10.0.0.1", "255.255.255.255"))).toBeNull();
    expect(build(rb, REJECT4.TCP_RESET, t4("0.0.0.0", "10.0.0.2"))).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.NOT_UNICAST_SRC);
    const t6 = (src: string, dst: string): Uint8Array => ipv6Tcp({ src, dst, flags: "S" });
    expect(build(rb, REJECT6.TCP_RESET, t6("2001:db8::1", "ff02::1"))).toBeNull();
    expect(build(rb, REJECT6.TCP_RESET, t6("::", "2001:db8::2"))).toBeNull();
    expect(build(rb, REJECT6.TCP_RESET, t6("::ffff:10.0.0.1", "2001:db8::2"))).toBeNull();
    // Loopback, link-local, IPv4-compatible: unicast.
    expect(build(rb, REJECT6.TCP_RESET, t6("::1", "::1"))).not.toBeNull();
    expect(build(rb, REJECT6.TCP_RESET, t6("fe80::1", "fe80::2"))).not.toBeNull();
    expect(build(rb, REJECT6.TCP_RESET, t6("::10.0.0.1", "2001:db8::2"))).not.toBeNull();
  });

  it("TCP RSTs are not rate-limited", () => {
    const rb = new RejectBuilder();
    for (let i = 0; i < 200; i++) expect(build(rb, REJECT4.TCP_RESET, ipv4Tcp({ ...base, flags: "S" }), call(), 0)).not.toBeNull();
  });
});

describe("ICMP errors", () => {
  const v4 = { src: "10.0.0.1", dst: "10.0.0.2" };
  const v6 = { src: "2001:db8::1", dst: "2001:db8::2" };
  const local = call({ srcIsLocalDst: true });

  it("quote the whole datagram when it fits, else 548 (IPv4) / 1232 (IPv6) bytes", () => {
    for (const [size, expectQuote4, expectQuote6] of [
      [0, 28, 48],
      [100, 128, 148],
      [520, 548, 568],
      [521, 548, 569],
      [1184, 548, 1232],
      [1185, 548, 1232],
      [4000, 548, 1232],
    ] as const) {
      const rb = new RejectBuilder();
      const p4 = ipv4Udp({ ...v4, payload: new Uint8Array(size).fill(7) });
      const r4 = build(rb, REJECT4.PORT_UNREACHABLE, p4, local)!;
      expect(r4.length - 28).toBe(expectQuote4);
      expect(Array.from(r4.subarray(28))).toEqual(Array.from(p4.subarray(0, expectQuote4)));
      expectValidChecksums(r4);
      const p6 = ipv6Udp({ ...v6, payload: new Uint8Array(size).fill(7) });
      const r6 = build(rb, REJECT6.PORT_UNREACH, p6, local)!;
      expect(r6.length - 48).toBe(expectQuote6);
      expect(Array.from(r6.subarray(48))).toEqual(Array.from(p6.subarray(0, expectQuote6)));
      expectValidChecksums(r6);
    }
  });

  it("carry the right type and code for every --reject-with value", () => {
    const rb = new RejectBuilder({ icmpRatelimitMs: 0 });
    const codes4: [number, number][] = [
      [REJECT4.NET_UNREACHABLE, 0], [REJECT4.HOST_UNREACHABLE, 1], [REJECT4.PROTO_UNREACHABLE, 2],
      [REJECT4.PORT_UNREACHABLE, 3], [REJECT4.NET_PROHIBITED, 9], [REJECT4.HOST_PROHIBITED, 10],
      [REJECT4.ADMIN_PROHIBITED, 13],
    ];
    for (const [v, code] of codes4) {
      const r = build(rb, v, ipv4Udp(v4), local)!;
      expect([r[20], r[21]]).toEqual([3, code]);
    }
    const codes6: [number, number][] = [
      [REJECT6.NO_ROUTE, 0], [REJECT6.ADM_PROHIBITED, 1], [REJECT6.ADDR_UNREACH, 3],
      [REJECT6.PORT_UNREACH, 4], [REJECT6.POLICY_FAIL, 5], [REJECT6.REJECT_ROUTE, 6],
    ];
    for (const [v, code] of codes6) {
      const r = build(rb, v, ipv6Udp(v6), local)!;
      expect([r[40], r[41]]).toEqual([1, code]);
    }
    expect(build(rb, 4, ipv4Udp(v4), local)).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.BAD_CODE);
  });

  it("answer TCP, UDP, ICMP queries and unknown protocols; never ICMP errors", () => {
    const rb = new RejectBuilder({ icmpRatelimitMs: 0 });
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Tcp({ ...v4, flags: "S" }), local)).not.toBeNull();
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Icmp({ ...v4 }), local)).not.toBeNull();
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Icmp({ ...v4, type: 13, payload: new Uint8Array(12) }), local)).not.toBeNull();
    // An unknown protocol whose data checksums (here: none) is answered; Linux sums its data as it would ICMP.
    expect(build(rb, REJECT4.PROTO_UNREACHABLE, ipv4Generic({ ...v4, proto: 253 }), local)).not.toBeNull();
    expect(build(rb, REJECT4.PROTO_UNREACHABLE, ipv4Generic({ ...v4, proto: 253, payload: "zz" }), local)).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.BAD_CHECKSUM);
    expect(build(rb, REJECT4.PROTO_UNREACHABLE, ipv4Generic({ ...v4, proto: 253, payload: "zz" }), call({ srcIsLocalDst: true, csumUnnecessary: true }))).not.toBeNull();
    // GRE and friends are not verified.
    expect(build(rb, REJECT4.PROTO_UNREACHABLE, ipv4Generic({ ...v4, proto: 47, payload: "zz" }), local)).not.toBeNull();
    const inner = ipv4Udp({ src: "10.0.0.2", dst: "10.0.0.1" });
    for (const type of [3, 4, 5, 11, 12]) {
      expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4IcmpError({ ...v4, type, code: 0, inner }), local)).toBeNull();
      expect(rb.lastReason).toBe(REJECT_REASON.ICMP_ERROR);
    }
    // "Assume any unknown ICMP type is an error" (icmp_send).
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Icmp({ ...v4, type: 19 }), local)).toBeNull();
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Icmp({ ...v4, type: 40 }), local)).toBeNull();
    expect(build(rb, REJECT6.PORT_UNREACH, ipv6Icmp({ ...v6 }), local)).not.toBeNull();
    const inner6 = ipv6Udp({ src: "2001:db8::2", dst: "2001:db8::1" });
    for (const type of [1, 2, 3, 4, 100, 127]) {
      expect(build(rb, REJECT6.PORT_UNREACH, ipv6IcmpError({ ...v6, type, code: 0, inner: inner6 }), local)).toBeNull();
      expect(rb.lastReason).toBe(REJECT_REASON.ICMP_ERROR);
    }
  });

  it("verify checksums unless told not to; a zero UDP checksum is not verified", () => {
    const rb = new RejectBuilder({ icmpRatelimitMs: 0 });
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Udp({ ...v4, badChecksum: true }), local)).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.BAD_CHECKSUM);
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Udp({ ...v4, zeroChecksum: true }), local)).not.toBeNull();
    expect(build(rb, REJECT6.PORT_UNREACH, ipv6Udp({ ...v6, badChecksum: true }), local)).toBeNull();
    expect(build(rb, REJECT6.PORT_UNREACH, ipv6Udp({ ...v6, zeroChecksum: true }), local)).not.toBeNull();
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Icmp({ ...v4, badChecksum: true }), local)).toBeNull();
    expect(build(rb, REJECT6.PORT_UNREACH, ipv6Icmp({ ...v6, badChecksum: true }), local)).toBeNull();
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Udp({ ...v4, badChecksum: true }), call({ srcIsLocalDst: true, csumUnnecessary: true }))).not.toBeNull();
  });

  it("never answer non-first fragments, broadcast or multicast destinations, or unanswerable sources", () => {
    const rb = new RejectBuilder({ icmpRatelimitMs: 0 });
    const big4 = ipv4Udp({ ...v4, payload: new Uint8Array(200) });
    expect(build(rb, REJECT4.PORT_UNREACHABLE, fragmentV4(big4, 64)[2]!, call({ srcIsLocalDst: true, csumUnnecessary: true }))).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.FRAGMENT);
    const big6 = ipv6Udp({ ...v6, payload: new Uint8Array(200) });
    expect(build(rb, REJECT6.PORT_UNREACH, fragmentV6(big6, 64, 3)[1]!, local)).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.FRAGMENT);
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.255" }), call({ dstIsBroadcast: true }))).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.NOT_UNICAST_DST);
    expect(build(rb, REJECT4.PORT_UNREACHABLE, ipv4Udp({ src: "10.0.0.1", dst: "239.1.2.3" }))).toBeNull();
    expect(build(rb, REJECT6.PORT_UNREACH, ipv6Udp({ src: "2001:db8::1", dst: "ff05::1" }), call({ icmpSource6: words6("2001:db8::9") }))).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.NOT_UNICAST_DST);
    expect(build(rb, REJECT6.PORT_UNREACH, ipv6Udp({ src: "::", dst: "2001:db8::2" }), local)).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.NOT_UNICAST_SRC);
  });

  it("take their source from the caller: the original destination, 0 (kernel fills), or a given address", () => {
    const rb = new RejectBuilder({ icmpRatelimitMs: 0 });
    const p = ipv4Udp(v4);
    expect(Array.from(build(rb, REJECT4.PORT_UNREACHABLE, p, local)!.subarray(12, 20))).toEqual([10, 0, 0, 2, 10, 0, 0, 1]);
    expect(Array.from(build(rb, REJECT4.PORT_UNREACHABLE, p, call())!.subarray(12, 20))).toEqual([0, 0, 0, 0, 10, 0, 0, 1]);
    expect(Array.from(build(rb, REJECT4.PORT_UNREACHABLE, p, call({ icmpSource4: 0xc0000201 }))!.subarray(12, 16))).toEqual([192, 0, 2, 1]);
    const p6 = ipv6Udp(v6);
    expect(build(rb, REJECT6.PORT_UNREACH, p6, call())).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.NO_SOURCE);
    const r6 = build(rb, REJECT6.PORT_UNREACH, p6, call({ icmpSource6: Int32Array.from(words6("2001:db8::99")) }))!;
    expect(Array.from(r6.subarray(8, 24))).toEqual(Array.from(parseAddr("2001:db8::99")));
    expectValidChecksums(r6);
  });

  it("patch the quoted IPv4 checksum like ip_decrease_ttl, including the 0xffff corner", () => {
    const rb = new RejectBuilder({ icmpRatemask: 0 });
    for (let id = 0; id < 4000; id += 7) {
      const p = ipv4Udp({ ...v4, ipId: id, ttl: 9 });
      const r = build(rb, REJECT4.PORT_UNREACHABLE, p, call({ forwarded: true }))!;
      expect(r[28 + 8]).toBe(8);
      const stored = u16(r, 28 + 10);
      const q = r.slice(28, 48);
      q[10] = q[11] = 0;
      const fresh = checksum(q, 0, 20);
      // Same number in ones' complement; the kernel's arithmetic never yields 0xffff.
      expect(stored === fresh || (stored === 0 && fresh === 0xffff) || (stored === 0xffff && fresh === 0)).toBe(true);
      expect(stored).not.toBe(0xffff);
    }
  });

  it("does not overrun a small output buffer", () => {
    const rb = new RejectBuilder();
    const small = new Uint8Array(100);
    expect(rb.build(REJECT4.PORT_UNREACHABLE, parsed(ipv4Udp({ ...v4, payload: new Uint8Array(500) })), small, 0, local)).toBe(0);
    expect(rb.lastReason).toBe(REJECT_REASON.NO_ROOM);
  });
});

describe("rate limits (manual clock)", () => {
  const fwd = (src: string): Uint8Array => ipv4Udp({ src, dst: "10.9.9.9" });
  const fwd6 = (src: string): Uint8Array => ipv6Udp({ src, dst: "2001:db8:9::9" });
  const c4 = call();
  const c6 = call({ icmpSource6: words6("2001:db8::1") });

  it("per destination: a burst of 6, then one per icmp_ratelimit (1000 ms)", () => {
    const rb = new RejectBuilder();
    const sent = (now: number): boolean => build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.1"), c4, now) !== null;
    let n = 0;
    for (let i = 0; i < 20; i++) if (sent(0)) n++;
    expect(n).toBe(6);
    expect(rb.lastReason).toBe(REJECT_REASON.RATE_PEER);
    expect(sent(999)).toBe(false);
    expect(sent(1000)).toBe(true);
    expect(sent(1500)).toBe(false);
    expect(sent(2000)).toBe(true);
    // Another destination has its own bucket.
    expect(build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.2"), c4, 2000)).not.toBeNull();
    // After 6 s idle the bucket is full again.
    let m = 0;
    for (let i = 0; i < 10; i++) if (sent(8000)) m++;
    expect(m).toBe(6);
  });

  it("host-wide: 50 credits, refilled at icmp_msgs_per_sec in steps of at least 20 ms", () => {
    const rb = new RejectBuilder();
    let n = 0;
    for (let i = 0; i < 200; i++) if (build(rb, REJECT4.PORT_UNREACHABLE, fwd(`10.1.${i >> 8}.${i & 255}`), c4, 0) !== null) n++;
    expect(n).toBe(50);
    expect(rb.lastReason).toBe(REJECT_REASON.RATE_GLOBAL);
    // 10 ms later: still nothing (HZ/50); 20 ms later: 20 credits (1000/s).
    expect(build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.2.0.1"), c4, 10)).toBeNull();
    let m = 0;
    for (let i = 0; i < 100; i++) if (build(rb, REJECT4.PORT_UNREACHABLE, fwd(`10.3.0.${i}`), c4, 20) !== null) m++;
    expect(m).toBe(20);
    // IPv6 shares the budget.
    expect(build(rb, REJECT6.PORT_UNREACH, fwd6("2001:db8:1::1"), c6, 20)).toBeNull();
    expect(rb.lastReason).toBe(REJECT_REASON.RATE_GLOBAL);
  });

  it("IPv6: net.ipv6.icmp.ratelimit, shortened for wider route prefixes", () => {
    const count = (plen: number, span: number): number => {
      const rb = new RejectBuilder();
      const c = call({ icmpSource6: words6("2001:db8::1"), routePrefixLen6: plen });
      let n = 0;
      for (let t = 0; t <= span; t++) if (build(rb, REJECT6.PORT_UNREACH, fwd6("2001:db8:1::1"), c, t) !== null) n++;
      return n;
    };
    // 100 ms per message for a /128 (6 in the burst + one per 100 ms over 1 s).
    expect(count(128, 1000)).toBe(6 + 10);
    // /64: 100 >> 2 = 25 ms; /0: 100 >> 4 = 6 ms.
    expect(count(64, 1000)).toBe(6 + 40);
    expect(count(0, 600)).toBe(6 + 100);
  });

  it("loopback and OUTPUT exemptions follow Linux", () => {
    const rb = new RejectBuilder();
    const lo = call({ inLoopback: true });
    for (let i = 0; i < 100; i++) expect(build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.1"), lo, 0)).not.toBeNull();
    expect(rb.rate.globalCredit).toBe(0); // nothing consumed yet: the bucket was never even filled
    // A reply leaving through lo skips the per-destination bucket but consumes the host-wide budget.
    const rlo = call({ replyLoopback: true });
    let n = 0;
    for (let i = 0; i < 100; i++) if (build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.1"), rlo, 0) !== null) n++;
    expect(n).toBe(50);
    // ip6: at OUTPUT, nf_send_unreach6 makes the packet come "from lo".
    const out6 = call({ srcIsLocalDst: true, hook: HOOK.OUTPUT });
    for (let i = 0; i < 100; i++) expect(build(rb, REJECT6.PORT_UNREACH, fwd6("2001:db8::5"), out6, 0)).not.toBeNull();
  });

  it("types outside the ratemask are not limited at all; sysctls are options", () => {
    const rb = new RejectBuilder({ icmpRatemask: 0 });
    for (let i = 0; i < 100; i++) expect(build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.1"), c4, 0)).not.toBeNull();
    const rb2 = new RejectBuilder({ icmpRatelimitMs: 0, icmpMsgsBurst: 3 });
    let n = 0;
    for (let i = 0; i < 10; i++) if (build(rb2, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.1"), c4, 0) !== null) n++;
    expect(n).toBe(3);
    const rb3 = new RejectBuilder({ icmpv6Ratemask: [] });
    for (let i = 0; i < 100; i++) expect(build(rb3, REJECT6.PORT_UNREACH, fwd6("2001:db8::5"), c6, 0)).not.toBeNull();
  });

  it("takes 0..2 credits per message with a random source, as icmp_global_consume", () => {
    const seq = [0.1, 0.5, 0.9]; // 0, 1, 2 credits
    let k = 0;
    const rb = new RejectBuilder({ icmpRatelimitMs: 0, random: () => seq[k++ % 3]! });
    let n = 0;
    for (let i = 0; i < 200; i++) if (build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.1"), c4, 0) !== null) n++;
    expect(n).toBe(51); // 50 credits at 1 per message on average; the last one goes out on credit 1 taking 2
  });

  it("the per-destination table is bounded and keeps working when full", () => {
    const rb = new RejectBuilder({ peerCapacity: 16, icmpMsgsBurst: 1e9, icmpMsgsPerSec: 1e9 });
    expect(rb.rate.capacity).toBe(16);
    for (let i = 0; i < 5000; i++) build(rb, REJECT4.PORT_UNREACHABLE, fwd(`10.4.${i >> 8}.${i & 255}`), c4, i);
    // A hot destination still gets exactly its burst.
    let n = 0;
    for (let i = 0; i < 20; i++) if (build(rb, REJECT4.PORT_UNREACHABLE, fwd("10.0.0.77"), c4, 10_000) !== null) n++;
    expect(n).toBe(6);
  });
});

describe("allocation", () => {
  it("build() allocates nothing per call", () => {
    const rb = new RejectBuilder({ icmpRatemask: 0, icmpv6Ratemask: [] });
    const pkts = [ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", flags: "S" }), ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", payload: new Uint8Array(900) }), ipv6Udp({ src: "2001:db8::1", dst: "2001:db8::2", payload: new Uint8Array(1500) })].map(parsed);
    const codes = [REJECT4.TCP_RESET, REJECT4.PORT_UNREACHABLE, REJECT6.PORT_UNREACH];
    const c: RejectCallOptions = { srcIsLocalDst: true, forwarded: false };
    const buf = new Uint8Array(2048);
    for (let i = 0; i < 20_000; i++) rb.build(codes[i % 3]!, pkts[i % 3]!, buf, i, c);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 300_000; i++) rb.build(codes[i % 3]!, pkts[i % 3]!, buf, i, c);
    const grown = process.memoryUsage().heapUsed - before;
    expect(rb.counts[REJECT_REASON.SENT]).toBe(320_000);
    // 300k calls at even 16 bytes each would be 4.8 MB.
    expect(grown).toBeLessThan(1_500_000);
  });
});

// ---------------------------------------------------------------- the real kernel

/**
 * client (C) ── veth ── gateway (G) ── blackhole routes 10.77.1.0/24, fd77:1::/64
 * 10.77.0.1            10.77.0.2
 * fd77::1              fd77::2
 *
 * The client's traffic to the server net dies in G's blackhole routes
 * (silently: nothing answers); tcpdump in G captures it on arrival, sluice
 * builds the REJECT reply, and the addon's raw socket in G sends it.
 */
const CLIENT_PY = `
import socket, sys, errno
fam = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET
kind = socket.SOCK_STREAM if sys.argv[1] == 'tcp' else socket.SOCK_DGRAM
s = socket.socket(fam, kind)
s.settimeout(8)
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    if kind == socket.SOCK_DGRAM:
        s.send(b'x' * 100)
        s.recv(100)
    print('OK')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
`;

describe.skipIf(!CAN_RUN_KERNEL_TESTS)("the kernel accepts the replies (netns, raw socket)", () => {
  let C: Netns;
  let G: Netns;
  let dir: string;
  let RawSocketCtor: typeof import("../../src/io/rawsock.js").RawSocket;

  beforeAll(async () => {
    RawSocketCtor = (await import("../../src/io/rawsock.js")).RawSocket;
    dir = mkdtempSync(join(tmpdir(), "sl-rej-"));
    C = new Netns("sl-rej-c");
    G = new Netns("sl-rej-g");
    const cIf = `rc${process.pid % 100000}`;
    run("ip", ["link", "add", cIf, "netns", C.name, "type", "veth", "peer", "name", "g0", "netns", G.name]);
    C.exec("ip", ["link", "set", cIf, "name", "c0"]);
    C.exec("ip", ["addr", "add", "10.77.0.1/24", "dev", "c0"]);
    C.exec("ip", ["addr", "add", "fd77::1/64", "dev", "c0", "nodad"]);
    C.exec("ip", ["link", "set", "c0", "up"]);
    C.exec("ip", ["route", "add", "default", "via", "10.77.0.2"]);
    C.exec("ip", ["-6", "route", "add", "default", "via", "fd77::2"]);
    // Full checksums from the client, so sluice verifies them as it would on a real NIC.
    C.exec("ethtool", ["-K", "c0", "tx", "off"]);
    G.exec("ip", ["addr", "add", "10.77.0.2/24", "dev", "g0"]);
    G.exec("ip", ["addr", "add", "fd77::2/64", "dev", "g0", "nodad"]);
    G.exec("ip", ["link", "set", "g0", "up"]);
    G.exec("ip", ["route", "add", "blackhole", "10.77.1.0/24"]);
    G.exec("ip", ["-6", "route", "add", "blackhole", "fd77:1::/64"]);
    G.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  });

  afterAll(() => {
    C?.close();
    G?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts tcpdump in `ns` for one packet matching `filter`; resolves with the packet's L3 bytes. */
  async function captureOne(ns: Netns, ifname: string, filter: string, file: string): Promise<() => Promise<Uint8Array>> {
    const child = spawn("ip", ["netns", "exec", ns.name, "tcpdump", "-i", ifname, "-c", "1", "-U", "-w", file, filter], {
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 15_000,
    });
    await new Promise<void>((resolve, reject) => {
      let err = "";
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 5000);
      child.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        if (err.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return () =>
      new Promise<Uint8Array>((resolve, reject) => {
        child.on("exit", () => {
          try {
            const r = PcapReader.open(new Uint8Array(readFileSync(file)), file);
            if (!r.next()) throw new Error("nothing captured");
            resolve(r.buf.slice(r.l3Offset, r.l3Offset + r.l3Length));
          } catch (e) {
            reject(e);
          }
        });
      });
  }

  function client(proto: "tcp" | "udp", dst: string, port: number): Promise<string> {
    return new Promise((resolve) => {
      const child = spawn("ip", ["netns", "exec", C.name, "python3", "-c", CLIENT_PY, proto, dst, String(port)], {
        stdio: ["ignore", "pipe", "inherit"],
        timeout: 15_000,
      });
      let outText = "";
      child.stdout!.on("data", (d: Buffer) => (outText += d.toString()));
      child.on("exit", () => resolve(outText.trim()));
    });
  }

  async function rejectFlow(proto: "tcp" | "udp", dst: string, code: number, c: RejectCallOptions, tag: string): Promise<{ result: string; reply: Uint8Array; seen?: Uint8Array }> {
    const v6 = dst.includes(":");
    const filter = proto === "tcp" ? `tcp and dst host ${dst} and tcp[13] & 2 != 0` : `udp and dst host ${dst}`;
    const got = await captureOne(G, "g0", v6 && proto === "tcp" ? `ip6 and tcp and dst host ${dst}` : filter, join(dir, `${tag}-in.pcap`));
    const watch = await captureOne(C, "c0", v6 ? (proto === "tcp" ? "ip6 and tcp and src host " + dst : "icmp6 and ip6[40] == 1") : proto === "tcp" ? `tcp and src host ${dst}` : "icmp", join(dir, `${tag}-out.pcap`));
    const done = client(proto, dst, proto === "tcp" ? 80 : 9999);
    const pktBytes = await got();
    const p = new Packet();
    p.parse(pktBytes, 0, pktBytes.length);
    const rb = new RejectBuilder();
    const buf = new Uint8Array(1500);
    const n = rb.build(code, p, buf, 0, c);
    expect(REJECT_REASON_NAMES[rb.lastReason]).toBe("sent");
    const raw = new RawSocketCtor({ netns: G.path });
    try {
      expect(raw.sendOne(buf, 0, n)).toBe(1);
    } finally {
      raw.close();
    }
    const seen = await watch();
    return { result: await done, reply: buf.slice(0, n), seen };
  }

  it("IPv4: the RST for a real SYN makes connect() fail with ECONNREFUSED", async () => {
    const r = await rejectFlow("tcp", "10.77.1.2", REJECT4.TCP_RESET, call({ forwarded: true }), "rst4");
    expect(r.result).toBe("ECONNREFUSED");
    expect(Buffer.from(r.seen!).toString("hex")).toBe(Buffer.from(r.reply).toString("hex"));
  });

  it("IPv6: the RST for a real SYN makes connect() fail with ECONNREFUSED", async () => {
    const r = await rejectFlow("tcp", "fd77:1::2", REJECT6.TCP_RESET, call({ forwarded: true }), "rst6");
    expect(r.result).toBe("ECONNREFUSED");
  });

  it("IPv4: port unreachable with source 0 reaches a connected UDP socket; the kernel fills the source (raw(7))", async () => {
    const r = await rejectFlow("udp", "10.77.1.2", REJECT4.PORT_UNREACHABLE, call({ forwarded: true }), "icmp4");
    expect(r.result).toBe("ECONNREFUSED");
    const seen = r.seen!;
    // Source 0.0.0.0 became the gateway's address toward the client, as __icmp_send's route lookup picks it.
    expect(Array.from(seen.subarray(12, 16))).toEqual([10, 77, 0, 2]);
    // The id was 0 and is now numbered (no DF); everything after the IP header is ours.
    expect(seen[6]! & 0x40).toBe(0);
    expect(Buffer.from(seen.subarray(20)).toString("hex")).toBe(Buffer.from(r.reply.subarray(20)).toString("hex"));
    expect(checksum(seen, 0, 20)).toBe(0);
  });

  it("IPv6: port unreachable from the given source reaches a connected UDP socket", async () => {
    const r = await rejectFlow("udp", "fd77:1::2", REJECT6.PORT_UNREACH, call({ forwarded: true, icmpSource6: words6("fd77::2") }), "icmp6");
    expect(r.result).toBe("ECONNREFUSED");
    expect(Buffer.from(r.seen!).toString("hex")).toBe(Buffer.from(r.reply).toString("hex"));
  });

  it("the zero-source claim holds with tcpdump's own view too", () => {
    // Sanity: tcpdump reads what we captured (the file is a valid pcap).
    const r = spawnSync("tcpdump", ["-r", join(dir, "icmp4-out.pcap"), "-n"], { encoding: "utf8" });
    expect(r.stdout).toMatch(/10\.77\.0\.2 > 10\.77\.0\.1: ICMP 10\.77\.1\.2 udp port 9999 unreachable/);
  });
});
