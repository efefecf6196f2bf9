/**
 * TCP connection tracking, after Linux's `net/netfilter/nf_conntrack_proto_tcp.c`
 * (v6.12): the state table `tcp_conntracks[dir][index][state]`, window tracking
 * (`tcp_in_window`, after Guido van Rooij's "Real Stateful TCP Packet
 * Filtering in IP Filter"), the RST checks and the timeout choice of
 * `nf_conntrack_tcp_packet()`.
 *
 * Per-entry state mirrors `struct ip_ct_tcp` (include/net/netfilter/
 * nf_conntrack_tcp.h). It lives in the L4 area of the entry's table record
 * (table.ts: line 2, next to the expiry-ring links), seen through two views
 * of the record buffer: 12 words at `tcpWordBase(idx)` and 8 bytes right
 * after them at `tcpByteBase(idx)`, so one cache line holds all of it.
 *
 *   words (Uint32, 12 per entry)                 bytes (Uint8, 8 per entry)
 *   0  seen[0].td_end     4  seen[1].td_end        0 state        4 seen[0].td_scale
 *   1  seen[0].td_maxend  5  seen[1].td_maxend     1 last_dir     5 seen[1].td_scale
 *   2  seen[0].td_maxwin  6  seen[1].td_maxwin     2 retrans      6 seen[0].flags
 *   3  seen[0].td_maxack  7  seen[1].td_maxack     3 last_index   7 seen[1].flags
 *   8  last_seq   9 last_ack   10 last_end
 *   11 last_win (bits 0-15) | last_wscale (16-23) | last_flags (24-31)
 *
 * The words of an entry that is not TCP mean nothing (the UDP tracker reuses
 * them); `tcp_new()` clears them when a TCP entry is created.
 *
 * Sequence arithmetic is modulo 2^32 as in the kernel: values are kept as
 * unsigned 32-bit numbers, `before`/`after` compare the signed 32-bit
 * difference, and every store goes through the Uint32Array (which wraps).
 *
 * NAT sequence adjustment (`nf_ct_seq_offset()`, used by the FTP helper when
 * it changes a payload's length) is not applied yet: the one place where it
 * enters is marked "seqadj hook" in {@link TcpTracker} `inWindow`.
 */
import { readU32 } from "../packet/bytes.js";
import { TCP_FLAG, type TcpView } from "../packet/tcp.js";
import type { ConntrackConfig } from "./config.js";
import { DIR, STATUS, TCLASS, TCP_STATE, TRACK } from "./constants.js";
import { REC } from "./table.js";

// ---------------------------------------------------------------- layout

/** Uint32 words per entry in {@link TcpTracker.words}, from {@link tcpWordBase}. */
export const TCP_WORDS = 12;
/** Bytes per entry in {@link TcpTracker.bytes}, from {@link tcpByteBase}. */
export const TCP_BYTES = 8;
/** Offset of the byte block from the word block's first byte. */
const B_BASE = TCP_WORDS * 4;
/** Record stride and L4 area, as plain numbers for the index arithmetic. */
const REC_WORDS = REC.WORDS;
const REC_L4 = REC.L4;

/** Index in {@link TcpTracker.words} of entry `idx`'s first word. */
export function tcpWordBase(idx: number): number {
  return idx * REC_WORDS + REC_L4;
}

/**
 * Index in {@link TcpTracker.bytes} of entry `idx`'s first byte. It passes
 * 2^31 for tables of more than ~11M entries, so the packet path computes it
 * from the word base inside each method and never passes it as an argument
 * (V8 boxes a non-small integer argument).
 */
export function tcpByteBase(idx: number): number {
  return (idx * REC_WORDS + REC_L4) * 4 + B_BASE;
}

/**
 * Word offsets inside an entry's block. The per-direction fields are at
 * `W.x + 4 * dir` (`seen[dir]` in Linux).
 */
export const TCP_WORD = {
  TD_END: 0,
  TD_MAXEND: 1,
  TD_MAXWIN: 2,
  TD_MAXACK: 3,
  LAST_SEQ: 8,
  LAST_ACK: 9,
  LAST_END: 10,
  /** last_win (low 16 bits), last_wscale (bits 16-23), last_flags (bits 24-31). */
  LAST_MISC: 11,
} as const;

/** Byte offsets inside an entry's block. TD_SCALE and FLAGS are at `+ dir`. */
export const TCP_BYTE = {
  STATE: 0,
  LAST_DIR: 1,
  RETRANS: 2,
  LAST_INDEX: 3,
  TD_SCALE: 4,
  FLAGS: 6,
} as const;

const W_END = TCP_WORD.TD_END;
const W_MAXEND = TCP_WORD.TD_MAXEND;
const W_MAXWIN = TCP_WORD.TD_MAXWIN;
const W_MAXACK = TCP_WORD.TD_MAXACK;
const W_LAST_SEQ = TCP_WORD.LAST_SEQ;
const W_LAST_ACK = TCP_WORD.LAST_ACK;
const W_LAST_END = TCP_WORD.LAST_END;
const W_LAST_MISC = TCP_WORD.LAST_MISC;
const B_STATE = TCP_BYTE.STATE;
const B_LAST_DIR = TCP_BYTE.LAST_DIR;
const B_RETRANS = TCP_BYTE.RETRANS;
const B_LAST_INDEX = TCP_BYTE.LAST_INDEX;
const B_SCALE = TCP_BYTE.TD_SCALE;
const B_FLAGS = TCP_BYTE.FLAGS;

/**
 * Per-direction flags (`seen[dir].flags`) and `last_flags` bits, with the
 * values of include/uapi/linux/netfilter/nf_conntrack_tcp.h.
 */
export const TCP_CT_FLAG = {
  /** The sender advertised window scaling. */
  WINDOW_SCALE: 0x01,
  /** The sender permits SACK. */
  SACK_PERM: 0x02,
  /** This sender sent the first FIN. */
  CLOSE_INIT: 0x04,
  /** Window-check failures of this sender are accepted. */
  BE_LIBERAL: 0x08,
  /** The sender has data the receiver has not acknowledged. */
  DATA_UNACKNOWLEDGED: 0x10,
  /** td_maxack holds a value. */
  MAXACK_SET: 0x20,
  /** last_flags: an RFC 5961 challenge ACK may answer the SYN we let through (IP_CT_EXP_CHALLENGE_ACK). */
  EXP_CHALLENGE_ACK: 0x40,
  /** last_flags: simultaneous open seen (IP_CT_TCP_SIMULTANEOUS_OPEN). */
  SIMULTANEOUS_OPEN: 0x80,
} as const;

