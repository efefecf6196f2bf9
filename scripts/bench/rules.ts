/**
 * Rule-evaluation benchmark: what a filter FORWARD chain of 10, 100 and
 * 1000 rules costs per packet through the whole pipeline (defrag check,
 * parse, IPv4 header checksum, conntrack, every hook, the route decision,
 * confirm), beside two baselines measured in the same run:
 *
 *   no ruleset     `pipe.rules = null`: the pipeline's built-in policy (drop INVALID, accept the rest)
 *   empty ruleset  a loaded ruleset whose filter chains have no rules and ACCEPT policies:
 *                  every hook is traversed, no rule is evaluated
 *
 * so "ruleset row − empty row" is the cost of the rules alone.
 *
 *   npm run build && node --expose-gc dist/scripts/bench/rules.js [--sizes 10,100,1000] [--runs 5]
 *       [--ms 250] [--conns 100000] [--flows 10000] [--only <label substring>] [--csum-by-kernel]
 *
 * The gateway: lan0 (ifindex 3, 10.0.1.1/24) and wan0 (ifindex 5,
 * 203.0.113.1/24, default route), as test/route/fixtures. Clients
 * 198.51.100.1-250 on the WAN side open TCP connections to a server
 * 10.0.1.10:443 on the LAN side (a forwarded service, no NAT).
 *
 * The rulesets (filter FORWARD, policy DROP, N rules in all):
 *
 *   est-first   -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT     (rule 1: the usual shape)
 *               N-2 filler rules that do not match these packets
 *               -i wan0 -o lan0 -d 10.0.1.10/32 -p tcp --dport 443 -m conntrack --ctstate NEW -m comment ... -j ACCEPT
 *   est-last    the filler rules, the https rule, then the ESTABLISHED rule (rule N): the worst case for
 *               established packets (they traverse all N rules; first packets traverse N-1)
 *
 * The filler rules cycle over five shapes, so that 3 in 5 get past the base
 * match into their extension matches before failing (realistic, and the
 * expensive case; a chain of rules that all fail on `-s` would flatter):
 *
 *   -s 198.51.100.K/32 -p tcp --dport P -j ACCEPT                                 (fails on -s, 1 in 250 on --dport)
 *   -s 192.0.2.K/32 -p udp --dport 53 -m comment --comment "resolver K" -j ACCEPT (fails on -p)
 *   -d 10.0.1.0/24 -p tcp -m multiport --dports P,P+1,P+2 -m comment ... -j ACCEPT (fails in multiport)
 *   -i wan0 -p tcp --dport P -m conntrack --ctstate NEW -j ACCEPT                  (fails in tcp, after -i)
 *   -s 10.0.K.K/32 -o wan0 -j ACCEPT                                               (fails on -s)
 *
 * Paths (TCP; every packet's verdict is checked to be ACCEPT, and the rule
 * that accepts is checked to be the one the configuration says):
 *
 *   first       the first packet (SYN) of a new connection, a new 4-tuple each time: conntrack creates the
 *               entry, the rules see NEW, confirm inserts it. ns per packet = ns per new connection;
 *               conn/s is its inverse. Tuples come from a pool of `--conns`; when it is used up the table
 *               is flushed, untimed (so it holds 0 to 2 x --conns entries, of a 262144-entry table).
 *   handshake   SYN, SYN/ACK, ACK of a new connection (its own pool of tuples): ns per connection.
 *   est         data segments of `--flows` established connections, in a pseudo-random order.
 *
 * Method: every configuration and path is warmed up twice (so the JIT has
 * seen all of them before anything is timed), and the second pass sizes
 * each timed run to about `--ms` of CPU. Then `--runs` rounds, each timing
 * every configuration and path once: interleaved, so a change in the
 * machine's load falls on all rows alike. Reported per packet: median and
 * min over the runs of wall-clock time, and the median of the process's CPU
 * time (user + system), which does not count time the process spent
 * descheduled; on a busy machine it is the steadier figure, and "rules
 * alone" (row minus the empty ruleset) uses it. GC: before each timed run a
 * full gc(), then PerformanceObserver 'gc' entries during the run (they
 * arrive asynchronously: read after 100 ms of event loop), summed over the
 * runs; 0 means the packet path did not allocate.
 *
 * `--csum-by-kernel` passes PKT.CSUM_UNNECESSARY (the NFQUEUE case when the
 * kernel verified the checksums); by default sluice verifies them itself.
 *
 * The kernel's own cost per rule for the same shapes (iptables-legacy and
 * iptables-nft, measured on the OUTPUT hook): scripts/bench/rules-kernel.sh.
 *
 * Prints a table, then one JSON line with the machine and every figure.
 */
