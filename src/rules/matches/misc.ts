/**
 * Header and metadata matches: -m iprange (xt_iprange.c), length
 * (xt_length.c), ttl / hl (ipt_ttl.c, ip6t_hl.c), pkttype (xt_pkttype.c),
 * mac (xt_mac.c), owner (xt_owner.c), frag (ip6t_frag.c), comment
 * (xt_comment.c), statistic (xt_statistic.c) and addrtype (xt_addrtype.c).
 *
 * Where the kernel reads skb fields a userspace gateway does not have, the
 * value is derived and the derivation written next to the match:
 * - pkttype: Linux reads `skb->pkt_type`, set by the Ethernet driver from
 *   the destination MAC (eth_type_trans). sluice derives it from the IP
 *   destination: IPv4 224.0.0.0/4 and IPv6 ff00::/8 are multicast;
 *   255.255.255.255, and a subnet broadcast address (a `broadcast` route
 *   of the route mirror) arriving on that subnet's interface, are
 *   broadcast; the rest is unicast ("host"): a directed broadcast to
 *   another subnet comes to the router's MAC. A locally generated packet
 *   is unicast, as Linux's OUTPUT/POSTROUTING see it (a new skb has
 *   pkt_type PACKET_HOST). Checked on Linux 6.18 (two namespaces and a
 *   veth): 10.0.1.255 from lan0's subnet is broadcast, 203.0.113.255
 *   (wan0's subnet) sent from lan0's is unicast. Not reproduced: a frame
 *   whose MAC and IP destination disagree otherwise; `otherhost` never
 *   reaches the IP hooks (ip_rcv drops PACKET_OTHERHOST): never matches.
 * - addrtype: IPv4 follows `__inet_dev_addr_type`, IPv6 `match_type6`,
 *   both over the route mirror (see addrType4 and matchType6). Checked on
 *   Linux 6.18 with two namespaces: IPv4 blackhole/unreachable/prohibit
 *   destinations are UNICAST (the FIB lookup fails on them), 0.0.0.1 is
 *   UNICAST, a local address of another interface is UNICAST with
 *   --limit-iface-in; IPv6 reject routes and unrouted destinations are
 *   UNREACHABLE, with --limit-iface-in so is anything routed out another
 *   interface. One case is not reproduced: Linux also calls this host's
 *   address on another interface ANYCAST (IPv6), sluice only LOCAL.
 */
import { AF } from "../../packet/constants.js";
import { RTN } from "../../route/constants.js";
import type { RouteSnapshot } from "../../route/table.js";
import type { MatchNode, OptionNode } from "../ast.js";
import type { RuleContext } from "../context.js";
import { BUILTIN_CHAINS, HOOK_BIT, MATCHES } from "../extensions.js";
import type { CompiledMatch, MatchEnv, MatchPool } from "../match-api.js";
import { lookupGroup, lookupUser } from "./accounts.js";
import { KIND } from "./kinds.js";
import { Opts, fail, ipv6Words, numericToIPv4, parseMac, parseUint, parseUintRange, strtoulPartial } from "./parse.js";

/** Sign bit: `(x ^ SIGN)` orders uint32 values kept as int32 with signed comparisons. */
const SIGN = -0x80000000;

