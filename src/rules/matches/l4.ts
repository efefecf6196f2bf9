/**
 * Layer-4 header matches: -m tcp, udp, sctp (xt_tcpudp.c, xt_sctp.c),
 * icmp (ip_tables.c `icmp_match`), icmp6 (ip6_tables.c `icmp6_match`) and
 * multiport (xt_multiport.c). All read the header bytes directly at
 * `pkt.l4Offset` after checking `pkt.l4Length`, and all fail on a
 * non-first fragment, negated or not, as Linux's do. Where Linux would
 * hot-drop a packet whose header is too short, they return false (the
 * pipeline's own parse has normally refused such a packet earlier).
 */
import { IPPROTO } from "../../packet/constants.js";
import type { MatchNode, OptionNode } from "../ast.js";
import type { RuleContext } from "../context.js";
import { MATCHES } from "../extensions.js";
import type { CompiledMatch, MatchEnv, MatchPool } from "../match-api.js";
import { parseIcmpType } from "./icmp-names.js";
import { KIND, fragOffset } from "./kinds.js";
import { Opts, fail, parsePort, parsePortRange, strtoul } from "./parse.js";

/** Refuses a protocol match in a rule whose `-p` is not that protocol (x_tables `xt_check_match`: "only valid for protocol N"). */
export function requireProto(node: MatchNode, env: MatchEnv, proto: number, name: string): void {
  if (env.proto === proto && !env.protoNegated) return;
  const why = env.proto !== proto ? `the rule needs -p ${name}` : `not with ! -p ${name}`;
  fail(node, `${node.name} match: only valid for protocol ${proto}: ${why}`);
}

// ---- tcp, udp, sctp ----

/*
 * Words of tcp, udp and sctp (udp and sctp stop after INV):
 *   +0 sport min  +1 sport max  +2 dport min  +3 dport max  +4 invert bits
 *   +5 flag mask  +6 flag compare  +7 option kind (0: none)        (tcp only)
 */
const INV_SRC = 1;
const INV_DST = 2;
const INV_FLAGS = 4;
const INV_OPTION = 8;

/** iptables' TCP flag names (libxt_tcp `tcp_flag_names`; ALL is the six classic flags). iptables 1.8.9 refuses ECE and CWR, so does sluice. */
const TCP_FLAG_NAMES: Readonly<Record<string, number>> = {
  FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ALL: 0x3f, NONE: 0,
};

function parseTcpFlags(o: OptionNode, text: string): number {
  let v = 0;
  // strtok: empty items between commas are skipped.
  for (const item of text.split(",")) {
    if (item === "") continue;
    const f = TCP_FLAG_NAMES[item.toUpperCase()];
    if (f === undefined) fail(o, `Unknown TCP flag \`${item}'`);
    v |= f;
  }
  return v;
}

/** -m tcp / udp / sctp. */
export function compilePorts(node: MatchNode, env: MatchEnv): CompiledMatch {
  const name = node.name as "tcp" | "udp" | "sctp";
  const proto = name === "tcp" ? IPPROTO.TCP : name === "udp" ? IPPROTO.UDP : IPPROTO.SCTP;
  const o = new Opts(node, MATCHES[name]!, name);
  requireProto(node, env, proto, name);
  let sp: [number, number] = [0, 0xffff], dp: [number, number] = [0, 0xffff];
  let inv = 0;
  const s = o.get("--source-port"), d = o.get("--destination-port");
  if (s !== undefined) {
    sp = parsePortRange(s, o.arg(s), name);
    if (s.negated) inv |= INV_SRC;
  }
  if (d !== undefined) {
    dp = parsePortRange(d, o.arg(d), name);
    if (d.negated) inv |= INV_DST;
  }
  if (name === "sctp") {
    const ct = o.get("--chunk-types");
    if (ct !== undefined) fail(ct, "sctp: --chunk-types is not supported by sluice (it does not parse SCTP chunks); match on ports only");
  }
  if (name !== "tcp") return { kind: name === "udp" ? KIND.UDP : KIND.SCTP, off: env.pool.push(sp[0], sp[1], dp[0], dp[1], inv) };

  let mask = 0, cmp = 0, option = 0;
  const syn = o.get("--syn"), flags = o.get("--tcp-flags"), opt = o.get("--tcp-option");
  if (syn !== undefined && flags !== undefined) {
    const later = node.options.indexOf(syn) > node.options.indexOf(flags) ? syn : flags;
    fail(later, "Only one of `--syn' or `--tcp-flags'  allowed");
  }
  if (syn !== undefined) {
    // --syn is --tcp-flags SYN,RST,ACK,FIN SYN (libxt_tcp).
    mask = 0x17;
    cmp = 0x02;
    if (syn.negated) inv |= INV_FLAGS;
  }
  if (flags !== undefined) {
    mask = parseTcpFlags(flags, flags.args[0]!);
    cmp = parseTcpFlags(flags, flags.args[1]!);
    if (flags.negated) inv |= INV_FLAGS;
  }
  if (opt !== undefined) {
    const n = strtoul(o.arg(opt), 1, 255);
    if (n === undefined) fail(opt, `Bad TCP option "${o.arg(opt)}"`);
    option = n;
    if (opt.negated) inv |= INV_OPTION;
  }
  return { kind: KIND.TCP, off: env.pool.push(sp[0], sp[1], dp[0], dp[1], inv, mask, cmp, option) };
}

