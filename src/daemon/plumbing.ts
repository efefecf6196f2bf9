/**
 * The kernel plumbing the daemon installs at start and removes at exit: the
 * rules that divert packets to sluice, the sysctls the design needs
 * (sysctl.ts), and in TUN mode the device's addresses and policy routing.
 *
 * ```
 *   spec ──validate──▶ plan (reads only: sysctl values, iptables-save, ip -j …;
 *                             refuses if anything it would add already exists)
 *        ──▶ state file written (state.ts): every item, old sysctl values
 *        ──▶ apply items in order ──(a step fails)──▶ undo all, delete file, throw
 *   remove / recoverStale: undo items in reverse order, each idempotent
 *        ──▶ delete the state file (kept if an undo failed, so the next start retries)
 * ```
 *
 * NFQUEUE mode, per family (iptables and ip6tables), table raw:
 *
 * ```
 * -A PREROUTING [-i IF] -m mark ! --mark 0x…/0x… -m comment --comment "sluice:ID" -j CT --notrack
 * -A PREROUTING [-i IF] -m mark ! --mark 0x…/0x… -m comment --comment "sluice:ID" -j NFQUEUE --queue-num N [--queue-bypass]
 * -A OUTPUT     [-o IF] (the same two)
 * ```
 *
 * With an empty `interfaces` list the rules match every interface (one pair
 * per chain); with a list, one pair per chain and interface (`-i` where
 * packets arrive, `-o` for the gateway's own packets: raw OUTPUT runs after
 * the output route is chosen), so loopback and unlisted interfaces bypass sluice.
 *
 * `CT --notrack` first: sluice is the connection tracker, so the kernel's
 * must not track (or NAT) the same packets (README, "Fragments": this also
 * keeps nf_defrag off, so sluice sees raw fragments). The mark match skips
 * packets sluice re-injects through its raw socket with SO_MARK, so they are
 * not diverted again. `--queue-balance a:b` spreads flows over several queues.
 *
 * Why the rules go straight into the built-in chains, inserted at the top,
 * and not into a dedicated user chain with one jump per hook:
 * - sluice emulates the whole hook order itself, so its rules must be the
 *   first thing raw PREROUTING/OUTPUT do; `-I CHAIN 1`/`2` guarantees that
 *   without a jump per packet;
 * - removal stays "delete exactly what carries our tag": every rule is
 *   tagged, found with iptables-save and deleted with `-D` and the spec
 *   iptables-save printed. A user chain would need a flush and `-X` of the
 *   chain, plus jump rules to find anyway, and is one more object a crash
 *   can leave behind;
 * - four rules per family is too few for a chain to pay for its indirection.
 *
 * iptables-nft creates the `raw` nf_tables table on the first rule and never
 * deletes it, so `iptables-save` would show an empty `*raw` after removal
 * where there was none before. When the table did not exist before, undo
 * deletes it with `nft delete table` once it holds nothing but empty built-in
 * chains (and says so in the log when `nft` is missing). The legacy back end
 * cannot unregister a table; set `iptables: "iptables-legacy"` to use it.
 *
 * TUN mode: the device (created here when `tun.create`, else by the addon
 * before the plumbing runs), up, its addresses (IPv6 with nodad), `default
 * dev TUN table T` per family, and `ip rule pref P iif IFACE lookup T` per
 * family and interface of `tun.iifs` (LAN and WAN: replies must pass sluice too),
 * and `blackhole default table T metric 4294967295` per family: the device
 * (and its route) dies with the process, and without this fallback the
 * `ip rule`s left after a crash would fall through to `main` and forward
 * unfiltered; with it, TUN mode fails closed until the next start cleans up.
 * Packets sluice sends back leave through a raw socket as locally generated,
 * which `iif` rules do not match, so they do not loop. Packets addressed to
 * the gateway itself hit the `local` table (priority 0) first and do not
 * reach the TUN device.
 *
 * Every external command runs with spawnSync, a timeout, and `ip netns exec
 * NS` in front when `netns` is set (tests, the lab); the daemon itself runs
 * inside the gateway namespace with `netns` undefined. Everything here is
 * configuration time: failures throw coded errors (`PlumbingError` names the
 * command line and its stderr).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import { ERR, SluiceError } from "../errors.js";
import {
  STATE_VERSION,
  processStartTime,
  readStateFile,
  removeStateFile,
  writeStateFile,
  type PlumbingItem,
  type PlumbingState,
} from "./state.js";
import { readSysctl, sysctlDisplayName, wantedSysctls, writeSysctl, type Exec } from "./sysctl.js";

/** The subset of pino's logger the plumbing uses. */
export interface PlumbingLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const SILENT: PlumbingLog = { info() {}, warn() {} };