/** Big-endian int32 at b[o]. */
function i32at(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

// ---- iprange ----

/*
 * Words: +0 flags (1 source, 2 destination, 4 source inverted, 8 destination inverted)
 *        +1 source min (4 words)  +5 source max  +9 destination min  +13 destination max
 */

function parseRangeAddr(o: OptionNode, text: string, family: 4 | 6): number[] {
  if (family === 4) {
    const v = numericToIPv4(text);
    if (v !== null) return [v, 0, 0, 0];
  } else {
    const w = ipv6Words(text);
    if (w !== null) return w;
  }
  return fail(o, `iprange: Bad value for "${o.written}" option: "${text}"`);
}

/** -m iprange. */
export function compileIprange(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["iprange"]!, "iprange");
  const s = o.get("--src-range"), d = o.get("--dst-range");
  if (s === undefined && d === undefined) fail(node, "iprange match: You must specify `--src-range' or `--dst-range'");
  const w = new Array<number>(17).fill(0);
  for (const [opt, bit, at] of [[s, 1, 1], [d, 2, 9]] as const) {
    if (opt === undefined) continue;
    const t = o.arg(opt), dash = t.indexOf("-");
    const lo = parseRangeAddr(opt, dash < 0 ? t : t.slice(0, dash), env.family);
    const hi = dash < 0 ? lo : parseRangeAddr(opt, t.slice(dash + 1), env.family);
    // A reversed range is accepted (iptables only warns "will never match").
    w[0] |= bit | (opt.negated ? bit << 2 : 0);
    for (let k = 0; k < 4; k++) {
      w[at + k] = lo[k]!;
      w[at + 4 + k] = hi[k]!;
    }
  }
  const off = env.pool.reserveI32(17);
  env.pool.i32.set(w, off);
  return { kind: KIND.IPRANGE, off };
}

/** Unsigned order of the 4 address words at b[o] (big-endian bytes) against words a[p..p+4): -1, 0, 1 (`iprange_ipv6_lt`). */
function cmp6(b: Uint8Array, o: number, a: Int32Array, p: number): number {
  for (let i = 0; i < 4; i++) {
    const x = i32at(b, o + 4 * i) ^ SIGN, y = a[p + i] ^ SIGN;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** `iprange_mt4` / `iprange_mt6`. */
export function evalIprange(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32, flags = a[off], p = c.pkt, b = p.buf;
  if (p.family === AF.INET) {
    if ((flags & 1) !== 0) {
      const x = i32at(b, p.off + 12) ^ SIGN;
      const out = x < (a[off + 1] ^ SIGN) || x > (a[off + 5] ^ SIGN);
      if (out !== ((flags & 4) !== 0)) return false;
    }
    if ((flags & 2) !== 0) {
      const x = i32at(b, p.off + 16) ^ SIGN;
      const out = x < (a[off + 9] ^ SIGN) || x > (a[off + 13] ^ SIGN);
      if (out !== ((flags & 8) !== 0)) return false;
    }
    return true;
  }
  if ((flags & 1) !== 0) {
    const out = cmp6(b, p.off + 8, a, off + 1) < 0 || cmp6(b, p.off + 8, a, off + 5) > 0;
    if (out !== ((flags & 4) !== 0)) return false;
  }
  if ((flags & 2) !== 0) {
    const out = cmp6(b, p.off + 24, a, off + 9) < 0 || cmp6(b, p.off + 24, a, off + 13) > 0;
    if (out !== ((flags & 8) !== 0)) return false;
  }
  return true;
}

// ---- length ----

/** -m length: the IP datagram's length (IPv4 Total Length; IPv6 Payload Length + 40). Words: +0 min, +1 max, +2 invert. */
export function compileLength(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["length"]!, "length");
  const l = o.get("--length");
  if (l === undefined) return fail(node, 'length: option "--length" must be specified');
  const [lo, hi] = parseUintRange(l, "length", o.arg(l), 65535);
  return { kind: KIND.LENGTH, off: env.pool.push(lo, hi, l.negated ? 1 : 0) };
}

/** `length_mt` / `length_mt6`. */
export function evalLength(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32, n = c.pkt.length;
  return (n >= a[off] && n <= a[off + 1]) !== (a[off + 2] !== 0);
}

// ---- ttl, hl ----

/** Comparison modes (IPT_TTL_EQ, NE, LT, GT). Words: +0 mode, +1 value. */
const TTL_EQ = 0, TTL_NE = 1, TTL_LT = 2, TTL_GT = 3;

/** -m ttl (IPv4 TTL) / -m hl (IPv6 hop limit). */
export function compileTtl(node: MatchNode, env: MatchEnv): CompiledMatch {
  const hl = node.name === "hl";
  const p = hl ? "--hl" : "--ttl";
  const o = new Opts(node, MATCHES[node.name]!, node.name);
  o.exclusive(`${p}-eq`, `${p}-lt`, `${p}-gt`);
  const eq = o.get(`${p}-eq`), lt = o.get(`${p}-lt`), gt = o.get(`${p}-gt`);
  const x = eq ?? lt ?? gt;
  if (x === undefined) return fail(node, `${hl ? "hl" : "TTL"} match: You must specify one of \`${p}-eq', \`${p}-lt', \`${p}-gt'`);
  const v = parseUint(x, node.name, o.arg(x), 0, 255);
  const mode = x === eq ? (x.negated ? TTL_NE : TTL_EQ) : x === lt ? TTL_LT : TTL_GT;
  return { kind: hl ? KIND.HL : KIND.TTL, off: env.pool.push(mode, v) };
}

/** `ttl_mt` / `hl_mt6` on the byte given. */
export function evalTtl(off: number, pool: MatchPool, ttl: number): boolean {
  const a = pool.i32, v = a[off + 1];
  switch (a[off]) {
    case TTL_EQ: return ttl === v;
    case TTL_NE: return ttl !== v;
    case TTL_LT: return ttl < v;
    default: return ttl > v;
  }
}

// ---- pkttype ----

/** PACKET_* values (linux/if_packet.h). */
const PACKET = { HOST: 0, BROADCAST: 1, MULTICAST: 2, OTHERHOST: 3 } as const;
const PKTTYPE_NAMES: Readonly<Record<string, number>> = {
  unicast: PACKET.HOST, broadcast: PACKET.BROADCAST, multicast: PACKET.MULTICAST, otherhost: PACKET.OTHERHOST,
  bcast: PACKET.BROADCAST, mcast: PACKET.MULTICAST, host: PACKET.HOST,
};

/** -m pkttype. Words: +0 PACKET_* wanted, +1 invert. */
export function compilePkttype(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["pkttype"]!, "pkttype");
  const t = o.get("--pkt-type");
  if (t === undefined) return fail(node, 'pkttype: option "--pkt-type" must be specified');
  const v = PKTTYPE_NAMES[o.arg(t).toLowerCase()];
  if (v === undefined) fail(t, `Bad packet type '${o.arg(t)}'`);
  return { kind: KIND.PKTTYPE, off: env.pool.push(v, t.negated ? 1 : 0) };
}

