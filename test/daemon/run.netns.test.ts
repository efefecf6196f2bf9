/**
 * `sluice run` in the three-namespace lab (scripts/lab.sh), in NFQUEUE and
 * TUN mode, over IPv4 and IPv6, with Linux as the oracle.
 *
 * ```
 *   oracle lab:  client ── gateway: Linux conntrack (FORWARD: INVALID → DROP) ── server
 *   sluice lab:  client ── gateway: sluice run (nfqueue | tun)                ── server
 * ```
 *
 * The same exchanges run through both gateways: ping, an HTTP GET (curl
 * against python3's http.server), a one-shot UDP echo, a UDP echo with a
 * second datagram after 2.3 s (Linux's ASSURED rule for UDP), and a datagram
 * to a closed port (UNREPLIED; the ICMP error must come back). `sluice
 * conntrack -L` must then print the same lines as the kernel's `conntrack
 * -L` once timeouts, ephemeral ports and ICMP ids are normalised, and both
 * must show the states and flags written down here.
 *
 * A segment forged from the client's raw socket on an open connection, its
 * sequence number 1 GiB past the client's, must not reach the server (INVALID,
 * counted in `pipeline.invalid`), while 2 bytes the client's socket sends
 * right after it must: they are the barrier that makes "did not arrive"
 * meaningful. With
 * nothing filtering (the oracle lab before its rules), the out-of-window
 * segment does arrive, so the forger is not what stops it.
 *
 * After SIGKILL, NFQUEUE traffic follows `nfqueue.queueBypass` (false: ping
 * fails; true: ping passes) and TUN mode fails closed; a second start with the same config removes the
 * stale plumbing and says so. Every daemon run ends with SIGTERM or SIGINT,
 * exit 0, and the gateway exactly as before the start (rules, nf_tables
 * tables, sysctls, links, policy rules, routes of every table), without its
 * state file. Last, `lab.sh down` leaves none of the lab's namespaces.
 *
 * Needs root, a built tree (`npx tsc -p tsconfig.json`), iproute2, iptables
 * (nft), nft, conntrack, tcpdump, curl, ping and python3. Every spawn is
 * bounded (lab-harness.ts); the whole file takes about a minute.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CAN_RUN_KERNEL_TESTS,
  Lab,
  PORT,
  SLUICE_CLI,
  SluiceDaemon,
  clientFlows,
  closeHeld,
  describeResult,
  exchanges,
  forgeSegment,
  gatewaySnapshot,
  holdConnection,
  killAll,
  killDaemons,
  normaliseConntrack,
  ping,
  sluiceCli,
  sendOnHeld,
  sluiceStats,
  startServers,
  tcpdumpServer,
  token,
  waitUntil,
  writeConfig,
  type Bg,
  type Exchanges,
  type HeldConnection,
  type Result,
  type RunFiles,
  type RunSpec,
} from "./lab-harness.js";

const FAMILIES = [4, 6] as const;
type Family = (typeof FAMILIES)[number];
/** How far past the client's next sequence number the forged segment lies: far beyond any window. */
const OUT_OF_WINDOW = 0x4000_0000;
/** Lifetime of the servers: the whole file. */
const SERVERS_MS = 170_000;

const PREFIX = `sl-run-${process.pid}-${token(2)}`;
let tmp = "";
let lab: Lab | null = null; // sluice runs in this one
let oracleLab: Lab | null = null; // Linux conntrack, no sluice
const servers: Bg[] = [];

/** What Linux showed, filled in by the oracle tests and compared against by the sluice tests. */
const oracle: { flows: string[] | null; held: Partial<Record<Family, string>> } = { flows: null, held: {} };

function theLab(): Lab {
  if (lab === null) throw new Error("the lab is not up (beforeAll failed)");
  return lab;
}

// ─── Checks shared by the oracle and sluice ───────────────────────────────

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The normalised conntrack lines the exchanges of one family must leave,
 * written down from Linux's behaviour: ICMP echo with no state and no flag,
 * HTTP in TIME_WAIT and ASSURED (both sides saw the FIN handshake), the
 * one-shot UDP echo replied but not ASSURED (within 2 s), the UDP stream
 * ASSURED, the closed port UNREPLIED.
 */
