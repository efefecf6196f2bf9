/**
 * The targets whose work reaches outside the packet, joined to the rule
 * engine: option compilation for REJECT / LOG / NFLOG (reject.ts, log.ts,
 * nflog.ts parse them) and the effects at run time.
 *
 * - REJECT: the reply is built into a scratch buffer (reject.ts, Linux's
 *   rules and rate limits) and handed to `send` (the daemon's raw socket,
 *   marked so sluice's own rules skip it); the offending packet is dropped
 *   by the ruleset. An IPv6 error for a forwarded packet needs a source
 *   address: the first global address of the interface the packet came in
 *   on (Linux's source selection picks from it too).
 * - LOG: one pino record per hit with the kernel's fields and its text line
 *   as `msg`, at the syslog level mapped to pino's (emerg..crit → fatal,
 *   error → error, warning → warn, notice/info → info, debug → debug).
 *   Never rate limited here, as in Linux: rules add `-m limit`.
 * - NFLOG: the packet into `<dir>/nflog-<group>.pcap` (LINKTYPE_NFLOG).
 * - TCPMSS / CHECKSUM: in-place rewrites with checksum updates.
 */
import type { Logger } from "pino";
import { checksum } from "../packet/checksum.js";
import { AF } from "../packet/constants.js";
import { RTN } from "../route/constants.js";
import type { RouteSnapshot } from "../route/table.js";
import type { RuleNode, TargetNode } from "./ast.js";
import { HOOK, type RuleContext } from "./context.js";
import type { EngineDeps } from "./engine.js";
import { formatLog, parseLogOptions, TargetOptionError, type LogOptions } from "./log.js";
import { RuleError } from "./match-api.js";
import { NEEDS } from "./matches.js";
import { NflogSink, parseNflogOptions, type NflogMeta, type NflogOptions } from "./nflog.js";
import { parseRejectWith, RejectBuilder, rejectRuleError, type RejectCallOptions } from "./reject.js";
import type { RuleEffects } from "./ruleset.js";
import type { TableName } from "./extensions.js";

/** REJECT / LOG / NFLOG options → compiled data, with errors at the offending option. */
export function compileTargetData(t: TargetNode, rule: RuleNode, env: { family: 4 | 6; table: TableName }): { code?: number; data?: unknown } {
  const at = (e: unknown): never => {
    if (e instanceof TargetOptionError) throw new RuleError(t.options[e.optionIndex]?.pos ?? t.pos, e.message);
    throw new RuleError(t.pos, (e as Error).message);
  };
  switch (t.name) {
    case "REJECT": {
      const o = t.options.find((x) => x.name === "--reject-with");
      let code: number;
      try {
        code = parseRejectWith(o?.args[0] ?? (env.family === 4 ? "icmp-port-unreachable" : "icmp6-port-unreachable"), env.family);
      } catch (e) {
        throw new RuleError(o?.pos ?? t.pos, (e as Error).message);
      }
      const bad = rejectRuleError(code, env.family, rule.proto?.value ?? 0, rule.proto?.negated ?? false);
      if (bad !== null) throw new RuleError(o?.pos ?? t.pos, bad);
      return { code };
    }
    case "LOG":
      try {
        return { data: parseLogOptions(t.options) };
      } catch (e) {
        return at(e);
      }
    case "NFLOG":
      try {
        return { data: parseNflogOptions(t.options) };
      } catch (e) {
        return at(e);
      }
    default:
      throw new RuleError(t.pos, `target ${t.name} has no compiled data`);
  }
}

/** What each packet source can tell the matches (matches.ts NEEDS). */
export function providesFor(mode: "nfqueue" | "tun" | "replay"): number {
  // NFQUEUE gives the ingress link-layer source (NFQA_HWADDR); TUN and captures without
  // Ethernet do not. The route mirror is there live; a replay has it when given hints.
  switch (mode) {
    case "nfqueue":
      return NEEDS.HWADDR | NEEDS.ROUTES;
    case "tun":
      return NEEDS.ROUTES;
    default:
      return NEEDS.ROUTES | NEEDS.HWADDR;
  }
}

function missingReason(mode: string): (bit: number) => string {
  return (bit) => {
    if ((bit & NEEDS.OWNER) !== 0) return `the packet's socket owner (uid/gid) is not known to sluice in ${mode} mode (NFQUEUE is not asked for NFQA_UID/GID; TUN has none)`;
    if ((bit & NEEDS.HWADDR) !== 0) return `the link-layer source address is not known in ${mode} mode (a TUN device carries no Ethernet header)`;
    return `the route mirror is not available in ${mode} mode`;
  };
}

/** Where the effects go. */
export interface EffectSinks {
  /** LOG records (null: LOG hits are counted only). */
  log: Logger | null;
  /** Sends a REJECT reply (IP packet at buf[0, len)); returns true when sent. */
  send: ((buf: Uint8Array, len: number) => boolean) | null;
  /** NFLOG files directory (null: NFLOG hits are counted only). */
  nflogDir: string | null;
  /** Interface name by index, for LOG's IN=/OUT=. */
  ifname: (ifindex: number) => string | undefined;
}

