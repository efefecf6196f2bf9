/**
 * The control socket, in process: a real ControlServer on a socket in a
 * temp dir, serving a real Conntrack fed with real packets (built with
 * test/helpers/packets.ts, parsed with Packet, processed and confirmed the
 * way the pipeline does). The oracle for lines is format.ts applied to the
 * tracker's own snapshots, and for events a twin tracker fed the same
 * packets whose ring nobody else drains.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveConntrackConfig } from "../../src/conntrack/config.js";
import { CTINFO, EVENT } from "../../src/conntrack/constants.js";
import { formatConntrackLine, formatEventLine } from "../../src/conntrack/format.js";
import { ConnSnapshot } from "../../src/conntrack/snapshot.js";
import { Conntrack } from "../../src/conntrack/tracker.js";
import { ControlClient, controlRequest } from "../../src/control/client.js";
import { CtFilter, parseAddress, setFilterOption, type FilterSpec } from "../../src/control/filter.js";
import { OP, type Frame, type Request } from "../../src/control/protocol.js";
import { ControlServer } from "../../src/control/server.js";
import { ERR, SluiceError } from "../../src/errors.js";
import { Packet } from "../../src/packet/packet.js";
import { ipv4Icmp, ipv4Tcp, ipv4Udp, ipv6Udp } from "../helpers/packets.js";

const T0 = 1_000_000;
/** Wall-clock time at T0, for -o timestamp. */
const WALL0 = 1_700_000_000_000;

/** A tracker and its twin, fed the same packets; a manual clock. */
class Rig {
  readonly ct: Conntrack;
  readonly twin: Conntrack;
  private readonly p = new Packet();
  now = T0;

  constructor() {
    const cfg = resolveConntrackConfig({ max: 16384, eventRing: 4096 });
    this.ct = new Conntrack(cfg);
    this.twin = new Conntrack(cfg);
  }

  /** One packet through parse + process, then "drop INVALID, accept the rest", on both trackers. */
  send(pkt: Uint8Array): void {
    for (const ct of [this.ct, this.twin]) {
      const st = this.p.parse(pkt, 0, pkt.length);
      if (ct.process(this.p, st, this.now, 0) === CTINFO.INVALID) ct.abort();
      else expect(ct.confirm(this.now)).toBe(true);
    }
  }

  /** A TCP handshake client:sport -> server:80, ESTABLISHED and ASSURED. */
  tcp(client: string, server: string, sport: number): void {
    const c = { src: client, dst: server, sport, dport: 80 };
    const s = { src: server, dst: client, sport: 80, dport: sport };
    this.send(ipv4Tcp({ ...c, seq: 100, flags: "S", options: { mss: 1460 } }));
    this.send(ipv4Tcp({ ...s, seq: 500, ack: 101, flags: "SA", options: { mss: 1460 } }));
    this.send(ipv4Tcp({ ...c, seq: 101, ack: 501, flags: "A" }));
  }

  /** `conntrack -L` lines of the live table, in the tracker's order. */
  lines(extended = false): string[] {
    const out: string[] = [];
    const s = new ConnSnapshot();
    this.ct.forEachEntry((i) => {
      this.ct.snapshot(i, this.now, s);
      out.push(formatConntrackLine(s, this.ct.cfg.acct, extended));
    });
    return out;
  }

  /** The twin's events as `conntrack -E` prints them (optionally -o timestamp,extended with the wall clock). */
  twinEvents(timestamp = false, extended = false, types = 7): string[] {
    const out: string[] = [];
    const s = new ConnSnapshot();
    while (this.twin.events.shift(s)) {
      if ((types & (1 << s.event)) === 0) continue;
      s.time += WALL0 - T0;
      out.push(formatEventLine(s, this.twin.cfg.acct, timestamp, extended));
    }
    return out;
  }
}

