import { AF, IPPROTO } from "../packet/constants.js";
import { ICMPV6_TYPE } from "../packet/icmp.js";
import { PARSE, QuotedPacket, type Packet } from "../packet/packet.js";
import { Tuple, tupleFromPacket, tupleFromQuoted } from "../packet/tuple.js";
import type { ConntrackConfig } from "./config.js";
import { CTINFO, DIR, EVENT, HELPER_NAMES, STATUS, TCLASS, TCLASS_COUNT, TRACK } from "./constants.js";
import { EventRing } from "./events.js";
import { ConnSnapshot } from "./snapshot.js";
import { ConnTable, EVICTION_RANGE, REC } from "./table.js";
import { TCP_INVALID_LOWER_MIN, TCP_REASON_NAMES, TcpTracker } from "./tcp.js";

/** Per-packet flags the caller knows from the I/O path. */
export const PKT = {
  /** Locally generated (OUTPUT hook): checksums are not verified, as Linux verifies only at PRE_ROUTING. */
  LOCAL_OUT: 1,
  /** The kernel already verified the checksum, or it is partial (NFQA_SKB_CSUMNOTREADY / CSUM_NOTVERIFIED): do not judge it. */
  CSUM_UNNECESSARY: 2,
} as const;

/** Why a packet was INVALID (or not tracked), for debug logs and `replay`. */
export const REASON = {
  NONE: 0,
  BAD_L3: 1,
  FRAGMENT: 2,
  TRUNCATED: 3,
  BAD_CHECKSUM: 4,
  TCP_FLAGS: 5,
  TCP_STATE: 6,
  ICMP_TYPE: 7,
  NO_NEW: 8,
  ICMP_ERROR_INNER: 9,
  ICMP_ERROR_NO_CONN: 10,
  ICMP_ERROR_DADDR: 11,
  /** Unused (kept so the numbering stays stable): Linux tracks zero-checksum UDP over IPv6. */
  UDP6_NO_CHECKSUM: 12,
  TABLE_FULL: 13,
  NO_INVERSE: 14,
  CHAIN_TOO_LONG: 15,
} as const;
export const REASON_NAMES = [
  "", "malformed L3 header", "unreassembled fragment", "truncated or malformed L4 header", "bad checksum",
  "invalid TCP flag combination", "TCP state/window check", "invalid ICMP type", "cannot create a new connection with this packet",
  "ICMP error: unusable quoted packet", "ICMP error for no known connection", "ICMP error: outer daddr != inner",
  "UDP over IPv6 without checksum", "table full, dropping packet", "no inverse tuple", "hash chain too long",
] as const;

/** Counters in the spirit of /proc/net/stat/nf_conntrack, plus sluice's own. */
export class ConntrackStats {
  found = 0;
  invalid = 0;
  insert = 0;
  insertFailed = 0;
  drop = 0;
  earlyDrop = 0;
  searchRestart = 0;
  chainTooLong = 0;
  created = 0;
  related = 0;
  untracked = 0;
  reaped = 0;
  ignored = 0;
}

const ICMP_VALID_NEW = new Uint8Array(19);
ICMP_VALID_NEW[8] = ICMP_VALID_NEW[13] = ICMP_VALID_NEW[15] = ICMP_VALID_NEW[17] = 1;
/** Linux's NR_ICMP_TYPES: ICMP types above it are invalid (`icmp_error`). */
const NR_ICMP_TYPES = 18;
/** UDP: a flow must live this long before a packet after the reply makes it ASSURED (`stream_ts`). */
const UDP_STREAM_DELAY_MS = 2000;
/** UDP's `stream_ts`: the first f64 of the entry's L4 area (where TCP keeps its words: a union, as in `nf_conn`). */
const UDP_STREAM_TS = REC.L4 / 2;
const REC_F64 = REC.F64;

/**
 * The connection tracker: `nf_conntrack_in` over the table. One call to
 * `process` per packet gives its ctinfo and connection; a new connection is
 * pending until `confirm` (the packet was accepted) or `abort` (dropped).
 * Everything below is allocation-free; time comes in as `now` (ms).
 */
export class Conntrack {
  readonly cfg: ConntrackConfig;
  readonly table: ConnTable;
  readonly tcp: TcpTracker;
  readonly events: EventRing;
  readonly stats = new ConntrackStats();

  private readonly tuple = new Tuple();
  private readonly reply = new Tuple();
  private readonly quoted = new QuotedPacket();
  private readonly victims = new Int32Array(256);

