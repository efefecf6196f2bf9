/**
 * Scenario tests for TcpTracker.packet(), grouped by what they exercise.
 * The harness plays the tracker core: it creates the entry on the first
 * packet (isNew), sets SEEN_REPLY after a REPLY packet that was accepted or
 * ignored (as nf_conntrack_in does, after the protocol tracker ran), and
 * ASSURED when the tracker says so.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONNTRACK_CONFIG, DEFAULT_TIMEOUTS, type ConntrackConfig } from "../../src/conntrack/config.js";
import { DIR, STATUS, TCLASS, TCP_STATE, TRACK } from "../../src/conntrack/constants.js";
import {
  TCP_BYTE,
  TCP_CT_FLAG,
  TCP_REASON,
  TCP_REASON_NAMES,
  TCP_WORD,
  TcpTracker,
  tcpByteBase,
  tcpWordBase,
} from "../../src/conntrack/tcp.js";
import { TcpView } from "../../src/packet/tcp.js";
import { ipv4Tcp, tcpFlags, type TcpFields } from "../helpers/packets.js";

const O = DIR.ORIGINAL;
const R = DIR.REPLY;
const CLIENT = { src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80 };
const SERVER = { src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 40000 };

function config(over: Partial<ConntrackConfig> = {}, timeouts: Partial<ConntrackConfig["timeouts"]> = {}): ConntrackConfig {
  return { ...DEFAULT_CONNTRACK_CONFIG, ...over, timeouts: { ...DEFAULT_TIMEOUTS, ...timeouts } };
}

/** What one packet did. */
interface Step {
  res: number;
  state: number;
  cls: number;
  secs: number;
  assured: boolean;
  kill: boolean;
  changed: boolean;
  reason: number;
  lower: boolean;
}

/** One connection through one tracker entry, driven like the tracker core would. */
class Conn {
  readonly view = new TcpView();
  status = 0;
  created = false;
  constructor(
    readonly t: TcpTracker,
    readonly idx = 0,
  ) {}

  send(dir: number, f: TcpFields): Step {
    const pkt = ipv4Tcp({ ...(dir === O ? CLIENT : SERVER), ...f });
    expect(this.view.reset(pkt, 20, pkt.length - 20)).toBe(true);
    expect(TcpTracker.validFlags(this.view.flags)).toBe(true);
    const isNew = !this.created;
    const t = this.t;
    const res = t.packet(this.idx, dir, this.view, this.status, isNew);
    if (isNew && res === TRACK.ACCEPT) this.created = true;
    if (res === TRACK.ACCEPT || res === TRACK.IGNORE) {
      if (t.outAssured) this.status |= STATUS.ASSURED;
      if (dir === R) this.status |= STATUS.SEEN_REPLY;
    }
    if (res === TRACK.REPEAT || t.outKill) {
      // The entry is gone; the next packet creates a new one.
      this.created = false;
      this.status = 0;
    }
    return {
      res,
      state: t.state(this.idx),
      cls: t.outTimeoutClass,
      secs: t.outTimeoutClass >= 0 ? t.timeout(t.outTimeoutClass) : -1,
      assured: t.outAssured,
      kill: t.outKill,
      changed: t.outStateChanged,
      reason: t.outReason,
      lower: t.outLowerToUnack,
    };
  }

  state(): number {
    return this.t.state(this.idx);
  }
  word(off: number, dir = 0): number {
    return this.t.words[tcpWordBase(this.idx) + off + 4 * dir]!;
  }
  byte(off: number): number {
    return this.t.bytes[tcpByteBase(this.idx) + off]!;
  }
}

const CISN = 1000;
const SISN = 5000;
const SYN_OPTS = { mss: 1460, sackPerm: true, ts: [1, 0] as [number, number], wscale: 7 };

/** SYN, SYN/ACK, ACK with window scale 7 both ways (Linux defaults), client ISN 1000, server ISN 5000. */
function handshake(c: Conn, opts: { client?: TcpFields["options"]; server?: TcpFields["options"] } = {}): Step[] {
  return [
    c.send(O, { seq: CISN, flags: "S", win: 64240, options: opts.client ?? SYN_OPTS }),
    c.send(R, { seq: SISN, ack: CISN + 1, flags: "SA", win: 65160, options: opts.server ?? SYN_OPTS }),
    c.send(O, { seq: CISN + 1, ack: SISN + 1, flags: "A", win: 502 }),
  ];
}

function established(over: Partial<ConntrackConfig> = {}): Conn {
  const c = new Conn(new TcpTracker(4, config(over)), 1);
  handshake(c);
  expect(c.t.state(1)).toBe(TCP_STATE.ESTABLISHED);
  return c;
}

const data = (n: number): Uint8Array => new Uint8Array(n).fill(0x61);

// ------------------------------------------------------------------ flags

describe("validFlags (tcp_error flag table)", () => {
  const F = 0x01, S = 0x02, Rs = 0x04, P = 0x08, A = 0x10, U = 0x20, E = 0x40, C = 0x80;
  const VALID = [S, S | U, S | A, Rs, Rs | A, F | A, F | A | U, A, A | U];

  it("accepts exactly the nine valid combinations, with any PSH/ECE/CWR", () => {
    for (let f = 0; f < 256; f++) {
      const core = f & ~(P | E | C);
      expect([f, TcpTracker.validFlags(f)]).toEqual([f, VALID.includes(core)]);
    }
  });

  it.each([
    ["NULL", 0],
    ["FIN alone", F],
    ["SYN|FIN", S | F],
    ["SYN|FIN|ACK", S | F | A],
    ["SYN|RST", S | Rs],
    ["FIN|RST", F | Rs],
    ["Xmas FIN|URG|PSH", F | U | P],
    ["all flags", 0xff],
    ["SYN|ACK|URG", S | A | U],
    ["RST|ACK|URG", Rs | A | U],
    ["RST|URG", Rs | U],
    ["URG alone", U],
    ["PSH alone", P],
    ["FIN|URG", F | U],
  ])("rejects %s", (_name, f) => {
    expect(TcpTracker.validFlags(f)).toBe(false);
  });

  it.each([
    ["SYN", "S"],
    ["SYN|URG", "SU"],
    ["SYN|ACK", "SA"],
    ["SYN|ECE|CWR (ECN setup)", "SEC"],
    ["SYN|ACK|ECE", "SAE"],
    ["RST", "R"],
    ["RST|ACK", "RA"],
    ["FIN|ACK", "FA"],
    ["FIN|PSH|ACK", "FPA"],
    ["FIN|ACK|URG", "FAU"],
    ["ACK", "A"],
    ["PSH|ACK", "PA"],
    ["ACK|URG", "AU"],
  ])("accepts %s", (_name, f) => {
    expect(TcpTracker.validFlags(tcpFlags(f))).toBe(true);
  });
});