/** The four kinds of entry every test starts with. */
function populate(r: Rig): void {
  r.tcp("10.0.0.1", "203.0.113.5", 40001);
  r.send(ipv4Udp({ src: "10.0.0.2", dst: "203.0.113.9", sport: 5353, dport: 53, payload: "q" })); // UNREPLIED
  r.send(ipv4Icmp({ src: "10.0.0.1", dst: "203.0.113.5", id: 7, seq: 1 }));
  r.send(ipv6Udp({ src: "2001:db8::1", dst: "2001:db8:1::2", sport: 40000, dport: 53, payload: "q" }));
  r.send(ipv6Udp({ src: "2001:db8:1::2", dst: "2001:db8::1", sport: 53, dport: 40000, payload: "a" }));
  r.twin.events.head = r.twin.events.tail; // the twin's events start with the test
}

/** Polls until `cond` holds (or fails after `ms`). */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A raw NDJSON connection, to test the wire format itself. */
class Raw {
  readonly frames: Frame[] = [];
  private buf = "";
  constructor(readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (c: string) => {
      this.buf += c;
      let nl;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        this.frames.push(JSON.parse(this.buf.slice(0, nl)) as Frame);
        this.buf = this.buf.slice(nl + 1);
      }
    });
  }
  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      s.once("connect", () => resolve(new Raw(s)));
      s.once("error", reject);
    });
  }
  /** Sends a line and waits for the next frame with `ok`. */
  async ask(line: string): Promise<Frame> {
    const from = this.frames.length;
    this.sock.write(`${line}\n`);
    await until(() => this.frames.slice(from).some((f) => f.ok !== undefined));
    return this.frames.slice(from).find((f) => f.ok !== undefined) as Frame;
  }
}

let dir = "";
let path = "";
let rig: Rig;
let server: ControlServer;
const extraServers: ControlServer[] = [];

async function listen(limits = {}): Promise<ControlServer> {
  return ControlServer.listen({
    path,
    ct: rig.ct,
    now: () => rig.now,
    wallClock: () => WALL0 + (rig.now - T0),
    stats: () => ({ uptimeMs: 1234, table: { count: 4, max: 16384 }, queues: [{ queue: 0, received: 9, verdicts: 9, dropped: 0, enobufs: 0, batches: 3, batchMax: 4, batchAvg: 3 }] }),
    limits: { pumpIntervalMs: 20, ...limits },
  });
}

/** Lines and count of a list (or delete) answer. */
async function run(req: Request): Promise<{ lines: string[]; count: number }> {
  const lines: string[] = [];
  const f = await controlRequest(path, req, (l) => lines.push(...l));
  return { lines, count: f.count ?? -1 };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-control-"));
  path = join(dir, "run", "sluice.sock");
  rig = new Rig();
  populate(rig);
  server = await listen();
});

