/**
 * -m limit, hashlimit, recent and statistic with a manual clock
 * (`ctx.now`, ms = jiffies at HZ 1000). The expected numbers are worked
 * out from Linux's arithmetic in the comments.
 */
import { describe, expect, it } from "vitest";
import { HashlimitTable, RecentTable, seedStatisticRandom } from "../../src/rules/matches.js";
import { limitUser2Credits } from "../../src/rules/matches/limit.js";
import { ipv4Tcp, ipv4Udp, ipv6Udp } from "../helpers/packets.js";
import { Rig } from "./matches-helpers.js";

const from = (src: string, dport = 80, ttl = 64): Uint8Array => ipv4Udp({ src, dst: "10.9.9.9", sport: 1000, dport, ttl });

/** Evaluates `m` for one packet at time `t` (ms from the rig's start). */
function at(r: Rig, m: ReturnType<Rig["compile"]>, t: number, buf: Uint8Array): boolean {
  r.c.now = 1_000_000 + t;
  r.load(buf);
  return r.eval(m);
}

describe("-m limit", () => {
  it("user2credits as xt_limit computes it (HZ 1000, 32 credits per jiffy)", () => {
    expect(limitUser2Credits(3333)).toBe(10665); // 3333 * 32000 / 10000
    expect(limitUser2Credits(16665)).toBe(53328);
    expect(limitUser2Credits(864000000)).toBe(2764800000); // 1/day: divide first
  });
  it("3/sec burst 5: five at once, then one every 334 ms", () => {
    // cost 10665, bucket 53328: five packets leave 3 credits; 32 credits per ms refill
    // the next one after ceil((10665 - 3) / 32) = 334 ms.
    const r = new Rig();
    const m = r.compile("-m limit --limit 3/sec --limit-burst 5");
    const p = from("10.0.0.1");
    const got = [0, 0, 0, 0, 0, 0].map(() => at(r, m, 0, p));
    expect(got).toEqual([true, true, true, true, true, false]);
    expect(at(r, m, 333, p)).toBe(false);
    expect(at(r, m, 334, p)).toBe(true);
    expect(at(r, m, 335, p)).toBe(false);
  });
  it("defaults: 3/hour, burst 5; a long pause refills only up to the burst", () => {
    const r = new Rig();
    const m = r.compile("-m limit");
    const p = from("10.0.0.1");
    for (let i = 0; i < 5; i++) expect(at(r, m, 0, p)).toBe(true);
    expect(at(r, m, 1, p)).toBe(false);
    expect(at(r, m, 1_200_000, p)).toBe(true); // 20 minutes: one more
    expect(at(r, m, 1_200_001, p)).toBe(false);
    const n = [...Array(10)].filter(() => at(r, m, 100_000_000, p)).length;
    expect(n).toBe(5);
  });
  it("sustained rate: over 10 s of a packet every ms, 5 + 10 * 20 pass at 20/s", () => {
    const r = new Rig();
    const m = r.compile("-m limit --limit 20/s");
    const p = from("10.0.0.1");
    let n = 0;
    for (let t = 0; t < 10_000; t++) if (at(r, m, t, p)) n++;
    expect(n).toBeGreaterThanOrEqual(204);
    expect(n).toBeLessThanOrEqual(205);
  });
  it("rates and bursts iptables and Linux refuse", () => {
    const r = new Rig();
    expect(r.error("-m limit --limit-burst 0")).toMatch(/^t\.rules:1:10: limit: Overflow, try lower: 12000000\/0/);
    expect(r.error("-m limit --limit-burst 10001")).toBe('t.rules:1:10: limit: bad value for option "--limit-burst", or out of range (0-10000).');
    expect(r.error("-m limit --limit-burst 10000 --limit 1/day")).toMatch(/limit: Overflow, try lower: 864000000\/10000/);
    expect(r.error("-m limit --limit 0/sec")).toBe('t.rules:1:10: bad rate "0/sec"');
    expect(r.error("-m limit --limit 1/fortnight")).toBe('t.rules:1:10: bad rate "1/fortnight"');
    expect(r.error("-m limit --limit 5/")).toBe('t.rules:1:10: bad rate "5/"');
    expect(r.error("-m limit --limit 10001/sec")).toBe('t.rules:1:10: Rate too fast "10001/sec"');
    expect(r.error("-m limit --limit 10000/s")).toBe("");
    expect(r.error("-m limit --limit 3/M")).toBe("");
    expect(r.error("-m limit --limit 3x/h")).toBe("");
    expect(r.error("-m limit --limit 1000/sec --limit-burst 10000")).toBe("");
  });
});

