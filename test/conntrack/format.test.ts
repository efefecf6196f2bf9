/**
 * The text formats, byte for byte against what the real kernel and
 * conntrack-tools printed (reference/linux-conntrack.md §1.13 and the
 * captures in config/): /proc/net/nf_conntrack, `conntrack -L`
 * (`-o extended`), `conntrack -E` (`-o extended`, `-o timestamp`).
 *
 * Two kinds of oracle: (1) config/sample.pcap replayed through the tracker
 * with the capture's own clock must give exactly the kernel's event stream
 * and, at a moment inside the window the kernel's `conntrack -L` was taken,
 * exactly its table, timeouts included; (2) flows built to match the
 * §1.13 lines, with the snapshot's timeout set to the value shown.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { resolveConntrackConfig } from "../../src/conntrack/config.js";
import { CTINFO, EVENT, STATUS, TCP_STATE } from "../../src/conntrack/constants.js";
import { formatConntrackLine, formatEventLine, formatProcLine } from "../../src/conntrack/format.js";
import { ConnSnapshot } from "../../src/conntrack/snapshot.js";
import { Conntrack } from "../../src/conntrack/tracker.js";
import { AF } from "../../src/packet/constants.js";
import { Packet } from "../../src/packet/packet.js";
import { ipv4Icmp, ipv4Tcp, ipv4Udp, ipv6Icmp, ipv6Udp, parseAddr, type TcpFields } from "../helpers/packets.js";

const CONFIG = new URL("../../config/", import.meta.url);
const lines = (name: string): string[] =>
  readFileSync(new URL(name, CONFIG), "utf8").split("\n").filter((l) => l.trim() !== "");

/** One tracker with a manual clock; "drop INVALID, accept the rest". */
class Rig {
  readonly ct: Conntrack;
  readonly p = new Packet();
  now = 0;
  constructor(over: Record<string, unknown> = {}) {
    this.ct = new Conntrack(resolveConntrackConfig({ max: 1024, ...over }));
  }
  send(pkt: Uint8Array, now = this.now): number {
    this.now = now;
    const ci = this.ct.process(this.p, this.p.parse(pkt, 0, pkt.length), now, 0);
    if (ci === CTINFO.INVALID) this.ct.abort();
    else this.ct.confirm(now);
    return ci;
  }
  /** Snapshot of the last packet's entry. */
  snap(i = this.ct.entry): ConnSnapshot {
    const s = new ConnSnapshot();
    this.ct.snapshot(i, this.now, s);
    return s;
  }
  events(fmt: (s: ConnSnapshot) => string): string[] {
    const out: string[] = [];
    const s = new ConnSnapshot();
    while (this.ct.events.shift(s)) out.push(fmt(s));
    return out;
  }
}

/** Raw IP packets and their times (ms) from a classic little-endian Ethernet pcap. */
function readPcap(buf: Uint8Array): { pkt: Uint8Array; ms: number }[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  expect(dv.getUint32(0, true)).toBe(0xa1b2c3d4);
  expect(dv.getUint32(20, true)).toBe(1); // LINKTYPE_ETHERNET
  const out: { pkt: Uint8Array; ms: number }[] = [];
  for (let o = 24; o + 16 <= buf.length; ) {
    const sec = dv.getUint32(o, true), usec = dv.getUint32(o + 4, true), caplen = dv.getUint32(o + 8, true);
    const frame = buf.subarray(o + 16, o + 16 + caplen);
    const type = (frame[12] << 8) | frame[13];
    if (type === 0x0800 || type === 0x86dd) out.push({ pkt: frame.slice(14), ms: sec * 1000 + usec / 1000 });
    o += 16 + caplen;
  }
  return out;
}

/** config/sample.pcap through a tracker, with the capture's clock. */
function replaySample(): Rig {
  const rig = new Rig();
  const pkts = readPcap(new Uint8Array(readFileSync(new URL("sample.pcap", CONFIG))));
  expect(pkts).toHaveLength(lines("sample.txt").length);
  for (const { pkt, ms } of pkts) expect(rig.send(pkt, ms)).not.toBe(CTINFO.INVALID);
  return rig;
}

const stripTimestamp = (l: string): string => l.replace(/^\[[0-9]+\.[0-9]{6}\]\t/, "");
const stripL3 = (l: string): string => l.replace(/^(\s*\[\w+\] )?ipv[46]\s+\d+ /, "$1");