import { cpus, loadavg } from "node:os";
import { PerformanceObserver } from "node:perf_hooks";
import { resolveConntrackConfig } from "../../src/conntrack/config.js";
import { PKT } from "../../src/conntrack/tracker.js";
import { checksum, fold, pseudoSumV4, sumWords } from "../../src/packet/checksum.js";
import { Pipeline, VERDICT } from "../../src/pipeline/index.js";
import { buildSnapshot } from "../../src/route/mirror.js";
import type { RouteSnapshot } from "../../src/route/table.js";
import { HOOK } from "../../src/rules/context.js";
import { RuleEngine } from "../../src/rules/engine.js";
import { engineDeps } from "../../src/rules/targets.js";

// ─── Options ─────────────────────────────────────────────────────────────────

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const k = args.indexOf(name);
  return k >= 0 && k + 1 < args.length ? args[k + 1]! : dflt;
};
const SIZES = opt("--sizes", "10,100,1000").split(",").map(Number);
const RUNS = Number(opt("--runs", "5"));
/** Distinct new 4-tuples for each of the first-packet and handshake paths; the table is flushed (untimed) when they are used up. */
const CONNS = Number(opt("--conns", "100000"));
/** Established flows the est path walks. */
const FLOWS = Number(opt("--flows", "10000"));
/** Only configurations whose label contains this. */
const ONLY = opt("--only", "");
const FLAGS = args.includes("--csum-by-kernel") ? PKT.CSUM_UNNECESSARY : 0;
/** Each timed run is sized (from the warm-up) to about this much CPU time. */
const TARGET_NS = Number(opt("--ms", "250")) * 1e6;

let gcCount = 0;
new PerformanceObserver((list) => { gcCount += list.getEntries().length; }).observe({ entryTypes: ["gc"] });
/** GC entries reach the observer from the event loop: let it run before reading the count. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

// ─── The gateway: routes as `ip -json` prints them ───────────────────────────

const LAN = 3, WAN = 5;
const addrJson = [
  { ifindex: 1, ifname: "lo", flags: ["LOOPBACK", "UP"], mtu: 65536, addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8, scope: "host" }] },
  { ifindex: LAN, ifname: "lan0", flags: ["UP"], mtu: 1500, addr_info: [{ family: "inet", local: "10.0.1.1", prefixlen: 24, scope: "global" }] },
  { ifindex: WAN, ifname: "wan0", flags: ["UP"], mtu: 1500, addr_info: [{ family: "inet", local: "203.0.113.1", prefixlen: 24, scope: "global" }] },
];
const route4Json = [
  { dst: "default", gateway: "203.0.113.254", dev: "wan0", flags: [] },
  { dst: "10.0.1.0/24", dev: "lan0", protocol: "kernel", scope: "link", prefsrc: "10.0.1.1", flags: [] },
  { dst: "203.0.113.0/24", dev: "wan0", protocol: "kernel", scope: "link", prefsrc: "203.0.113.1", flags: [] },
  { type: "local", dst: "10.0.1.1", dev: "lan0", table: "local", scope: "host", flags: [] },
  { type: "broadcast", dst: "10.0.1.255", dev: "lan0", table: "local", scope: "link", flags: [] },
  { type: "local", dst: "127.0.0.0/8", dev: "lo", table: "local", scope: "host", flags: [] },
  { type: "local", dst: "203.0.113.1", dev: "wan0", table: "local", scope: "host", flags: [] },
  { type: "broadcast", dst: "203.0.113.255", dev: "wan0", table: "local", scope: "link", flags: [] },
];
const ROUTES: RouteSnapshot = buildSnapshot(addrJson, route4Json, [], 1);

// ─── Rulesets ────────────────────────────────────────────────────────────────

const EST_RULE = "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT";
const HTTPS_RULE = '-A FORWARD -i wan0 -o lan0 -d 10.0.1.10/32 -p tcp --dport 443 -m conntrack --ctstate NEW -m comment --comment "https to web" -j ACCEPT';

/** Filler rule k: never matches the benchmark's packets (see the file comment for the five shapes). */
function filler(k: number): string {
  switch (k % 5) {
    case 0: return `-A FORWARD -s 198.51.100.${1 + (k % 250)}/32 -p tcp --dport ${10000 + k} -j ACCEPT`;
    case 1: return `-A FORWARD -s 192.0.2.${k % 256}/32 -p udp --dport 53 -m comment --comment "resolver ${k}" -j ACCEPT`;
    case 2: return `-A FORWARD -d 10.0.1.0/24 -p tcp -m multiport --dports ${20000 + k},${20001 + k},${20002 + k} -m comment --comment "svc ${k}" -j ACCEPT`;
    case 3: return `-A FORWARD -i wan0 -p tcp --dport ${40000 + k} -m conntrack --ctstate NEW -j ACCEPT`;
    default: return `-A FORWARD -s 10.0.${k >> 8}.${k & 255}/32 -o wan0 -j ACCEPT`;
  }
}

