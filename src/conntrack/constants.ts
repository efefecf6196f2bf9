/**
 * Small-integer constants of the tracker, with Linux's values where Linux has
 * them, and the parallel name tables used only for text output.
 */

/**
 * ctinfo values (`enum ip_conntrack_info`, nf_conntrack_common.h), plus
 * sluice's INVALID (Linux: no conntrack attached to the skb).
 */
export const CTINFO = {
  ESTABLISHED: 0,
  RELATED: 1,
  NEW: 2,
  ESTABLISHED_REPLY: 3,
  RELATED_REPLY: 4,
  UNTRACKED: 7,
  INVALID: 8,
} as const;

/** The state name a `-m conntrack --ctstate` user sees, by ctinfo value. */
export const CTINFO_STATE_NAMES = [
  "ESTABLISHED", "RELATED", "NEW", "ESTABLISHED", "RELATED", "", "", "UNTRACKED", "INVALID",
] as const;

/** Direction of a packet relative to its connection (IP_CT_DIR_ORIGINAL / IP_CT_DIR_REPLY). */
export const DIR = { ORIGINAL: 0, REPLY: 1 } as const;
export const DIR_NAMES = ["original", "reply"] as const;

/** Status bits (`enum ip_conntrack_status`), as bit masks. */
export const STATUS = {
  EXPECTED: 1 << 0,
  SEEN_REPLY: 1 << 1,
  ASSURED: 1 << 2,
  CONFIRMED: 1 << 3,
  SRC_NAT: 1 << 4,
  DST_NAT: 1 << 5,
  SEQ_ADJUST: 1 << 6,
  SRC_NAT_DONE: 1 << 7,
  DST_NAT_DONE: 1 << 8,
  DYING: 1 << 9,
  FIXED_TIMEOUT: 1 << 10,
  TEMPLATE: 1 << 11,
  UNTRACKED: 1 << 12,
  HELPER: 1 << 13,
  OFFLOAD: 1 << 14,
  HW_OFFLOAD: 1 << 15,
} as const;

/** Status bit names, by bit number, as `conntrack --status` spells them. */
export const STATUS_NAMES = [
  "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT", "SEQ_ADJUST", "SRC_NAT_DONE",
  "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT", "TEMPLATE", "UNTRACKED", "HELPER", "OFFLOAD", "HW_OFFLOAD",
] as const;

/**
 * TCP conntrack states in `enum tcp_conntrack` order; LISTEN is SYN_SENT2
 * (simultaneous open). MAX doubles as "invalid" (sIV) and IGNORE (sIG) is
 * a pseudo-state, as in nf_conntrack_proto_tcp.c.
 */
export const TCP_STATE = {
  NONE: 0,
  SYN_SENT: 1,
  SYN_RECV: 2,
  ESTABLISHED: 3,
  FIN_WAIT: 4,
  CLOSE_WAIT: 5,
  LAST_ACK: 6,
  TIME_WAIT: 7,
  CLOSE: 8,
  SYN_SENT2: 9,
  MAX: 10,
  IGNORE: 11,
} as const;

/** State names as `conntrack -L` and `/proc/net/nf_conntrack` print them (`tcp_conntrack_names`). */
export const TCP_STATE_NAMES = [
  "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2",
] as const;

/**
 * Timeout classes: one expiry ring per class (so appending keeps each ring
 * sorted). TCP classes 0..9 are the TCP states; the rest follow.
 */
export const TCLASS = {
  TCP_NONE: 0,
  TCP_SYN_SENT: 1,
  TCP_SYN_RECV: 2,
  TCP_ESTABLISHED: 3,
  TCP_FIN_WAIT: 4,
  TCP_CLOSE_WAIT: 5,
  TCP_LAST_ACK: 6,
  TCP_TIME_WAIT: 7,
  TCP_CLOSE: 8,
  TCP_SYN_SENT2: 9,
  TCP_RETRANS: 10,
  TCP_UNACK: 11,
  UDP_UNREPLIED: 12,
  UDP_STREAM: 13,
  ICMP: 14,
  ICMPV6: 15,
  GENERIC: 16,
} as const;
/** Number of timeout classes. */
export const TCLASS_COUNT = 17;

/**
 * What a protocol tracker decided for a packet. ACCEPT: state updated;
 * IGNORE: accepted without a state update (Linux's NF_ACCEPT from the sIG
 * path and the window IGNORE cases); INVALID: no connection is attached
 * (-NF_ACCEPT in Linux); REPEAT: the old entry was killed, look up again and
 * create a new one (TIME_WAIT reopen, -NF_REPEAT); DROP: the packet must be
 * dropped (NF_DROP, e.g. the table is full).
 */
export const TRACK = { ACCEPT: 0, IGNORE: 1, INVALID: 2, REPEAT: 3, DROP: 4 } as const;
export const TRACK_NAMES = ["accept", "ignore", "invalid", "repeat", "drop"] as const;

/** Conntrack event types (`conntrack -E` tags). */
export const EVENT = { NEW: 0, UPDATE: 1, DESTROY: 2 } as const;
export const EVENT_NAMES = ["NEW", "UPDATE", "DESTROY"] as const;

/**
 * Connection helpers by id, as a connection records them (0: none). A
 * helper is assigned by `-t raw ... -j CT --helper NAME` to the connection
 * the packet creates; `conntrack -L` shows it as `helper=NAME`.
 */
export const HELPER_NAMES = ["", "ftp"] as const;