afterEach(async () => {
  await server.close();
  for (const s of extraServers.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the socket", () => {
  it("is created 0600 in a 0700 directory it made, and removed on close", async () => {
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "run")).mode & 0o777).toBe(0o700);
    await server.close();
    expect(existsSync(path)).toBe(false);
  });

  it("refuses a second server while the first answers", async () => {
    await expect(listen()).rejects.toThrow(`another sluice is running (socket ${path} answers)`);
    await expect(listen()).rejects.toMatchObject({ code: ERR.CONTROL_IN_USE });
    expect(statSync(path).isSocket()).toBe(true); // the live one is untouched
    expect((await run({ op: OP.COUNT })).count).toBe(4);
  });

  it("replaces the stale socket of a daemon that died", async () => {
    await server.close();
    // A process that binds the path and dies by SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, ["-e",
      `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`]);
    await new Promise((r) => child.once("exit", r));
    expect(statSync(path).isSocket()).toBe(true);
    server = await listen();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await run({ op: OP.COUNT })).count).toBe(4);
  });

  it("refuses a path that is not a socket", async () => {
    const other = join(dir, "file.sock");
    writeFileSync(other, "keep me");
    await expect(ControlServer.listen({ path: other, ct: rig.ct, now: () => rig.now, stats: () => ({}) }))
      .rejects.toThrow(/exists and is not a socket/);
    expect(statSync(other).isFile()).toBe(true);
  });

  it("refuses clients beyond maxClients, and bad requests without dropping the connection", async () => {
    await server.close();
    server = await listen({ maxClients: 1 });
    const a = await Raw.open(path);
    const b = await Raw.open(path);
    await until(() => b.frames.length > 0);
    expect(b.frames[0]).toMatchObject({ ok: false, error: { code: ERR.CONTROL_PROTOCOL, message: "too many control clients (1)" } });
    expect(server.stats.refused).toBe(1);
    expect(await a.ask("not json")).toMatchObject({ ok: false, error: { code: ERR.CONTROL_PROTOCOL } });
    expect(await a.ask(`{"op":"nope"}`)).toMatchObject({ ok: false, error: { message: expect.stringContaining("unknown op") } });
    expect(await a.ask(`{"op":"conntrack.list","bogus":1}`)).toMatchObject({ ok: false, error: { message: `conntrack.list: unknown field "bogus"` } });
    expect(await a.ask(`{"op":"conntrack.count"}`)).toEqual({ ok: true, count: 4 });
    a.sock.destroy();
    b.sock.destroy();
  });
});

