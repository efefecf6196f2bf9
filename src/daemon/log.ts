/**
 * Logging for the daemon (pino): JSON lines on stdout, or human-readable
 * lines through pino-pretty when asked or when stdout is a terminal.
 *
 * There is deliberately no per-packet API. The packet path only bumps
 * counters (plain numbers in stats objects); what reaches the log is
 * - `CounterSummary`: one line every N seconds with the counters' deltas;
 * - `RateLimitedLog`: errors that can repeat (ENOBUFS, a failed reload) at
 *   most once per key per interval, with the number suppressed meanwhile.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import pretty from "pino-pretty";

/** pino's levels, plus `silent`. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** One of LOG_LEVELS. */
export type LogLevel = (typeof LOG_LEVELS)[number];

export type { Logger };

/** Options of createLogger. */
export interface LoggerOptions {
  level: LogLevel;
  /** Human-readable output; "auto" (the default): when stdout is a terminal. */
  pretty?: boolean | "auto";
  /** Where lines go (default: stdout, written synchronously). For tests and embedding. */
  destination?: DestinationStream;
  /** Fields on every line (e.g. `{ queue: 0 }` in a worker). */
  base?: Record<string, unknown>;
}

/**
 * Creates the daemon's logger. JSON output is written synchronously: lines
 * are rare (never per packet), and a crash must not lose the last ones.
 * Pretty output runs pino-pretty in this thread, which is fine for a
 * terminal and never used in production pipelines.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const wantPretty = opts.pretty === "auto" || opts.pretty === undefined ? process.stdout.isTTY === true : opts.pretty;
  const base = { name: "sluice", pid: process.pid, ...(opts.base ?? {}) };
  const options = { level: opts.level, base, timestamp: pino.stdTimeFunctions.isoTime };
  if (wantPretty) {
    const stream = pretty({
      colorize: opts.destination === undefined && process.stdout.isTTY === true,
      destination: opts.destination ?? 1,
      sync: true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname,name",
    });
    return pino(options, stream);
  }
  return pino(options, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}

/** A stats object: the counters are its own numeric fields (e.g. PipelineStats, ConntrackStats, QueueCounters). */
export type CounterSource = object;

/** Options of CounterSummary. */
export interface CounterSummaryOptions {
  /** Seconds between lines; 0 disables the timer (tick() still works). */
  intervalSeconds: number;
  /** The log message (default "counters"). */
  msg?: string;
  /** Values that are levels, not counters (e.g. table fill), read as they are at each line. */
  gauges?: () => Record<string, number>;
  /** Clock in ms (default Date.now), for tests. */
  now?: () => number;
}

/**
 * One log line every N seconds with how much each counter moved since the
 * previous line, e.g.
 *
 *   {"msg":"counters","seconds":60,"pipeline":{"packets":12034,"accepted":12001,...},"conntrack":{...}}
 *
 * The field names of each source are read once, at construction (stats
 * objects have fixed shapes), and previous values live in one Float64Array
 * per source; a tick reads plain numbers and allocates only the log line.
 */
export class CounterSummary {
  private readonly log: Logger;
  private readonly names: string[];
  private readonly sources: CounterSource[];
  private readonly fields: string[][];
  private readonly prev: Float64Array[];
  private readonly opts: CounterSummaryOptions;
  private readonly now: () => number;
  private last: number;
  private timer: NodeJS.Timeout | null = null;

  /** `sources`: name → stats object, e.g. `{ pipeline: pipeline.stats, conntrack: ct.stats }`. */
  constructor(log: Logger, sources: Record<string, CounterSource>, opts: CounterSummaryOptions) {
    this.log = log;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.names = Object.keys(sources);
    this.sources = this.names.map((n) => sources[n]!);
    this.fields = this.sources.map((s) => Object.keys(s).filter((k) => typeof (s as Record<string, unknown>)[k] === "number"));
    this.prev = this.fields.map((f) => new Float64Array(f.length));
    this.last = this.now();
    this.snapshot();
  }

