/**
 * Forwarding benchmark: what each way of putting a packet filter on a Linux
 * gateway costs, measured in one run through the three-namespace lab
 * (scripts/lab.sh: client ── lan0 [gateway] wan0 ── server):
 *
 *   a  kernel forwarding alone (no rules)
 *   b  a minimal C accept-all loop on libnetfilter_queue (forward/nfq_accept.c)
 *   c  the npm `nfqueue` package in Node, accept-all (forward/nfqueue-peer.ts)
 *   d  sluice in NFQUEUE mode, with F_GSO (and, as "d/no-gso", without it: TCP only)
 *   e  sluice in TUN mode
 *
 * (b) and (c) get the rules sluice installs for itself, so kernel-side costs
 * are the same (raw table; conntrack stays off in the namespace because
 * `CT --notrack` never enables it):
 *
 *   -t raw -A PREROUTING -i lan0 -j CT --notrack
 *   -t raw -A PREROUTING -i lan0 -j NFQUEUE --queue-num 0     (the same for wan0)
 *
 * For each row:
 *   TCP   iperf3 client ── gateway ──▶ iperf3 server, one stream, --seconds:
 *         Gbit/s received, and the forwarding element's CPU while it ran.
 *   UDP   forward/udp_flood.c for --seconds: one flow of 64-byte payloads
 *         (by default as ready-made frames on an AF_PACKET socket, the
 *         cheapest sender: on 2 CPUs the sender's CPU also runs the gateway's
 *         receive path, since veth hands frames over in the sender's
 *         softirq). Delivered = the packet counter of a raw-table DROP rule
 *         on the server's eth0 (the server drops them before any socket, so
 *         no receiver limits the rate and no ICMP comes back). Delivered
 *         packets per second is the metric; "offered" is what the sender got
 *         out. A row that lost < 2 % kept up with the sender: its figure is
 *         a lower bound, marked "s" (sender-bound). Row (a) always is: veth
 *         forwarding runs entirely in the sender's softirq, on the sender's
 *         CPU, while the second CPU idles.
 *   CPU   per delivered UDP packet: for user-space elements, utime+stime of
 *         the process (/proc/PID/stat; it includes the softirq work the
 *         kernel does in the process's context after a verdict, i.e. the
 *         forwarding itself, but not what the kernel defers to ksoftirqd,
 *         which the JSON gives separately); for (a), marked "*", the whole
 *         machine's softirq time (/proc/stat), where kernel forwarding runs.
 *         "all" is every busy CPU of the machine (sender included) per packet.
 *
 * Other work on the machine (a test suite, a build) skews every figure, so
 * each row first waits (bounded) for the machine to be idle, and each
 * measurement computes "foreign" CPU: the machine's user time that was not
 * the user time of the element or the load generators. (User time, because
 * kernel time cannot be split: softirq work that runs while a CPU is idle,
 * TCP's timers for one, is charged to no process.) Above 0.15 of a core it
 * measures again (3 tries at most), and the table marks a row still
 * disturbed with "!".
 *
 * Targets (issue): sluice TCP ≥ 0.8× (a) with F_GSO; small UDP ≥ 1.5× (b).
 * They are printed as met / not met; nothing here fails on them.
 *
 *   npx tsc -p tsconfig.json && node dist/scripts/bench/forward.js [--seconds 5]
 *       [--only a,b,c,d,e] [--udp-size 64] [--sender packet|socket]
 *       [--gso both|on|off] [--json-only]
 *
 * Needs root (namespaces, iptables). Installs what only this bench needs
 * with apt-get when missing (iperf3, libnetfilter-queue-dev), builds the C
 * programs with gcc into a temporary directory, and builds the npm
 * `nfqueue` package's native part on demand (npm does not: package.json's
 * allowScripts denies it, so `npm install` works without the -dev package).
 * A row whose element cannot start is reported "unavailable: reason"; the
 * run always completes, and always removes its lab (try/finally, SIGINT and
 * SIGTERM handlers).
 *
 * Prints a table, then one JSON line with the machine and every figure.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// ── paths ────────────────────────────────────────────────────────────────

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/scripts/bench
const ROOT = resolve(HERE, "../../.."); // the repo
const C_SOURCES = join(ROOT, "scripts/bench/forward");
const LAB_SH = join(ROOT, "scripts/lab.sh");
const SLUICE_MAIN = join(ROOT, "dist/src/cli/main.js");
const NFQ_PEER = join(HERE, "forward/nfqueue-peer.js");
const NFQ_PKG = join(ROOT, "node_modules/nfqueue");

// ── options ──────────────────────────────────────────────────────────────

const USAGE = `usage: node dist/scripts/bench/forward.js [--seconds N] [--only a,b,c,d,e]
       [--udp-size BYTES] [--sender packet|socket] [--gso both|on|off] [--json-only]

  --seconds N      length of each TCP and each UDP run (default 5, 1..120)
  --only LIST      rows to run (default a,b,c,d,e); ratios need a and b
  --udp-size B     UDP payload bytes (default 64)
  --sender KIND    UDP load: packet (default; AF_PACKET frames, the cheapest
                   sender) or socket (a UDP socket, the whole client stack)
  --gso MODE       sluice NFQUEUE row: with F_GSO (on), without (off), or both
                   (default; the no-GSO variant runs TCP only)
  --json-only      print only the JSON line
`;

interface Options { seconds: number; only: Set<string>; udpSize: number; sender: "packet" | "socket"; gso: "both" | "on" | "off"; jsonOnly: boolean }

function parseOptions(argv: string[]): Options {
  const o: Options = { seconds: 5, only: new Set(["a", "b", "c", "d", "e"]), udpSize: 64, sender: "packet", gso: "both", jsonOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case "--seconds": o.seconds = Number(value()); break;
      case "--only": o.only = new Set(value().split(",").map((s) => s.trim()).filter((s) => s !== "")); break;
      case "--udp-size": o.udpSize = Number(value()); break;
      case "--sender": { const v = value(); if (v !== "packet" && v !== "socket") usage(`--sender: packet or socket, not ${v}`); o.sender = v; break; }
      case "--gso": { const v = value(); if (v !== "both" && v !== "on" && v !== "off") usage(`--gso: both, on or off, not ${v}`); o.gso = v; break; }
      case "--json-only": o.jsonOnly = true; break;
      case "-h": case "--help": process.stdout.write(USAGE); process.exit(0); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!Number.isFinite(o.seconds) || o.seconds < 1 || o.seconds > 120) usage("--seconds: 1..120");
  if (!Number.isInteger(o.udpSize) || o.udpSize < 0 || o.udpSize > 1472) usage("--udp-size: 0..1472");
  for (const r of o.only) if (!"abcde".includes(r) || r.length !== 1) usage(`--only: rows are a,b,c,d,e, not ${r}`);
  return o;
}

function usage(msg: string): never {
  process.stderr.write(`forward: ${msg}\n${USAGE}`);
  process.exit(2);
}

const opts = parseOptions(process.argv.slice(2));
const say = (msg: string): void => { process.stderr.write(`forward: ${msg}\n`); };

// ── constants of the setup ───────────────────────────────────────────────

const QUEUE = 0;
const RCVBUF = 8 << 20; // sluice's default NFQUEUE socket buffer (src/io/nfqueue.ts)
const MAXLEN = 1024; // sluice's default nfqueue.maxLen and the kernel's default
const UDP_PORT = 9000;
const IPERF_PORT = 5201;
const DRAIN_MS = 500; // after the sender stops: let queued packets reach the server
const READY_MS = 30_000; // an element that is not ready by then is unavailable
const STOP_MS = 15_000; // SIGTERM, then SIGKILL
const MSS = 1448; // bytes per TCP segment on a 1500-byte path with timestamps (for estimates)

// ── child processes ──────────────────────────────────────────────────────

/** Every child still running, so a signal or a failure can end them (by pid). */
const live = new Set<ChildProcess>();

