/**
 * Support for the daemon's netns tests (run.netns.test.ts): a lab from
 * scripts/lab.sh, `sluice run` as a child process in its gateway namespace,
 * traffic between the lab's client and server (ping, curl against
 * `python3 -m http.server`, python3 UDP echo), a TCP connection held open
 * whose sequence numbers are known, forged TCP segments from a raw socket,
 * tcpdump, and snapshots of the gateway's kernel state.
 *
 * Bounds: every command runs with a timeout (SIGKILL when it expires), every
 * background process has a lifetime after which Node kills it, and every
 * wait polls with a deadline. Processes are started with `ip netns exec NS
 * PROGRAM`, which execs PROGRAM in place, so the child's pid is the
 * program's own and a signal reaches it directly (no `timeout` or shell in
 * between that could leave an orphan). `killAll()` ends whatever is still
 * running; `lab.sh down` ends anything left in the namespaces as well.
 *
 * The daemon's stdout and stderr go to files, not pipes: a pipe nobody reads
 * while the test blocks in spawnSync would fill up and stall the daemon.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** Whether the kernel tests can run here (root: netns, iptables, NFQUEUE, TUN). */
export const CAN_RUN_KERNEL_TESTS = process.platform === "linux" && process.getuid?.() === 0;

export const ROOT = resolve(__dirname, "../..");
/** The compiled CLI (`npx tsc -p tsconfig.json` builds it). */
export const SLUICE_CLI = join(ROOT, "dist/src/cli/main.js");
const LAB_SH = join(ROOT, "scripts/lab.sh");

/** Default bound of one command, ms. */
const STEP_MS = 10_000;
/** Poll period of every wait, ms. */
const POLL_MS = 50;

/** The fixed server ports of the lab's traffic (client ports are ephemeral, >= 32768). */
export const PORT = {
  /** python3 -m http.server (TCP, one request per connection). */
  http: 8080,
  /** A server that keeps each connection open until the client closes it. */
  hold: 8081,
  /** UDP echo. */
  udp: 9999,
  /** Nobody listens here: the server answers ICMP port unreachable. */
  udpClosed: 9998,
} as const;

/** What a finished command left. */
export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** `argv` as a shell would read it, plus its outcome; for failure messages. */
export function describeResult(argv: readonly string[], r: Result): string {
  const how = r.code !== null ? `exit ${r.code}` : `killed by ${r.signal ?? "?"}`;
  return `${argv.join(" ")}: ${how}\n--- stdout\n${r.out.trimEnd()}\n--- stderr\n${r.err.trimEnd()}`;
}

/** Runs argv synchronously with a bound (SIGKILL when it expires); never throws. */
export function run(argv: readonly string[], timeoutMs = STEP_MS): Result {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024 });
  const err = (r.stderr ?? "") + (r.error !== undefined ? `\n[spawn: ${r.error.message}]` : "");
  return { code: r.status, signal: r.signal, out: r.stdout ?? "", err };
}

/** Runs argv without blocking the event loop, with a bound (SIGKILL when it expires); never rejects. */
export function runAsync(argv: readonly string[], timeoutMs = STEP_MS): Promise<Result> {
  return new Promise((done) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL" });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", (e) => (err += `\n[spawn: ${e.message}]`));
    child.on("close", (code, signal) => done({ code, signal, out, err }));
  });
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `probe` every POLL_MS until it returns a value other than
 * undefined; throws `what` (plus `detail()` when given) after `limitMs`.
 */
export async function waitUntil<T>(limitMs: number, what: string, probe: () => T | undefined, detail?: () => string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > limitMs) throw new Error(`${what}: not within ${limitMs} ms${detail ? `\n${detail()}` : ""}`);
    await delay(POLL_MS);
  }
}

/** The real python3 (pyenv's shim is a shell script; resolving it once saves a fork chain per call). */
export const PYTHON: string = (() => {
  const r = run(["python3", "-c", "import sys; print(sys.executable)"]);
  return r.code === 0 && r.out.trim() !== "" ? r.out.trim() : "python3";
})();

// ─── Background processes ────────────────────────────────────────────────

const live = new Set<Bg>();

