/**
 * route/ — a mirror of the namespace's addresses and routes (a FIB mirror),
 * so the packet path can answer "is this destination this host (INPUT) or
 * forwarded (FORWARD)?" and "which interface and next hop does it leave by?"
 * without asking the kernel per packet.
 *
 *   ip -json addr show ─┐
 *   ip -4 -json route show table all ─┼─▶ parse.ts ─▶ table.ts RouteSnapshot ─▶ lookups
 *   ip -6 -json route show table all ─┘       (records)    (typed arrays + lpm.ts)
 *   ip monitor link address route ──▶ mirror.ts: reload (coalesced) and swap
 *
 * Data structures: each (family, table) compiles to an interval LPM
 * (lpm.ts): the prefixes cut the address space into intervals with one
 * winning route each, stored as sorted biased int32 keys (four words per
 * key for IPv6); a lookup is one binary search, allocation-free. Routes are
 * struct-of-arrays indexed by route number: type (RTN.*, the kernel's
 * values), out ifindex, next-hop family and words, metric, prefix length.
 *
 * Semantics, mirroring fib_lookup with the default rules: the local table
 * (local, broadcast, anycast, multicast routes; plus IPv4 224.0.0.0/4 and
 * 255.255.255.255, which the kernel treats as local before any lookup) is
 * searched first, then the main table. In the main table only unicast,
 * blackhole, unreachable, prohibit and throw routes are kept (the last four
 * so a lookup does not fall through to a shorter prefix the kernel would not
 * use). Longest prefix wins; among routes with the same prefix the lowest
 * metric wins, then the first listed.
 *
 * Not handled (reported in `RouteSnapshot.skipped` where a route is left out):
 * - policy routing: `ip rule` is not read; tables other than main and local
 *   are ignored (so sluice's own TUN-mode policy table is deliberately not
 *   mirrored: the mirror answers what the gateway does after sluice);
 * - multipath (ECMP) routes: the first next hop stands for the route; the
 *   kernel's per-flow hash is not reproduced;
 * - TOS-specific IPv4 routes (skipped), route preferences, `src`-dependent
 *   routes (IPv6 subtrees), VRFs, the kernel's route cache and exceptions
 *   (PMTU, redirects);
 * - IPv6 link-local destinations: several fe80::/64 routes (one per
 *   interface) share a prefix; without the packet's zone the first wins;
 * - interface state: routes over a down link (`linkdown`) are still used;
 * - neighbour (ARP/NDP) state: the next hop is an address, not a MAC.
 */
export * from "./addr.js";
export * from "./constants.js";
export * from "./lpm.js";
export * from "./mirror.js";
export * from "./parse.js";
export * from "./table.js";
