/**
 * A compiled, immutable snapshot of the namespace's addresses and routes.
 *
 * Routes live in struct-of-arrays form, indexed by a route number that the
 * lookups return (-1 = no route). A route number is only meaningful for the
 * snapshot that returned it: the mirror swaps snapshots between batches, and
 * `generation` tells them apart.
 *
 *   route r:  type[r]      RTN.* (UNICAST, LOCAL, BROADCAST, BLACKHOLE, ...)
 *             ifindex[r]   out interface (0: none, e.g. blackhole)
 *             gwFamily[r]  0 = directly connected, 4, 6 (RFC 5549: an IPv4
 *                          route may have an IPv6 next hop)
 *             gateway[4r .. 4r+4)  next hop words; IPv4 in word 0
 *             metric[r], prefixLen[r]
 *
 * Lookup order mirrors the kernel's default rules (`ip rule`: 0 local,
 * 32766 main): the local table first, then the main table. Each is an
 * interval LPM (lpm.ts), so a lookup is one or two binary searches.
 */
import { formatIPv4, formatIPv6 } from "./addr.js";
import { DELIVERS_LOCALLY, RTN, RTN_NAMES, RT_TABLE } from "./constants.js";
import { Lpm4, Lpm6, type LpmPrefix } from "./lpm.js";
import type { LinkInfo, LocalAddress, RouteEntry, Skipped } from "./parse.js";

/** Route types mirrored from the main table; other types there are skipped. */
const MAIN_TYPES = new Set<number>([RTN.UNICAST, RTN.BLACKHOLE, RTN.UNREACHABLE, RTN.PROHIBIT, RTN.THROW]);

/**
 * IPv4 destinations the kernel treats as local before any table lookup
 * (`ip_route_input_rcu`, `ip_route_input_slow`): multicast 224.0.0.0/4 and
 * the limited broadcast 255.255.255.255. They sit under the local table.
 */
function implicitLocal4(): RouteEntry[] {
  const base = { family: 4 as const, table: RT_TABLE.LOCAL, dev: null, ifindex: 0, gatewayFamily: 0 as const, gateway: 0n, gatewayText: null, metric: 0, nexthops: 1, tos: 0 };
  return [
    { ...base, type: RTN.MULTICAST, dst: "224.0.0.0/4", start: 0xe0000000n, prefixLen: 4, raw: "(implicit: ipv4_is_multicast)" },
    { ...base, type: RTN.BROADCAST, dst: "255.255.255.255/32", start: 0xffffffffn, prefixLen: 32, raw: "(implicit: ipv4_is_lbcast)" },
  ];
}

/**
 * Picks one route per (prefix) in a table: the lowest metric, the first
 * listed among equals (iproute2 lists in the kernel's order). The others go
 * to `skipped`.
 */
function bestPerPrefix(routes: RouteEntry[], skipped: Skipped[]): RouteEntry[] {
  const best = new Map<string, RouteEntry>();
  for (const r of routes) {
    const key = `${r.start}/${r.prefixLen}`;
    const cur = best.get(key);
    if (cur === undefined) best.set(key, r);
    else if (r.metric < cur.metric) {
      skipped.push({ raw: cur.raw, reason: `same prefix as a route with a lower metric (${cur.metric} > ${r.metric})` });
      best.set(key, r);
    } else {
      skipped.push({ raw: r.raw, reason: r.metric === cur.metric ? "same prefix and metric as a route listed earlier" : `same prefix as a route with a lower metric (${r.metric} > ${cur.metric})` });
    }
  }
  return [...best.values()];
}

/** The compiled routes and addresses of one namespace at one moment. */
export class RouteSnapshot {
  /** Incremented by the mirror on every reload. */
  readonly generation: number;
  /** Interfaces and their addresses. */
  readonly links: readonly LinkInfo[];
  /** Every address of the namespace (both families). */
  readonly addresses: readonly LocalAddress[];
  /** The mirrored routes, by route number (edge form, for output and tests). */
  readonly routes: readonly RouteEntry[];
  /** What was read but left out, and why. */
  readonly skipped: readonly Skipped[];

  /** RTN.* per route. */
  readonly type: Uint8Array;
  /** Output ifindex per route (0 = none). */
  readonly ifindex: Int32Array;
  /** Next-hop family per route: 0 (directly connected), 4 or 6. */
  readonly gwFamily: Uint8Array;
  /** Next hop, four words per route (IPv4 in word 0, as a uint32). */
  readonly gateway: Uint32Array;
  readonly metric: Uint32Array;
  readonly prefixLen: Uint8Array;

  private readonly local4: Lpm4;
  private readonly main4: Lpm4;
  private readonly local6: Lpm6;
  private readonly main6: Lpm6;
  private readonly byName: Map<string, number>;
  private readonly byIndex: Map<number, string>;

