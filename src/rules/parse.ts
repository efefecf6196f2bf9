/**
 * The iptables-restore format → RulesetNode (ast.ts), accepting what
 * iptables-restore 1.8.9 accepts and refusing what it refuses, every
 * refusal a RuleError at the file, line and column of the real fault.
 *
 * Layers, as in iptables (iptables/iptables-restore.c, xshared.c):
 *
 * ```
 *   text ── lines ──┬─ "#..." comment, "" skipped
 *                   ├─ "*table"           opens a table (flushes it, as restore does)
 *                   ├─ ":CHAIN POLICY [p:b]"  declares a chain / sets a built-in's policy
 *                   ├─ "COMMIT"           closes the table
 *                   └─ anything else      "[p:b]" prefix, then tokenizeLine (add_param_to_argv)
 *                                         → Getopt (getopt_long over a growing option table,
 *                                           do_parse + command_default) → one command
 *                                           (-A -I -D -R -C -N -X -F -Z -P -E) applied to the table
 * ```
 *
 * How a rule line is split is iptables': base options first in the option
 * table, then the options of every extension loaded so far, the most
 * recently loaded first (xtables_merge_options); an option belongs to the
 * first extension in that order that declares it, and is given to that
 * extension's latest instance (`-m tcp ... -m tcp` makes two matches); long
 * options may be abbreviated to an unambiguous prefix (getopt_long); an
 * unknown option loads the match of `-p`'s protocol once (load_proto) and is
 * looked up again. Option values stay strings (OptionNode.args): checking
 * them is the compiler's business. The parser checks what decides the
 * structure: names of chains, matches and targets, addresses, interfaces,
 * the protocol, counters, commands and their arguments.
 *
 * Commands, as iptables-legacy-restore runs them (the nft backend of 1.8.9
 * fails on some): -A, -I [N] (each address pair of a comma list inserted at
 * N, so in reverse order), -D N / -D rule, -R N, -C, -N, -E (jumps follow the
 * rename), -X [chain] (empty and unreferenced), -F [chain], -P (policy
 * counters from -c, else zero), -Z (checked, and without effect: libiptc
 * zeroes only counters read from the kernel, and every counter here comes
 * from the file). -L, -S, -h, -V, -t, -w are refused.
 *
 * Positions: a rule is its line (column 1); a match is its name after `-m`
 * (or the option that loaded it implicitly); a target is its name after
 * `-j`/`-g`; an option is the option word; an address is its item in a
 * comma list; the protocol and interfaces are their values.
 *
 * Where sluice is stricter than iptables-restore, on purpose (each refusal
 * says why): counters must be `[digits:digits]` wherever they appear
 * (iptables reads them with sscanf, and ignores them without `-c`); an
 * unterminated quote is an error (iptables takes the rest of the line, newline
 * included); interface names may not contain `/` or whitespace, and `+` only
 * at the end (iptables warns); a user chain may not be declared twice (nft
 * accepts it, legacy refuses); a table other than raw, mangle, nat, filter;
 * -L and -S (iptables lists the rules and goes on).
 * Intrapositioned negation (`--dport ! 22`, `-s ! 1.2.3.4`) is refused as
 * iptables 1.8.9 refuses it, with a message that says how to write it.
 *
 * Configuration time only: nothing here runs per packet.
 */
import type { AddressNode, ChainNode, IfaceNode, MatchNode, OptionNode, RuleNode, RulesetNode, SourcePos, TableNode, TargetNode } from "./ast.js";
import { BUILTIN_CHAINS, MATCHES, MATCH_ALIASES, TABLES, TARGETS, findOption, type ExtensionSpec, type OptionSpec, type TableName } from "./extensions.js";
import { RuleError } from "./match-api.js";
import { lookupHost, lookupProtocol } from "./names.js";

/** XT_EXTENSION_MAXNAMELEN - 1: the longest chain, match or target name Linux stores. */
export const MAX_NAME = 28;
/** IFNAMSIZ - 1: the longest interface name. */
export const MAX_IFACE = 15;
/** iptables-restore reads a line with fgets into 10240 bytes (newline included). */
export const MAX_LINE_BYTES = 10239;
/** add_param_to_argv's word buffer is 1024 bytes (terminator included). */
export const MAX_WORD_BYTES = 1023;
/**
 * argv_store holds MAX_ARGC - 1 = 254 arguments, 3 of them restore's own
 * (argv[0], -t, table): 251 words on a line (checked with 1.8.9), 3 fewer
 * with a `[p:b]` prefix, which becomes `--set-counters p b`.
 */
export const MAX_RULE_WORDS = 251;
/** The largest counter value (u64). */
const U64_MAX = (1n << 64n) - 1n;

// ---------------------------------------------------------------------------
// Words: add_param_to_argv
// ---------------------------------------------------------------------------

/** One word of a rule line, after quote processing. */
export interface Token {
  text: string;
  /** 1-based column of its first character (the opening quote if it starts with one). */
  col: number;
  /** Some of it was inside double quotes (columns inside it no longer map 1:1). */
  quoted: boolean;
}

/**
 * Splits a rule line into words the way iptables-restore does
 * (xshared.c add_param_to_argv): blanks (space, tab) separate words; a
 * double quote opens a quoted part in which a backslash takes the next
 * character literally and blanks are kept; the closing quote ends the word
 * (`"a b"c` is two words, `a"b c"` one, `""` an empty word); outside quotes
 * a backslash is an ordinary character. Starts at `from` (after a counter
 * prefix). An unterminated quote is refused (see the file comment).
 */
export function tokenizeLine(line: string, lineNo: number, file: string, from = 0): Token[] {
  const out: Token[] = [];
  let buf = "";
  let start = -1;
  let quoted = false;
  let quoteOpen = false;
  let quoteAt = 0;
  let escaped = false;
  const flush = (): void => {
    if (Buffer.byteLength(buf) > MAX_WORD_BYTES) {
      throw new RuleError({ file, line: lineNo, col: start + 1 }, `word longer than ${MAX_WORD_BYTES} bytes (iptables-restore's limit: "Parameter too long!")`);
    }
    out.push({ text: buf, col: start + 1, quoted });
    buf = "";
    start = -1;
    quoted = false;
  };
  for (let i = from; i < line.length; i++) {
    const c = line[i]!;
    if (quoteOpen) {
      if (escaped) {
        buf += c;
        escaped = false;
      } else if (c === "\\") {
        escaped = true;
      } else if (c === '"') {
        quoteOpen = false;
        flush(); // the closing quote ends the word, even an empty one
      } else {
        buf += c;
      }
      continue;
    }
    if (c === '"') {
      if (start < 0) start = i;
      quoteOpen = true;
      quoted = true;
      quoteAt = i;
      continue;
    }
    if (c === " " || c === "\t") {
      if (start >= 0) flush();
      continue;
    }
    if (start < 0) start = i;
    buf += c;
  }
  if (quoteOpen) {
    throw new RuleError({ file, line: lineNo, col: quoteAt + 1 }, 'unterminated quote (iptables-restore would take the rest of the line, newline included, as the word); close it with "');
  }
  if (start >= 0) flush();
  return out;
}

// ---------------------------------------------------------------------------
// Numbers and addresses: libxtables xtables_strtoui, xtables_ipparse_multiple
// ---------------------------------------------------------------------------

/** xtables_strtoui with base 0 (decimal, 0x hex, 0 octal), whole string, value in [0, max]; undefined otherwise. */
function strtoui(s: string, max: number): number | undefined {
  const m = /^\+?(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(s);
  if (m === null) return undefined;
  const v = m[1] !== undefined ? parseInt(m[1], 16) : m[2] !== undefined ? parseInt(m[2], 8) : Number(m[3]);
  return Number.isFinite(v) && v <= max ? v : undefined;
}

/** libxtables __numeric_to_ipaddr: dotted quad; as an address (not a mask) `10` and `10.1` complete to 10.0.0.0, 10.1.0.0. */
function parseIPv4(s: string, isMask: boolean): number | undefined {
  const parts = s.split(".");
  if (parts.length > 4 || (isMask && parts.length !== 4)) return undefined;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    const b = p === undefined ? 0 : strtoui(p, 255);
    if (b === undefined) return undefined;
    v = (v * 256 + b) >>> 0;
  }
  return v;
}

