/**
 * The rule engine through the real daemon (`sluice run` in the lab's gateway
 * namespace), in NFQUEUE mode (IPv4 and IPv6) and TUN mode, with Linux's
 * iptables as the oracle.
 *
 * ```
 *   oracle lab:  client ── gateway: the kernel's iptables/ip6tables (iptables-restore) ── server
 *   sluice lab:  client ── gateway: sluice run, the same ruleset                      ── server
 * ```
 *
 * The ruleset (`ruleset()` below, one per family): FORWARD policy DROP,
 * `ctstate RELATED,ESTABLISHED -j ACCEPT`, INVALID dropped, LAN → WAN
 * accepted except one TCP port rejected with tcp-reset, one UDP port
 * rejected with icmp(6)-port-unreachable and one TCP port dropped; the SYN
 * to the accepted TCP port is logged. The probes from both ends (PROBES)
 * must end as Linux's do: replies come back; the server's ICMP errors come
 * back as RELATED (port unreachable for UDP, and, from the server's own
 * REJECT, host/administratively prohibited for a TCP connect); a rejected
 * TCP connect fails at once with ECONNREFUSED (the dropped one times out); a
 * rejected datagram makes the UDP client see ECONNREFUSED; nothing
 * unsolicited gets in from the WAN. Afterwards the connection table is
 * Linux's: nothing for what the rules dropped or rejected.
 *
 * Controls, so that each check can fail: without filtering every probe
 * succeeds (the listeners exist, the probes can report success); without
 * RELATED the ICMP errors do not come back (Linux and sluice alike);
 * during the reload test a ruleset without ESTABLISHED must stall the
 * streams and count drops, so "no drop while reloading" means something.
 *
 * Then: reloads (`sluice rules load` and SIGHUP) under running traffic
 * (two TCP echo streams and pings) drop nothing; `rules save` output loads
 * back into sluice as the same ruleset and into Linux as the same rules as
 * the file it came from; a bad file is refused with FILE:LINE:COL (and by
 * Linux on the same line) and the old ruleset keeps working; SIGHUP reloads
 * the configured files, and a broken one changes nothing (neither family).
 *
 * Not asserted: LOG lines byte-equal to the kernel's (sluice prints the TTL
 * as the packet arrived, Linux after the forward decrement; and the kernel
 * does not log from a non-initial namespace by default). test/rules/log.test.ts
 * covers the format.
 *
 * Needs root and a built tree (`npx tsc -p tsconfig.json`), iproute2,
 * iptables, conntrack, ping and python3. Every spawn is bounded
 * (lab-harness.ts, rules-harness.ts); the file takes about a minute.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CAN_RUN_KERNEL_TESTS,
  Lab,
  SLUICE_CLI,
  SluiceDaemon,
  describeResult,
  delay,
  killAll,
  killDaemons,
  run,
  token,
  waitUntil,
  type Bg,
  type LogLine,
  type Result,
  type RunFiles,
} from "../daemon/lab-harness.js";
import {
  EchoStream,
  RPORT,
  cli,
  pingProbe,
  probeMany,
  startEchoServers,
  stats,
  writeRulesConfig,
  type ProbeItem,
  type ProbeResult,
  type RulesRunSpec,
} from "./rules-harness.js";

const FAMILIES = [4, 6] as const;
type Family = (typeof FAMILIES)[number];
/** Lifetime of the servers: the whole file. */
const SERVERS_MS = 170_000;
/** How long a probe waits for an answer that should not come, s. */
const PROBE_WAIT_S = 1.5;
/** A REJECT must end a connect well before the first SYN retransmission (1 s). */
const AT_ONCE_MS = 900;

const PREFIX = `sl-rules-${process.pid}-${token(2)}`;
let tmp = "";
let lab: Lab | null = null; // sluice runs in this one
let oracleLab: Lab | null = null; // the kernel's iptables, no sluice
const servers: Bg[] = [];

function theLab(): Lab {
  if (lab === null) throw new Error("the lab is not up (beforeAll failed)");
  return lab;
}

function theOracle(): Lab {
  if (oracleLab === null) throw new Error("the oracle lab is not up (beforeAll failed)");
  return oracleLab;
}

// ─── The rulesets ─────────────────────────────────────────────────────────

/** Variants of the ruleset: `related: false` accepts ESTABLISHED only; `established: false` has no ctstate ACCEPT at all; `extra` goes before the last ACCEPT. */
interface Variant {
  related?: boolean;
  established?: boolean;
  extra?: readonly string[];
}

/** The LOG prefix of the logged SYN, per family. */
const logPrefix = (f: Family): string => `rt${f}-syn: `;

/** The test's ruleset, written as iptables-save prints it. */
function ruleset(f: Family, v: Variant = {}): string {
  const state = v.related === false ? "ESTABLISHED" : "RELATED,ESTABLISHED";
  return [
    `# sluice rules.netns.test: IPv${f}`,
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ":FORWARD DROP [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ...(v.established === false ? [] : [`-A FORWARD -m conntrack --ctstate ${state} -j ACCEPT`]),
    "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
    `-A FORWARD -i lan0 -o wan0 -p tcp -m tcp --dport ${RPORT.tcpReject} -j REJECT --reject-with tcp-reset`,
    `-A FORWARD -i lan0 -o wan0 -p udp -m udp --dport ${RPORT.udpReject} -j REJECT --reject-with ${f === 4 ? "icmp-port-unreachable" : "icmp6-port-unreachable"}`,
    `-A FORWARD -i lan0 -o wan0 -p tcp -m tcp --dport ${RPORT.tcpDrop} -j DROP`,
    `-A FORWARD -i lan0 -o wan0 -p tcp -m tcp --dport ${RPORT.tcpOk} --tcp-flags FIN,SYN,RST,ACK SYN -j LOG --log-prefix "${logPrefix(f)}"`,
    ...(v.extra ?? []),
    "-A FORWARD -i lan0 -o wan0 -j ACCEPT",
    "COMMIT",
    "",
  ].join("\n");
}

