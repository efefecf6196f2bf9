/**
 * A compiled ruleset of one family: every table's chains as flat arrays,
 * evaluated the way ipt_do_table / ip6t_do_table walk them.
 *
 * ```
 *  AST (parse.ts) ──compileRuleset──▶ rule i:  base match   proto, src/dst words + masks, in/out pattern ids, flags
 *                                              matches      matchStart[i] .. +matchCount[i] → (kind, off) in MatchPool
 *                                              target       target[i] (T.*), targetArg[i] (chain index or data offset)
 *                                              counters     packets[i], bytes[i]
 *                                     chain c: chainStart[c] .. chainEnd[c], policy, policy counters
 *                                     (table, hook) → entry chain
 * ```
 *
 * Evaluation: rules in order; a matching rule counts the packet, then its
 * target: a verdict (ACCEPT, DROP; REJECT drops after its effect), RETURN
 * (pop), a jump (push the next rule), a goto (no push), or a non-terminal
 * target (LOG, MARK, CONNMARK, CT, ...) that acts and continues, as
 * XT_CONTINUE does. Falling off a user chain returns; off a built-in chain
 * applies (and counts) its policy. The return stack is capped at 1024 like
 * Linux's jump stack (XT_MAX_TABLE_SIZE / xt_jumpstack); loops are refused
 * at compile time, so the cap is never reached by a valid ruleset.
 *
 * Nothing here allocates per packet; targets with effects outside the
 * packet (LOG, NFLOG, REJECT) call the `RuleEffects` the engine provides.
 */
import { CTINFO, HELPER_NAMES, STATUS } from "../conntrack/constants.js";
import type { AddressNode, ChainNode, IfaceNode, MatchNode, OptionNode, RuleNode, RulesetNode, TargetNode } from "./ast.js";
import { BUILTIN_CHAINS, HOOK_BIT, MATCHES, TABLES, TARGETS, type ExtensionSpec, type TableName } from "./extensions.js";
import { type RuleContext } from "./context.js";
import { MatchPool, RuleError, type MatchEnv } from "./match-api.js";
import { compileMatch, evalMatch, matchNeeds } from "./matches.js";

/** Target codes. */
export const T = {
  NONE: 0,
  ACCEPT: 1,
  DROP: 2,
  RETURN: 3,
  JUMP: 4,
  GOTO: 5,
  REJECT: 6,
  LOG: 7,
  NFLOG: 8,
  NOTRACK: 9,
  CT: 10,
  MARK: 11,
  CONNMARK: 12,
  TCPMSS: 13,
  CHECKSUM: 14,
} as const;

/** Results of evaluating a hook's chain. */
export const RV = { DROP: 0, ACCEPT: 1 } as const;

/** Linux's jump stack size bound. */
export const MAX_JUMP_DEPTH = 1024;

// Base-match flags per rule.
const F_PROTO = 1 << 0;
const F_INV_PROTO = 1 << 1;
const F_SRC = 1 << 2;
const F_INV_SRC = 1 << 3;
const F_DST = 1 << 4;
const F_INV_DST = 1 << 5;
const F_IN = 1 << 6;
const F_INV_IN = 1 << 7;
const F_OUT = 1 << 8;
const F_INV_OUT = 1 << 9;
const F_FRAG = 1 << 10;
const F_INV_FRAG = 1 << 11;

/** Effects of targets that reach outside the packet; the engine implements them. */
export interface RuleEffects {
  /** LOG: `data` is the target's options object (compile-time), `rule` the rule index. */
  log(rule: number, data: unknown, c: RuleContext): void;
  /** NFLOG. */
  nflog(rule: number, data: unknown, c: RuleContext): void;
  /** REJECT: send the reply (the packet itself is then dropped). `code` is from parseRejectWith. */
  reject(rule: number, code: number, c: RuleContext): void;
  /** TCPMSS: rewrite the MSS option of a SYN in place; returns true when the packet changed. */
  tcpmss(rule: number, mss: number, clampToPmtu: boolean, c: RuleContext): boolean;
  /** CHECKSUM --checksum-fill: complete a partial L4 checksum; returns true when the packet changed. */
  checksumFill(c: RuleContext): boolean;
}

/** Compile-time knowledge about the path packets take (what the I/O path can provide). */
export interface CompileOptions {
  /** Previous ruleset's named state (recent lists, hashlimit tables) to carry over. */
  named?: Map<string, unknown>;
  /** Bits of matchNeeds() the I/O path can satisfy; a rule needing more is refused. */
  provides?: number;
  /** Why a missing `provides` bit is missing, for the message. */
  missingReason?: (bit: number) => string;
  /** Compiles a target's options (REJECT, LOG, NFLOG) into data; supplied by the engine. */
  targetData: (t: TargetNode, rule: RuleNode, env: { family: 4 | 6; table: TableName }) => { code?: number; data?: unknown };
}

/** Where a compiled rule came from (for counters, save and trace). */
export interface RuleOrigin {
  table: TableName;
  chain: string;
  /** 1-based position in its chain, as `iptables -L --line-numbers`. */
  index: number;
  node: RuleNode;
}

