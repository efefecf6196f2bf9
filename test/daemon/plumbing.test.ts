/**
 * src/daemon/plumbing.ts against the real kernel, in a lab from
 * scripts/lab.sh (the plumbing runs in the gateway namespace through its
 * `netns` option): NFQUEUE-mode rules exactly as iptables-save shows them,
 * sysctls set and restored, removal leaving iptables-save as it was, crash
 * recovery from the state file, TUN-mode routing, a failing command rolled
 * back, and the kernel behaviour the daemon relies on: with --queue-bypass
 * and no listener traffic passes, without it traffic is dropped.
 * Needs root, iproute2, iptables (nft), nft and ping; every spawn is bounded.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ERR, SluiceError } from "../../src/errors.js";
import {
  PlumbingError,
  installPlumbing,
  nfqueueRuleSpecs,
  parseSavedTable,
  recoverStale,
  removePlumbing,
  splitRuleLine,
  validateSpec,
  type PlumbingLog,
  type PlumbingSpec,
} from "../../src/daemon/plumbing.js";
import { processStartTime, readStateFile, writeStateFile } from "../../src/daemon/state.js";
import { sysctlDisplayName, wantedSysctls } from "../../src/daemon/sysctl.js";

const ROOT = resolve(__dirname, "../..");
const LAB = join(ROOT, "scripts/lab.sh");
const NAME = `sl-plumb-${process.pid}`;
const tmp = mkdtempSync(join(tmpdir(), "sluice-plumbing-test-"));
let G = ""; // gateway namespace
let C = ""; // client namespace
let SERVER4 = "";
let SERVER6 = "";
const INSTANCE = `t${process.pid}`;
const TAG = `sluice:${INSTANCE}`;

function run(argv: string[], timeout = 20_000): { code: number | null; out: string; err: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout, killSignal: "SIGKILL" });
  return { code: r.status, out: r.stdout ?? "", err: r.stderr ?? "" };
}

/** Runs in namespace `ns`; throws with stderr on failure. */
function sh(ns: string, ...argv: string[]): string {
  const r = run(["ip", "netns", "exec", ns, ...argv]);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} in ${ns}: exit ${r.code}: ${r.err}`);
  return r.out;
}

/** iptables-save output without its timestamped `#` lines. */
function save(cmd = "iptables-save"): string {
  return sh(G, cmd)
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n");
}

function sysctl(key: string): string {
  return sh(G, "sysctl", "-n", key).trim();
}

function setSysctl(key: string, value: string): void {
  sh(G, "sysctl", "-qw", `${key}=${value}`);
}

const WATCHED = [
  "net.ipv4.ip_forward",
  "net.ipv6.conf.all.forwarding",
  "net.ipv4.conf.lan0.rp_filter",
  "net.ipv4.conf.wan0.rp_filter",
  "net.ipv4.conf.lan0.accept_local",
  "net.ipv4.conf.wan0.accept_local",
  "net.ipv4.conf.all.rp_filter",
  "net.ipv4.conf.all.accept_local",
];

function sysctls(): Record<string, string> {
  return Object.fromEntries(WATCHED.map((k) => [k, sysctl(k)]));
}

/** One ping from the client to the server; true if answered. */
function ping(family: 4 | 6): boolean {
  return run(["ip", "netns", "exec", C, "ping", `-${family}`, "-c", "1", "-W", "1", family === 4 ? SERVER4 : SERVER6], 10_000).code === 0;
}

/** Kernel routing state of the gateway that TUN mode touches. */
function routing(): string {
  return [
    sh(G, "ip", "-4", "rule", "show"),
    sh(G, "ip", "-6", "rule", "show"),
    sh(G, "ip", "-4", "route", "show", "table", "all"),
    sh(G, "ip", "-6", "route", "show", "table", "all"),
  ].join("\n---\n");
}

function memoryLog(): PlumbingLog & { lines: Array<{ msg: string; obj: object }> } {
  const lines: Array<{ msg: string; obj: object }> = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ msg, obj }),
    warn: (obj, msg) => lines.push({ msg: `WARN ${msg}`, obj }),
  };
}

