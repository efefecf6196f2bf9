/**
 * Rate matches: -m limit (xt_limit.c) and -m hashlimit (xt_hashlimit.c,
 * revision 3, the one iptables 1.8.9 uses on a current kernel), with
 * Linux's token-bucket arithmetic at HZ = 1000: one jiffy is one
 * millisecond of the pipeline clock (`ctx.now`, floored).
 *
 * xt_limit keeps `credit` in u32 "credits": a packet costs
 * `user2credits(avg)`, the bucket holds `user2credits(avg * burst)`, and
 * CREDITS_PER_JIFFY (32 at HZ = 1000) are earned per jiffy. The u32
 * wrap-arounds of the kernel's arithmetic are reproduced (`% 2^32`).
 *
 * xt_hashlimit (revision >= 2) keeps u64 credits with
 * CREDITS_PER_JIFFY = 2^37 and XT_HASHLIMIT_SCALE_v2 = 10^6; sluice holds
 * them in float64, exact while a bucket (cost x burst) stays below 2^53
 * credits, i.e. avg x burst < 65,536,000 (for example any rate of at least
 * 1/s with a burst up to 13); slower rates round in the last bits, which
 * moves a decision by well under a jiffy.
 *
 * Not supported (refused at load): hashlimit byte rates (`kb/s`...) and
 * `--hashlimit-rate-match`.
 */
import { IPPROTO } from "../../packet/constants.js";
import type { MatchNode, OptionNode } from "../ast.js";
import type { RuleContext } from "../context.js";
import { MATCHES } from "../extensions.js";
import type { CompiledMatch, MatchEnv, MatchPool } from "../match-api.js";
import { KIND } from "./kinds.js";
import { Opts, atoi, fail, parseUint, rateUnit } from "./parse.js";

const U32 = 4294967296;

// ---- limit ----

/** XT_LIMIT_SCALE: user rates are "seconds per packet x 10000". */
const LIMIT_SCALE = 10000;
/** HZ x CREDITS_PER_JIFFY at HZ = 1000: CREDITS_PER_JIFFY = POW2_BELOW32(0xFFFFFFFF / (HZ*60*60*24)) = 32. */
const LIMIT_CPJ = 32;
const LIMIT_HZ_CPJ = 1000 * LIMIT_CPJ;

/** xt_limit `user2credits` in u32 arithmetic ("precision saver": divide first when the product would overflow). */
export function limitUser2Credits(user: number): number {
  if (user > Math.floor(0xffffffff / LIMIT_HZ_CPJ)) return (Math.floor(user / LIMIT_SCALE) * LIMIT_HZ_CPJ) % U32;
  return Math.floor((user * LIMIT_HZ_CPJ) / LIMIT_SCALE);
}

/**
 * A rate `N[/second|/minute|/hour|/day]` (any prefix of the unit,
 * case-insensitive; seconds by default) as libxt_limit's `parse_rate`:
 * returns `scale x unit / N`, or throws iptables' message.
 */
function parseRate(o: OptionNode, text: string, scale: number): number {
  const slash = text.indexOf("/");
  let mult = 1;
  if (slash >= 0) {
    const u = rateUnit(text.slice(slash + 1));
    if (u === undefined) fail(o, `bad rate "${text}"`);
    mult = u;
  }
  const r = atoi(text);
  if (r === 0) fail(o, `bad rate "${text}"`);
  const ru = r < 0 ? r + U32 : r; // a negative count is a huge unsigned one in C
  const v = Math.floor((scale * mult) / ru);
  if (v === 0) fail(o, `Rate too fast "${text}"`);
  return v;
}

/*
 * Words: +0 offset of the rule's state in pool.f64:
 *   f64[s] prev (jiffy of the last update; NaN before the first packet)
 *   f64[s+1] credit   f64[s+2] cost   f64[s+3] credit cap
 */

