/**
 * IPv4 and IPv6 reassembly in front of connection tracking, as Linux's
 * nf_defrag_ipv4 / nf_defrag_ipv6 do it at priority -400 (before raw, before
 * conntrack): the tracker then classifies each whole datagram once.
 *
 * ## How
 *
 * Everything is allocated in the constructor; `offer` and `expire` allocate
 * nothing.
 *
 * ```
 *  slab (one Uint8Array), one slot per queue:
 *  ┌──────────── HEADROOM (1024) ────────────┬──────── payload area (65536) ────────┐
 *  │            … │ L3 header of fragment 0  │ fragment data at payloadBase+offset  │
 *  └──────────────┴──────────────────────────┴──────────────────────────────────────┘
 *                 ▲ out/outOffset on COMPLETE: header + data are already contiguous
 * ```
 *
 * - Queues: a fixed table of `queues` entries in struct-of-arrays typed
 *   arrays; a chained hash index (power-of-two buckets, per-instance seed)
 *   keyed by the words of the Linux compare key; a free stack of slots.
 * - Fragments of a queue: a sorted, bounded array (offset, end, tag, run
 *   head). Data is copied once, straight to its final place in the slot; on
 *   completion only the header is patched, so a datagram is never copied a
 *   second time.
 * - Expiry: one intrusive FIFO list per family. Linux arms the queue timer
 *   once, at creation (`inet_frag_create` → `mod_timer`), and never refreshes
 *   it on later fragments (see the note in `ipv4_frags_init_net`: "RFC791 is
 *   wrong proposing to prolongate timer"), so with one timeout per family the
 *   lists stay sorted by appending: `expire(now)` pops heads.
 *
 * ## Linux behaviour mirrored (checked against the sources)
 *
 * Key (`ip_find` / `frag_v4_compare_key`): saddr, daddr, id, protocol, user.
 * Key (`fq_find` / `frag_v6_compare_key`): saddr, daddr, identification, user
 * (no next header). `user` is IP_DEFRAG_CONNTRACK_IN or _OUT plus the zone
 * (`nf_ct_defrag_user`): fragments seen at PREROUTING and at OUTPUT never
 * meet; the caller passes its own discriminator as `user`.
 *
 * Insertion is `inet_frag_queue_insert` exactly, runs included: a fragment
 * past the tail goes to the end (appended to the tail's run when adjacent,
 * an overlap when it starts before the tail ends); any other fragment is
 * compared with the runs: contained in one run → IPFRAG_DUP (fragment
 * dropped, queue kept), touching a run otherwise → IPFRAG_OVERLAP (the whole
 * queue is discarded: RFC 5722 for IPv6, and IPv4 since the 2018 change
 * "ip: discard IPv4 datagrams with overlapping segments"). A duplicate that
 * spans two runs is therefore an overlap, as in Linux.
 *
 * IPv4 (`ip_frag_queue`, `ip_frag_reasm`):
 * - last fragment (MF clear): end below the data already seen, or a second
 *   last fragment with another end → the queue is discarded;
 * - other fragments: the end is rounded down to a multiple of 8 (the tail
 *   bytes are ignored); an end beyond a known last fragment → discarded;
 * - an empty fragment (end == offset after rounding) → discarded;
 * - completion when first and last are in and `meat == len`; then
 *   `ip_frag_ecn_table` (RFC 3168 §5.3: CE is kept, Not-ECT mixed with ECT is
 *   dropped), total length ≤ 65535, header of the first fragment (options
 *   included), frag_off = DF only when the largest fragment carried DF (the
 *   `max_df_size == max_size` rule) else 0, checksum recomputed.
 *
 * IPv6 (`nf_ct_frag6_gather`, `find_prev_fhdr`, `nf_ct_frag6_queue`,
 * `nf_ct_frag6_reasm`):
 * - payload length 0 (jumbogram) or no fragment header in the chain
 *   (hop-by-hop, routing, destination options, AH are walked) → not a fragment;
 * - fragmentable end > 65535 → fragment dropped, queue kept;
 * - last-fragment conflicts and empty fragments → fragment dropped, queue
 *   kept (unlike IPv4, where they discard the queue);
 * - a non-last fragment whose length is not a multiple of 8 discards the
 *   queue;
 * - completion: same ECN table; the unfragmentable part of the first
 *   fragment is kept, the fragment header removed, the preceding next-header
 *   byte set to the fragment header's next header, payload length updated.
 *
 * Memory: `inet_frag_find` refuses every fragment, for new and existing
 * queues alike, while the bytes held exceed the high threshold
 * (ipfrag_high_thresh, 4 MiB). Since the 2018 rhashtable rework Linux no
 * longer evicts old queues to make room (`inet_frag_evictor` is gone;
 * `low_thresh` is kept only as a sysctl), so neither does sluice: when the
 * budget or the queue table is full, the new fragment is dropped.
 *
 * ## Where sluice differs on purpose
 *
 * - IPv6 atomic fragments (offset 0, M clear) are returned NOT_FRAGMENT and
 *   never touch a queue (RFC 6946 §4). `nf_ct_frag6_gather` has no such
 *   shortcut (only `ipv6_frag_rcv` does): it runs them through a queue and
 *   strips the fragment header. sluice leaves the packet unchanged.
 * - IPv6 non-last fragments not a multiple of 8 bytes, and first fragments
 *   that do not hold the whole header chain up to the upper-layer header
 *   (RFC 8200 §4.5, RFC 7112; the lengths of `ipv6frag_thdr_truncated`: TCP
 *   20, UDP 8, ICMPv6 8, others 1), are dropped. Linux's nf_defrag kills the
 *   queue (first case) and then lets the lone fragment continue unreassembled
 *   (return 0 → NF_ACCEPT) so that the end host can send a Parameter
 *   Problem; sluice classifies whole datagrams only, so it has nothing
 *   to hand a lone fragment to. A header chain cut inside an extension
 *   header's first two bytes counts as truncated here (Linux: not).
 * - IPv4 `ipfrag_max_dist` (`ip_frag_too_far`, per-peer fragment counting)
 *   is not implemented: it needs per-source state, and timeouts bound the
 *   same risk.
 * - IPv4: a fragment whose end lies beyond 65515 (the data of a 65535-byte
 *   datagram with a 20-byte header) can never fit and discards its queue at
 *   once (OVERSIZE); Linux keeps it until completion and fails there.
 * - The IPv6 key has no interface index (Linux adds `iif` for link-local and
 *   multicast destinations): sluice does not defragment per interface.
 * - Capacities Linux does not have: a fixed number of queues (TABLE_FULL),
 *   a bounded fragment count per queue (TOO_MANY_FRAGMENTS: the fragment is
 *   dropped, the queue kept, as under the memory limit), and at most 1024
 *   bytes of IPv6 unfragmentable part (HEADER_TOO_LONG, queue discarded).
 * - Bytes are counted as wire lengths, not skb truesize, so the same 4 MiB
 *   threshold holds roughly twice as much data as in Linux.
 * - Fragments are not re-emitted: the caller gets one datagram to classify
 *   and the tags of the fragments it stands for, and applies the verdict to
 *   each of them (see below: the kernel forwards the original fragments).
 *   `outMaxFragmentSize` is Linux's `frag_max_size`, for a caller that must
 *   refragment.
 * - The IPv4 header checksum of each fragment is verified (`ip_rcv_core`
 *   does so before any hook; the header of fragment 0 becomes the
 *   datagram's, and its checksum is recomputed, so a bad one must not be
 *   laundered).
 * - Expiry happens only in `expire(now)`: a queue past its deadline still
 *   takes fragments until the caller calls it (the pipeline does once per
 *   batch, before the offers).
 *
 * ## What the kernel hands to NFQUEUE
 *
 * Measured with scripts/experiments/nfqueue-fragments.py on Linux
 * 6.18.44 (iptables 1.8.9, nf_tables and legacy back ends gave identical
 * results): client → gateway → server in three namespaces, one 4000-byte
 * UDP datagram per family, fragmented by the client (MTU 1500: 3 fragments),
 * an nfnetlink_queue listener in the gateway.
 *
 * - sluice's rules (raw PREROUTING `CT --notrack`, then `NFQUEUE`): the
 *   listener gets the **individual fragments** (IPv4 1500/1500/1068 bytes,
 *   IPv6 1496/1496/1160 with the fragment header), not datagrams. Reason:
 *   `xt_ct_tg_check` returns early for `--notrack` without calling
 *   `nf_ct_netns_get`, so neither conntrack nor nf_defrag_ipv4/ipv6 (which
 *   register per namespace, refcounted: `nf_defrag_ipv4_enable`) is switched
 *   on. The same with `NFQUEUE` alone in raw, and in filter FORWARD (with or
 *   without `CT --notrack`). Accepted fragments leave unchanged and the
 *   server reassembles them. Hence this module.
 * - As soon as anything in the namespace uses conntrack (the test adds
 *   `-m conntrack --ctstate INVALID -j DROP` to filter FORWARD; NAT, `CT`
 *   without `--notrack` or nft `ct` expressions do the same), nf_defrag runs
 *   at -400, before raw: the raw PREROUTING (or FORWARD) listener gets one
 *   reassembled datagram (IPv4 4028 bytes, offset 0, MF and DF clear; IPv6
 *   4048 bytes, fragment header gone), even though `CT --notrack` follows.
 *   sluice must then expect datagrams larger than the MTU (up to 64 KiB).
 * - A reassembled datagram accepted by the listener (with or without a
 *   replacement payload, i.e. through `nfqnl_mangle` too) is refragmented
 *   on output at the sender's fragment size (`frag_max_size`), not at the
 *   outgoing MTU: with a 1280-byte client link and a 1500-byte server link,
 *   the server receives 1276/1276/1276/260 (IPv4) and 1280/1280/1280/360
 *   (IPv6), and the UDP datagram intact.
 * - Locally generated datagrams (raw OUTPUT, the gateway sends): the listener
 *   gets the whole datagram (4028 / 4048 bytes), conntrack or not;
 *   fragmentation happens later, in ip_finish_output / ip6_finish_output.
 * - Holding the verdicts of a datagram's fragments until it is complete and
 *   then accepting each by packet id works (the server gets the original
 *   fragments). Returning the reassembled datagram as the payload of the
 *   first fragment's verdict and dropping the others works for IPv4 (DF
 *   clear: the gateway fragments it again at the outgoing MTU) but not for
 *   IPv6: the gateway drops it and sends ICMPv6 Packet Too Big (MTU 1500) to
 *   the client, since a router does not fragment IPv6 and the rewritten skb
 *   carries no `frag_max_size`. So on the NFQUEUE path sluice holds fragment
 *   verdicts (`tag` = packet id) and applies the datagram's verdict to every
 *   released tag; a NAT rewrite of a fragmented datagram touches the first
 *   fragment's L4 header (its checksum covers the whole datagram, and an
 *   incremental update stays correct).
 */

