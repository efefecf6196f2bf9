import type { Tuple } from "../packet/tuple.js";
import { STATUS, TCLASS_COUNT } from "./constants.js";

/*
 * The connection table: one 192-byte record per entry (three 64-byte cache
 * lines) in a single ArrayBuffer, read through typed views of it (`i32`,
 * `u16`, `f64`), plus two per-entry side arrays and the bucket array.
 *
 *   entry i = record bytes [i*192, i*192+192) = int32 words [i*48, i*48+48)
 *
 *   line 0 (w0..15): chain walk and match, expiry, accounting
 *   ┌─────────┬─────────┬───────────┬───────────┬──────────┬──────┬──────────┬──────────────────────────────┐
 *   │nodeNext │nodeNext │orig sport │reply sport│family    │ mark │ expires  │ counters (f64): pkts orig,   │
 *   │ [orig]  │ [reply] │     dport │      dport│proto cls │      │ (f64 ms) │ bytes orig, pkts/bytes reply │
 *   └─────────┴─────────┴───────────┴───────────┴──────────┴──────┴──────────┴──────────────────────────────┘
 *      w0        w1        w2 (u16×2)  w3 (u16×2)  w4 (u16×2) w5     w6..7      w8..15
 *
 *   line 1 (w16..31): addresses, 4 words each (IPv4: word 0, the rest 0)
 *   ┌────────────┬────────────┬────────────┬────────────┐
 *   │ orig src   │ orig dst   │ reply src  │ reply dst  │
 *   └────────────┴────────────┴────────────┴────────────┘
 *      w16..19      w20..23      w24..27      w28..31
 *
 *   line 2 (w32..47): protocol state, expiry-ring links
 *   ┌──────────────────────────────────────────────────────────────┬──────┬──────┐
 *   │ L4 area (Linux's `proto` union of struct nf_conn): TCP's 12  │ prev │ next │
 *   │ words + 8 bytes (tcp.ts), or UDP's stream_ts (f64 at w32)    │      │      │
 *   └──────────────────────────────────────────────────────────────┴──────┴──────┘
 *      w32..45                                                        w46    w47
 *
 *   per entry, outside the record: status (u16), gen (u16)
 *   per bucket: bucketHead (i32)
 *
 * Why this shape: at 10^6 entries the table is ~200 MB, so every entry read
 * is a cache miss and usually a TLB miss. An established packet reads its
 * bucket; line 0 of each node on the chain (the link to the next node, and
 * ports, family and protocol, which reject a mismatch); line 1 of the
 * match; status and line 2 (TCP state or UDP stream_ts, the ring links);
 * and it stores into the ring neighbours' line 2 when it moves to the tail.
 * That is 5-6 lines, and lines 0-2 of an entry share a page (except ~1
 * entry in 21). In the old struct-of-arrays layout each field was its own
 * array, so each was its own line and usually its own page: ~16 for UDP,
 * ~18 for TCP. Measurements are in src/conntrack/index.ts.
 *
 * status and gen stay per-entry arrays. Code outside conntrack/ indexes
 * status (`table.status[i]`), gen is cold, and the record has no byte left.
 * Budget: 192 + 2 + 2 + 4 (bucket) = 200 bytes per entry, TCP state
 * included.
 *
 * Hash index: chained, intrusive. Each entry has two nodes, node = i*2 + dir,
 * hashed by the tuple of that direction; `bucketHead[b]` is the first node of
 * bucket b, `nodeNext` of a node the next (-1 ends a chain). A lookup with
 * either direction's tuple finds the entry and, from the node's low bit, the
 * direction. Chains are bounded at insert (Linux's "chaintoolong").
 *
 * Expiry: one intrusive doubly-linked ring per timeout class (prev/next).
 * Every entry of a class has the same timeout, and the clock only moves
 * forward, so appending at the tail keeps each ring sorted by expiry:
 * refresh = unlink + append; reap = pop heads while expired. A refresh of
 * the entry already at the tail of its class's ring only updates its expiry.
 *
 * Free list: singly linked through `next` of free entries.
 *
 * Unconfirmed entries (allocated for a packet whose verdict is pending) are
 * in neither the hash nor a ring: they become visible only at `insert`
 * (CONFIRMED semantics, `__nf_conntrack_confirm`).
 *
 * Index arithmetic stays in small integers. The largest view index is
 * u16's, i*96, below 2^31 for every capacity up to 2^24. tcp.ts computes its
 * byte index, which can pass 2^31, inside each method.
 */