/** TUN mode settings. */
export interface TunSpec {
  /** Device name (at most 15 bytes). */
  device: string;
  /** Create a persistent device with `ip tuntap add` and delete it on removal; false: the addon created it. */
  create: boolean;
  /** With `create`: IFF_MULTI_QUEUE. */
  multiQueue?: boolean;
  /** Addresses for the device, `ADDR/LEN`, either family (may be empty). */
  addresses: readonly string[];
  /** MTU to set (restored on removal); undefined: leave it. */
  mtu?: number;
  /**
   * Interfaces whose incoming traffic is routed into the device (`ip rule
   * iif`), at least one. List the WAN side too if sluice must see replies
   * (its connection tracking needs both directions).
   */
  iifs: readonly string[];
  /** Routing table for `default dev DEVICE` (1..2^32-1, not 253..255). */
  table: number;
  /** `ip rule` priority (1..32765: before `main` at 32766). */
  rulePriority: number;
}

/** What to install; built from the daemon's config. */
export interface PlumbingSpec {
  /** Instance id: the tag `sluice:<instance>` on every rule. [A-Za-z0-9][A-Za-z0-9_.-]{0,31}. */
  instance: string;
  mode: "nfqueue" | "tun";
  /** Where the state file goes, e.g. /run/sluice/<instance>.json. */
  stateFile: string;
  /**
   * The gateway's interfaces (LAN and WAN). Empty: every interface (rules
   * unscoped, sysctls on conf/all). Listed: NFQUEUE rules scoped to them,
   * sysctls per interface.
   */
  interfaces: readonly string[];
  families: { v4: boolean; v6: boolean };
  /** NFQUEUE: one queue (`--queue-num`) or consecutive ones, ascending (`--queue-balance first:last`). */
  queues: readonly number[];
  /** NFQUEUE: `--queue-bypass` (accept instead of drop while no program listens on the queue). */
  queueBypass: boolean;
  /** The mark sluice puts on re-injected packets (SO_MARK); rules skip `mark & mask == mark`. */
  reinjectMark: number;
  /** Mask for the mark match; defaults to `reinjectMark`. */
  reinjectMask?: number;
  /** Required in TUN mode. */
  tun?: TunSpec;
  /** Run every command with `ip netns exec NETNS` (tests and the lab); undefined in production. */
  netns?: string;
  /** iptables command for IPv4 (default "iptables"; "iptables-legacy" for the legacy back end). Its saver is CMD-save. */
  iptables?: string;
  /** ip6tables command (default "ip6tables"). */
  ip6tables?: string;
  /** Per-command timeout in ms (default 10000). */
  timeoutMs?: number;
}

/** A live install: pass it to `removePlumbing`. */
export interface InstalledPlumbing {
  readonly stateFile: string;
  readonly state: PlumbingState;
  readonly timeoutMs: number;
  removed: boolean;
}

/** What `recoverStale` found and undid. */
export interface RecoveryReport {
  /** A state file was there. */
  found: boolean;
  instance?: string;
  /** One line per change undone (items that were already gone are not listed). */
  cleaned: string[];
}

/** An external command failed (or could not run, or timed out). */
export class PlumbingError extends SluiceError {
  /** The command line as a shell would read it (with `ip netns exec NS` when used). */
  readonly command: string;
  readonly stderr: string;
  /** Exit status; null when the command did not run or was killed. */
  readonly status: number | null;
  constructor(command: string, stderr: string, status: number | null, what: string) {
    super(ERR.IO, `plumbing: ${command}: ${what}${stderr ? `: ${stderr}` : ""}`);
    this.name = "PlumbingError";
    this.command = command;
    this.stderr = stderr;
    this.status = status;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Seconds `iptables -w` waits for the xtables lock (below the command timeout). */
const XTABLES_WAIT_S = "5";
const TABLE = "raw";
/** Most output read from one command (iptables-save of a large ruleset). */
const MAX_OUTPUT = 64 * 1024 * 1024;
const CHAINS = ["PREROUTING", "OUTPUT"] as const;

// ---------------------------------------------------------------- commands

interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
  status: number | null;
  /** Why it failed, when it did. */
  what: string;
  command: string;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs argv (inside `netns` when set) with a timeout; never throws. */
function run(argv: readonly string[], netns: string | undefined, timeoutMs: number): RunResult {
  const full = netns === undefined ? [...argv] : ["ip", "netns", "exec", netns, ...argv];
  const command = full.map(shellQuote).join(" ");
  const r = spawnSync(full[0]!, full.slice(1), {
    encoding: "utf8",
    timeout: timeoutMs,
    killSignal: "SIGKILL",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: MAX_OUTPUT,
  });
  const stdout = r.stdout ?? "";
  const stderr = (r.stderr ?? "").trim();
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    const what = code === "ETIMEDOUT" ? `timed out after ${timeoutMs} ms` : `cannot run (${r.error.message})`;
    return { ok: false, stdout, stderr, status: null, what, command };
  }
  if (r.status !== 0) {
    const what = r.status === null ? `killed by ${r.signal}` : `exit status ${r.status}`;
    return { ok: false, stdout, stderr, status: r.status, what, command };
  }
  return { ok: true, stdout, stderr, status: 0, what: "", command };
}

/** The runner bound to a namespace: `exec` throws PlumbingError, `tryExec` does not. */
class Runner {
  readonly exec: Exec;
  constructor(
    readonly netns: string | undefined,
    readonly timeoutMs: number,
  ) {
    this.exec = (argv) => {
      const r = this.tryExec(argv);
      if (!r.ok) throw new PlumbingError(r.command, r.stderr, r.status, r.what);
      return r.stdout;
    };
  }
  tryExec(argv: readonly string[]): RunResult {
    return run(argv, this.netns, this.timeoutMs);
  }
  /** Runs a command that prints JSON (`ip -j …`) and parses it. */
  json(argv: readonly string[]): unknown {
    const r = this.tryExec(argv);
    if (!r.ok) throw new PlumbingError(r.command, r.stderr, r.status, r.what);
    return parseJson(r);
  }
}

/** The JSON a successful `ip -j …` printed (nothing counts as an empty list). */
function parseJson(r: RunResult): unknown {
  const out = r.stdout.trim();
  try {
    return out === "" ? [] : JSON.parse(out);
  } catch {
    throw new PlumbingError(r.command, "", 0, `output is not JSON: ${out.slice(0, 200)}`);
  }
}

// ---------------------------------------------------------------- iptables-save parsing

/** Splits one iptables-save line into arguments (double quotes group, backslash escapes inside them). */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** One table's section of iptables-save output. */
interface SavedTable {
  /** `:NAME POLICY [p:b]` lines, as [name, policy]. */
  chains: Array<[string, string]>;
  /** `-A …` lines, split, without the leading `-A`. */
  rules: string[][];
}

/** The section of `table` in iptables-save output, or null if the table is not there. */
export function parseSavedTable(save: string, table: string): SavedTable | null {
  let inTable = false;
  let found: SavedTable | null = null;
  for (const raw of save.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      inTable = line.slice(1) === table;
      if (inTable) found = { chains: [], rules: [] };
    } else if (!inTable || found === null) {
      continue;
    } else if (line === "COMMIT") {
      inTable = false;
    } else if (line.startsWith(":")) {
      const [name, policy] = line.slice(1).split(" ");
      found.chains.push([name ?? "", policy ?? ""]);
    } else if (line.startsWith("-A ")) {
      found.rules.push(splitRuleLine(line.slice(3)));
    }
  }
  return found;
}