const F_WSCALE = TCP_CT_FLAG.WINDOW_SCALE;
const F_SACK_PERM = TCP_CT_FLAG.SACK_PERM;
const F_CLOSE_INIT = TCP_CT_FLAG.CLOSE_INIT;
const F_BE_LIBERAL = TCP_CT_FLAG.BE_LIBERAL;
const F_DATA_UNACK = TCP_CT_FLAG.DATA_UNACKNOWLEDGED;
const F_MAXACK_SET = TCP_CT_FLAG.MAXACK_SET;
const F_CHALLENGE_ACK = TCP_CT_FLAG.EXP_CHALLENGE_ACK;
const F_SIM_OPEN = TCP_CT_FLAG.SIMULTANEOUS_OPEN;

// ---------------------------------------------------------------- packet classes

/** Packet classes (`enum tcp_bit_set`): the middle index of the state table. */
export const TCP_INDEX = { SYN: 0, SYNACK: 1, FIN: 2, ACK: 3, RST: 4, NONE: 5 } as const;
/** Names of the {@link TCP_INDEX} classes, as the kernel's table comments spell them. */
export const TCP_INDEX_NAMES = ["syn", "synack", "fin", "ack", "rst", "none"] as const;

const I_SYN = TCP_INDEX.SYN;
const I_SYNACK = TCP_INDEX.SYNACK;
const I_FIN = TCP_INDEX.FIN;
const I_ACK = TCP_INDEX.ACK;
const I_RST = TCP_INDEX.RST;
const I_NONE = TCP_INDEX.NONE;

const T_FIN = TCP_FLAG.FIN;
const T_SYN = TCP_FLAG.SYN;
const T_RST = TCP_FLAG.RST;
const T_ACK = TCP_FLAG.ACK;

/** `get_conntrack_index()`: the packet class of a flag byte; RST > SYN(+ACK) > FIN > ACK > none. */
export function tcpConntrackIndex(flags: number): number {
  if ((flags & T_RST) !== 0) return I_RST;
  if ((flags & T_SYN) !== 0) return (flags & T_ACK) !== 0 ? I_SYNACK : I_SYN;
  if ((flags & T_FIN) !== 0) return I_FIN;
  if ((flags & T_ACK) !== 0) return I_ACK;
  return I_NONE;
}

// ---------------------------------------------------------------- state table

const sNO = TCP_STATE.NONE;
const sSS = TCP_STATE.SYN_SENT;
const sSR = TCP_STATE.SYN_RECV;
const sES = TCP_STATE.ESTABLISHED;
const sFW = TCP_STATE.FIN_WAIT;
const sCW = TCP_STATE.CLOSE_WAIT;
const sLA = TCP_STATE.LAST_ACK;
const sTW = TCP_STATE.TIME_WAIT;
const sCL = TCP_STATE.CLOSE;
const sS2 = TCP_STATE.SYN_SENT2;
/** "Invalid": TCP_CONNTRACK_MAX. */
const sIV = TCP_STATE.MAX;
/** "Ignore": TCP_CONNTRACK_IGNORE. */
const sIG = TCP_STATE.IGNORE;

/** Real states (columns of the table). */
const NSTATES = 10;
/** Packet classes (rows per direction). */
const NINDEX = 6;

/**
 * `tcp_conntracks[2][6][TCP_CONNTRACK_MAX]`, flattened: the new state for
 * `[dir * 60 + index * 10 + oldState]`. We are the man in the middle: every
 * packet passes us but may be lost after us, so the table guesses the state
 * of the sender. sIG marks packets that may be valid or not (the receiver
 * will answer with RST or SYN/ACK and we learn which); sIV marks packets
 * that are invalid in that state.
 */