describe("-m hashlimit", () => {
  it("5/sec burst 5 per source address; --hashlimit-above inverts", () => {
    // cost = 200000 * 137438953 credits; 2^37 credits per ms: one packet refills in 200 ms.
    const r = new Rig();
    const up = r.compile("-m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name t1");
    const a = from("10.0.0.1"), b = from("10.0.0.2");
    expect([0, 0, 0, 0, 0, 0].map(() => at(r, up, 0, a))).toEqual([true, true, true, true, true, false]);
    expect([0, 0, 0, 0, 0, 0].map(() => at(r, up, 0, b))).toEqual([true, true, true, true, true, false]);
    expect(at(r, up, 199, a)).toBe(false);
    expect(at(r, up, 200, a)).toBe(true);
    const r2 = new Rig();
    const ab = r2.compile("-m hashlimit --hashlimit-above 5/sec --hashlimit-mode srcip --hashlimit-name t2");
    expect([0, 0, 0, 0, 0, 0].map(() => at(r2, ab, 0, a))).toEqual([false, false, false, false, false, true]);
  });
  it("modes: no mode is one bucket for all; ports and masks select the key", () => {
    const r = new Rig();
    const all = r.compile("-m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-name all");
    expect(at(r, all, 0, from("10.0.0.1"))).toBe(true);
    expect(at(r, all, 0, from("10.0.0.2"))).toBe(false);
    const port = r.compile("-m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-mode dstport --hashlimit-name port");
    expect(at(r, port, 0, from("10.0.0.1", 80))).toBe(true);
    expect(at(r, port, 0, from("10.0.0.2", 80))).toBe(false);
    expect(at(r, port, 0, from("10.0.0.2", 81))).toBe(true);
    const net = r.compile("-m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name net");
    expect(at(r, net, 0, from("10.0.0.1"))).toBe(true);
    expect(at(r, net, 0, from("10.0.0.200"))).toBe(false);
    expect(at(r, net, 0, from("10.0.1.1"))).toBe(true);
    const r6 = new Rig(6);
    const v6 = r6.compile("-m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-mode srcip,srcport --hashlimit-srcmask 64 --hashlimit-name v6");
    const u6 = (src: string, sport: number): Uint8Array => ipv6Udp({ src, dst: "2001:db8::1", sport, dport: 9 });
    expect(at(r6, v6, 0, u6("2001:db8:1::1", 5))).toBe(true);
    expect(at(r6, v6, 0, u6("2001:db8:1::2", 5))).toBe(false);
    expect(at(r6, v6, 0, u6("2001:db8:1::2", 6))).toBe(true);
    expect(at(r6, v6, 0, u6("2001:db8:2::1", 5))).toBe(true);
  });
  it("bounded table: a full table gives no bucket (Linux drops: no match here); GC after the expiry frees entries", () => {
    const r = new Rig();
    const m = r.compile("-m hashlimit --hashlimit-upto 1/min --hashlimit-mode srcip --hashlimit-name small --hashlimit-htable-size 2 --hashlimit-htable-max 2 --hashlimit-htable-expire 1000 --hashlimit-htable-gcinterval 500");
    const t = r.pool.objects[r.pool.i32[m.off]!] as HashlimitTable;
    expect(t.capacity).toBe(2);
    expect(at(r, m, 0, from("10.0.0.1"))).toBe(true);
    expect(at(r, m, 0, from("10.0.0.2"))).toBe(true);
    expect(at(r, m, 0, from("10.0.0.3"))).toBe(false);
    expect(t.full).toBe(1);
    expect(at(r, m, 900, from("10.0.0.1"))).toBe(true); // burst 5: 10.0.0.1's bucket is still there (4 left)
    expect(at(r, m, 1600, from("10.0.0.3"))).toBe(true); // 10.0.0.2 expired at 1000, collected by the GC due at 1500
    expect(t.count).toBe(2);
  });
  it("the same name shares the table; a reload keeps it when the parameters are unchanged", () => {
    const r = new Rig();
    const spec = "-m hashlimit --hashlimit-upto 1/min --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name keep";
    const m1 = r.compile(spec), m2 = r.compile(spec);
    expect(r.pool.i32[m1.off]).toBe(r.pool.i32[m2.off]);
    expect(at(r, m1, 0, from("10.0.0.1"))).toBe(true);
    expect(at(r, m2, 0, from("10.0.0.1"))).toBe(true);
    expect(at(r, m1, 0, from("10.0.0.1"))).toBe(false);
    // Reload: a new pool, the previous ruleset's named objects.
    const r2 = new Rig();
    r2.named = r.named;
    const k = r2.compile(spec);
    expect(r2.pool.objects[r2.pool.i32[k.off]!]).toBe(r.pool.objects[r.pool.i32[m1.off]!]);
    expect(at(r2, k, 0, from("10.0.0.1"))).toBe(false); // the bucket survived the reload
    const r3 = new Rig();
    r3.named = r.named;
    const changed = r3.compile(spec.replace("1/min", "2/min"));
    expect(r3.pool.objects[r3.pool.i32[changed.off]!]).not.toBe(r.pool.objects[r.pool.i32[m1.off]!]);
    expect(at(r3, changed, 0, from("10.0.0.1"))).toBe(true);
  });
  it("refusals", () => {
    const r = new Rig();
    expect(r.error("-m hashlimit --hashlimit-name x")).toBe("t.rules:1:1: You have to specify --hashlimit");
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec")).toBe('t.rules:1:1: hashlimit: option "--hashlimit-name" must be specified');
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-above 3/sec --hashlimit-name x")).toBe(
      't.rules:1:37: hashlimit: option "--hashlimit-upto" cannot be used together with "--hashlimit-above".',
    );
    expect(r.error("-m hashlimit --hashlimit 5/sec --hashlimit-name x --hashlimit-mode foo")).toBe(
      't.rules:1:51: hashlimit: Bad value for "--hashlimit-mode" option: "foo"',
    );
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-mode SRCIP")).toMatch(/Bad value for "--hashlimit-mode" option: "SRCIP"/);
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-srcmask 33")).toMatch(/^t\.rules:1:56: hashlimit: --hashlimit-srcmask 33 is longer than the address/);
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-htable-expire 0")).toMatch(/expire must be above 0/);
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-htable-gcinterval 0")).toMatch(/gcinterval must be above 0/);
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-burst 0")).toBe(
      't.rules:1:56: hashlimit: bad value for option "--hashlimit-burst", or out of range (1-1000000).',
    );
    expect(r.error("-m hashlimit --hashlimit-upto 1000001/sec --hashlimit-name x")).toBe('t.rules:1:14: Rate too fast "1000001/sec"');
    expect(r.error("-m hashlimit --hashlimit-upto 1/day --hashlimit-name x --hashlimit-burst 1000000")).toMatch(/overflow, try lower: 86400000000\/1000000/);
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name a/b")).toMatch(/^t\.rules:1:37: hashlimit: invalid name "a\/b"/);
    expect(r.error("-m hashlimit --hashlimit-upto 5kb/s --hashlimit-name x")).toMatch(/byte rates .* are not supported/);
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-rate-match")).toMatch(/rate-match is not supported/);
    expect(r.error("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-burst 5kb")).toBe("");
  });
});