/** Rules in `ruleset(f)`. */
const RULESET_RULES = 7;

/**
 * The same policy written by hand, with what iptables-save rewrites
 * (`--syn`, `-p TCP`, `--ctstate ESTABLISHED,RELATED`, `echo-request`, a
 * dotted mask, REJECT's default) and more tables, a user chain, limit,
 * comment, multiport, negation, CT --notrack and TCPMSS: the save round trip's input.
 */
function handWritten(f: Family): string {
  const lanNet = f === 4 ? "10.0.1.0/255.255.255.0" : "2001:db8:1::/64";
  const notLocal = f === 4 ? "10.0.0.0/8" : "fd00::/8";
  const echo = f === 4 ? "-p icmp --icmp-type echo-request" : "-p ipv6-icmp --icmpv6-type echo-request";
  return [
    "# hand-written on purpose: what save prints must mean the same to sluice and to Linux",
    "*raw",
    ":PREROUTING ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    "-A PREROUTING -i lan0 -p udp --dport 9 -j CT --notrack",
    "COMMIT",
    "*mangle",
    ":PREROUTING ACCEPT [0:0]",
    ":INPUT ACCEPT [0:0]",
    ":FORWARD ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    "-A FORWARD -o wan0 -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
    "COMMIT",
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ":FORWARD DROP [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":lan-out - [0:0]",
    "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
    "-A FORWARD -i lan0 -o wan0 -j lan-out",
    `-A lan-out -p TCP --dport ${RPORT.tcpReject} -j REJECT --reject-with tcp-reset`,
    `-A lan-out -p udp --dport ${RPORT.udpReject} -j REJECT`,
    `-A lan-out -p tcp --dport ${RPORT.tcpDrop} -j DROP`,
    `-A lan-out -p tcp --syn --dport ${RPORT.tcpOk} -m limit --limit 10/s --limit-burst 20 -j LOG --log-prefix "${logPrefix(f)}" --log-level warning`,
    `-A lan-out ${echo} -m comment --comment "ping out" -j ACCEPT`,
    `-A lan-out -s ${lanNet} -p tcp -m multiport --dports ${RPORT.tcpOk},${RPORT.tcpStream} -j ACCEPT`,
    `-A lan-out ! -d ${notLocal} -j ACCEPT`,
    "COMMIT",
    "",
  ].join("\n");
}

// ─── Probes ───────────────────────────────────────────────────────────────

/** One probe: what is tried, from where, to which port. */
interface ProbeSpec {
  name: string;
  from: "client" | "server";
  kind: "tcp" | "udp" | "ping";
  port: number;
}

/** What the tests try, per family; the names are the keys of the outcome tables. */
const PROBES: readonly ProbeSpec[] = [
  { name: "ping client → server", from: "client", kind: "ping", port: 0 },
  { name: "TCP client → server, accepted", from: "client", kind: "tcp", port: RPORT.tcpOk },
  { name: "UDP client → server, accepted", from: "client", kind: "udp", port: RPORT.udpOk },
  { name: "UDP client → server, closed port (server's ICMP error)", from: "client", kind: "udp", port: RPORT.udpClosed },
  { name: "TCP client → server, rejected by the server (its ICMP error)", from: "client", kind: "tcp", port: RPORT.tcpServerReject },
  { name: "TCP client → server, REJECT tcp-reset", from: "client", kind: "tcp", port: RPORT.tcpReject },
  { name: "UDP client → server, REJECT icmp-port-unreachable", from: "client", kind: "udp", port: RPORT.udpReject },
  { name: "TCP client → server, DROP", from: "client", kind: "tcp", port: RPORT.tcpDrop },
  { name: "TCP server → client, unsolicited", from: "server", kind: "tcp", port: RPORT.clientTcp },
  { name: "UDP server → client, unsolicited", from: "server", kind: "udp", port: RPORT.clientUdp },
  { name: "ping server → client, unsolicited", from: "server", kind: "ping", port: 0 },
];

type Outcomes = Record<string, string>;

/**
 * The server's own REJECT (its INPUT chain, SERVER_REJECT) and what the
 * client's connect(2) makes of it: icmp_err_convert() and
 * icmpv6_err_convert() map host-prohibited to EHOSTUNREACH and
 * administratively-prohibited to EACCES.
 */
const SERVER_REJECT = { 4: { with: "icmp-host-prohibited", errno: "EHOSTUNREACH" }, 6: { with: "icmp6-adm-prohibited", errno: "EACCES" } } as const;

/** With `ruleset(f)` (written down from Linux's behaviour; the oracle test checks Linux agrees). */
function withRules(f: Family): Outcomes {
  return {
    "ping client → server": "ok",
    "TCP client → server, accepted": "echo",
    "UDP client → server, accepted": "echo",
    "UDP client → server, closed port (server's ICMP error)": "refused",
    "TCP client → server, rejected by the server (its ICMP error)": SERVER_REJECT[f].errno,
    "TCP client → server, REJECT tcp-reset": "refused",
    "UDP client → server, REJECT icmp-port-unreachable": "refused",
    "TCP client → server, DROP": "timeout",
    "TCP server → client, unsolicited": "timeout",
    "UDP server → client, unsolicited": "timeout",
    "ping server → client, unsolicited": "fail",
  };
}

/** Nothing filtering: everything gets through. */
function open(f: Family): Outcomes {
  return {
    ...withRules(f),
    "TCP client → server, REJECT tcp-reset": "echo",
    "UDP client → server, REJECT icmp-port-unreachable": "echo",
    "TCP client → server, DROP": "echo",
    "TCP server → client, unsolicited": "echo",
    "UDP server → client, unsolicited": "echo",
    "ping server → client, unsolicited": "ok",
  };
}