// prettier-ignore
export const TCP_CONNTRACKS: Uint8Array = Uint8Array.of(
  // ================================ ORIGINAL ================================
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* syn    */   sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2,
  //  sNO -> sSS  a new connection
  //  sSS -> sSS  retransmitted SYN
  //  sSR -> sIG  SYN outside SYN_SENT: an error the receiver answers with RST,
  //  sES -> sIG    or we are out of sync and hold a dead connection:
  //  sFW -> sIG    let it through without a state change and see
  //  sCW -> sIG
  //  sLA -> sIG
  //  sTW -> sSS  reopened connection (RFC 1122); checked in the switch
  //  sCL -> sSS  reopened connection; checked in the switch
  //  sS2 -> sS2  late retransmitted SYN in a simultaneous open
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* synack */   sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR,
  //  sNO -> sIV  too late and no reason to do anything
  //  sSS -> sIV  the client cannot send SYN and then SYN/ACK
  //  sSR -> sSR  late retransmitted SYN/ACK in a simultaneous open
  //  sES -> sIV  SYN/ACK sent by the client: invalid
  //  sFW -> sIV
  //  sCW -> sIV
  //  sLA -> sIV
  //  sTW -> sIV
  //  sCL -> sIV
  //  sS2 -> sSR  SYN/ACK answering the reply SYN of a simultaneous open
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* fin    */   sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  //  sNO -> sIV  too late and no reason to do anything
  //  sSS -> sIV  the client may not send FIN before the SYN/ACK reply
  //  sSR -> sFW  close started
  //  sES -> sFW  close started
  //  sFW -> sLA  FIN seen in both directions, waiting for the last ACK
  //                (or a retransmitted FIN)
  //  sCW -> sLA  FIN after the first FIN was acknowledged
  //  sLA -> sLA  retransmitted FIN: stay
  //  sTW -> sTW  retransmitted FIN: stay
  //  sCL -> sCL  stay closed
  //  sS2 -> sIV  no FIN during a simultaneous open
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* ack    */   sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV,
  //  sNO -> sES  assumed (mid-stream pickup)
  //  sSS -> sIV  ACK before any SYN/ACK was seen: invalid
  //  sSR -> sES  the handshake completes
  //  sES -> sES  :-)
  //  sFW -> sCW  the FIN is acknowledged
  //  sCW -> sCW  stay
  //  sLA -> sTW  last ACK (unless it is an RFC 5961 challenge ACK: switch)
  //  sTW -> sTW  retransmitted last ACK: stay
  //  sCL -> sCL  stay closed
  //  sS2 -> sIV  no bare ACK during a simultaneous open
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* rst    */   sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  //  sNO -> sIV  nothing to reset
  //  s?? -> sCL  every other state closes (the switch checks the RST first)
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* none   */   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
  //  s?? -> sIV  a packet with none of RST/SYN/FIN/ACK is always invalid

  // ================================= REPLY ==================================
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* syn    */   sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2,
  //  sNO -> sIV  never reached
  //  sSS -> sS2  simultaneous open
  //  sSR -> sIV  SYN sent by the server after its SYN/ACK: invalid
  //  sES -> sIV
  //  sFW -> sIV
  //  sCW -> sIV
  //  sLA -> sIV
  //  sTW -> sSS  reopened connection, the server may have switched role
  //  sCL -> sIV
  //  sS2 -> sS2  retransmitted simultaneous SYN
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* synack */   sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR,
  //  sNO -> sIV  never reached
  //  sSS -> sSR  standard open
  //  sSR -> sIG  retransmitted SYN/ACK: ignore
  //  sES -> sIG  late retransmitted SYN/ACK, or one answering a SYN we
  //  sFW -> sIG    ignored (the switch resynchronises on it)
  //  sCW -> sIG
  //  sLA -> sIG
  //  sTW -> sIG
  //  sCL -> sIG
  //  sS2 -> sSR  simultaneous open
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* fin    */   sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  //  sNO -> sIV  never reached
  //  sSS -> sIV  the server may not send FIN in this state
  //  sSR -> sFW  close started
  //  sES -> sFW  close started
  //  sFW -> sLA  FIN seen in both directions
  //  sCW -> sLA  FIN after the first FIN was acknowledged
  //  sLA -> sLA  retransmitted FIN: stay
  //  sTW -> sTW  stay
  //  sCL -> sCL  stay closed
  //  sS2 -> sIV  no FIN during a simultaneous open
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* ack    */   sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG,
  //  sNO -> sIV  never reached
  //  sSS -> sIG  may be a half-open connection (or a challenge ACK)
  //  sSR -> sSR  may answer a late resent SYN (simultaneous open: switch)
  //  sES -> sES  :-)
  //  sFW -> sCW  the FIN is acknowledged
  //  sCW -> sCW  stay
  //  sLA -> sTW  last ACK (unless it is an RFC 5961 challenge ACK: switch)
  //  sTW -> sTW  retransmitted last ACK: stay
  //  sCL -> sCL  stay closed
  //  sS2 -> sIG  may be a half-open connection
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* rst    */   sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  //  sNO -> sIV  never reached
  //  s?? -> sCL  every other state closes (the switch checks the RST first)
  //             sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
  /* none   */   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
  //  s?? -> sIV  a packet with none of RST/SYN/FIN/ACK is always invalid
);

/** The table cell for (direction, packet class, old state): a state, sIV (10) or sIG (11). */
export function tcpTransition(dir: number, index: number, state: number): number {
  return TCP_CONNTRACKS[dir * (NINDEX * NSTATES) + index * NSTATES + state];
}

// ---------------------------------------------------------------- flag check

/**
 * `tcp_valid_flags[]` of `tcp_error()`: the flag combinations (PSH, ECE and
 * CWR masked off) a tracked packet may carry.
 */
const VALID_FLAGS = new Uint8Array(0x40);
VALID_FLAGS[T_SYN] = 1;
VALID_FLAGS[T_SYN | TCP_FLAG.URG] = 1;
VALID_FLAGS[T_SYN | T_ACK] = 1;
VALID_FLAGS[T_RST] = 1;
VALID_FLAGS[T_RST | T_ACK] = 1;
VALID_FLAGS[T_FIN | T_ACK] = 1;
VALID_FLAGS[T_FIN | T_ACK | TCP_FLAG.URG] = 1;
VALID_FLAGS[T_ACK] = 1;
VALID_FLAGS[T_ACK | TCP_FLAG.URG] = 1;
const FLAGS_IGNORED = TCP_FLAG.PSH | TCP_FLAG.ECE | TCP_FLAG.CWR;

// ---------------------------------------------------------------- reasons

/**
 * Why a packet was INVALID or IGNORE (or accepted only because of be_liberal),
 * named after the kernel's `nf_ct_l4proto_log_invalid()` messages.
 */
export const TCP_REASON = {
  NONE: 0,
  /** tcp_new(): the first packet cannot open a connection ("invalid new"). */
  INVALID_NEW: 1,
  /** tcp_new(): a non-SYN first packet while nf_conntrack_tcp_loose=0. */
  PICKUP_DISABLED: 2,
  /** The table says sIV ("packet (index %d) in dir %d invalid, state %s"). */
  INVALID_STATE: 3,
  /** The table says sIG ("packet (index %d) in dir %d ignored, state %s"). */
  IGNORED: 4,
  /** An RFC 5961 challenge ACK in LAST_ACK ("challenge-ack ignored"). */
  CHALLENGE_ACK: 5,
  /** RST below td_maxack ("invalid rst"). */
  INVALID_RST: 6,
  /** Sequence check failed by a little ("%u bytes more than expected"). */
  OVERSHOOT: 7,
  /** Check I: "SEQ is over upper bound %u (over the window of the receiver)". */
  SEQ_OVER_UPPER: 8,
  /** Check III: "ACK is over upper bound %u (ACKed data not seen yet)". */
  ACK_OVER_UPPER: 9,
  /** Check II: "SEQ is under lower bound %u (already ACKed data retransmitted)". */
  SEQ_UNDER_LOWER: 10,
  /** Check IV: "ignored ACK under lower bound %u (possible overly delayed)". */
  ACK_UNDER_LOWER: 11,
  /** REPEAT: a SYN reopens a closed or aborted connection. */
  REOPEN: 12,
} as const;

/** Text of each {@link TCP_REASON}, for debug logs. */
export const TCP_REASON_NAMES = [
  "",
  "invalid new",
  "invalid new (tcp_loose disabled)",
  "invalid state",
  "packet ignored (conntrack may be out of sync)",
  "challenge-ack ignored",
  "invalid rst",
  "bytes more than expected",
  "SEQ is over upper bound (over rcv window)",
  "ACK is over upper bound (ACKed data not seen yet)",
  "SEQ is under lower bound (already ACKed data retransmitted)",
  "ACK is under lower bound (possible overly delayed)",
  "reopen of a closed connection",
] as const;

// ---------------------------------------------------------------- helpers