describe("conntrack.list", () => {
  it("gives every entry as conntrack -L prints it", async () => {
    const all = rig.lines();
    expect(all).toHaveLength(4);
    expect(await run({ op: OP.LIST })).toEqual({ lines: all, count: 4 });
    expect((await run({ op: OP.LIST, extended: true })).lines).toEqual(rig.lines(true));
    expect(all[0]).toMatch(/^tcp {6}6 \d+ ESTABLISHED src=10\.0\.0\.1 dst=203\.0\.113\.5 sport=40001 dport=80 src=203\.0\.113\.5 dst=10\.0\.0\.1 sport=80 dport=40001 \[ASSURED\] mark=0 use=1$/);
  });

  it("filters like conntrack-tools", async () => {
    const all = rig.lines();
    const has = (re: RegExp): string[] => all.filter((l) => re.test(l));
    const cases: [FilterSpec, string[]][] = [
      [{ proto: 6 }, has(/^tcp /)],
      [{ proto: 17 }, has(/^udp /)],
      [{ origSrc: "10.0.0.1" }, has(/^\S+ +\d+ \d+ (\w+ )?src=10\.0\.0\.1 /)],
      [{ origSrc: "10.0.0.0/24" }, has(/^\S+ +\d+ \d+ (\w+ )?src=10\.0\.0\./)],
      [{ origSrc: "10.0.0.0/24", origDst: "203.0.113.9" }, has(/dst=203\.0\.113\.9 sport=5353/)],
      [{ replySrc: "203.0.113.5" }, has(/\] src=203\.0\.113\.5|dport=\d+ src=203\.0\.113\.5|id=7 src=203\.0\.113\.5/)],
      [{ replyDst: "10.0.0.2" }, has(/sport=5353/)],
      [{ family: "ipv6" }, has(/2001:db8/)],
      [{ origDst: "2001:db8:1::/48" }, has(/2001:db8/)],
      [{ family: "ipv4" }, has(/^(?!.*2001:db8)/)],
      [{ status: ["UNREPLIED"] }, has(/\[UNREPLIED\]/)],
      [{ status: ["SEEN_REPLY"] }, has(/^(?!.*UNREPLIED)/)],
      [{ status: ["ASSURED"] }, has(/\[ASSURED\]/)],
      [{ proto: 6, state: ["ESTABLISHED"] }, has(/ESTABLISHED/)],
      [{ proto: 6, state: ["SYN_SENT", "TIME_WAIT"] }, []],
      [{ proto: 17, origDport: 53 }, has(/^udp .* dport=53 /)],
      [{ proto: 17, origSport: 5353, replySport: 53 }, has(/sport=5353/)],
      [{ proto: 1, icmpType: 8, icmpId: 7 }, has(/^icmp /)],
      [{ proto: 1, icmpType: 0 }, []],
      [{ mark: "0" }, all],
      [{ mark: "1" }, []],
      [{ mark: "0x10/0xf0" }, []],
    ];
    for (const [filter, want] of cases) {
      const got = await run({ op: OP.LIST, filter: filter as Record<string, unknown> });
      expect({ filter, lines: got.lines }).toEqual({ filter, lines: want });
      expect(got.count).toBe(want.length);
    }
  });

  it("refuses what it cannot filter on, with the option's name", async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ origSrc: "10.0.0.300" }, /^-s\/--orig-src: invalid IP address "10\.0\.0\.300"$/],
      [{ origSrc: "10.0.0.1", origDst: "2001:db8::1" }, /mismatched address family/],
      [{ family: "ipv4", origSrc: "2001:db8::1" }, /mismatched address family/],
      [{ origDport: 80 }, /--dport\/--orig-port-dst: needs -p tcp or -p udp/],
      [{ proto: 1, origDport: 80 }, /needs -p tcp or -p udp/],
      [{ state: ["ESTABLISHED"] }, /--state: needs -p tcp/],
      [{ proto: 6, state: ["BOGUS"] }, /unknown TCP state "BOGUS"/],
      [{ status: ["SHINY"] }, /unknown status "SHINY"/],
      [{ status: ["SEEN_REPLY", "UNREPLIED"] }, /contradict/],
      [{ mark: "1/2/3" }, /MARK\[\/MASK\]/],
      [{ zone: 1 }, /unknown field "zone"/],
      [{ maskSrc: "255.255.255.0" }, /--mask-src: needs -s/],
    ];
    for (const [filter, re] of bad) {
      const err = await controlRequest(path, { op: OP.LIST, filter }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(SluiceError);
      expect((err as SluiceError).code).toBe(ERR.USAGE);
      expect((err as SluiceError).message).toMatch(re);
    }
  });

  it("streams a large table in chunks while the event loop keeps turning", async () => {
    await server.close();
    server = await listen({ listChunk: 64 });
    for (let k = 0; k < 1000; k++) rig.send(ipv4Udp({ src: "10.1.0.1", dst: "203.0.113.1", sport: 10000 + k, dport: 53 }));
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    const frames: number[] = [];
    const f = await controlRequest(path, { op: OP.LIST, filter: { origDst: "203.0.113.1" } }, (l) => frames.push(l.length));
    clearInterval(ticker);
    expect(f.count).toBe(1000);
    expect(frames.length).toBeGreaterThanOrEqual(1000 / 64);
    expect(Math.max(...frames)).toBeLessThanOrEqual(64);
    expect(turns).toBeGreaterThan(0);
  });
});

