/**
 * Packet builder for tests: raw IPv4/IPv6 packets (no link layer) as
 * `Uint8Array`, with correct IP header and L4 checksums unless asked
 * otherwise.
 *
 * Why a separate builder: it is the independent reference the product's
 * parsers, checksum code and trackers are tested against, so it imports
 * nothing from `src/` and computes checksums with the plain RFC 1071 loop.
 * It is checked against tcpdump in `packets.test.ts`.
 *
 * Not on any hot path: it allocates freely and throws on bad arguments.
 *
 * Layout of what the builders emit:
 *
 *   IPv4:  [IPv4 header 20 + options][L4 header][payload]
 *   IPv6:  [IPv6 header 40][ext headers, in the order given][L4 header][payload]
 *
 * Defaults: ttl/hop limit 64, tos 0, id 0, DF clear, ports 40000 -> 80 (TCP)
 * or 40000 -> 9 (UDP, "discard", so tcpdump does not decode the payload),
 * TCP flags "S", seq/ack 0, window 64240 (Linux's first SYN window).
 * Strings given as payload are encoded as UTF-8.
 */

// ---------------------------------------------------------------- constants

/** IP protocol numbers used here (IANA "Assigned Internet Protocol Numbers"). */
export const PROTO = {
  HOPOPTS: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ROUTING: 43,
  FRAGMENT: 44,
  GRE: 47,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  SCTP: 132,
} as const;

/** TCP flag bits (RFC 9293 §3.1, RFC 3168 §6.1 for E and C). */
export const TCP_FLAG = {
  F: 0x01,
  S: 0x02,
  R: 0x04,
  P: 0x08,
  A: 0x10,
  U: 0x20,
  E: 0x40,
  C: 0x80,
} as const;

const IPV4_HEADER_LEN = 20;
const IPV6_HEADER_LEN = 40;
const TCP_HEADER_LEN = 20;
const UDP_HEADER_LEN = 8;
const ICMP_HEADER_LEN = 8;
/** RFC 4443 §2.4 (c): an ICMPv6 error must not make the packet exceed the IPv6 minimum MTU. */
const IPV6_MIN_MTU = 1280;

// ---------------------------------------------------------------- option types

/** Fields of the IPv4 header; `src`/`dst` are dotted quads. */
export interface Ip4Fields {
  src: string;
  dst: string;
  ttl?: number;
  /** Alias of `ttl`, so the same options object works for IPv4 and IPv6. */
  hopLimit?: number;
  /** IP identification. In `ipv4Icmp`, `id` is the ICMP identifier: use `ipId` there. */
  id?: number;
  /** IP identification; wins over `id`. */
  ipId?: number;
  tos?: number;
  df?: boolean;
  /** More-fragments flag; normally left to `fragmentV4`. */
  mf?: boolean;
  /** Fragment offset in 8-byte units; normally left to `fragmentV4`. */
  fragOffset?: number;
  /** Raw IPv4 options (RFC 791 §3.1), padded with EOL to a multiple of 4; max 40 bytes. */
  ipOptions?: Uint8Array;
  /** Store a wrong IPv4 header checksum. */
  badIpChecksum?: boolean;
}

/**
 * One IPv6 extension header. For types 0 (hop-by-hop), 43 (routing), 60
 * (destination options) and any other type given here, the header is
 * `[next header][hdr ext len][data]` with the length in 8-byte units minus
 * one (RFC 8200 §4.3-4.6). Give either `data` (the bytes after the first two;
 * `2 + data.length` must be a multiple of 8) or `len` (the hdr ext len field;
 * default 0 = 8 bytes), in which case the data is PadN/Pad1 options for 0/60
 * and "routing type 0, segments left 0" then zeros for 43. Type 44
 * (fragment, RFC 8200 §4.5) is always 8 bytes: `fragOffset` (8-byte units),
 * `mf`, `fragId`; the default is an atomic fragment (offset 0, M clear).
 */
export interface Ext6 {
  type: number;
  len?: number;
  data?: Uint8Array;
  fragOffset?: number;
  mf?: boolean;
  fragId?: number;
}