/** A background process with its output collected; killed by Node after its lifetime. */
export class Bg {
  out = "";
  err = "";
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly argv: readonly string[];

  constructor(argv: readonly string[], lifetimeMs: number) {
    this.argv = argv;
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], timeout: lifetimeMs, killSignal: "SIGKILL" });
    this.child.stdout!.on("data", (d: Buffer) => (this.out += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => (this.err += d.toString()));
    this.child.on("error", (e) => (this.err += `\n[spawn: ${e.message}]`));
    this.exited = new Promise((done) =>
      this.child.on("close", (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        done();
      }),
    );
    live.add(this);
  }

  /** Waits until stdout or stderr matches `re`; throws (with the output) if the process exits first or `limitMs` passes. */
  waitFor(re: RegExp, limitMs: number, what: string): Promise<RegExpExecArray> {
    return waitUntil(
      limitMs,
      `${what} (${this.argv.join(" ")})`,
      () => {
        const m = re.exec(this.out) ?? re.exec(this.err);
        if (m !== null) return m;
        if (this.exit !== null) throw new Error(`${what}: exited (${JSON.stringify(this.exit)}) first\n${this.output()}`);
        return undefined;
      },
      () => this.output(),
    );
  }

  output(): string {
    return `--- stdout\n${this.out.trimEnd()}\n--- stderr\n${this.err.trimEnd()}`;
  }

  /** SIGTERM, then SIGKILL after 2 s; resolves once it is gone. */
  async stop(): Promise<void> {
    if (this.exit !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2000);
    await this.exited;
    clearTimeout(timer);
  }
}

// ─── The lab ─────────────────────────────────────────────────────────────

type Role = "client" | "gateway" | "server";

/** A lab from scripts/lab.sh: three namespaces, addresses in `env`. */
export class Lab {
  readonly name: string;
  readonly env: Readonly<Record<string, string>>;

  private constructor(name: string, env: Record<string, string>) {
    this.name = name;
    this.env = env;
  }

