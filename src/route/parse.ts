/**
 * Reading iproute2's JSON (`ip -json addr show`, `ip -4|-6 -json route show
 * table all`) into plain records. Configuration-time code: it allocates
 * freely and is never on the packet path.
 *
 * What iproute2 6.1 prints, and how it is read:
 * - a route's `table` is absent for the main table, `"local"` for the local
 *   table, a name from /etc/iproute2/rt_tables or a decimal id otherwise;
 * - `type` is absent for unicast routes, otherwise a name (`local`,
 *   `broadcast`, `blackhole`, ...) or a number iproute2 has no name for;
 * - `dst` is `"default"`, a bare address (a host route) or `address/len`;
 * - a gateway is `gateway` (same family) or `via: {family, host}` (an IPv4
 *   route through an IPv6 next hop, RFC 5549); multipath routes carry
 *   `nexthops: [{gateway, dev, weight}, ...]` instead of `gateway`/`dev`;
 *   routes through nexthop objects (`nhid`) carry the resolved
 *   `gateway`/`dev` as well;
 * - `metric` is absent when 0 (IPv4 routes without a metric).
 *
 * Anything that does not fit is reported in `skipped` with the reason,
 * never thrown: one odd route must not stop the mirror from refreshing.
 */
import { ERR, SluiceError } from "../errors.js";
import { parseCidr, parseIPv4, parseIPv6, wordsToBigInt } from "./addr.js";
import { RTN, RTN_NAMES, RT_TABLE } from "./constants.js";

/** One address of this namespace, as `ip addr` lists it. */
export interface LocalAddress {
  family: 4 | 6;
  /** The address as iproute2 prints it. */
  address: string;
  prefixLen: number;
  /** `host`, `link`, `global`, ... */
  scope: string;
  ifindex: number;
  ifname: string;
}

/** One network interface (link) of this namespace. */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  /** The UP flag (administratively up). */
  up: boolean;
  mtu: number;
  addresses: LocalAddress[];
}

/** One route, as read from `ip -json route`. */
export interface RouteEntry {
  family: 4 | 6;
  /** Table id (RT_TABLE.MAIN = 254, RT_TABLE.LOCAL = 255, ...); -1 for a table name we cannot resolve. */
  table: number;
  /** Route type (RTN.*). */
  type: number;
  /** Destination as `address/len`. */
  dst: string;
  /** First address of the destination prefix (32- or 128-bit). */
  start: bigint;
  prefixLen: number;
  /** Output device name, or null (blackhole, throw, ...). */
  dev: string | null;
  /** Output ifindex, 0 when there is no device or it is unknown. */
  ifindex: number;
  /** 0 (directly connected), 4 or 6: the family of the next hop. */
  gatewayFamily: 0 | 4 | 6;
  /** The next hop (32- or 128-bit by gatewayFamily), 0n when directly connected. */
  gateway: bigint;
  /** The next hop as printed, or null. */
  gatewayText: string | null;
  metric: number;
  /** Number of next hops of a multipath route (1 otherwise); only the first is used. */
  nexthops: number;
  /** IPv4 TOS selector (0 = any). */
  tos: number;
  /** The JSON object as iproute2 printed it, for messages. */
  raw: string;
}

