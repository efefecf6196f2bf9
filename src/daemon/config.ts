/**
 * The daemon's configuration file (`sluice run --config FILE`, YAML).
 *
 *   text ──yaml.parseDocument──▶ Document (nodes keep source offsets)
 *        ──toJS──▶ plain values ──zod (strict objects)──▶ typed, defaults filled
 *        ──cross-field checks, resolveConntrackConfig──▶ SluiceConfig
 *
 * Every problem becomes a ConfigIssue naming the field path and, found by
 * walking the Document along that path, the file:line:column of the value
 * (or of the key, for an unknown key):
 *
 *   config/sluice.yaml:12:5: nfqueue.queues[1]: expected a queue number 0..65535 or a range "first-last", got "x"
 *
 * All issues of a file are reported together (one ConfigError, one line
 * each); unknown keys are errors, so no setting is ever silently ignored.
 * The defaults are in the schema below and, documented, in
 * config/sluice.yaml; a test keeps the two equal.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import { z } from "zod";
import { resolveConntrackConfig, type ConntrackConfig } from "../conntrack/config.js";
import { ERR, SluiceError, type ErrorCode } from "../errors.js";
import { isIpAddress, parseCidr } from "../route/addr.js";
import { LOG_LEVELS, type LogLevel } from "./log.js";

// ─── The resolved configuration ───────────────────────────────────────────

/** How packets reach sluice. */
export type Mode = "nfqueue" | "tun";

/** NFQUEUE mode settings. */
export interface NfqueueConfig {
  /** Queue numbers, sorted, unique (ranges expanded). */
  queues: number[];
  /** NFQA_CFG_PARAMS copy_range. */
  copyRange: number;
  /** NFQA_CFG_QUEUE_MAXLEN. */
  maxLen: number;
  /** NFQA_CFG_F_FAIL_OPEN. */
  failOpen: boolean;
  /** NFQA_CFG_F_GSO. */
  gso: boolean;
  /** iptables NFQUEUE --queue-bypass. */
  queueBypass: boolean;
  /** Verdict on close for packets not yet judged. */
  defaultVerdict: "accept" | "drop";
  /** Most packets per receive batch. */
  batch: number;
}

/** TUN mode settings. */
export interface TunConfig {
  device: string;
  mtu: number;
  /** `address/prefix` strings, as written. */
  addresses: string[];
  /** Routing table for the route into the device. */
  table: number;
  /** `ip rule` priority of the rules sending LAN traffic to `table`. */
  rulePriority: number;
  /** Interfaces whose traffic goes through the device (already defaulted to interfaces.lan). */
  lanInterfaces: string[];
  batch: number;
}

/** LAN- and WAN-facing interfaces (empty = all). */
export interface InterfacesConfig {
  lan: string[];
  wan: string[];
}

/** Logging. */
export interface LogConfig {
  level: LogLevel;
  pretty: boolean | "auto";
  /** Seconds between counter summaries; 0 = none. */
  summaryInterval: number;
}

/** The control socket. */
export interface ControlConfig {
  socket: string;
}

/** The Prometheus endpoint. */
export interface MetricsConfig {
  /** null: no endpoint. */
  port: number | null;
  address: string;
}

/** Rulesets loaded at start and on SIGHUP (iptables-restore format). */
export interface RulesConfig {
  /** iptables (IPv4) ruleset file, resolved against the config file's directory; null: none. */
  ipv4: string | null;
  /** ip6tables (IPv6) ruleset file; null: none. */
  ipv6: string | null;
}

/** The whole, validated configuration with every default filled in. */
export interface SluiceConfig {
  /** Instance id: tags the iptables rules (`sluice:<instance>`) and names the state file. */
  instance: string;
  mode: Mode;
  interfaces: InterfacesConfig;
  nfqueue: NfqueueConfig;
  tun: TunConfig;
  reinjectMark: number;
  conntrack: ConntrackConfig;
  log: LogConfig;
  control: ControlConfig;
  metrics: MetricsConfig;
  rules: RulesConfig;
  stateDir: string;
}

// ─── Errors ───────────────────────────────────────────────────────────────