import { checksum } from "./checksum.js";

/** Results of {@link Defragmenter.offer}. */
export const DEFRAG = {
  /** Not a fragment (or an IPv6 atomic fragment): process the packet as it is. */
  NOT_FRAGMENT: 0,
  /** Stored in a queue; nothing to process now. */
  HELD: 1,
  /** A datagram is complete in `out[outOffset, outOffset + outLength)`. */
  COMPLETE: 2,
  /** Dropped; `dropReason` says why, `releasedCount` > 0 when a queue went with it. */
  DROP: 3,
} as const;

/** Names of {@link DEFRAG} values, for logs. */
export const DEFRAG_NAMES = ["not-fragment", "held", "complete", "drop"] as const;

/** Why a fragment was dropped or a queue released (`dropReason`, `releasedReason`). */
export const DEFRAG_DROP = {
  NONE: 0,
  /** Header does not parse (`ip_rcv_core` checks; IPv6 fragment header cut short). */
  MALFORMED: 1,
  /** IPv4 header checksum of a fragment is wrong (`ip_rcv_core`). */
  BAD_CHECKSUM: 2,
  /** Inside data already held (IPFRAG_DUP): fragment dropped, queue kept. */
  DUPLICATE: 3,
  /** Partial overlap (IPFRAG_OVERLAP): queue discarded. */
  OVERLAP: 4,
  /** End conflicts with the last fragment (IPv4: queue discarded; IPv6: fragment only). */
  LAST_CONFLICT: 5,
  /** No data (end == offset) (IPv4: queue discarded; IPv6: fragment only). */
  ZERO_LENGTH: 6,
  /** IPv6 non-last fragment length not a multiple of 8: queue discarded. */
  NOT_MULTIPLE_OF_8: 7,
  /** Datagram would exceed 65535 bytes (IPv4 total, IPv6 payload). */
  OVERSIZE: 8,
  /** IPv6 first fragment without the whole header chain (RFC 7112). */
  INCOMPLETE_CHAIN: 9,
  /** Not-ECT mixed with ECT/CE among fragments (`ip_frag_ecn_table`): queue discarded. */
  BAD_ECN: 10,
  /** Bytes held exceed the high threshold (`inet_frag_find`). */
  NO_MEMORY: 11,
  /** Every queue is in use. */
  TABLE_FULL: 12,
  /** The queue already holds `maxFragmentsPerQueue` fragments: fragment dropped, queue kept. */
  TOO_MANY_FRAGMENTS: 13,
  /** IPv6 unfragmentable part longer than the 1024-byte headroom: queue discarded. */
  HEADER_TOO_LONG: 14,
  /** Queue timed out (`releasedReason` from {@link Defragmenter.expire} only). */
  TIMEOUT: 15,
} as const;