  /** ctinfo of the last packet (CTINFO.*). */
  ctinfo: number = CTINFO.INVALID;
  /** Direction of the last packet within its connection. */
  dir = 0;
  /** Entry index of the last packet's connection, or -1. */
  entry = -1;
  /**
   * The entry the last packet killed (nf_ct_kill_acct: an RST answering a
   * SYN), or -1. Its record is free but untouched until the next process():
   * as in Linux, where the packet keeps its dying conntrack, the rules the
   * packet still traverses see the connection (ESTABLISHED, its tuples,
   * status with DYING, mark). `entry` is -1 for such a packet.
   */
  dying = -1;
  /** True while the last packet's connection is new and unconfirmed. */
  pending = false;
  /** What the protocol tracker decided (TRACK.*); DROP means the packet must be dropped. */
  track: number = TRACK.ACCEPT;
  /** Why the last packet is INVALID (REASON.*), or the TCP tracker's reason in `tcpReason`. */
  reason = 0;
  tcpReason = 0;

  private pendingClass = 0;
  // Protocol-tracker outputs for the packet in hand.
  private l4Class = -1;
  private l4Assured = false;
  private l4Kill = false;
  private l4Changed = false;

  constructor(cfg: ConntrackConfig) {
    this.cfg = cfg;
    const t = cfg.timeouts;
    const ms = new Float64Array(TCLASS_COUNT);
    ms[TCLASS.TCP_NONE] = t.tcpClose * 1000; // never used: no entry stays in NONE
    ms[TCLASS.TCP_SYN_SENT] = t.tcpSynSent * 1000;
    ms[TCLASS.TCP_SYN_RECV] = t.tcpSynRecv * 1000;
    ms[TCLASS.TCP_ESTABLISHED] = t.tcpEstablished * 1000;
    ms[TCLASS.TCP_FIN_WAIT] = t.tcpFinWait * 1000;
    ms[TCLASS.TCP_CLOSE_WAIT] = t.tcpCloseWait * 1000;
    ms[TCLASS.TCP_LAST_ACK] = t.tcpLastAck * 1000;
    ms[TCLASS.TCP_TIME_WAIT] = t.tcpTimeWait * 1000;
    ms[TCLASS.TCP_CLOSE] = t.tcpClose * 1000;
    ms[TCLASS.TCP_SYN_SENT2] = t.tcpSynSent2 * 1000;
    ms[TCLASS.TCP_RETRANS] = t.tcpMaxRetrans * 1000;
    ms[TCLASS.TCP_UNACK] = t.tcpUnacknowledged * 1000;
    ms[TCLASS.UDP_UNREPLIED] = t.udp * 1000;
    ms[TCLASS.UDP_STREAM] = t.udpStream * 1000;
    ms[TCLASS.ICMP] = t.icmp * 1000;
    ms[TCLASS.ICMPV6] = t.icmpv6 * 1000;
    ms[TCLASS.GENERIC] = t.generic * 1000;
    this.table = new ConnTable(cfg.max, cfg.buckets, ms);
    this.tcp = new TcpTracker(this.table.capacity, cfg, this.table.buffer);
    this.events = new EventRing(cfg.eventRing);
  }

