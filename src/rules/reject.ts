/**
 * The REJECT target: `--reject-with` parsing and the reply packets Linux
 * sends, built into a caller-owned buffer without allocating.
 *
 * Which Linux code this mirrors (kernel 6.18, iptables 1.8.9):
 *
 *   ipt_REJECT.c / ip6t_REJECT.c    reject_tg(): which reply for which value
 *   nf_reject_ipv4.c nf_send_reset()   TCP RST     nf_send_unreach() -> icmp_send()
 *   nf_reject_ipv6.c nf_send_reset6()  TCP RST     nf_send_unreach6() -> icmpv6_send()
 *   net/ipv4/icmp.c  __icmp_send(), icmpv4_global_allow(), icmpv4_xrlim_allow()
 *   net/ipv6/icmp.c  icmp6_send(), is_ineligible(), icmpv6_xrlim_allow()
 *   net/ipv4/inetpeer.c inet_peer_xrlim_allow()  (per-destination token bucket)
 *
 * The reply as built (measured against the kernel in a netns; the fixtures
 * in test/rules/reject.test.ts are the kernel's own replies):
 *
 *   TCP RST, IPv4:  45 00 | len 40 | id 0 | DF | ttl | 6 | csum | src=orig dst | dst=orig src
 *                   sport=orig dport, dport=orig sport, doff 5, window 0, urg 0,
 *                   orig ACK set:   seq = orig ack_seq, flags R
 *                   orig ACK clear: seq 0, ack_seq = seq + SYN + FIN + payload, flags R+A
 *   TCP RST, IPv6:  tc 0, flow label 0, plen 20, hop limit, same TCP header
 *   ICMP,   IPv4:   tos = (orig tos & 0x1e) | 0xc0, id 0 (*), no DF, ttl,
 *                   type 3, code, 4 zero bytes, then the offending datagram
 *                   from its IP header, at most 576 - 20 - 8 = 548 bytes
 *   ICMPv6:         tc 0, flow label 0 (**), hop limit, type 1, code,
 *                   4 zero bytes, then at most 1280 - 40 - 8 = 1232 bytes
 *
 *   (*)  the raw socket's kernel fills a zero IPv4 id for a packet without DF
 *        (raw(7); ip_select_ident), exactly as it numbers its own ICMP errors;
 *        a DF packet (the RST) keeps id 0, as nf_send_reset's does.
 *   (**) Linux labels its ICMPv6 errors with an automatic flow label (a hash
 *        keyed by a per-boot secret, net.ipv6.auto_flowlabels=1); sluice
 *        cannot reproduce it and sends 0 (RFC 6437 allows an unlabeled flow).
 *
 * A packet traversing FORWARD has already had its TTL / hop limit
 * decremented in Linux (ip_forward / ip6_forward run before the hook), so the
 * quote shows TTL-1 with the IPv4 header checksum patched the way
 * ip_decrease_ttl() does; sluice's pipeline has not decremented it, hence
 * the `forwarded` call option.
 *
 * Not reproduced (see the README of rules/ when it exists):
 * - IPv4 options of the offending packet are not echoed (__ip_options_echo);
 *   the reply never carries options and the quote room is always 548 bytes;
 * - the route MTU is assumed ≥ 576 (IPv4) / 1280 (IPv6);
 * - the reply's mark (fwmark_reflect) and the conntrack attachment are the
 *   caller's business;
 * - checksum verification follows CHECKSUM_NONE (what a TUN device hands
 *   Linux); `csumUnnecessary` stands for CHECKSUM_UNNECESSARY / PARTIAL
 *   (NFQUEUE's NFQA_SKB_CSUMNOTREADY), where Linux verifies nothing.
 */
import { fold, pseudoSumV4, pseudoSumV6, sumWords } from "../packet/checksum.js";
import { readI32 } from "../packet/bytes.js";
import { AF, IPPROTO } from "../packet/constants.js";
import type { Packet } from "../packet/packet.js";
import { HOOK } from "./context.js";

// ---------------------------------------------------------------- --reject-with

/** `--reject-with` values for IPv4: the kernel's `enum ipt_reject_with` (4, ECHOREPLY, is refused). */
export const REJECT4 = {
  NET_UNREACHABLE: 0,
  HOST_UNREACHABLE: 1,
  PROTO_UNREACHABLE: 2,
  PORT_UNREACHABLE: 3,
  NET_PROHIBITED: 5,
  HOST_PROHIBITED: 6,
  TCP_RESET: 7,
  ADMIN_PROHIBITED: 8,
} as const;

/** `--reject-with` values for IPv6: the kernel's `enum ip6t_reject_with` (2 NOT_NEIGHBOUR and 5 ECHOREPLY are refused, as by ip6tables). */
export const REJECT6 = {
  NO_ROUTE: 0,
  ADM_PROHIBITED: 1,
  ADDR_UNREACH: 3,
  PORT_UNREACH: 4,
  TCP_RESET: 6,
  POLICY_FAIL: 7,
  REJECT_ROUTE: 8,
} as const;

/** The IPv4 default (`REJECT_init` in libipt_REJECT.c): icmp-port-unreachable. */
export const REJECT_DEFAULT4 = REJECT4.PORT_UNREACHABLE;
/** The IPv6 default (libip6t_REJECT.c): icmp6-port-unreachable. */
export const REJECT_DEFAULT6 = REJECT6.PORT_UNREACH;

/**
 * [name, alias] by value, in the order libipt_REJECT.c / libip6t_REJECT.c
 * search them (the order matters: a prefix takes the first entry it fits).
 */
