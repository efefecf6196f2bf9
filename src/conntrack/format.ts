import { AF, IPPROTO } from "../packet/constants.js";
import { formatAddress } from "../packet/tuple.js";
import { EVENT, STATUS, TCP_STATE_NAMES } from "./constants.js";
import type { ConnSnapshot } from "./snapshot.js";

/*
 * Text formats, byte-compatible with what tools parse:
 *
 * /proc/net/nf_conntrack (`ct_seq_show`):
 *   "%-8s %u %-8s %u %ld " l3name l3num l4name l4num secs, "[STATE] ",
 *   orig tuple, [packets= bytes=], "[UNREPLIED] ", reply tuple, [packets= bytes=],
 *   "[ASSURED] ", "mark=%u ", "zone=%u ", "use=%u\n"
 * conntrack -L (libnetfilter_conntrack `__snprintf_conntrack_default`): the same
 *   without the l3 columns and zone, "use=1", no trailing space.
 * conntrack -E: "%9s " event tag first; no counters except on DESTROY (with
 *   acct on), mark only when non-zero, no use= (ctnetlink events carry
 *   neither). DESTROY carries the timeout only when it is not zero
 *   (`ctnetlink_dump_timeout(skb, ct, true)`): an expired entry prints none,
 *   "[DESTROY] tcp      6 TIME_WAIT src=... packets=5 bytes=270 ...", an entry
 *   killed early prints what was left, "[DESTROY] icmp     1 29 src=...".
 *
 * Addresses: /proc prints IPv6 with `%pI6`, eight groups of four hex digits
 * ("2001:0db8:0000:..."); conntrack-tools uses glibc's inet_ntop
 * ("2001:db8::1", "::ffff:10.0.0.1").
 */

/** l4 protocol names as /proc prints them: the generic tracker prints "unknown". */
function procProtoName(proto: number, family: number): string {
  switch (proto) {
    case IPPROTO.TCP: return "tcp";
    case IPPROTO.UDP: return "udp";
    case IPPROTO.ICMP: return family === AF.INET ? "icmp" : "unknown";
    case IPPROTO.ICMPV6: return family === AF.INET6 ? "icmpv6" : "unknown";
    default: return "unknown";
  }
}

/** l4 protocol names as conntrack-tools prints them (libnetfilter_conntrack `proto2str`). */
function toolProtoName(proto: number): string {
  switch (proto) {
    case IPPROTO.TCP: return "tcp";
    case IPPROTO.UDP: return "udp";
    case IPPROTO.UDPLITE: return "udplite";
    case IPPROTO.ICMP: return "icmp";
    case IPPROTO.ICMPV6: return "icmpv6";
    case IPPROTO.SCTP: return "sctp";
    case IPPROTO.GRE: return "gre";
    case IPPROTO.DCCP: return "dccp";
    default: return "unknown";
  }
}

function pad8(s: string): string {
  return s.length >= 8 ? s : s + " ".repeat(8 - s.length);
}

/** An IPv6 address as the kernel's `%pI6` prints it: eight zero-padded groups, no compression. */
function procAddress6(w: ArrayLike<number>, at: number): string {
  let out = "";
  for (let i = 0; i < 4; i++) {
    const v = w[at + i] >>> 0;
    out += `${i === 0 ? "" : ":"}${(v >>> 16).toString(16).padStart(4, "0")}:${(v & 0xffff).toString(16).padStart(4, "0")}`;
  }
  return out;
}

/**
 * An address as glibc's inet_ntop prints it: RFC 5952 compression, plus the
 * dotted tail of IPv4-compatible ("::a.b.c.d") and IPv4-mapped
 * ("::ffff:a.b.c.d") addresses (`inet_ntop6`: a leading zero run of 6 words,
 * or of 5 words followed by ffff).
 */
function toolAddress(f: number, w: ArrayLike<number>, at: number): string {
  if (f === AF.INET6 && w[at] === 0 && w[at + 1] === 0) {
    const w2 = w[at + 2] >>> 0, w3 = w[at + 3] >>> 0;
    if ((w2 === 0 && w3 >>> 16 !== 0) || w2 === 0xffff) {
      const v4 = `${w3 >>> 24}.${(w3 >>> 16) & 255}.${(w3 >>> 8) & 255}.${w3 & 255}`;
      return w2 === 0 ? `::${v4}` : `::ffff:${v4}`;
    }
  }
  return formatAddress(f, w, at);
}

