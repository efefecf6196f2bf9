/**
 * Walks every cell of the TCP state table: once against a copy written out
 * by name from Linux's tcp_conntracks[][][] (nf_conntrack_proto_tcp.c, v6.12),
 * and once through TcpTracker.packet() to show the tracker really follows the
 * table (window checks made liberal so that only the table and the switch
 * decide).
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_CONNTRACK_CONFIG, type ConntrackConfig } from "../../src/conntrack/config.js";
import { DIR, STATUS, TCP_STATE, TRACK } from "../../src/conntrack/constants.js";
import {
  TCP_BYTE,
  TCP_BYTES,
  TCP_CONNTRACKS,
  TCP_INDEX,
  TCP_INDEX_NAMES,
  TcpTracker,
  tcpByteBase,
  tcpConntrackIndex,
  tcpTransition,
} from "../../src/conntrack/tcp.js";
import { TcpView } from "../../src/packet/tcp.js";
import { ipv4Tcp } from "../helpers/packets.js";

const COLUMNS = ["sNO", "sSS", "sSR", "sES", "sFW", "sCW", "sLA", "sTW", "sCL", "sS2"] as const;
const CELL_NAMES = [...COLUMNS, "sIV", "sIG"];

type Row = readonly string[];
type Dir = { syn: Row; synack: Row; fin: Row; ack: Row; rst: Row; none: Row };

// Written out independently from the kernel source, row by row.
const EXPECTED: { original: Dir; reply: Dir } = {
  original: {
    //        sNO    sSS    sSR    sES    sFW    sCW    sLA    sTW    sCL    sS2
    syn:    ["sSS", "sSS", "sIG", "sIG", "sIG", "sIG", "sIG", "sSS", "sSS", "sS2"],
    synack: ["sIV", "sIV", "sSR", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sSR"],
    fin:    ["sIV", "sIV", "sFW", "sFW", "sLA", "sLA", "sLA", "sTW", "sCL", "sIV"],
    ack:    ["sES", "sIV", "sES", "sES", "sCW", "sCW", "sTW", "sTW", "sCL", "sIV"],
    rst:    ["sIV", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL"],
    none:   ["sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV"],
  },
  reply: {
    //        sNO    sSS    sSR    sES    sFW    sCW    sLA    sTW    sCL    sS2
    syn:    ["sIV", "sS2", "sIV", "sIV", "sIV", "sIV", "sIV", "sSS", "sIV", "sS2"],
    synack: ["sIV", "sSR", "sIG", "sIG", "sIG", "sIG", "sIG", "sIG", "sIG", "sSR"],
    fin:    ["sIV", "sIV", "sFW", "sFW", "sLA", "sLA", "sLA", "sTW", "sCL", "sIV"],
    ack:    ["sIV", "sIG", "sSR", "sES", "sCW", "sCW", "sTW", "sTW", "sCL", "sIG"],
    rst:    ["sIV", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL", "sCL"],
    none:   ["sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV", "sIV"],
  },
};

const DIRS = [
  ["original", DIR.ORIGINAL],
  ["reply", DIR.REPLY],
] as const;

function expectedCell(dir: number, index: number, state: number): string {
  const d = dir === DIR.ORIGINAL ? EXPECTED.original : EXPECTED.reply;
  const row = d[TCP_INDEX_NAMES[index] as keyof Dir];
  return row[state]!;
}

/** A packet of each class; "none" carries no flag at all. */
const CLASS_FLAGS: Record<string, string | number> = { syn: "S", synack: "SA", fin: "FA", ack: "A", rst: "R", none: 0 };