const NAMES4: readonly (readonly [string, string] | null)[] = [
  ["icmp-net-unreachable", "net-unreach"],
  ["icmp-host-unreachable", "host-unreach"],
  ["icmp-proto-unreachable", "proto-unreach"],
  ["icmp-port-unreachable", "port-unreach"],
  null, // IPT_ICMP_ECHOREPLY: "no longer supported"
  ["icmp-net-prohibited", "net-prohib"],
  ["icmp-host-prohibited", "host-prohib"],
  ["tcp-reset", "tcp-rst"],
  ["icmp-admin-prohibited", "admin-prohib"],
];
const NAMES6: readonly (readonly [string, string] | null)[] = [
  ["icmp6-no-route", "no-route"],
  ["icmp6-adm-prohibited", "adm-prohibited"],
  null, // IP6T_ICMP6_NOT_NEIGHBOUR: #if 0 in libip6t_REJECT.c
  ["icmp6-addr-unreachable", "addr-unreach"],
  ["icmp6-port-unreachable", "port-unreach"],
  null, // IP6T_ICMP6_ECHOREPLY
  ["tcp-reset", "tcp-reset"],
  ["icmp6-policy-fail", "policy-fail"],
  ["icmp6-reject-route", "reject-route"],
];

/** ICMP code sent for each IPv4 value (reject_tg in ipt_REJECT.c); -1: not an ICMP reply. */
const ICMP_CODE4 = [0, 1, 2, 3, -1, 9, 10, -1, 13] as const;
/** ICMPv6 code sent for each IPv6 value (reject_tg6 in ip6t_REJECT.c). */
const ICMP_CODE6 = [0, 1, 2, 3, 4, -1, -1, 5, 6] as const;

/**
 * Parses a `--reject-with` argument the way iptables does: case-insensitive,
 * and any prefix of a name or alias selects the first entry it begins (so
 * `icmp-h` is icmp-host-unreachable, and an empty string the first entry,
 * icmp-net-unreachable / icmp6-no-route, as `iptables --reject-with ""`).
 * @returns the kernel's value ({@link REJECT4} / {@link REJECT6})
 * @throws Error naming the valid values
 */
export function parseRejectWith(text: string, family: 4 | 6): number {
  const table = family === 4 ? NAMES4 : NAMES6;
  const t = text.toLowerCase();
  for (let i = 0; i < table.length; i++) {
    const e = table[i];
    if (e != null && (e[0].startsWith(t) || e[1].startsWith(t))) return i;
  }
  const valid = table.filter((e) => e != null).map((e) => `${e![0]} (${e![1]})`).join(", ");
  if (family === 4 && ("echo-reply".startsWith(t) || "echoreply".startsWith(t))) {
    throw new Error(`--reject-with echo-reply is no longer supported; valid values: ${valid}`);
  }
  throw new Error(`unknown reject type "${text}"; valid values for ${family === 4 ? "iptables" : "ip6tables"}: ${valid}`);
}

/** The name `iptables-save` prints for a value (the main spelling, never the alias). */
export function rejectWithName(code: number, family: 4 | 6): string {
  const e = (family === 4 ? NAMES4 : NAMES6)[code];
  if (e == null) throw new Error(`${code} is not a --reject-with value for IPv${family}`);
  return e[0];
}

/** True when the value asks for a TCP RST. */
export function isTcpReset(code: number, family: 4 | 6): boolean {
  return code === (family === 4 ? REJECT4.TCP_RESET : REJECT6.TCP_RESET);
}

/**
 * The kernel's load-time check (reject_tg_check / reject_tg6_check): tcp-reset
 * needs `-p tcp` without `!`. Returns the refusal message, or null when the
 * rule is acceptable.
 */
export function rejectRuleError(code: number, family: 4 | 6, proto: number, protoNegated: boolean): string | null {
  if (isTcpReset(code, family) && (proto !== IPPROTO.TCP || protoNegated)) {
    return "REJECT --reject-with tcp-reset is only valid with -p tcp (the kernel refuses it: TCP_RESET invalid for non-tcp)";
  }
  return null;
}

// ---------------------------------------------------------------- outcomes

/** Why `build` produced no reply (`lastReason`); SENT when it did. */
export const REJECT_REASON = {
  SENT: 0,
  /** tcp-reset for a packet that is not TCP, or whose TCP header is missing. */
  NOT_TCP: 1,
  /** A non-first fragment: no L4 header to answer (nf_reject_ip_tcphdr_get, icmp_send, reject6_csum_ok). */
  FRAGMENT: 2,
  /** No RST in reply to a RST. */
  RST: 3,
  /** The L4 checksum does not verify (nf_ip_checksum / nf_ip6_checksum). */
  BAD_CHECKSUM: 4,
  /** Never an ICMP error about an ICMP error (icmp_send, is_ineligible). */
  ICMP_ERROR: 5,
  /** The destination is broadcast or multicast (RTCF_BROADCAST/MULTICAST, PACKET_HOST, IPv6 multicast). */
  NOT_UNICAST_DST: 6,
  /** The source cannot be answered: multicast, broadcast, unspecified, IPv4-mapped. */
  NOT_UNICAST_SRC: 7,
  /** The host-wide ICMP budget (icmp_msgs_per_sec / icmp_msgs_burst) is spent. */
  RATE_GLOBAL: 8,
  /** The per-destination token bucket (icmp_ratelimit / icmpv6 ratelimit) is empty. */
  RATE_PEER: 9,
  /** A forwarded IPv6 packet and no `icmpSource6` given: the kernel would pick one, sluice cannot. */
  NO_SOURCE: 10,
  /** The output buffer is too small for the reply. */
  NO_ROOM: 11,
  /** The packet is malformed or truncated (not a whole IP header, a bad family). */
  MALFORMED: 12,
  /** Not a REJECT value of this family. */
  BAD_CODE: 13,
} as const;