/** Source and destination ports against the ranges at `off`; `need` header bytes must be present. */
function portsMatch(off: number, a: Int32Array, c: RuleContext, need: number): boolean {
  if (fragOffset(c) !== 0) return false;
  const p = c.pkt;
  if (p.l4Length < need) return false; // Linux: hotdrop ("evil tinygram")
  const b = p.buf, o = p.l4Offset, inv = a[off + 4];
  const sp = (b[o] << 8) | b[o + 1];
  if ((sp >= a[off] && sp <= a[off + 1]) === ((inv & INV_SRC) !== 0)) return false;
  const dp = (b[o + 2] << 8) | b[o + 3];
  return (dp >= a[off + 2] && dp <= a[off + 3]) !== ((inv & INV_DST) !== 0);
}

/** -m udp (8-byte header) and -m sctp (12-byte common header). */
export function evalUdp(off: number, pool: MatchPool, c: RuleContext, need: number): boolean {
  return portsMatch(off, pool.i32, c, need);
}

/** -m tcp (`tcp_mt`). */
export function evalTcp(off: number, pool: MatchPool, c: RuleContext): boolean {
  const a = pool.i32;
  if (!portsMatch(off, a, c, 20)) return false;
  const p = c.pkt, b = p.buf, o = p.l4Offset, inv = a[off + 4];
  if (((b[o + 13] & a[off + 5]) === a[off + 6]) === ((inv & INV_FLAGS) !== 0)) return false;
  const kind = a[off + 7];
  if (kind === 0) return true;
  const doff = (b[o + 12] >> 4) << 2;
  if (doff < 20 || doff > p.l4Length) return false; // Linux: hotdrop
  // tcp_find_option(): walk the option bytes; EOL and NOP are one byte, the rest skip their length (0 counts as 1).
  const end = o + doff;
  let found = false;
  for (let i = o + 20; i < end; ) {
    const k = b[i];
    if (k === kind) { found = true; break; }
    if (k < 2) { i++; continue; }
    const len = i + 1 < end ? b[i + 1] : 1;
    i += len === 0 ? 1 : len;
  }
  return found !== ((inv & INV_OPTION) !== 0);
}

// ---- icmp, icmp6 ----

/*
 * Words: +0 type (0xff with -m icmp: any)  +1 code min  +2 code max  +3 invert
 */

/** -m icmp (IPv4) / -m icmp6 (IPv6). */
export function compileIcmp(node: MatchNode, env: MatchEnv): CompiledMatch {
  const v6 = node.name === "icmp6";
  const o = new Opts(node, MATCHES[node.name]!, node.name);
  requireProto(node, env, v6 ? IPPROTO.ICMPV6 : IPPROTO.ICMP, v6 ? "icmpv6" : "icmp");
  const t = o.get(v6 ? "--icmpv6-type" : "--icmp-type");
  // Without a type, libipt_icmp's default is `any` (type 0xff, every code); ip6tables has no `any`: type 0, every code.
  let v: [number, number, number] = v6 ? [0, 0, 0xff] : [0xff, 0, 0xff];
  if (t !== undefined) v = parseIcmpType(t, o.arg(t), v6);
  return { kind: v6 ? KIND.ICMP6 : KIND.ICMP, off: env.pool.push(v[0], v[1], v[2], t?.negated === true ? 1 : 0) };
}