/** An entry left out, with the reason. */
export interface Skipped {
  raw: string;
  reason: string;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function expectArray(json: unknown, what: string): unknown[] {
  if (!Array.isArray(json)) throw new SluiceError(ERR.ROUTE, `${what}: expected a JSON array, got ${typeof json}`);
  return json;
}

/** Parses `ip -json addr show` (a superset of `ip -json link show`). */
export function parseLinks(json: unknown, skipped: Skipped[] = []): LinkInfo[] {
  const links: LinkInfo[] = [];
  for (const l of expectArray(json, "ip -json addr show")) {
    if (!isObj(l) || typeof l.ifindex !== "number" || typeof l.ifname !== "string") {
      skipped.push({ raw: JSON.stringify(l), reason: "link without ifindex/ifname" });
      continue;
    }
    const link: LinkInfo = {
      ifindex: l.ifindex,
      ifname: l.ifname,
      up: Array.isArray(l.flags) && l.flags.includes("UP"),
      mtu: typeof l.mtu === "number" ? l.mtu : 0,
      addresses: [],
    };
    for (const a of Array.isArray(l.addr_info) ? l.addr_info : []) {
      if (!isObj(a) || typeof a.local !== "string" || typeof a.prefixlen !== "number") continue;
      const family = a.family === "inet" ? 4 : a.family === "inet6" ? 6 : 0;
      if (family === 0) continue;
      link.addresses.push({
        family,
        address: a.local,
        prefixLen: a.prefixlen,
        scope: typeof a.scope === "string" ? a.scope : "global",
        ifindex: link.ifindex,
        ifname: link.ifname,
      });
    }
    links.push(link);
  }
  return links;
}

/** Table names iproute2 always knows (`rtnl_rttable_n2a`). */
function tableId(v: unknown): number {
  if (v === undefined) return RT_TABLE.MAIN;
  if (typeof v === "number") return v;
  if (typeof v !== "string") return -1;
  if (v === "main") return RT_TABLE.MAIN;
  if (v === "local") return RT_TABLE.LOCAL;
  if (v === "default") return RT_TABLE.DEFAULT;
  if (/^\d+$/.test(v)) return Number(v);
  return -1;
}

function routeType(v: unknown): number {
  if (v === undefined) return RTN.UNICAST;
  if (typeof v === "number") return v;
  if (typeof v !== "string") return -1;
  const i = (RTN_NAMES as readonly string[]).indexOf(v);
  if (i >= 0) return i;
  return /^\d+$/.test(v) ? Number(v) : -1;
}

const scratch = new Uint32Array(4);

/** An address of either family as a bigint and its family, or null. */
function address(text: string): { family: 4 | 6; value: bigint } | null {
  const v4 = parseIPv4(text);
  if (v4 >= 0) return { family: 4, value: BigInt(v4) };
  if (parseIPv6(text, scratch)) return { family: 6, value: wordsToBigInt(scratch[0]!, scratch[1]!, scratch[2]!, scratch[3]!) };
  return null;
}

/**
 * Parses `ip -4|-6 -json route show table all`. `ifindexOf` maps a device
 * name to its ifindex (from the links), returning 0 when unknown.
 */
export function parseRoutes(
  json: unknown,
  family: 4 | 6,
  ifindexOf: (name: string) => number,
  skipped: Skipped[] = [],
): RouteEntry[] {
  const out: RouteEntry[] = [];
  const bits = family === 4 ? 32n : 128n;
  for (const r of expectArray(json, `ip -${family} -json route show`)) {
    const raw = JSON.stringify(r);
    if (!isObj(r) || typeof r.dst !== "string") {
      skipped.push({ raw, reason: "route without dst" });
      continue;
    }
    const cidr = r.dst === "default" ? { family, address: 0n, prefixLen: 0 } : parseCidr(r.dst);
    if (cidr === null || cidr.family !== family) {
      skipped.push({ raw, reason: `dst "${r.dst}" is not an IPv${family} prefix` });
      continue;
    }
    const type = routeType(r.type);
    if (type < 0) {
      skipped.push({ raw, reason: `unknown route type ${JSON.stringify(r.type)}` });
      continue;
    }
    const hostBits = bits - BigInt(cidr.prefixLen);
    const start = (cidr.address >> hostBits) << hostBits;
    // Multipath: the first next hop stands for the route (see index.ts).
    const hops = Array.isArray(r.nexthops) ? r.nexthops.filter(isObj) : [];
    const hop: Obj = hops.length > 0 ? hops[0]! : r;
    const dev = typeof hop.dev === "string" ? hop.dev : typeof r.dev === "string" ? r.dev : null;
    let gatewayText: string | null = null;
    if (typeof hop.gateway === "string") gatewayText = hop.gateway;
    else if (isObj(hop.via) && typeof hop.via.host === "string") gatewayText = hop.via.host;
    let gatewayFamily: 0 | 4 | 6 = 0;
    let gateway = 0n;
    if (gatewayText !== null) {
      const g = address(gatewayText);
      if (g === null) {
        skipped.push({ raw, reason: `gateway "${gatewayText}" is not an address` });
        continue;
      }
      gatewayFamily = g.family;
      gateway = g.value;
    }
    const tos = typeof r.tos === "string" ? parseInt(r.tos, 16) : typeof r.tos === "number" ? r.tos : 0;
    out.push({
      family,
      table: tableId(r.table),
      type,
      dst: `${r.dst === "default" ? (family === 4 ? "0.0.0.0" : "::") : r.dst.split("/")[0]}/${cidr.prefixLen}`,
      start,
      prefixLen: cidr.prefixLen,
      dev,
      ifindex: dev === null ? 0 : ifindexOf(dev),
      gatewayFamily,
      gateway,
      gatewayText,
      metric: typeof r.metric === "number" ? r.metric : 0,
      nexthops: Math.max(1, hops.length),
      tos: Number.isFinite(tos) ? tos : 0,
      raw,
    });
  }
  return out;
}