/** Names of {@link REJECT_REASON}, for logs and counters. */
export const REJECT_REASON_NAMES = [
  "sent", "not-tcp", "fragment", "rst", "bad-checksum", "icmp-error", "not-unicast-dst",
  "not-unicast-src", "rate-global", "rate-peer", "no-source", "no-room", "malformed", "bad-code",
] as const;

// ---------------------------------------------------------------- options

/** Configuration of a {@link RejectBuilder}: Linux's sysctls, by their Linux names in the comments. */
export interface RejectOptions {
  /** TTL of IPv4 replies: net.ipv4.ip_default_ttl, or the route's hoplimit metric (ip4_dst_hoplimit). Default 64. */
  ttl?: number;
  /** Hop limit of IPv6 replies: net.ipv6.conf.*.hop_limit or the route's metric (ip6_dst_hoplimit). Default 64. */
  hopLimit?: number;
  /** net.ipv4.icmp_ratelimit, ms (0: no per-destination limit). Default 1000. */
  icmpRatelimitMs?: number;
  /** net.ipv4.icmp_ratemask. Default 0x1818 (types 3, 4, 11, 12). */
  icmpRatemask?: number;
  /** net.ipv4.icmp_msgs_per_sec (host-wide, shared with IPv6). Default 1000 (kernel 6.18). */
  icmpMsgsPerSec?: number;
  /** net.ipv4.icmp_msgs_burst. Default 50 (kernel 6.18). */
  icmpMsgsBurst?: number;
  /** net.ipv6.icmp.ratelimit, ms. Default 100 (what a fresh namespace shows on kernel 6.18). */
  icmpv6RatelimitMs?: number;
  /** net.ipv6.icmp.ratemask as the ICMPv6 types it limits. Default 0-1,3-127 (every error but Packet Too Big). */
  icmpv6Ratemask?: readonly number[];
  /** Per-destination rate table capacity (rounded up to a power of two). Default 4096. */
  peerCapacity?: number;
  /**
   * Credits one ICMP error takes from the host-wide budget. Linux takes
   * get_random_u32_below(3) (0, 1 or 2; icmp_global_consume); give a source
   * of uniform [0, 1) numbers to do the same. Default: exactly 1 (the mean),
   * which keeps tests and replays deterministic.
   */
  random?: () => number;
}

/**
 * Per-call facts about the offending packet that only the pipeline knows.
 * Reuse one object per pipeline (fields assigned per packet) so a call
 * allocates nothing.
 */
export interface RejectCallOptions {
  /** The packet was addressed to this host (an RTCF_LOCAL route): the ICMP error comes from its destination address. */
  srcIsLocalDst: boolean;
  /**
   * IPv4 ICMP source for any other packet. Leave 0 (the default): Linux's
   * __icmp_send leaves it 0 for the route lookup to choose, and a raw
   * socket's kernel fills a zero source the same way (raw(7)). Set it to
   * mirror net.ipv4.icmp_errors_use_inbound_ifaddr=1.
   */
  icmpSource4?: number;
  /**
   * IPv6 ICMP source for a packet not addressed to this host (four words,
   * most significant first): the kernel picks it by source-address selection
   * on the incoming interface (or the route's preferred source); a raw
   * IPv6 socket does not fill it, so the caller must.
   */
  icmpSource6?: Int32Array | readonly number[] | null;
  /** The IPv4 destination is a broadcast address (the route mirror knows): no reply. */
  dstIsBroadcast?: boolean;
  /** The packet traversed FORWARD: quote it with the TTL / hop limit Linux had already decremented. */
  forwarded?: boolean;
  /** The hook (HOOK.*); IPv6 at OUTPUT has Linux's loopback quirk (nf_send_unreach6 sets skb->dev to lo). */
  hook?: number;
  /** The packet arrived on the loopback device: no rate limits at all (icmpv4_global_allow is skipped). */
  inLoopback?: boolean;
  /** The route back to the source leaves through loopback (a local source): no per-destination limit. */
  replyLoopback?: boolean;
  /** Linux would not verify the checksum (CHECKSUM_UNNECESSARY/PARTIAL; NFQA_SKB_CSUMNOTREADY). */
  csumUnnecessary?: boolean;
  /** Prefix length of the route toward the source (icmpv6_xrlim_allow gives wider prefixes more bandwidth). Default 128. */
  routePrefixLen6?: number;
}

// ---------------------------------------------------------------- rate limits

/** inetpeer.c: a bucket holds at most this many timeouts' worth of tokens. */
const XRLIM_BURST_FACTOR = 6;
/** inet_getpeer() starts a new peer's clock 60 s back, so its first bucket is full. */
const PEER_FRESH_MS = 60_000;
/** Slots probed for a key before the least recently used one in the window is taken. */
const PEER_PROBE = 8;
/** icmp_global_allow(): credits are added at most every HZ/50. */
const GLOBAL_MIN_DELTA_MS = 20;

/**
 * Linux's ICMP error rate limits: the host-wide token bucket
 * (icmp_global_allow / icmp_global_consume, shared by IPv4 and IPv6) and the
 * per-destination buckets (inet_peer_xrlim_allow), in a fixed-capacity
 * table.
 *
 * The table is struct-of-arrays with open addressing: a key (family + 4
 * address words) hashes with a per-process seed to a slot, probed linearly
 * over {@link PEER_PROBE} slots. Policy when the window is full: reuse the
 * slot idle the longest. An entry idle ≥ 60 s is indistinguishable from a
 * new peer (its bucket has refilled), so eviction only forgets a bucket
 * that is still refilling when more than PEER_PROBE busy destinations
 * collide — Linux's inetpeer GC forgets old peers too.
 */
