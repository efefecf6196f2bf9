/**
 * Scenario tests for the connection tracker (`Conntrack`), one per
 * behaviour: packets built with test/helpers/packets.ts, parsed with
 * `Packet.parse`, tracked with `process`, then committed the way the
 * pipeline's "drop INVALID, accept the rest" does (confirm unless INVALID,
 * abort otherwise). Time is a manual clock in ms. Each scenario checks the
 * ctinfo, direction, status bits, TCP state, remaining timeout (seconds,
 * floored, as /proc prints it) and the `conntrack -E` lines produced.
 *
 * The oracle for the TCP events is the real kernel's capture in
 * config/sample.conntrack-events.txt (6.18, `-o timestamp,extended`).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { resolveConntrackConfig, type ConntrackConfig } from "../../src/conntrack/config.js";
import { CTINFO, DIR, STATUS_NAMES, TCP_STATE, TRACK } from "../../src/conntrack/constants.js";
import { formatConntrackLine, formatEventLine, formatProcLine } from "../../src/conntrack/format.js";
import { ConnSnapshot } from "../../src/conntrack/snapshot.js";
import { Conntrack, PKT, REASON } from "../../src/conntrack/tracker.js";
import { Packet } from "../../src/packet/packet.js";
import {
  ipv4Generic,
  ipv4Icmp,
  ipv4IcmpError,
  ipv4Tcp,
  ipv4Udp,
  ipv6Generic,
  ipv6Icmp,
  ipv6IcmpError,
  ipv6Udp,
  type TcpFields,
} from "../helpers/packets.js";

const T0 = 1_000_000; // ms; any start works, the tracker only compares times
const O = DIR.ORIGINAL;
const R = DIR.REPLY;

/** A tracker, a packet view and a manual clock. */
class Rig {
  readonly cfg: ConntrackConfig;
  readonly ct: Conntrack;
  readonly p = new Packet();
  now = T0;

  constructor(over: Record<string, unknown> = {}) {
    this.cfg = resolveConntrackConfig({ max: 1024, ...over });
    this.ct = new Conntrack(this.cfg);
  }

  /** Sets the clock to T0 + ms. */
  at(ms: number): this {
    this.now = T0 + ms;
    return this;
  }

  /** Advances the clock by ms. */
  tick(ms: number): this {
    this.now += ms;
    return this;
  }

  /** One packet through parse + process, then the "drop INVALID, accept the rest" verdict. */
  send(pkt: Uint8Array, flags = 0): number {
    const st = this.p.parse(pkt, 0, pkt.length);
    const ci = this.ct.process(this.p, st, this.now, flags);
    expect(ci).toBe(this.ct.ctinfo);
    if (ci === CTINFO.INVALID) this.ct.abort();
    else expect(this.ct.confirm(this.now)).toBe(true);
    return ci;
  }

  snap(i: number): ConnSnapshot {
    const s = new ConnSnapshot();
    this.ct.snapshot(i, this.now, s);
    return s;
  }

  /** Seconds left for entry i, as /proc shows it. */
  timeout(i: number): number {
    return this.snap(i).timeout;
  }

  /** Names of entry i's status bits. */
  flags(i: number): string[] {
    return statusNames(this.ct.table.status[i]);
  }

  /** Drains the event ring as `conntrack -E` lines. */
  events(acct = this.cfg.acct): string[] {
    const out: string[] = [];
    const s = new ConnSnapshot();
    while (this.ct.events.shift(s)) out.push(formatEventLine(s, acct));
    return out;
  }

  /** Live entries. */
  get count(): number {
    return this.ct.table.count;
  }
}

function statusNames(st: number): string[] {
  const out: string[] = [];
  for (let b = 0; b < 16; b++) if ((st & (1 << b)) !== 0) out.push(STATUS_NAMES[b]);
  return out;
}

/** conntrack -E lines of the kernel capture, without the timestamp and the -o extended l3 columns. */
function kernelEvents(filter: RegExp): string[] {
  return readFileSync(new URL("../../config/sample.conntrack-events.txt", import.meta.url), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "" && filter.test(l))
    .map((l) => l.replace(/^\[[0-9.]+\]\t/, "").replace(/^(\s*\[\w+\]) ipv[46]\s+\d+ /, "$1 "));
}

// ---------------------------------------------------------------- TCP