/** -m limit. */
export function compileLimit(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["limit"]!, "limit");
  const l = o.get("--limit"), b = o.get("--limit-burst");
  const avg = l !== undefined ? parseRate(l, o.arg(l), LIMIT_SCALE) : (LIMIT_SCALE * 3600) / 3; // default 3/hour
  const burst = b !== undefined ? parseUint(b, "limit", o.arg(b), 0, 10000) : 5;
  // limit_mt_check(): refuses a zero burst and an avg x burst that overflows u32 credits.
  const full = limitUser2Credits((avg * burst) % U32);
  if (burst === 0 || full < limitUser2Credits(avg)) fail(b ?? l ?? node, `limit: Overflow, try lower: ${avg}/${burst} (Linux refuses it: Numerical result out of range)`);
  const s = env.pool.reserveF64(4);
  const f = env.pool.f64;
  f[s] = NaN;
  f[s + 1] = full;
  f[s + 2] = limitUser2Credits(avg);
  f[s + 3] = full;
  return { kind: KIND.LIMIT, off: env.pool.push(s) };
}

/** `limit_mt`: earn CREDITS_PER_JIFFY per jiffy since the last packet (u32), cap, then pay `cost` if possible. */
export function evalLimit(off: number, pool: MatchPool, c: RuleContext): boolean {
  const f = pool.f64, s = pool.i32[off];
  const now = Math.floor(c.now);
  let prev = f[s];
  if (prev !== prev || now < prev) prev = now; // first packet (NaN), or a clock that went back
  const cost = f[s + 2];
  let credit = f[s + 1];
  if (credit < cost && prev === now) return false;
  f[s] = now;
  credit = (credit + (((now - prev) * LIMIT_CPJ) % U32)) % U32;
  if (credit > f[s + 3]) credit = f[s + 3];
  if (credit >= cost) {
    f[s + 1] = credit - cost;
    return true;
  }
  f[s + 1] = credit;
  return false;
}

// ---- hashlimit ----

/** XT_HASHLIMIT_SCALE_v2 (revision >= 2). */
const HL_SCALE = 1_000_000;
/** CREDITS_PER_JIFFY (revision >= 2) = POW2_BELOW64(2^64 / (HZ*60*60*24)) at HZ = 1000. */
const HL_CPJ = 2 ** 37;
/** user2credits(): HZ x CREDITS_PER_JIFFY / SCALE, integer-divided first (both > SCALE). */
const HL_USER2CREDITS = Math.floor((1000 * HL_CPJ) / HL_SCALE);
/** Linux's HASHLIMIT_MAX_SIZE: bounds `--hashlimit-htable-size` and `-max`. */
const HL_MAX_SIZE = 1 << 20;
/** Entries a GC pass frees per packet at most (the rest on the next packets): bounded work per packet. */
const HL_GC_BUDGET = 256;

/** Hash modes (XT_HASHLIMIT_HASH_*). */
const MODE = { DIP: 1, DPT: 2, SIP: 4, SPT: 8 } as const;
const MODE_NAMES: Readonly<Record<string, number>> = { dstip: MODE.DIP, dstport: MODE.DPT, srcip: MODE.SIP, srcport: MODE.SPT };

/** A hashlimit table's configuration (`hashlimit_cfg3`, packet mode). */
export interface HashlimitConfig {
  family: 4 | 6;
  mode: number;
  srcmask: number;
  dstmask: number;
  /** Buckets (`--hashlimit-htable-size`) and entries (`--hashlimit-htable-max`). */
  size: number;
  max: number;
  /** Idle time before an entry may be collected, ms; GC period, ms. */
  expire: number;
  gcInterval: number;
  /** Rate in XT_HASHLIMIT_SCALE_v2 units, and burst in packets. */
  avg: number;
  burst: number;
}

/** Key words per entry: masked source (4), masked destination (4), ports (sport << 16 | dport). */
const KW = 9;

