/**
 * Match kinds (the `kind` of a CompiledMatch: the case of evalMatch's
 * switch) and what a match needs from the I/O path. Small integers on the
 * packet path; names only in KIND_NAMES for logs and tests.
 */
import { AF } from "../../packet/constants.js";
import { PARSE } from "../../packet/packet.js";
import type { RuleContext } from "../context.js";

/** One kind per compiled shape (a match may compile to one of several, e.g. statistic random / nth). */
export const KIND = {
  TCP: 1,
  UDP: 2,
  SCTP: 3,
  ICMP: 4,
  ICMP6: 5,
  CONNTRACK: 6,
  STATE: 7,
  MULTIPORT: 8,
  IPRANGE: 9,
  MARK: 10,
  CONNMARK: 11,
  LIMIT: 12,
  HASHLIMIT: 13,
  RECENT: 14,
  STATISTIC_RANDOM: 15,
  STATISTIC_NTH: 16,
  STRING_BM: 17,
  STRING_KMP: 18,
  LENGTH: 19,
  TTL: 20,
  HL: 21,
  PKTTYPE: 22,
  MAC: 23,
  OWNER: 24,
  FRAG: 25,
  COMMENT: 26,
  ADDRTYPE: 27,
} as const;

/** Names of the kinds, by value (for logs and tests). */
export const KIND_NAMES: readonly string[] = (() => {
  const n: string[] = [];
  for (const [k, v] of Object.entries(KIND)) n[v] = k.toLowerCase();
  return n;
})();

/**
 * What a match needs from the I/O path, as bits, so the rule compiler can
 * refuse a ruleset the current I/O path cannot serve (instead of a match
 * that silently never matches).
 */
export const NEEDS = {
  /** The ingress link-layer source address (`ctx.hwBuf/hwOff/hwLen`): -m mac. */
  HWADDR: 1,
  /** The owner of a locally generated packet's socket (`ctx.uid/gid`): -m owner. */
  OWNER: 2,
  /** The route/address mirror (`ctx.routes`): -m addrtype, -m pkttype. */
  ROUTES: 4,
} as const;

/**
 * The fragment offset the x_tables core passes matches as `par->fragoff`
 * (bytes; 0 for an unfragmented packet and a first fragment). A non-first
 * fragment has no L4 header: every port, flag and type match fails on it,
 * negated or not (`if (par->fragoff != 0) return false;` in xt_tcpudp.c).
 */
export function fragOffset(c: RuleContext): number {
  if (c.parseStatus !== PARSE.FRAGMENT) return 0;
  const p = c.pkt;
  return p.family === AF.INET ? p.ip4.fragmentOffset : p.ip6.fragmentOffset;
}