/** `before(a, b)` of include/net/tcp.h: a precedes b modulo 2^32. */
function before(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** `after(a, b)`: a follows b modulo 2^32. */
function after(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

/** `segment_seq_plus_len()`: seq + payload length + SYN + FIN, modulo 2^32. */
function segmentEnd(seq: number, tcp: TcpView, flags: number): number {
  return (seq + tcp.payloadLength + ((flags & T_SYN) !== 0 ? 1 : 0) + ((flags & T_FIN) !== 0 ? 1 : 0)) >>> 0;
}

/** MAXACKWINCONST: the smallest window the ACK lower bound (check IV) allows for. */
const MAXACKWINCONST = 66000;
/** TCPOLEN_TSTAMP_ALIGNED + header: a segment whose only option is an aligned timestamp. */
const TS_ONLY_HEADER = 32;
/** NOP, NOP, TIMESTAMP, length 10: the aligned timestamp option. */
const TS_ALIGNED_WORD = 0x0101080a;
/** nf_tcp_handle_invalid(): a timeout below this (seconds) is never lowered. */
export const TCP_INVALID_LOWER_MIN = 120;

/**
 * Tracks the TCP state of up to `capacity` entries; one instance per table.
 * Results of {@link TcpTracker.packet} come back as a TRACK code plus the
 * `out*` fields, which are overwritten by every call.
 */
export class TcpTracker {
  /** Number of entries. */
  readonly capacity: number;
  /** Uint32 view of the records holding the per-entry words (layout in the module comment). */
  readonly words: Uint32Array;
  /** Uint8 view of the same records, holding the per-entry bytes. */
  readonly bytes: Uint8Array;

  /** TCLASS to refresh the entry's timeout with, or -1: do not refresh. */
  outTimeoutClass = -1;
  /** Set the ASSURED status bit now (IPCT_ASSURED event). */
  outAssured = false;
  /** Delete the entry after accepting this packet (RST while no reply seen: nf_ct_kill_acct). */
  outKill = false;
  /** The TCP state changed (IPCT_PROTOINFO event). */
  outStateChanged = false;
  /** A {@link TCP_REASON} for INVALID / IGNORE / REPEAT, or for an ACCEPT that be_liberal forgave; else 0. */
  outReason = 0;
  /**
   * nf_tcp_handle_invalid(): out-of-window FIN/RST seen in both directions of
   * an ASSURED entry. The caller lowers the entry's timeout to the
   * TCP_UNACK class if the time left is at least {@link TCP_INVALID_LOWER_MIN}
   * seconds and more than the UNACK timeout. Only set with INVALID.
   */
  outLowerToUnack = false;

  /** Configured seconds per TCP timeout class (TCLASS.TCP_NONE .. TCP_UNACK). */
  private readonly timeouts: Float64Array;
  private readonly loose: boolean;
  private readonly beLiberal: boolean;
  private readonly ignoreInvalidRst: boolean;
  private readonly maxRetrans: number;
  /** The current packet's options were parsed into its TcpView. */
  private optsParsed = false;

  /**
   * `records`: the table's record buffer (`ConnTable.buffer`), whose L4
   * areas hold the state; a tracker used alone allocates its own.
   */
  constructor(capacity: number, cfg: ConntrackConfig, records = new ArrayBuffer(capacity * REC.BYTES)) {
    this.capacity = capacity;
    this.words = new Uint32Array(records, 0, capacity * REC_WORDS);
    this.bytes = new Uint8Array(records, 0, capacity * REC.BYTES);
    const t = cfg.timeouts;
    const s = new Float64Array(TCLASS.TCP_UNACK + 1);
    s[TCLASS.TCP_NONE] = 0; // tcp_timeouts[TCP_CONNTRACK_NONE] is 0; no packet ends in NONE
    s[TCLASS.TCP_SYN_SENT] = t.tcpSynSent;
    s[TCLASS.TCP_SYN_RECV] = t.tcpSynRecv;
    s[TCLASS.TCP_ESTABLISHED] = t.tcpEstablished;
    s[TCLASS.TCP_FIN_WAIT] = t.tcpFinWait;
    s[TCLASS.TCP_CLOSE_WAIT] = t.tcpCloseWait;
    s[TCLASS.TCP_LAST_ACK] = t.tcpLastAck;
    s[TCLASS.TCP_TIME_WAIT] = t.tcpTimeWait;
    s[TCLASS.TCP_CLOSE] = t.tcpClose;
    s[TCLASS.TCP_SYN_SENT2] = t.tcpSynSent2;
    s[TCLASS.TCP_RETRANS] = t.tcpMaxRetrans;
    s[TCLASS.TCP_UNACK] = t.tcpUnacknowledged;
    this.timeouts = s;
    this.loose = cfg.tcpLoose;
    this.beLiberal = cfg.tcpBeLiberal;
    this.ignoreInvalidRst = cfg.tcpIgnoreInvalidRst;
    this.maxRetrans = cfg.tcpMaxRetrans;
  }

  /** TCP_STATE of entry `idx`. */
  state(idx: number): number {
    return this.bytes[tcpByteBase(idx) + B_STATE];
  }

  /** Configured seconds of a TCP timeout class (TCLASS.TCP_NONE .. TCLASS.TCP_UNACK). */
  timeout(tclass: number): number {
    return this.timeouts[tclass];
  }

  /** `tcp_error()` flag check: true if the flag combination is valid (PSH, ECE, CWR ignored). */
  static validFlags(flags: number): boolean {
    return VALID_FLAGS[flags & ~FLAGS_IGNORED & 0x3f] === 1;
  }

  /**
   * `nf_conntrack_tcp_packet()` for entry `idx`.
   *
   * `isNew`: the entry was just created for this packet and is unconfirmed;
   * `tcp_new()` runs first (a SYN, or with tcpLoose a valid non-SYN segment
   * for mid-stream pickup, may create it; anything else is INVALID).
   * `dir`: DIR.ORIGINAL or DIR.REPLY. `status`: the entry's STATUS bits as
   * they were before this packet; like `nf_conntrack_in()`, the caller sets
   * SEEN_REPLY only after this call, for a REPLY packet that came back ACCEPT
   * or IGNORE. `tcp`: a view already reset on the segment, whose length is
   * the IP payload length; header length, flags ({@link validFlags}) and
   * checksum are checked by the caller (`tcp_error()`).
   *
   * Returns TRACK.ACCEPT (state updated), IGNORE (accepted, no state change,
   * no refresh), INVALID (no connection is attached to the packet) or REPEAT
   * (kill the entry and look the packet up again: reopen from TIME_WAIT or
   * CLOSE), and sets the `out*` fields.
   */
  packet(idx: number, dir: number, tcp: TcpView, status: number, isNew: boolean): number {
    this.outTimeoutClass = -1;
    this.outAssured = false;
    this.outKill = false;
    this.outStateChanged = false;
    this.outReason = 0;
    this.outLowerToUnack = false;
    this.optsParsed = false;

    const w = this.words;
    const b = this.bytes;
    const wb = idx * REC_WORDS + REC_L4;
    const bb = wb * 4 + B_BASE;
    const flags = tcp.flags;
    const index = tcpConntrackIndex(flags);

    if (isNew && !this.tcpNew(wb, tcp, flags, index)) return TRACK.INVALID;

    let oldState = b[bb + B_STATE];
    let newState = TCP_CONNTRACKS[dir * (NINDEX * NSTATES) + index * NSTATES + oldState];
    let checkWindow = true;

    // The switch of nf_conntrack_tcp_packet(), for what the table cannot say.
    let branch = newState;
    if (newState === sSS && oldState >= sTW) {
      // RFC 1122: a connection closed actively may be reopened by a new SYN
      // straight from TIME_WAIT. Also handles aborted connections: we and the
      // server think the connection exists but the client starts a new one.
      // If either side sent the first FIN, or this side's last packet was an
      // RST, kill the entry and let the packet create a fresh one.
      if (((b[bb + B_FLAGS] | b[bb + B_FLAGS + 1]) & F_CLOSE_INIT) !== 0 ||
          (b[bb + B_LAST_DIR] === dir && b[bb + B_LAST_INDEX] === I_RST)) {
        this.outReason = TCP_REASON.REOPEN;
        return TRACK.REPEAT;
      }
      branch = sIG; // the kernel falls through to the ignore case
    }
    switch (branch) {
      case sIG: {
        // Ignored packets: our entry may be out of sync, so let through what
        // may signal the real connection: a) SYN in ORIGINAL, b) SYN/ACK in
        // REPLY, c) ACK in REPLY after the initial SYN. If it was invalid,
        // the receiver answers with an RST, which the CLOSE case accepts.
        const misc = w[wb + W_LAST_MISC];
        const lastDir = b[bb + B_LAST_DIR];
        if (index === I_SYNACK && b[bb + B_LAST_INDEX] === I_SYN && lastDir !== dir &&
            tcp.ack === w[wb + W_LAST_END]) {
          // b) This SYN/ACK answers a SYN we ignored: client and server are in
          // sync, we are not. Resynchronise from the values recorded then.
          const lastEnd = w[wb + W_LAST_END];
          const lastWin = misc & 0xffff;
          const lw = wb + 4 * lastDir;
          w[lw + W_END] = lastEnd;
          w[lw + W_MAXEND] = lastEnd;
          w[lw + W_MAXWIN] = lastWin === 0 ? 1 : lastWin;
          b[bb + B_SCALE + lastDir] = (misc >>> 16) & 0xff;
          const lastFlags = (misc >>> 24) & ~F_CHALLENGE_ACK;
          w[wb + W_LAST_MISC] = (misc & 0x00ffffff) | (lastFlags << 24);
          b[bb + B_FLAGS + lastDir] = lastFlags;
          this.resetSide(wb, dir); // nf_ct_tcp_state_reset(): the SYN/ACK re-initialises this side
          oldState = sSS;
          newState = sSR;
          break;
        }
        const seq = tcp.seq;
        b[bb + B_LAST_INDEX] = index;
        b[bb + B_LAST_DIR] = dir;
        w[wb + W_LAST_SEQ] = seq;
        w[wb + W_LAST_END] = segmentEnd(seq, tcp, flags);
        let m = (misc & 0xffff0000) | tcp.window;
        if (index === I_SYN && dir === DIR.ORIGINAL) {
          // a) A SYN in ORIGINAL: note its options; if the server answers
          // with a SYN/ACK we resync from them. An RFC 5961 stack may answer
          // with a challenge ACK instead, which in LAST_ACK must not be taken
          // for the last ACK.
          let lastFlags = 0;
          let lastWscale = 0;
          if (tcp.headerLength > 20) {
            this.parseOptions(tcp);
            if (tcp.wscale >= 0) {
              lastFlags |= F_WSCALE;
              lastWscale = tcp.wscale;
            }
            if (tcp.sackPermitted) lastFlags |= F_SACK_PERM;
          }
          if (oldState === sLA) lastFlags |= F_CHALLENGE_ACK;
          m = (m & 0xffff) | (lastWscale << 16) | (lastFlags << 24);
        }
        w[wb + W_LAST_MISC] = m;
        // A possible challenge ACK answering the SYN: its ack is what an RST
        // from the client would carry as seq.
        if (oldState === sSS && index === I_ACK && dir === DIR.REPLY) w[wb + W_LAST_ACK] = tcp.ack;
        this.outReason = TCP_REASON.IGNORED;
        return TRACK.IGNORE;
      }
      case sIV:
        // (The SYN proxy keep-alive exception does not apply: no synproxy.)
        this.outReason = TCP_REASON.INVALID_STATE;
        return TRACK.INVALID;
      case sTW: {
        // RFC 5961: a stack answers a spurious SYN with a challenge ACK. In
        // LAST_ACK that ACK must not be taken as acknowledging the last FIN.
        const misc = w[wb + W_LAST_MISC];
        if (oldState === sLA && index === I_ACK && b[bb + B_LAST_DIR] !== dir &&
            b[bb + B_LAST_INDEX] === I_SYN && ((misc >>> 24) & F_CHALLENGE_ACK) !== 0) {
          w[wb + W_LAST_MISC] = misc & ~(F_CHALLENGE_ACK << 24);
          this.outReason = TCP_REASON.CHALLENGE_ACK;
          return TRACK.IGNORE;
        }
        break;
      }
      case sS2:
        // The table cannot remember a simultaneous open; last_flags does.
        w[wb + W_LAST_MISC] |= F_SIM_OPEN << 24;
        break;
      case sSR:
        if (dir === DIR.REPLY && index === I_ACK && ((w[wb + W_LAST_MISC] >>> 24) & F_SIM_OPEN) !== 0) {
          newState = sES;
        }
        break;
      case sCL: {
        if (index !== I_RST) break;
        // Closing (tcp_can_early_drop states): the tuple may already be
        // reused and the recorded values are stale; skip every RST check.
        const stored = b[bb + B_STATE];
        if (stored === sFW || stored === sLA || stored === sTW || stored === sCL || stored === sCW) {
          checkWindow = false;
          break;
        }
        const rdir = dir ^ 1;
        const lastIndex = b[bb + B_LAST_INDEX];
        const seq = tcp.seq;
        // td_maxack may be outdated if we let a SYN through just before.
        if ((b[bb + B_FLAGS + rdir] & F_MAXACK_SET) !== 0 && lastIndex !== I_SYN) {
          // nf_conntrack_tcp_established(): ESTABLISHED and ASSURED.
          const established = stored === sES && (status & STATUS.ASSURED) !== 0;
          // Not established and seq 0: most likely the answer to a SYN we let
          // through (last_index can be changed by out-of-order ACKs).
          if (seq === 0 && !established) break;
          const maxack = w[wb + 4 * rdir + W_MAXACK];
          if (before(seq, maxack) && !this.ignoreInvalidRst) {
            this.outReason = TCP_REASON.INVALID_RST;
            return TRACK.INVALID;
          }
          if (!established || seq === maxack) break;
          // Part of a train such as "P 235946583:235946602(19) ack 42" then
          // "R 235946602:235946602(0) ack 42"?
          if (lastIndex === I_ACK && b[bb + B_LAST_DIR] === dir && seq === w[wb + W_LAST_END]) break;
          // In window but not the exact sequence: stay ESTABLISHED so that a
          // challenge ACK can still pass (RFC 5961).
          newState = oldState;
        }
        const ackSeq = tcp.ack;
        if ((((status & STATUS.SEEN_REPLY) !== 0 && lastIndex === I_SYN) ||
             ((status & STATUS.ASSURED) === 0 && lastIndex === I_ACK)) &&
            ackSeq === w[wb + W_LAST_END]) {
          // RST answering the SYN (a) or the half-open ACK (c) we let
          // through: skip the window check, it may ACK what we ignored.
          checkWindow = false;
          break;
        }
        // RST answering a challenge ACK we let through in SYN_SENT.
        if (oldState === sSS && lastIndex === I_ACK && b[bb + B_LAST_DIR] === DIR.REPLY &&
            seq === w[wb + W_LAST_ACK]) {
          checkWindow = false;
        }
        break;
      }
      default:
        break;
    }

    if (checkWindow) {
      const res = this.inWindow(wb, dir, index, tcp, flags);
      if (res === TRACK.IGNORE) return TRACK.IGNORE;
      if (res === TRACK.INVALID) {
        this.handleInvalid(wb, dir, index, status);
        return TRACK.INVALID;
      }
    }

    // in_window: from here on the packet is in window.
    b[bb + B_LAST_INDEX] = index;
    b[bb + B_LAST_DIR] = dir;
    b[bb + B_STATE] = newState;
    if (oldState !== newState && newState === sFW) b[bb + B_FLAGS + dir] |= F_CLOSE_INIT;

    // The timeout: the state's, lowered to RETRANS after max_retrans
    // identical packets, CLOSE for an RST, UNACK while data is unacknowledged,
    // RETRANS for a zero window. Compared by configured seconds, as min().
    const T = this.timeouts;
    let cls: number = newState;
    if (b[bb + B_RETRANS] >= this.maxRetrans && T[newState] > T[TCLASS.TCP_RETRANS]) {
      cls = TCLASS.TCP_RETRANS;
    } else if (index === I_RST) {
      cls = TCLASS.TCP_CLOSE;
    } else if (((b[bb + B_FLAGS] | b[bb + B_FLAGS + 1]) & F_DATA_UNACK) !== 0 &&
               T[newState] > T[TCLASS.TCP_UNACK]) {
      cls = TCLASS.TCP_UNACK;
    } else if ((w[wb + W_LAST_MISC] & 0xffff) === 0 && T[newState] > T[TCLASS.TCP_RETRANS]) {
      cls = TCLASS.TCP_RETRANS;
    }

    this.outStateChanged = newState !== oldState;

    if ((status & STATUS.SEEN_REPLY) === 0) {
      // The only reply is an RST (or no reply at all): not a connection
      // worth keeping; delete it now (nf_ct_kill_acct).
      if (index === I_RST) {
        this.outKill = true;
        return TRACK.ACCEPT;
      }
      // Do not renew the timeout on a SYN retransmit, else port reuse by a
      // client or NAT box could keep the entry alive for ever.
      if (index === I_SYN && oldState === sSS) return TRACK.ACCEPT;
      // ESTABLISHED without a reply: mid-stream pickup; cap at UNACK.
      if (newState === sES && T[cls] > T[TCLASS.TCP_UNACK]) cls = TCLASS.TCP_UNACK;
    } else if ((status & STATUS.ASSURED) === 0 && (oldState === sSR || oldState === sES) && newState === sES) {
      // A valid ACK after SYN_RECV, or a valid answer for a picked-up
      // connection.
      this.outAssured = true;
    }
    this.outTimeoutClass = cls;
    return TRACK.ACCEPT;
  }

  // ---------------------------------------------------------------- internals

  /**
   * `tcp_new()`: sets up a fresh entry from its first packet. Only a SYN, or
   * (tcp_loose) a segment the table lets go from NONE to ESTABLISHED, may
   * create one.
   */
  private tcpNew(wb: number, tcp: TcpView, flags: number, index: number): boolean {
    const ns = TCP_CONNTRACKS[index * NSTATES + sNO]; // ORIGINAL row
    if (ns >= sIV) {
      this.outReason = TCP_REASON.INVALID_NEW;
      return false;
    }
    if (ns !== sSS && !this.loose) {
      this.outReason = TCP_REASON.PICKUP_DISABLED;
      return false;
    }
    const w = this.words;
    const b = this.bytes;
    const bb = wb * 4 + B_BASE;
    for (let k = 0; k < TCP_WORDS; k++) w[wb + k] = 0;
    for (let k = 0; k < TCP_BYTES; k++) b[bb + k] = 0;
    const end = segmentEnd(tcp.seq, tcp, flags);
    const win = tcp.window;
    const maxwin = win === 0 ? 1 : win;
    w[wb + W_END] = end;
    w[wb + W_MAXWIN] = maxwin;
    if (ns === sSS) {
      w[wb + W_MAXEND] = end;
      this.tcpOptions(wb, DIR.ORIGINAL, tcp);
    } else {
      // Mid-stream: the history is lost; use what this packet tells, assume
      // SACK and be liberal (we cannot know the window scale).
      w[wb + W_MAXEND] = end + maxwin;
      b[bb + B_FLAGS] = F_SACK_PERM | F_BE_LIBERAL;
      b[bb + B_FLAGS + 1] = F_SACK_PERM | F_BE_LIBERAL;
    }
    b[bb + B_LAST_INDEX] = I_NONE; // set by the packet path
    return true;
  }

  /**
   * `tcp_in_window()`: checks the segment against both directions' windows
   * and updates them. Returns TRACK.ACCEPT, IGNORE or INVALID.
   *
   *   I.   seq <= sender.td_maxend                      (upper bound for data)
   *   II.  seq + len >= sender.td_end - receiver.td_maxwin   (lower bound)
   *   III. sack <= receiver.td_end                      (upper bound for (s)ack)
   *   IV.  sack >= receiver.td_end - MAXACKWINDOW        (lower bound for (s)ack)
   */
  private inWindow(wb: number, dir: number, index: number, tcp: TcpView, flags: number): number {
    const w = this.words;
    const b = this.bytes;
    const bb = wb * 4 + B_BASE;
    const s = wb + 4 * dir; // sender = seen[dir]
    const r = wb + 4 * (dir ^ 1); // receiver = seen[!dir]
    const sf = bb + B_FLAGS + dir;
    const rf = bb + B_FLAGS + (dir ^ 1);
    const syn = (flags & T_SYN) !== 0;
    const hasAck = (flags & T_ACK) !== 0;

    let seq = tcp.seq;
    let ack = tcp.ack;
    const winRaw = tcp.window;
    let win = winRaw;
    let end = segmentEnd(seq, tcp, flags);
    let sack = ack;
    if ((b[rf] & F_SACK_PERM) !== 0) sack = this.highestSack(tcp, sack);
    // seqadj hook: with NAT sequence adjustment, ack and sack would be
    // lowered here by nf_ct_seq_offset(ct, !dir, ack - 1). Always 0 for now.

    if (w[s + W_MAXWIN] === 0) {
      // First packet seen from this side.
      if (syn) {
        // SYN/ACK answering the SYN, or a reply SYN of a simultaneous open.
        this.initSender(wb, dir, tcp, end, win);
        if (!hasAck) return TRACK.ACCEPT; // simultaneous open
      } else {
        // Mid-stream: use the data of the packet.
        w[s + W_END] = end;
        const swin = win << b[bb + B_SCALE + dir];
        w[s + W_MAXWIN] = swin === 0 ? 1 : swin;
        w[s + W_MAXEND] = end + w[s + W_MAXWIN];
        if (w[r + W_MAXWIN] === 0) {
          // Nothing seen the other way yet: let checks III and IV pass.
          w[r + W_END] = sack;
          w[r + W_MAXEND] = sack;
        } else if (sack === ((w[r + W_END] + 1) >>> 0)) {
          // Likely the answer to a keepalive; needed for check III.
          w[r + W_END] = w[r + W_END] + 1;
        }
      }
    } else if (syn && after(end, w[s + W_END]) &&
               (b[bb + B_STATE] === sSS || b[bb + B_STATE] === sSR)) {
      // RFC 793: a reinitialised TCP only has to use larger sequence
      // numbers. Re-init this side like for the first SYN(/ACK); seq, ack or
      // options may differ.
      this.initSender(wb, dir, tcp, end, win);
      if (dir === DIR.REPLY && !hasAck) return TRACK.ACCEPT;
    }

    if (!hasAck) {
      // No ACK: pretend it acknowledges everything.
      ack = sack = w[r + W_END];
    } else if ((flags & T_RST) !== 0 && ack === 0) {
      // Broken stacks send RST+ACK with a zero ack.
      ack = sack = w[r + W_END];
    }

    // An RST with seq 0 answering our SYN.
    if ((flags & T_RST) !== 0 && seq === 0 && b[bb + B_STATE] === sSS) seq = end = w[s + W_END];

    const sEnd = w[s + W_END];
    const sMaxend = w[s + W_MAXEND];
    const sMaxwin = w[s + W_MAXWIN];
    const rEnd = w[r + W_END];
    const rMaxwin = w[r + W_MAXWIN];
    const maxAckWin = sMaxwin > MAXACKWINCONST ? sMaxwin : MAXACKWINCONST;

    if (!before(seq, sMaxend + 1)) {
      // Check I failed.
      const overshot = (end - sMaxend + 1) >>> 0;
      const ackOk = after(sack, rEnd - maxAckWin - 1);
      const inRecvWin = rMaxwin !== 0 && after(end, sEnd - rMaxwin - 1);
      if (inRecvWin && ackOk && overshot <= rMaxwin && before(sack, rEnd + 1)) {
        // Some stacks send a little more than the receive window allows. If
        // the ruleset lets it pass and the peer ACKs it, later ACKs would
        // fail check III; so still advance td_end.
        w[s + W_END] = end;
        b[sf] |= F_DATA_UNACK;
        return this.logInvalid(wb, dir, TRACK.IGNORE, TCP_REASON.OVERSHOOT);
      }
      return this.logInvalid(wb, dir, TRACK.INVALID, TCP_REASON.SEQ_OVER_UPPER);
    }
    if (!before(sack, rEnd + 1)) return this.logInvalid(wb, dir, TRACK.INVALID, TCP_REASON.ACK_OVER_UPPER);
    if (rMaxwin !== 0 && !after(end, sEnd - rMaxwin - 1)) {
      return this.logInvalid(wb, dir, TRACK.IGNORE, TCP_REASON.SEQ_UNDER_LOWER);
    }
    if (!after(sack, rEnd - maxAckWin - 1)) return this.logInvalid(wb, dir, TRACK.IGNORE, TCP_REASON.ACK_UNDER_LOWER);

    // Window scaling (RFC 7323) applies to every segment but a SYN.
    if (!syn) win = win << b[bb + B_SCALE + dir];

    // Update the sender.
    const swin = (win + (sack - ack)) >>> 0;
    if (w[s + W_MAXWIN] < swin) w[s + W_MAXWIN] = swin;
    if (after(end, w[s + W_END])) {
      w[s + W_END] = end;
      b[sf] |= F_DATA_UNACK;
    }
    if (hasAck) {
      if ((b[sf] & F_MAXACK_SET) === 0) {
        w[s + W_MAXACK] = ack;
        b[sf] |= F_MAXACK_SET;
      } else if (after(ack, w[s + W_MAXACK])) {
        w[s + W_MAXACK] = ack;
      }
    }

    // Update the receiver.
    if (w[r + W_MAXWIN] !== 0 && after(end, w[s + W_MAXEND])) {
      w[r + W_MAXWIN] = w[r + W_MAXWIN] + (end - w[s + W_MAXEND]);
    }
    const right = (sack + win) >>> 0;
    if (after(right, w[r + W_MAXEND] - 1)) {
      w[r + W_MAXEND] = win === 0 ? right + 1 : right;
    }
    if (ack === w[r + W_END]) b[rf] &= ~F_DATA_UNACK;

    // Count identical ACK-class packets (retransmissions).
    if (index === I_ACK) {
      const misc = w[wb + W_LAST_MISC];
      if (b[bb + B_LAST_DIR] === dir && w[wb + W_LAST_SEQ] === seq && w[wb + W_LAST_ACK] === ack &&
          w[wb + W_LAST_END] === end && (misc & 0xffff) === winRaw) {
        b[bb + B_RETRANS]++;
      } else {
        b[bb + B_LAST_DIR] = dir;
        w[wb + W_LAST_SEQ] = seq;
        w[wb + W_LAST_ACK] = ack;
        w[wb + W_LAST_END] = end;
        w[wb + W_LAST_MISC] = (misc & 0xffff0000) | winRaw;
        b[bb + B_RETRANS] = 0;
      }
    }
    return TRACK.ACCEPT;
  }

  /**
   * `nf_tcp_log_invalid()`: a window-check failure is accepted when the
   * sender is marked BE_LIBERAL or nf_conntrack_tcp_be_liberal is set; the
   * check's remaining updates are then skipped, as in the kernel.
   */
  private logInvalid(wb: number, dir: number, ret: number, reason: number): number {
    this.outReason = reason;
    if ((this.bytes[wb * 4 + B_BASE + B_FLAGS + dir] & F_BE_LIBERAL) !== 0 || this.beLiberal) return TRACK.ACCEPT;
    return ret;
  }

  /**
   * `nf_tcp_handle_invalid()`: an ASSURED entry that sees out-of-window FIN or
   * RST packets in both directions is probably dead; ask the caller to shrink
   * its timeout like for unacknowledged data.
   */
  private handleInvalid(wb: number, dir: number, index: number, status: number): void {
    if ((status & STATUS.ASSURED) === 0 || (status & STATUS.FIXED_TIMEOUT) !== 0) return;
    if (index !== I_RST && index !== I_FIN) return;
    const b = this.bytes;
    const bb = wb * 4 + B_BASE;
    const lastIndex = b[bb + B_LAST_INDEX];
    if (b[bb + B_LAST_DIR] !== dir && (lastIndex === I_FIN || lastIndex === I_RST)) {
      this.outLowerToUnack = true;
    } else {
      b[bb + B_LAST_INDEX] = index;
      b[bb + B_LAST_DIR] = dir;
    }
  }

  /**
   * `tcp_init_sender()`: a SYN/ACK answering the SYN, or the reply SYN of a
   * simultaneous open, sets up its side. Window scaling is used only if both
   * sides sent the option (RFC 7323 §2.2); the check runs on the reply.
   */
  private initSender(wb: number, dir: number, tcp: TcpView, end: number, win: number): void {
    const w = this.words;
    const b = this.bytes;
    const bb = wb * 4 + B_BASE;
    const s = wb + 4 * dir;
    w[s + W_END] = end;
    w[s + W_MAXEND] = end;
    w[s + W_MAXWIN] = win === 0 ? 1 : win;
    this.tcpOptions(wb, dir, tcp);
    if (dir === DIR.REPLY &&
        !((b[bb + B_FLAGS + dir] & F_WSCALE) !== 0 && (b[bb + B_FLAGS + (dir ^ 1)] & F_WSCALE) !== 0)) {
      b[bb + B_SCALE] = 0;
      b[bb + B_SCALE + 1] = 0;
    }
  }

  /**
   * `tcp_options()`: window scale and SACK-permitted of a SYN into `seen[d]`.
   * A header without options leaves td_scale and the flags alone, as the
   * kernel returns before clearing them; otherwise all flags but
   * BE_LIBERAL are cleared first.
   */
  private tcpOptions(wb: number, d: number, tcp: TcpView): void {
    if (tcp.headerLength === 20) return;
    this.parseOptions(tcp);
    const b = this.bytes;
    const bb = wb * 4 + B_BASE;
    let f = b[bb + B_FLAGS + d] & F_BE_LIBERAL;
    let scale = 0;
    if (tcp.sackPermitted) f |= F_SACK_PERM;
    if (tcp.wscale >= 0) {
      scale = tcp.wscale; // already capped at 14 (TCP_MAX_WSCALE)
      f |= F_WSCALE;
    }
    b[bb + B_FLAGS + d] = f;
    b[bb + B_SCALE + d] = scale;
  }

  /** `tcp_sack()`: the highest right edge of the SACK blocks, if above `ack`. */
  private highestSack(tcp: TcpView, ack: number): number {
    const hl = tcp.headerLength;
    if (hl === 20) return ack;
    // Fast path: a timestamp is the only option.
    if (hl === TS_ONLY_HEADER && readU32(tcp.buf, tcp.off + 20) === TS_ALIGNED_WORD) return ack;
    this.parseOptions(tcp);
    let sack = ack;
    const n = tcp.sackCount;
    const right = tcp.sackRight;
    for (let i = 0; i < n; i++) {
      const edge = right[i];
      if (after(edge, sack)) sack = edge;
    }
    return sack;
  }

  /** Parses the current packet's options once. */
  private parseOptions(tcp: TcpView): void {
    if (this.optsParsed) return;
    tcp.parseOptions();
    this.optsParsed = true;
  }

  /** `nf_ct_tcp_state_reset()`: forget one side's window data (BE_LIBERAL stays). */
  private resetSide(wb: number, d: number): void {
    const w = this.words;
    const bb = wb * 4 + B_BASE;
    const s = wb + 4 * d;
    w[s + W_END] = 0;
    w[s + W_MAXEND] = 0;
    w[s + W_MAXWIN] = 0;
    w[s + W_MAXACK] = 0;
    this.bytes[bb + B_SCALE + d] = 0;
    this.bytes[bb + B_FLAGS + d] &= F_BE_LIBERAL;
  }
}