  /** `lab.sh up NAME` (NAME: 1-40 characters); throws with its stderr on failure (it cleans up after itself then). */
  static up(name: string): Lab {
    const r = run(["bash", LAB_SH, "up", name], 60_000);
    if (r.code !== 0) throw new Error(describeResult(["lab.sh", "up", name], r));
    const env: Record<string, string> = {};
    for (const line of r.out.split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    return new Lab(name, env);
  }

  /** `lab.sh down NAME`: ends processes left in the namespaces, deletes them. Safe to call twice. */
  down(): Result {
    return run(["bash", LAB_SH, "down", this.name], 60_000);
  }

  /** The names of this lab's namespaces that exist. */
  namespaces(): string[] {
    return run(["ip", "netns", "list"])
      .out.split("\n")
      .map((l) => l.split(" ")[0]!)
      .filter((n) => n.startsWith(`${this.name}-`));
  }

  ns(role: Role): string {
    return `${this.name}-${role}`;
  }

  /** A lab address, e.g. ip("SERVER", 6). */
  ip(who: "CLIENT" | "SERVER", family: 4 | 6): string {
    return this.env[`${who}_IP${family}`]!;
  }

  argv(role: Role, argv: readonly string[]): string[] {
    return ["ip", "netns", "exec", this.ns(role), ...argv];
  }

  exec(role: Role, argv: readonly string[], timeoutMs = STEP_MS): Result {
    return run(this.argv(role, argv), timeoutMs);
  }

  execAsync(role: Role, argv: readonly string[], timeoutMs = STEP_MS): Promise<Result> {
    return runAsync(this.argv(role, argv), timeoutMs);
  }

  /** Runs in the namespace; returns stdout, throws with the outcome on a non-zero exit. */
  must(role: Role, argv: readonly string[], timeoutMs = STEP_MS): string {
    const r = this.exec(role, argv, timeoutMs);
    if (r.code !== 0) throw new Error(`in ${this.ns(role)}: ${describeResult(argv, r)}`);
    return r.out;
  }

  bg(role: Role, argv: readonly string[], lifetimeMs: number): Bg {
    return new Bg(this.argv(role, argv), lifetimeMs);
  }
}

/** Ends every background process still running (afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((b) => b.stop()));
}

// ─── Gateway state ───────────────────────────────────────────────────────

/** The sysctls sluice may change (src/daemon/sysctl.ts) for the lab's interfaces. */
export const WATCHED_SYSCTLS = [
  "net.ipv4.ip_forward",
  "net.ipv6.conf.all.forwarding",
  "net.ipv4.conf.all.rp_filter",
  "net.ipv4.conf.lan0.rp_filter",
  "net.ipv4.conf.wan0.rp_filter",
  "net.ipv4.conf.all.accept_local",
  "net.ipv4.conf.lan0.accept_local",
  "net.ipv4.conf.wan0.accept_local",
] as const;

/** *-save output without its timestamped comments and with chain counters blanked (policies count packets). */
function saveText(lab: Lab, cmd: string): string {
  return lab
    .must("gateway", [cmd])
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .map((l) => l.replace(/\[\d+:\d+\]/g, "[*:*]"))
    .join("\n");
}

/**
 * Everything of the gateway's kernel state sluice's plumbing may touch:
 * rules (both families, and the nf_tables tables iptables-nft creates),
 * the sysctls, devices, policy rules and routes of every table.
 */
export function gatewaySnapshot(lab: Lab): Record<string, string> {
  const snap: Record<string, string> = {
    "iptables-save": saveText(lab, "iptables-save"),
    "ip6tables-save": saveText(lab, "ip6tables-save"),
    "nft list tables": lab.must("gateway", ["nft", "list", "tables"]),
    "ip link": lab.must("gateway", ["ip", "-o", "link", "show"]),
    "ip rule": lab.must("gateway", ["ip", "rule", "show"]),
    "ip -6 rule": lab.must("gateway", ["ip", "-6", "rule", "show"]),
    "ip route show table all": lab.must("gateway", ["ip", "route", "show", "table", "all"]),
    "ip -6 route show table all": lab.must("gateway", ["ip", "-6", "route", "show", "table", "all"]),
  };
  for (const key of WATCHED_SYSCTLS) snap[key] = lab.must("gateway", ["sysctl", "-n", key]).trim();
  return snap;
}

// ─── The daemon ──────────────────────────────────────────────────────────

/** What a test's daemon config says (the rest keeps config/sluice.yaml's defaults). */
export interface RunSpec {
  mode: "nfqueue" | "tun";
  /** Unique per run: the rule tag `sluice:<instance>` and the state file's name. */
  instance: string;
  /** A fresh directory for the config, socket, state and logs. */
  dir: string;
  queue?: number;
  queueBypass?: boolean;
  /** TUN mode: a device name unique on the machine (<= 15 bytes). */
  tunDevice?: string;
  tunTable?: number;
  tunRulePriority?: number;
  /** Ruleset files (`rules.ipv4/ipv6`, relative to the config's directory); absent: none. */
  rules4?: string | null;
  rules6?: string | null;
  /** Log level (default debug). */
  logLevel?: "debug" | "info";
}

/** Paths of one daemon's run. */
export interface RunFiles {
  config: string;
  socket: string;
  stateDir: string;
  stateFile: string;
}

/** Writes the config file of `spec`; returns the paths the daemon will use. */
export function writeConfig(spec: RunSpec): RunFiles {
  mkdirSync(spec.dir, { recursive: true });
  const files: RunFiles = {
    config: join(spec.dir, "sluice.yaml"),
    socket: join(spec.dir, "ctl.sock"),
    stateDir: join(spec.dir, "state"),
    stateFile: join(spec.dir, "state", `${spec.instance}.json`),
  };
  const lines = [
    `mode: ${spec.mode}`,
    `instance: ${spec.instance}`,
    "interfaces:",
    "  lan: [lan0]",
    "  wan: [wan0]",
    "nfqueue:",
    `  queues: [${spec.queue ?? 0}]`,
    `  queueBypass: ${spec.queueBypass ?? false}`,
  ];
  if (spec.mode === "tun") {
    lines.push("tun:", `  device: ${spec.tunDevice}`, `  table: ${spec.tunTable ?? 100}`, `  rulePriority: ${spec.tunRulePriority ?? 1000}`);
  }
  if (spec.rules4 !== undefined || spec.rules6 !== undefined) {
    const path = (p: string | null | undefined): string => (p === null || p === undefined ? "null" : JSON.stringify(p));
    lines.push("rules:", `  ipv4: ${path(spec.rules4)}`, `  ipv6: ${path(spec.rules6)}`);
  }
  lines.push(
    "control:",
    `  socket: ${files.socket}`,
    `stateDir: ${files.stateDir}`,
    "log:",
    `  level: ${spec.logLevel ?? "debug"}`,
    "  pretty: false",
    "  summaryInterval: 0",
    "",
  );
  writeFileSync(files.config, lines.join("\n"));
  return files;
}

/** A pino line of the daemon's stdout. */
export type LogLine = Record<string, unknown> & { msg?: string };

const daemons = new Set<SluiceDaemon>();
let daemonSeq = 0;

/** `sluice run --config FILE` in the lab's gateway namespace. */
export class SluiceDaemon {
  readonly child: ChildProcess;
  readonly stdoutFile: string;
  readonly stderrFile: string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<void>;

