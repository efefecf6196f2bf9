/**
 * Connection-state matches: -m conntrack (xt_conntrack.c, revision 3),
 * -m state (xt_state.c), -m mark (xt_mark.c) and -m connmark
 * (xt_connmark.c). They read the tracker's view of the packet in hand:
 * `ctx.ctinfo` and the connection `ctx.ct.entry` in `ctx.ct.table`.
 *
 * A packet "has a connection" (Linux: `nf_ct_get` returns one) when the
 * tracker gave it an entry and its ctinfo is neither INVALID nor UNTRACKED.
 */
import { lookupProtocol } from "../names.js";
import { CTINFO, STATUS } from "../../conntrack/constants.js";
import type { MatchNode, OptionNode } from "../ast.js";
import type { RuleContext } from "../context.js";
import { MATCHES } from "../extensions.js";
import type { CompiledMatch, MatchEnv, MatchPool } from "../match-api.js";
import { KIND } from "./kinds.js";
import { Opts, fail, parseHostMask, parsePortRange, parseUintRange, strtoul, strtoulPartial } from "./parse.js";

/** State bits (sluice's; Linux's XT_CONNTRACK_STATE_* are internal to the module too). */
const ST = { INVALID: 1, ESTABLISHED: 2, RELATED: 4, NEW: 8, UNTRACKED: 16, SNAT: 32, DNAT: 64 } as const;

/**
 * State bit by ctinfo (`XT_CONNTRACK_STATE_BIT(ctinfo)`: the reply
 * variants count as their original): ESTABLISHED, RELATED, NEW,
 * ESTABLISHED_REPLY, RELATED_REPLY, -, -, UNTRACKED, INVALID.
 */
// prettier-ignore
const STATE_OF_CTINFO = new Int32Array([
  ST.ESTABLISHED, ST.RELATED, ST.NEW, ST.ESTABLISHED, ST.RELATED, ST.INVALID, ST.INVALID, ST.UNTRACKED, ST.INVALID,
]);

/** True when the packet has a connection (Linux: `nf_ct_get()` != NULL). */
function hasConn(c: RuleContext): boolean {
  const ci = c.ctinfo;
  return c.ct.entry >= 0 && ci !== CTINFO.INVALID && ci !== CTINFO.UNTRACKED;
}

/** The state bit of the packet in hand (`conntrack_mt` / `state_mt`). */
function stateBit(c: RuleContext): number {
  if (hasConn(c)) return STATE_OF_CTINFO[c.ctinfo];
  return c.ctinfo === CTINFO.UNTRACKED ? ST.UNTRACKED : ST.INVALID;
}

/**
 * A comma list of names, each a case-insensitive prefix of a known name
 * (`strncasecmp(item, NAME, strlen(item))` as libxt_conntrack reads
 * them); the message shows the rest of the list from the bad item, as
 * iptables does.
 */
function parseNameList(o: OptionNode, text: string, names: readonly (readonly [string, number])[], what: string): number {
  let v = 0;
  let rest = text;
  for (;;) {
    const comma = rest.indexOf(",");
    const item = comma < 0 ? rest : rest.slice(0, comma);
    const hit = item === "" ? undefined : names.find(([n]) => n.toLowerCase().startsWith(item.toLowerCase()));
    if (hit === undefined) fail(o, `Bad ${what} "${rest}"`);
    v |= hit[1];
    if (comma < 0) return v;
    rest = rest.slice(comma + 1);
  }
}

const CTSTATE_NAMES = [
  ["INVALID", ST.INVALID], ["NEW", ST.NEW], ["RELATED", ST.RELATED], ["ESTABLISHED", ST.ESTABLISHED],
  ["UNTRACKED", ST.UNTRACKED], ["SNAT", ST.SNAT], ["DNAT", ST.DNAT],
] as const;
const STATE_NAMES = [
  ["INVALID", ST.INVALID], ["NEW", ST.NEW], ["ESTABLISHED", ST.ESTABLISHED], ["RELATED", ST.RELATED], ["UNTRACKED", ST.UNTRACKED],
] as const;
const CTSTATUS_NAMES = [
  ["NONE", 0], ["EXPECTED", STATUS.EXPECTED], ["SEEN_REPLY", STATUS.SEEN_REPLY], ["ASSURED", STATUS.ASSURED], ["CONFIRMED", STATUS.CONFIRMED],
] as const;

// ---- conntrack ----

/*
 * Words:
 *   +0 match flags (F.*)   +1 invert flags   +2 state mask   +3 status mask   +4 l4 protocol
 *   +5 orig src (4 words), +9 its mask (4)    +13 orig dst, +17 mask
 *   +21 reply src, +25 mask                   +29 reply dst, +33 mask
 *   +37 orig sport min, max  +39 orig dport min, max  +41 reply sport min, max  +43 reply dport min, max
 *   +45 expire min (s)  +46 expire max (uint32 as int32)  +47 direction wanted (0 original, 1 reply)
 */
