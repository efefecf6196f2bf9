/**
 * The mirror in a real network namespace (needs root and iproute2; skipped
 * otherwise): it loads addresses and routes through `ip -n NS`, answers
 * lookups, follows an added address and route within a bounded time, and
 * stop() kills its `ip monitor`.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERR } from "../../src/errors.js";
import { parseIPv4, parseIPv6 } from "../../src/route/addr.js";
import { RouteMirror } from "../../src/route/mirror.js";

const NS = `routet-${process.pid}-${randomBytes(3).toString("hex")}`;
const ip = (...args: string[]): string => execFileSync("ip", ["-n", NS, ...args], { encoding: "utf8" });

function canNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("ip", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const a4 = (s: string): number => parseIPv4(s) | 0;
const w = new Int32Array(4);
const a6 = (s: string): [number, number, number, number] => {
  if (!parseIPv6(s, w)) throw new Error(s);
  return [w[0]!, w[1]!, w[2]!, w[3]!];
};

/** Polls `cond` every 20 ms; returns the ms it took, or throws after `limit` ms. */
async function within(limit: number, cond: () => boolean): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limit) throw new Error(`not true within ${limit} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!canNetns())(`route mirror in a namespace (${NS})`, () => {
  let mirror: RouteMirror | null = null;
  const errors: Error[] = [];

  beforeAll(() => {
    execFileSync("ip", ["netns", "add", NS]);
    ip("link", "set", "lo", "up");
    ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan0p");
    ip("link", "add", "wan0", "type", "veth", "peer", "name", "wan0p");
    for (const d of ["lan0", "lan0p", "wan0", "wan0p"]) ip("link", "set", d, "up");
    ip("addr", "add", "10.0.1.1/24", "dev", "lan0");
    ip("addr", "add", "203.0.113.1/24", "dev", "wan0");
    ip("-6", "addr", "add", "2001:db8:1::1/64", "dev", "lan0", "nodad");
    ip("-6", "addr", "add", "2001:db8:2::1/64", "dev", "wan0", "nodad");
    ip("route", "add", "default", "via", "203.0.113.254");
    ip("route", "add", "198.51.100.0/24", "via", "10.0.1.254");
    ip("-6", "route", "add", "default", "via", "2001:db8:2::fffe");
  });

  afterAll(async () => {
    await mirror?.stop();
    try {
      execFileSync("ip", ["netns", "del", NS], { stdio: "ignore" });
    } catch {
      // never created (beforeAll failed early)
    }
  });

  it("loads the namespace's addresses and routes", async () => {
    mirror = await RouteMirror.start({ netns: NS, debounceMs: 50, settleMs: 200, restartMs: 100, onError: (e) => errors.push(e) });
    const m = mirror;
    expect(m.generation).toBe(1);
    expect(m.ifindexOf("lan0")).toBeGreaterThan(0);
    expect(m.ifnameOf(m.ifindexOf("wan0"))).toBe("wan0");
    expect(m.isLocal4(a4("10.0.1.1"))).toBe(true);
    expect(m.isLocal4(a4("10.0.1.2"))).toBe(false);
    const s = m.snapshot;
    expect(s.describe(m.lookup4(a4("8.8.8.8")))).toBe("0.0.0.0/0 via 203.0.113.254 dev wan0");
    expect(s.ifindex[m.lookup4(a4("198.51.100.9"))]).toBe(m.ifindexOf("lan0"));
    expect(m.isLocal6(...a6("2001:db8:1::1"))).toBe(true);
    expect(s.describe(m.lookup6(...a6("2001:db8:1::77")))).toBe("2001:db8:1::/64 dev lan0 metric 256");
    expect(s.ifindex[m.lookup6(...a6("2606:4700::1"))]).toBe(m.ifindexOf("wan0"));
    expect(errors).toEqual([]);
  });

  it("follows an added address and route, and a removed one, within 2 s", async () => {
    const m = mirror!;
    expect(m.isLocal4(a4("10.42.0.1"))).toBe(false);
    ip("addr", "add", "10.42.0.1/32", "dev", "lan0");
    ip("-6", "addr", "add", "2001:db8:42::1/128", "dev", "wan0", "nodad");
    ip("route", "add", "192.0.2.0/24", "via", "10.0.1.253");
    await within(2000, () => m.isLocal4(a4("10.42.0.1")));
    await within(2000, () => m.isLocal6(...a6("2001:db8:42::1")) && m.snapshot.describe(m.lookup4(a4("192.0.2.5"))) === "192.0.2.0/24 via 10.0.1.253 dev lan0");
    ip("addr", "del", "10.42.0.1/32", "dev", "lan0");
    await within(2000, () => !m.isLocal4(a4("10.42.0.1")));
    expect(m.generation).toBeGreaterThan(1);
    expect(errors).toEqual([]);
  });

  it("follows a new interface (name <-> ifindex)", async () => {
    const m = mirror!;
    ip("link", "add", "extra7", "type", "veth", "peer", "name", "extra7p");
    await within(2000, () => m.ifindexOf("extra7") > 0);
    expect(m.ifnameOf(m.ifindexOf("extra7"))).toBe("extra7");
  });

  it("refresh() reloads on demand", async () => {
    const m = mirror!;
    const g = m.generation;
    await m.refresh();
    expect(m.generation).toBeGreaterThan(g);
  });

  it("a monitor that dies is reported and restarted, and changes meanwhile are caught", async () => {
    const m = mirror!;
    const pid = m.monitorPid!;
    process.kill(pid, "SIGKILL");
    await within(2000, () => errors.length > 0);
    expect(errors[0]!.message).toMatch(/ip -n routet-.* monitor link address route exited \(killed by SIGKILL\); restarting/);
    errors.length = 0;
    ip("addr", "add", "10.44.0.1/32", "dev", "lan0");
    await within(2000, () => m.monitorPid !== undefined && m.monitorPid !== pid);
    await within(2000, () => m.isLocal4(a4("10.44.0.1")));
    ip("addr", "add", "10.45.0.1/32", "dev", "lan0");
    await within(2000, () => m.isLocal4(a4("10.45.0.1")));
    expect(errors).toEqual([]);
  });

  it("stop() kills the monitor and no reload follows", async () => {
    const m = mirror!;
    const pid = m.monitorPid!;
    expect(alive(pid)).toBe(true);
    await m.stop();
    expect(alive(pid)).toBe(false);
    expect(m.monitorPid).toBeUndefined();
    const g = m.generation;
    ip("addr", "add", "10.43.0.1/32", "dev", "lan0");
    await new Promise((r) => setTimeout(r, 300));
    expect(m.generation).toBe(g);
    mirror = null;
  });

  it("a namespace that does not exist is a clear error", async () => {
    await expect(RouteMirror.start({ netns: `${NS}-missing`, watch: false })).rejects.toMatchObject({
      code: ERR.ROUTE,
      message: expect.stringMatching(/ip -n routet-.*-missing .*: Cannot open network namespace/) as unknown as string,
    });
  });
});