function filterTable(policy: "ACCEPT" | "DROP", rules: string[]): string {
  return `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ${policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules.join("\n")}${rules.length > 0 ? "\n" : ""}COMMIT\n`;
}

interface Config {
  label: string;
  /** Rules in FORWARD (0 for the baselines). */
  rules: number;
  /** Where the ESTABLISHED rule is ("" for the baselines). */
  est: "" | "first" | "last";
  /** iptables-restore text, or null: no ruleset. */
  text: string | null;
}

function configs(): Config[] {
  const out: Config[] = [
    { label: "no ruleset", rules: 0, est: "", text: null },
    { label: "empty ruleset", rules: 0, est: "", text: filterTable("ACCEPT", []) },
  ];
  for (const n of SIZES) {
    if (n < 2) throw new Error("--sizes: each ruleset has at least the ESTABLISHED and the https rule");
    const fill = Array.from({ length: n - 2 }, (_, k) => filler(k));
    out.push({ label: `${n} rules, est-first`, rules: n, est: "first", text: filterTable("DROP", [EST_RULE, ...fill, HTTPS_RULE]) });
    out.push({ label: `${n} rules, est-last`, rules: n, est: "last", text: filterTable("DROP", [...fill, HTTPS_RULE, EST_RULE]) });
  }
  return ONLY === "" ? out : out.filter((c) => c.label.includes(ONLY));
}

function pipeline(c: Config): Pipeline {
  const pipe = new Pipeline({ conntrack: resolveConntrackConfig({ eventRing: 16 }) });
  pipe.ct.events.enabled = false; // no event consumer, as in bench/conntrack
  pipe.routes = ROUTES;
  if (c.text !== null) {
    const { deps } = engineDeps("nfqueue", { log: null, send: null, nflogDir: null, ifname: (i) => ROUTES.ifnameOf(i) });
    const engine = new RuleEngine(deps);
    engine.setInterfaceNames((i) => ROUTES.ifnameOf(i));
    engine.load({ ipv4: { file: `${c.label}.rules`, text: c.text } });
    if (engine.summary().rules4 !== c.rules) throw new Error(`${c.label}: compiled ${engine.summary().rules4} rules`);
    pipe.rules = engine;
  }
  pipe.hook = HOOK.PREROUTING;
  pipe.outIfindex = 0;
  pipe.mark = 0;
  return pipe;
}

// ─── Packets ─────────────────────────────────────────────────────────────────

const TCP_HDR = 40;
/** Slab stride: room for 20 + 20 + 4 bytes. */
const STRIDE = 44;
const SERVER = 0x0a00010a; // 10.0.1.10
const SERVER_PORT = 443;
const SYN = 0x02, SYNACK = 0x12, ACK = 0x10, PSHACK = 0x18;

