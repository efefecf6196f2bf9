/**
 * The hook order: which tables and chains a forwarded, a local-in and a
 * local-out packet traverse, and in what order (Linux's priorities: raw
 * -300, conntrack -200, mangle -150, nat -100 (DNAT) / 100 (SNAT), filter
 * 0); nat only for a connection's first packet; --ctstate as Linux shows
 * it at each point; jumps, gotos, RETURN, policies and counters as
 * ipt_do_table walks them. Real parser, compiler, tracker and a route
 * snapshot of a gateway (test/route/fixtures: lan0 = ifindex 3 with
 * 10.0.1.1/24, wan0 = ifindex 5 with 203.0.113.1/24).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CTINFO } from "../../src/conntrack/constants.js";
import { formatConntrackLine } from "../../src/conntrack/format.js";
import { ConnSnapshot } from "../../src/conntrack/snapshot.js";
import { resolveConntrackConfig } from "../../src/conntrack/config.js";
import { Pipeline, VERDICT, type PipelineTracer } from "../../src/pipeline/index.js";
import { buildSnapshot } from "../../src/route/mirror.js";
import { HOOK, HOOK_NAMES, type RuleContext } from "../../src/rules/context.js";
import { RuleEngine } from "../../src/rules/engine.js";
import { TABLES } from "../../src/rules/extensions.js";
import type { Ruleset } from "../../src/rules/ruleset.js";
import { engineDeps } from "../../src/rules/targets.js";
import { ipv4Tcp, ipv4Udp, ipv6Udp } from "../helpers/packets.js";

const FIX = new URL("../route/fixtures/", import.meta.url);
const json = (f: string): unknown => JSON.parse(readFileSync(new URL(f, FIX), "utf8"));
const ROUTES = buildSnapshot(json("addr.json"), json("route4.json"), json("route6.json"), 1);
const LAN = 3, WAN = 5;

/** Every built-in chain of every table, with one counting rule (no target) each. */
function countingRuleset(family: 4 | 6): string {
  return `*raw
-A PREROUTING
-A OUTPUT
COMMIT
*mangle
-A PREROUTING
-A INPUT
-A FORWARD
-A OUTPUT
-A POSTROUTING
COMMIT
*nat
-A PREROUTING
-A INPUT
-A OUTPUT
-A POSTROUTING
COMMIT
*filter
-A INPUT
-A FORWARD
-A OUTPUT
COMMIT
`.replace(/^/, family === 6 ? "# ip6tables\n" : "# iptables\n");
}

interface Step {
  at: string;
  verdict: number;
  ctstate: number;
}

class Recorder implements PipelineTracer {
  steps: Step[] = [];
  final = -1;
  table(_rs: Ruleset, table: number, hook: number, verdict: number, c: RuleContext): void {
    this.steps.push({ at: `${TABLES[table]} ${HOOK_NAMES[hook]}`, verdict, ctstate: c.ctinfo });
  }
  done(verdict: number): void {
    this.final = verdict;
  }
}

function setup(rules4: string, rules6?: string): { pipe: Pipeline; rec: Recorder; engine: RuleEngine } {
  const pipe = new Pipeline({ conntrack: resolveConntrackConfig({}) });
  const { deps } = engineDeps("nfqueue", { log: null, send: null, nflogDir: null, ifname: (i) => ROUTES.ifnameOf(i) });
  const engine = new RuleEngine(deps);
  engine.setInterfaceNames((i) => ROUTES.ifnameOf(i));
  engine.load({ ipv4: { file: "v4.rules", text: rules4 }, ...(rules6 !== undefined ? { ipv6: { file: "v6.rules", text: rules6 } } : {}) });
  const rec = new Recorder();
  engine.tracer = rec;
  pipe.rules = engine;
  pipe.routes = ROUTES;
  return { pipe, rec, engine };
}

function send(pipe: Pipeline, pkt: Uint8Array, hook: number, inIf: number, outIf = 0, now = 1000): number {
  pipe.hook = hook;
  pipe.inIfindex = inIf;
  pipe.outIfindex = outIf;
  pipe.mark = 0;
  return pipe.process(pkt, 0, pkt.length, now, 0, 0);
}

const syn = ipv4Tcp({ src: "10.0.1.2", dst: "203.0.113.2", sport: 40000, dport: 80, seq: 100, flags: "S", options: { mss: 1460 } });
const synAck = ipv4Tcp({ src: "203.0.113.2", dst: "10.0.1.2", sport: 80, dport: 40000, seq: 500, ack: 101, flags: "SA", options: { mss: 1460 } });