/** `icmp_type_code_match` (IPv4: type 0xff matches every type) / `icmp6_type_code_match`. */
export function evalIcmp(off: number, pool: MatchPool, c: RuleContext, v4: boolean): boolean {
  if (fragOffset(c) !== 0) return false;
  const p = c.pkt;
  if (p.l4Length < 8) return false; // Linux: hotdrop
  const a = pool.i32, b = p.buf, o = p.l4Offset;
  const want = a[off], code = b[o + 1];
  const hit = (v4 && want === 0xff) || (b[o] === want && code >= a[off + 1] && code <= a[off + 2]);
  return hit !== (a[off + 3] !== 0);
}

// ---- multiport ----

/*
 * Words: +0 flags (1 source, 2 destination, 3 either)  +1 invert  +2 count
 *        +3 .. +17 ports (XT_MULTI_PORTS = 15)  +18 .. +32 pflags (1: ports[i], ports[i+1] is a range)
 */
const MULTI_PORTS = 15;
const MP_SRC = 1;
const MP_DST = 2;

/** Protocols multiport accepts (`check_proto` in libxt_multiport.c / xt_multiport.c). */
const MULTIPORT_PROTOS: Readonly<Record<number, string>> = {
  [IPPROTO.TCP]: "tcp", [IPPROTO.UDP]: "udp", [IPPROTO.UDPLITE]: "udplite", [IPPROTO.SCTP]: "sctp", [IPPROTO.DCCP]: "dccp",
};

/** -m multiport (revision 1: ranges allowed, each range takes two of the 15 slots). */
export function compileMultiport(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["multiport"]!, "multiport");
  o.exclusive("--source-ports", "--destination-ports", "--ports");
  const opt = o.get("--source-ports") ?? o.get("--destination-ports") ?? o.get("--ports");
  if (opt === undefined) return fail(node, "multiport expects an option: --source-ports, --destination-ports or --ports");
  if (env.proto === 0) fail(node, "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
  const pname = MULTIPORT_PROTOS[env.proto];
  if (pname === undefined || env.protoNegated) fail(node, "multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP");
  const flags = opt.name === "--source-ports" ? MP_SRC : opt.name === "--destination-ports" ? MP_DST : MP_SRC | MP_DST;
  const ports: number[] = [], pflags: number[] = [];
  // parse_multi_ports_v1(): comma-separated ports or a:b ranges, 15 slots.
  const items = o.arg(opt).split(",");
  for (let k = 0; k < items.length; k++) {
    if (ports.length === MULTI_PORTS) fail(opt, "too many ports specified");
    const item = items[k]!;
    const colon = item.indexOf(":");
    if (colon >= 0 && ports.length === MULTI_PORTS - 1) fail(opt, "too many ports specified");
    const first = parsePort(opt, colon >= 0 ? item.slice(0, colon) : item, pname);
    ports.push(first);
    pflags.push(colon >= 0 ? 1 : 0);
    if (colon >= 0) {
      const last = parsePort(opt, item.slice(colon + 1), pname);
      if (first >= last) fail(opt, "invalid portrange specified");
      ports.push(last);
      pflags.push(0);
    }
  }
  const off = env.pool.reserveI32(3 + 2 * MULTI_PORTS);
  const a = env.pool.i32;
  a[off] = flags;
  a[off + 1] = opt.negated ? 1 : 0;
  a[off + 2] = ports.length;
  for (let i = 0; i < ports.length; i++) {
    a[off + 3 + i] = ports[i]!;
    a[off + 3 + MULTI_PORTS + i] = pflags[i]!;
  }
  return { kind: KIND.MULTIPORT, off };
}

/** `multiport_mt` / `ports_match_v1`. */
export function evalMultiport(off: number, pool: MatchPool, c: RuleContext): boolean {
  if (fragOffset(c) !== 0) return false;
  const p = c.pkt;
  if (p.l4Length < 4) return false; // Linux: hotdrop
  const a = pool.i32, b = p.buf, o = p.l4Offset;
  const src = (b[o] << 8) | b[o + 1], dst = (b[o + 2] << 8) | b[o + 3];
  const flags = a[off], inv = a[off + 1] !== 0, n = a[off + 2];
  const useSrc = (flags & MP_SRC) !== 0, useDst = (flags & MP_DST) !== 0;
  for (let i = 0; i < n; i++) {
    const s = a[off + 3 + i];
    if (a[off + 3 + MULTI_PORTS + i] !== 0) {
      const e = a[off + 3 + ++i];
      if ((useSrc && src >= s && src <= e) || (useDst && dst >= s && dst <= e)) return !inv;
    } else if ((useSrc && src === s) || (useDst && dst === s)) {
      return !inv;
    }
  }
  return inv;
}
