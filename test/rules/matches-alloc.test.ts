/**
 * Allocation-freedom of evalMatch (STYLE.md principle 12): after warm-up,
 * 300,000 packets (IPv4 TCP/UDP/ICMP flows and IPv6 UDP, tracked by a real
 * Conntrack) are each evaluated against one compiled match of every kind
 * (limit, hashlimit and recent tables included, addrtype and pkttype over
 * the route mirror's snapshot): no garbage collection, no heap growth.
 *
 * Measured in a child process, as test/conntrack/alloc.test.ts does (the
 * vitest worker allocates on the same heap): src/ and the packet builders
 * are transpiled into a temporary directory, the MatchNodes are built here
 * and handed over as JSON, and the child script is written from this file.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseFragment } from "./matches-helpers.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
let out = "";

function transpile(rel: string): void {
  const js = ts.transpileModule(readFileSync(join(ROOT, rel), "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: rel,
  }).outputText;
  const dest = join(out, rel.replace(/\.ts$/, ".js"));
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, js);
}

/** One compiled match per kind, by family: [text, family]. */
const MATCHES: [string, 4 | 6][] = [
  ["-p tcp -m tcp --sport 1:65535 ! --dport 22 --tcp-flags SYN,ACK ACK --tcp-option 8", 4],
  ["-p udp -m udp --dport 53", 4],
  ["-p sctp -m sctp --dport 1:100", 4],
  ["-p icmp -m icmp --icmp-type echo-request", 4],
  ["-p icmpv6 -m icmp6 --icmpv6-type echo-request", 6],
  ["-m conntrack --ctstate NEW,ESTABLISHED --ctstatus ASSURED --ctproto tcp --ctorigsrc 10.0.0.0/8 --ctrepldstport 1:65535 --ctexpire 0:1000000 --ctdir ORIGINAL", 4],
  ["-m conntrack --ctorigdst 2001:db8::/32", 6],
  ["-m state --state ESTABLISHED", 4],
  ["-p tcp -m multiport --ports 22,80:90,443", 4],
  ["-m iprange --src-range 10.1.0.0-10.1.255.255 ! --dst-range 192.0.2.0-192.0.2.9", 4],
  ["-m iprange --src-range 2001:db8::-2001:db8::ffff", 6],
  ["-m mark --mark 0x10/0xf0", 4],
  ["-m connmark ! --mark 0", 4],
  ["-m limit --limit 1000/sec --limit-burst 50", 4],
  ["-m hashlimit --hashlimit-upto 100/sec --hashlimit-mode srcip,dstport --hashlimit-name alloc --hashlimit-htable-max 4096", 4],
  ["-m recent --set --name A", 4],
  ["-m recent --update --seconds 10 --hitcount 3 --rttl --name A", 4],
  ["-m recent --rcheck --seconds 5 --reap --name A", 4],
  ["-m recent --set --rdest --name B6", 6],
  ["-m statistic --mode random --probability 0.3", 4],
  ["-m statistic --mode nth --every 7 --packet 3", 4],
  ["-m string --algo bm --string abc --icase", 4],
  ["-m string --algo kmp --hex-string '|00 00|xyz' --from 20 --to 200", 4],
  ["-m length --length 40:1500", 4],
  ["-m ttl --ttl-gt 10", 4],
  ["-m hl --hl-eq 64", 6],
  ["-m pkttype --pkt-type unicast", 4],
  ["-m mac --mac-source 00:11:22:33:44:55", 4],
  ["-m owner --uid-owner 0-1000", 4],
  ["-m frag --fragmore", 6],
  ["-m comment --comment x", 4],
  ["-m addrtype --src-type UNICAST --dst-type LOCAL,UNICAST --limit-iface-in", 4],
  ["-m addrtype --dst-type LOCAL,ANYCAST,UNREACHABLE", 6],
];

