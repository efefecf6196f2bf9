import { readU32, writeU16, writeU32 } from "./bytes.js";
import { checksum, csumReplace16, csumReplace32 } from "./checksum.js";

/*
 * RFC 791 §3.1
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version|  IHL  |Type of Service|          Total Length         |
 * |         Identification        |Flags|      Fragment Offset    |
 * |  Time to Live |    Protocol   |         Header Checksum       |
 * |                       Source Address                          |
 * |                    Destination Address                        |
 * |                    Options                    |    Padding    |
 */
const VER_IHL = 0;
const TOS = 1;
const TOT_LEN = 2;
const ID = 4;
const FRAG = 6;
const TTL = 8;
const PROTO = 9;
const CSUM = 10;
const SRC = 12;
const DST = 16;
/** Minimum header length (IHL 5). */
export const IPV4_MIN_HEADER = 20;

const EMPTY = new Uint8Array(0);

/**
 * A reusable view over an IPv4 header. `reset` does every bounds check once
 * (version, IHL, total length within the buffer); the getters then read raw
 * bytes without further checks. Bytes beyond Total Length (Ethernet padding)
 * are ignored, as `ip_rcv_core` trims them.
 */
export class Ipv4View {
  buf: Uint8Array = EMPTY;
  off = 0;
  /** Header length in bytes (IHL × 4), validated. */
  headerLength = 0;
  /** Total Length field, validated to lie within the buffer. */
  totalLength = 0;
  /** Bytes of the datagram present: Total Length, or less for a quoted packet. */
  availableLength = 0;

  /**
   * Re-aims the view; false if `buf[off, off+len)` does not hold a well-formed
   * IPv4 header and its Total Length. With `quoted` (the packet quoted in an
   * ICMP error), Total Length may exceed `len`: only the header must be whole.
   */
  reset(buf: Uint8Array, off: number, len: number, quoted = false): boolean {
    if (len < IPV4_MIN_HEADER || off < 0 || off + len > buf.length) return false;
    const vi = buf[off + VER_IHL];
    if (vi >> 4 !== 4) return false;
    const hl = (vi & 0x0f) << 2;
    const tl = (buf[off + TOT_LEN] << 8) | buf[off + TOT_LEN + 1];
    // ip_rcv_core(): ihl >= 5, tot_len >= ihl*4, tot_len <= skb->len.
    if (hl < IPV4_MIN_HEADER || tl < hl || hl > len || (tl > len && !quoted)) return false;
    this.buf = buf;
    this.off = off;
    this.headerLength = hl;
    this.totalLength = tl;
    this.availableLength = tl < len ? tl : len;
    return true;
  }

  get ihl(): number { return this.buf[this.off + VER_IHL] & 0x0f; }
  get tos(): number { return this.buf[this.off + TOS]; }
  get dscp(): number { return this.buf[this.off + TOS] >> 2; }
  get ecn(): number { return this.buf[this.off + TOS] & 3; }
  get id(): number { const b = this.buf, o = this.off + ID; return (b[o] << 8) | b[o + 1]; }
  /** The 3 flag bits (reserved, DF, MF) as the top bits of byte 6, shifted down: DF = 2, MF = 1. */
  get flags(): number { return this.buf[this.off + FRAG] >> 5; }
  get dontFragment(): boolean { return (this.buf[this.off + FRAG] & 0x40) !== 0; }
  get moreFragments(): boolean { return (this.buf[this.off + FRAG] & 0x20) !== 0; }
  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragmentOffset(): number { const b = this.buf, o = this.off + FRAG; return (((b[o] & 0x1f) << 8) | b[o + 1]) << 3; }
  /** True for any fragment (MF set or a non-zero offset), as `ip_is_fragment`. */
  get isFragment(): boolean { const b = this.buf, o = this.off + FRAG; return ((b[o] & 0x3f) | b[o + 1]) !== 0; }
  get ttl(): number { return this.buf[this.off + TTL]; }
  get protocol(): number { return this.buf[this.off + PROTO]; }
  get checksum(): number { const b = this.buf, o = this.off + CSUM; return (b[o] << 8) | b[o + 1]; }
  /** Source address as an unsigned 32-bit integer. */
  get src(): number { return readU32(this.buf, this.off + SRC); }
  /** Destination address as an unsigned 32-bit integer. */
  get dst(): number { return readU32(this.buf, this.off + DST); }
  get optionsOffset(): number { return this.off + IPV4_MIN_HEADER; }
  get optionsLength(): number { return this.headerLength - IPV4_MIN_HEADER; }
  /** Offset of the payload (the L4 header for an unfragmented datagram). */
  get payloadOffset(): number { return this.off + this.headerLength; }
  get payloadLength(): number { return this.availableLength - this.headerLength; }

  /** True when the header checksum verifies. */
  verifyChecksum(): boolean { return checksum(this.buf, this.off, this.headerLength) === 0; }
  /** Recomputes the header checksum from scratch. */
  updateChecksum(): void {
    const b = this.buf, o = this.off + CSUM;
    b[o] = 0; b[o + 1] = 0;
    writeU16(b, o, checksum(b, this.off, this.headerLength));
  }

  setTtl(v: number): void { this.buf[this.off + TTL] = v; }
  /** Sets TTL and patches the header checksum (RFC 1624) over the TTL/protocol word. */
  setTtlWithChecksumUpdate(v: number): void {
    const b = this.buf, o = this.off + TTL;
    const old = (b[o] << 8) | b[o + 1];
    b[o] = v;
    writeU16(b, this.off + CSUM, csumReplace16(this.checksum, old, (v << 8) | b[o + 1]));
  }
  setTos(v: number): void { this.buf[this.off + TOS] = v; }
  setTotalLength(v: number): void { writeU16(this.buf, this.off + TOT_LEN, v); this.totalLength = v; this.availableLength = v; }
  setSrc(addr: number): void { writeU32(this.buf, this.off + SRC, addr); }
  setDst(addr: number): void { writeU32(this.buf, this.off + DST, addr); }
  /** Rewrites the source address with an incremental header checksum update (the L4 pseudo-header is the caller's). */
  setSrcWithChecksumUpdate(addr: number): void {
    writeU16(this.buf, this.off + CSUM, csumReplace32(this.checksum, this.src, addr));
    writeU32(this.buf, this.off + SRC, addr);
  }
  /** Rewrites the destination address with an incremental header checksum update. */
  setDstWithChecksumUpdate(addr: number): void {
    writeU16(this.buf, this.off + CSUM, csumReplace32(this.checksum, this.dst, addr));
    writeU32(this.buf, this.off + DST, addr);
  }
}