/** A compiled ruleset (one family). Immutable except counters, marks and match state. */
export class Ruleset {
  readonly family: 4 | 6;
  readonly file: string;
  readonly ast: RulesetNode;
  readonly pool: MatchPool;
  /** Named state of this ruleset (handed to the next one on reload). */
  readonly named: Map<string, unknown>;
  readonly ruleCount: number;
  readonly origins: RuleOrigin[];

  // Per rule.
  readonly flags: Uint16Array;
  readonly proto: Uint8Array;
  /** src, src mask, dst, dst mask: 16 words per rule (IPv4 uses word 0 of each). */
  readonly addr: Int32Array;
  readonly inPat: Int32Array;
  readonly outPat: Int32Array;
  readonly matchStart: Int32Array;
  readonly matchCount: Uint8Array;
  readonly matchKind: Int32Array;
  readonly matchOff: Int32Array;
  readonly target: Uint8Array;
  /** JUMP/GOTO: chain index; MARK/CONNMARK/TCPMSS/CT/REJECT: offset in `tdata`; LOG/NFLOG: index in `tobjects`. */
  readonly targetArg: Int32Array;
  readonly packets: Float64Array;
  readonly bytes: Float64Array;

  // Per chain.
  readonly chainNames: string[];
  readonly chainTable: TableName[];
  readonly chainStart: Int32Array;
  readonly chainEnd: Int32Array;
  /** RV.* for built-in chains, -1 for user chains. */
  readonly chainPolicy: Int8Array;
  readonly policyPackets: Float64Array;
  readonly policyBytes: Float64Array;
  /** Entry chain per table (TABLES order) and hook (0..4); -1 when the table lacks the hook or is absent. */
  readonly entry: Int32Array;

  /** Target parameters (words) and objects. */
  readonly tdata: Int32Array;
  readonly tobjects: unknown[];
  /** Interface patterns, interned. */
  readonly ifPatterns: { name: string; wildcard: boolean }[];
  /** Union of matchNeeds() over all rules. */
  readonly needs: number;

  private readonly stackChain = new Int32Array(MAX_JUMP_DEPTH);
  private readonly stackRule = new Int32Array(MAX_JUMP_DEPTH);
  private ifCache = new Map<number, Uint8Array>();
  // The last interfaces looked up, and their rows: most rules of a packet ask about the same two.
  private inIf = -1;
  private inRow: Uint8Array = new Uint8Array(0);
  private outIf = -1;
  private outRow: Uint8Array = new Uint8Array(0);
  private ifName: (ifindex: number) => string = () => "";
  /** Called with each rule that matches (sluice trace); null: off, one branch per matching rule. */
  onMatch: ((rule: number) => void) | null = null;
  /** Rule that decided the last evaluate() (-1: the policy), for trace. */
  lastRule = -1;
  /** Chain whose policy decided (when lastRule is -1). */
  lastChain = -1;