/** Writes a TCP/IPv4 segment at `o` (20-byte IP and TCP headers, `payload` bytes) with valid checksums. */
function writeTcp(b: Uint8Array, o: number, src: number, dst: number, sport: number, dport: number,
  seq: number, ack: number, flags: number, payload: number): void {
  const len = TCP_HDR + payload;
  b.fill(0, o, o + len);
  b[o] = 0x45; b[o + 2] = len >> 8; b[o + 3] = len & 255; b[o + 6] = 0x40; b[o + 8] = 64; b[o + 9] = 6;
  w32(b, o + 12, src); w32(b, o + 16, dst);
  const ck = checksum(b, o, 20); b[o + 10] = ck >> 8; b[o + 11] = ck & 255;
  const t = o + 20;
  b[t] = sport >> 8; b[t + 1] = sport & 255; b[t + 2] = dport >> 8; b[t + 3] = dport & 255;
  w32(b, t + 4, seq); w32(b, t + 8, ack);
  b[t + 12] = 5 << 4; b[t + 13] = flags; b[t + 14] = 0xff; b[t + 15] = 0xff;
  for (let k = 0; k < payload; k++) b[t + 20 + k] = 0x61 + k;
  const tc = ~fold(sumWords(b, t, 20 + payload, pseudoSumV4(b, o, 6, 20 + payload))) & 0xffff;
  b[t + 16] = tc >> 8; b[t + 17] = tc & 255;
}

function w32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 255; b[o + 2] = (v >>> 8) & 255; b[o + 3] = v & 255;
}

/** Client i: 198.51.100.(1 + i mod 250), port 1024 + i div 250: a distinct 4-tuple per i (up to 16 M). */
const clientAddr = (i: number): number => (0xc6336400 | (1 + (i % 250))) >>> 0;
const clientPort = (i: number): number => 1024 + Math.floor(i / 250);

/** The three handshake segments and one data segment of `n` connections, one slab each. */
interface Slabs { syn: Uint8Array; synack: Uint8Array; ack: Uint8Array; data: Uint8Array }

function slabs(n: number): Slabs {
  const s: Slabs = { syn: new Uint8Array(n * STRIDE), synack: new Uint8Array(n * STRIDE), ack: new Uint8Array(n * STRIDE), data: new Uint8Array(n * STRIDE) };
  for (let i = 0; i < n; i++) {
    const c = clientAddr(i), p = clientPort(i), o = i * STRIDE;
    writeTcp(s.syn, o, c, SERVER, p, SERVER_PORT, 1000, 0, SYN, 0);
    writeTcp(s.synack, o, SERVER, c, SERVER_PORT, p, 5000, 1001, SYNACK, 0);
    writeTcp(s.ack, o, c, SERVER, p, SERVER_PORT, 1001, 5001, ACK, 0);
    // Replayed many times, this in-window segment is a retransmission, which conntrack accepts (as bench/conntrack).
    writeTcp(s.data, o, c, SERVER, p, SERVER_PORT, 1001, 5001, PSHACK, 4);
  }
  return s;
}


// ─── Measured loops (nothing in them allocates; the verdict sum checks every packet was accepted) ──

const NOW = 1000;

/** SYNs of tuples [from, from + n) arriving on wan0. */
function runFirst(pipe: Pipeline, syn: Uint8Array, from: number, n: number): number {
  let acc = 0;
  pipe.inIfindex = WAN;
  for (let i = from; i < from + n; i++) acc += pipe.process(syn, i * STRIDE, TCP_HDR, NOW, FLAGS, 0);
  return acc;
}

/** SYN (wan0), SYN/ACK (lan0), ACK (wan0) of tuples [from, from + n). */
function runHandshake(pipe: Pipeline, s: Slabs, from: number, n: number): number {
  let acc = 0;
  for (let i = from; i < from + n; i++) {
    const o = i * STRIDE;
    pipe.inIfindex = WAN;
    acc += pipe.process(s.syn, o, TCP_HDR, NOW, FLAGS, 0);
    pipe.inIfindex = LAN;
    acc += pipe.process(s.synack, o, TCP_HDR, NOW + 1, FLAGS, 0);
    pipe.inIfindex = WAN;
    acc += pipe.process(s.ack, o, TCP_HDR, NOW + 2, FLAGS, 0);
  }
  return acc;
}