/** True if the rule's arguments contain `--comment TAG` exactly. */
function hasTag(rule: readonly string[], tag: string): boolean {
  for (let i = 0; i + 1 < rule.length; i++) if (rule[i] === "--comment" && rule[i + 1] === tag) return true;
  return false;
}

// ---------------------------------------------------------------- spec

/** The comment every rule carries. */
export function instanceTag(instance: string): string {
  return `sluice:${instance}`;
}

const INSTANCE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const IFNAME_RE = /^[A-Za-z0-9_.:@+-]{1,15}$/;

function fieldError(field: string, msg: string): SluiceError {
  return new SluiceError(ERR.CONFIG_FIELD, `plumbing: ${field}: ${msg}`);
}

function isUint(n: number, max: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= max;
}

/** Checks a spec; throws SluiceError(CONFIG_FIELD) naming the first bad field. */
export function validateSpec(spec: PlumbingSpec): void {
  if (!INSTANCE_RE.test(spec.instance)) throw fieldError("instance", `"${spec.instance}" must match ${INSTANCE_RE.source}`);
  if (spec.mode !== "nfqueue" && spec.mode !== "tun") throw fieldError("mode", `"${String(spec.mode)}" is not nfqueue or tun`);
  if (!spec.stateFile.startsWith("/")) throw fieldError("stateFile", "must be an absolute path");
  if (!spec.families.v4 && !spec.families.v6) throw fieldError("families", "at least one of v4, v6");
  for (const i of spec.interfaces) if (!IFNAME_RE.test(i)) throw fieldError("interfaces", `"${i}" is not an interface name`);
  if (new Set(spec.interfaces).size !== spec.interfaces.length) throw fieldError("interfaces", "an interface is listed twice");
  if (spec.timeoutMs !== undefined && !(spec.timeoutMs > 0)) throw fieldError("timeoutMs", "must be positive");
  if (spec.mode === "nfqueue") {
    const q = spec.queues;
    if (q.length === 0 || !q.every((n) => isUint(n, 65535))) throw fieldError("queues", `[${q.join(", ")}]: one or more queue numbers 0..65535`);
    for (let i = 1; i < q.length; i++) {
      if (q[i] !== q[i - 1]! + 1) throw fieldError("queues", `[${q.join(", ")}]: one NFQUEUE rule can only spread over consecutive queues (--queue-balance first:last)`);
    }
    const mask = spec.reinjectMask ?? spec.reinjectMark;
    if (!isUint(spec.reinjectMark, 0xffffffff) || spec.reinjectMark === 0) throw fieldError("reinjectMark", "a non-zero 32-bit value");
    if (!isUint(mask, 0xffffffff) || (spec.reinjectMark & mask) >>> 0 !== spec.reinjectMark) throw fieldError("reinjectMask", "must cover every bit of reinjectMark");
  } else {
    const t = spec.tun;
    if (!t) throw fieldError("tun", "required in tun mode");
    if (!IFNAME_RE.test(t.device)) throw fieldError("tun.device", `"${t.device}" is not an interface name`);
    if (spec.interfaces.includes(t.device)) throw fieldError("tun.device", "is also listed in interfaces");
    if (t.iifs.length === 0) throw fieldError("tun.iifs", "at least one interface whose traffic goes through the device");
    for (const i of t.iifs) if (!IFNAME_RE.test(i) || i === t.device) throw fieldError("tun.iifs", `"${i}" is not an interface name other than the device's`);
    if (new Set(t.iifs).size !== t.iifs.length) throw fieldError("tun.iifs", "an interface is listed twice");
    if (t.mtu !== undefined && !(Number.isInteger(t.mtu) && t.mtu >= 68 && t.mtu <= 65535)) throw fieldError("tun.mtu", `${t.mtu}: 68..65535`);
    if (!isUint(t.table, 0xffffffff) || t.table === 0 || (t.table >= 253 && t.table <= 255)) throw fieldError("tun.table", `${t.table}: 1..2^32-1, not 253 (default), 254 (main), 255 (local)`);
    if (!Number.isInteger(t.rulePriority) || t.rulePriority < 1 || t.rulePriority > 32765) throw fieldError("tun.rulePriority", `${t.rulePriority}: 1..32765`);
    for (const a of t.addresses) {
      const fam = cidrFamily(a);
      if (fam === 0) throw fieldError("tun.addresses", `"${a}" is not ADDRESS/PREFIXLEN`);
      if ((fam === 4 && !spec.families.v4) || (fam === 6 && !spec.families.v6)) throw fieldError("tun.addresses", `"${a}": its family is not enabled`);
    }
  }
}