/** Fields of the IPv6 header; `src`/`dst` are RFC 4291 text addresses. */
export interface Ip6Fields {
  src: string;
  dst: string;
  hopLimit?: number;
  /** Alias of `hopLimit`. */
  ttl?: number;
  /** Traffic class. */
  tos?: number;
  flowLabel?: number;
  /** Extension headers placed between the IPv6 header and the L4 header. */
  ext?: Ext6[];
}

/** TCP options, encoded in the order and alignment Linux's `tcp_options_write` uses. */
export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackPerm?: boolean;
  /** SACK blocks as [left edge, right edge]. */
  sack?: [number, number][];
  /** Timestamps as [TSval, TSecr]. */
  ts?: [number, number];
}

/** TCP header fields and payload. */
export interface TcpFields {
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  /** A number, or letters from "FSRPAUEC" in any order, e.g. "SA", "FA", "PA". */
  flags?: number | string;
  win?: number;
  urg?: number;
  options?: TcpOptions;
  /** Raw option bytes used instead of `options`; padded with EOL to a multiple of 4. */
  rawOptions?: Uint8Array;
  payload?: Uint8Array | string;
  /** Store a wrong TCP checksum. */
  badChecksum?: boolean;
}

/** UDP header fields and payload. */
export interface UdpFields {
  sport?: number;
  dport?: number;
  payload?: Uint8Array | string;
  /**
   * Send checksum 0 ("no checksum", RFC 768). Legal for IPv4 only; for IPv6
   * it yields a packet receivers must drop (RFC 8200 §8.1), which tests may want.
   */
  zeroChecksum?: boolean;
  badChecksum?: boolean;
}

/** ICMP / ICMPv6 query fields (echo by default). */
export interface IcmpFields {
  /** Default 8 (echo request) for ICMP, 128 for ICMPv6. */
  type?: number;
  code?: number;
  /** ICMP identifier (not the IPv4 identification: give that as `ipId`). */
  id?: number;
  seq?: number;
  payload?: Uint8Array | string;
  badChecksum?: boolean;
}

/** ICMP / ICMPv6 error fields. */
export interface IcmpErrorFields {
  type: number;
  code: number;
  /** The offending packet, from its IP header on. */
  inner: Uint8Array;
  /**
   * How many bytes of `inner` to quote. Default: IPv4 = inner IP header + 8
   * (RFC 792); ICMPv6 = as much as keeps the whole packet within 1280 bytes
   * (RFC 4443 §2.4 (c)). Clamped to `inner.length`.
   */
  quoteBytes?: number;
  /**
   * The 32-bit word after the checksum (unused / MTU / pointer / gateway).
   * Default 0, or `mtu` when given.
   */
  rest?: number;
  /** Next-hop MTU: low 16 bits of `rest` for ICMP "frag needed", the whole word for ICMPv6 "packet too big". */
  mtu?: number;
  badChecksum?: boolean;
}

/** Arbitrary upper-layer protocol and payload (no checksum computed). */
export interface GenericFields {
  proto: number;
  payload?: Uint8Array | string;
}

// ---------------------------------------------------------------- small helpers

const utf8 = new TextEncoder();