/** Names of {@link DEFRAG_DROP} values, for logs and metrics. */
export const DEFRAG_DROP_NAMES = [
  "none",
  "malformed",
  "bad-checksum",
  "duplicate",
  "overlap",
  "last-conflict",
  "zero-length",
  "not-multiple-of-8",
  "oversize",
  "incomplete-chain",
  "bad-ecn",
  "no-memory",
  "table-full",
  "too-many-fragments",
  "header-too-long",
  "timeout",
] as const;

/** Construction settings; every capacity is fixed for the object's life. */
export interface DefragOptions {
  /** Reassembly queues (each owns a 66560-byte slot). Default 64. */
  queues?: number;
  /** Fragments one queue may hold. Default 128 (a 64 KiB datagram at MTU 576 needs 117). */
  maxFragmentsPerQueue?: number;
  /** IPv4 queue lifetime from its first fragment, ms (ipfrag_time). Default 30000. */
  ipv4TimeoutMs?: number;
  /** IPv6 queue lifetime, ms (nf_conntrack_frag6_timeout). Default 60000. */
  ipv6TimeoutMs?: number;
  /** Fragments are refused while more bytes than this are held (ipfrag_high_thresh). Default 4 MiB. */
  highThresholdBytes?: number;
  /** Hash seed; random per instance by default. */
  seed?: number;
}

/** Bytes before the payload area of a slot: the IPv4 header (≤ 60) or the IPv6 unfragmentable part. */
const HEADROOM = 1024;
/** Payload area: the largest fragmentable end is 65535 (IPv6 `IPV6_MAXPLEN`). */
const PAYLOAD_AREA = 65536;
const SLOT = HEADROOM + PAYLOAD_AREA;
/** Largest IPv4 fragment end that can still fit a 65535-byte datagram (20-byte header). */
const V4_MAX_END = 65535 - 20;

/** Key layout (Uint32 words): [family | proto << 8, user, id, src0..3, dst0..3]. */
const KEY_WORDS = 11;

/** Queue flags, as INET_FRAG_FIRST_IN / INET_FRAG_LAST_IN. */
const FIRST_IN = 1;
const LAST_IN = 2;

/** Expiry classes. */
const CLASS_V4 = 0;
const CLASS_V6 = 1;

/**
 * `ip_frag_ecn_table` (net/ipv4/inet_fragment.c), indexed by the OR of
 * `1 << (tos & 3)` over all fragments: bit 0 Not-ECT, 1 ECT(1), 2 ECT(0),
 * 3 CE. 0xff = drop; otherwise ORed into the reassembled TOS / traffic class.
 */
// prettier-ignore
const ECN_TABLE = new Uint8Array([
  /* 0: -             */ 0,    /* 1: NOT           */ 0,
  /* 2: E1            */ 0,    /* 3: NOT|E1        */ 0xff,
  /* 4: E0            */ 0,    /* 5: NOT|E0        */ 0xff,
  /* 6: E0|E1         */ 0,    /* 7: NOT|E0|E1     */ 0xff,
  /* 8: CE            */ 0,    /* 9: NOT|CE        */ 0xff,
  /* 10: CE|E1        */ 3,    /* 11: NOT|CE|E1    */ 0xff,
  /* 12: CE|E0        */ 3,    /* 13: NOT|CE|E0    */ 0xff,
  /* 14: CE|E0|E1     */ 3,    /* 15: NOT|CE|E0|E1 */ 0xff,
]);

/** Insert classification results (IPFRAG_DUP / IPFRAG_OVERLAP; ≥ 0 is the insert index). */
const INS_DUP = -1;
const INS_OVERLAP = -2;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p <<= 1;
  return p;
}

/**
 * Byte copy between two arrays. A plain loop: `TypedArray#set` copies a range
 * only through a `subarray` view, an allocation per fragment.
 */
function copyBytes(dst: Uint8Array, d: number, src: Uint8Array, s: number, n: number): void {
  let i = 0;
  for (; i + 3 < n; i += 4) {
    dst[d + i] = src[s + i];
    dst[d + i + 1] = src[s + i + 1];
    dst[d + i + 2] = src[s + i + 2];
    dst[d + i + 3] = src[s + i + 3];
  }
  for (; i < n; i++) dst[d + i] = src[s + i];
}

/**
 * Reassembles IPv4 and IPv6 fragments with bounded memory and time. One
 * instance per pipeline; not re-entrant. Results are left in fields
 * (`out*`, `dropReason`, `released*`), valid until the next `offer` or
 * `expire` call.
 */
export class Defragmenter {
  /** The slab holding every queue; `out` of a COMPLETE result. */
  readonly out: Uint8Array;
  /** Offset of the reassembled L3 datagram in `out` (COMPLETE only). */
  outOffset = 0;
  /** Length of the reassembled datagram (COMPLETE only; 0 otherwise). */
  outLength = 0;
  /**
   * Largest fragment seen, as Linux's `frag_max_size`: IPv4 the largest
   * fragment's header + data, IPv6 40 + its largest payload length. A
   * refragmenter needs it to keep the sender's fragment size.
   */
  outMaxFragmentSize = 0;
  /** Why the last `offer` returned DROP (a {@link DEFRAG_DROP} value). */
  dropReason = 0;
  /**
   * Tags released by the last `offer` or `expire`: on COMPLETE every
   * fragment of the datagram in offset order (this one included); on a
   * queue discard (DROP or expiry) the fragments held until then (the
   * offered fragment is never among them: its fate is the DROP itself).
   */
  readonly releasedTags: Int32Array;
  /** Number of valid entries in `releasedTags`. */
  releasedCount = 0;
  /** Why the tags were released: NONE for COMPLETE, else a {@link DEFRAG_DROP} value. */
  releasedReason = 0;

