/**
 * LOG: options as iptables 1.8.9 parses and saves them, and the line the
 * kernel prints for a packet.
 *
 * The kernel oracle (root only): in a private netns, LOG rules in OUTPUT
 * and INPUT (with and without every flag) watch packets that the test
 * crafts with test/helpers/packets.ts and sends through sluice's raw socket
 * to an address on lo; the kernel's lines are read back from dmesg and
 * compared with formatLog() for the same bytes. A netns's LOG lines reach
 * the kernel log only with net.netfilter.nf_log_all_netns=1 (a global
 * knob): the test sets it only when it is 0, and restores it afterwards.
 * `SLUICE_LOG_ORACLE_DUMP=1` prints each (packet, line) pair; some of them
 * are kept below as fixtures, so the comparison also runs without root.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAN_RUN_KERNEL_TESTS, Netns, sleep } from "../../native-bindings/test/netns.js";
import {
  ARPHRD,
  LOG_DEFAULT_LEVEL,
  LOG_FLAG,
  TargetOptionError,
  formatLog,
  parseLogLevel,
  parseLogOptions,
  parsePrefix,
  parseXtUint,
  saveLogOptions,
  xtablesSaveString,
  type LogMac,
  type LogOptions,
  type LogOwner,
} from "../../src/rules/log.js";
import {
  fragmentV4,
  fragmentV6,
  fromHex,
  hex,
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

const opt = (name: string, ...args: string[]): { name: string; args: string[] } => ({ name, args });

describe("LOG options (iptables 1.8.9)", () => {
  it("levels: names (case-sensitive, iptables' own table) and numbers 0..7 as strtoul base 0", () => {
    const ok: [string, number][] = [
      ["emerg", 0], ["panic", 0], ["alert", 1], ["crit", 2], ["error", 3], ["warning", 4], ["notice", 5],
      ["info", 6], ["debug", 7], ["0", 0], ["7", 7], ["0x3", 3], ["07", 7], [" 3", 3], ["+5", 5],
    ];
    for (const [t, v] of ok) expect([t, parseLogLevel(t)]).toEqual([t, v]);
    for (const t of ["warn", "err", "WARNING", "8", "-1", "08", "3x", "", "0x", "constructor"]) {
      expect(() => parseLogLevel(t)).toThrow(/log level ".*" unknown/);
    }
  });

  it("parseXtUint follows xtables_strtoul_base", () => {
    expect(parseXtUint("65535", 65535)).toBe(65535);
    expect(parseXtUint("65536", 65535)).toBeUndefined();
    expect(parseXtUint("0x10", 65535)).toBe(16);
    expect(parseXtUint("010", 65535)).toBe(8);
    expect(parseXtUint("\t 7", 65535)).toBe(7);
    expect(parseXtUint("-0", 65535)).toBeUndefined();
    expect(parseXtUint("7 ", 65535)).toBeUndefined();
    expect(parseXtUint("", 65535)).toBeUndefined();
  });

  it("prefix: at least 1 byte, no newline, cut to 29 bytes silently", () => {
    expect(parsePrefix("x: ", 29)).toBe("x: ");
    expect(parsePrefix("12345678901234567890123456789", 29)).toBe("12345678901234567890123456789");
    expect(parsePrefix("123456789012345678901234567890", 29)).toBe("12345678901234567890123456789");
    expect(() => parsePrefix("", 29)).toThrow(/minimum length of 1/);
    expect(() => parsePrefix("a\nb", 29)).toThrow(/Newlines not allowed in --log-prefix/);
  });

  it("compiles a LOG target's options; defaults warning, no prefix, no flags", () => {
    expect(parseLogOptions([])).toEqual({ prefix: "", level: LOG_DEFAULT_LEVEL, flags: 0 });
    const o = parseLogOptions([
      opt("--log-prefix", "x: "), opt("--log-level", "debug"), opt("--log-tcp-sequence"), opt("--log-tcp-options"),
      opt("--log-ip-options"), opt("--log-uid"), opt("--log-macdecode"),
    ]);
    expect(o).toEqual({ prefix: "x: ", level: 7, flags: 0x2f });
    expect(() => parseLogOptions([opt("--log-level", "3"), opt("--log-level", "4")])).toThrow(/can only be used once/);
    try {
      parseLogOptions([opt("--log-uid"), opt("--log-level", "loud")]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TargetOptionError);
      expect((e as TargetOptionError).optionIndex).toBe(1);
    }
  });

  it("saves as iptables-save does (checked against iptables -S)", () => {
    const save = (...o: { name: string; args: string[] }[]): string => saveLogOptions(parseLogOptions(o));
    expect(save()).toBe("");
    expect(save(opt("--log-level", "warning"))).toBe("");
    expect(save(opt("--log-level", "0x3"))).toBe(" --log-level 3");
    expect(save(opt("--log-level", "debug"), opt("--log-prefix", "x: "))).toBe(' --log-prefix "x: " --log-level 7');
    expect(save(opt("--log-prefix", "12345678901234567890123456789"))).toBe(" --log-prefix 12345678901234567890123456789");
    expect(save(opt("--log-prefix", 'a"b\\c d'))).toBe(' --log-prefix "a\\"b\\\\c d"');
    expect(save(opt("--log-macdecode"), opt("--log-uid"), opt("--log-ip-options"), opt("--log-tcp-options"), opt("--log-tcp-sequence"))).toBe(
      " --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid --log-macdecode",
    );
    expect(xtablesSaveString("é")).toBe(' "é"');
  });
});

// ---------------------------------------------------------------- the lines

const NONE: LogOptions = { prefix: "x: ", level: 4, flags: 0 };
const ALL: LogOptions = { prefix: "y: ", level: 7, flags: 0x2f };
const LO_MAC: LogMac = { buf: fromHex("000000000000 000000000000 0800"), off: 0, len: 14, hwType: ARPHRD.LOOPBACK };
const LO_MAC6: LogMac = { buf: fromHex("000000000000 000000000000 86dd"), off: 0, len: 14, hwType: ARPHRD.LOOPBACK };
const ROOT: LogOwner = { uid: 0, gid: 0 };

function line(o: LogOptions, p: Uint8Array, inName: string, outName: string, mac: LogMac | null, mark: number, owner: LogOwner | null = null): string {
  return formatLog(o, { buf: p, off: 0, length: p.length }, inName, outName, mac, mark, owner).line;
}

const A4 = { src: "10.66.0.2", dst: "10.66.0.1" };
const A6 = { src: "fd66::2", dst: "fd66::1" };

/** The packets the kernel oracle sends (and the unit tests reuse). */
function oraclePackets(): { name: string; bytes: Uint8Array[]; input: Uint8Array[] }[] {
  const one = (name: string, p: Uint8Array): { name: string; bytes: Uint8Array[]; input: Uint8Array[] } => ({ name, bytes: [p], input: [p] });
  const tcpFlags = ipv4Tcp({ ...A4, sport: 1, dport: 2, seq: 5, ack: 6, flags: "FSRPAUEC", win: 1000, urg: 7, ipId: 2 });
  tcpFlags[32] = tcpFlags[32]! | 0x0f; // reserved bits and AE
  const udpBig = ipv4Udp({ ...A4, sport: 7, dport: 9999, ipId: 99, payload: new Uint8Array(100).fill(0x61) });
  const udp6Big = ipv6Udp({ ...A6, sport: 7, dport: 9999, payload: new Uint8Array(100).fill(0x61) });
  const frags6 = fragmentV6(udp6Big, 48, 0xabcdef);
  const ah6 = new Uint8Array(16);
  ah6.set([59, 2, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
  return [
    one("tcp-syn", ipv4Tcp({ ...A4, sport: 40000, dport: 80, seq: 1000, flags: "S", options: { mss: 1460, sackPerm: true, ts: [1, 0], wscale: 7 }, ipId: 4321, df: true, tos: 0x10 })),
    one("tcp-flags", tcpFlags),
    one("udp", ipv4Udp({ ...A4, sport: 5353, dport: 9999, payload: "hello", ipId: 3, tos: 0xb9 })),
    one("icmp-echo", ipv4Icmp({ ...A4, id: 77, seq: 3, ipId: 4 })),
    one("icmp-unreach", ipv4IcmpError({ ...A4, ipId: 5, type: 3, code: 3, inner: ipv4Udp({ src: "10.66.0.1", dst: "10.66.0.2", sport: 9999, dport: 5353, ipId: 50, payload: "zz" }) })),
    one("icmp-frag-needed", ipv4IcmpError({ ...A4, ipId: 6, type: 3, code: 4, mtu: 1400, inner: ipv4Tcp({ src: "10.66.0.1", dst: "10.66.0.2", sport: 80, dport: 40000, flags: "A", ipId: 51 }) })),
    one("icmp-redirect", ipv4IcmpError({ ...A4, ipId: 7, type: 5, code: 1, rest: 0x0a4200fe, inner: ipv4Icmp({ src: "10.66.0.1", dst: "10.66.0.9", ipId: 52 }) })),
    one("icmp-paramprob", ipv4IcmpError({ ...A4, ipId: 8, type: 12, code: 0, rest: 0x14000000, inner: ipv4Udp({ src: "10.66.0.1", dst: "10.66.0.2", ipId: 53 }) })),
    one("icmp-time-exceeded", ipv4IcmpError({ ...A4, ipId: 9, type: 11, code: 0, inner: ipv4Icmp({ src: "10.66.0.1", dst: "10.66.0.2", ipId: 54 }) })),
    one("icmp-timestamp", ipv4Icmp({ ...A4, ipId: 10, type: 13, payload: new Uint8Array(12) })),
    one("icmp-timestamp-short", ipv4Icmp({ ...A4, ipId: 11, type: 13, payload: new Uint8Array(4) })),
    one("icmp-unreach-short", ipv4IcmpError({ ...A4, ipId: 12, type: 3, code: 1, quoteBytes: 10, inner: ipv4Udp({ src: "10.66.0.1", dst: "10.66.0.2", ipId: 55 }) })),
    {
      name: "ip-options",
      bytes: [ipv4Udp({ ...A4, ipId: 13, ipOptions: Uint8Array.from([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0]) })],
      // ip_rcv_options() records the receiving address in the Record Route option before INPUT sees it.
      input: [ipv4Udp({ ...A4, ipId: 13, ipOptions: Uint8Array.from([7, 11, 8, 10, 66, 0, 1, 0, 0, 0, 0]) })],
    },
    { name: "ip-fragments", bytes: fragmentV4(udpBig, 48), input: [udpBig] },
    one("proto-253", ipv4Generic({ ...A4, ipId: 14, proto: 253, payload: "abc" })),
    one("gre", ipv4Generic({ ...A4, ipId: 15, proto: 47, payload: new Uint8Array(8) })),
    one("ah", ipv4Generic({ ...A4, ipId: 16, proto: 51, payload: Uint8Array.from([17, 4, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0]) })),
    one("esp", ipv4Generic({ ...A4, ipId: 17, proto: 50, payload: Uint8Array.from([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1, 9, 9]) })),
    one("tcp-short", ipv4Generic({ ...A4, ipId: 18, proto: 6, payload: new Uint8Array(8) })),
    one("udp-short", ipv4Generic({ ...A4, ipId: 19, proto: 17, payload: new Uint8Array(4) })),
    one("icmp-short", ipv4Generic({ ...A4, ipId: 20, proto: 1, payload: Uint8Array.from([8, 0, 0, 0]) })),
    one("tcp6-syn", ipv6Tcp({ ...A6, sport: 40001, dport: 80, seq: 77, flags: "S", flowLabel: 0x12345, tos: 0x20, hopLimit: 33, options: { mss: 1440, sackPerm: true, ts: [5, 0], wscale: 9 } })),
    one("udp6", ipv6Udp({ ...A6, sport: 5353, dport: 9999, payload: "hi" })),
    one("icmp6-echo", ipv6Icmp({ ...A6, id: 5, seq: 6 })),
    one("icmp6-unreach", ipv6IcmpError({ ...A6, type: 1, code: 4, inner: ipv6Udp({ src: "fd66::1", dst: "fd66::2", sport: 9999, dport: 5353 }) })),
    one("icmp6-toobig", ipv6IcmpError({ ...A6, type: 2, code: 0, mtu: 1280, inner: ipv6Tcp({ src: "fd66::1", dst: "fd66::2", flags: "A" }) })),
    one("icmp6-paramprob", ipv6IcmpError({ ...A6, type: 4, code: 0, rest: 40, inner: ipv6Udp({ src: "fd66::1", dst: "fd66::2" }) })),
    one("ip6-ext", ipv6Udp({ ...A6, sport: 1, dport: 9999, ext: [{ type: 0 }, { type: 60 }, { type: 43 }, { type: 44, fragId: 0x1234 }] })),
    { name: "ip6-fragments", bytes: frags6, input: frags6 },
    one("ah6", ipv6Generic({ ...A6, proto: 51, payload: ah6 })),
    one("esp6", ipv6Generic({ ...A6, proto: 50, payload: Uint8Array.from([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1]) })),
    one("icmp6-short", ipv6Generic({ ...A6, proto: 58, payload: Uint8Array.from([128, 0, 0, 0]) })),
    one("proto6-253", ipv6Generic({ ...A6, proto: 253, payload: "abc" })),
  ];
}

/**
 * Lines the Linux 6.18 kernel printed for some of the oracle's packets
 * (SLUICE_LOG_ORACLE_DUMP=1 output): [packet name, index of the packet's
 * bytes, hook and rule, line]. OUTPUT: IN= OUT=lo, mark 0x2a, owner
 * uid 0 / gid 0; INPUT: IN=lo with lo's all-zero MAC header.
 */
const KERNEL_LINES: [string, number, "o0" | "o1" | "i0" | "i1", string][] = [
  ["tcp-syn", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=60 TOS=0x10 PREC=0x00 TTL=64 ID=4321 DF PROTO=TCP SPT=40000 DPT=80 SEQ=1000 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B40402080A000000010000000001030307) UID=0 GID=0 MARK=0x2a "],
  ["tcp-syn", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=60 TOS=0x10 PREC=0x00 TTL=64 ID=4321 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 MARK=0x2a "],
  ["tcp-flags", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=2 PROTO=TCP SPT=1 DPT=2 SEQ=5 ACK=6 WINDOW=1000 RES=0x38 AE CWR ECE URG ACK PSH RST SYN FIN URGP=7 UID=0 GID=0 MARK=0x2a "],
  ["tcp-flags", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=2 PROTO=TCP SPT=1 DPT=2 WINDOW=1000 RES=0x38 AE CWR ECE URG ACK PSH RST SYN FIN URGP=7 MARK=0x2a "],
  ["udp", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=33 TOS=0x18 PREC=0xA0 TTL=64 ID=3 PROTO=UDP SPT=5353 DPT=9999 LEN=13 UID=0 GID=0 MARK=0x2a "],
  ["udp", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=33 TOS=0x18 PREC=0xA0 TTL=64 ID=3 PROTO=UDP SPT=5353 DPT=9999 LEN=13 MARK=0x2a "],
  ["icmp-echo", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=4 PROTO=ICMP TYPE=8 CODE=0 ID=77 SEQ=3 UID=0 GID=0 MARK=0x2a "],
  ["icmp-echo", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=4 PROTO=ICMP TYPE=8 CODE=0 ID=77 SEQ=3 MARK=0x2a "],
  ["icmp-unreach", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=5 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.66.0.1 DST=10.66.0.2 LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=50 PROTO=UDP SPT=9999 DPT=5353 LEN=10 ] UID=0 GID=0 MARK=0x2a "],
  ["icmp-unreach", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=5 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.66.0.1 DST=10.66.0.2 LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=50 PROTO=UDP SPT=9999 DPT=5353 LEN=10 ] MARK=0x2a "],
  ["icmp-frag-needed", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=6 PROTO=ICMP TYPE=3 CODE=4 [SRC=10.66.0.1 DST=10.66.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=51 PROTO=TCP INCOMPLETE [8 bytes] ] MTU=1400 UID=0 GID=0 MARK=0x2a "],
  ["icmp-frag-needed", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=6 PROTO=ICMP TYPE=3 CODE=4 [SRC=10.66.0.1 DST=10.66.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=51 PROTO=TCP INCOMPLETE [8 bytes] ] MTU=1400 MARK=0x2a "],
  ["icmp-redirect", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=7 PROTO=ICMP TYPE=5 CODE=1 GATEWAY=10.66.0.254 [SRC=10.66.0.1 DST=10.66.0.9 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=52 PROTO=ICMP TYPE=8 CODE=0 ID=0 SEQ=0 ] UID=0 GID=0 MARK=0x2a "],
  ["icmp-redirect", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=7 PROTO=ICMP TYPE=5 CODE=1 GATEWAY=10.66.0.254 [SRC=10.66.0.1 DST=10.66.0.9 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=52 PROTO=ICMP TYPE=8 CODE=0 ID=0 SEQ=0 ] MARK=0x2a "],
  ["icmp-paramprob", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=8 PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 UID=0 GID=0 MARK=0x2a "],
  ["icmp-paramprob", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=8 PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 MARK=0x2a "],
  ["icmp-time-exceeded", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=9 PROTO=ICMP TYPE=11 CODE=0 [SRC=10.66.0.1 DST=10.66.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=54 PROTO=ICMP TYPE=8 CODE=0 ID=0 SEQ=0 ] UID=0 GID=0 MARK=0x2a "],
  ["icmp-time-exceeded", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=9 PROTO=ICMP TYPE=11 CODE=0 [SRC=10.66.0.1 DST=10.66.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=54 PROTO=ICMP TYPE=8 CODE=0 ID=0 SEQ=0 ] MARK=0x2a "],
  ["icmp-timestamp", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=10 PROTO=ICMP TYPE=13 CODE=0 UID=0 GID=0 MARK=0x2a "],
  ["icmp-timestamp", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=10 PROTO=ICMP TYPE=13 CODE=0 MARK=0x2a "],
  ["icmp-timestamp-short", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=11 PROTO=ICMP TYPE=13 CODE=0 INCOMPLETE [12 bytes] UID=0 GID=0 MARK=0x2a "],
  ["icmp-timestamp-short", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=11 PROTO=ICMP TYPE=13 CODE=0 INCOMPLETE [12 bytes] MARK=0x2a "],
  ["icmp-unreach-short", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=38 TOS=0x00 PREC=0x00 TTL=64 ID=12 PROTO=ICMP TYPE=3 CODE=1 INCOMPLETE [18 bytes] UID=0 GID=0 MARK=0x2a "],
  ["icmp-unreach-short", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=38 TOS=0x00 PREC=0x00 TTL=64 ID=12 PROTO=ICMP TYPE=3 CODE=1 INCOMPLETE [18 bytes] MARK=0x2a "],
  ["ip-options", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=13 OPT (070B04000000000000000000) PROTO=UDP SPT=40000 DPT=9 LEN=8 UID=0 GID=0 MARK=0x2a "],
  ["ip-options", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=13 PROTO=UDP SPT=40000 DPT=9 LEN=8 MARK=0x2a "],
  ["ip-fragments", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=68 TOS=0x00 PREC=0x00 TTL=64 ID=99 MF PROTO=UDP SPT=7 DPT=9999 LEN=108 UID=0 GID=0 MARK=0x2a "],
  ["ip-fragments", 1, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=68 TOS=0x00 PREC=0x00 TTL=64 ID=99 MF FRAG:6 PROTO=UDP UID=0 GID=0 MARK=0x2a "],
  ["ip-fragments", 2, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=99 FRAG:12 PROTO=UDP UID=0 GID=0 MARK=0x2a "],
  ["ip-fragments", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=128 TOS=0x00 PREC=0x00 TTL=64 ID=99 PROTO=UDP SPT=7 DPT=9999 LEN=108 MARK=0x2a "],
  ["proto-253", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=23 TOS=0x00 PREC=0x00 TTL=64 ID=14 PROTO=253 UID=0 GID=0 MARK=0x2a "],
  ["proto-253", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=23 TOS=0x00 PREC=0x00 TTL=64 ID=14 PROTO=253 MARK=0x2a "],
  ["gre", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=15 PROTO=47 UID=0 GID=0 MARK=0x2a "],
  ["gre", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=15 PROTO=47 MARK=0x2a "],
  ["ah", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=36 TOS=0x00 PREC=0x00 TTL=64 ID=16 PROTO=AH SPI=0x1234 UID=0 GID=0 MARK=0x2a "],
  ["ah", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=36 TOS=0x00 PREC=0x00 TTL=64 ID=16 PROTO=AH SPI=0x1234 MARK=0x2a "],
  ["esp", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=17 PROTO=ESP SPI=0xcafebabe UID=0 GID=0 MARK=0x2a "],
  ["esp", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=17 PROTO=ESP SPI=0xcafebabe MARK=0x2a "],
  ["tcp-short", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=18 PROTO=TCP INCOMPLETE [8 bytes] "],
  ["tcp-short", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=18 PROTO=TCP INCOMPLETE [8 bytes] "],
  ["udp-short", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=24 TOS=0x00 PREC=0x00 TTL=64 ID=19 PROTO=UDP INCOMPLETE [4 bytes] "],
  ["udp-short", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=24 TOS=0x00 PREC=0x00 TTL=64 ID=19 PROTO=UDP INCOMPLETE [4 bytes] "],
  ["icmp-short", 0, "o1", "IN= OUT=lo SRC=10.66.0.2 DST=10.66.0.1 LEN=24 TOS=0x00 PREC=0x00 TTL=64 ID=20 PROTO=ICMP INCOMPLETE [4 bytes] UID=0 GID=0 MARK=0x2a "],
  ["icmp-short", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.66.0.2 DST=10.66.0.1 LEN=24 TOS=0x00 PREC=0x00 TTL=64 ID=20 PROTO=ICMP INCOMPLETE [4 bytes] MARK=0x2a "],
  ["tcp6-syn", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=80 TC=32 HOPLIMIT=33 FLOWLBL=74565 PROTO=TCP SPT=40001 DPT=80 SEQ=77 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405A00402080A000000050000000001030309) UID=0 GID=0 MARK=0x2a "],
  ["tcp6-syn", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=80 TC=32 HOPLIMIT=33 FLOWLBL=74565 PROTO=TCP SPT=40001 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 MARK=0x2a "],
  ["udp6", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=50 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=9999 LEN=10 UID=0 GID=0 MARK=0x2a "],
  ["udp6", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=50 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=9999 LEN=10 MARK=0x2a "],
  ["icmp6-echo", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=5 SEQ=6 UID=0 GID=0 MARK=0x2a "],
  ["icmp6-echo", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=5 SEQ=6 MARK=0x2a "],
  ["icmp6-unreach", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 [SRC=fd66:0000:0000:0000:0000:0000:0000:0001 DST=fd66:0000:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=9999 DPT=5353 LEN=8 ] UID=0 GID=0 MARK=0x2a "],
  ["icmp6-unreach", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 [SRC=fd66:0000:0000:0000:0000:0000:0000:0001 DST=fd66:0000:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=9999 DPT=5353 LEN=8 ] MARK=0x2a "],
  ["icmp6-toobig", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=108 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=2 CODE=0 [SRC=fd66:0000:0000:0000:0000:0000:0000:0001 DST=fd66:0000:0000:0000:0000:0000:0000:0002 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=80 SEQ=0 ACK=0 WINDOW=64240 RES=0x00 ACK URGP=0 ] MTU=1280 UID=0 GID=0 MARK=0x2a "],
  ["icmp6-toobig", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=108 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=2 CODE=0 [SRC=fd66:0000:0000:0000:0000:0000:0000:0001 DST=fd66:0000:0000:0000:0000:0000:0000:0002 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 ACK URGP=0 ] MTU=1280 MARK=0x2a "],
  ["icmp6-paramprob", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=4 CODE=0 POINTER=00000028 [SRC=fd66:0000:0000:0000:0000:0000:0000:0001 DST=fd66:0000:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=40000 DPT=9 LEN=8 ] UID=0 GID=0 MARK=0x2a "],
  ["icmp6-paramprob", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=4 CODE=0 POINTER=00000028 [SRC=fd66:0000:0000:0000:0000:0000:0000:0001 DST=fd66:0000:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=40000 DPT=9 LEN=8 ] MARK=0x2a "],
  ["ip6-ext", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( ) OPT ( ) OPT ( ) OPT ( FRAG:0 ID:00001234 ) PROTO=UDP SPT=1 DPT=9999 LEN=8 UID=0 GID=0 MARK=0x2a "],
  ["ip6-ext", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 FRAG:0 ID:00001234 PROTO=UDP SPT=1 DPT=9999 LEN=8 MARK=0x2a "],
  ["ip6-fragments", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( FRAG:0 INCOMPLETE ID:00abcdef ) PROTO=UDP SPT=7 DPT=9999 LEN=108 UID=0 GID=0 MARK=0x2a "],
  ["ip6-fragments", 1, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( FRAG:48 INCOMPLETE ID:00abcdef ) PROTO=UDP UID=0 GID=0 MARK=0x2a "],
  ["ip6-fragments", 2, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( FRAG:96 ID:00abcdef ) PROTO=UDP UID=0 GID=0 MARK=0x2a "],
  ["ip6-fragments", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 FRAG:0 INCOMPLETE ID:00abcdef PROTO=UDP SPT=7 DPT=9999 LEN=108 MARK=0x2a "],
  ["ip6-fragments", 1, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 FRAG:48 INCOMPLETE ID:00abcdef PROTO=UDP MARK=0x2a "],
  ["ip6-fragments", 2, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 FRAG:96 ID:00abcdef PROTO=UDP MARK=0x2a "],
  ["ah6", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=56 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( AH SPI=0xdeadbeef ) PROTO=59 UID=0 GID=0 MARK=0x2a "],
  ["ah6", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=56 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=59 MARK=0x2a "],
  ["esp6", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( ESP SPI=0xcafebabe )"],
  ["esp6", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 "],
  ["icmp6-short", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=44 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 INCOMPLETE [4 bytes] "],
  ["icmp6-short", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=44 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 INCOMPLETE [4 bytes] "],
  ["proto6-253", 0, "o1", "IN= OUT=lo SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=43 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=253 UID=0 GID=0 MARK=0x2a "],
  ["proto6-253", 0, "i0", "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=fd66:0000:0000:0000:0000:0000:0000:0002 DST=fd66:0000:0000:0000:0000:0000:0000:0001 LEN=43 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=253 MARK=0x2a "],
];

describe("formatLog against the kernel's lines (fixtures)", () => {
  const pkts = new Map(oraclePackets().map((p) => [p.name, p]));
  it.skipIf(KERNEL_LINES.length === 0)("prints every stored line the same", () => {
    for (const [name, idx, rule, expected] of KERNEL_LINES) {
      const p = pkts.get(name)!;
      const bytes = rule[0] === "o" ? p.bytes[idx]! : p.input[idx]!;
      // Stored without the per-run tag and the rule's "o1: " prefix.
      expect([name, rule, actualLine(rule, bytes, "").slice(4)]).toEqual([name, rule, expected]);
    }
  });
});

function actualLine(rule: "o0" | "o1" | "i0" | "i1", bytes: Uint8Array, tag = "TAG"): string {
  const o = rule.endsWith("0") ? { ...NONE, prefix: `${tag}${rule}: ` } : { ...ALL, prefix: `${tag}${rule}: ` };
  if (rule[0] === "o") return line(o, bytes, "", "lo", null, 0x2a, ROOT);
  return line(o, bytes, "lo", "", bytes[0]! >> 4 === 6 ? LO_MAC6 : LO_MAC, 0x2a);
}

describe("formatLog", () => {
  it("prints the common part, MAC= only with an input interface, fields as an object", () => {
    const p = ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, flags: "S", ipId: 54321, df: true });
    const eth = { buf: fromHex("020000000002 020000000001 0800"), off: 0, len: 14 };
    const r = formatLog(NONE, { buf: p, off: 0, length: p.length }, "eth0", "", eth, 0);
    expect(r.line).toBe(
      "x: IN=eth0 OUT= MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00 SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    );
    expect(r.fields).toMatchObject({ prefix: "x: ", level: 4, levelName: "warning", in: "eth0", out: "", mac: "02:00:00:00:00:02:02:00:00:00:00:01:08:00", src: "10.0.0.1", dst: "10.0.0.2", len: 40, ttl: 64, id: 54321, ipFlags: ["DF"], proto: "TCP", spt: 40000, dpt: 80, window: 64240, tcpFlags: ["SYN"], urgp: 0 });
    expect(line(NONE, p, "", "eth1", eth, 0)).toMatch(/^x: IN= OUT=eth1 SRC=/);
    expect(line(NONE, p, "tun0", "", null, 0)).toMatch(/^x: IN=tun0 OUT= MAC= SRC=/);
    expect(line({ ...NONE, flags: LOG_FLAG.MACDECODE }, p, "eth0", "", eth, 0)).toMatch(/IN=eth0 OUT= MACSRC=02:00:00:00:00:01 MACDST=02:00:00:00:00:02 MACPROTO=0800 SRC=/);
    // --log-macdecode on a non-Ethernet device falls back to MAC=.
    expect(line({ ...NONE, flags: LOG_FLAG.MACDECODE }, p, "lo", "", LO_MAC, 0)).toMatch(/IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=/);
    // Ethernet without a MAC header: nothing at all.
    expect(line({ ...NONE, flags: LOG_FLAG.MACDECODE }, p, "eth0", "", null, 0)).toMatch(/IN=eth0 OUT= SRC=/);
  });

  it("prints UID/GID only with --log-uid and an owner, MARK when non-zero", () => {
    const p = ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2" });
    expect(line({ ...NONE, flags: LOG_FLAG.UID }, p, "", "eth0", null, 0xdeadbeef, { uid: 1000, gid: 100 })).toMatch(/ LEN=8 UID=1000 GID=100 MARK=0xdeadbeef $/);
    expect(line(NONE, p, "", "eth0", null, 0, { uid: 1000, gid: 100 })).toMatch(/ LEN=8 $/);
  });

  it("IPv6 addresses in the full %pI6 form", () => {
    const p = ipv6Udp({ src: "2001:db8::1", dst: "::1", flowLabel: 0xabcde, tos: 0xb8 });
    expect(line(NONE, p, "", "lo", null, 0)).toBe(
      "x: IN= OUT=lo SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=0000:0000:0000:0000:0000:0000:0000:0001 LEN=48 TC=184 HOPLIMIT=64 FLOWLBL=703710 PROTO=UDP SPT=40000 DPT=9 LEN=8 ",
    );
  });

  it("never throws on truncated or garbage input", () => {
    const all = oraclePackets().flatMap((p) => p.bytes);
    for (const p of all) {
      for (let n = 0; n <= p.length; n++) {
        for (const o of [NONE, ALL]) {
          expect(() => formatLog(o, { buf: p.subarray(0, n), off: 0, length: n }, "lo", "", LO_MAC, 1, ROOT)).not.toThrow();
        }
      }
    }
    const r = formatLog(NONE, { buf: new Uint8Array(10), off: 0, length: 10 }, "", "lo", null, 0);
    expect(r.line).toBe("x: IN= OUT=lo TRUNCATED");
  });
});

// ---------------------------------------------------------------- the real kernel

const KNOB = "/proc/sys/net/netfilter/nf_log_all_netns";

describe.skipIf(!CAN_RUN_KERNEL_TESTS)("formatLog against the real kernel (netns, dmesg)", () => {
  let ns: Netns;
  let knobBefore = "";
  const tag = `sl${randomBytes(3).toString("hex")}`;
  let raw: import("../../src/io/rawsock.js").RawSocket;

  beforeAll(async () => {
    const { RawSocket } = await import("../../src/io/rawsock.js");
    knobBefore = readFileSync(KNOB, "utf8").trim();
    if (knobBefore !== "1") writeFileSync(KNOB, "1");
    ns = new Netns("sl-log");
    ns.exec("ip", ["addr", "add", "10.66.0.1/24", "dev", "lo"]);
    ns.exec("ip", ["-6", "addr", "add", "fd66::1/64", "dev", "lo", "nodad"]);
    for (const v6 of [false, true]) {
      const src = v6 ? "fd66::2" : "10.66.0.2";
      ns.iptables(v6, ["-A", "OUTPUT", "-s", src, "-j", "LOG", "--log-prefix", `${tag}o0: `]);
      ns.iptables(v6, ["-A", "OUTPUT", "-s", src, "-j", "LOG", "--log-prefix", `${tag}o1: `, "--log-level", "debug", "--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid", "--log-macdecode"]);
      ns.iptables(v6, ["-A", "INPUT", "-s", src, "-j", "LOG", "--log-prefix", `${tag}i0: `]);
      ns.iptables(v6, ["-A", "INPUT", "-s", src, "-j", "LOG", "--log-prefix", `${tag}i1: `, "--log-level", "debug", "--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid", "--log-macdecode"]);
    }
    raw = new RawSocket({ netns: ns.path, mark: 0x2a });
  });

  afterAll(() => {
    raw?.close();
    ns?.close();
    if (knobBefore !== "" && knobBefore !== "1") writeFileSync(KNOB, knobBefore);
  });

  /** This run's kernel lines: [rule, level, text]. */
  function kernelLines(): [string, number, string][] {
    const r = spawnSync("dmesg", ["-r"], { encoding: "utf8", maxBuffer: 64 << 20 });
    const out: [string, number, string][] = [];
    for (const l of r.stdout.split("\n")) {
      const m = /^<(\d+)>\[\s*[\d.]+\] (.*)$/.exec(l);
      if (m === null || !m[2]!.startsWith(tag)) continue;
      out.push([m[2]!.slice(tag.length, tag.length + 2), Number(m[1]) & 7, m[2]!]);
    }
    return out;
  }

  it("prints what the kernel prints, at OUTPUT and INPUT, with and without every flag", async () => {
    const dump = process.env.SLUICE_LOG_ORACLE_DUMP === "1";
    let seen = kernelLines().length;
    const problems: string[] = [];
    for (const p of oraclePackets()) {
      for (const b of p.bytes) expect(raw.sendOne(b, 0, b.length)).toBe(1);
      const want = 2 * p.bytes.length + 2 * p.input.length;
      let lines = kernelLines().slice(seen);
      for (let t = 0; t < 100 && lines.length < want; t++) {
        await sleep(20);
        lines = kernelLines().slice(seen);
      }
      await sleep(30);
      lines = kernelLines().slice(seen);
      seen += lines.length;
      const byRule = (r: string): [string, number, string][] => lines.filter((l) => l[0] === r);
      for (const rule of ["o0", "o1", "i0", "i1"] as const) {
        const got = byRule(rule);
        const sent = rule[0] === "o" ? p.bytes : p.input;
        if (got.length !== sent.length) problems.push(`${p.name} ${rule}: ${got.length} lines for ${sent.length} packets: ${got.map((g) => g[2]).join(" | ")}`);
        got.forEach(([, level, text], i) => {
          expect(level).toBe(rule.endsWith("1") ? 7 : 4);
          const b = sent[i];
          if (b === undefined) return;
          const mine = actualLine(rule, b, tag);
          if (dump) console.log(JSON.stringify([p.name, i, rule, text.slice(tag.length + 4), hex(b).replace(/ /g, "")]));
          if (mine !== text) problems.push(`${p.name} ${rule}[${i}]\n kernel: ${JSON.stringify(text)}\n sluice: ${JSON.stringify(mine)}`);
        });
      }
    }
    expect(problems).toEqual([]);
  }, 60_000);
});
