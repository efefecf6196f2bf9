/**
 * `sluice stats [--json] [--socket PATH]`: the daemon's counters, as a
 * table for people or as the daemon's JSON object for scripts. The
 * renderer takes any shape (protocol.ts DaemonStats is what the daemon
 * sends): scalars as `name value` rows, `table` as fill, arrays of rows
 * (per-queue counters) as a column table, objects as indented sections.
 */
import { fetchStats } from "../control/client.js";
import { DEFAULT_SOCKET_PATH } from "../control/protocol.js";
import { ERR, SluiceError } from "../errors.js";
import { PROCESS_IO, type CliIo } from "./conntrack.js";

export const STATS_USAGE = `usage: sluice stats [--json] [--socket PATH]

  per-queue received, verdicts, drops, ENOBUFS and batch sizes, table fill,
  pipeline, conntrack and control-socket counters of the running daemon
  --json          the daemon's object as one JSON line
  --socket PATH   the daemon's control socket (default ${DEFAULT_SOCKET_PATH})
`;

/** A number for people: integers as they are, others with at most two decimals. */
function num(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 100) / 100);
}

function scalar(v: unknown): string {
  if (typeof v === "number") return num(v);
  if (typeof v === "string" || typeof v === "boolean") return String(v);
  if (v === null || v === undefined) return "-";
  return JSON.stringify(v);
}

/** "1d 02h 03m 04s" from milliseconds. */
function duration(ms: number): string {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const p2 = (x: number): string => String(x).padStart(2, "0");
  return d > 0 ? `${d}d ${p2(h)}h ${p2(m)}m ${p2(s)}s` : h > 0 ? `${h}h ${p2(m)}m ${p2(s)}s` : m > 0 ? `${m}m ${p2(s)}s` : `${s}s`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `name value` rows with the names padded to one column. */
function rows(pairs: [string, string][], indent: string): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${indent}${k.padEnd(w)}  ${v}\n`).join("");
}

/** Flattens nested objects into dotted names. */
function flatten(o: Record<string, unknown>, prefix: string, out: [string, string][]): void {
  for (const [k, v] of Object.entries(o)) {
    if (isRecord(v)) flatten(v, `${prefix}${k}.`, out);
    else out.push([`${prefix}${k}`, scalar(v)]);
  }
}

/** A column table: header from the keys of all rows (first seen first), numbers right-aligned. */
function columns(list: unknown[], indent: string): string {
  const keys: string[] = [];
  for (const r of list) if (isRecord(r)) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  const cells = list.map((r) => keys.map((k) => (isRecord(r) ? scalar(r[k]) : "")));
  const w = keys.map((k, c) => Math.max(k.length, ...cells.map((row) => row[c].length)));
  const line = (vals: string[], right: boolean): string =>
    `${indent}${vals.map((v, c) => (right && /^-?[\d.]+$/.test(v) ? v.padStart(w[c]) : v.padEnd(w[c]))).join("  ").trimEnd()}\n`;
  return line(keys, false) + cells.map((row) => line(row, true)).join("");
}

/** Renders the daemon's stats object as text. */
export function renderStats(stats: Record<string, unknown>): string {
  const head: [string, string][] = [];
  let body = "";
  for (const [k, v] of Object.entries(stats)) {
    if (k === "uptimeMs" && typeof v === "number") {
      head.push(["uptime", duration(v)]);
    } else if (k === "table" && isRecord(v) && typeof v.count === "number" && typeof v.max === "number") {
      const pct = v.max > 0 ? ` (${((v.count / v.max) * 100).toFixed(1)}%)` : "";
      head.push(["table", `${v.count} / ${v.max} entries${pct}`]);
    } else if (Array.isArray(v)) {
      body += `\n${k}\n${v.length === 0 ? "  (none)\n" : columns(v, "  ")}`;
    } else if (isRecord(v)) {
      const pairs: [string, string][] = [];
      flatten(v, "", pairs);
      body += `\n${k}\n${pairs.length === 0 ? "  (none)\n" : rows(pairs, "  ")}`;
    } else {
      head.push([k, scalar(v)]);
    }
  }
  const out = rows(head, "") + body;
  return out.startsWith("\n") ? out.slice(1) : out;
}

/** Runs `sluice stats ARGS`; returns the exit code. */
export async function statsMain(argv: readonly string[], io: CliIo = PROCESS_IO): Promise<number> {
  let json = false, socket = DEFAULT_SOCKET_PATH;
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === "--json") json = true;
    else if (a === "-h" || a === "--help") { io.stdout(STATS_USAGE); return 0; }
    else if (a === "--socket" && k + 1 < argv.length) socket = argv[++k];
    else if (a.startsWith("--socket=")) socket = a.slice(9);
    else throw new SluiceError(ERR.USAGE, `stats: unknown or incomplete option "${a}"\n\n${STATS_USAGE}`);
  }
  const stats = await fetchStats(socket);
  io.stdout(json ? `${JSON.stringify(stats)}\n` : renderStats(stats));
  return 0;
}
