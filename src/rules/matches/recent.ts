/**
 * -m recent (xt_recent.c as in Linux 6.x): named lists of recently seen
 * addresses with the times they were seen, bounded like Linux's module
 * defaults: `ip_list_tot` = 100 addresses per list (the least recently
 * seen is dropped for a new one) and, per address, the last
 * `roundup_pow_of_two(--hitcount)` times (32 without a hitcount; Linux's
 * `ip_pkt_list_tot` is 0 by default since 4.10, and hitcount may be up
 * to 65535). Times are jiffies at HZ = 1000: milliseconds of `ctx.now`.
 *
 * A list is shared by name (Linux: per network namespace, by name only,
 * both families in one list; its `--mask` is the first rule's) and
 * survives a reload; a rule needing more time slots than the list has
 * flushes and regrows it, as `recent_mt_check` does.
 */
import type { MatchNode } from "../ast.js";
import { HOOK, type RuleContext } from "../context.js";
import { MATCHES } from "../extensions.js";
import type { CompiledMatch, MatchEnv, MatchPool } from "../match-api.js";
import { KIND } from "./kinds.js";
import { checkProcName } from "./limit.js";
import { Opts, fail, parseHost, parseUint } from "./parse.js";

/** Linux's `ip_list_tot` module parameter default: addresses per list. */
export const RECENT_LIST_TOT = 100;
/** XT_RECENT_MAX_NSTAMPS: hitcount must stay below it. */
const MAX_NSTAMPS = 1 << 16;
/** Hash buckets (Linux: ip_list_hash_size = roundup_pow_of_two(ip_list_tot)). */
const BUCKETS = 128;

/** XT_RECENT_* check_set bits, Linux's values. */
export const RECENT = { CHECK: 1, SET: 2, UPDATE: 4, REMOVE: 8, TTL: 16, REAP: 32 } as const;

/**
 * One named list. Struct of arrays over RECENT_LIST_TOT entries: masked
 * address words, family, TTL, the ring of time stamps (`stamps`, `mask+1`
 * per entry, `index` the next slot as Linux counts it, `nstamps` the
 * filled ones), hash chains and an LRU list (least recently updated
 * first), free entries linked through `lruNext`.
 */
export class RecentTable {
  readonly name: string;
  /** The list's address mask (the creating rule's `--mask`). */
  readonly mask = new Int32Array(4);
  /** Stamp slots per entry minus one (a power of two minus one). */
  nstampsMask: number;
  stamps: Float64Array;
  readonly addr = new Int32Array(RECENT_LIST_TOT * 4);
  readonly family = new Uint8Array(RECENT_LIST_TOT);
  readonly ttl = new Uint8Array(RECENT_LIST_TOT);
  readonly index = new Int32Array(RECENT_LIST_TOT);
  readonly nstamps = new Int32Array(RECENT_LIST_TOT);
  private readonly chain = new Int32Array(RECENT_LIST_TOT);
  private readonly buckets = new Int32Array(BUCKETS).fill(-1);
  private readonly lruPrev = new Int32Array(RECENT_LIST_TOT);
  private readonly lruNext = new Int32Array(RECENT_LIST_TOT);
  private lruHead = -1;
  private lruTail = -1;
  private freeHead = 0;
  private readonly seed = (Math.random() * 0x100000000) | 0;
  /** Live entries. */
  entries = 0;

  constructor(name: string, mask: readonly number[], nstampsMask: number) {
    this.name = name;
    for (let i = 0; i < 4; i++) this.mask[i] = mask[i]!;
    this.nstampsMask = nstampsMask;
    this.stamps = new Float64Array(RECENT_LIST_TOT * (nstampsMask + 1));
    this.flush();
  }

  /** Empties the list (`recent_table_flush`). */
  flush(): void {
    this.buckets.fill(-1);
    this.lruHead = this.lruTail = -1;
    for (let i = 0; i < RECENT_LIST_TOT; i++) this.lruNext[i] = i + 1 < RECENT_LIST_TOT ? i + 1 : -1;
    this.lruPrev.fill(-1);
    this.freeHead = 0;
    this.entries = 0;
  }

  /** Grows the stamp rings to `mask + 1` slots, flushing the list, when a rule needs more (`recent_mt_check`). */
  ensureStamps(mask: number): void {
    if (mask <= this.nstampsMask) return;
    this.nstampsMask = mask;
    this.stamps = new Float64Array(RECENT_LIST_TOT * (mask + 1));
    this.flush();
  }