  constructor(init: RulesetInit) {
    this.family = init.ast.family;
    this.file = init.ast.file;
    this.ast = init.ast;
    this.pool = init.pool;
    this.named = init.named;
    this.origins = init.origins;
    this.ruleCount = init.origins.length;
    const n = this.ruleCount;
    this.flags = Uint16Array.from(init.flags);
    this.proto = Uint8Array.from(init.proto);
    this.addr = Int32Array.from(init.addr);
    this.inPat = Int32Array.from(init.inPat);
    this.outPat = Int32Array.from(init.outPat);
    this.matchStart = Int32Array.from(init.matchStart);
    this.matchCount = Uint8Array.from(init.matchCount);
    this.matchKind = Int32Array.from(init.matchKind);
    this.matchOff = Int32Array.from(init.matchOff);
    this.target = Uint8Array.from(init.target);
    this.targetArg = Int32Array.from(init.targetArg);
    this.packets = new Float64Array(n);
    this.bytes = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      this.packets[i] = Number(init.origins[i]!.node.packets);
      this.bytes[i] = Number(init.origins[i]!.node.bytes);
    }
    this.chainNames = init.chainNames;
    this.chainTable = init.chainTable;
    this.chainStart = Int32Array.from(init.chainStart);
    this.chainEnd = Int32Array.from(init.chainEnd);
    this.chainPolicy = Int8Array.from(init.chainPolicy);
    this.policyPackets = Float64Array.from(init.policyPackets);
    this.policyBytes = Float64Array.from(init.policyBytes);
    this.entry = Int32Array.from(init.entry);
    this.tdata = Int32Array.from(init.tdata);
    this.tobjects = init.tobjects;
    this.ifPatterns = init.ifPatterns;
    this.needs = init.needs;
  }

  /** Sets how interface indexes become names (the route mirror's); clears the pattern cache. */
  setInterfaceNames(fn: (ifindex: number) => string | undefined): void {
    this.ifName = (i) => (i === 0 ? "" : fn(i) ?? "");
    this.ifCache = new Map();
    this.inIf = this.outIf = -1;
  }

  /** The entry chain of `table` at `hook`, or -1. */
  entryChain(table: number, hook: number): number {
    return this.entry[table * 5 + hook]!;
  }

  /**
   * Runs the chain of `table` (TABLES index) at `c.hook`. Returns RV.ACCEPT
   * or RV.DROP; a table without that hook accepts.
   */
  evaluate(table: number, c: RuleContext, effects: RuleEffects): number {
    let chain = this.entry[table * 5 + c.hook]!;
    if (chain < 0) return RV.ACCEPT;
    const len = c.pkt.length;
    let depth = 0;
    let i = this.chainStart[chain]!;
    for (;;) {
      if (i >= this.chainEnd[chain]!) {
        // Off the end of the chain: return, or the built-in chain's policy.
        if (depth > 0) {
          depth--;
          chain = this.stackChain[depth]!;
          i = this.stackRule[depth]!;
          continue;
        }
        return this.policy(chain, len);
      }
      if (!this.matches(i, c)) {
        i++;
        continue;
      }
      this.packets[i]++;
      this.bytes[i] += len;
      if (this.onMatch !== null) this.onMatch(i);
      switch (this.target[i]) {
        case T.NONE:
          i++;
          continue;
        case T.ACCEPT:
          this.lastRule = i;
          return RV.ACCEPT;
        case T.DROP:
          this.lastRule = i;
          return RV.DROP;
        case T.RETURN:
          if (depth > 0) {
            depth--;
            chain = this.stackChain[depth]!;
            i = this.stackRule[depth]!;
            continue;
          }
          // RETURN in a built-in chain: its policy (ipt_do_table: back to the underflow rule).
          return this.policy(chain, len);
        case T.JUMP:
          if (depth === MAX_JUMP_DEPTH) {
            this.lastRule = i;
            return RV.DROP; // Linux: "iptables: jump stack overflow" and NF_DROP
          }
          this.stackChain[depth] = chain;
          this.stackRule[depth] = i + 1;
          depth++;
          chain = this.targetArg[i]!;
          i = this.chainStart[chain]!;
          continue;
        case T.GOTO:
          chain = this.targetArg[i]!;
          i = this.chainStart[chain]!;
          continue;
        case T.REJECT:
          effects.reject(i, this.tdata[this.targetArg[i]!]!, c);
          this.lastRule = i;
          return RV.DROP;
        default:
          this.act(i, c, effects);
          i++;
          continue;
      }
    }
  }

  private policy(chain: number, len: number): number {
    this.policyPackets[chain]++;
    this.policyBytes[chain] += len;
    this.lastRule = -1;
    this.lastChain = chain;
    return this.chainPolicy[chain] === RV.DROP ? RV.DROP : RV.ACCEPT;
  }

  /** Non-terminal targets (XT_CONTINUE). */
  private act(i: number, c: RuleContext, effects: RuleEffects): void {
    const a = this.targetArg[i]!;
    const d = this.tdata;
    switch (this.target[i]) {
      case T.LOG:
        effects.log(i, this.tobjects[a], c);
        break;
      case T.NFLOG:
        effects.nflog(i, this.tobjects[a], c);
        break;
      case T.NOTRACK:
        c.ctinfo = CTINFO.UNTRACKED;
        c.notrack = true;
        break;
      case T.CT:
        // CT --helper: recorded for the connection the packet creates (the FTP helper consumes it).
        c.helper = d[a]!;
        break;
      case T.MARK:
        // xt_mark: mark = (mark & ~mask) ^ value
        c.mark = ((c.mark & ~d[a + 1]!) ^ d[a]!) >>> 0;
        break;
      case T.CONNMARK:
        this.connmark(a, c);
        break;
      case T.TCPMSS:
        if (effects.tcpmss(i, d[a]!, d[a + 1]! !== 0, c)) c.modified = true;
        break;
      case T.CHECKSUM:
        if (effects.checksumFill(c)) c.modified = true;
        break;
    }
  }

  /** xt_CONNMARK: set (ctmark = (ctmark & ~ctmask) ^ value), save, restore. */
  private connmark(a: number, c: RuleContext): void {
    const e = c.ct.entry;
    if (e < 0 || c.ctinfo === CTINFO.UNTRACKED || c.ctinfo === CTINFO.INVALID) return;
    const d = this.tdata;
    const mode = d[a]!, value = d[a + 1]!, ctmask = d[a + 2]!, nfmask = d[a + 3]!;
    const tb = c.ct.table;
    const ctmark = tb.mark(e);
    switch (mode) {
      case CONNMARK_SET: {
        const next = ((ctmark & ~ctmask) ^ value) >>> 0;
        if (next !== ctmark) tb.setMark(e, next);
        break;
      }
      case CONNMARK_SAVE: {
        const next = ((ctmark & ~ctmask) ^ (c.mark & nfmask)) >>> 0;
        if (next !== ctmark) tb.setMark(e, next);
        break;
      }
      case CONNMARK_RESTORE:
        c.mark = ((c.mark & ~nfmask) ^ (ctmark & ctmask)) >>> 0;
        break;
    }
  }

  /** Base match (ip_packet_match / ip6_packet_match) and every extension match of rule i. */
  matches(i: number, c: RuleContext): boolean {
    const f = this.flags[i]!;
    if (f !== 0) {
      const p = c.pkt;
      if ((f & F_PROTO) !== 0) {
        const hit = p.proto === this.proto[i];
        if (hit === ((f & F_INV_PROTO) !== 0)) return false;
      }
      if ((f & (F_SRC | F_DST)) !== 0) {
        const b = p.buf;
        const a = this.addr, w = i * 16;
        if (this.family === 4) {
          if ((f & F_SRC) !== 0 && (((readI32(b, p.off + 12) ^ a[w]!) & a[w + 4]!) === 0) === ((f & F_INV_SRC) !== 0)) return false;
          if ((f & F_DST) !== 0 && (((readI32(b, p.off + 16) ^ a[w + 8]!) & a[w + 12]!) === 0) === ((f & F_INV_DST) !== 0)) return false;
        } else {
          if ((f & F_SRC) !== 0 && masked6(b, p.off + 8, a, w) === ((f & F_INV_SRC) !== 0)) return false;
          if ((f & F_DST) !== 0 && masked6(b, p.off + 24, a, w + 8) === ((f & F_INV_DST) !== 0)) return false;
        }
      }
      if ((f & F_IN) !== 0) {
        if (c.inIfindex !== this.inIf) {
          this.inIf = c.inIfindex;
          this.inRow = this.ifRow(c.inIfindex);
        }
        if ((this.inRow[this.inPat[i]!] === 1) === ((f & F_INV_IN) !== 0)) return false;
      }
      if ((f & F_OUT) !== 0) {
        if (c.outIfindex !== this.outIf) {
          this.outIf = c.outIfindex;
          this.outRow = this.ifRow(c.outIfindex);
        }
        if ((this.outRow[this.outPat[i]!] === 1) === ((f & F_INV_OUT) !== 0)) return false;
      }
      if ((f & F_FRAG) !== 0) {
        // -f: non-first fragments (IPv4 only).
        const nonFirst = c.pkt.ip4.fragmentOffset !== 0;
        if (nonFirst === ((f & F_INV_FRAG) !== 0)) return false;
      }
    }
    const n = this.matchCount[i]!;
    if (n === 0) return true;
    const s = this.matchStart[i]!;
    for (let k = 0; k < n; k++) {
      if (!evalMatch(this.matchKind[s + k]!, this.matchOff[s + k]!, this.pool, c)) return false;
    }
    return true;
  }

  /** Which interface patterns an interface index matches (0: no interface, the empty name): one byte per pattern. */
  private ifRow(ifindex: number): Uint8Array {
    let row = this.ifCache.get(ifindex);
    if (row === undefined) {
      // Once per interface (and after each setInterfaceNames): one byte per pattern.
      const name = this.ifName(ifindex);
      row = new Uint8Array(this.ifPatterns.length);
      for (let k = 0; k < this.ifPatterns.length; k++) {
        const q = this.ifPatterns[k]!;
        row[k] = (q.wildcard ? name.startsWith(q.name) : name === q.name) ? 1 : 0;
      }
      this.ifCache.set(ifindex, row);
    }
    return row;
  }
}

