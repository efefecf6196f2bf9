/**
 * fast-check arbitraries shared by the packet-layer tests: well-formed
 * packets from the independent builder in `test/helpers/packets.ts`, and
 * corruptions of them (truncation, byte overwrites, appended junk) for the
 * "never throws" fuzz properties.
 */
import fc from "fast-check";
import {
  fragmentV4,
  fragmentV6,
  inetChecksum,
  ipv4Generic,
  ipv4Icmp,
  ipv4IcmpError,
  ipv4Tcp,
  ipv4Udp,
  ipv6Generic,
  ipv6Icmp,
  ipv6IcmpError,
  ipv6Tcp,
  ipv6Udp,
  type Ext6,
  type TcpOptions,
} from "../helpers/packets.js";

/** Runs for the fuzz properties (the brief asks for at least 2000). */
export const FUZZ_RUNS = 2000;

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** Small payloads keep the properties fast. */
const payload = fc.uint8Array({ maxLength: 64 });

// Addresses from integers (cheaper to generate than fc.ipV4()/fc.ipV6() text), zero-heavy for IPv6.
const addr4 = u32.map((a) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
const group6 = fc.oneof(fc.constant(0), u16);
const addr6 = fc.array(group6, { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(":"));
const ip4 = fc.record({ src: addr4, dst: addr4, ttl: u8, id: u16, tos: u8, df: fc.boolean() });
const ip6 = fc.record({ src: addr6, dst: addr6, hopLimit: u8, tos: u8, flowLabel: fc.integer({ min: 0, max: 0xfffff }) });

const tcpOptions: fc.Arbitrary<TcpOptions> = fc.record(
  {
    mss: u16,
    wscale: fc.integer({ min: 0, max: 20 }),
    sackPerm: fc.boolean(),
    ts: fc.tuple(u32, u32),
    sack: fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: [] },
).filter((o) => {
  // Keep within 40 bytes of options (Linux's layout: mss 4, sackperm/ts 12, ws 4, sack 4 + 8n).
  const n = (o.mss !== undefined ? 4 : 0) + (o.ts !== undefined || o.sackPerm ? 12 : 0) + (o.wscale !== undefined ? 4 : 0) +
    (o.sack !== undefined ? 4 + 8 * o.sack.length : 0);
  return n <= 40;
});

const tcpFields = fc.record({
  sport: u16,
  dport: u16,
  seq: u32,
  ack: u32,
  flags: u8,
  win: u16,
  urg: u16,
  options: tcpOptions,
  payload,
});
const udpFields = fc.record({ sport: u16, dport: u16, payload, zeroChecksum: fc.boolean() });
const icmp4Fields = fc.record({ type: fc.constantFrom(0, 8, 13, 14, 15, 16, 17, 18), code: u8, id: u16, seq: u16, payload });
const icmp6Fields = fc.record({ type: fc.constantFrom(128, 129, 139, 140, 130, 135), code: u8, id: u16, seq: u16, payload });

/** IPv6 extension headers in an order the walker accepts (hop-by-hop first, one fragment header). */
const ext6 = (): fc.Arbitrary<Ext6[]> => fc
  .tuple(
    fc.boolean(),
    fc.array(fc.record({ type: fc.constantFrom(43, 60, 51), len: fc.integer({ min: 0, max: 3 }) }), { maxLength: 3 }),
    fc.option(fc.record({ type: fc.constant(44), fragOffset: fc.constant(0), mf: fc.constant(false), fragId: u32 })),
  )
  .map(([hbh, mid, frag]) => {
    const out: Ext6[] = [];
    if (hbh) out.push({ type: 0 });
    for (const e of mid) {
      // The builder sizes every extension header in 8-byte units, AH counts 4-byte units
      // minus 2 (RFC 4302 §2.2): the two agree only for an 8-byte AH (length byte 0).
      out.push(e.type === 51 ? { type: 51, data: Uint8Array.of(0, 0, 0, 0, 0, 0) } : e);
    }
    if (frag) out.push(frag);
    return out;
  });

export const tcp4 = fc.tuple(ip4, tcpFields).map(([i, t]) => ipv4Tcp({ ...i, ...t }));
export const tcp6 = fc.tuple(ip6, tcpFields, ext6()).map(([i, t, ext]) => ipv6Tcp({ ...i, ...t, ext }));
export const udp4 = fc.tuple(ip4, udpFields).map(([i, u]) => ipv4Udp({ ...i, ...u }));
/** IPv6 UDP always with a checksum (zero is invalid there). */
export const udp6 = fc.tuple(ip6, udpFields, ext6()).map(([i, u, ext]) => ipv6Udp({ ...i, ...u, zeroChecksum: false, ext }));
export const icmp4 = fc.tuple(ip4, icmp4Fields).map(([i, q]) => ipv4Icmp({ ...i, ...q }));
export const icmp6 = fc.tuple(ip6, icmp6Fields, ext6()).map(([i, q, ext]) => ipv6Icmp({ ...i, ...q, ext }));

const inner = fc.oneof(tcp4, udp4, icmp4);
const inner6 = fc.oneof(tcp6, udp6, icmp6);
export const icmpErr4 = fc
  .tuple(ip4, fc.constantFrom(3, 4, 5, 11, 12), u8, inner, fc.option(fc.integer({ min: 0, max: 80 })))
  .map(([i, type, code, pkt, q]) => ipv4IcmpError({ ...i, type, code, inner: pkt, ...(q === null ? {} : { quoteBytes: q }) }));
export const icmpErr6 = fc
  .tuple(ip6, fc.integer({ min: 0, max: 127 }), u8, inner6, fc.option(fc.integer({ min: 0, max: 120 })))
  .map(([i, type, code, pkt, q]) => ipv6IcmpError({ ...i, type, code, inner: pkt, ...(q === null ? {} : { quoteBytes: q }) }));
export const generic4 = fc.tuple(ip4, fc.constantFrom(47, 50, 132, 58, 41), payload).map(([i, proto, p]) => ipv4Generic({ ...i, proto, payload: p }));
export const generic6 = fc.tuple(ip6, fc.constantFrom(47, 50, 132, 1, 59), payload).map(([i, proto, p]) => ipv6Generic({ ...i, proto, payload: p }));
export const frags4 = fc.tuple(tcp4, fc.constantFrom(8, 16, 24)).map(([p, n]) => fragmentV4(p, n));
/**
 * Fragments of an IPv6 UDP datagram: at most a hop-by-hop header, so that
 * every first fragment holds the whole header chain (RFC 8200 §4.5, RFC 7112),
 * and no fragment header of its own (that would make two).
 */
export const frags6 = fc
  .tuple(ip6, udpFields, fc.boolean(), fc.constantFrom(8, 16, 24), u32)
  .map(([i, u, hbh, n, id]) => fragmentV6(ipv6Udp({ ...i, ...u, zeroChecksum: false, ext: hbh ? [{ type: 0 }] : [] }), n, id));

/** Any well-formed packet the builder makes, fragments included. */
export const anyPacket: fc.Arbitrary<Uint8Array> = fc.oneof(
  tcp4, tcp6, udp4, udp6, icmp4, icmp6, icmpErr4, icmpErr6, generic4, generic6,
  fc.tuple(frags4, fc.nat()).map(([f, i]) => f[i % f.length]!),
  fc.tuple(frags6, fc.nat()).map(([f, i]) => f[i % f.length]!),
);

/** One corruption of a packet. */
type Mutation = { kind: "set"; at: number; v: number } | { kind: "truncate"; at: number } | { kind: "append"; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("set" as const), at: fc.nat(), v: fc.oneof(u8, fc.constantFrom(0, 0xff, 0x40, 0x60, 0x45, 0x4f)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
);

function applyMutations(pkt: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = pkt.slice();
  for (const m of ms) {
    if (m.kind === "set") {
      if (b.length > 0) b[m.at % b.length] = m.v;
    } else if (m.kind === "truncate") {
      b = b.slice(0, m.at % (b.length + 1));
    } else {
      const c = new Uint8Array(b.length + m.bytes.length);
      c.set(b);
      c.set(m.bytes, b.length);
      b = c;
    }
  }
  return b;
}

/** A valid packet with 1..6 corruptions applied. */
export const mutatedPacket: fc.Arbitrary<Uint8Array> = fc
  .tuple(anyPacket, fc.array(mutation, { minLength: 1, maxLength: 6 }))
  .map(([p, ms]) => applyMutations(p, ms));

/** Random bytes, half of them starting with an IPv4 or IPv6 version nibble so parsing gets past the first check. */
export const randomBytes: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(-1, 0x45, 0x46, 0x4f, 0x60))
  .map(([b, first]) => {
    if (first >= 0 && b.length > 0) b[0] = first;
    return b;
  });

/** Everything the fuzz properties feed the parsers: random, mutated and intact packets. */
export const fuzzInput: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 2, arbitrary: randomBytes },
  { weight: 3, arbitrary: mutatedPacket },
  { weight: 1, arbitrary: anyPacket },
);