/** The packet type as derived in the file comment. */
function packetType(c: RuleContext): number {
  if (c.localOut) return PACKET.HOST;
  const p = c.pkt, b = p.buf;
  if (p.family === AF.INET6) return b[p.off + 24] === 0xff ? PACKET.MULTICAST : PACKET.HOST;
  const d = i32at(b, p.off + 16);
  if ((d & 0xf0000000) === (0xe0000000 | 0)) return PACKET.MULTICAST;
  if (d === -1) return PACKET.BROADCAST;
  const rt = c.routes;
  if (rt !== null) {
    const r = rt.lookup4(d);
    if (r >= 0 && rt.type[r] === RTN.BROADCAST && rt.ifindex[r] === c.inIfindex) return PACKET.BROADCAST;
  }
  return PACKET.HOST;
}

/** `pkttype_mt` over the derived packet type. */
export function evalPkttype(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32;
  return (packetType(c) === a[off]) !== (a[off + 1] !== 0);
}

// ---- mac ----

/** -m mac. Words: +0..+5 the address bytes, +6 invert. */
export function compileMac(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["mac"]!, "mac");
  const m = o.get("--mac-source");
  if (m === undefined) return fail(node, 'mac: option "--mac-source" must be specified');
  return { kind: KIND.MAC, off: env.pool.push(...parseMac(m, o.arg(m)), m.negated ? 1 : 0) };
}