describe("the kernel's captures, replayed (config/sample.pcap)", () => {
  it("conntrack -E -o extended: the same event stream, line for line", () => {
    const rig = replaySample();
    const ours = rig.events((s) => formatEventLine(s, false, false, true));
    expect(ours).toEqual(lines("sample.conntrack-events.txt").map(stripTimestamp));
  });

  it("conntrack -E: the same without the l3 columns; -o timestamp prefixes the event time", () => {
    const rig = replaySample();
    const s = new ConnSnapshot();
    const plain: string[] = [];
    const stamped: string[] = [];
    while (rig.ct.events.shift(s)) {
      plain.push(formatEventLine(s, false));
      stamped.push(formatEventLine(s, false, true, true));
    }
    expect(plain).toEqual(lines("sample.conntrack-events.txt").map(stripTimestamp).map(stripL3));
    // Our events carry the packet's time; the kernel's, when conntrack read them. The shape is the same.
    expect(stamped[0]).toMatch(/^\[1795326578\.622\d{3}\]\t {4}\[NEW\] ipv4 {5}2 icmp {5}1 30 /);
    expect(stamped.map((l) => stripTimestamp(l))).toEqual(lines("sample.conntrack-events.txt").map(stripTimestamp));
  });

  it("conntrack -L -o extended: the same table, timeouts included, at a moment inside the kernel's listing window", () => {
    const rig = replaySample();
    // Every timeout in sample.conntrack-L.txt holds for a listing in (1795326587.492, 587.651]: the IPv6
    // TCP entry (last packet 586.492, TIME_WAIT 120 s, shows 118) bounds it below, the echo (last
    // packet 579.651, 30 s, shows 22) above.
    const now = 1795326587_600;
    const ours: string[] = [];
    const s = new ConnSnapshot();
    rig.ct.forEachEntry((i) => {
      rig.ct.snapshot(i, now, s);
      ours.push(formatConntrackLine(s, false, true));
    });
    const kernel = lines("sample.conntrack-L.txt");
    expect([...ours].sort()).toEqual([...kernel].sort());
    const plain: string[] = [];
    rig.ct.forEachEntry((i) => {
      rig.ct.snapshot(i, now, s);
      plain.push(formatConntrackLine(s, false));
    });
    expect(plain.sort()).toEqual(kernel.map(stripL3).sort());
  });
});

// ---------------------------------------------------------------- §1.13, loopback

