/**
 * control/ — the daemon's control socket: what `sluice conntrack` and
 * `sluice stats` talk to.
 *
 *   sluice conntrack -L ─┐                      ┌─ Conntrack (forEachEntry, snapshot, destroy)
 *   sluice conntrack -E ─┼─ Unix socket 0600 ──▶│  EventRing ── pump() after each batch
 *   sluice stats        ─┘  NDJSON frames       └─ stats provider, now() clock
 *
 * Files: protocol.ts (this: the wire format and its bounds), filter.ts
 * (conntrack-tools' filter options, parsed once and matched against
 * snapshots), server.ts (the daemon side), client.ts (the CLI side).
 *
 * Why a text protocol: the control plane is never on the packet path, it
 * must be debuggable with `socat - UNIX-CONNECT:/run/sluice/sluice.sock`,
 * and the server formats conntrack lines itself (format.ts), so the CLI
 * prints bytes identical to conntrack-tools without knowing the table.
 *
 * ## Wire format (version 1)
 *
 * A Unix stream socket carrying newline-delimited JSON ("NDJSON"): every
 * message is one JSON object encoded as UTF-8 on one line ending in "\n".
 * The client sends one request at a time and reads frames until the frame
 * that ends the answer (one with an `ok` field); it may then send the next
 * request on the same connection. A request line longer than
 * MAX_REQUEST_BYTES characters is refused and the connection closed.
 *
 * Requests (`op` selects; unknown fields are refused, never ignored):
 *
 *   {"op":"conntrack.list",   "filter":F?, "extended":B?}
 *       → {"lines":[L...]}*  then {"ok":true,"count":N}
 *   {"op":"conntrack.delete", "filter":F,  "extended":B?}
 *       → {"lines":[L...]}*  then {"ok":true,"count":N}
 *       lines are the deleted entries as `conntrack -L` prints them, taken
 *       just before each was destroyed (each destroy emits a DESTROY event).
 *       The tuple fields of F match an entry seen from either side: the
 *       orig-side fields (-s/-d/--sport/--dport/--icmp-*) against its
 *       original tuple and the reply-side fields against its reply tuple,
 *       or the other way round (the kernel finds an entry by either
 *       direction's tuple). F must not be empty.
 *   {"op":"conntrack.flush",  "family":"ipv4"|"ipv6"?}
 *       → {"ok":true,"count":N}          (DESTROY events are emitted)
 *   {"op":"conntrack.count"}
 *       → {"ok":true,"count":N}
 *   {"op":"conntrack.events", "filter":F?, "extended":B?, "timestamp":B?,
 *    "events":["NEW"|"UPDATE"|"DESTROY", ...]?}
 *       → {"ok":true,"subscribed":true}, then until either side closes:
 *         {"lines":[E...]}   event lines as `conntrack -E [-o ...]` prints them
 *         {"dropped":N}      N = events this subscriber has lost so far
 *                            (its queue was full, or the ring overflowed)
 *       After subscribing the connection only streams: a further request
 *       on it is answered with an error and the connection is closed.
 *   {"op":"stats"}
 *       → {"ok":true,"stats":S}   S = the daemon's counters (see
 *                                 DaemonStats) plus a `control` section
 *
 * Errors end an answer: {"ok":false,"error":{"code":C,"message":M}} where C
 * is one of ERR's codes (src/errors.ts) and M is meant for the user as is.
 *
 * F (a filter, see filter.ts FilterSpec) is conntrack-tools' filter options
 * in JSON: {"family":"ipv4","proto":6,"origSrc":"10.0.1.0/24",
 * "origDport":80,"state":["ESTABLISHED"],"status":["ASSURED"],
 * "mark":"0x1/0xff", ...}. `-o timestamp` stamps event lines with the
 * wall-clock time the event happened (the daemon's clock), where
 * conntrack-tools stamps the time it read the event: the same to the
 * microsecond unless the reader lags.
 *
 * There is no version handshake yet: an incompatible change must add a
 * new op rather than change an old one.
 *
 * Bounds (ControlLimits): clients, request size, per-subscriber queued
 * bytes (a subscriber over it loses events, counted, and never makes the
 * daemon wait or grow), entries formatted per event-loop turn.
 */

/** Where the daemon listens unless its config says otherwise. */
export const DEFAULT_SOCKET_PATH = "/run/sluice/sluice.sock";

/** Longest request line the server reads (characters, without the newline). */
export const MAX_REQUEST_BYTES = 64 * 1024;

/** Longest response frame the client accepts (characters); list frames stay far below it. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Operations, as they appear in `op`. */
export const OP = {
  LIST: "conntrack.list",
  DELETE: "conntrack.delete",
  FLUSH: "conntrack.flush",
  COUNT: "conntrack.count",
  EVENTS: "conntrack.events",
  STATS: "stats",
  /** Replace the live ruleset(s): `rules` = { ipv4?: {file, text}, ipv6?: {file, text} }; atomic, all or nothing. */
  RULES_LOAD: "rules.load",
  /** The live ruleset of a `family` ("ipv4" | "ipv6") in iptables-save format, with counters. */
  RULES_SAVE: "rules.save",
  /** Stream `sluice trace` blocks for packets matching `match` (iptables match syntax) until the client leaves. */
  TRACE: "trace",
} as const;