/** ESTABLISHED without RELATED: the server's ICMP errors stay out. */
function withoutRelated(f: Family): Outcomes {
  return {
    ...withRules(f),
    "UDP client → server, closed port (server's ICMP error)": "timeout",
    "TCP client → server, rejected by the server (its ICMP error)": "timeout",
  };
}

/** Runs `specs` for both families at once: one probe process per namespace, one ping per ping probe. */
async function probeRound(l: Lab, specs: readonly ProbeSpec[]): Promise<Record<Family, Record<string, ProbeResult>>> {
  const key = (f: Family, s: ProbeSpec): string => `${f} ${s.name}`;
  const dst = (f: Family, s: ProbeSpec): string => l.ip(s.from === "client" ? "SERVER" : "CLIENT", f);
  const items = (from: "client" | "server"): ProbeItem[] =>
    FAMILIES.flatMap((f) => specs.filter((s) => s.from === from && s.kind !== "ping").map((s) => ({ key: key(f, s), kind: s.kind as "tcp" | "udp", dst: dst(f, s), port: s.port })));
  const pings = FAMILIES.flatMap((f) => specs.filter((s) => s.kind === "ping").map((s) => [f, s] as const));
  const [fromClient, fromServer, pinged] = await Promise.all([
    probeMany(l, "client", items("client"), PROBE_WAIT_S),
    probeMany(l, "server", items("server"), PROBE_WAIT_S),
    Promise.all(pings.map(([f, s]) => pingProbe(l, s.from, dst(f, s)))),
  ]);
  const all: Record<string, ProbeResult> = { ...fromClient, ...fromServer };
  pings.forEach(([f, s], i) => (all[key(f, s)] = pinged[i]!));
  const byFamily = (f: Family): Record<string, ProbeResult> => Object.fromEntries(specs.map((s) => [s.name, all[key(f, s)]!]));
  return { 4: byFamily(4), 6: byFamily(6) };
}

/**
 * One answered ping per family, client → server (5 s at most), before any
 * timed probe: the neighbours are resolved and the daemon's packet path has
 * run once (measured here, on 2 CPUs: with a burst of processes starting,
 * the first packets after a start spent up to ~400 ms in the daemon). Linux's
 * gateway gets the same warm-up, so the connection tables still compare.
 */
async function warmUp(l: Lab, context: () => string): Promise<void> {
  const r = await Promise.all(FAMILIES.map((f) => pingProbe(l, "client", l.ip("SERVER", f), 5)));
  FAMILIES.forEach((f, i) => expect(r[i]!.outcome, `IPv${f} warm-up ping\n${r[i]!.detail}\n${context()}`).toBe("ok"));
}

function outcomes(r: Record<string, ProbeResult>): Outcomes {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.outcome]));
}

function show(r: Record<string, ProbeResult>): string {
  return Object.entries(r)
    .map(([k, v]) => `  ${k}: ${v.outcome} after ${v.ms} ms ${v.detail}`)
    .join("\n");
}

/** Probes both families at once; checks each against `expected(family)`; returns the outcomes by family. */
async function expectOutcomes(
  l: Lab,
  expected: (f: Family) => Outcomes,
  context: () => string,
  specs: readonly ProbeSpec[] = PROBES,
): Promise<Record<Family, Record<string, ProbeResult>>> {
  const r = await probeRound(l, specs);
  for (const f of FAMILIES) {
    const want = Object.fromEntries(specs.map((s) => [s.name, expected(f)[s.name]!]));
    expect(outcomes(r[f]), `IPv${f} probes\n${show(r[f])}\n${context()}`).toEqual(want);
  }
  return r;
}

/** The REJECTed probes failed at once, not after retransmissions. */
function expectRejectsAtOnce(r: Record<Family, Record<string, ProbeResult>>): void {
  for (const f of FAMILIES) {
    for (const name of ["TCP client → server, REJECT tcp-reset", "UDP client → server, REJECT icmp-port-unreachable"]) {
      expect(r[f][name]!.ms, `IPv${f} ${name}: ${JSON.stringify(r[f][name])}`).toBeLessThan(AT_ONCE_MS);
    }
  }
}

// ─── The connection table ─────────────────────────────────────────────────

/**
 * `conntrack -L` lines of the lab client's flows, comparable across runs:
 * the timeout column becomes T, ephemeral ports (>= 32768) P, ICMP ids I. Sorted.
 */
function normaliseTable(text: string, l: Lab): string[] {
  const mine = FAMILIES.map((f) => ` src=${l.ip("CLIENT", f)} `);
  return text
    .split("\n")
    .filter((x) => mine.some((m) => x.includes(m)))
    .map((x) =>
      x
        .trim()
        .replace(/^(\S+\s+\d+\s+)\d+ /, "$1T ")
        .replace(/\b(sport|dport)=(\d+)/g, (m, k: string, p: string) => (Number(p) >= 32768 ? `${k}=P` : m))
        .replace(/\bid=\d+/g, "id=I"),
    )
    .sort();
}

/**
 * The table once both accepted TCP probes have reached TIME_WAIT (the
 * server's last ACK may still be on its way when the probe exits), at most 5 s.
 */
async function settledTable(l: Lab, list: () => Promise<string>): Promise<string[]> {
  let last: string[] = [];
  try {
    return await waitUntilAsync(5000, "accepted TCP probes in TIME_WAIT", async () => {
      last = normaliseTable(await list(), l);
      const ok = last.filter((x) => x.includes(` dport=${RPORT.tcpOk} `));
      return ok.length === 2 && ok.every((x) => x.includes(" TIME_WAIT ")) ? last : undefined;
    });
  } catch {
    return last; // the comparison shows what is wrong
  }
}

