/**
 * Internet checksums (RFC 1071) and their incremental update (RFC 1624).
 *
 * Sums are kept unfolded in a JS number: a 64 KiB datagram adds at most
 * 32768 words of 0xffff, far below 2^53, so folding happens once at the end.
 */

/** Adds the 16-bit big-endian words of `buf[off, off+len)` to `sum` (odd tail padded with zero). */
export function sumWords(buf: Uint8Array, off: number, len: number, sum: number): number {
  const end = off + (len & ~1);
  let i = off;
  // Two words per step: the JIT keeps this loop tight on 64 KiB GSO packets too.
  for (; i + 3 < end; i += 4) sum += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]);
  for (; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (len & 1) sum += buf[off + len - 1] << 8;
  return sum;
}

/** Folds an unfolded sum into 16 bits with end-around carry. */
export function fold(sum: number): number {
  if (sum <= 0xffffffff) {
    // The common case: integer ops only (a 64 KiB packet sums to < 2^31).
    sum = (sum & 0xffff) + (sum >>> 16);
    return (sum & 0xffff) + (sum >>> 16);
  }
  while (sum > 0xffff) sum = (sum % 65536) + Math.floor(sum / 65536);
  return sum;
}

/** The checksum of a byte range: the one's complement of its folded sum. */
export function checksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~fold(sumWords(buf, off, len, initial)) & 0xffff;
}

/** Pseudo-header sum (RFC 793 / RFC 768) for an IPv4 header at `ipOff`: src, dst, proto, L4 length. */
export function pseudoSumV4(buf: Uint8Array, ipOff: number, proto: number, l4Len: number): number {
  return sumWords(buf, ipOff + 12, 8, proto + l4Len);
}

/** Pseudo-header sum (RFC 8200 §8.1) for an IPv6 header at `ipOff`: src, dst, upper-layer length, next header. */
export function pseudoSumV6(buf: Uint8Array, ipOff: number, proto: number, l4Len: number): number {
  return sumWords(buf, ipOff + 8, 32, proto + (l4Len >>> 16) + (l4Len & 0xffff));
}

/**
 * RFC 1624 eqn. 3: the new checksum after a 16-bit field changed from
 * `oldWord` to `newWord`: HC' = ~(~HC + ~m + m').
 */
export function csumReplace16(check: number, oldWord: number, newWord: number): number {
  let s = (~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** RFC 1624 for a 32-bit field (an IPv4 address, a sequence number): two 16-bit replacements in one fold. */
export function csumReplace32(check: number, oldValue: number, newValue: number): number {
  let s =
    (~check & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff) +
    ((newValue >>> 16) & 0xffff) + (newValue & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * UDP's variant: a zero checksum means "none" over IPv4 (RFC 768) and stays
 * zero; a computed zero is sent as 0xffff.
 */
export function udpCsumReplace16(check: number, oldWord: number, newWord: number): number {
  if (check === 0) return 0;
  return csumReplace16(check, oldWord, newWord) || 0xffff;
}

/** {@link udpCsumReplace16} for a 32-bit field. */
export function udpCsumReplace32(check: number, oldValue: number, newValue: number): number {
  if (check === 0) return 0;
  return csumReplace32(check, oldValue, newValue) || 0xffff;
}