// ------------------------------------------------------------------ open and close

describe("three-way handshake and close", () => {
  it("SYN_SENT 120 -> SYN_RECV 60 -> ESTABLISHED [ASSURED]", () => {
    const c = new Conn(new TcpTracker(4, config()), 2);
    const [syn, synack, ack] = handshake(c);
    expect(syn).toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_SENT, cls: TCLASS.TCP_SYN_SENT, secs: 120, changed: true, assured: false });
    expect(synack).toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_RECV, cls: TCLASS.TCP_SYN_RECV, secs: 60, changed: true, assured: false });
    expect(ack).toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, cls: TCLASS.TCP_ESTABLISHED, secs: 432000, changed: true, assured: true });
    expect(c.status).toBe(STATUS.SEEN_REPLY | STATUS.ASSURED);
    // Window scaling negotiated both ways; SACK permitted both ways.
    expect(c.byte(TCP_BYTE.TD_SCALE)).toBe(7);
    expect(c.byte(TCP_BYTE.TD_SCALE + 1)).toBe(7);
    expect(c.byte(TCP_BYTE.FLAGS) & TCP_CT_FLAG.SACK_PERM).toBeTruthy();
    expect(c.byte(TCP_BYTE.FLAGS + 1) & TCP_CT_FLAG.SACK_PERM).toBeTruthy();
    // Window data per direction (tcp_in_window): td_end = next seq.
    expect(c.word(TCP_WORD.TD_END, 0)).toBe(CISN + 1);
    expect(c.word(TCP_WORD.TD_END, 1)).toBe(SISN + 1);
    expect(c.word(TCP_WORD.TD_MAXACK, 0)).toBe(SISN + 1);
    expect(c.word(TCP_WORD.TD_MAXACK, 1)).toBe(CISN + 1);
  });

  it("client closes: FIN_WAIT -> CLOSE_WAIT -> LAST_ACK -> TIME_WAIT", () => {
    const c = established();
    // Data: unacknowledged data lowers the timeout to UNACK (300 s).
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "PA", win: 502, payload: data(100) }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, cls: TCLASS.TCP_UNACK, secs: 300, changed: false });
    expect(c.send(R, { seq: 5001, ack: 1101, flags: "A", win: 509 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, cls: TCLASS.TCP_ESTABLISHED, changed: false });
    expect(c.send(O, { seq: 1101, ack: 5001, flags: "FA", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.FIN_WAIT, cls: TCLASS.TCP_FIN_WAIT, secs: 120, changed: true });
    expect(c.byte(TCP_BYTE.FLAGS) & TCP_CT_FLAG.CLOSE_INIT).toBeTruthy();
    expect(c.byte(TCP_BYTE.FLAGS + 1) & TCP_CT_FLAG.CLOSE_INIT).toBe(0);
    expect(c.send(R, { seq: 5001, ack: 1102, flags: "A", win: 509 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE_WAIT, cls: TCLASS.TCP_CLOSE_WAIT, secs: 60, changed: true });
    expect(c.send(R, { seq: 5001, ack: 1102, flags: "FA", win: 509 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.LAST_ACK, cls: TCLASS.TCP_LAST_ACK, secs: 30, changed: true });
    expect(c.send(O, { seq: 1102, ack: 5002, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.TIME_WAIT, cls: TCLASS.TCP_TIME_WAIT, secs: 120, changed: true });
    // Retransmitted last ACK: stays.
    expect(c.send(O, { seq: 1102, ack: 5002, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.TIME_WAIT, changed: false });
  });

  it("server closes: FIN_WAIT -> CLOSE_WAIT -> LAST_ACK -> TIME_WAIT", () => {
    const c = established();
    expect(c.send(R, { seq: 5001, ack: 1001, flags: "FA", win: 509 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.FIN_WAIT, secs: 120 });
    expect(c.byte(TCP_BYTE.FLAGS + 1) & TCP_CT_FLAG.CLOSE_INIT).toBeTruthy();
    expect(c.send(O, { seq: 1001, ack: 5002, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE_WAIT, secs: 60 });
    expect(c.send(O, { seq: 1001, ack: 5002, flags: "FA", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.LAST_ACK, secs: 30 });
    expect(c.send(R, { seq: 5002, ack: 1002, flags: "A", win: 509 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.TIME_WAIT, secs: 120 });
  });

  it("simultaneous close: FIN from both sides before any ACK", () => {
    const c = established();
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "FA", win: 502 }).state).toBe(TCP_STATE.FIN_WAIT);
    expect(c.send(R, { seq: 5001, ack: 1001, flags: "FA", win: 509 }).state).toBe(TCP_STATE.LAST_ACK);
    expect(c.send(O, { seq: 1002, ack: 5002, flags: "A", win: 502 }).state).toBe(TCP_STATE.TIME_WAIT);
  });

  it("ACK before any SYN/ACK in SYN_SENT is INVALID; FIN in SYN_SENT is INVALID", () => {
    const c = new Conn(new TcpTracker(1, config()));
    c.send(O, { seq: CISN, flags: "S", options: SYN_OPTS });
    expect(c.send(O, { seq: CISN + 1, ack: 1, flags: "A" })).toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.INVALID_STATE, state: TCP_STATE.SYN_SENT });
    expect(c.send(O, { seq: CISN + 1, ack: 1, flags: "FA" })).toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.INVALID_STATE });
    expect(TCP_REASON_NAMES[TCP_REASON.INVALID_STATE]).toBe("invalid state");
  });

  it("a first packet that cannot open a connection is INVALID (invalid new)", () => {
    for (const flags of ["SA", "FA", "R", "RA"]) {
      const c = new Conn(new TcpTracker(1, config()));
      expect(c.send(O, { seq: 1, ack: 1, flags })).toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.INVALID_NEW });
    }
  });
});