  /**
   * Tracks one packet (`nf_conntrack_in`). `parseStatus` is what
   * `Packet.parse` returned. Returns the ctinfo, also left in `this.ctinfo`
   * with `entry`, `dir`, `pending`, `track` and `reason`.
   */
  process(p: Packet, parseStatus: number, now: number, flags: number): number {
    this.entry = -1;
    this.dying = -1;
    this.dir = DIR.ORIGINAL;
    this.pending = false;
    this.track = TRACK.ACCEPT;
    this.reason = REASON.NONE;
    this.tcpReason = 0;
    if (parseStatus !== PARSE.OK) {
      return this.invalid(parseStatus === PARSE.BAD_L4 ? REASON.TRUNCATED : parseStatus === PARSE.FRAGMENT ? REASON.FRAGMENT : REASON.BAD_L3);
    }
    const checkCsum = this.cfg.checksum && (flags & (PKT.LOCAL_OUT | PKT.CSUM_UNNECESSARY)) === 0;
    // The protocol trackers' `*_error()` stage: checks that need no connection.
    switch (p.proto) {
      case IPPROTO.TCP:
        if (!TcpTracker.validFlags(p.tcp.flags)) return this.invalid(REASON.TCP_FLAGS);
        if (checkCsum && !p.l4ChecksumValid()) return this.invalid(REASON.BAD_CHECKSUM);
        break;
      case IPPROTO.UDP:
        // udp_error(): a zero checksum is never verified, over IPv6 too (checked
        // on a 6.18 kernel: a zero-checksum IPv6 datagram gets a NEW entry).
        if (checkCsum && p.udp.checksum !== 0 && !p.l4ChecksumValid()) return this.invalid(REASON.BAD_CHECKSUM);
        break;
      case IPPROTO.ICMP:
        if (p.family !== AF.INET) break;
        if (checkCsum && !p.l4ChecksumValid()) return this.invalid(REASON.BAD_CHECKSUM);
        if (p.icmp.type > NR_ICMP_TYPES) return this.invalid(REASON.ICMP_TYPE);
        if (p.icmpError) return this.icmpError(p, now);
        break;
      case IPPROTO.ICMPV6: {
        if (p.family !== AF.INET6) break;
        if (checkCsum && !p.l4ChecksumValid()) return this.invalid(REASON.BAD_CHECKSUM);
        const type = p.icmp.type;
        // icmpv6_error(): neighbour discovery and MLD are never tracked (`noct_valid_new`).
        if ((type >= ICMPV6_TYPE.MGM_QUERY && type <= ICMPV6_TYPE.NEIGHBOUR_ADVERT) || type === ICMPV6_TYPE.MLD2_REPORT) {
          this.stats.untracked++;
          this.ctinfo = CTINFO.UNTRACKED;
          return this.ctinfo;
        }
        if (p.icmpError) return this.icmpError(p, now);
        break;
      }
    }

    const t = this.tuple;
    tupleFromPacket(p, t);
    // At most one restart: a TCP reopen kills the old entry and looks up again (-NF_REPEAT).
    for (let attempt = 0; attempt < 2; attempt++) {
      const hash = this.table.hashTuple(t);
      let n = this.table.lookup(t, hash);
      if (n >= 0 && this.table.isExpired(n >> 1, now)) {
        this.destroy(n >> 1, now);
        n = -1;
      }
      if (n < 0) return this.create(p, hash, now);
      this.stats.found++;
      const i = n >> 1, dir = n & 1, tb = this.table;
      let status = tb.status[i];
      const ctinfo = dir === DIR.REPLY ? CTINFO.ESTABLISHED_REPLY
        : (status & STATUS.SEEN_REPLY) !== 0 ? CTINFO.ESTABLISHED
        : (status & STATUS.EXPECTED) !== 0 ? CTINFO.RELATED : CTINFO.NEW;
      const r = this.l4Packet(i, dir, p, now, false);
      if (r === TRACK.REPEAT) {
        this.destroy(i, now);
        this.stats.searchRestart++;
        continue;
      }
      this.entry = i;
      this.dir = dir;
      if (r === TRACK.INVALID) {
        // nf_tcp_handle_invalid(): out-of-window FIN/RST from both sides shrink
        // an ASSURED entry's timeout to UNACK when more than that is left.
        if (this.tcp.outLowerToUnack) {
          const left = tb.expires(i) - now;
          if (left >= TCP_INVALID_LOWER_MIN * 1000 && left > tb.timeoutMs[TCLASS.TCP_UNACK]) {
            this.account(i, dir, p.length);
            tb.refresh(i, TCLASS.TCP_UNACK, now);
          }
        }
        this.entry = -1;
        return this.invalid(REASON.TCP_STATE);
      }
      if (r === TRACK.IGNORE) this.stats.ignored++;
      let changed = this.l4Changed;
      if (this.l4Assured && (status & STATUS.ASSURED) === 0) { status |= STATUS.ASSURED; changed = true; }
      if (this.l4Class >= 0 || this.l4Kill) this.account(i, dir, p.length);
      if (this.l4Class >= 0) tb.refresh(i, this.l4Class, now);
      // nf_ct_kill_acct() reports DESTROY from inside the protocol tracker,
      // before nf_conntrack_in() sets SEEN_REPLY: a killed entry stays unreplied.
      if (dir === DIR.REPLY && (status & STATUS.SEEN_REPLY) === 0 && !this.l4Kill) { status |= STATUS.SEEN_REPLY; changed = true; }
      tb.status[i] = status;
      this.ctinfo = ctinfo;
      if (this.l4Kill) {
        this.destroy(i, now);
        this.entry = -1;
        this.dying = i;
        tb.status[i] = status | STATUS.DYING;
      } else if (changed) {
        // ctnetlink carries the TCP state in an UPDATE only with IPCT_PROTOINFO (a state change).
        this.emit(EVENT.UPDATE, i, now, this.l4Changed);
      }
      return ctinfo;
    }
    return this.invalid(REASON.TCP_STATE);
  }