/** `mac_mt`: no Ethernet source known, no match (negated or not). */
export function evalMac(off: number, pool: MatchPool, c: RuleContext): boolean {
  if (c.hwLen !== 6) return false;
  const a = pool.i32, h = c.hwBuf, o = c.hwOff;
  const eq = h[o] === a[off] && h[o + 1] === a[off + 1] && h[o + 2] === a[off + 2] &&
    h[o + 3] === a[off + 3] && h[o + 4] === a[off + 4] && h[o + 5] === a[off + 5];
  return eq !== (a[off + 6] !== 0);
}

// ---- owner ----

/** XT_OWNER_* bits. Words: +0 match, +1 invert, +2 uid min, +3 uid max, +4 gid min, +5 gid max (uint32 as int32). */
const OWNER = { UID: 1, GID: 2, SOCKET: 4, SUPPL_GROUPS: 8 } as const;

function parseOwnerRange(o: OptionNode, text: string, lookup: (n: string) => number | undefined): [number, number] {
  const byName = lookup(text);
  if (byName !== undefined) return [byName, byName];
  // owner_parse_range(): `a`, `a-b` or `a:b`; (uid_t)-1 is reserved.
  const bad = (): never => fail(o, `owner: Bad value for "${o.written}" option: "${text}"`);
  const a = strtoulPartial(text, 0, 0xfffffffe);
  if (a === null) return bad();
  let hi = a.value;
  let end = a.end;
  if (text[end] === "-" || text[end] === ":") {
    const rest = text.slice(end + 1);
    const b = strtoulPartial(rest, 0, 0xfffffffe);
    if (b === null) return bad();
    hi = b.value;
    end += 1 + b.end;
  }
  if (end !== text.length) return bad();
  if (hi < a.value) fail(o, `owner: ${o.written} ${text}: the range is reversed (Linux refuses it: Invalid argument)`);
  return [a.value, hi];
}

/** -m owner (locally generated packets: OUTPUT, POSTROUTING). */
export function compileOwner(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["owner"]!, "owner");
  const u = o.get("--uid-owner"), g = o.get("--gid-owner"), s = o.get("--socket-exists"), sg = o.get("--suppl-groups");
  if (sg !== undefined && g === undefined) fail(sg, `owner: Bad value for "${sg.written}" option: "you need to use --gid-owner first"`);
  if (u === undefined && g === undefined && s === undefined) fail(node, "owner: At least one of --uid-owner, --gid-owner or --socket-exists is required");
  if (sg !== undefined) fail(sg, "owner: --suppl-groups is not supported by sluice: the I/O path knows the socket's uid and gid, not its supplementary groups");
  let match = 0, inv = 0;
  let uid: [number, number] = [0, 0], gid: [number, number] = [0, 0];
  if (u !== undefined) { match |= OWNER.UID; if (u.negated) inv |= OWNER.UID; uid = parseOwnerRange(u, o.arg(u), lookupUser); }
  if (g !== undefined) { match |= OWNER.GID; if (g.negated) inv |= OWNER.GID; gid = parseOwnerRange(g, o.arg(g), lookupGroup); }
  if (s !== undefined) { match |= OWNER.SOCKET; if (s.negated) inv |= OWNER.SOCKET; }
  return { kind: KIND.OWNER, off: env.pool.push(match, inv, uid[0] | 0, uid[1] | 0, gid[0] | 0, gid[1] | 0) };
}

/** `owner_mt`: a packet without a known owner (uid -1) has no socket. */
export function evalOwner(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32, match = a[off], inv = a[off + 1];
  if (c.uid < 0) return (match ^ inv) === 0;
  if ((match & inv & OWNER.SOCKET) !== 0) return false;
  if ((match & OWNER.UID) !== 0) {
    const x = (c.uid | 0) ^ SIGN;
    if ((x >= (a[off + 2] ^ SIGN) && x <= (a[off + 3] ^ SIGN)) === ((inv & OWNER.UID) !== 0)) return false;
  }
  if ((match & OWNER.GID) !== 0) {
    const x = (c.gid | 0) ^ SIGN;
    if ((x >= (a[off + 4] ^ SIGN) && x <= (a[off + 5] ^ SIGN)) === ((inv & OWNER.GID) !== 0)) return false;
  }
  return true;
}

