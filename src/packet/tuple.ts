import { readI32, readU16 } from "./bytes.js";
import { AF, IPPROTO } from "./constants.js";
import type { Packet, QuotedPacket } from "./packet.js";

/**
 * A connection tuple in preallocated scratch: family, protocol, addresses as
 * four 32-bit words each (IPv4 uses word 0, the rest stay 0), and two 16-bit
 * "port" fields. For ICMP and ICMPv6 they carry what Linux's
 * `nf_conntrack_tuple` carries: `sport` = echo identifier, `dport` =
 * (type << 8) | code. Other protocols are tracked as generic (ports 0).
 */
export class Tuple {
  family = 0;
  proto = 0;
  /** Address words as signed int32 (see `readI32`); print with `>>> 0`. */
  readonly src = new Int32Array(4);
  readonly dst = new Int32Array(4);
  sport = 0;
  dport = 0;

  /** Copies `t` into this tuple. */
  copyFrom(t: Tuple): void {
    this.family = t.family;
    this.proto = t.proto;
    this.src.set(t.src);
    this.dst.set(t.dst);
    this.sport = t.sport;
    this.dport = t.dport;
  }

  /** True when every field equals `t`'s. */
  equals(t: Tuple): boolean {
    const a = this.src, b = t.src, c = this.dst, d = t.dst;
    return this.family === t.family && this.proto === t.proto && this.sport === t.sport && this.dport === t.dport &&
      a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3] &&
      c[0] === d[0] && c[1] === d[1] && c[2] === d[2] && c[3] === d[3];
  }

  /**
   * Writes the inverse of `t` (the tuple its reply carries) into this tuple,
   * like `nf_ct_invert_tuple`. Returns false when there is no inverse: an
   * ICMP type that has no reply type (`icmp_invert_tuple`).
   */
  invertFrom(t: Tuple): boolean {
    this.family = t.family;
    this.proto = t.proto;
    const s = t.src, d = t.dst;
    // Read both before writing: `t` may be `this`.
    const s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    this.src[0] = d[0]; this.src[1] = d[1]; this.src[2] = d[2]; this.src[3] = d[3];
    this.dst[0] = s0; this.dst[1] = s1; this.dst[2] = s2; this.dst[3] = s3;
    // Only ICMP over IPv4 and ICMPv6 over IPv6 carry type/id; the other
    // pairings are generic (ports 0, see hasL4Tuple) and invert by the swap below.
    if ((t.proto === IPPROTO.ICMP && t.family === AF.INET) || (t.proto === IPPROTO.ICMPV6 && t.family === AF.INET6)) {
      const inv = icmpInverseType(t.family, t.dport >> 8);
      if (inv < 0) return false;
      this.sport = t.sport;
      this.dport = (inv << 8) | (t.dport & 0xff);
      return true;
    }
    const sp = t.sport;
    this.sport = t.dport;
    this.dport = sp;
    return true;
  }
}

/*
 * Request/reply type pairs (`invmap` in nf_conntrack_proto_icmp.c and
 * nf_conntrack_proto_icmpv6.c). -1: no inverse.
 */
// prettier-ignore
const ICMP_INVERSE = new Int16Array([
  /* 0 echo reply -> */ 8, -1, -1, -1, -1, -1, -1, -1,
  /* 8 echo -> */ 0, -1, -1, -1, -1,
  /* 13 timestamp -> */ 14, /* 14 -> */ 13, /* 15 info request -> */ 16, /* 16 -> */ 15,
  /* 17 address mask request -> */ 18, /* 18 -> */ 17,
]);

/** The reply type of an ICMP (family AF.INET) or ICMPv6 type, or -1. */
export function icmpInverseType(family: number, type: number): number {
  if (family === AF.INET) return type < ICMP_INVERSE.length ? ICMP_INVERSE[type] : -1;
  switch (type) {
    case 128: return 129;
    case 129: return 128;
    case 139: return 140;
    case 140: return 139;
    default: return -1;
  }
}

function loadAddresses(out: Tuple, family: number, buf: Uint8Array, ipOff: number): void {
  out.family = family;
  if (family === AF.INET) {
    out.src[0] = readI32(buf, ipOff + 12);
    out.dst[0] = readI32(buf, ipOff + 16);
    out.src[1] = out.src[2] = out.src[3] = 0;
    out.dst[1] = out.dst[2] = out.dst[3] = 0;
  } else {
    for (let i = 0; i < 4; i++) {
      out.src[i] = readI32(buf, ipOff + 8 + (i << 2));
      out.dst[i] = readI32(buf, ipOff + 24 + (i << 2));
    }
  }
}

/** True for the protocols tracked with ports or ICMP ids; everything else is generic. */
function hasL4Tuple(family: number, proto: number): boolean {
  return proto === IPPROTO.TCP || proto === IPPROTO.UDP ||
    (proto === IPPROTO.ICMP && family === AF.INET) || (proto === IPPROTO.ICMPV6 && family === AF.INET6);
}

/** Fills `out` from a parsed packet (its L4 view must be valid, see {@link Packet.parse}). */
export function tupleFromPacket(p: Packet, out: Tuple): void {
  loadAddresses(out, p.family, p.buf, p.off);
  out.proto = p.proto;
  if (!hasL4Tuple(p.family, p.proto)) {
    out.sport = out.dport = 0;
  } else if (p.proto === IPPROTO.TCP || p.proto === IPPROTO.UDP) {
    out.sport = readU16(p.buf, p.l4Offset);
    out.dport = readU16(p.buf, p.l4Offset + 2);
  } else {
    const b = p.buf, o = p.l4Offset;
    out.sport = readU16(b, o + 4);
    out.dport = (b[o] << 8) | b[o + 1];
  }
}

/**
 * Fills `out` from the packet quoted in an ICMP error. Returns false when the
 * quote is too short for the tuple (8 bytes of L4 header for ports or the
 * ICMP id; Linux reads `sizeof(struct icmphdr)` and 8 bytes for TCP/UDP).
 */
export function tupleFromQuoted(q: QuotedPacket, out: Tuple): boolean {
  loadAddresses(out, q.family, q.buf, q.off);
  out.proto = q.proto;
  if (!hasL4Tuple(q.family, q.proto)) {
    out.sport = out.dport = 0;
    return true;
  }
  if (q.l4Length < 8) return false;
  const b = q.buf, o = q.l4Offset;
  if (q.proto === IPPROTO.TCP || q.proto === IPPROTO.UDP) {
    out.sport = readU16(b, o);
    out.dport = readU16(b, o + 2);
  } else {
    out.sport = readU16(b, o + 4);
    out.dport = (b[o] << 8) | b[o + 1];
  }
  return true;
}

/** Formats word-array addresses for text output (not for the packet path). */
export function formatAddress(family: number, w: ArrayLike<number>, at = 0): string {
  if (family === AF.INET) {
    const a = w[at] >>> 0;
    return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 4; i++) {
    const v = w[at + i] >>> 0;
    groups.push(v >>> 16, v & 0xffff);
  }
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first on ties.
  let bestAt = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}