  private constructor(lab: Lab, config: string, logDir: string, lifetimeMs: number) {
    const n = ++daemonSeq;
    this.stdoutFile = join(logDir, `daemon-${n}.stdout`);
    this.stderrFile = join(logDir, `daemon-${n}.stderr`);
    const out = openSync(this.stdoutFile, "w");
    const err = openSync(this.stderrFile, "w");
    try {
      this.child = spawn("ip", ["netns", "exec", lab.ns("gateway"), process.execPath, SLUICE_CLI, "run", "--config", config], {
        stdio: ["ignore", out, err],
        timeout: lifetimeMs,
        killSignal: "SIGKILL",
      });
    } finally {
      closeSync(out);
      closeSync(err);
    }
    this.exited = new Promise((done) =>
      this.child.on("close", (code, signal) => {
        this.exit = { code, signal };
        daemons.delete(this);
        done();
      }),
    );
    daemons.add(this);
  }

  /**
   * Starts the daemon and waits (at most `readyMs`) for `"msg":"sluice
   * running"`; throws with its output if it exits first or is late (and
   * kills it then). The daemon is killed by Node after `lifetimeMs`.
   */
  static async start(lab: Lab, config: string, logDir: string, readyMs = 15_000, lifetimeMs = 120_000): Promise<SluiceDaemon> {
    const d = new SluiceDaemon(lab, config, logDir, lifetimeMs);
    try {
      await waitUntil(
        readyMs,
        "daemon ready (\"sluice running\")",
        () => {
          if (d.find("sluice running") !== undefined) return true;
          if (d.exit !== null) throw new Error(`the daemon exited (${JSON.stringify(d.exit)}) before it was ready\n${d.tail()}`);
          return undefined;
        },
        () => d.tail(),
      );
    } catch (e) {
      await d.kill();
      throw e;
    }
    return d;
  }

  get pid(): number {
    return this.child.pid!;
  }

  stdout(): string {
    return existsSync(this.stdoutFile) ? readFileSync(this.stdoutFile, "utf8") : "";
  }

  stderr(): string {
    return existsSync(this.stderrFile) ? readFileSync(this.stderrFile, "utf8") : "";
  }

  /** The JSON lines of stdout (anything else is skipped). */
  lines(): LogLine[] {
    const out: LogLine[] = [];
    for (const l of this.stdout().split("\n")) {
      if (!l.startsWith("{")) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        // a line cut short by a kill
      }
    }
    return out;
  }

  /** The first log line whose msg equals `msg` (or starts with it, when `prefix`). */
  find(msg: string, prefix = false): LogLine | undefined {
    return this.lines().find((l) => typeof l.msg === "string" && (prefix ? l.msg.startsWith(msg) : l.msg === msg));
  }

  /** The last lines of stdout and stderr, for failure messages. */
  tail(n = 40): string {
    const last = (s: string): string => s.trimEnd().split("\n").slice(-n).join("\n");
    return `--- daemon stdout (last ${n} lines)\n${last(this.stdout())}\n--- daemon stderr\n${last(this.stderr())}`;
  }

