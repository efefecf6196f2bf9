/**
 * The tracker's configuration: Linux's defaults (reference/linux-conntrack.md
 * §1.1, §1.2, Documentation/networking/nf_conntrack-sysctl.rst), errors that
 * name the offending field, and `--sysctl` settings under Linux's names.
 */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CONNTRACK_CONFIG,
  DEFAULT_TIMEOUTS,
  MAX_TABLE,
  SYSCTL_NAMES,
  applySysctl,
  resolveConntrackConfig,
} from "../../src/conntrack/config.js";
import { ERR, SluiceError } from "../../src/errors.js";

/** The SluiceError `fn` throws (fails the test if it throws nothing or something else). */
function thrown(fn: () => unknown): SluiceError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SluiceError);
    return e as SluiceError;
  }
  throw new Error("expected a SluiceError");
}

describe("defaults equal Linux's (v6.12)", () => {
  it("timeouts, in seconds, as tcp_timeouts[], udp_timeouts[], the ICMP and generic trackers set them", () => {
    expect(DEFAULT_TIMEOUTS).toEqual({
      tcpSynSent: 120,
      tcpSynRecv: 60,
      tcpEstablished: 432000, // 5 days
      tcpFinWait: 120,
      tcpCloseWait: 60,
      tcpLastAck: 30,
      tcpTimeWait: 120,
      tcpClose: 10,
      tcpSynSent2: 120,
      tcpMaxRetrans: 300,
      tcpUnacknowledged: 300,
      udp: 30,
      udpStream: 120,
      icmp: 30,
      icmpv6: 30,
      generic: 600,
    });
    expect(Object.isFrozen(DEFAULT_TIMEOUTS)).toBe(true);
  });

  it("knobs: tcp_loose 1, be_liberal 0, ignore_invalid_rst 0, max_retrans 3, checksum 1, acct 0; the table of a >4 GB machine", () => {
    const c = resolveConntrackConfig();
    expect(c).toEqual({ ...DEFAULT_CONNTRACK_CONFIG, timeouts: { ...DEFAULT_TIMEOUTS } });
    expect(c.tcpLoose).toBe(true);
    expect(c.tcpBeLiberal).toBe(false);
    expect(c.tcpIgnoreInvalidRst).toBe(false);
    expect(c.tcpMaxRetrans).toBe(3);
    expect(c.checksum).toBe(true);
    expect(c.acct).toBe(false);
    expect(c.max).toBe(262144);
    expect(c.buckets).toBe(0);
    expect(resolveConntrackConfig({})).toEqual(c);
  });

  it("a partial config overrides only what it names, timeouts included", () => {
    const c = resolveConntrackConfig({ max: 1000, acct: true, timeouts: { udp: 10 } });
    expect(c.max).toBe(1000);
    expect(c.acct).toBe(true);
    expect(c.timeouts).toEqual({ ...DEFAULT_TIMEOUTS, udp: 10 });
    expect(c.tcpLoose).toBe(true);
    // The input is not modified, the defaults neither.
    expect(DEFAULT_TIMEOUTS.udp).toBe(30);
  });

  it("booleans also take sysctl style 0/1", () => {
    const c = resolveConntrackConfig({ tcpLoose: 0, checksum: 0, acct: 1, tcpBeLiberal: 1 });
    expect([c.tcpLoose, c.checksum, c.acct, c.tcpBeLiberal]).toEqual([false, false, true, true]);
  });

  it("bounds that are accepted", () => {
    expect(resolveConntrackConfig({ max: 16 }).max).toBe(16);
    expect(resolveConntrackConfig({ max: MAX_TABLE }).max).toBe(MAX_TABLE);
    expect(resolveConntrackConfig({ buckets: 1024 }).buckets).toBe(1024);
    expect(resolveConntrackConfig({ eventRing: 16 }).eventRing).toBe(16);
    expect(resolveConntrackConfig({ tcpMaxRetrans: 0 }).tcpMaxRetrans).toBe(0);
    expect(resolveConntrackConfig({ timeouts: { tcpEstablished: 1 } }).timeouts.tcpEstablished).toBe(1);
  });
});