describe("TCP through the tracker", () => {
  // The IPv4 TCP flow of config/sample.pcap, packet for packet (the server closes first).
  const C = { src: "10.0.1.2", dst: "10.0.1.1", sport: 54884, dport: 8080 };
  const S = { src: "10.0.1.1", dst: "10.0.1.2", sport: 8080, dport: 54884 };
  const CI = 2989859507;
  const SI = 1810951893;
  const c = (f: TcpFields): Uint8Array => ipv4Tcp({ ...C, win: 63, options: { ts: [763468888, 2410497702] }, ...f });
  const s = (f: TcpFields): Uint8Array => ipv4Tcp({ ...S, win: 64, options: { ts: [2410497702, 763468888] }, ...f });
  const synOpts = { mss: 1460, sackPerm: true, wscale: 10 };
  /** [packet, ctinfo, dir, TCP state, timeout, status bits besides CONFIRMED] */
  const FLOW: [Uint8Array, number, number, number, number, string[]][] = [
    [c({ seq: CI, flags: "S", win: 64240, options: { ...synOpts, ts: [763468888, 0] } }), CTINFO.NEW, O, TCP_STATE.SYN_SENT, 120, []],
    [s({ seq: SI, ack: CI + 1, flags: "SA", win: 65160, options: { ...synOpts, ts: [2410497702, 763468888] } }),
      CTINFO.ESTABLISHED_REPLY, R, TCP_STATE.SYN_RECV, 60, ["SEEN_REPLY"]],
    [c({ seq: CI + 1, ack: SI + 1, flags: "A" }), CTINFO.ESTABLISHED, O, TCP_STATE.ESTABLISHED, 432000, ["SEEN_REPLY", "ASSURED"]],
    // Data not yet acknowledged: the UNACK timeout (300 s) applies until it is.
    [c({ seq: CI + 1, ack: SI + 1, flags: "PA", payload: "x".repeat(77) }), CTINFO.ESTABLISHED, O, TCP_STATE.ESTABLISHED, 300, ["SEEN_REPLY", "ASSURED"]],
    [s({ seq: SI + 1, ack: CI + 78, flags: "A" }), CTINFO.ESTABLISHED_REPLY, R, TCP_STATE.ESTABLISHED, 432000, ["SEEN_REPLY", "ASSURED"]],
    [s({ seq: SI + 1, ack: CI + 78, flags: "PA", payload: "y".repeat(185) }), CTINFO.ESTABLISHED_REPLY, R, TCP_STATE.ESTABLISHED, 300, ["SEEN_REPLY", "ASSURED"]],
    [c({ seq: CI + 78, ack: SI + 186, flags: "A" }), CTINFO.ESTABLISHED, O, TCP_STATE.ESTABLISHED, 432000, ["SEEN_REPLY", "ASSURED"]],
    [s({ seq: SI + 186, ack: CI + 78, flags: "PA", payload: "z".repeat(44) }), CTINFO.ESTABLISHED_REPLY, R, TCP_STATE.ESTABLISHED, 300, ["SEEN_REPLY", "ASSURED"]],
    [c({ seq: CI + 78, ack: SI + 230, flags: "A" }), CTINFO.ESTABLISHED, O, TCP_STATE.ESTABLISHED, 432000, ["SEEN_REPLY", "ASSURED"]],
    [s({ seq: SI + 230, ack: CI + 78, flags: "FA" }), CTINFO.ESTABLISHED_REPLY, R, TCP_STATE.FIN_WAIT, 120, ["SEEN_REPLY", "ASSURED"]],
    [c({ seq: CI + 78, ack: SI + 231, flags: "FA" }), CTINFO.ESTABLISHED, O, TCP_STATE.LAST_ACK, 30, ["SEEN_REPLY", "ASSURED"]],
    [s({ seq: SI + 231, ack: CI + 79, flags: "A" }), CTINFO.ESTABLISHED_REPLY, R, TCP_STATE.TIME_WAIT, 120, ["SEEN_REPLY", "ASSURED"]],
  ];

  function runFlow(rig: Rig): number {
    let entry = -1;
    for (const [pkt, ctinfo, dir, state, secs, bits] of FLOW) {
      rig.tick(1);
      expect(rig.send(pkt)).toBe(ctinfo);
      expect(rig.ct.dir).toBe(dir);
      if (entry < 0) entry = rig.ct.entry;
      expect(rig.ct.entry).toBe(entry);
      expect(rig.ct.tcpState(entry)).toBe(state);
      expect(rig.timeout(entry)).toBe(secs);
      expect(rig.flags(entry)).toEqual([...bits, "CONFIRMED"]); // in bit order
    }
    return entry;
  }

  it("handshake, data and FIN close: ctinfo, state, timeouts, and the kernel's events", () => {
    const rig = new Rig();
    runFlow(rig);
    // NEW SYN_SENT 120 [UNREPLIED], UPDATE SYN_RECV 60, ESTABLISHED 432000 [ASSURED], FIN_WAIT 120, LAST_ACK 30, TIME_WAIT 120.
    const kernel = kernelEvents(/ ipv4 .* tcp /);
    expect(kernel).toHaveLength(6);
    expect(rig.events()).toEqual(kernel);
  });

  it("TIME_WAIT expires after 120 s with a DESTROY event (no timeout shown)", () => {
    const rig = new Rig();
    const e = runFlow(rig);
    rig.events();
    const closed = rig.now;
    rig.now = closed + 120_000 - 1;
    expect(rig.ct.reap(rig.now)).toBe(0);
    expect(rig.ct.table.isLive(e)).toBe(true);
    rig.now = closed + 120_000;
    expect(rig.ct.reap(rig.now)).toBe(1);
    expect(rig.ct.table.isLive(e)).toBe(false);
    expect(rig.count).toBe(0);
    expect(rig.events()).toEqual([
      "[DESTROY] tcp      6 TIME_WAIT src=10.0.1.2 dst=10.0.1.1 sport=54884 dport=8080 src=10.0.1.1 dst=10.0.1.2 sport=8080 dport=54884 [ASSURED]",
    ]);
  });

  it("a new SYN in TIME_WAIT reopens: the old entry is DESTROYed, a fresh one is NEW", () => {
    const rig = new Rig();
    const old = runFlow(rig);
    const oldHandle = rig.ct.table.handle(old);
    rig.events();
    rig.tick(5000);
    expect(rig.send(c({ seq: CI + 100000, flags: "S", win: 64240, options: { ...synOpts, ts: [763473888, 0] } }))).toBe(CTINFO.NEW);
    expect(rig.ct.dir).toBe(O);
    const e = rig.ct.entry;
    expect(rig.ct.table.handle(e)).not.toBe(oldHandle);
    expect(rig.ct.tcpState(e)).toBe(TCP_STATE.SYN_SENT);
    expect(rig.flags(e)).toEqual(["CONFIRMED"]);
    expect(rig.timeout(e)).toBe(120);
    expect(rig.count).toBe(1);
    expect(rig.ct.stats.searchRestart).toBe(1);
    // The old entry was killed before its time: DESTROY shows the 115 s it had left.
    expect(rig.events()).toEqual([
      "[DESTROY] tcp      6 115 TIME_WAIT src=10.0.1.2 dst=10.0.1.1 sport=54884 dport=8080 src=10.0.1.1 dst=10.0.1.2 sport=8080 dport=54884 [ASSURED]",
      "    [NEW] tcp      6 120 SYN_SENT src=10.0.1.2 dst=10.0.1.1 sport=54884 dport=8080 [UNREPLIED] src=10.0.1.1 dst=10.0.1.2 sport=8080 dport=54884",
    ]);
  });

  const A = { src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80 };
  const B = { src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 40000 };

  it("an RST answering the SYN (no reply seen) kills the entry: DESTROY, still [UNREPLIED]", () => {
    const rig = new Rig();
    expect(rig.send(ipv4Tcp({ ...A, seq: 1000, flags: "S" }))).toBe(CTINFO.NEW);
    rig.tick(1);
    // The RST is accepted (ctinfo of its direction), then the entry is gone (nf_ct_kill_acct).
    expect(rig.send(ipv4Tcp({ ...B, seq: 0, ack: 1001, flags: "RA", win: 0 }))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(rig.ct.entry).toBe(-1);
    expect(rig.count).toBe(0);
    expect(rig.events()).toEqual([
      "    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000",
      "[DESTROY] tcp      6 119 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000",
    ]);
    // The next SYN of the same tuple is a new connection.
    expect(rig.send(ipv4Tcp({ ...A, seq: 5000, flags: "S" }))).toBe(CTINFO.NEW);
  });

  it("an RST from the client before any reply kills the entry too", () => {
    const rig = new Rig();
    rig.send(ipv4Tcp({ ...A, seq: 1000, flags: "S" }));
    rig.tick(2000);
    expect(rig.send(ipv4Tcp({ ...A, seq: 1001, flags: "R" }))).toBe(CTINFO.NEW);
    expect(rig.count).toBe(0);
    expect(rig.events()[1]).toBe(
      "[DESTROY] tcp      6 118 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000",
    );
  });

  it("a picked-up connection (tcp_loose): NEW ESTABLISHED capped at 300 s, ASSURED after the reply; UPDATEs carry no state", () => {
    const rig = new Rig();
    expect(rig.send(ipv4Tcp({ ...A, seq: 5000, ack: 9000, flags: "A" }))).toBe(CTINFO.NEW);
    const e = rig.ct.entry;
    expect(rig.ct.tcpState(e)).toBe(TCP_STATE.ESTABLISHED);
    expect(rig.timeout(e)).toBe(300);
    rig.tick(10);
    // The reply: SEEN_REPLY is set after the TCP tracker ran, so the 300 s cap still applies.
    expect(rig.send(ipv4Tcp({ ...B, seq: 9000, ack: 5000, flags: "A" }))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
    expect(rig.timeout(e)).toBe(300);
    rig.tick(10);
    // "a valid answer for a picked up connection": ASSURED, full ESTABLISHED timeout.
    expect(rig.send(ipv4Tcp({ ...A, seq: 5000, ack: 9000, flags: "A" }))).toBe(CTINFO.ESTABLISHED);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "ASSURED", "CONFIRMED"]);
    expect(rig.timeout(e)).toBe(432000);
    // ctnetlink sends CTA_PROTOINFO only with IPCT_PROTOINFO (a state change): none in these UPDATEs.
    expect(rig.events()).toEqual([
      "    [NEW] tcp      6 300 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000",
      " [UPDATE] tcp      6 300 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000",
      " [UPDATE] tcp      6 432000 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED]",
    ]);
  });

  it("with tcpLoose off a non-SYN first packet is INVALID and leaves nothing", () => {
    const rig = new Rig({ tcpLoose: false });
    expect(rig.send(ipv4Tcp({ ...A, seq: 5000, ack: 9000, flags: "A" }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.TCP_STATE);
    expect(rig.count).toBe(0);
    expect(rig.events()).toEqual([]);
  });

  it("invalid flag combinations and bad checksums are INVALID before any lookup", () => {
    const rig = new Rig();
    expect(rig.send(ipv4Tcp({ ...A, flags: "SF" }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.TCP_FLAGS);
    expect(rig.send(ipv4Tcp({ ...A, flags: "S", badChecksum: true }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.BAD_CHECKSUM);
    expect(rig.send(ipv4Tcp({ ...A, flags: "S", badChecksum: true }), PKT.CSUM_UNNECESSARY)).toBe(CTINFO.NEW);
    expect(rig.count).toBe(1);
  });
});

// ---------------------------------------------------------------- UDP

describe("UDP", () => {
  const A = { src: "10.0.1.2", dst: "10.0.1.1", sport: 40000, dport: 5000, payload: "hello world!" };
  const B = { src: "10.0.1.1", dst: "10.0.1.2", sport: 5000, dport: 40000, payload: "hello world!" };
  const LINE = "src=10.0.1.2 dst=10.0.1.1 sport=40000 dport=5000";
  const RLINE = "src=10.0.1.1 dst=10.0.1.2 sport=5000 dport=40000";

  it("unreplied: NEW, 30 s, [UNREPLIED]; more packets the same way stay NEW", () => {
    const rig = new Rig();
    expect(rig.send(ipv4Udp(A))).toBe(CTINFO.NEW);
    const e = rig.ct.entry;
    expect(rig.ct.pending).toBe(false);
    expect(rig.flags(e)).toEqual(["CONFIRMED"]);
    expect(rig.timeout(e)).toBe(30);
    expect(rig.ct.tcpState(e)).toBe(-1);
    rig.tick(5000);
    // ctinfo NEW again (no reply yet, resolve_normal_ct), but the same entry: no second NEW event.
    expect(rig.send(ipv4Udp(A))).toBe(CTINFO.NEW);
    expect(rig.ct.entry).toBe(e);
    expect(rig.timeout(e)).toBe(30);
    expect(rig.events()).toEqual([`    [NEW] udp      17 30 ${LINE} [UNREPLIED] ${RLINE}`]);
  });

  it("replied: UPDATE without [UNREPLIED], still 30 s; ASSURED (120 s) only after the reply and more than 2 s after creation", () => {
    const rig = new Rig();
    rig.at(0).send(ipv4Udp(A));
    const e = rig.ct.entry;
    expect(rig.at(300).send(ipv4Udp(B))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(rig.ct.dir).toBe(R);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
    expect(rig.timeout(e)).toBe(30);
    expect(rig.at(1000).send(ipv4Udp(A))).toBe(CTINFO.ESTABLISHED);
    expect(rig.timeout(e)).toBe(30);
    // time_after(jiffies, stream_ts): exactly 2 s after creation is not yet after.
    expect(rig.at(2000).send(ipv4Udp(A))).toBe(CTINFO.ESTABLISHED);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
    expect(rig.timeout(e)).toBe(30);
    expect(rig.at(2001).send(ipv4Udp(A))).toBe(CTINFO.ESTABLISHED);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "ASSURED", "CONFIRMED"]);
    expect(rig.timeout(e)).toBe(120);
    // Later packets keep the stream timeout, in both directions, without new events.
    expect(rig.at(3000).send(ipv4Udp(B))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(rig.timeout(e)).toBe(120);
    expect(rig.events()).toEqual([
      `    [NEW] udp      17 30 ${LINE} [UNREPLIED] ${RLINE}`,
      ` [UPDATE] udp      17 30 ${LINE} ${RLINE}`,
      ` [UPDATE] udp      17 120 ${LINE} ${RLINE} [ASSURED]`,
    ]);
  });

  it("the reply itself never makes the flow ASSURED, however late it comes", () => {
    const rig = new Rig();
    rig.at(0).send(ipv4Udp(A));
    const e = rig.ct.entry;
    rig.at(5000).send(ipv4Udp(B));
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
    expect(rig.timeout(e)).toBe(30);
    rig.at(5001).send(ipv4Udp(B));
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "ASSURED", "CONFIRMED"]);
  });

  it("the kernel's UDP events for the same flow (config/sample.conntrack-events.txt)", () => {
    const rig = new Rig();
    // Times of the capture, relative to the first packet.
    rig.at(0).send(ipv4Udp(A));
    rig.at(0.293).send(ipv4Udp(B));
    rig.at(0.759).send(ipv4Udp(A));
    rig.at(0.786).send(ipv4Udp(B));
    rig.at(2601.075).send(ipv4Udp(A));
    rig.at(2601.231).send(ipv4Udp(B));
    expect(rig.events()).toEqual(kernelEvents(/ ipv4 .* udp .*sport=40000/));
  });

  it("IPv4 zero checksum means none: tracked", () => {
    const rig = new Rig();
    expect(rig.send(ipv4Udp({ ...A, zeroChecksum: true }))).toBe(CTINFO.NEW);
  });

  it("IPv6 with a zero checksum is tracked, as Linux's udp_error() does (checked on a 6.18 kernel)", () => {
    const rig = new Rig();
    const v6 = { src: "2001:db8:1::2", dst: "2001:db8:1::1", sport: 46862, dport: 9, payload: "x" };
    expect(rig.send(ipv6Udp({ ...v6, zeroChecksum: true }))).toBe(CTINFO.NEW);
    expect(rig.count).toBe(1);
    expect(rig.send(ipv6Udp({ ...v6, zeroChecksum: true }))).toBe(CTINFO.NEW);
    expect(rig.count).toBe(1);
  });

  it("a bad checksum is INVALID and touches nothing; not checked with CSUM_UNNECESSARY, LOCAL_OUT or checksum=false", () => {
    const rig = new Rig();
    rig.send(ipv4Udp(A));
    const e = rig.ct.entry;
    const before = Array.from(rig.snap(e).counters);
    rig.tick(1000);
    expect(rig.send(ipv4Udp({ ...B, badChecksum: true }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.BAD_CHECKSUM);
    expect(rig.ct.entry).toBe(-1);
    expect(rig.flags(e)).toEqual(["CONFIRMED"]);
    expect(Array.from(rig.snap(e).counters)).toEqual(before);
    expect(rig.timeout(e)).toBe(29);
    expect(rig.send(ipv4Udp({ ...B, badChecksum: true }), PKT.CSUM_UNNECESSARY)).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(rig.send(ipv4Udp({ ...A, sport: 1, badChecksum: true }), PKT.LOCAL_OUT)).toBe(CTINFO.NEW);
    const off = new Rig({ checksum: false });
    expect(off.send(ipv4Udp({ ...A, badChecksum: true }))).toBe(CTINFO.NEW);
    const v6 = new Rig();
    expect(v6.send(ipv6Udp({ src: "2001:db8::1", dst: "2001:db8::2", badChecksum: true }))).toBe(CTINFO.INVALID);
    expect(v6.ct.reason).toBe(REASON.BAD_CHECKSUM);
  });
});

// ---------------------------------------------------------------- ICMP

describe("ICMP", () => {
  const A = { src: "10.0.1.2", dst: "10.0.1.1" };
  const B = { src: "10.0.1.1", dst: "10.0.1.2" };

  it("echo: request NEW, reply with the same id ESTABLISHED in the reply direction; never ASSURED", () => {
    const rig = new Rig();
    expect(rig.send(ipv4Icmp({ ...A, id: 18410, seq: 1 }))).toBe(CTINFO.NEW);
    const e = rig.ct.entry;
    expect(rig.timeout(e)).toBe(30);
    rig.tick(1);
    expect(rig.send(ipv4Icmp({ ...B, type: 0, id: 18410, seq: 1 }))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect([rig.ct.entry, rig.ct.dir]).toEqual([e, R]);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
    rig.tick(1000);
    expect(rig.send(ipv4Icmp({ ...A, id: 18410, seq: 2 }))).toBe(CTINFO.ESTABLISHED);
    expect(rig.send(ipv4Icmp({ ...B, type: 0, id: 18410, seq: 2 }))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
    expect(rig.events()).toEqual(kernelEvents(/ ipv4 .* icmp /));
  });

  it("a reply with another id, or with no request at all, is INVALID and creates nothing", () => {
    const rig = new Rig();
    rig.send(ipv4Icmp({ ...A, id: 100 }));
    rig.events();
    expect(rig.send(ipv4Icmp({ ...B, type: 0, id: 101 }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.NO_NEW);
    expect(rig.send(ipv4Icmp({ src: "10.9.9.9", dst: "10.8.8.8", type: 0, id: 100 }))).toBe(CTINFO.INVALID);
    expect(rig.count).toBe(1);
    expect(rig.events()).toEqual([]);
  });

  it("timestamp, information and address-mask requests create entries; their replies match", () => {
    const rig = new Rig();
    for (const [req, rep] of [[13, 14], [15, 16], [17, 18]]) {
      expect(rig.send(ipv4Icmp({ ...A, type: req, id: req }))).toBe(CTINFO.NEW);
      const e = rig.ct.entry;
      expect(rig.send(ipv4Icmp({ ...B, type: rep, id: req }))).toBe(CTINFO.ESTABLISHED_REPLY);
      expect(rig.ct.entry).toBe(e);
      // The replies alone create nothing.
      expect(rig.send(ipv4Icmp({ ...B, type: rep, id: 999 }))).toBe(CTINFO.INVALID);
    }
    expect(rig.count).toBe(3);
  });

  it("types with no reply pair (9 router advertisement) and types above 18 are INVALID", () => {
    const rig = new Rig();
    expect(rig.send(ipv4Icmp({ ...A, type: 9 }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.NO_INVERSE);
    expect(rig.send(ipv4Icmp({ ...A, type: 10 }))).toBe(CTINFO.INVALID);
    for (const type of [19, 40, 255]) {
      expect(rig.send(ipv4Icmp({ ...A, type }))).toBe(CTINFO.INVALID);
      expect(rig.ct.reason).toBe(REASON.ICMP_TYPE);
    }
    expect(rig.send(ipv4Icmp({ ...A, badChecksum: true }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.BAD_CHECKSUM);
    expect(rig.count).toBe(0);
  });

  it("the entry is not deleted after the reply: duplicates still match, and it times out 30 s after the last packet", () => {
    const rig = new Rig();
    rig.at(0).send(ipv4Icmp({ ...A, id: 5 }));
    const e = rig.ct.entry;
    rig.at(10).send(ipv4Icmp({ ...B, type: 0, id: 5 }));
    expect(rig.at(20).send(ipv4Icmp({ ...B, type: 0, id: 5 }))).toBe(CTINFO.ESTABLISHED_REPLY);
    rig.events();
    expect(rig.ct.reap(T0 + 20 + 30_000 - 1)).toBe(0);
    expect(rig.ct.table.isLive(e)).toBe(true);
    expect(rig.ct.reap(T0 + 20 + 30_000)).toBe(1);
    expect(rig.events()).toEqual([
      "[DESTROY] icmp     1 src=10.0.1.2 dst=10.0.1.1 type=8 code=0 id=5 src=10.0.1.1 dst=10.0.1.2 type=0 code=0 id=5",
    ]);
  });
});

describe("ICMPv6", () => {
  const A = { src: "2001:db8:1::2", dst: "2001:db8:1::1" };
  const B = { src: "2001:db8:1::1", dst: "2001:db8:1::2" };

  it("echo 128/129 like ICMP, with the kernel's events", () => {
    const rig = new Rig();
    expect(rig.send(ipv6Icmp({ ...A, id: 18443, seq: 1 }))).toBe(CTINFO.NEW);
    const e = rig.ct.entry;
    expect(rig.timeout(e)).toBe(30);
    expect(rig.send(ipv6Icmp({ ...B, type: 129, id: 18443, seq: 1 }))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect([rig.ct.entry, rig.ct.dir]).toEqual([e, R]);
    expect(rig.send(ipv6Icmp({ ...B, type: 129, id: 1 }))).toBe(CTINFO.INVALID);
    expect(rig.send(ipv6Icmp({ ...A, type: 129, id: 2 }))).toBe(CTINFO.INVALID);
    expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
    expect(rig.events()).toEqual(kernelEvents(/ ipv6 .* icmpv6 /));
  });

  it("neighbour discovery and MLD are UNTRACKED (ctinfo 7) and create nothing", () => {
    const rig = new Rig();
    for (const type of [130, 131, 132, 133, 134, 135, 136, 143]) {
      expect(rig.send(ipv6Icmp({ src: "fe80::1", dst: "ff02::1", type }))).toBe(CTINFO.UNTRACKED);
      expect(rig.ct.entry).toBe(-1);
    }
    expect(CTINFO.UNTRACKED).toBe(7);
    expect(rig.count).toBe(0);
    expect(rig.ct.stats.untracked).toBe(8);
    expect(rig.events()).toEqual([]);
  });

  it("node information query 139 creates an entry answered by 140; other informational types are INVALID", () => {
    const rig = new Rig();
    expect(rig.send(ipv6Icmp({ ...A, type: 139, id: 3 }))).toBe(CTINFO.NEW);
    expect(rig.send(ipv6Icmp({ ...B, type: 140, id: 3 }))).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(rig.send(ipv6Icmp({ ...A, type: 137 }))).toBe(CTINFO.INVALID); // redirect: no reply type
    expect(rig.send(ipv6Icmp({ ...A, type: 140, id: 4 }))).toBe(CTINFO.INVALID);
    expect(rig.count).toBe(1);
  });
});

// ---------------------------------------------------------------- ICMP errors

describe("ICMP errors", () => {
  const A = "10.0.1.2", B = "10.0.1.1";
  const probe = ipv4Udp({ src: A, dst: B, sport: 60072, dport: 9, payload: "hello there!!" });

  function tracked(): { rig: Rig; e: number } {
    const rig = new Rig();
    rig.send(probe);
    const e = rig.ct.entry;
    rig.events();
    return { rig, e };
  }

  it("port unreachable quoting a tracked UDP packet: RELATED_REPLY, and the entry is left alone", () => {
    const { rig, e } = tracked();
    rig.tick(5000);
    const before = rig.snap(e);
    const err = ipv4IcmpError({ src: B, dst: A, type: 3, code: 3, inner: probe });
    expect(rig.send(err)).toBe(CTINFO.RELATED_REPLY);
    expect(CTINFO.RELATED_REPLY).toBe(4);
    expect([rig.ct.entry, rig.ct.dir, rig.ct.pending]).toEqual([e, R, false]);
    const after = rig.snap(e);
    // Not refreshed (25 s left, not 30), not counted, still unreplied, no event.
    expect(after.timeout).toBe(25);
    expect(Array.from(after.counters)).toEqual(Array.from(before.counters));
    expect(after.status).toBe(before.status);
    expect(rig.count).toBe(1);
    expect(rig.events()).toEqual([]);
    expect(rig.ct.stats.related).toBe(1);
  });

  it("an error about the reply direction's packet is RELATED in the original direction", () => {
    const { rig, e } = tracked();
    const answer = ipv4Udp({ src: B, dst: A, sport: 9, dport: 60072, payload: "back" });
    expect(rig.send(ipv4IcmpError({ src: A, dst: B, type: 3, code: 3, inner: answer }))).toBe(CTINFO.RELATED);
    expect([rig.ct.entry, rig.ct.dir]).toEqual([e, O]);
  });

  it("for a flow that is not tracked: INVALID, and no entry is created", () => {
    const { rig } = tracked();
    const other = ipv4Udp({ src: A, dst: B, sport: 60073, dport: 9 });
    expect(rig.send(ipv4IcmpError({ src: B, dst: A, type: 3, code: 3, inner: other }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.ICMP_ERROR_NO_CONN);
    expect(rig.count).toBe(1);
  });

  it("outer destination not the connection's destination: INVALID", () => {
    const { rig } = tracked();
    expect(rig.send(ipv4IcmpError({ src: B, dst: "10.0.1.3", type: 3, code: 3, inner: probe }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.ICMP_ERROR_DADDR);
  });

  it("a quote too short for the ports is INVALID; 8 bytes of L4 header are enough", () => {
    const { rig, e } = tracked();
    expect(rig.send(ipv4IcmpError({ src: B, dst: A, type: 3, code: 3, inner: probe, quoteBytes: 20 + 4 }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.ICMP_ERROR_INNER);
    expect(rig.send(ipv4IcmpError({ src: B, dst: A, type: 3, code: 3, inner: probe, quoteBytes: 20 + 8 }))).toBe(CTINFO.RELATED_REPLY);
    expect(rig.ct.entry).toBe(e);
  });

  it("time exceeded and parameter problem are errors too; a bad checksum is INVALID", () => {
    const { rig, e } = tracked();
    expect(rig.send(ipv4IcmpError({ src: "10.0.0.254", dst: A, type: 11, code: 0, inner: probe }))).toBe(CTINFO.RELATED_REPLY);
    expect(rig.ct.entry).toBe(e);
    expect(rig.send(ipv4IcmpError({ src: B, dst: A, type: 12, code: 0, inner: probe }))).toBe(CTINFO.RELATED_REPLY);
    expect(rig.send(ipv4IcmpError({ src: B, dst: A, type: 3, code: 3, inner: probe, badChecksum: true }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.BAD_CHECKSUM);
  });

  it("an error never creates an entry, even for a quote that would be NEW", () => {
    const rig = new Rig();
    expect(rig.send(ipv4IcmpError({ src: B, dst: A, type: 3, code: 3, inner: probe }))).toBe(CTINFO.INVALID);
    expect(rig.count).toBe(0);
    expect(rig.events()).toEqual([]);
  });

  it("an error about an ICMP echo request is RELATED to the echo entry", () => {
    const rig = new Rig();
    const echo = ipv4Icmp({ src: A, dst: "192.0.2.9", id: 77, ttl: 1 });
    rig.send(echo);
    const e = rig.ct.entry;
    expect(rig.send(ipv4IcmpError({ src: "10.0.0.254", dst: A, type: 11, code: 0, inner: echo }))).toBe(CTINFO.RELATED_REPLY);
    expect(rig.ct.entry).toBe(e);
    expect(rig.count).toBe(1);
  });

  it("ICMPv6 destination unreachable quoting a tracked UDP packet: RELATED_REPLY; for an unknown flow INVALID", () => {
    const rig = new Rig();
    const a6 = "2001:db8:1::2", b6 = "2001:db8:1::1";
    const probe6 = ipv6Udp({ src: a6, dst: b6, sport: 46862, dport: 9, payload: "hello there!!" });
    rig.send(probe6);
    const e = rig.ct.entry;
    rig.tick(3000);
    expect(rig.send(ipv6IcmpError({ src: b6, dst: a6, type: 1, code: 4, inner: probe6 }))).toBe(CTINFO.RELATED_REPLY);
    expect([rig.ct.entry, rig.ct.dir]).toEqual([e, R]);
    expect(rig.timeout(e)).toBe(27);
    expect(rig.send(ipv6IcmpError({ src: b6, dst: "2001:db8:1::3", type: 1, code: 4, inner: probe6 }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.ICMP_ERROR_DADDR);
    const other = ipv6Udp({ src: a6, dst: b6, sport: 1, dport: 9 });
    expect(rig.send(ipv6IcmpError({ src: b6, dst: a6, type: 1, code: 4, inner: other }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.ICMP_ERROR_NO_CONN);
    expect(rig.send(ipv6IcmpError({ src: b6, dst: a6, type: 2, code: 0, mtu: 1280, inner: probe6 }))).toBe(CTINFO.RELATED_REPLY);
    expect(rig.count).toBe(1);
  });
});

// ---------------------------------------------------------------- generic

describe("generic protocols (tracked as nf_conntrack_proto_generic)", () => {
  it("GRE (47) over IPv4 and SCTP (132) over IPv6: 600 s, reply direction works, never ASSURED", () => {
    const rig = new Rig();
    const cases: [Uint8Array, Uint8Array, string][] = [
      [ipv4Generic({ src: "10.0.0.1", dst: "10.0.0.2", proto: 47, payload: "gre!" }),
        ipv4Generic({ src: "10.0.0.2", dst: "10.0.0.1", proto: 47, payload: "gre!" }), "gre      47"],
      [ipv6Generic({ src: "2001:db8::1", dst: "2001:db8::2", proto: 132, payload: "sctp" }),
        ipv6Generic({ src: "2001:db8::2", dst: "2001:db8::1", proto: 132, payload: "sctp" }), "sctp     132"],
    ];
    for (const [orig, reply, name] of cases) {
      rig.at(0);
      expect(rig.send(orig)).toBe(CTINFO.NEW);
      const e = rig.ct.entry;
      expect(rig.timeout(e)).toBe(600);
      expect(rig.events()[0]).toMatch(new RegExp(`^    \\[NEW\\] ${name} 600 src=\\S+ dst=\\S+ \\[UNREPLIED\\] src=\\S+ dst=\\S+$`));
      expect(rig.at(100).send(reply)).toBe(CTINFO.ESTABLISHED_REPLY);
      expect(rig.ct.dir).toBe(R);
      expect(rig.at(5000).send(orig)).toBe(CTINFO.ESTABLISHED);
      expect(rig.at(6000).send(reply)).toBe(CTINFO.ESTABLISHED_REPLY);
      expect(rig.flags(e)).toEqual(["SEEN_REPLY", "CONFIRMED"]);
      expect(rig.timeout(e)).toBe(600);
      expect(rig.events()).toHaveLength(1); // the UPDATE of the reply; none for ASSURED
    }
    expect(rig.count).toBe(2);
  });
});

// ---------------------------------------------------------------- timeouts

describe("timeouts and reaping", () => {
  const udp = (sport: number): Uint8Array => ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", sport, dport: 53 });

  it("an entry expires exactly at its timeout, with a DESTROY event", () => {
    const rig = new Rig();
    rig.at(0).send(udp(1000));
    const e = rig.ct.entry;
    rig.events();
    expect(rig.ct.reap(T0 + 30_000 - 1)).toBe(0);
    expect(rig.ct.table.isLive(e)).toBe(true);
    expect(rig.events()).toEqual([]);
    expect(rig.ct.reap(T0 + 30_000)).toBe(1);
    expect(rig.ct.table.isLive(e)).toBe(false);
    expect(rig.count).toBe(0);
    expect(rig.ct.stats.reaped).toBe(1);
    expect(rig.events()).toEqual([
      "[DESTROY] udp      17 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1000",
    ]);
  });

  it("a lookup treats an expired, not yet reaped entry as gone: the packet is NEW again", () => {
    const rig = new Rig();
    rig.at(0).send(udp(1000));
    const old = rig.ct.table.handle(rig.ct.entry);
    expect(rig.at(29_999).send(udp(1000))).toBe(CTINFO.NEW);
    expect(rig.ct.table.handle(rig.ct.entry)).toBe(old);
    expect(rig.at(29_999 + 30_000).send(udp(1000))).toBe(CTINFO.NEW);
    expect(rig.ct.table.handle(rig.ct.entry)).not.toBe(old);
    expect(rig.count).toBe(1);
    expect(rig.events().map((l) => l.slice(0, 23))).toEqual(["    [NEW] udp      17 3", "[DESTROY] udp      17 s", "    [NEW] udp      17 3"]);
  });

  it("an ICMP error quoting an expired flow is INVALID", () => {
    const rig = new Rig();
    const p = udp(1000);
    rig.at(0).send(p);
    expect(rig.at(30_000).send(ipv4IcmpError({ src: "10.0.0.2", dst: "10.0.0.1", type: 3, code: 3, inner: p }))).toBe(CTINFO.INVALID);
    expect(rig.ct.reason).toBe(REASON.ICMP_ERROR_NO_CONN);
  });

  it("reap's budget bounds the work per call; the default budget is reapBudget", () => {
    const rig = new Rig({ reapBudget: 4 });
    for (let k = 0; k < 10; k++) rig.at(k).send(udp(1000 + k));
    rig.events();
    const late = T0 + 60_000;
    expect(rig.ct.reap(late, 3)).toBe(3);
    expect(rig.count).toBe(7);
    expect(rig.ct.reap(late)).toBe(4);
    expect(rig.count).toBe(3);
    expect(rig.ct.reap(late, 100)).toBe(3);
    expect(rig.ct.reap(late, 100)).toBe(0);
    // Oldest first: the rings are sorted by expiry.
    expect(rig.events().map((l) => /sport=(\d+)/.exec(l)![1])).toEqual(
      Array.from({ length: 10 }, (_, k) => String(1000 + k)),
    );
  });

  it("reap takes only what has expired, whatever the budget", () => {
    const rig = new Rig();
    for (let k = 0; k < 5; k++) rig.at(k * 1000).send(udp(1000 + k));
    expect(rig.ct.reap(T0 + 30_000 + 2000, 100)).toBe(3);
    expect(rig.count).toBe(2);
  });
});

// ---------------------------------------------------------------- CONFIRMED

describe("CONFIRMED semantics", () => {
  const A = { src: "10.0.0.1", dst: "10.0.0.2", sport: 1234, dport: 53 };
  const B = { src: "10.0.0.2", dst: "10.0.0.1", sport: 53, dport: 1234 };

  it("a NEW packet that is then dropped leaves no entry and no event", () => {
    const rig = new Rig();
    const pkt = ipv4Udp(A);
    expect(rig.ct.process(rig.p, rig.p.parse(pkt, 0, pkt.length), rig.now, 0)).toBe(CTINFO.NEW);
    expect(rig.ct.pending).toBe(true);
    expect(rig.ct.events.size).toBe(0);
    rig.ct.abort();
    expect(rig.ct.pending).toBe(false);
    expect(rig.count).toBe(0);
    expect(rig.events()).toEqual([]);
    // The reply finds nothing: it is itself a new connection, in its own original direction.
    expect(rig.send(ipv4Udp(B))).toBe(CTINFO.NEW);
    expect(rig.ct.dir).toBe(O);
  });

  it("the entry becomes visible and NEW is reported only at confirm", () => {
    const rig = new Rig();
    const pkt = ipv4Udp(A);
    rig.ct.process(rig.p, rig.p.parse(pkt, 0, pkt.length), rig.now, 0);
    const e = rig.ct.entry;
    expect(rig.ct.table.isLive(e)).toBe(false);
    expect(rig.ct.events.size).toBe(0);
    expect(rig.ct.confirm(rig.now)).toBe(true);
    expect(rig.ct.table.isLive(e)).toBe(true);
    expect(rig.flags(e)).toEqual(["CONFIRMED"]);
    expect(rig.events()).toHaveLength(1);
    expect(rig.ct.stats.insert).toBe(1);
    // confirm and abort with nothing pending do nothing.
    expect(rig.ct.confirm(rig.now)).toBe(true);
    rig.ct.abort();
    expect(rig.count).toBe(1);
  });
});

// ---------------------------------------------------------------- table full

describe("table full (nf_conntrack_max)", () => {
  it("unreplied flows are evicted by early drop to make room for a new one", () => {
    const rig = new Rig({ max: 16 });
    for (let k = 0; k < 16; k++) expect(rig.send(ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1000 + k, dport: 53 }))).toBe(CTINFO.NEW);
    expect(rig.count).toBe(16);
    rig.events();
    expect(rig.send(ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 2000, dport: 53 }))).toBe(CTINFO.NEW);
    const e = rig.ct.entry;
    expect(rig.ct.table.isLive(e)).toBe(true);
    expect(rig.ct.stats.earlyDrop).toBeGreaterThan(0);
    expect(rig.ct.stats.drop).toBe(0);
    expect(rig.count).toBe(16 - rig.ct.stats.earlyDrop + 1);
    const ev = rig.events();
    expect(ev.filter((l) => l.startsWith("[DESTROY] udp "))).toHaveLength(rig.ct.stats.earlyDrop);
    expect(ev[ev.length - 1]).toMatch(/^ {4}\[NEW\] udp {6}17 30 src=10\.0\.0\.1 dst=10\.0\.0\.2 sport=2000 dport=53 /);
  });

  it("when every entry is ASSURED the new flow is dropped: TRACK.DROP, TABLE_FULL, stats.drop, no entry", () => {
    const rig = new Rig({ max: 16 });
    for (let k = 0; k < 16; k++) {
      const a = { src: "10.0.0.1", dst: "10.0.0.2", sport: 1000 + k, dport: 80 };
      const b = { src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 1000 + k };
      rig.send(ipv4Tcp({ ...a, seq: 100, flags: "S" }));
      const e = rig.ct.entry;
      rig.send(ipv4Tcp({ ...b, seq: 900, ack: 101, flags: "SA" }));
      rig.send(ipv4Tcp({ ...a, seq: 101, ack: 901, flags: "A" }));
      expect(rig.flags(e)).toContain("ASSURED");
    }
    expect(rig.count).toBe(16);
    rig.events();
    const syn = ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 3000, dport: 80, seq: 1, flags: "S" });
    expect(rig.send(syn)).toBe(CTINFO.INVALID);
    expect(rig.ct.track).toBe(TRACK.DROP);
    expect(rig.ct.reason).toBe(REASON.TABLE_FULL);
    expect(rig.ct.entry).toBe(-1);
    expect(rig.ct.stats.drop).toBe(1);
    expect(rig.ct.stats.earlyDrop).toBe(0);
    expect(rig.count).toBe(16);
    expect(rig.events()).toEqual([]);
    // Established flows still pass.
    expect(rig.send(ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1000, dport: 80, seq: 101, ack: 901, flags: "A" }))).toBe(CTINFO.ESTABLISHED);
  });
});

// ---------------------------------------------------------------- counters

describe("per-direction counters", () => {
  const A = { src: "10.0.1.2", dst: "10.0.1.1", sport: 40000, dport: 5000, payload: "hello world!" };
  const B = { src: "10.0.1.1", dst: "10.0.1.2", sport: 5000, dport: 40000, payload: "hello world!" };

  function flow(acct: boolean): { rig: Rig; s: ConnSnapshot } {
    const rig = new Rig({ acct });
    rig.at(0).send(ipv4Udp(A));
    const e = rig.ct.entry;
    rig.at(1).send(ipv4Udp(B));
    rig.at(2).send(ipv4Udp({ ...A, payload: "a longer payload" }));
    return { rig, s: rig.snap(e) };
  }

  it("count packets and IP total-length bytes in each direction", () => {
    const { s } = flow(false);
    expect(Array.from(s.counters)).toEqual([2, 40 + 44, 1, 40]);
    const rig = new Rig();
    rig.send(ipv6Udp({ src: "2001:db8::1", dst: "2001:db8::2", payload: "abcd" }));
    expect(Array.from(rig.snap(rig.ct.entry).counters)).toEqual([1, 40 + 8 + 4, 0, 0]);
  });

  it("are shown in /proc and conntrack -L lines only with acct on", () => {
    const on = flow(true).s;
    on.timeout = 29;
    expect(formatProcLine(on, true)).toBe(
      "ipv4     2 udp      17 29 src=10.0.1.2 dst=10.0.1.1 sport=40000 dport=5000 packets=2 bytes=84 " +
        "src=10.0.1.1 dst=10.0.1.2 sport=5000 dport=40000 packets=1 bytes=40 mark=0 zone=0 use=2\n",
    );
    expect(formatConntrackLine(on, true)).toBe(
      "udp      17 29 src=10.0.1.2 dst=10.0.1.1 sport=40000 dport=5000 packets=2 bytes=84 " +
        "src=10.0.1.1 dst=10.0.1.2 sport=5000 dport=40000 packets=1 bytes=40 mark=0 use=1",
    );
    const off = flow(false).s;
    off.timeout = 29;
    expect(formatProcLine(off, false)).toBe(
      "ipv4     2 udp      17 29 src=10.0.1.2 dst=10.0.1.1 sport=40000 dport=5000 src=10.0.1.1 dst=10.0.1.2 sport=5000 dport=40000 mark=0 zone=0 use=2\n",
    );
    expect(formatConntrackLine(off, false)).not.toContain("packets=");
  });

  it("appear in -E lines only on DESTROY, with acct on", () => {
    const { rig } = flow(true);
    rig.tick(500);
    expect(rig.ct.flush(rig.now)).toBe(1);
    const ev = rig.events();
    expect(ev.slice(0, 2).every((l) => !l.includes("packets="))).toBe(true);
    expect(ev[2]).toBe(
      "[DESTROY] udp      17 29 src=10.0.1.2 dst=10.0.1.1 sport=40000 dport=5000 packets=2 bytes=84 " +
        "src=10.0.1.1 dst=10.0.1.2 sport=5000 dport=40000 packets=1 bytes=40",
    );
    const quiet = flow(false).rig;
    quiet.ct.flush(quiet.now);
    expect(quiet.events().every((l) => !l.includes("packets="))).toBe(true);
  });
});

// ---------------------------------------------------------------- handles

describe("handles", () => {
  const udp = (sport: number): Uint8Array => ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", sport, dport: 53 });

  it("deleteHandle removes a live entry with a DESTROY event; a stale handle (slot reused) returns false", () => {
    const rig = new Rig();
    rig.send(udp(1));
    const i = rig.ct.entry;
    const h = rig.ct.table.handle(i);
    rig.events();
    rig.tick(500);
    expect(rig.ct.deleteHandle(h, rig.now)).toBe(true);
    expect(rig.events()).toEqual([
      "[DESTROY] udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1",
    ]);
    expect(rig.ct.deleteHandle(h, rig.now)).toBe(false);
    rig.send(udp(2));
    expect(rig.ct.entry).toBe(i); // the slot is reused ...
    const h2 = rig.ct.table.handle(i);
    expect(h2).not.toBe(h); // ... under a new generation
    expect(rig.ct.deleteHandle(h, rig.now)).toBe(false);
    expect(rig.ct.table.isLive(i)).toBe(true);
    expect(rig.events()).toHaveLength(1); // only the NEW of sport 2
    expect(rig.ct.deleteHandle(h2, rig.now)).toBe(true);
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 40]) expect(rig.ct.deleteHandle(bad, rig.now)).toBe(false);
  });

  it("a handle freed by abort is stale too", () => {
    const rig = new Rig();
    const pkt = udp(7);
    rig.ct.process(rig.p, rig.p.parse(pkt, 0, pkt.length), rig.now, 0);
    const h = rig.ct.table.handle(rig.ct.entry);
    rig.ct.abort();
    expect(rig.ct.deleteHandle(h, rig.now)).toBe(false);
  });
});

// ---------------------------------------------------------------- events

describe("event ring", () => {
  it("overflow: beyond 16 unread events the rest are counted as lost; memory stays bounded; order kept", () => {
    const rig = new Rig({ eventRing: 16 });
    const ev = rig.ct.events;
    for (let k = 0; k < 40; k++) {
      rig.send(ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1000 + k, dport: 53 }));
      expect(ev.size).toBeLessThanOrEqual(16);
    }
    expect(ev.capacity).toBe(16);
    expect(ev.size).toBe(16);
    expect(ev.lost).toBe(24);
    expect(ev.written).toBe(16);
    const ports = rig.events().map((l) => Number(/sport=(\d+)/.exec(l)![1]));
    expect(ports).toEqual(Array.from({ length: 16 }, (_, k) => 1000 + k));
    // Room again after reading; the lost count stays.
    rig.send(ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 5000, dport: 53 }));
    expect(ev.size).toBe(1);
    expect(ev.lost).toBe(24);
    expect(rig.events()[0]).toContain("sport=5000");
  });

  it("a disabled ring costs nothing and records nothing", () => {
    const rig = new Rig();
    rig.ct.events.enabled = false;
    rig.send(ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2" }));
    expect(rig.ct.events.size).toBe(0);
    expect(rig.ct.events.lost).toBe(0);
  });
});