const F = {
  STATE: 1, PROTO: 2, ORIGSRC: 4, ORIGDST: 8, REPLSRC: 16, REPLDST: 32, STATUS: 64, EXPIRES: 128,
  ORIGSRC_PORT: 256, ORIGDST_PORT: 512, REPLSRC_PORT: 1024, REPLDST_PORT: 2048, DIRECTION: 4096,
} as const;
const CT_WORDS = 48;
const ADDR_OPTS: readonly [string, number, number][] = [
  ["--ctorigsrc", F.ORIGSRC, 5], ["--ctorigdst", F.ORIGDST, 13], ["--ctreplsrc", F.REPLSRC, 21], ["--ctrepldst", F.REPLDST, 29],
];
const PORT_OPTS: readonly [string, number, number][] = [
  ["--ctorigsrcport", F.ORIGSRC_PORT, 37], ["--ctorigdstport", F.ORIGDST_PORT, 39],
  ["--ctreplsrcport", F.REPLSRC_PORT, 41], ["--ctrepldstport", F.REPLDST_PORT, 43],
];
/** Sign bit: `(x ^ SIGN)` orders uint32 values stored as int32 with signed comparisons. */
const SIGN = -0x80000000;

/** -m conntrack. */
export function compileConntrack(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["conntrack"]!, "conntrack");
  if (node.options.length === 0) fail(node, "conntrack: At least one option is required");
  const off = env.pool.reserveI32(CT_WORDS);
  const w: number[] = new Array<number>(CT_WORDS).fill(0);
  let flags = 0, inv = 0;
  const set = (opt: OptionNode, f: number): void => {
    flags |= f;
    if (opt.negated) inv |= f;
  };
  for (let k = 37; k < 45; k += 2) w[k + 1] = 0xffff;
  let x = o.get("--ctstate");
  if (x !== undefined) { set(x, F.STATE); w[2] = parseNameList(x, o.arg(x), CTSTATE_NAMES, "ctstate"); }
  x = o.get("--ctstatus");
  if (x !== undefined) { set(x, F.STATUS); w[3] = parseNameList(x, o.arg(x), CTSTATUS_NAMES, "ctstatus"); }
  x = o.get("--ctproto");
  if (x !== undefined) {
    set(x, F.PROTO);
    const t = o.arg(x);
    const n = strtoul(t, 0, 255) ?? lookupProtocol(t);
    if (n === undefined) fail(x, `unknown protocol "${t}" specified`);
    w[4] = n;
  }
  for (const [name, f, at] of ADDR_OPTS) {
    const a = o.get(name);
    if (a === undefined) continue;
    set(a, f);
    const { addr, mask } = parseHostMask(a, "conntrack", o.arg(a), env.family);
    for (let k = 0; k < 4; k++) {
      w[at + k] = addr[k]! & mask[k]!;
      w[at + 4 + k] = mask[k]!;
    }
  }
  for (const [name, f, at] of PORT_OPTS) {
    const p = o.get(name);
    if (p === undefined) continue;
    set(p, f);
    // XTTYPE_PORTRC: `port[:port]`; a reversed range is kept (it never matches), as iptables keeps it.
    const t = o.arg(p), colon = t.indexOf(":");
    const r = colon < 0 ? parsePortRange(p, t, null) : [parsePortRange(p, t.slice(0, colon), null)[0], parsePortRange(p, t.slice(colon + 1), null)[0]];
    w[at] = r[0]!;
    w[at + 1] = r[1]!;
  }
  x = o.get("--ctexpire");
  if (x !== undefined) {
    set(x, F.EXPIRES);
    const [lo, hi] = parseUintRange(x, "conntrack", o.arg(x), 0xffffffff);
    w[45] = lo | 0;
    w[46] = hi | 0;
  }
  x = o.get("--ctdir");
  if (x !== undefined) {
    const d = o.arg(x).toUpperCase();
    if (d !== "ORIGINAL" && d !== "REPLY") fail(x, `conntrack: Bad value for "--ctdir" option: "${o.arg(x)}"`);
    flags |= F.DIRECTION;
    w[47] = d === "REPLY" ? 1 : 0;
  }
  w[0] = flags;
  w[1] = inv;
  env.pool.i32.set(w, off);
  return { kind: KIND.CONNTRACK, off };
}

/** Masked compare of 4 address words at `at` (entry) against value/mask at `p` (pool). */
function addrMatch(t: Int32Array, at: number, a: Int32Array, p: number): boolean {
  return ((t[at] & a[p + 4]) === a[p] && (t[at + 1] & a[p + 5]) === a[p + 1] &&
    (t[at + 2] & a[p + 6]) === a[p + 2] && (t[at + 3] & a[p + 7]) === a[p + 3]);
}