interface Result { code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean }

/** Runs a command to completion (asynchronously, so elements' pipes keep draining), bounded by `timeoutMs`. */
function run(argv: string[], timeoutMs: number): Promise<Result> {
  return new Promise((resolvePromise) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    let stdout = "", stderr = "", timedOut = false;
    const cap = 8 << 20;
    child.stdout!.on("data", (d: Buffer) => { if (stdout.length < cap) stdout += d.toString(); });
    child.stderr!.on("data", (d: Buffer) => { if (stderr.length < cap) stderr += d.toString(); });
    const timer = setTimeout(() => { timedOut = true; child.kill("SIGKILL"); }, timeoutMs);
    child.on("error", (e) => { stderr += String(e); });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolvePromise({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Runs a short command synchronously (setup and teardown only). */
function runSync(argv: string[], timeoutMs = 30_000): Result {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 << 20 });
  return {
    code: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : ""),
    timedOut: r.error !== undefined && (r.error as NodeJS.ErrnoException).code === "ETIMEDOUT",
  };
}

function must(argv: string[], timeoutMs = 30_000): string {
  const r = runSync(argv, timeoutMs);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code ?? r.signal}${r.timedOut ? " (timeout)" : ""}: ${lastLine(r.stderr)}`);
  return r.stdout;
}

/** The last non-empty line, whole (for JSON output). */
function lastLineFull(s: string): string {
  const lines = s.trim().split("\n").filter((l) => l.trim() !== "");
  return lines.length === 0 ? "" : lines[lines.length - 1].trim();
}

/** The last non-empty line, cut for a message. */
function lastLine(s: string): string {
  return lastLineFull(s).slice(0, 300);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A long-running forwarding element (or server): keeps its last output
 * lines, waits for a readiness line, stops with SIGTERM then SIGKILL.
 */
class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  exit: { code: number | null; signal: string | null } | null = null;
  private readonly waiters: (() => void)[] = [];

  constructor(argv: string[]) {
    this.child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    live.add(this.child);
    const partial = { out: "", err: "" };
    const feed = (which: "out" | "err", d: Buffer): void => {
      const text = partial[which] + d.toString();
      const parts = text.split("\n");
      partial[which] = parts.pop() ?? "";
      for (const line of parts) {
        if (line.trim() === "") continue;
        this.lines.push(which === "err" ? `stderr: ${line}` : line);
        if (this.lines.length > 200) this.lines.shift(); // bounded
      }
      this.wake();
    };
    this.child.stdout!.on("data", (d: Buffer) => feed("out", d));
    this.child.stderr!.on("data", (d: Buffer) => feed("err", d));
    this.child.on("error", (e) => { this.lines.push(`stderr: ${String(e)}`); });
    this.child.on("close", (code, signal) => {
      live.delete(this.child);
      this.exit = { code, signal };
      this.wake();
    });
  }

  get pid(): number { return this.child.pid ?? -1; }

  private wake(): void { for (const w of this.waiters.splice(0)) w(); }

  /** Resolves with the first line matching `pred`; rejects on exit or timeout with the last output. */
  async waitFor(pred: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => !l.startsWith("stderr: ") && pred(l));
      if (hit !== undefined) return hit;
      if (this.exit !== null) throw new Error(`${what} exited (${this.exit.code ?? this.exit.signal}) before it was ready: ${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what} not ready after ${timeoutMs / 1000} s: ${this.tail()}`);
      await new Promise<void>((r) => { const t = setTimeout(r, Math.min(left, 250)); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  /** The first error-looking line (a JS exception, a pino error) and the last line: why it ended. */
  tail(): string {
    const err = this.lines.find((l) => /\b[A-Za-z]*Error\b|"level":(50|60)/.test(l));
    const last = this.lines[this.lines.length - 1];
    const parts = err !== undefined && err !== last ? [err, last] : [last];
    return parts.filter((l) => l !== undefined).map((l) => l.slice(0, 300)).join(" … ") || "(no output)";
  }

  /** SIGTERM, wait, then SIGKILL. Returns how it ended. */
  async stop(): Promise<{ code: number | null; signal: string | null; killed: boolean }> {
    if (this.exit === null) this.child.kill("SIGTERM");
    const deadline = Date.now() + STOP_MS;
    while (this.exit === null && Date.now() < deadline) await sleep(50);
    let killed = false;
    if (this.exit === null) {
      killed = true;
      this.child.kill("SIGKILL");
      const d2 = Date.now() + 5000;
      while (this.exit === null && Date.now() < d2) await sleep(50);
    }
    return { code: this.exit?.code ?? null, signal: this.exit?.signal ?? null, killed };
  }
}

// ── CPU accounting ───────────────────────────────────────────────────────

const CLK_TCK = Number(runSync(["getconf", "CLK_TCK"]).stdout.trim()) || 100;

/** utime + stime of a process (all its threads), in seconds; NaN if it is gone. */
function procCpu(pid: number): number {
  const t = procTimes(pid);
  return t.user + t.system;
}

/** utime and stime of a process (all its threads), in seconds; NaN if it is gone. */
function procTimes(pid: number): { user: number; system: number } {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    return { user: Number(f[11]) / CLK_TCK, system: Number(f[12]) / CLK_TCK };
  } catch {
    return { user: NaN, system: NaN };
  }
}

interface MachineCpu { busy: number; user: number; softirq: number; ksoftirqd: number }

/** The ksoftirqd threads: softirq work the kernel defers out of the context that raised it runs (and is charged) here. */
const KSOFTIRQD: number[] = (() => {
  const pids: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try { if (readFileSync(`/proc/${d}/comm`, "utf8").startsWith("ksoftirqd/")) pids.push(Number(d)); } catch { /* gone */ }
  }
  return pids;
})();

/** The machine's busy and softirq time, seconds summed over all CPUs (/proc/stat "cpu" line). */
function machineCpu(): MachineCpu {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number); // user nice system idle iowait irq softirq steal ...
  const busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] ?? 0);
  let ks = 0;
  for (const pid of KSOFTIRQD) { const c = procCpu(pid); if (Number.isFinite(c)) ks += c; }
  return { busy: busy / CLK_TCK, user: (v[0] + v[1]) / CLK_TCK, softirq: v[6] / CLK_TCK, ksoftirqd: ks };
}

/** Busy cores of the machine over `ms` while this bench sends nothing: other work makes every figure lower and noisier. */
async function backgroundLoad(ms = 1000): Promise<number> {
  const m0 = machineCpu(), t0 = Date.now();
  await sleep(ms);
  return (machineCpu().busy - m0.busy) / ((Date.now() - t0) / 1000);
}

/** Above this many busy cores of background load, the table says the figures are not trustworthy. */
const BUSY_WARN_CORES = 0.15;
/** How long a row waits for the machine to become idle before it runs anyway. */
const QUIET_WAIT_MS = 30_000;
/** Measurements per phase when other work disturbed the previous ones. */
const MEASURE_TRIES = 3;

// ── the lab ──────────────────────────────────────────────────────────────

interface Lab { name: string; client: string; gateway: string; server: string; serverIp: string; clientIp: string; gatewayLanMac: string }

const ns = (name: string, argv: string[]): string[] => ["ip", "netns", "exec", name, ...argv];

function labUp(name: string): Lab {
  const out = must([LAB_SH, "up", name], 120_000);
  const env: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, "$1");
  }
  const need = ["CLIENT_NS", "GATEWAY_NS", "SERVER_NS", "SERVER_IP4", "CLIENT_IP4"];
  for (const k of need) if (!env[k]) throw new Error(`lab.sh up printed no ${k}`);
  const gatewayLanMac = must(ns(env.GATEWAY_NS, ["cat", `/sys/class/net/${env.GATEWAY_LAN_IF ?? "lan0"}/address`])).trim();
  return { name, client: env.CLIENT_NS, gateway: env.GATEWAY_NS, server: env.SERVER_NS, serverIp: env.SERVER_IP4, clientIp: env.CLIENT_IP4, gatewayLanMac };
}

/** The server drops the UDP load in raw PREROUTING; this rule's counter is "delivered". */
const UDP_SINK_RULE = ["PREROUTING", "-i", "eth0", "-p", "udp", "--dport", String(UDP_PORT), "-j", "DROP"];

function udpDelivered(lab: Lab): number {
  const out = must(ns(lab.server, ["iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n"]));
  for (const line of out.split("\n")) {
    if (line.includes("DROP") && line.includes(`dpt:${UDP_PORT}`)) return Number(line.trim().split(/\s+/)[0]);
  }
  throw new Error("the server's UDP counting rule is missing");
}

function serverRxPackets(lab: Lab): number {
  return Number(must(ns(lab.server, ["cat", "/sys/class/net/eth0/statistics/rx_packets"])).trim());
}

const QUEUE_RULES = (ifc: string): string[][] => [
  ["PREROUTING", "-i", ifc, "-j", "CT", "--notrack"],
  ["PREROUTING", "-i", ifc, "-j", "NFQUEUE", "--queue-num", String(QUEUE)],
];

function addQueueRules(lab: Lab): void {
  for (const ifc of ["lan0", "wan0"]) for (const r of QUEUE_RULES(ifc)) must(ns(lab.gateway, ["iptables", "-t", "raw", "-A", ...r]));
}

function removeQueueRules(lab: Lab): void {
  for (const ifc of ["wan0", "lan0"]) for (const r of QUEUE_RULES(ifc).reverse()) runSync(ns(lab.gateway, ["iptables", "-t", "raw", "-D", ...r]));
}

/** What a row left behind in the gateway (queue rules, policy-routing rules); cleared so the next row starts clean. */
function leftovers(lab: Lab): string[] {
  const found: string[] = [];
  const raw = runSync(ns(lab.gateway, ["iptables-save", "-t", "raw"])).stdout;
  const rules = raw.split("\n").filter((l) => l.startsWith("-A "));
  if (rules.length > 0) {
    found.push(`${rules.length} raw-table rule(s) left: ${rules[0]}${rules.length > 1 ? " …" : ""}`);
    runSync(ns(lab.gateway, ["iptables", "-t", "raw", "-F"]));
  }
  const ipRules = runSync(ns(lab.gateway, ["ip", "rule", "show"])).stdout.split("\n")
    .filter((l) => l.trim() !== "" && !/^(0|32766|32767):/.test(l.trim()));
  if (ipRules.length > 0) {
    found.push(`${ipRules.length} ip rule(s) left: ${ipRules[0].trim()}`);
    for (const l of ipRules) {
      const pref = /^(\d+):/.exec(l.trim())?.[1];
      if (pref) runSync(ns(lab.gateway, ["ip", "rule", "del", "pref", pref]));
    }
  }
  return found;
}

/** One ICMP echo through the element (up to 5 tries): the path works and ARP is resolved. */
async function pathWorks(lab: Lab): Promise<boolean> {
  for (let i = 0; i < 5; i++) {
    const r = await run(ns(lab.client, ["ping", "-c", "1", "-W", "1", lab.serverIp]), 5000);
    if (r.code === 0) return true;
  }
  return false;
}

// ── measurements ─────────────────────────────────────────────────────────

interface TcpResult {
  gbps: number; bytes: number; seconds: number; retransmits: number | null;
  /** skbs the server's eth0 received (GSO super-packets count once), and per second. */
  serverRxPackets: number; serverRxPps: number;
  /** the element's CPU while the test ran, in cores (1 = one CPU busy). */
  elementCores: number | null;
  machineBusyCores: number; machineSoftirqCores: number;
  /** iperf3 client + server CPU (their own report), in cores. */
  iperf3Cores: number | null;
  /** the machine's user time that was not iperf3's or the element's: other work on the machine, in cores. */
  foreignCores: number | null;
  /** element CPU per estimated 1448-byte segment, µs. */
  elementUsPerSegment: number | null;
}

interface UdpResult {
  payload: number; seconds: number; sent: number; sendErrors: number; delivered: number;
  offeredKpps: number; deliveredKpps: number; lossPct: number;
  /** lost < 2 %: the element kept up with the sender, the rate is a lower bound. */
  senderBound: boolean;
  sender: string; senderUsPerSent: number | null;
  /** the element's CPU, and in cores over the run (drain included). */
  elementCpuSeconds: number | null; elementCores: number | null; elementUsPerPkt: number | null;
  machineBusyUsPerPkt: number; machineSoftirqUsPerPkt: number; ksoftirqdUsPerPkt: number;
  /** the machine's user time that was not the sender's or the element's: other work on the machine, in cores. */
  foreignCores: number | null;
}

/** Which CPU figure stands for the element: a process, or (kernel row) the machine's softirq time. */
type CpuSource = { pid: number } | "softirq";

function elementCpu(src: CpuSource, m: MachineCpu): number {
  return src === "softirq" ? m.softirq : procCpu(src.pid);
}

function elementUser(src: CpuSource): number {
  return src === "softirq" ? 0 : procTimes(src.pid).user;
}

/** Waits (bounded) until the iperf3 server listens: its port shows in `ss` in the server namespace. */
async function listening(lab: Lab, server: Proc): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (server.exit !== null) throw new Error(`iperf3 server exited: ${server.tail()}`);
    const r = await run(ns(lab.server, ["ss", "-Hltn", `sport = :${IPERF_PORT}`]), 5000);
    if (r.stdout.includes(`:${IPERF_PORT}`)) return;
    await sleep(50);
  }
  throw new Error(`iperf3 server not listening after 10 s: ${server.tail()}`);
}

async function measureTcp(lab: Lab, src: CpuSource): Promise<TcpResult> {
  const server = new Proc(ns(lab.server, ["iperf3", "-s", "-1", "--forceflush", "-B", lab.serverIp, "-p", String(IPERF_PORT)]));
  try {
    await listening(lab, server);
    const rx0 = serverRxPackets(lab);
    const m0 = machineCpu(), e0 = elementCpu(src, m0), u0 = elementUser(src);
    const r = await run(ns(lab.client, [
      "iperf3", "-c", lab.serverIp, "-p", String(IPERF_PORT), "-t", String(opts.seconds), "-J", "--connect-timeout", "5000",
    ]), opts.seconds * 1000 + 30_000);
    const m1 = machineCpu(), e1 = elementCpu(src, m1), u1 = elementUser(src);
    const rx1 = serverRxPackets(lab);
    let j: {
      error?: string;
      end?: {
        sum_received?: { bytes: number; seconds: number; bits_per_second: number }; sum_sent?: { retransmits?: number };
        cpu_utilization_percent?: { host_total: number; host_user: number; remote_total: number; remote_user: number };
      };
    };
    try { j = JSON.parse(r.stdout); } catch { throw new Error(`iperf3 client: exit ${r.code}${r.timedOut ? " (timeout)" : ""}: ${lastLine(r.stderr || r.stdout)}`); }
    if (j.error !== undefined || j.end?.sum_received === undefined) throw new Error(`iperf3: ${j.error ?? "no result"}`);
    const rec = j.end.sum_received;
    const secs = rec.seconds;
    const cpu = e1 - e0;
    const segments = rec.bytes / MSS;
    const cu = j.end.cpu_utilization_percent;
    const iperf3Cores = cu ? (cu.host_total + cu.remote_total) / 100 : null;
    const oursUser = cu ? (cu.host_user + cu.remote_user) / 100 + (u1 - u0) / secs : NaN;
    return {
      gbps: rec.bits_per_second / 1e9, bytes: rec.bytes, seconds: secs, retransmits: j.end.sum_sent?.retransmits ?? null,
      serverRxPackets: rx1 - rx0, serverRxPps: (rx1 - rx0) / secs,
      elementCores: Number.isFinite(cpu) ? cpu / secs : null,
      machineBusyCores: (m1.busy - m0.busy) / secs, machineSoftirqCores: (m1.softirq - m0.softirq) / secs,
      iperf3Cores, foreignCores: Number.isFinite(oursUser) ? Math.max(0, (m1.user - m0.user) / secs - oursUser) : null,
      elementUsPerSegment: Number.isFinite(cpu) && segments > 0 ? (cpu / segments) * 1e6 : null,
    };
  } finally {
    await server.stop();
  }
}

async function measureUdp(lab: Lab, flood: string, src: CpuSource): Promise<UdpResult> {
  const d0 = udpDelivered(lab);
  const m0 = machineCpu(), e0 = elementCpu(src, m0), u0 = elementUser(src);
  const how = opts.sender === "packet" ? ["-i", "eth0", "-m", lab.gatewayLanMac] : [];
  const r = await run(ns(lab.client, [flood, ...how, lab.serverIp, String(UDP_PORT), String(opts.udpSize), String(opts.seconds), "64"]),
    opts.seconds * 1000 + 15_000);
  await sleep(DRAIN_MS);
  const m1 = machineCpu(), e1 = elementCpu(src, m1), u1 = elementUser(src);
  const d1 = udpDelivered(lab);
  let j: { sent: number; errors: number; seconds: number; cpuSeconds: number; userSeconds: number; mode: string };
  try { j = JSON.parse(lastLineFull(r.stdout)); } catch { throw new Error(`udp_flood: exit ${r.code}${r.timedOut ? " (timeout)" : ""}: ${lastLine(r.stderr)}`); }
  const delivered = d1 - d0;
  const cpu = e1 - e0;
  const wall = j.seconds + DRAIN_MS / 1000; // the machine figures span the drain too
  const oursUser = j.userSeconds + (u1 - u0);
  const per = (s: number): number => (delivered > 0 ? (s / delivered) * 1e6 : NaN);
  return {
    payload: opts.udpSize, seconds: j.seconds, sent: j.sent, sendErrors: j.errors, delivered,
    offeredKpps: j.sent / j.seconds / 1000, deliveredKpps: delivered / j.seconds / 1000,
    lossPct: j.sent > 0 ? Math.max(0, (1 - delivered / j.sent) * 100) : 0,
    senderBound: j.sent > 0 && delivered >= 0.98 * j.sent,
    sender: j.mode, senderUsPerSent: j.sent > 0 ? (j.cpuSeconds / j.sent) * 1e6 : null,
    elementCpuSeconds: Number.isFinite(cpu) ? cpu : null, elementCores: Number.isFinite(cpu) ? cpu / wall : null, elementUsPerPkt: Number.isFinite(cpu) ? per(cpu) : null,
    machineBusyUsPerPkt: per(m1.busy - m0.busy), machineSoftirqUsPerPkt: per(m1.softirq - m0.softirq),
    ksoftirqdUsPerPkt: per(m1.ksoftirqd - m0.ksoftirqd),
    foreignCores: Number.isFinite(oursUser) ? Math.max(0, (m1.user - m0.user - oursUser) / wall) : null,
  };
}

// ── rows ─────────────────────────────────────────────────────────────────

interface Row {
  id: string; name: string; available: boolean; reason?: string;
  tcp?: TcpResult | { error: string }; udp?: UdpResult | { error: string };
  cpuSource?: string; notes: string[]; extra?: Record<string, unknown>;
  tcpVsKernel?: number | null; udpVsCLoop?: number | null;
  /** packets per CPU-second against the C loop: its µs CPU/pkt ÷ this row's. */
  udpVsCLoopPerCpu?: number | null;
  /** busy cores of other work just before the row started. */
  backgroundCores?: number;
}

/** A started element: where its CPU is read, and how to stop it (returns extra figures for the JSON). */
interface Element { cpu: CpuSource; stop(): Promise<Record<string, unknown>> }

interface Tools { iperf3: string | null; flood: string | null; nfqAccept: string | null; nfqAcceptReason: string; npmNfqReason: string | null }

/** Waits (at most QUIET_WAIT_MS) for the machine to be idle, so a row does not share it with other work; returns the last load seen. */
async function waitQuiet(): Promise<number> {
  const deadline = Date.now() + QUIET_WAIT_MS;
  let load = await backgroundLoad();
  while (load > BUSY_WARN_CORES && Date.now() < deadline) {
    say(`machine busy with other work (${load.toFixed(2)} cores): waiting`);
    await sleep(2000);
    load = await backgroundLoad();
  }
  return load;
}

/**
 * Runs a measurement; when other work took more than BUSY_WARN_CORES meanwhile (foreignCores), waits for
 * quiet and measures again, at most MEASURE_TRIES times in all. Errors become `{ error }`.
 */
async function undisturbed<T extends { foreignCores: number | null }>(what: string, measure: () => Promise<T>): Promise<(T & { tries: number }) | { error: string }> {
  for (let tries = 1; ; tries++) {
    let r: T;
    try { r = await measure(); } catch (e) { return { error: (e as Error).message }; }
    if ((r.foreignCores ?? 0) <= BUSY_WARN_CORES || tries >= MEASURE_TRIES) return { ...r, tries };
    say(`${what}: other work took ${r.foreignCores!.toFixed(2)} cores meanwhile: measuring again`);
    await waitQuiet();
  }
}

async function runRow(id: string, name: string, lab: Lab, tools: Tools, start: () => Promise<Element>, what: { tcp: boolean; udp: boolean }): Promise<Row> {
  say(`row ${id}: ${name}`);
  const row: Row = { id, name, available: true, notes: [] };
  row.backgroundCores = await waitQuiet();
  let el: Element;
  try {
    el = await start();
  } catch (e) {
    row.available = false;
    row.reason = (e as Error).message;
    say(`row ${id}: unavailable: ${row.reason}`);
    row.notes.push(...leftovers(lab));
    return row;
  }
  row.cpuSource = el.cpu === "softirq" ? "machine softirq (/proc/stat)" : `process ${el.cpu.pid} utime+stime`;
  try {
    if (!(await pathWorks(lab))) throw new Error("no ping from client to server through the element");
    if (what.tcp) {
      if (tools.iperf3 === null) row.tcp = { error: "iperf3 is not installed" };
      else row.tcp = await undisturbed("TCP", () => measureTcp(lab, el.cpu));
    }
    if (what.udp) {
      if (tools.flood === null) row.udp = { error: "udp_flood did not build" };
      else row.udp = await undisturbed("UDP", () => measureUdp(lab, tools.flood!, el.cpu));
    }
  } catch (e) {
    row.available = false;
    row.reason = (e as Error).message;
  } finally {
    row.extra = await el.stop().catch((e: Error) => ({ stopError: e.message }));
    const exit = row.extra.exit as { code: number | null; signal: string | null; killed: boolean } | undefined;
    if (row.extra.stopError !== undefined) row.notes.push(`stop failed: ${String(row.extra.stopError)}`);
    else if (exit !== undefined && (exit.code !== 0 || exit.killed)) {
      row.notes.push(`the element ${exit.killed ? "ignored SIGTERM and was killed" : `exited ${exit.code ?? exit.signal}`} on stop`);
    }
    row.notes.push(...leftovers(lab));
  }
  const t = row.tcp && "gbps" in row.tcp ? `${row.tcp.gbps.toFixed(2)} Gbit/s` : row.tcp ? `tcp: ${(row.tcp as { error: string }).error}` : "";
  const u = row.udp && "deliveredKpps" in row.udp ? `${row.udp.deliveredKpps.toFixed(1)} kpps` : row.udp ? `udp: ${(row.udp as { error: string }).error}` : "";
  say(`row ${id}: ${row.available ? [t, u].filter(Boolean).join(", ") : `failed: ${row.reason}`}`);
  return row;
}

const kernelElement = async (): Promise<Element> => ({ cpu: "softirq", stop: async () => ({}) });

/** (b) and (c): the queue rules, then a peer process that prints a ready line. */
function queuePeer(lab: Lab, argv: string[], what: string): () => Promise<Element> {
  return async () => {
    const p = new Proc(ns(lab.gateway, argv));
    try {
      await p.waitFor((l) => l.includes('"ready":true'), READY_MS, what);
      addQueueRules(lab);
    } catch (e) {
      removeQueueRules(lab);
      await p.stop();
      throw e;
    }
    return {
      cpu: { pid: p.pid },
      stop: async () => {
        removeQueueRules(lab);
        const s = await p.stop();
        const last = [...p.lines].reverse().find((l) => l.startsWith("{") && l.includes('"packets"'));
        let counters: unknown = null;
        try { counters = last ? JSON.parse(last) : null; } catch { /* not JSON */ }
        return { exit: s, counters };
      },
    };
  };
}

let instanceSeq = 0;

/** (d) and (e): `sluice run` in the gateway with a temporary config; ready at its "sluice running" line. */
function sluiceElement(lab: Lab, tmp: string, mode: "nfqueue" | "tun", gso: boolean): () => Promise<Element> {
  return async () => {
    if (!existsSync(SLUICE_MAIN)) throw new Error(`${SLUICE_MAIN} is missing (build with npx tsc -p tsconfig.json)`);
    const n = ++instanceSeq;
    const tag = `${process.pid.toString(36)}${n}`;
    const socket = join(tmp, `ctl${n}.sock`);
    const lines = [
      `instance: bench${tag}`,
      `mode: ${mode}`,
      "interfaces: {lan: [lan0], wan: [wan0]}",
      mode === "nfqueue"
        ? `nfqueue: {queues: [${QUEUE}], gso: ${gso}, maxLen: ${MAXLEN}}`
        : `tun: {device: sl${tag}, table: ${1000 + (process.pid % 1000) * 10 + n}, rulePriority: ${1000 + n}}`,
      `control: {socket: ${socket}}`,
      `stateDir: ${join(tmp, `state${n}`)}`,
      "log: {level: info, pretty: false, summaryInterval: 0}",
      "conntrack: {max: 65536}",
      "",
    ];
    const cfg = join(tmp, `sluice${n}.yaml`);
    writeFileSync(cfg, lines.join("\n"));
    const p = new Proc(ns(lab.gateway, [process.execPath, SLUICE_MAIN, "run", "--config", cfg]));
    try {
      await p.waitFor((l) => l.includes('"msg":"sluice running"'), READY_MS, "sluice run");
    } catch (e) {
      await p.stop();
      throw e;
    }
    return {
      cpu: { pid: p.pid },
      stop: async () => {
        const st = await run([process.execPath, SLUICE_MAIN, "stats", "--json", "--socket", socket], 10_000);
        let stats: unknown = null;
        try { stats = JSON.parse(lastLineFull(st.stdout)); } catch { stats = { error: lastLine(st.stderr) || `exit ${st.code}` }; }
        const s = await p.stop();
        const errors = p.lines.filter((l) => /"level":(50|60)/.test(l) || l.startsWith("stderr: ")).slice(-5);
        return { config: lines.filter((l) => l !== ""), exit: s, stats, errorLines: errors };
      },
    };
  };
}

// ── setup: Debian packages, builds ───────────────────────────────────────

function debInstalled(pkg: string): boolean {
  return runSync(["dpkg-query", "-W", "-f=${Status}", pkg]).stdout.includes("install ok installed");
}

/** apt-get install of what this bench needs and is missing; returns the packages that are still missing. */
function ensureDebian(pkgs: string[]): string[] {
  const missing = pkgs.filter((p) => !debInstalled(p));
  if (missing.length === 0) return [];
  say(`installing Debian packages: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync("apt-get", ["update", "-qq"], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000, env });
  const r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { stdio: ["ignore", "ignore", "inherit"], timeout: 600_000, env });
  if (r.status !== 0) say(`apt-get install exited ${r.status ?? r.signal}`);
  return missing.filter((p) => !debInstalled(p));
}

