import type { Tuple } from "../packet/tuple.js";
import { STATUS, TCLASS_COUNT } from "./constants.js";

/*
 * The connection table: struct-of-arrays over a power-of-two capacity.
 *
 *   entry i                      words / bytes
 *   addr   [i*16 ..  +3]  orig src     [+4..+7] orig dst      (IPv4: word 0 only)
 *          [i*16+8 ..+11] reply src    [+12..+15] reply dst
 *   port   [i*4] orig sport, [+1] orig dport, [+2] reply sport, [+3] reply dport
 *   family, proto, tclass (timeout class; NO_CLASS when in no ring), status, gen
 *   expires (ms), counters [i*4] pkts orig, bytes orig, pkts reply, bytes reply, mark
 *
 * Hash index: chained, intrusive. Each entry has two nodes, node = i*2 + dir,
 * hashed by the tuple of that direction; `bucketHead[b]` is the first node of
 * bucket b, `nodeNext[node]` the next (-1 ends a chain). A lookup with either
 * direction's tuple finds the entry and, from the node's low bit, the
 * direction. Chains are bounded at insert (Linux's "chaintoolong").
 *
 * Expiry: one intrusive doubly-linked ring per timeout class (`prev`/`next`).
 * Every entry of a class has the same timeout, and the clock only moves
 * forward, so appending at the tail keeps each ring sorted by expiry:
 * refresh = unlink + append; reap = pop heads while expired.
 *
 * Free list: singly linked through `next` of free entries.
 *
 * Unconfirmed entries (allocated for a packet whose verdict is pending) are
 * in neither the hash nor a ring: they become visible only at `insert`
 * (CONFIRMED semantics, `__nf_conntrack_confirm`).
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
 * Struct-of-arrays connection storage with its hash index, expiry rings and
 * free list. Protocol trackers keep their own per-entry arrays indexed the
 * same way. All methods are allocation-free.
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

  /** Address words as signed int32, like `Tuple`. */
  readonly addr: Int32Array;
  readonly port: Uint16Array;
  readonly family: Uint8Array;
  readonly proto: Uint8Array;
  readonly tclass: Uint8Array;
  readonly status: Uint16Array;
  readonly gen: Uint16Array;
  readonly expires: Float64Array;
  readonly counters: Float64Array;
  readonly mark: Uint32Array;

  readonly bucketHead: Int32Array;
  readonly nodeNext: Int32Array;
  readonly prev: Int32Array;
  readonly next: Int32Array;
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
    this.addr = new Int32Array(cap * 16);
    this.port = new Uint16Array(cap * 4);
    this.family = new Uint8Array(cap);
    this.proto = new Uint8Array(cap);
    this.tclass = new Uint8Array(cap).fill(NO_CLASS);
    this.status = new Uint16Array(cap);
    this.gen = new Uint16Array(cap);
    this.expires = new Float64Array(cap);
    this.counters = new Float64Array(cap * 4);
    this.mark = new Uint32Array(cap);
    this.bucketHead = new Int32Array(this.bucketCount).fill(-1);
    this.nodeNext = new Int32Array(cap * 2).fill(-1);
    this.prev = new Int32Array(cap).fill(-1);
    this.next = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.next[i] = i + 1 < cap ? i + 1 : -1;
    this.freeHead = 0;
    this.rng = (this.seed ^ 0x9e3779b9) | 1;
    this.ringHead = new Int32Array(TCLASS_COUNT).fill(-1);
    this.ringTail = new Int32Array(TCLASS_COUNT).fill(-1);
    this.timeoutMs = timeoutMs;
  }

  /** Bytes of typed-array storage per entry in this table (buckets included). */
  bytesPerEntry(): number {
    const arrays = [this.addr, this.port, this.family, this.proto, this.tclass, this.status, this.gen,
      this.expires, this.counters, this.mark, this.nodeNext, this.prev, this.next];
    let total = this.bucketHead.byteLength;
    for (const a of arrays) total += a.byteLength;
    return total / this.capacity;
  }

  // ---- handles ----

  /** The handle of entry `i`: its index plus its current generation, so a stale handle is detected. */
  handle(i: number): number { return this.gen[i] * INDEX_SPACE + i; }
  /** The entry index of a live handle, or -1 if the handle is stale or out of range. */
  indexOf(handle: number): number {
    if (!Number.isInteger(handle) || handle < 0) return -1;
    const i = handle % INDEX_SPACE;
    if (i >= this.capacity || (handle - i) / INDEX_SPACE !== this.gen[i] || this.tclass[i] === NO_CLASS) return -1;
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
    const i = n >> 1, a = this.addr, base = i * 16 + (n & 1) * 8, pb = i * 4 + (n & 1) * 2;
    const family = this.family[i];
    let h = this.seed ^ (family << 8) ^ this.proto[i];
    h = mix(h, a[base]);
    h = mix(h, a[base + 4]);
    if (family !== 2) {
      h = mix(h, a[base + 1]); h = mix(h, a[base + 2]); h = mix(h, a[base + 3]);
      h = mix(h, a[base + 5]); h = mix(h, a[base + 6]); h = mix(h, a[base + 7]);
    }
    h = mix(h, (this.port[pb] << 16) | this.port[pb + 1]);
    return fmix(h);
  }

  /** Bucket of a hash value. */
  bucketOf(hash: number): number { return hash & this.bucketMask; }

  /** True when node `n`'s stored tuple equals `t`. */
  nodeEquals(n: number, t: Tuple): boolean {
    const i = n >> 1;
    if (this.proto[i] !== t.proto || this.family[i] !== t.family) return false;
    const pb = i * 4 + (n & 1) * 2;
    if (this.port[pb] !== t.sport || this.port[pb + 1] !== t.dport) return false;
    const a = this.addr, base = i * 16 + (n & 1) * 8, s = t.src, d = t.dst;
    return a[base] === s[0] && a[base + 1] === s[1] && a[base + 2] === s[2] && a[base + 3] === s[3] &&
      a[base + 4] === d[0] && a[base + 5] === d[1] && a[base + 6] === d[2] && a[base + 7] === d[3];
  }

  /** Finds the node (entry*2 + direction) whose tuple equals `t`, or -1. Expired entries are returned too; the caller decides. */
  lookup(t: Tuple, hash: number): number {
    for (let n = this.bucketHead[hash & this.bucketMask]; n >= 0; n = this.nodeNext[n]) {
      if (this.nodeEquals(n, t)) return n;
    }
    return -1;
  }

  // ---- entry lifecycle ----

  /** Takes a free entry (unconfirmed, in no ring, not hashed), or -1 when none is free. */
  alloc(): number {
    const i = this.freeHead;
    if (i < 0) return -1;
    this.freeHead = this.next[i];
    this.next[i] = -1;
    this.prev[i] = -1;
    this.gen[i] = (this.gen[i] + 1) & 0xffff;
    this.status[i] = 0;
    this.mark[i] = 0;
    this.tclass[i] = NO_CLASS;
    const c = i * 4;
    this.counters[c] = this.counters[c + 1] = this.counters[c + 2] = this.counters[c + 3] = 0;
    this.count++;
    return i;
  }

  /** Stores the original and reply tuples of entry `i`. */
  setTuples(i: number, orig: Tuple, reply: Tuple): void {
    this.family[i] = orig.family;
    this.proto[i] = orig.proto;
    const a = this.addr, b = i * 16;
    a[b] = orig.src[0]; a[b + 1] = orig.src[1]; a[b + 2] = orig.src[2]; a[b + 3] = orig.src[3];
    a[b + 4] = orig.dst[0]; a[b + 5] = orig.dst[1]; a[b + 6] = orig.dst[2]; a[b + 7] = orig.dst[3];
    a[b + 8] = reply.src[0]; a[b + 9] = reply.src[1]; a[b + 10] = reply.src[2]; a[b + 11] = reply.src[3];
    a[b + 12] = reply.dst[0]; a[b + 13] = reply.dst[1]; a[b + 14] = reply.dst[2]; a[b + 15] = reply.dst[3];
    const p = this.port, pb = i * 4;
    p[pb] = orig.sport; p[pb + 1] = orig.dport; p[pb + 2] = reply.sport; p[pb + 3] = reply.dport;
  }

  /** Returns an unconfirmed (or already unlinked) entry to the free list. */
  free(i: number): void {
    this.tclass[i] = NO_CLASS;
    this.status[i] = 0;
    this.next[i] = this.freeHead;
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
    this.nodeNext[n0] = this.bucketHead[b0];
    this.bucketHead[b0] = n0;
    this.nodeNext[n1] = this.bucketHead[b1];
    this.bucketHead[b1] = n1;
    this.status[i] |= STATUS.CONFIRMED;
    this.tclass[i] = NO_CLASS;
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
    for (let n = this.bucketHead[b]; n >= 0 && len <= limit; n = this.nodeNext[n]) len++;
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
    const b = this.hashNode(n) & this.bucketMask;
    let p = this.bucketHead[b];
    if (p === n) { this.bucketHead[b] = this.nodeNext[n]; this.nodeNext[n] = -1; return; }
    while (p >= 0) {
      const q = this.nodeNext[p];
      if (q === n) { this.nodeNext[p] = this.nodeNext[n]; this.nodeNext[n] = -1; return; }
      p = q;
    }
  }

  // ---- expiry rings ----

  /** Sets entry `i` to expire `timeoutMs[cls]` after `now`, moving it to the tail of that class's ring. */
  refresh(i: number, cls: number, now: number): void {
    this.unlink(i);
    this.tclass[i] = cls;
    this.expires[i] = now + this.timeoutMs[cls];
    const t = this.ringTail[cls];
    this.prev[i] = t;
    this.next[i] = -1;
    if (t >= 0) this.next[t] = i; else this.ringHead[cls] = i;
    this.ringTail[cls] = i;
  }

  private unlink(i: number): void {
    const c = this.tclass[i];
    if (c === NO_CLASS) return;
    const p = this.prev[i], n = this.next[i];
    if (p >= 0) this.next[p] = n; else this.ringHead[c] = n;
    if (n >= 0) this.prev[n] = p; else this.ringTail[c] = p;
    this.prev[i] = this.next[i] = -1;
    this.tclass[i] = NO_CLASS;
  }

  /** True when confirmed entry `i` has expired at `now` (`nf_ct_is_expired`: timeout <= now). */
  isExpired(i: number, now: number): boolean { return this.expires[i] <= now; }

  /** The entry at the head of ring `cls` if it has expired at `now`, else -1. */
  expiredHead(cls: number, now: number): number {
    const h = this.ringHead[cls];
    return h >= 0 && this.expires[h] <= now ? h : -1;
  }

  /** True when `i` is a confirmed, live entry. */
  isLive(i: number): boolean { return this.tclass[i] !== NO_CLASS; }
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
