// Child process of alloc.test.ts, run as `node --expose-gc alloc-fixture.mjs DIR FIXTURES LOOKUPS`,
// where DIR holds src/route and src/errors.ts transpiled to JavaScript. It compiles the
// fixture snapshot, warms the lookups up, then runs LOOKUPS lookups (isLocal4, lookup4,
// isLocal6, lookup6 and reads of the route arrays, over a fixed set of addresses) and
// prints one JSON line: GC events seen during the run and heap growth across it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

const [dir, fixtures, lookupsArg] = process.argv.slice(2);
const LOOKUPS = Number(lookupsArg ?? 1_000_000);
const load = (p) => import(pathToFileURL(join(dir, p)).href);
const { buildSnapshot } = await load("src/route/mirror.js");
const { parseIPv4, parseIPv6 } = await load("src/route/addr.js");
if (typeof globalThis.gc !== "function") throw new Error("run with --expose-gc");

const json = (n) => JSON.parse(readFileSync(join(fixtures, n), "utf8"));
const snap = buildSnapshot(json("addr.json"), json("route4.json"), json("route6.json"), 1);

const v4 = new Int32Array(["10.0.1.1", "10.0.1.2", "8.8.8.8", "198.51.100.7", "100.64.1.1", "192.0.2.1", "224.0.0.1", "172.16.5.5"].map((s) => parseIPv4(s) | 0));
const six = ["2001:db8:1::1", "2001:db8:1::5", "2606:4700::1", "2001:db8:200::1", "fe80::1", "ff02::1", "2001:db8:dead::1", "::1"];
const v6 = new Int32Array(six.length * 4);
six.forEach((s, i) => parseIPv6(s, v6, i * 4));

// The checksum stays an int32 (`| 0`): a growing double in a module variable would box and allocate by itself.
let sink = 0;
function run(n) {
  for (let i = 0; i < n; i++) {
    const a = v4[i & 7];
    const r = snap.lookup4(a);
    if (snap.isLocal4(a)) sink = (sink + 1) | 0;
    if (r >= 0) sink = (sink + snap.ifindex[r] + snap.gateway[r * 4]) | 0;
    const o = (i & 7) << 2;
    const r6 = snap.lookup6(v6[o], v6[o + 1], v6[o + 2], v6[o + 3]);
    if (snap.isLocal6(v6[o], v6[o + 1], v6[o + 2], v6[o + 3])) sink = (sink + 1) | 0;
    if (r6 >= 0) sink = (sink + snap.type[r6]) | 0;
  }
}

let gcs = 0;
const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
obs.observe({ entryTypes: ["gc"] });
const settle = () => new Promise((r) => setTimeout(r, 50));

run(200_000); // warm-up: optimise
globalThis.gc();
await settle();
// Probe: the observer is live (allocation shows up as GCs).
gcs = 0;
let junk = [];
for (let i = 0; i < 2_000_000; i++) junk.push({ i });
junk = null;
await settle();
const probeGcs = gcs;

globalThis.gc();
await settle();
const heap0 = process.memoryUsage().heapUsed;
gcs = 0;
run(LOOKUPS);
await settle();
const runGcs = gcs;
globalThis.gc();
const heap1 = process.memoryUsage().heapUsed;
obs.disconnect();
process.stdout.write(JSON.stringify({ lookups: LOOKUPS, gcs: runGcs, heapGrowth: heap1 - heap0, probeGcs, sink }) + "\n");