  /** `init_conntrack`: a tentative entry for a packet that matched none. */
  private create(p: Packet, hash: number, now: number): number {
    const tb = this.table;
    if (!this.reply.invertFrom(this.tuple)) return this.invalid(REASON.NO_INVERSE);
    if (tb.count >= tb.max && !this.earlyDrop(hash, now)) {
      this.stats.drop++;
      this.track = TRACK.DROP;
      return this.invalid(REASON.TABLE_FULL);
    }
    const i = tb.alloc();
    if (i < 0) {
      this.stats.drop++;
      this.track = TRACK.DROP;
      return this.invalid(REASON.TABLE_FULL);
    }
    tb.setTuples(i, this.tuple, this.reply);
    const r = this.l4Packet(i, DIR.ORIGINAL, p, now, true);
    if (r !== TRACK.ACCEPT || this.l4Class < 0) {
      tb.free(i);
      return this.invalid(this.tcpReason !== 0 ? REASON.TCP_STATE : REASON.NO_NEW);
    }
    if (this.l4Assured) tb.status[i] |= STATUS.ASSURED;
    this.account(i, DIR.ORIGINAL, p.length);
    this.pendingClass = this.l4Class;
    this.pending = true;
    this.entry = i;
    this.stats.created++;
    this.ctinfo = CTINFO.NEW;
    return CTINFO.NEW;
  }

  /**
   * `early_drop`: scan up to EVICTION_RANGE buckets from the new tuple's and
   * kill every non-ASSURED entry of the first bucket that has any (expired
   * entries met on the way are reaped too). True when room was made.
   */
  private earlyDrop(hash: number, now: number): boolean {
    const tb = this.table, v = this.victims;
    let freed = 0;
    for (let k = 0; k < EVICTION_RANGE; k++) {
      const b = (tb.bucketOf(hash) + k) & (tb.bucketCount - 1);
      let nv = 0;
      for (let n = tb.bucketHead[b]; n >= 0 && nv < v.length; n = tb.nodeNext(n)) {
        const i = n >> 1;
        if (tb.isExpired(i, now) || (tb.status[i] & STATUS.ASSURED) === 0) {
          let dup = false;
          for (let j = 0; j < nv; j++) if (v[j] === i) { dup = true; break; }
          if (!dup) v[nv++] = i;
        }
      }
      for (let j = 0; j < nv; j++) {
        const i = v[j];
        if (!tb.isExpired(i, now)) this.stats.earlyDrop++;
        this.destroy(i, now);
      }
      freed += nv;
      if (freed > 0) return true;
    }
    return false;
  }

  /** The protocol tracker's `packet()` for entry `i`; sets the l4 outputs and returns a TRACK code. */
  private l4Packet(i: number, dir: number, p: Packet, now: number, isNew: boolean): number {
    this.l4Class = -1;
    this.l4Assured = false;
    this.l4Kill = false;
    this.l4Changed = false;
    const tb = this.table;
    const status = tb.status[i];
    switch (tb.proto(i)) {
      case IPPROTO.TCP: {
        const r = this.tcp.packet(i, dir, p.tcp, status, isNew);
        this.l4Class = this.tcp.outTimeoutClass;
        this.l4Assured = this.tcp.outAssured;
        this.l4Kill = this.tcp.outKill;
        this.l4Changed = this.tcp.outStateChanged;
        this.tcpReason = this.tcp.outReason;
        return r;
      }
      case IPPROTO.UDP:
        return this.udpPacket(i, status, now, isNew);
      case IPPROTO.ICMP:
      case IPPROTO.ICMPV6:
        if (tb.family(i) === (tb.proto(i) === IPPROTO.ICMP ? AF.INET : AF.INET6)) {
          return this.icmpPacket(i, isNew);
        }
        this.l4Class = TCLASS.GENERIC;
        return TRACK.ACCEPT;
      default:
        // nf_conntrack_generic_packet: one timeout, never ASSURED.
        this.l4Class = TCLASS.GENERIC;
        return TRACK.ACCEPT;
    }
  }

