import { ERR, SluiceError } from "../errors.js";

/**
 * The tracker's knobs, with Linux's defaults (Documentation/networking/
 * nf_conntrack-sysctl.rst, the `*_timeouts[]` arrays of the protocol
 * trackers) and bounds. Timeouts are in seconds, like the sysctls; the
 * tracker converts them once at construction.
 */
export interface ConntrackConfig {
  /** nf_conntrack_max: live entries allowed (the table's capacity is the next power of two). */
  max: number;
  /** nf_conntrack_buckets: hash buckets (a power of two; 0 = same as the capacity). */
  buckets: number;
  /** nf_conntrack_tcp_loose: pick up mid-stream TCP connections. */
  tcpLoose: boolean;
  /** nf_conntrack_tcp_be_liberal: window-check failures are accepted (only out-of-window RSTs stay INVALID). */
  tcpBeLiberal: boolean;
  /** nf_conntrack_tcp_ignore_invalid_rst: an RST below td_maxack is not INVALID. */
  tcpIgnoreInvalidRst: boolean;
  /** nf_conntrack_tcp_max_retrans: identical retransmissions before the RETRANS timeout applies. */
  tcpMaxRetrans: number;
  /** nf_conntrack_checksum: verify L4 checksums of packets entering from outside (PRE_ROUTING). */
  checksum: boolean;
  /** nf_conntrack_acct: per-entry packet and byte counters are shown (`packets= bytes=`). They are always counted. */
  acct: boolean;
  /** Timeouts in seconds. */
  timeouts: ConntrackTimeouts;
  /** Capacity of the event ring (a power of two); events beyond it are counted as lost. */
  eventRing: number;
  /** Most entries one `reap` call expires (bounded work per tick). */
  reapBudget: number;
}

/** Timeouts in seconds, named after their sysctls without the `nf_conntrack_` prefix. */
export interface ConntrackTimeouts {
  tcpSynSent: number;
  tcpSynRecv: number;
  tcpEstablished: number;
  tcpFinWait: number;
  tcpCloseWait: number;
  tcpLastAck: number;
  tcpTimeWait: number;
  tcpClose: number;
  /** SYN_SENT2 has no sysctl in Linux; its entry in `tcp_timeouts[]` is 2 minutes. */
  tcpSynSent2: number;
  tcpMaxRetrans: number;
  tcpUnacknowledged: number;
  udp: number;
  udpStream: number;
  icmp: number;
  icmpv6: number;
  generic: number;
}

/** Linux's defaults (v6.12). */
export const DEFAULT_TIMEOUTS: Readonly<ConntrackTimeouts> = Object.freeze({
  tcpSynSent: 120,
  tcpSynRecv: 60,
  tcpEstablished: 432000,
  tcpFinWait: 120,
  tcpCloseWait: 60,
  tcpLastAck: 30,
  tcpTimeWait: 120,
  tcpClose: 10,
  tcpSynSent2: 120,
  tcpMaxRetrans: 300,
  tcpUnacknowledged: 300,
  udp: 30,
  udpStream: 120,
  icmp: 30,
  icmpv6: 30,
  generic: 600,
});

/** Defaults: Linux's, with the table sized as on a machine with more than 4 GB of RAM. */
export const DEFAULT_CONNTRACK_CONFIG: Readonly<ConntrackConfig> = Object.freeze({
  max: 262144,
  buckets: 0,
  tcpLoose: true,
  tcpBeLiberal: false,
  tcpIgnoreInvalidRst: false,
  tcpMaxRetrans: 3,
  checksum: true,
  acct: false,
  timeouts: DEFAULT_TIMEOUTS,
  eventRing: 4096,
  reapBudget: 1024,
});

/** Largest table sluice accepts (2^24 entries, about 3.4 GB of typed arrays). */
export const MAX_TABLE = 1 << 24;
/** Longest timeout accepted: Linux stores timeouts in 32-bit jiffies; we cap at 2^31 - 1 seconds. */
const MAX_TIMEOUT = 0x7fffffff;

/** The Linux sysctl name (under net.netfilter.) of each knob, for `--sysctl` and messages. */
export const SYSCTL_NAMES: Readonly<Record<string, string>> = Object.freeze({
  nf_conntrack_max: "max",
  nf_conntrack_buckets: "buckets",
  nf_conntrack_tcp_loose: "tcpLoose",
  nf_conntrack_tcp_be_liberal: "tcpBeLiberal",
  nf_conntrack_tcp_ignore_invalid_rst: "tcpIgnoreInvalidRst",
  nf_conntrack_tcp_max_retrans: "tcpMaxRetrans",
  nf_conntrack_checksum: "checksum",
  nf_conntrack_acct: "acct",
  nf_conntrack_tcp_timeout_syn_sent: "timeouts.tcpSynSent",
  nf_conntrack_tcp_timeout_syn_recv: "timeouts.tcpSynRecv",
  nf_conntrack_tcp_timeout_established: "timeouts.tcpEstablished",
  nf_conntrack_tcp_timeout_fin_wait: "timeouts.tcpFinWait",
  nf_conntrack_tcp_timeout_close_wait: "timeouts.tcpCloseWait",
  nf_conntrack_tcp_timeout_last_ack: "timeouts.tcpLastAck",
  nf_conntrack_tcp_timeout_time_wait: "timeouts.tcpTimeWait",
  nf_conntrack_tcp_timeout_close: "timeouts.tcpClose",
  nf_conntrack_tcp_timeout_max_retrans: "timeouts.tcpMaxRetrans",
  nf_conntrack_tcp_timeout_unacknowledged: "timeouts.tcpUnacknowledged",
  nf_conntrack_udp_timeout: "timeouts.udp",
  nf_conntrack_udp_timeout_stream: "timeouts.udpStream",
  nf_conntrack_icmp_timeout: "timeouts.icmp",
  nf_conntrack_icmpv6_timeout: "timeouts.icmpv6",
  nf_conntrack_generic_timeout: "timeouts.generic",
});