/** `count` data segments of flows [0, flows), in a pseudo-random order (a sequential walk would flatter the caches). */
function runEst(pipe: Pipeline, data: Uint8Array, flows: number, count: number, seed: number): number {
  let acc = 0;
  let x = seed | 0;
  pipe.inIfindex = WAN;
  for (let k = 0; k < count; k++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0; // int32 LCG: stays unboxed
    const i = (x >>> 8) % flows;
    acc += pipe.process(data, i * STRIDE, TCP_HDR + 4, NOW + 10, FLAGS, 0);
  }
  return acc;
}

// ─── Timing and statistics ───────────────────────────────────────────────────

/** Wall-clock and CPU time (user + system of the process) of one timed run, in ns. */
class Clock {
  private t0 = 0n;
  private c0 = process.cpuUsage();
  wall = 0;
  cpu = 0;
  start(): void {
    this.c0 = process.cpuUsage();
    this.t0 = process.hrtime.bigint();
  }
  stop(): void {
    this.wall = Number(process.hrtime.bigint() - this.t0);
    const c = process.cpuUsage(this.c0);
    this.cpu = (c.user + c.system) * 1000;
  }
}
const clock = new Clock();

/** Per-packet (or per-connection) samples of one path of one configuration. */
class Samples {
  wall: number[] = [];
  cpu: number[] = [];
  gc = 0;
  /** Packets (connections for the handshake) per timed run. */
  perRun = 0;
}

interface PathResult {
  /** Wall-clock ns per packet (per connection for the handshake): median and min of the runs. */
  medianNs: number;
  minNs: number;
  runsNs: number[];
  /** The same from CPU time: what the work cost, whatever else the machine was running. */
  cpuMedianNs: number;
  cpuMinNs: number;
  perRun: number;
  /** GC events during the timed runs. */
  gc: number;
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round1 = (v: number): number => Math.round(v * 10) / 10;

function result(s: Samples): PathResult {
  return {
    medianNs: round1(median(s.wall)), minNs: round1(Math.min(...s.wall)), runsNs: s.wall.map(round1),
    cpuMedianNs: round1(median(s.cpu)), cpuMinNs: round1(Math.min(...s.cpu)), perRun: s.perRun, gc: s.gc,
  };
}

function expectAll(label: string, acc: number, n: number): void {
  if (acc !== n * VERDICT.ACCEPT) throw new Error(`${label}: ${n - acc} of ${n} packets not accepted`);
}

// ─── One configuration ───────────────────────────────────────────────────────

/**
 * A configuration's two pipelines: `pipe` takes new connections (first
 * packets use tuples [0, CONNS), handshakes [CONNS, 2 CONNS); its table is
 * flushed, untimed, when either range is used up, so it holds 0..2 CONNS
 * entries), `estPipe` holds the FLOWS established connections.
 */
class Bench {
  readonly pipe: Pipeline;
  readonly estPipe: Pipeline;
  firstAt = 0;
  hsAt = CONNS;
  nFirst = 5000;
  nHs = 2000;
  nEst = 100_000;
  readonly first = new Samples();
  readonly handshake = new Samples();
  readonly est = new Samples();

  constructor(readonly c: Config, private readonly s: Slabs) {
    this.pipe = pipeline(c);
    this.estPipe = pipeline(c);
    expectAll(`${c.label} est setup`, runHandshake(this.estPipe, s, 0, FLOWS), 3 * FLOWS);
    if (this.estPipe.ct.table.count !== FLOWS) throw new Error(`${c.label}: ${this.estPipe.ct.table.count} entries for ${FLOWS} flows`);
    this.checkDecidingRules();
  }

  /** The rule that accepts a first packet and an established one is the one the configuration says (0-based). */
  private checkDecidingRules(): void {
    const rs = this.pipe.rules?.forFamily(4) ?? null;
    if (rs === null || this.c.rules === 0) return;
    const n = this.c.rules;
    const wantFirst = this.c.est === "first" ? n - 1 : n - 2;
    const wantEst = this.c.est === "first" ? 0 : n - 1;
    runEst(this.estPipe, this.s.data, FLOWS, 1, 1);
    const gotEst = this.estPipe.rules!.forFamily(4)!.lastRule;
    const probe = pipeline(this.c);
    runFirst(probe, this.s.syn, 0, 1);
    const gotFirst = probe.rules!.forFamily(4)!.lastRule;
    if (gotFirst !== wantFirst || gotEst !== wantEst) {
      throw new Error(`${this.c.label}: accepted by rules ${gotFirst + 1} (first) and ${gotEst + 1} (est), expected ${wantFirst + 1} and ${wantEst + 1}`);
    }
  }