// ------------------------------------------------------------------ SYN_SENT details

describe("SYN_SENT", () => {
  it("a SYN retransmission does not refresh the timeout (no reply yet)", () => {
    const c = new Conn(new TcpTracker(1, config()));
    expect(c.send(O, { seq: CISN, flags: "S", options: SYN_OPTS }).cls).toBe(TCLASS.TCP_SYN_SENT);
    expect(c.send(O, { seq: CISN, flags: "S", options: SYN_OPTS }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_SENT, cls: -1, changed: false });
    // Port reuse with a new ISN: the sender is re-initialised, still no refresh.
    expect(c.send(O, { seq: 777777, flags: "S", options: SYN_OPTS }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_SENT, cls: -1 });
    expect(c.word(TCP_WORD.TD_END, 0)).toBe(777778);
    // The SYN/ACK for the new ISN is accepted.
    expect(c.send(R, { seq: SISN, ack: 777778, flags: "SA", win: 65160, options: SYN_OPTS }).state).toBe(TCP_STATE.SYN_RECV);
  });

  it("RST with seq 0 answering our SYN is accepted and deletes the entry (no reply seen)", () => {
    const c = new Conn(new TcpTracker(1, config()));
    c.send(O, { seq: CISN, flags: "S", options: SYN_OPTS });
    expect(c.send(R, { seq: 0, ack: CISN + 1, flags: "RA", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE, kill: true, changed: true, cls: -1 });
  });

  it("RST from the client before any reply deletes the entry", () => {
    const c = new Conn(new TcpTracker(1, config()));
    c.send(O, { seq: CISN, flags: "S", options: SYN_OPTS });
    expect(c.send(O, { seq: CISN + 1, flags: "R", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE, kill: true });
  });

  it("a reply ACK in SYN_SENT is ignored; the client's RST answering it (challenge ACK) skips the window check", () => {
    const c = new Conn(new TcpTracker(1, config()));
    c.send(O, { seq: CISN, flags: "S", options: SYN_OPTS });
    // Half-open server: answers with a bare ACK (e.g. an RFC 5961 challenge ACK).
    expect(c.send(R, { seq: 7000, ack: 55555, flags: "A", win: 500 }))
      .toMatchObject({ res: TRACK.IGNORE, state: TCP_STATE.SYN_SENT, reason: TCP_REASON.IGNORED, cls: -1 });
    expect(c.word(TCP_WORD.LAST_ACK)).toBe(55555);
    // The client resets with seq = that ack: accepted, CLOSE. SEEN_REPLY was
    // set by the ignored reply, so the entry is not deleted at once.
    expect(c.send(O, { seq: 55555, flags: "R", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE, kill: false, cls: TCLASS.TCP_CLOSE, secs: 10 });
  });
});

// ------------------------------------------------------------------ RST

describe("RST in ESTABLISHED", () => {
  /** Established, client sent 100 bytes, server acked them: server's td_maxack = 1101. */
  function withData(over: Partial<ConntrackConfig> = {}): Conn {
    const c = established(over);
    c.send(O, { seq: 1001, ack: 5001, flags: "PA", win: 502, payload: data(100) });
    c.send(R, { seq: 5001, ack: 1101, flags: "A", win: 509 });
    expect(c.word(TCP_WORD.TD_MAXACK, 1)).toBe(1101);
    return c;
  }

  it("RST with seq == td_maxack closes: CLOSE, 10 s, entry kept (ASSURED)", () => {
    const c = withData();
    expect(c.send(O, { seq: 1101, flags: "R", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE, cls: TCLASS.TCP_CLOSE, secs: 10, kill: false, changed: true });
  });

  it("RST from the server with seq == td_maxack of the client closes", () => {
    const c = withData();
    expect(c.send(R, { seq: 5001, ack: 1101, flags: "RA", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE });
  });

  it("RST below td_maxack is INVALID (invalid rst), state unchanged", () => {
    const c = withData();
    expect(c.send(O, { seq: 1000, flags: "R", win: 0 }))
      .toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.INVALID_RST, state: TCP_STATE.ESTABLISHED, cls: -1 });
  });

  it("tcpIgnoreInvalidRst: RST below td_maxack is accepted but keeps ESTABLISHED (not exact)", () => {
    const c = withData({ tcpIgnoreInvalidRst: true });
    expect(c.send(O, { seq: 1000, flags: "R", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, changed: false });
  });

  it("in-window RST with seq != td_maxack keeps ESTABLISHED (room for a challenge ACK), timeout CLOSE", () => {
    const c = withData();
    // nf_conntrack_tcp_packet: new_state = old_state; the timeout is still
    // timeouts[CLOSE] because index == TCP_RST_SET.
    expect(c.send(O, { seq: 1601, flags: "R", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, changed: false, cls: TCLASS.TCP_CLOSE, secs: 10 });
    // The exact RST that follows the challenge ACK then closes.
    expect(c.send(O, { seq: 1101, flags: "R", win: 0 }).state).toBe(TCP_STATE.CLOSE);
  });

  it("RST that ends a train (seq == last_end of the previous data in the same direction) closes", () => {
    const c = withData();
    c.send(O, { seq: 1101, ack: 5001, flags: "PA", win: 502, payload: data(19) });
    expect(c.word(TCP_WORD.LAST_END)).toBe(1120);
    expect(c.send(O, { seq: 1120, ack: 5001, flags: "RA", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE });
  });

  it("out-of-window RST stays INVALID even with be_liberal", () => {
    const c = withData({ tcpBeLiberal: true });
    expect(c.send(O, { seq: 500, flags: "R", win: 0 })).toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.INVALID_RST });
  });

  it("closing states skip the RST checks (tcp_can_early_drop)", () => {
    const c = withData();
    c.send(O, { seq: 1101, ack: 5001, flags: "FA", win: 502 });
    expect(c.state()).toBe(TCP_STATE.FIN_WAIT);
    // seq far below td_maxack: would be "invalid rst" in ESTABLISHED.
    expect(c.send(R, { seq: 1, flags: "R", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE, cls: TCLASS.TCP_CLOSE });
  });

  it("RST answering a SYN we ignored skips the window check", () => {
    const c = withData();
    expect(c.send(O, { seq: 90000, flags: "S", options: SYN_OPTS })).toMatchObject({ res: TRACK.IGNORE, state: TCP_STATE.ESTABLISHED });
    // The server's RST carries a seq far outside its window but acks the SYN.
    expect(c.send(R, { seq: 123, ack: 90001, flags: "RA", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.CLOSE });
  });
});

// ------------------------------------------------------------------ window checks

describe("window tracking (tcp_in_window)", () => {
  it("data far beyond the receiver's window: INVALID (SEQ is over upper bound)", () => {
    const c = established();
    const maxend = c.word(TCP_WORD.TD_MAXEND, 0);
    const rmaxwin = c.word(TCP_WORD.TD_MAXWIN, 1);
    const seq = (maxend + rmaxwin + 1000) >>> 0;
    expect(c.send(O, { seq, ack: 5001, flags: "PA", win: 502, payload: data(100) }))
      .toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.SEQ_OVER_UPPER, state: TCP_STATE.ESTABLISHED, cls: -1 });
    expect(TCP_REASON_NAMES[TCP_REASON.SEQ_OVER_UPPER]).toBe("SEQ is over upper bound (over rcv window)");
  });

  it("a small overshoot past the window: IGNORE, td_end still advanced", () => {
    const c = established();
    const maxend = c.word(TCP_WORD.TD_MAXEND, 0);
    const seq = (maxend + 1) >>> 0;
    expect(c.send(O, { seq, ack: 5001, flags: "PA", win: 502, payload: data(100) }))
      .toMatchObject({ res: TRACK.IGNORE, reason: TCP_REASON.OVERSHOOT, state: TCP_STATE.ESTABLISHED, cls: -1 });
    expect(c.word(TCP_WORD.TD_END, 0)).toBe((seq + 100) >>> 0);
    expect(c.byte(TCP_BYTE.FLAGS) & TCP_CT_FLAG.DATA_UNACKNOWLEDGED).toBeTruthy();
    // The peer ACKs it: accepted, not "ACK is over upper bound".
    expect(c.send(R, { seq: 5001, ack: (seq + 100) >>> 0, flags: "A", win: 509 }).res).toBe(TRACK.ACCEPT);
  });

  it("already-ACKed data retransmitted from before the window: IGNORE, stays ESTABLISHED", () => {
    const c = established();
    const end = c.word(TCP_WORD.TD_END, 0);
    const rmaxwin = c.word(TCP_WORD.TD_MAXWIN, 1);
    const seq = (end - rmaxwin - 500) >>> 0;
    expect(c.send(O, { seq, ack: 5001, flags: "PA", win: 502, payload: data(100) }))
      .toMatchObject({ res: TRACK.IGNORE, reason: TCP_REASON.SEQ_UNDER_LOWER, state: TCP_STATE.ESTABLISHED, cls: -1, changed: false });
  });

  it("a retransmission inside the window is accepted", () => {
    const c = established();
    c.send(O, { seq: 1001, ack: 5001, flags: "PA", win: 502, payload: data(100) });
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "PA", win: 502, payload: data(100) }).res).toBe(TRACK.ACCEPT);
  });

  it("ACK of data not seen yet: INVALID (ACK is over upper bound)", () => {
    const c = established();
    expect(c.send(O, { seq: 1001, ack: 5001 + 10000, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.ACK_OVER_UPPER, state: TCP_STATE.ESTABLISHED });
  });

  it("ACK far below the window (overly delayed): IGNORE", () => {
    const c = established();
    expect(c.send(O, { seq: 1001, ack: (5001 - 70000) >>> 0, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.IGNORE, reason: TCP_REASON.ACK_UNDER_LOWER });
  });

  it("sequence numbers wrap around 2^32", () => {
    const c = new Conn(new TcpTracker(1, config()));
    const cisn = 0xffffff00;
    c.send(O, { seq: cisn, flags: "S", win: 64240, options: SYN_OPTS });
    c.send(R, { seq: 0xfffffff0, ack: (cisn + 1) >>> 0, flags: "SA", win: 65160, options: SYN_OPTS });
    expect(c.send(O, { seq: (cisn + 1) >>> 0, ack: 0xfffffff1, flags: "A", win: 502 }).state).toBe(TCP_STATE.ESTABLISHED);
    // 1000 bytes crossing the wrap, acked with a small ack.
    expect(c.send(O, { seq: (cisn + 1) >>> 0, ack: 0xfffffff1, flags: "PA", win: 502, payload: data(1000) }).res).toBe(TRACK.ACCEPT);
    expect(c.word(TCP_WORD.TD_END, 0)).toBe((cisn + 1001) >>> 0);
    expect(c.send(R, { seq: 0xfffffff1, ack: (cisn + 1001) >>> 0, flags: "A", win: 509 }))
      .toMatchObject({ res: TRACK.ACCEPT, cls: TCLASS.TCP_ESTABLISHED });
  });

  it("be_liberal: window failures are accepted (and update the state)", () => {
    const c = established({ tcpBeLiberal: true });
    expect(c.send(O, { seq: 1001, ack: 5001 + 10000, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, reason: TCP_REASON.ACK_OVER_UPPER, state: TCP_STATE.ESTABLISHED });
    const maxend = c.word(TCP_WORD.TD_MAXEND, 0);
    expect(c.send(O, { seq: (maxend + 200000) >>> 0, ack: 5001, flags: "FA", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, reason: TCP_REASON.SEQ_OVER_UPPER, state: TCP_STATE.FIN_WAIT });
  });

  it("zero window: timeout lowered to RETRANS", () => {
    const c = established();
    expect(c.send(R, { seq: 5001, ack: 1001, flags: "A", win: 0 }))
      .toMatchObject({ res: TRACK.ACCEPT, cls: TCLASS.TCP_RETRANS, secs: 300 });
  });
});

describe("window scaling", () => {
  it("is used only when both sides send the option", () => {
    const both = new Conn(new TcpTracker(1, config()));
    handshake(both, { client: { ...SYN_OPTS, wscale: 7 }, server: { ...SYN_OPTS, wscale: 9 } });
    expect([both.byte(TCP_BYTE.TD_SCALE), both.byte(TCP_BYTE.TD_SCALE + 1)]).toEqual([7, 9]);

    const clientOnly = new Conn(new TcpTracker(1, config()));
    handshake(clientOnly, { server: { mss: 1460, sackPerm: true } });
    expect([clientOnly.byte(TCP_BYTE.TD_SCALE), clientOnly.byte(TCP_BYTE.TD_SCALE + 1)]).toEqual([0, 0]);
    expect(clientOnly.byte(TCP_BYTE.FLAGS) & TCP_CT_FLAG.WINDOW_SCALE).toBeTruthy();

    const serverOnly = new Conn(new TcpTracker(1, config()));
    handshake(serverOnly, { client: { mss: 1460, sackPerm: true } });
    expect([serverOnly.byte(TCP_BYTE.TD_SCALE), serverOnly.byte(TCP_BYTE.TD_SCALE + 1)]).toEqual([0, 0]);
  });

  it("a re-sent SYN without options keeps the first SYN's scale (tcp_options returns before clearing)", () => {
    const c = new Conn(new TcpTracker(1, config()));
    c.send(O, { seq: CISN, flags: "S", win: 64240, options: { ...SYN_OPTS, wscale: 7 } });
    // Higher ISN in SYN_SENT: tcp_init_sender() runs, but with no options at all
    // tcp_options() leaves td_scale and the flags as they were.
    c.send(O, { seq: CISN + 100, flags: "S", win: 64240 });
    expect(c.word(TCP_WORD.TD_END, 0)).toBe(CISN + 101);
    expect(c.byte(TCP_BYTE.FLAGS) & TCP_CT_FLAG.WINDOW_SCALE).toBeTruthy();
    c.send(R, { seq: SISN, ack: CISN + 101, flags: "SA", win: 65160, options: { ...SYN_OPTS, wscale: 8 } });
    expect([c.byte(TCP_BYTE.TD_SCALE), c.byte(TCP_BYTE.TD_SCALE + 1)]).toEqual([7, 8]);
  });

  it("a scale above 14 is capped at 14", () => {
    const c = new Conn(new TcpTracker(1, config()));
    handshake(c, { client: { wscale: 15 }, server: { wscale: 20 } });
    expect([c.byte(TCP_BYTE.TD_SCALE), c.byte(TCP_BYTE.TD_SCALE + 1)]).toEqual([14, 14]);
  });

  it("the scaled window opens the receiver's window; unscaled it does not", () => {
    // Server advertises win 1000: 128000 bytes scaled by 7, 1000 unscaled.
    const far = 1001 + 100000;
    const scaled = new Conn(new TcpTracker(1, config()));
    handshake(scaled);
    scaled.send(R, { seq: 5001, ack: 1001, flags: "A", win: 1000 });
    expect(scaled.word(TCP_WORD.TD_MAXEND, 0)).toBe(1001 + (1000 << 7));
    expect(scaled.send(O, { seq: far, ack: 5001, flags: "PA", win: 502, payload: data(100) }).res).toBe(TRACK.ACCEPT);

    const unscaled = new Conn(new TcpTracker(1, config()));
    handshake(unscaled, { server: { mss: 1460, sackPerm: true } });
    unscaled.send(R, { seq: 5001, ack: 1001, flags: "A", win: 1000 });
    expect(unscaled.word(TCP_WORD.TD_MAXEND, 0)).toBe(1001 + 65160); // the SYN/ACK's window still rules
    expect(unscaled.send(O, { seq: far, ack: 5001, flags: "PA", win: 502, payload: data(100) }))
      .toMatchObject({ res: TRACK.IGNORE, reason: TCP_REASON.OVERSHOOT });
  });
});

describe("SACK", () => {
  function withServerData(serverOpts: TcpFields["options"] = SYN_OPTS): Conn {
    const c = new Conn(new TcpTracker(1, config()));
    handshake(c, { server: serverOpts });
    c.send(R, { seq: 5001, ack: 1001, flags: "PA", win: 509, payload: data(1000) });
    c.send(R, { seq: 6001, ack: 1001, flags: "PA", win: 509, payload: data(1000) });
    expect(c.word(TCP_WORD.TD_END, 1)).toBe(7001);
    return c;
  }

  it("a SACK block up to the data sent is accepted", () => {
    const c = withServerData();
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "A", win: 502, options: { ts: [2, 1], sack: [[6001, 7001]] } }).res)
      .toBe(TRACK.ACCEPT);
  });

  it("a SACK block beyond the data sent is INVALID (ACK is over upper bound)", () => {
    const c = withServerData();
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "A", win: 502, options: { sack: [[6001, 7001], [7501, 8001]] } }))
      .toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.ACK_OVER_UPPER });
  });

  it("SACK blocks are not looked at when the receiver did not permit SACK", () => {
    const c = withServerData({ mss: 1460, wscale: 7 });
    expect(c.byte(TCP_BYTE.FLAGS + 1) & TCP_CT_FLAG.SACK_PERM).toBe(0);
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "A", win: 502, options: { sack: [[7501, 8001]] } }).res)
      .toBe(TRACK.ACCEPT);
  });
});