/**
 * One named hashlimit table: a fixed-capacity hash of token buckets keyed
 * by the masked addresses and ports the mode selects. Struct of arrays,
 * chained buckets, a free list, and an LRU list that is also the expiry
 * order (every entry of a table has the same idle timeout). Entries are
 * collected as Linux's timer does it, every `gcInterval` ms (lazily, at
 * the next packet, at most HL_GC_BUDGET per packet). When all `max`
 * entries are in use a new key gets no bucket: Linux then drops the
 * packet ("max count of N reached", hotdrop); the match answers false and
 * counts it in `full`.
 */
export class HashlimitTable {
  readonly cfg: HashlimitConfig;
  /** Identity of the configuration, to decide reuse across reloads. */
  readonly cfgKey: string;
  readonly capacity: number;
  /** Credits a packet costs and a bucket holds (table-wide in packet mode). */
  readonly cost: number;
  readonly cap: number;
  private readonly srcMask = new Int32Array(4);
  private readonly dstMask = new Int32Array(4);
  private readonly keys: Int32Array;
  private readonly expires: Float64Array;
  private readonly prev: Float64Array;
  private readonly credit: Float64Array;
  private readonly chain: Int32Array;
  private readonly lruPrev: Int32Array;
  private readonly lruNext: Int32Array;
  private readonly buckets: Int32Array;
  private readonly bucketMask: number;
  private readonly seed: number;
  private readonly scratch = new Int32Array(KW);
  private lruHead = -1;
  private lruTail = -1;
  private freeHead = 0;
  private nextGc = NaN;
  /** Live entries. */
  count = 0;
  /** Packets that found the table full (Linux drops them). */
  full = 0;

  constructor(cfg: HashlimitConfig) {
    this.cfg = cfg;
    this.cfgKey = JSON.stringify(cfg);
    const cap = cfg.max;
    this.capacity = cap;
    this.cost = cfg.avg * HL_USER2CREDITS;
    this.cap = cfg.avg * cfg.burst * HL_USER2CREDITS;
    const words = cfg.family === 4 ? 1 : 4;
    for (let i = 0; i < words; i++) {
      const sb = Math.max(0, Math.min(32, cfg.srcmask - 32 * i)), db = Math.max(0, Math.min(32, cfg.dstmask - 32 * i));
      this.srcMask[i] = sb === 0 ? 0 : -1 << (32 - sb);
      this.dstMask[i] = db === 0 ? 0 : -1 << (32 - db);
    }
    this.keys = new Int32Array(cap * KW);
    this.expires = new Float64Array(cap);
    this.prev = new Float64Array(cap);
    this.credit = new Float64Array(cap);
    this.chain = new Int32Array(cap);
    this.lruPrev = new Int32Array(cap).fill(-1);
    this.lruNext = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.lruNext[i] = i + 1 < cap ? i + 1 : -1; // free list through lruNext
    let nb = 1;
    while (nb < cfg.size) nb *= 2;
    this.buckets = new Int32Array(nb).fill(-1);
    this.bucketMask = nb - 1;
    this.seed = (Math.random() * 0x100000000) | 0;
  }

