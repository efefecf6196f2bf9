/**
 * A parsed ruleset, as the iptables-restore text said it (parse.ts makes
 * it; compile.ts turns it into flat arrays; save.ts prints it back).
 * Positions are 1-based and point at the token they describe, so every
 * later error (an unknown chain, a bad address, a target in the wrong
 * table) names the file, line and column of the real fault.
 */
import type { TableName } from "./extensions.js";

/** Where a token is. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** An option with its arguments, e.g. `! --dport 22` → { name: "--destination-port", negated: true, args: ["22"] }. */
export interface OptionNode {
  /** The main spelling (extensions.ts), whatever alias the text used. */
  name: string;
  /** The spelling the text used (for messages and `rules save`). */
  written: string;
  negated: boolean;
  args: string[];
  pos: SourcePos;
}

/** A match (`-m NAME`, or loaded implicitly by `-p tcp --dport`). */
export interface MatchNode {
  /** Main name (`icmp6` for `-m icmpv6`). */
  name: string;
  /** Loaded implicitly by the protocol (`-p tcp --dport 22` without `-m tcp`). */
  implicit: boolean;
  options: OptionNode[];
  pos: SourcePos;
}

/** The target of a rule. */
export interface TargetNode {
  /** ACCEPT, DROP, RETURN, a target extension (REJECT, LOG, ...) or a user chain. */
  name: string;
  /** `-j` (jump) or `-g` (goto, user chains only). */
  kind: "jump" | "goto";
  /** True when `name` is a user chain (known after the table is read). */
  chain: boolean;
  options: OptionNode[];
  pos: SourcePos;
}

/** An address with its prefix: `words` most significant first (IPv4: words[0] only). */
export interface AddressNode {
  family: 4 | 6;
  words: [number, number, number, number];
  /** Prefix length after converting a dotted mask (non-contiguous masks are kept in `mask`). */
  prefix: number;
  /** The mask words (contiguous or not: iptables accepts any dotted mask). */
  mask: [number, number, number, number];
  negated: boolean;
  /** As written (a host name from /etc/hosts keeps its name here). */
  text: string;
  pos: SourcePos;
}

/** An interface pattern: `eth0`, `eth+` (prefix), possibly negated. */
export interface IfaceNode {
  name: string;
  /** Ends in `+`: matches every name starting with `name` minus the `+`. */
  wildcard: boolean;
  negated: boolean;
  pos: SourcePos;
}

/** One rule (one line; a line with comma lists in -s/-d becomes several rules, each with the same pos). */
export interface RuleNode {
  /** The rule's line. */
  pos: SourcePos;
  /** -p: protocol number (0 = any when absent; `-p all` is 0 too), negation. */
  proto: { value: number; negated: boolean; text: string; pos: SourcePos } | null;
  src: AddressNode | null;
  dst: AddressNode | null;
  inIface: IfaceNode | null;
  outIface: IfaceNode | null;
  /** -f (IPv4 only): non-first fragments; `! -f`: first fragments and unfragmented packets. */
  fragment: { negated: boolean; pos: SourcePos } | null;
  matches: MatchNode[];
  /** No target: the rule only counts. */
  target: TargetNode | null;
  /** `[packets:bytes]` before the rule, or -c; zero otherwise. */
  packets: bigint;
  bytes: bigint;
}

/** A chain of a table. */
export interface ChainNode {
  name: string;
  builtin: boolean;
  /** ACCEPT or DROP for built-in chains; null for user chains (`-`). */
  policy: "ACCEPT" | "DROP" | null;
  packets: bigint;
  bytes: bigint;
  rules: RuleNode[];
  /** Where it was declared (`:NAME ...` or `-N NAME`); for built-ins never declared, the table line. */
  pos: SourcePos;
}

/** One `*table` ... `COMMIT` block. */
export interface TableNode {
  name: TableName;
  /** Chains in declaration order (built-ins first, in Linux's order, when not declared). */
  chains: ChainNode[];
  pos: SourcePos;
}

/** A whole file: one family. */
export interface RulesetNode {
  family: 4 | 6;
  file: string;
  tables: TableNode[];
}