function bytesOf(p: Uint8Array | string | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  return typeof p === "string" ? utf8.encode(p) : p;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

function get16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function checkRange(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name} out of range: ${v}`);
  return v;
}

/** Pads `b` with `fill` to a multiple of `align` bytes. */
function pad(b: Uint8Array, align: number, fill = 0): Uint8Array {
  const n = Math.ceil(b.length / align) * align;
  if (n === b.length) return b;
  const out = new Uint8Array(n).fill(fill);
  out.set(b);
  return out;
}

/**
 * Ones' complement sum of `parts` (RFC 1071), not yet complemented. Each part
 * is summed as if it started on an even offset, so callers pass the
 * pseudo-header and the segment separately (both have even length except
 * possibly the last part).
 */
function onesSum(parts: Uint8Array[], initial = 0): number {
  let sum = initial;
  for (const p of parts) {
    let i = 0;
    for (; i + 1 < p.length; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
    if (i < p.length) sum += p[i]! << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * A checksum that fails verification. Not `~sum`: 0x0000 and 0xffff are the
 * same number in ones' complement, so flipping a correct 0x0000 would still verify.
 */
function wrongChecksum(sum: number): number {
  return sum === 0x1234 ? 0x4321 : 0x1234;
}

/** Internet checksum (RFC 1071) over the concatenation of `parts`. */
export function inetChecksum(...parts: Uint8Array[]): number {
  return ~onesSum(parts) & 0xffff;
}

function pseudo4(src: Uint8Array, dst: Uint8Array, proto: number, len: number): Uint8Array {
  // RFC 9293 §3.1 / RFC 768: src, dst, zero, protocol, L4 length.
  const p = new Uint8Array(12);
  p.set(src, 0);
  p.set(dst, 4);
  p[9] = proto;
  put16(p, 10, len);
  return p;
}

function pseudo6(src: Uint8Array, dst: Uint8Array, nextHeader: number, len: number): Uint8Array {
  // RFC 8200 §8.1: src, dst, 32-bit upper-layer length, 3 zero bytes, next header.
  const p = new Uint8Array(40);
  p.set(src, 0);
  p.set(dst, 16);
  put32(p, 32, len);
  p[39] = nextHeader;
  return p;
}

// ---------------------------------------------------------------- addresses and hex

function parseV4(s: string): Uint8Array {
  const parts = s.split(".");
  if (parts.length !== 4) throw new Error(`bad IPv4 address: ${s}`);
  const out = new Uint8Array(4);
  parts.forEach((p, i) => {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`bad IPv4 address: ${s}`);
    out[i] = Number(p);
  });
  return out;
}

function parseV6(s: string): Uint8Array {
  let text = s;
  // A trailing dotted quad (RFC 4291 §2.2 form 3) becomes two hex groups.
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) >= 0) {
    const v4 = parseV4(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}${get16(v4, 0).toString(16)}:${get16(v4, 2).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) throw new Error(`bad IPv6 address: ${s}`);
  const groups = (h: string): number[] =>
    h === ""
      ? []
      : h.split(":").map((g) => {
          if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address: ${s}`);
          return parseInt(g, 16);
        });
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const words =
    halves.length === 2
      ? head.length + tail.length <= 7
        ? [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
        : null
      : head.length === 8
        ? head
        : null;
  if (words === null) throw new Error(`bad IPv6 address: ${s}`);
  const out = new Uint8Array(16);
  words.forEach((w, i) => put16(out, i * 2, w));
  return out;
}

/** Parses "10.0.0.1" to 4 bytes or "2001:db8::1" (also "::ffff:1.2.3.4") to 16 bytes; throws otherwise. */
export function parseAddr(s: string): Uint8Array {
  return s.includes(":") ? parseV6(s) : parseV4(s);
}

/** Lower-case hex, one space between bytes: "45 00 00 3c". */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * Parses hex text such as "45 00 00 3c", "4500003c" or a multi-line dump;
 * whitespace is ignored and `#` starts a comment running to the end of the line.
 */