// ---- frag (IPv6) ----

/** IP6T_FRAG_* flags. Words: +0 id min, +1 id max, +2 flags, +3 ids inverted. */
const FRAG = { RES: 1, FST: 2, MF: 4, NMF: 8 } as const;

/** -m frag. `--fraglen` is parsed and, as in Linux's ip6t_frag, not compared. */
export function compileFrag(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["frag"]!, "frag");
  o.exclusive("--fragmore", "--fraglast");
  const id = o.get("--fragid"), len = o.get("--fraglen");
  const ids = id !== undefined ? parseUintRange(id, "frag", o.arg(id), 0xffffffff) : [0, 0xffffffff];
  if (len !== undefined) parseUint(len, "frag", o.arg(len), 0, 0xffffffff);
  let flags = 0;
  if (o.get("--fragres") !== undefined) flags |= FRAG.RES;
  if (o.get("--fragfirst") !== undefined) flags |= FRAG.FST;
  if (o.get("--fragmore") !== undefined) flags |= FRAG.MF;
  if (o.get("--fraglast") !== undefined) flags |= FRAG.NMF;
  return { kind: KIND.FRAG, off: env.pool.push(ids[0]! | 0, ids[1]! | 0, flags, id?.negated === true ? 1 : 0) };
}

/** `frag_mt6`: only packets with a fragment header (a reassembled datagram has none). */
export function evalFrag(off: number, pool: MatchPool, c: RuleContext): boolean {
  const p = c.pkt;
  if (p.family !== AF.INET6) return false;
  const f = p.ip6.fragmentHeaderOffset;
  if (f < 0) return false;
  const a = pool.i32, b = p.buf, flags = a[off + 2];
  const x = i32at(b, f + 4) ^ SIGN;
  if ((x >= (a[off] ^ SIGN) && x <= (a[off + 1] ^ SIGN)) === (a[off + 3] !== 0)) return false;
  const fo = (b[f + 2] << 8) | b[f + 3];
  if ((flags & FRAG.RES) !== 0 && (b[f + 1] !== 0 || (fo & 6) !== 0)) return false;
  if ((flags & FRAG.FST) !== 0 && (fo & ~7) !== 0) return false;
  if ((flags & FRAG.MF) !== 0 && (fo & 1) === 0) return false;
  if ((flags & FRAG.NMF) !== 0 && (fo & 1) !== 0) return false;
  return true;
}

// ---- comment ----

/** -m comment: always matches; the text stays in the AST for `rules save`. */
export function compileComment(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["comment"]!, "comment");
  if (o.get("--comment") === undefined) fail(node, 'comment: option "--comment" must be specified');
  return { kind: KIND.COMMENT, off: env.pool.i32Length };
}

// ---- statistic ----

/*
 * random: +0 probability - 1, in 2^-31 units (-1: never, 2^31-1: always), +1 invert
 * nth:    +0 every - 1, +1 invert, +2 offset of the counter in pool.f64
 */

let rng = 0x2545f491;

/** Seeds the generator behind `--mode random` (tests; it is seeded from Math.random at startup otherwise). */
export function seedStatisticRandom(seed: number): void {
  rng = seed | 0 || 1;
}
seedStatisticRandom((Math.random() * 0x100000000) | 0);