// ------------------------------------------------------------------ timeouts

describe("timeout classes", () => {
  it("max_retrans identical ACKs lower the timeout to RETRANS", () => {
    const c = established();
    // The handshake's last ACK was (seq 1001, ack 5001, win 502); repeat it.
    const dup = { seq: 1001, ack: 5001, flags: "A", win: 502 };
    expect(c.send(O, dup).cls).toBe(TCLASS.TCP_ESTABLISHED);
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(1);
    expect(c.send(O, dup).cls).toBe(TCLASS.TCP_ESTABLISHED);
    expect(c.send(O, dup)).toMatchObject({ cls: TCLASS.TCP_RETRANS, secs: 300 });
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(3);
    // A different packet resets the counter.
    expect(c.send(R, { seq: 5001, ack: 1001, flags: "A", win: 509 }).cls).toBe(TCLASS.TCP_ESTABLISHED);
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(0);
  });

  it("a retransmission must match dir, seq, ack, end and window", () => {
    const c = established();
    c.send(O, { seq: 1001, ack: 5001, flags: "A", win: 502 });
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(1);
    c.send(O, { seq: 1001, ack: 5001, flags: "A", win: 503 }); // window differs
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(0);
    c.send(O, { seq: 1001, ack: 5001, flags: "A", win: 503 });
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(1);
    c.send(R, { seq: 5001, ack: 1001, flags: "A", win: 503 }); // direction differs
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(0);
    // Only the ACK class counts: a FIN does not touch the counter.
    c.send(R, { seq: 5001, ack: 1001, flags: "A", win: 503 });
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(1);
    c.send(R, { seq: 5001, ack: 1001, flags: "FA", win: 503 });
    expect(c.byte(TCP_BYTE.RETRANS)).toBe(1);
  });

  it("min() semantics: UNACK set above ESTABLISHED does not raise the timeout", () => {
    const c = new Conn(new TcpTracker(1, config({}, { tcpUnacknowledged: 900000 })));
    handshake(c);
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "PA", win: 502, payload: data(10) }))
      .toMatchObject({ cls: TCLASS.TCP_ESTABLISHED, secs: 432000 });
  });

  it("UNACK applies to short states only if it is shorter", () => {
    const c = new Conn(new TcpTracker(1, config({}, { tcpUnacknowledged: 50 })));
    handshake(c);
    // FIN_WAIT (120) with unacknowledged FIN: min(120, 50) = UNACK.
    expect(c.send(O, { seq: 1001, ack: 5001, flags: "FA", win: 502 })).toMatchObject({ state: TCP_STATE.FIN_WAIT, cls: TCLASS.TCP_UNACK, secs: 50 });
  });
});