function gcc(out: string, src: string, libs: string[]): string | null {
  const r = runSync(["gcc", "-O2", "-Wall", "-o", out, join(C_SOURCES, src), ...libs], 120_000);
  if (r.code !== 0) return `gcc ${src}: ${lastLine(r.stderr) || `exit ${r.code}`}`;
  return null;
}

/** Builds node_modules/nfqueue's addon if needed (npm is told not to); null when it loads, else why not. */
function ensureNpmNfqueue(): string | null {
  if (!existsSync(join(NFQ_PKG, "package.json"))) return "node_modules/nfqueue is missing (npm install --no-audit --no-fund)";
  if (!existsSync(NFQ_PEER)) return `${NFQ_PEER} is missing (build with npx tsc -p tsconfig.json)`;
  if (!existsSync(join(NFQ_PKG, "build/Release/nfqueue.node"))) {
    say("building the npm nfqueue package's native part (node-gyp)");
    const gyp = join(ROOT, "node_modules/node-gyp/bin/node-gyp.js");
    if (!existsSync(gyp)) return "node-gyp is not installed (npm install)";
    const argv = [process.execPath, gyp, "rebuild", "--directory", NFQ_PKG];
    // nodedir from npm's config (this machine's .npmrc points it at the installed headers: no download).
    const nodedir = process.env.npm_config_nodedir ?? runSync(["npm", "config", "get", "nodedir"]).stdout.trim();
    if (nodedir && nodedir !== "undefined" && nodedir !== "null") argv.push(`--nodedir=${nodedir}`);
    const r = runSync(argv, 300_000);
    if (r.code !== 0) {
      const lines = (r.stderr + r.stdout).split("\n");
      const err = lines.find((l) => /fatal error|\berror:/.test(l)) ?? lines.find((l) => /ERR! stack Error/.test(l)) ?? lastLine(r.stderr);
      return `node-gyp rebuild of nfqueue failed: ${err.trim().slice(0, 200)}`;
    }
  }
  const probe = runSync([process.execPath, "-e", `require(${JSON.stringify(NFQ_PKG)})`], 20_000);
  if (probe.code !== 0) return `nfqueue does not load: ${lastLine(probe.stderr)}`;
  return null;
}

