/**
 * The match extensions sluice implements (every MATCHES entry of
 * extensions.ts with `support: { state: "yes" }`), compiled at load and
 * evaluated per packet.
 *
 * How:
 * - `compileMatch(node, env)` checks the options the way iptables and the
 *   kernel's checkentry do (every refusal is a RuleError naming the
 *   option's file:line:col) and writes the match's parameters into
 *   `env.pool`: int32 words (`pool.i32`), per-rule mutable state in
 *   `pool.f64` (limit's credit, statistic's counter), byte patterns in
 *   `pool.blobs` (-m string), bounded tables in `pool.objects` (-m recent,
 *   -m hashlimit), shared by name with the previous ruleset through
 *   `env.named` as Linux keeps them across iptables-restore.
 * - `evalMatch(kind, off, pool, ctx)` is one switch over the kind. Every
 *   case reads the packet's bytes and the words at `off` and allocates
 *   nothing. The word layout of each kind is documented beside its
 *   compiler in matches/*.ts.
 * - `matchNeeds(node)` tells the rule compiler what a match needs from the
 *   I/O path (NEEDS.*), so a ruleset the I/O path cannot serve is refused
 *   at load rather than silently never matching.
 *
 * Files: matches/l4.ts (tcp, udp, sctp, icmp, icmp6, multiport),
 * matches/ct.ts (conntrack, state, mark, connmark), matches/limit.ts
 * (limit, hashlimit), matches/recent.ts, matches/string.ts,
 * matches/misc.ts (iprange, length, ttl, hl, pkttype, mac, owner, frag,
 * comment, statistic, addrtype), matches/parse.ts (iptables' number,
 * port, address and option parsing), matches/icmp-names.ts.
 *
 * Linux behaviours kept on purpose: port, flag and ICMP-type matches fail
 * on non-first fragments even when negated; connmark and mac fail when
 * there is no connection / no link-layer address, even when negated; a
 * shared hashlimit/recent table keeps its first rule's parameters.
 * Not done: see the "Not supported" notes in limit.ts (hashlimit byte
 * rates, --hashlimit-rate-match), l4.ts (sctp --chunk-types) and misc.ts
 * (owner --suppl-groups); Linux's "hotdrop" (drop the packet from inside
 * a match) has no channel here: those cases answer "no match".
 */
import type { MatchNode } from "./ast.js";
import type { RuleContext } from "./context.js";
import { MATCHES } from "./extensions.js";
import type { CompiledMatch, MatchEnv, MatchPool } from "./match-api.js";
import { compileConntrack, compileMark, compileState, evalConnmark, evalConntrack, evalMark, evalState } from "./matches/ct.js";
import { KIND, NEEDS } from "./matches/kinds.js";
import { compileIcmp, compileMultiport, compilePorts, evalIcmp, evalMultiport, evalTcp, evalUdp } from "./matches/l4.js";
import { compileHashlimit, compileLimit, evalHashlimit, evalLimit } from "./matches/limit.js";
import {
  compileAddrtype, compileComment, compileFrag, compileIprange, compileLength, compileMac, compileOwner, compilePkttype,
  compileStatistic, compileTtl, evalAddrtype, evalFrag, evalIprange, evalLength, evalMac, evalOwner, evalPkttype,
  evalStatisticNth, evalStatisticRandom, evalTtl,
} from "./matches/misc.js";
import { fail } from "./matches/parse.js";
import { compileRecent, evalRecent } from "./matches/recent.js";
import { compileString, evalString } from "./matches/string.js";

export { KIND, KIND_NAMES, NEEDS } from "./matches/kinds.js";
export { seedStatisticRandom } from "./matches/misc.js";
export { HashlimitTable } from "./matches/limit.js";
export { RecentTable } from "./matches/recent.js";

type Compiler = (node: MatchNode, env: MatchEnv) => CompiledMatch;

