/**
 * The live rule engine: the compiled rulesets of both families, swapped
 * atomically, and the pipeline's view of them (PipelineRules).
 *
 * ```
 *  text ──parseRuleset──▶ AST ──compileRuleset──▶ Ruleset      (all of it, both families,
 *                                                                before anything changes)
 *  install(): v4/v6 references replaced between two batches; the
 *  connection table is not touched; `-m recent` / hashlimit state with
 *  the same name carries over (named), as Linux keeps it across restores.
 * ```
 *
 * Loading is all or nothing: a bad file (RuleError: file, line, column)
 * leaves the old rulesets live. Counters start at zero unless the load
 * asks for the file's (`iptables-restore --counters`).
 */
import type { PipelineRules, PipelineTracer } from "../pipeline/index.js";
import type { ChainNode, RuleNode, RulesetNode, TableNode } from "./ast.js";
import { parseRuleset } from "./parse.js";
import { compileRuleset, type CompileOptions, type RuleEffects, type Ruleset } from "./ruleset.js";
import { formatRuleset } from "./save.js";

/** One ruleset source. */
export interface RulesSource {
  /** Name for messages (a path, or "(stdin)"). */
  file: string;
  text: string;
}

/** What a load carries: either family or both. */
export interface RulesSources {
  ipv4?: RulesSource;
  ipv6?: RulesSource;
}

/** What the engine needs from its owner. */
export interface EngineDeps {
  effects: RuleEffects;
  /** Compiles REJECT / LOG / NFLOG options (targets.ts). */
  targetData: CompileOptions["targetData"];
  /** NEEDS bits the packet source provides (matches.ts NEEDS). */
  provides: number;
  missingReason?: (bit: number) => string;
}

/** Compiled, not yet live. */
export interface CompiledRules {
  v4?: Ruleset;
  v6?: Ruleset;
}

/** Parses and compiles without touching anything live (also `sluice rules check`). */
export function compileSources(src: RulesSources, deps: EngineDeps, prev?: { v4: Ruleset | null; v6: Ruleset | null }, counters = false): CompiledRules {
  const out: CompiledRules = {};
  for (const family of [4, 6] as const) {
    const s = family === 4 ? src.ipv4 : src.ipv6;
    if (s === undefined) continue;
    const ast = parseRuleset(s.text, s.file, family);
    if (!counters) zeroCounters(ast);
    const old = family === 4 ? prev?.v4 : prev?.v6;
    const rs = compileRuleset(ast, {
      named: old?.named,
      provides: deps.provides,
      missingReason: deps.missingReason,
      targetData: deps.targetData,
    });
    if (family === 4) out.v4 = rs;
    else out.v6 = rs;
  }
  return out;
}

function zeroCounters(ast: RulesetNode): void {
  for (const t of ast.tables) {
    for (const c of t.chains) {
      c.packets = c.bytes = 0n;
      for (const r of c.rules) r.packets = r.bytes = 0n;
    }
  }
}

/** The rulesets in force. */
export class RuleEngine implements PipelineRules {
  readonly effects: RuleEffects;
  tracer: PipelineTracer | null = null;
  private v4: Ruleset | null = null;
  private v6: Ruleset | null = null;
  private readonly deps: EngineDeps;
  private ifnames: (ifindex: number) => string | undefined = () => undefined;
  /** Loads since start (for stats). */
  loads = 0;

  constructor(deps: EngineDeps) {
    this.deps = deps;
    this.effects = deps.effects;
  }

  forFamily(family: 4 | 6): Ruleset | null {
    return family === 4 ? this.v4 : this.v6;
  }

  /** Parses and compiles `src` against the live rulesets (for carried state); throws RuleError, changes nothing. */
  compile(src: RulesSources, counters = false): CompiledRules {
    return compileSources(src, this.deps, { v4: this.v4, v6: this.v6 }, counters);
  }

  /** Makes compiled rulesets live (a family not given keeps its ruleset). Call between batches. */
  install(c: CompiledRules): void {
    if (c.v4 !== undefined) {
      c.v4.setInterfaceNames(this.ifnames);
      this.v4 = c.v4;
    }
    if (c.v6 !== undefined) {
      c.v6.setInterfaceNames(this.ifnames);
      this.v6 = c.v6;
    }
    this.loads++;
  }

  /** Parses, compiles and installs; all or nothing. */
  load(src: RulesSources, counters = false): CompiledRules {
    const c = this.compile(src, counters);
    this.install(c);
    return c;
  }

  /** How interface indexes become names (the route mirror), for -i/-o; call again when interfaces change. */
  setInterfaceNames(fn: (ifindex: number) => string | undefined): void {
    this.ifnames = fn;
    this.v4?.setInterfaceNames(fn);
    this.v6?.setInterfaceNames(fn);
  }

  /** The live ruleset of a family in iptables-save format with its counters; null when none is loaded. */
  save(family: 4 | 6, header?: string): string | null {
    const rs = family === 4 ? this.v4 : this.v6;
    if (rs === null) return null;
    return formatRuleset(withCounters(rs), { counters: true, header });
  }

  /** Rule and chain counts, for stats. */
  summary(): Record<string, number> {
    return { loads: this.loads, rules4: this.v4?.ruleCount ?? 0, rules6: this.v6?.ruleCount ?? 0 };
  }
}

/** A copy of the ruleset's AST with the live counters. */
export function withCounters(rs: Ruleset): RulesetNode {
  const counts = new Map<RuleNode, [bigint, bigint]>();
  for (let i = 0; i < rs.ruleCount; i++) {
    counts.set(rs.origins[i]!.node, [BigInt(Math.round(rs.packets[i]!)), BigInt(Math.round(rs.bytes[i]!))]);
  }
  let chainIndex = 0;
  const tables: TableNode[] = rs.ast.tables.map((t) => ({
    ...t,
    chains: t.chains.map((c): ChainNode => {
      const k = chainIndex++;
      return {
        ...c,
        packets: BigInt(Math.round(rs.policyPackets[k]!)),
        bytes: BigInt(Math.round(rs.policyBytes[k]!)),
        rules: c.rules.map((r) => {
          const n = counts.get(r);
          return n === undefined ? r : { ...r, packets: n[0], bytes: n[1] };
        }),
      };
    }),
  }));
  return { ...rs.ast, tables };
}