describe("errors name the field", () => {
  it("an unknown field", () => {
    const e = thrown(() => resolveConntrackConfig({ maxx: 5 }));
    expect(e.code).toBe(ERR.CONFIG_UNKNOWN);
    expect(e.message).toContain('"maxx"');
  });

  it("an unknown timeout", () => {
    const e = thrown(() => resolveConntrackConfig({ timeouts: { tcpSynSent3: 5 } }));
    expect(e.code).toBe(ERR.CONFIG_UNKNOWN);
    expect(e.message).toContain("timeouts.tcpSynSent3");
  });

  const bad: [string, Record<string, unknown>][] = [
    ["max", { max: 15 }],
    ["max", { max: MAX_TABLE + 1 }],
    ["max", { max: 1.5 }],
    ["max", { max: "1024" }],
    ["buckets", { buckets: -1 }],
    ["buckets", { buckets: 1000 }], // not a power of two
    ["eventRing", { eventRing: 8 }],
    ["eventRing", { eventRing: 100 }],
    ["eventRing", { eventRing: 1 << 21 }],
    ["reapBudget", { reapBudget: 0 }],
    ["tcpMaxRetrans", { tcpMaxRetrans: 256 }],
    ["tcpMaxRetrans", { tcpMaxRetrans: -1 }],
    ["tcpLoose", { tcpLoose: "yes" }],
    ["tcpLoose", { tcpLoose: 2 }],
    ["checksum", { checksum: "1" }],
    ["acct", { acct: {} }],
    ["timeouts.udp", { timeouts: { udp: 0 } }],
    ["timeouts.tcpEstablished", { timeouts: { tcpEstablished: 2 ** 31 } }],
    ["timeouts.icmp", { timeouts: { icmp: "30" } }],
    ["timeouts.generic", { timeouts: { generic: 1.5 } }],
    ["timeouts", { timeouts: [] }],
    ["timeouts", { timeouts: "x" }],
    ["timeouts", { timeouts: 5 }],
  ];
  for (const [field, partial] of bad) {
    it(`${field}: ${JSON.stringify(partial)}`, () => {
      const e = thrown(() => resolveConntrackConfig(partial));
      expect(e.code).toBe(ERR.CONFIG_FIELD);
      expect(e.message).toMatch(new RegExp(`conntrack config: ${field.replace(".", "\\.")}: `));
    });
  }
});