// ------------------------------------------------------------------ loose pickup

describe("mid-stream pickup (tcp_loose)", () => {
  it("on: a bare ACK creates an ESTABLISHED entry, timeout capped until a reply", () => {
    const c = new Conn(new TcpTracker(1, config()));
    const first = c.send(O, { seq: 1000, ack: 2000, flags: "A", win: 500 });
    expect(first).toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, secs: 300, assured: false, changed: true });
    // Exact kernel path: the first ACK fails check III (nothing seen the other
    // way), be_liberal accepts it early, so last_win stays 0 and the zero-window
    // rule picks RETRANS (300 s) before the no-reply cap to UNACK (300 s).
    expect(first.cls).toBe(TCLASS.TCP_RETRANS);
    expect(first.reason).toBe(TCP_REASON.ACK_OVER_UPPER);
    expect(c.byte(TCP_BYTE.FLAGS)).toBe(TCP_CT_FLAG.SACK_PERM | TCP_CT_FLAG.BE_LIBERAL);
    expect(c.byte(TCP_BYTE.FLAGS + 1)).toBe(TCP_CT_FLAG.SACK_PERM | TCP_CT_FLAG.BE_LIBERAL);
    expect(c.word(TCP_WORD.TD_END, 0)).toBe(1000);
    expect(c.word(TCP_WORD.TD_MAXWIN, 0)).toBe(500);
    expect(c.word(TCP_WORD.TD_MAXEND, 0)).toBe(1500);
    // The first reply: SEEN_REPLY is not set yet while it is processed: UNACK.
    expect(c.send(R, { seq: 2000, ack: 1000, flags: "A", win: 600 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, cls: TCLASS.TCP_UNACK, assured: false });
    // Then ASSURED and the full ESTABLISHED timeout.
    expect(c.send(O, { seq: 1000, ack: 2000, flags: "A", win: 500 }))
      .toMatchObject({ res: TRACK.ACCEPT, cls: TCLASS.TCP_ESTABLISHED, assured: true });
  });

  it("on: the cap to UNACK wins when RETRANS is configured longer", () => {
    const c = new Conn(new TcpTracker(1, config({}, { tcpMaxRetrans: 1000 })));
    expect(c.send(O, { seq: 1000, ack: 2000, flags: "PA", win: 500, payload: data(10) }))
      .toMatchObject({ res: TRACK.ACCEPT, cls: TCLASS.TCP_UNACK, secs: 300 });
  });

  it("off: a non-SYN first packet is INVALID", () => {
    const c = new Conn(new TcpTracker(1, config({ tcpLoose: false })));
    expect(c.send(O, { seq: 1000, ack: 2000, flags: "A", win: 500 }))
      .toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.PICKUP_DISABLED });
    expect(c.send(O, { seq: CISN, flags: "S", options: SYN_OPTS }).res).toBe(TRACK.ACCEPT);
  });

  it("FIN/ACK cannot pick up a connection even with loose on", () => {
    const c = new Conn(new TcpTracker(1, config()));
    expect(c.send(O, { seq: 1000, ack: 2000, flags: "FA" })).toMatchObject({ res: TRACK.INVALID, reason: TCP_REASON.INVALID_NEW });
  });
});

