/**
 * The matches module as the rule compiler sees it: every extension marked
 * `support: yes` compiles, the others are refused with their reason, a
 * family-specific match is refused in the other family, matchNeeds tells
 * what the I/O path must provide, and a whole chain of matches evaluates
 * from one pool. Each match's behaviour has its own file
 * (matches-l4, -ct, -rate, -string, -misc), allocation-freedom is in
 * matches-alloc.
 */
import { describe, expect, it } from "vitest";
import { MATCHES } from "../../src/rules/extensions.js";
import { KIND, KIND_NAMES, NEEDS, matchNeeds } from "../../src/rules/matches.js";
import { ipv4Tcp } from "../helpers/packets.js";
import { Rig, mnode } from "./matches-helpers.js";

describe("compileMatch", () => {
  it("every supported extension has a compiler; the rest are refused with their reason", () => {
    const samples: Record<string, string> = {
      tcp: "-p tcp -m tcp", udp: "-p udp -m udp", sctp: "-p sctp -m sctp", icmp: "-p icmp -m icmp", icmp6: "-p icmpv6 -m icmp6",
      conntrack: "-m conntrack --ctstate NEW", state: "-m state --state NEW", multiport: "-p tcp -m multiport --ports 1",
      iprange: "-m iprange --src-range 10.0.0.1", mark: "-m mark --mark 1", connmark: "-m connmark --mark 1", limit: "-m limit",
      hashlimit: "-m hashlimit --hashlimit 1/s --hashlimit-name a", recent: "-m recent --set", statistic: "-m statistic --mode nth --every 2 --packet 0",
      string: "-m string --algo bm --string a", length: "-m length --length 1", ttl: "-m ttl --ttl-eq 1", hl: "-m hl --hl-eq 1",
      pkttype: "-m pkttype --pkt-type unicast", mac: "-m mac --mac-source 0:0:0:0:0:1", owner: "-m owner --socket-exists",
      frag: "-m frag", comment: "-m comment --comment x", addrtype: "-m addrtype --dst-type LOCAL",
    };
    for (const [name, spec] of Object.entries(MATCHES)) {
      const family = spec.family === 6 ? 6 : 4;
      const r = new Rig(family);
      r.chain = name === "owner" ? "OUTPUT" : "INPUT";
      if (spec.support.state === "yes") {
        expect(samples[name], `a sample for ${name}`).toBeDefined();
        expect(r.error(samples[name]!), name).toBe("");
      } else {
        expect(r.error(`-m ${name}`), name).toBe(`t.rules:1:1: -m ${name}: ${spec.support.reason}`);
      }
    }
  });
  it("family-specific matches are refused in the other family", () => {
    expect(new Rig(6).error("-p icmp -m icmp --icmp-type 8")).toBe("t.rules:1:9: -m icmp is IPv4 only (iptables), not valid in an IPv6 ruleset");
    expect(new Rig(4).error("-m frag")).toBe("t.rules:1:1: -m frag is IPv6 only (ip6tables), not valid in an IPv4 ruleset");
    expect(new Rig(4).error("-m nosuch")).toBe('t.rules:1:1: unknown match "nosuch"');
  });
  it("`!` only where iptables allows it", () => {
    expect(new Rig().error("-m limit ! --limit 3/s")).toBe('t.rules:1:10: limit: option "--limit" cannot be inverted.');
  });
  it("an implicit match (-p tcp --dport) is the same match", () => {
    const r = new Rig();
    const syn = ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 22, flags: "S" });
    expect(r.test("-p tcp --dport 22 --syn", syn)).toBe(true);
    expect(r.test("-p tcp --sport 22", syn)).toBe(false);
  });
  it("one pool holds a chain of matches; each evaluates from its own words", () => {
    const r = new Rig();
    const ms = r.compileAll("-p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m limit --limit 1/s -m comment --comment ssh");
    expect(ms.map((m) => KIND_NAMES[m.kind])).toEqual(["tcp", "conntrack", "limit", "comment"]);
    r.track(ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 22, flags: "S" }), false);
    expect(ms.map((m) => r.eval(m))).toEqual([true, true, true, true]);
  });
});

describe("matchNeeds", () => {
  it("mac needs the link-layer source, owner the socket owner, addrtype and pkttype the route mirror", () => {
    expect(matchNeeds(mnode("-m mac --mac-source 0:0:0:0:0:1"))).toBe(NEEDS.HWADDR);
    expect(matchNeeds(mnode("-m owner --uid-owner 0"))).toBe(NEEDS.OWNER);
    expect(matchNeeds(mnode("-m addrtype --dst-type LOCAL"))).toBe(NEEDS.ROUTES);
    expect(matchNeeds(mnode("-m pkttype --pkt-type broadcast"))).toBe(NEEDS.ROUTES);
    expect(matchNeeds(mnode("-p tcp -m tcp --dport 1"))).toBe(0);
    expect(matchNeeds(mnode("-m conntrack --ctstate NEW"))).toBe(0);
  });
  it("kinds are small distinct integers with names", () => {
    const values = Object.values(KIND);
    expect(new Set(values).size).toBe(values.length);
    for (const v of values) expect(KIND_NAMES[v]).toBeTypeOf("string");
  });
});