function fail(field: string, why: string): never {
  throw new SluiceError(ERR.CONFIG_FIELD, `conntrack config: ${field}: ${why}`);
}

function int(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v)) fail(field, `expected an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max) fail(field, `${v} is out of range [${min}, ${max}]`);
  return v;
}

function bool(field: string, v: unknown): boolean {
  if (typeof v === "boolean") return v;
  if (v === 0 || v === 1) return v === 1; // sysctl style
  return fail(field, `expected true/false (or 0/1), got ${JSON.stringify(v)}`);
}

function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * Validates a partial config over the defaults. Throws a SluiceError naming
 * the field for an unknown key, a wrong type or a value out of bounds.
 */
export function resolveConntrackConfig(partial: Record<string, unknown> = {}): ConntrackConfig {
  const d = DEFAULT_CONNTRACK_CONFIG;
  for (const k of Object.keys(partial)) {
    if (!(k in d)) throw new SluiceError(ERR.CONFIG_UNKNOWN, `conntrack config: unknown field "${k}"`);
  }
  const t = (partial.timeouts ?? {}) as Record<string, unknown>;
  if (typeof t !== "object" || t === null || Array.isArray(t)) fail("timeouts", "expected an object");
  for (const k of Object.keys(t)) {
    if (!(k in DEFAULT_TIMEOUTS)) throw new SluiceError(ERR.CONFIG_UNKNOWN, `conntrack config: unknown field "timeouts.${k}"`);
  }
  const timeouts = {} as ConntrackTimeouts;
  for (const k of Object.keys(DEFAULT_TIMEOUTS) as (keyof ConntrackTimeouts)[]) {
    timeouts[k] = int(`timeouts.${k}`, t[k] ?? DEFAULT_TIMEOUTS[k], 1, MAX_TIMEOUT);
  }
  const max = int("max", partial.max ?? d.max, 16, MAX_TABLE);
  const buckets = int("buckets", partial.buckets ?? d.buckets, 0, MAX_TABLE);
  if (buckets !== 0 && !isPow2(buckets)) fail("buckets", `${buckets} is not a power of two`);
  const eventRing = int("eventRing", partial.eventRing ?? d.eventRing, 16, 1 << 20);
  if (!isPow2(eventRing)) fail("eventRing", `${eventRing} is not a power of two`);
  return {
    max,
    buckets,
    tcpLoose: bool("tcpLoose", partial.tcpLoose ?? d.tcpLoose),
    tcpBeLiberal: bool("tcpBeLiberal", partial.tcpBeLiberal ?? d.tcpBeLiberal),
    tcpIgnoreInvalidRst: bool("tcpIgnoreInvalidRst", partial.tcpIgnoreInvalidRst ?? d.tcpIgnoreInvalidRst),
    tcpMaxRetrans: int("tcpMaxRetrans", partial.tcpMaxRetrans ?? d.tcpMaxRetrans, 0, 255),
    checksum: bool("checksum", partial.checksum ?? d.checksum),
    acct: bool("acct", partial.acct ?? d.acct),
    timeouts,
    eventRing,
    reapBudget: int("reapBudget", partial.reapBudget ?? d.reapBudget, 1, 1 << 20),
  };
}

/**
 * Applies `name=value` settings named like Linux's sysctls
 * (`nf_conntrack_tcp_loose=0`, also accepted with the `net.netfilter.`
 * prefix) onto a partial config object, for `--sysctl` on the command line.
 */
export function applySysctl(partial: Record<string, unknown>, setting: string): void {
  const eq = setting.indexOf("=");
  if (eq < 0) throw new SluiceError(ERR.USAGE, `--sysctl ${setting}: expected name=value`);
  const name = setting.slice(0, eq).trim().replace(/^net\.netfilter\./, "");
  const raw = setting.slice(eq + 1).trim();
  const path = SYSCTL_NAMES[name];
  if (path === undefined) throw new SluiceError(ERR.CONFIG_UNKNOWN, `--sysctl ${name}: unknown or unsupported conntrack sysctl`);
  if (!/^-?\d+$/.test(raw)) throw new SluiceError(ERR.CONFIG_FIELD, `--sysctl ${name}: expected an integer, got "${raw}"`);
  const value = Number(raw);
  if (path.startsWith("timeouts.")) {
    const t = (partial.timeouts ??= {}) as Record<string, unknown>;
    t[path.slice(9)] = value;
  } else {
    partial[path] = value;
  }
}
