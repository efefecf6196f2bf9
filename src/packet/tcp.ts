import { readU16, readU32, writeU16, writeU32 } from "./bytes.js";
import { csumReplace16, csumReplace32 } from "./checksum.js";

/*
 * RFC 9293 §3.1
 *  0                   1                   2                   3
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |
 * |                        Sequence Number                        |
 * |                    Acknowledgment Number                      |
 * |  Data |       |C|E|U|A|P|R|S|F|                               |
 * | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 * |           Checksum            |         Urgent Pointer        |
 * |                    Options                    |    Padding    |
 */
const SPORT = 0;
const DPORT = 2;
const SEQ = 4;
const ACK = 8;
const DOFF = 12;
const FLAGS = 13;
const WIN = 14;
const CSUM = 16;
const URG = 18;
/** Minimum TCP header length. */
export const TCP_MIN_HEADER = 20;

/** TCP flag bits as in byte 13 of the header. */
export const TCP_FLAG = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

/** TCP option kinds (IANA). */
export const TCPOPT = { EOL: 0, NOP: 1, MSS: 2, WSCALE: 3, SACK_PERM: 4, SACK: 5, TIMESTAMP: 8 } as const;

/** The window-scale shift is capped at 14 (RFC 7323 §2.3; `TCP_MAX_WSCALE`). */
export const TCP_MAX_WSCALE = 14;
/** At most 4 SACK blocks fit in 40 bytes of options. */
const MAX_SACK_BLOCKS = 4;

const EMPTY = new Uint8Array(0);

/**
 * A reusable view over a TCP header. `reset` checks the 20-byte header and
 * the data offset against the segment length. Options are parsed on demand
 * by {@link TcpView.parseOptions} into preallocated fields, as the tracker
 * needs them only for some packets (SYNs, SACK).
 */
export class TcpView {
  buf: Uint8Array = EMPTY;
  off = 0;
  /** Segment length (header + payload) as given to `reset`. */
  length = 0;
  /** Header length in bytes (data offset × 4), validated. */
  headerLength = 0;

  /** MSS option value, or -1. */
  mss = -1;
  /** Window-scale shift (capped at 14), or -1 when absent. */
  wscale = -1;
  sackPermitted = false;
  /** Number of SACK blocks in {@link sackLeft}/{@link sackRight}. */
  sackCount = 0;
  readonly sackLeft = new Uint32Array(MAX_SACK_BLOCKS);
  readonly sackRight = new Uint32Array(MAX_SACK_BLOCKS);
  /** Offset of the first SACK block in the buffer (for rewriting), or -1. */
  sackOffset = -1;
  hasTimestamp = false;
  tsVal = 0;
  tsEcr = 0;

  /** Re-aims the view at a segment of `len` bytes; false if the header is truncated or the data offset is bad. */
  reset(buf: Uint8Array, off: number, len: number): boolean {
    if (len < TCP_MIN_HEADER || off < 0 || off + len > buf.length) return false;
    const hl = (buf[off + DOFF] >> 4) << 2;
    // tcp_error(): "truncated header" / "bad data offset".
    if (hl < TCP_MIN_HEADER || hl > len) return false;
    this.buf = buf;
    this.off = off;
    this.length = len;
    this.headerLength = hl;
    return true;
  }

  get sport(): number { return readU16(this.buf, this.off + SPORT); }
  get dport(): number { return readU16(this.buf, this.off + DPORT); }
  get seq(): number { return readU32(this.buf, this.off + SEQ); }
  get ack(): number { return readU32(this.buf, this.off + ACK); }
  /** Flag byte (CWR ECE URG ACK PSH RST SYN FIN). */
  get flags(): number { return this.buf[this.off + FLAGS]; }
  get window(): number { return readU16(this.buf, this.off + WIN); }
  get checksum(): number { return readU16(this.buf, this.off + CSUM); }
  get urgentPointer(): number { return readU16(this.buf, this.off + URG); }
  get payloadOffset(): number { return this.off + this.headerLength; }
  get payloadLength(): number { return this.length - this.headerLength; }
  get syn(): boolean { return (this.buf[this.off + FLAGS] & TCP_FLAG.SYN) !== 0; }
  get fin(): boolean { return (this.buf[this.off + FLAGS] & TCP_FLAG.FIN) !== 0; }
  get rst(): boolean { return (this.buf[this.off + FLAGS] & TCP_FLAG.RST) !== 0; }
  get ackFlag(): boolean { return (this.buf[this.off + FLAGS] & TCP_FLAG.ACK) !== 0; }

