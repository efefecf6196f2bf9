/**
 * `sluice replay CAPTURE`: every packet of a capture through the pipeline,
 * with the capture's timestamps as the clock. One line per packet (text, or
 * JSON with --json), optional conntrack events (--events), the final table
 * (--list) and the accepted packets written to a pcap (--write-accepted).
 *
 * Fragments: a held fragment's line is printed when its datagram completes
 * (with the datagram's verdict) or is discarded (drop), so lines of
 * fragments can come after lines with higher indexes; `index` says which
 * record a line is about.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { applySysctl, resolveConntrackConfig } from "../conntrack/config.js";
import { CTINFO, CTINFO_STATE_NAMES, DIR_NAMES, STATUS, TCP_STATE_NAMES } from "../conntrack/constants.js";
import { formatEventLine, formatProcLine } from "../conntrack/format.js";
import { ConnSnapshot } from "../conntrack/snapshot.js";
import { REASON_NAMES } from "../conntrack/tracker.js";
import { ERR, SluiceError } from "../errors.js";
import { LINKTYPE, PcapReader, PcapWriter } from "../io/pcap.js";
import { protoName } from "../packet/constants.js";
import { DEFRAG_DROP_NAMES } from "../packet/defrag.js";
import { Pipeline, VERDICT, VERDICT_NAMES } from "../pipeline/index.js";
import { parseCidr } from "../route/addr.js";
import { buildSnapshot } from "../route/mirror.js";
import type { RouteSnapshot } from "../route/table.js";
import { HOOK } from "../rules/context.js";
import { RuleEngine } from "../rules/engine.js";
import { engineDeps } from "../rules/targets.js";
import { Tracer, TraceFilter } from "../rules/trace.js";

/** Options of a replay run. */
export interface ReplayOptions {
  json: boolean;
  list: boolean;
  events: boolean;
  quiet: boolean;
  writeAccepted?: string;
  sysctl: string[];
  /** iptables / ip6tables rulesets to run the capture against (file name and text). */
  rules4?: { file: string; text: string };
  rules6?: { file: string; text: string };
  /** Interface hints: `NAME=ADDR/LEN[,ADDR/LEN...]` (the gateway's addresses on that interface). */
  ifaces?: string[];
  /** Route hints: `PREFIX=NAME` or `default=NAME`. */
  routes?: string[];
  /** `sluice trace` output for packets matching this filter (iptables match syntax; "" = every packet). */
  trace?: string;
}

/** What a replay run counted. */
export interface ReplaySummary {
  records: number;
  notIp: number;
  accepted: number;
  dropped: number;
  invalid: number;
  byReason: Record<string, number>;
  connections: number;
  eventsLost: number;
}

/** A packet's outcome, captured right after the pipeline decided it. */
interface Outcome {
  verdict: number;
  ctinfo: number;
  dir: number;
  proto: number;
  state: number;
  status: number;
  handle: number;
  reason: string;
}

/** A fragment waiting for its datagram. */
interface Held {
  index: number;
  time: number;
  off: number;
  len: number;
  buf: Uint8Array;
}

/** Output sink that batches writes. */
class Sink {
  private chunks: string[] = [];
  private size = 0;
  constructor(private readonly write: (s: string) => void) {}
  line(s: string): void {
    this.chunks.push(s, "\n");
    this.size += s.length + 1;
    if (this.size > 1 << 16) this.flush();
  }
  flush(): void {
    if (this.chunks.length === 0) return;
    this.write(this.chunks.join(""));
    this.chunks = [];
    this.size = 0;
  }
}

function ctinfoName(ctinfo: number): string {
  return CTINFO_STATE_NAMES[ctinfo] ?? String(ctinfo);
}

function flagsOf(status: number): string[] {
  const f: string[] = [];
  if ((status & STATUS.SEEN_REPLY) === 0) f.push("UNREPLIED");
  if ((status & STATUS.ASSURED) !== 0) f.push("ASSURED");
  return f;
}