  // Counters (monotonic). `dropsByReason` has one slot per DEFRAG_DROP value.
  /** Packets identified as fragments (atomic fragments excluded). */
  fragments = 0;
  /** Datagrams completed. */
  reassembled = 0;
  /** IPv6 atomic fragments passed through. */
  atomicFragments = 0;
  /** Fragments dropped as duplicates. */
  duplicates = 0;
  /** Queues discarded for an overlap. */
  overlaps = 0;
  /** Queues expired. */
  timeouts = 0;
  /** Fragments or queues dropped for exceeding 65535 bytes. */
  oversize = 0;
  /** Fragments dropped for a capacity: byte budget, table, fragment list, headroom. */
  noMemory = 0;
  /** Fragments dropped as malformed: header, checksum, conflicts, empty, alignment, chain, ECN. */
  malformed = 0;
  /** Drops per {@link DEFRAG_DROP} value (TIMEOUT counts expired queues). */
  readonly dropsByReason = new Float64Array(DEFRAG_DROP_NAMES.length);

  /** Bytes held by all queues (wire lengths of the fragments). */
  heldBytes = 0;
  /** Queues in use. */
  queuesInUse = 0;

  private readonly nQueues: number;
  private readonly maxFrags: number;
  private readonly timeoutV4: number;
  private readonly timeoutV6: number;
  private readonly highThresh: number;
  private readonly seed: number;

  // Hash index.
  private readonly bucketMask: number;
  private readonly buckets: Int32Array;
  private readonly qHashNext: Int32Array;
  private readonly qHash: Int32Array;
  private readonly keys: Uint32Array;
  private readonly scratchKey = new Uint32Array(KEY_WORDS);

  // Free slots (a stack) and expiry lists (one per class).
  private readonly freeStack: Int32Array;
  private freeTop = 0;
  private readonly listHead = new Int32Array([-1, -1]);
  private readonly listTail = new Int32Array([-1, -1]);
  private readonly qPrev: Int32Array;
  private readonly qNext: Int32Array;
  private readonly qDeadline: Float64Array;

  // Per-queue reassembly state (struct inet_frag_queue + ipq / frag_queue).
  private readonly qClass: Uint8Array;
  private readonly qFlags: Uint8Array;
  private readonly qEcn: Uint8Array;
  private readonly qLen: Int32Array;
  private readonly qMeat: Int32Array;
  private readonly qMaxSize: Int32Array;
  private readonly qMaxDfSize: Int32Array;
  private readonly qHdrLen: Int32Array;
  private readonly qNhOff: Int32Array;
  private readonly qFragNext: Uint8Array;
  private readonly qBytes: Int32Array;
  private readonly qCount: Int32Array;

  // Fragments of queue q at [q * maxFrags, q * maxFrags + qCount[q]), sorted by offset.
  private readonly fOff: Int32Array;
  private readonly fEnd: Int32Array;
  private readonly fTag: Int32Array;
  /** 1 where a fragment starts a run (a node of Linux's rb-tree), 0 when appended to the previous one. */
  private readonly fRunHead: Uint8Array;

  /** Sets every capacity; throws RangeError on a bad option (configuration time only). */
  constructor(opts: DefragOptions = {}) {
    const queues = opts.queues ?? 64;
    const maxFrags = opts.maxFragmentsPerQueue ?? 128;
    const t4 = opts.ipv4TimeoutMs ?? 30_000;
    const t6 = opts.ipv6TimeoutMs ?? 60_000;
    const high = opts.highThresholdBytes ?? 4 * 1024 * 1024;
    if (!Number.isInteger(queues) || queues < 1 || queues > 65536) throw new RangeError("defrag: queues must be an integer in 1..65536");
    if (!Number.isInteger(maxFrags) || maxFrags < 1 || maxFrags > 8192) throw new RangeError("defrag: maxFragmentsPerQueue must be an integer in 1..8192");
    if (!(t4 > 0) || !(t6 > 0)) throw new RangeError("defrag: timeouts must be positive");
    if (!(high >= 0)) throw new RangeError("defrag: highThresholdBytes must be >= 0");
    this.nQueues = queues;
    this.maxFrags = maxFrags;
    this.timeoutV4 = t4;
    this.timeoutV6 = t6;
    this.highThresh = high;
    this.seed = (opts.seed ?? Math.floor(Math.random() * 0x100000000)) >>> 0;

    this.out = new Uint8Array(queues * SLOT);
    this.releasedTags = new Int32Array(maxFrags);

    const nb = nextPow2(queues * 2);
    this.bucketMask = nb - 1;
    this.buckets = new Int32Array(nb).fill(-1);
    this.qHashNext = new Int32Array(queues).fill(-1);
    this.qHash = new Int32Array(queues);
    this.keys = new Uint32Array(queues * KEY_WORDS);

    this.freeStack = new Int32Array(queues);
    for (let i = 0; i < queues; i++) this.freeStack[i] = queues - 1 - i;
    this.freeTop = queues;
    this.qPrev = new Int32Array(queues).fill(-1);
    this.qNext = new Int32Array(queues).fill(-1);
    this.qDeadline = new Float64Array(queues);

    this.qClass = new Uint8Array(queues);
    this.qFlags = new Uint8Array(queues);
    this.qEcn = new Uint8Array(queues);
    this.qLen = new Int32Array(queues);
    this.qMeat = new Int32Array(queues);
    this.qMaxSize = new Int32Array(queues);
    this.qMaxDfSize = new Int32Array(queues);
    this.qHdrLen = new Int32Array(queues);
    this.qNhOff = new Int32Array(queues);
    this.qFragNext = new Uint8Array(queues);
    this.qBytes = new Int32Array(queues);
    this.qCount = new Int32Array(queues);

    this.fOff = new Int32Array(queues * maxFrags);
    this.fEnd = new Int32Array(queues * maxFrags);
    this.fTag = new Int32Array(queues * maxFrags);
    this.fRunHead = new Uint8Array(queues * maxFrags);
  }