describe("/proc/net/nf_conntrack (ct_seq_show), §1.13", () => {
  const LO = { src: "127.0.0.1", dst: "127.0.0.1" };

  function tcpEstablished(sport: number): Rig {
    const rig = new Rig();
    const c = (f: TcpFields): Uint8Array => ipv4Tcp({ ...LO, sport, dport: 8080, ...f });
    const s = (f: TcpFields): Uint8Array => ipv4Tcp({ ...LO, sport: 8080, dport: sport, ...f });
    rig.send(c({ seq: 100, flags: "S", win: 65495, options: { mss: 65495, sackPerm: true, ts: [1, 0], wscale: 7 } }), 1000);
    rig.send(s({ seq: 900, ack: 101, flags: "SA", win: 65483, options: { mss: 65495, sackPerm: true, ts: [2, 1], wscale: 7 } }), 1001);
    rig.send(c({ seq: 101, ack: 901, flags: "A", win: 512, options: { ts: [2, 2] } }), 1002);
    expect(rig.ct.tcpState(rig.ct.entry)).toBe(TCP_STATE.ESTABLISHED);
    return rig;
  }

  it("an ESTABLISHED, ASSURED TCP connection", () => {
    const s = tcpEstablished(47602).snap();
    s.timeout = 431999;
    expect(formatProcLine(s, false)).toBe(
      "ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=47602 dport=8080 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=47602 [ASSURED] mark=0 zone=0 use=2\n",
    );
    // conntrack -L prints the same without the l3 columns and the zone, with use=1 (libnetfilter_conntrack).
    expect(formatConntrackLine(s, false)).toBe(
      "tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=47602 dport=8080 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=47602 [ASSURED] mark=0 use=1",
    );
    expect(formatConntrackLine(s, false, true)).toBe(
      "ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=47602 dport=8080 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=47602 [ASSURED] mark=0 use=1",
    );
  });

  it("an unreplied UDP flow", () => {
    const rig = new Rig();
    rig.send(ipv4Udp({ ...LO, sport: 58545, dport: 9999, payload: "ping" }), 5000);
    const s = rig.snap();
    s.timeout = 29;
    expect(formatProcLine(s, false)).toBe(
      "ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=58545 dport=9999 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=9999 dport=58545 mark=0 zone=0 use=2\n",
    );
  });

  it("an answered ICMP echo: type/code/id, no [UNREPLIED], no [ASSURED]", () => {
    const rig = new Rig();
    rig.send(ipv4Icmp({ ...LO, id: 11942, seq: 1 }), 7000);
    rig.send(ipv4Icmp({ ...LO, type: 0, id: 11942, seq: 1 }), 7001);
    const s = rig.snap();
    s.timeout = 29;
    expect(formatProcLine(s, false)).toBe(
      "ipv4     2 icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=11942 src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=11942 mark=0 zone=0 use=2\n",
    );
  });

  it("the timeout is the floor of the seconds left (nf_ct_expires() / HZ)", () => {
    const rig = tcpEstablished(47602);
    const s = new ConnSnapshot();
    rig.ct.snapshot(rig.ct.entry, 1002 + 1, s);
    expect(formatProcLine(s, false)).toMatch(/^ipv4 {5}2 tcp {6}6 431999 ESTABLISHED /);
    rig.ct.snapshot(rig.ct.entry, 1002 + 432000_000 + 5, s);
    expect(s.timeout).toBe(0);
  });

  it("IPv6 addresses as %pI6 prints them: eight zero-padded groups, never compressed", () => {
    const rig = new Rig();
    rig.send(ipv6Icmp({ src: "2001:db8:1::2", dst: "2001:db8:1::1", id: 18443 }), 1000);
    rig.send(ipv6Icmp({ src: "2001:db8:1::1", dst: "2001:db8:1::2", type: 129, id: 18443 }), 1001);
    const s = rig.snap();
    s.timeout = 23;
    const a = "2001:0db8:0001:0000:0000:0000:0000:0002", b = "2001:0db8:0001:0000:0000:0000:0000:0001";
    expect(formatProcLine(s, false)).toBe(
      `ipv6     10 icmpv6   58 23 src=${a} dst=${b} type=128 code=0 id=18443 src=${b} dst=${a} type=129 code=0 id=18443 mark=0 zone=0 use=2\n`,
    );
    // conntrack -L of the same entry: inet_ntop, compressed (config/sample.conntrack-L.txt).
    expect(formatConntrackLine(s, false, true)).toBe(lines("sample.conntrack-L.txt").find((l) => l.includes("icmpv6"))!);
  });

  it("counters after each tuple with acct on; the /proc l4 name of a protocol without a tracker is 'unknown'", () => {
    const rig = new Rig({ acct: true });
    rig.send(ipv4Udp({ ...LO, sport: 58545, dport: 9999, payload: "ping" }), 5000);
    const s = rig.snap();
    s.timeout = 29;
    expect(formatProcLine(s, true)).toBe(
      "ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=58545 dport=9999 packets=1 bytes=32 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=9999 dport=58545 packets=0 bytes=0 mark=0 zone=0 use=2\n",
    );
    const g = new ConnSnapshot();
    g.family = AF.INET;
    g.proto = 253;
    g.timeout = 599;
    g.status = STATUS.CONFIRMED | STATUS.SEEN_REPLY;
    g.addr[0] = g.addr[12] = 0x0a000001;
    g.addr[4] = g.addr[8] = 0x0a000002;
    expect(formatProcLine(g, false)).toBe(
      "ipv4     2 unknown  253 599 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 mark=0 zone=0 use=2\n",
    );
    expect(formatConntrackLine(g, false)).toBe("unknown  253 599 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 mark=0 use=1");
  });
});