/** One problem in a config file. */
export interface ConfigIssue {
  /** ERR.CONFIG_FIELD, ERR.CONFIG_UNKNOWN or ERR.CONFIG_SYNTAX. */
  code: ErrorCode;
  /** The field, e.g. `nfqueue.queues[1]` (empty for the document itself). */
  path: string;
  /** 1-based position of the offending value (or key), when known. */
  line?: number;
  col?: number;
  /** What is wrong, e.g. `expected an integer 1..1024, got 0`. */
  message: string;
}

/**
 * A config file with problems. `message` has one line per issue, each
 * `FILE:LINE:COL: PATH: MESSAGE`; `code` is CONFIG_SYNTAX for YAML syntax
 * errors, CONFIG_UNKNOWN when every issue is an unknown key, else CONFIG_FIELD.
 */
export class ConfigError extends SluiceError {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];
  constructor(file: string, issues: readonly ConfigIssue[]) {
    const code = issues.some((i) => i.code === ERR.CONFIG_SYNTAX)
      ? ERR.CONFIG_SYNTAX
      : issues.every((i) => i.code === ERR.CONFIG_UNKNOWN)
        ? ERR.CONFIG_UNKNOWN
        : ERR.CONFIG_FIELD;
    super(code, issues.map((i) => formatIssue(file, i)).join("\n"));
    this.name = "ConfigError";
    this.file = file;
    this.issues = issues;
  }
}

function formatIssue(file: string, i: ConfigIssue): string {
  const where = i.line !== undefined ? `${file}:${i.line}:${i.col}` : file;
  return i.path === "" ? `${where}: ${i.message}` : `${where}: ${i.path}: ${i.message}`;
}

// ─── Schema ───────────────────────────────────────────────────────────────

/** How a value reads in a message. */
function got(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null (an empty value)";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  return JSON.stringify(v);
}

/** A zod error callback: "<what>, got <input>". */
const expected = (what: string) => (iss: { input?: unknown }) => `expected ${what}, got ${got(iss.input)}`;

function int(min: number, max: number, what = `an integer ${min}..${max}`) {
  const e = expected(what);
  return z.number({ error: e }).int({ error: e }).min(min, { error: e }).max(max, { error: e });
}

const bool = () => z.boolean({ error: expected("true or false") });

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expected(values.join(" | ")) });
}

/** Linux's dev_valid_name (net/core/dev.c): 1..15 bytes, not "." or "..", no '/', ':' or whitespace. */
function validIfname(s: string): boolean {
  return s !== "" && Buffer.byteLength(s) < 16 && s !== "." && s !== ".." && !/[/:\s]/.test(s);
}

const ifname = () =>
  z
    .string({ error: expected("an interface name") })
    .refine(validIfname, { error: (iss) => `not a valid interface name (1-15 bytes, no '/', ':' or whitespace): ${got(iss.input)}` });

const ifnames = () => z.array(ifname(), { error: expected("a list of interface names") });

/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
const SUN_PATH_MAX = 107;

const absPath = (max = 4095) =>
  z
    .string({ error: expected("an absolute path") })
    .refine((s) => isAbsolute(s) && !s.includes("\0") && Buffer.byteLength(s) <= max, {
      error: (iss) => `expected an absolute path of at most ${max} bytes, got ${got(iss.input)}`,
    });

/** Most queues one daemon binds (one worker each). */
export const MAX_QUEUES = 256;

const QUEUE_WHAT = 'a queue number 0..65535 or a range "first-last"';

/** `queues`: a number, a "first-last" range, or a list of both; expanded, sorted, duplicates rejected. */
const queues = z.unknown().transform((v, ctx) => {
  const items = Array.isArray(v) ? v : [v];
  const out = new Set<number>();
  const issue = (message: string, i: number): void => {
    ctx.addIssue({ code: "custom", message, path: Array.isArray(v) ? [i] : [], input: items[i] });
  };
  if (Array.isArray(v) && v.length === 0) ctx.addIssue({ code: "custom", message: "expected at least one queue", input: v });
  for (let i = 0; i < items.length; i++) {
    const x = items[i];
    let first: number;
    let last: number;
    if (typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 65535) first = last = x;
    else if (typeof x === "string" && /^\s*\d+\s*-\s*\d+\s*$/.test(x)) {
      [first, last] = x.split("-").map((p) => Number(p.trim())) as [number, number];
      if (first > 65535 || last > 65535) {
        issue(`queue range ${got(x)} goes beyond 65535`, i);
        continue;
      }
      if (first > last) {
        issue(`queue range ${got(x)} is backwards (first > last)`, i);
        continue;
      }
    } else {
      issue(`expected ${QUEUE_WHAT}, got ${got(x)}`, i);
      continue;
    }
    for (let q = first; q <= last; q++) {
      if (out.has(q)) {
        issue(`queue ${q} is listed more than once`, i);
        break;
      }
      out.add(q);
    }
    if (out.size > MAX_QUEUES) {
      issue(`more than ${MAX_QUEUES} queues`, i);
      break;
    }
  }
  return [...out].sort((a, b) => a - b);
});