  /**
   * Parses the options into the option fields. Returns false on a malformed
   * option list (a length below 2 or past the header); like `tcp_options()`
   * and `tcp_sack()` in nf_conntrack_proto_tcp.c, what was parsed before the
   * fault is kept, and a bad length ends the walk.
   */
  parseOptions(): boolean {
    this.mss = -1;
    this.wscale = -1;
    this.sackPermitted = false;
    this.sackCount = 0;
    this.sackOffset = -1;
    this.hasTimestamp = false;
    const b = this.buf;
    let p = this.off + TCP_MIN_HEADER;
    const end = this.off + this.headerLength;
    while (p < end) {
      const kind = b[p];
      if (kind === TCPOPT.EOL) return true;
      if (kind === TCPOPT.NOP) { p++; continue; }
      if (p + 1 >= end) return false;
      const olen = b[p + 1];
      if (olen < 2 || p + olen > end) return false;
      switch (kind) {
        case TCPOPT.MSS:
          if (olen === 4) this.mss = readU16(b, p + 2);
          break;
        case TCPOPT.WSCALE:
          if (olen === 3) this.wscale = Math.min(b[p + 2], TCP_MAX_WSCALE);
          break;
        case TCPOPT.SACK_PERM:
          if (olen === 2) this.sackPermitted = true;
          break;
        case TCPOPT.SACK:
          // tcp_sack(): a block list of 8-byte blocks after the 2-byte kind/length.
          if (olen >= 10 && ((olen - 2) & 7) === 0) {
            this.sackOffset = p + 2;
            let n = 0;
            for (let q = p + 2; q + 8 <= p + olen && n < MAX_SACK_BLOCKS; q += 8, n++) {
              this.sackLeft[n] = readU32(b, q);
              this.sackRight[n] = readU32(b, q + 4);
            }
            this.sackCount = n;
          }
          break;
        case TCPOPT.TIMESTAMP:
          if (olen === 10) { this.hasTimestamp = true; this.tsVal = readU32(b, p + 2); this.tsEcr = readU32(b, p + 6); }
          break;
      }
      p += olen;
    }
    return true;
  }

  setSport(v: number): void { writeU16(this.buf, this.off + SPORT, v); }
  setDport(v: number): void { writeU16(this.buf, this.off + DPORT, v); }
  setChecksum(v: number): void { writeU16(this.buf, this.off + CSUM, v); }
  /** Rewrites the source port and patches the checksum (RFC 1624). */
  setSportWithChecksumUpdate(v: number): void { this.setChecksum(csumReplace16(this.checksum, this.sport, v)); this.setSport(v); }
  /** Rewrites the destination port and patches the checksum. */
  setDportWithChecksumUpdate(v: number): void { this.setChecksum(csumReplace16(this.checksum, this.dport, v)); this.setDport(v); }
  /** Rewrites the sequence number and patches the checksum. */
  setSeqWithChecksumUpdate(v: number): void { this.setChecksum(csumReplace32(this.checksum, this.seq, v)); writeU32(this.buf, this.off + SEQ, v); }
  /** Rewrites the acknowledgment number and patches the checksum. */
  setAckWithChecksumUpdate(v: number): void { this.setChecksum(csumReplace32(this.checksum, this.ack, v)); writeU32(this.buf, this.off + ACK, v); }
  /** Patches the checksum for a pseudo-header address word that changed (NAT of the IP address). */
  updateChecksumForAddress(oldAddr: number, newAddr: number): void { this.setChecksum(csumReplace32(this.checksum, oldAddr, newAddr)); }
}