/**
 * A buffer plus an (offset, length) window into it: the input placed after
 * 0..16 bytes of junk and framed exactly, or cut short, or a random window
 * (possibly out of range).
 */
export const fuzzWindow: fc.Arbitrary<[Uint8Array, number, number]> = fc
  .tuple(fuzzInput, fc.nat(16), fc.constantFrom("exact", "short", "random"), fc.nat(), fc.integer({ min: -2, max: 140 }), fc.integer({ min: -2, max: 160 }))
  .map(([b, pad, mode, cut, ro, rl]): [Uint8Array, number, number] => {
    const buf = new Uint8Array(pad + b.length + (pad & 7)).fill(0xa5);
    buf.set(b, pad);
    if (mode === "exact") return [buf, pad, b.length];
    if (mode === "short") return [buf, pad, cut % (b.length + 1)];
    return [buf, ro, rl];
  });

/**
 * The L4 checksum a full recomputation gives: RFC 1071 over the pseudo-header
 * (none for ICMPv4) and the segment with its checksum field zeroed, using the
 * builder's independent `inetChecksum`. `csumAt` is relative to `l4Off`.
 */
export function fullL4Checksum(pkt: Uint8Array, ipOff: number, l4Off: number, l4Len: number, proto: number, csumAt: number): number {
  const seg = pkt.slice(l4Off, l4Off + l4Len);
  seg[csumAt] = 0;
  seg[csumAt + 1] = 0;
  if (proto === 1) return inetChecksum(seg);
  let pseudo: Uint8Array;
  if (pkt[ipOff]! >> 4 === 6) {
    // RFC 8200 §8.1: src, dst, 32-bit length, 3 zero bytes, next header.
    pseudo = new Uint8Array(40);
    pseudo.set(pkt.subarray(ipOff + 8, ipOff + 40));
    pseudo.set([l4Len >>> 24, (l4Len >>> 16) & 0xff, (l4Len >>> 8) & 0xff, l4Len & 0xff], 32);
    pseudo[39] = proto;
  } else {
    // RFC 793 / RFC 768: src, dst, zero, protocol, 16-bit length.
    pseudo = new Uint8Array(12);
    pseudo.set(pkt.subarray(ipOff + 12, ipOff + 20));
    pseudo[9] = proto;
    pseudo[10] = l4Len >>> 8;
    pseudo[11] = l4Len & 0xff;
  }
  return inetChecksum(pseudo, seg);
}