function machineInfo(): Record<string, unknown> {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "?";
  const ver = (argv: string[]): string | null => { const r = runSync(argv, 10_000); return r.code === 0 ? lastLine(r.stdout.split("\n")[0] || r.stdout) : null; };
  return {
    cpu: model, cores: cpus().length, kernel: release(), node: process.version,
    iperf3: ver(["iperf3", "--version"]), iptables: ver(["iptables", "-V"]),
    libnetfilterQueue: runSync(["dpkg-query", "-W", "-f=${Version}", "libnetfilter-queue1"]).stdout.trim() || null,
    nfqueueNpm: existsSync(join(NFQ_PKG, "package.json")) ? (JSON.parse(readFileSync(join(NFQ_PKG, "package.json"), "utf8")) as { version: string }).version : null,
  };
}

// ── output ───────────────────────────────────────────────────────────────

const isTcp = (t: Row["tcp"]): t is TcpResult => t !== undefined && "gbps" in t;
const isUdp = (u: Row["udp"]): u is UdpResult => u !== undefined && "deliveredKpps" in u;

function ratios(rows: Row[]): void {
  const a = rows.find((r) => r.id === "a"), b = rows.find((r) => r.id === "b");
  const kernelGbps = a && isTcp(a.tcp) ? a.tcp.gbps : null;
  const cKpps = b && isUdp(b.udp) ? b.udp.deliveredKpps : null;
  const cUs = b && isUdp(b.udp) ? b.udp.elementUsPerPkt : null;
  for (const r of rows) {
    r.tcpVsKernel = isTcp(r.tcp) && kernelGbps ? r.tcp.gbps / kernelGbps : null;
    r.udpVsCLoop = isUdp(r.udp) && cKpps ? r.udp.deliveredKpps / cKpps : null;
    r.udpVsCLoopPerCpu = isUdp(r.udp) && cUs && r.udp.elementUsPerPkt ? cUs / r.udp.elementUsPerPkt : null;
  }
}