/** inet_pton(AF_INET6): eight groups, one `::`, an optional dotted quad at the end; four 32-bit words. */
export function parseIPv6(s: string): [number, number, number, number] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    const parts = h.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        // inet_pton4: four decimal parts, no leading zeros
        const q = p.split(".");
        if (q.length !== 4 || q.some((x) => !/^(0|[1-9][0-9]{0,2})$/.test(x) || Number(x) > 255)) return undefined;
        out.push(Number(q[0]) * 256 + Number(q[1]), Number(q[2]) * 256 + Number(q[3]));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  let g: number[];
  if (halves.length === 2) {
    if (head.length + tail.length > 7) return undefined;
    g = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    g = head;
  }
  return [((g[0]! << 16) | g[1]!) >>> 0, ((g[2]! << 16) | g[3]!) >>> 0, ((g[4]! << 16) | g[5]!) >>> 0, ((g[6]! << 16) | g[7]!) >>> 0];
}

/** The prefix length of a mask, or -1 when its ones are not contiguous (xtables_ipmask_to_cidr). */
export function maskToPrefix(mask: readonly number[], family: 4 | 6): number {
  let bits = 0;
  let seenZero = false;
  for (let w = 0; w < (family === 4 ? 1 : 4); w++) {
    for (let b = 31; b >= 0; b--) {
      const one = ((mask[w]! >>> b) & 1) === 1;
      if (one && seenZero) return -1;
      if (one) bits++;
      else seenZero = true;
    }
  }
  return bits;
}

function prefixToMask(len: number, family: 4 | 6): [number, number, number, number] {
  const m: [number, number, number, number] = [0, 0, 0, 0];
  for (let w = 0; w < (family === 4 ? 1 : 4); w++) {
    const n = Math.max(0, Math.min(32, len - 32 * w));
    m[w] = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  }
  return m;
}

/**
 * One `-s`/`-d` argument → addresses, as xtables_ipparse_multiple /
 * xtables_ip6parse_multiple read it: a comma list (blanks before each item
 * skipped), each item an address or an /etc/hosts name (never DNS: every
 * address of the family, in file order), then `/LEN` or a mask (dotted for
 * IPv4, any mask, contiguous or not; IPv6 form for IPv6). A zero mask
 * ignores the name (`any/0` is 0.0.0.0/0). Addresses are stored masked, as
 * the kernel sees them. `prefix` is -1 for a non-contiguous mask. `pos`
 * points at the argument; items get the column of their own text when the
 * argument was not quoted.
 */