describe("-m recent", () => {
  it("--set, --rcheck, --update with --seconds and --hitcount, --remove", () => {
    const r = new Rig();
    const set = r.compile("-m recent --set --name ssh");
    const check = r.compile("-m recent --rcheck --name ssh");
    const upd = r.compile("-m recent --update --seconds 60 --hitcount 3 --name ssh");
    const rm = r.compile("-m recent --remove --name ssh");
    const a = from("10.0.0.1"), b = from("10.0.0.2");
    expect(at(r, check, 0, a)).toBe(false);
    expect(at(r, set, 0, a)).toBe(true);
    expect(at(r, check, 1, a)).toBe(true);
    expect(at(r, check, 1, b)).toBe(false);
    // One stamp so far: hitcount 3 not reached; --update does not add a stamp when it does not match.
    expect(at(r, upd, 2, a)).toBe(false);
    expect(at(r, set, 10_000, a)).toBe(true);
    expect(at(r, upd, 10_001, a)).toBe(false);
    expect(at(r, set, 20_000, a)).toBe(true);
    expect(at(r, upd, 20_001, a)).toBe(true); // 3 stamps within 60 s; it adds a 4th
    // At 70 s the stamp of t=0 is older than 60 s: 10 s, 20 s, 20.001 s count (3); the match adds 70 s.
    expect(at(r, upd, 70_000, a)).toBe(true);
    // At 80.002 s everything before 20.002 s is too old: only 70 s counts.
    expect(at(r, upd, 80_002, a)).toBe(false);
    expect(at(r, rm, 80_003, a)).toBe(true);
    expect(at(r, check, 80_004, a)).toBe(false);
    expect(at(r, rm, 80_005, a)).toBe(false);
  });
  it("the classic pair (update then set), as Linux 6.18 counted five packets: the update matched 2", () => {
    const r = new Rig();
    const upd = r.compile("-m recent --update --seconds 60 --hitcount 3 --name X");
    const set = r.compile("-m recent --set --name X");
    let n = 0;
    // Two rules without a target: every packet goes through both.
    for (let i = 0; i < 5; i++) {
      if (at(r, upd, i, from("127.0.0.1"))) n++;
      expect(at(r, set, i, from("127.0.0.1"))).toBe(true);
    }
    expect(n).toBe(2);
  });
  it("--rdest, --mask, --rttl, negation", () => {
    const r = new Rig();
    const setDst = r.compile("-m recent --set --rdest --name d");
    const chkDst = r.compile("-m recent --rcheck --rdest --name d");
    expect(at(r, setDst, 0, from("10.0.0.1"))).toBe(true);
    expect(at(r, chkDst, 1, from("10.0.0.77"))).toBe(true); // same destination 10.9.9.9
    const setNet = r.compile("-m recent --set --name n --mask 255.255.255.0");
    const chkNet = r.compile("-m recent --rcheck --name n");
    expect(at(r, setNet, 0, from("10.0.0.1"))).toBe(true);
    expect(at(r, chkNet, 1, from("10.0.0.99"))).toBe(true);
    expect(at(r, chkNet, 1, from("10.0.1.1"))).toBe(false);
    const setT = r.compile("-m recent --set --name ttl");
    const chkT = r.compile("-m recent --rcheck --rttl --name ttl");
    expect(at(r, setT, 0, from("10.0.0.1", 80, 64))).toBe(true);
    expect(at(r, chkT, 1, from("10.0.0.1", 80, 64))).toBe(true);
    expect(at(r, chkT, 1, from("10.0.0.1", 80, 63))).toBe(false);
    const notChk = r.compile("-m recent ! --rcheck --name ttl");
    expect(at(r, notChk, 1, from("10.0.0.1"))).toBe(false);
    expect(at(r, notChk, 1, from("10.0.0.2"))).toBe(true);
  });
  it("bounded at 100 addresses: the least recently seen makes room", () => {
    const r = new Rig();
    const set = r.compile("-m recent --set --name big");
    const chk = r.compile("-m recent --rcheck --name big");
    for (let i = 0; i < 100; i++) at(r, set, i, from(`10.1.0.${i}`));
    const t = r.pool.objects[r.pool.i32[set.off]!] as RecentTable;
    expect(t.entries).toBe(100);
    at(r, set, 200, from("10.1.0.0")); // refresh the first: now the second is the oldest
    at(r, set, 201, from("10.2.0.0"));
    expect(t.entries).toBe(100);
    expect(at(r, chk, 300, from("10.1.0.0"))).toBe(true);
    expect(at(r, chk, 300, from("10.1.0.1"))).toBe(false);
    expect(at(r, chk, 300, from("10.2.0.0"))).toBe(true);
  });
  it("--reap drops the oldest entry when its last stamp is older than --seconds", () => {
    const r = new Rig();
    const set = r.compile("-m recent --set --name reap");
    const chk = r.compile("-m recent --rcheck --seconds 10 --reap --name reap");
    const t = r.pool.objects[r.pool.i32[set.off]!] as RecentTable;
    at(r, set, 0, from("10.0.0.1"));
    at(r, set, 5_000, from("10.0.0.2"));
    expect(at(r, chk, 12_000, from("10.0.0.2"))).toBe(true);
    expect(t.entries).toBe(1); // 10.0.0.1 (last seen at 0) reaped
  });
  it("stamps per address: 32, or hitcount rounded up to a power of two; a larger need flushes and regrows", () => {
    const r = new Rig();
    const set = r.compile("-m recent --set --name h");
    const t = r.pool.objects[r.pool.i32[set.off]!] as RecentTable;
    expect(t.nstampsMask).toBe(31);
    at(r, set, 0, from("10.0.0.1"));
    r.compile("-m recent --rcheck --hitcount 20 --name h");
    expect(t.nstampsMask).toBe(31);
    expect(t.entries).toBe(1);
    r.compile("-m recent --rcheck --hitcount 100 --name h");
    expect(t.nstampsMask).toBe(127);
    expect(t.entries).toBe(0);
    const c99 = r.compile("-m recent --rcheck --hitcount 99 --name h");
    const c100 = r.compile("-m recent --rcheck --hitcount 100 --name h");
    for (let i = 0; i < 99; i++) at(r, set, i, from("10.0.0.1"));
    expect([at(r, c99, 99, from("10.0.0.1")), at(r, c100, 99, from("10.0.0.1"))]).toEqual([true, false]);
    at(r, set, 100, from("10.0.0.1"));
    expect(at(r, c100, 101, from("10.0.0.1"))).toBe(true);
    // The ring holds 128 stamps: more sets overwrite the oldest, the count stays at 128.
    for (let i = 0; i < 100; i++) at(r, set, 200 + i, from("10.0.0.1"));
    expect(t.nstamps[0]).toBe(128);
    expect(at(r, r.compile("-m recent --rcheck --hitcount 128 --name h"), 300, from("10.0.0.1"))).toBe(true);
    // At 1.25 s, --seconds 1 counts the stamps from 250 ms on: the sets at 250..299 ms.
    expect(at(r, r.compile("-m recent --rcheck --hitcount 50 --seconds 1 --name h"), 1250, from("10.0.0.1"))).toBe(true);
    expect(at(r, r.compile("-m recent --rcheck --hitcount 51 --seconds 1 --name h"), 1250, from("10.0.0.1"))).toBe(false);
  });
  it("refusals", () => {
    const r = new Rig();
    expect(r.error("-m recent")).toBe("t.rules:1:1: recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'");
    expect(r.error("-m recent --set --rcheck")).toBe('t.rules:1:17: recent: option "--set" cannot be used together with "--rcheck".');
    expect(r.error("-m recent --rcheck --reap")).toBe('t.rules:1:20: recent: option "--reap" also requires "--seconds".');
    expect(r.error("-m recent --set --seconds 5")).toMatch(/^t\.rules:1:17: recent: --seconds only works with --rcheck or --update/);
    expect(r.error("-m recent --update --seconds 0")).toBe('t.rules:1:20: recent: bad value for option "--seconds", or out of range (1-4294967295).');
    expect(r.error("-m recent --rcheck --hitcount 65536")).toBe("t.rules:1:20: recent: hitcount (65536) is larger than allowed maximum (65535)");
    expect(r.error("-m recent --set --name ..")).toMatch(/invalid name/);
    expect(r.error("-m recent --set --name ''")).toMatch(/invalid name/);
    expect(r.error("-m recent --rcheck --hitcount 65535")).toBe("");
  });
});