/** tclass value of an entry that is in no expiry ring (free or unconfirmed). */
export const NO_CLASS = 255;
/** Linux's NF_CT_EVICTION_RANGE: buckets scanned by early drop. */
export const EVICTION_RANGE = 8;
/** Chain length bound at insert: MIN_CHAINLEN + a random part below CHAINLEN_RANDOM (nf_conntrack_core.c). */
const MIN_CHAINLEN = 50;
const CHAINLEN_RANDOM = 30;
/** Handles carry the entry index in their low 24 bits and a 16-bit generation above. */
const INDEX_SPACE = 1 << 24;

/** Record geometry, shared with the protocol trackers that keep their state in the L4 area. */
export const REC = {
  /** Bytes per entry record (three cache lines). */
  BYTES: 192,
  /** Int32 words per entry record. */
  WORDS: 48,
  /** Float64 slots per entry record. */
  F64: 24,
  /** First int32 word of the L4 area (line 2). */
  L4: 32,
  /** Int32 words in the L4 area. */
  L4_WORDS: 14,
} as const;

/** Plain numbers for the index arithmetic (no property load). */
const RW = REC.WORDS;
const RF = REC.F64;
// Word offsets in a record (see the diagram).
const W_NODE_NEXT = 0;
const W_PORTS = 2;
const W_META = 4;
const W_MARK = 5;
const W_EXPIRES = 6;
const W_COUNTERS = 8;
const W_ADDR = 16;
const W_PREV = 46;
const W_NEXT = 47;
// The same as indexes of the u16 and f64 views, relative to the record's.
const H_PORTS = W_PORTS * 2;
/** family | proto << 8, one u16. */
const H_FAMPROTO = W_META * 2;
const H_TCLASS = W_META * 2 + 1;
const F_EXPIRES = W_EXPIRES / 2;
const F_COUNTERS = W_COUNTERS / 2;

/** Rounds up to a power of two. */
export function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Per-process seed for the tuple hash (hash flooding needs the seed). */
function randomSeed(): number {
  return (Math.random() * 0x100000000) >>> 0;
}

/**
 * Connection storage (one record per entry) with its hash index, expiry
 * rings and free list. Protocol trackers keep their per-entry state in the
 * record's L4 area (views of `buffer`). All methods are allocation-free.
 */
export class ConnTable {
  readonly capacity: number;
  /** Live-entry limit (nf_conntrack_max), <= capacity. */
  readonly max: number;
  readonly bucketCount: number;
  private readonly bucketMask: number;
  readonly seed: number;
  /** Entries allocated (confirmed and unconfirmed). */
  count = 0;

  /** The records, `capacity * REC.BYTES` bytes. */
  readonly buffer: ArrayBuffer;
  /** Int32 view of the records: chain and ring links, mark, addresses (signed, like `Tuple`). */
  readonly i32: Int32Array;
  /** Uint16 view of the records: ports, family|proto, tclass. */
  readonly u16: Uint16Array;
  /** Float64 view of the records: expires, counters. */
  readonly f64: Float64Array;
  /** STATUS bits of each entry. */
  readonly status: Uint16Array;
  /** Generation of each entry, bumped at every alloc (see `handle`). */
  readonly gen: Uint16Array;
  /** Helper id of each entry (HELPER_NAMES; 0 none). */
  readonly helper: Uint8Array;

  readonly bucketHead: Int32Array;
  readonly ringHead: Int32Array;
  readonly ringTail: Int32Array;
  /** Timeout of each class in ms. */
  readonly timeoutMs: Float64Array;
  private freeHead: number;
  /** xorshift32 state: Math.random() allocates a heap number per call on Node 20. */
  private rng: number;

  constructor(max: number, buckets: number, timeoutMs: Float64Array, seed = randomSeed()) {
    const cap = pow2ceil(max);
    this.capacity = cap;
    this.max = max;
    this.bucketCount = buckets > 0 ? buckets : cap;
    this.bucketMask = this.bucketCount - 1;
    this.seed = seed >>> 0;
    this.buffer = new ArrayBuffer(cap * REC.BYTES);
    this.i32 = new Int32Array(this.buffer);
    this.u16 = new Uint16Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
    this.status = new Uint16Array(cap);
    this.gen = new Uint16Array(cap);
    this.helper = new Uint8Array(cap);
    this.bucketHead = new Int32Array(this.bucketCount).fill(-1);
    const a = this.i32, h = this.u16;
    for (let i = 0; i < cap; i++) {
      const w = i * RW;
      a[w + W_NODE_NEXT] = a[w + W_NODE_NEXT + 1] = -1;
      h[w * 2 + H_TCLASS] = NO_CLASS;
      a[w + W_PREV] = -1;
      a[w + W_NEXT] = i + 1 < cap ? i + 1 : -1;
    }
    this.freeHead = 0;
    this.rng = (this.seed ^ 0x9e3779b9) | 1;
    this.ringHead = new Int32Array(TCLASS_COUNT).fill(-1);
    this.ringTail = new Int32Array(TCLASS_COUNT).fill(-1);
    this.timeoutMs = timeoutMs;
  }