export class IcmpRateLimiter {
  readonly capacity: number;
  private readonly mask: number;
  private readonly seed: number;
  private readonly fam: Uint8Array;
  private readonly k0: Int32Array;
  private readonly k1: Int32Array;
  private readonly k2: Int32Array;
  private readonly k3: Int32Array;
  private readonly last: Float64Array;
  private readonly tokens: Float64Array;
  private credit = 0;
  private stamp = -Infinity;
  private readonly perSec: number;
  private readonly burst: number;
  private readonly random: (() => number) | null;

  constructor(capacity: number, msgsPerSec: number, msgsBurst: number, random: (() => number) | null) {
    let cap = 1;
    while (cap < capacity) cap <<= 1;
    this.capacity = cap;
    this.mask = cap - 1;
    this.seed = (Math.random() * 0x7fffffff) | 0;
    this.fam = new Uint8Array(cap);
    this.k0 = new Int32Array(cap);
    this.k1 = new Int32Array(cap);
    this.k2 = new Int32Array(cap);
    this.k3 = new Int32Array(cap);
    this.last = new Float64Array(cap);
    this.tokens = new Float64Array(cap);
    this.perSec = msgsPerSec;
    this.burst = msgsBurst;
    this.random = random;
  }

  /** icmp_global_allow(): may one more ICMP error go out? (credits are taken by {@link consume}). */
  globalAllow(now: number): boolean {
    if (this.credit > 0) return true;
    let delta = now - this.stamp;
    if (delta > 1000) delta = 1000;
    if (delta < GLOBAL_MIN_DELTA_MS) return false;
    const incr = Math.floor((this.perSec * delta) / 1000);
    if (incr === 0) return false;
    this.stamp = now;
    this.credit = Math.min(this.credit + incr, this.burst);
    return true;
  }

  /** icmp_global_consume(): the error was sent. */
  consume(): void {
    this.credit -= this.random === null ? 1 : Math.floor(this.random() * 3);
  }

  /** Credits left in the host-wide bucket (may be negative, as in Linux). */
  get globalCredit(): number {
    return this.credit;
  }

  /**
   * inet_peer_xrlim_allow() for the peer `family`/`a0..a3` (IPv4: a0 only)
   * with a timeout of `tmo` ms; `now` in whole ms.
   */
  peerAllow(family: number, a0: number, a1: number, a2: number, a3: number, now: number, tmo: number): boolean {
    const s = this.slot(family, a0, a1, a2, a3, now);
    let token = this.tokens[s];
    const delta = now - this.last[s];
    if (delta !== 0) {
      this.last[s] = now;
      token += delta;
      if (token > XRLIM_BURST_FACTOR * tmo) token = XRLIM_BURST_FACTOR * tmo;
    }
    let ok = false;
    if (token >= tmo) {
      token -= tmo;
      ok = true;
    }
    this.tokens[s] = token;
    return ok;
  }

  /** Finds or claims the slot of a key. */
  private slot(family: number, a0: number, a1: number, a2: number, a3: number, now: number): number {
    let h = this.seed ^ family;
    h = Math.imul(h ^ a0, 0x9e3779b1);
    h = Math.imul(h ^ a1, 0x85ebca77);
    h = Math.imul(h ^ a2, 0xc2b2ae3d);
    h = Math.imul(h ^ a3, 0x27d4eb2f);
    h ^= h >>> 15;
    const mask = this.mask;
    let victim = -1;
    let victimLast = Infinity;
    for (let i = 0; i < PEER_PROBE; i++) {
      const s = (h + i) & mask;
      const f = this.fam[s];
      if (f === family && this.k0[s] === a0 && this.k1[s] === a1 && this.k2[s] === a2 && this.k3[s] === a3) return s;
      const l = f === 0 ? -Infinity : this.last[s];
      if (l < victimLast) {
        victimLast = l;
        victim = s;
      }
    }
    // A new peer (inet_getpeer): rate_last = now - 60 s, no tokens yet.
    const s = victim;
    this.fam[s] = family;
    this.k0[s] = a0; this.k1[s] = a1; this.k2[s] = a2; this.k3[s] = a3;
    this.last[s] = now - PEER_FRESH_MS;
    this.tokens[s] = 0;
    return s;
  }
}

// ---------------------------------------------------------------- builder

const IPV4_HDR = 20;
const IPV6_HDR = 40;
const TCP_HDR = 20;
const ICMP_HDR = 8;
/** RFC 1812 §4.3.2.3 / __icmp_send: an ICMP error is at most 576 bytes. */
const ICMP4_MAX = 576;
/** RFC 4443 §2.4 (c): at most the IPv6 minimum MTU. */
const ICMP6_MAX = 1280;
/** IPTOS_TOS_MASK and IPTOS_PREC_INTERNETCONTROL (__icmp_send). */
const IPTOS_TOS_MASK = 0x1e;
const IPTOS_PREC_INTERNETCONTROL = 0xc0;
/** NR_ICMP_TYPES: a type above it counts as an error (icmp_send "think about it"). */
const NR_ICMP_TYPES = 18;
const ICMP_DEST_UNREACH = 3;
const ICMPV6_DEST_UNREACH = 1;

/**
 * Builds REJECT replies. One per pipeline: its rate-limit state is the
 * namespace's (Linux keeps one per netns). `build` allocates nothing.
 */