describe("conntrack -E (libnetfilter_conntrack __snprintf_conntrack_default), §1.13", () => {
  const LO = { src: "127.0.0.1", dst: "127.0.0.1" };
  const plain = (s: ConnSnapshot): string => formatEventLine(s, false);

  it("TCP NEW and UPDATE lines", () => {
    const rig = new Rig();
    const c = (f: TcpFields): Uint8Array => ipv4Tcp({ ...LO, sport: 58220, dport: 8080, ...f });
    const s = (f: TcpFields): Uint8Array => ipv4Tcp({ ...LO, sport: 8080, dport: 58220, ...f });
    rig.send(c({ seq: 100, flags: "S" }), 1000);
    rig.send(s({ seq: 900, ack: 101, flags: "SA" }), 1000.1);
    rig.send(c({ seq: 101, ack: 901, flags: "A" }), 1000.2);
    const t = "src=127.0.0.1 dst=127.0.0.1 sport=58220 dport=8080";
    const r = "src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=58220";
    expect(rig.events(plain)).toEqual([
      `    [NEW] tcp      6 120 SYN_SENT ${t} [UNREPLIED] ${r}`,
      ` [UPDATE] tcp      6 60 SYN_RECV ${t} ${r}`,
      ` [UPDATE] tcp      6 432000 ESTABLISHED ${t} ${r} [ASSURED]`,
    ]);
  });

  it("UDP and ICMP NEW lines; a DESTROY before expiry shows the seconds left", () => {
    const rig = new Rig();
    rig.send(ipv4Udp({ ...LO, sport: 33634, dport: 5353 }), 558_482);
    rig.send(ipv4Icmp({ ...LO, id: 12105 }), 558_699.508);
    const e = rig.ct.entry;
    rig.send(ipv4Icmp({ ...LO, type: 0, id: 12105 }), 558_699.6);
    rig.ct.deleteHandle(rig.ct.table.handle(e), 558_741.226);
    const ev = rig.events(plain);
    expect(ev.slice(0, 2)).toEqual([
      "    [NEW] udp      17 30 src=127.0.0.1 dst=127.0.0.1 sport=33634 dport=5353 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=5353 dport=33634",
      "    [NEW] icmp     1 30 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=12105 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=12105",
    ]);
    // Kernel: "[DESTROY] icmp     1 29 src=... type=0 code=0 id=12105 [USERSPACE] portid=..." (the tail is conntrack -D's).
    expect(ev[3]).toBe(
      "[DESTROY] icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=12105 src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=12105",
    );
  });

  it("[DESTROY] of an expired TCP connection: no timeout, the state, counters with acct (real kernel line)", () => {
    // 127.0.0.1:41278 -> :8080: client SYN(60) ACK(52) data 2 bytes(54) FIN(52) ACK(52) = 5 packets, 270 bytes;
    // server SYN/ACK(60) ACK(52) FIN/ACK(52) = 3 packets, 164 bytes. TCP timestamps on every segment, as Linux sends.
    const rig = new Rig({ acct: true });
    const c = (f: TcpFields): Uint8Array => ipv4Tcp({ ...LO, sport: 41278, dport: 8080, win: 512, ...f });
    const s = (f: TcpFields): Uint8Array => ipv4Tcp({ ...LO, sport: 8080, dport: 41278, win: 512, ...f });
    const syn = { mss: 65495, sackPerm: true, wscale: 7 };
    const CI = 3000000000, SI = 123456789;
    const flow: [Uint8Array, number][] = [
      [c({ seq: CI, flags: "S", win: 65495, options: { ...syn, ts: [10, 0] } }), TCP_STATE.SYN_SENT],
      [s({ seq: SI, ack: CI + 1, flags: "SA", win: 65483, options: { ...syn, ts: [20, 10] } }), TCP_STATE.SYN_RECV],
      [c({ seq: CI + 1, ack: SI + 1, flags: "A", options: { ts: [11, 20] } }), TCP_STATE.ESTABLISHED],
      [c({ seq: CI + 1, ack: SI + 1, flags: "PA", payload: "hi", options: { ts: [11, 20] } }), TCP_STATE.ESTABLISHED],
      [s({ seq: SI + 1, ack: CI + 3, flags: "A", options: { ts: [21, 11] } }), TCP_STATE.ESTABLISHED],
      [c({ seq: CI + 3, ack: SI + 1, flags: "FA", options: { ts: [12, 21] } }), TCP_STATE.FIN_WAIT],
      [s({ seq: SI + 1, ack: CI + 4, flags: "FA", options: { ts: [22, 12] } }), TCP_STATE.LAST_ACK],
      [c({ seq: CI + 4, ack: SI + 2, flags: "A", options: { ts: [13, 22] } }), TCP_STATE.TIME_WAIT],
    ];
    let t = 1000;
    for (const [pkt, state] of flow) {
      expect(rig.send(pkt, ++t)).not.toBe(CTINFO.INVALID);
      expect(rig.ct.tcpState(rig.ct.entry)).toBe(state);
    }
    rig.events(plain);
    expect(rig.ct.reap(t + 120_000)).toBe(1);
    const destroy = rig.events((x) => formatEventLine(x, true));
    expect(destroy).toEqual([
      "[DESTROY] tcp      6 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=41278 dport=8080 packets=5 bytes=270 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=41278 packets=3 bytes=164 [ASSURED]",
    ]);
  });

  it("counters are never printed on NEW/UPDATE, and not on DESTROY without acct", () => {
    const s = new ConnSnapshot();
    s.family = AF.INET;
    s.proto = 17;
    s.status = STATUS.CONFIRMED;
    s.timeout = 30;
    s.counters.set([3, 120, 0, 0]);
    s.event = EVENT.NEW;
    expect(formatEventLine(s, true)).not.toContain("packets=");
    s.event = EVENT.UPDATE;
    expect(formatEventLine(s, true)).not.toContain("packets=");
    s.event = EVENT.DESTROY;
    expect(formatEventLine(s, false)).not.toContain("packets=");
    expect(formatEventLine(s, true)).toContain("packets=3 bytes=120 [UNREPLIED]");
  });

  it("mark only when non-zero; -o timestamp as [sec.usec] and a tab", () => {
    const rig = new Rig();
    rig.send(ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2 }), 1795326578_622);
    const s = new ConnSnapshot();
    rig.ct.events.shift(s);
    expect(formatEventLine(s, false, true)).toBe(
      "[1795326578.622000]\t    [NEW] udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1",
    );
    s.mark = 42;
    expect(formatEventLine(s, false)).toMatch(/ sport=2 dport=1 mark=42$/);
    // -L and /proc always print mark=.
    expect(formatConntrackLine(s, false)).toMatch(/ mark=42 use=1$/);
  });
});

