/**
 * rules/ — iptables rulesets: read, compiled, evaluated, printed.
 *
 *   text ──parse.ts──▶ AST (ast.ts; every token keeps file:line:col)
 *        ──ruleset.ts compileRuleset──▶ Ruleset: flat typed arrays
 *        ──engine.ts RuleEngine──▶ live per family, swapped atomically between batches
 *   pipeline ──Ruleset.evaluate(table, ctx)──▶ ACCEPT / DROP (+ target effects)
 *   Ruleset + live counters ──save.ts──▶ iptables-save text
 *
 * How:
 * - extensions.ts is the one table of every match and target iptables has
 *   that sluice knows: options with their argument counts (the parser splits
 *   a line as iptables' getopt does with it), tables and hooks Linux allows,
 *   and whether sluice implements it. Unknown or unimplemented extensions
 *   are refused with their position, never ignored.
 * - A compiled rule is a row of typed arrays: base match (protocol, masked
 *   address words, interface pattern ids, fragment flag), a run of
 *   (match kind, pool offset) pairs, a target code and argument, counters.
 *   matches.ts evaluates a match with one switch over small integer kinds
 *   reading words from one pool: no matcher objects, no closures, nothing
 *   allocated per packet (test/rules/matches-alloc.test.ts).
 * - Evaluation walks chains as ipt_do_table: jump pushes, goto does not,
 *   RETURN pops, falling off a built-in chain applies its policy; the stack
 *   is capped at 1024 and loops are refused at load.
 * - Targets that reach outside the packet (REJECT, LOG, NFLOG) call the
 *   RuleEffects the owner provides (targets.ts: the raw socket, pino, pcap
 *   files), so a replay and the daemon share everything else.
 * - Names are resolved from local files only (/etc/hosts, /etc/services,
 *   /etc/protocols, /etc/passwd, /etc/group): loading a firewall never
 *   waits on DNS.
 *
 * Why no per-connection verdict cache: the issue allows one only where the
 * deciding rule path depends on nothing that can change within the
 * connection, with tests proving equal verdicts and counters. Until that is
 * built and proven, every packet traverses every hook's chains, as in Linux.
 */
export * from "./ast.js";
export * from "./context.js";
export * from "./engine.js";
export * from "./extensions.js";
export * from "./match-api.js";
export { compileRuleset, Ruleset, RV, T, type RuleEffects, type CompileOptions, type RuleOrigin } from "./ruleset.js";
export { parseRuleset } from "./parse.js";
export { formatRuleset, formatRule } from "./save.js";
export { TraceFilter, Tracer, TraceHub } from "./trace.js";
export { engineDeps, TargetEffects } from "./targets.js";
