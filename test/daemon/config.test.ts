/**
 * The daemon's config file: the documented defaults parse and equal the
 * code's, the lab's config parses, every field's bad value is an error that
 * names the field and its file:line:column, unknown keys are rejected, the
 * conntrack knobs are validated under conntrack.*, and YAML syntax errors
 * are positioned too.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONNTRACK_CONFIG, DEFAULT_TIMEOUTS } from "../../src/conntrack/config.js";
import { ConfigError, MAX_QUEUES, defaultConfig, formatPath, loadConfig, parseConfig, type SluiceConfig } from "../../src/daemon/config.js";
import { ERR, SluiceError } from "../../src/errors.js";

const ROOT = new URL("../../", import.meta.url);
const FILE = "t.yaml";

/** The ConfigError parsing `text` throws (fails the test otherwise). */
function errorOf(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect(e).toBeInstanceOf(SluiceError);
    return e as ConfigError;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

/** YAML setting `path` to `value` (nested block mappings), and where the value starts. */
function yamlFor(path: string[], value: string): { text: string; line: number; col: number } {
  const lines = path.map((k, d) => `${"  ".repeat(d)}${k}:${d === path.length - 1 ? ` ${value}` : ""}`);
  const d = path.length - 1;
  return { text: `${lines.join("\n")}\n`, line: path.length, col: 2 * d + path[d]!.length + 3 };
}

describe("the documented defaults", () => {
  it("config/sluice.yaml parses and equals the defaults in code", () => {
    const file = loadConfig(new URL("config/sluice.yaml", ROOT).pathname);
    expect(file).toEqual(defaultConfig());
    expect(parseConfig("", "empty.yaml")).toEqual(file);
    expect(parseConfig("# only a comment\n", "c.yaml")).toEqual(file);
  });

  it("the defaults: NFQUEUE on queue 0, fail closed, Linux's conntrack knobs, metrics off", () => {
    const c = defaultConfig();
    const want: SluiceConfig = {
      instance: "sluice",
      mode: "nfqueue",
      interfaces: { lan: [], wan: [] },
      nfqueue: { queues: [0], copyRange: 65535, maxLen: 1024, failOpen: false, gso: false, queueBypass: false, defaultVerdict: "drop", batch: 64 },
      tun: { device: "sluice0", mtu: 1500, addresses: [], table: 100, rulePriority: 1000, lanInterfaces: [], batch: 64 },
      reinjectMark: 0x5c,
      conntrack: { ...DEFAULT_CONNTRACK_CONFIG, timeouts: { ...DEFAULT_TIMEOUTS } },
      log: { level: "info", pretty: "auto", summaryInterval: 60 },
      control: { socket: "/run/sluice/sluice.sock" },
      metrics: { port: null, address: "127.0.0.1" },
      rules: { ipv4: null, ipv6: null },
      stateDir: "/run/sluice",
    };
    expect(c).toEqual(want);
  });

  it("config/lab.yaml: NFQUEUE, queue 0, bypass off, the lab's interfaces", () => {
    const c = loadConfig(new URL("config/lab.yaml", ROOT).pathname);
    expect(c.mode).toBe("nfqueue");
    expect(c.nfqueue.queues).toEqual([0]);
    expect(c.nfqueue.queueBypass).toBe(false);
    expect(c.interfaces).toEqual({ lan: ["lan0"], wan: ["wan0"] });
    expect(c.metrics).toEqual({ port: 9633, address: "127.0.0.1" });
  });

  it("empty sections (null) and an empty metrics.port mean the defaults", () => {
    const c = parseConfig("nfqueue:\ntun:\nconntrack:\nmetrics:\n  port:\n", FILE);
    expect(c).toEqual(defaultConfig());
  });
});

describe("valid settings", () => {
  it("queues: a number, a range, a list of both; expanded and sorted", () => {
    expect(parseConfig("nfqueue:\n  queues: 3\n", FILE).nfqueue.queues).toEqual([3]);
    expect(parseConfig('nfqueue:\n  queues: "0-3"\n', FILE).nfqueue.queues).toEqual([0, 1, 2, 3]);
    expect(parseConfig('nfqueue:\n  queues: [9, "4-6", 0]\n', FILE).nfqueue.queues).toEqual([0, 4, 5, 6, 9]);
    expect(parseConfig('nfqueue:\n  queues: ["65535-65535"]\n', FILE).nfqueue.queues).toEqual([65535]);
  });

  it("marks in hex, IPv6 metrics address, TUN with addresses, anchors and aliases", () => {
    const c = parseConfig(
      [
        "mode: tun",
        "reinjectMark: 0xffffffff",
        "interfaces:",
        "  lan: &lan [lan0, lan1]",
        "  wan: [wan0]",
        "tun:",
        "  addresses: [198.18.0.1/30, 'fd00:5c::1/64']",
        "  lanInterfaces: *lan",
        "metrics:",
        "  port: 9633",
        "  address: '::1'",
        "log:",
        "  pretty: false",
        "  level: debug",
        "conntrack:",
        "  max: 1024",
        "  tcpLoose: 0",
        "  timeouts:",
        "    udp: 60",
      ].join("\n"),
      FILE,
    );
    expect(c.reinjectMark).toBe(0xffffffff);
    expect(c.tun.addresses).toEqual(["198.18.0.1/30", "fd00:5c::1/64"]);
    expect(c.tun.lanInterfaces).toEqual(["lan0", "lan1"]);
    expect(c.metrics).toEqual({ port: 9633, address: "::1" });
    expect(c.log).toEqual({ level: "debug", pretty: false, summaryInterval: 60 });
    expect(c.conntrack.max).toBe(1024);
    expect(c.conntrack.tcpLoose).toBe(false);
    expect(c.conntrack.timeouts.udp).toBe(60);
    expect(c.conntrack.timeouts.tcpEstablished).toBe(432000);
  });

  it("tun.lanInterfaces defaults to interfaces.lan", () => {
    const c = parseConfig("mode: tun\ninterfaces:\n  lan: [eth1]\n", FILE);
    expect(c.tun.lanInterfaces).toEqual(["eth1"]);
  });
});

/** [path, bad value as YAML, what the message must say]. */
const BAD: [string[], string, RegExp][] = [
  [["mode"], "bridge", /^expected nfqueue \| tun, got "bridge"$/],
  [["mode"], "", /^expected nfqueue \| tun, got null/],
  [["interfaces"], "[lan0]", /^expected a mapping, got a list$/],
  [["interfaces", "lan"], "eth0", /^expected a list of interface names, got "eth0"$/],
  [["interfaces", "wan"], "5", /^expected a list of interface names, got 5$/],
  [["nfqueue"], "3", /^expected a mapping, got 3$/],
  [["nfqueue", "queues"], "-1", /^expected a queue number 0\.\.65535 or a range "first-last", got -1$/],
  [["nfqueue", "queues"], "65536", /got 65536$/],
  [["nfqueue", "queues"], '"3-1"', /^queue range "3-1" is backwards/],
  [["nfqueue", "queues"], '"0-70000"', /^queue range "0-70000" goes beyond 65535$/],
  [["nfqueue", "queues"], "[]", /^expected at least one queue$/],
  [["nfqueue", "queues"], `"0-${MAX_QUEUES}"`, new RegExp(`^more than ${MAX_QUEUES} queues$`)],
  [["nfqueue", "copyRange"], "63", /^expected an integer 64\.\.65535, got 63$/],
  [["nfqueue", "copyRange"], "65536", /^expected an integer 64\.\.65535, got 65536$/],
  [["nfqueue", "maxLen"], "0", /^expected an integer 1\.\.4294967295, got 0$/],
  [["nfqueue", "maxLen"], "4294967296", /got 4294967296$/],
  [["nfqueue", "failOpen"], "yes", /^expected true or false, got "yes"$/],
  [["nfqueue", "gso"], "1", /^expected true or false, got 1$/],
  [["nfqueue", "queueBypass"], "off", /^expected true or false, got "off"$/],
  [["nfqueue", "defaultVerdict"], "reject", /^expected accept \| drop, got "reject"$/],
  [["nfqueue", "batch"], "0", /^expected an integer 1\.\.1024, got 0$/],
  [["nfqueue", "batch"], "1.5", /^expected an integer 1\.\.1024, got 1\.5$/],
  [["nfqueue", "batch"], "1025", /got 1025$/],
  [["tun"], "yes", /^expected a mapping, got "yes"$/],
  [["tun", "device"], "a-name-too-long-x", /^not a valid interface name .*: "a-name-too-long-x"$/],
  [["tun", "device"], '"tun:0"', /^not a valid interface name/],
  [["tun", "device"], "7", /^expected an interface name, got 7$/],
  [["tun", "mtu"], "575", /^expected an integer 576\.\.65535, got 575$/],
  [["tun", "addresses"], "10.0.0.1/24", /^expected a list of addresses with prefix lengths, got "10\.0\.0\.1\/24"$/],
  [["tun", "table"], "0", /^expected an integer 1\.\.4294967295, got 0$/],
  [["tun", "table"], "254", /^table 254 is reserved/],
  [["tun", "rulePriority"], "32766", /^expected an integer 1\.\.32765, got 32766$/],
  [["tun", "lanInterfaces"], "lan0", /^expected a list of interface names/],
  [["tun", "batch"], "2000", /got 2000$/],
  [["reinjectMark"], "0", /^expected a mark 1\.\.0xffffffff, got 0$/],
  [["reinjectMark"], "0x100000000", /^expected a mark 1\.\.0xffffffff, got 4294967296$/],
  [["reinjectMark"], "mark", /got "mark"$/],
  [["conntrack"], "big", /^expected a mapping, got "big"$/],
  [["conntrack", "max"], "8", /^8 is out of range \[16, 16777216\]$/],
  [["conntrack", "buckets"], "1000", /^1000 is not a power of two$/],
  [["conntrack", "tcpLoose"], "maybe", /^expected true\/false \(or 0\/1\), got "maybe"$/],
  [["conntrack", "tcpBeLiberal"], "2", /expected true\/false/],
  [["conntrack", "tcpMaxRetrans"], "256", /^256 is out of range \[0, 255\]$/],
  [["conntrack", "checksum"], "on", /expected true\/false/],
  [["conntrack", "eventRing"], "100", /^100 is not a power of two$/],
  [["conntrack", "reapBudget"], "0", /out of range/],
  [["conntrack", "timeouts"], "5", /^expected an object$/],
  [["conntrack", "timeouts", "tcpEstablished"], "0", /^0 is out of range \[1, 2147483647\]$/],
  [["conntrack", "timeouts", "udp"], "thirty", /^expected an integer, got "thirty"$/],
  [["log", "level"], "verbose", /^expected fatal \| error \| warn \| info \| debug \| trace \| silent, got "verbose"$/],
  [["log", "pretty"], "sometimes", /^expected true \| false \| auto, got "sometimes"$/],
  [["log", "summaryInterval"], "-1", /^expected an integer 0\.\.86400, got -1$/],
  [["control", "socket"], "sluice.sock", /^expected an absolute path of at most 107 bytes, got "sluice\.sock"$/],
  [["control", "socket"], `/run/${"s".repeat(103)}`, /at most 107 bytes/],
  [["metrics", "port"], "0", /^expected a port 1\.\.65535 or null, got 0$/],
  [["metrics", "port"], "http", /got "http"$/],
  [["metrics", "address"], "localhost", /^expected an IPv4 or IPv6 address, got "localhost"$/],
  [["metrics", "address"], "010.0.0.1", /got "010\.0\.0\.1"$/],
  [["stateDir"], "var/run", /^expected an absolute path of at most 4095 bytes, got "var\/run"$/],
];

describe("a bad value names the field and its file:line:column", () => {
  it.each(BAD)("%j = %s", (path, value, message) => {
    const { text, line, col } = yamlFor(path, value);
    const e = errorOf(text);
    expect(e.code).toBe(ERR.CONFIG_FIELD);
    expect(e.issues).toHaveLength(1);
    const i = e.issues[0]!;
    expect(i.path).toBe(formatPath(path));
    expect(i.message).toMatch(message);
    // An empty value is pointed at where it would start.
    expect([i.line, i.col]).toEqual([line, col]);
    expect(e.message).toBe(`${FILE}:${i.line}:${i.col}: ${i.path}: ${i.message}`);
  });

  it("items of lists: flow and block style", () => {
    let e = errorOf("nfqueue:\n  queues: [0, 1, x]\n");
    expect(e.message).toBe(`${FILE}:2:18: nfqueue.queues[2]: expected a queue number 0..65535 or a range "first-last", got "x"`);
    e = errorOf("nfqueue:\n  queues:\n    - 0\n    - 0\n");
    expect(e.message).toBe(`${FILE}:4:7: nfqueue.queues[1]: queue 0 is listed more than once`);
    e = errorOf("interfaces:\n  lan:\n    - eth0\n    - 'a b'\n");
    expect(e.message).toMatch(/^t\.yaml:4:7: interfaces\.lan\[1\]: not a valid interface name/);
    e = errorOf("tun:\n  addresses: [10.0.0.1/24, 10.0.0.2]\n");
    expect(e.message).toMatch(/^t\.yaml:2:28: tun\.addresses\[1\]: expected an address with a prefix length/);
    e = errorOf("tun:\n  lanInterfaces: ['']\n");
    expect(e.message).toMatch(/^t\.yaml:2:19: tun\.lanInterfaces\[0\]: not a valid interface name/);
  });

  it("every issue of a file is reported, in file order", () => {
    const e = errorOf("metrics:\n  port: 0\nlog:\n  level: loud\nnfqueue:\n  batch: 0\n  gso: 2\n");
    expect(e.message.split("\n")).toEqual([
      `${FILE}:2:9: metrics.port: expected a port 1..65535 or null, got 0`,
      `${FILE}:4:10: log.level: expected fatal | error | warn | info | debug | trace | silent, got "loud"`,
      `${FILE}:6:10: nfqueue.batch: expected an integer 1..1024, got 0`,
      `${FILE}:7:8: nfqueue.gso: expected true or false, got 2`,
    ]);
  });

  it("cross-field rules: LAN and WAN overlap, duplicates, TUN without a LAN interface", () => {
    let e = errorOf("interfaces:\n  lan: [eth0, eth1]\n  wan: [eth2, eth1]\n");
    expect(e.message).toBe(`${FILE}:3:15: interfaces.wan[1]: "eth1" is also a LAN interface`);
    e = errorOf("interfaces:\n  lan: [eth0, eth0]\n");
    expect(e.message).toBe(`${FILE}:2:15: interfaces.lan[1]: "eth0" is listed more than once`);
    e = errorOf("# tun mode\nmode: tun\n");
    expect(e.message).toBe(`${FILE}:2:7: tun.lanInterfaces: mode: tun needs at least one LAN interface (here or in interfaces.lan)`);
    e = errorOf("mode: tun\ntun:\n  lanInterfaces: []\n");
    expect(e.message).toMatch(/^t\.yaml:3:18: tun\.lanInterfaces: mode: tun needs/);
    e = errorOf("mode: tun\ntun:\n  device: lan0\n  lanInterfaces: [lan0]\n");
    expect(e.message).toBe(`${FILE}:3:11: tun.device: "lan0" is also listed as a LAN or WAN interface`);
  });
});

describe("unknown keys are errors, at the key", () => {
  it("at the top, in a section, with the keys that would be accepted", () => {
    let e = errorOf("mode: nfqueue\nqueues: [0]\n");
    expect(e.code).toBe(ERR.CONFIG_UNKNOWN);
    expect(e.message).toBe(`${FILE}:2:1: queues: unknown key (expected one of: instance, mode, interfaces, nfqueue, tun, reinjectMark, conntrack, log, control, metrics, rules, stateDir)`);
    e = errorOf("nfqueue:\n  queueBypas: true\n");
    expect(e.code).toBe(ERR.CONFIG_UNKNOWN);
    expect(e.message).toMatch(/^t\.yaml:2:3: nfqueue\.queueBypas: unknown key \(expected one of: queues, copyRange, maxLen, failOpen, gso, queueBypass, defaultVerdict, batch\)$/);
    for (const s of ["interfaces", "tun", "log", "control", "metrics"]) {
      e = errorOf(`${s}:\n  bogus: 1\n`);
      expect(e.message, s).toMatch(new RegExp(`^t\\.yaml:2:3: ${s}\\.bogus: unknown key \\(expected one of: `));
    }
  });

  it("in conntrack and conntrack.timeouts", () => {
    let e = errorOf("conntrack:\n  maxEntries: 5\n");
    expect(e.code).toBe(ERR.CONFIG_UNKNOWN);
    expect(e.message).toMatch(/^t\.yaml:2:3: conntrack\.maxEntries: unknown key/);
    e = errorOf("conntrack:\n  timeouts:\n    tcpEstablised: 5\n");
    expect(e.message).toMatch(/^t\.yaml:3:5: conntrack\.timeouts\.tcpEstablised: unknown key/);
  });

  it("an unknown key beside a bad value: both reported, code CONFIG_FIELD", () => {
    const e = errorOf("nfqueue:\n  batch: 0\n  extra: 1\n");
    expect(e.code).toBe(ERR.CONFIG_FIELD);
    expect(e.issues.map((i) => i.path)).toEqual(["nfqueue.batch", "nfqueue.extra"]);
  });
});

describe("YAML syntax errors are positioned", () => {
  it("broken flow collections, bad indentation, tabs", () => {
    const e = errorOf("nfqueue:\n  queues: [0, 1\nlog: {}\n");
    expect(e.code).toBe(ERR.CONFIG_SYNTAX);
    expect(e.issues[0]!.line).toBeGreaterThanOrEqual(2);
    expect(e.message).toMatch(/^t\.yaml:\d+:\d+: /);
    expect(errorOf("a:\n\t- 1\n").code).toBe(ERR.CONFIG_SYNTAX);
  });
  it("duplicate keys (which YAML would otherwise resolve silently)", () => {
    const e = errorOf("mode: tun\nmode: nfqueue\n");
    expect(e.code).toBe(ERR.CONFIG_SYNTAX);
    expect(e.message).toBe(`${FILE}:2:1: Map keys must be unique`);
  });
  it("several documents, unknown tags", () => {
    expect(errorOf("mode: tun\n---\nmode: nfqueue\n").code).toBe(ERR.CONFIG_SYNTAX);
    const e = errorOf("reinjectMark: !!mark 5c\n");
    expect(e.code).toBe(ERR.CONFIG_SYNTAX);
    expect(e.message).toMatch(/^t\.yaml:1:15: /);
  });
  it("a document that is not a mapping", () => {
    expect(errorOf("- mode\n").message).toBe(`${FILE}:1:1: expected a mapping, got a list`);
    expect(errorOf("nfqueue\n").message).toBe(`${FILE}:1:1: expected a mapping, got "nfqueue"`);
  });
});

describe("loadConfig", () => {
  it("names the file when it cannot be read, and in every message", () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-config-"));
    try {
      expect(() => loadConfig(join(dir, "missing.yaml"))).toThrow(new SluiceError(ERR.IO, `config file ${join(dir, "missing.yaml")}: no such file`));
      expect(() => loadConfig(dir)).toThrow(/is a directory/);
      const f = join(dir, "bad.yaml");
      writeFileSync(f, "log:\n  level: loud\n");
      expect(() => loadConfig(f)).toThrow(`${f}:2:10: log.level: expected`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("instance", () => {
  it("accepts an id of 1-32 characters of [A-Za-z0-9_.-] and refuses others, at the value", () => {
    expect(parseConfig("instance: lab-1.a_b\n", FILE).instance).toBe("lab-1.a_b");
    for (const bad of ["-x", "a/b", "x".repeat(33), "''"]) {
      const e = errorOf(`instance: ${bad}\n`);
      expect(e.code).toBe(ERR.CONFIG_FIELD);
      expect(e.message).toMatch(new RegExp(`^${FILE.replace(".", "\\.")}:1:11: instance: expected 1-32 characters`));
    }
  });
});

describe("rules", () => {
  it("resolves ruleset paths against the config file's directory, keeps absolute ones and null", () => {
    const c = parseConfig("rules:\n  ipv4: rules/v4.rules\n  ipv6: /etc/sluice/v6.rules\n", "/etc/sluice/sluice.yaml");
    expect(c.rules).toEqual({ ipv4: "/etc/sluice/rules/v4.rules", ipv6: "/etc/sluice/v6.rules" });
    expect(defaultConfig().rules).toEqual({ ipv4: null, ipv6: null });
  });
  it("refuses an empty path and unknown keys under rules", () => {
    expect(errorOf("rules:\n  ipv4: ''\n").message).toMatch(/^t\.yaml:2:9: rules\.ipv4: expected a ruleset file path or null/);
    const e = errorOf("rules:\n  ip4: x\n");
    expect(e.code).toBe(ERR.CONFIG_UNKNOWN);
    expect(e.message).toContain("rules.ip4: unknown key (expected one of: ipv4, ipv6)");
  });
});