describe("conntrack.events", () => {
  it("is disabled in the tracker unless someone subscribes", async () => {
    expect(rig.ct.events.enabled).toBe(false);
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS }, () => {}, () => {});
    expect(rig.ct.events.enabled).toBe(true);
    expect(server.stats.subscribers).toBe(1);
    c.close();
    await until(() => server.stats.subscribers === 0);
    expect(rig.ct.events.enabled).toBe(false);
  });

  it("sends every event to each subscriber, in its own format", async () => {
    const a: string[] = [], b: string[] = [];
    const ca = await ControlClient.connect(path), cb = await ControlClient.connect(path);
    await ca.subscribe({ op: OP.EVENTS }, (l) => a.push(...l), () => {});
    await cb.subscribe({ op: OP.EVENTS, timestamp: true, extended: true, events: ["NEW", "DESTROY"] }, (l) => b.push(...l), () => {});
    rig.tcp("10.0.0.3", "203.0.113.5", 40003);
    server.pump(); // the daemon calls this after a batch
    rig.now += 1500;
    rig.send(ipv4Udp({ src: "10.0.0.3", dst: "203.0.113.9", sport: 1111, dport: 53 }));
    server.pump();
    const plain = rig.twinEvents();
    expect(plain).toHaveLength(4); // NEW, UPDATE (SYN_RECV), UPDATE (ESTABLISHED, ASSURED), NEW
    await until(() => a.length === 4 && b.length === 2);
    expect(a).toEqual(plain);
    expect(a[0]).toMatch(/^ {4}\[NEW\] tcp {6}6 120 SYN_SENT src=10\.0\.0\.3 dst=203\.0\.113\.5 sport=40003 dport=80 \[UNREPLIED\] src=203\.0\.113\.5/);
    expect(b[0]).toBe(`[${((WALL0 + 0) / 1000).toFixed(6)}]\t${a[0].replace("[NEW] ", "[NEW] ipv4     2 ")}`);
    expect(b[1].startsWith(`[${((WALL0 + 1500) / 1000).toFixed(6)}]\t    [NEW] ipv4     2 udp `)).toBe(true);
    expect(server.stats.eventsSent).toBe(6);
    ca.close();
    cb.close();
  });

  it("is pumped by a timer when no batch comes", async () => {
    const a: string[] = [];
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS }, (l) => a.push(...l), () => {});
    rig.send(ipv4Icmp({ src: "10.0.0.9", dst: "203.0.113.5", id: 9, seq: 1 }));
    await until(() => a.length === 1); // pumpIntervalMs is 20 here
    expect(a[0]).toMatch(/^ {4}\[NEW\] icmp {5}1 30 src=10\.0\.0\.9 /);
    c.close();
  });

  it("filters events like conntrack -E with filters", async () => {
    const a: string[] = [];
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS, filter: { proto: 17, origDport: 53 } }, (l) => a.push(...l), () => {});
    rig.tcp("10.0.0.3", "203.0.113.5", 40003);
    rig.send(ipv4Udp({ src: "10.0.0.3", dst: "203.0.113.9", sport: 1111, dport: 53 }));
    rig.send(ipv4Udp({ src: "10.0.0.3", dst: "203.0.113.9", sport: 1112, dport: 54 }));
    server.pump();
    await until(() => a.length >= 1);
    await new Promise((r) => setTimeout(r, 30));
    expect(a).toHaveLength(1);
    expect(a[0]).toMatch(/sport=1111 dport=53/);
    c.close();
  });

  it("drops and counts events for a subscriber that stops reading, without blocking anyone", async () => {
    await server.close();
    server = await listen({ subscriberQueueBytes: 16384, pumpIntervalMs: 10_000 });
    const slow = await Raw.open(path);
    expect(await slow.ask(`{"op":"conntrack.events"}`)).toEqual({ ok: true, subscribed: true });
    slow.sock.pause(); // reads nothing from now on: the kernel buffer fills, then Node's
    const fast: string[] = [];
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS }, (l) => fast.push(...l), () => {});
    // Batches of 200 packets, each creating a connection; the fast reader keeps up between batches.
    const ROUNDS = 40, PER = 200;
    let worst = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < PER; k++) rig.send(ipv4Udp({ src: "10.2.0.1", dst: "203.0.113.2", sport: 1 + r * PER + k, dport: 53 }));
      const t = performance.now();
      server.pump();
      worst = Math.max(worst, performance.now() - t);
      await until(() => fast.length === (r + 1) * PER);
    }
    const total = ROUNDS * PER;
    expect(worst).toBeLessThan(500);
    const st = server.stats;
    expect(st.eventsDropped).toBeGreaterThan(0);
    expect(st.eventsSent + st.eventsDropped).toBe(2 * total);
    expect(st.ringLost).toBe(0);
    expect(st.queuePeakBytes).toBeGreaterThan(0);
    expect(st.queuePeakBytes).toBeLessThanOrEqual(16384 + 64); // the bound, plus one frame's JSON wrapping
    // Reading again: what was queued arrives, then the count of what was lost.
    slow.sock.resume();
    const slowLines = (): number => slow.frames.reduce((n, f) => n + (f.lines?.length ?? 0), 0);
    await until(() => slowLines() === st.eventsSent - total);
    server.pump();
    const lastDropped = (): number | undefined => slow.frames.filter((f) => f.dropped !== undefined).at(-1)?.dropped;
    await until(() => lastDropped() === st.eventsDropped);
    const reports = slow.frames.filter((f) => f.dropped !== undefined).map((f) => f.dropped as number);
    expect(reports).toEqual([...reports].sort((x, y) => x - y)); // a running total
    c.close();
    slow.sock.destroy();
  }, 10_000);

  it("counts events lost in the ring and tells every subscriber", async () => {
    const drops: number[] = [];
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS }, () => {}, (n) => drops.push(n));
    for (let k = 0; k < 4096 + 10; k++) rig.send(ipv4Udp({ src: "10.3.0.1", dst: "203.0.113.3", sport: 1 + k, dport: 53 }));
    server.pump();
    await until(() => drops.length > 0);
    expect(drops[0]).toBe(10);
    expect(server.stats.ringLost).toBe(10);
    c.close();
  });
});