/** 4 or 6 for a valid `ADDR/LEN`, else 0. */
function cidrFamily(cidr: string): 0 | 4 | 6 {
  const slash = cidr.indexOf("/");
  if (slash < 0) return 0;
  const fam = isIP(cidr.slice(0, slash));
  const len = Number(cidr.slice(slash + 1));
  if (fam === 0 || !/^\d{1,3}$/.test(cidr.slice(slash + 1)) || len > (fam === 4 ? 32 : 128)) return 0;
  return fam as 4 | 6;
}

/** Canonical text of an address (lower case, IPv6 compressed like `ip` prints it). */
function canonicalAddr(addr: string): string {
  return isIP(addr) === 6 ? new URL(`http://[${addr}]`).hostname.slice(1, -1) : addr;
}

/**
 * The rules NFQUEUE mode inserts into table raw (the same for both families),
 * in order, each as [chain, ...arguments]: per chain (PREROUTING, then OUTPUT)
 * and per listed interface (or once, unscoped), CT --notrack then NFQUEUE.
 */
export function nfqueueRuleSpecs(spec: PlumbingSpec): string[][] {
  const mask = spec.reinjectMask ?? spec.reinjectMark;
  const skipReinjected = ["-m", "mark", "!", "--mark", `0x${spec.reinjectMark.toString(16)}/0x${mask.toString(16)}`];
  const tag = ["-m", "comment", "--comment", instanceTag(spec.instance)];
  const first = spec.queues[0]!;
  const last = spec.queues[spec.queues.length - 1]!;
  const queue = first === last ? ["--queue-num", String(first)] : ["--queue-balance", `${first}:${last}`];
  const out: string[][] = [];
  for (const chain of CHAINS) {
    const scopes = spec.interfaces.length === 0 ? [[]] : spec.interfaces.map((i) => [chain === "OUTPUT" ? "-o" : "-i", i]);
    for (const scope of scopes) {
      out.push([chain, ...scope, ...skipReinjected, ...tag, "-j", "CT", "--notrack"]);
      out.push([chain, ...scope, ...skipReinjected, ...tag, "-j", "NFQUEUE", ...queue, ...(spec.queueBypass ? ["--queue-bypass"] : [])]);
    }
  }
  return out;
}

// ---------------------------------------------------------------- planning (reads only)

function saveCmdOf(cmd: string): string {
  return `${cmd}-save`;
}

interface IpLink {
  ifname?: string;
  mtu?: number;
  flags?: string[];
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ local?: string; prefixlen?: number }>;
}
interface IpRoute {
  dst?: string;
  dev?: string;
}
interface IpRule {
  priority?: number;
  iif?: string;
  table?: string | number;
}

/** `ip -j -d addr show dev D`, or null if there is no such device. */
function showLink(r: Runner, device: string): IpLink | null {
  const res = r.tryExec(["ip", "-j", "-d", "addr", "show", "dev", device]);
  if (!res.ok) {
    if (/does not exist|Cannot find device/.test(res.stderr)) return null;
    throw new PlumbingError(res.command, res.stderr, res.status, res.what);
  }
  const list = parseJson(res) as IpLink[];
  return list[0] ?? null;
}

function hasAddr(link: IpLink, cidr: string): boolean {
  const slash = cidr.indexOf("/");
  const addr = canonicalAddr(cidr.slice(0, slash));
  const len = Number(cidr.slice(slash + 1));
  return (link.addr_info ?? []).some((a) => a.local !== undefined && canonicalAddr(a.local) === addr && a.prefixlen === len);
}

function famFlag(family: 4 | 6): string {
  return family === 4 ? "-4" : "-6";
}

/** Metric of the fail-closed fallback route in TUN mode's table: below every other route's priority. */
const BLACKHOLE_METRIC = 4294967295;