  private hash(w0: number, w1: number, w2: number, w3: number): number {
    let h = Math.imul(this.seed ^ w0, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ w1, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ w2, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16) ^ w3, 0x9e3779b1);
    return (h ^ (h >>> 15)) & (BUCKETS - 1);
  }

  /** `recent_entry_lookup`: the entry of an address and family; a TTL of 0 on either side matches any. */
  lookup(fam: number, w0: number, w1: number, w2: number, w3: number, ttl: number): number {
    const a = this.addr;
    for (let e = this.buckets[this.hash(w0, w1, w2, w3)]; e >= 0; e = this.chain[e]) {
      const b = e * 4;
      if (a[b] === w0 && a[b + 1] === w1 && a[b + 2] === w2 && a[b + 3] === w3 && this.family[e] === fam &&
        (ttl === this.ttl[e] || ttl === 0 || this.ttl[e] === 0)) return e;
    }
    return -1;
  }

  /** `recent_entry_init`: a new entry seen now; the least recently updated one makes room when the list is full. */
  insert(fam: number, w0: number, w1: number, w2: number, w3: number, ttl: number, now: number): number {
    if (this.entries >= RECENT_LIST_TOT) this.remove(this.lruHead);
    const e = this.freeHead;
    this.freeHead = this.lruNext[e];
    const b = e * 4, a = this.addr;
    a[b] = w0; a[b + 1] = w1; a[b + 2] = w2; a[b + 3] = w3;
    this.family[e] = fam;
    this.ttl[e] = ttl;
    this.stamps[e * (this.nstampsMask + 1)] = now;
    this.nstamps[e] = 1;
    this.index[e] = 1;
    // list_add_tail on the hash chain: order within a chain does not change lookups.
    const h = this.hash(w0, w1, w2, w3);
    this.chain[e] = this.buckets[h];
    this.buckets[h] = e;
    this.appendLru(e);
    this.entries++;
    return e;
  }

  /** `recent_entry_update`: one more stamp (the ring overwrites the oldest), to the LRU tail. */
  update(e: number, now: number): void {
    const m = this.nstampsMask;
    const i = this.index[e] & m;
    this.stamps[e * (m + 1) + i] = now;
    this.index[e] = i + 1;
    if (i + 1 > this.nstamps[e]) this.nstamps[e] = i + 1;
    this.unlinkLru(e);
    this.appendLru(e);
  }

  /** `recent_entry_remove`. */
  remove(e: number): void {
    const b = e * 4, a = this.addr;
    const h = this.hash(a[b], a[b + 1], a[b + 2], a[b + 3]);
    let p = this.buckets[h];
    if (p === e) this.buckets[h] = this.chain[e];
    else {
      while (p >= 0 && this.chain[p] !== e) p = this.chain[p];
      if (p >= 0) this.chain[p] = this.chain[e];
    }
    this.unlinkLru(e);
    this.lruNext[e] = this.freeHead;
    this.freeHead = e;
    this.entries--;
  }

  /** `recent_entry_reap`: drops the least recently updated entry if its last stamp is before `time` (unless it is `working` about to be updated). */
  reap(time: number, working: number, update: boolean): void {
    const e = this.lruHead;
    if (e < 0 || (e === working && update)) return;
    const last = this.stamps[e * (this.nstampsMask + 1) + this.index[e] - 1];
    if (time > last) this.remove(e);
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

/*
 * Words: +0 index of the RecentTable in pool.objects  +1 check_set (RECENT.*)  +2 --seconds (0: none)
 *        +3 --hitcount  +4 side (0 source, 1 destination)  +5 invert
 */

const COMMANDS = ["--set", "--rcheck", "--update", "--remove"] as const;

/** -m recent. */
export function compileRecent(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["recent"]!, "recent");
  o.exclusive(...COMMANDS);
  const cmd = COMMANDS.map((n) => o.get(n)).find((x) => x !== undefined);
  if (cmd === undefined) return fail(node, "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'");
  let check = cmd.name === "--set" ? RECENT.SET : cmd.name === "--rcheck" ? RECENT.CHECK : cmd.name === "--update" ? RECENT.UPDATE : RECENT.REMOVE;
  o.requires("--reap", "--seconds");
  const sec = o.get("--seconds"), hit = o.get("--hitcount"), rttl = o.get("--rttl"), reap = o.get("--reap");
  const seconds = sec !== undefined ? parseUint(sec, "recent", o.arg(sec), 1, 0xffffffff) : 0;
  const hitCount = hit !== undefined ? parseUint(hit, "recent", o.arg(hit), 0, 0xffffffff) : 0;
  if (rttl !== undefined) check |= RECENT.TTL;
  if (reap !== undefined) check |= RECENT.REAP;
  if ((check & (RECENT.SET | RECENT.REMOVE)) !== 0) {
    const extra = sec ?? hit ?? rttl ?? reap;
    if (extra !== undefined) fail(extra, `recent: ${extra.written} only works with --rcheck or --update (Linux refuses it with ${cmd.written}: Invalid argument)`);
  }
  if (hitCount >= MAX_NSTAMPS) fail(hit!, `recent: hitcount (${hitCount}) is larger than allowed maximum (${MAX_NSTAMPS - 1})`);
  const nameOpt = o.get("--name");
  let name = nameOpt !== undefined ? o.arg(nameOpt) : "DEFAULT";
  if (nameOpt !== undefined) checkProcName(nameOpt, "recent", name);
  name = name.slice(0, 199); // XT_RECENT_NAME_LEN: iptables truncates
  const maskOpt = o.get("--mask");
  const mask = maskOpt !== undefined ? parseHost(maskOpt, "recent", o.arg(maskOpt), env.family) : env.family === 4 ? [-1, 0, 0, 0] : [-1, -1, -1, -1];
  // --rsource / --rdest: the last one given wins (libxt_recent sets `side` for each).
  let side = 0;
  for (const x of node.options) {
    if (x.name === "--rsource") side = 0;
    else if (x.name === "--rdest") side = 1;
  }
  let stampMask = 31;
  if (hitCount > 0) {
    let p = 1;
    while (p < hitCount) p *= 2;
    stampMask = p - 1;
  }
  const key = `recent:${name}`;
  const old = env.named.get(key);
  let table: RecentTable;
  if (old instanceof RecentTable) {
    table = old;
    table.ensureStamps(stampMask);
  } else {
    table = new RecentTable(name, mask, stampMask);
  }
  env.named.set(key, table);
  let idx = env.pool.objects.indexOf(table);
  if (idx < 0) idx = env.pool.addObject(table);
  return { kind: KIND.RECENT, off: env.pool.push(idx, check, seconds | 0, hitCount | 0, side, cmd.negated ? 1 : 0) };
}

