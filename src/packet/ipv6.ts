import { readU32, writeU16, writeU32 } from "./bytes.js";
import { IPPROTO } from "./constants.js";

/*
 * RFC 8200 §3
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version| Traffic Class |           Flow Label                  |
 * |         Payload Length        |  Next Header  |   Hop Limit   |
 * |                 Source Address (16 bytes)                     |
 * |              Destination Address (16 bytes)                   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * Extension headers walked to the upper layer (ipv6_skip_exthdr):
 *   0 hop-by-hop, 43 routing, 60 destination options: (hdrlen + 1) * 8 bytes
 *   51 AH: (hdrlen + 2) * 4 bytes
 *   44 fragment: 8 bytes; walking stops after it unless the offset is 0
 */
const PLEN = 4;
const NEXT = 6;
const HLIM = 7;
const SRC = 8;
const DST = 24;
/** Fixed header length. */
export const IPV6_HEADER = 40;
/** At most this many extension headers are walked (bounded work; Linux has no count limit but is bounded by length). */
const MAX_EXT_HEADERS = 16;

const EMPTY = new Uint8Array(0);

/**
 * A reusable view over an IPv6 header and its extension-header chain.
 * `reset` checks the fixed header and Payload Length against the buffer and
 * walks hop-by-hop, routing, destination-options, AH and fragment headers to
 * the upper-layer header. Jumbograms (payload length 0 with a jumbo option)
 * are refused.
 */
export class Ipv6View {
  buf: Uint8Array = EMPTY;
  off = 0;
  /** 40 + Payload Length, validated to lie within the buffer. */
  totalLength = 0;
  /** The upper-layer protocol after the extension headers (59 "no next header" when none). */
  upperProtocol = 0;
  /** Offset of the upper-layer header (or of the fragment data when `fragmentHeaderOffset >= 0`). */
  upperOffset = 0;
  /** Offset of the fragment header, or -1. */
  fragmentHeaderOffset = -1;
  /** Offset of the next-header byte that names the fragment header (to unlink it after reassembly). */
  fragmentPrevNextOffset = -1;
  /** End of the datagram's bytes in the buffer (for a quoted packet, where the quote ends). */
  endOffset = 0;

  /**
   * Re-aims the view; false if the header or its extension chain is malformed
   * or truncated. With `quoted` (the packet inside an ICMPv6 error), Payload
   * Length may exceed `len`; the walk then stops at the bytes present.
   */
  reset(buf: Uint8Array, off: number, len: number, quoted = false): boolean {
    if (len < IPV6_HEADER || off < 0 || off + len > buf.length) return false;
    if (buf[off] >> 4 !== 6) return false;
    const tl = IPV6_HEADER + ((buf[off + PLEN] << 8) | buf[off + PLEN + 1]);
    if (tl > len && !quoted) return false;
    const end = off + (tl < len ? tl : len);
    let nh = buf[off + NEXT];
    let nhAt = off + NEXT;
    let p = off + IPV6_HEADER;
    let frag = -1;
    let fragPrev = -1;
    for (let n = 0; ; n++) {
      if (n > MAX_EXT_HEADERS) return false;
      if (nh === IPPROTO.HOPOPTS) {
        // RFC 8200 §4.1: hop-by-hop only directly after the fixed header.
        if (n !== 0) return false;
      } else if (nh !== IPPROTO.ROUTING && nh !== IPPROTO.DSTOPTS && nh !== IPPROTO.AH && nh !== IPPROTO.FRAGMENT) {
        break;
      }
      if (p + 8 > end) return false;
      let hlen: number;
      if (nh === IPPROTO.FRAGMENT) {
        if (frag >= 0) return false; // two fragment headers: malformed
        frag = p;
        fragPrev = nhAt;
        hlen = 8;
        // A non-first fragment carries no further headers we can read.
        if ((((buf[p + 2] << 8) | buf[p + 3]) & 0xfff8) !== 0) {
          nhAt = p;
          nh = buf[p];
          p += hlen;
          break;
        }
      } else if (nh === IPPROTO.AH) {
        hlen = (buf[p + 1] + 2) << 2;
      } else {
        hlen = (buf[p + 1] + 1) << 3;
      }
      if (p + hlen > end) return false;
      nhAt = p;
      nh = buf[p];
      p += hlen;
    }
    this.buf = buf;
    this.off = off;
    this.totalLength = tl;
    this.upperProtocol = nh;
    this.upperOffset = p;
    this.fragmentHeaderOffset = frag;
    this.fragmentPrevNextOffset = fragPrev;
    this.endOffset = end;
    return true;
  }

  get trafficClass(): number { const b = this.buf, o = this.off; return ((b[o] & 0x0f) << 4) | (b[o + 1] >> 4); }
  get flowLabel(): number { const b = this.buf, o = this.off; return ((b[o + 1] & 0x0f) << 16) | (b[o + 2] << 8) | b[o + 3]; }
  get payloadLengthField(): number { const b = this.buf, o = this.off + PLEN; return (b[o] << 8) | b[o + 1]; }
  /** The Next Header field of the fixed header. */
  get nextHeader(): number { return this.buf[this.off + NEXT]; }
  get hopLimit(): number { return this.buf[this.off + HLIM]; }
  /** Word `i` (0..3) of the source address, as an unsigned 32-bit integer. */
  srcWord(i: number): number { return readU32(this.buf, this.off + SRC + (i << 2)); }
  /** Word `i` (0..3) of the destination address. */
  dstWord(i: number): number { return readU32(this.buf, this.off + DST + (i << 2)); }
  get srcOffset(): number { return this.off + SRC; }
  get dstOffset(): number { return this.off + DST; }
  /** Length of the upper-layer data (to the end of the datagram). */
  get upperLength(): number { return this.endOffset - this.upperOffset; }
  /** True when a fragment header is present (atomic fragments included). */
  get hasFragmentHeader(): boolean { return this.fragmentHeaderOffset >= 0; }
  /** Fragment offset in bytes (0 without a fragment header). */
  get fragmentOffset(): number {
    const f = this.fragmentHeaderOffset;
    return f < 0 ? 0 : ((this.buf[f + 2] << 8) | this.buf[f + 3]) & 0xfff8;
  }
  get moreFragments(): boolean { const f = this.fragmentHeaderOffset; return f >= 0 && (this.buf[f + 3] & 1) !== 0; }
  /** True for a real fragment; an atomic fragment (offset 0, M clear, RFC 6946) is not one. */
  get isFragment(): boolean { return this.fragmentHeaderOffset >= 0 && (this.fragmentOffset !== 0 || this.moreFragments); }
  get fragmentId(): number { const f = this.fragmentHeaderOffset; return f < 0 ? 0 : readU32(this.buf, f + 4); }

  setHopLimit(v: number): void { this.buf[this.off + HLIM] = v; }
  setPayloadLength(v: number): void { writeU16(this.buf, this.off + PLEN, v); this.totalLength = IPV6_HEADER + v; this.endOffset = this.off + this.totalLength; }
  setSrcWord(i: number, v: number): void { writeU32(this.buf, this.off + SRC + (i << 2), v); }
  setDstWord(i: number, v: number): void { writeU32(this.buf, this.off + DST + (i << 2), v); }
}