/** -m statistic. */
export function compileStatistic(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["statistic"]!, "statistic");
  const mo = o.get("--mode");
  if (mo === undefined) return fail(node, 'statistic: option "--mode" must be specified');
  const mode = o.arg(mo);
  if (mode !== "random" && mode !== "nth") fail(mo, `Bad mode "${mode}"`);
  const pr = o.get("--probability"), ev = o.get("--every"), pk = o.get("--packet");
  o.requires("--every", "--packet");
  o.requires("--packet", "--every");
  if (mode === "random") {
    if (pr === undefined) return fail(node, "--probability must be specified when using random mode");
    const x = ev ?? pk;
    if (x !== undefined) fail(x, `${x.written} can only be used in nth mode`);
    const t = o.arg(pr);
    const v = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) ? Number(t) : NaN;
    if (!(v >= 0 && v <= 1)) fail(pr, `statistic: bad value for option "${pr.written}", or out of range (0-1).`);
    // lround(0x80000000 * p): a packet matches when (random & 0x7fffffff) < that.
    const prob = Math.round(0x80000000 * v);
    return { kind: KIND.STATISTIC_RANDOM, off: env.pool.push((prob - 1) | 0, pr.negated ? 1 : 0) };
  }
  if (ev === undefined || pk === undefined) return fail(node, "--every and --packet must be specified when using nth mode");
  if (pr !== undefined) fail(pr, `${pr.written} can only be used in random mode`);
  const every = parseUint(ev, "statistic", o.arg(ev), 1, 0xffffffff) - 1;
  const packet = parseUint(pk, "statistic", o.arg(pk), 0, 0xffffffff);
  if (packet > every) fail(pk, "the --packet p must be 0 <= p <= n-1");
  const s = env.pool.reserveF64(1, every - packet);
  return { kind: KIND.STATISTIC_NTH, off: env.pool.push(every | 0, ev.negated ? 1 : 0, s) };
}

/** `statistic_mt` random mode (xorshift32 instead of get_random_u32). */
export function evalStatisticRandom(off: number, pool: MatchPool): boolean {
  let x = rng;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  rng = x;
  const a = pool.i32;
  return ((x & 0x7fffffff) <= a[off]) !== (a[off + 1] !== 0);
}

/** `statistic_mt` nth mode: the counter runs 0..every, the packet that brings it to 0 matches. */
export function evalStatisticNth(off: number, pool: MatchPool): boolean {
  const a = pool.i32, f = pool.f64, s = a[off + 2];
  let every = a[off];
  if (every < 0) every += 4294967296;
  const n = f[s] === every ? 0 : f[s] + 1;
  f[s] = n;
  return (n === 0) !== (a[off + 1] !== 0);
}

// ---- addrtype ----

/** XT_ADDRTYPE_* = 1 << RTN_*, in RTN order. */
const ADDRTYPE_NAMES = ["UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"];
const AT = { UNSPEC: 1, UNICAST: 2, LOCAL: 4, BROADCAST: 8, ANYCAST: 16, MULTICAST: 32, BLACKHOLE: 64, UNREACHABLE: 128, PROHIBIT: 256 } as const;
/** Words: +0 source types, +1 destination types, +2 flags (ADDR.*). */
const ADDR = { INV_SRC: 1, INV_DST: 2, LIMIT_IN: 4, LIMIT_OUT: 8 } as const;

function parseTypes(o: OptionNode, text: string): number {
  let v = 0;
  for (const t of text.split(",")) {
    const i = ADDRTYPE_NAMES.indexOf(t.toUpperCase());
    if (i < 0) fail(o, `addrtype: bad type "${t}"`);
    v |= 1 << i;
  }
  return v;
}

