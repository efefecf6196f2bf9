import { isIPv6 } from "node:net";
import { EVENT, STATUS, STATUS_NAMES, TCP_STATE, TCP_STATE_NAMES } from "../conntrack/constants.js";
import type { ConnSnapshot } from "../conntrack/snapshot.js";
import { ERR, SluiceError } from "../errors.js";
import { AF, IPPROTO } from "../packet/constants.js";

/*
 * conntrack-tools' filter options (conntrack(8), "FILTER PARAMETERS" and
 * "PROTOCOL FILTER PARAMETERS"), in three forms:
 *
 *   argv  "-p tcp --dport 80 -s 10.0.1.0/24"   setFilterOption (the CLI)
 *   JSON  {"proto":6,"origDport":80,"origSrc":"10.0.1.0/24"}   FilterSpec (the wire)
 *   CtFilter: numbers and masks fixed at compile time, one `matches`
 *             call per snapshot, no allocation
 *
 * Semantics follow conntrack-tools 1.4.7's `nfct_filter` (every given field
 * must match; the tuple fields of the original direction are compared with
 * the original tuple, the reply ones with the reply tuple):
 * - addresses: exact, or CIDR (`-s 10.0.1.0/24`, `--mask-src`) as newer
 *   conntrack-tools accept for -s/-d; sluice also takes CIDR for -r/-q;
 * - a family is implied by the addresses (mixing is "mismatched address
 *   family"); without one, every family is shown (conntrack -L does the same);
 * - -u/--status: every named bit must be set (`nfct_cmp` with
 *   NFCT_CMP_MASK); UNSET names no bit; UNREPLIED (sluice's, what -L prints)
 *   means SEEN_REPLY is clear;
 * - --state: the TCP state (LISTEN is SYN_SENT2, as the man page names it);
 *   several states may be given comma-separated (sluice's extension);
 * - -m/--mark MARK[/MASK]: (mark & MASK) == MARK;
 * - port, state and ICMP options need -p (in conntrack-tools they exist only
 *   once -p has loaded the protocol's options), and ports need tcp or udp:
 *   sluice tracks other protocols without ports (generic tracker).
 *
 * `matches(s, eitherSide)`: with eitherSide (used by delete), the orig-side
 * fields may instead match the reply tuple and the reply-side fields the
 * original tuple: an entry is found by either direction's tuple, as the
 * kernel's tuple lookup finds it.
 */

/** A filter in its JSON (wire) form: conntrack-tools' options by name. */
export interface FilterSpec {
  /** -f/--family */
  family?: string;
  /** -p/--proto: protocol number (names are resolved by setFilterOption). */
  proto?: number;
  /** -s/--src/--orig-src, address or CIDR. */
  origSrc?: string;
  /** -d/--dst/--orig-dst */
  origDst?: string;
  /** -r/--reply-src */
  replySrc?: string;
  /** -q/--reply-dst */
  replyDst?: string;
  /** --mask-src: a mask for origSrc, written as an address. */
  maskSrc?: string;
  /** --mask-dst */
  maskDst?: string;
  /** --sport/--orig-port-src */
  origSport?: number;
  /** --dport/--orig-port-dst */
  origDport?: number;
  /** --reply-port-src */
  replySport?: number;
  /** --reply-port-dst */
  replyDport?: number;
  /** --icmp-type */
  icmpType?: number;
  /** --icmp-code */
  icmpCode?: number;
  /** --icmp-id */
  icmpId?: number;
  /** --state, TCP state names */
  state?: string[];
  /** -u/--status, status names */
  status?: string[];
  /** -m/--mark, "MARK[/MASK]" */
  mark?: string;
}

type FilterKey = keyof FilterSpec;

/** How each field is written on the command line, for messages and the CLI's parser. */
export const FILTER_OPTION_LABELS: Readonly<Record<FilterKey, string>> = Object.freeze({
  family: "-f/--family",
  proto: "-p/--proto",
  origSrc: "-s/--orig-src",
  origDst: "-d/--orig-dst",
  replySrc: "-r/--reply-src",
  replyDst: "-q/--reply-dst",
  maskSrc: "--mask-src",
  maskDst: "--mask-dst",
  origSport: "--sport/--orig-port-src",
  origDport: "--dport/--orig-port-dst",
  replySport: "--reply-port-src",
  replyDport: "--reply-port-dst",
  icmpType: "--icmp-type",
  icmpCode: "--icmp-code",
  icmpId: "--icmp-id",
  state: "--state",
  status: "-u/--status",
  mark: "-m/--mark",
});