function expectedFlows(l: Lab, family: Family): Array<[string, RegExp]> {
  const c = escape(l.ip("CLIENT", family));
  const s = escape(l.ip("SERVER", family));
  const [icmp, req, rep] = family === 4 ? ["icmp +1", 8, 0] : ["icmpv6 +58", 128, 129];
  const udp = (port: number, flag: "" | "ASSURED" | "UNREPLIED"): RegExp => {
    const orig = `src=${c} dst=${s} sport=P dport=${port}`;
    const reply = `src=${s} dst=${c} sport=${port} dport=P`;
    // conntrack prints UNREPLIED between the tuples, ASSURED after them.
    const body = flag === "UNREPLIED" ? `${orig} \\[UNREPLIED\\] ${reply}` : `${orig} ${reply}${flag === "ASSURED" ? " \\[ASSURED\\]" : ""}`;
    return new RegExp(`^udp +17 T ${body} mark=0 use=1$`);
  };
  return [
    [`IPv${family} ping`, new RegExp(`^${icmp} T src=${c} dst=${s} type=${req} code=0 id=I src=${s} dst=${c} type=${rep} code=0 id=I mark=0 use=1$`)],
    [`IPv${family} HTTP`, new RegExp(`^tcp +6 T TIME_WAIT src=${c} dst=${s} sport=P dport=${PORT.http} src=${s} dst=${c} sport=${PORT.http} dport=P \\[ASSURED\\] mark=0 use=1$`)],
    [`IPv${family} UDP one-shot echo`, udp(PORT.udp, "")],
    [`IPv${family} UDP stream`, udp(PORT.udp, "ASSURED")],
    [`IPv${family} UDP to a closed port`, udp(PORT.udpClosed, "UNREPLIED")],
  ];
}

/** Each expected flow of both families matches exactly one line, and there is no other line. */
function expectLinuxFlows(l: Lab, normalised: string[], context: string): void {
  const expected = FAMILIES.flatMap((f) => expectedFlows(l, f));
  const problems: string[] = [];
  for (const [what, re] of expected) {
    const n = normalised.filter((line) => re.test(line)).length;
    if (n !== 1) problems.push(`${what}: ${n} lines match ${re.source}`);
  }
  for (const line of normalised) if (!expected.some(([, re]) => re.test(line))) problems.push(`unexpected line: ${line}`);
  expect(problems, `${problems.join("\n")}\n--- normalised conntrack -L\n${normalised.join("\n")}\n${context}`).toEqual([]);
}

function expectExchangesOk(family: Family, x: Exchanges, context: () => string): void {
  const show = (name: string, r: Result): string => `IPv${family} ${name}: ${describeResult([name], r)}\n${context()}`;
  expect(x.ping.code, show("ping", x.ping)).toBe(0);
  expect(x.http.code, show("curl", x.http)).toBe(0);
  expect(x.http.out, show("curl", x.http)).toBe("sluice lab\n");
  expect(x.udpOnce.code, show("UDP one-shot echo", x.udpOnce)).toBe(0);
  expect(x.udpStream.code, show("UDP stream", x.udpStream)).toBe(0);
  expect(x.udpClosed.code, show("UDP to a closed port", x.udpClosed)).toBe(0);
}

/** Runs the exchanges of both families at once and checks each passed. */
async function runExchanges(l: Lab, context: () => string): Promise<void> {
  const [x4, x6] = await Promise.all([exchanges(l, 4), exchanges(l, 6)]);
  expectExchangesOk(4, x4, context);
  expectExchangesOk(6, x6, context);
}

/**
 * The client's flows from `list()` once every HTTP connection has reached
 * TIME_WAIT (the server's last ACK may still be on its way when curl exits),
 * at most 5 s; the held connections (PORT.hold) are left out.
 */