/** One table column: header (two lines), width, and the cell of a row. */
interface Column { h1: string; h2: string; w: number; cell(r: Row, t: TcpResult | null, u: UdpResult | null, star: string): string }

function table(rows: Row[], machine: Record<string, unknown>, background: { before: number; after: number }): string {
  const f = (v: number | null | undefined, d: number): string => (v === null || v === undefined || !Number.isFinite(v) ? "—" : v.toFixed(d));
  const cols: Column[] = [
    { h1: "TCP", h2: "Gbit/s", w: 7, cell: (_r, t) => f(t?.gbps, 2) },
    { h1: "×kernel", h2: "", w: 7, cell: (r) => f(r.tcpVsKernel, 2) },
    { h1: "TCP", h2: "CPU%", w: 5, cell: (_r, t, _u, star) => (t ? f(t.elementCores === null ? null : t.elementCores * 100, 0) + star : "—") },
    { h1: "UDP kpps", h2: "offered", w: 8, cell: (_r, _t, u) => f(u?.offeredKpps, 1) },
    { h1: "UDP kpps", h2: "delivered", w: 9, cell: (_r, _t, u) => (u ? f(u.deliveredKpps, 1) + (u.senderBound ? "s" : "") : "—") },
    { h1: "×C loop", h2: "", w: 7, cell: (r) => f(r.udpVsCLoop, 2) },
    { h1: "UDP", h2: "CPU%", w: 5, cell: (_r, _t, u, star) => (u ? f(u.elementCores === null ? null : u.elementCores * 100, 0) + star : "—") },
    { h1: "µs CPU", h2: "/pkt", w: 6, cell: (_r, _t, u, star) => (u ? f(u.elementUsPerPkt, 2) + star : "—") },
    { h1: "×C", h2: "per CPU", w: 7, cell: (r) => f(r.udpVsCLoopPerCpu, 2) },
    { h1: "µs all", h2: "/pkt", w: 6, cell: (_r, _t, u) => f(u?.machineBusyUsPerPkt, 2) },
  ];
  const ID_W = 9, NAME_W = 27;
  const line = (id: string, name: string, cells: string[]): string =>
    `${id.padEnd(ID_W)} ${name.padEnd(NAME_W)} ${cells.map((c, k) => c.padStart(cols[k].w + 1)).join(" ")}`.trimEnd();
  const out: string[] = [];
  out.push(`${String(machine.cpu)} x${String(machine.cores)}, kernel ${String(machine.kernel)}, node ${process.version}; ` +
    `${opts.seconds} s per run; TCP: iperf3, 1 stream; UDP: ${opts.udpSize}-byte payloads, one flow, ` +
    `${opts.sender === "packet" ? "AF_PACKET" : "UDP socket"} sendmmsg flood, delivered = counted at the server`);
  if (Math.max(background.before, background.after) > BUSY_WARN_CORES) {
    out.push(`warning: other work kept the machine busy (${background.before.toFixed(2)} cores before the rows, ${background.after.toFixed(2)} after): figures are low and noisy`);
  }
  out.push(line("", "", cols.map((c) => c.h1)));
  out.push(line("row", "forwarding element", cols.map((c) => c.h2)));
  for (const r of rows) {
    const foreign = Math.max(isTcp(r.tcp) ? r.tcp.foreignCores ?? 0 : 0, isUdp(r.udp) ? r.udp.foreignCores ?? 0 : 0);
    const id = r.id + (foreign > BUSY_WARN_CORES ? "!" : "");
    if (!r.available && !isTcp(r.tcp) && !isUdp(r.udp)) { out.push(`${id.padEnd(ID_W)} ${r.name.padEnd(NAME_W)} unavailable: ${r.reason ?? "?"}`); continue; }
    const t = isTcp(r.tcp) ? r.tcp : null, u = isUdp(r.udp) ? r.udp : null;
    const star = r.cpuSource?.startsWith("machine") ? "*" : "";
    out.push(line(id, r.name, cols.map((c) => c.cell(r, t, u, star))));
    if (r.tcp && !t) out.push(`          TCP: ${(r.tcp as { error: string }).error}`);
    if (r.udp && !u) out.push(`          UDP: ${(r.udp as { error: string }).error}`);
    if (!r.available) out.push(`          failed: ${r.reason ?? "?"}`);
    for (const n of r.notes) out.push(`          note: ${n}`);
  }
  out.push("CPU% and µs CPU/pkt: the element's own CPU (process utime+stime; * kernel row: the machine's softirq time, where forwarding runs),");
  out.push("  per delivered UDP packet for µs. ×C per CPU: packets per CPU-second against the C loop (its µs CPU/pkt ÷ the row's), the");
  out.push("  ratio of capacities when neither is held back by the sender. µs all/pkt: every busy CPU of the machine, sender included.");
  if (rows.some((r) => (isTcp(r.tcp) && (r.tcp.foreignCores ?? 0) > BUSY_WARN_CORES) || (isUdp(r.udp) && (r.udp.foreignCores ?? 0) > BUSY_WARN_CORES))) {
    out.push(`! other work took more than ${BUSY_WARN_CORES} of a core while the row ran (JSON: foreignCores): its figures are low.`);
  }
  out.push("s sender-bound: the row lost < 2 % of what the sender got out, so it could do more; its rate (and ratio) is a lower bound.");
  for (const t of targets(rows)) out.push(`target: ${t.text}`);
  return out.join("\n");
}