export class RejectBuilder {
  /** Why the last `build` returned 0 ({@link REJECT_REASON}); SENT after a reply. */
  lastReason: number = REJECT_REASON.SENT;
  /** Outcomes by {@link REJECT_REASON}, counted since construction. */
  readonly counts = new Float64Array(REJECT_REASON_NAMES.length);
  readonly rate: IcmpRateLimiter;
  private readonly ttl: number;
  private readonly hopLimit: number;
  private readonly tmo4: number;
  private readonly mask4: number;
  private readonly tmo6: number;
  private readonly mask6 = new Uint32Array(8);

  constructor(opts: RejectOptions = {}) {
    this.ttl = opts.ttl ?? 64;
    this.hopLimit = opts.hopLimit ?? 64;
    this.tmo4 = opts.icmpRatelimitMs ?? 1000;
    this.mask4 = opts.icmpRatemask ?? 0x1818;
    this.tmo6 = opts.icmpv6RatelimitMs ?? 100;
    const types6 = opts.icmpv6Ratemask;
    if (types6 === undefined) {
      for (let t = 0; t < 128; t++) if (t !== 2) this.mask6[t >>> 5] |= 1 << (t & 31);
    } else {
      for (const t of types6) this.mask6[t >>> 5] |= 1 << (t & 31);
    }
    this.rate = new IcmpRateLimiter(opts.peerCapacity ?? 4096, opts.icmpMsgsPerSec ?? 1000, opts.icmpMsgsBurst ?? 50, opts.random ?? null);
  }

  /**
   * Writes the reply REJECT `code` sends for `pkt` (its L3 header parsed;
   * for IPv6 its extension headers walked) at `out[0..)`.
   * @param code a {@link REJECT4} / {@link REJECT6} value of the packet's family
   * @param now pipeline clock, ms (rate limits)
   * @returns the reply's length, or 0 with the reason in `lastReason`
   */
  build(code: number, pkt: Packet, out: Uint8Array, now: number, call: RejectCallOptions): number {
    let n: number;
    if (pkt.family === AF.INET) {
      const icmpCode = code >= 0 && code < ICMP_CODE4.length ? ICMP_CODE4[code] : -1;
      if (code === REJECT4.TCP_RESET) n = this.reset4(pkt, out, call);
      else if (icmpCode >= 0) n = this.unreach4(icmpCode, pkt, out, Math.floor(now), call);
      else n = this.fail(REJECT_REASON.BAD_CODE);
    } else if (pkt.family === AF.INET6) {
      const icmpCode = code >= 0 && code < ICMP_CODE6.length ? ICMP_CODE6[code] : -1;
      if (code === REJECT6.TCP_RESET) n = this.reset6(pkt, out, call);
      else if (icmpCode >= 0) n = this.unreach6(icmpCode, pkt, out, Math.floor(now), call);
      else n = this.fail(REJECT_REASON.BAD_CODE);
    } else {
      n = this.fail(REJECT_REASON.MALFORMED);
    }
    if (n > 0) {
      this.lastReason = REJECT_REASON.SENT;
      this.counts[REJECT_REASON.SENT]++;
    }
    return n;
  }

  private fail(reason: number): number {
    this.lastReason = reason;
    this.counts[reason]++;
    return 0;
  }

  // ------------------------------------------------------------ IPv4

  /** nf_send_reset(). */
  private reset4(pkt: Packet, out: Uint8Array, call: RejectCallOptions): number {
    const b = pkt.buf, o = pkt.off;
    const ip = pkt.ip4;
    if (ip.fragmentOffset !== 0) return this.fail(REJECT_REASON.FRAGMENT);
    if (ip.protocol !== IPPROTO.TCP) return this.fail(REJECT_REASON.NOT_TCP);
    const t = pkt.l4Offset;
    const tlen = ip.totalLength - ip.headerLength;
    if (tlen < TCP_HDR || t + TCP_HDR > b.length) return this.fail(REJECT_REASON.NOT_TCP);
    const flags = b[t + 13];
    if ((flags & 0x04) !== 0) return this.fail(REJECT_REASON.RST);
    if (call.csumUnnecessary !== true && fold(sumWords(b, t, tlen, pseudoSumV4(b, o, IPPROTO.TCP, tlen))) !== 0xffff) {
      return this.fail(REJECT_REASON.BAD_CHECKSUM);
    }
    // int32 addresses: no heap numbers on the packet path (bytes.ts readI32).
    const src = readI32(b, o + 12), dst = readI32(b, o + 16);
    if (call.dstIsBroadcast === true || isMulticastOrBroadcast4(dst)) return this.fail(REJECT_REASON.NOT_UNICAST_DST);
    if (isMartianSource4(src)) return this.fail(REJECT_REASON.NOT_UNICAST_SRC);
    if (out.length < IPV4_HDR + TCP_HDR) return this.fail(REJECT_REASON.NO_ROOM);
    // nf_reject_iphdr_put(): tos 0, id 0, DF, ttl from the route.
    putIpv4(out, 0, IPV4_HDR + TCP_HDR, 0x40, this.ttl, IPPROTO.TCP, dst, src);
    const doff = (b[t + 12] >> 4) << 2;
    putTcpReset(out, IPV4_HDR, b, t, flags, tlen - doff);
    const sum = sumWords(out, IPV4_HDR, TCP_HDR, pseudoSumV4(out, 0, IPPROTO.TCP, TCP_HDR));
    writeU16(out, IPV4_HDR + 16, ~fold(sum) & 0xffff);
    return IPV4_HDR + TCP_HDR;
  }