async function settledFlows(l: Lab, list: () => string): Promise<string[]> {
  let last: string[] = [];
  try {
    return await waitUntil(5000, "HTTP flows in TIME_WAIT", () => {
      last = clientFlows(list(), l, new RegExp(`dport=${PORT.hold}\\b`));
      const http = last.filter((x) => x.includes(`dport=${PORT.http} `));
      return http.length === 2 && http.every((x) => x.includes(" TIME_WAIT ")) ? last : undefined;
    });
  } catch {
    return last; // the comparison shows what is wrong
  }
}

/** What arrived at the server: `bad` the forged out-of-window segment, `good` the client's in-window one sent right after it. */
interface ForgedOutcome {
  bad: boolean;
  good: boolean;
  dump: string;
}

/**
 * Forges the out-of-window segment, then has the client's own socket send
 * 2 bytes (in window), and watches the server's interface: the in-window
 * segment arriving (at most 5 s) means the forged one, sent first on the
 * same path, would have arrived by then too. (The control is real data, not
 * a second forgery: forged in-window data would be acknowledged to a client
 * that never sent it, whose FIN the server then never accepts; its
 * retransmissions would stray into later tests as INVALID.)
 */
async function sendForged(l: Lab, family: Family, held: HeldConnection): Promise<ForgedOutcome> {
  const td = await tcpdumpServer(l, held.sport);
  try {
    const badSeq = (held.snd + OUT_OF_WINDOW) >>> 0;
    forgeSegment(l, family, held, badSeq, "bad!");
    sendOnHeld(held, "ok");
    const good = await td.waitFor(new RegExp(`seq ${held.snd}:${(held.snd + 2) >>> 0},`), 5000, "the in-window segment at the server").then(
      () => true,
      () => false,
    );
    return { bad: td.out.includes(`seq ${badSeq}:`), good, dump: td.output() };
  } finally {
    await td.stop();
  }
}

/** The normalised conntrack line of the held connection in `text`. */
function heldLine(text: string, held: HeldConnection): string[] {
  return normaliseConntrack(text.split("\n").filter((x) => x.includes(` sport=${held.sport} dport=${PORT.hold} `)));
}

// ─── Lab setup ────────────────────────────────────────────────────────────

beforeAll(async () => {
  if (!CAN_RUN_KERNEL_TESTS) return;
  if (!existsSync(SLUICE_CLI)) throw new Error(`${SLUICE_CLI} is missing: run npx tsc -p tsconfig.json first`);
  tmp = mkdtempSync(join(tmpdir(), "sluice-run-test-"));
  lab = Lab.up(`${PREFIX}-gw`);
  oracleLab = Lab.up(`${PREFIX}-or`);
  servers.push(...(await startServers(lab, join(tmp, "www"), SERVERS_MS)), ...(await startServers(oracleLab, join(tmp, "www"), SERVERS_MS)));
}, 60_000);

afterAll(async () => {
  await killDaemons();
  await killAll();
  lab?.down();
  oracleLab?.down();
  if (tmp !== "") rmSync(tmp, { recursive: true, force: true });
}, 60_000);

// ─── The daemon's runs ────────────────────────────────────────────────────

let runSeq = 0;

/** A fresh instance id, directory, socket and state dir (and TUN device, table, priority). */
function newRun(mode: "nfqueue" | "tun", over: Partial<RunSpec> = {}): { spec: RunSpec; files: RunFiles } {
  const n = ++runSeq;
  const spec: RunSpec = {
    mode,
    instance: `t${process.pid}-${n}-${token(2)}`,
    dir: join(tmp, `run-${n}`),
    queue: 7,
    tunDevice: `slt${token(3)}${n}`,
    tunTable: 4200 + n,
    tunRulePriority: 900 + n,
    ...over,
  };
  return { spec, files: writeConfig(spec) };
}