// ---------------------------------------------------------------- addresses and ICMP fields

describe("addresses in conntrack-tools lines (glibc inet_ntop)", () => {
  function line(src: string, dst: string): string {
    const rig = new Rig();
    rig.send(ipv6Udp({ src, dst, sport: 1, dport: 2 }), 1000);
    return formatConntrackLine(rig.snap(), false);
  }
  const cases: [string, string][] = [
    ["2001:0db8:0001:0000:0000:0000:0000:0002", "2001:db8:1::2"],
    ["fe80:0000:0000:0000:0211:22ff:fe33:4455", "fe80::211:22ff:fe33:4455"],
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
    ["2001:0db8:0000:0001:0001:0001:0001:0001", "2001:db8:0:1:1:1:1:1"], // a single zero group is not compressed
    ["2001:0000:0000:0001:0000:0000:0000:0001", "2001:0:0:1::1"], // the longest run
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"], // the first of equal runs
    ["2001:0db8:0000:0000:0000:0000:0000:0000", "2001:db8::"],
    ["0000:0000:0000:0000:0000:ffff:0a00:0001", "::ffff:10.0.0.1"], // IPv4-mapped
    ["0000:0000:0000:0000:0000:0000:0a00:0001", "::10.0.0.1"], // IPv4-compatible
  ];
  for (const [full, text] of cases) {
    it(`${full} -> ${text}`, () => {
      expect(parseAddr(text)).toEqual(parseAddr(full));
      expect(line(full, "2001:db8::9")).toBe(
        `udp      17 30 src=${text} dst=2001:db8::9 sport=1 dport=2 [UNREPLIED] src=2001:db8::9 dst=${text} sport=2 dport=1 mark=0 use=1`,
      );
    });
  }

  it("/proc never compresses, whatever the address", () => {
    const rig = new Rig();
    rig.send(ipv6Udp({ src: "::ffff:10.0.0.1", dst: "::1", sport: 1, dport: 2 }), 1000);
    expect(formatProcLine(rig.snap(), false)).toContain(
      "src=0000:0000:0000:0000:0000:ffff:0a00:0001 dst=0000:0000:0000:0000:0000:0000:0000:0001 sport=1 dport=2",
    );
  });
});

describe("ICMP tuple fields: type and code from the tuple, id from the identifier", () => {
  it("timestamp request/reply and ICMPv6 node information query/reply", () => {
    const rig = new Rig();
    rig.send(ipv4Icmp({ src: "10.0.0.1", dst: "10.0.0.2", type: 13, id: 5 }), 1000);
    rig.send(ipv4Icmp({ src: "10.0.0.2", dst: "10.0.0.1", type: 14, id: 5 }), 1001);
    expect(formatConntrackLine(rig.snap(), false)).toBe(
      "icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=13 code=0 id=5 src=10.0.0.2 dst=10.0.0.1 type=14 code=0 id=5 mark=0 use=1",
    );
    rig.send(ipv6Icmp({ src: "2001:db8::1", dst: "2001:db8::2", type: 139, code: 1, id: 65535 }), 2000);
    expect(formatConntrackLine(rig.snap(), false)).toBe(
      "icmpv6   58 30 src=2001:db8::1 dst=2001:db8::2 type=139 code=1 id=65535 [UNREPLIED] src=2001:db8::2 dst=2001:db8::1 type=140 code=1 id=65535 mark=0 use=1",
    );
  });
});