// ------------------------------------------------------------------ simultaneous open

describe("simultaneous open", () => {
  it("SYN, reply SYN (SYN_SENT2), SYN/ACK (SYN_RECV), reply ACK -> ESTABLISHED", () => {
    const c = new Conn(new TcpTracker(1, config()));
    expect(c.send(O, { seq: 100, flags: "S", win: 64240, options: SYN_OPTS }).state).toBe(TCP_STATE.SYN_SENT);
    const s2 = c.send(R, { seq: 300, flags: "S", win: 65160, options: SYN_OPTS });
    // old state SYN_SENT, index SYN, no reply seen yet: no refresh, but an event.
    expect(s2).toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_SENT2, cls: -1, changed: true });
    expect((c.word(TCP_WORD.LAST_MISC) >>> 24) & TCP_CT_FLAG.SIMULTANEOUS_OPEN).toBeTruthy();
    expect(c.word(TCP_WORD.TD_END, 1)).toBe(301);
    expect(c.send(O, { seq: 100, ack: 301, flags: "SA", win: 64240, options: SYN_OPTS }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_RECV, cls: TCLASS.TCP_SYN_RECV, assured: false });
    expect(c.send(R, { seq: 301, ack: 101, flags: "A", win: 509 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, assured: true, cls: TCLASS.TCP_ESTABLISHED });
  });

  it("the peer's own SYN/ACK in SYN_RECV is ignored; the original ACK completes", () => {
    const c = new Conn(new TcpTracker(1, config()));
    c.send(O, { seq: 100, flags: "S", win: 64240, options: SYN_OPTS });
    c.send(R, { seq: 300, flags: "S", win: 65160, options: SYN_OPTS });
    c.send(O, { seq: 100, ack: 301, flags: "SA", win: 64240, options: SYN_OPTS });
    expect(c.send(R, { seq: 300, ack: 101, flags: "SA", win: 65160, options: SYN_OPTS }))
      .toMatchObject({ res: TRACK.IGNORE, state: TCP_STATE.SYN_RECV });
    expect(c.send(O, { seq: 101, ack: 301, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED, assured: true });
  });
});

