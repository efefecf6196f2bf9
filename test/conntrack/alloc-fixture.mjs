// Child process of alloc.test.ts, run as `node --expose-gc alloc-fixture.mjs DIR PACKETS`,
// where DIR holds src/ and test/helpers/ transpiled to JavaScript. It builds ~1000
// established flows (TCP with in-window data, UDP, ICMP echo) in one packet slab,
// warms the path up, then pushes PACKETS packets through Packet.parse +
// Conntrack.process and prints one JSON line: GC events seen during the run, heap
// growth across it (after forced GCs), and what the packets got.
import { PerformanceObserver } from "node:perf_hooks";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [dir, packetsArg] = process.argv.slice(2);
const PACKETS = Number(packetsArg ?? 1_000_000);
const load = (p) => import(pathToFileURL(join(dir, p)).href);
const { Conntrack } = await load("src/conntrack/tracker.js");
const { resolveConntrackConfig } = await load("src/conntrack/config.js");
const { CTINFO } = await load("src/conntrack/constants.js");
const { Packet } = await load("src/packet/packet.js");
const B = await load("test/helpers/packets.js");

if (typeof globalThis.gc !== "function") throw new Error("run with --expose-gc");

const TCP_FLOWS = 400, UDP_FLOWS = 400, ICMP_FLOWS = 200;
const setup = []; // packets that open the flows, in order
const steady = []; // the established traffic, replayed at random
const host = (net, i) => `10.${net}.${i >> 8}.${i & 255}`;
for (let i = 0; i < TCP_FLOWS; i++) {
  const c = { src: host(1, i), dst: "192.0.2.1", sport: 20000 + i, dport: 80 };
  const s = { src: "192.0.2.1", dst: host(1, i), sport: 80, dport: 20000 + i };
  const opts = { mss: 1460, sackPerm: true, wscale: 7 };
  setup.push(B.ipv4Tcp({ ...c, seq: 1000, flags: "S", win: 64240, options: opts }));
  setup.push(B.ipv4Tcp({ ...s, seq: 5000, ack: 1001, flags: "SA", win: 65160, options: opts }));
  setup.push(B.ipv4Tcp({ ...c, seq: 1001, ack: 5001, flags: "A", win: 502 }));
  // Data one way, its ACK the other: replayed, both stay in window (retransmissions of seen data).
  steady.push(B.ipv4Tcp({ ...c, seq: 1001, ack: 5001, flags: "PA", win: 502, payload: new Uint8Array(100) }));
  steady.push(B.ipv4Tcp({ ...s, seq: 5001, ack: 1101, flags: "A", win: 509 }));
}
for (let i = 0; i < UDP_FLOWS; i++) {
  const c = B.ipv4Udp({ src: host(2, i), dst: "192.0.2.2", sport: 30000 + i, dport: 53, payload: new Uint8Array(32) });
  const s = B.ipv4Udp({ src: "192.0.2.2", dst: host(2, i), sport: 53, dport: 30000 + i, payload: new Uint8Array(64) });
  setup.push(c, s);
  steady.push(c, s);
}
for (let i = 0; i < ICMP_FLOWS; i++) {
  const c = B.ipv4Icmp({ src: host(3, i), dst: "192.0.2.3", id: i, seq: 1, payload: new Uint8Array(56) });
  const s = B.ipv4Icmp({ src: "192.0.2.3", dst: host(3, i), type: 0, id: i, seq: 1, payload: new Uint8Array(56) });
  setup.push(c, s);
  steady.push(c, s);
}

// One slab, as the I/O layer delivers packets; offsets and lengths beside it.
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
const byCtinfo = new Int32Array(16);

for (let k = 0; k < S0.count; k++) {
  const ci = ct.process(p, p.parse(S0.buf, S0.off[k], S0.len[k]), 1_000_000, 0);
  if (ci === CTINFO.INVALID) ct.abort(); else ct.confirm(1_000_000);
}
if (ct.table.count !== TCP_FLOWS + UDP_FLOWS + ICMP_FLOWS) throw new Error(`setup left ${ct.table.count} entries`);

/** The measured loop: a pseudo-random walk over the established traffic. */
function run(n, now, seed) {
  let x = seed;
  const { buf, off, len, count } = S1;
  for (let k = 0; k < n; k++) {
    // Kept within Smi range: a `>>> 0` LCG goes above 2^31 and boxes a HeapNumber per
    // step, which is the harness allocating, not the tracker.
    x = (Math.imul(x, 1103515245) + 12345) & 0x3fffffff;
    const i = x % count;
    const ci = ct.process(p, p.parse(buf, off[i], len[i]), now, 0);
    byCtinfo[ci]++;
    if (ct.pending) ct.abort();
  }
  return x;
}

// Warm-up (3 s later, so the UDP flows turn ASSURED), until the optimizing compiler is done with the path.
run(300_000, 1_003_000, 1);
run(300_000, 1_003_500, 2);
const events = ct.events.size;
ct.events.head = ct.events.tail; // discard: a consumer would read them between batches
byCtinfo.fill(0);

let gcs = 0;
const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
obs.observe({ entryTypes: ["gc"] });
globalThis.gc();
globalThis.gc();
await new Promise((r) => setTimeout(r, 50)); // let the forced GCs' entries arrive before counting
const heap0 = process.memoryUsage().heapUsed;
gcs = 0;

run(PACKETS, 1_004_000, 3);

await new Promise((r) => setTimeout(r, 50)); // GC entries are delivered asynchronously
const gcsDuring = gcs;
obs.disconnect();
globalThis.gc();
globalThis.gc();
const heap1 = process.memoryUsage().heapUsed;

// Self-check that the observer sees GCs at all (so 0 above means something).
let probe = 0;
const obs2 = new PerformanceObserver((list) => { probe += list.getEntries().length; });
obs2.observe({ entryTypes: ["gc"] });
let junk = [];
for (let k = 0; k < 200_000; k++) junk.push({ k });
junk = null;
globalThis.gc();
await new Promise((r) => setTimeout(r, 50));
obs2.disconnect();

process.stdout.write(JSON.stringify({
  packets: PACKETS,
  gcs: gcsDuring,
  heapGrowth: heap1 - heap0,
  entries: ct.table.count,
  warmupEvents: events,
  events: ct.events.size,
  byCtinfo: Array.from(byCtinfo),
  probeGcs: probe,
}) + "\n");