export function fromHex(text: string): Uint8Array {
  const clean = text.replace(/#[^\n]*/g, "").replace(/\s+/g, "");
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) throw new Error("bad hex text");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Turns "SA"-style flag letters (or a number) into the TCP flags byte. */
export function tcpFlags(f: number | string): number {
  if (typeof f === "number") return checkRange("flags", f, 0xff);
  let v = 0;
  for (const c of f.toUpperCase()) {
    const bit = (TCP_FLAG as Record<string, number>)[c];
    if (bit === undefined) throw new Error(`unknown TCP flag letter: ${c}`);
    v |= bit;
  }
  return v;
}

// ---------------------------------------------------------------- IP layers

/**
 * Builds an IPv4 packet around an already built L4 segment. The segment's
 * checksum must already be final (see `ipv4Tcp` etc. for checksummed ones).
 */
function buildIpv4(o: Ip4Fields, proto: number, l4: Uint8Array): Uint8Array {
  const opts = pad(o.ipOptions ?? new Uint8Array(0), 4);
  if (opts.length > 40) throw new RangeError("IPv4 options longer than 40 bytes");
  const hlen = IPV4_HEADER_LEN + opts.length;
  const total = hlen + l4.length;
  if (total > 0xffff) throw new RangeError("IPv4 packet longer than 65535 bytes");
  const h = new Uint8Array(hlen);
  // RFC 791 §3.1:
  //  0                   1                   2                   3
  //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
  // |Version|  IHL  |Type of Service|          Total Length         |
  // |         Identification        |Flags|      Fragment Offset    |
  // |  Time to Live |    Protocol   |         Header Checksum       |
  // |                       Source Address                          |
  // |                    Destination Address                        |
  h[0] = 0x40 | (hlen >>> 2);
  h[1] = checkRange("tos", o.tos ?? 0, 0xff);
  put16(h, 2, total);
  put16(h, 4, checkRange("ipId", o.ipId ?? o.id ?? 0, 0xffff));
  const frag = checkRange("fragOffset", o.fragOffset ?? 0, 0x1fff);
  put16(h, 6, (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | frag);
  h[8] = checkRange("ttl", o.ttl ?? o.hopLimit ?? 64, 0xff);
  h[9] = checkRange("proto", proto, 0xff);
  h.set(parseV4(o.src), 12);
  h.set(parseV4(o.dst), 16);
  h.set(opts, IPV4_HEADER_LEN);
  const sum = inetChecksum(h);
  put16(h, 10, o.badIpChecksum ? wrongChecksum(sum) : sum);
  return concat([h, l4]);
}

function padOptions(n: number): Uint8Array {
  // RFC 8200 §4.2: Pad1 is a single zero byte, PadN is [1][len][len zero bytes].
  const out = new Uint8Array(n);
  let o = 0;
  while (n - o > 0) {
    const left = n - o;
    if (left === 1) {
      out[o++] = 0;
    } else {
      const chunk = Math.min(left, 257);
      out[o] = 1;
      out[o + 1] = chunk - 2;
      o += chunk;
    }
  }
  return out;
}

function buildExt(e: Ext6, next: number): Uint8Array {
  if (e.type === PROTO.FRAGMENT) {
    // RFC 8200 §4.5: next header, reserved, offset (13 bits) | res (2) | M, identification.
    const h = new Uint8Array(8);
    h[0] = next;
    put16(h, 2, (checkRange("fragOffset", e.fragOffset ?? 0, 0x1fff) << 3) | (e.mf ? 1 : 0));
    put32(h, 4, e.fragId ?? 0);
    return h;
  }
  let data = e.data;
  if (data === undefined) {
    const n = (checkRange("ext len", e.len ?? 0, 0xff) + 1) * 8 - 2;
    if (e.type === PROTO.ROUTING) data = new Uint8Array(n); // routing type 0, segments left 0, zeros
    else data = padOptions(n);
  }
  if ((data.length + 2) % 8 !== 0) throw new RangeError("extension header data: 2 + length must be a multiple of 8");
  const h = new Uint8Array(2 + data.length);
  h[0] = next;
  h[1] = checkRange("ext len", (h.length >>> 3) - 1, 0xff);
  h.set(data, 2);
  return h;
}

/**
 * Builds an IPv6 packet: header, the extension headers of `o.ext` in order,
 * then `l4` as upper-layer protocol `proto`.
 */
function buildIpv6(o: Ip6Fields, proto: number, l4: Uint8Array): Uint8Array {
  const exts = o.ext ?? [];
  const parts: Uint8Array[] = [];
  exts.forEach((e, i) => parts.push(buildExt(e, i + 1 < exts.length ? exts[i + 1]!.type : proto)));
  parts.push(l4);
  const body = concat(parts);
  if (body.length > 0xffff) throw new RangeError("IPv6 payload longer than 65535 bytes (jumbograms unsupported)");
  const h = new Uint8Array(IPV6_HEADER_LEN);
  // RFC 8200 §3:
  // |Version| Traffic Class |           Flow Label                  |
  // |         Payload Length        |  Next Header  |   Hop Limit   |
  // |                 Source Address (128 bits)                     |
  // |              Destination Address (128 bits)                   |
  const tc = checkRange("tos", o.tos ?? 0, 0xff);
  const fl = checkRange("flowLabel", o.flowLabel ?? 0, 0xfffff);
  put32(h, 0, ((6 << 28) | (tc << 20) | fl) >>> 0);
  put16(h, 4, body.length);
  h[6] = exts.length > 0 ? exts[0]!.type : proto;
  h[7] = checkRange("hopLimit", o.hopLimit ?? o.ttl ?? 64, 0xff);
  h.set(parseV6(o.src), 8);
  h.set(parseV6(o.dst), 24);
  return concat([h, body]);
}

/** Writes the checksum at `off` of `seg` given the pseudo-header (or none). */
function finishChecksum(seg: Uint8Array, off: number, pseudo: Uint8Array | null, opts: { bad?: boolean; zeroIsFfff?: boolean }): void {
  seg[off] = 0;
  seg[off + 1] = 0;
  let sum = pseudo ? inetChecksum(pseudo, seg) : inetChecksum(seg);
  // RFC 768: a computed UDP checksum of 0 is sent as all ones (0 means "none").
  if (sum === 0 && opts.zeroIsFfff) sum = 0xffff;
  if (opts.bad) sum = wrongChecksum(sum);
  put16(seg, off, sum);
}

// ---------------------------------------------------------------- TCP

function encodeTcpOptions(t: TcpFields): Uint8Array {
  if (t.rawOptions) return pad(t.rawOptions, 4);
  const o = t.options;
  if (!o) return new Uint8Array(0);
  const out: number[] = [];
  const NOP = 1;
  // Order and packing follow Linux tcp_options_write(): every option lands on
  // a 4-byte boundary, so no trailing padding is ever needed.
  if (o.mss !== undefined) out.push(2, 4, (o.mss >>> 8) & 0xff, o.mss & 0xff);
  if (o.ts !== undefined) {
    if (o.sackPerm) out.push(4, 2, 8, 10);
    else out.push(NOP, NOP, 8, 10);
    for (const v of o.ts) out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  } else if (o.sackPerm) {
    out.push(NOP, NOP, 4, 2);
  }
  if (o.wscale !== undefined) out.push(NOP, 3, 3, checkRange("wscale", o.wscale, 0xff));
  if (o.sack !== undefined && o.sack.length > 0) {
    out.push(NOP, NOP, 5, 2 + 8 * o.sack.length);
    for (const [l, r] of o.sack) {
      for (const v of [l, r]) out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    }
  }
  return Uint8Array.from(out);
}

function buildTcp(t: TcpFields): Uint8Array {
  const opts = encodeTcpOptions(t);
  if (opts.length > 40) throw new RangeError(`TCP options longer than 40 bytes (${opts.length})`);
  const payload = bytesOf(t.payload);
  const hlen = TCP_HEADER_LEN + opts.length;
  const s = new Uint8Array(hlen + payload.length);
  // RFC 9293 §3.1:
  // |          Source Port          |       Destination Port        |
  // |                        Sequence Number                        |
  // |                    Acknowledgment Number                      |
  // |  Data |       |C|E|U|A|P|R|S|F|                               |
  // | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
  // |           Checksum            |         Urgent Pointer        |
  put16(s, 0, checkRange("sport", t.sport ?? 40000, 0xffff));
  put16(s, 2, checkRange("dport", t.dport ?? 80, 0xffff));
  put32(s, 4, checkRange("seq", t.seq ?? 0, 0xffffffff));
  put32(s, 8, checkRange("ack", t.ack ?? 0, 0xffffffff));
  s[12] = (hlen >>> 2) << 4;
  s[13] = tcpFlags(t.flags ?? "S");
  put16(s, 14, checkRange("win", t.win ?? 64240, 0xffff));
  put16(s, 18, checkRange("urg", t.urg ?? 0, 0xffff));
  s.set(opts, TCP_HEADER_LEN);
  s.set(payload, hlen);
  return s;
}

/** IPv4 + TCP with correct IP and TCP checksums (unless `badChecksum`/`badIpChecksum`). */
export function ipv4Tcp(o: Ip4Fields & TcpFields): Uint8Array {
  const seg = buildTcp(o);
  finishChecksum(seg, 16, pseudo4(parseV4(o.src), parseV4(o.dst), PROTO.TCP, seg.length), { bad: o.badChecksum });
  return buildIpv4(o, PROTO.TCP, seg);
}

/** IPv6 (+ extension headers) + TCP with a correct TCP checksum (unless `badChecksum`). */
export function ipv6Tcp(o: Ip6Fields & TcpFields): Uint8Array {
  const seg = buildTcp(o);
  finishChecksum(seg, 16, pseudo6(parseV6(o.src), parseV6(o.dst), PROTO.TCP, seg.length), { bad: o.badChecksum });
  return buildIpv6(o, PROTO.TCP, seg);
}

// ---------------------------------------------------------------- UDP

function buildUdp(u: UdpFields): Uint8Array {
  const payload = bytesOf(u.payload);
  const s = new Uint8Array(UDP_HEADER_LEN + payload.length);
  // RFC 768: source port, destination port, length, checksum.
  put16(s, 0, checkRange("sport", u.sport ?? 40000, 0xffff));
  put16(s, 2, checkRange("dport", u.dport ?? 9, 0xffff));
  put16(s, 4, checkRange("udp length", s.length, 0xffff));
  s.set(payload, UDP_HEADER_LEN);
  return s;
}

/** IPv4 + UDP; `zeroChecksum` sends checksum 0 (no checksum). */
export function ipv4Udp(o: Ip4Fields & UdpFields): Uint8Array {
  const seg = buildUdp(o);
  if (!o.zeroChecksum) {
    finishChecksum(seg, 6, pseudo4(parseV4(o.src), parseV4(o.dst), PROTO.UDP, seg.length), {
      bad: o.badChecksum,
      zeroIsFfff: true,
    });
  }
  return buildIpv4(o, PROTO.UDP, seg);
}

/** IPv6 (+ extension headers) + UDP with its mandatory checksum (unless `zeroChecksum`/`badChecksum`). */
export function ipv6Udp(o: Ip6Fields & UdpFields): Uint8Array {
  const seg = buildUdp(o);
  if (!o.zeroChecksum) {
    finishChecksum(seg, 6, pseudo6(parseV6(o.src), parseV6(o.dst), PROTO.UDP, seg.length), {
      bad: o.badChecksum,
      zeroIsFfff: true,
    });
  }
  return buildIpv6(o, PROTO.UDP, seg);
}

// ---------------------------------------------------------------- ICMP / ICMPv6

function buildIcmpQuery(q: IcmpFields, defaultType: number): Uint8Array {
  const payload = bytesOf(q.payload);
  const s = new Uint8Array(ICMP_HEADER_LEN + payload.length);
  // RFC 792 echo / RFC 4443 §4.1: type, code, checksum, identifier, sequence number.
  s[0] = checkRange("type", q.type ?? defaultType, 0xff);
  s[1] = checkRange("code", q.code ?? 0, 0xff);
  put16(s, 4, checkRange("id", q.id ?? 0, 0xffff));
  put16(s, 6, checkRange("seq", q.seq ?? 0, 0xffff));
  s.set(payload, ICMP_HEADER_LEN);
  return s;
}

/**
 * IPv4 + ICMP query (echo request by default); checksum over the ICMP
 * message only. `id` is the ICMP identifier; the IPv4 identification is `ipId`.
 */
export function ipv4Icmp(o: Ip4Fields & IcmpFields): Uint8Array {
  const seg = buildIcmpQuery(o, 8);
  finishChecksum(seg, 2, null, { bad: o.badChecksum });
  return buildIpv4({ ...o, id: undefined }, PROTO.ICMP, seg);
}

/** IPv6 + ICMPv6 query (echo request by default); checksum with the RFC 8200 pseudo-header. */
export function ipv6Icmp(o: Ip6Fields & IcmpFields): Uint8Array {
  const seg = buildIcmpQuery(o, 128);
  finishChecksum(seg, 2, pseudo6(parseV6(o.src), parseV6(o.dst), PROTO.ICMPV6, seg.length), { bad: o.badChecksum });
  return buildIpv6(o, PROTO.ICMPV6, seg);
}

function buildIcmpError(e: IcmpErrorFields, quote: number): Uint8Array {
  const s = new Uint8Array(ICMP_HEADER_LEN + quote);
  // RFC 792 / RFC 4443 §3: type, code, checksum, 32-bit rest-of-header, quoted packet.
  s[0] = checkRange("type", e.type, 0xff);
  s[1] = checkRange("code", e.code, 0xff);
  put32(s, 4, e.rest ?? e.mtu ?? 0);
  s.set(e.inner.subarray(0, quote), ICMP_HEADER_LEN);
  return s;
}

/** IPv4 + ICMP error quoting `inner` (default: its IP header + 8 bytes, RFC 792). */
export function ipv4IcmpError(o: Ip4Fields & IcmpErrorFields): Uint8Array {
  const ihl = o.inner.length > 0 ? (o.inner[0]! & 0x0f) * 4 : 0;
  const quote = Math.min(o.inner.length, o.quoteBytes ?? ihl + 8);
  const seg = buildIcmpError(o, quote);
  finishChecksum(seg, 2, null, { bad: o.badChecksum });
  return buildIpv4(o, PROTO.ICMP, seg);
}

/** IPv6 + ICMPv6 error quoting `inner` (default: as much as fits in 1280 bytes, RFC 4443 §2.4 (c)). */
export function ipv6IcmpError(o: Ip6Fields & IcmpErrorFields): Uint8Array {
  let extLen = 0;
  for (const e of o.ext ?? []) extLen += buildExt(e, 0).length;
  const room = IPV6_MIN_MTU - IPV6_HEADER_LEN - extLen - ICMP_HEADER_LEN;
  const quote = Math.min(o.inner.length, o.quoteBytes ?? room);
  const seg = buildIcmpError(o, quote);
  finishChecksum(seg, 2, pseudo6(parseV6(o.src), parseV6(o.dst), PROTO.ICMPV6, seg.length), { bad: o.badChecksum });
  return buildIpv6(o, PROTO.ICMPV6, seg);
}

// ---------------------------------------------------------------- generic

/** IPv4 with any protocol number and raw payload (e.g. 47 GRE, 132 SCTP); no L4 checksum is computed. */
export function ipv4Generic(o: Ip4Fields & GenericFields): Uint8Array {
  return buildIpv4(o, o.proto, bytesOf(o.payload));
}

/** IPv6 (+ extension headers) with any next header and raw payload; no L4 checksum is computed. */
export function ipv6Generic(o: Ip6Fields & GenericFields): Uint8Array {
  return buildIpv6(o, o.proto, bytesOf(o.payload));
}

// ---------------------------------------------------------------- fragmentation

/**
 * Splits an IPv4 packet into fragments of `fragPayloadSize` data bytes (a
 * multiple of 8) as RFC 791 §3.2 describes: the first fragment keeps all
 * options, later ones only options with the copied bit. Works on a packet
 * that is already a fragment (offsets and the final MF follow the original).
 * A packet that already fits is returned as the single element.
 */
export function fragmentV4(packet: Uint8Array, fragPayloadSize: number): Uint8Array[] {
  if (fragPayloadSize <= 0 || fragPayloadSize % 8 !== 0) throw new RangeError("fragPayloadSize must be a positive multiple of 8");
  const hlen = (packet[0]! & 0x0f) * 4;
  const total = get16(packet, 2);
  const header = packet.subarray(0, hlen);
  const data = packet.subarray(hlen, total);
  if (data.length <= fragPayloadSize) return [packet.slice(0, total)];
  const flags = get16(packet, 6);
  const baseOffset = flags & 0x1fff;
  const origMf = (flags & 0x2000) !== 0;
  const df = flags & 0x4000;

  // Options for fragments after the first: only those with the copied flag (bit 0x80 of the type).
  const copied: number[] = [];
  for (let i = IPV4_HEADER_LEN; i < hlen; ) {
    const kind = packet[i]!;
    if (kind === 0) break; // EOL
    if (kind === 1) {
      i++; // NOP, not copied
      continue;
    }
    const len = packet[i + 1]!;
    if (len < 2 || i + len > hlen) break; // malformed; stop copying
    if (kind & 0x80) for (let j = 0; j < len; j++) copied.push(packet[i + j]!);
    i += len;
  }
  const laterOpts = pad(Uint8Array.from(copied), 4);

  const out: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += fragPayloadSize) {
    const chunk = data.subarray(off, Math.min(off + fragPayloadSize, data.length));
    const last = off + chunk.length >= data.length;
    const h =
      off === 0 ? header.slice() : concat([header.subarray(0, IPV4_HEADER_LEN), laterOpts]);
    h[0] = 0x40 | (h.length >>> 2);
    put16(h, 2, h.length + chunk.length);
    put16(h, 6, df | (!last || origMf ? 0x2000 : 0) | (baseOffset + off / 8));
    put16(h, 10, 0);
    put16(h, 10, inetChecksum(h));
    out.push(concat([h, chunk]));
  }
  return out;
}

/**
 * Splits an IPv6 packet into fragments of `fragPayloadSize` bytes of the
 * fragmentable part (a multiple of 8), inserting a fragment header with
 * identification `id` (RFC 8200 §4.5). The unfragmentable part is the IPv6
 * header plus every extension header up to and including the last
 * hop-by-hop or routing header (so destination options before a routing
 * header stay in it, those after it travel in the fragments).
 */
export function fragmentV6(packet: Uint8Array, fragPayloadSize: number, id: number): Uint8Array[] {
  if (fragPayloadSize <= 0 || fragPayloadSize % 8 !== 0) throw new RangeError("fragPayloadSize must be a positive multiple of 8");
  const end = IPV6_HEADER_LEN + get16(packet, 4);
  let nhAt = 6; // offset of the next-header byte that names the fragmentable part
  let unfragEnd = IPV6_HEADER_LEN;
  let pos = IPV6_HEADER_LEN;
  let nh = packet[6]!;
  while ((nh === PROTO.HOPOPTS || nh === PROTO.ROUTING || nh === PROTO.DSTOPTS) && pos + 2 <= end) {
    const len = (packet[pos + 1]! + 1) * 8;
    if (nh !== PROTO.DSTOPTS) {
      nhAt = pos;
      unfragEnd = pos + len;
    }
    nh = packet[pos]!;
    pos += len;
  }
  const unfrag = packet.slice(0, unfragEnd);
  const fragNext = unfrag[nhAt]!;
  unfrag[nhAt] = PROTO.FRAGMENT;
  const data = packet.subarray(unfragEnd, end);
  const out: Uint8Array[] = [];
  for (let off = 0; off < data.length || off === 0; off += fragPayloadSize) {
    const chunk = data.subarray(off, Math.min(off + fragPayloadSize, data.length));
    const last = off + chunk.length >= data.length;
    const fh = buildExt({ type: PROTO.FRAGMENT, fragOffset: off / 8, mf: !last, fragId: id }, fragNext);
    const p = concat([unfrag, fh, chunk]);
    put16(p, 4, p.length - IPV6_HEADER_LEN);
    out.push(p);
    if (last) break;
  }
  return out;
}

// ---------------------------------------------------------------- pcap

/** LINKTYPE_RAW: packets start at the IP header (tcpdump.org link-layer header types). */
export const LINKTYPE_RAW = 101;

/**
 * Classic pcap file bytes (little-endian, microsecond timestamps) holding
 * `packets`; packet i gets timestamp `startSec + i * stepUsec` µs.
 */
export function toPcap(packets: Uint8Array[], opts: { linktype?: number; startSec?: number; stepUsec?: number } = {}): Uint8Array {
  const recs: Uint8Array[] = [];
  const g = new DataView(new ArrayBuffer(24));
  g.setUint32(0, 0xa1b2c3d4, true); // magic
  g.setUint16(4, 2, true); // version major
  g.setUint16(6, 4, true); // version minor
  g.setUint32(16, 65535, true); // snaplen
  g.setUint32(20, opts.linktype ?? LINKTYPE_RAW, true);
  recs.push(new Uint8Array(g.buffer));
  const start = opts.startSec ?? 1_700_000_000;
  const step = opts.stepUsec ?? 1000;
  packets.forEach((p, i) => {
    const t = i * step;
    const r = new DataView(new ArrayBuffer(16));
    r.setUint32(0, start + Math.floor(t / 1e6), true);
    r.setUint32(4, t % 1e6, true);
    r.setUint32(8, p.length, true); // captured length
    r.setUint32(12, p.length, true); // original length
    recs.push(new Uint8Array(r.buffer), p);
  });
  return concat(recs);
}