/**
 * Replays `reader` and writes the per-packet lines (and --events, --list
 * output) through `write`. Returns the counts. Throws SluiceError for a
 * malformed capture (naming the record and byte offset).
 */
export function replay(reader: PcapReader, opts: ReplayOptions, write: (s: string) => void): ReplaySummary {
  const partial: Record<string, unknown> = {};
  for (const s of opts.sysctl) applySysctl(partial, s);
  const cfg = resolveConntrackConfig(partial);
  const pipe = new Pipeline({ conntrack: cfg });
  const ct = pipe.ct;
  const topo = buildHints(opts.ifaces ?? [], opts.routes ?? []);
  pipe.routes = topo;
  let tracer: Tracer | null = null;
  if (opts.rules4 !== undefined || opts.rules6 !== undefined) {
    const { deps } = engineDeps("replay", { log: null, send: null, nflogDir: null, ifname: (i) => topo.ifnameOf(i) });
    const engine = new RuleEngine(deps);
    engine.setInterfaceNames((i) => topo.ifnameOf(i));
    engine.load({ ipv4: opts.rules4, ipv6: opts.rules6 }, true);
    pipe.rules = engine;
    if (opts.trace !== undefined) {
      tracer = new Tracer(new TraceFilter(opts.trace, deps, (i) => topo.ifnameOf(i)), (block) => out.line(block.trimEnd()), (i) => topo.ifnameOf(i));
      tracer.attach(engine.forFamily(4));
      tracer.attach(engine.forFamily(6));
      engine.tracer = tracer;
    }
  } else if (opts.trace !== undefined) {
    throw new SluiceError(ERR.USAGE, "replay: --trace needs a ruleset (--rules and/or --rules6)");
  }
  ct.events.enabled = opts.events;
  const out = new Sink(write);
  const snap = new ConnSnapshot();
  const writer = opts.writeAccepted !== undefined ? new PcapWriter() : undefined;
  const held = new Map<number, Held>();
  const summary: ReplaySummary = {
    records: 0, notIp: 0, accepted: 0, dropped: 0, invalid: 0, byReason: {}, connections: 0, eventsLost: 0,
  };
  let now = -Infinity;

  const outcome = (verdict: number, reason: string): Outcome => {
    const i = ct.entry;
    return {
      verdict,
      ctinfo: ct.ctinfo,
      dir: ct.dir,
      proto: pipe.pkt.proto,
      state: i >= 0 ? ct.tcpState(i) : -1,
      status: i >= 0 ? ct.table.status[i] : 0,
      handle: i >= 0 ? ct.table.handle(i) : -1,
      reason,
    };
  };

  const emit = (index: number, time: number, o: Outcome, rec?: Held): void => {
    if (o.verdict === VERDICT.ACCEPT) summary.accepted++;
    else summary.dropped++;
    if (o.ctinfo === CTINFO.INVALID) {
      summary.invalid++;
      summary.byReason[o.reason] = (summary.byReason[o.reason] ?? 0) + 1;
    }
    if (writer !== undefined && rec !== undefined && o.verdict === VERDICT.ACCEPT) {
      writer.writeMs(rec.buf, rec.off, rec.len, time);
    }
    if (opts.quiet || tracer !== null) return;
    const hasConn = o.handle >= 0;
    const tracked = o.ctinfo !== CTINFO.INVALID && o.ctinfo !== CTINFO.UNTRACKED;
    if (opts.json) {
      const j: Record<string, unknown> = {
        index, time: Number((time / 1000).toFixed(6)), verdict: VERDICT_NAMES[o.verdict], ctinfo: ctinfoName(o.ctinfo),
      };
      if (tracked) j.dir = DIR_NAMES[o.dir];
      j.proto = protoName(o.proto) === "unknown" ? o.proto : protoName(o.proto);
      if (hasConn && o.state >= 0) j.state = TCP_STATE_NAMES[o.state];
      if (hasConn) { j.flags = flagsOf(o.status); j.conn = o.handle; }
      if (o.reason !== "") j.reason = o.reason;
      out.line(JSON.stringify(j));
    } else {
      const state = hasConn && o.state >= 0 ? TCP_STATE_NAMES[o.state] : "-";
      const flags = hasConn ? flagsOf(o.status).map((f) => `[${f}]`).join(" ") : "";
      const dir = tracked ? (o.dir === 0 ? "orig" : "reply") : "";
      let line = `${String(index).padStart(6)} ${(time / 1000).toFixed(6)} ${VERDICT_NAMES[o.verdict].padEnd(6)} ` +
        `${(ctinfoName(o.ctinfo) + (dir ? "/" + dir : "")).padEnd(17)} ${String(protoName(o.proto) === "unknown" ? o.proto : protoName(o.proto)).padEnd(6)} ` +
        `${state.padEnd(11)} ${hasConn ? `conn=${o.handle}` : "-"}`;
      if (flags !== "") line += ` ${flags}`;
      if (o.reason !== "") line += ` (${o.reason})`;
      out.line(line);
    }
  };

  const drainEvents = (): void => {
    if (!opts.events) return;
    while (ct.events.shift(snap)) {
      const text = formatEventLine(snap, cfg.acct, true);
      out.line(opts.json ? JSON.stringify({ event: EVENT_JSON[snap.event], text }) : text);
    }
  };

  const dropOutcome = (reason: string): Outcome => ({
    verdict: VERDICT.DROP, ctinfo: CTINFO.INVALID, dir: 0, proto: 0, state: -1, status: 0, handle: -1, reason,
  });

  /** Lines for held fragments released by the defragmenter, in index order. */
  const releaseHeld = (o: Outcome): void => {
    const d = pipe.defrag;
    const tags: number[] = [];
    for (let k = 0; k < d.releasedCount; k++) tags.push(d.releasedTags[k]);
    tags.sort((a, b) => a - b);
    for (const t of tags) {
      const h = held.get(t);
      if (h === undefined) continue;
      held.delete(t);
      emit(h.index, h.time, o, h);
    }
  };

  while (reader.next()) {
    summary.records++;
    // A non-IP frame (ARP, LLDP) never reaches conntrack; but in a raw-IP
    // capture every record claims to be IP, so a bad one is a malformed packet.
    if (reader.l3Kind === 0 && !RAW_IP_LINKTYPES.has(reader.linkType)) { summary.notIp++; continue; }
    const t = reader.timeMs();
    if (t > now) now = t; // the clock never goes back, even if the capture does
    pipe.tick(now, (d) => releaseHeld(dropOutcome(`fragment: ${DEFRAG_DROP_NAMES[d.releasedReason]}`)));
    drainEvents();
    const index = reader.index;
    const rec: Held = { index, time: t, off: reader.l3Offset, len: reader.l3Length, buf: reader.buf };
    hintPacket(pipe, topo, reader.buf, reader.l3Offset);
    if (tracer !== null) tracer.label = String(index);
    const v = pipe.process(reader.buf, reader.l3Offset, reader.l3Length, now, 0, index);
    if (v === VERDICT.STOLEN) {
      held.set(index, rec);
      continue;
    }
    let reason = "";
    if (pipe.defragDropReason >= 0) reason = `fragment: ${DEFRAG_DROP_NAMES[pipe.defragDropReason]}`;
    else if (ct.ctinfo === CTINFO.INVALID) reason = REASON_NAMES[ct.reason] + (ct.tcpReason ? `: ${ct.tcpReasonName()}` : "");
    const o = outcome(v, reason);
    if (pipe.reassembled) {
      held.set(index, rec); // COMPLETE releases this fragment too
      releaseHeld(o);
    } else if (pipe.defragDropReason >= 0) {
      emit(index, t, o, rec); // the dropped fragment, then those of its discarded queue
      releaseHeld(o);
    } else {
      emit(index, t, o, rec);
    }
    drainEvents();
  }
  // Fragments whose datagram never completed: Linux drops them when their queue times out.
  const rest = [...held.values()].sort((a, b) => a.index - b.index);
  for (const h of rest) {
    emit(h.index, h.time, dropOutcome("fragment: datagram incomplete at end of capture"), h);
  }
  if (opts.list) {
    const lines: string[] = [];
    ct.forEachEntry((i) => { ct.snapshot(i, now, snap); lines.push(formatProcLine(snap, cfg.acct).trimEnd()); });
    for (const l of lines) out.line(opts.json ? JSON.stringify({ proc: l }) : l);
  }
  summary.connections = ct.table.count;
  summary.eventsLost = ct.events.lost;
  out.flush();
  if (writer !== undefined && opts.writeAccepted !== undefined) writeFileSync(opts.writeAccepted, writer.toBytes());
  return summary;
}