/** -m addrtype. */
export function compileAddrtype(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["addrtype"]!, "addrtype");
  o.exclusive("--limit-iface-in", "--limit-iface-out");
  const s = o.get("--src-type"), d = o.get("--dst-type"), li = o.get("--limit-iface-in"), lo = o.get("--limit-iface-out");
  if (s === undefined && d === undefined) return fail(node, "addrtype: you must specify --src-type or --dst-type");
  const src = s !== undefined ? parseTypes(s, o.arg(s)) : 0, dst = d !== undefined ? parseTypes(d, o.arg(d)) : 0;
  let flags = 0;
  if (s?.negated === true) flags |= ADDR.INV_SRC;
  if (d?.negated === true) flags |= ADDR.INV_DST;
  if (li !== undefined) flags |= ADDR.LIMIT_IN;
  if (lo !== undefined) flags |= ADDR.LIMIT_OUT;
  // addrtype_mt_checkentry_v1(): interface limits by hook (known here for built-in chains; the
  // rule compiler checks user chains against the hooks that reach them).
  const hooks = BUILTIN_CHAINS[env.table]?.[env.chain] ?? 0;
  if (lo !== undefined && (hooks & (HOOK_BIT.PREROUTING | HOOK_BIT.INPUT)) !== 0) fail(lo, "addrtype: output interface limitation not valid in PREROUTING and INPUT");
  if (li !== undefined && (hooks & (HOOK_BIT.POSTROUTING | HOOK_BIT.OUTPUT)) !== 0) fail(li, "addrtype: input interface limitation not valid in POSTROUTING and OUTPUT");
  if (env.family === 6) {
    // The kernel's checks, in its order, over both options; the message points at the option concerned.
    const at = (bad: (m: number) => boolean): OptionNode => (s !== undefined && bad(src) ? s : d!);
    const hole = (m: number): boolean => (m & AT.BLACKHOLE) !== 0, high = (m: number): boolean => m >= AT.PROHIBIT;
    const bcast = (m: number): boolean => (m & AT.BROADCAST) !== 0;
    if (hole(src | dst)) fail(at(hole), "addrtype: ipv6 BLACKHOLE matching not supported");
    if (high(src) || high(dst)) fail(at(high), "addrtype: ipv6 PROHIBIT (THROW, NAT ..) matching not supported");
    if (bcast(src | dst)) fail(at(bcast), "addrtype: ipv6 does not support BROADCAST matching");
  }
  return { kind: KIND.ADDRTYPE, off: env.pool.push(src, dst, flags) };
}

/**
 * `__inet_dev_addr_type`: 0.0.0.0 and 255.255.255.255 are BROADCAST,
 * 224.0.0.0/4 MULTICAST; otherwise the type of the route the address
 * takes if the lookup succeeds (`fib_table_lookup` fails on blackhole,
 * unreachable, prohibit and throw routes, so those count as UNICAST, as
 * in Linux) and its device is `dev` when one is given; else UNICAST.
 * Linux looks in the local table, merged with main unless policy rules
 * exist; main's routes are all UNICAST here, so one lookup serves.
 */
function addrType4(rt: RouteSnapshot | null, addr: number, dev: number): number {
  if (addr === 0 || addr === -1) return RTN.BROADCAST; // ipv4_is_zeronet (0.0.0.0 only since Linux 5.3), ipv4_is_lbcast
  if ((addr & (0xf0000000 | 0)) === (0xe0000000 | 0)) return RTN.MULTICAST;
  if (rt === null) return RTN.UNICAST;
  const r = rt.lookup4(addr);
  if (r < 0) return RTN.UNICAST;
  const t = rt.type[r];
  if (t !== RTN.LOCAL && t !== RTN.BROADCAST && t !== RTN.ANYCAST && t !== RTN.MULTICAST) return RTN.UNICAST;
  if (dev !== 0 && rt.ifindex[r] !== dev) return RTN.UNICAST;
  return t;
}