let specN = 0;
function nfqSpec(over: Partial<PlumbingSpec> = {}): PlumbingSpec {
  return {
    instance: INSTANCE,
    mode: "nfqueue",
    stateFile: join(tmp, `state-${++specN}`, `${INSTANCE}.json`),
    interfaces: ["lan0", "wan0"],
    families: { v4: true, v6: true },
    queues: [3],
    queueBypass: true,
    reinjectMark: 0x100,
    netns: G,
    ...over,
  };
}

function tunSpec(over: Partial<PlumbingSpec["tun"] & object> = {}, spec: Partial<PlumbingSpec> = {}): PlumbingSpec {
  return nfqSpec({
    mode: "tun",
    tun: { device: "sltun0", create: false, addresses: ["10.255.0.1/30", "fd00:5::1/64"], iifs: ["lan0", "wan0"], table: 1234, rulePriority: 1234, ...over },
    ...spec,
  });
}

beforeAll(() => {
  const up = run(["bash", LAB, "up", NAME], 60_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.err}`);
  const env = Object.fromEntries(up.out.trim().split("\n").map((l) => l.split("=", 2) as [string, string]));
  G = env.GATEWAY_NS!;
  C = env.CLIENT_NS!;
  SERVER4 = env.SERVER_IP4!;
  SERVER6 = env.SERVER_IP6!;
}, 60_000);

afterAll(() => {
  run(["bash", LAB, "down", NAME], 60_000);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

// A known baseline before each test: forwarding on (the lab's), strict rp_filter, no accept_local.
beforeEach(() => {
  setSysctl("net.ipv4.ip_forward", "1");
  setSysctl("net.ipv6.conf.all.forwarding", "1");
  setSysctl("net.ipv4.conf.all.rp_filter", "1");
  setSysctl("net.ipv4.conf.all.accept_local", "0");
  for (const i of ["lan0", "wan0"]) {
    setSysctl(`net.ipv4.conf.${i}.rp_filter`, "1");
    setSysctl(`net.ipv4.conf.${i}.accept_local`, "0");
  }
});

describe("pure parts", () => {
  it("splits iptables-save lines like the shell would", () => {
    expect(splitRuleLine(`PREROUTING -m comment --comment "a \\"b\\" c" -j CT --notrack`)).toEqual([
      "PREROUTING",
      "-m",
      "comment",
      "--comment",
      'a "b" c',
      "-j",
      "CT",
      "--notrack",
    ]);
    expect(splitRuleLine(`X -m comment --comment ""`)).toEqual(["X", "-m", "comment", "--comment", ""]);
  });

  it("finds a table's section in iptables-save output", () => {
    const text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n*raw\n:PREROUTING ACCEPT [1:2]\n:X - [0:0]\n-A X -j RETURN\nCOMMIT\n";
    expect(parseSavedTable(text, "raw")).toEqual({ chains: [["PREROUTING", "ACCEPT"], ["X", "-"]], rules: [["X", "-j", "RETURN"]] });
    expect(parseSavedTable(text, "mangle")).toBeNull();
  });

  it("builds the rules from the spec", () => {
    expect(nfqueueRuleSpecs(nfqSpec({ interfaces: [], queues: [0, 1, 2, 3], queueBypass: false, reinjectMark: 0x1, reinjectMask: 0xff })).map((r) => r.join(" "))).toEqual([
      `PREROUTING -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j CT --notrack`,
      `PREROUTING -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j NFQUEUE --queue-balance 0:3`,
      `OUTPUT -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j CT --notrack`,
      `OUTPUT -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j NFQUEUE --queue-balance 0:3`,
    ]);
    const m = `-m mark ! --mark 0x100/0x100 -m comment --comment ${TAG}`;
    expect(nfqueueRuleSpecs(nfqSpec({ interfaces: ["a", "b"], queues: [9] })).map((r) => r.join(" "))).toEqual([
      `PREROUTING -i a ${m} -j CT --notrack`,
      `PREROUTING -i a ${m} -j NFQUEUE --queue-num 9 --queue-bypass`,
      `PREROUTING -i b ${m} -j CT --notrack`,
      `PREROUTING -i b ${m} -j NFQUEUE --queue-num 9 --queue-bypass`,
      `OUTPUT -o a ${m} -j CT --notrack`,
      `OUTPUT -o a ${m} -j NFQUEUE --queue-num 9 --queue-bypass`,
      `OUTPUT -o b ${m} -j CT --notrack`,
      `OUTPUT -o b ${m} -j NFQUEUE --queue-num 9 --queue-bypass`,
    ]);
  });

  it("names the sysctls it needs", () => {
    expect(wantedSysctls({ v4: true, v6: false, interfaces: ["eth0.100"] }).map((w) => `${sysctlDisplayName(w.key)}=${w.value}`)).toEqual([
      "net.ipv4.ip_forward=1",
      "net.ipv4.conf.eth0/100.rp_filter=2",
      "net.ipv4.conf.eth0/100.accept_local=1",
    ]);
    expect(wantedSysctls({ v4: false, v6: true, interfaces: ["lan0"] }).map((w) => w.key)).toEqual(["net/ipv6/conf/all/forwarding"]);
    expect(wantedSysctls({ v4: true, v6: true, interfaces: [] }).map((w) => w.key)).toEqual([
      "net/ipv4/ip_forward",
      "net/ipv6/conf/all/forwarding",
      "net/ipv4/conf/all/rp_filter",
      "net/ipv4/conf/all/accept_local",
    ]);
  });

  it("rejects bad specs naming the field", () => {
    const bad: Array<[Partial<PlumbingSpec>, string]> = [
      [{ instance: "has space" }, "instance"],
      [{ queues: [5, 2] }, "queues"],
      [{ queues: [0, 2] }, "queues"],
      [{ queues: [] }, "queues"],
      [{ queues: [70000] }, "queues"],
      [{ reinjectMark: 0 }, "reinjectMark"],
      [{ reinjectMark: 0x3, reinjectMask: 0x1 }, "reinjectMask"],
      [{ families: { v4: false, v6: false } }, "families"],
      [{ interfaces: ["lan0", "lan0"] }, "interfaces"],
      [{ interfaces: ["a/b"] }, "interfaces"],
      [{ stateFile: "relative.json" }, "stateFile"],
      [{ mode: "tun" }, "tun"],
    ];
    for (const [over, field] of bad) {
      let err: unknown;
      try {
        validateSpec(nfqSpec(over));
      } catch (e) {
        err = e;
      }
      expect(err, field).toBeInstanceOf(SluiceError);
      expect((err as SluiceError).code).toBe(ERR.CONFIG_FIELD);
      expect((err as Error).message).toContain(`${field}:`);
    }
    expect(() => validateSpec(tunSpec({ table: 254 }))).toThrow(/tun\.table/);
    expect(() => validateSpec(tunSpec({ addresses: ["10.0.0.1"] }))).toThrow(/tun\.addresses/);
    expect(() => validateSpec(tunSpec({ addresses: ["fd00::1/64"] }, { families: { v4: true, v6: false } }))).toThrow(/family is not enabled/);
    expect(() => validateSpec(tunSpec({ device: "lan0" }))).toThrow(/tun\.device/);
    expect(() => validateSpec(tunSpec({ iifs: [] }))).toThrow(/tun\.iifs/);
    expect(() => validateSpec(tunSpec({ mtu: 20 }))).toThrow(/tun\.mtu/);
  });
});

describe("NFQUEUE mode", { timeout: 60_000 }, () => {
  it("installs exactly the tagged rules and the sysctls; removal restores iptables-save byte for byte", () => {
    setSysctl("net.ipv4.ip_forward", "0");
    setSysctl("net.ipv6.conf.all.forwarding", "0");
    const before4 = save("iptables-save");
    const before6 = save("ip6tables-save");
    const sysBefore = sysctls();
    const spec = nfqSpec();
    const log = memoryLog();
    const inst = installPlumbing(spec, log);
    try {
      const rules = (chain: string, scope: string) => [
        `-A ${chain} ${scope} -m mark ! --mark 0x100/0x100 -m comment --comment "${TAG}" -j CT --notrack`,
        `-A ${chain} ${scope} -m mark ! --mark 0x100/0x100 -m comment --comment "${TAG}" -j NFQUEUE --queue-num 3 --queue-bypass`,
      ];
      const expected = [
        "*raw",
        ":PREROUTING ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ...rules("PREROUTING", "-i lan0"),
        ...rules("PREROUTING", "-i wan0"),
        ...rules("OUTPUT", "-o lan0"),
        ...rules("OUTPUT", "-o wan0"),
        "COMMIT",
        "",
      ].join("\n");
      expect(save("iptables-save")).toBe(expected);
      expect(save("ip6tables-save")).toBe(expected);

      expect(sysctls()).toEqual({
        ...sysBefore,
        "net.ipv4.ip_forward": "1",
        "net.ipv6.conf.all.forwarding": "1",
        "net.ipv4.conf.lan0.rp_filter": "2",
        "net.ipv4.conf.wan0.rp_filter": "2",
        "net.ipv4.conf.lan0.accept_local": "1",
        "net.ipv4.conf.wan0.accept_local": "1",
      });

      // The state file: private, and lists the old values.
      expect(statSync(spec.stateFile).mode & 0o777).toBe(0o600);
      const state = readStateFile(spec.stateFile)!;
      expect(state.instance).toBe(INSTANCE);
      expect(state.netns).toBe(G);
      expect(state.items.filter((i) => i.kind === "sysctl")).toContainEqual({ kind: "sysctl", key: "net/ipv4/conf/lan0/rp_filter", old: "1", value: "2" });
      expect(log.lines.filter((l) => l.msg === "plumbing: added").length).toBe(state.items.length);
    } finally {
      const cleaned = removePlumbing(inst, log);
      expect(cleaned).toContain(`iptables -t raw: deleted 8 rules tagged ${TAG}`);
    }
    expect(save("iptables-save")).toBe(before4);
    expect(save("ip6tables-save")).toBe(before6);
    expect(sysctls()).toEqual(sysBefore);
    expect(existsSync(spec.stateFile)).toBe(false);
    expect(removePlumbing(inst)).toEqual([]); // a second removal does nothing
  });

  it("no interface list: unscoped rules, sysctls on conf/all; a queue range without bypass, a mark with its own mask", () => {
    const before = save();
    const sysBefore = sysctls();
    const inst = installPlumbing(nfqSpec({ interfaces: [], queues: [4, 5, 6, 7], queueBypass: false, reinjectMark: 0x1, reinjectMask: 0xff, families: { v4: true, v6: false } }));
    try {
      expect(sysctls()).toEqual({ ...sysBefore, "net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.all.accept_local": "1" });
      const raw = parseSavedTable(save(), "raw")!;
      expect(raw.rules.map((r) => r.join(" "))).toEqual([
        `PREROUTING -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j CT --notrack`,
        `PREROUTING -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j NFQUEUE --queue-balance 4:7`,
        `OUTPUT -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j CT --notrack`,
        `OUTPUT -m mark ! --mark 0x1/0xff -m comment --comment ${TAG} -j NFQUEUE --queue-balance 4:7`,
      ]);
      expect(sh(G, "ip6tables-save")).not.toContain(TAG);
    } finally {
      removePlumbing(inst);
    }
    expect(save()).toBe(before);
    expect(sysctls()).toEqual(sysBefore);
  });

  it("goes in front of rules that were there, and leaves them (and the table) alone on removal", () => {
    sh(G, "iptables", "-w", "5", "-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", "9", "-j", "ACCEPT");
    try {
      const before = save();
      const inst = installPlumbing(nfqSpec({ families: { v4: true, v6: false } }));
      try {
        const raw = parseSavedTable(save(), "raw")!;
        expect(raw.rules.filter((r) => r[0] === "PREROUTING").map((r) => r.at(-1))).toEqual(["--notrack", "--queue-bypass", "--notrack", "--queue-bypass", "ACCEPT"]);
      } finally {
        removePlumbing(inst);
      }
      expect(save()).toBe(before);
    } finally {
      sh(G, "iptables", "-w", "5", "-t", "raw", "-D", "PREROUTING", "-p", "udp", "--dport", "9", "-j", "ACCEPT");
      run(["ip", "netns", "exec", G, "nft", "delete", "table", "ip", "raw"]);
    }
  });

  it("crash recovery: a leftover state file is undone at the next start, and logged", () => {
    const before4 = save("iptables-save");
    const before6 = save("ip6tables-save");
    const sysBefore = sysctls();
    const spec = nfqSpec();
    installPlumbing(spec); // the handle is dropped: the "process" died here
    expect(save()).toContain(TAG);
    // A second start must not install over the leftovers.
    expect(() => installPlumbing(spec)).toThrow(/state file .* exists/);

    const log = memoryLog();
    const report = recoverStale(spec.stateFile, { log });
    expect(report.found).toBe(true);
    expect(report.instance).toBe(INSTANCE);
    expect(report.cleaned).toContain(`iptables -t raw: deleted 8 rules tagged ${TAG}`);
    expect(report.cleaned).toContain(`ip6tables -t raw: deleted 8 rules tagged ${TAG}`);
    expect(report.cleaned).toContain("sysctl net.ipv4.conf.lan0.rp_filter restored to 1");
    const line = log.lines.find((l) => l.msg === "plumbing: cleaned up after a previous run");
    expect(line?.obj).toMatchObject({ instance: INSTANCE, cleaned: report.cleaned });
    expect(save("iptables-save")).toBe(before4);
    expect(save("ip6tables-save")).toBe(before6);
    expect(sysctls()).toEqual(sysBefore);
    expect(existsSync(spec.stateFile)).toBe(false);
    expect(recoverStale(spec.stateFile)).toEqual({ found: false, cleaned: [] });

    // Now a fresh install works.
    removePlumbing(installPlumbing(spec));
    expect(save()).toBe(before4);
  });

  it("crash recovery after a crash halfway through the install undoes only what is there", () => {
    const before = save();
    const sysBefore = sysctls();
    const spec = nfqSpec({ families: { v4: true, v6: false } });
    const inst = installPlumbing(spec);
    // Pretend the crash came after the PREROUTING rules and the lan0 sysctls: take the rest back out.
    const raw = parseSavedTable(save(), "raw")!;
    for (const rule of raw.rules.filter((r) => r[0] === "OUTPUT")) sh(G, "iptables", "-w", "5", "-t", "raw", "-D", ...rule);
    setSysctl("net.ipv4.conf.wan0.rp_filter", "1");
    setSysctl("net.ipv4.conf.wan0.accept_local", "0");
    // And someone else changed one of sluice's sysctls in the meantime: it is left alone.
    setSysctl("net.ipv4.conf.lan0.accept_local", "0");
    setSysctl("net.ipv4.conf.lan0.rp_filter", "0");
    const log = memoryLog();
    const report = recoverStale(inst.stateFile, { log });
    // Only the two rules are undone (and the raw table they created); every sysctl is already at
    // its old value, except lan0.rp_filter, which someone else changed and which stays as they set it.
    expect(report.cleaned[0]).toBe(`iptables -t raw: deleted 4 rules tagged ${TAG}`);
    expect(report.cleaned.filter((c) => c.startsWith("sysctl"))).toEqual([]);
    expect(log.lines.some((l) => l.msg.startsWith("WARN") && JSON.stringify(l.obj).includes("lan0.rp_filter"))).toBe(true);
    expect(save()).toBe(before);
    expect(sysctl("net.ipv4.conf.lan0.rp_filter")).toBe("0");
    setSysctl("net.ipv4.conf.lan0.rp_filter", sysBefore["net.ipv4.conf.lan0.rp_filter"]!);
    expect(sysctls()).toEqual(sysBefore);
  });

  it("recoverStale refuses while the process that wrote the state file is alive", async () => {
    const spec = nfqSpec();
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const exited = new Promise((r) => child.on("exit", r));
    try {
      const pid = child.pid!;
      for (let i = 0; i < 50 && processStartTime(pid) === null; i++) await new Promise((r) => setTimeout(r, 20));
      writeStateFile(spec.stateFile, { version: 1, instance: INSTANCE, mode: "nfqueue", netns: G, pid, pidStart: processStartTime(pid)!, createdAt: "x", items: [] });
      expect(() => recoverStale(spec.stateFile)).toThrow(/still running as pid/);
    } finally {
      child.kill("SIGKILL");
    }
    await exited;
    expect(recoverStale(spec.stateFile)).toEqual({ found: true, instance: INSTANCE, cleaned: [] });
  });

  it("an interface that vanished since takes its sysctls with it", () => {
    sh(G, "ip", "link", "add", "tmp0", "type", "veth", "peer", "name", "tmp1");
    const spec = nfqSpec({ interfaces: ["lan0", "tmp0"], families: { v4: true, v6: false } });
    const before = save();
    const inst = installPlumbing(spec);
    expect(sysctl("net.ipv4.conf.tmp0.accept_local")).toBe("1");
    sh(G, "ip", "link", "del", "tmp0");
    const cleaned = removePlumbing(inst);
    expect(cleaned.some((c) => c.includes("tmp0"))).toBe(false);
    expect(cleaned).toContain("sysctl net.ipv4.conf.lan0.accept_local restored to 0");
    expect(save()).toBe(before);
  });

  it("a state file for a namespace that is gone is just removed", () => {
    const spec = nfqSpec();
    writeStateFile(spec.stateFile, {
      version: 1,
      instance: INSTANCE,
      mode: "nfqueue",
      netns: `${NAME}-gone`,
      pid: 1 << 22,
      pidStart: "1",
      createdAt: "x",
      items: [{ kind: "sysctl", key: "net/ipv4/ip_forward", old: "0", value: "1" }],
    });
    expect(recoverStale(spec.stateFile)).toEqual({ found: true, instance: INSTANCE, cleaned: [] });
    expect(existsSync(spec.stateFile)).toBe(false);
  });

  it("refuses to install when rules with its tag are already there", () => {
    const rule = ["-m", "comment", "--comment", TAG, "-j", "ACCEPT"];
    sh(G, "iptables", "-w", "5", "-t", "raw", "-A", "OUTPUT", ...rule);
    try {
      const sysBefore = sysctls();
      const spec = nfqSpec();
      expect(() => installPlumbing(spec)).toThrow(/already shows 1 rule\(s\) tagged/);
      expect(sysctls()).toEqual(sysBefore);
      expect(existsSync(spec.stateFile)).toBe(false);
    } finally {
      sh(G, "iptables", "-w", "5", "-t", "raw", "-D", "OUTPUT", ...rule);
      run(["ip", "netns", "exec", G, "nft", "delete", "table", "ip", "raw"]);
    }
  });

  it("a failing command: the error names it and its stderr, and the partial install is rolled back", () => {
    // An ip6tables that accepts everything but NFQUEUE rules: the IPv4 rules, the
    // sysctls and the first IPv6 rule are in when it fails.
    const fake = join(tmp, "fail6tables");
    writeFileSync(fake, `#!/bin/sh\nfor a in "$@"; do [ "$a" = NFQUEUE ] && { echo "fail6tables: simulated failure" >&2; exit 4; }; done\nexec ip6tables "$@"\n`);
    writeFileSync(`${fake}-save`, `#!/bin/sh\nexec ip6tables-save "$@"\n`);
    chmodSync(fake, 0o755);
    chmodSync(`${fake}-save`, 0o755);
    const before4 = save("iptables-save");
    const before6 = save("ip6tables-save");
    const sysBefore = sysctls();
    const spec = nfqSpec({ ip6tables: fake });
    const log = memoryLog();
    let err: unknown;
    try {
      installPlumbing(spec, log);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlumbingError);
    const pe = err as PlumbingError;
    expect(pe.code).toBe(ERR.IO);
    expect(pe.command).toBe(`ip netns exec ${G} ${fake} -w 5 -t raw -I PREROUTING 2 -i lan0 -m mark '!' --mark 0x100/0x100 -m comment --comment ${TAG} -j NFQUEUE --queue-num 3 --queue-bypass`);
    expect(pe.stderr).toBe("fail6tables: simulated failure");
    expect(pe.status).toBe(4);
    expect(pe.message).toContain(pe.command);
    expect(pe.message).toContain("exit status 4: fail6tables: simulated failure");
    expect(log.lines.some((l) => l.msg === "WARN plumbing: install failed; rolled back")).toBe(true);
    expect(save("iptables-save")).toBe(before4);
    expect(save("ip6tables-save")).toBe(before6);
    expect(sysctls()).toEqual(sysBefore);
    expect(existsSync(spec.stateFile)).toBe(false);
  });

  it("a missing interface is a config error, before anything changes", () => {
    const before = save();
    const spec = nfqSpec({ interfaces: ["lan0", "nosuch0"] });
    expect(() => installPlumbing(spec)).toThrow(/interfaces: no interface "nosuch0" in namespace/);
    expect(save()).toBe(before);
    expect(existsSync(spec.stateFile)).toBe(false);
  });

  it("a command that does not exist is named in the error", () => {
    const spec = nfqSpec({ iptables: "/nonexistent/iptables" });
    expect(() => installPlumbing(spec)).toThrow(/\/nonexistent\/iptables-save: exit status/);
  });
});