/** `conntrack_mt` (revision 3). */
export function evalConntrack(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32, flags = a[off], inv = a[off + 1];
  const has = hasConn(c);
  if ((flags & F.STATE) !== 0) {
    let bit = stateBit(c);
    if (has) {
      const st = c.ct.table.status[c.ct.entry];
      if ((st & STATUS.SRC_NAT) !== 0) bit |= ST.SNAT;
      if ((st & STATUS.DST_NAT) !== 0) bit |= ST.DNAT;
    }
    if (((a[off + 2] & bit) !== 0) === ((inv & F.STATE) !== 0)) return false;
  }
  if (!has) return (flags & F.STATE) !== 0;
  const tb = c.ct.table, i = c.ct.entry;
  if ((flags & F.DIRECTION) !== 0) {
    const reply = c.ctinfo >= CTINFO.ESTABLISHED_REPLY ? 1 : 0;
    if (reply !== a[off + 47]) return false;
  }
  if ((flags & (F.ORIGSRC | F.ORIGDST | F.REPLSRC | F.REPLDST)) !== 0) {
    const t = tb.i32, base = tb.addrAt(i);
    if ((flags & F.ORIGSRC) !== 0 && addrMatch(t, base, a, off + 5) === ((inv & F.ORIGSRC) !== 0)) return false;
    if ((flags & F.ORIGDST) !== 0 && addrMatch(t, base + 4, a, off + 13) === ((inv & F.ORIGDST) !== 0)) return false;
    if ((flags & F.REPLSRC) !== 0 && addrMatch(t, base + 8, a, off + 21) === ((inv & F.REPLSRC) !== 0)) return false;
    if ((flags & F.REPLDST) !== 0 && addrMatch(t, base + 12, a, off + 29) === ((inv & F.REPLDST) !== 0)) return false;
  }
  // ct_proto_port_check_v3(): the ports are the tuples' `u.all` (ICMP: id and type<<8|code).
  if ((flags & F.PROTO) !== 0 && (tb.proto(i) === a[off + 4]) === ((inv & F.PROTO) !== 0)) return false;
  if ((flags & (F.ORIGSRC_PORT | F.ORIGDST_PORT | F.REPLSRC_PORT | F.REPLDST_PORT)) !== 0) {
    for (let k = 0; k < 4; k++) {
      const f = F.ORIGSRC_PORT << k;
      if ((flags & f) === 0) continue;
      const port = tb.port(i, k), lo = a[off + 37 + 2 * k], hi = a[off + 38 + 2 * k];
      if ((port >= lo && port <= hi) === ((inv & f) !== 0)) return false;
    }
  }
  if ((flags & F.STATUS) !== 0 && ((a[off + 3] & tb.status[i]) !== 0) === ((inv & F.STATUS) !== 0)) return false;
  if ((flags & F.EXPIRES) !== 0) {
    // nf_ct_expires() / HZ: whole seconds left; an unconfirmed entry has none yet.
    let e = 0;
    if (tb.isLive(i)) {
      const left = tb.expires(i) - c.now;
      if (left > 0) e = Math.floor(left / 1000);
    }
    const x = e ^ SIGN;
    if ((x >= (a[off + 45] ^ SIGN) && x <= (a[off + 46] ^ SIGN)) === ((inv & F.EXPIRES) !== 0)) return false;
  }
  return true;
}

// ---- state ----

/** -m state: one word, the accepted state bits (`! --state` stores the complement, as libxt_state does). */
export function compileState(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["state"]!, "state");
  const s = o.get("--state");
  if (s === undefined) return fail(node, "state: option \"--state\" must be specified");
  let mask = parseNameList(s, o.arg(s), STATE_NAMES, "state");
  if (s.negated) mask = ~mask;
  return { kind: KIND.STATE, off: env.pool.push(mask) };
}

/** `state_mt`. */
export function evalState(off: number, pool: MatchPool, c: RuleContext): boolean {
  return (pool.i32[off] & stateBit(c)) !== 0;
}

// ---- mark, connmark ----

/** `value[/mask]` (xtables_parse_mark_mask); words: +0 value, +1 mask, +2 invert. */
export function compileMark(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES[node.name]!, node.name);
  const m = o.get("--mark");
  if (m === undefined) return fail(node, `${node.name}: option "--mark" must be specified`);
  const t = o.arg(m);
  const bad = (): never => fail(m, `${node.name}: bad integer value for option "${m.written}", or out of range.`);
  const v = strtoulPartial(t, 0, 0xffffffff);
  if (v === null) return bad();
  let mask = 0xffffffff;
  if (v.end !== t.length) {
    if (t[v.end] !== "/") return bad();
    const mt = t.slice(v.end + 1);
    const mv = strtoul(mt, 0, 0xffffffff);
    if (mv === undefined) return bad();
    mask = mv;
  }
  return { kind: node.name === "mark" ? KIND.MARK : KIND.CONNMARK, off: env.pool.push(v.value | 0, mask | 0, m.negated ? 1 : 0) };
}

/** `mark_mt`: the packet mark. */
export function evalMark(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32;
  return ((c.mark & a[off + 1]) === a[off]) !== (a[off + 2] !== 0);
}

/** `connmark_mt`: the connection's mark; no connection, no match (negated or not). */
export function evalConnmark(off: number, pool: MatchPool, c: RuleContext): boolean {
  if (!hasConn(c)) return false;
  const a = pool.i32;
  return ((c.ct.table.mark(c.ct.entry) & a[off + 1]) === a[off]) !== (a[off + 2] !== 0);
}
