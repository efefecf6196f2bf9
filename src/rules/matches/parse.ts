/**
 * Configuration-time parsing for the match compilers: numbers, ports,
 * addresses, rates and MAC addresses, read the way iptables 1.8.9 reads
 * them (libxtables `xtables_strtoul`, `xtables_parse_port`,
 * `xtables_numeric_to_ipaddr`, ...), and an option accessor that refuses
 * what iptables' option parser refuses (an option twice, `!` where it is
 * not allowed, two options that exclude each other). Every error is a
 * RuleError at the offending option. Nothing here runs per packet.
 */
import { parseIPv6 } from "../../route/addr.js";
import type { MatchNode, OptionNode, SourcePos } from "../ast.js";
import type { ExtensionSpec } from "../extensions.js";
import { RuleError } from "../match-api.js";
import { lookupHost, lookupService } from "../names.js";

/** Throws a RuleError at `at` (an option or a match node). */
export function fail(at: { pos: SourcePos }, reason: string): never {
  throw new RuleError(at.pos, reason);
}

/**
 * libxtables `xtables_strtoul_base(s, &end, ..., base 0)`: leading blanks,
 * an optional `+` (a `-` is refused), then `0x` hex, `0` octal or decimal,
 * as strtoumax reads them. Returns the value and the index where the
 * number stopped, or null when no digit was read or the value is above
 * `max` (or below `min`).
 */
export function strtoulPartial(s: string, min: number, max: number): { value: number; end: number } | null {
  let i = 0;
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  if (s[i] === "-") return null;
  if (s[i] === "+") i++;
  let base = 10;
  if (s[i] === "0" && (s[i + 1] === "x" || s[i + 1] === "X") && isDigitOf(s.charCodeAt(i + 2), 16)) {
    base = 16;
    i += 2;
  } else if (s[i] === "0") {
    base = 8;
  }
  const start = i;
  let v = 0;
  while (i < s.length && isDigitOf(s.charCodeAt(i), base)) {
    v = v * base + digitValue(s.charCodeAt(i));
    i++;
  }
  if (i === start) return null;
  if (v < min || v > max || v > Number.MAX_SAFE_INTEGER) return null;
  return { value: v, end: i };
}

/** `xtables_strtoui(s, NULL, ...)`: the whole string must be the number. */
export function strtoul(s: string, min: number, max: number): number | undefined {
  const r = strtoulPartial(s, min, max);
  return r !== null && r.end === s.length ? r.value : undefined;
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
function digitValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return 99;
}
function isDigitOf(c: number, base: number): boolean {
  return !Number.isNaN(c) && digitValue(c) < base;
}

/** C's atoi: leading blanks, a sign, decimal digits; 0 when none. */
export function atoi(s: string): number {
  const m = /^[\t\n\v\f\r ]*([+-]?\d+)/.exec(s);
  return m === null ? 0 : Number(m[1]);
}

/**
 * `xtables_parse_port(port, proto)`: a number 0..65535 (any base strtoul
 * reads), else a service name of `proto` from /etc/services (names.ts);
 * `proto` null tries tcp, udp, sctp, dccp (getservbyname without a
 * protocol returns the first entry of any).
 */
export function parsePort(at: OptionNode, text: string, proto: string | null): number {
  const n = strtoul(text, 0, 65535);
  if (n !== undefined) return n;
  if (text !== "") {
    for (const p of proto !== null ? [proto] : ["tcp", "udp", "sctp", "dccp"]) {
      const s = lookupService(text, p);
      if (s !== undefined) return s;
    }
  }
  return fail(at, `invalid port/service \`${text}' specified`);
}

/**
 * A `port[:port]` range as -m tcp/udp/sctp read it (libxt_tcp
 * `parse_tcp_ports`): `a`, `a:b`, `:b` (from 0), `a:` (to 65535).
 */
export function parsePortRange(at: OptionNode, text: string, proto: string | null): [number, number] {
  const colon = text.indexOf(":");
  if (colon < 0) {
    const p = parsePort(at, text, proto);
    return [p, p];
  }
  const a = text.slice(0, colon), b = text.slice(colon + 1);
  const lo = a !== "" ? parsePort(at, a, proto) : 0;
  const hi = b !== "" ? parsePort(at, b, proto) : 0xffff;
  if (lo > hi) fail(at, "invalid portrange (min > max)");
  return [lo, hi];
}

