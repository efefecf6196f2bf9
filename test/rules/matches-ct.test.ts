/**
 * -m conntrack, state, mark and connmark against a real tracker: packets
 * built with test/helpers/packets.ts go through Conntrack.process, the
 * rule context sees the ctinfo and entry the tracker gives.
 */
import { describe, expect, it } from "vitest";
import { CTINFO, STATUS } from "../../src/conntrack/constants.js";
import { ipv4Icmp, ipv4IcmpError, ipv4Tcp, ipv4Udp, ipv6Tcp } from "../helpers/packets.js";
import { Rig } from "./matches-helpers.js";

const C = { src: "10.0.1.2", dst: "192.0.2.80", sport: 40000, dport: 80 };
const S = { src: "192.0.2.80", dst: "10.0.1.2", sport: 80, dport: 40000 };
const syn = ipv4Tcp({ ...C, seq: 100, flags: "S", options: { mss: 1460 } });
const synack = ipv4Tcp({ ...S, seq: 500, ack: 101, flags: "SA", options: { mss: 1460 } });
const ack = ipv4Tcp({ ...C, seq: 101, ack: 501, flags: "A" });

/** A rig with the TCP handshake's first `n` packets tracked and confirmed. */
function handshake(n: number): Rig {
  const r = new Rig();
  for (const p of [syn, synack, ack].slice(0, n)) r.track(p);
  return r;
}

