import { readU16, writeU16 } from "./bytes.js";
import { csumReplace16, csumReplace32 } from "./checksum.js";

/*
 * RFC 792 / RFC 4443: the first 8 bytes are common to ICMP and ICMPv6.
 * +--------+--------+--------+--------+
 * |  Type  |  Code  |    Checksum     |
 * |   Identifier    | Sequence Number |   (echo, timestamp, information)
 * |  unused / MTU / pointer           |   (errors; the quoted packet follows)
 * +--------+--------+--------+--------+
 */
/** ICMP / ICMPv6 header length before the body or the quoted packet. */
export const ICMP_HEADER = 8;

/** ICMP (v4) types the tracker names. */
export const ICMP_TYPE = {
  ECHOREPLY: 0, DEST_UNREACH: 3, SOURCE_QUENCH: 4, REDIRECT: 5, ECHO: 8, TIME_EXCEEDED: 11,
  PARAMETERPROB: 12, TIMESTAMP: 13, TIMESTAMPREPLY: 14, INFO_REQUEST: 15, INFO_REPLY: 16,
  ADDRESS: 17, ADDRESSREPLY: 18,
} as const;

/** ICMPv6 types the tracker names. */
export const ICMPV6_TYPE = {
  DEST_UNREACH: 1, PKT_TOOBIG: 2, TIME_EXCEED: 3, PARAMPROB: 4,
  ECHO_REQUEST: 128, ECHO_REPLY: 129, MGM_QUERY: 130, MGM_REPORT: 131, MGM_REDUCTION: 132,
  ROUTER_SOLICIT: 133, ROUTER_ADVERT: 134, NEIGHBOUR_SOLICIT: 135, NEIGHBOUR_ADVERT: 136, REDIRECT: 137,
  NI_QUERY: 139, NI_REPLY: 140, MLD2_REPORT: 143,
} as const;

const EMPTY = new Uint8Array(0);

/**
 * A reusable view over an ICMP or ICMPv6 header (the first 8 bytes have the
 * same layout). Which one it is is the caller's knowledge; `isIcmpError` and
 * `isIcmpv6Error` classify the type.
 */
export class IcmpView {
  buf: Uint8Array = EMPTY;
  off = 0;
  /** Message length (header + body). */
  length = 0;

  /** Re-aims the view; false when fewer than 8 bytes are present. */
  reset(buf: Uint8Array, off: number, len: number): boolean {
    if (len < ICMP_HEADER || off < 0 || off + len > buf.length) return false;
    this.buf = buf;
    this.off = off;
    this.length = len;
    return true;
  }

  get type(): number { return this.buf[this.off]; }
  get code(): number { return this.buf[this.off + 1]; }
  get checksum(): number { return readU16(this.buf, this.off + 2); }
  /** Echo / timestamp / information identifier. */
  get id(): number { return readU16(this.buf, this.off + 4); }
  get sequence(): number { return readU16(this.buf, this.off + 6); }
  /** Offset of the quoted packet in an error message. */
  get innerOffset(): number { return this.off + ICMP_HEADER; }
  get innerLength(): number { return this.length - ICMP_HEADER; }

  setChecksum(v: number): void { writeU16(this.buf, this.off + 2, v); }
  /** Rewrites the identifier and patches the checksum (NAT of echo ids, like `icmp_manip_pkt`). */
  setIdWithChecksumUpdate(v: number): void { this.setChecksum(csumReplace16(this.checksum, this.id, v)); writeU16(this.buf, this.off + 4, v); }
  /** Patches an ICMPv6 checksum for a pseudo-header address word that changed. */
  updateChecksumForAddress(oldAddr: number, newAddr: number): void { this.setChecksum(csumReplace32(this.checksum, oldAddr, newAddr)); }
}

/** ICMP error types (`icmp_is_err`): destination unreachable, source quench, redirect, time exceeded, parameter problem. */
export function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** ICMPv6 errors are the types below 128 (RFC 4443 §2.1). */
export function isIcmpv6Error(type: number): boolean {
  return type < 128;
}