  /**
   * `hashlimit_mt_common` for one packet: find or create the bucket of its
   * key, refill it and pay one packet. Returns 1 (under the limit), 0 (over
   * it) or -1 (no bucket: the key could not be read or the table is full).
   */
  packet(c: RuleContext): number {
    const now = Math.floor(c.now);
    if (!(now < this.nextGc)) this.gc(now); // NaN (first packet) included
    if (!this.loadKey(c)) return -1;
    const k = this.scratch;
    const h = this.hash(k, 0);
    let e = this.buckets[h];
    const keys = this.keys;
    for (; e >= 0; e = this.chain[e]) {
      const b = e * KW;
      if (keys[b] === k[0] && keys[b + 4] === k[4] && keys[b + 8] === k[8] && keys[b + 1] === k[1] &&
        keys[b + 2] === k[2] && keys[b + 3] === k[3] && keys[b + 5] === k[5] && keys[b + 6] === k[6] && keys[b + 7] === k[7]) break;
    }
    if (e < 0) {
      e = this.freeHead;
      if (e < 0) {
        this.full++;
        return -1;
      }
      this.freeHead = this.lruNext[e];
      keys.set(k, e * KW);
      this.chain[e] = this.buckets[h];
      this.buckets[h] = e;
      this.count++;
      // rateinfo_init(): a full bucket.
      this.prev[e] = now;
      this.credit[e] = this.cap;
      this.lruPrev[e] = -1;
      this.lruNext[e] = -1;
    } else {
      this.unlinkLru(e);
      // rateinfo_recalc(): earn CREDITS_PER_JIFFY per jiffy since the last packet, up to the cap.
      const delta = now - this.prev[e];
      if (delta > 0) {
        this.prev[e] = now;
        const cr = this.credit[e] + delta * HL_CPJ;
        this.credit[e] = cr > this.cap ? this.cap : cr;
      }
    }
    this.expires[e] = now + this.cfg.expire;
    this.appendLru(e);
    if (this.credit[e] >= this.cost) {
      this.credit[e] -= this.cost;
      return 1;
    }
    return 0;
  }

  /** `hashlimit_init_dst`: the key of the packet in hand into `scratch`; false when its ports cannot be read. */
  private loadKey(c: RuleContext): boolean {
    const k = this.scratch, p = c.pkt, b = p.buf, mode = this.cfg.mode;
    k.fill(0);
    if (this.cfg.family === 4) {
      const o = p.off;
      if ((mode & MODE.SIP) !== 0) k[0] = ((b[o + 12] << 24) | (b[o + 13] << 16) | (b[o + 14] << 8) | b[o + 15]) & this.srcMask[0];
      if ((mode & MODE.DIP) !== 0) k[4] = ((b[o + 16] << 24) | (b[o + 17] << 16) | (b[o + 18] << 8) | b[o + 19]) & this.dstMask[0];
    } else {
      for (let i = 0; i < 4; i++) {
        const s = p.off + 8 + 4 * i, d = p.off + 24 + 4 * i;
        if ((mode & MODE.SIP) !== 0) k[i] = ((b[s] << 24) | (b[s + 1] << 16) | (b[s + 2] << 8) | b[s + 3]) & this.srcMask[i];
        if ((mode & MODE.DIP) !== 0) k[4 + i] = ((b[d] << 24) | (b[d + 1] << 16) | (b[d + 2] << 8) | b[d + 3]) & this.dstMask[i];
      }
    }
    if ((mode & (MODE.SPT | MODE.DPT)) === 0) return true;
    // proto_ports_offset(): ports at 0 for TCP, UDP, DCCP, ESP (SPI), SCTP, UDPLITE; at 4 for AH; none otherwise.
    const pr = p.proto;
    let po: number;
    if (pr === IPPROTO.TCP || pr === IPPROTO.UDP || pr === IPPROTO.DCCP || pr === IPPROTO.ESP || pr === IPPROTO.SCTP || pr === IPPROTO.UDPLITE) po = 0;
    else if (pr === IPPROTO.AH) po = 4;
    else return true;
    if (p.l4Length < po + 4) return false; // Linux: hotdrop
    const o = p.l4Offset + po;
    const sport = (mode & MODE.SPT) !== 0 ? (b[o] << 8) | b[o + 1] : 0;
    const dport = (mode & MODE.DPT) !== 0 ? (b[o + 2] << 8) | b[o + 3] : 0;
    k[8] = (sport << 16) | dport;
    return true;
  }

  /** Bucket of the key at `k[at, at + KW)`. */
  private hash(k: Int32Array, at: number): number {
    let h = this.seed;
    for (let i = 0; i < KW; i++) {
      h = Math.imul(h ^ k[at + i], 0x9e3779b1);
      h ^= h >>> 15;
    }
    h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
    return (h ^ (h >>> 16)) & this.bucketMask;
  }

