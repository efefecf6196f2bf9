import { fold, pseudoSumV4, pseudoSumV6, sumWords } from "./checksum.js";
import { AF, IPPROTO } from "./constants.js";
import { IcmpView, isIcmpError, isIcmpv6Error } from "./icmp.js";
import { Ipv4View } from "./ipv4.js";
import { Ipv6View } from "./ipv6.js";
import { TcpView } from "./tcp.js";
import { UdpView } from "./udp.js";

/** Outcome of {@link Packet.parse}. */
export const PARSE = {
  /** L3 and (for TCP, UDP, ICMP, ICMPv6) L4 headers are sound. */
  OK: 0,
  /** Neither IPv4 nor IPv6, or the L3 header is malformed or truncated. */
  BAD_L3: 1,
  /** A fragment: reassemble before tracking. */
  FRAGMENT: 2,
  /** The L4 header is truncated or malformed (the tracker's `*_error()` cases). */
  BAD_L4: 3,
} as const;

/** Names of the {@link PARSE} codes, for logs. */
export const PARSE_NAMES = ["ok", "bad-l3", "fragment", "bad-l4"] as const;

/**
 * One packet's views, re-aimed for every packet: the L3 view of its family
 * and the L4 view of its protocol. The object is allocated once per pipeline;
 * `parse` allocates nothing.
 */
export class Packet {
  readonly ip4 = new Ipv4View();
  readonly ip6 = new Ipv6View();
  readonly tcp = new TcpView();
  readonly udp = new UdpView();
  readonly icmp = new IcmpView();
  buf: Uint8Array = new Uint8Array(0);
  /** Offset of the L3 header. */
  off = 0;
  /** Datagram length from the L3 header (bytes beyond it are padding). */
  length = 0;
  /** AF.INET or AF.INET6 (0 before a successful parse). */
  family = 0;
  /** Upper-layer protocol number. */
  proto = 0;
  l4Offset = 0;
  l4Length = 0;
  /** True for an ICMP/ICMPv6 error message (the quoted packet follows the header). */
  icmpError = false;

  /** Parses the L3 and L4 headers of `buf[off, off+len)`; returns a {@link PARSE} code. */
  parse(buf: Uint8Array, off: number, len: number): number {
    this.buf = buf;
    this.off = off;
    this.family = 0;
    this.icmpError = false;
    if (len < 1) return PARSE.BAD_L3;
    const version = buf[off] >> 4;
    if (version === 4) {
      const ip = this.ip4;
      if (!ip.reset(buf, off, len)) return PARSE.BAD_L3;
      this.family = AF.INET;
      this.length = ip.totalLength;
      this.proto = ip.protocol;
      this.l4Offset = ip.payloadOffset;
      this.l4Length = ip.payloadLength;
      if (ip.isFragment) return PARSE.FRAGMENT;
    } else if (version === 6) {
      const ip = this.ip6;
      if (!ip.reset(buf, off, len)) return PARSE.BAD_L3;
      this.family = AF.INET6;
      this.length = ip.totalLength;
      this.proto = ip.upperProtocol;
      this.l4Offset = ip.upperOffset;
      this.l4Length = ip.upperLength;
      if (ip.isFragment) return PARSE.FRAGMENT;
    } else {
      return PARSE.BAD_L3;
    }
    return this.parseL4();
  }

  /**
   * Verifies the L4 checksum over the whole L4 data (`nf_checksum` over
   * skb->len - dataoff). A zero UDP checksum over IPv4 means "none" and
   * passes; over IPv6 it is invalid (RFC 8200 §8.1, `udp6_error`). Protocols
   * without a checksum sluice knows pass.
   */
  l4ChecksumValid(): boolean {
    const b = this.buf, o = this.l4Offset, n = this.l4Length, v4 = this.family === AF.INET;
    let sum: number;
    switch (this.proto) {
      case IPPROTO.TCP:
        sum = v4 ? pseudoSumV4(b, this.off, IPPROTO.TCP, n) : pseudoSumV6(b, this.off, IPPROTO.TCP, n);
        break;
      case IPPROTO.UDP:
        if (((b[o + 6] << 8) | b[o + 7]) === 0) return v4;
        sum = v4 ? pseudoSumV4(b, this.off, IPPROTO.UDP, n) : pseudoSumV6(b, this.off, IPPROTO.UDP, n);
        break;
      case IPPROTO.ICMP:
        if (!v4) return true;
        sum = 0;
        break;
      case IPPROTO.ICMPV6:
        if (v4) return true;
        sum = pseudoSumV6(b, this.off, IPPROTO.ICMPV6, n);
        break;
      default:
        return true;
    }
    return fold(sumWords(b, o, n, sum)) === 0xffff;
  }

  private parseL4(): number {
    const b = this.buf, o = this.l4Offset, n = this.l4Length;
    switch (this.proto) {
      case IPPROTO.TCP:
        return this.tcp.reset(b, o, n) ? PARSE.OK : PARSE.BAD_L4;
      case IPPROTO.UDP:
        return this.udp.reset(b, o, n) ? PARSE.OK : PARSE.BAD_L4;
      case IPPROTO.ICMP:
        if (this.family !== AF.INET) return PARSE.OK; // ICMP over IPv6 is tracked as a generic protocol, as in Linux
        if (!this.icmp.reset(b, o, n)) return PARSE.BAD_L4;
        this.icmpError = isIcmpError(this.icmp.type);
        return PARSE.OK;
      case IPPROTO.ICMPV6:
        if (this.family !== AF.INET6) return PARSE.OK;
        if (!this.icmp.reset(b, o, n)) return PARSE.BAD_L4;
        this.icmpError = isIcmpv6Error(this.icmp.type);
        return PARSE.OK;
      default:
        return PARSE.OK;
    }
  }
}

/**
 * The packet quoted in an ICMP/ICMPv6 error: its L3 header must be whole, its
 * L4 header only as far as the tuple needs (8 bytes: ports, or ICMP
 * type/code/id), as `nf_conntrack_inet_error()` reads it.
 */
export class QuotedPacket {
  readonly ip4 = new Ipv4View();
  readonly ip6 = new Ipv6View();
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  family = 0;
  proto = 0;
  l4Offset = 0;
  /** Bytes of the quoted L4 header present. */
  l4Length = 0;

  /** Parses a quoted packet of the given family; false if it is unusable for a tuple. */
  parse(buf: Uint8Array, off: number, len: number, family: number): boolean {
    this.buf = buf;
    this.off = off;
    this.family = 0;
    if (family === AF.INET) {
      const ip = this.ip4;
      if (!ip.reset(buf, off, len, true)) return false;
      // A non-first fragment has no L4 header to read (ipv4_get_l4proto).
      if (ip.fragmentOffset !== 0) return false;
      this.proto = ip.protocol;
      this.l4Offset = ip.payloadOffset;
      this.l4Length = ip.payloadLength;
    } else if (family === AF.INET6) {
      const ip = this.ip6;
      if (!ip.reset(buf, off, len, true)) return false;
      if (ip.fragmentOffset !== 0) return false;
      this.proto = ip.upperProtocol;
      this.l4Offset = ip.upperOffset;
      this.l4Length = ip.upperLength;
    } else {
      return false;
    }
    this.family = family;
    return true;
  }
}