/** waitUntil for an async probe (polls every 100 ms). */
async function waitUntilAsync<T>(limitMs: number, what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await delay(100);
  }
}

/**
 * No entry for what the rules dropped or rejected (a connection exists only
 * once its first packet is accepted), nor for anything unsolicited; one
 * entry per accepted or RELATED-answered probe.
 */
function expectTableAfterProbes(table: string[], context: string): void {
  const why = `${table.join("\n")}\n${context}`;
  for (const port of [RPORT.tcpReject, RPORT.udpReject, RPORT.tcpDrop, RPORT.clientTcp, RPORT.clientUdp]) {
    expect(table.filter((x) => x.includes(`dport=${port} `)), `entries for port ${port}\n${why}`).toEqual([]);
  }
  for (const port of [RPORT.tcpOk, RPORT.udpOk, RPORT.udpClosed, RPORT.tcpServerReject]) {
    expect(table.filter((x) => x.includes(`dport=${port} `)), `entries for port ${port} (one per family)\n${why}`).toHaveLength(2);
  }
}

// ─── Linux as the oracle ──────────────────────────────────────────────────

/** Filled by the oracle tests; the sluice tests compare against them. */
const oracle: { rules: Record<Family, Outcomes> | null; table: string[] | null; noRelated: Record<Family, Outcomes> | null } = { rules: null, table: null, noRelated: null };

/** sluice's table after the probes: as in Linux. */
async function expectTableAsLinux(l: Lab, files: RunFiles): Promise<void> {
  const table = await settledTable(l, async () => {
    const r = await cli(["conntrack", "-L", "--socket", files.socket]);
    if (r.code !== 0) throw new Error(describeResult(["sluice", "conntrack", "-L"], r));
    return r.out;
  });
  expectTableAfterProbes(table, "(sluice)");
  expect(oracle.table, "the oracle test did not run or failed").not.toBeNull();
  expect(table, "sluice conntrack -L vs Linux's conntrack -L (normalised)").toEqual(oracle.table);
}

/** iptables-restore / ip6tables-restore of `text` in the gateway of `l`; throws with the output on failure. */
function kernelRestore(l: Lab, f: Family, text: string, name: string): void {
  const file = join(tmp, `${l.name}-${name}.v${f}`);
  writeFileSync(file, text);
  l.must("gateway", [f === 4 ? "iptables-restore" : "ip6tables-restore", "-w", "5", file]);
}

/** iptables-save of a namespace without its comments and with counters blanked, tables sorted by name. */
function kernelSave(ns: string, f: Family): string {
  const r = run(["ip", "netns", "exec", ns, f === 4 ? "iptables-save" : "ip6tables-save"]);
  if (r.code !== 0) throw new Error(describeResult(["ip", "netns", "exec", ns, "iptables-save"], r));
  return normaliseSave(r.out);
}

/**
 * A save without comment lines and counters (`[p:b]` before rules, on chain
 * lines), each table's block kept whole, blocks sorted by table name (the
 * kernel's iptables-nft-save lists tables in its own order).
 */
function normaliseSave(text: string): string {
  const blocks: string[] = [];
  let cur: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (line === "" || line.startsWith("#")) continue;
    cur.push(line.replace(/^\[\d+:\d+\] /, "").replace(/ \[\d+:\d+\]$/, " [*:*]"));
    if (line === "COMMIT") {
      blocks.push(cur.join("\n"));
      cur = [];
    }
  }
  if (cur.length > 0) blocks.push(cur.join("\n"));
  return blocks.sort().join("\n");
}

// ─── Lab setup ────────────────────────────────────────────────────────────

/**
 * Echo servers in a lab: on the server the ports the rules judge, on the
 * client the targets of unsolicited traffic; and the server's own REJECT
 * (SERVER_REJECT) of RPORT.tcpServerReject, whose ICMP error the gateway
 * must let back as RELATED to the TCP connection.
 */
async function startLabServers(l: Lab): Promise<Bg[]> {
  for (const f of FAMILIES) {
    const cmd = f === 4 ? "iptables" : "ip6tables";
    l.must("server", [cmd, "-w", "5", "-A", "INPUT", "-p", "tcp", "--dport", String(RPORT.tcpServerReject), "-j", "REJECT", "--reject-with", SERVER_REJECT[f].with]);
  }
  return Promise.all([
    startEchoServers(l, "server", [RPORT.tcpOk, RPORT.tcpReject, RPORT.tcpDrop, RPORT.tcpStream], [RPORT.udpOk, RPORT.udpReject], SERVERS_MS),
    startEchoServers(l, "client", [RPORT.clientTcp], [RPORT.clientUdp], SERVERS_MS),
  ]);
}

beforeAll(async () => {
  if (!CAN_RUN_KERNEL_TESTS) return;
  if (!existsSync(SLUICE_CLI)) throw new Error(`${SLUICE_CLI} is missing: run npx tsc -p tsconfig.json first`);
  tmp = mkdtempSync(join(tmpdir(), "sluice-rules-test-"));
  lab = Lab.up(`${PREFIX}-gw`);
  oracleLab = Lab.up(`${PREFIX}-or`);
  servers.push(...(await startLabServers(lab)), ...(await startLabServers(oracleLab)));
}, 90_000);

afterAll(async () => {
  await killDaemons();
  await killAll();
  lab?.down();
  oracleLab?.down();
  run(["ip", "netns", "del", `${PREFIX}-save`]); // the round trip's scratch namespace, if a failure left it
  if (tmp !== "") rmSync(tmp, { recursive: true, force: true });
}, 90_000);

// ─── The daemon ───────────────────────────────────────────────────────────

let runSeq = 0;

/** One daemon's run: its spec, paths, and the ruleset files it was configured with (absolute). */
interface DaemonRun {
  d: SluiceDaemon;
  spec: RulesRunSpec;
  files: RunFiles;
  rules: Record<Family, string>;
}