/**
 * A `min[:max]` unsigned range (XTTYPE_UINT*RC): a single value is
 * min = max; an empty side means 0 or `max`. `name` is the extension for
 * the message.
 */
export function parseUintRange(at: OptionNode, ext: string, text: string, max: number, sep = ":"): [number, number] {
  const bad = (): never => fail(at, `${ext}: bad value for option "${at.written}" near "${text}", or out of range (0-${max}).`);
  const i = text.indexOf(sep);
  if (i < 0) {
    const v = strtoul(text, 0, max);
    return v === undefined ? bad() : [v, v];
  }
  const a = text.slice(0, i), b = text.slice(i + 1);
  const lo = a === "" ? 0 : strtoul(a, 0, max);
  const hi = b === "" ? max : strtoul(b, 0, max);
  if (lo === undefined || hi === undefined) return bad();
  return [lo, hi];
}

/** An unsigned integer option (XTTYPE_UINT8/16/32) with iptables' message. */
export function parseUint(at: OptionNode, ext: string, text: string, min: number, max: number): number {
  const v = strtoul(text, min, max);
  if (v === undefined) fail(at, `${ext}: bad value for option "${at.written}", or out of range (${min}-${max}).`);
  return v;
}

/**
 * IPv4 text as `xtables_numeric_to_ipaddr` reads it: up to four parts,
 * each 0..255 in any base strtoul reads; fewer than four parts are
 * completed with zeros (`10.1` = 10.1.0.0). Returns the address as an
 * int32, or null.
 */
export function numericToIPv4(s: string): number | null {
  const parts = s.split(".");
  if (parts.length > 4 || s.length > 19) return null;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    let b = 0;
    if (i < parts.length) {
      const n = strtoul(parts[i]!, 0, 255);
      if (n === undefined) return null;
      b = n;
    }
    v = (v << 8) | b;
  }
  return v | 0;
}

/**
 * IPv4 text as inet_aton/getaddrinfo read a numeric host (what iptables
 * does for host options): 1 to 4 parts, the last one fills the remaining
 * bytes (`10.1` = 10.0.0.1). Returns an int32, or null.
 */
export function inetAton(s: string): number | null {
  const parts = s.split(".");
  if (parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    const r = strtoulPartial(p, 0, 0xffffffff);
    if (r === null || r.end !== p.length || /^\s|^\+/.test(p)) return null;
    nums.push(r.value);
  }
  const last = nums[nums.length - 1]!;
  const lastBytes = 5 - nums.length;
  if (last >= 2 ** (8 * lastBytes)) return null;
  let v = 0;
  for (let i = 0; i < nums.length - 1; i++) {
    if (nums[i]! > 255) return null;
    v = v * 256 + nums[i]!;
  }
  v = v * 2 ** (8 * lastBytes) + last;
  return v | 0;
}

/** Four int32 words of an IPv6 address, or null. */
export function ipv6Words(s: string): [number, number, number, number] | null {
  const w = new Int32Array(4);
  if (!parseIPv6(s, w)) return null;
  return [w[0]!, w[1]!, w[2]!, w[3]!];
}

/** Mask words of a prefix length (IPv4: word 0 only, others 0). */
export function prefixMask(family: 4 | 6, len: number): [number, number, number, number] {
  const m: [number, number, number, number] = [0, 0, 0, 0];
  const words = family === 4 ? 1 : 4;
  for (let i = 0; i < words; i++) {
    const bits = Math.max(0, Math.min(32, len - 32 * i));
    m[i] = bits === 0 ? 0 : (-1 << (32 - bits)) | 0;
  }
  return m;
}

/** An address of the family (numeric, or a host name from /etc/hosts), as four int32 words. */
function hostWords(at: OptionNode, ext: string, text: string, family: 4 | 6): [number, number, number, number] {
  if (family === 4) {
    const v = inetAton(text);
    if (v !== null) return [v, 0, 0, 0];
  } else {
    const w = ipv6Words(text);
    if (w !== null) return w;
  }
  const hosts = lookupHost(text, family);
  if (hosts.length > 1) fail(at, `${ext}: only one address can be specified here ("${text}" has ${hosts.length} in /etc/hosts)`);
  if (hosts.length === 1) return hostWords(at, ext, hosts[0]!, family);
  return fail(at, `${ext}: host/network "${text}" not found (numeric address or an /etc/hosts name expected)`);
}

