/**
 * The pipeline: the netfilter hook order, and nothing else.
 *
 * Today (before the rule engine) the order is:
 *
 *   bytes ─▶ defrag ─▶ parse ─▶ conntrack ─▶ policy ─▶ confirm / abort ─▶ verdict
 *
 * - defrag: fragments are held until their datagram is whole (Linux's
 *   nf_defrag at priority -400, before raw); the datagram is then tracked
 *   once and its verdict applies to every fragment it was built from.
 * - policy: "drop INVALID, accept the rest" until rules/ exists; a packet the
 *   tracker says to drop (table full) is dropped.
 * - confirm: a new connection enters the table only when its first packet
 *   is accepted (CONFIRMED semantics); a dropped first packet leaves nothing.
 *
 * Time: the caller passes `now` (ms) per packet or batch; `tick(now)` does the
 * bounded housekeeping (conntrack reap, fragment expiry). Nothing here reads
 * a clock.
 */
import { CTINFO, TRACK } from "../conntrack/constants.js";
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