/** `address/prefix`, IPv4 or IPv6, prefix required. */
const cidr = () =>
  z
    .string({ error: expected('an address with a prefix length ("10.0.0.1/24", "fd00::1/64")') })
    .refine((s) => parseCidr(s, false) !== null, {
      error: (iss) => `expected an address with a prefix length ("10.0.0.1/24", "fd00::1/64"), got ${got(iss.input)}`,
    });

/** A section: strict (unknown keys are errors); absent or empty (null) means all defaults. */
function section<S extends z.ZodRawShape>(shape: S) {
  const obj = z.strictObject(shape, { error: (iss) => (iss.code === "unrecognized_keys" ? undefined : `expected a mapping, got ${got(iss.input)}`) });
  // Every field has a default, so {} is a valid input (the generic signature cannot know it).
  return { obj, schema: z.preprocess((v) => (v === null ? undefined : v), obj.prefault({} as z.input<typeof obj>)) };
}

const nfqueue = section({
  queues: queues.default([0]),
  copyRange: int(64, 65535).default(65535),
  maxLen: int(1, 0xffffffff).default(1024),
  failOpen: bool().default(false),
  gso: bool().default(false),
  queueBypass: bool().default(false),
  defaultVerdict: oneOf(["accept", "drop"]).default("drop"),
  batch: int(1, 1024).default(64),
});

const tun = section({
  device: ifname().default("sluice0"),
  mtu: int(576, 65535).default(1500),
  addresses: z.array(cidr(), { error: expected("a list of addresses with prefix lengths") }).default([]),
  table: int(1, 0xffffffff)
    .refine((t) => t < 253 || t > 255, { error: (iss) => `table ${got(iss.input)} is reserved (253 default, 254 main, 255 local)` })
    .default(100),
  rulePriority: int(1, 32765).default(1000),
  lanInterfaces: ifnames().default([]),
  batch: int(1, 1024).default(64),
});

const interfaces = section({
  lan: ifnames().default([]),
  wan: ifnames().default([]),
});

const log = section({
  level: oneOf(LOG_LEVELS).default("info"),
  pretty: z.union([z.boolean(), z.literal("auto")], { error: expected("true | false | auto") }).default("auto"),
  summaryInterval: int(0, 86400).default(60),
});

const control = section({
  socket: absPath(SUN_PATH_MAX).default("/run/sluice/sluice.sock"),
});

const metrics = section({
  port: int(1, 65535, "a port 1..65535 or null").nullable().default(null),
  address: z
    .string({ error: expected("an IPv4 or IPv6 address") })
    .refine(isIpAddress, { error: (iss) => `expected an IPv4 or IPv6 address, got ${got(iss.input)}` })
    .default("127.0.0.1"),
});

/** Validated by resolveConntrackConfig (its own bounds and messages); here only "a mapping". */
const conntrack = z.preprocess(
  (v) => (v === null ? undefined : v),
  z.record(z.string(), z.unknown(), { error: expected("a mapping") }).default({}),
);

const rulesFile = () =>
  z
    .string({ error: expected("a ruleset file path or null") })
    .min(1, { error: "expected a ruleset file path or null, got an empty string" })
    .nullable()
    .default(null);

const rules = section({
  ipv4: rulesFile(),
  ipv6: rulesFile(),
});

