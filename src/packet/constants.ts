/**
 * Wire-level numbers shared by every layer: address families, IP protocol
 * numbers, EtherTypes. Plain `as const` objects (not TS enums) so the hot path
 * compares small integers; names live in the parallel `*_NAMES` tables.
 */

/** Address families, with Linux's values (AF_INET, AF_INET6). */
export const AF = { INET: 2, INET6: 10 } as const;

/** IP protocol numbers (IANA; Linux `include/uapi/linux/in.h`, `in6.h`). */
export const IPPROTO = {
  HOPOPTS: 0,
  ICMP: 1,
  IGMP: 2,
  TCP: 6,
  UDP: 17,
  IPV6: 41,
  ROUTING: 43,
  FRAGMENT: 44,
  GRE: 47,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  SCTP: 132,
  UDPLITE: 136,
  DCCP: 33,
} as const;

/** Names of protocols as `/proc/net/nf_conntrack` and `conntrack -L` print them (`unknown` otherwise). */
export function protoName(proto: number): string {
  switch (proto) {
    case IPPROTO.TCP: return "tcp";
    case IPPROTO.UDP: return "udp";
    case IPPROTO.ICMP: return "icmp";
    case IPPROTO.ICMPV6: return "icmpv6";
    case IPPROTO.SCTP: return "sctp";
    case IPPROTO.GRE: return "gre";
    case IPPROTO.UDPLITE: return "udplite";
    case IPPROTO.DCCP: return "dccp";
    default: return "unknown";
  }
}