  /** `nf_conntrack_udp_packet`. */
  private udpPacket(i: number, status: number, now: number, isNew: boolean): number {
    const ts = this.table.f64, k = i * REC_F64 + UDP_STREAM_TS;
    if (isNew) ts[k] = now + UDP_STREAM_DELAY_MS;
    if ((status & STATUS.SEEN_REPLY) !== 0) {
      // Traffic both ways: a stream once it has lived past stream_ts (time_after: strictly later).
      if (now > ts[k]) {
        this.l4Class = TCLASS.UDP_STREAM;
        this.l4Assured = true;
      } else {
        this.l4Class = TCLASS.UDP_UNREPLIED;
      }
    } else {
      this.l4Class = TCLASS.UDP_UNREPLIED;
    }
    return TRACK.ACCEPT;
  }

  /** `nf_conntrack_icmp_packet` / `nf_conntrack_icmpv6_packet`: only requests create entries; never ASSURED. */
  private icmpPacket(i: number, isNew: boolean): number {
    const v4 = this.table.family(i) === AF.INET;
    if (isNew) {
      const type = this.table.port(i, 1) >> 8;
      const ok = v4 ? type < ICMP_VALID_NEW.length && ICMP_VALID_NEW[type] === 1
        : type === ICMPV6_TYPE.ECHO_REQUEST || type === ICMPV6_TYPE.NI_QUERY;
      if (!ok) return TRACK.INVALID;
    }
    this.l4Class = v4 ? TCLASS.ICMP : TCLASS.ICMPV6;
    return TRACK.ACCEPT;
  }

  /**
   * `nf_conntrack_inet_error`: an ICMP error is RELATED to the connection of
   * the packet it quotes (inner tuple inverted), if the outer destination is
   * that connection's destination in the matching direction. It never
   * creates or updates an entry.
   */
  private icmpError(p: Packet, now: number): number {
    const q = this.quoted, inner = this.tuple, look = this.reply, tb = this.table;
    if (!q.parse(p.buf, p.icmp.innerOffset, p.icmp.innerLength, p.family)) return this.invalid(REASON.ICMP_ERROR_INNER);
    if (!tupleFromQuoted(q, inner)) return this.invalid(REASON.ICMP_ERROR_INNER);
    if (!look.invertFrom(inner)) return this.invalid(REASON.ICMP_ERROR_INNER);
    const n = tb.lookup(look, tb.hashTuple(look));
    if (n >= 0 && tb.isExpired(n >> 1, now)) {
      this.destroy(n >> 1, now); // the lookup reaps what it finds expired, as ____nf_conntrack_find does
      return this.invalid(REASON.ICMP_ERROR_NO_CONN);
    }
    if (n < 0) return this.invalid(REASON.ICMP_ERROR_NO_CONN);
    const i = n >> 1, dir = n & 1;
    const base = tb.addrAt(i) + dir * 8 + 4;
    const a = tb.i32, b = p.buf, o = p.off;
    if (p.family === AF.INET) {
      if (a[base] !== ((b[o + 16] << 24) | (b[o + 17] << 16) | (b[o + 18] << 8) | b[o + 19])) {
        return this.invalid(REASON.ICMP_ERROR_DADDR);
      }
    } else {
      for (let k = 0; k < 4; k++) {
        const d = o + 24 + k * 4;
        if (a[base + k] !== ((b[d] << 24) | (b[d + 1] << 16) | (b[d + 2] << 8) | b[d + 3])) {
          return this.invalid(REASON.ICMP_ERROR_DADDR);
        }
      }
    }
    this.stats.related++;
    this.entry = i;
    this.dir = dir;
    this.ctinfo = dir === DIR.REPLY ? CTINFO.RELATED_REPLY : CTINFO.RELATED;
    return this.ctinfo;
  }

  private invalid(reason: number): number {
    this.reason = reason;
    this.stats.invalid++;
    this.ctinfo = CTINFO.INVALID;
    this.entry = -1;
    this.pending = false;
    return CTINFO.INVALID;
  }

  private account(i: number, dir: number, bytes: number): void {
    this.table.account(i, dir, bytes);
  }

  /**
   * Commits the last packet's pending entry (`__nf_conntrack_confirm`): call
   * it when the packet was accepted. False when the insert failed (a hash
   * chain too long): the packet must then be dropped, as Linux drops it.
   */
  confirm(now: number): boolean {
    if (!this.pending) return true;
    this.pending = false;
    const i = this.entry;
    if (!this.table.insert(i, this.pendingClass, now)) {
      this.table.free(i);
      this.entry = -1;
      this.stats.insertFailed++;
      this.stats.chainTooLong++;
      this.reason = REASON.CHAIN_TOO_LONG;
      return false;
    }
    this.stats.insert++;
    this.emit(EVENT.NEW, i, now);
    return true;
  }