  /** Bytes of typed-array storage per entry in this table (records with their L4 area, side arrays, buckets). */
  bytesPerEntry(): number {
    const total = this.buffer.byteLength + this.status.byteLength + this.gen.byteLength + this.helper.byteLength + this.bucketHead.byteLength;
    return total / this.capacity;
  }

  // ---- fields ----

  /** Address family of entry `i` (AF.*). */
  family(i: number): number { return this.u16[i * RW * 2 + H_FAMPROTO] & 0xff; }
  /** IP protocol of entry `i`. */
  proto(i: number): number { return this.u16[i * RW * 2 + H_FAMPROTO] >> 8; }
  /** Timeout class of entry `i`, NO_CLASS when in no ring. */
  tclass(i: number): number { return this.u16[i * RW * 2 + H_TCLASS]; }
  /** Expiry time of entry `i` (ms). */
  expires(i: number): number { return this.f64[i * RF + F_EXPIRES]; }
  /** Connection mark of entry `i` (uint32). */
  mark(i: number): number { return this.i32[i * RW + W_MARK] >>> 0; }
  setMark(i: number, mark: number): void { this.i32[i * RW + W_MARK] = mark; }
  /** Port `k` of entry `i`: 0 orig sport, 1 orig dport, 2 reply sport, 3 reply dport. */
  port(i: number, k: number): number { return this.u16[i * RW * 2 + H_PORTS + k]; }
  /** Index in `i32` of entry `i`'s 16 address words (orig src, orig dst, reply src, reply dst). */
  addrAt(i: number): number { return i * RW + W_ADDR; }
  /** Index in `u16` of entry `i`'s 4 ports. */
  portAt(i: number): number { return i * RW * 2 + H_PORTS; }
  /** Index in `f64` of entry `i`'s 4 counters (packets orig, bytes orig, packets reply, bytes reply). */
  countersAt(i: number): number { return i * RF + F_COUNTERS; }
  /** The node after `n` in its hash chain, or -1. */
  nodeNext(n: number): number { return this.i32[(n >> 1) * RW + W_NODE_NEXT + (n & 1)]; }
  /** The entry after `i` in its expiry ring (or the free list), or -1. */
  ringNext(i: number): number { return this.i32[i * RW + W_NEXT]; }

  /** Counts one packet of `bytes` bytes in direction `dir` of entry `i`. */
  account(i: number, dir: number, bytes: number): void {
    const c = this.f64, k = i * RF + F_COUNTERS + dir * 2;
    c[k] += 1;
    c[k + 1] += bytes;
  }

  // ---- handles ----

  /** The handle of entry `i`: its index plus its current generation, so a stale handle is detected. */
  handle(i: number): number { return this.gen[i] * INDEX_SPACE + i; }
  /** The entry index of a live handle, or -1 if the handle is stale or out of range. */
  indexOf(handle: number): number {
    if (!Number.isInteger(handle) || handle < 0) return -1;
    const i = handle % INDEX_SPACE;
    if (i >= this.capacity || (handle - i) / INDEX_SPACE !== this.gen[i] || this.tclass(i) === NO_CLASS) return -1;
    return i;
  }

  // ---- hashing ----

  /** Seeded hash of a tuple (murmur3-style mixing of its words), as an int32; use `bucketOf`. */
  hashTuple(t: Tuple): number {
    const s = t.src, d = t.dst;
    let h = this.seed ^ (t.family << 8) ^ t.proto;
    h = mix(h, s[0]);
    h = mix(h, d[0]);
    // IPv4 uses word 0 only: three rounds instead of nine on the common path.
    if (t.family !== 2) {
      h = mix(h, s[1]); h = mix(h, s[2]); h = mix(h, s[3]);
      h = mix(h, d[1]); h = mix(h, d[2]); h = mix(h, d[3]);
    }
    h = mix(h, (t.sport << 16) | t.dport);
    return fmix(h);
  }