  /**
   * Offers one L3 packet (`buf[off, off + len)`, starting at the IP header).
   * `nowMs` is the caller's clock (non-decreasing); `tag` identifies the
   * packet to the caller (released later in `releasedTags`); `user` keeps
   * apart fragments that must never be joined (Linux's defrag `user`: hook
   * direction and conntrack zone). Never throws.
   */
  offer(buf: Uint8Array, off: number, len: number, nowMs: number, tag: number, user = 0): number {
    this.outLength = 0;
    this.dropReason = 0;
    this.releasedCount = 0;
    this.releasedReason = 0;
    if (!(off >= 0) || !(len > 0) || off + len > buf.length) return this.dropFragment(DEFRAG_DROP.MALFORMED);
    const version = buf[off] >> 4;
    if (version === 4) return this.offerV4(buf, off, len, nowMs, tag, user);
    if (version === 6) return this.offerV6(buf, off, len, nowMs, tag, user);
    return this.dropFragment(DEFRAG_DROP.MALFORMED);
  }

  /**
   * Releases at most one queue whose lifetime ended at or before `nowMs`
   * (`ip_expire`, `nf_ct_frag6_expire`), filling `releasedTags` /
   * `releasedCount` with its fragments and `releasedReason` with TIMEOUT.
   * Returns false when none is due. Call it in a loop:
   * `while (d.expire(now)) dropAll(d.releasedTags, d.releasedCount)`.
   */
  expire(nowMs: number): boolean {
    this.outLength = 0;
    this.releasedCount = 0;
    this.releasedReason = 0;
    const h4 = this.listHead[CLASS_V4];
    const h6 = this.listHead[CLASS_V6];
    let q = -1;
    if (h4 >= 0 && this.qDeadline[h4] <= nowMs) q = h4;
    if (h6 >= 0 && this.qDeadline[h6] <= nowMs && (q < 0 || this.qDeadline[h6] < this.qDeadline[q])) q = h6;
    if (q < 0) return false;
    this.timeouts++;
    this.dropsByReason[DEFRAG_DROP.TIMEOUT]++;
    this.releaseQueue(q, DEFRAG_DROP.TIMEOUT, -1);
    return true;
  }

  /** Number of reassembly queues (the table's fixed capacity). */
  get capacity(): number {
    return this.nQueues;
  }

  /** The earliest queue deadline (ms), or Infinity when no queue is held: when `expire` next has work. */
  nextDeadline(): number {
    const h4 = this.listHead[CLASS_V4];
    const h6 = this.listHead[CLASS_V6];
    const d4 = h4 >= 0 ? this.qDeadline[h4] : Infinity;
    const d6 = h6 >= 0 ? this.qDeadline[h6] : Infinity;
    return d4 < d6 ? d4 : d6;
  }

  // ---------------------------------------------------------------- IPv4

  /*
   * RFC 791 §3.1: byte 0 version/IHL, 2-3 total length, 4-5 identification,
   * 6-7 flags (reserved, DF 0x4000, MF 0x2000) and offset (0x1fff, 8-byte
   * units), 9 protocol, 10-11 header checksum, 12-15 source, 16-19 destination.
   */
  private offerV4(buf: Uint8Array, off: number, len: number, now: number, tag: number, user: number): number {
    // ip_rcv_core(): ihl >= 5, tot_len >= ihl * 4, tot_len <= skb->len.
    if (len < 20) return this.dropFragment(DEFRAG_DROP.MALFORMED);
    const ihl = (buf[off] & 0x0f) << 2;
    const tot = (buf[off + 2] << 8) | buf[off + 3];
    if (ihl < 20 || tot < ihl || tot > len) return this.dropFragment(DEFRAG_DROP.MALFORMED);
    const fo = (buf[off + 6] << 8) | buf[off + 7];
    // ip_is_fragment(): MF or a non-zero offset.
    if ((fo & 0x3fff) === 0) return DEFRAG.NOT_FRAGMENT;
    this.fragments++;
    if (checksum(buf, off, ihl) !== 0) return this.dropFragment(DEFRAG_DROP.BAD_CHECKSUM);
    // inet_frag_find(): no new work while over the high threshold.
    if (this.heldBytes > this.highThresh) return this.dropFragment(DEFRAG_DROP.NO_MEMORY);

    const k = this.scratchKey;
    k[0] = 4 | (buf[off + 9] << 8);
    k[1] = user >>> 0;
    k[2] = (buf[off + 4] << 8) | buf[off + 5];
    k[3] = ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
    k[4] = ((buf[off + 16] << 24) | (buf[off + 17] << 16) | (buf[off + 18] << 8) | buf[off + 19]) >>> 0;
    k[5] = k[6] = k[7] = k[8] = k[9] = k[10] = 0;
    const q = this.findOrCreate(now, CLASS_V4);
    if (q < 0) return this.dropFragment(DEFRAG_DROP.TABLE_FULL);

    // ip_frag_queue()
    const offset = (fo & 0x1fff) << 3;
    let end = offset + tot - ihl;
    if ((fo & 0x2000) === 0) {
      // The final fragment: nothing may lie beyond it, and there is only one end.
      if (end < this.qLen[q] || ((this.qFlags[q] & LAST_IN) !== 0 && end !== this.qLen[q])) {
        return this.discardQueue(q, DEFRAG_DROP.LAST_CONFLICT);
      }
      this.qFlags[q] |= LAST_IN;
      this.qLen[q] = end;
    } else {
      // Non-final fragments are trimmed to a multiple of 8 (`end &= ~7`).
      end &= ~7;
      if (end > this.qLen[q]) {
        if ((this.qFlags[q] & LAST_IN) !== 0) return this.discardQueue(q, DEFRAG_DROP.LAST_CONFLICT);
        this.qLen[q] = end;
      }
    }
    if (end === offset) return this.discardQueue(q, DEFRAG_DROP.ZERO_LENGTH);
    if (end > V4_MAX_END) return this.discardQueue(q, DEFRAG_DROP.OVERSIZE);

    const at = this.classify(q, offset, end);
    if (at === INS_DUP) return this.dropFragment(DEFRAG_DROP.DUPLICATE);
    if (at === INS_OVERLAP) return this.discardQueue(q, DEFRAG_DROP.OVERLAP);
    if (this.qCount[q] >= this.maxFrags) return this.dropFragment(DEFRAG_DROP.TOO_MANY_FRAGMENTS);
    this.insertAt(q, at, offset, end, tag);

    const base = q * SLOT + HEADROOM;
    copyBytes(this.out, base + offset, buf, off + ihl, end - offset);
    if (offset === 0) {
      // The datagram's header (options included) is fragment 0's.
      copyBytes(this.out, base - ihl, buf, off, ihl);
      this.qHdrLen[q] = ihl;
      this.qFlags[q] |= FIRST_IN;
    }
    this.qMeat[q] += end - offset;
    this.qEcn[q] |= 1 << (buf[off + 1] & 3);
    this.qBytes[q] += tot;
    this.heldBytes += tot;
    const fragsize = end - offset + ihl;
    if (fragsize > this.qMaxSize[q]) this.qMaxSize[q] = fragsize;
    if ((fo & 0x4000) !== 0 && fragsize > this.qMaxDfSize[q]) this.qMaxDfSize[q] = fragsize;

    if (this.qFlags[q] === (FIRST_IN | LAST_IN) && this.qMeat[q] === this.qLen[q]) return this.reasmV4(q, at);
    return DEFRAG.HELD;
  }

