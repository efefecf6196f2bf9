/**
 * `sluice trace` and `replay --trace`: the way a packet took through the
 * tables and chains, in a form read at a glance. One block per packet:
 *
 * ```
 * #7  tcp 10.0.1.2:40000 → 203.0.113.2:81 [S]  in lan0 → out wan0   DROP by filter FORWARD#2
 *     raw    PREROUTING  INVALID  policy ACCEPT
 *     mangle PREROUTING  NEW      policy ACCEPT
 *     filter FORWARD     NEW      FORWARD#1 -j CHECK › CHECK#2 -p tcp --dport 81 -j REJECT --reject-with tcp-reset
 * ```
 *
 * - the head line: protocol, addresses and ports (ICMP type/code), TCP
 *   flags, interfaces, the verdict and the rule that decided it;
 * - one line per table that has a chain at that hook (tables without one
 *   are skipped, as the kernel skips them), with the ctstate the table saw
 *   and the rules that matched in order: `CHAIN#n` and the target for
 *   jumps, gotos, RETURN and non-terminal targets (LOG, MARK...), the full
 *   rule for the one that decided, or `policy X` when the chain's policy did.
 *
 * The filter is written in iptables match syntax (`-p tcp --dport 22 -s
 * 10.0.1.0/24 -i lan0 -m conntrack --ctstate NEW`), compiled as one rule
 * and tested on the packet as it left the traversal. Tracing costs nothing
 * when off: the pipeline checks one field per table.
 */
import { CTINFO_STATE_NAMES } from "../conntrack/constants.js";
import type { PipelineTracer } from "../pipeline/index.js";
import { AF } from "../packet/constants.js";
import { HOOK_NAMES, type RuleContext } from "./context.js";
import type { CompileOptions, Ruleset } from "./ruleset.js";
import { compileRuleset, T } from "./ruleset.js";
import { parseRuleset } from "./parse.js";
import { formatRule } from "./save.js";
import { TABLES } from "./extensions.js";

const TCP_FLAG_LETTERS = "FSRPAUEC";
const PROTO_NAMES: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 136: "udplite" };
const TARGET_WORDS = ["", "ACCEPT", "DROP", "RETURN", "", "", "REJECT", "LOG", "NFLOG", "NOTRACK", "CT", "MARK", "CONNMARK", "TCPMSS", "CHECKSUM"];

/** A packet filter in iptables match syntax, per family. */
export class TraceFilter {
  readonly text: string;
  private readonly v4: Ruleset | null;
  private readonly v6: Ruleset | null;

  /** @throws RuleError naming the filter's column, e.g. `(trace filter):1:14: unknown match "foo"` */
  constructor(args: string, deps: Pick<CompileOptions, "targetData" | "provides" | "missingReason">, ifname: (ifindex: number) => string | undefined = () => undefined) {
    this.text = args.trim();
    const build = (family: 4 | 6): Ruleset | null => {
      if (this.text === "") return null;
      // Column numbers of errors refer to the filter text: it sits after "-A FORWARD " on line 1 of the block.
      const ast = parseRuleset(`*filter\n-A FORWARD ${this.text}\nCOMMIT\n`, "(trace filter)", family);
      const rs = compileRuleset(ast, { ...deps });
      rs.setInterfaceNames(ifname);
      return rs;
    };
    this.v4 = build(4);
    this.v6 = this.text === "" ? null : tryBuild(() => build(6));
  }

  /** Whether the packet in `c` passes the filter. */
  matches(c: RuleContext): boolean {
    if (this.text === "") return true;
    const rs = c.family === 4 ? this.v4 : this.v6;
    return rs !== null && rs.matches(0, c);
  }
}

/** An IPv4-only filter (`-p icmp --icmp-type`) simply never matches IPv6. */
function tryBuild(f: () => Ruleset | null): Ruleset | null {
  try {
    return f();
  } catch {
    return null;
  }
}

/** Collects the traversal of each packet and writes a block for those the filter passes. */
export class Tracer implements PipelineTracer {
  /** Packets traced (passed the filter). */
  traced = 0;
  private readonly filter: TraceFilter;
  private readonly write: (block: string) => void;
  private readonly ifname: (ifindex: number) => string | undefined;
  private lines: string[] = [];
  private matched: number[] = [];
  private current: Ruleset | null = null;
  private decided = "";
  /** A label for the next packet (replay: its record index). */
  label = "";
  private readonly onMatch = (rule: number): void => {
    this.matched.push(rule);
  };

  /** A rule matched (TraceHub forwards Ruleset.onMatch here). */
  matchedRule(rule: number): void {
    this.matched.push(rule);
  }

  constructor(filter: TraceFilter, write: (block: string) => void, ifname: (ifindex: number) => string | undefined) {
    this.filter = filter;
    this.write = write;
    this.ifname = ifname;
  }

  /** Hooks a ruleset so its matched rules are seen (call for each live ruleset, again after a reload). */
  attach(rs: Ruleset | null): void {
    if (rs !== null) rs.onMatch = this.onMatch;
  }

  detach(rs: Ruleset | null): void {
    if (rs !== null && rs.onMatch === this.onMatch) rs.onMatch = null;
  }