  /** Same hash over the stored tuple of node `n` (entry n>>1, direction n&1). */
  private hashNode(n: number): number {
    const w = (n >> 1) * RW, d = n & 1, a = this.i32, u = this.u16;
    const base = w + W_ADDR + d * 8, pb = w * 2 + H_PORTS + d * 2;
    const fp = u[w * 2 + H_FAMPROTO], family = fp & 0xff;
    let h = this.seed ^ (family << 8) ^ (fp >> 8);
    h = mix(h, a[base]);
    h = mix(h, a[base + 4]);
    if (family !== 2) {
      h = mix(h, a[base + 1]); h = mix(h, a[base + 2]); h = mix(h, a[base + 3]);
      h = mix(h, a[base + 5]); h = mix(h, a[base + 6]); h = mix(h, a[base + 7]);
    }
    h = mix(h, (u[pb] << 16) | u[pb + 1]);
    return fmix(h);
  }

  /** Bucket of a hash value. */
  bucketOf(hash: number): number { return hash & this.bucketMask; }

  /**
   * True when node `n`'s stored tuple equals `t`. Ports, family and protocol
   * come first: they are on line 0, already read for the chain link, and
   * most mismatches end there without reading the addresses on line 1.
   */
  nodeEquals(n: number, t: Tuple): boolean {
    const w = (n >> 1) * RW, d = n & 1, u = this.u16;
    const pb = w * 2 + H_PORTS + d * 2;
    if (u[pb] !== t.sport || u[pb + 1] !== t.dport || u[w * 2 + H_FAMPROTO] !== (t.family | (t.proto << 8))) return false;
    const a = this.i32, base = w + W_ADDR + d * 8, s = t.src, dd = t.dst;
    return a[base] === s[0] && a[base + 4] === dd[0] && a[base + 1] === s[1] && a[base + 2] === s[2] &&
      a[base + 3] === s[3] && a[base + 5] === dd[1] && a[base + 6] === dd[2] && a[base + 7] === dd[3];
  }

  /** Finds the node (entry*2 + direction) whose tuple equals `t`, or -1. Expired entries are returned too; the caller decides. */
  lookup(t: Tuple, hash: number): number {
    const a = this.i32;
    for (let n = this.bucketHead[hash & this.bucketMask]; n >= 0; n = a[(n >> 1) * RW + W_NODE_NEXT + (n & 1)]) {
      if (this.nodeEquals(n, t)) return n;
    }
    return -1;
  }

  // ---- entry lifecycle ----

  /** Takes a free entry (unconfirmed, in no ring, not hashed), or -1 when none is free. */
  alloc(): number {
    const i = this.freeHead;
    if (i < 0) return -1;
    const a = this.i32, w = i * RW;
    this.freeHead = a[w + W_NEXT];
    a[w + W_NEXT] = -1;
    a[w + W_PREV] = -1;
    this.gen[i] = (this.gen[i] + 1) & 0xffff;
    this.status[i] = 0;
    this.helper[i] = 0;
    a[w + W_MARK] = 0;
    this.u16[w * 2 + H_TCLASS] = NO_CLASS;
    const c = this.f64, k = i * RF + F_COUNTERS;
    c[k] = c[k + 1] = c[k + 2] = c[k + 3] = 0;
    this.count++;
    return i;
  }

  /** Stores the original and reply tuples of entry `i`. */
  setTuples(i: number, orig: Tuple, reply: Tuple): void {
    const w = i * RW, u = this.u16, pb = w * 2 + H_PORTS;
    u[w * 2 + H_FAMPROTO] = orig.family | (orig.proto << 8);
    const a = this.i32, b = w + W_ADDR;
    a[b] = orig.src[0]; a[b + 1] = orig.src[1]; a[b + 2] = orig.src[2]; a[b + 3] = orig.src[3];
    a[b + 4] = orig.dst[0]; a[b + 5] = orig.dst[1]; a[b + 6] = orig.dst[2]; a[b + 7] = orig.dst[3];
    a[b + 8] = reply.src[0]; a[b + 9] = reply.src[1]; a[b + 10] = reply.src[2]; a[b + 11] = reply.src[3];
    a[b + 12] = reply.dst[0]; a[b + 13] = reply.dst[1]; a[b + 14] = reply.dst[2]; a[b + 15] = reply.dst[3];
    u[pb] = orig.sport; u[pb + 1] = orig.dport; u[pb + 2] = reply.sport; u[pb + 3] = reply.dport;
  }

  /** Returns an unconfirmed (or already unlinked) entry to the free list. */
  free(i: number): void {
    const w = i * RW;
    this.u16[w * 2 + H_TCLASS] = NO_CLASS;
    this.status[i] = 0;
    this.i32[w + W_NEXT] = this.freeHead;
    this.freeHead = i;
    this.count--;
  }