describe("tcp_conntracks grid", () => {
  it("has 2 x 6 x 10 cells", () => {
    expect(TCP_CONNTRACKS.length).toBe(120);
  });

  for (const [dirName, dir] of DIRS) {
    for (let index = 0; index < 6; index++) {
      const cls = TCP_INDEX_NAMES[index];
      it(`${dirName} ${cls}: every cell equals the kernel's`, () => {
        for (let state = 0; state < 10; state++) {
          const got = CELL_NAMES[tcpTransition(dir, index, state)];
          expect(`${COLUMNS[state]} -> ${got}`).toBe(`${COLUMNS[state]} -> ${expectedCell(dir, index, state)}`);
        }
      });
    }
  }

  it("get_conntrack_index: RST > SYN(+ACK) > FIN > ACK > none", () => {
    const F = 0x01, S = 0x02, R = 0x04, P = 0x08, A = 0x10, U = 0x20;
    expect(tcpConntrackIndex(R | S | F | A)).toBe(TCP_INDEX.RST);
    expect(tcpConntrackIndex(R)).toBe(TCP_INDEX.RST);
    expect(tcpConntrackIndex(S | A | F)).toBe(TCP_INDEX.SYNACK);
    expect(tcpConntrackIndex(S | F)).toBe(TCP_INDEX.SYN);
    expect(tcpConntrackIndex(S)).toBe(TCP_INDEX.SYN);
    expect(tcpConntrackIndex(F | A)).toBe(TCP_INDEX.FIN);
    expect(tcpConntrackIndex(F)).toBe(TCP_INDEX.FIN);
    expect(tcpConntrackIndex(A | P | U)).toBe(TCP_INDEX.ACK);
    expect(tcpConntrackIndex(P | U)).toBe(TCP_INDEX.NONE);
    expect(tcpConntrackIndex(0)).toBe(TCP_INDEX.NONE);
  });
});

describe("TcpTracker.packet follows every cell", () => {
  // be_liberal so that window checks never decide; a fresh entry forced into
  // each state has no CLOSE_INIT, no td_maxack and last_index NONE, so the
  // switch only changes the SYN-reopen cells (no CLOSE_INIT, no previous RST:
  // the kernel falls through to the ignore path).
  const cfg: ConntrackConfig = { ...DEFAULT_CONNTRACK_CONFIG, tcpBeLiberal: true };

  function run(dir: number, index: number, state: number): { res: number; state: number } {
    const t = new TcpTracker(1, cfg);
    t.bytes[tcpByteBase(0) + TCP_BYTE.STATE] = state;
    t.bytes[tcpByteBase(0) + TCP_BYTE.LAST_INDEX] = TCP_INDEX.NONE;
    expect(TCP_BYTES).toBe(8);
    const pkt = ipv4Tcp({
      src: "10.0.0.1",
      dst: "10.0.0.2",
      seq: 1000,
      ack: 2000,
      flags: CLASS_FLAGS[TCP_INDEX_NAMES[index]]!,
    });
    const view = new TcpView();
    expect(view.reset(pkt, 20, pkt.length - 20)).toBe(true);
    const res = t.packet(0, dir, view, STATUS.SEEN_REPLY, false);
    return { res, state: t.state(0) };
  }

  for (const [dirName, dir] of DIRS) {
    for (let index = 0; index < 6; index++) {
      it(`${dirName} ${TCP_INDEX_NAMES[index]}`, () => {
        for (let state = 0; state < 10; state++) {
          const cell = expectedCell(dir, index, state);
          const got = run(dir, index, state);
          const label = `${COLUMNS[state]} (${cell})`;
          const reopen = cell === "sSS" && state >= TCP_STATE.TIME_WAIT;
          if (cell === "sIV") {
            expect([label, got.res]).toEqual([label, TRACK.INVALID]);
            expect([label, got.state]).toEqual([label, state]);
          } else if (cell === "sIG" || reopen) {
            expect([label, got.res]).toEqual([label, TRACK.IGNORE]);
            expect([label, got.state]).toEqual([label, state]);
          } else {
            expect([label, got.res]).toEqual([label, TRACK.ACCEPT]);
            expect([label, COLUMNS[got.state]]).toEqual([label, cell]);
          }
        }
      });
    }
  }
});
