/**
 * The pipeline: the netfilter hook order, and nothing else.
 *
 * ```
 *  bytes ─▶ defrag ─▶ parse ─▶ raw PREROUTING | raw OUTPUT        (rules; CT --notrack → UNTRACKED)
 *                         ─▶ conntrack (lookup or create; INVALID stays a state, not a verdict)
 *                         ─▶ mangle PREROUTING ─▶ nat PREROUTING*        | mangle OUTPUT ─▶ nat OUTPUT* ─▶ filter OUTPUT
 *                         ─▶ route decision (route mirror): local → mangle INPUT ─▶ filter INPUT ─▶ nat INPUT* ─▶ confirm
 *                                                           forward → mangle FORWARD ─▶ filter FORWARD
 *                         ─▶ mangle POSTROUTING ─▶ nat POSTROUTING* ─▶ confirm / abort ─▶ verdict
 *   (* nat chains see only the first packet of a connection, as Linux's nf_nat_inet_fn)
 * ```
 *
 * - defrag: fragments are held until their datagram is whole (Linux's
 *   nf_defrag at priority -400, before raw); the datagram is then tracked
 *   and filtered once and its verdict applies to every fragment.
 * - Without a ruleset (`rules` unset or no ruleset for the family) the
 *   policy is the one sluice had before the rule engine: drop INVALID,
 *   accept the rest. With one, every packet traverses the chains, as in
 *   Linux (no per-connection shortcut), and the chains decide.
 * - confirm: a new connection enters the table only when its first packet
 *   is accepted (CONFIRMED semantics); a dropped first packet leaves nothing.
 *
 * The caller sets the packet's metadata (`hook`, `inIfindex`,
 * `outIfindex`, `mark`) before `process`, and reads `mark` (which MARK and
 * CONNMARK may have changed) and `modified` after. Time: the caller passes
 * `now` (ms); `tick(now)` does the bounded housekeeping. Nothing here reads
 * a clock or allocates per packet.
 */
import { CTINFO, TRACK } from "../conntrack/constants.js";
import { RuleContext, HOOK } from "../rules/context.js";
import type { RuleEffects, Ruleset } from "../rules/ruleset.js";
import type { RouteSnapshot } from "../route/table.js";
import { resolveConntrackConfig, type ConntrackConfig } from "../conntrack/config.js";
import { Conntrack, PKT } from "../conntrack/tracker.js";
import { AF } from "../packet/constants.js";
import { DEFRAG, Defragmenter } from "../packet/defrag.js";
import { PARSE, Packet } from "../packet/packet.js";

/** Verdicts, with the kernel's values (NF_DROP, NF_ACCEPT, NF_STOLEN). */
export const VERDICT = { DROP: 0, ACCEPT: 1, STOLEN: 2 } as const;
export const VERDICT_NAMES = ["drop", "accept", "stolen"] as const;

/** Bound on fragment queues expired per tick. */
const MAX_FRAG_EXPIRIES_PER_TICK = 64;

/** Counters of the pipeline itself (the tracker keeps its own). */
export class PipelineStats {
  packets = 0;
  accepted = 0;
  dropped = 0;
  invalid = 0;
  fragments = 0;
  reassembled = 0;
  fragmentDrops = 0;
}

/** Options of a pipeline. */
export interface PipelineOptions {
  conntrack?: ConntrackConfig;
}

/** Table indexes (TABLES order in rules/extensions.ts). */
const RAW = 0, MANGLE = 1, NAT = 2, FILTER = 3;
/** Ruleset.evaluate's results (rules/ruleset.ts RV), repeated so the pipeline loads the rule engine only when given one. */
const RV = { DROP: 0, ACCEPT: 1 } as const;

/** What the pipeline needs from the rule engine: the live rulesets and the targets' effects. */
export interface PipelineRules {
  /** The ruleset for a family, or null (then: drop INVALID, accept the rest). */
  forFamily(family: 4 | 6): Ruleset | null;
  readonly effects: RuleEffects;
  /** Called after each table's verdict when tracing (null: off). */
  readonly tracer: PipelineTracer | null;
}

/** Sees the traversal of each packet (sluice trace). */
export interface PipelineTracer {
  /** A table was evaluated at `hook`: its verdict and what decided (rs.lastRule / rs.lastChain). */
  table(rs: Ruleset, table: number, hook: number, verdict: number, c: RuleContext): void;
  /** The packet's final verdict. */
  done(verdict: number, c: RuleContext): void;
}

/** One pipeline instance: its views, tracker and defragmenter are its own. */
export class Pipeline {
  readonly ct: Conntrack;
  readonly defrag: Defragmenter;
  readonly pkt = new Packet();
  readonly stats = new PipelineStats();
  /**
   * After `process` returned for a reassembled datagram: true, and the
   * defragmenter's `releasedTags[0..releasedCount)` name the fragments that
   * share this verdict.
   */
  reassembled = false;
  /** The parse status of the last tracked packet. */
  parseStatus = 0;
  /** The defragmenter's drop reason when it dropped the last packet (or discarded its queue), else -1. */
  defragDropReason = -1;