  /** nf_send_unreach() then __icmp_send(). */
  private unreach4(icmpCode: number, pkt: Packet, out: Uint8Array, now: number, call: RejectCallOptions): number {
    const b = pkt.buf, o = pkt.off;
    const ip = pkt.ip4;
    if (ip.fragmentOffset !== 0) return this.fail(REJECT_REASON.FRAGMENT);
    const proto = ip.protocol;
    const l4 = pkt.l4Offset;
    const l4len = ip.totalLength - ip.headerLength;
    if (call.csumUnnecessary !== true && !checksumOk4(b, o, proto, l4, l4len)) return this.fail(REJECT_REASON.BAD_CHECKSUM);
    // int32 addresses: no heap numbers on the packet path (bytes.ts readI32).
    const src = readI32(b, o + 12), dst = readI32(b, o + 16);
    // __icmp_send(): no replies to physical or route broadcast/multicast.
    if (call.dstIsBroadcast === true || isMulticastOrBroadcast4(dst)) return this.fail(REJECT_REASON.NOT_UNICAST_DST);
    if (isMartianSource4(src)) return this.fail(REJECT_REASON.NOT_UNICAST_SRC);
    // An error about an ICMP error would make a mess: the inner type must be readable and not an error.
    if (proto === IPPROTO.ICMP) {
      if (l4len < 1) return this.fail(REJECT_REASON.ICMP_ERROR);
      const t = b[l4];
      if (t > NR_ICMP_TYPES || t === 3 || t === 4 || t === 5 || t === 11 || t === 12) return this.fail(REJECT_REASON.ICMP_ERROR);
    }
    // Rate limits: the host-wide budget first (icmpv4_global_allow), then the destination's bucket.
    let limited = false;
    if (call.inLoopback !== true && (this.mask4 & (1 << ICMP_DEST_UNREACH)) !== 0) {
      if (!this.rate.globalAllow(now)) return this.fail(REJECT_REASON.RATE_GLOBAL);
      limited = true;
    }
    if (limited) {
      if (call.replyLoopback !== true && this.tmo4 > 0 && !this.rate.peerAllow(AF.INET, src, 0, 0, 0, now, this.tmo4)) {
        return this.fail(REJECT_REASON.RATE_PEER);
      }
      this.rate.consume();
    }
    const room = ICMP4_MAX - IPV4_HDR - ICMP_HDR;
    const quote = ip.totalLength < room ? ip.totalLength : room;
    const total = IPV4_HDR + ICMP_HDR + quote;
    if (out.length < total) return this.fail(REJECT_REASON.NO_ROOM);
    const saddr = call.srcIsLocalDst ? dst : (call.icmpSource4 ?? 0) | 0;
    putIpv4(out, (ip.tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL, total, 0, this.ttl, IPPROTO.ICMP, saddr, src);
    const h = IPV4_HDR;
    out[h] = ICMP_DEST_UNREACH;
    out[h + 1] = icmpCode;
    for (let i = 2; i < ICMP_HDR; i++) out[h + i] = 0;
    const q = h + ICMP_HDR;
    for (let i = 0; i < quote; i++) out[q + i] = b[o + i];
    if (call.forwarded === true) decreaseTtl4(out, q);
    writeU16(out, h + 2, ~fold(sumWords(out, h, ICMP_HDR + quote, 0)) & 0xffff);
    return total;
  }

  // ------------------------------------------------------------ IPv6

  /** nf_send_reset6(). */
  private reset6(pkt: Packet, out: Uint8Array, call: RejectCallOptions): number {
    const b = pkt.buf, o = pkt.off;
    const ip = pkt.ip6;
    if (!isUnicast6(b, o + 8)) return this.fail(REJECT_REASON.NOT_UNICAST_SRC);
    if (!isUnicast6(b, o + 24)) return this.fail(REJECT_REASON.NOT_UNICAST_DST);
    if (ip.fragmentOffset !== 0) return this.fail(REJECT_REASON.FRAGMENT);
    if (ip.upperProtocol !== IPPROTO.TCP) return this.fail(REJECT_REASON.NOT_TCP);
    const t = ip.upperOffset;
    const tlen = o + ip.totalLength - t;
    if (tlen < TCP_HDR) return this.fail(REJECT_REASON.NOT_TCP);
    const flags = b[t + 13];
    if ((flags & 0x04) !== 0) return this.fail(REJECT_REASON.RST);
    if (call.csumUnnecessary !== true && fold(sumWords(b, t, tlen, pseudoSumV6(b, o, IPPROTO.TCP, tlen))) !== 0xffff) {
      return this.fail(REJECT_REASON.BAD_CHECKSUM);
    }
    if (out.length < IPV6_HDR + TCP_HDR) return this.fail(REJECT_REASON.NO_ROOM);
    // nf_reject_ip6hdr_put(): traffic class 0, flow label 0, addresses swapped.
    putIpv6(out, TCP_HDR, IPPROTO.TCP, this.hopLimit, b, o + 24, o + 8);
    const doff = (b[t + 12] >> 4) << 2;
    putTcpReset(out, IPV6_HDR, b, t, flags, tlen - doff);
    const sum = sumWords(out, IPV6_HDR, TCP_HDR, pseudoSumV6(out, 0, IPPROTO.TCP, TCP_HDR));
    writeU16(out, IPV6_HDR + 16, ~fold(sum) & 0xffff);
    return IPV6_HDR + TCP_HDR;
  }

  /** nf_send_unreach6() then icmp6_send(). */
  private unreach6(icmpCode: number, pkt: Packet, out: Uint8Array, now: number, call: RejectCallOptions): number {
    const b = pkt.buf, o = pkt.off;
    const ip = pkt.ip6;
    // reject6_csum_ok(): a non-first fragment is refused unless the checksum needs no check.
    if (call.csumUnnecessary !== true) {
      if (ip.fragmentOffset !== 0) return this.fail(REJECT_REASON.FRAGMENT);
      if (!checksumOk6(b, o, ip.upperProtocol, ip.upperOffset, o + ip.totalLength - ip.upperOffset)) {
        return this.fail(REJECT_REASON.BAD_CHECKSUM);
      }
    }
    if (b[o + 24] === 0xff) return this.fail(REJECT_REASON.NOT_UNICAST_DST);
    // RFC 4443 §2.4 (e): never to an unspecified or multicast source.
    if (b[o + 8] === 0xff || isUnspecified6(b, o + 8)) return this.fail(REJECT_REASON.NOT_UNICAST_SRC);
    // is_ineligible(): never about an ICMPv6 error (or an ICMPv6 header we cannot read).
    if (ip.upperProtocol === IPPROTO.ICMPV6) {
      const end = o + ip.totalLength;
      if (ip.upperOffset >= end) {
        if (ip.fragmentOffset === 0) return this.fail(REJECT_REASON.ICMP_ERROR);
      } else if ((b[ip.upperOffset] & 0x80) === 0) {
        return this.fail(REJECT_REASON.ICMP_ERROR);
      }
    }
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    if (call.srcIsLocalDst) {
      s0 = readI32(b, o + 24); s1 = readI32(b, o + 28); s2 = readI32(b, o + 32); s3 = readI32(b, o + 36);
    } else {
      const s = call.icmpSource6;
      if (s == null || s.length < 4) return this.fail(REJECT_REASON.NO_SOURCE);
      s0 = s[0]!; s1 = s[1]!; s2 = s[2]!; s3 = s[3]!;
    }
    // nf_send_unreach6() at OUTPUT sets skb->dev to lo, which exempts the error from both limits.
    const fromLo = call.inLoopback === true || call.hook === HOOK.OUTPUT;
    let limited = false;
    if (!fromLo && (this.mask6[0] & (1 << ICMPV6_DEST_UNREACH)) !== 0) {
      if (!this.rate.globalAllow(now)) return this.fail(REJECT_REASON.RATE_GLOBAL);
      limited = true;
    }
    if (limited) {
      if (call.replyLoopback !== true && this.tmo6 > 0) {
        // icmpv6_xrlim_allow(): "give more bandwidth to wider prefixes".
        const plen = call.routePrefixLen6 ?? 128;
        const tmo = plen < 128 ? this.tmo6 >> ((128 - plen) >> 5) : this.tmo6;
        const a = o + 8;
        if (!this.rate.peerAllow(AF.INET6, readI32(b, a), readI32(b, a + 4), readI32(b, a + 8), readI32(b, a + 12), now, tmo)) {
          return this.fail(REJECT_REASON.RATE_PEER);
        }
      }
      this.rate.consume();
    }
    const room = ICMP6_MAX - IPV6_HDR - ICMP_HDR;
    const quote = ip.totalLength < room ? ip.totalLength : room;
    const total = IPV6_HDR + ICMP_HDR + quote;
    if (out.length < total) return this.fail(REJECT_REASON.NO_ROOM);
    putIpv6(out, ICMP_HDR + quote, IPPROTO.ICMPV6, this.hopLimit, b, o + 8, o + 8);
    writeU32(out, 8, s0); writeU32(out, 12, s1); writeU32(out, 16, s2); writeU32(out, 20, s3);
    const h = IPV6_HDR;
    out[h] = ICMPV6_DEST_UNREACH;
    out[h + 1] = icmpCode;
    for (let i = 2; i < ICMP_HDR; i++) out[h + i] = 0;
    const q = h + ICMP_HDR;
    for (let i = 0; i < quote; i++) out[q + i] = b[o + i];
    if (call.forwarded === true) out[q + 7] = (out[q + 7] - 1) & 0xff;
    const sum = sumWords(out, h, ICMP_HDR + quote, pseudoSumV6(out, 0, IPPROTO.ICMPV6, ICMP_HDR + quote));
    writeU16(out, h + 2, ~fold(sum) & 0xffff);
    return total;
  }
}

// ---------------------------------------------------------------- helpers

function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff;
}
function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}