interface Target { row: string; what: string; want: number; got: number | null; met: boolean | null; text: string }

function targets(rows: Row[]): Target[] {
  const out: Target[] = [];
  const add = (id: string, what: string, want: number, got: number | null | undefined): void => {
    if (!rows.some((r) => r.id === id)) return;
    const g = got ?? null;
    const met = g === null ? null : g >= want;
    out.push({ row: id, what, want, got: g, met, text: `${id} ${what} ≥ ${want}×: ${g === null ? "not measured" : `${g.toFixed(2)}× — ${met ? "met" : "not met"}`}` });
  };
  add("d", "TCP vs kernel forwarding (F_GSO)", 0.8, rows.find((r) => r.id === "d")?.tcpVsKernel);
  add("d", "small UDP vs C loop", 1.5, rows.find((r) => r.id === "d")?.udpVsCLoop);
  add("e", "TCP vs kernel forwarding", 0.8, rows.find((r) => r.id === "e")?.tcpVsKernel);
  add("e", "small UDP vs C loop", 1.5, rows.find((r) => r.id === "e")?.udpVsCLoop);
  // The same, per CPU-second: what the ratio would be if the sender could feed both to saturation.
  add("d", "small UDP vs C loop, per CPU", 1.5, rows.find((r) => r.id === "d")?.udpVsCLoopPerCpu);
  add("e", "small UDP vs C loop, per CPU", 1.5, rows.find((r) => r.id === "e")?.udpVsCLoopPerCpu);
  return out;
}

