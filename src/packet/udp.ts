import { readU16, writeU16 } from "./bytes.js";
import { udpCsumReplace16, udpCsumReplace32 } from "./checksum.js";

/*
 * RFC 768
 * +--------+--------+--------+--------+
 * |  Source Port    | Destination Port|
 * |     Length      |    Checksum     |
 * +--------+--------+--------+--------+
 */
/** UDP header length. */
export const UDP_HEADER = 8;

const EMPTY = new Uint8Array(0);

/**
 * A reusable view over a UDP header. `reset` checks the header and that the
 * Length field fits the datagram (`udp_error`: "truncated/malformed packet").
 * A zero checksum (IPv4 "no checksum") stays zero through every update.
 */
export class UdpView {
  buf: Uint8Array = EMPTY;
  off = 0;
  /** The validated Length field. */
  length = 0;

  /** Re-aims the view at `len` bytes of L4 data; false when truncated or when Length is below 8 or beyond `len`. */
  reset(buf: Uint8Array, off: number, len: number): boolean {
    if (len < UDP_HEADER || off < 0 || off + len > buf.length) return false;
    const ulen = readU16(buf, off + 4);
    if (ulen < UDP_HEADER || ulen > len) return false;
    this.buf = buf;
    this.off = off;
    this.length = ulen;
    return true;
  }

  get sport(): number { return readU16(this.buf, this.off); }
  get dport(): number { return readU16(this.buf, this.off + 2); }
  get checksum(): number { return readU16(this.buf, this.off + 6); }
  get payloadOffset(): number { return this.off + UDP_HEADER; }
  get payloadLength(): number { return this.length - UDP_HEADER; }

  setSport(v: number): void { writeU16(this.buf, this.off, v); }
  setDport(v: number): void { writeU16(this.buf, this.off + 2, v); }
  setChecksum(v: number): void { writeU16(this.buf, this.off + 6, v); }
  /** Rewrites the source port, patching a non-zero checksum. */
  setSportWithChecksumUpdate(v: number): void { this.setChecksum(udpCsumReplace16(this.checksum, this.sport, v)); this.setSport(v); }
  /** Rewrites the destination port, patching a non-zero checksum. */
  setDportWithChecksumUpdate(v: number): void { this.setChecksum(udpCsumReplace16(this.checksum, this.dport, v)); this.setDport(v); }
  /** Patches a non-zero checksum for a pseudo-header address word that changed. */
  updateChecksumForAddress(oldAddr: number, newAddr: number): void { this.setChecksum(udpCsumReplace32(this.checksum, oldAddr, newAddr)); }
}