  /** ip_frag_reasm(): header of fragment 0, new total length, DF rule, ECN, checksum. */
  private reasmV4(q: number, lastAt: number): number {
    const ecn = ECN_TABLE[this.qEcn[q]];
    if (ecn === 0xff) return this.discardQueueExcept(q, DEFRAG_DROP.BAD_ECN, lastAt);
    const ihl = this.qHdrLen[q];
    const total = ihl + this.qLen[q];
    if (total > 65535) return this.discardQueueExcept(q, DEFRAG_DROP.OVERSIZE, lastAt);
    const b = this.out;
    const h = q * SLOT + HEADROOM - ihl;
    b[h + 2] = total >>> 8;
    b[h + 3] = total & 0xff;
    // DF only when the largest fragment had it (IPSKB_FRAG_PMTU), so that a
    // refragmenter keeps to the sender's size; MF and the offset are cleared.
    b[h + 6] = this.qMaxDfSize[q] === this.qMaxSize[q] ? 0x40 : 0;
    b[h + 7] = 0;
    b[h + 1] |= ecn;
    b[h + 10] = 0;
    b[h + 11] = 0;
    const c = checksum(b, h, ihl);
    b[h + 10] = c >>> 8;
    b[h + 11] = c & 0xff;
    this.outMaxFragmentSize = this.qMaxSize[q] > this.qMaxDfSize[q] ? this.qMaxSize[q] : this.qMaxDfSize[q];
    return this.complete(q, h, total);
  }

  // ---------------------------------------------------------------- IPv6

  /*
   * RFC 8200 §3: bytes 0-3 version/traffic class/flow label, 4-5 payload
   * length, 6 next header, 8-23 source, 24-39 destination. §4.5 fragment
   * header (8 bytes): next header, reserved, offset (13 bits, 8-byte units)
   * | res | M, identification (32 bits).
   */
  private offerV6(buf: Uint8Array, off: number, len: number, now: number, tag: number, user: number): number {
    if (len < 40) return this.dropFragment(DEFRAG_DROP.MALFORMED);
    const plen = (buf[off + 4] << 8) | buf[off + 5];
    // nf_ct_frag6_gather(): "Jumbo payload inhibits frag. header".
    if (plen === 0) return DEFRAG.NOT_FRAGMENT;
    if (40 + plen > len) return this.dropFragment(DEFRAG_DROP.MALFORMED);
    const pktEnd = off + 40 + plen;

    // find_prev_fhdr(): walk extension headers to the fragment header.
    let nh = buf[off + 6];
    let prevNh = off + 6;
    let p = off + 40;
    while (nh !== 44) {
      // Not an extension header (ipv6_ext_hdr), or "no next header": not a fragment.
      if (nh !== 0 && nh !== 43 && nh !== 60 && nh !== 51) return DEFRAG.NOT_FRAGMENT;
      if (pktEnd - p < 2) return DEFRAG.NOT_FRAGMENT;
      const hlen = nh === 51 ? (buf[p + 1] + 2) << 2 : (buf[p + 1] + 1) << 3;
      prevNh = p;
      nh = buf[p];
      p += hlen;
    }
    if (p > pktEnd) return DEFRAG.NOT_FRAGMENT;
    const fh = p;
    // pskb_may_pull(fhoff + sizeof(struct frag_hdr)) failing → NF_DROP.
    if (fh + 8 > pktEnd) return this.dropFragment(DEFRAG_DROP.MALFORMED);
    const fo = (buf[fh + 2] << 8) | buf[fh + 3];
    const offset = fo & 0xfff8;
    const more = (fo & 1) !== 0;
    // RFC 6946 §4: an atomic fragment is processed in isolation, as the packet it is.
    if (offset === 0 && !more) {
      this.atomicFragments++;
      return DEFRAG.NOT_FRAGMENT;
    }
    this.fragments++;
    if (offset === 0 && this.chainTruncated(buf, fh, pktEnd)) return this.dropFragment(DEFRAG_DROP.INCOMPLETE_CHAIN);
    if (this.heldBytes > this.highThresh) return this.dropFragment(DEFRAG_DROP.NO_MEMORY);

    const k = this.scratchKey;
    k[0] = 6;
    k[1] = user >>> 0;
    k[2] = ((buf[fh + 4] << 24) | (buf[fh + 5] << 16) | (buf[fh + 6] << 8) | buf[fh + 7]) >>> 0;
    for (let i = 0; i < 8; i++) {
      const a = off + 8 + (i << 2);
      k[3 + i] = ((buf[a] << 24) | (buf[a + 1] << 16) | (buf[a + 2] << 8) | buf[a + 3]) >>> 0;
    }
    const q = this.findOrCreate(now, CLASS_V6);
    if (q < 0) return this.dropFragment(DEFRAG_DROP.TABLE_FULL);

    // nf_ct_frag6_queue()
    const dataOff = fh + 8;
    const end = offset + (pktEnd - dataOff);
    if (end > 65535) return this.dropFragment(DEFRAG_DROP.OVERSIZE);
    if (!more) {
      if (end < this.qLen[q] || ((this.qFlags[q] & LAST_IN) !== 0 && end !== this.qLen[q])) {
        return this.dropFragment(DEFRAG_DROP.LAST_CONFLICT);
      }
      this.qFlags[q] |= LAST_IN;
      this.qLen[q] = end;
    } else {
      // "Check if the fragment is rounded to 8 bytes. Required by the RFC."
      if ((end & 7) !== 0) return this.discardQueue(q, DEFRAG_DROP.NOT_MULTIPLE_OF_8);
      if (end > this.qLen[q]) {
        if ((this.qFlags[q] & LAST_IN) !== 0) return this.dropFragment(DEFRAG_DROP.LAST_CONFLICT);
        this.qLen[q] = end;
      }
    }
    if (end === offset) return this.dropFragment(DEFRAG_DROP.ZERO_LENGTH);

    const at = this.classify(q, offset, end);
    if (at === INS_DUP) return this.dropFragment(DEFRAG_DROP.DUPLICATE);
    if (at === INS_OVERLAP) return this.discardQueue(q, DEFRAG_DROP.OVERLAP);
    const unfrag = fh - off;
    if (offset === 0 && unfrag > HEADROOM) return this.discardQueue(q, DEFRAG_DROP.HEADER_TOO_LONG);
    if (this.qCount[q] >= this.maxFrags) return this.dropFragment(DEFRAG_DROP.TOO_MANY_FRAGMENTS);
    this.insertAt(q, at, offset, end, tag);

    const base = q * SLOT + HEADROOM;
    copyBytes(this.out, base + offset, buf, dataOff, end - offset);
    if (offset === 0) {
      // The unfragmentable part and the fragment header's next header come from fragment 0.
      copyBytes(this.out, base - unfrag, buf, off, unfrag);
      this.qHdrLen[q] = unfrag;
      this.qNhOff[q] = prevNh - off;
      this.qFragNext[q] = buf[fh];
      this.qFlags[q] |= FIRST_IN;
    }
    this.qMeat[q] += end - offset;
    this.qEcn[q] |= 1 << ((buf[off + 1] >> 4) & 3);
    this.qBytes[q] += 40 + plen;
    this.heldBytes += 40 + plen;
    if (plen > this.qMaxSize[q]) this.qMaxSize[q] = plen;

    if (this.qFlags[q] === (FIRST_IN | LAST_IN) && this.qMeat[q] === this.qLen[q]) return this.reasmV6(q, at);
    return DEFRAG.HELD;
  }