describe("conntrack.delete and conntrack.flush", () => {
  it("deletes by tuple given from either side, with a DESTROY event", async () => {
    const ev: string[] = [];
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS }, (l) => ev.push(...l), () => {});
    const before = rig.lines();
    const tcpLine = before[0];
    // The reply direction's tuple, given as -s/-d/--sport/--dport, as the kernel's lookup finds it.
    const r = await run({ op: OP.DELETE, filter: { origSrc: "203.0.113.5", origDst: "10.0.0.1", proto: 6, origSport: 80, origDport: 40001 } });
    expect(r).toEqual({ lines: [tcpLine], count: 1 });
    expect(rig.lines()).toEqual(before.slice(1));
    await until(() => ev.length === 1);
    expect(ev[0]).toMatch(/^\[DESTROY\] tcp {6}6 \d+ ESTABLISHED src=10\.0\.0\.1 dst=203\.0\.113\.5 sport=40001 dport=80 src=203\.0\.113\.5/);
    // The original direction, partially given.
    expect(await run({ op: OP.DELETE, filter: { proto: 17, origSport: 5353 } })).toMatchObject({ count: 1 });
    expect(await run({ op: OP.DELETE, filter: { origSrc: "192.0.2.1" } })).toEqual({ lines: [], count: 0 });
    await expect(run({ op: OP.DELETE, filter: {} })).rejects.toThrow(/needs at least one filter/);
    await expect(run({ op: OP.DELETE })).rejects.toThrow(/needs at least one filter/);
    expect(rig.lines()).toHaveLength(2);
    await until(() => ev.length === 2);
    c.close();
  });

  it("flushes a family or everything, counting, with DESTROY events", async () => {
    const ev: string[] = [];
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS, events: ["DESTROY"] }, (l) => ev.push(...l), () => {});
    expect((await run({ op: OP.COUNT })).count).toBe(4);
    expect((await run({ op: OP.FLUSH, family: "ipv6" })).count).toBe(1);
    expect((await run({ op: OP.COUNT })).count).toBe(3);
    expect((await run({ op: OP.FLUSH })).count).toBe(3);
    expect((await run({ op: OP.LIST })).count).toBe(0);
    await until(() => ev.length === 4);
    expect(ev.every((l) => l.startsWith("[DESTROY] "))).toBe(true);
    await expect(run({ op: OP.FLUSH, family: "ipx" })).rejects.toThrow(/-f\/--family: expected ipv4 or ipv6/);
    c.close();
  });

  it("flushes a table larger than the event ring without losing DESTROY events", async () => {
    for (let k = 0; k < 6000; k++) rig.send(ipv4Udp({ src: "10.4.0.1", dst: "203.0.113.4", sport: 1 + k, dport: 53 }));
    let n = 0;
    const c = await ControlClient.connect(path);
    await c.subscribe({ op: OP.EVENTS }, (l) => { n += l.length; }, () => {});
    expect((await run({ op: OP.FLUSH })).count).toBe(6004);
    await until(() => n === 6004);
    expect(server.stats.ringLost).toBe(0);
    c.close();
  });
});