function tuple(s: ConnSnapshot, dir: number, proc = false): string {
  const f = s.family, a = dir * 8, p = dir * 2;
  let out = proc && f === AF.INET6
    ? `src=${procAddress6(s.addr, a)} dst=${procAddress6(s.addr, a + 4)} `
    : `src=${toolAddress(f, s.addr, a)} dst=${toolAddress(f, s.addr, a + 4)} `;
  const icmp = (s.proto === IPPROTO.ICMP && f === AF.INET) || (s.proto === IPPROTO.ICMPV6 && f === AF.INET6);
  if (icmp) {
    out += `type=${s.port[p + 1] >> 8} code=${s.port[p + 1] & 0xff} id=${s.port[p]} `;
  } else if (s.proto === IPPROTO.TCP || s.proto === IPPROTO.UDP) {
    out += `sport=${s.port[p]} dport=${s.port[p + 1]} `;
  }
  return out;
}

function counters(s: ConnSnapshot, dir: number): string {
  return `packets=${s.counters[dir * 2]} bytes=${s.counters[dir * 2 + 1]} `;
}

function stateField(s: ConnSnapshot): string {
  return s.tcpState >= 0 ? `${TCP_STATE_NAMES[s.tcpState] ?? "NONE"} ` : "";
}

function body(s: ConnSnapshot, acct: boolean, proc = false): string {
  let out = tuple(s, 0, proc);
  if (acct) out += counters(s, 0);
  if ((s.status & STATUS.SEEN_REPLY) === 0) out += "[UNREPLIED] ";
  out += tuple(s, 1, proc);
  if (acct) out += counters(s, 1);
  if ((s.status & STATUS.OFFLOAD) !== 0) out += "[OFFLOAD] ";
  else if ((s.status & STATUS.ASSURED) !== 0) out += "[ASSURED] ";
  return out;
}

/** One `/proc/net/nf_conntrack` line (with the trailing newline). */
export function formatProcLine(s: ConnSnapshot, acct: boolean): string {
  const l3 = s.family === AF.INET ? "ipv4" : "ipv6";
  let out = `${pad8(l3)} ${s.family} ${pad8(procProtoName(s.proto, s.family))} ${s.proto} ${s.timeout} `;
  out += stateField(s) + body(s, acct, true);
  out += `mark=${s.mark} `;
  if (s.helper !== "") out += `helper=${s.helper} `;
  out += "zone=0 use=2\n";
  return out;
}

/** One `conntrack -L` line (no newline); `extended` adds the l3 columns like `-o extended`. */
export function formatConntrackLine(s: ConnSnapshot, acct: boolean, extended = false): string {
  let out = extended ? `${pad8(s.family === AF.INET ? "ipv4" : "ipv6")} ${s.family} ` : "";
  out += `${pad8(toolProtoName(s.proto))} ${s.proto} ${s.timeout} ${stateField(s)}${body(s, acct)}`;
  out += `mark=${s.mark} `;
  if (s.helper !== "") out += `helper=${s.helper} `;
  out += "use=1";
  return out;
}

const EVENT_TAGS = ["[NEW]", "[UPDATE]", "[DESTROY]"];

/**
 * One `conntrack -E` line (no newline) for a snapshot filled from an event;
 * `timestamp` prefixes `[sec.usec]\t` like `-o timestamp`; `extended` adds
 * the l3 columns after the tag like `-o extended`.
 */
export function formatEventLine(s: ConnSnapshot, acct: boolean, timestamp = false, extended = false): string {
  const tag = EVENT_TAGS[s.event] ?? "[UNKNOWN]";
  let out = timestamp ? `[${(s.time / 1000).toFixed(6)}]\t` : "";
  out += `${" ".repeat(Math.max(0, 9 - tag.length))}${tag} `;
  if (extended) out += `${pad8(s.family === AF.INET ? "ipv4" : "ipv6")} ${s.family} `;
  out += `${pad8(toolProtoName(s.proto))} ${s.proto} `;
  const destroy = s.event === EVENT.DESTROY;
  if (!destroy || s.timeout !== 0) out += `${s.timeout} `;
  out += stateField(s);
  out += body(s, acct && destroy);
  if (s.mark !== 0) out += `mark=${s.mark} `;
  if (s.helper !== "") out += `helper=${s.helper} `;
  return out.trimEnd();
}
