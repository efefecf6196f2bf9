/**
 * Route types and table ids with the kernel's values
 * (include/uapi/linux/rtnetlink.h: `enum rt_class_t`, `RTN_*`), so a route's
 * type is a small integer on the packet path and a name only in output.
 */

/** Route types (`rtm_type`), as the kernel numbers them. */
export const RTN = {
  UNSPEC: 0,
  /** A gateway or direct route. */
  UNICAST: 1,
  /** Accept locally (one of this host's addresses). */
  LOCAL: 2,
  /** Accept locally as broadcast, send as broadcast. */
  BROADCAST: 3,
  /** Accept locally as anycast (IPv6 subnet-router anycast), send as unicast. */
  ANYCAST: 4,
  /** Multicast route. */
  MULTICAST: 5,
  /** Drop silently. */
  BLACKHOLE: 6,
  /** Drop with ICMP destination unreachable (host unreachable). */
  UNREACHABLE: 7,
  /** Drop with ICMP administratively prohibited. */
  PROHIBIT: 8,
  /** Not in this table: the lookup continues with the next rule. */
  THROW: 9,
  NAT: 10,
  XRESOLVE: 11,
} as const;

/** iproute2's names of the route types (`rtnl_rtntype_n2a`), indexed by RTN value. */
export const RTN_NAMES = [
  "none", "unicast", "local", "broadcast", "anycast", "multicast",
  "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve",
] as const;

/** Reserved routing table ids (`enum rt_class_t`). */
export const RT_TABLE = {
  UNSPEC: 0,
  DEFAULT: 253,
  MAIN: 254,
  LOCAL: 255,
} as const;

/**
 * Route types whose packets the kernel delivers to this host (the INPUT
 * hook) rather than forwarding, indexed by RTN value: local and broadcast
 * (`ip_local_deliver`), anycast (IPv6 `ip6_input`), multicast (we do no
 * multicast routing, so a multicast packet is only ever for this host).
 */
export const DELIVERS_LOCALLY: Readonly<Uint8Array> = (() => {
  const t = new Uint8Array(256);
  t[RTN.LOCAL] = t[RTN.BROADCAST] = t[RTN.ANYCAST] = t[RTN.MULTICAST] = 1;
  return t;
})();
