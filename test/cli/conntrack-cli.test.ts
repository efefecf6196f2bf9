/**
 * `sluice conntrack` and `sluice stats`: the option parser, the commands
 * run in process against an in-process control server (a real Conntrack fed
 * real packets), and the built CLI spawned against that same server.
 *
 * The spawned CLI comes from a private build of src/cli/main.ts's import
 * graph (TypeScript's transpileModule into a temp dir): it never touches
 * dist/, and takes well under a second where a full `tsc` takes ten.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { conntrackMain, parseConntrackArgs, SUMMARY_PREFIX, type CliIo } from "../../src/cli/conntrack.js";
import { renderStats, statsMain } from "../../src/cli/stats.js";
import { resolveConntrackConfig } from "../../src/conntrack/config.js";
import { CTINFO } from "../../src/conntrack/constants.js";
import { formatConntrackLine } from "../../src/conntrack/format.js";
import { ConnSnapshot } from "../../src/conntrack/snapshot.js";
import { Conntrack } from "../../src/conntrack/tracker.js";
import { ControlServer } from "../../src/control/server.js";
import { ERR, SluiceError } from "../../src/errors.js";
import { Packet } from "../../src/packet/packet.js";
import { ipv4Tcp, ipv4Udp, ipv6Udp } from "../helpers/packets.js";

const ROOT = resolve(__dirname, "../..");
const T0 = 1_000_000;

/** Transpiles main.ts and everything it imports into `outDir`; returns the entry point. */
function privateBuild(outDir: string): string {
  const seen = new Set<string>();
  const stack = [join(ROOT, "src/cli/main.ts")];
  while (stack.length > 0) {
    const file = stack.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, "utf8");
    const js = ts.transpileModule(src, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const out = join(outDir, relative(ROOT, file)).replace(/\.ts$/, ".js");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, js);
    for (const m of src.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)\.js"/g)) stack.push(resolve(dirname(file), `${m[1]}.ts`));
  }
  writeFileSync(join(outDir, "package.json"), `{"type":"module"}\n`);
  symlinkSync(join(ROOT, "node_modules"), join(outDir, "node_modules")); // for the daemon's packages
  return join(outDir, "src/cli/main.js");
}

let buildDir = "";
let CLI = "";
beforeAll(() => {
  buildDir = mkdtempSync(join(tmpdir(), "sluice-cli-build-"));
  CLI = privateBuild(buildDir);
});
afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

/** Runs the built CLI without blocking the event loop (the server under test lives in it). */
function sluice(args: string[], opts: { onStdout?: (s: string) => void; started?: (kill: () => void) => void } = {}):
  Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT });
    let out = "", err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => { out += d; opts.onStdout?.(out); });
    child.stderr.setEncoding("utf8").on("data", (d: string) => { err += d; });
    opts.started?.(() => child.kill("SIGINT"));
    child.on("close", (code, signal) => resolvePromise({ code, signal, out, err }));
  });
}

/** A tracker with a TCP, a one-way UDP and an IPv6 UDP connection, and a manual clock. */
class Rig {
  readonly ct = new Conntrack(resolveConntrackConfig({ max: 1024 }));
  private readonly p = new Packet();
  now = T0;

  send(pkt: Uint8Array): void {
    const st = this.p.parse(pkt, 0, pkt.length);
    if (this.ct.process(this.p, st, this.now, 0) === CTINFO.INVALID) this.ct.abort();
    else this.ct.confirm(this.now);
  }

  populate(): this {
    const c = { src: "10.0.0.1", dst: "203.0.113.5", sport: 40001, dport: 80 };
    const s = { src: "203.0.113.5", dst: "10.0.0.1", sport: 80, dport: 40001 };
    this.send(ipv4Tcp({ ...c, seq: 100, flags: "S" }));
    this.send(ipv4Tcp({ ...s, seq: 500, ack: 101, flags: "SA" }));
    this.send(ipv4Tcp({ ...c, seq: 101, ack: 501, flags: "A" }));
    this.send(ipv4Udp({ src: "10.0.0.2", dst: "203.0.113.9", sport: 5353, dport: 53 }));
    this.send(ipv6Udp({ src: "2001:db8::1", dst: "2001:db8:1::2", sport: 40000, dport: 53 }));
    return this;
  }