export function parseAddress(text: string, family: 4 | 6, pos: SourcePos, quoted = false): AddressNode[] {
  const out: AddressNode[] = [];
  let off = 0;
  for (const raw of text.split(",")) {
    const lead = raw.length - raw.replace(/^\s+/, "").length;
    const item = raw.slice(lead);
    const ipos: SourcePos = quoted ? pos : { file: pos.file, line: pos.line, col: pos.col + off + lead };
    off += raw.length + 1;
    const slash = item.lastIndexOf("/");
    const name = slash >= 0 ? item.slice(0, slash) : item;
    const maskText = slash >= 0 ? item.slice(slash + 1) : null;
    let mask: [number, number, number, number];
    if (maskText === null) {
      mask = prefixToMask(family === 4 ? 32 : 128, family);
    } else {
      const dotted = family === 4 ? parseIPv4(maskText, true) : parseIPv6(maskText);
      if (dotted !== undefined) {
        mask = typeof dotted === "number" ? [dotted, 0, 0, 0] : dotted;
      } else {
        const bits = strtoui(maskText, family === 4 ? 32 : 128);
        if (bits === undefined) {
          throw new RuleError(ipos, `invalid mask \`${maskText}\` in \`${item}\` (a prefix length 0..${family === 4 ? 32 : 128} or a ${family === 4 ? "dotted" : "IPv6-form"} mask)`);
        }
        mask = prefixToMask(bits, family);
      }
    }
    const zeroMask = mask.every((w) => w === 0);
    let addrs: [number, number, number, number][];
    const numeric = zeroMask ? [0, 0, 0, 0] : family === 4 ? parseIPv4(name, false) : parseIPv6(name);
    if (numeric !== undefined) {
      addrs = [typeof numeric === "number" ? [numeric, 0, 0, 0] : (numeric as [number, number, number, number])];
    } else {
      addrs = [];
      for (const a of lookupHost(name, family)) {
        const v = family === 4 ? parseIPv4(a, false) : parseIPv6(a);
        if (v !== undefined) addrs.push(typeof v === "number" ? [v, 0, 0, 0] : v);
      }
      if (addrs.length === 0) {
        throw new RuleError(
          ipos,
          `host/network \`${name}\` not found: not an IPv${family} address, and /etc/hosts has no IPv${family} address for it (sluice never asks DNS)`,
        );
      }
    }
    const prefix = maskToPrefix(mask, family);
    for (const a of addrs) {
      out.push({
        family,
        words: [(a[0] & mask[0]) >>> 0, (a[1] & mask[1]) >>> 0, (a[2] & mask[2]) >>> 0, (a[3] & mask[3]) >>> 0],
        prefix,
        mask: [...mask],
        negated: false,
        text: item,
        pos: ipos,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/** The verdicts of the standard target; a chain may not take these names. */
const STANDARD_VERDICTS = new Set(["ACCEPT", "DROP", "QUEUE", "RETURN"]);

/** A match by `-m` name (or protocol name) for this family, resolving aliases (`icmpv6` → icmp6). */
function findMatch(name: string, family: 4 | 6): ExtensionSpec | undefined {
  const spec = MATCHES[MATCH_ALIASES[name] ?? name];
  return spec !== undefined && (spec.family === 0 || spec.family === family) ? spec : undefined;
}

function findTarget(name: string, family: 4 | 6): ExtensionSpec | undefined {
  const spec = TARGETS[name];
  return spec !== undefined && (spec.family === 0 || spec.family === family) ? spec : undefined;
}

/** The match `-p NUMBER` loads: the first name of xtables_chain_protos for the number (proto_to_name). */
const PROTO_MATCH_BY_NUMBER: Readonly<Record<number, string>> = { 6: "tcp", 132: "sctp", 17: "udp", 1: "icmp", 58: "ipv6-icmp" };

// ---------------------------------------------------------------------------
// Tables as they are built
// ---------------------------------------------------------------------------

class TableState {
  readonly builtins: ChainNode[] = [];
  /** User chains in declaration order. */
  readonly user: ChainNode[] = [];
  readonly chains = new Map<string, ChainNode>();
  /** `:NAME` / `-N NAME` lines of this table block, to say "declared only at line N" when a rule comes first. */
  readonly declaredAt: Map<string, number>;

  constructor(
    readonly name: TableName,
    readonly pos: SourcePos,
    declaredAt: Map<string, number>,
  ) {
    this.declaredAt = declaredAt;
    for (const c of Object.keys(BUILTIN_CHAINS[name])) {
      const node: ChainNode = { name: c, builtin: true, policy: "ACCEPT", packets: 0n, bytes: 0n, rules: [], pos };
      this.builtins.push(node);
      this.chains.set(c, node);
    }
  }

  addUser(name: string, pos: SourcePos): void {
    const node: ChainNode = { name, builtin: false, policy: null, packets: 0n, bytes: 0n, rules: [], pos };
    this.user.push(node);
    this.chains.set(name, node);
  }

  /** The first rule (chain, 1-based index) that jumps or goes to `name`. */
  referenceTo(name: string): { chain: ChainNode; rule: RuleNode } | undefined {
    for (const c of [...this.builtins, ...this.user]) {
      for (const r of c.rules) if (r.target !== null && r.target.chain && r.target.name === name) return { chain: c, rule: r };
    }
    return undefined;
  }

  finish(): TableNode {
    return { name: this.name, chains: [...this.builtins, ...this.user], pos: this.pos };
  }
}

// ---------------------------------------------------------------------------
// Rule lines: getopt_long + do_parse + do_command
// ---------------------------------------------------------------------------

/** Commands (CMD_* of xshared.h), one bit each. */
const CMD = {
  APPEND: 1 << 0,
  INSERT: 1 << 1,
  DELETE: 1 << 2,
  DELETE_NUM: 1 << 3,
  REPLACE: 1 << 4,
  CHECK: 1 << 5,
  FLUSH: 1 << 6,
  ZERO: 1 << 7,
  ZERO_NUM: 1 << 8,
  NEW_CHAIN: 1 << 9,
  DELETE_CHAIN: 1 << 10,
  RENAME_CHAIN: 1 << 11,
  SET_POLICY: 1 << 12,
} as const;
const CMD_LETTER: Readonly<Record<number, string>> = {
  [CMD.APPEND]: "A",
  [CMD.INSERT]: "I",
  [CMD.DELETE]: "D",
  [CMD.DELETE_NUM]: "D",
  [CMD.REPLACE]: "R",
  [CMD.CHECK]: "C",
  [CMD.FLUSH]: "F",
  [CMD.ZERO]: "Z",
  [CMD.ZERO_NUM]: "Z",
  [CMD.NEW_CHAIN]: "N",
  [CMD.DELETE_CHAIN]: "X",
  [CMD.RENAME_CHAIN]: "E",
  [CMD.SET_POLICY]: "P",
};
/** Commands that take a rule specification (CMD_IDRAC). */
const CMD_RULE = CMD.INSERT | CMD.DELETE | CMD.REPLACE | CMD.APPEND | CMD.CHECK;

/** Base options (OPT_*), with the commands each is legal with (options_v_commands). */
const OPT = {
  s: { bit: 1 << 0, cmds: CMD_RULE, invertible: true },
  d: { bit: 1 << 1, cmds: CMD_RULE, invertible: true },
  p: { bit: 1 << 2, cmds: CMD_RULE, invertible: true },
  j: { bit: 1 << 3, cmds: CMD_RULE, invertible: false },
  i: { bit: 1 << 4, cmds: CMD_RULE, invertible: true },
  o: { bit: 1 << 5, cmds: CMD_RULE, invertible: true },
  f: { bit: 1 << 6, cmds: CMD_RULE, invertible: true },
  c: { bit: 1 << 7, cmds: CMD.INSERT | CMD.REPLACE | CMD.APPEND | CMD.SET_POLICY, invertible: false },
  v: { bit: 1 << 8, cmds: 0x7fffffff, invertible: false },
} as const;
type OptLetter = keyof typeof OPT;

/** iptables' own long options (original_opts), in their table order: they come before every extension's. */
const BASE_LONG: readonly { name: string; hasArg: 0 | 1 | 2; code: string }[] = [
  { name: "append", hasArg: 1, code: "A" },
  { name: "delete", hasArg: 1, code: "D" },
  { name: "check", hasArg: 1, code: "C" },
  { name: "insert", hasArg: 1, code: "I" },
  { name: "replace", hasArg: 1, code: "R" },
  { name: "list", hasArg: 2, code: "L" },
  { name: "list-rules", hasArg: 2, code: "S" },
  { name: "flush", hasArg: 2, code: "F" },
  { name: "zero", hasArg: 2, code: "Z" },
  { name: "new-chain", hasArg: 1, code: "N" },
  { name: "delete-chain", hasArg: 2, code: "X" },
  { name: "rename-chain", hasArg: 1, code: "E" },
  { name: "policy", hasArg: 1, code: "P" },
  { name: "source", hasArg: 1, code: "s" },
  { name: "destination", hasArg: 1, code: "d" },
  { name: "src", hasArg: 1, code: "s" },
  { name: "dst", hasArg: 1, code: "d" },
  { name: "protocol", hasArg: 1, code: "p" },
  { name: "in-interface", hasArg: 1, code: "i" },
  { name: "jump", hasArg: 1, code: "j" },
  { name: "table", hasArg: 1, code: "t" },
  { name: "match", hasArg: 1, code: "m" },
  { name: "numeric", hasArg: 0, code: "n" },
  { name: "out-interface", hasArg: 1, code: "o" },
  { name: "verbose", hasArg: 0, code: "v" },
  { name: "wait", hasArg: 2, code: "w" },
  { name: "wait-interval", hasArg: 2, code: "W" },
  { name: "exact", hasArg: 0, code: "x" },
  { name: "fragments", hasArg: 0, code: "f" },
  { name: "version", hasArg: 0, code: "V" },
  { name: "help", hasArg: 2, code: "h" },
  { name: "line-numbers", hasArg: 0, code: "0" },
  { name: "modprobe", hasArg: 1, code: "M" },
  { name: "set-counters", hasArg: 1, code: "c" },
  { name: "goto", hasArg: 1, code: "g" },
  { name: "ipv4", hasArg: 0, code: "4" },
  { name: "ipv6", hasArg: 0, code: "6" },
];

/** IPT_OPTSTRING: short options and whether each takes an argument (1), an attached optional one (2), or none (0). */
const SHORT_OPTS: Readonly<Record<string, 0 | 1 | 2>> = {
  A: 1, C: 1, D: 1, E: 1, F: 2, I: 1, L: 2, M: 1, N: 1, P: 1, R: 1, S: 2, V: 0, W: 2, X: 2, Z: 2,
  c: 1, d: 1, f: 0, g: 1, h: 2, i: 1, j: 1, m: 1, n: 0, o: 1, p: 1, s: 1, t: 1, v: 0, w: 2, x: 0, "4": 0, "6": 0,
};
/** 1.8.9 reads these from argv[optind - 1]: an attached value (`-ptcp`) is read as the whole word. */
const WHOLE_WORD_VALUE = new Set(["p", "s", "d", "j", "g"]);

const BASE_ENTRIES: readonly LongEntry[] = BASE_LONG.map((b) => ({ name: b.name, hasArg: b.hasArg, id: `base:${b.code}`, code: b.code, ext: null }));

/** The getopt entries of an extension's options (every spelling), built once per extension. */
const entryCache = { match: new Map<ExtensionSpec, readonly LongEntry[]>(), target: new Map<ExtensionSpec, readonly LongEntry[]>() };
function extensionEntries(ext: LoadedExt): readonly LongEntry[] {
  let out = entryCache[ext.kind].get(ext.spec);
  if (out === undefined) {
    const list: LongEntry[] = [];
    for (const [main, spec] of Object.entries(ext.spec.options)) {
      const id = `${ext.kind}:${ext.spec.name}:${main}`;
      for (const n of [main, ...(spec.aliases ?? [])]) list.push({ name: n.slice(2), hasArg: spec.args === 0 ? 0 : 1, id, code: "", ext: { ext, main, spec } });
    }
    entryCache[ext.kind].set(ext.spec, (out = list));
  }
  return out;
}

/** An extension whose options are in the option table. */
interface LoadedExt {
  kind: "match" | "target";
  spec: ExtensionSpec;
}

/** One entry of getopt_long's option table. */
interface LongEntry {
  /** Without the leading `--`. */
  name: string;
  hasArg: 0 | 1 | 2;
  /** Entries with the same id are the same option (getopt: same has_arg, flag, val). */
  id: string;
  /** Base option letter ("" for extension options). */
  code: string;
  ext: { ext: LoadedExt; main: string; spec: OptionSpec } | null;
}

/** One option found by getopt. */
type Found =
  | { kind: "base"; code: string; arg: Token | null; tok: Token; spelled: string }
  | { kind: "ext"; ext: LoadedExt; main: string; spec: OptionSpec; arg: Token | null; tok: Token; spelled: string };

/** What a rule line asks for, once split. */
interface Parsed {
  cmd: number;
  cmdTok: Token | null;
  chain: Token | null;
  rulenum: number;
  rulenumTok: Token | null;
  policy: Token | null;
  newname: Token | null;
}

/**
 * Parses one rule line (its words) and applies it to the table. Mirrors
 * do_parse (xshared.c) and do_command4/6: getopt first, then the checks
 * after the loop, then addresses, then the command.
 */
class RuleLine {
  private i = 0;
  private invert: Token | null = null;
  private readonly p: Parsed = { cmd: 0, cmdTok: null, chain: null, rulenum: 0, rulenumTok: null, policy: null, newname: null };
  private options = 0;
  private optionTok: Partial<Record<OptLetter, Token>> = {};
  private proto: RuleNode["proto"] = null;
  private protoText: string | null = null;
  private protoUsed = false;
  private src: { tok: Token; negated: boolean } | null = null;
  private dst: { tok: Token; negated: boolean } | null = null;
  private inIface: IfaceNode | null = null;
  private outIface: IfaceNode | null = null;
  private fragment: RuleNode["fragment"] = null;
  private readonly matches: MatchNode[] = [];
  /** The instance options of a match name go to: the latest `-m NAME`. */
  private readonly latest = new Map<string, MatchNode>();
  /** Extensions in option-table order (after the base options): the most recently (first) loaded first. */
  private readonly loaded: LoadedExt[] = [];
  private jumpTok: Token | null = null;
  private jumpKind: "jump" | "goto" = "jump";
  private target: TargetNode | null = null;
  private targetSpec: ExtensionSpec | null = null;
  private counters: { packets: bigint; bytes: bigint; tok: Token } | null;
  /** The counters came from a `[p:b]` prefix (restore passes them as `--set-counters`). */
  private readonly prefixCounters: boolean;
  /** `-4` in an ip6tables file or `-6` in an iptables file: restore ignores the whole line. */
  private ignored = false;

  constructor(
    private readonly toks: Token[],
    private readonly family: 4 | 6,
    private readonly table: TableState,
    private readonly file: string,
    private readonly line: number,
    prefixCounters: { packets: bigint; bytes: bigint; tok: Token } | null,
  ) {
    this.counters = prefixCounters;
    this.prefixCounters = prefixCounters !== null;
    if (prefixCounters !== null) {
      // restore turns `[p:b]` into `--set-counters p b` before the line's own words
      this.options |= OPT.c.bit;
      this.optionTok.c = prefixCounters.tok;
    }
  }

  private at(tok: Token): SourcePos {
    return { file: this.file, line: this.line, col: tok.col };
  }

  private fail(tok: Token, reason: string): never {
    throw new RuleError(this.at(tok), reason);
  }

  // -- getopt --------------------------------------------------------------

  /** xs_has_arg: the next word exists and starts with neither `-` nor `!`. */
  private hasArg(): boolean {
    const t = this.toks[this.i];
    return t !== undefined && t.text[0] !== "-" && t.text[0] !== "!";
  }

  /**
   * getopt_long's table lookup: the first exact name in table order (base
   * options, then extensions, the most recently loaded first), else a prefix
   * that names one option only (spellings of the same option may share it).
   */
  private lookupLong(name: string): LongEntry | "ambiguous" | null {
    for (const e of BASE_ENTRIES) if (e.name === name) return e;
    for (const ext of this.loaded) for (const e of extensionEntries(ext)) if (e.name === name) return e;
    let first: LongEntry | null = null;
    const consider = (e: LongEntry): boolean => {
      if (!e.name.startsWith(name)) return true;
      if (first === null) first = e;
      return e.id === first.id;
    };
    for (const e of BASE_ENTRIES) if (!consider(e)) return "ambiguous";
    for (const ext of this.loaded) for (const e of extensionEntries(ext)) if (!consider(e)) return "ambiguous";
    return first;
  }

  /** load_proto: `-p NAME` loads NAME's match the first time an option is unknown. */
  private loadProto(tok: Token): boolean {
    if (this.protoText === null || this.protoUsed) return false;
    this.protoUsed = true;
    const n = strtoui(this.protoText, 255);
    const name = n !== undefined ? PROTO_MATCH_BY_NUMBER[n] : this.protoText;
    const spec = name === undefined ? undefined : findMatch(name, this.family);
    if (spec === undefined) return false;
    this.addMatch(spec, tok, true);
    return true;
  }

  /** A `--name[=value]` word → the option and its argument, as getopt_long finds them (loading the protocol's match once if needed). */
  private longOption(tok: Token): Found {
    const body = tok.text.slice(2);
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    let r = this.lookupLong(name);
    if (r === null || r === "ambiguous") {
      if (this.loadProto(tok)) r = this.lookupLong(name);
    }
    if (r === null || r === "ambiguous") this.unknownOption(tok, tok.text, r === "ambiguous");
    let arg: Token | null = null;
    if (eq >= 0) {
      if (r.hasArg === 0) this.fail(tok, `option \`--${name}\` takes no argument`);
      arg = { text: body.slice(eq + 1), col: tok.col + 3 + eq, quoted: tok.quoted };
    } else if (r.hasArg === 1) {
      arg = this.toks[this.i] ?? null;
      if (arg === null) this.fail(tok, `option \`${tok.text}\` requires an argument`);
      this.i++;
    }
    const spelled = `--${name}`;
    if (r.ext === null) return { kind: "base", code: r.code, arg, tok, spelled };
    return { kind: "ext", ext: r.ext.ext, main: r.ext.main, spec: r.ext.spec, arg, tok, spelled };
  }

  private unknownOption(tok: Token, spelled: string, ambiguous: boolean): never {
    const why = ambiguous ? " (an ambiguous abbreviation)" : "";
    const notes: string[] = [];
    for (const e of this.loaded) {
      if (e.spec.support.state !== "yes") notes.push(`${e.kind} ${e.spec.name}: ${e.spec.support.reason}`);
    }
    const after = notes.length > 0 ? `; ${notes.join("; ")}` : "";
    this.fail(tok, `unknown option \`${spelled}\`${why}: no loaded match or target takes it${after}`);
  }

  /** Runs getopt over the words and handles each option like do_parse's switch. */
  parse(): void {
    while (this.i < this.toks.length && !this.ignored) {
      const tok = this.toks[this.i++]!;
      const t = tok.text;
      if (t === "--") {
        const next = this.toks[this.i];
        if (next !== undefined) this.fail(next, "unknown arguments found on the line (`--` ends the options)");
        break;
      }
      if (t.length < 2 || t[0] !== "-") {
        this.nonOption(tok);
        continue;
      }
      if (t[1] === "-") {
        this.handle(this.longOption(tok));
        continue;
      }
      // A cluster of short options: `-fv`, `-Iwith attached argument`.
      for (let k = 1; k < t.length && !this.ignored; k++) {
        const c = t[k]!;
        const kind = SHORT_OPTS[c];
        if (kind === undefined) {
          this.loadProto(tok); // as iptables does; short options never come from extensions, so it stays unknown
          this.unknownOption(tok, `-${c}`, false);
        }
        const rest = t.slice(k + 1);
        let arg: Token | null = null;
        if (kind === 1) {
          if (rest !== "") {
            arg = WHOLE_WORD_VALUE.has(c) ? tok : { text: rest, col: tok.col + k + 1, quoted: tok.quoted };
          } else {
            arg = this.toks[this.i] ?? null;
            if (arg === null) this.fail(tok, `option \`-${c}\` requires an argument`);
            this.i++;
          }
        } else if (kind === 2 && rest !== "") {
          arg = { text: rest, col: tok.col + k + 1, quoted: tok.quoted };
        }
        this.handle({ kind: "base", code: c, arg, tok, spelled: `-${c}` });
        if (kind !== 0) break;
      }
    }
  }

  /** A word that is not an option: `!` negates what follows; anything else is refused (do_parse case 1). */
  private nonOption(tok: Token): void {
    if (tok.text === "!") {
      if (this.invert !== null) this.fail(tok, "multiple consecutive ! not allowed");
      this.invert = tok;
      return;
    }
    this.fail(tok, `bad argument \`${tok.text}\`: not an option, nor the value of one`);
  }

  private addCommand(cmd: number, tok: Token): void {
    if (this.invert !== null) this.fail(this.invert, `unexpected \`!\` before -${CMD_LETTER[cmd]}`);
    if (this.p.cmd !== 0) this.fail(tok, `cannot use -${CMD_LETTER[cmd]} with -${CMD_LETTER[this.p.cmd]}: one command per line`);
    this.p.cmd = cmd;
    this.p.cmdTok = tok;
  }

  /** set_option: once per line; `!` only where iptables allows it. */
  private setOption(o: OptLetter, tok: Token): boolean {
    if ((this.options & OPT[o].bit) !== 0) this.fail(tok, `multiple -${o} flags not allowed`);
    this.options |= OPT[o].bit;
    this.optionTok[o] = tok;
    if (this.invert !== null && !OPT[o].invertible) this.fail(this.invert, `cannot have ! before -${o}`);
    return this.invert !== null;
  }

  /** Old-style `-s ! 1.2.3.4` / `--dport ! 22`: iptables 1.8.9 reads the `!` as the value and refuses the rest. */
  private refuseIntrapositioned(opt: string, arg: Token): void {
    const next = this.toks[this.i];
    if (arg.text === "!" && !arg.quoted && next !== undefined && next.text[0] !== "-") {
      this.fail(
        arg,
        `negation after the option (\`${opt} ! ${next.text}\`) is refused by iptables 1.8.9 (intrapositioned negation was removed); write \`! ${opt} ${next.text}\``,
      );
    }
  }

  /** A chain name given to -N or -E (assert_valid_chain_name). */
  private validNewChain(tok: Token): void {
    const n = tok.text;
    if (n.length > MAX_NAME) this.fail(tok, `chain name \`${n}\` too long (must be under ${MAX_NAME + 1} chars)`);
    if (n[0] === "-" || n[0] === "!") this.fail(tok, `chain name not allowed to start with \`${n[0]}\``);
    if (STANDARD_VERDICTS.has(n) || TARGETS[n] !== undefined) this.fail(tok, `chain name \`${n}\` may not clash with target name`);
    if (n === "" || /\s/.test(n)) this.fail(tok, `invalid chain name \`${n}\``);
  }

  /** xt_parse_target: a name for -j/-g. */
  private validTargetName(tok: Token): void {
    const n = tok.text;
    if (n.length < 1) this.fail(tok, "invalid target name (too short)");
    if (n.length > MAX_NAME) this.fail(tok, `invalid target name \`${n}\` (${MAX_NAME} chars max)`);
    if (/\s/.test(n)) this.fail(tok, `invalid target name \`${n}\``);
  }

  private addMatch(spec: ExtensionSpec, tok: Token, implicit: boolean): void {
    const m: MatchNode = { name: spec.name, implicit, options: [], pos: this.at(tok) };
    this.matches.push(m);
    this.latest.set(spec.name, m);
    // A second instance of a match is a clone: its options are already in the table (command_match).
    if (!this.loaded.some((e) => e.kind === "match" && e.spec === spec)) {
      this.loaded.unshift({ kind: "match", spec });
    }
  }

  private interfaceArg(tok: Token, negated: boolean): IfaceNode {
    const n = tok.text;
    if (n === "") this.fail(tok, "empty interface name (iptables: \"Empty interface is likely to be undesired\")");
    if (Buffer.byteLength(n) > MAX_IFACE) this.fail(tok, `interface name \`${n}\` must be shorter than ${MAX_IFACE + 1} bytes (IFNAMSIZ)`);
    if (/[/\s]/.test(n)) this.fail(tok, `interface name \`${n}\` contains \`/\` or a blank, which Linux never allows in a name`);
    const plus = n.indexOf("+");
    if (plus >= 0 && plus !== n.length - 1) this.fail(tok, `interface name \`${n}\`: \`+\` is a wildcard only at the end`);
    return { name: n, wildcard: plus === n.length - 1, negated, pos: this.at(tok) };
  }

  /** One option, as do_parse's switch handles it. */
  private handle(f: Found): void {
    if (f.kind === "ext") {
      this.extOption(f);
      this.invert = null;
      return;
    }
    const arg = f.arg;
    const tok = f.tok;
    switch (f.code) {
      case "A":
        this.addCommand(CMD.APPEND, tok);
        this.p.chain = arg;
        break;
      case "C":
        this.addCommand(CMD.CHECK, tok);
        this.p.chain = arg;
        break;
      case "D":
        this.addCommand(CMD.DELETE, tok);
        this.p.chain = arg;
        if (this.hasArg()) {
          const t = this.toks[this.i++]!;
          if (t.text.includes(":")) this.fail(t, "rule ranges are not supported");
          this.p.rulenum = this.ruleNumber(t);
          this.p.rulenumTok = t;
          this.p.cmd = CMD.DELETE_NUM;
        }
        break;
      case "R":
        this.addCommand(CMD.REPLACE, tok);
        this.p.chain = arg;
        if (!this.hasArg()) this.fail(tok, "-R requires a rule number");
        this.p.rulenumTok = this.toks[this.i++]!;
        this.p.rulenum = this.ruleNumber(this.p.rulenumTok);
        break;
      case "I":
        this.addCommand(CMD.INSERT, tok);
        this.p.chain = arg;
        if (this.hasArg()) {
          this.p.rulenumTok = this.toks[this.i++]!;
          this.p.rulenum = this.ruleNumber(this.p.rulenumTok);
        } else {
          this.p.rulenum = 1;
        }
        break;
      case "L":
      case "S":
        this.fail(tok, `-${f.code} lists rules; it has no place in a ruleset file`);
        break;
      case "F":
      case "X":
      case "Z":
        this.addCommand(f.code === "F" ? CMD.FLUSH : f.code === "X" ? CMD.DELETE_CHAIN : CMD.ZERO, tok);
        if (arg !== null) this.p.chain = arg;
        else if (this.hasArg()) this.p.chain = this.toks[this.i++]!;
        if (f.code === "Z" && this.hasArg()) {
          this.p.rulenumTok = this.toks[this.i++]!;
          this.p.rulenum = this.ruleNumber(this.p.rulenumTok);
          this.p.cmd = CMD.ZERO_NUM;
        }
        break;
      case "N":
        this.validNewChain(arg!);
        this.addCommand(CMD.NEW_CHAIN, tok);
        this.p.chain = arg;
        break;
      case "E":
        this.addCommand(CMD.RENAME_CHAIN, tok);
        this.p.chain = arg;
        if (!this.hasArg()) this.fail(tok, "-E requires old-chain-name and new-chain-name");
        this.p.newname = this.toks[this.i++]!;
        this.validNewChain(this.p.newname);
        break;
      case "P":
        this.addCommand(CMD.SET_POLICY, tok);
        if (!this.hasArg()) this.fail(tok, "-P requires a chain and a policy");
        this.p.chain = arg;
        this.p.policy = this.toks[this.i++]!;
        break;
      case "h":
      case "V":
        this.fail(tok, `-${f.code} prints help or the version; it has no place in a ruleset file`);
        break;
      case "p": {
        this.refuseIntrapositioned(f.spelled, arg!);
        const negated = this.setOption("p", tok);
        const text = arg!.text;
        const lower = text.toLowerCase();
        const value = strtoui(lower, 255) ?? lookupProtocol(lower);
        if (value === undefined) this.fail(arg!, `unknown protocol \`${text}\` (a number 0..255, or a name from iptables' list or /etc/protocols)`);
        if (value === 0 && negated) this.fail(arg!, "rule would never match protocol (`! -p all`)");
        this.proto = { value, negated, text, pos: this.at(arg!) };
        this.protoText = lower;
        break;
      }
      case "s":
      case "d": {
        this.refuseIntrapositioned(f.spelled, arg!);
        const negated = this.setOption(f.code, tok);
        if (f.code === "s") this.src = { tok: arg!, negated };
        else this.dst = { tok: arg!, negated };
        break;
      }
      case "g":
      case "j":
        this.setOption("j", tok);
        this.validTargetName(arg!);
        this.jumpTok = arg;
        this.jumpKind = f.code === "g" ? "goto" : "jump";
        if (f.code === "j") {
          // command_jump: a target extension if there is one (its options join the table), else maybe a chain.
          const spec = findTarget(arg!.text, this.family);
          if (spec !== undefined) {
            this.targetSpec = spec;
            this.loaded.unshift({ kind: "target", spec });
          }
        }
        this.target = { name: arg!.text, kind: this.jumpKind, chain: false, options: [], pos: this.at(arg!) };
        break;
      case "i":
      case "o": {
        if (arg!.text === "") this.interfaceArg(arg!, false); // check_empty_interface comes first in do_parse
        this.refuseIntrapositioned(f.spelled, arg!);
        const negated = this.setOption(f.code, tok);
        const node = this.interfaceArg(arg!, negated);
        if (f.code === "i") this.inIface = node;
        else this.outIface = node;
        break;
      }
      case "f":
        if (this.family === 6) this.fail(tok, "`-f` is not supported in IPv6, use -m frag instead");
        this.fragment = { negated: this.setOption("f", tok), pos: this.at(tok) };
        break;
      case "v":
        this.setOption("v", tok);
        break;
      case "n":
      case "x":
      case "0":
        this.fail(tok, `illegal option \`${f.spelled}\` in a ruleset file (it only changes how rules are listed)`);
        break;
      case "m": {
        if (this.invert !== null) this.fail(this.invert, "unexpected ! flag before --match");
        const spec = findMatch(arg!.text, this.family);
        if (spec === undefined) {
          const other = findMatch(arg!.text, this.family === 4 ? 6 : 4);
          this.fail(arg!, other !== undefined ? `match \`${arg!.text}\` does not exist for IPv${this.family} (it is an IPv${this.family === 4 ? 6 : 4} match)` : `unknown match \`${arg!.text}\``);
        }
        this.addMatch(spec, arg!, false);
        break;
      }
      case "t":
        if (this.invert !== null) this.fail(this.invert, "unexpected ! flag before --table");
        this.fail(tok, "the -t option cannot be used in a restore file: the table is the `*table` line's");
        break;
      case "w":
      case "W":
        this.fail(tok, `you cannot use \`-${f.code}\` in a restore file`);
        break;
      case "M":
        break; // --modprobe: which program loads kernel modules; nothing to sluice
      case "c": {
        if (this.prefixCounters) this.fail(tok, "multiple -c flags not allowed (the line already has `[packets:bytes]`)");
        this.setOption("c", tok);
        let pcnt = arg!.text;
        let bcnt: string | null = null;
        let btok = arg!;
        const comma = pcnt.indexOf(",");
        if (comma >= 0) {
          bcnt = pcnt.slice(comma + 1);
          pcnt = pcnt.slice(0, comma);
        } else if (this.hasArg()) {
          btok = this.toks[this.i++]!;
          bcnt = btok.text;
        }
        if (bcnt === null) this.fail(tok, "-c requires packet and byte counter");
        const packets = counterValue(pcnt);
        if (packets === undefined) this.fail(arg!, `-c packet counter \`${pcnt}\` is not a number`);
        const bytes = counterValue(bcnt);
        if (bytes === undefined) this.fail(btok, `-c byte counter \`${bcnt}\` is not a number`);
        this.counters = { packets, bytes, tok };
        break;
      }
      case "4":
      case "6":
        if (Number(f.code) !== this.family) this.ignored = true; // "line is ignored by ip6tables-restore" (and the reverse)
        break;
      default:
        this.unknownOption(tok, f.spelled, false);
    }
    this.invert = null;
  }

  /** parse_rulenumber: 1..INT_MAX. */
  private ruleNumber(t: Token): number {
    const n = strtoui(t.text, 0x7fffffff);
    if (n === undefined || n === 0) this.fail(t, `invalid rule number \`${t.text}\``);
    return n;
  }

  /** An option of a match or target (command_default → xtables_option_parse). */
  private extOption(f: Extract<Found, { kind: "ext" }>): void {
    const owner = f.ext.kind === "target" ? this.target! : this.latest.get(f.ext.spec.name)!;
    const negated = this.invert !== null;
    // For messages: the spelling used, or the main one when the text abbreviated it.
    const written = (): string => (f.spelled === f.main || findOption(f.ext.spec, f.spelled) !== undefined ? f.spelled : f.main);
    // xtables_option_parse: every option of the extensions sluice knows may be given once per match (no XTOPT_MULTI)
    if (owner.options.some((o) => o.name === f.main)) this.fail(f.tok, `${f.ext.spec.name}: option \`${written()}\` can only be used once`);
    if (negated && !f.spec.negatable) this.fail(this.invert!, `${f.ext.spec.name}: option \`${written()}\` cannot be inverted`);
    const args: string[] = [];
    if (f.arg !== null) {
      if (f.spec.negatable) this.refuseIntrapositioned(written(), f.arg);
      args.push(f.arg.text);
    }
    if (f.spec.args === 2) {
      // The extension reads its second argument itself (e.g. libxt_tcp's --tcp-flags).
      const second = this.toks[this.i];
      if (second === undefined || second.text[0] === "-" || second.text[0] === "!") this.fail(f.tok, `${written()} requires two args`);
      args.push(second.text);
      this.i++;
    }
    const opt: OptionNode = { name: f.main, written: f.spelled, negated, args, pos: this.at(f.tok) };
    owner.options.push(opt);
  }

  // -- after getopt ----------------------------------------------------------

  /** The checks after the getopt loop (do_parse), then the addresses (post_parse), then the command (do_command). */
  apply(): void {
    if (this.ignored) return;
    const first = this.toks[0] ?? { text: "", col: 1, quoted: false };
    const p = this.p;
    if (this.table.name === "nat") {
      if (p.policy?.text === "DROP") this.fail(p.policy, 'the "nat" table is not intended for filtering, the use of DROP is therefore inhibited');
      if (this.jumpTok?.text === "DROP") this.fail(this.jumpTok, 'the "nat" table is not intended for filtering, the use of DROP is therefore inhibited');
    }
    if (p.cmd === 0) this.fail(first, "no command specified (-A, -I, -N, ...)");
    if (this.invert !== null) this.fail(this.invert, "nothing appropriate following !");
    for (const o of Object.keys(OPT) as OptLetter[]) {
      if ((this.options & OPT[o].bit) !== 0 && (OPT[o].cmds & p.cmd) === 0) {
        this.fail(this.optionTok[o]!, `illegal option \`-${o}\` with -${CMD_LETTER[p.cmd]}`);
      }
    }
    if (p.chain !== null && p.chain.text.length > MAX_NAME) {
      this.fail(p.chain, `chain name \`${p.chain.text}\` too long (must be under ${MAX_NAME + 1} chars)`);
    }
    if ((p.cmd & CMD_RULE) !== 0) {
      const c = p.chain!.text;
      if ((c === "PREROUTING" || c === "INPUT") && this.outIface !== null) this.fail(this.optionTok.o!, `can't use -o with ${c}: packets there have no output interface yet`);
      if ((c === "POSTROUTING" || c === "OUTPUT") && this.inIface !== null) this.fail(this.optionTok.i!, `can't use -i with ${c}: locally generated packets have no input interface`);
    }
    const srcs = this.src === null ? [null] : parseAddress(this.src.tok.text, this.family, this.at(this.src.tok), this.src.tok.quoted);
    const dsts = this.dst === null ? [null] : parseAddress(this.dst.tok.text, this.family, this.at(this.dst.tok), this.dst.tok.quoted);
    if ((srcs.length > 1 || dsts.length > 1) && (this.src?.negated === true || this.dst?.negated === true)) {
      const neg = this.src?.negated === true ? this.src.tok : this.dst!.tok;
      this.fail(neg, "! not allowed with multiple source or destination IP addresses");
    }
    for (const a of srcs) if (a !== null) a.negated = this.src!.negated;
    for (const a of dsts) if (a !== null) a.negated = this.dst!.negated;
    this.command(srcs, dsts);
  }

  private chainOf(tok: Token): ChainNode {
    const c = this.table.chains.get(tok.text);
    if (c === undefined) {
      const later = this.table.declaredAt.get(tok.text);
      const hint = later !== undefined && later > this.line ? ` (it is declared only at line ${later}; iptables-restore needs it declared first)` : "";
      this.fail(tok, `chain \`${tok.text}\` does not exist in table ${this.table.name}${hint}`);
    }
    return c;
  }

  /** The target, resolved as do_command does: a target extension, else a user chain, else refused. */
  private resolveTarget(): void {
    const t = this.target;
    if (t === null) return;
    const tok = this.jumpTok!;
    const chain = this.table.chains.get(t.name);
    if (this.targetSpec !== null) {
      t.chain = false;
      return;
    }
    if (chain === undefined) {
      if (t.kind === "goto" && findTarget(t.name, this.family) !== undefined) this.fail(tok, `goto \`${t.name}\` is not a chain`);
      const later = this.table.declaredAt.get(t.name);
      const hint =
        later !== undefined && later > this.line
          ? ` (chain \`${t.name}\` is declared only at line ${later}; iptables-restore needs chains declared before the rules that jump to them)`
          : "";
      this.fail(tok, `unknown target or chain \`${t.name}\` in table ${this.table.name}${hint}`);
    }
    if (chain.builtin) this.fail(tok, `cannot ${t.kind === "goto" ? "go" : "jump"} to built-in chain ${t.name} (Linux refuses it)`);
    t.chain = true;
  }

  /** The rules this line describes: one per source × destination, sources outer (as iptables loops). */
  private rules(srcs: (AddressNode | null)[], dsts: (AddressNode | null)[]): RuleNode[] {
    const out: RuleNode[] = [];
    const many = srcs.length * dsts.length > 1;
    for (const s of srcs) {
      for (const d of dsts) {
        // One rule owns this line's nodes; the copies of a comma list get their own (nothing is shared).
        const first = out.length === 0 || !many;
        out.push({
          pos: { file: this.file, line: this.line, col: 1 },
          proto: this.proto === null || first ? this.proto : { ...this.proto },
          src: s === null || first ? s : { ...s, words: [...s.words], mask: [...s.mask] },
          dst: d === null || first ? d : { ...d, words: [...d.words], mask: [...d.mask] },
          inIface: this.inIface === null || first ? this.inIface : { ...this.inIface },
          outIface: this.outIface === null || first ? this.outIface : { ...this.outIface },
          fragment: this.fragment === null || first ? this.fragment : { ...this.fragment },
          matches: first ? this.matches : this.matches.map(cloneMatch),
          target: this.target === null || first ? this.target : { ...this.target, options: this.target.options.map(cloneOption) },
          packets: this.counters?.packets ?? 0n,
          bytes: this.counters?.bytes ?? 0n,
        });
      }
    }
    return out;
  }

  private command(srcs: (AddressNode | null)[], dsts: (AddressNode | null)[]): void {
    const p = this.p;
    const table = this.table;
    switch (p.cmd) {
      case CMD.APPEND: {
        const chain = this.chainOf(p.chain!);
        this.resolveTarget();
        chain.rules.push(...this.rules(srcs, dsts));
        break;
      }
      case CMD.INSERT: {
        const chain = this.chainOf(p.chain!);
        this.resolveTarget();
        if (p.rulenum > chain.rules.length + 1) {
          this.fail(p.rulenumTok!, `index of insertion too big: ${chain.name} has ${chain.rules.length} rule(s), so -I takes 1..${chain.rules.length + 1}`);
        }
        // Each address pair is inserted at the same index, so they end up in reverse order, as in iptables.
        for (const r of this.rules(srcs, dsts)) chain.rules.splice(p.rulenum - 1, 0, r);
        break;
      }
      case CMD.REPLACE: {
        const chain = this.chainOf(p.chain!);
        this.resolveTarget();
        const rs = this.rules(srcs, dsts);
        if (rs.length !== 1) this.fail(p.cmdTok!, "replacement rule does not specify a unique address");
        if (p.rulenum > chain.rules.length) this.fail(p.rulenumTok!, `index of replacement too big: ${chain.name} has ${chain.rules.length} rule(s)`);
        chain.rules[p.rulenum - 1] = rs[0]!;
        break;
      }
      case CMD.DELETE_NUM: {
        const chain = this.chainOf(p.chain!);
        if (p.rulenum > chain.rules.length) this.fail(p.rulenumTok!, `index of deletion too big: ${chain.name} has ${chain.rules.length} rule(s)`);
        chain.rules.splice(p.rulenum - 1, 1);
        break;
      }
      case CMD.DELETE:
      case CMD.CHECK: {
        const chain = this.chainOf(p.chain!);
        this.resolveTarget();
        for (const r of this.rules(srcs, dsts)) {
          const k = chain.rules.findIndex((x) => sameRule(x, r));
          if (k < 0) this.fail(p.cmdTok!, `bad rule (does a matching rule exist in ${chain.name}?)`);
          if (p.cmd === CMD.DELETE) chain.rules.splice(k, 1);
        }
        break;
      }
      case CMD.FLUSH:
        for (const c of p.chain === null ? table.chains.values() : [this.chainOf(p.chain)]) c.rules = [];
        break;
      case CMD.ZERO:
      case CMD.ZERO_NUM:
        // Checked, then nothing: libiptc (iptc_zero_entries) zeroes only counters read from the
        // kernel, and a restore has flushed the table, so every counter here came from this file
        // and survives -Z (iptables-legacy-restore 1.8.9 keeps them; the nft backend crashes).
        for (const c of p.chain === null ? table.chains.values() : [this.chainOf(p.chain)]) {
          if (p.cmd === CMD.ZERO_NUM && c.rules[p.rulenum - 1] === undefined) this.fail(p.rulenumTok!, `${c.name} has no rule ${p.rulenum}`);
        }
        break;
      case CMD.NEW_CHAIN:
        if (table.chains.has(p.chain!.text)) this.fail(p.chain!, `chain \`${p.chain!.text}\` already exists`);
        table.addUser(p.chain!.text, this.at(p.chain!));
        break;
      case CMD.DELETE_CHAIN:
        for (const c of p.chain === null ? [...table.user] : [this.chainOf(p.chain)]) this.deleteChain(c, p.chain ?? p.cmdTok!);
        break;
      case CMD.RENAME_CHAIN: {
        const c = this.chainOf(p.chain!);
        const to = p.newname!.text;
        if (c.builtin) this.fail(p.chain!, `cannot rename built-in chain ${c.name}`);
        if (table.chains.has(to)) this.fail(p.newname!, `chain \`${to}\` already exists`);
        for (const ch of table.chains.values()) {
          for (const r of ch.rules) if (r.target !== null && r.target.chain && r.target.name === c.name) r.target.name = to;
        }
        table.chains.delete(c.name);
        c.name = to;
        table.chains.set(to, c);
        break;
      }
      case CMD.SET_POLICY: {
        const c = this.chainOf(p.chain!);
        if (!c.builtin) this.fail(p.chain!, `cannot set a policy on user chain ${c.name} (only built-in chains have one)`);
        const pol = p.policy!.text;
        if (pol !== "ACCEPT" && pol !== "DROP") this.fail(p.policy!, `bad policy name \`${pol}\` (ACCEPT or DROP)`);
        c.policy = pol;
        // Without -c the policy counters restart at zero (libiptc: COUNTER_MAP_NOMAP).
        c.packets = this.counters?.packets ?? 0n;
        c.bytes = this.counters?.bytes ?? 0n;
        break;
      }
    }
  }

  private deleteChain(c: ChainNode, tok: Token): void {
    if (c.builtin) this.fail(tok, `cannot delete built-in chain ${c.name}`);
    if (c.rules.length > 0) this.fail(tok, `cannot delete chain ${c.name}: it is not empty (flush it first with -F)`);
    const ref = this.table.referenceTo(c.name);
    if (ref !== undefined) this.fail(tok, `cannot delete chain ${c.name}: a rule of ${ref.chain.name} (line ${ref.rule.pos.line}) jumps to it`);
    this.table.chains.delete(c.name);
    this.table.user.splice(this.table.user.indexOf(c), 1);
  }
}

function cloneOption(o: OptionNode): OptionNode {
  return { ...o, args: [...o.args] };
}

function cloneMatch(m: MatchNode): MatchNode {
  return { ...m, options: m.options.map(cloneOption) };
}

/** A counter value: decimal digits, at most 2^64 - 1. */
function counterValue(s: string): bigint | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const v = BigInt(s);
  return v <= U64_MAX ? v : undefined;
}

/** `[packets:bytes]` → counters, or undefined when malformed. */
function bracketCounters(s: string): { packets: bigint; bytes: bigint } | undefined {
  const m = /^\[([0-9]+):([0-9]+)\]$/.exec(s);
  if (m === null) return undefined;
  const packets = counterValue(m[1]!);
  const bytes = counterValue(m[2]!);
  return packets === undefined || bytes === undefined ? undefined : { packets, bytes };
}

/**
 * Two rules are the same for -D and -C: equal in everything the kernel
 * compares, ignoring counters, positions and spelling (`-p 6` and `-p tcp`,
 * `--dport` and `--destination-port`, an implicit and an explicit `-m tcp`).
 * Option values are compared as written (`--dport ssh` is not `--dport 22`
 * here, a refusal on the safe side).
 */
export function sameRule(a: RuleNode, b: RuleNode): boolean {
  const addr = (x: AddressNode | null, y: AddressNode | null): boolean =>
    x === null || y === null ? x === y : x.negated === y.negated && x.words.every((w, k) => w === y.words[k]) && x.mask.every((w, k) => w === y.mask[k]);
  const iface = (x: IfaceNode | null, y: IfaceNode | null): boolean => (x === null || y === null ? x === y : x.name === y.name && x.negated === y.negated);
  const opts = (x: OptionNode[], y: OptionNode[]): boolean =>
    x.length === y.length && x.every((o, k) => o.name === y[k]!.name && o.negated === y[k]!.negated && o.args.join("\0") === y[k]!.args.join("\0"));
  return (
    (a.proto?.value ?? 0) === (b.proto?.value ?? 0) &&
    (a.proto?.negated ?? false) === (b.proto?.negated ?? false) &&
    addr(a.src, b.src) &&
    addr(a.dst, b.dst) &&
    iface(a.inIface, b.inIface) &&
    iface(a.outIface, b.outIface) &&
    (a.fragment === null) === (b.fragment === null) &&
    (a.fragment?.negated ?? false) === (b.fragment?.negated ?? false) &&
    a.matches.length === b.matches.length &&
    a.matches.every((m, k) => m.name === b.matches[k]!.name && opts(m.options, b.matches[k]!.options)) &&
    (a.target === null || b.target === null
      ? a.target === b.target
      : a.target.name === b.target.name && a.target.kind === b.target.kind && opts(a.target.options, b.target.options))
  );
}

// ---------------------------------------------------------------------------
// Files: ip46tables_restore_main / xtables_restore_parse
// ---------------------------------------------------------------------------

/** `:NAME` and `-N NAME` lines of the table block that starts after `from` (for "declared only at line N"). */
function declarationsAhead(lines: string[], from: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let k = from; k < lines.length; k++) {
    const l = lines[k]!;
    if (l === "COMMIT") break;
    const m = /^:(\S+)/.exec(l) ?? /(?:^|\s)(?:-N|--new-chain)\s+(\S+)/.exec(l);
    if (m !== null && !out.has(m[1]!)) out.set(m[1]!, k + 1);
  }
  return out;
}

/**
 * Parses a whole iptables-restore file of one family (`iptables-save` or
 * `ip6tables-save` output, legacy or nft, tidy or not). Each `*table`
 * block starts the table afresh (restore flushes it); a table given twice
 * keeps its first place and the second block's content. Throws RuleError.
 */
export function parseRuleset(text: string, file: string, family: 4 | 6): RulesetNode {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop(); // the newline ending the last line
  const tables: TableNode[] = [];
  let cur: TableState | null = null;
  const at = (line: number, col: number): SourcePos => ({ file, line, col });

  if (text.startsWith("\uFEFF")) {
    throw new RuleError(at(1, 1), "byte-order mark at the start of the file: iptables-restore refuses it (it reads bytes, not text); save the file without a BOM");
  }
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k]!;
    const n = k + 1;
    if (line === "") continue;
    if (line[0] === "#") continue;
    if (line.endsWith("\r")) {
      throw new RuleError(
        at(n, line.length),
        "CRLF line ending: iptables-restore refuses it (the carriage return becomes part of the last word); convert the file to LF line endings",
      );
    }
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
      throw new RuleError(at(n, 1), `line longer than ${MAX_LINE_BYTES} bytes (iptables-restore reads lines into a 10240-byte buffer)`);
    }
    if (line === "COMMIT" && cur !== null) {
      const done = cur.finish();
      const prev = tables.findIndex((t) => t.name === done.name);
      if (prev >= 0) tables[prev] = done;
      else tables.push(done);
      cur = null;
      continue;
    }
    if (line[0] === "*" && cur === null) {
      const m = /^\*[ \t]*([^ \t]*)/.exec(line)!;
      const name = m[1]!;
      const col = line.indexOf(name, 1) + 1;
      if (name === "") throw new RuleError(at(n, 1), "table name missing after `*`");
      if (!(TABLES as readonly string[]).includes(name)) {
        throw new RuleError(at(n, col), `unknown table \`${name}\` (sluice has ${TABLES.join(", ")})`);
      }
      cur = new TableState(name as TableName, at(n, col), declarationsAhead(lines, k + 1));
      continue;
    }
    if (cur === null) {
      const what = line === "COMMIT" ? "COMMIT" : line[0] === ":" ? "chain declaration" : "rule";
      throw new RuleError(at(n, 1), `${what} outside a table: no \`*table\` line before it`);
    }
    if (line[0] === "*") {
      throw new RuleError(at(n, 1), `\`${line.split(/[ \t]/)[0]}\` inside table ${cur.name} (opened at line ${cur.pos.line}): COMMIT it first`);
    }
    if (line[0] === ":") {
      chainLine(line, n, file, cur);
      continue;
    }
    // A rule line: `[packets:bytes]` prefix, then words.
    let from = 0;
    let counters: { packets: bigint; bytes: bigint; tok: Token } | null = null;
    if (line[0] === "[") {
      const close = line.indexOf("]");
      if (close < 0) throw new RuleError(at(n, 1), "counters `[packets:bytes` without a closing `]`");
      const c = bracketCounters(line.slice(0, close + 1));
      if (c === undefined) throw new RuleError(at(n, 1), `bad counters \`${line.slice(0, close + 1)}\` (expected [packets:bytes], decimal, each below 2^64)`);
      counters = { ...c, tok: { text: line.slice(0, close + 1), col: 1, quoted: false } };
      from = close + 1;
    }
    const toks = tokenizeLine(line, n, file, from);
    const maxWords = MAX_RULE_WORDS - (counters === null ? 0 : 3);
    if (toks.length > maxWords) throw new RuleError(at(n, toks[maxWords]!.col), `more than ${maxWords} words on one line (iptables-restore's argument limit)`);
    const r = new RuleLine(toks, family, cur, file, n, counters);
    r.parse();
    r.apply();
  }
  if (cur !== null) {
    throw new RuleError(at(lines.length + 1, 1), `COMMIT expected: table ${cur.name} (opened at line ${cur.pos.line}) is never committed`);
  }
  return { family, file, tables };
}