/** Counters of the effects. */
export class EffectStats {
  logged = 0;
  nflogged = 0;
  rejectsSent = 0;
  /** Replies Linux would not send either (rate limits, ICMP about ICMP, broadcast...). */
  rejectsSuppressed = 0;
  rejectSendErrors = 0;
  mssClamped = 0;
  checksumsFilled = 0;
}

const PINO_LEVEL = ["fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug"] as const;

/** The effects for the daemon and replays (engineDeps adapts them to RuleEffects). */
export class TargetEffects {
  readonly stats = new EffectStats();
  readonly reject = new RejectBuilder();
  private readonly sinks: EffectSinks;
  private nflogSink: NflogSink | null = null;
  private readonly scratch = new Uint8Array(1500);
  private readonly call: RejectCallOptions = { srcIsLocalDst: false, icmpSource4: 0, icmpSource6: null, dstIsBroadcast: false, forwarded: false, hook: 0 };
  private readonly nfMeta: NflogMeta = { hook: 0, inIfindex: 0, outIfindex: 0, mark: 0, uid: -1, gid: -1 };
  private src6Gen = -1;
  private readonly src6 = new Map<number, Int32Array>();

  constructor(sinks: EffectSinks) {
    this.sinks = sinks;
  }

  log(_rule: number, data: unknown, c: RuleContext): void {
    this.stats.logged++;
    const log = this.sinks.log;
    if (log === null) return;
    const o = data as LogOptions;
    const p = c.pkt;
    const rec = formatLog(o, { buf: p.buf, off: p.off, length: p.length }, this.sinks.ifname(c.inIfindex) ?? "", this.sinks.ifname(c.outIfindex) ?? "", null, c.mark, c.uid >= 0 ? { uid: c.uid, gid: c.gid } : null);
    log[PINO_LEVEL[o.level] ?? "warn"]({ log: rec.fields }, rec.line);
  }

  nflog(_rule: number, data: unknown, c: RuleContext): void {
    this.stats.nflogged++;
    if (this.sinks.nflogDir === null) return;
    this.nflogSink ??= new NflogSink(this.sinks.nflogDir);
    const o = data as NflogOptions;
    const m = this.nfMeta;
    m.hook = c.hook;
    m.inIfindex = c.inIfindex;
    m.outIfindex = c.outIfindex;
    m.mark = c.mark;
    m.uid = c.uid;
    m.gid = c.gid;
    const p = c.pkt;
    this.nflogSink.write(o.group, o.prefix, p.buf, p.off, nflogLength(o, p.length), c.wallNow, m);
  }

  /** REJECT's effect: build the reply (Linux's rules and rate limits), send it. */
  rejectPacket(code: number, c: RuleContext): void {
    const call = this.call;
    call.srcIsLocalDst = c.hook === HOOK.INPUT;
    call.forwarded = c.hook === HOOK.FORWARD;
    call.hook = c.hook;
    call.dstIsBroadcast = c.family === 4 && isBroadcast4(c);
    call.icmpSource6 = c.family === 6 && !call.srcIsLocalDst ? this.source6(c.routes, c.inIfindex) : null;
    const n = this.reject.build(code, c.pkt, this.scratch, c.now, call);
    if (n === 0) {
      this.stats.rejectsSuppressed++;
      return;
    }
    if (this.sinks.send === null) return;
    if (this.sinks.send(this.scratch, n)) this.stats.rejectsSent++;
    else this.stats.rejectSendErrors++;
  }

  tcpmss(_rule: number, mss: number, clamp: boolean, c: RuleContext): boolean {
    const limit = clamp ? this.pmtuMss(c) : mss;
    if (limit <= 0) return false;
    if (clampMss(c, limit)) {
      this.stats.mssClamped++;
      return true;
    }
    return false;
  }

  checksumFill(c: RuleContext): boolean {
    // Packets reach sluice with complete checksums (the kernel completes partial
    // ones before queueing unless F_GSO is on); recompute only a TCP/UDP checksum that is wrong.
    const p = c.pkt;
    if (c.parseStatus !== 0 || (p.proto !== 6 && p.proto !== 17) || p.l4ChecksumValid()) return false;
    fillL4Checksum(c);
    this.stats.checksumsFilled++;
    return true;
  }

  /** Closes the NFLOG files. */
  close(): void {
    this.nflogSink?.close();
  }

  /** MSS for --clamp-mss-to-pmtu: the out interface's MTU minus the IP and TCP headers. */
  private pmtuMss(c: RuleContext): number {
    const r = c.routes;
    if (r === null || c.outIfindex === 0) return 0;
    const link = r.links.find((l) => l.ifindex === c.outIfindex);
    if (link === undefined) return 0;
    return link.mtu - (c.family === 4 ? 40 : 60);
  }