/** Every command-line spelling of a filter option, mapped to its field (conntrack-tools' names). */
export const FILTER_OPTIONS: Readonly<Record<string, FilterKey>> = Object.freeze({
  "-f": "family", "--family": "family",
  "-p": "proto", "--proto": "proto", "--protonum": "proto",
  "-s": "origSrc", "--src": "origSrc", "--orig-src": "origSrc",
  "-d": "origDst", "--dst": "origDst", "--orig-dst": "origDst",
  "-r": "replySrc", "--reply-src": "replySrc",
  "-q": "replyDst", "--reply-dst": "replyDst",
  "--mask-src": "maskSrc", "--mask-dst": "maskDst",
  "--sport": "origSport", "--orig-port-src": "origSport",
  "--dport": "origDport", "--orig-port-dst": "origDport",
  "--reply-port-src": "replySport", "--reply-port-dst": "replyDport",
  "--icmp-type": "icmpType", "--icmp-code": "icmpCode", "--icmp-id": "icmpId",
  "--state": "state",
  "-u": "status", "--status": "status",
  "-m": "mark", "--mark": "mark",
});

/** Protocol names `-p` accepts (libnetfilter_conntrack's `proto2str` names, plus /etc/protocols' ipv6-icmp). */
const PROTO_BY_NAME: Readonly<Record<string, number>> = Object.freeze({
  tcp: IPPROTO.TCP, udp: IPPROTO.UDP, udplite: IPPROTO.UDPLITE, icmp: IPPROTO.ICMP,
  icmpv6: IPPROTO.ICMPV6, "ipv6-icmp": IPPROTO.ICMPV6, sctp: IPPROTO.SCTP, dccp: IPPROTO.DCCP, gre: IPPROTO.GRE,
});

/** Status names -u accepts besides STATUS_NAMES: UNSET (no bit) and UNREPLIED (SEEN_REPLY clear). */
const STATUS_UNSET = "UNSET";
const STATUS_UNREPLIED = "UNREPLIED";

function bad(key: FilterKey, why: string): never {
  throw new SluiceError(ERR.USAGE, `${FILTER_OPTION_LABELS[key]}: ${why}`);
}

/** A non-negative integer in [0, max] written in decimal or 0x-hex (strtoul with base 0, without octal). */
function parseUint(text: string, max: number): number {
  const t = text.trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t)) return -1;
  const v = Number(t);
  return Number.isSafeInteger(v) && v <= max ? v : -1;
}

/**
 * Sets one filter option from its command-line spelling and text value
 * (`name` as in FILTER_OPTIONS), converting it to its JSON form. Values are
 * validated fully by {@link compileFilter}; this only refuses what cannot
 * be represented (a repeated option, a non-number port, an unknown
 * protocol name).
 */
export function setFilterOption(spec: FilterSpec, name: string, value: string): void {
  const key = FILTER_OPTIONS[name];
  if (key === undefined) throw new SluiceError(ERR.USAGE, `${name}: not a filter option`);
  if (spec[key] !== undefined) bad(key, "given more than once");
  switch (key) {
    case "proto": {
      const n = PROTO_BY_NAME[value.toLowerCase()] ?? parseUint(value, 255);
      if (n < 0) bad(key, `unknown protocol "${value}" (a name such as tcp, udp, icmp, icmpv6, or a number 0-255)`);
      spec.proto = n;
      return;
    }
    case "origSport": case "origDport": case "replySport": case "replyDport":
    case "icmpType": case "icmpCode": case "icmpId": {
      const n = parseUint(value, 0xffff);
      if (n < 0) bad(key, `"${value}" is not a number`);
      spec[key] = n;
      return;
    }
    case "state": case "status":
      spec[key] = value.split(",");
      return;
    default:
      spec[key] = value;
  }
}

/** An address parsed into four big-endian words (IPv4: word 0), as the table stores them. */
export interface ParsedAddress {
  family: number;
  words: Int32Array;
  /** Prefix length from CIDR notation, or -1 when none was given. */
  prefix: number;
}