const EVENT_JSON = ["NEW", "UPDATE", "DESTROY"];

/**
 * The gateway a capture is replayed on, from hints: `--iface lan0=10.0.1.1/24`
 * (the gateway's address on an interface; its network becomes a connected
 * route) and `--route default=wan0` / `--route 198.51.100.0/24=wan0`.
 * Without hints there are no interfaces: every packet is forwarded with no
 * in/out interface, so `-i`/`-o` rules do not match.
 */
export function buildHints(ifaces: readonly string[], routes: readonly string[]): RouteSnapshot {
  const links: Record<string, unknown>[] = [{ ifindex: 1, ifname: "lo", flags: ["UP"], mtu: 65536, addr_info: [] }];
  const r4: Record<string, unknown>[] = [];
  const r6: Record<string, unknown>[] = [];
  const names = new Map<string, number>();
  for (const h of ifaces) {
    const m = /^([^=\s/:]{1,15})=(.+)$/.exec(h);
    if (m === null) throw new SluiceError(ERR.USAGE, `replay: --iface ${h}: expected NAME=ADDR/LEN[,ADDR/LEN...], e.g. lan0=10.0.1.1/24`);
    const [, name, list] = m as unknown as [string, string, string];
    if (names.has(name)) throw new SluiceError(ERR.USAGE, `replay: --iface ${name} is given twice`);
    const ifindex = links.length + 1;
    names.set(name, ifindex);
    const addrInfo: Record<string, unknown>[] = [];
    for (const a of list.split(",")) {
      const c = parseCidr(a.trim(), false);
      if (c === null) throw new SluiceError(ERR.USAGE, `replay: --iface ${h}: "${a}" is not ADDR/LEN`);
      const addr = a.trim().split("/")[0]!;
      addrInfo.push({ family: c.family === 4 ? "inet" : "inet6", local: addr, prefixlen: c.prefixLen, scope: "global" });
      const table = c.family === 4 ? r4 : r6;
      table.push({ dst: `${formatNetwork(c)}/${c.prefixLen}`, dev: name, scope: "link" });
      table.push({ type: "local", dst: addr, dev: name, table: "local" });
    }
    links.push({ ifindex, ifname: name, flags: ["UP"], mtu: 1500, addr_info: addrInfo });
  }
  for (const h of routes) {
    const m = /^(default|[0-9a-fA-F:.]+\/\d+)(?:,(4|6))?=(.+)$/.exec(h);
    if (m === null) throw new SluiceError(ERR.USAGE, `replay: --route ${h}: expected PREFIX=IFACE or default=IFACE`);
    const [, dst, , dev] = m as unknown as [string, string, string | undefined, string];
    if (!names.has(dev)) throw new SluiceError(ERR.USAGE, `replay: --route ${h}: no --iface ${dev}`);
    if (dst === "default") {
      r4.push({ dst: "default", dev });
      r6.push({ dst: "default", dev });
    } else {
      const c = parseCidr(dst, false);
      if (c === null) throw new SluiceError(ERR.USAGE, `replay: --route ${h}: "${dst}" is not a prefix`);
      (c.family === 4 ? r4 : r6).push({ dst, dev });
    }
  }
  return buildSnapshot(links, r4, r6, 1);
}