  runFirst(n: number): void {
    if (this.firstAt + n > CONNS) this.flush();
    clock.start();
    const acc = runFirst(this.pipe, this.s.syn, this.firstAt, n);
    clock.stop();
    expectAll(`${this.c.label} first`, acc, n);
    this.firstAt += n;
  }

  runHandshake(n: number): void {
    if (this.hsAt + n > 2 * CONNS) this.flush();
    clock.start();
    const acc = runHandshake(this.pipe, this.s, this.hsAt, n);
    clock.stop();
    expectAll(`${this.c.label} handshake`, acc, 3 * n);
    this.hsAt += n;
  }

  runEst(n: number, seed: number): void {
    clock.start();
    const acc = runEst(this.estPipe, this.s.data, FLOWS, n, seed);
    clock.stop();
    expectAll(`${this.c.label} est`, acc, n);
  }

  private flush(): void {
    this.pipe.ct.flush(NOW);
    this.firstAt = 0;
    this.hsAt = CONNS;
  }
}

/** A timed measurement: GC counted from a clean heap, entries read after they arrive. */
async function measure(samples: Samples, n: number, run: () => void): Promise<void> {
  global.gc?.();
  await settle();
  const g0 = gcCount;
  run();
  await settle();
  samples.gc += gcCount - g0;
  samples.wall.push(clock.wall / n);
  samples.cpu.push(clock.cpu / n);
  samples.perRun = n;
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.round(v)));

// ─── Main ────────────────────────────────────────────────────────────────────

if (global.gc === undefined) console.error("note: run with --expose-gc for a clean heap before each measurement");
const cfgs = configs();
const slab = slabs(Math.max(2 * CONNS, FLOWS));
const benches = cfgs.map((c) => new Bench(c, slab));

// Warm-up: every configuration and path twice (the JIT sees them all before anything is timed);
// the second pass sizes each timed run to about TARGET_MS of CPU.
for (let pass = 0; pass < 2; pass++) {
  for (const b of benches) {
    b.runFirst(b.nFirst);
    const first = clock.cpu / b.nFirst;
    b.runHandshake(b.nHs);
    const hs = clock.cpu / b.nHs;
    b.runEst(b.nEst, 7);
    const est = clock.cpu / b.nEst;
    if (pass === 1) {
      b.nFirst = clamp(TARGET_NS / first, 2000, CONNS);
      b.nHs = clamp(TARGET_NS / hs, 1000, CONNS);
      b.nEst = clamp(TARGET_NS / est, 50_000, 5_000_000);
    }
  }
}

// Timed runs, interleaved: run r of every configuration before run r + 1 of any, so that a change in the
// machine's load falls on all of them alike.
for (let r = 0; r < RUNS; r++) {
  for (const b of benches) {
    await measure(b.first, b.nFirst, () => b.runFirst(b.nFirst));
    await measure(b.handshake, b.nHs, () => b.runHandshake(b.nHs));
    await measure(b.est, b.nEst, () => b.runEst(b.nEst, 12345 + r));
  }
}

interface Row { config: string; rules: number; est: string; first: PathResult; handshake: PathResult; established: PathResult }
const rows: Row[] = benches.map((b) => ({
  config: b.c.label, rules: b.c.rules, est: b.c.est, first: result(b.first), handshake: result(b.handshake), established: result(b.est),
}));

const cpu = cpus();
const machine = { cpu: cpu[0]?.model ?? "?", cores: cpu.length, node: process.version, arch: process.arch, v8: process.versions.v8 };
const f = (v: number, w: number, d = 0): string => v.toFixed(d).padStart(w);
const base = rows.find((r) => r.config === "empty ruleset");
/** The rules alone: the row minus the empty ruleset (CPU-time medians). */
const alone = (r: Row, k: "first" | "established"): number | null =>
  base !== undefined && r.rules > 0 ? round1(r[k].cpuMedianNs - base[k].cpuMedianNs) : null;