/**
 * `address[/mask]` (XTTYPE_HOSTMASK): the mask as a prefix length or, for
 * IPv4, dotted. Returns the address and mask words.
 */
export function parseHostMask(at: OptionNode, ext: string, text: string, family: 4 | 6): { addr: number[]; mask: number[] } {
  const slash = text.indexOf("/");
  const host = slash < 0 ? text : text.slice(0, slash);
  const addr = hostWords(at, ext, host, family);
  let mask: number[] = prefixMask(family, family === 4 ? 32 : 128);
  if (slash >= 0) {
    const m = text.slice(slash + 1);
    const len = strtoul(m, 0, family === 4 ? 32 : 128);
    if (len !== undefined) {
      mask = prefixMask(family, len);
    } else if (family === 4 && m.includes(".")) {
      const v = numericToIPv4(m);
      if (v === null) fail(at, `${ext}: invalid mask "${m}" specified`);
      mask = [v, 0, 0, 0];
    } else if (family === 6 && m.includes(":")) {
      const w = ipv6Words(m);
      if (w === null) fail(at, `${ext}: invalid mask "${m}" specified`);
      mask = w;
    } else {
      fail(at, `${ext}: invalid mask "${m}" specified`);
    }
  }
  return { addr, mask };
}

/** An address without mask (XTTYPE_HOST, e.g. recent's `--mask`). */
export function parseHost(at: OptionNode, ext: string, text: string, family: 4 | 6): number[] {
  return hostWords(at, ext, text, family);
}

/** A MAC address as ether_aton reads it: six 1-2 digit hex groups separated by `:`. */
export function parseMac(at: OptionNode, text: string): number[] {
  const parts = text.split(":");
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) fail(at, "Invalid MAC address specified.");
  return parts.map((p) => parseInt(p, 16));
}

/** Seconds per unit of a rate (`/second` ... `/day`), any prefix of the word, case-insensitive (libxt_limit `parse_rate`). */
export function rateUnit(unit: string): number | undefined {
  if (unit === "") return undefined;
  const u = unit.toLowerCase();
  if ("second".startsWith(u)) return 1;
  if ("minute".startsWith(u)) return 60;
  if ("hour".startsWith(u)) return 3600;
  if ("day".startsWith(u)) return 86400;
  return undefined;
}

/**
 * Reads the options of one match, with iptables' option-parser checks:
 * every option known to the extension, at most once, `!` only where
 * allowed.
 */
export class Opts {
  readonly byName = new Map<string, OptionNode>();

  constructor(
    readonly node: MatchNode,
    readonly spec: ExtensionSpec,
    /** The name iptables' messages use (`TCP`, `conntrack`, ...): defaults to the match name. */
    readonly ext = node.name,
  ) {
    for (const o of node.options) {
      const s = spec.options[o.name];
      if (s === undefined) fail(o, `${ext}: unknown option "${o.written}"`);
      if (o.negated && !s.negatable) fail(o, `${ext}: option "${o.written}" cannot be inverted.`);
      if (o.args.length !== s.args) fail(o, `${ext}: option "${o.written}" takes ${s.args} argument(s)`);
      if (this.byName.has(o.name)) fail(o, `${ext}: option "${o.written}" can only be used once.`);
      this.byName.set(o.name, o);
    }
  }

  get(name: string): OptionNode | undefined {
    return this.byName.get(name);
  }

  /** The single argument of an option present. */
  arg(o: OptionNode): string {
    return o.args[0]!;
  }

  /** Refuses two options that exclude each other (the later one is named). */
  exclusive(...names: string[]): void {
    let first: OptionNode | undefined;
    for (const o of this.node.options) {
      if (!names.includes(o.name)) continue;
      if (first !== undefined) fail(o, `${this.ext}: option "${first.written}" cannot be used together with "${o.written}".`);
      first = o;
    }
  }

  /** Refuses `name` without `needed`. */
  requires(name: string, needed: string): void {
    const o = this.get(name);
    if (o !== undefined && this.get(needed) === undefined) fail(o, `${this.ext}: option "${o.written}" also requires "${needed}".`);
  }
}