  /** Discards the last packet's pending entry: its packet was dropped, so the connection never existed. */
  abort(): void {
    if (!this.pending) return;
    this.pending = false;
    this.table.free(this.entry);
    this.entry = -1;
  }

  /** Expires entries whose timeout has passed, at most `budget` of them; returns how many. */
  reap(now: number, budget = this.cfg.reapBudget): number {
    let done = 0;
    for (let c = 0; c < TCLASS_COUNT && done < budget; c++) {
      for (let i = this.table.expiredHead(c, now); i >= 0 && done < budget; i = this.table.expiredHead(c, now)) {
        this.destroy(i, now);
        done++;
      }
    }
    this.stats.reaped += done;
    return done;
  }

  /** Removes a confirmed entry with a DESTROY event. */
  destroy(i: number, now: number): void {
    this.emit(EVENT.DESTROY, i, now);
    this.table.remove(i);
  }

  /** Deletes the entry behind `handle`; false when the handle is stale. */
  deleteHandle(handle: number, now: number): boolean {
    const i = this.table.indexOf(handle);
    if (i < 0) return false;
    this.destroy(i, now);
    return true;
  }

  /** Removes every entry (`conntrack -F`); returns how many. */
  flush(now: number): number {
    let n = 0;
    for (let c = 0; c < TCLASS_COUNT; c++) {
      for (let i = this.table.ringHead[c]; i >= 0; i = this.table.ringHead[c]) {
        this.destroy(i, now);
        n++;
      }
    }
    return n;
  }

  /** Calls `fn` with the index of every live entry, ring by ring (not for the packet path). */
  forEachEntry(fn: (i: number) => void): void {
    const tb = this.table;
    for (let c = 0; c < TCLASS_COUNT; c++) {
      for (let i = tb.ringHead[c]; i >= 0; ) {
        const next = tb.ringNext(i);
        fn(i);
        i = next;
      }
    }
  }

  /** The TCP tracker's reason for the last INVALID/IGNORE verdict, as text ("" when none). */
  tcpReasonName(): string {
    return TCP_REASON_NAMES[this.tcpReason] ?? "";
  }

  /** TCP state of entry `i`, or -1 for other protocols. */
  tcpState(i: number): number {
    return this.table.proto(i) === IPPROTO.TCP ? this.tcp.state(i) : -1;
  }

  /** Copies entry `i`'s visible fields into `out`, with the timeout relative to `now`. */
  snapshot(i: number, now: number, out: ConnSnapshot): void {
    const tb = this.table;
    out.event = -1;
    out.time = now;
    out.family = tb.family(i);
    out.proto = tb.proto(i);
    out.tcpState = this.tcpState(i);
    out.status = tb.status[i];
    out.timeout = secondsLeft(tb.expires(i), now);
    out.mark = tb.mark(i);
    out.handle = tb.handle(i);
    const a = tb.addrAt(i), p = tb.portAt(i), c = tb.countersAt(i);
    for (let k = 0; k < 16; k++) out.addr[k] = tb.i32[a + k];
    for (let k = 0; k < 4; k++) out.port[k] = tb.u16[p + k];
    for (let k = 0; k < 4; k++) out.counters[k] = tb.f64[c + k];
    out.helper = HELPER_NAMES[tb.helper[i]!] ?? "";
  }

  /** Writes an event for entry `i`; `withState` false leaves the TCP state out (-1), as an UPDATE without IPCT_PROTOINFO. */
  private emit(type: number, i: number, now: number, withState = true): void {
    const ev = this.events;
    const r = ev.reserve();
    if (r < 0) return;
    const tb = this.table;
    ev.fill(r, type, now, tb.handle(i), tb.family(i), tb.proto(i), withState ? this.tcpState(i) : -1, tb.status[i],
      secondsLeft(tb.expires(i), now), tb.mark(i), tb.i32, tb.addrAt(i), tb.u16, tb.portAt(i), tb.f64, tb.countersAt(i), tb.helper[i]);
  }
}

/** Whole seconds left before `expires` (ms), floored and never negative, as `nf_ct_expires() / HZ`. */
function secondsLeft(expires: number, now: number): number {
  const s = Math.floor((expires - now) / 1000);
  return s > 0 ? s : 0;
}