describe("what the kernel does with the rules (no listener on the queue)", { timeout: 60_000 }, () => {
  it("with --queue-bypass, traffic through the gateway passes", () => {
    expect(ping(4)).toBe(true);
    const inst = installPlumbing(nfqSpec({ queueBypass: true }));
    try {
      expect(ping(4)).toBe(true);
      expect(ping(6)).toBe(true);
    } finally {
      removePlumbing(inst);
    }
  });

  it("without --queue-bypass, traffic through the gateway is dropped; it flows again after removal", () => {
    const inst = installPlumbing(nfqSpec({ queueBypass: false }));
    try {
      expect(ping(4)).toBe(false);
      expect(ping(6)).toBe(false);
    } finally {
      removePlumbing(inst);
    }
    expect(ping(4)).toBe(true);
    expect(ping(6)).toBe(true);
  });
});

describe("TUN mode", { timeout: 60_000 }, () => {
  it("adds addresses, routes and policy rules for a device the addon made, and removes them", () => {
    sh(G, "ip", "tuntap", "add", "dev", "sltun0", "mode", "tun");
    try {
      const routesBefore = routing();
      // The kernel attaches a default qdisc the first time a device goes up; that stays.
      const tunAddr = () => sh(G, "ip", "addr", "show", "dev", "sltun0").replace(/ qdisc \S+/, "");
      const addrBefore = tunAddr();
      const sysBefore = sysctls();
      const iptBefore = save();
      const inst = installPlumbing(tunSpec({ mtu: 1400 }));
      try {
        expect(sh(G, "ip", "link", "show", "dev", "sltun0")).toContain("mtu 1400");
        const rules4 = sh(G, "ip", "-4", "rule", "show");
        expect(rules4).toContain("1234:\tfrom all iif lan0 lookup 1234");
        expect(rules4).toContain("1234:\tfrom all iif wan0 lookup 1234");
        const rules6 = sh(G, "ip", "-6", "rule", "show");
        expect(rules6).toContain("1234:\tfrom all iif lan0 lookup 1234");
        expect(rules6).toContain("1234:\tfrom all iif wan0 lookup 1234");
        expect(sh(G, "ip", "-4", "route", "show", "table", "1234")).toMatch(/^default dev sltun0 /);
        expect(sh(G, "ip", "-6", "route", "show", "table", "1234")).toMatch(/^default dev sltun0 /);
        const addr = sh(G, "ip", "addr", "show", "dev", "sltun0");
        expect(addr).toContain("inet 10.255.0.1/30");
        expect(addr).toContain("inet6 fd00:5::1/64");
        expect(addr).toMatch(/<[^>]*\bUP\b/);
        expect(sysctl("net.ipv4.conf.lan0.rp_filter")).toBe("2");
        expect(save()).toBe(iptBefore); // no iptables rules in TUN mode
        // Forwarded traffic now goes into the TUN device, where nobody reads it.
        expect(ping(4)).toBe(false);
        expect(ping(6)).toBe(false);
      } finally {
        removePlumbing(inst);
      }
      expect(routing()).toBe(routesBefore);
      expect(tunAddr()).toBe(addrBefore);
      expect(sysctls()).toEqual(sysBefore);
      expect(ping(4)).toBe(true);
      expect(ping(6)).toBe(true);
    } finally {
      run(["ip", "netns", "exec", G, "ip", "link", "del", "dev", "sltun0"]);
    }
  });

  it("creates and deletes the device itself with tun.create; crash recovery removes everything", () => {
    const routesBefore = routing();
    const sysBefore = sysctls();
    const spec = tunSpec({ create: true, device: "sltun1", addresses: ["10.255.1.1/30"] }, { families: { v4: true, v6: false } });
    const inst = installPlumbing(spec);
    expect(sh(G, "ip", "-d", "link", "show", "dev", "sltun1")).toContain("tun type tun");
    removePlumbing(inst);
    expect(run(["ip", "netns", "exec", G, "ip", "link", "show", "dev", "sltun1"]).code).not.toBe(0);
    expect(routing()).toBe(routesBefore);

    installPlumbing(spec); // and crash
    const report = recoverStale(spec.stateFile);
    expect(report.cleaned).toEqual(
      expect.arrayContaining(["IPv4 rule pref 1234 iif lan0 lookup 1234 removed", "IPv4 rule pref 1234 iif wan0 lookup 1234 removed", "tun device sltun1 deleted"]),
    );
    expect(run(["ip", "netns", "exec", G, "ip", "link", "show", "dev", "sltun1"]).code).not.toBe(0);
    expect(routing()).toBe(routesBefore);
    expect(sysctls()).toEqual(sysBefore);
  });

  it("recovery when the addon's device vanished with the crash: rules and the blackhole fallback go, the rest is already gone", () => {
    sh(G, "ip", "tuntap", "add", "dev", "sltun2", "mode", "tun");
    const routesBefore = routing();
    const spec = tunSpec({ device: "sltun2" });
    const inst = installPlumbing(spec);
    sh(G, "ip", "link", "del", "dev", "sltun2"); // a non-persistent device dies with its process
    const report = recoverStale(inst.stateFile);
    expect(report.cleaned.filter((c) => c.includes("rule"))).toHaveLength(4);
    // The device's own routes and addresses died with it; the blackhole fallback outlived it (fail closed) and is removed now.
    expect(report.cleaned.filter((c) => c.includes("route"))).toEqual(["IPv6 route blackhole default table 1234 removed", "IPv4 route blackhole default table 1234 removed"]);
    expect(report.cleaned.some((c) => c.includes("address"))).toBe(false);
    expect(routing()).toBe(routesBefore);
  });

  it("after the device vanished, the policy rules meet the blackhole: the gateway fails closed", () => {
    sh(G, "ip", "tuntap", "add", "dev", "sltun3", "mode", "tun");
    const spec = tunSpec({ device: "sltun3" });
    const inst = installPlumbing(spec);
    sh(G, "ip", "link", "del", "dev", "sltun3");
    try {
      const got = sh(G, "ip", "-4", "route", "show", "table", "1234");
      expect(got).toContain("blackhole default");
      expect(sh(G, "ip", "-6", "route", "show", "table", "1234")).toContain("blackhole default");
    } finally {
      recoverStale(inst.stateFile);
    }
  });

  it("refuses conflicts before changing anything", () => {
    expect(() => installPlumbing(tunSpec({ device: "nosuchtun" }))).toThrow(/tun\.device: no device "nosuchtun"/);
    sh(G, "ip", "tuntap", "add", "dev", "sltun3", "mode", "tun");
    try {
      expect(() => installPlumbing(tunSpec({ device: "sltun3", create: true }))).toThrow(/already exists/);
      sh(G, "ip", "link", "set", "dev", "sltun3", "up");
      sh(G, "ip", "route", "add", "default", "dev", "sltun3", "table", "1234");
      const before = routing();
      const sysBefore = sysctls();
      expect(() => installPlumbing(tunSpec({ device: "sltun3" }))).toThrow(/IPv4 routing table 1234 already has a default route/);
      expect(routing()).toBe(before);
      expect(sysctls()).toEqual(sysBefore);
    } finally {
      run(["ip", "netns", "exec", G, "ip", "link", "del", "dev", "sltun3"]);
    }
  });
});

describe("state file", () => {
  it("rejects a malformed file with the field it trips on", () => {
    const p = join(tmp, "bad.json");
    writeFileSync(p, JSON.stringify({ version: 1, instance: "x", mode: "nfqueue", pid: 1, pidStart: "1", createdAt: "x", items: [{ kind: "sysctl", key: "net/ipv4/ip_forward;rm", old: "0", value: "1" }] }));
    expect(() => readStateFile(p)).toThrow(/field items\.0\.key/);
    writeFileSync(p, "{");
    expect(() => readStateFile(p)).toThrow(/is not JSON/);
    expect(readStateFile(join(tmp, "none.json"))).toBeNull();
    expect(readFileSync(p, "utf8")).toBe("{");
  });
});