function hasBlackhole(r: Runner, family: 4 | 6, table: number): boolean {
  const res = r.tryExec(["ip", "-j", famFlag(family), "route", "show", "table", String(table)]);
  if (!res.ok) {
    if (/FIB table does not exist/.test(res.stderr)) return false;
    throw new PlumbingError(res.command, res.stderr, res.status, res.what);
  }
  const routes = parseJson(res) as (IpRoute & { type?: string; metric?: number })[];
  return routes.some((x) => x.dst === "default" && x.type === "blackhole" && x.metric === BLACKHOLE_METRIC);
}

function hasDefaultRoute(r: Runner, family: 4 | 6, table: number, device: string | null): boolean {
  const res = r.tryExec(["ip", "-j", famFlag(family), "route", "show", "table", String(table)]);
  if (!res.ok) {
    // IPv4 creates a table with its first route and answers this for one never used.
    if (/FIB table does not exist/.test(res.stderr)) return false;
    throw new PlumbingError(res.command, res.stderr, res.status, res.what);
  }
  const routes = parseJson(res) as IpRoute[];
  return routes.some((x) => x.dst === "default" && (device === null || x.dev === device));
}

function hasRule(r: Runner, family: 4 | 6, priority: number, iif: string, table: number): boolean {
  // -N: table numbers, not names from rt_tables.
  const rules = r.json(["ip", "-N", "-j", famFlag(family), "rule", "show"]) as IpRule[];
  return rules.some((x) => x.priority === priority && x.iif === iif && String(x.table) === String(table));
}

function families(spec: PlumbingSpec): Array<4 | 6> {
  const out: Array<4 | 6> = [];
  if (spec.families.v4) out.push(4);
  if (spec.families.v6) out.push(6);
  return out;
}

/** Reads the current state and returns the items to add, in order; throws on conflicts. Changes nothing. */
function plan(spec: PlumbingSpec, r: Runner): PlumbingItem[] {
  const items: PlumbingItem[] = [];
  const where = r.netns ? ` in namespace ${r.netns}` : "";
  for (const iface of spec.interfaces) {
    if (showLink(r, iface) === null) throw fieldError("interfaces", `no interface "${iface}"${where}`);
  }
  for (const iface of spec.tun?.iifs ?? []) {
    if (spec.mode === "tun" && showLink(r, iface) === null) throw fieldError("tun.iifs", `no interface "${iface}"${where}`);
  }
  for (const want of wantedSysctls({ v4: spec.families.v4, v6: spec.families.v6, interfaces: spec.interfaces })) {
    const old = readSysctl(r.exec, want.key);
    if (old !== want.value) items.push({ kind: "sysctl", key: want.key, old, value: want.value });
  }
  if (spec.mode === "nfqueue") {
    const tag = instanceTag(spec.instance);
    const rules = nfqueueRuleSpecs(spec);
    for (const family of families(spec)) {
      const cmd = family === 4 ? (spec.iptables ?? "iptables") : (spec.ip6tables ?? "ip6tables");
      const saveCmd = saveCmdOf(cmd);
      const raw = parseSavedTable(r.exec([saveCmd]), TABLE);
      const mine = raw?.rules.filter((rule) => hasTag(rule, tag)) ?? [];
      if (mine.length > 0) {
        throw new SluiceError(
          ERR.IO,
          `plumbing: ${saveCmd} already shows ${mine.length} rule(s) tagged ${tag} in table ${TABLE}: another instance with this id is running, or a crash left them without a state file (delete them with ${cmd} -t ${TABLE} -D …)`,
        );
      }
      if (raw === null && /nf_tables/.test(r.exec([cmd, "-V"]))) items.push({ kind: "nft-table", family, saveCmd, table: TABLE });
      items.push({ kind: "iptables", family, cmd, table: TABLE, tag, rules });
    }
  } else {
    const t = spec.tun!;
    const link = showLink(r, t.device);
    if (t.create && link !== null) throw fieldError("tun.device", `"${t.device}" already exists; with tun.create the plumbing makes it`);
    if (!t.create && link === null) throw fieldError("tun.device", `no device "${t.device}": the TUN addon must create it before the plumbing runs (or set tun.create)`);
    if (t.create) items.push({ kind: "tun-create", device: t.device, multiQueue: t.multiQueue ?? false });
    if (t.mtu !== undefined && (link === null || link.mtu !== t.mtu)) {
      // A new device starts at 1500 (tun_setup); the old value is what removal puts back.
      items.push({ kind: "link-mtu", device: t.device, old: link?.mtu ?? 1500, value: t.mtu });
    }
    if (link === null || !(link.flags ?? []).includes("UP")) items.push({ kind: "link-up", device: t.device });
    for (const cidr of t.addresses) {
      if (link !== null && hasAddr(link, cidr)) throw fieldError("tun.addresses", `${cidr} is already on ${t.device}`);
      items.push({ kind: "addr", family: cidrFamily(cidr) as 4 | 6, device: t.device, cidr });
    }
    for (const family of families(spec)) {
      if (hasDefaultRoute(r, family, t.table, null)) throw fieldError("tun.table", `IPv${family} routing table ${t.table} already has a default route; pick an unused table`);
      items.push({ kind: "route", family, device: t.device, table: t.table });
      items.push({ kind: "route-blackhole", family, table: t.table });
    }
    for (const family of families(spec)) {
      for (const iif of t.iifs) {
        if (hasRule(r, family, t.rulePriority, iif, t.table)) throw fieldError("tun.rulePriority", `IPv${family} rule "pref ${t.rulePriority} iif ${iif} lookup ${t.table}" already exists`);
        items.push({ kind: "rule", family, priority: t.rulePriority, iif, table: t.table });
      }
    }
  }
  return items;
}