  table(rs: Ruleset, table: number, hook: number, verdict: number, c: RuleContext): void {
    this.current = rs;
    const matched = this.matched;
    this.matched = [];
    if (rs.entryChain(table, hook) < 0) return;
    const parts: string[] = [];
    for (let k = 0; k < matched.length; k++) {
      const i = matched[k]!;
      const o = rs.origins[i]!;
      const last = k === matched.length - 1 && rs.lastRule === i;
      if (last) {
        parts.push(`${o.chain}#${o.index}${formatRule(o.node, rs.family)}`);
        this.decided = verdict === 0 ? `${TABLES[table]} ${o.chain}#${o.index}` : this.decided;
      } else {
        parts.push(`${o.chain}#${o.index} ${targetWord(rs, i)}`);
      }
    }
    if (rs.lastRule < 0 || !matched.includes(rs.lastRule)) {
      const ch = rs.lastChain;
      parts.push(`policy ${rs.chainPolicy[ch] === 0 ? "DROP" : "ACCEPT"}`);
      if (verdict === 0) this.decided = `${TABLES[table]} ${rs.chainNames[ch]} policy`;
    }
    const state = CTINFO_STATE_NAMES[c.ctinfo] ?? String(c.ctinfo);
    this.lines.push(`    ${TABLES[table]!.padEnd(6)} ${HOOK_NAMES[hook]!.padEnd(11)} ${state.padEnd(11)} ${parts.join(" › ")}`);
  }

  done(verdict: number, c: RuleContext): void {
    const lines = this.lines;
    const decided = this.decided;
    this.lines = [];
    this.matched = [];
    this.decided = "";
    if (this.current === null && lines.length === 0) return;
    this.current = null;
    if (!this.filter.matches(c)) return;
    this.traced++;
    const head = `${this.label !== "" ? `#${this.label}  ` : ""}${describePacket(c, this.ifname)}   ${verdict === 1 ? "ACCEPT" : "DROP"}${verdict === 0 && decided !== "" ? ` by ${decided}` : ""}`;
    this.write(`${head}\n${lines.join("\n")}\n`);
  }
}

function targetWord(rs: Ruleset, i: number): string {
  const t = rs.target[i]!;
  if (t === T.JUMP || t === T.GOTO) return `${t === T.JUMP ? "-j" : "-g"} ${rs.chainNames[rs.targetArg[i]!]}`;
  if (t === T.NONE) return "(counted)";
  return `-j ${TARGET_WORDS[t] ?? "?"}`;
}

/** `tcp 10.0.1.2:40000 → 203.0.113.2:81 [S]  in lan0 → out wan0` */
export function describePacket(c: RuleContext, ifname: (ifindex: number) => string | undefined): string {
  const p = c.pkt;
  const b = p.buf;
  const v4 = p.family === AF.INET;
  const addr = (o: number): string => {
    if (v4) return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
    const g: string[] = [];
    for (let k = 0; k < 16; k += 2) g.push(((b[o + k]! << 8) | b[o + k + 1]!).toString(16));
    return g.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:::+/, "::");
  };
  const src = addr(v4 ? p.off + 12 : p.off + 8);
  const dst = addr(v4 ? p.off + 16 : p.off + 24);
  const proto = PROTO_NAMES[p.proto] ?? `proto ${p.proto}`;
  const l4 = c.parseStatus === 0 ? p.l4Offset : -1;
  const port = (o: number): number => (b[o]! << 8) | b[o + 1]!;
  const host = (a: string): string => (v4 ? a : `[${a}]`);
  let s: string;
  if (l4 >= 0 && (p.proto === 6 || p.proto === 17 || p.proto === 132 || p.proto === 136)) {
    s = `${proto} ${host(src)}:${port(l4)} → ${host(dst)}:${port(l4 + 2)}`;
    if (p.proto === 6) {
      const f = b[l4 + 13]!;
      let letters = "";
      for (let k = 0; k < 8; k++) if ((f & (1 << k)) !== 0) letters += TCP_FLAG_LETTERS[k];
      s += ` [${letters === "" ? "." : letters}]`;
    }
  } else if (l4 >= 0 && (p.proto === 1 || p.proto === 58)) {
    s = `${proto} ${src} → ${dst} type ${b[l4]} code ${b[l4 + 1]}`;
  } else {
    s = `${proto} ${src} → ${dst}${c.parseStatus !== 0 ? " (fragment)" : ""}`;
  }
  const inName = c.inIfindex !== 0 ? ifname(c.inIfindex) ?? `if${c.inIfindex}` : "";
  const outName = c.outIfindex !== 0 ? ifname(c.outIfindex) ?? `if${c.outIfindex}` : "";
  if (inName !== "" || outName !== "") s += `  ${inName !== "" ? `in ${inName}` : ""}${inName !== "" && outName !== "" ? " → " : ""}${outName !== "" ? `out ${outName}` : ""}`;
  return s;
}

/**
 * Several live traces at once (one per `sluice trace` client): the
 * pipeline and the rulesets see one tracer, which fans out.
 */
export class TraceHub implements PipelineTracer {
  readonly tracers = new Set<Tracer>();
  readonly onMatch = (rule: number): void => {
    for (const t of this.tracers) t.matchedRule(rule);
  };

  table(rs: Ruleset, table: number, hook: number, verdict: number, c: RuleContext): void {
    for (const t of this.tracers) t.table(rs, table, hook, verdict, c);
  }

  done(verdict: number, c: RuleContext): void {
    for (const t of this.tracers) t.done(verdict, c);
  }
}