describe("--ctstate and -m state", () => {
  it("NEW on the first packet (pending, then confirmed), ESTABLISHED after the reply", () => {
    const r = new Rig();
    const st = r.compile("-m conntrack --ctstate NEW");
    const est = r.compile("-m conntrack --ctstate ESTABLISHED,RELATED");
    const mstate = r.compile("-m state --state NEW");
    const notNew = r.compile("-m conntrack ! --ctstate NEW");
    expect(r.track(syn, false)).toBe(CTINFO.NEW);
    expect([r.eval(st), r.eval(est), r.eval(mstate), r.eval(notNew)]).toEqual([true, false, true, false]);
    r.ct.confirm(r.c.now);
    expect(r.track(synack)).toBe(CTINFO.ESTABLISHED_REPLY);
    expect([r.eval(st), r.eval(est), r.eval(mstate), r.eval(notNew)]).toEqual([false, true, false, true]);
    expect(r.track(ack)).toBe(CTINFO.ESTABLISHED);
    expect(r.eval(est)).toBe(true);
  });
  it("INVALID: no connection; other options are then ignored", () => {
    const r = new Rig();
    expect(r.track(ipv4Tcp({ ...C, flags: "SF" }))).toBe(CTINFO.INVALID);
    expect(r.eval(r.compile("-m conntrack --ctstate INVALID"))).toBe(true);
    expect(r.eval(r.compile("-m state --state INVALID"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctstate INVALID --ctproto udp"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack ! --ctstate INVALID"))).toBe(false);
    // No --ctstate and no connection: conntrack_mt returns false whatever the negations.
    expect(r.eval(r.compile("-m conntrack ! --ctstatus ASSURED"))).toBe(false);
    expect(r.eval(r.compile("-m conntrack ! --ctproto udp"))).toBe(false);
    expect(r.eval(r.compile("-m state ! --state NEW"))).toBe(true);
  });
  it("UNTRACKED", () => {
    const r = new Rig();
    r.load(syn);
    r.c.ctinfo = CTINFO.UNTRACKED;
    r.ct.entry = -1;
    expect(r.eval(r.compile("-m conntrack --ctstate UNTRACKED"))).toBe(true);
    expect(r.eval(r.compile("-m state --state UNTRACKED"))).toBe(true);
    expect(r.eval(r.compile("-m state --state INVALID"))).toBe(false);
    expect(r.eval(r.compile("-m conntrack --ctstate INVALID"))).toBe(false);
  });
  it("RELATED: an ICMP error about a tracked UDP flow", () => {
    const r = new Rig();
    const out = ipv4Udp({ src: "10.0.1.2", dst: "192.0.2.53", sport: 5000, dport: 53 });
    r.track(out);
    const err = ipv4IcmpError({ src: "198.51.100.1", dst: "10.0.1.2", type: 3, code: 3, inner: out });
    expect(r.track(err)).toBe(CTINFO.RELATED_REPLY);
    expect(r.eval(r.compile("-m conntrack --ctstate RELATED"))).toBe(true);
    expect(r.eval(r.compile("-m state --state RELATED"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctstate RELATED --ctproto udp --ctorigdst 192.0.2.53 --ctdir REPLY"))).toBe(true);
  });
  it("SNAT / DNAT from the connection's status", () => {
    const r = handshake(2);
    const snat = r.compile("-m conntrack --ctstate SNAT"), dnat = r.compile("-m conntrack --ctstate DNAT");
    expect([r.eval(snat), r.eval(dnat)]).toEqual([false, false]);
    r.ct.table.status[r.ct.entry] |= STATUS.SRC_NAT;
    expect([r.eval(snat), r.eval(dnat)]).toEqual([true, false]);
    expect(r.eval(r.compile("-m conntrack --ctstate DNAT,ESTABLISHED"))).toBe(true);
  });
  it("names: any case-insensitive prefix, comma lists; iptables' messages", () => {
    const r = handshake(2);
    expect(r.eval(r.compile("-m conntrack --ctstate new,est"))).toBe(true);
    expect(r.error("-m conntrack --ctstate NEW,,ESTABLISHED")).toBe('t.rules:1:14: Bad ctstate ",ESTABLISHED"');
    expect(r.error("-m conntrack --ctstate FOO,NEW")).toBe('t.rules:1:14: Bad ctstate "FOO,NEW"');
    expect(r.error("-m conntrack --ctstatus FOO")).toBe('t.rules:1:14: Bad ctstatus "FOO"');
    expect(r.error("-m state --state SNAT")).toBe('t.rules:1:10: Bad state "SNAT"');
    expect(r.error("-m conntrack")).toBe("t.rules:1:1: conntrack: At least one option is required");
    expect(r.error("-m conntrack --ctstate NEW --ctstate ESTABLISHED")).toBe('t.rules:1:28: conntrack: option "--ctstate" can only be used once.');
    expect(r.error("-m conntrack --ctdir foo")).toBe('t.rules:1:14: conntrack: Bad value for "--ctdir" option: "foo"');
    expect(r.error("-m conntrack --ctproto foo")).toBe('t.rules:1:14: unknown protocol "foo" specified');
  });
});

describe("--ctstatus, --ctdir, --ctproto", () => {
  it("status bits as the handshake sets them", () => {
    const r = new Rig();
    const seen = r.compile("-m conntrack --ctstatus SEEN_REPLY"), assured = r.compile("-m conntrack --ctstatus ASSURED");
    const confirmed = r.compile("-m conntrack --ctstatus CONFIRMED"), none = r.compile("-m conntrack --ctstatus NONE");
    const notNone = r.compile("-m conntrack ! --ctstatus NONE");
    r.track(syn, false);
    // The first packet's connection is not confirmed yet while the rules see it (Linux confirms after them).
    expect([r.eval(seen), r.eval(assured), r.eval(confirmed), r.eval(none), r.eval(notNone)]).toEqual([false, false, false, false, true]);
    r.ct.confirm(r.c.now);
    r.track(synack);
    expect([r.eval(seen), r.eval(assured), r.eval(confirmed)]).toEqual([true, false, true]);
    r.track(ack);
    expect([r.eval(seen), r.eval(assured), r.eval(confirmed)]).toEqual([true, true, true]);
    expect(r.eval(r.compile("-m conntrack --ctstatus expected,assured"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack ! --ctstatus ASSURED"))).toBe(false);
  });
  it("direction and protocol", () => {
    const r = new Rig();
    const orig = r.compile("-m conntrack --ctdir ORIGINAL"), reply = r.compile("-m conntrack --ctdir reply");
    r.track(syn);
    expect([r.eval(orig), r.eval(reply)]).toEqual([true, false]);
    r.track(synack);
    expect([r.eval(orig), r.eval(reply)]).toEqual([false, true]);
    expect(r.eval(r.compile("-m conntrack --ctproto tcp"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctproto 6"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctproto udp"))).toBe(false);
    expect(r.eval(r.compile("-m conntrack ! --ctproto udp"))).toBe(true);
  });
});

describe("tuple addresses and ports", () => {
  it("orig/reply src/dst with prefix and dotted masks; ports and ranges", () => {
    const r = handshake(2);
    const t = (s: string): boolean => r.eval(r.compile(`-m conntrack ${s}`));
    expect(t("--ctorigsrc 10.0.1.2")).toBe(true);
    expect(t("--ctorigsrc 10.0.0.0/16")).toBe(true);
    expect(t("--ctorigsrc 10.0.0.0/24")).toBe(false);
    expect(t("--ctorigsrc 10.0.0.0/255.255.0.0")).toBe(true);
    expect(t("! --ctorigsrc 10.0.0.0/8")).toBe(false);
    expect(t("--ctorigdst 192.0.2.80")).toBe(true);
    expect(t("--ctreplsrc 192.0.2.80 --ctrepldst 10.0.1.2/32")).toBe(true);
    expect(t("--ctrepldst 10.0.1.3")).toBe(false);
    expect(t("--ctorigsrc 0/0")).toBe(true);
    expect(t("--ctorigdstport 80")).toBe(true);
    expect(t("--ctorigsrcport 40000:40010")).toBe(true);
    expect(t("--ctreplsrcport 80 --ctrepldstport 40000")).toBe(true);
    expect(t("! --ctorigdstport 80")).toBe(false);
    expect(t("--ctorigdstport 90:70")).toBe(false); // kept reversed: never matches
  });
  it("ICMP: the tuple ports are the echo id and type << 8 | code (Linux's u.all)", () => {
    const r = new Rig();
    r.track(ipv4Icmp({ src: "10.0.1.2", dst: "192.0.2.1", type: 8, code: 0, id: 777 }));
    expect(r.eval(r.compile("-m conntrack --ctorigsrcport 777"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctorigdstport 2048"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctreplsrcport 777 --ctrepldstport 0"))).toBe(true);
  });
  it("IPv6 addresses", () => {
    const r = new Rig(6);
    r.track(ipv6Tcp({ src: "2001:db8:1::2", dst: "2001:db8:2::80", sport: 1, dport: 2, flags: "S" }));
    expect(r.eval(r.compile("-m conntrack --ctorigsrc 2001:db8:1::/48"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctorigsrc 2001:db8:1::/64"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctorigsrc 2001:db8:2::/48"))).toBe(false);
    expect(r.eval(r.compile("-m conntrack --ctrepldst 2001:db8:1::2"))).toBe(true);
  });
  it("address errors", () => {
    const r = new Rig();
    expect(r.error("-m conntrack --ctorigsrc 10.0.0.1/33")).toBe('t.rules:1:14: conntrack: invalid mask "33" specified');
    expect(r.error("-m conntrack --ctorigsrc nosuchhost.invalid")).toMatch(/^t\.rules:1:14: conntrack: host\/network "nosuchhost.invalid" not found/);
  });
});

describe("--ctexpire", () => {
  it("whole seconds left; 0 while unconfirmed", () => {
    const r = new Rig();
    r.track(syn, false);
    expect(r.eval(r.compile("-m conntrack --ctexpire 0"))).toBe(true);
    r.ct.confirm(r.c.now);
    // SYN_SENT: 120 s.
    expect(r.eval(r.compile("-m conntrack --ctexpire 120"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctexpire 100:119"))).toBe(false);
    r.c.now += 30_500;
    expect(r.eval(r.compile("-m conntrack --ctexpire 89"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack ! --ctexpire 89"))).toBe(false);
    expect(r.eval(r.compile("-m conntrack --ctexpire 80:4294967295"))).toBe(true);
    expect(r.eval(r.compile("-m conntrack --ctexpire 90:80"))).toBe(false);
  });
});

describe("-m mark, -m connmark", () => {
  it("mark value[/mask], negation, high bit", () => {
    const r = new Rig();
    r.load(syn);
    r.c.mark = 0x1234;
    expect(r.eval(r.compile("-m mark --mark 0x1234"))).toBe(true);
    expect(r.eval(r.compile("-m mark --mark 0x30/0xf0"))).toBe(true);
    expect(r.eval(r.compile("-m mark --mark 0x20/0xf0"))).toBe(false);
    expect(r.eval(r.compile("-m mark ! --mark 5"))).toBe(true);
    r.c.mark = 0xdeadbeef;
    expect(r.eval(r.compile("-m mark --mark 0xdeadbeef"))).toBe(true);
    expect(r.eval(r.compile("-m mark --mark 0x80000000/0x80000000"))).toBe(true);
    expect(r.eval(r.compile("-m mark --mark 3735928559"))).toBe(true);
  });
  it("connmark: the connection's mark; no connection, no match even negated", () => {
    const r = handshake(1);
    const m = r.compile("-m connmark --mark 7"), nm = r.compile("-m connmark ! --mark 7");
    expect([r.eval(m), r.eval(nm)]).toEqual([false, true]);
    r.ct.table.setMark(r.ct.entry, 0xffff0007);
    expect([r.eval(m), r.eval(nm)]).toEqual([false, true]);
    expect(r.eval(r.compile("-m connmark --mark 7/0xff"))).toBe(true);
    expect(r.eval(r.compile("-m connmark --mark 0xffff0007"))).toBe(true);
    r.track(ipv4Tcp({ ...C, flags: "SF" }));
    expect([r.eval(m), r.eval(nm)]).toEqual([false, false]);
  });
  it("errors", () => {
    const r = new Rig();
    const msg = 't.rules:1:9: mark: bad integer value for option "--mark", or out of range.';
    expect(r.error("-m mark --mark 4294967296")).toBe(msg);
    expect(r.error("-m mark --mark foo")).toBe(msg);
    expect(r.error("-m mark --mark 1/")).toBe(msg);
    expect(r.error("-m mark")).toBe('t.rules:1:1: mark: option "--mark" must be specified');
    expect(r.error("-m mark --limit 1")).toBe('t.rules:1:9: mark: unknown option "--limit"');
  });
});