// ── main ─────────────────────────────────────────────────────────────────

const labName = `fwd${process.pid}${Math.random().toString(36).slice(2, 6)}`;
let labIsUp = false;
const tmp = mkdtempSync(join(tmpdir(), "sluice-fwd-"));

/** Ends what is still running (by pid), removes the lab and the temporary directory. Synchronous: safe in signal handlers. */
function cleanup(): void {
  for (const c of live) { try { c.kill("SIGTERM"); } catch { /* gone */ } }
  if (live.size > 0) spawnSync("sleep", ["0.5"]);
  for (const c of live) { try { c.kill("SIGKILL"); } catch { /* gone */ } }
  if (labIsUp) {
    const r = runSync([LAB_SH, "down", labName], 120_000);
    if (r.code !== 0) say(`lab.sh down ${labName}: exit ${r.code}: ${lastLine(r.stderr)}`);
    labIsUp = false;
  }
  rmSync(tmp, { recursive: true, force: true });
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    say(`${sig}: cleaning up`);
    cleanup();
    process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (network namespaces, iptables)");
  const stillMissing = ensureDebian(["iperf3", "libnetfilter-queue-dev", "gcc", "libc6-dev"]);
  if (stillMissing.length > 0) say(`still missing: ${stillMissing.join(" ")}`);

  const floodBin = join(tmp, "udp_flood"), acceptBin = join(tmp, "nfq_accept");
  const floodErr = gcc(floodBin, "udp_flood.c", []);
  const acceptErr = opts.only.has("b") ? gcc(acceptBin, "nfq_accept.c", ["-lnetfilter_queue"]) : "not requested";
  const tools: Tools = {
    iperf3: debInstalled("iperf3") ? "iperf3" : null,
    flood: floodErr === null ? floodBin : null,
    nfqAccept: acceptErr === null ? acceptBin : null,
    nfqAcceptReason: acceptErr ?? "",
    npmNfqReason: opts.only.has("c") ? ensureNpmNfqueue() : "not requested",
  };
  if (floodErr !== null) say(floodErr);

  const lab = labUp(labName);
  labIsUp = true;
  say(`lab ${labName} is up`);
  must(ns(lab.server, ["iptables", "-t", "raw", "-A", ...UDP_SINK_RULE]));

  const background = { before: await backgroundLoad(), after: NaN };
  if (background.before > BUSY_WARN_CORES) say(`warning: the machine is busy with other work (${background.before.toFixed(2)} cores)`);
  const rows: Row[] = [];
  const both = { tcp: true, udp: true };
  const unavailable = (reason: string) => async (): Promise<Element> => { throw new Error(reason); };
  if (opts.only.has("a")) rows.push(await runRow("a", "kernel forwarding", lab, tools, kernelElement, both));
  if (opts.only.has("b")) {
    rows.push(await runRow("b", "C loop, libnetfilter_queue", lab, tools,
      tools.nfqAccept === null ? unavailable(tools.nfqAcceptReason)
        : queuePeer(lab, [tools.nfqAccept, String(QUEUE), "--rcvbuf", String(RCVBUF), "--maxlen", String(MAXLEN)], "nfq_accept"), both));
  }
  if (opts.only.has("c")) {
    rows.push(await runRow("c", "npm nfqueue 0.3.2 (Node)", lab, tools,
      tools.npmNfqReason !== null ? unavailable(tools.npmNfqReason)
        : queuePeer(lab, [process.execPath, NFQ_PEER, String(QUEUE), String(RCVBUF)], "nfqueue-peer"), both));
  }
  if (opts.only.has("d")) {
    if (opts.gso !== "off") rows.push(await runRow("d", "sluice NFQUEUE, F_GSO", lab, tools, sluiceElement(lab, tmp, "nfqueue", true), both));
    if (opts.gso !== "on") {
      rows.push(await runRow(opts.gso === "off" ? "d" : "d/no-gso", "sluice NFQUEUE, no F_GSO", lab, tools,
        sluiceElement(lab, tmp, "nfqueue", false), { tcp: true, udp: opts.gso === "off" }));
    }
  }
  if (opts.only.has("e")) rows.push(await runRow("e", "sluice TUN", lab, tools, sluiceElement(lab, tmp, "tun", false), both));

  background.after = await backgroundLoad();
  ratios(rows);
  const machine = machineInfo();
  if (!opts.jsonOnly) console.log(table(rows, machine, background));
  console.log(JSON.stringify({
    bench: "forward", machine: { ...machine, backgroundBusyCores: background },
    settings: { seconds: opts.seconds, udpPayload: opts.udpSize, sender: opts.sender, queue: QUEUE, rcvbuf: RCVBUF, maxLen: MAXLEN, gso: opts.gso, lab: labName },
    rows, targets: targets(rows).map(({ text: _text, ...t }) => t),
  }));
}

let exitCode = 0;
try {
  await main();
} catch (e) {
  say(`error: ${(e as Error).message}`);
  exitCode = 1;
} finally {
  cleanup();
}
process.exit(exitCode);