  /** Sends `signal` and waits (at most `limitMs`) for the exit; SIGKILL if it does not come. */
  async stop(signal: "SIGTERM" | "SIGINT" | "SIGKILL", limitMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exit === null) {
      this.child.kill(signal);
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        this.child.kill("SIGKILL");
      }, limitMs);
      await this.exited;
      clearTimeout(timer);
      if (late) throw new Error(`the daemon did not exit within ${limitMs} ms of ${signal}\n${this.tail()}`);
    }
    return this.exit!;
  }

  /** SIGKILL, if it still runs. */
  async kill(): Promise<void> {
    if (this.exit === null) await this.stop("SIGKILL");
  }
}

/** Kills every daemon still running (afterAll). */
export async function killDaemons(): Promise<void> {
  await Promise.all([...daemons].map((d) => d.kill()));
}

/** Runs the sluice CLI (conntrack, stats) in the test's namespace: the control socket is a path, reachable from any namespace. */
export function sluiceCli(args: readonly string[]): Result {
  return run([process.execPath, SLUICE_CLI, ...args], STEP_MS);
}

/** `sluice stats --json --socket S`, parsed; throws with the output on failure. */
export function sluiceStats(socket: string): { pipeline: Record<string, number>; [k: string]: unknown } {
  const r = sluiceCli(["stats", "--json", "--socket", socket]);
  if (r.code !== 0) throw new Error(describeResult(["sluice", "stats", "--json", "--socket", socket], r));
  return JSON.parse(r.out) as { pipeline: Record<string, number> };
}

// ─── conntrack -L lines ──────────────────────────────────────────────────

const KNOWN_PORTS = new Set(Object.values(PORT).map(String));

/**
 * Normalises `conntrack -L` lines so two runs compare equal: the timeout
 * column becomes T, ephemeral ports P, ICMP ids I; the protocol, state,
 * addresses, server ports, flags, mark and use stay. Sorted.
 */
export function normaliseConntrack(lines: readonly string[]): string[] {
  return lines
    .map((l) =>
      l
        .trim()
        .replace(/^(\S+\s+\d+\s+)\d+ /, "$1T ")
        .replace(/\b(sport|dport)=(\d+)/g, (m, k: string, p: string) => (KNOWN_PORTS.has(p) ? m : `${k}=P`))
        .replace(/\bid=\d+/g, "id=I"),
    )
    .sort();
}

/** The lines of `conntrack -L` output that are about the lab's client (its flows), minus those matching `skip`. */
export function clientFlows(text: string, lab: Lab, skip?: RegExp): string[] {
  const mine = [` src=${lab.ip("CLIENT", 4)} `, ` src=${lab.ip("CLIENT", 6)} `];
  return text
    .split("\n")
    .filter((l) => mine.some((m) => l.includes(m)))
    .filter((l) => skip === undefined || !skip.test(l));
}

// ─── Traffic ─────────────────────────────────────────────────────────────

const UDP_ECHO_PY = String.raw`
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', int(sys.argv[1])))
print('echoing', flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
`;

const HOLD_SERVER_PY = String.raw`
import socket, sys, threading
def serve(c):
    # Reads (the test's in-window segment) until the client closes, then
    # closes too: every held connection ends with a clean FIN exchange, so
    # no retransmission strays into a later test.
    while c.recv(4096):
        pass
    c.close()
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::', int(sys.argv[1])))
s.listen(16)
print('holding', flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/**
 * Starts the servers in the lab's server namespace, dual-stack on `::`:
 * http.server on PORT.http (serving `wwwDir`), the UDP echo on PORT.udp and
 * the accept-and-hold server on PORT.hold. Resolves once all three listen.
 */
export async function startServers(lab: Lab, wwwDir: string, lifetimeMs: number): Promise<Bg[]> {
  mkdirSync(wwwDir, { recursive: true });
  writeFileSync(join(wwwDir, "index.html"), "sluice lab\n");
  const servers = [
    lab.bg("server", [PYTHON, "-u", "-m", "http.server", "--bind", "::", "--directory", wwwDir, String(PORT.http)], lifetimeMs),
    lab.bg("server", [PYTHON, "-u", "-c", UDP_ECHO_PY, String(PORT.udp)], lifetimeMs),
    lab.bg("server", [PYTHON, "-u", "-c", HOLD_SERVER_PY, String(PORT.hold)], lifetimeMs),
  ];
  await Promise.all([
    servers[0]!.waitFor(/Serving HTTP/, 10_000, "http.server listening"),
    servers[1]!.waitFor(/echoing/, 10_000, "UDP echo bound"),
    servers[2]!.waitFor(/holding/, 10_000, "hold server listening"),
  ]);
  return servers;
}

const UDP_CLIENT_PY = String.raw`
import socket, sys, time
dst, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((dst, port))
def echo(msg):
    s.send(msg)
    got = s.recv(2048)
    if got != msg:
        sys.exit('echo mismatch: %r' % got)