  lines(extended = false): string[] {
    const out: string[] = [];
    const s = new ConnSnapshot();
    this.ct.forEachEntry((i) => {
      this.ct.snapshot(i, this.now, s);
      out.push(formatConntrackLine(s, false, extended));
    });
    return out;
  }
}

/** Captured output of an in-process run. */
function capture(signal?: AbortSignal): CliIo & { out: string; err: string } {
  const io = { out: "", err: "", stdout(s: string) { io.out += s; }, stderr(s: string) { io.err += s; }, signal };
  return io;
}

describe("parseConntrackArgs", () => {
  it("reads conntrack's spellings", () => {
    expect(parseConntrackArgs(["-L"])).toMatchObject({ command: "L", filter: {}, filtered: false, socket: "/run/sluice/sluice.sock" });
    expect(parseConntrackArgs(["-L", "conntrack", "-ptcp", "--dport=80", "-s", "10.0.0.0/8", "-o", "extended", "--socket", "/tmp/x"]))
      .toMatchObject({ command: "L", filter: { proto: 6, origDport: 80, origSrc: "10.0.0.0/8" }, extended: true, socket: "/tmp/x" });
    expect(parseConntrackArgs(["--event", "-e", "NEW,DESTROY", "-o", "timestamp,extended"]))
      .toMatchObject({ command: "E", events: ["NEW", "DESTROY"], timestamp: true, extended: true });
    expect(parseConntrackArgs(["-F", "-f", "ipv6"])).toMatchObject({ command: "F", filter: { family: "ipv6" } });
    expect(parseConntrackArgs(["-D", "-u", "UNREPLIED"])).toMatchObject({ command: "D", filter: { status: ["UNREPLIED"] } });
  });

  it("refuses what conntrack has and sluice has not, and bad combinations, saying why", () => {
    const cases: [string[], RegExp][] = [
      [["-L", "-z"], /-z is not supported by sluice \(counters cannot be zeroed\)/],
      [["-G", "-s", "1.2.3.4"], /-G is not supported by sluice \(use -L with filters\)/],
      [["-S"], /use `sluice stats`/],
      [["-L", "-w", "1"], /no conntrack zones/],
      [["-L", "-n"], /NAT filters are not implemented yet/],
      [["-E", "-b", "1000000"], /bounds each subscriber's queue/],
      [["-L", "-o", "xml"], /-o xml is not supported by sluice/],
      [["-L", "-o", "fancy"], /unknown output format "fancy"/],
      [["-L", "expect"], /the expect table is not supported/],
      [["-L", "-E"], /only one command at a time/],
      [["-D"], /you need to supply parameters to `-D'/],
      [["-F", "-p", "tcp"], /-F takes no filter other than -f/],
      [["-C", "-s", "1.2.3.4"], /-C takes no filter/],
      [["-L", "-e", "NEW"], /-e\/--event-mask is for -E only/],
      [["-E", "-e", "SOME"], /unknown event "SOME"/],
      [["-L", "--dport", "80"], /needs -p tcp or -p udp/],
      [["-L", "-s", "300.1.1.1"], /invalid IP address "300\.1\.1\.1"/],
      [["-L", "-s", "1.2.3.4", "-s", "1.2.3.5"], /given more than once/],
      [["-L", "--frobnicate"], /unknown option "--frobnicate"/],
      [["-L", "-s"], /-s needs a value/],
      [[], /no command given/],
    ];
    for (const [argv, re] of cases) {
      let err: unknown = null;
      try { parseConntrackArgs(argv); } catch (e) { err = e; }
      expect({ argv, err: err instanceof SluiceError ? err.message : String(err) }).toEqual({ argv, err: expect.stringMatching(re) });
      expect((err as SluiceError).code).toBe(ERR.USAGE);
    }
  });
});

describe("against a running daemon", () => {
  let dir = "";
  let path = "";
  let rig: Rig;
  let server: ControlServer;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "sluice-cli-"));
    path = join(dir, "sluice.sock");
    rig = new Rig().populate();
    server = await ControlServer.listen({
      path, ct: rig.ct, now: () => rig.now, wallClock: () => 1_700_000_000_000,
      stats: () => ({ uptimeMs: 3_723_000, table: { count: 3, max: 1024 }, queues: [{ queue: 0, received: 5, verdicts: 5, dropped: 0, enobufs: 1, batches: 2, batchMax: 4, batchAvg: 2.5 }], pipeline: { packets: 5, accepted: 5 } }),
      limits: { pumpIntervalMs: 10 },
    });
  });
  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("-L prints the table like conntrack -L, the summary on stderr", async () => {
    const io = capture();
    expect(await conntrackMain(["-L", "--socket", path], io)).toBe(0);
    expect(io.out).toBe(`${rig.lines().join("\n")}\n`);
    expect(io.err).toBe(`${SUMMARY_PREFIX}3 flow entries have been shown.\n`);
    const io2 = capture();
    await conntrackMain(["-L", "-p", "udp", "-o", "extended", "--socket", path], io2);
    expect(io2.out).toBe(`${rig.lines(true).filter((l) => / udp /.test(l)).join("\n")}\n`);
    expect(io2.err).toBe(`${SUMMARY_PREFIX}2 flow entries have been shown.\n`);
  });

  it("-D prints what it deleted; nothing deleted is exit 1, as conntrack", async () => {
    const tcp = rig.lines()[0];
    const io = capture();
    expect(await conntrackMain(["-D", "-p", "tcp", "-s", "203.0.113.5", "--sport", "80", "--socket", path], io)).toBe(0);
    expect(io.out).toBe(`${tcp}\n`);
    expect(io.err).toBe(`${SUMMARY_PREFIX}1 flow entries have been deleted.\n`);
    const io2 = capture();
    expect(await conntrackMain(["-D", "-p", "tcp", "--socket", path], io2)).toBe(1);
    expect(io2.out).toBe("");
    expect(io2.err).toBe(`${SUMMARY_PREFIX}0 flow entries have been deleted.\n`);
  });

  it("-C counts, -F empties", async () => {
    const io = capture();
    await conntrackMain(["-C", "--socket", path], io);
    expect(io.out).toBe("3\n");
    const io2 = capture();
    expect(await conntrackMain(["-F", "--socket", path], io2)).toBe(0);
    expect(io2.err).toBe(`${SUMMARY_PREFIX}connection tracking table has been emptied.\n`);
    expect(rig.lines()).toEqual([]);
  });

  it("-E streams events until stopped", async () => {
    const ac = new AbortController();
    const io = capture(ac.signal);
    const run = conntrackMain(["-E", "-o", "timestamp", "--socket", path], io);
    while (server.stats.subscribers === 0) await new Promise((r) => setTimeout(r, 5));
    rig.send(ipv4Udp({ src: "10.0.0.7", dst: "203.0.113.9", sport: 7, dport: 53 }));
    server.pump();
    while (!io.out.includes("\n")) await new Promise((r) => setTimeout(r, 5));
    ac.abort();
    expect(await run).toBe(0);
    expect(io.out).toMatch(/^\[1700000000\.000000\]\t {4}\[NEW\] udp {6}17 30 src=10\.0\.0\.7 dst=203\.0\.113\.9 sport=7 dport=53 \[UNREPLIED\] src=203\.0\.113\.9 dst=10\.0\.0\.7 sport=53 dport=7\n$/);
    expect(io.err).toBe(`${SUMMARY_PREFIX}1 flow events have been shown.\n`);
  });

  it("stats prints a table, or the daemon's JSON", async () => {
    const io = capture();
    await statsMain(["--socket", path], io);
    expect(io.out).toContain("uptime  1h 02m 03s\ntable   3 / 1024 entries (0.3%)\n");
    expect(io.out).toContain("\nqueues\n  queue  received  verdicts  dropped  enobufs  batches  batchMax  batchAvg\n      0         5         5        0        1        2         4       2.5\n");
    expect(io.out).toContain("\npipeline\n  packets   5\n  accepted  5\n");
    expect(io.out).toMatch(/\ncontrol\n {2}clients +1\n/);
    const io2 = capture();
    await statsMain(["--json", `--socket=${path}`], io2);
    expect(JSON.parse(io2.out)).toMatchObject({ table: { count: 3, max: 1024 }, control: { requests: 2 } });
    expect(renderStats({ queues: [] })).toBe("queues\n  (none)\n");
  });

  it("says plainly when no daemon runs, or when it may not talk to it", async () => {
    const missing = join(dir, "nope.sock");
    await expect(conntrackMain(["-L", "--socket", missing], capture()))
      .rejects.toMatchObject({ code: ERR.CONTROL_NOT_RUNNING, message: `sluice is not running (no socket at ${missing})` });
    await expect(statsMain(["--socket", missing], capture())).rejects.toThrow(`sluice is not running (no socket at ${missing})`);
  });

  it.skipIf(process.getuid?.() !== 0 || !existsSync("/usr/bin/setpriv"))("reports permission denied on the 0600 socket to another user", async () => {
    // Root connects whatever the mode: run the built CLI as nobody instead.
    chmodSync(dir, 0o755);
    chmodSync(buildDir, 0o755);
    const r = await new Promise<{ code: number | null; err: string }>((done) => {
      const child = spawn("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, CLI, "conntrack", "-L", "--socket", path]);
      let err = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => { err += d; });
      child.on("close", (code) => done({ code, err }));
    });
    expect(r).toEqual({ code: 1, err: `sluice: permission denied on ${path}: the control socket is owner-only (mode 0600); run this as the user sluice runs as (usually root, e.g. with sudo)\n` });
  });

  it("the built CLI: -L, -E until SIGINT, errors and exit codes", async () => {
    const l = await sluice(["conntrack", "-L", "--socket", path]);
    expect(l).toMatchObject({ code: 0, out: `${rig.lines().join("\n")}\n`, err: `${SUMMARY_PREFIX}3 flow entries have been shown.\n` });

    let kill = (): void => {};
    let sawLine = false;
    const e = sluice(["conntrack", "-E", "--socket", path], {
      started: (k) => { kill = k; },
      onStdout: (out) => { if (!sawLine && out.includes("\n")) { sawLine = true; kill(); } },
    });
    const deadline = Date.now() + 5000;
    while (server.stats.subscribers === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    rig.send(ipv4Udp({ src: "10.0.0.8", dst: "203.0.113.9", sport: 8, dport: 53 }));
    server.pump();
    const ev = await e;
    expect(ev.code).toBe(0);
    expect(ev.out).toMatch(/^ {4}\[NEW\] udp {6}17 30 src=10\.0\.0\.8 /);
    expect(ev.err).toBe(`${SUMMARY_PREFIX}1 flow events have been shown.\n`);

    const gone = await sluice(["conntrack", "-L", "--socket", join(dir, "nope.sock")]);
    expect(gone).toMatchObject({ code: 1, out: "", err: `sluice: sluice is not running (no socket at ${join(dir, "nope.sock")})\n` });
    const bad = await sluice(["conntrack", "-L", "-z", "--socket", path]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^sluice: conntrack: -z is not supported by sluice/);
    const st = await sluice(["stats", "--socket", path]);
    expect(st.code).toBe(0);
    expect(st.out).toMatch(/^uptime {2}1h 02m 03s\n/);
  }, 15_000);
});