/** `match_type6` on the address at b[o]: the address class (ipv6_addr_type) for UNICAST/MULTICAST/UNSPEC, the route for the rest. */
function matchType6(rt: RouteSnapshot | null, b: Uint8Array, o: number, mask: number, dev: number): boolean {
  const w0 = i32at(b, o), w1 = i32at(b, o + 4), w2 = i32at(b, o + 8), w3 = i32at(b, o + 12);
  const multicast = (w0 >>> 24) === 0xff;
  const any = (w0 | w1 | w2 | w3) === 0;
  // __ipv6_addr_type(): every address but multicast, ::, and ::ffff:0:0/96 (v4-mapped) is unicast.
  const mapped = (w0 | w1) === 0 && w2 === 0xffff;
  const unicast = !multicast && !any && !mapped;
  if ((mask & AT.MULTICAST) !== 0 && !multicast) return false;
  if ((mask & AT.UNICAST) !== 0 && !unicast) return false;
  if ((mask & AT.UNSPEC) !== 0 && !any) return false;
  if ((mask & (AT.LOCAL | AT.ANYCAST | AT.UNREACHABLE)) === 0) return true;
  // match_lookup_rt6() with the route mirror. With an interface limit the kernel's lookup is bound
  // to that interface (flowi6_oif): a destination routed elsewhere is unreachable from it.
  if (rt === null) return false;
  const r = rt.lookup6(w0, w1, w2, w3);
  let ret = 0;
  // nf_ipv6_chk_addr(addr, dev): the address is assigned to dev (its local route is on dev).
  if (dev !== 0 && (mask & AT.LOCAL) !== 0 && r >= 0 && rt.type[r] === RTN.LOCAL && rt.ifindex[r] === dev) ret = AT.LOCAL;
  if (r < 0) return (mask & AT.UNREACHABLE) !== 0; // no route: the lookup fails
  const t = rt.type[r];
  // Reject routes (unreachable, prohibit, blackhole, throw) fail the lookup with their error.
  if (t === RTN.UNREACHABLE || t === RTN.PROHIBIT || t === RTN.BLACKHOLE || t === RTN.THROW || (dev !== 0 && rt.ifindex[r] !== dev)) {
    return (mask & AT.UNREACHABLE) !== 0;
  }
  if (dev === 0 && t === RTN.LOCAL) ret |= AT.LOCAL; // RTF_LOCAL
  // ipv6_anycast_destination(): an anycast route, or the subnet-router anycast address of a connected
  // prefix shorter than /127 (the address is the prefix itself: no host bit set).
  if (t === RTN.ANYCAST) ret |= AT.ANYCAST;
  else if (t === RTN.UNICAST && rt.gwFamily[r] === 0 && rt.prefixLen[r] < 127 && hostBitsZero(w0, w1, w2, w3, rt.prefixLen[r])) ret |= AT.ANYCAST;
  return (mask & ret) !== 0;
}

/** True when word `w` (word `i` of an address) has no bit set beyond the first `plen` of the address. */
function wordHostZero(w: number, i: number, plen: number): boolean {
  const bits = plen - 32 * i;
  if (bits >= 32) return true;
  if (bits <= 0) return w === 0;
  return (w & ~(-1 << (32 - bits))) === 0;
}

/** True when the address has no bit set beyond the first `plen`. */
function hostBitsZero(w0: number, w1: number, w2: number, w3: number, plen: number): boolean {
  return wordHostZero(w0, 0, plen) && wordHostZero(w1, 1, plen) && wordHostZero(w2, 2, plen) && wordHostZero(w3, 3, plen);
}

/** `addrtype_mt_v1`. */
export function evalAddrtype(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32, src = a[off], dst = a[off + 1], flags = a[off + 2], p = c.pkt, b = p.buf;
  const dev = (flags & ADDR.LIMIT_IN) !== 0 ? c.inIfindex : (flags & ADDR.LIMIT_OUT) !== 0 ? c.outIfindex : 0;
  const rt = c.routes;
  if (p.family === AF.INET) {
    if (src !== 0 && ((src & (1 << addrType4(rt, i32at(b, p.off + 12), dev))) !== 0) === ((flags & ADDR.INV_SRC) !== 0)) return false;
    if (dst !== 0 && ((dst & (1 << addrType4(rt, i32at(b, p.off + 16), dev))) !== 0) === ((flags & ADDR.INV_DST) !== 0)) return false;
    return true;
  }
  if (src !== 0 && matchType6(rt, b, p.off + 8, src, dev) === ((flags & ADDR.INV_SRC) !== 0)) return false;
  if (dst !== 0 && matchType6(rt, b, p.off + 24, dst, dev) === ((flags & ADDR.INV_DST) !== 0)) return false;
  return true;
}