try:
    if mode == 'once':
        echo(b'once')
    elif mode == 'stream':
        # Linux sets ASSURED on a UDP flow only for a packet seen more than
        # 2 s after the first one, once there was a reply (nf_conntrack_udp_packet).
        echo(b'first')
        time.sleep(2.3)
        echo(b'second')
    elif mode == 'closed':
        s.send(b'anyone?')
        try:
            s.recv(2048)
            sys.exit('an answer from a port nobody listens on')
        except ConnectionRefusedError:
            pass  # the ICMP port unreachable came back through the gateway
except socket.timeout:
    sys.exit('timed out')
print('ok', mode)
`;

/** One family's traffic through the gateway, each command's outcome by name. */
export interface Exchanges {
  ping: Result;
  http: Result;
  udpOnce: Result;
  udpStream: Result;
  udpClosed: Result;
}

/** Ping from the client to the server: `count` echoes, `waitS` seconds each. */
export function ping(lab: Lab, family: 4 | 6, count = 2, waitS = 2): Result {
  return lab.exec("client", ["ping", `-${family}`, "-n", "-c", String(count), "-i", "0.2", "-W", String(waitS), lab.ip("SERVER", family)], 15_000);
}

/**
 * The exchanges the conntrack comparison is about, all at once, from the
 * client to the server: ping (2 echoes), an HTTP GET (curl), a one-shot UDP
 * echo, a UDP echo, 2.3 s pause and a second echo (ASSURED), and a datagram
 * to a closed port (UNREPLIED; the ICMP error must come back).
 */
export async function exchanges(lab: Lab, family: 4 | 6): Promise<Exchanges> {
  const server = lab.ip("SERVER", family);
  const url = family === 4 ? `http://${server}:${PORT.http}/` : `http://[${server}]:${PORT.http}/`;
  const udp = (port: number, mode: string): Promise<Result> => lab.execAsync("client", [PYTHON, "-c", UDP_CLIENT_PY, server, String(port), mode], 15_000);
  const [p, http, udpOnce, udpStream, udpClosed] = await Promise.all([
    lab.execAsync("client", ["ping", `-${family}`, "-n", "-c", "2", "-i", "0.2", "-W", "2", server], 15_000),
    lab.execAsync("client", ["curl", "-sS", "--max-time", "5", url], 15_000),
    udp(PORT.udp, "once"),
    udp(PORT.udp, "stream"),
    udp(PORT.udpClosed, "closed"),
  ]);
  return { ping: p!, http: http!, udpOnce: udpOnce!, udpStream: udpStream!, udpClosed: udpClosed! };
}

const HOLD_CLIENT_PY = String.raw`
import socket, struct, sys
dst, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
s.connect((dst, port))
# TCP_REPAIR (root) reads the socket's next sequence numbers: the send
# queue's is snd_nxt, the receive queue's rcv_nxt. -1 (TCP_REPAIR_OFF_NO_WP)
# leaves repair mode without sending a window probe.
TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ = 19, 20, 21
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, 2)
snd = struct.unpack('I', s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, 1)
rcv = struct.unpack('I', s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, -1)
print('held', s.getsockname()[1], snd, rcv, flush=True)
for line in sys.stdin:  # each line goes out as one segment; EOF closes
    s.sendall(line.strip().encode())
s.close()
`;