  constructor(links: readonly LinkInfo[], routes4: readonly RouteEntry[], routes6: readonly RouteEntry[], generation = 0, skipped: Skipped[] = []) {
    this.generation = generation;
    this.links = links;
    this.addresses = links.flatMap((l) => l.addresses);
    this.byName = new Map(links.map((l) => [l.ifname, l.ifindex]));
    this.byIndex = new Map(links.map((l) => [l.ifindex, l.ifname]));

    // Sort each family's routes into the local and main tables; everything else is reported.
    const pick = (all: readonly RouteEntry[]): { local: RouteEntry[]; main: RouteEntry[] } => {
      const local: RouteEntry[] = [];
      const main: RouteEntry[] = [];
      for (const r of all) {
        if (r.tos !== 0) skipped.push({ raw: r.raw, reason: "TOS-specific routes are not mirrored" });
        else if (r.table === RT_TABLE.LOCAL) local.push(r);
        else if (r.table !== RT_TABLE.MAIN) skipped.push({ raw: r.raw, reason: `table ${r.table} is not mirrored (policy routing rules are not followed)` });
        else if (MAIN_TYPES.has(r.type)) main.push(r);
        else skipped.push({ raw: r.raw, reason: `${RTN_NAMES[r.type] ?? r.type} routes in the main table are not mirrored` });
      }
      return { local: bestPerPrefix(local, skipped), main: bestPerPrefix(main, skipped) };
    };
    const v4 = pick([...routes4, ...implicitLocal4()]);
    const v6 = pick(routes6);
    const tables = [v4.local, v4.main, v6.local, v6.main];
    const routes = tables.flat();
    this.routes = routes;
    this.skipped = skipped;

    const n = routes.length;
    this.type = new Uint8Array(n);
    this.ifindex = new Int32Array(n);
    this.gwFamily = new Uint8Array(n);
    this.gateway = new Uint32Array(n * 4);
    this.metric = new Uint32Array(n);
    this.prefixLen = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const r = routes[i]!;
      this.type[i] = r.type;
      this.ifindex[i] = r.ifindex;
      this.gwFamily[i] = r.gatewayFamily;
      const g = r.gatewayFamily === 4 ? r.gateway << 96n : r.gateway;
      for (let w = 0; w < 4; w++) this.gateway[i * 4 + w] = Number((g >> BigInt(96 - 32 * w)) & 0xffffffffn);
      this.metric[i] = Math.min(r.metric, 0xffffffff);
      this.prefixLen[i] = r.prefixLen;
    }
    let base = 0;
    const prefixes = (t: RouteEntry[]): LpmPrefix[] => {
      const p = t.map((r, i) => ({ start: r.start, prefixLen: r.prefixLen, route: base + i }));
      base += t.length;
      return p;
    };
    this.local4 = new Lpm4(prefixes(v4.local));
    this.main4 = new Lpm4(prefixes(v4.main));
    this.local6 = new Lpm6(prefixes(v6.local));
    this.main6 = new Lpm6(prefixes(v6.main));
  }

  /**
   * The route an IPv4 destination takes (int32 or uint32): the local table's
   * longest match if any, else the main table's; -1 = no route (the kernel
   * would answer ENETUNREACH). Check `type[r]`: UNICAST forwards via
   * `ifindex[r]`/`gateway[4r]`; LOCAL/BROADCAST/MULTICAST are for this host;
   * BLACKHOLE/UNREACHABLE/PROHIBIT/THROW are dropped by the kernel.
   */
  lookup4(addr: number): number {
    const r = this.local4.lookup(addr);
    return r >= 0 ? r : this.main4.lookup(addr);
  }

  /** True when the kernel delivers packets to this IPv4 destination to this host (INPUT), not FORWARD. */
  isLocal4(addr: number): boolean {
    const r = this.local4.lookup(addr);
    return r >= 0 && DELIVERS_LOCALLY[this.type[r]!] === 1;
  }

  /** As lookup4, for an IPv6 destination given as four words (most significant first). */
  lookup6(w0: number, w1: number, w2: number, w3: number): number {
    const r = this.local6.lookup(w0, w1, w2, w3);
    return r >= 0 ? r : this.main6.lookup(w0, w1, w2, w3);
  }

  /** As isLocal4, for IPv6 (local, anycast and multicast routes of the local table). */
  isLocal6(w0: number, w1: number, w2: number, w3: number): boolean {
    const r = this.local6.lookup(w0, w1, w2, w3);
    return r >= 0 && DELIVERS_LOCALLY[this.type[r]!] === 1;
  }

  /** The ifindex of an interface name, or -1. */
  ifindexOf(name: string): number {
    return this.byName.get(name) ?? -1;
  }

  /** The name of an ifindex, or undefined. */
  ifnameOf(ifindex: number): string | undefined {
    return this.byIndex.get(ifindex);
  }

  /** A route in `ip route` style, e.g. `198.51.100.0/24 via 203.0.113.253 dev wan0 metric 5` (for logs and tests). */
  describe(r: number): string {
    const e = this.routes[r];
    if (e === undefined) return "no route";
    const parts: string[] = [];
    if (e.type !== RTN.UNICAST) parts.push(RTN_NAMES[e.type] ?? String(e.type));
    parts.push(e.dst);
    const g = this.gateway;
    if (this.gwFamily[r] === 4) parts.push("via", formatIPv4(g[r * 4]!));
    else if (this.gwFamily[r] === 6) parts.push("via", formatIPv6(g[r * 4]!, g[r * 4 + 1]!, g[r * 4 + 2]!, g[r * 4 + 3]!));
    if (e.dev !== null) parts.push("dev", e.dev);
    if (e.table === RT_TABLE.LOCAL) parts.push("table", "local");
    if (e.metric !== 0) parts.push("metric", String(e.metric));
    return parts.join(" ");
  }
}
