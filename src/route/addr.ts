/**
 * IP address text <-> numbers, for the edges (config files, `ip -json`
 * output, log lines). Never called per packet.
 *
 * Representations, the same everywhere in route/:
 * - IPv4: one uint32 in network order as a number (`10.0.0.1` = 0x0a000001).
 *   Callers on the packet path may pass it as an int32
 *   (`(b[o] << 24) | ...` is negative above 127.255.255.255); every lookup
 *   accepts both.
 * - IPv6: four 32-bit words w0..w3, most significant first (w0 = bytes 0..3
 *   of the address), stored in an Int32Array or Uint32Array.
 *
 * The parsers are strict on purpose: IPv4 is dotted decimal with exactly four
 * parts and no leading zeros (so `010.0.0.1` is rejected rather than read as
 * octal, the netmask CVE-2021-28918 trap); IPv6 is RFC 4291 §2.2 text with at
 * most one `::` and an optional dotted IPv4 tail, without a zone (`%eth0`).
 */

/** Parses dotted-decimal IPv4. Returns the address as a uint32, or -1 when `s` is not one. */
export function parseIPv4(s: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // a final '.' closes the last part
    if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && part === 0) return -1; // leading zero
      part = part * 10 + (c - 0x30);
      if (part > 255) return -1;
      digits++;
    } else if (c === 0x2e) {
      if (digits === 0 || parts === 4) return -1;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  return parts === 4 ? value : -1;
}

/** Formats a uint32 (or int32) IPv4 address as dotted decimal. */
export function formatIPv4(a: number): string {
  return `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/**
 * Parses IPv6 text into four words at `out[off..off+4)`. Returns false (and
 * leaves `out` unspecified) when `s` is not an IPv6 address.
 */
export function parseIPv6(s: string, out: Uint32Array | Int32Array, off = 0): boolean {
  if (s.length < 2 || s.length > 45) return false;
  const dbl = s.indexOf("::");
  if (dbl >= 0 && s.indexOf("::", dbl + 1) >= 0) return false;
  let head: number[] | null;
  let tail: number[] | null = [];
  if (dbl < 0) {
    head = groupsOf(s, true);
    if (head === null || head.length !== 8) return false;
  } else {
    head = groupsOf(s.slice(0, dbl), false);
    tail = groupsOf(s.slice(dbl + 2), true);
    if (head === null || tail === null || head.length + tail.length > 7) return false;
  }
  const g = new Array<number>(8).fill(0);
  for (let i = 0; i < head.length; i++) g[i] = head[i]!;
  for (let i = 0; i < tail.length; i++) g[8 - tail.length + i] = tail[i]!;
  for (let i = 0; i < 4; i++) out[off + i] = ((g[2 * i]! << 16) | g[2 * i + 1]!) >>> 0;
  return true;
}

/** The 16-bit groups of colon-separated text; a dotted IPv4 part is allowed last when it ends the address. */
function groupsOf(text: string, mayEndWithV4: boolean): number[] | null {
  if (text === "") return [];
  const parts = text.split(":");
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (mayEndWithV4 && i === parts.length - 1 && p.includes(".")) {
      const v4 = parseIPv4(p);
      if (v4 < 0) return null;
      out.push(v4 >>> 16, v4 & 0xffff);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
      out.push(parseInt(p, 16));
    } else {
      return null;
    }
  }
  return out;
}

/** Formats four words as RFC 5952 text (lower case, the longest run of two or more zero groups as `::`). */
export function formatIPv6(w0: number, w1: number, w2: number, w3: number): string {
  const g = [w0 >>> 16, w0 & 0xffff, w1 >>> 16, w1 & 0xffff, w2 >>> 16, w2 & 0xffff, w3 >>> 16, w3 & 0xffff];
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}

/** A parsed `address/prefix` (or a bare address, taken as a host prefix). */
export interface Cidr {
  family: 4 | 6;
  /** The address as written (host bits kept), as a 32-bit (IPv4) or 128-bit (IPv6) integer. */
  address: bigint;
  prefixLen: number;
}

/** Parses `a.b.c.d/n`, `x:y::z/n` or a bare address (prefix /32 or /128). Returns null when invalid. */
export function parseCidr(s: string, allowBare = true): Cidr | null {
  const slash = s.indexOf("/");
  const addr = slash >= 0 ? s.slice(0, slash) : s;
  let len = -1;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    len = Number(p);
  } else if (!allowBare) {
    return null;
  }
  const v4 = parseIPv4(addr);
  if (v4 >= 0) {
    if (len > 32) return null;
    return { family: 4, address: BigInt(v4), prefixLen: len < 0 ? 32 : len };
  }
  const w = new Uint32Array(4);
  if (!parseIPv6(addr, w)) return null;
  if (len > 128) return null;
  return { family: 6, address: wordsToBigInt(w[0]!, w[1]!, w[2]!, w[3]!), prefixLen: len < 0 ? 128 : len };
}

/** Four words (most significant first) as one 128-bit unsigned integer. */
export function wordsToBigInt(w0: number, w1: number, w2: number, w3: number): bigint {
  return (BigInt(w0 >>> 0) << 96n) | (BigInt(w1 >>> 0) << 64n) | (BigInt(w2 >>> 0) << 32n) | BigInt(w3 >>> 0);
}

/** True when `s` is an IPv4 or IPv6 address (no prefix). */
export function isIpAddress(s: string): boolean {
  return parseIPv4(s) >= 0 || parseIPv6(s, new Uint32Array(4));
}