/** A TCP connection client → server:PORT.hold kept open, with its numbers. */
export interface HeldConnection {
  /** The client; each line written to its stdin is sent on the connection, EOF closes it. */
  proc: Bg;
  sport: number;
  /** The client's next sequence number (snd_nxt). */
  snd: number;
  /** The next sequence number the client expects (rcv_nxt). */
  rcv: number;
}

/** Sends `text` from the client's own socket (an in-window segment of `text.length` bytes at `snd`). */
export function sendOnHeld(held: HeldConnection, text: string): void {
  held.proc.child.stdin!.write(`${text}\n`);
}

/** Closes the held connection from the client (FIN); resolves once the client has exited (at most 5 s, then it is killed). */
export async function closeHeld(held: HeldConnection): Promise<void> {
  held.proc.child.stdin!.end();
  const timer = setTimeout(() => void held.proc.stop(), 5000);
  await held.proc.exited;
  clearTimeout(timer);
}

/** Opens a connection to the hold server and reads its sequence numbers. */
export async function holdConnection(lab: Lab, family: 4 | 6, lifetimeMs = 30_000): Promise<HeldConnection> {
  const proc = lab.bg("client", [PYTHON, "-u", "-c", HOLD_CLIENT_PY, lab.ip("SERVER", family), String(PORT.hold)], lifetimeMs);
  const m = await proc.waitFor(/held (\d+) (\d+) (\d+)/, 10_000, "connection held");
  return { proc, sport: Number(m[1]), snd: Number(m[2]), rcv: Number(m[3]) };
}

const FORGE_PY = String.raw`
import ipaddress, socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
sport, dport, seq, ack = (int(x) for x in sys.argv[3:7])
payload = bytes.fromhex(sys.argv[7])
v6 = ':' in dst
# TCP header, 20 bytes: ports, seq, ack, data offset 5, flags PSH|ACK, window 502.
seg = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, 5 << 4, 0x18, 502, 0, 0) + payload
if v6:  # RFC 8200 8.1 pseudo-header
    pseudo = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + struct.pack('!I3xB', len(seg), 6)
else:   # RFC 793 pseudo-header
    pseudo = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed + struct.pack('!xBH', 6, len(seg))
data = pseudo + seg + (b'\0' if len(seg) % 2 else b'')
total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
while total >> 16:
    total = (total & 0xffff) + (total >> 16)
seg = seg[:16] + struct.pack('!H', ~total & 0xffff) + seg[18:]
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.bind((src, 0))
s.sendto(seg, (dst, 0))
`;

/**
 * Sends one PSH|ACK segment with `payload` from the client's raw socket on
 * the held connection's 4-tuple, with sequence number `seq` and the
 * client's real acknowledgment number (checksum computed here). The
 * client's own TCP never learns of it.
 */
export function forgeSegment(lab: Lab, family: 4 | 6, held: HeldConnection, seq: number, payload: string): void {
  lab.must("client", [
    PYTHON,
    "-c",
    FORGE_PY,
    lab.ip("CLIENT", family),
    lab.ip("SERVER", family),
    String(held.sport),
    String(PORT.hold),
    String(seq >>> 0),
    String(held.rcv),
    Buffer.from(payload).toString("hex"),
  ]);
}

/**
 * tcpdump on the server's interface, incoming TCP segments of one client
 * port, absolute sequence numbers, one line per packet. Resolves once it
 * listens.
 */
export async function tcpdumpServer(lab: Lab, sport: number, lifetimeMs = 20_000): Promise<Bg> {
  const td = lab.bg(
    "server",
    ["tcpdump", "-i", lab.env.SERVER_IF ?? "eth0", "-n", "-S", "-l", "-Q", "in", `tcp and src port ${sport} and dst port ${PORT.hold}`],
    lifetimeMs,
  );
  await td.waitFor(/listening on/, 10_000, "tcpdump listening");
  return td;
}

/** A unique short token for names (instance ids, TUN devices). */
export function token(bytes = 3): string {
  return randomBytes(bytes).toString("hex");
}