// ---------------------------------------------------------------- apply / undo, one item at a time

function describe(item: PlumbingItem): string {
  switch (item.kind) {
    case "sysctl":
      return `sysctl ${sysctlDisplayName(item.key)} ${item.old} -> ${item.value}`;
    case "iptables":
      return `${item.cmd} -t ${item.table}: ${item.rules.length} rules tagged ${item.tag}`;
    case "nft-table":
      return `nf_tables table ${item.family === 4 ? "ip" : "ip6"} ${item.table} absent before: deleted at removal if left empty`;
    case "tun-create":
      return `tun device ${item.device}`;
    case "link-up":
      return `link ${item.device} up`;
    case "link-mtu":
      return `link ${item.device} mtu ${item.old} -> ${item.value}`;
    case "addr":
      return `address ${item.cidr} on ${item.device}`;
    case "route":
      return `IPv${item.family} route default dev ${item.device} table ${item.table}`;
    case "route-blackhole":
      return `IPv${item.family} route blackhole default table ${item.table} metric ${BLACKHOLE_METRIC} (fail closed if sluice dies)`;
    case "rule":
      return `IPv${item.family} rule pref ${item.priority} iif ${item.iif} lookup ${item.table}`;
  }
}

function apply(item: PlumbingItem, r: Runner): void {
  switch (item.kind) {
    case "sysctl":
      writeSysctl(r.exec, item.key, item.value);
      return;
    case "iptables": {
      const position = new Map<string, number>();
      for (const [chain, ...spec] of item.rules) {
        const pos = (position.get(chain!) ?? 0) + 1;
        position.set(chain!, pos);
        r.exec([item.cmd, "-w", XTABLES_WAIT_S, "-t", item.table, "-I", chain!, String(pos), ...spec]);
      }
      return;
    }
    case "nft-table":
      return; // a marker for undo; the first rule creates the table
    case "tun-create":
      r.exec(["ip", "tuntap", "add", "dev", item.device, "mode", "tun", ...(item.multiQueue ? ["multi_queue"] : [])]);
      return;
    case "link-up":
      r.exec(["ip", "link", "set", "dev", item.device, "up"]);
      return;
    case "link-mtu":
      r.exec(["ip", "link", "set", "dev", item.device, "mtu", String(item.value)]);
      return;
    case "addr":
      r.exec(["ip", famFlag(item.family), "addr", "add", item.cidr, "dev", item.device, ...(item.family === 6 ? ["nodad"] : [])]);
      return;
    case "route":
      r.exec(["ip", famFlag(item.family), "route", "add", "default", "dev", item.device, "table", String(item.table)]);
      return;
    case "route-blackhole":
      r.exec(["ip", famFlag(item.family), "route", "add", "blackhole", "default", "table", String(item.table), "metric", String(BLACKHOLE_METRIC)]);
      return;
    case "rule":
      r.exec(["ip", famFlag(item.family), "rule", "add", "pref", String(item.priority), "iif", item.iif, "lookup", String(item.table)]);
      return;
  }
}

/**
 * Undoes one item if it is (still) there. Returns what it changed, or null
 * when there was nothing to undo. Throws only if the object is still there
 * after a failed removal.
 */