describe("-m statistic", () => {
  it("nth: every n-th packet from --packet p, deterministic", () => {
    const r = new Rig();
    const m0 = r.compile("-m statistic --mode nth --every 3 --packet 0");
    const m2 = r.compile("-m statistic --mode nth --every 3 --packet 2");
    const inv = r.compile("-m statistic --mode nth ! --every 3 --packet 0");
    const one = r.compile("-m statistic --mode nth --every 1 --packet 0");
    const seq = (m: ReturnType<Rig["compile"]>): string => [...Array(7)].map(() => (r.eval(m) ? "x" : ".")).join("");
    r.load(from("10.0.0.1"));
    expect(seq(m0)).toBe("x..x..x");
    expect(seq(m2)).toBe("..x..x.");
    expect(seq(inv)).toBe(".xx.xx.");
    expect(seq(one)).toBe("xxxxxxx");
  });
  it("random: probability 0 never, 1 always, 0.25 about a quarter (seeded)", () => {
    const r = new Rig();
    r.load(from("10.0.0.1"));
    seedStatisticRandom(12345);
    const p0 = r.compile("-m statistic --mode random --probability 0");
    const p1 = r.compile("-m statistic --mode random --probability 1");
    const q = r.compile("-m statistic --mode random --probability 0.25");
    const nq = r.compile("-m statistic --mode random ! --probability 0.25");
    let n0 = 0, n1 = 0, nQ = 0, nN = 0;
    for (let i = 0; i < 20000; i++) {
      if (r.eval(p0)) n0++;
      if (r.eval(p1)) n1++;
      if (r.eval(q)) nQ++;
      if (r.eval(nq)) nN++;
    }
    expect(n0).toBe(0);
    expect(n1).toBe(20000);
    expect(nQ).toBeGreaterThan(4600);
    expect(nQ).toBeLessThan(5400);
    expect(nN).toBeGreaterThan(14600);
    seedStatisticRandom(12345);
    const again = [...Array(50)].map(() => r.eval(q));
    seedStatisticRandom(12345);
    expect([...Array(50)].map(() => r.eval(q))).toEqual(again);
  });
  it("refusals (iptables' messages)", () => {
    const r = new Rig();
    expect(r.error("-m statistic --mode random --probability 1.5")).toBe('t.rules:1:28: statistic: bad value for option "--probability", or out of range (0-1).');
    expect(r.error("-m statistic --mode nth --every 3 --packet 3")).toBe("t.rules:1:35: the --packet p must be 0 <= p <= n-1");
    expect(r.error("-m statistic --mode nth --every 3")).toBe('t.rules:1:25: statistic: option "--every" also requires "--packet".');
    expect(r.error("-m statistic --mode nth --probability 0.5")).toBe("t.rules:1:1: --every and --packet must be specified when using nth mode");
    expect(r.error("-m statistic --mode random --every 3 --packet 0")).toBe("t.rules:1:1: --probability must be specified when using random mode");
    expect(r.error("-m statistic --probability 0.5")).toBe('t.rules:1:1: statistic: option "--mode" must be specified');
    expect(r.error("-m statistic --mode foo")).toBe('t.rules:1:14: Bad mode "foo"');
    expect(r.error("-m statistic --mode nth --every 0 --packet 0")).toBe('t.rules:1:25: statistic: bad value for option "--every", or out of range (1-4294967295).');
  });
});

// Used by the allocation test through the same rig; keep the TCP builder referenced here.
export const _syn = ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", flags: "S" });