/** An IPv4 header without options at out[0..20): id 0, `frag` the flag byte (0x40 = DF). */
function putIpv4(out: Uint8Array, tos: number, total: number, frag: number, ttl: number, proto: number, src: number, dst: number): void {
  out[0] = 0x45; out[1] = tos; writeU16(out, 2, total);
  out[4] = 0; out[5] = 0; out[6] = frag; out[7] = 0;
  out[8] = ttl; out[9] = proto; out[10] = 0; out[11] = 0;
  writeU32(out, 12, src); writeU32(out, 16, dst);
  writeU16(out, 10, ~fold(sumWords(out, 0, IPV4_HDR, 0)) & 0xffff);
}

/** An IPv6 header at out[0..40): class 0, label 0; source from `b[srcAt..+16)`, destination from `b[dstAt..+16)` (the original's, swapped by the caller). */
function putIpv6(out: Uint8Array, plen: number, nh: number, hlim: number, b: Uint8Array, srcAt: number, dstAt: number): void {
  out[0] = 0x60; out[1] = 0; out[2] = 0; out[3] = 0;
  writeU16(out, 4, plen); out[6] = nh; out[7] = hlim;
  for (let i = 0; i < 16; i++) out[8 + i] = b[srcAt + i];
  for (let i = 0; i < 16; i++) out[24 + i] = b[dstAt + i];
}