/**
 * Starts a daemon with `ruleset(f)` (both families, as configured files
 * `rules.v4` / `rules.v6` next to the config), warms it up, runs `body`, then stops it
 * with SIGTERM (exit 0, "sluice stopped"). If `body` fails the daemon is
 * still stopped, and its log tail goes into the error.
 */
async function withDaemon(mode: "nfqueue" | "tun", body: (r: DaemonRun) => Promise<void>): Promise<void> {
  const n = ++runSeq;
  const spec: RulesRunSpec = {
    mode,
    instance: `r${process.pid}-${n}-${token(2)}`,
    dir: join(tmp, `run-${n}`),
    queue: 3,
    tunDevice: `slr${token(3)}${n}`,
    tunTable: 4300 + n,
    tunRulePriority: 950 + n,
    rules4: "rules.v4",
    rules6: "rules.v6",
  };
  const files = writeRulesConfig(spec);
  const rules = { 4: join(spec.dir, "rules.v4"), 6: join(spec.dir, "rules.v6") };
  for (const f of FAMILIES) writeFileSync(rules[f], ruleset(f));
  const d = await SluiceDaemon.start(theLab(), files.config, spec.dir);
  try {
    await warmUp(theLab(), () => "(sluice; its log follows)");
    await body({ d, spec, files, rules });
  } catch (e) {
    await d.stop("SIGTERM").catch(() => undefined);
    if (e instanceof Error) e.message += `\n${d.tail()}`;
    throw e;
  }
  const exit = await d.stop("SIGTERM");
  expect(exit, `exit after SIGTERM\n${d.tail()}`).toEqual({ code: 0, signal: null });
  expect(d.find("sluice stopped"), d.tail()).toBeDefined();
}

/** The daemon's "ruleset loaded" lines for `why` ("start", "SIGHUP", "sluice rules load"). */
function loadedLines(d: SluiceDaemon, why: string): LogLine[] {
  return d.lines().filter((l) => l.msg === "ruleset loaded" && l.why === why);
}

/** `sluice rules CMD ...` against the daemon; the outcome. */
function rulesCli(files: RunFiles, args: readonly string[]): Promise<Result> {
  return cli(["rules", ...args, "--socket", files.socket]);
}

/** Writes `text` as `<dir>/<name>.v4|6` and loads it into the running daemon with `sluice rules load`; throws with the outcome on failure. */
async function loadRules(r: DaemonRun, f: Family, text: string, name: string): Promise<void> {
  const file = join(r.spec.dir, `${name}.v${f}`);
  writeFileSync(file, text);
  const x = await rulesCli(r.files, ["load", `-${f}`, file]);
  if (x.code !== 0) throw new Error(describeResult(["sluice", "rules", "load", `-${f}`, file], x));
}

/** loadRules for both families at once, each with its variant of the ruleset. */
async function loadBoth(r: DaemonRun, v: Variant, name: string): Promise<void> {
  await Promise.all(FAMILIES.map((f) => loadRules(r, f, ruleset(f, v), name)));
}

