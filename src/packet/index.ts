/**
 * packet/ — wire formats, and nothing of ours below it.
 *
 * How: one view class per header (Ipv4View, Ipv6View, TcpView, UdpView,
 * IcmpView for ICMP and ICMPv6). A view holds (buf, off) and the lengths its
 * `reset(buf, off, len)` validated; that one call does every bounds check,
 * after which getters read raw bytes with shifts and never go out of bounds.
 * `Packet` owns one view per layer and re-aims them for every packet;
 * `QuotedPacket` does the same for the packet inside an ICMP error, where
 * the L3 header must be whole but the rest may be cut short.
 *
 * Why: no allocation per packet (STYLE.md measures an object literal per
 * packet at 5x the cost of a reused view), and one place per header where
 * truncation is decided, so a malformed packet becomes a return code
 * (PARSE.BAD_L3 / BAD_L4) and never an exception.
 *
 * Numbers: addresses travel as 32-bit words; in tuples and the connection
 * table they are signed int32 (`readI32`), because V8 keeps int32 unboxed
 * while uint32 values above 2^31 become heap numbers across calls. Print
 * with `>>> 0`. Checksums: `checksum.ts` has the full sum and RFC 1624
 * incremental updates; every setter that touches checksummed bytes has a
 * `...WithChecksumUpdate` form, and UDP's zero checksum stays zero.
 *
 * Fragments: `Defragmenter` (defrag.ts) reassembles IPv4 and IPv6 as
 * Linux's nf_defrag does, in preallocated queues; see its header for the
 * kernel facts (an NFQUEUE listener behind `CT --notrack` gets raw
 * fragments, so sluice must reassemble).
 */
export * from "./bytes.js";
export * from "./checksum.js";
export * from "./constants.js";
export * from "./defrag.js";
export * from "./icmp.js";
export * from "./ipv4.js";
export * from "./ipv6.js";
export * from "./packet.js";
export * from "./tcp.js";
export * from "./tuple.js";
export * from "./udp.js";