  /**
   * Confirms entry `i`: hashes both directions, sets CONFIRMED, puts it in the
   * ring of `cls` expiring at `now + timeout`. Returns false (nothing changed)
   * when a chain would exceed the bound, Linux's "chaintoolong".
   */
  insert(i: number, cls: number, now: number): boolean {
    const n0 = i * 2, n1 = n0 + 1;
    const b0 = this.hashNode(n0) & this.bucketMask;
    const b1 = this.hashNode(n1) & this.bucketMask;
    const limit = MIN_CHAINLEN + ((this.random() >>> 8) % CHAINLEN_RANDOM);
    if (this.chainLength(b0, limit) > limit || this.chainLength(b1, limit) > limit) return false;
    const a = this.i32, w = i * RW;
    a[w + W_NODE_NEXT] = this.bucketHead[b0];
    this.bucketHead[b0] = n0;
    a[w + W_NODE_NEXT + 1] = this.bucketHead[b1];
    this.bucketHead[b1] = n1;
    this.status[i] |= STATUS.CONFIRMED;
    this.u16[w * 2 + H_TCLASS] = NO_CLASS;
    this.refresh(i, cls, now);
    return true;
  }

  /** Next pseudo-random int32 (xorshift32; not for anything secret). */
  private random(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x;
    return x;
  }

  private chainLength(b: number, limit: number): number {
    let len = 0;
    for (let n = this.bucketHead[b]; n >= 0 && len <= limit; n = this.nodeNext(n)) len++;
    return len;
  }

  /** Unhashes, unlinks and frees a confirmed entry. */
  remove(i: number): void {
    this.unhash(i * 2);
    this.unhash(i * 2 + 1);
    this.unlink(i);
    this.free(i);
  }

  private unhash(n: number): void {
    const a = this.i32, b = this.hashNode(n) & this.bucketMask;
    const nn = (n >> 1) * RW + W_NODE_NEXT + (n & 1);
    let p = this.bucketHead[b];
    if (p === n) { this.bucketHead[b] = a[nn]; a[nn] = -1; return; }
    while (p >= 0) {
      const pn = (p >> 1) * RW + W_NODE_NEXT + (p & 1);
      const q = a[pn];
      if (q === n) { a[pn] = a[nn]; a[nn] = -1; return; }
      p = q;
    }
  }

  // ---- expiry rings ----

  /** Sets entry `i` to expire `timeoutMs[cls]` after `now`, moving it to the tail of that class's ring. */
  refresh(i: number, cls: number, now: number): void {
    const w = i * RW, tc = w * 2 + H_TCLASS, x = i * RF + F_EXPIRES;
    const e = now + this.timeoutMs[cls];
    if (this.u16[tc] === cls) {
      // Already at the tail: moving it is a no-op. Every other entry of the
      // ring expires no later than now + timeout, so a new expiry above the
      // old one keeps the order.
      if (this.ringTail[cls] === i) { this.f64[x] = e; return; }
    }
    this.unlink(i);
    this.u16[tc] = cls;
    this.f64[x] = e;
    const a = this.i32, t = this.ringTail[cls];
    a[w + W_PREV] = t;
    a[w + W_NEXT] = -1;
    if (t >= 0) a[t * RW + W_NEXT] = i; else this.ringHead[cls] = i;
    this.ringTail[cls] = i;
  }

  private unlink(i: number): void {
    const w = i * RW, tc = w * 2 + H_TCLASS;
    const c = this.u16[tc];
    if (c === NO_CLASS) return;
    const a = this.i32, p = a[w + W_PREV], n = a[w + W_NEXT];
    if (p >= 0) a[p * RW + W_NEXT] = n; else this.ringHead[c] = n;
    if (n >= 0) a[n * RW + W_PREV] = p; else this.ringTail[c] = p;
    a[w + W_PREV] = a[w + W_NEXT] = -1;
    this.u16[tc] = NO_CLASS;
  }

  /** True when confirmed entry `i` has expired at `now` (`nf_ct_is_expired`: timeout <= now). */
  isExpired(i: number, now: number): boolean { return this.f64[i * RF + F_EXPIRES] <= now; }

  /** The entry at the head of ring `cls` if it has expired at `now`, else -1. */
  expiredHead(cls: number, now: number): number {
    const h = this.ringHead[cls];
    return h >= 0 && this.f64[h * RF + F_EXPIRES] <= now ? h : -1;
  }

  /** True when `i` is a confirmed, live entry. */
  isLive(i: number): boolean { return this.tclass(i) !== NO_CLASS; }
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