/** Parses "a.b.c.d", an IPv6 address, or either with "/prefix"; null when malformed. */
export function parseAddress(text: string): ParsedAddress | null {
  let addr = text.trim(), prefix = -1;
  const slash = addr.indexOf("/");
  if (slash >= 0) {
    const p = addr.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    addr = addr.slice(0, slash);
  }
  const words = new Int32Array(4);
  const v4 = parseIpv4(addr);
  if (v4 !== null) {
    if (prefix > 32) return null;
    words[0] = v4;
    return { family: AF.INET, words, prefix };
  }
  if (prefix > 128 || addr.includes("%") || !isIPv6(addr)) return null;
  // Expand "::" and a dotted IPv4 tail into eight 16-bit groups.
  let head = addr, tail4: number | null = null;
  const lastColon = addr.lastIndexOf(":");
  if (addr.indexOf(".", lastColon) >= 0) {
    tail4 = parseIpv4(addr.slice(lastColon + 1));
    if (tail4 === null) return null;
    head = `${addr.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split("::");
  const left = halves[0] === "" ? [] : halves[0].split(":");
  const right = halves.length > 1 && halves[1] !== "" ? halves[1].split(":") : [];
  const fill = 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(halves.length > 1 ? fill : 0).fill("0"), ...right].map((g) => parseInt(g, 16));
  if (groups.length !== 8) return null;
  for (let i = 0; i < 4; i++) words[i] = (groups[i * 2] << 16) | groups[i * 2 + 1];
  if (tail4 !== null) words[3] = tail4;
  return { family: AF.INET6, words, prefix };
}

function parseIpv4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return null;
    v = (v << 8) | o;
  }
  return v | 0;
}

/** Writes the mask of a prefix length into `out` (four words). */
function prefixMask(prefix: number, out: Int32Array, at: number): void {
  for (let w = 0; w < 4; w++) {
    const bits = Math.max(0, Math.min(32, prefix - w * 32));
    out[at + w] = bits === 0 ? 0 : bits === 32 ? -1 : ~((1 << (32 - bits)) - 1);
  }
}

const FAMILY_BY_NAME: Readonly<Record<string, number>> = Object.freeze({ ipv4: AF.INET, ipv6: AF.INET6 });
const KNOWN_KEYS = new Set<string>(Object.keys(FILTER_OPTION_LABELS));
const ADDR_KEYS = ["origSrc", "origDst", "replySrc", "replyDst"] as const;
const PORT_KEYS = ["origSport", "origDport", "replySport", "replyDport"] as const;

/**
 * A compiled filter. Address patterns are 16 words (orig src, orig dst,
 * reply src, reply dst) with a mask each; ports are -1 when not given;
 * TCP states a bit set; status a must-be-set and a must-be-clear mask.
 */
export class CtFilter {
  /** True when nothing was given: everything matches. */
  readonly empty: boolean;
  family = 0;
  proto = -1;
  /** Which of the four addresses are tested (bit k = address k). */
  addrOn = 0;
  readonly addrValue = new Int32Array(16);
  readonly addrMask = new Int32Array(16);
  readonly port = new Int32Array(4).fill(-1);
  icmpType = -1;
  icmpCode = -1;
  icmpId = -1;
  /** Bit s set: TCP state s matches; 0 = any. */
  stateMask = 0;
  statusSet = 0;
  statusClear = 0;
  markOn = false;
  markValue = 0;
  markMask = 0;

  constructor(spec: FilterSpec) {
    this.empty = Object.keys(spec).length === 0;
    compileInto(this, spec);
  }

  /**
   * True when snapshot `s` passes. `eitherSide`: the tuple fields may also
   * match with the directions swapped (delete by tuple).
   */
  matches(s: ConnSnapshot, eitherSide: boolean): boolean {
    if (this.empty) return true;
    if (this.family !== 0 && s.family !== this.family) return false;
    if (this.proto >= 0 && s.proto !== this.proto) return false;
    if (this.stateMask !== 0 && (s.tcpState < 0 || (this.stateMask & (1 << s.tcpState)) === 0)) return false;
    if ((s.status & this.statusSet) !== this.statusSet || (s.status & this.statusClear) !== 0) return false;
    if (this.markOn && ((s.mark & this.markMask) >>> 0) !== this.markValue) return false;
    if (this.side(s, 0, 0) && this.side(s, 1, 1)) return true;
    return eitherSide && this.side(s, 0, 1) && this.side(s, 1, 0);
  }

  /** Tests the orig-side (side 0) or reply-side (side 1) fields against direction `dir` of the entry. */
  private side(s: ConnSnapshot, side: number, dir: number): boolean {
    for (let k = 0; k < 2; k++) {
      const a = side * 2 + k;
      if ((this.addrOn & (1 << a)) !== 0) {
        const at = dir * 8 + k * 4, f = a * 4;
        for (let w = 0; w < 4; w++) {
          if (((s.addr[at + w] ^ this.addrValue[f + w]) & this.addrMask[f + w]) !== 0) return false;
        }
      }
      const p = this.port[a];
      if (p >= 0 && s.port[dir * 2 + k] !== p) return false;
    }
    if (side === 0) {
      const id = s.port[dir * 2], tc = s.port[dir * 2 + 1];
      if (this.icmpId >= 0 && id !== this.icmpId) return false;
      if (this.icmpType >= 0 && tc >> 8 !== this.icmpType) return false;
      if (this.icmpCode >= 0 && (tc & 0xff) !== this.icmpCode) return false;
    }
    return true;
  }
}

function compileInto(f: CtFilter, spec: FilterSpec): void {
  const raw = spec as Record<string, unknown>;
  for (const k of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(k)) throw new SluiceError(ERR.USAGE, `filter: unknown field "${k}"`);
  }
  let family = 0;
  const setFamily = (key: FilterKey, fam: number): void => {
    if (family !== 0 && family !== fam) bad(key, "mismatched address family");
    family = fam;
  };
  if (spec.family !== undefined) {
    const fam = typeof spec.family === "string" ? FAMILY_BY_NAME[spec.family.toLowerCase()] : undefined;
    if (fam === undefined) bad("family", `expected ipv4 or ipv6, got ${JSON.stringify(spec.family)}`);
    family = fam;
  }
  if (spec.proto !== undefined) f.proto = intField("proto", spec.proto, 255);

  for (let a = 0; a < 4; a++) {
    const key = ADDR_KEYS[a], v = spec[key];
    if (v === undefined) continue;
    if (typeof v !== "string") bad(key, "expected an address");
    const p = parseAddress(v);
    if (p === null) bad(key, `invalid IP address "${v}"`);
    setFamily(key, p.family);
    const full = p.family === AF.INET ? 32 : 128;
    prefixMask(p.prefix < 0 ? full : p.prefix, f.addrMask, a * 4);
    for (let w = 0; w < 4; w++) f.addrValue[a * 4 + w] = p.words[w] & f.addrMask[a * 4 + w];
    f.addrOn |= 1 << a;
  }
  for (const [key, a] of [["maskSrc", 0], ["maskDst", 1]] as const) {
    const v = spec[key];
    if (v === undefined) continue;
    if (typeof v !== "string") bad(key, "expected an address mask");
    const m = parseAddress(v);
    if (m === null || m.prefix >= 0) bad(key, `invalid mask "${v}" (write it as an address, e.g. 255.255.255.0)`);
    if ((f.addrOn & (1 << a)) === 0) bad(key, `needs ${FILTER_OPTION_LABELS[a === 0 ? "origSrc" : "origDst"]}`);
    setFamily(key, m.family);
    for (let w = 0; w < 4; w++) {
      f.addrMask[a * 4 + w] = m.words[w];
      f.addrValue[a * 4 + w] &= m.words[w];
    }
  }
  f.family = family;

  const needProto = (key: FilterKey, allowed: readonly number[], names: string): void => {
    if (f.proto < 0 || !allowed.includes(f.proto)) bad(key, `needs ${names}`);
  };
  for (let k = 0; k < 4; k++) {
    const key = PORT_KEYS[k];
    if (spec[key] === undefined) continue;
    f.port[k] = intField(key, spec[key], 0xffff);
    needProto(key, [IPPROTO.TCP, IPPROTO.UDP], "-p tcp or -p udp (sluice tracks ports for tcp and udp only)");
  }
  for (const key of ["icmpType", "icmpCode", "icmpId"] as const) {
    if (spec[key] === undefined) continue;
    const v = intField(key, spec[key], key === "icmpId" ? 0xffff : 255);
    needProto(key, [IPPROTO.ICMP, IPPROTO.ICMPV6], "-p icmp or -p icmpv6");
    if (key === "icmpType") f.icmpType = v;
    else if (key === "icmpCode") f.icmpCode = v;
    else f.icmpId = v;
  }
  if (spec.state !== undefined) {
    needProto("state", [IPPROTO.TCP], "-p tcp (sluice keeps states for TCP only)");
    for (const name of stringList("state", spec.state)) {
      const up = name.toUpperCase();
      const st = up === "LISTEN" ? TCP_STATE.SYN_SENT2 : (TCP_STATE_NAMES as readonly string[]).indexOf(up);
      if (st < 0) bad("state", `unknown TCP state "${name}" (one of ${TCP_STATE_NAMES.join(", ")}, LISTEN)`);
      f.stateMask |= 1 << st;
    }
  }
  if (spec.status !== undefined) {
    for (const name of stringList("status", spec.status)) {
      const up = name.toUpperCase();
      if (up === STATUS_UNSET) continue;
      if (up === STATUS_UNREPLIED) { f.statusClear |= STATUS.SEEN_REPLY; continue; }
      const bit = (STATUS_NAMES as readonly string[]).indexOf(up);
      if (bit < 0) bad("status", `unknown status "${name}" (one of ${STATUS_NAMES.join(", ")}, ${STATUS_UNREPLIED}, ${STATUS_UNSET})`);
      f.statusSet |= 1 << bit;
    }
    if ((f.statusSet & f.statusClear) !== 0) bad("status", "SEEN_REPLY and UNREPLIED contradict each other");
  }
  if (spec.mark !== undefined) {
    if (typeof spec.mark !== "string" && typeof spec.mark !== "number") bad("mark", "expected MARK[/MASK]");
    const [v, m, extra] = String(spec.mark).split("/");
    const value = parseUint(v, 0xffffffff);
    const mask = m === undefined ? 0xffffffff : parseUint(m, 0xffffffff);
    if (value < 0 || mask < 0 || extra !== undefined) bad("mark", `expected MARK[/MASK] with 32-bit numbers, got "${String(spec.mark)}"`);
    f.markOn = true;
    f.markMask = mask | 0;
    f.markValue = (value & mask) >>> 0;
  }
}

function intField(key: FilterKey, v: unknown, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) bad(key, `expected an integer 0-${max}, got ${JSON.stringify(v)}`);
  return v;
}

function stringList(key: FilterKey, v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string" && x !== "")) {
    bad(key, `expected a comma-separated list of names, got ${JSON.stringify(v)}`);
  }
  return v as string[];
}

/** Validates a filter received as JSON (any client may send anything) and compiles it. */
export function compileFilter(spec: unknown): CtFilter {
  if (spec === undefined || spec === null) return new CtFilter({});
  if (typeof spec !== "object" || Array.isArray(spec)) throw new SluiceError(ERR.USAGE, "filter: expected an object");
  return new CtFilter(spec as FilterSpec);
}

/** Parses a family name ("ipv4"/"ipv6", any case) into AF.*, or throws naming -f. */
export function parseFamily(v: unknown): number {
  const fam = typeof v === "string" ? FAMILY_BY_NAME[v.toLowerCase()] : undefined;
  if (fam === undefined) bad("family", `expected ipv4 or ipv6, got ${JSON.stringify(v)}`);
  return fam;
}

/**
 * Parses an event-type list as `conntrack -e` takes it (ALL, NEW, UPDATES
 * or UPDATE, DESTROY; comma-separated, any case) into a bit set over EVENT.*.
 */
export function parseEventMask(names: readonly string[]): number {
  let mask = 0;
  for (const raw of names) {
    switch (raw.toUpperCase()) {
      case "ALL": mask |= (1 << EVENT.NEW) | (1 << EVENT.UPDATE) | (1 << EVENT.DESTROY); break;
      case "NEW": mask |= 1 << EVENT.NEW; break;
      case "UPDATE": case "UPDATES": mask |= 1 << EVENT.UPDATE; break;
      case "DESTROY": mask |= 1 << EVENT.DESTROY; break;
      default:
        throw new SluiceError(ERR.USAGE, `-e/--event-mask: unknown event "${raw}" (ALL, NEW, UPDATES, DESTROY)`);
    }
  }
  if (mask === 0) throw new SluiceError(ERR.USAGE, "-e/--event-mask: no event named");
  return mask;
}