  // Per-packet metadata, set by the caller before process().
  /** HOOK.PREROUTING for arriving packets, HOOK.OUTPUT for the host's own. */
  hook: number = HOOK.PREROUTING;
  inIfindex = 0;
  /** Known for OUTPUT (the kernel chose the route); found by the route decision for forwarded packets. */
  outIfindex = 0;
  /** The skb mark in; after process(), the mark to give back. */
  mark = 0;
  /** After process(): a target rewrote the packet bytes in place. */
  modified = false;

  /** The rule engine; null: drop INVALID, accept the rest. */
  rules: PipelineRules | null = null;
  /** The namespace's routes, for the route decision (local or forward, out interface). */
  routes: RouteSnapshot | null = null;
  /** What the rules see. */
  readonly rctx = new RuleContext();

  constructor(opts: PipelineOptions = {}) {
    this.ct = new Conntrack(opts.conntrack ?? resolveConntrackConfig());
    this.defrag = new Defragmenter();
  }

  /**
   * Runs one packet (L3 bytes at `buf[off, off+len)`) and returns its verdict.
   * `tag` identifies the packet to the caller (fragments are reported back by
   * tag when their datagram completes or is discarded). STOLEN: a fragment
   * held for reassembly; its verdict comes with the datagram's.
   */
  process(buf: Uint8Array, off: number, len: number, now: number, flags: number, tag: number): number {
    this.stats.packets++;
    this.reassembled = false;
    this.defragDropReason = -1;
    const d = this.defrag.offer(buf, off, len, now, tag);
    if (d !== DEFRAG.NOT_FRAGMENT) {
      this.stats.fragments++;
      if (d === DEFRAG.HELD) return VERDICT.STOLEN;
      if (d === DEFRAG.DROP) {
        this.defragDropReason = this.defrag.dropReason;
        this.stats.fragmentDrops++;
        this.stats.dropped++;
        return VERDICT.DROP;
      }
      // COMPLETE: track the datagram once.
      this.stats.reassembled++;
      this.reassembled = true;
      buf = this.defrag.out;
      off = this.defrag.outOffset;
      len = this.defrag.outLength;
    }
    const ct = this.ct;
    let status = this.pkt.parse(buf, off, len);
    // ip_rcv_core() drops an IPv4 header with a bad checksum before any hook;
    // packets from the kernel (CSUM_UNNECESSARY) have passed it already.
    if (status !== PARSE.BAD_L3 && this.pkt.family === AF.INET && (flags & PKT.CSUM_UNNECESSARY) === 0 &&
        !this.pkt.ip4.verifyChecksum()) {
      status = PARSE.BAD_L3;
    }
    this.parseStatus = status;
    this.modified = false;
    const rs = this.rules !== null && status !== PARSE.BAD_L3 ? this.rules.forFamily(this.pkt.family === AF.INET ? 4 : 6) : null;
    if (rs !== null) return this.traverse(rs, status, now, flags);
    const ctinfo = ct.process(this.pkt, status, now, flags);
    if (ctinfo === CTINFO.INVALID || ct.track === TRACK.DROP) {
      this.stats.invalid += ctinfo === CTINFO.INVALID ? 1 : 0;
      ct.abort();
      this.stats.dropped++;
      return VERDICT.DROP;
    }
    if (!ct.confirm(now)) {
      this.stats.dropped++;
      return VERDICT.DROP;
    }
    this.stats.accepted++;
    return VERDICT.ACCEPT;
  }

