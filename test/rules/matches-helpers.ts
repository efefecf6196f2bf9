/**
 * Test rig for the match tests: builds MatchNode objects from a tiny
 * rule-like text (`-p tcp -m tcp ! --dport 22`), compiles them into a
 * MatchPool and evaluates them against real packets parsed by `Packet`
 * and tracked by a real `Conntrack`, with a manual clock. It does not
 * use the rules parser (written separately): options are split by the
 * arities in extensions.ts, aliases resolved with `findOption`, and each
 * token's column is its position in the text (file "t.rules", line 1).
 */
import { resolveConntrackConfig } from "../../src/conntrack/config.js";
import { CTINFO } from "../../src/conntrack/constants.js";
import { Conntrack } from "../../src/conntrack/tracker.js";
import { Packet } from "../../src/packet/packet.js";
import type { MatchNode, OptionNode, SourcePos } from "../../src/rules/ast.js";
import { HOOK, RuleContext } from "../../src/rules/context.js";
import { MATCHES, MATCH_ALIASES, findOption, type TableName } from "../../src/rules/extensions.js";
import { MatchPool, type CompiledMatch, type MatchEnv } from "../../src/rules/match-api.js";
import { compileMatch, evalMatch } from "../../src/rules/matches.js";
import { lookupProtocol } from "../../src/rules/names.js";

export const FILE = "t.rules";

interface Tok {
  text: string;
  col: number;
}

/** Splits on blanks; '...' and "..." quote (no escapes). */
function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === " ") i++;
    if (i >= s.length) break;
    const col = i + 1;
    let t = "";
    while (i < s.length && s[i] !== " ") {
      const q = s[i];
      if (q === "'" || q === '"') {
        const j = s.indexOf(q, i + 1);
        t += s.slice(i + 1, j);
        i = j + 1;
      } else {
        t += s[i++];
      }
    }
    out.push({ text: t, col });
  }
  return out;
}

const pos = (col: number): SourcePos => ({ file: FILE, line: 1, col });

/** A rule fragment: the `-p` it has (for MatchEnv) and its matches. */
export interface Parsed {
  proto: number;
  protoNegated: boolean;
  matches: MatchNode[];
}

/** Parses `[! -p P] -m NAME [!] --opt args ... [-m NAME ...]`; `-p tcp --dport 22` gives an implicit tcp match. */
export function parseFragment(text: string): Parsed {
  const toks = tokenize(text);
  const res: Parsed = { proto: 0, protoNegated: false, matches: [] };
  let cur: MatchNode | null = null;
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    let neg = false;
    let tok = t;
    if (tok.text === "!") {
      neg = true;
      tok = toks[++k]!;
    }
    if (tok.text === "-p") {
      const p = toks[++k]!;
      res.proto = lookupProtocol(p.text) ?? Number(p.text);
      res.protoNegated = neg;
      continue;
    }
    if (tok.text === "-m") {
      const n = toks[++k]!;
      const name = MATCH_ALIASES[n.text] ?? n.text;
      cur = { name, implicit: false, options: [], pos: pos(t.col) };
      res.matches.push(cur);
      continue;
    }
    if (cur === null) {
      // An option before any -m: the protocol's implicit match.
      const pname = { 6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6", 132: "sctp" }[res.proto];
      if (pname === undefined) throw new Error(`option ${tok.text} without a match`);
      cur = { name: pname, implicit: true, options: [], pos: pos(tok.col) };
      res.matches.push(cur);
    }
    const spec = MATCHES[cur.name];
    const main = spec !== undefined ? findOption(spec, tok.text) : undefined;
    const nargs = main !== undefined ? spec!.options[main]!.args : 1;
    const args: string[] = [];
    for (let j = 0; j < nargs; j++) args.push(toks[++k]!.text);
    const o: OptionNode = { name: main ?? tok.text, written: tok.text, negated: neg, args, pos: pos(t.col) };
    cur.options.push(o);
  }
  return res;
}

/** One match node from text (the first match of the fragment). */
export function mnode(text: string): MatchNode {
  return parseFragment(text).matches[0]!;
}

/** Pool, env, context, tracker and clock. */
export class Rig {
  readonly pool = new MatchPool();
  named = new Map<string, unknown>();
  readonly ct = new Conntrack(resolveConntrackConfig({ max: 256 }));
  readonly c = new RuleContext();
  readonly pkt = new Packet();
  family: 4 | 6;
  table: TableName = "filter";
  chain = "INPUT";

  constructor(family: 4 | 6 = 4) {
    this.family = family;
    this.c.pkt = this.pkt;
    this.c.ct = this.ct;
    this.c.family = family;
    this.c.hook = HOOK.INPUT;
    this.c.now = 1_000_000;
    this.c.ctinfo = CTINFO.INVALID;
  }

  env(p: Parsed, over: Partial<MatchEnv> = {}): MatchEnv {
    return {
      family: this.family, table: this.table, chain: this.chain, proto: p.proto, protoNegated: p.protoNegated,
      pool: this.pool, named: this.named, ...over,
    };
  }

  /** Compiles every match of a fragment. */
  compileAll(text: string, over: Partial<MatchEnv> = {}): CompiledMatch[] {
    const p = parseFragment(text);
    return p.matches.map((m) => compileMatch(m, this.env(p, over)));
  }

  /** Compiles the fragment's (single) match. */
  compile(text: string, over: Partial<MatchEnv> = {}): CompiledMatch {
    const all = this.compileAll(text, over);
    if (all.length !== 1) throw new Error(`expected one match in ${text}`);
    return all[0]!;
  }

  /** Aims the context at a packet (parsed, not tracked). */
  load(buf: Uint8Array): this {
    this.c.parseStatus = this.pkt.parse(buf, 0, buf.length);
    this.c.family = this.family;
    return this;
  }

  /** Parses and tracks a packet (confirming unless INVALID, as the tracker tests do); the context sees its ctinfo and entry. */
  track(buf: Uint8Array, confirm = true): number {
    this.load(buf);
    const ci = this.ct.process(this.pkt, this.c.parseStatus, this.c.now, 0);
    this.c.ctinfo = ci;
    if (confirm) {
      if (ci === CTINFO.INVALID) this.ct.abort();
      else this.ct.confirm(this.c.now);
    }
    return ci;
  }

  /** Evaluates a compiled match against the loaded packet. */
  eval(m: CompiledMatch): boolean {
    return evalMatch(m.kind, m.off, this.pool, this.c);
  }

  /** Compiles `text` and evaluates it against `buf`. */
  test(text: string, buf: Uint8Array, over: Partial<MatchEnv> = {}): boolean {
    const m = this.compile(text, over);
    this.load(buf);
    return this.eval(m);
  }

  /** The RuleError message compiling `text` throws ("" when it compiles). */
  error(text: string, over: Partial<MatchEnv> = {}): string {
    try {
      this.compileAll(text, over);
      return "";
    } catch (e) {
      return (e as Error).message;
    }
  }
}