function readI32(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

/** (addr ^ want) & mask == 0 over four words at `o` (want at a[w..w+3], mask at a[w+4..w+7]). */
function masked6(b: Uint8Array, o: number, a: Int32Array, w: number): boolean {
  return (
    ((readI32(b, o) ^ a[w]!) & a[w + 4]!) === 0 &&
    ((readI32(b, o + 4) ^ a[w + 1]!) & a[w + 5]!) === 0 &&
    ((readI32(b, o + 8) ^ a[w + 2]!) & a[w + 6]!) === 0 &&
    ((readI32(b, o + 12) ^ a[w + 3]!) & a[w + 7]!) === 0
  );
}

const CONNMARK_SET = 0;
const CONNMARK_SAVE = 1;
const CONNMARK_RESTORE = 2;

/** A map that reads through to the previous ruleset's entries and holds only what is set in this one. */
class CarryOverMap extends Map<string, unknown> {
  constructor(private readonly previous: ReadonlyMap<string, unknown>) {
    super();
  }
  override get(key: string): unknown {
    return super.has(key) ? super.get(key) : this.previous.get(key);
  }
}

/** Helper ids for CT --helper (conntrack/constants.ts HELPER_NAMES). */
export const HELPERS = HELPER_NAMES;

// ─── Compilation ─────────────────────────────────────────────────────────────

interface RulesetInit {
  ast: RulesetNode;
  pool: MatchPool;
  named: Map<string, unknown>;
  origins: RuleOrigin[];
  flags: number[];
  proto: number[];
  addr: number[];
  inPat: number[];
  outPat: number[];
  matchStart: number[];
  matchCount: number[];
  matchKind: number[];
  matchOff: number[];
  target: number[];
  targetArg: number[];
  chainNames: string[];
  chainTable: TableName[];
  chainStart: number[];
  chainEnd: number[];
  chainPolicy: number[];
  policyPackets: number[];
  policyBytes: number[];
  entry: number[];
  tdata: number[];
  tobjects: unknown[];
  ifPatterns: { name: string; wildcard: boolean }[];
  needs: number;
}

const HOOK_INDEX: Record<string, number> = { PREROUTING: 0, INPUT: 1, FORWARD: 2, OUTPUT: 3, POSTROUTING: 4 };
const HOOK_NAMES_BY_BIT = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

function hookList(bits: number): string {
  return HOOK_NAMES_BY_BIT.filter((_, k) => (bits & (1 << k)) !== 0).join(", ") || "none";
}

/** Parses a 32-bit value as iptables does (decimal, 0x hex, or octal with a leading 0). */
export function parseU32(text: string): number | null {
  const t = text.trim();
  let v: number;
  if (/^0x[0-9a-f]+$/i.test(t)) v = parseInt(t.slice(2), 16);
  else if (/^0[0-7]*$/.test(t)) v = parseInt(t, 8);
  else if (/^[1-9]\d*$/.test(t)) v = parseInt(t, 10);
  else return null;
  return v <= 0xffffffff ? v : null;
}

/** `value[/mask]` (mask defaults to 0xffffffff). */
function parseMarkMask(o: OptionNode): [number, number] {
  const [v, m] = o.args[0]!.split("/");
  const value = parseU32(v ?? "");
  const mask = m === undefined ? 0xffffffff : parseU32(m);
  if (value === null || mask === null) throw new RuleError(o.pos, `${o.written}: "${o.args[0]}" is not a value[/mask] of 32-bit numbers`);
  return [value, mask];
}

/**
 * Compiles a parsed ruleset. Refuses (RuleError at the offending token)
 * what Linux would refuse at load (loops, targets outside their table or
 * hooks) and what sluice does not implement.
 */
export function compileRuleset(ast: RulesetNode, opts: CompileOptions): Ruleset {
  const family = ast.family;
  const pool = new MatchPool();
  // Named state (recent lists, hashlimit tables) is looked up in the previous
  // ruleset but only what this ruleset's rules ask for is kept: a list no rule
  // uses any more goes, as Linux frees it with its last rule.
  const named = new CarryOverMap(opts.named ?? new Map());
  const init: RulesetInit = {
    ast, pool, named, origins: [], flags: [], proto: [], addr: [], inPat: [], outPat: [],
    matchStart: [], matchCount: [], matchKind: [], matchOff: [], target: [], targetArg: [],
    chainNames: [], chainTable: [], chainStart: [], chainEnd: [], chainPolicy: [], policyPackets: [], policyBytes: [],
    entry: new Array<number>(TABLES.length * 5).fill(-1), tdata: [], tobjects: [], ifPatterns: [], needs: 0,
  };
  const patIndex = new Map<string, number>();
  const intern = (n: IfaceNode): number => {
    const key = `${n.name}${n.wildcard ? "+" : ""}`;
    let k = patIndex.get(key);
    if (k === undefined) {
      k = init.ifPatterns.length;
      init.ifPatterns.push({ name: n.name, wildcard: n.wildcard });
      patIndex.set(key, k);
    }
    return k;
  };

  for (const table of ast.tables) {
    const t = TABLES.indexOf(table.name);
    // Chain indexes of this table.
    const base = init.chainNames.length;
    const index = new Map<string, number>();
    table.chains.forEach((ch, k) => {
      index.set(ch.name, base + k);
      init.chainNames.push(ch.name);
      init.chainTable.push(table.name);
      init.chainPolicy.push(ch.builtin ? (ch.policy === "DROP" ? RV.DROP : RV.ACCEPT) : -1);
      init.policyPackets.push(Number(ch.packets));
      init.policyBytes.push(Number(ch.bytes));
      init.chainStart.push(0);
      init.chainEnd.push(0);
    });
    for (const ch of table.chains) {
      const hook = BUILTIN_CHAINS[table.name][ch.name];
      if (ch.builtin && hook !== undefined) init.entry[t * 5 + Math.log2(hook)] = index.get(ch.name)!;
    }
    const hooksOf = reachableHooks(table.name, table.chains, index, base);
    checkLoops(table.chains, index, base);

    for (const ch of table.chains) {
      const c = index.get(ch.name)!;
      init.chainStart[c] = init.origins.length;
      ch.rules.forEach((rule, k) => {
        compileRule(rule, k + 1, ch, table.name, hooksOf[c - base]!, index, family, opts, pool, named, init, intern);
      });
      init.chainEnd[c] = init.origins.length;
    }
  }
  return new Ruleset(init);
}

/** Which hooks reach each chain of a table (built-in chains' own hooks, through jumps and gotos). */
function reachableHooks(table: TableName, chains: ChainNode[], index: Map<string, number>, base: number): number[] {
  const hooks = chains.map((ch) => (ch.builtin ? (BUILTIN_CHAINS[table][ch.name] ?? 0) : 0));
  for (let changed = true, rounds = 0; changed && rounds <= chains.length; rounds++) {
    changed = false;
    chains.forEach((ch, k) => {
      for (const r of ch.rules) {
        if (r.target === null || !r.target.chain) continue;
        const to = index.get(r.target.name)! - base;
        const next = hooks[to]! | hooks[k]!;
        if (next !== hooks[to]) {
          hooks[to] = next;
          changed = true;
        }
      }
    });
  }
  return hooks;
}

/** Refuses jump/goto loops (Linux: mark_source_chains → ELOOP), naming the jump that closes one. */
function checkLoops(chains: ChainNode[], index: Map<string, number>, base: number): void {
  const state = new Uint8Array(chains.length); // 0 new, 1 on the path, 2 done
  const path: string[] = [];
  const visit = (k: number): void => {
    state[k] = 1;
    path.push(chains[k]!.name);
    for (const r of chains[k]!.rules) {
      if (r.target === null || !r.target.chain) continue;
      const to = index.get(r.target.name)! - base;
      if (state[to] === 1) {
        const from = path.indexOf(chains[to]!.name);
        throw new RuleError(r.target.pos, `loop: ${[...path.slice(from), chains[to]!.name].join(" -> ")} (iptables-restore refuses it: "Too many levels of symbolic links")`);
      }
      if (state[to] === 0) visit(to);
    }
    path.pop();
    state[k] = 2;
  };
  for (let k = 0; k < chains.length; k++) if (state[k] === 0) visit(k);
}

function checkExtension(e: ExtensionSpec, kind: "match" | "target", node: { pos: RuleNode["pos"] }, family: 4 | 6, table: TableName, chain: string, hooks: number): void {
  if (e.support.state !== "yes") throw new RuleError(node.pos, `${kind} ${e.name}: ${e.support.reason}`);
  if (e.family !== 0 && e.family !== family) throw new RuleError(node.pos, `${kind} ${e.name} is IPv${e.family} only`);
  if (e.table !== undefined && e.table !== table) throw new RuleError(node.pos, `${kind} ${e.name} is only valid in the ${e.table} table, not ${table}`);
  if ((hooks & ~e.hooks) !== 0) {
    throw new RuleError(node.pos, `${kind} ${e.name} in chain ${chain} is reached from ${hookList(hooks)}, but is only usable from ${hookList(e.hooks)}`);
  }
}

function compileRule(
  rule: RuleNode,
  position: number,
  ch: ChainNode,
  table: TableName,
  hooks: number,
  index: Map<string, number>,
  family: 4 | 6,
  opts: CompileOptions,
  pool: MatchPool,
  named: Map<string, unknown>,
  init: RulesetInit,
  intern: (n: IfaceNode) => number,
): void {
  let flags = 0;
  const words = new Array<number>(16).fill(0);
  if (rule.proto !== null && rule.proto.value !== 0) {
    flags |= F_PROTO | (rule.proto.negated ? F_INV_PROTO : 0);
  } else if (rule.proto !== null && rule.proto.negated) {
    // `! -p all` matches nothing; keep it as a never-matching proto test.
    flags |= F_PROTO | F_INV_PROTO;
  }
  const putAddr = (a: AddressNode, at: number): void => {
    for (let k = 0; k < 4; k++) {
      words[at + k] = a.words[k]! | 0;
      words[at + 4 + k] = a.mask[k]! | 0;
    }
  };
  if (rule.src !== null) {
    flags |= F_SRC | (rule.src.negated ? F_INV_SRC : 0);
    putAddr(rule.src, 0);
  }
  if (rule.dst !== null) {
    flags |= F_DST | (rule.dst.negated ? F_INV_DST : 0);
    putAddr(rule.dst, 8);
  }
  let inPat = -1, outPat = -1;
  if (rule.inIface !== null) {
    if ((hooks & (HOOK_BIT.OUTPUT | HOOK_BIT.POSTROUTING)) !== 0) {
      throw new RuleError(rule.inIface.pos, `-i in chain ${ch.name}: no input interface at ${hookList(hooks & (HOOK_BIT.OUTPUT | HOOK_BIT.POSTROUTING))} (iptables: "Can't use -i with OUTPUT")`);
    }
    flags |= F_IN | (rule.inIface.negated ? F_INV_IN : 0);
    inPat = intern(rule.inIface);
  }
  if (rule.outIface !== null) {
    if ((hooks & (HOOK_BIT.PREROUTING | HOOK_BIT.INPUT)) !== 0) {
      throw new RuleError(rule.outIface.pos, `-o in chain ${ch.name}: no output interface at ${hookList(hooks & (HOOK_BIT.PREROUTING | HOOK_BIT.INPUT))} (iptables: "Can't use -o with PREROUTING")`);
    }
    flags |= F_OUT | (rule.outIface.negated ? F_INV_OUT : 0);
    outPat = intern(rule.outIface);
  }
  if (rule.fragment !== null) flags |= F_FRAG | (rule.fragment.negated ? F_INV_FRAG : 0);

  // Matches.
  const env: MatchEnv = {
    family, table, chain: ch.name, proto: rule.proto?.value ?? 0, protoNegated: rule.proto?.negated ?? false, pool, named,
  };
  const start = init.matchKind.length;
  for (const m of rule.matches) {
    const spec = MATCHES[m.name];
    if (spec === undefined) throw new RuleError(m.pos, `unknown match "${m.name}"`);
    checkExtension(spec, "match", m, family, table, ch.name, hooks);
    const needs = matchNeeds(m);
    const missing = needs & ~(opts.provides ?? 0);
    if (missing !== 0) throw new RuleError(m.pos, `match ${m.name}: ${opts.missingReason?.(missing) ?? "the packet source does not provide what it needs"}`);
    init.needs |= needs;
    const cm = compileMatch(m, env);
    // -m comment always matches: checked and kept in the AST (save, trace), never evaluated.
    if (m.name === "comment") continue;
    init.matchKind.push(cm.kind);
    init.matchOff.push(cm.off);
  }
  const matchCount = init.matchKind.length - start;
  if (matchCount > 255) throw new RuleError(rule.pos, "more than 255 matches in one rule");

  // Target.
  let target: number = T.NONE;
  let arg = 0;
  const tg = rule.target;
  if (tg !== null) {
    if (tg.chain) {
      target = tg.kind === "goto" ? T.GOTO : T.JUMP;
      arg = index.get(tg.name)!;
    } else {
      const spec = TARGETS[tg.name];
      if (spec === undefined) throw new RuleError(tg.pos, `unknown target "${tg.name}"`);
      checkExtension(spec, "target", tg, family, table, ch.name, hooks);
      if (tg.kind === "goto") throw new RuleError(tg.pos, `-g needs a user chain, not ${tg.name}`);
      ({ target, arg } = compileTarget(tg, rule, family, table, init, opts));
    }
  }

  init.origins.push({ table, chain: ch.name, index: position, node: rule });
  init.flags.push(flags);
  init.proto.push(rule.proto?.value ?? 0);
  init.addr.push(...words);
  init.inPat.push(inPat);
  init.outPat.push(outPat);
  init.matchStart.push(start);
  init.matchCount.push(matchCount);
  init.target.push(target);
  init.targetArg.push(arg);
}

function onlyOptions(tg: TargetNode, allowed: string[]): void {
  for (const o of tg.options) if (!allowed.includes(o.name)) throw new RuleError(o.pos, `${tg.name}: option ${o.written} is not supported by sluice`);
}

function compileTarget(tg: TargetNode, rule: RuleNode, family: 4 | 6, table: TableName, init: RulesetInit, opts: CompileOptions): { target: number; arg: number } {
  const d = init.tdata;
  const at = d.length;
  const opt = (name: string): OptionNode | undefined => tg.options.find((o) => o.name === name);
  switch (tg.name) {
    case "ACCEPT":
      return { target: T.ACCEPT, arg: 0 };
    case "DROP":
      return { target: T.DROP, arg: 0 };
    case "RETURN":
      return { target: T.RETURN, arg: 0 };
    case "REJECT": {
      const r = opts.targetData(tg, rule, { family, table });
      d.push(r.code ?? 0);
      return { target: T.REJECT, arg: at };
    }
    case "LOG":
    case "NFLOG": {
      const r = opts.targetData(tg, rule, { family, table });
      init.tobjects.push(r.data);
      return { target: tg.name === "LOG" ? T.LOG : T.NFLOG, arg: init.tobjects.length - 1 };
    }
    case "NOTRACK":
      return { target: T.NOTRACK, arg: 0 };
    case "CT": {
      onlyOptions(tg, ["--notrack", "--helper"]);
      const notrack = opt("--notrack");
      const helper = opt("--helper");
      if (notrack !== undefined && helper !== undefined) throw new RuleError(helper.pos, "CT: --notrack and --helper cannot be combined");
      if (notrack !== undefined) return { target: T.NOTRACK, arg: 0 };
      if (helper === undefined) throw new RuleError(tg.pos, "CT: sluice supports --notrack and --helper (ctevents, zones and timeout policies are not modelled)");
      const id = HELPERS.indexOf(helper.args[0]!.toLowerCase() as (typeof HELPERS)[number]);
      if (id <= 0) throw new RuleError(helper.pos, `CT --helper: unknown helper "${helper.args[0]}" (sluice has: ftp)`);
      d.push(id);
      return { target: T.CT, arg: at };
    }
    case "MARK": {
      const o = tg.options;
      if (o.length !== 1) throw new RuleError(tg.pos, "MARK: exactly one of --set-mark, --set-xmark, --and-mark, --or-mark, --xor-mark");
      const x = o[0]!;
      let value: number, mask: number;
      switch (x.name) {
        case "--set-xmark":
          [value, mask] = parseMarkMask(x);
          break;
        case "--set-mark": {
          // libxt_MARK: --set-mark v/m is mark = (mark & ~(m | v)) ^ v, i.e. clear m, set v.
          const [v, m] = parseMarkMask(x);
          value = v;
          mask = (m | v) >>> 0;
          break;
        }
        case "--and-mark": {
          const v = parseU32(x.args[0]!);
          if (v === null) throw new RuleError(x.pos, `${x.written}: "${x.args[0]}" is not a 32-bit number`);
          value = 0;
          mask = ~v >>> 0;
          break;
        }
        case "--or-mark": {
          const v = parseU32(x.args[0]!);
          if (v === null) throw new RuleError(x.pos, `${x.written}: "${x.args[0]}" is not a 32-bit number`);
          value = v;
          mask = v;
          break;
        }
        default: {
          const v = parseU32(x.args[0]!);
          if (v === null) throw new RuleError(x.pos, `${x.written}: "${x.args[0]}" is not a 32-bit number`);
          value = v;
          mask = 0;
        }
      }
      d.push(value | 0, mask | 0);
      return { target: T.MARK, arg: at };
    }
    case "CONNMARK":
      return { target: T.CONNMARK, arg: compileConnmark(tg, d) };
    case "TCPMSS": {
      const set = opt("--set-mss");
      const clamp = opt("--clamp-mss-to-pmtu");
      if ((set === undefined) === (clamp === undefined)) throw new RuleError(tg.pos, "TCPMSS: exactly one of --set-mss or --clamp-mss-to-pmtu");
      if (rule.proto === null || rule.proto.value !== 6 || rule.proto.negated) throw new RuleError(tg.pos, "TCPMSS: only valid for -p tcp (iptables: \"Only works on TCP SYN packets\")");
      let mss = 0;
      if (set !== undefined) {
        mss = Number(set.args[0]);
        if (!/^\d+$/.test(set.args[0]!) || mss < 1 || mss > 65535) throw new RuleError(set.pos, `--set-mss: "${set.args[0]}" is not 1..65535`);
      }
      d.push(mss, clamp !== undefined ? 1 : 0);
      return { target: T.TCPMSS, arg: at };
    }
    case "CHECKSUM":
      if (opt("--checksum-fill") === undefined) throw new RuleError(tg.pos, "CHECKSUM: --checksum-fill is required");
      return { target: T.CHECKSUM, arg: 0 };
    default:
      throw new RuleError(tg.pos, `target ${tg.name} is not supported by sluice`);
  }
}

/** CONNMARK: --set-xmark/--set-mark [--ctmask], --save-mark/--restore-mark [--nfmask --ctmask | --mask], --and/--or/--xor-mark. */
function compileConnmark(tg: TargetNode, d: number[]): number {
  const at = d.length;
  const get = (n: string): OptionNode | undefined => tg.options.find((o) => o.name === n);
  const u32 = (o: OptionNode): number => {
    const v = parseU32(o.args[0]!);
    if (v === null) throw new RuleError(o.pos, `${o.written}: "${o.args[0]}" is not a 32-bit number`);
    return v;
  };
  const modes = ["--set-mark", "--set-xmark", "--save-mark", "--restore-mark", "--and-mark", "--or-mark", "--xor-mark"].filter((n) => get(n) !== undefined);
  if (modes.length !== 1) throw new RuleError(tg.pos, "CONNMARK: exactly one of --set-mark, --set-xmark, --save-mark, --restore-mark, --and-mark, --or-mark, --xor-mark");
  const mode = modes[0]!;
  const o = get(mode)!;
  const mask = get("--mask");
  const ctmask = get("--ctmask") !== undefined ? u32(get("--ctmask")!) : mask !== undefined ? u32(mask) : 0xffffffff;
  const nfmask = get("--nfmask") !== undefined ? u32(get("--nfmask")!) : mask !== undefined ? u32(mask) : 0xffffffff;
  switch (mode) {
    case "--set-xmark": {
      const [v, m] = parseMarkMask(o);
      d.push(CONNMARK_SET, v | 0, m | 0, 0);
      return at;
    }
    case "--set-mark": {
      const [v, m] = parseMarkMask(o);
      d.push(CONNMARK_SET, v | 0, (m | v) | 0, 0);
      return at;
    }
    case "--and-mark":
      d.push(CONNMARK_SET, 0, ~u32(o) | 0, 0);
      return at;
    case "--or-mark": {
      const v = u32(o);
      d.push(CONNMARK_SET, v | 0, v | 0, 0);
      return at;
    }
    case "--xor-mark":
      d.push(CONNMARK_SET, u32(o) | 0, 0, 0);
      return at;
    case "--save-mark":
      d.push(CONNMARK_SAVE, 0, ctmask | 0, nfmask | 0);
      return at;
    default:
      d.push(CONNMARK_RESTORE, 0, ctmask | 0, nfmask | 0);
      return at;
  }
}

/** Names of STATUS bits used by this module's trace output. */
export const TRACE_STATUS = STATUS;
export { HOOK_INDEX };
export type { MatchNode };