/** The compiler of each implemented match, by main name. */
const COMPILERS: Readonly<Record<string, Compiler>> = {
  tcp: compilePorts,
  udp: compilePorts,
  sctp: compilePorts,
  icmp: compileIcmp,
  icmp6: compileIcmp,
  conntrack: compileConntrack,
  state: compileState,
  multiport: compileMultiport,
  iprange: compileIprange,
  mark: compileMark,
  connmark: compileMark,
  limit: compileLimit,
  hashlimit: compileHashlimit,
  recent: compileRecent,
  statistic: compileStatistic,
  string: compileString,
  length: compileLength,
  ttl: compileTtl,
  hl: compileTtl,
  pkttype: compilePkttype,
  mac: compileMac,
  owner: compileOwner,
  frag: compileFrag,
  comment: compileComment,
  addrtype: compileAddrtype,
};

/**
 * Compiles one match into `env.pool`. Throws a RuleError (at the match or
 * the offending option) for anything iptables or the kernel would refuse,
 * and for a match sluice does not implement.
 */
export function compileMatch(node: MatchNode, env: MatchEnv): CompiledMatch {
  const spec = MATCHES[node.name];
  if (spec === undefined) return fail(node, `unknown match "${node.name}"`);
  if (spec.support.state !== "yes") return fail(node, `-m ${node.name}: ${spec.support.reason}`);
  if (spec.family !== 0 && spec.family !== env.family) {
    return fail(node, `-m ${node.name} is ${spec.family === 4 ? "IPv4" : "IPv6"} only (${spec.family === 4 ? "iptables" : "ip6tables"}), not valid in an IPv${env.family} ruleset`);
  }
  const c = COMPILERS[node.name];
  if (c === undefined) return fail(node, `-m ${node.name} is not implemented`);
  return c(node, env);
}

/** What a match needs from the I/O path (NEEDS.* bits; 0: nothing beyond the packet and the tracker). */
export function matchNeeds(node: MatchNode): number {
  switch (node.name) {
    case "mac": return NEEDS.HWADDR;
    case "owner": return NEEDS.OWNER;
    case "addrtype":
    case "pkttype": return NEEDS.ROUTES;
    default: return 0;
  }
}

/** Evaluates a compiled match against the packet in hand. Allocation-free for every kind. */
export function evalMatch(kind: number, off: number, pool: MatchPool, c: RuleContext): boolean {
  switch (kind) {
    case KIND.TCP: return evalTcp(off, pool, c);
    case KIND.UDP: return evalUdp(off, pool, c, 8);
    case KIND.SCTP: return evalUdp(off, pool, c, 12);
    case KIND.ICMP: return evalIcmp(off, pool, c, true);
    case KIND.ICMP6: return evalIcmp(off, pool, c, false);
    case KIND.CONNTRACK: return evalConntrack(off, pool, c);
    case KIND.STATE: return evalState(off, pool, c);
    case KIND.MULTIPORT: return evalMultiport(off, pool, c);
    case KIND.IPRANGE: return evalIprange(off, pool, c);
    case KIND.MARK: return evalMark(off, pool, c);
    case KIND.CONNMARK: return evalConnmark(off, pool, c);
    case KIND.LIMIT: return evalLimit(off, pool, c);
    case KIND.HASHLIMIT: return evalHashlimit(off, pool, c);
    case KIND.RECENT: return evalRecent(off, pool, c);
    case KIND.STATISTIC_RANDOM: return evalStatisticRandom(off, pool);
    case KIND.STATISTIC_NTH: return evalStatisticNth(off, pool);
    case KIND.STRING_BM: return evalString(off, pool, c, true);
    case KIND.STRING_KMP: return evalString(off, pool, c, false);
    case KIND.LENGTH: return evalLength(off, pool, c);
    case KIND.TTL: return evalTtl(off, pool, c.pkt.buf[c.pkt.off + 8]);
    case KIND.HL: return evalTtl(off, pool, c.pkt.buf[c.pkt.off + 7]);
    case KIND.PKTTYPE: return evalPkttype(off, pool, c);
    case KIND.MAC: return evalMac(off, pool, c);
    case KIND.OWNER: return evalOwner(off, pool, c);
    case KIND.FRAG: return evalFrag(off, pool, c);
    case KIND.COMMENT: return true;
    case KIND.ADDRTYPE: return evalAddrtype(off, pool, c);
    default: return false;
  }
}