/** The plumbing is there while the daemon runs (so "as before" after the stop means something). */
function expectPlumbingInstalled(spec: RunSpec, d: SluiceDaemon): void {
  const l = theLab();
  const why = (): string => d.tail();
  expect(l.must("gateway", ["sysctl", "-n", "net.ipv4.conf.lan0.rp_filter"]).trim(), why()).toBe("2");
  if (spec.mode === "nfqueue") {
    expect(l.must("gateway", ["iptables-save", "-t", "raw"]), why()).toContain(`sluice:${spec.instance}`);
    expect(l.must("gateway", ["ip6tables-save", "-t", "raw"]), why()).toContain(`sluice:${spec.instance}`);
  } else {
    expect(l.must("gateway", ["ip", "-o", "link", "show", "dev", spec.tunDevice!]), why()).toContain(spec.tunDevice!);
    expect(l.must("gateway", ["ip", "rule", "show"]), why()).toContain(`lookup ${spec.tunTable}`);
    expect(l.must("gateway", ["ip", "-6", "rule", "show"]), why()).toContain(`lookup ${spec.tunTable}`);
  }
}

/** Stops with `signal`: exit 0, "sluice stopped", the gateway as in `before`, no state file. */
async function expectCleanStop(d: SluiceDaemon, files: RunFiles, before: Record<string, string>, signal: "SIGTERM" | "SIGINT"): Promise<void> {
  const exit = await d.stop(signal);
  expect(exit, `exit after ${signal}\n${d.tail()}`).toEqual({ code: 0, signal: null });
  expect(d.find("sluice stopped"), d.tail()).toBeDefined();
  expect(gatewaySnapshot(theLab()), `the gateway after ${signal} differs from before the start\n${d.tail()}`).toEqual(before);
  expect(existsSync(files.stateFile), `state file ${files.stateFile} left behind`).toBe(false);
}

/**
 * Starts a daemon for `spec`, runs `body`, then stops it with `signal` and
 * checks it left nothing. If `body` fails, the daemon is still stopped
 * (cleanly if it can be) so the next test starts from a clean gateway.
 */
async function withDaemon(
  mode: "nfqueue" | "tun",
  over: Partial<RunSpec>,
  signal: "SIGTERM" | "SIGINT",
  body: (d: SluiceDaemon, spec: RunSpec, files: RunFiles) => Promise<void>,
): Promise<void> {
  const { spec, files } = newRun(mode, over);
  const before = gatewaySnapshot(theLab());
  const d = await SluiceDaemon.start(theLab(), files.config, spec.dir);
  try {
    expectPlumbingInstalled(spec, d);
    await body(d, spec, files);
  } catch (e) {
    await d.stop("SIGTERM").catch(() => undefined);
    if (e instanceof Error) e.message += `\n${d.tail()}`;
    throw e;
  }
  await expectCleanStop(d, files, before, signal);
}

function sluiceConntrack(socket: string): string {
  const r = sluiceCli(["conntrack", "-L", "--socket", socket]);
  if (r.code !== 0) throw new Error(describeResult(["sluice", "conntrack", "-L", "--socket", socket], r));
  expect(r.err).toMatch(/\d+ flow entries have been shown\.\n$/);
  return r.out;
}

// ─── Tests ────────────────────────────────────────────────────────────────