/** `recent_mt`. */
export function evalRecent(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32, t = pool.objects[a[off]] as RecentTable;
  const check = a[off + 1], p = c.pkt, b = p.buf, o = p.off;
  let ret = a[off + 5] !== 0;
  const m = t.mask;
  let w0: number, w1 = 0, w2 = 0, w3 = 0, ttl: number, fam: number;
  if (c.family === 4) {
    const at = o + (a[off + 4] === 1 ? 16 : 12);
    w0 = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) & m[0];
    ttl = b[o + 8];
    fam = 4;
  } else {
    const at = o + (a[off + 4] === 1 ? 24 : 8);
    w0 = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) & m[0];
    w1 = ((b[at + 4] << 24) | (b[at + 5] << 16) | (b[at + 6] << 8) | b[at + 7]) & m[1];
    w2 = ((b[at + 8] << 24) | (b[at + 9] << 16) | (b[at + 10] << 8) | b[at + 11]) & m[2];
    w3 = ((b[at + 12] << 24) | (b[at + 13] << 16) | (b[at + 14] << 8) | b[at + 15]) & m[3];
    ttl = b[o + 7];
    fam = 6;
  }
  // "Use TTL as seen before forwarding": a packet with an output device and no local socket.
  const h = c.hook;
  if ((h === HOOK.FORWARD || h === HOOK.OUTPUT || h === HOOK.POSTROUTING) && !c.localOut) ttl = (ttl + 1) & 0xff;
  const now = Math.floor(c.now);
  const e = t.lookup(fam, w0, w1, w2, w3, (check & RECENT.TTL) !== 0 ? ttl : 0);
  if (e < 0) {
    if ((check & RECENT.SET) === 0) return ret;
    t.insert(fam, w0, w1, w2, w3, ttl, now);
    return !ret;
  }
  if ((check & RECENT.SET) !== 0) {
    ret = !ret;
  } else if ((check & RECENT.REMOVE) !== 0) {
    t.remove(e);
    return !ret;
  } else {
    let seconds = a[off + 2];
    if (seconds < 0) seconds += 4294967296; // a uint32 kept as int32
    const hits = a[off + 3];
    const time = now - seconds * 1000;
    const n = t.nstamps[e], base = e * (t.nstampsMask + 1), st = t.stamps;
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (seconds !== 0 && time > st[base + i]) continue;
      if (hits === 0 || ++count >= hits) {
        ret = !ret;
        break;
      }
    }
    if ((check & RECENT.REAP) !== 0) t.reap(time, e, (check & RECENT.UPDATE) !== 0 && ret);
  }
  if ((check & RECENT.SET) !== 0 || ((check & RECENT.UPDATE) !== 0 && ret)) {
    t.update(e, now);
    t.ttl[e] = ttl;
  }
  return ret;
}