describe("stats", () => {
  it("answers with the daemon's counters plus the control server's", async () => {
    const f = await controlRequest(path, { op: OP.STATS });
    expect(f.stats).toMatchObject({ uptimeMs: 1234, table: { count: 4, max: 16384 }, queues: [{ queue: 0, received: 9 }] });
    expect(f.stats?.control).toMatchObject({ clients: 1, subscribers: 0, eventsSent: 0 });
  });
});

describe("filters (filter.ts)", () => {
  it("parses addresses like inet_pton, with CIDR prefixes", () => {
    expect(Array.from(parseAddress("10.0.1.2")!.words)).toEqual([0x0a000102, 0, 0, 0]);
    expect(parseAddress("10.0.1.0/24")).toMatchObject({ prefix: 24 });
    expect(Array.from(parseAddress("2001:db8::1")!.words).map((w) => w >>> 0)).toEqual([0x20010db8, 0, 0, 1]);
    expect(Array.from(parseAddress("::ffff:192.0.2.1")!.words).map((w) => w >>> 0)).toEqual([0, 0, 0xffff, 0xc0000201]);
    expect(Array.from(parseAddress("::")!.words)).toEqual([0, 0, 0, 0]);
    for (const bad of ["10.0.0", "10.0.0.256", "10.0.0.1/33", "2001:db8::1/129", "fe80::1%eth0", "x", "1.2.3.4/", ""]) {
      expect(parseAddress(bad)).toBeNull();
    }
  });

  it("takes conntrack's option spellings and refuses repeats and unknown protocols", () => {
    const spec: FilterSpec = {};
    setFilterOption(spec, "-p", "TCP");
    setFilterOption(spec, "--orig-port-dst", "0x50");
    setFilterOption(spec, "--state", "ESTABLISHED,LISTEN");
    setFilterOption(spec, "-u", "ASSURED,seen_reply");
    expect(spec).toEqual({ proto: 6, origDport: 80, state: ["ESTABLISHED", "LISTEN"], status: ["ASSURED", "seen_reply"] });
    expect(() => setFilterOption(spec, "--protonum", "udp")).toThrow(/given more than once/);
    expect(() => setFilterOption({}, "-p", "ipx")).toThrow(/unknown protocol "ipx"/);
    expect(() => setFilterOption({}, "--sport", "http")).toThrow(/"http" is not a number/);
    const f = new CtFilter(spec);
    expect(f.stateMask).toBe((1 << 3) | (1 << 9)); // LISTEN is SYN_SENT2
  });

  it("matches a reversed tuple only when asked to (delete)", () => {
    const s = new ConnSnapshot();
    rig.ct.forEachEntry((i) => { if (rig.ct.tcpState(i) >= 0) rig.ct.snapshot(i, rig.now, s); });
    const rev = new CtFilter({ origSrc: "203.0.113.5", origDst: "10.0.0.1", proto: 6, origSport: 80, origDport: 40001 });
    expect(rev.matches(s, false)).toBe(false);
    expect(rev.matches(s, true)).toBe(true);
    const mixed = new CtFilter({ origSrc: "203.0.113.5", replySrc: "10.0.0.1" });
    expect(mixed.matches(s, false)).toBe(false);
    expect(mixed.matches(s, true)).toBe(true);
    expect(new CtFilter({ origSrc: "203.0.113.5", replySrc: "203.0.113.5" }).matches(s, true)).toBe(false);
    expect(s.event).toBe(-1);
    expect(EVENT.DESTROY).toBe(2);
  });
});