/** Rules a packet traverses: first packets N (est-first: the ESTABLISHED rule, the fillers, https) or N-1 (est-last); established 1 or N. */
const traversed = (r: Row, k: "first" | "established"): number =>
  k === "first" ? (r.est === "last" ? r.rules - 1 : r.rules) : r.est === "last" ? r.rules : 1;
const perRule = (r: Row, k: "first" | "established"): number | null => {
  const v = alone(r, k);
  return v === null || traversed(r, k) <= 1 ? null : round1(v / traversed(r, k));
};
const fo = (v: number | null, w: number, d = 0): string => (v === null ? "-".padStart(w) : f(v, w, d));

console.log(`${machine.cpu} x${machine.cores}, node ${machine.node}, load average at the end ${loadavg().map((v) => v.toFixed(1)).join(" ")}; ` +
  `TCP/IPv4 forwarded wan0 -> lan0, ${FLAGS === 0 ? "checksums verified by sluice" : "checksums verified by the kernel (CSUM_UNNECESSARY)"}`);
console.log(`ns: median of ${RUNS} interleaved runs after warm-up, wall clock, (min), [CPU time]; rates from the wall median. ` +
  `first: each SYN a new 4-tuple; handshake: SYN, SYN/ACK, ACK; est: data segments over ${FLOWS} flows in random order.`);
console.log(`rules alone: CPU ns minus the empty ruleset's; /rule: that over the rules traversed (first: N, or N-1 with est-last; est: N with est-last).`);
console.log("");
console.log("                      │ first packet of a new connection │ handshake, per connection │ established packet                │ rules alone (CPU ns)");
console.log("configuration         │  ns/pkt   (min)  [cpu] conn/s GC │ ns/conn   [cpu] conn/s GC │  ns/pkt   (min)  [cpu]   Mpps GC  │ first  /rule    est  /rule");
for (const r of rows) {
  const a = r.first, h = r.handshake, e = r.established;
  console.log(`${r.config.padEnd(21)} │ ${f(a.medianNs, 7)} ${f(a.minNs, 7)} ${f(a.cpuMedianNs, 6)} ${f(1e6 / a.medianNs, 5)}k ${f(a.gc, 2)} │ ` +
    `${f(h.medianNs, 7)} ${f(h.cpuMedianNs, 7)} ${f(1e6 / h.medianNs, 5)}k ${f(h.gc, 2)} │ ` +
    `${f(e.medianNs, 7)} ${f(e.minNs, 7)} ${f(e.cpuMedianNs, 6)} ${f(1000 / e.medianNs, 6, 3)} ${f(e.gc, 2)}  │ ` +
    `${fo(alone(r, "first"), 5)} ${fo(perRule(r, "first"), 6, 1)} ${fo(alone(r, "established"), 6)} ${fo(perRule(r, "established"), 6, 1)}`);
}
console.log(JSON.stringify({
  bench: "rules",
  machine: { ...machine, loadavgAtEnd: loadavg().map(round1) },
  params: { sizes: SIZES, runs: RUNS, conns: CONNS, flows: FLOWS, targetMs: TARGET_NS / 1e6, csumByKernel: FLAGS !== 0, conntrackMax: resolveConntrackConfig({}).max },
  rows: rows.map((r) => ({
    config: r.config, rules: r.rules, estRule: r.est,
    first: { ...r.first, connPerSec: Math.round(1e9 / r.first.medianNs), rulesAloneCpuNs: alone(r, "first"), rulesTraversed: traversed(r, "first"), perRuleCpuNs: perRule(r, "first") },
    handshake: { ...r.handshake, connPerSec: Math.round(1e9 / r.handshake.medianNs) },
    established: {
      ...r.established, mpps: Math.round(1e6 / r.established.medianNs) / 1000,
      rulesAloneCpuNs: alone(r, "established"), rulesTraversed: traversed(r, "established"), perRuleCpuNs: perRule(r, "established"),
    },
  })),
}));