function undo(item: PlumbingItem, r: Runner, log: PlumbingLog): string | null {
  switch (item.kind) {
    case "sysctl": {
      const name = sysctlDisplayName(item.key);
      let cur: string;
      try {
        cur = readSysctl(r.exec, item.key);
      } catch (e) {
        // An interface's sysctls go with the interface.
        if (e instanceof PlumbingError && /cannot stat|No such file/.test(e.stderr)) return null;
        throw e;
      }
      if (cur === item.old) return null;
      if (cur !== item.value) {
        log.warn({ sysctl: name, now: cur, set: item.value, old: item.old }, "plumbing: sysctl changed by someone else since sluice set it; left as is");
        return null;
      }
      writeSysctl(r.exec, item.key, item.old);
      return `sysctl ${name} restored to ${item.old}`;
    }
    case "iptables": {
      const saveCmd = saveCmdOf(item.cmd);
      let deleted = 0;
      // Delete one tagged rule at a time, re-reading after each, until none is left.
      // Bounded: each pass removes a rule or fails.
      for (let pass = 0; pass < 1000; pass++) {
        const raw = parseSavedTable(r.exec([saveCmd]), item.table);
        const rule = raw?.rules.find((x) => hasTag(x, item.tag));
        if (!rule) break;
        const res = r.tryExec([item.cmd, "-w", XTABLES_WAIT_S, "-t", item.table, "-D", ...rule]);
        if (!res.ok) {
          const again = parseSavedTable(r.exec([saveCmd]), item.table);
          if (again?.rules.some((x) => x.join("\0") === rule.join("\0"))) throw new PlumbingError(res.command, res.stderr, res.status, res.what);
        } else {
          deleted++;
        }
      }
      return deleted > 0 ? `${item.cmd} -t ${item.table}: deleted ${deleted} rules tagged ${item.tag}` : null;
    }
    case "nft-table": {
      const raw = parseSavedTable(r.exec([item.saveCmd]), item.table);
      if (raw === null) return null;
      const onlyEmptyBuiltins = raw.rules.length === 0 && raw.chains.every(([name, policy]) => (CHAINS as readonly string[]).includes(name) && policy === "ACCEPT");
      if (!onlyEmptyBuiltins) {
        log.info({ table: item.table, family: item.family }, "plumbing: table raw now holds other rules or chains; left in place");
        return null;
      }
      const nftFamily = item.family === 4 ? "ip" : "ip6";
      const res = r.tryExec(["nft", "delete", "table", nftFamily, item.table]);
      if (!res.ok) {
        if (parseSavedTable(r.exec([item.saveCmd]), item.table) === null) return null;
        log.warn({ command: res.command, error: res.stderr || res.what }, "plumbing: could not delete the empty nf_tables table sluice's rules created (is nft installed?); it is inert but iptables-save shows it");
        return null;
      }
      return `nf_tables table ${nftFamily} ${item.table} deleted (empty, created by sluice's rules)`;
    }
    case "tun-create": {
      const link = showLink(r, item.device);
      if (link === null) return null;
      if (link.linkinfo?.info_kind !== "tun") {
        log.warn({ device: item.device, kind: link.linkinfo?.info_kind }, "plumbing: device is no longer a tun device; left in place");
        return null;
      }
      const res = r.tryExec(["ip", "tuntap", "del", "dev", item.device, "mode", "tun", ...(item.multiQueue ? ["multi_queue"] : [])]);
      if (!res.ok && showLink(r, item.device) !== null) throw new PlumbingError(res.command, res.stderr, res.status, res.what);
      return `tun device ${item.device} deleted`;
    }
    case "link-up": {
      const link = showLink(r, item.device);
      if (link === null || !(link.flags ?? []).includes("UP")) return null;
      r.exec(["ip", "link", "set", "dev", item.device, "down"]);
      return `link ${item.device} set down again`;
    }
    case "link-mtu": {
      const link = showLink(r, item.device);
      if (link === null || link.mtu !== item.value) return null;
      r.exec(["ip", "link", "set", "dev", item.device, "mtu", String(item.old)]);
      return `link ${item.device} mtu restored to ${item.old}`;
    }
    case "addr": {
      const link = showLink(r, item.device);
      if (link === null || !hasAddr(link, item.cidr)) return null;
      const res = r.tryExec(["ip", famFlag(item.family), "addr", "del", item.cidr, "dev", item.device]);
      if (!res.ok) {
        const again = showLink(r, item.device);
        if (again !== null && hasAddr(again, item.cidr)) throw new PlumbingError(res.command, res.stderr, res.status, res.what);
      }
      return `address ${item.cidr} removed from ${item.device}`;
    }
    case "route": {
      if (!hasDefaultRoute(r, item.family, item.table, item.device)) return null;
      const res = r.tryExec(["ip", famFlag(item.family), "route", "del", "default", "dev", item.device, "table", String(item.table)]);
      if (!res.ok && hasDefaultRoute(r, item.family, item.table, item.device)) throw new PlumbingError(res.command, res.stderr, res.status, res.what);
      return `IPv${item.family} route default dev ${item.device} table ${item.table} removed`;
    }
    case "route-blackhole": {
      if (!hasBlackhole(r, item.family, item.table)) return null;
      const args = ["ip", famFlag(item.family), "route", "del", "blackhole", "default", "table", String(item.table), "metric", String(BLACKHOLE_METRIC)];
      const res = r.tryExec(args);
      if (!res.ok && hasBlackhole(r, item.family, item.table)) throw new PlumbingError(res.command, res.stderr, res.status, res.what);
      return `IPv${item.family} route blackhole default table ${item.table} removed`;
    }
    case "rule": {
      if (!hasRule(r, item.family, item.priority, item.iif, item.table)) return null;
      const res = r.tryExec(["ip", famFlag(item.family), "rule", "del", "pref", String(item.priority), "iif", item.iif, "lookup", String(item.table)]);
      if (!res.ok && hasRule(r, item.family, item.priority, item.iif, item.table)) throw new PlumbingError(res.command, res.stderr, res.status, res.what);
      return `IPv${item.family} rule pref ${item.priority} iif ${item.iif} lookup ${item.table} removed`;
    }
  }
}

/** Undoes every item, last first, continuing past failures. Returns what changed and the failures. */
function undoAll(items: readonly PlumbingItem[], r: Runner, log: PlumbingLog): { cleaned: string[]; errors: Error[] } {
  const cleaned: string[] = [];
  const errors: Error[] = [];
  for (let i = items.length - 1; i >= 0; i--) {
    try {
      const done = undo(items[i]!, r, log);
      if (done !== null) cleaned.push(done);
    } catch (e) {
      errors.push(e as Error);
      log.warn({ item: describe(items[i]!), error: (e as Error).message }, "plumbing: could not undo");
    }
  }
  return { cleaned, errors };
}