/** `sluice rules save -4|-6`; throws with the outcome on failure. */
async function saveRules(files: RunFiles, f: Family): Promise<string> {
  const r = await rulesCli(files, ["save", `-${f}`]);
  if (r.code !== 0) throw new Error(describeResult(["sluice", "rules", "save", `-${f}`], r));
  return r.out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ─── LOG lines ────────────────────────────────────────────────────────────

/** The kernel's LOG text for the logged SYN, with what differs between runs (and TTL, see the file comment) as patterns. */
function logLineRe(l: Lab, f: Family): RegExp {
  const hex = (ip: string): string => {
    // %pI6: eight groups of four hex digits, never compressed.
    const [head, tail = ""] = ip.split("::");
    const h = head === "" ? [] : head!.split(":");
    const t = tail === "" ? [] : tail.split(":");
    return [...h, ...new Array<string>(8 - h.length - t.length).fill("0"), ...t].map((g) => g.padStart(4, "0")).join(":");
  };
  const p = logPrefix(f);
  const l3 =
    f === 4
      ? `SRC=${l.ip("CLIENT", 4)} DST=${l.ip("SERVER", 4)} LEN=60 TOS=0x00 PREC=0x00 TTL=\\d+ ID=\\d+ DF`
      : `SRC=${hex(l.ip("CLIENT", 6))} DST=${hex(l.ip("SERVER", 6))} LEN=80 TC=0 HOPLIMIT=\\d+ FLOWLBL=\\d+`;
  return new RegExp(`^${escapeRe(p)}IN=lan0 OUT=wan0 MAC=\\S* ${l3.replace(/\./g, "\\.")} PROTO=TCP SPT=(\\d+) DPT=${RPORT.tcpOk} WINDOW=\\d+ RES=0x00 SYN URGP=0 ?$`);
}

/**
 * LOG records for the SYN of the accepted TCP probe and nothing else of
 * that connection (one, unless the SYN was retransmitted), at pino's warn
 * level (LOG's default level 4, warning), the text in the kernel's format
 * and the fields matching the probe. Returns how many there were.
 */
function expectLogLines(d: SluiceDaemon, l: Lab, r: Record<Family, Record<string, ProbeResult>>): number {
  let n = 0;
  for (const f of FAMILIES) {
    const recs = d.lines().filter((x) => typeof x.msg === "string" && x.msg.startsWith(logPrefix(f)));
    expect(recs.length, `IPv${f}: LOG records\n${d.tail()}`).toBeGreaterThanOrEqual(1);
    const sport = /sport=(\d+)/.exec(r[f]["TCP client → server, accepted"]!.detail)?.[1];
    expect(sport, `IPv${f}: the probe's source port`).toBeDefined();
    for (const rec of recs) {
      const m = logLineRe(l, f).exec(rec.msg!);
      expect(m, `IPv${f}: LOG text ${JSON.stringify(rec.msg)} vs ${logLineRe(l, f).source}`).not.toBeNull();
      expect(m![1], "LOG's SPT is the probe's source port").toBe(sport);
      expect(rec.level, "pino level of a LOG record at level warning").toBe(40);
      expect(rec.log).toMatchObject({ prefix: logPrefix(f), in: "lan0", out: "wan0", proto: "TCP", spt: Number(sport), dpt: RPORT.tcpOk, tcpFlags: ["SYN"] });
    }
    n += recs.length;
  }
  return n;
}

// ─── Tests ────────────────────────────────────────────────────────────────

/** The probes the RELATED control is about (the server's ICMP errors), plus an accepted one to show the rest still works. */
const RELATED_PROBES = PROBES.filter((p) => p.port === RPORT.udpClosed || p.port === RPORT.tcpServerReject || p.port === RPORT.tcpOk);

describe.skipIf(!CAN_RUN_KERNEL_TESTS)("rules through the daemon, in the lab", () => {
  describe("Linux's iptables (the oracle)", () => {
    it("without filtering, every probe gets through (the listeners and the probes work)", { timeout: 30_000 }, async () => {
      await expectOutcomes(theOracle(), open, () => "(Linux, no rules)");
    });

    it("with the ruleset: replies and ICMP errors come back, REJECT refuses at once, nothing unsolicited gets in; the table", { timeout: 30_000 }, async () => {
      const l = theOracle();
      for (const f of FAMILIES) kernelRestore(l, f, ruleset(f), "rules");
      await warmUp(l, () => "(Linux)");
      const r = await expectOutcomes(l, withRules, () => "(Linux)");
      expectRejectsAtOnce(r);
      oracle.rules = { 4: outcomes(r[4]), 6: outcomes(r[6]) };
      const table = await settledTable(l, async () => l.must("gateway", ["conntrack", "-L"]));
      expectTableAfterProbes(table, "(Linux)");
      oracle.table = table;
    });

    it("without RELATED, the server's ICMP errors do not come back (control)", { timeout: 30_000 }, async () => {
      const l = theOracle();
      try {
        for (const f of FAMILIES) kernelRestore(l, f, ruleset(f, { related: false }), "norelated");
        const r = await expectOutcomes(l, withoutRelated, () => "(Linux, ESTABLISHED only)", RELATED_PROBES);
        oracle.noRelated = { 4: outcomes(r[4]), 6: outcomes(r[6]) };
      } finally {
        for (const f of FAMILIES) kernelRestore(l, f, ruleset(f), "rules");
      }
    });
  });

  describe("NFQUEUE mode", () => {
    it("default DROP + ESTABLISHED,RELATED: the probes end as in Linux, and the table; REJECT refuses at once; LOG records in the JSON log", { timeout: 40_000 }, async () => {
      const l = theLab();
      await withDaemon("nfqueue", async (ctx) => {
        const { d, files } = ctx;
        expect(loadedLines(d, "start"), d.tail()).toHaveLength(1);
        const r = await expectOutcomes(l, withRules, () => "(sluice; its log follows)");
        expectRejectsAtOnce(r);
        expect(oracle.rules, "the oracle test did not run or failed").not.toBeNull();
        for (const f of FAMILIES) expect(outcomes(r[f]), `IPv${f}: sluice vs Linux`).toEqual(oracle.rules![f]);
        const logged = expectLogLines(d, l, r);
        await expectTableAsLinux(l, files);
        const s = await stats(files.socket);
        expect(s.rules, JSON.stringify(s.rules)).toMatchObject({ loads: 1, rules4: RULESET_RULES, rules6: RULESET_RULES, logged, rejectsSent: 4 });
        expect(s.pipeline.dropped, "the DROPped SYNs and the unsolicited packets").toBeGreaterThan(0);

        // Control: without RELATED the ICMP errors stay out, as in Linux.
        await loadBoth(ctx, { related: false }, "norelated");
        const c = await expectOutcomes(l, withoutRelated, () => "(sluice; its log follows)", RELATED_PROBES);
        expect(oracle.noRelated, "the oracle's control did not run or failed").not.toBeNull();
        for (const f of FAMILIES) expect(outcomes(c[f]), `IPv${f}: sluice vs Linux, ESTABLISHED only`).toEqual(oracle.noRelated![f]);
      });
    });

    it("reloads under running traffic drop nothing; a ruleset without ESTABLISHED stalls the same traffic (control)", { timeout: 60_000 }, async () => {
      const l = theLab();
      await withDaemon("nfqueue", async (ctx) => {
        const { d, files } = ctx;
        const streams = await Promise.all(FAMILIES.map((f) => EchoStream.open(l, l.ip("SERVER", f), RPORT.tcpStream, 50_000)));
        try {
          const before = await stats(files.socket);
          const pings = FAMILIES.map((f) => l.execAsync("client", ["ping", "-n", "-q", "-c", "100", "-i", "0.05", "-W", "2", l.ip("SERVER", f)], 20_000));
          // Alternate two rulesets (the second has one more rule), one family at a time, then
          // a SIGHUP (the configured files); after each reload both streams must move on.
          const extra = ["-A FORWARD -p tcp -m tcp --dport 1 -j DROP"];
          let loads = 0;
          for (let k = 0; k < 3; k++) {
            for (const f of FAMILIES) {
              await loadRules(ctx, f, ruleset(f, k % 2 === 0 ? { extra } : {}), `alt${k}`);
              loads++;
              for (const s of streams) await s.progressPast(s.echoes(), 5000, `IPv${f} reload ${k}: the stream moves on`);
            }
          }
          const hups = loadedLines(d, "SIGHUP").length;
          d.child.kill("SIGHUP");
          loads++;
          await waitUntil(5000, "SIGHUP's ruleset loaded", () => (loadedLines(d, "SIGHUP").length > hups ? true : undefined), () => d.tail());
          for (const s of streams) await s.progressPast(s.echoes(), 5000, "after SIGHUP: the stream moves on");
          const pinged = await Promise.all(pings);
          const after = await stats(files.socket);

          for (const [i, f] of FAMILIES.entries()) {
            expect(pinged[i]!.code, `IPv${f} ping during the reloads\n${pinged[i]!.out}`).toBe(0);
            expect(pinged[i]!.out, `IPv${f} ping during the reloads`).toMatch(/ 100 received, 0% packet loss/);
          }
          const counters = JSON.stringify({ before, after });
          expect(after.rules.loads! - before.rules.loads!, "loads").toBe(loads);
          expect(after.pipeline.dropped! - before.pipeline.dropped!, `packets sluice dropped during the reloads\n${counters}`).toBe(0);
          // Nor did the kernel drop any for want of room in the queue.
          for (const k of ["kernelDropped", "userDropped", "enobufs"]) {
            expect(after.queues[0]![k]! - before.queues[0]![k]!, `queue ${k} during the reloads\n${counters}`).toBe(0);
          }
          expect(after.pipeline.accepted! - before.pipeline.accepted!, "packets through").toBeGreaterThan(400);
          // Both connections are still in the table, established.
          const ct = await cli(["conntrack", "-L", "--socket", files.socket]);
          for (const s of streams) {
            expect(ct.out, `the stream from port ${s.sport} after the reloads`).toMatch(new RegExp(`^tcp +6 \\d+ ESTABLISHED src=\\S+ dst=\\S+ sport=${s.sport} dport=${RPORT.tcpStream} .*\\[ASSURED\\]`, "m"));
          }

          // Control: without ESTABLISHED the replies are dropped: the streams stall and drops are counted...
          await loadBoth(ctx, { established: false }, "noest");
          await delay(300);
          const stalled = streams.map((s) => s.echoes());
          const [s0] = await Promise.all([stats(files.socket), delay(1000)]);
          expect(
            streams.map((s) => s.echoes()),
            "echoes without an ESTABLISHED rule (the streams must stall)",
          ).toEqual(stalled);
          expect((await stats(files.socket)).pipeline.dropped! - s0.pipeline.dropped!, "drops without an ESTABLISHED rule").toBeGreaterThan(0);
          // ...and with it back, they resume (TCP retransmits).
          await loadBoth(ctx, {}, "again");
          for (const s of streams) await s.progressPast(s.echoes(), 10_000, "the stream resumes once ESTABLISHED is back");
        } finally {
          const done = await Promise.all(streams.map((s) => s.close().catch((e: Error) => e)));
          for (const x of done) if (x instanceof Error) throw x;
        }
      });
    });

    it("rules save | rules load gives the same ruleset, and Linux reads the save as the file it came from", { timeout: 40_000 }, async () => {
      const l = theLab();
      const scratch = `${PREFIX}-save`;
      await withDaemon("nfqueue", async (ctx) => {
        const { files, spec } = ctx;
        await Promise.all(FAMILIES.map((f) => loadRules(ctx, f, handWritten(f), "hand")));
        // Traffic first, so the save carries counters (which the comparisons leave aside).
        await expectOutcomes(l, withRules, () => "(sluice; its log follows)", PROBES.filter((p) => p.from === "client" && p.port !== RPORT.tcpDrop));
        const saved: Record<Family, string> = { 4: "", 6: "" };
        for (const f of FAMILIES) {
          saved[f] = await saveRules(files, f);
          expect(saved[f], `IPv${f} save`).toMatch(/^\*filter$/m);
          expect(saved[f], `IPv${f} save shows counters`).toMatch(/^\[[1-9]\d*:[1-9]\d*\] -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT$/m);
          const file = join(spec.dir, `saved.v${f}`);
          writeFileSync(file, saved[f]);
          const r = await rulesCli(files, ["load", `-${f}`, file]);
          expect(r.code, describeResult(["sluice", "rules", "load", file], r)).toBe(0);
          const again = await saveRules(files, f);
          expect(normaliseSave(again), `IPv${f}: save → load → save`).toBe(normaliseSave(saved[f]));
        }
        // The reloaded save still behaves as the policy.
        const r = await expectOutcomes(l, withRules, () => "(sluice; its log follows)");
        expectRejectsAtOnce(r);

        // Linux: iptables-restore of the hand-written file and of sluice's save give the same iptables-save.
        const add = run(["ip", "netns", "add", scratch]);
        expect(add.code, describeResult(["ip", "netns", "add", scratch], add)).toBe(0);
        try {
          for (const f of FAMILIES) {
            const restore = (text: string): string => {
              const file = join(spec.dir, `linux.v${f}`);
              writeFileSync(file, text);
              const cmd = f === 4 ? "iptables-restore" : "ip6tables-restore";
              const rr = run(["ip", "netns", "exec", scratch, cmd, file]);
              if (rr.code !== 0) throw new Error(describeResult([cmd, file], rr));
              return kernelSave(scratch, f);
            };
            const fromFile = restore(handWritten(f));
            const fromSave = restore(saved[f]);
            expect(fromSave, `IPv${f}: Linux's save of sluice's save vs of the original`).toBe(fromFile);
          }
        } finally {
          run(["ip", "netns", "del", scratch]);
        }
      });
    });

    it("rules load of a bad file exits 1 with FILE:LINE:COL; the old ruleset keeps working", { timeout: 40_000 }, async () => {
      const l = theLab();
      await withDaemon("nfqueue", async ({ d, files, spec }) => {
        const before = await stats(files.socket);
        await Promise.all(
          FAMILIES.map(async (f) => {
            // Valid up to line 6 (with a policy that would let everything in), then a bad port on line 7.
            const good = ruleset(f).replace(":FORWARD DROP", ":FORWARD ACCEPT").split("\n");
            const file = join(spec.dir, `bad.v${f}`);
            writeFileSync(file, [...good.slice(0, 6), "-A FORWARD -p tcp --dport 99999 -j ACCEPT", ...good.slice(6)].join("\n"));
            const [r, check] = await Promise.all([rulesCli(files, ["load", `-${f}`, file]), cli(["rules", "check", `-${f}`, file])]);
            expect(r.code, describeResult(["sluice", "rules", "load", file], r)).toBe(1);
            expect(r.err, "the error names the file, line and column").toMatch(new RegExp(`${escapeRe(file)}:7:19: .*99999`));
            expect(check.code, `rules check agrees\n${check.err}`).toBe(1);
            expect(check.err).toContain(`${file}:7:19:`);
            // Linux refuses it on the same line.
            const k = theOracle().exec("gateway", [f === 4 ? "iptables-restore" : "ip6tables-restore", "--test", file]);
            expect(k.code, describeResult(["iptables-restore", "--test", file], k)).not.toBe(0);
            expect(k.err).toMatch(/line:? 7\b/);
          }),
        );
        const after = await stats(files.socket);
        expect(after.rules, "nothing loaded").toEqual(before.rules);
        expect(d.lines().filter((x) => x.msg === "sluice rules load: ruleset refused; the previous ruleset stays live"), d.tail()).toHaveLength(2);
        // The old ruleset: unsolicited traffic still stays out, REJECT still refuses, replies still come back.
        const r = await expectOutcomes(l, withRules, () => "(sluice; its log follows)");
        expectRejectsAtOnce(r);
      });
    });

    it("SIGHUP reloads the configured files; a SIGHUP with a broken file logs an error and changes nothing", { timeout: 40_000 }, async () => {
      const l = theLab();
      const accepted = PROBES.filter((p) => p.port === RPORT.tcpOk);
      await withDaemon("nfqueue", async ({ d, files, rules }) => {
        await expectOutcomes(l, withRules, () => "(sluice; its log follows)", accepted);
        const hup = async (what: string, done: () => LogLine | undefined): Promise<LogLine> => {
          d.child.kill("SIGHUP");
          return waitUntil(5000, what, done, () => d.tail());
        };

        // Reject the accepted port too: the change shows once the files are reloaded.
        const extra = [`-A FORWARD -i lan0 -o wan0 -p tcp -m tcp --dport ${RPORT.tcpOk} -j REJECT --reject-with tcp-reset`];
        for (const f of FAMILIES) writeFileSync(rules[f], ruleset(f, { extra }));
        await hup("SIGHUP's ruleset loaded", () => loadedLines(d, "SIGHUP")[0]);
        const changed = (f: Family): Outcomes => ({ ...withRules(f), "TCP client → server, accepted": "refused" });
        await expectOutcomes(l, changed, () => "(sluice; its log follows)", accepted);
        const before = await stats(files.socket);
        expect(before.rules, JSON.stringify(before.rules)).toMatchObject({ loads: 2, rules4: RULESET_RULES + 1, rules6: RULESET_RULES + 1 });

        // Broken IPv4 file (line 7), valid IPv6 file that would accept the port again: neither may load.
        const good4 = ruleset(4).split("\n");
        writeFileSync(rules[4], [...good4.slice(0, 6), "-A FORWARD -j NO-SUCH-CHAIN", ...good4.slice(6)].join("\n"));
        writeFileSync(rules[6], ruleset(6));
        const err = await hup("SIGHUP's error", () => d.lines().find((x) => x.msg === "SIGHUP: ruleset refused; the previous ruleset stays live"));
        expect(err.level, "logged as an error").toBe(50);
        const message = String((err.err as { message?: unknown } | undefined)?.message);
        expect(message, JSON.stringify(err)).toMatch(new RegExp(`${escapeRe(basename(rules[4]))}:7:\\d+: `));
        expect(message).toContain("NO-SUCH-CHAIN");
        await expectOutcomes(l, changed, () => "(sluice; its log follows)", accepted);
        const after = await stats(files.socket);
        expect(after.rules, "nothing loaded").toMatchObject({ loads: before.rules.loads, rules4: before.rules.rules4, rules6: before.rules.rules6 });
        expect(loadedLines(d, "SIGHUP"), "one SIGHUP load only").toHaveLength(1);
        expect(readFileSync(rules[6], "utf8")).toBe(ruleset(6));
      });
    });
  });

  describe("TUN mode", () => {
    it("default DROP + ESTABLISHED,RELATED: the probes end as in Linux, and the table; REJECT refuses at once; LOG records in the JSON log", { timeout: 40_000 }, async () => {
      const l = theLab();
      await withDaemon("tun", async ({ d, files }) => {
        const r = await expectOutcomes(l, withRules, () => "(sluice; its log follows)");
        expectRejectsAtOnce(r);
        expect(oracle.rules, "the oracle test did not run or failed").not.toBeNull();
        for (const f of FAMILIES) expect(outcomes(r[f]), `IPv${f}: sluice vs Linux`).toEqual(oracle.rules![f]);
        const logged = expectLogLines(d, l, r);
        await expectTableAsLinux(l, files);
        const s = await stats(files.socket);
        expect(s.rules, JSON.stringify(s.rules)).toMatchObject({ loads: 1, rules4: RULESET_RULES, rules6: RULESET_RULES, logged, rejectsSent: 4 });
      });
    });
  });

  it("lab.sh down leaves none of the labs' namespaces", { timeout: 60_000 }, async () => {
    await killDaemons();
    await killAll();
    for (const l of [theLab(), theOracle()]) {
      const r = l.down();
      expect(r.code, describeResult(["lab.sh", "down", l.name], r)).toBe(0);
      expect(l.namespaces()).toEqual([]);
    }
  });
});