export type Op = (typeof OP)[keyof typeof OP];

/** Event type names a subscriber may select, indexed by EVENT.* (NEW, UPDATE, DESTROY). */
export const EVENT_MASK_NAMES = ["NEW", "UPDATE", "DESTROY"] as const;

/** Capacities of the control server; every one is bounded. */
export interface ControlLimits {
  /** Simultaneous client connections; more are refused with an error frame. */
  maxClients: number;
  /**
   * Bytes a subscriber may have queued (Node's userspace write buffer, on top
   * of the kernel's socket buffer) before its events are dropped and counted.
   */
  subscriberQueueBytes: number;
  /** Table entries looked at per event-loop turn by list/delete, so packets keep flowing. */
  listChunk: number;
  /** Fallback pump period (ms) while someone subscribes, for when no batch arrives. */
  pumpIntervalMs: number;
}

/** Defaults of ControlLimits. */
export const DEFAULT_CONTROL_LIMITS: Readonly<ControlLimits> = Object.freeze({
  maxClients: 64,
  subscriberQueueBytes: 1 << 20,
  listChunk: 2048,
  pumpIntervalMs: 100,
});

/**
 * The counters a daemon's stats provider should return (all optional: the
 * server passes through whatever plain object it gets, and `sluice stats`
 * renders any shape). Numbers only, read from the hot path's counters at
 * request time.
 */
export interface DaemonStats {
  /** Milliseconds since the daemon started. */
  uptimeMs?: number;
  /** One row per NFQUEUE queue (or TUN queue). */
  queues?: QueueStats[];
  /** Conntrack table fill. */
  table?: { count: number; max: number };
  /** Pipeline counters (packets, accepted, dropped, invalid, fragments...). */
  pipeline?: Record<string, number>;
  /** Conntrack counters (ConntrackStats, plus events written/lost). */
  conntrack?: Record<string, number>;
  [section: string]: unknown;
}

/**
 * Per-queue counters as `sluice stats` shows them: the I/O layer's
 * QueueCounters (control/metrics.ts) with the queue number, plus batch
 * sizes when the daemon keeps them.
 */
export interface QueueStats {
  queue: number;
  received: number;
  verdicts: number;
  dropped: number;
  enobufs: number;
  batches: number;
  outstanding?: number;
  /** Largest batch seen. */
  batchMax?: number;
  /** Mean batch size (received / batches). */
  batchAvg?: number;
  [field: string]: number | undefined;
}

/** A request, as decoded from one line. */
export interface Request {
  op: Op;
  filter?: Record<string, unknown>;
  extended?: boolean;
  timestamp?: boolean;
  events?: string[];
  family?: string;
  /** rules.load: the files' names (for error positions) and texts, per family. */
  rules?: { ipv4?: { file: string; text: string }; ipv6?: { file: string; text: string } };
  /** trace: the packet filter, in iptables match syntax ("" = every packet). */
  match?: string;
  /** rules.load: take the files' counters (iptables-restore --counters). */
  counters?: boolean;
}

/** Fields each op accepts besides `op`. */
export const REQUEST_FIELDS: Readonly<Record<Op, readonly string[]>> = Object.freeze({
  [OP.LIST]: ["filter", "extended"],
  [OP.DELETE]: ["filter", "extended"],
  [OP.FLUSH]: ["family"],
  [OP.COUNT]: [],
  [OP.EVENTS]: ["filter", "extended", "timestamp", "events"],
  [OP.STATS]: [],
  [OP.RULES_LOAD]: ["rules", "counters"],
  [OP.RULES_SAVE]: ["family"],
  [OP.TRACE]: ["match"],
});

/** The error part of a failed answer. */
export interface WireError {
  code: string;
  message: string;
}

/** One frame from the server. */
export interface Frame {
  ok?: boolean;
  error?: WireError;
  lines?: string[];
  count?: number;
  dropped?: number;
  subscribed?: boolean;
  stats?: Record<string, unknown>;
  /** rules.save: the ruleset text. */
  text?: string;
}

/** Encodes one frame as a line. */
export function encodeFrame(f: Frame): string {
  return `${JSON.stringify(f)}\n`;
}

/**
 * Splits a byte stream into lines, bounded: `push` returns the complete
 * lines received so far, or null when a line grew past `max` bytes (the
 * caller then closes the connection).
 */
export class LineSplitter {
  private buf = "";
  constructor(private readonly max: number) {}

  push(chunk: string): string[] | null {
    this.buf += chunk;
    const out: string[] = [];
    let at = 0;
    for (let nl = this.buf.indexOf("\n", at); nl >= 0; nl = this.buf.indexOf("\n", at)) {
      if (nl - at > this.max) return null;
      out.push(this.buf.slice(at, nl));
      at = nl + 1;
    }
    this.buf = this.buf.slice(at);
    if (this.buf.length > this.max) return null;
    return out;
  }

  /** Bytes of an unfinished line. */
  get pending(): number { return this.buf.length; }
}