function formatNetwork(c: { family: 4 | 6; address: bigint; prefixLen: number }): string {
  const bits = c.family === 4 ? 32 : 128;
  const net = c.prefixLen === 0 ? 0n : (c.address >> BigInt(bits - c.prefixLen)) << BigInt(bits - c.prefixLen);
  if (c.family === 4) return [24, 16, 8, 0].map((s) => Number((net >> BigInt(s)) & 255n)).join(".");
  const g: string[] = [];
  for (let k = 7; k >= 0; k--) g.push(Number((net >> BigInt(k * 16)) & 0xffffn).toString(16));
  return g.join(":");
}

/** Per packet: the gateway's own packets go through OUTPUT; others arrive on the interface routing back to their source. */
function hintPacket(pipe: Pipeline, topo: RouteSnapshot, b: Uint8Array, off: number): void {
  const v4 = b[off]! >> 4 === 4;
  const w = (o: number): number => (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
  let local: boolean;
  let route: number;
  if (v4) {
    const src = w(off + 12);
    local = topo.isLocal4(src);
    route = topo.lookup4(local ? w(off + 16) : src);
  } else {
    const s = off + 8, d = off + 24;
    local = topo.isLocal6(w(s), w(s + 4), w(s + 8), w(s + 12));
    route = local ? topo.lookup6(w(d), w(d + 4), w(d + 8), w(d + 12)) : topo.lookup6(w(s), w(s + 4), w(s + 8), w(s + 12));
  }
  const ifindex = route >= 0 ? topo.ifindex[route]! : 0;
  pipe.hook = local ? HOOK.OUTPUT : HOOK.PREROUTING;
  pipe.inIfindex = local ? 0 : ifindex;
  pipe.outIfindex = local ? ifindex : 0;
  pipe.mark = 0;
}
/** Link types whose records are IP packets by definition (RAW in its three numberings, IPV4, IPV6). */
const RAW_IP_LINKTYPES = new Set<number>([LINKTYPE.RAW, LINKTYPE.RAW_DLT12, LINKTYPE.RAW_DLT14, LINKTYPE.IPV4, LINKTYPE.IPV6]);

/** CLI entry: parses the arguments, runs the replay, prints a summary on stderr. */
export function replayMain(args: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        list: { type: "boolean", default: false },
        events: { type: "boolean", default: false },
        quiet: { type: "boolean", short: "q", default: false },
        "write-accepted": { type: "string" },
        sysctl: { type: "string", multiple: true, default: [] },
        rules: { type: "string" },
        rules6: { type: "string" },
        iface: { type: "string", multiple: true, default: [] },
        route: { type: "string", multiple: true, default: [] },
        trace: { type: "string" },
      },
    });
  } catch (e) {
    throw new SluiceError(ERR.USAGE, `replay: ${(e as Error).message}`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new SluiceError(ERR.USAGE, "replay: expected exactly one CAPTURE file");
  const path = positionals[0];
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new SluiceError(ERR.IO, `replay: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const reader = PcapReader.open(bytes, path);
  const readRules = (f: string | undefined): { file: string; text: string } | undefined => {
    if (f === undefined) return undefined;
    try {
      return { file: f, text: readFileSync(f, "utf8") };
    } catch (e) {
      throw new SluiceError(ERR.IO, `replay: cannot read ruleset ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const summary = replay(reader, {
    json: values.json, list: values.list, events: values.events, quiet: values.quiet,
    writeAccepted: values["write-accepted"], sysctl: values.sysctl,
    rules4: readRules(values.rules), rules6: readRules(values.rules6), ifaces: values.iface, routes: values.route, trace: values.trace,
  }, (s) => process.stdout.write(s));
  const reasons = Object.entries(summary.byReason).map(([r, n]) => `${n} ${r}`).join(", ");
  process.stderr.write(
    `replay: ${summary.records} records, ${summary.accepted} accepted, ${summary.dropped} dropped ` +
    `(${summary.invalid} INVALID${reasons ? ": " + reasons : ""}), ${summary.notIp} not IP, ` +
    `${summary.connections} connections at end${summary.eventsLost ? `, ${summary.eventsLost} events lost` : ""}\n`,
  );
  return 0;
}