const FIXTURE = `
import { PerformanceObserver } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
const [dir, packetsArg] = process.argv.slice(2);
const PACKETS = Number(packetsArg);
const load = (p) => import(pathToFileURL(join(dir, p)).href);
const { Conntrack } = await load("src/conntrack/tracker.js");
const { resolveConntrackConfig } = await load("src/conntrack/config.js");
const { CTINFO } = await load("src/conntrack/constants.js");
const { Packet } = await load("src/packet/packet.js");
const { MatchPool } = await load("src/rules/match-api.js");
const { RuleContext, HOOK } = await load("src/rules/context.js");
const { compileMatch, evalMatch } = await load("src/rules/matches.js");
const { buildSnapshot } = await load("src/route/mirror.js");
const B = await load("test/helpers/packets.js");
const fx = (n) => JSON.parse(readFileSync(join(dir, "fixtures", n), "utf8"));
const routes = buildSnapshot(fx("addr.json"), fx("route4.json"), fx("route6.json"), 1);

const nodes = JSON.parse(readFileSync(join(dir, "nodes.json"), "utf8"));
const pool = new MatchPool();
const named = new Map();
const compiled = { 4: [], 6: [] };
for (const n of nodes) {
  const m = compileMatch(n.node, { family: n.family, table: "filter", chain: "INPUT", proto: n.proto, protoNegated: n.protoNegated, pool, named });
  compiled[n.family].push(m.kind, m.off);
}
const kinds4 = Int32Array.from(compiled[4]), kinds6 = Int32Array.from(compiled[6]);

const host = (net, i) => "10." + net + "." + (i >> 8) + "." + (i & 255);
const setup = [], steady = [];
for (let i = 0; i < 300; i++) {
  const c = { src: host(1, i), dst: "192.0.2.1", sport: 20000 + i, dport: 80 };
  const s = { src: "192.0.2.1", dst: host(1, i), sport: 80, dport: 20000 + i };
  const opts = { mss: 1460, sackPerm: true, wscale: 7, ts: [1, 0] };
  setup.push(B.ipv4Tcp({ ...c, seq: 1000, flags: "S", win: 64240, options: opts }));
  setup.push(B.ipv4Tcp({ ...s, seq: 5000, ack: 1001, flags: "SA", win: 65160, options: { ...opts, ts: [2, 1] } }));
  setup.push(B.ipv4Tcp({ ...c, seq: 1001, ack: 5001, flags: "A", win: 502, options: { ts: [3, 2] } }));
  steady.push(B.ipv4Tcp({ ...c, seq: 1001, ack: 5001, flags: "PA", win: 502, options: { ts: [3, 2] }, payload: "GET /ABC xyz" }));
  steady.push(B.ipv4Tcp({ ...s, seq: 5001, ack: 1013, flags: "A", win: 509, options: { ts: [4, 3] } }));
}
for (let i = 0; i < 300; i++) {
  const c = B.ipv4Udp({ src: host(2, i), dst: "10.0.1.1", sport: 30000 + i, dport: 53, payload: new Uint8Array(32) });
  const s = B.ipv4Udp({ src: "10.0.1.1", dst: host(2, i), sport: 53, dport: 30000 + i, payload: "\\0\\0xyz" });
  setup.push(c, s); steady.push(c, s);
  const e = B.ipv4Icmp({ src: host(3, i), dst: "10.0.1.255", id: i, seq: 1, payload: new Uint8Array(56) });
  setup.push(e); steady.push(e);
  const u6 = B.ipv6Udp({ src: "2001:db8:1::" + (i + 2).toString(16), dst: "2001:db8:2::1", sport: 40000 + i, dport: 9, payload: new Uint8Array(20) });
  setup.push(u6); steady.push(u6);
  const e6 = B.ipv6Icmp({ src: "2001:db8:1::" + (i + 2).toString(16), dst: "2001:db8:dead::1", id: i, seq: 1 });
  setup.push(e6); steady.push(e6);
}
for (const f of B.fragmentV6(B.ipv6Udp({ src: "2001:db8:1::9", dst: "2001:db8:2::1", sport: 1, dport: 2, payload: new Uint8Array(64) }), 16, 99)) steady.push(f);

function slab(pkts) {
  const off = new Int32Array(pkts.length), len = new Int32Array(pkts.length);
  let n = 0;
  for (let k = 0; k < pkts.length; k++) { off[k] = n; len[k] = pkts[k].length; n += pkts[k].length; }
  const buf = new Uint8Array(n);
  for (let k = 0; k < pkts.length; k++) buf.set(pkts[k], off[k]);
  return { buf, off, len, count: pkts.length };
}
const S0 = slab(setup), S1 = slab(steady);
const ct = new Conntrack(resolveConntrackConfig({ max: 4096, eventRing: 4096 }));
const p = new Packet();
const c = new RuleContext();
c.pkt = p; c.ct = ct; c.routes = routes; c.hook = HOOK.PREROUTING; c.inIfindex = 3;
c.hwBuf = new Uint8Array([0, 0x11, 0x22, 0x33, 0x44, 0x55]); c.hwLen = 6; c.uid = 500; c.gid = 500; c.mark = 0x12;
for (let k = 0; k < S0.count; k++) {
  const st = p.parse(S0.buf, S0.off[k], S0.len[k]);
  const ci = ct.process(p, st, 1_000_000, 0);
  if (ci === CTINFO.INVALID) ct.abort(); else ct.confirm(1_000_000);
}
const hits = new Int32Array(64);

function run(n, t0, seed) {
  let x = seed;
  const { buf, off, len, count } = S1;
  for (let k = 0; k < n; k++) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x3fffffff;
    const i = x % count;
    const st = p.parse(buf, off[i], len[i]);
    c.parseStatus = st;
    c.now = t0 + (k >> 4);
    c.ctinfo = ct.process(p, st, c.now, 0);
    if (ct.pending) ct.abort();
    const v6 = p.family === 10;
    c.family = v6 ? 6 : 4;
    const ks = v6 ? kinds6 : kinds4;
    for (let j = 0; j < ks.length; j += 2) if (evalMatch(ks[j], ks[j + 1], pool, c)) hits[ks[j]]++;
  }
  return x;
}

run(100_000, 1_003_000, 1);
run(100_000, 1_010_000, 2);
hits.fill(0);
let gcs = 0;
const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
obs.observe({ entryTypes: ["gc"] });
globalThis.gc(); globalThis.gc();
await new Promise((r) => setTimeout(r, 50));
const heap0 = process.memoryUsage().heapUsed;
gcs = 0;
run(PACKETS, 1_020_000, 3);
await new Promise((r) => setTimeout(r, 50));
const gcsDuring = gcs;
obs.disconnect();
globalThis.gc(); globalThis.gc();
const heap1 = process.memoryUsage().heapUsed;
let probe = 0;
const obs2 = new PerformanceObserver((list) => { probe += list.getEntries().length; });
obs2.observe({ entryTypes: ["gc"] });
let junk = [];
for (let k = 0; k < 200_000; k++) junk.push({ k });
junk = null;
globalThis.gc();
await new Promise((r) => setTimeout(r, 50));
obs2.disconnect();
process.stdout.write(JSON.stringify({ gcs: gcsDuring, heapGrowth: heap1 - heap0, probeGcs: probe, hits: Array.from(hits), matches: nodes.length }) + "\\n");
`;

beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), "sluice-matches-alloc-"));
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
  for (const d of ["src/packet", "src/conntrack", "src/rules", "src/rules/matches", "src/route"]) {
    for (const f of readdirSync(join(ROOT, d))) if (f.endsWith(".ts")) transpile(`${d}/${f}`);
  }
  transpile("src/errors.ts");
  transpile("test/helpers/packets.ts");
  mkdirSync(join(out, "fixtures"));
  for (const f of ["addr.json", "route4.json", "route6.json"]) writeFileSync(join(out, "fixtures", f), readFileSync(join(ROOT, "test/route/fixtures", f)));
  const nodes = MATCHES.map(([text, family]) => {
    const p = parseFragment(text);
    return { family, proto: p.proto, protoNegated: p.protoNegated, node: p.matches[0] };
  });
  writeFileSync(join(out, "nodes.json"), JSON.stringify(nodes));
  writeFileSync(join(out, "fixture.mjs"), FIXTURE);
});
afterAll(() => {
  if (out !== "" && process.env.KEEP_ALLOC === undefined) rmSync(out, { recursive: true, force: true });
});

describe("allocation-free match evaluation", () => {
  it("300,000 packets x every match kind: no GC event, heap growth < 1 MB", () => {
    const r = spawnSync(process.execPath, ["--expose-gc", join(out, "fixture.mjs"), out, "300000"], { encoding: "utf8", timeout: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const res = JSON.parse(r.stdout) as { gcs: number; heapGrowth: number; probeGcs: number; hits: number[]; matches: number };
    expect(res.matches).toBe(MATCHES.length);
    expect(res.probeGcs).toBeGreaterThan(0);
    // Most kinds matched some packets (so their full path ran), and none matched everything it saw.
    expect(res.hits.filter((h) => h > 0).length).toBeGreaterThanOrEqual(25);
    expect(res.gcs).toBe(0);
    expect(res.heapGrowth).toBeLessThan(1 << 20);
  }, 120_000);
});