  /** `htable_gc` when it is due: frees entries idle past their expiry, oldest first. */
  private gc(now: number): void {
    let budget = HL_GC_BUDGET;
    for (let e = this.lruHead; e >= 0 && this.expires[e] <= now; e = this.lruHead) {
      if (budget-- === 0) return; // continue at the next packet; the pass is not over
      this.remove(e);
    }
    this.nextGc = now + this.cfg.gcInterval;
  }

  private remove(e: number): void {
    this.unlinkLru(e);
    const h = this.hash(this.keys, e * KW);
    let p = this.buckets[h];
    if (p === e) this.buckets[h] = this.chain[e];
    else {
      while (p >= 0 && this.chain[p] !== e) p = this.chain[p];
      if (p >= 0) this.chain[p] = this.chain[e];
    }
    this.lruNext[e] = this.freeHead;
    this.freeHead = e;
    this.count--;
  }

  private unlinkLru(e: number): void {
    const p = this.lruPrev[e], n = this.lruNext[e];
    if (p >= 0) this.lruNext[p] = n; else this.lruHead = n;
    if (n >= 0) this.lruPrev[n] = p; else this.lruTail = p;
    this.lruPrev[e] = this.lruNext[e] = -1;
  }

  private appendLru(e: number): void {
    const t = this.lruTail;
    this.lruPrev[e] = t;
    this.lruNext[e] = -1;
    if (t >= 0) this.lruNext[t] = e; else this.lruHead = e;
    this.lruTail = e;
  }
}

/** xt_check_proc_name(): a table name becomes a /proc file name. */
export function checkProcName(o: OptionNode, ext: string, name: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/")) {
    fail(o, `${ext}: invalid name "${name}" (it names a /proc file: not empty, ".", ".." or containing "/"; Linux refuses it: Invalid argument)`);
  }
}

/** A burst: a count, or bytes with a b/kb/mb suffix as libxt_hashlimit's `parse_burst` reads it. */
function parseBurst(o: OptionNode, text: string): number {
  const m = /^(\d+)(b|kb|mb|gb)?$/i.exec(text);
  const unit = m?.[2]?.toLowerCase();
  const v = m === null ? undefined : Number(m[1]) * (unit === "kb" ? 1024 : unit === "mb" ? 1 << 20 : unit === "gb" ? 1 << 30 : 1);
  if (v === undefined || v < 1 || v > 1_000_000) fail(o, `hashlimit: bad value for option "${o.written}", or out of range (1-1000000).`);
  return v;
}

/*
 * Words: +0 index of the HashlimitTable in pool.objects  +1 1 for --hashlimit-above (match over the limit)
 */