describe.skipIf(!CAN_RUN_KERNEL_TESTS)("sluice run in the lab", () => {
  describe("Linux without sluice (the oracle)", () => {
    it("delivers the forged out-of-window segment when nothing filters (the forger and tcpdump work)", { timeout: 30_000 }, async () => {
      const l = oracleLab!;
      for (const family of FAMILIES) {
        const held = await holdConnection(l, family);
        try {
          const r = await sendForged(l, family, held);
          expect(r.good, `IPv${family}: in-window segment\n${r.dump}`).toBe(true);
          expect(r.bad, `IPv${family}: out-of-window segment\n${r.dump}`).toBe(true);
        } finally {
          await closeHeld(held);
        }
      }
    });

    it("with conntrack: the exchanges pass, conntrack -L shows Linux's states and flags, out-of-window is INVALID", { timeout: 40_000 }, async () => {
      const l = oracleLab!;
      for (const cmd of ["iptables", "ip6tables"]) {
        l.must("gateway", [cmd, "-w", "5", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"]);
        l.must("gateway", [cmd, "-w", "5", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "NEW,ESTABLISHED,RELATED", "-j", "ACCEPT"]);
      }
      expect(l.must("gateway", ["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_be_liberal"]).trim()).toBe("0");
      expect(l.must("gateway", ["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose"]).trim()).toBe("1");
      const list = (): string => l.must("gateway", ["conntrack", "-L"]);

      await runExchanges(l, () => list());
      const flows = normaliseConntrack(await settledFlows(l, list));
      expectLinuxFlows(l, flows, "(Linux)");
      oracle.flows = flows;

      for (const family of FAMILIES) {
        const cmd = family === 4 ? "iptables" : "ip6tables";
        const dropped = (): number => Number(/^\s*(\d+)\s+\d+\s+DROP/m.exec(l.must("gateway", [cmd, "-w", "5", "-L", "FORWARD", "-v", "-n", "-x"]))?.[1] ?? NaN);
        const held = await holdConnection(l, family);
        try {
          const line = heldLine(list(), held);
          expect(line).toEqual([expect.stringMatching(/^tcp +6 T ESTABLISHED .* \[ASSURED\] mark=0 use=1$/)]);
          oracle.held[family] = line[0];
          const before = dropped();
          const r = await sendForged(l, family, held);
          expect(r.good, `IPv${family}: in-window segment\n${r.dump}`).toBe(true);
          expect(r.bad, `IPv${family}: out-of-window segment passed Linux\n${r.dump}`).toBe(false);
          expect(dropped() - before, `IPv${family}: INVALID drops`).toBe(1);
        } finally {
          await closeHeld(held);
        }
      }
    });
  });

  describe.each(["nfqueue", "tun"] as const)("%s mode", (mode) => {
    it("forwards ping, TCP and UDP over IPv4 and IPv6 and lists the flows as Linux does; SIGTERM leaves nothing", { timeout: 60_000 }, async () => {
      const l = theLab();
      await withDaemon(mode, {}, "SIGTERM", async (d, _spec, files) => {
        await runExchanges(l, () => d.tail());
        const flows = normaliseConntrack(await settledFlows(l, () => sluiceConntrack(files.socket)));
        expectLinuxFlows(l, flows, "(sluice)");
        expect(oracle.flows, "the oracle test did not run or failed").not.toBeNull();
        expect(flows, "sluice conntrack -L vs Linux's conntrack -L (normalised)").toEqual(oracle.flows);
        const stats = sluiceStats(files.socket);
        expect(stats.pipeline.packets).toBeGreaterThan(0);
        expect(stats.pipeline.accepted).toBeGreaterThan(0);
      });
    });

    it("drops an out-of-window TCP segment as INVALID, passes the in-window one; SIGINT leaves nothing", { timeout: 60_000 }, async () => {
      const l = theLab();
      await withDaemon(mode, {}, "SIGINT", async (_d, _spec, files) => {
        for (const family of FAMILIES) {
          const held = await holdConnection(l, family);
          try {
            const line = heldLine(sluiceConntrack(files.socket), held);
            expect(oracle.held[family], "the oracle test did not run or failed").toBeDefined();
            expect(line, "the held connection, as Linux shows it").toEqual([oracle.held[family]]);
            const before = sluiceStats(files.socket).pipeline;
            const r = await sendForged(l, family, held);
            const after = sluiceStats(files.socket).pipeline;
            expect(r.good, `IPv${family}: in-window segment\n${r.dump}`).toBe(true);
            expect(r.bad, `IPv${family}: out-of-window segment reached the server\n${r.dump}`).toBe(false);
            expect(after.invalid! - before.invalid!, `IPv${family}: pipeline.invalid ${JSON.stringify({ before, after })}`).toBe(1);
            expect(after.dropped! - before.dropped!, `IPv${family}: pipeline.dropped`).toBeGreaterThanOrEqual(1);
          } finally {
            await closeHeld(held);
          }
        }
      });
    });
  });

  describe("after SIGKILL", () => {
    it.each([
      { queueBypass: false, signal: "SIGTERM" as const },
      { queueBypass: true, signal: "SIGINT" as const },
    ])(
      "nfqueue, queueBypass $queueBypass: ping follows it; a restart cleans up the stale plumbing; $signal leaves nothing",
      { timeout: 60_000 },
      async ({ queueBypass, signal }) => {
        const l = theLab();
        const { spec, files } = newRun("nfqueue", { queueBypass });
        const before = gatewaySnapshot(l);
        const first = await SluiceDaemon.start(l, files.config, spec.dir);
        let second: SluiceDaemon | null = null;
        try {
          for (const f of FAMILIES) expect(ping(l, f).code, `IPv${f} ping with sluice running\n${first.tail()}`).toBe(0);
          expect(await first.stop("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
          expect(existsSync(files.stateFile), "the state file stays after a crash").toBe(true);
          expect(l.must("gateway", ["iptables-save", "-t", "raw"])).toContain(`sluice:${spec.instance}`);
          for (const f of FAMILIES) {
            const r = ping(l, f, 2, 1);
            expect(r.code, `IPv${f} ping after SIGKILL, queueBypass ${queueBypass}\n${r.out}`).toBe(queueBypass ? 0 : 1);
          }

          second = await SluiceDaemon.start(l, files.config, spec.dir);
          const cleaned = second.find("plumbing: cleaned up after a previous run", true);
          expect(cleaned, `no "cleaned up" line\n${second.tail()}`).toBeDefined();
          expect(Array.isArray(cleaned!.cleaned) && (cleaned!.cleaned as unknown[]).length > 0, JSON.stringify(cleaned)).toBe(true);
          expectPlumbingInstalled(spec, second);
          for (const f of FAMILIES) expect(ping(l, f).code, `IPv${f} ping after the restart\n${second.tail()}`).toBe(0);
        } catch (e) {
          await first.kill();
          await second?.stop("SIGTERM").catch(() => undefined);
          if (e instanceof Error) e.message += `\n${first.tail()}\n${second?.tail() ?? ""}`;
          throw e;
        }
        await expectCleanStop(second, files, before, signal);
      },
    );

    it("tun: a restart cleans up the stale plumbing and works; SIGTERM leaves nothing", { timeout: 60_000 }, async () => {
      const l = theLab();
      const { spec, files } = newRun("tun");
      const before = gatewaySnapshot(l);
      const first = await SluiceDaemon.start(l, files.config, spec.dir);
      let second: SluiceDaemon | null = null;
      try {
        for (const f of FAMILIES) expect(ping(l, f).code, `IPv${f} ping with sluice running\n${first.tail()}`).toBe(0);
        expect(await first.stop("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
        expect(existsSync(files.stateFile), "the state file stays after a crash").toBe(true);
        expect(l.must("gateway", ["ip", "rule", "show"])).toContain(`lookup ${spec.tunTable}`);
        // The device died with the process and its route with it; the
        // blackhole fallback in the table keeps the gateway closed (without
        // it the rules would fall through to `main`: measured, ping passed).
        for (const f of FAMILIES) expect(ping(l, f).code, `IPv${f} ping after SIGKILL in TUN mode must fail (fail closed)`).toBe(1);

        second = await SluiceDaemon.start(l, files.config, spec.dir);
        const cleaned = second.find("plumbing: cleaned up after a previous run", true);
        expect(cleaned, `no "cleaned up" line\n${second.tail()}`).toBeDefined();
        expect(Array.isArray(cleaned!.cleaned) && (cleaned!.cleaned as unknown[]).length > 0, JSON.stringify(cleaned)).toBe(true);
        expectPlumbingInstalled(spec, second);
        for (const f of FAMILIES) expect(ping(l, f).code, `IPv${f} ping after the restart\n${second.tail()}`).toBe(0);
      } catch (e) {
        await first.kill();
        await second?.stop("SIGTERM").catch(() => undefined);
        if (e instanceof Error) e.message += `\n${first.tail()}\n${second?.tail() ?? ""}`;
        throw e;
      }
      await expectCleanStop(second, files, before, "SIGTERM");
    });
  });

  it("lab.sh down leaves none of the labs' namespaces", { timeout: 60_000 }, async () => {
    await killDaemons();
    await killAll();
    for (const l of [theLab(), oracleLab!]) {
      const r = l.down();
      expect(r.code, describeResult(["lab.sh", "down", l.name], r)).toBe(0);
      expect(l.namespaces()).toEqual([]);
    }
  });
});