// ------------------------------------------------------------------ reopen and resync

describe("reopen and resync", () => {
  function timeWait(): Conn {
    const c = established();
    c.send(O, { seq: 1001, ack: 5001, flags: "FA", win: 502 });
    c.send(R, { seq: 5001, ack: 1002, flags: "FA", win: 509 });
    c.send(O, { seq: 1002, ack: 5002, flags: "A", win: 502 });
    expect(c.state()).toBe(TCP_STATE.TIME_WAIT);
    return c;
  }

  it("a new SYN in TIME_WAIT: REPEAT, then the packet creates a fresh entry", () => {
    const c = timeWait();
    const syn = { seq: 424242, flags: "S", win: 64240, options: SYN_OPTS };
    expect(c.send(O, syn)).toMatchObject({ res: TRACK.REPEAT, reason: TCP_REASON.REOPEN, cls: -1 });
    expect(c.send(O, syn)).toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_SENT, cls: TCLASS.TCP_SYN_SENT });
    expect(c.word(TCP_WORD.TD_END, 0)).toBe(424243);
  });

  it("a SYN from the server in TIME_WAIT also reopens (roles switched)", () => {
    const c = timeWait();
    expect(c.send(R, { seq: 424242, flags: "S", options: SYN_OPTS }).res).toBe(TRACK.REPEAT);
  });

  it("CLOSE after our own RST: a new SYN reopens; after the peer's RST it is ignored until the SYN/ACK resyncs", () => {
    const a = established();
    a.send(O, { seq: 1001, flags: "R", win: 0 });
    expect(a.state()).toBe(TCP_STATE.CLOSE);
    expect(a.send(O, { seq: 7777, flags: "S", options: SYN_OPTS }).res).toBe(TRACK.REPEAT);

    const b = established();
    b.send(R, { seq: 5001, ack: 1001, flags: "RA", win: 0 });
    expect(b.state()).toBe(TCP_STATE.CLOSE);
    expect(b.send(O, { seq: 7777, flags: "S", win: 64240, options: SYN_OPTS }))
      .toMatchObject({ res: TRACK.IGNORE, state: TCP_STATE.CLOSE, reason: TCP_REASON.IGNORED });
    expect(b.send(R, { seq: 9000, ack: 7778, flags: "SA", win: 65160, options: SYN_OPTS }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_RECV, changed: true });
  });

  it("a new SYN in ESTABLISHED is ignored; the SYN/ACK answering it resyncs to SYN_RECV", () => {
    const c = established();
    expect(c.send(O, { seq: 90000, flags: "S", win: 64240, options: { ...SYN_OPTS, wscale: 6 } }))
      .toMatchObject({ res: TRACK.IGNORE, state: TCP_STATE.ESTABLISHED, cls: -1, changed: false });
    expect(c.byte(TCP_BYTE.LAST_INDEX)).toBe(0); // TCP_SYN_SET
    // A SYN/ACK that does not answer it stays ignored.
    expect(c.send(R, { seq: 70000, ack: 12345, flags: "SA", win: 65160, options: SYN_OPTS }).res).toBe(TRACK.IGNORE);
    // That SYN/ACK is now the recorded packet, so only a SYN/ACK right after
    // a (re)sent SYN resyncs.
    expect(c.send(O, { seq: 90000, flags: "S", win: 64240, options: { ...SYN_OPTS, wscale: 6 } }).res).toBe(TRACK.IGNORE);
    expect(c.send(R, { seq: 70000, ack: 90001, flags: "SA", win: 65160, options: SYN_OPTS }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.SYN_RECV, changed: true });
    // Sender data re-initialised from the recorded SYN.
    expect(c.word(TCP_WORD.TD_END, 0)).toBe(90001);
    expect(c.byte(TCP_BYTE.TD_SCALE)).toBe(6);
    expect(c.word(TCP_WORD.TD_END, 1)).toBe(70001);
    expect(c.send(O, { seq: 90001, ack: 70001, flags: "A", win: 502 }))
      .toMatchObject({ res: TRACK.ACCEPT, state: TCP_STATE.ESTABLISHED });
  });

  it("RFC 5961 challenge ACK in LAST_ACK does not move to TIME_WAIT", () => {
    const c = established();
    c.send(R, { seq: 5001, ack: 1001, flags: "FA", win: 509 });
    c.send(O, { seq: 1001, ack: 5002, flags: "A", win: 502 });
    c.send(O, { seq: 1001, ack: 5002, flags: "FA", win: 502 });
    expect(c.state()).toBe(TCP_STATE.LAST_ACK);
    // The client (port reuse) sends a SYN: ignored, challenge ACK expected.
    expect(c.send(O, { seq: 31337, flags: "S", options: SYN_OPTS }).res).toBe(TRACK.IGNORE);
    expect((c.word(TCP_WORD.LAST_MISC) >>> 24) & TCP_CT_FLAG.EXP_CHALLENGE_ACK).toBeTruthy();
    expect(c.send(R, { seq: 5002, ack: 1002, flags: "A", win: 509 }))
      .toMatchObject({ res: TRACK.IGNORE, state: TCP_STATE.LAST_ACK, reason: TCP_REASON.CHALLENGE_ACK });
    // A second ACK is the real last ACK.
    expect(c.send(R, { seq: 5002, ack: 1002, flags: "A", win: 509 }).state).toBe(TCP_STATE.TIME_WAIT);
  });
});