/**
 * The RST's TCP header (nf_reject_ip_tcphdr_put / nf_reject_ip6_tcphdr_put),
 * checksum left 0: with the offending segment's ACK, seq = its ack_seq;
 * without, seq 0 and ACK with ack_seq = seq + SYN + FIN + payload length.
 */
function putTcpReset(out: Uint8Array, t: number, b: Uint8Array, ot: number, flags: number, payload: number): void {
  out[t] = b[ot + 2]; out[t + 1] = b[ot + 3];
  out[t + 2] = b[ot]; out[t + 3] = b[ot + 1];
  if ((flags & 0x10) !== 0) {
    for (let i = 0; i < 4; i++) out[t + 4 + i] = b[ot + 8 + i];
    for (let i = 0; i < 4; i++) out[t + 8 + i] = 0;
    out[t + 13] = 0x04;
  } else {
    const seq = ((b[ot + 4] << 24) | (b[ot + 5] << 16) | (b[ot + 6] << 8) | b[ot + 7]) >>> 0;
    const ack = (seq + (flags & 0x02 ? 1 : 0) + (flags & 0x01) + payload) >>> 0;
    for (let i = 0; i < 4; i++) out[t + 4 + i] = 0;
    writeU32(out, t + 8, ack);
    out[t + 13] = 0x14;
  }
  out[t + 12] = (TCP_HDR / 4) << 4;
  for (let i = 14; i < TCP_HDR; i++) out[t + i] = 0;
}

/**
 * ip_decrease_ttl() on the quoted header at out[q]: TTL - 1 and the
 * checksum patched as x86 Linux does it (add htons(0x0100) to the stored
 * word, fold the carry with `check >= 0xffff`), so 0xffff becomes 0x0000
 * exactly when the kernel's does.
 */
function decreaseTtl4(out: Uint8Array, q: number): void {
  // The stored checksum as a little-endian u16 (x86's view of the __sum16).
  let check = out[q + 10] | (out[q + 11] << 8);
  check += 0x0001; // htons(0x0100) on a little-endian host
  check = (check + (check >= 0xffff ? 1 : 0)) & 0xffff;
  out[q + 10] = check & 0xff;
  out[q + 11] = check >>> 8;
  out[q + 8] = (out[q + 8] - 1) & 0xff;
}

/**
 * nf_reject_verify_csum() then nf_ip_checksum() for CHECKSUM_NONE: TCP and
 * UDP with the pseudo-header; other protocols as a plain sum over their data
 * (nf_ip_checksum sums from the IP header, which a valid header leaves
 * unchanged); UDP without checksum, GRE, AH, ESP, SCTP, UDP-Lite and DCCP are
 * not verified.
 */
function checksumOk4(b: Uint8Array, o: number, proto: number, l4: number, len: number): boolean {
  switch (proto) {
    case IPPROTO.UDP:
      if (len >= 8 && b[l4 + 6] === 0 && b[l4 + 7] === 0) return true;
      return fold(sumWords(b, l4, len, pseudoSumV4(b, o, proto, len))) === 0xffff;
    case IPPROTO.TCP:
      return fold(sumWords(b, l4, len, pseudoSumV4(b, o, proto, len))) === 0xffff;
    case IPPROTO.GRE: case IPPROTO.AH: case IPPROTO.ESP: case IPPROTO.SCTP: case IPPROTO.UDPLITE: case IPPROTO.DCCP:
      return true;
    default: {
      // The kernel's sum includes the (valid, 0xffff) IP header, so data summing to +0 passes too.
      const f = fold(sumWords(b, l4, len, 0));
      return f === 0xffff || f === 0;
    }
  }
}

/** The same for IPv6 (nf_ip6_checksum: the pseudo-header with `proto` for every protocol). */
function checksumOk6(b: Uint8Array, o: number, proto: number, l4: number, len: number): boolean {
  switch (proto) {
    case IPPROTO.UDP:
      if (len >= 8 && b[l4 + 6] === 0 && b[l4 + 7] === 0) return true;
      break;
    case IPPROTO.GRE: case IPPROTO.AH: case IPPROTO.ESP: case IPPROTO.SCTP: case IPPROTO.UDPLITE: case IPPROTO.DCCP:
      return true;
  }
  return fold(sumWords(b, l4, len, pseudoSumV6(b, o, proto, len))) === 0xffff;
}

/** 224.0.0.0/4 and 255.255.255.255: always RTCF_MULTICAST / RTCF_BROADCAST routes. */
function isMulticastOrBroadcast4(a: number): boolean {
  return a >>> 28 === 0xe || (a | 0) === -1;
}

/** Sources ip_route_input drops as martians (multicast, limited broadcast, 0.0.0.0/8): never answered. */
function isMartianSource4(a: number): boolean {
  return a >>> 28 === 0xe || (a | 0) === -1 || a >>> 24 === 0;
}

/** `::` */
function isUnspecified6(b: Uint8Array, at: number): boolean {
  for (let i = 0; i < 16; i++) if (b[at + i] !== 0) return false;
  return true;
}

/** ipv6_addr_type() & IPV6_ADDR_UNICAST: not multicast, not `::`, not IPv4-mapped. */
function isUnicast6(b: Uint8Array, at: number): boolean {
  if (b[at] === 0xff) return false;
  for (let i = 0; i < 10; i++) if (b[at + i] !== 0) return true;
  if (b[at + 10] === 0xff && b[at + 11] === 0xff) return false; // ::ffff:0:0/96
  if (b[at + 10] !== 0 || b[at + 11] !== 0) return true;
  for (let i = 12; i < 16; i++) if (b[at + i] !== 0) return true;
  return false; // ::
}