/** -m hashlimit. */
export function compileHashlimit(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["hashlimit"]!, "hashlimit");
  o.exclusive("--hashlimit-upto", "--hashlimit-above");
  const upto = o.get("--hashlimit-upto"), above = o.get("--hashlimit-above");
  const rateOpt = upto ?? above;
  if (rateOpt === undefined) return fail(node, "You have to specify --hashlimit");
  const nameOpt = o.get("--hashlimit-name");
  if (nameOpt === undefined) return fail(node, 'hashlimit: option "--hashlimit-name" must be specified');
  const rm = o.get("--hashlimit-rate-match");
  if (rm !== undefined) fail(rm, "hashlimit: --hashlimit-rate-match is not supported by sluice");
  const rateText = o.arg(rateOpt);
  if (rateText.includes("b/s")) fail(rateOpt, `hashlimit: byte rates ("${rateText}") are not supported by sluice; give packets per time unit`);
  const avg = parseRate(rateOpt, rateText, HL_SCALE);
  const bo = o.get("--hashlimit-burst");
  const burst = bo !== undefined ? parseBurst(bo, o.arg(bo)) : 5;
  let mode = 0;
  const mo = o.get("--hashlimit-mode");
  if (mo !== undefined) {
    for (const m of o.arg(mo).split(",")) {
      const bit = MODE_NAMES[m];
      if (bit === undefined) fail(mo, `hashlimit: Bad value for "${mo.written}" option: "${m}"`);
      mode |= bit;
    }
  }
  const plen = env.family === 4 ? 32 : 128;
  const maskOpt = (name: string): number => {
    const x = o.get(name);
    if (x === undefined) return plen;
    const v = parseUint(x, "hashlimit", o.arg(x), 0, 255);
    if (v > plen) fail(x, `hashlimit: ${x.written} ${v} is longer than the address (${plen} bits); Linux refuses it: Invalid argument`);
    return v;
  };
  const srcmask = maskOpt("--hashlimit-srcmask"), dstmask = maskOpt("--hashlimit-dstmask");
  const u32 = (name: string, dflt: number): number => {
    const x = o.get(name);
    return x === undefined ? dflt : parseUint(x, "hashlimit", o.arg(x), 0, 0xffffffff);
  };
  // htable_create(): size 0 is the kernel's default (8192 on hosts with more than 1 GiB), max 0 is 8 x size,
  // a max below size is raised to size; both bounded by HASHLIMIT_MAX_SIZE.
  let size = u32("--hashlimit-htable-size", 0);
  if (size === 0) size = 8192;
  size = Math.min(size, HL_MAX_SIZE);
  let max = u32("--hashlimit-htable-max", 0);
  if (max === 0) max = 8 * size;
  else if (max < size) max = size;
  max = Math.min(max, HL_MAX_SIZE);
  const expire = u32("--hashlimit-htable-expire", 10000);
  const gcInterval = u32("--hashlimit-htable-gcinterval", 1000);
  for (const [name, v] of [["--hashlimit-htable-expire", expire], ["--hashlimit-htable-gcinterval", gcInterval]] as const) {
    if (v === 0) fail(o.get(name)!, `hashlimit: ${name} must be above 0 (Linux refuses 0: Invalid argument)`);
  }
  // hashlimit_mt_check_common(): burst x avg must not overflow the u64 credits.
  const c1 = (BigInt(avg) * BigInt(burst) * BigInt(HL_USER2CREDITS)) % 2n ** 64n;
  if (c1 < BigInt(avg) * BigInt(HL_USER2CREDITS)) {
    fail(bo ?? rateOpt, `hashlimit: overflow, try lower: ${avg}/${burst} (Linux refuses it: Numerical result out of range)`);
  }
  let name = o.arg(nameOpt);
  checkProcName(nameOpt, "hashlimit", name);
  name = name.slice(0, 254); // char name[NAME_MAX]: iptables truncates
  const cfg: HashlimitConfig = { family: env.family, mode, srcmask, dstmask, size, max, expire, gcInterval, avg, burst };
  // Same name and family: the same table (Linux's htable_find_get), within a ruleset whatever the
  // parameters (the first rule's govern, as in Linux); across a reload only when they are unchanged.
  const key = `hashlimit:${env.family}:${name}`;
  const old = env.named.get(key);
  let table: HashlimitTable;
  if (old instanceof HashlimitTable && (env.pool.objects.includes(old) || old.cfgKey === JSON.stringify(cfg))) table = old;
  else table = new HashlimitTable(cfg);
  env.named.set(key, table);
  let idx = env.pool.objects.indexOf(table);
  if (idx < 0) idx = env.pool.addObject(table);
  return { kind: KIND.HASHLIMIT, off: env.pool.push(idx, above !== undefined ? 1 : 0) };
}

/** -m hashlimit: under the limit matches `--hashlimit-upto`, over it `--hashlimit-above`. */
export function evalHashlimit(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32;
  const r = (pool.objects[a[off]] as HashlimitTable).packet(c);
  if (r < 0) return false;
  return (r === 1) !== (a[off + 1] !== 0);
}