describe("hook order", () => {
  it("a forwarded packet: raw, mangle, nat PREROUTING, mangle and filter FORWARD, mangle and nat POSTROUTING", () => {
    const { pipe, rec } = setup(countingRuleset(4));
    expect(send(pipe, syn, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    expect(rec.steps.map((s) => s.at)).toEqual([
      "raw PREROUTING", "mangle PREROUTING", "nat PREROUTING", "mangle FORWARD", "filter FORWARD", "mangle POSTROUTING", "nat POSTROUTING",
    ]);
    // Before conntrack the packet has no connection (INVALID, as xt_conntrack says); after it, NEW.
    expect(rec.steps.map((s) => s.ctstate)).toEqual([CTINFO.INVALID, ...new Array(6).fill(CTINFO.NEW)]);
  });

  it("the reply is ESTABLISHED and skips the nat chains (first packet of a connection only)", () => {
    const { pipe, rec } = setup(countingRuleset(4));
    send(pipe, syn, HOOK.PREROUTING, LAN);
    rec.steps = [];
    expect(send(pipe, synAck, HOOK.PREROUTING, WAN, 0, 1001)).toBe(VERDICT.ACCEPT);
    expect(rec.steps.map((s) => s.at)).toEqual(["raw PREROUTING", "mangle PREROUTING", "mangle FORWARD", "filter FORWARD", "mangle POSTROUTING"]);
    expect(rec.steps.slice(1).every((s) => s.ctstate === CTINFO.ESTABLISHED_REPLY)).toBe(true);
  });

  it("a packet for the gateway itself: INPUT chains, then nat INPUT, no POSTROUTING", () => {
    const { pipe, rec } = setup(countingRuleset(4));
    const toGw = ipv4Udp({ src: "10.0.1.2", dst: "10.0.1.1", sport: 5000, dport: 53, payload: new Uint8Array(4) });
    expect(send(pipe, toGw, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    expect(rec.steps.map((s) => s.at)).toEqual(["raw PREROUTING", "mangle PREROUTING", "nat PREROUTING", "mangle INPUT", "filter INPUT", "nat INPUT"]);
  });

  it("a packet the gateway sends: OUTPUT chains (raw, mangle, nat, filter), then POSTROUTING", () => {
    const { pipe, rec } = setup(countingRuleset(4));
    const fromGw = ipv4Udp({ src: "203.0.113.1", dst: "203.0.113.2", sport: 5000, dport: 53, payload: new Uint8Array(4) });
    expect(send(pipe, fromGw, HOOK.OUTPUT, 0, WAN)).toBe(VERDICT.ACCEPT);
    expect(rec.steps.map((s) => s.at)).toEqual([
      "raw OUTPUT", "mangle OUTPUT", "nat OUTPUT", "filter OUTPUT", "mangle POSTROUTING", "nat POSTROUTING",
    ]);
  });

  it("IPv6 takes the same path with the ip6tables ruleset; without one IPv4's does not apply", () => {
    const { pipe, rec } = setup(countingRuleset(4), countingRuleset(6));
    const u6 = ipv6Udp({ src: "2001:db8:1::2", dst: "2001:db8:2::2", sport: 5000, dport: 53, payload: new Uint8Array(4) });
    expect(send(pipe, u6, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    expect(rec.steps.map((s) => s.at)).toEqual([
      "raw PREROUTING", "mangle PREROUTING", "nat PREROUTING", "mangle FORWARD", "filter FORWARD", "mangle POSTROUTING", "nat POSTROUTING",
    ]);
  });
});

describe("verdicts, chains and counters", () => {
  const rules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CHECK - [0:0]
:LEAF - [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j CHECK
-A CHECK -p tcp --dport 22 -j DROP
-A CHECK -p tcp -g LEAF
-A CHECK -j ACCEPT
-A LEAF -p tcp --dport 80 -j RETURN
-A LEAF -j DROP
COMMIT
`;

  it("a DROP policy drops what no rule accepts, counted on the policy; nothing enters the table", () => {
    const { pipe, engine } = setup(rules);
    const inbound = ipv4Tcp({ src: "203.0.113.2", dst: "10.0.1.2", sport: 5555, dport: 22, seq: 1, flags: "S" });
    expect(send(pipe, inbound, HOOK.PREROUTING, WAN)).toBe(VERDICT.DROP);
    expect(pipe.ct.table.count).toBe(0);
    expect(engine.save(4)).toContain(":FORWARD DROP [1:");
  });

  it("a goto returns past its caller: RETURN in LEAF ends CHECK too, and the FORWARD policy decides", () => {
    const { pipe, engine } = setup(rules);
    // dport 80: CHECK -g LEAF, LEAF RETURN → back to FORWARD after the jump to CHECK → end of FORWARD → policy DROP.
    expect(send(pipe, syn, HOOK.PREROUTING, LAN)).toBe(VERDICT.DROP);
    const saved = engine.save(4)!;
    expect(saved).toMatch(/\[1:\d+\] -A FORWARD -i lan0 -o wan0 -j CHECK/);
    expect(saved).toMatch(/\[1:\d+\] -A LEAF -p tcp -m tcp --dport 80 -j RETURN/);
    expect(saved).toMatch(/\[0:0\] -A CHECK -j ACCEPT/);
    expect(saved).toContain(":FORWARD DROP [1:");
  });

  it("UDP falls through CHECK to its ACCEPT; the reply is ESTABLISHED and accepted by the first rule", () => {
    const { pipe, engine } = setup(rules);
    const q = ipv4Udp({ src: "10.0.1.2", dst: "203.0.113.2", sport: 5000, dport: 53, payload: new Uint8Array(4) });
    const a = ipv4Udp({ src: "203.0.113.2", dst: "10.0.1.2", sport: 53, dport: 5000, payload: new Uint8Array(4) });
    expect(send(pipe, q, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    expect(send(pipe, a, HOOK.PREROUTING, WAN, 0, 1001)).toBe(VERDICT.ACCEPT);
    expect(engine.save(4)).toMatch(/\[1:\d+\] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT/);
    expect(pipe.ct.table.count).toBe(1);
  });

  it("CT --notrack in raw makes the packet UNTRACKED: no entry, --ctstate UNTRACKED matches", () => {
    const { pipe, rec } = setup(`*raw
-A PREROUTING -p udp --dport 53 -j CT --notrack
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT
COMMIT
`);
    const q = ipv4Udp({ src: "10.0.1.2", dst: "203.0.113.2", sport: 5000, dport: 53, payload: new Uint8Array(4) });
    expect(send(pipe, q, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    expect(pipe.ct.table.count).toBe(0);
    expect(rec.steps.find((s) => s.at === "filter FORWARD")!.ctstate).toBe(CTINFO.UNTRACKED);
  });

  it("MARK in mangle is seen by -m mark later and given back with the verdict; CONNMARK saves it on the connection", () => {
    const { pipe } = setup(`*mangle
-A PREROUTING -i lan0 -j MARK --set-mark 0x10/0xff
-A PREROUTING -j CONNMARK --save-mark
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m mark --mark 0x10/0xff -j ACCEPT
COMMIT
`);
    expect(send(pipe, syn, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    expect(pipe.mark).toBe(0x10);
    const e = pipe.ct.entry;
    expect(pipe.ct.table.mark(e)).toBe(0x10);
  });

  it("loading a bad ruleset changes nothing: the old one stays live", () => {
    const { pipe, engine } = setup(rules);
    expect(() => engine.load({ ipv4: { file: "bad.rules", text: "*filter\n-A FORWARD -j NOWHERE\nCOMMIT\n" } })).toThrow(/^bad\.rules:2:/);
    const inbound = ipv4Tcp({ src: "203.0.113.2", dst: "10.0.1.2", sport: 5555, dport: 22, seq: 1, flags: "S" });
    expect(send(pipe, inbound, HOOK.PREROUTING, WAN)).toBe(VERDICT.DROP);
  });
});

describe("a dying connection", () => {
  it("the RST that answers a SYN kills the entry, yet is ESTABLISHED for the rules it still traverses (as in Linux)", () => {
    const { pipe, rec } = setup(`*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`);
    expect(send(pipe, syn, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    const rst = ipv4Tcp({ src: "203.0.113.2", dst: "10.0.1.2", sport: 80, dport: 40000, seq: 0, ack: 101, flags: "RA", win: 0 });
    rec.steps = [];
    expect(send(pipe, rst, HOOK.PREROUTING, WAN, 0, 1001)).toBe(VERDICT.ACCEPT);
    expect(rec.steps.find((s) => s.at === "filter FORWARD")!.ctstate).toBe(CTINFO.ESTABLISHED_REPLY);
    expect(pipe.ct.table.count).toBe(0);
  });
});

describe("CT --helper", () => {
  it("assigns the helper to the connection the packet creates (conntrack -L shows helper=ftp), not to existing ones", () => {
    const { pipe } = setup(`*raw
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
COMMIT
`);
    const ctl = ipv4Tcp({ src: "10.0.1.2", dst: "203.0.113.2", sport: 40021, dport: 21, seq: 1, flags: "S" });
    expect(send(pipe, ctl, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    const lines: string[] = [];
    const snap = new ConnSnapshot();
    pipe.ct.forEachEntry((i) => { pipe.ct.snapshot(i, 1000, snap); lines.push(formatConntrackLine(snap, false)); });
    expect(lines).toEqual(["tcp      6 120 SYN_SENT src=10.0.1.2 dst=203.0.113.2 sport=40021 dport=21 [UNREPLIED] src=203.0.113.2 dst=10.0.1.2 sport=21 dport=40021 mark=0 helper=ftp use=1"]);
    expect(send(pipe, syn, HOOK.PREROUTING, LAN)).toBe(VERDICT.ACCEPT);
    expect(pipe.ct.table.helper[pipe.ct.entry]).toBe(0);
  });
});