/** `:CHAIN POLICY [packets:bytes]` (words split on blanks, no quoting, as restore's strtok). */
function chainLine(line: string, n: number, file: string, t: TableState): void {
  const words: { text: string; col: number }[] = [];
  const re = /[^ \t]+/g;
  for (let m = re.exec(line.slice(1)); m !== null; m = re.exec(line.slice(1))) words.push({ text: m[0], col: m.index + 2 });
  const at = (col: number): SourcePos => ({ file, line: n, col });
  const name = words[0];
  if (name === undefined) throw new RuleError(at(1), "chain name missing after `:`");
  if (name.text.length > MAX_NAME) throw new RuleError(at(name.col), `invalid chain name \`${name.text}\` (${MAX_NAME} chars max)`);
  const policy = words[1];
  if (policy === undefined) throw new RuleError(at(line.length + 1), `policy missing for chain ${name.text} (ACCEPT or DROP for a built-in chain, - for a user chain)`);
  let counters = { packets: 0n, bytes: 0n };
  const ctr = words[2];
  if (ctr !== undefined) {
    const c = bracketCounters(ctr.text);
    if (c === undefined) throw new RuleError(at(ctr.col), `bad counters \`${ctr.text}\` for chain ${name.text} (expected [packets:bytes], decimal, each below 2^64)`);
    counters = c;
  }
  const existing = t.chains.get(name.text);
  if (existing !== undefined && existing.builtin) {
    if (policy.text === "-") return; // a built-in chain keeps its policy
    if (policy.text !== "ACCEPT" && policy.text !== "DROP") throw new RuleError(at(policy.col), `bad policy name \`${policy.text}\` for ${name.text} (ACCEPT or DROP)`);
    existing.policy = policy.text;
    existing.packets = counters.packets;
    existing.bytes = counters.bytes;
    existing.pos = at(name.col);
    return;
  }
  if (STANDARD_VERDICTS.has(name.text)) throw new RuleError(at(name.col), `chain name \`${name.text}\` may not clash with target name`);
  if (existing !== undefined) {
    throw new RuleError(at(name.col), `duplicate chain \`${name.text}\` (already declared at line ${existing.pos.line})`);
  }
  if (policy.text !== "-") {
    throw new RuleError(at(policy.col), `policy on user chain ${name.text}: only built-in chains of ${t.name} (${Object.keys(BUILTIN_CHAINS[t.name]).join(", ")}) have one; write \`-\``);
  }
  t.addUser(name.text, at(name.col));
  const c = t.chains.get(name.text)!;
  c.packets = counters.packets;
  c.bytes = counters.bytes;
}

/**
 * Cycles of jumps and gotos between user chains of a table (Linux refuses
 * a ruleset with a loop: mark_source_chains). Each cycle is listed once, as
 * the chain names along it, starting at its first chain in table order.
 * A helper for the compiler; the parser does not refuse loops itself.
 */
export function findLoops(table: TableNode): string[][] {
  const byName = new Map(table.chains.map((c) => [c.name, c] as const));
  const state = new Map<string, 1 | 2>(); // 1: on the path, 2: done
  const loops: string[][] = [];
  const path: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 1);
    path.push(name);
    for (const r of byName.get(name)?.rules ?? []) {
      if (r.target === null || !r.target.chain) continue;
      const next = r.target.name;
      const s = state.get(next);
      if (s === 1) loops.push(path.slice(path.indexOf(next)));
      else if (s === undefined) visit(next);
    }
    path.pop();
    state.set(name, 2);
  };
  for (const c of table.chains) if (!state.has(c.name)) visit(c.name);
  return loops;
}