const root = section({
  instance: z
    .string({ error: expected("an instance id") })
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/, { error: (iss) => `expected 1-32 characters of [A-Za-z0-9_.-] starting with a letter or digit, got ${got(iss.input)}` })
    .default("sluice"),
  mode: oneOf(["nfqueue", "tun"]).default("nfqueue"),
  interfaces: interfaces.schema,
  nfqueue: nfqueue.schema,
  tun: tun.schema,
  reinjectMark: int(1, 0xffffffff, "a mark 1..0xffffffff").default(0x5c),
  conntrack,
  log: log.schema,
  control: control.schema,
  metrics: metrics.schema,
  rules: rules.schema,
  stateDir: absPath().default("/run/sluice"),
});

/** The keys each section accepts, for "unknown key" messages. */
const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  "": Object.keys(root.obj.shape),
  interfaces: Object.keys(interfaces.obj.shape),
  nfqueue: Object.keys(nfqueue.obj.shape),
  tun: Object.keys(tun.obj.shape),
  log: Object.keys(log.obj.shape),
  control: Object.keys(control.obj.shape),
  metrics: Object.keys(metrics.obj.shape),
  rules: Object.keys(rules.obj.shape),
};

// ─── Positions ────────────────────────────────────────────────────────────

type Path = readonly (string | number)[];

/** `nfqueue.queues[1]`, `conntrack.timeouts.udp`. */
export function formatPath(path: Path): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s === "" ? p : `.${p}`;
  return s;
}

/**
 * The node at `path` in the document (the key node when `key` is set), or
 * the deepest node on the way when the path goes further than the file
 * (a defaulted field): errors then point at the enclosing section.
 */
function nodeAt(doc: Document, path: Path, key: boolean): Node | null {
  let node: unknown = doc.contents;
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      if (pair === undefined) return node;
      if (key && i === path.length - 1) return pair.key as Node;
      // `port:` with nothing after it has no value node: point at the key.
      if (pair.value === null) return pair.key as Node;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number" && seg < node.items.length) {
      node = node.items[seg];
    } else {
      return (node as Node | null) ?? null;
    }
  }
  return (node as Node | null) ?? null;
}

// ─── Parsing ──────────────────────────────────────────────────────────────

/** Loads and validates a config file. Throws ConfigError (or SluiceError ERR.IO when unreadable). */
export function loadConfig(path: string): SluiceConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === "ENOENT" ? "no such file" : err.code === "EACCES" ? "permission denied" : err.code === "EISDIR" ? "is a directory" : err.message;
    throw new SluiceError(ERR.IO, `config file ${path}: ${why}`);
  }
  return parseConfig(text, path);
}