function undoFailure(stateFile: string, errors: Error[]): SluiceError {
  const first = errors[0]!;
  const err = new SluiceError(
    ERR.IO,
    `plumbing: ${errors.length} item(s) could not be removed; the state file ${stateFile} is kept so the next start retries. First: ${first.message}`,
  );
  (err as Error).cause = errors.length === 1 ? first : errors;
  return err;
}

// ---------------------------------------------------------------- API

/**
 * Installs the plumbing `spec` describes. Validates the spec, reads the
 * current state (refusing if anything it would add exists already or a state
 * file is there), writes the state file, then applies each item. If a step
 * fails, everything already applied is undone, the state file removed, and
 * the step's PlumbingError thrown.
 */
export function installPlumbing(spec: PlumbingSpec, log: PlumbingLog = SILENT): InstalledPlumbing {
  validateSpec(spec);
  const timeoutMs = spec.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const r = new Runner(spec.netns, timeoutMs);
  if (readStateFile(spec.stateFile) !== null) {
    throw new SluiceError(ERR.IO, `plumbing: state file ${spec.stateFile} exists: a previous run did not clean up; recoverStale() it first`);
  }
  const items = plan(spec, r);
  const state: PlumbingState = {
    version: STATE_VERSION,
    instance: spec.instance,
    mode: spec.mode,
    ...(spec.netns !== undefined ? { netns: spec.netns } : {}),
    pid: process.pid,
    pidStart: processStartTime(process.pid) ?? "",
    createdAt: new Date().toISOString(),
    items,
  };
  writeStateFile(spec.stateFile, state);
  for (let i = 0; i < items.length; i++) {
    try {
      apply(items[i]!, r);
      log.info({ item: describe(items[i]!) }, "plumbing: added");
    } catch (e) {
      const { errors } = undoAll(items.slice(0, i + 1), r, log);
      if (errors.length === 0) removeStateFile(spec.stateFile);
      else log.warn({ stateFile: spec.stateFile, errors: errors.length }, "plumbing: rollback incomplete; state file kept for the next start");
      log.warn({ item: describe(items[i]!), error: (e as Error).message }, "plumbing: install failed; rolled back");
      throw e;
    }
  }
  log.info({ instance: spec.instance, mode: spec.mode, items: items.length, stateFile: spec.stateFile }, "plumbing: installed");
  return { stateFile: spec.stateFile, state, timeoutMs, removed: false };
}

/**
 * Removes what `installPlumbing` added, last item first, and deletes the state
 * file. Idempotent: items already gone are skipped, and a second call does
 * nothing. If an item cannot be removed, the others still are, the state
 * file stays (for `recoverStale` at the next start) and an error is thrown.
 */
export function removePlumbing(installed: InstalledPlumbing, log: PlumbingLog = SILENT): string[] {
  if (installed.removed) return [];
  const r = new Runner(installed.state.netns, installed.timeoutMs);
  const { cleaned, errors } = undoAll(installed.state.items, r, log);
  for (const c of cleaned) log.info({ item: c }, "plumbing: removed");
  if (errors.length > 0) throw undoFailure(installed.stateFile, errors);
  removeStateFile(installed.stateFile);
  installed.removed = true;
  return cleaned;
}

/**
 * At start: if `stateFile` exists, a previous run ended without removing its
 * plumbing (crash, SIGKILL). Undo everything it lists (in the namespace it
 * names), log what was cleaned, delete the file. Refuses if the process
 * that wrote it is still alive (same pid and start time).
 */
export function recoverStale(stateFile: string, opts: { log?: PlumbingLog; timeoutMs?: number } = {}): RecoveryReport {
  const log = opts.log ?? SILENT;
  const state = readStateFile(stateFile);
  if (state === null) return { found: false, cleaned: [] };
  if (state.pid !== process.pid && state.pidStart !== "" && processStartTime(state.pid) === state.pidStart) {
    throw new SluiceError(ERR.IO, `plumbing: instance ${state.instance} (state file ${stateFile}) is still running as pid ${state.pid}; stop it first`);
  }
  if (state.netns !== undefined && !existsSync(`/run/netns/${state.netns}`)) {
    // Everything it lists lived in that namespace, and went with it.
    removeStateFile(stateFile);
    log.info({ instance: state.instance, stateFile, netns: state.netns }, "plumbing: stale state file for a namespace that no longer exists; removed");
    return { found: true, instance: state.instance, cleaned: [] };
  }
  const r = new Runner(state.netns, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const { cleaned, errors } = undoAll(state.items, r, log);
  if (errors.length > 0) throw undoFailure(stateFile, errors);
  removeStateFile(stateFile);
  log.info({ instance: state.instance, stateFile, written: state.createdAt, pid: state.pid, cleaned }, cleaned.length > 0 ? "plumbing: cleaned up after a previous run" : "plumbing: stale state file, nothing left to clean");
  return { found: true, instance: state.instance, cleaned };
}