describe("applySysctl: Linux's names", () => {
  it("with and without the net.netfilter. prefix, onto a partial config", () => {
    const partial: Record<string, unknown> = {};
    applySysctl(partial, "nf_conntrack_tcp_loose=0");
    applySysctl(partial, "net.netfilter.nf_conntrack_udp_timeout=60");
    applySysctl(partial, "net.netfilter.nf_conntrack_max=4096");
    applySysctl(partial, " nf_conntrack_tcp_timeout_established = 7200 ");
    expect(partial).toEqual({ tcpLoose: 0, max: 4096, timeouts: { udp: 60, tcpEstablished: 7200 } });
    const c = resolveConntrackConfig(partial);
    expect(c.tcpLoose).toBe(false);
    expect(c.max).toBe(4096);
    expect(c.timeouts.udp).toBe(60);
    expect(c.timeouts.tcpEstablished).toBe(7200);
    expect(c.timeouts.udpStream).toBe(120);
  });

  it("every sysctl sluice models maps onto a real field", () => {
    const names = Object.keys(SYSCTL_NAMES);
    expect(names).toEqual(expect.arrayContaining([
      "nf_conntrack_max", "nf_conntrack_buckets", "nf_conntrack_tcp_loose", "nf_conntrack_tcp_be_liberal",
      "nf_conntrack_tcp_ignore_invalid_rst", "nf_conntrack_tcp_max_retrans", "nf_conntrack_checksum", "nf_conntrack_acct",
      "nf_conntrack_tcp_timeout_syn_sent", "nf_conntrack_tcp_timeout_syn_recv", "nf_conntrack_tcp_timeout_established",
      "nf_conntrack_tcp_timeout_fin_wait", "nf_conntrack_tcp_timeout_close_wait", "nf_conntrack_tcp_timeout_last_ack",
      "nf_conntrack_tcp_timeout_time_wait", "nf_conntrack_tcp_timeout_close", "nf_conntrack_tcp_timeout_max_retrans",
      "nf_conntrack_tcp_timeout_unacknowledged", "nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream",
      "nf_conntrack_icmp_timeout", "nf_conntrack_icmpv6_timeout", "nf_conntrack_generic_timeout",
    ]));
    for (const name of names) {
      const path = SYSCTL_NAMES[name];
      const bool = ["tcpLoose", "tcpBeLiberal", "tcpIgnoreInvalidRst", "checksum", "acct"].includes(path);
      const partial: Record<string, unknown> = {};
      applySysctl(partial, `${name}=${bool ? 1 : 128}`);
      const c = resolveConntrackConfig(partial) as unknown as Record<string, unknown>;
      const got = path.startsWith("timeouts.") ? (c.timeouts as Record<string, unknown>)[path.slice(9)] : c[path];
      expect(got, name).toBe(bool ? true : 128);
    }
  });

  it("each sysctl resolves to the same default as Linux's", () => {
    const partial: Record<string, unknown> = {};
    const linux: Record<string, number> = {
      nf_conntrack_tcp_timeout_syn_sent: 120, nf_conntrack_tcp_timeout_syn_recv: 60,
      nf_conntrack_tcp_timeout_established: 432000, nf_conntrack_tcp_timeout_fin_wait: 120,
      nf_conntrack_tcp_timeout_close_wait: 60, nf_conntrack_tcp_timeout_last_ack: 30,
      nf_conntrack_tcp_timeout_time_wait: 120, nf_conntrack_tcp_timeout_close: 10,
      nf_conntrack_tcp_timeout_max_retrans: 300, nf_conntrack_tcp_timeout_unacknowledged: 300,
      nf_conntrack_udp_timeout: 30, nf_conntrack_udp_timeout_stream: 120, nf_conntrack_icmp_timeout: 30,
      nf_conntrack_icmpv6_timeout: 30, nf_conntrack_generic_timeout: 600, nf_conntrack_tcp_loose: 1,
      nf_conntrack_tcp_be_liberal: 0, nf_conntrack_tcp_ignore_invalid_rst: 0, nf_conntrack_tcp_max_retrans: 3,
      nf_conntrack_checksum: 1, nf_conntrack_acct: 0,
    };
    for (const [name, v] of Object.entries(linux)) applySysctl(partial, `${name}=${v}`);
    expect(resolveConntrackConfig(partial)).toEqual(resolveConntrackConfig());
  });

  it("rejects unknown names (nf_conntrack_helper does not exist since 6.0), naming them", () => {
    for (const name of ["nf_conntrack_helper", "nf_conntrack_bogus", "net.ipv4.ip_forward", "net.netfilter.", "max", "timeouts.udp"]) {
      const e = thrown(() => applySysctl({}, `${name}=1`));
      expect(e.code).toBe(ERR.CONFIG_UNKNOWN);
      expect(e.message).toContain(name.replace(/^net\.netfilter\./, ""));
    }
  });

  it("rejects values that are not integers, and a setting without '='", () => {
    for (const v of ["abc", "1.5", "1e3", "0x10", "", " ", "1 2", "true"]) {
      const partial: Record<string, unknown> = {};
      const e = thrown(() => applySysctl(partial, `nf_conntrack_max=${v}`));
      expect(e.code).toBe(ERR.CONFIG_FIELD);
      expect(e.message).toContain("nf_conntrack_max");
      expect(partial).toEqual({});
    }
    expect(thrown(() => applySysctl({}, "nf_conntrack_max")).code).toBe(ERR.USAGE);
  });

  it("an integer out of range passes applySysctl and is refused by resolve, naming the field", () => {
    const partial: Record<string, unknown> = {};
    applySysctl(partial, "nf_conntrack_max=-1");
    expect(thrown(() => resolveConntrackConfig(partial)).message).toMatch(/conntrack config: max: /);
    const p2: Record<string, unknown> = {};
    applySysctl(p2, "nf_conntrack_tcp_loose=2");
    expect(thrown(() => resolveConntrackConfig(p2)).message).toMatch(/conntrack config: tcpLoose: /);
  });
});