  /** The whole hook order with a ruleset (see the file comment). */
  private traverse(rs: Ruleset, status: number, now: number, flags: number): number {
    const ct = this.ct;
    const c = this.rctx;
    const p = this.pkt;
    const localOut = this.hook === HOOK.OUTPUT;
    c.pkt = p;
    c.parseStatus = status;
    c.family = p.family === AF.INET ? 4 : 6;
    c.inIfindex = localOut ? 0 : this.inIfindex;
    c.outIfindex = localOut ? this.outIfindex : 0;
    c.mark = this.mark;
    c.now = now;
    c.localOut = localOut;
    c.notrack = false;
    c.helper = 0;
    c.modified = false;
    c.ct = ct;
    c.routes = this.routes;
    // Before conntrack a packet has no connection: --ctstate sees INVALID (xt_conntrack with no ct).
    c.ctinfo = CTINFO.INVALID;
    ct.entry = -1;
    ct.pending = false;

    const first = localOut ? HOOK.OUTPUT : HOOK.PREROUTING;
    if (this.run(rs, RAW, first, c) === RV.DROP) return this.dropped(false);

    if (c.notrack) {
      c.ctinfo = CTINFO.UNTRACKED;
      ct.entry = -1;
    } else {
      c.ctinfo = ct.process(p, status, now, flags);
      if (c.ctinfo === CTINFO.INVALID) this.stats.invalid++;
      // A packet that killed its connection (RST answering a SYN) still carries it through the hooks.
      if (ct.entry < 0 && ct.dying >= 0) ct.entry = ct.dying;
      if (ct.track === TRACK.DROP) return this.dropped(true);
    }
    // nat chains: only the first packet of a connection (its entry is not confirmed yet).
    const firstOfConn = ct.pending && !c.notrack;
    // CT --helper in raw applies to the connection this packet creates (Linux's template), not to an existing one.
    if (firstOfConn && c.helper !== 0) ct.table.helper[ct.entry] = c.helper;

    if (this.run(rs, MANGLE, first, c) === RV.DROP) return this.dropped(true);
    if (firstOfConn && this.run(rs, NAT, first, c) === RV.DROP) return this.dropped(true);

    if (localOut) {
      if (this.run(rs, FILTER, HOOK.OUTPUT, c) === RV.DROP) return this.dropped(true);
    } else {
      const local = this.routeDecision(c);
      const hook = local ? HOOK.INPUT : HOOK.FORWARD;
      if (this.run(rs, MANGLE, hook, c) === RV.DROP) return this.dropped(true);
      if (this.run(rs, FILTER, hook, c) === RV.DROP) return this.dropped(true);
      if (local) {
        if (firstOfConn && this.run(rs, NAT, HOOK.INPUT, c) === RV.DROP) return this.dropped(true);
        return this.accepted(now);
      }
    }
    if (this.run(rs, MANGLE, HOOK.POSTROUTING, c) === RV.DROP) return this.dropped(true);
    if (firstOfConn && this.run(rs, NAT, HOOK.POSTROUTING, c) === RV.DROP) return this.dropped(true);
    return this.accepted(now);
  }

  /** Evaluates one table at one hook (tracing when on). */
  private run(rs: Ruleset, table: number, hook: number, c: RuleContext): number {
    c.hook = hook;
    const v = rs.evaluate(table, c, this.rules!.effects);
    const tr = this.rules!.tracer;
    if (tr !== null) tr.table(rs, table, hook, v, c);
    return v;
  }

  /** The routing decision for an arriving packet: true when it is for this host; sets the out interface otherwise. */
  private routeDecision(c: RuleContext): boolean {
    const r = this.routes;
    if (r === null) return false;
    const p = this.pkt;
    const b = p.buf;
    let route: number;
    if (p.family === AF.INET) {
      const dst = (b[p.off + 16]! << 24) | (b[p.off + 17]! << 16) | (b[p.off + 18]! << 8) | b[p.off + 19]!;
      if (r.isLocal4(dst)) return true;
      route = r.lookup4(dst);
    } else {
      const o = p.off + 24;
      const w0 = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
      const w1 = (b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!;
      const w2 = (b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!;
      const w3 = (b[o + 12]! << 24) | (b[o + 13]! << 16) | (b[o + 14]! << 8) | b[o + 15]!;
      if (r.isLocal6(w0, w1, w2, w3)) return true;
      route = r.lookup6(w0, w1, w2, w3);
    }
    c.outIfindex = route >= 0 ? r.ifindex[route]! : 0;
    return false;
  }

  private dropped(tracked: boolean): number {
    if (tracked) this.ct.abort();
    this.stats.dropped++;
    this.mark = this.rctx.mark;
    this.modified = this.rctx.modified;
    this.rules?.tracer?.done(VERDICT.DROP, this.rctx);
    return VERDICT.DROP;
  }

  private accepted(now: number): number {
    const c = this.rctx;
    if (!c.notrack && !this.ct.confirm(now)) return this.dropped(false);
    this.stats.accepted++;
    this.mark = c.mark;
    this.modified = c.modified;
    this.rules?.tracer?.done(VERDICT.ACCEPT, c);
    return VERDICT.ACCEPT;
  }

  /**
   * Housekeeping between packets or batches (bounded work): expires
   * connections, and fragment queues whose time is up. `onFragmentsExpired`
   * gets the defragmenter after each expired queue, with the tags of its
   * (now dropped) fragments in `releasedTags[0..releasedCount)`.
   */
  tick(now: number, onFragmentsExpired?: (d: Defragmenter) => void): void {
    this.ct.reap(now);
    for (let k = 0; k < MAX_FRAG_EXPIRIES_PER_TICK && this.defrag.expire(now); k++) {
      this.stats.fragmentDrops += this.defrag.releasedCount;
      this.stats.dropped += this.defrag.releasedCount;
      onFragmentsExpired?.(this.defrag);
    }
  }
}