  /** Starts the timer (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.timer !== null || this.opts.intervalSeconds <= 0) return;
    this.timer = setInterval(() => this.tick(), this.opts.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** Stops the timer; `final` logs one last line with the deltas so far. */
  stop(final = false): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (final) this.tick();
  }

  /** Logs the deltas since the previous line and returns what was logged. */
  tick(): Record<string, unknown> {
    const t = this.now();
    const line: Record<string, unknown> = { seconds: Math.round((t - this.last) / 100) / 10 };
    this.last = t;
    for (let s = 0; s < this.sources.length; s++) {
      const src = this.sources[s] as Record<string, number>;
      const f = this.fields[s]!;
      const p = this.prev[s]!;
      const d: Record<string, number> = {};
      for (let i = 0; i < f.length; i++) {
        const v = src[f[i]!]!;
        d[f[i]!] = v - p[i]!;
        p[i] = v;
      }
      line[this.names[s]!] = d;
    }
    if (this.opts.gauges !== undefined) Object.assign(line, this.opts.gauges());
    this.log.info(line, this.opts.msg ?? "counters");
    return line;
  }

  private snapshot(): void {
    for (let s = 0; s < this.sources.length; s++) {
      const src = this.sources[s] as Record<string, number>;
      const f = this.fields[s]!;
      for (let i = 0; i < f.length; i++) this.prev[s]![i] = src[f[i]!]!;
    }
  }
}

/** Most distinct keys a RateLimitedLog tracks; beyond it keys share one slot ("other"). */
const MAX_KEYS = 1024;

interface KeyState {
  /** When the last line for this key was written (ms). */
  at: number;
  /** Occurrences since then that were not written. */
  suppressed: number;
  level: "error" | "warn";
  msg: string;
}

/**
 * A logger for repeated errors: at most one line per key per interval. The
 * first occurrence is written at once; later ones within the interval are
 * counted, and the next line written for that key carries
 * `suppressed: N`. `flush()` writes a line for keys with suppressed
 * occurrences whose interval has passed, so counts are not lost when the
 * errors stop (call it from the summary timer or on stop).
 *
 * Keys are a small fixed vocabulary chosen by the caller ("enobufs",
 * "route-reload", ...), never built from packet contents; at most MAX_KEYS
 * are tracked.
 */
export class RateLimitedLog {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly keys = new Map<string, KeyState>();

  constructor(log: Logger, intervalMs: number, now: () => number = Date.now) {
    this.log = log;
    this.intervalMs = intervalMs;
    this.now = now;
  }

  /** Logs at error level unless `key` was logged within the interval. Returns true when a line was written. */
  error(key: string, obj: Record<string, unknown> | Error, msg: string): boolean {
    return this.write("error", key, obj, msg);
  }

  /** As error(), at warn level. */
  warn(key: string, obj: Record<string, unknown> | Error, msg: string): boolean {
    return this.write("warn", key, obj, msg);
  }

  /** Writes "N more" lines for keys whose interval has passed with occurrences suppressed. */
  flush(force = false): void {
    const t = this.now();
    for (const [key, s] of this.keys) {
      if (s.suppressed > 0 && (force || t - s.at >= this.intervalMs)) {
        this.log[s.level]({ key, suppressed: s.suppressed, seconds: Math.round((t - s.at) / 100) / 10 }, `${s.msg} (repeated)`);
        s.suppressed = 0;
        s.at = t;
      }
    }
  }

  private write(level: "error" | "warn", key0: string, obj: Record<string, unknown> | Error, msg: string): boolean {
    const key = this.keys.has(key0) || this.keys.size < MAX_KEYS ? key0 : "other";
    const t = this.now();
    const s = this.keys.get(key);
    if (s !== undefined && t - s.at < this.intervalMs) {
      s.suppressed++;
      return false;
    }
    const fields: Record<string, unknown> = obj instanceof Error ? { err: obj } : { ...obj };
    fields.key = key;
    if (s !== undefined && s.suppressed > 0) fields.suppressed = s.suppressed;
    this.log[level](fields, msg);
    if (s === undefined) this.keys.set(key, { at: t, suppressed: 0, level, msg });
    else {
      s.at = t;
      s.suppressed = 0;
      s.level = level;
      s.msg = msg;
    }
    return true;
  }
}