  /**
   * ipv6frag_thdr_truncated(): from the fragment header of a first fragment,
   * skip the extension headers (as ipv6_skip_exthdr) and require the
   * upper-layer header's minimum within the packet.
   */
  private chainTruncated(buf: Uint8Array, fh: number, pktEnd: number): boolean {
    let nh = 44;
    let p = fh;
    for (;;) {
      if (nh === 59) return false; // no next header: nothing to hold
      if (nh !== 0 && nh !== 43 && nh !== 44 && nh !== 51 && nh !== 60) break;
      if (p + 2 > pktEnd) return true; // Linux: -1 → "not truncated"; sluice: cut short
      let hlen: number;
      if (nh === 44) {
        if (p + 4 > pktEnd) return true;
        // A later fragment header with a non-zero offset: the chain ends there.
        if ((((buf[p + 2] << 8) | buf[p + 3]) & 0xfff8) !== 0) return false;
        hlen = 8;
      } else if (nh === 51) {
        hlen = (buf[p + 1] + 2) << 2;
      } else {
        hlen = (buf[p + 1] + 1) << 3;
      }
      nh = buf[p];
      p += hlen;
    }
    const need = nh === 6 ? 20 : nh === 17 ? 8 : nh === 58 ? 8 : 1;
    return p + need > pktEnd;
  }

  /** nf_ct_frag6_reasm(): drop the fragment header, relink the chain, new payload length, ECN. */
  private reasmV6(q: number, lastAt: number): number {
    const ecn = ECN_TABLE[this.qEcn[q]];
    if (ecn === 0xff) return this.discardQueueExcept(q, DEFRAG_DROP.BAD_ECN, lastAt);
    const unfrag = this.qHdrLen[q];
    const payloadLen = unfrag - 40 + this.qLen[q];
    if (payloadLen > 65535) return this.discardQueueExcept(q, DEFRAG_DROP.OVERSIZE, lastAt);
    const b = this.out;
    const h = q * SLOT + HEADROOM - unfrag;
    b[h + this.qNhOff[q]] = this.qFragNext[q];
    b[h + 4] = payloadLen >>> 8;
    b[h + 5] = payloadLen & 0xff;
    // ipv6_change_dsfield(hdr, 0xff, ecn): the ECN bits are the low two of
    // the traffic class, bits 4-5 of byte 1.
    b[h + 1] |= ecn << 4;
    this.outMaxFragmentSize = 40 + this.qMaxSize[q];
    return this.complete(q, h, unfrag + this.qLen[q]);
  }

  // ---------------------------------------------------------------- queues

  /**
   * inet_frag_queue_insert() on a sorted array: returns the index to insert
   * at, INS_DUP or INS_OVERLAP. The tail (last element) always has the
   * largest end.
   */
  private classify(q: number, offset: number, end: number): number {
    const n = this.qCount[q];
    if (n === 0) return 0;
    const base = q * this.maxFrags;
    const tailEnd = this.fEnd[base + n - 1];
    if (tailEnd < end) {
      // The common case: the fragment goes to the end.
      return offset < tailEnd ? INS_OVERLAP : n;
    }
    // Compare with each run [start of its head, end of its last fragment).
    let i = 0;
    while (i < n) {
      const runStart = this.fOff[base + i];
      let j = i + 1;
      while (j < n && this.fRunHead[base + j] === 0) j++;
      const runEnd = this.fEnd[base + j - 1];
      if (end <= runStart) return i;
      if (offset < runEnd) {
        return offset >= runStart && end <= runEnd ? INS_DUP : INS_OVERLAP;
      }
      i = j;
    }
    return n; // unreachable: end <= tailEnd means a run ends at or after end
  }