/** Parses and validates config text; `name` (the file name) prefixes every error. */
export function parseConfig(text: string, name: string): SluiceConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  const issues: ConfigIssue[] = [];
  const at = (offset: number | undefined): { line?: number; col?: number } => {
    if (offset === undefined) return {};
    const p = lines.linePos(offset);
    return { line: p.line, col: p.col };
  };
  // Syntax errors, and warnings (unknown tags, ...): nothing may be half-understood.
  for (const e of [...doc.errors, ...doc.warnings]) {
    issues.push({ code: ERR.CONFIG_SYNTAX, path: "", ...at(e.pos[0]), message: e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "") });
  }
  if (issues.length > 0) throw new ConfigError(name, issues);

  /** Records an issue for `path`, positioned at `path` in the file (or at `where` when given). */
  const issueAt = (code: ErrorCode, path: Path, message: string, key = false, where: Path = path): void => {
    const node = nodeAt(doc, where, key);
    issues.push({ code, path: formatPath(path), ...at(node?.range?.[0]), message });
  };

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(name, [{ code: ERR.CONFIG_SYNTAX, path: "", message: (e as Error).message }]);
  }
  if (raw === null || raw === undefined) raw = {};

  const parsed = root.schema.safeParse(raw);
  if (!parsed.success) {
    for (const iss of parsed.error.issues) {
      if (iss.code === "unrecognized_keys") {
        const known = KNOWN_KEYS[formatPath(iss.path as Path)];
        for (const k of iss.keys) {
          issueAt(ERR.CONFIG_UNKNOWN, [...(iss.path as Path), k], `unknown key${known !== undefined ? ` (expected one of: ${known.join(", ")})` : ""}`, true);
        }
      } else {
        issueAt(ERR.CONFIG_FIELD, iss.path as Path, iss.message);
      }
    }
    throw new ConfigError(name, sorted(issues));
  }
  const c = parsed.data;

  // The conntrack knobs: resolveConntrackConfig's bounds and messages, under conntrack.*.
  let ct: ConntrackConfig | null = null;
  try {
    ct = resolveConntrackConfig(c.conntrack);
  } catch (e) {
    if (!(e instanceof SluiceError)) throw e;
    const unknown = /^conntrack config: unknown field "([^"]+)"$/.exec(e.message);
    const field = /^conntrack config: ([\w.]+): (.*)$/s.exec(e.message);
    if (unknown !== null) {
      const known = unknown[1]!.startsWith("timeouts.") ? "timeouts" : "";
      issueAt(ERR.CONFIG_UNKNOWN, ["conntrack", ...unknown[1]!.split(".")], `unknown key (see the conntrack${known ? ".timeouts" : ""} section of config/sluice.yaml)`, true);
    } else if (field !== null) {
      issueAt(ERR.CONFIG_FIELD, ["conntrack", ...field[1]!.split(".")], field[2]!);
    } else {
      issueAt(e.code, ["conntrack"], e.message);
    }
  }

  // Cross-field rules.
  const dupes = (list: string[], path: Path): void => {
    list.forEach((n, i) => {
      if (list.indexOf(n) !== i) issueAt(ERR.CONFIG_FIELD, [...path, i], `"${n}" is listed more than once`);
    });
  };
  dupes(c.interfaces.lan, ["interfaces", "lan"]);
  dupes(c.interfaces.wan, ["interfaces", "wan"]);
  dupes(c.tun.lanInterfaces, ["tun", "lanInterfaces"]);
  dupes(c.tun.addresses, ["tun", "addresses"]);
  c.interfaces.wan.forEach((n, i) => {
    if (c.interfaces.lan.includes(n)) issueAt(ERR.CONFIG_FIELD, ["interfaces", "wan", i], `"${n}" is also a LAN interface`);
  });
  const lanInterfaces = c.tun.lanInterfaces.length > 0 ? c.tun.lanInterfaces : c.interfaces.lan;
  if (c.mode === "tun") {
    if (lanInterfaces.length === 0) {
      const set = doc.hasIn(["tun", "lanInterfaces"]);
      issueAt(ERR.CONFIG_FIELD, ["tun", "lanInterfaces"], "mode: tun needs at least one LAN interface (here or in interfaces.lan)", false, set ? ["tun", "lanInterfaces"] : ["mode"]);
    }
    const taken = [...c.interfaces.lan, ...c.interfaces.wan, ...lanInterfaces];
    if (taken.includes(c.tun.device)) issueAt(ERR.CONFIG_FIELD, ["tun", "device"], `"${c.tun.device}" is also listed as a LAN or WAN interface`);
  }
  if (issues.length > 0 || ct === null) throw new ConfigError(name, sorted(issues));

  return {
    instance: c.instance,
    mode: c.mode,
    interfaces: { lan: c.interfaces.lan, wan: c.interfaces.wan },
    nfqueue: c.nfqueue,
    tun: { ...c.tun, lanInterfaces: [...lanInterfaces] },
    reinjectMark: c.reinjectMark,
    conntrack: ct,
    log: c.log,
    control: c.control,
    metrics: c.metrics,
    rules: { ipv4: resolveFrom(name, c.rules.ipv4), ipv6: resolveFrom(name, c.rules.ipv6) },
    stateDir: c.stateDir,
  };
}

/** A path relative to the config file's directory (absolute paths and null unchanged). */
function resolveFrom(configName: string, p: string | null): string | null {
  if (p === null || isAbsolute(p) || configName.startsWith("(")) return p;
  return join(dirname(configName), p);
}

/** Issues in file order (those without a position first). */
function sorted(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((i, n) => ({ i, n }))
    .sort((a, b) => (a.i.line ?? 0) - (b.i.line ?? 0) || (a.i.col ?? 0) - (b.i.col ?? 0) || a.n - b.n)
    .map((x) => x.i);
}

/** The configuration an empty file gives: every default. */
export function defaultConfig(): SluiceConfig {
  return parseConfig("", "(defaults)");
}