  /** First global IPv6 address of the interface, as four words (cached per route generation). */
  private source6(routes: RouteSnapshot | null, ifindex: number): Int32Array | null {
    if (routes === null) return null;
    if (routes.generation !== this.src6Gen) {
      this.src6.clear();
      this.src6Gen = routes.generation;
    }
    let w = this.src6.get(ifindex);
    if (w === undefined) {
      const a = routes.addresses.find((x) => x.family === 6 && x.ifindex === ifindex && x.scope === "global")
        ?? routes.addresses.find((x) => x.family === 6 && x.scope === "global");
      if (a === undefined) return null;
      w = ipv6Words(a.address);
      this.src6.set(ifindex, w);
    }
    return w;
  }
}

function nflogLength(o: NflogOptions, len: number): number {
  return o.len > 0 && (o.flags & 1) !== 0 ? Math.min(o.len, len) : len;
}

function isBroadcast4(c: RuleContext): boolean {
  const r = c.routes;
  if (r === null) return false;
  const b = c.pkt.buf, o = c.pkt.off + 16;
  const dst = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
  if (dst === -1) return true;
  const route = r.lookup4(dst);
  return route >= 0 && r.type[route] === RTN.BROADCAST;
}

function ipv6Words(text: string): Int32Array {
  const u = new URL(`http://[${text}]`).hostname.slice(1, -1);
  const [head, tail] = u.includes("::") ? u.split("::") : [u, undefined];
  const h = head === "" ? [] : head!.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill("0"), ...t].map((g) => parseInt(g, 16));
  const w = new Int32Array(4);
  for (let k = 0; k < 4; k++) w[k] = (groups[2 * k]! << 16) | groups[2 * k + 1]!;
  return w;
}

/**
 * Lowers the MSS option of a TCP SYN to `limit` (xt_TCPMSS: only when the
 * option is there and larger; sluice does not insert a missing option).
 */
function clampMss(c: RuleContext, limit: number): boolean {
  const p = c.pkt;
  if (c.parseStatus !== 0 || p.proto !== 6) return false;
  const b = p.buf, t = p.l4Offset;
  if ((b[t + 13]! & 0x02) === 0) return false; // not a SYN
  const hdr = (b[t + 12]! >> 4) * 4;
  for (let o = t + 20; o < t + hdr; ) {
    const kind = b[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const len = b[o + 1]!;
    if (len < 2 || o + len > t + hdr) break;
    if (kind === 2 && len === 4) {
      const old = (b[o + 2]! << 8) | b[o + 3]!;
      if (old <= limit) return false;
      b[o + 2] = limit >> 8;
      b[o + 3] = limit & 0xff;
      // RFC 1624 update of the TCP checksum.
      const cs = t + 16;
      let sum = (~((b[cs]! << 8) | b[cs + 1]!) & 0xffff) + (~old & 0xffff) + limit;
      sum = (sum & 0xffff) + (sum >>> 16);
      sum = (sum & 0xffff) + (sum >>> 16);
      const v = ~sum & 0xffff;
      b[cs] = v >> 8;
      b[cs + 1] = v & 0xff;
      return true;
    }
    o += len;
  }
  return false;
}

/** Recomputes a TCP/UDP checksum in full (pseudo-header included). */
function fillL4Checksum(c: RuleContext): void {
  const p = c.pkt;
  const b = p.buf, l4 = p.l4Offset, n = p.l4Length;
  const csOff = l4 + (p.proto === 6 ? 16 : 6);
  b[csOff] = b[csOff + 1] = 0;
  let sum = 0;
  if (p.family === AF.INET) {
    for (let k = 12; k < 20; k += 2) sum += (b[p.off + k]! << 8) | b[p.off + k + 1]!;
  } else {
    for (let k = 8; k < 40; k += 2) sum += (b[p.off + k]! << 8) | b[p.off + k + 1]!;
  }
  sum += p.proto + n;
  sum += ~checksum(b, l4, n) & 0xffff;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  let v = ~sum & 0xffff;
  if (v === 0 && p.proto === 17) v = 0xffff;
  b[csOff] = v >> 8;
  b[csOff + 1] = v & 0xff;
}

/** Engine dependencies for a packet source; `sinks` null: compile only (rules check). */
export function engineDeps(mode: "nfqueue" | "tun" | "replay", sinks: EffectSinks | null): { deps: EngineDeps; effects: TargetEffects | null } {
  const effects = sinks === null ? null : new TargetEffects(sinks);
  const fx: RuleEffects = effects !== null
    ? {
        log: (r, d, c) => effects.log(r, d, c),
        nflog: (r, d, c) => effects.nflog(r, d, c),
        reject: (_r, code, c) => effects.rejectPacket(code, c),
        tcpmss: (r, mss, clamp, c) => effects.tcpmss(r, mss, clamp, c),
        checksumFill: (c) => effects.checksumFill(c),
      }
    : NO_EFFECTS;
  return { deps: { effects: fx, targetData: compileTargetData, provides: providesFor(mode), missingReason: missingReason(mode) }, effects };
}

const NO_EFFECTS: RuleEffects = {
  log() {},
  nflog() {},
  reject() {},
  tcpmss: () => false,
  checksumFill: () => false,
};

/** For `sluice rules check`: compile as the daemon in `mode` would, without effects. */
export function offlineDeps(mode: "nfqueue" | "tun"): EngineDeps {
  return engineDeps(mode, null).deps;
}