  /** Inserts at `at`; appended right at the tail's end it joins the tail's run (fragrun_append_to_last). */
  private insertAt(q: number, at: number, offset: number, end: number, tag: number): void {
    const base = q * this.maxFrags;
    const n = this.qCount[q];
    for (let i = n; i > at; i--) {
      this.fOff[base + i] = this.fOff[base + i - 1];
      this.fEnd[base + i] = this.fEnd[base + i - 1];
      this.fTag[base + i] = this.fTag[base + i - 1];
      this.fRunHead[base + i] = this.fRunHead[base + i - 1];
    }
    this.fOff[base + at] = offset;
    this.fEnd[base + at] = end;
    this.fTag[base + at] = tag;
    this.fRunHead[base + at] = at === n && n > 0 && this.fEnd[base + n - 1] === offset ? 0 : 1;
    this.qCount[q] = n + 1;
  }

  private hashKey(): number {
    const k = this.scratchKey;
    let h = this.seed ^ 0x9e3779b9;
    for (let i = 0; i < KEY_WORDS; i++) {
      h = Math.imul(h ^ k[i], 0x85ebca6b);
      h ^= h >>> 13;
    }
    h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /** Finds the queue for `scratchKey`, or takes a free slot for it (deadline now + timeout); -1 when full. */
  private findOrCreate(now: number, cls: number): number {
    const k = this.scratchKey;
    const h = this.hashKey();
    const bucket = h & this.bucketMask;
    for (let q = this.buckets[bucket]; q >= 0; q = this.qHashNext[q]) {
      if (this.qHash[q] !== (h | 0)) continue;
      const kb = q * KEY_WORDS;
      let i = 0;
      while (i < KEY_WORDS && this.keys[kb + i] === k[i]) i++;
      if (i === KEY_WORDS) return q;
    }
    if (this.freeTop === 0) return -1;
    const q = this.freeStack[--this.freeTop];
    const kb = q * KEY_WORDS;
    for (let i = 0; i < KEY_WORDS; i++) this.keys[kb + i] = k[i];
    this.qHash[q] = h | 0;
    this.qHashNext[q] = this.buckets[bucket];
    this.buckets[bucket] = q;
    this.qClass[q] = cls;
    this.qFlags[q] = 0;
    this.qEcn[q] = 0;
    this.qLen[q] = 0;
    this.qMeat[q] = 0;
    this.qMaxSize[q] = 0;
    this.qMaxDfSize[q] = 0;
    this.qHdrLen[q] = 0;
    this.qNhOff[q] = 0;
    this.qFragNext[q] = 0;
    this.qBytes[q] = 0;
    this.qCount[q] = 0;
    this.qDeadline[q] = now + (cls === CLASS_V4 ? this.timeoutV4 : this.timeoutV6);
    // Append to the class's list: one timeout per class keeps it sorted.
    const tail = this.listTail[cls];
    this.qPrev[q] = tail;
    this.qNext[q] = -1;
    if (tail >= 0) this.qNext[tail] = q;
    else this.listHead[cls] = q;
    this.listTail[cls] = q;
    this.queuesInUse++;
    return q;
  }

  /** Unlinks queue q from the hash and its expiry list and returns the slot (inet_frag_kill + destroy). */
  private freeQueue(q: number): void {
    const bucket = this.qHash[q] & this.bucketMask;
    let prev = -1;
    for (let c = this.buckets[bucket]; c >= 0; c = this.qHashNext[c]) {
      if (c === q) {
        if (prev < 0) this.buckets[bucket] = this.qHashNext[q];
        else this.qHashNext[prev] = this.qHashNext[q];
        break;
      }
      prev = c;
    }
    this.qHashNext[q] = -1;
    const cls = this.qClass[q];
    const p = this.qPrev[q];
    const n = this.qNext[q];
    if (p >= 0) this.qNext[p] = n;
    else this.listHead[cls] = n;
    if (n >= 0) this.qPrev[n] = p;
    else this.listTail[cls] = p;
    this.qPrev[q] = -1;
    this.qNext[q] = -1;
    this.heldBytes -= this.qBytes[q];
    this.qBytes[q] = 0;
    this.qCount[q] = 0;
    this.freeStack[this.freeTop++] = q;
    this.queuesInUse--;
  }

  /** Copies the tags of queue q (skipping index `skip`, or none with -1) to `releasedTags` and frees it. */
  private releaseQueue(q: number, reason: number, skip: number): void {
    const base = q * this.maxFrags;
    const n = this.qCount[q];
    let c = 0;
    for (let i = 0; i < n; i++) if (i !== skip) this.releasedTags[c++] = this.fTag[base + i];
    this.releasedCount = c;
    this.releasedReason = reason;
    this.freeQueue(q);
  }

  private complete(q: number, h: number, length: number): number {
    this.reassembled++;
    this.releaseQueue(q, DEFRAG_DROP.NONE, -1);
    this.outOffset = h;
    this.outLength = length;
    return DEFRAG.COMPLETE;
  }

  /** Drops the offered fragment only. */
  private dropFragment(reason: number): number {
    this.count(reason);
    this.dropReason = reason;
    return DEFRAG.DROP;
  }

  /** Drops the offered fragment and discards its queue (inet_frag_kill), releasing the held tags. */
  private discardQueue(q: number, reason: number): number {
    this.count(reason);
    this.dropReason = reason;
    this.releaseQueue(q, reason, -1);
    return DEFRAG.DROP;
  }

  /** As discardQueue, after the offered fragment was already inserted at `at` (reassembly failures). */
  private discardQueueExcept(q: number, reason: number, at: number): number {
    this.count(reason);
    this.dropReason = reason;
    this.releaseQueue(q, reason, at);
    return DEFRAG.DROP;
  }

  private count(reason: number): void {
    this.dropsByReason[reason]++;
    switch (reason) {
      case DEFRAG_DROP.DUPLICATE: this.duplicates++; break;
      case DEFRAG_DROP.OVERLAP: this.overlaps++; break;
      case DEFRAG_DROP.OVERSIZE: this.oversize++; break;
      case DEFRAG_DROP.NO_MEMORY:
      case DEFRAG_DROP.TABLE_FULL:
      case DEFRAG_DROP.TOO_MANY_FRAGMENTS:
      case DEFRAG_DROP.HEADER_TOO_LONG: this.noMemory++; break;
      default: this.malformed++; break;
    }
  }
}