// ------------------------------------------------------------------ nf_tcp_handle_invalid

describe("out-of-window FIN/RST in both directions (nf_tcp_handle_invalid)", () => {
  it("asks to lower the timeout of an ASSURED entry", () => {
    const c = established();
    const far0 = (c.word(TCP_WORD.TD_MAXEND, 0) + 500000) >>> 0;
    expect(c.send(O, { seq: far0, ack: 5001, flags: "FA", win: 502 })).toMatchObject({ res: TRACK.INVALID, lower: false });
    const far1 = (c.word(TCP_WORD.TD_MAXEND, 1) + 500000) >>> 0;
    expect(c.send(R, { seq: far1, ack: 1001, flags: "FA", win: 509 })).toMatchObject({ res: TRACK.INVALID, lower: true });
    expect(c.state()).toBe(TCP_STATE.ESTABLISHED);
  });

  it("not for an entry that is not ASSURED", () => {
    const c = new Conn(new TcpTracker(1, config()));
    c.send(O, { seq: CISN, flags: "S", win: 64240, options: SYN_OPTS });
    c.send(R, { seq: SISN, ack: CISN + 1, flags: "SA", win: 65160, options: SYN_OPTS });
    expect(c.send(O, { seq: 900000, ack: 5001, flags: "FA", win: 502 }).lower).toBe(false);
    expect(c.send(R, { seq: 900000, ack: 1001, flags: "FA", win: 509 }).lower).toBe(false);
  });
});

// ------------------------------------------------------------------ robustness

describe("robustness", () => {
  it("entries are independent", () => {
    const t = new TcpTracker(8, config());
    const a = new Conn(t, 3);
    const b = new Conn(t, 4);
    handshake(a);
    b.send(O, { seq: 1, flags: "S", options: SYN_OPTS });
    expect(t.state(3)).toBe(TCP_STATE.ESTABLISHED);
    expect(t.state(4)).toBe(TCP_STATE.SYN_SENT);
  });

  it("a new entry over garbage left by another tracker starts clean", () => {
    const t = new TcpTracker(2, config());
    t.words.fill(0xdeadbeef);
    t.bytes.fill(0xff);
    const c = new Conn(t, 1);
    const steps = handshake(c);
    expect(steps.map((s) => s.state)).toEqual([TCP_STATE.SYN_SENT, TCP_STATE.SYN_RECV, TCP_STATE.ESTABLISHED]);
  });

  it("random segments never throw and always leave a real state", () => {
    const flagsArb = fc.constantFrom("S", "SA", "A", "PA", "FA", "R", "RA", "SU", "AU");
    const seg = fc.record({
      dir: fc.constantFrom(O, R),
      flags: flagsArb,
      seq: fc.nat({ max: 0xffffffff }),
      ack: fc.nat({ max: 0xffffffff }),
      win: fc.nat({ max: 0xffff }),
      len: fc.nat({ max: 64 }),
      wscale: fc.option(fc.nat({ max: 20 })),
      sack: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.array(seg, { minLength: 1, maxLength: 12 }), (loose, liberal, segs) => {
        const t = new TcpTracker(1, config({ tcpLoose: loose, tcpBeLiberal: liberal }));
        const view = new TcpView();
        let created = false;
        let status = 0;
        for (const s of segs) {
          const options: TcpFields["options"] = { sackPerm: s.sack };
          if (s.wscale !== null) options.wscale = s.wscale;
          if (s.sack && s.flags.includes("A")) options.sack = [[s.ack, (s.ack + 10) >>> 0]];
          const pkt = ipv4Tcp({ ...(s.dir === O ? CLIENT : SERVER), seq: s.seq, ack: s.ack, flags: s.flags, win: s.win, options, payload: data(s.len) });
          view.reset(pkt, 20, pkt.length - 20);
          const res = t.packet(0, created ? s.dir : O, view, status, !created);
          expect([TRACK.ACCEPT, TRACK.IGNORE, TRACK.INVALID, TRACK.REPEAT]).toContain(res);
          expect(t.state(0)).toBeLessThan(10);
          if (!created) created = res === TRACK.ACCEPT;
          else if (res === TRACK.REPEAT || t.outKill) created = false;
          if (res === TRACK.ACCEPT && t.outAssured) status |= STATUS.ASSURED;
          if ((res === TRACK.ACCEPT || res === TRACK.IGNORE) && s.dir === R) status |= STATUS.SEEN_REPLY;
          if (!created) status = 0;
          if (t.outTimeoutClass !== -1) expect(t.outTimeoutClass).toBeLessThanOrEqual(TCLASS.TCP_UNACK);
        }
      }),
      { numRuns: 300 },
    );
  });
});
