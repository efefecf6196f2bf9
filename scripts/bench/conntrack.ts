/**
 * Connection-tracker micro-benchmark: per-packet cost of an established-flow
 * lookup+update and of a new-connection insert, at 10^3 and 10^6 live
 * connections, bytes per connection, and GC events — beside a baseline
 * measured in the same run: the same tracking done the obvious way, a
 * `Map<string, object>` keyed by the tuple text (the anti-pattern STYLE.md
 * measures).
 *
 *   npm run build && node --expose-gc dist/scripts/bench/conntrack.js [--sizes 1000,1000000]
 *
 * "csum by kernel": the same UDP flows with PKT.CSUM_UNNECESSARY, as NFQUEUE
 * packets arrive when the kernel has verified the checksum (Linux's conntrack
 * skips verification for CHECKSUM_UNNECESSARY skbs too).
 *
 * Prints a table, then one JSON line with every figure.
 */
import { cpus } from "node:os";
import { PerformanceObserver } from "node:perf_hooks";
import { resolveConntrackConfig } from "../../src/conntrack/config.js";
import { Conntrack, PKT } from "../../src/conntrack/tracker.js";
import { checksum, pseudoSumV4, sumWords, fold } from "../../src/packet/checksum.js";
import { Packet } from "../../src/packet/packet.js";
import { pow2ceil } from "../../src/conntrack/table.js";

const args = process.argv.slice(2);
const sizesArg = args.indexOf("--sizes");
const SIZES = sizesArg >= 0 ? args[sizesArg + 1].split(",").map(Number) : [1000, 1000000];
const ESTABLISHED_PACKETS = 2_000_000;

let gcCount = 0;
new PerformanceObserver((list) => { gcCount += list.getEntries().length; }).observe({ entryTypes: ["gc"] });
/** GC entries reach the observer from the event loop: let it run before reading the count. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));
/** New-connection inserts measured per size: enough rounds of `n` inserts to pass this many. */
const NEW_TARGET = 400_000;

const PKT_LEN = 28 + 4; // IPv4 + UDP + 4 bytes payload
const TCP_LEN = 40 + 4;

/** Writes a UDP/IPv4 packet at `o` with valid checksums. */
function writeUdp(b: Uint8Array, o: number, src: number, dst: number, sport: number, dport: number): void {
  b.fill(0, o, o + PKT_LEN);
  b[o] = 0x45; b[o + 3] = PKT_LEN; b[o + 8] = 64; b[o + 9] = 17;
  w32(b, o + 12, src); w32(b, o + 16, dst);
  const ck = checksum(b, o, 20); b[o + 10] = ck >> 8; b[o + 11] = ck & 255;
  const u = o + 20;
  b[u] = sport >> 8; b[u + 1] = sport & 255; b[u + 2] = dport >> 8; b[u + 3] = dport & 255;
  b[u + 5] = 12; b[u + 8] = 1; b[u + 9] = 2; b[u + 10] = 3; b[u + 11] = 4;
  const uc = ~fold(sumWords(b, u, 12, pseudoSumV4(b, o, 17, 12))) & 0xffff || 0xffff;
  b[u + 6] = uc >> 8; b[u + 7] = uc & 255;
}

/** Writes a TCP/IPv4 segment at `o` (20-byte header, 4 bytes of payload) with valid checksums. */
function writeTcp(b: Uint8Array, o: number, src: number, dst: number, sport: number, dport: number,
  seq: number, ack: number, flags: number, payload: number): void {
  const len = 40 + payload;
  b.fill(0, o, o + TCP_LEN);
  b[o] = 0x45; b[o + 3] = len; b[o + 8] = 64; b[o + 9] = 6;
  w32(b, o + 12, src); w32(b, o + 16, dst);
  const ck = checksum(b, o, 20); b[o + 10] = ck >> 8; b[o + 11] = ck & 255;
  const t = o + 20;
  b[t] = sport >> 8; b[t + 1] = sport & 255; b[t + 2] = dport >> 8; b[t + 3] = dport & 255;
  w32(b, t + 4, seq); w32(b, t + 8, ack);
  b[t + 12] = 5 << 4; b[t + 13] = flags; b[t + 14] = 0xff; b[t + 15] = 0xff;
  for (let k = 0; k < payload; k++) b[t + 20 + k] = k;
  const tc = ~fold(sumWords(b, t, 20 + payload, pseudoSumV4(b, o, 6, 20 + payload))) & 0xffff;
  b[t + 16] = tc >> 8; b[t + 17] = tc & 255;
}

function w32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 255; b[o + 2] = (v >>> 8) & 255; b[o + 3] = v & 255;
}

function clientAddr(i: number): number { return (0x0a000000 | (i >>> 6)) >>> 0; }
function clientPort(i: number): number { return 1024 + (i & 63) * 997 % 60000; }
const SERVER = 0xcb007101; // 203.0.113.1

interface Row { impl: string; proto: string; conns: number; newNs: number; estNs: number; gcNew: number; gcEst: number; bytesPerConn: number }

function tracker(n: number): Conntrack {
  return new Conntrack(resolveConntrackConfig({ max: pow2ceil(n + 16), eventRing: 16 }));
}

async function benchSluiceUdp(n: number, flags = 0): Promise<Row> {
  const ct = tracker(n);
  const orig = new Uint8Array(n * PKT_LEN), reply = new Uint8Array(n * PKT_LEN);
  for (let i = 0; i < n; i++) {
    writeUdp(orig, i * PKT_LEN, clientAddr(i), SERVER, clientPort(i), 53);
    writeUdp(reply, i * PKT_LEN, SERVER, clientAddr(i), 53, clientPort(i));
  }
  const p = new Packet();
  ct.events.enabled = false;
  const now = 1000;
  const rounds = Math.max(2, Math.ceil(NEW_TARGET / n));
  let newTotal = 0n;
  global.gc?.();
  await settle();
  let g0 = gcCount;
  for (let round = 0; round < rounds; round++) {
    if (round > 0) ct.flush(now); // not timed
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const s = p.parse(orig, i * PKT_LEN, PKT_LEN);
      ct.process(p, s, now, 0);
      ct.confirm(now);
    }
    if (round > 0) newTotal += process.hrtime.bigint() - t0; // round 0 is warm-up
  }
  const newNs = Number(newTotal) / ((rounds - 1) * n);
  await settle();
  const gcNew = gcCount - g0;
  for (let i = 0; i < n; i++) { const s = p.parse(reply, i * PKT_LEN, PKT_LEN); ct.process(p, s, now, 0); }
  // Established packets: a pseudo-random walk over the flows (defeats caching that a sequential walk would flatter).
  let x = 12345;
  g0 = gcCount;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < ESTABLISHED_PACKETS; k++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0; // int32 LCG: stays unboxed
    const i = (x >>> 8) % n;
    const s = p.parse(orig, i * PKT_LEN, PKT_LEN);
    ct.process(p, s, now + 5000, flags);
  }
  const estNs = Number(process.hrtime.bigint() - t0) / ESTABLISHED_PACKETS;
  await settle();
  const gcEst = gcCount - g0;
  if (ct.table.count !== n) throw new Error(`expected ${n} entries, have ${ct.table.count}`);
  return { impl: flags === 0 ? "sluice" : "sluice (csum by kernel)", proto: "udp", conns: n, newNs, estNs, gcNew, gcEst, bytesPerConn: bytesPerConn(ct) };
}

async function benchSluiceTcp(n: number): Promise<Row> {
  const ct = tracker(n);
  const syn = new Uint8Array(n * TCP_LEN), synack = new Uint8Array(n * TCP_LEN), ack = new Uint8Array(n * TCP_LEN);
  for (let i = 0; i < n; i++) {
    const c = clientAddr(i), sp = clientPort(i);
    writeTcp(syn, i * TCP_LEN, c, SERVER, sp, 80, 1000, 0, 0x02, 0);
    writeTcp(synack, i * TCP_LEN, SERVER, c, 80, sp, 5000, 1001, 0x12, 0);
    // The data packet: seq 1001, 4 bytes. Replayed many times it is a retransmission
    // of in-window data, which conntrack accepts (and counts for the retrans rule).
    writeTcp(ack, i * TCP_LEN, c, SERVER, sp, 80, 1001, 5001, 0x18, 4);
  }
  const p = new Packet();
  ct.events.enabled = false;
  const now = 1000;
  const rounds = Math.max(2, Math.ceil(NEW_TARGET / n));
  let newTotal = 0n;
  global.gc?.();
  await settle();
  let g0 = gcCount;
  for (let round = 0; round < rounds; round++) {
    if (round > 0) ct.flush(now);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const s = p.parse(syn, i * TCP_LEN, 40);
      ct.process(p, s, now, 0);
      ct.confirm(now);
    }
    if (round > 0) newTotal += process.hrtime.bigint() - t0;
  }
  const newNs = Number(newTotal) / ((rounds - 1) * n);
  await settle();
  const gcNew = gcCount - g0;
  for (let i = 0; i < n; i++) { const s = p.parse(synack, i * TCP_LEN, 40); ct.process(p, s, now, 0); }
  let x = 12345;
  g0 = gcCount;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < ESTABLISHED_PACKETS; k++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0; // int32 LCG: stays unboxed
    const i = (x >>> 8) % n;
    const s = p.parse(ack, i * TCP_LEN, TCP_LEN);
    ct.process(p, s, now + 10, 0);
  }
  const estNs = Number(process.hrtime.bigint() - t0) / ESTABLISHED_PACKETS;
  await settle();
  const gcEst = gcCount - g0;
  return { impl: "sluice", proto: "tcp", conns: n, newNs, estNs, gcNew, gcEst, bytesPerConn: bytesPerConn(ct) };
}

function bytesPerConn(ct: Conntrack): number {
  const perEntry = ct.table.bytesPerEntry(); // TCP state lives in the table record
  return perEntry;
}

/** The baseline: a Map keyed by tuple text, one object per connection, both directions as keys. */
async function benchMapUdp(n: number): Promise<Row> {
  interface Conn { state: number; expires: number; pkts: number; bytes: number; seenReply: boolean }
  const table = new Map<string, { c: Conn; dir: number }>();
  const orig = new Uint8Array(n * PKT_LEN);
  for (let i = 0; i < n; i++) writeUdp(orig, i * PKT_LEN, clientAddr(i), SERVER, clientPort(i), 53);
  const key = (b: Uint8Array, o: number): string => {
    const src = (b[o + 12] << 24 | b[o + 13] << 16 | b[o + 14] << 8 | b[o + 15]) >>> 0;
    const dst = (b[o + 16] << 24 | b[o + 17] << 16 | b[o + 18] << 8 | b[o + 19]) >>> 0;
    return `${b[o + 9]}:${src}:${dst}:${(b[o + 20] << 8) | b[o + 21]}:${(b[o + 22] << 8) | b[o + 23]}`;
  };
  global.gc?.();
  await settle();
  const heap0 = process.memoryUsage().heapUsed;
  let g0 = gcCount;
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const o = i * PKT_LEN;
    const k = key(orig, o);
    if (!table.has(k)) {
      const c: Conn = { state: 0, expires: 30000, pkts: 1, bytes: PKT_LEN, seenReply: false };
      table.set(k, { c, dir: 0 });
      const src = (orig[o + 12] << 24 | orig[o + 13] << 16 | orig[o + 14] << 8 | orig[o + 15]) >>> 0;
      table.set(`17:${SERVER}:${src}:53:${clientPort(i)}`, { c, dir: 1 });
    }
  }
  const newNs = Number(process.hrtime.bigint() - t0) / n;
  await settle();
  const gcNew = gcCount - g0;
  global.gc?.();
  const bytesPerConn = (process.memoryUsage().heapUsed - heap0) / n;
  let x = 12345;
  g0 = gcCount;
  t0 = process.hrtime.bigint();
  for (let k = 0; k < ESTABLISHED_PACKETS; k++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0; // int32 LCG: stays unboxed
    const i = (x >>> 8) % n;
    const e = table.get(key(orig, i * PKT_LEN));
    if (e !== undefined) { e.c.pkts++; e.c.bytes += PKT_LEN; e.c.expires = 120000; }
  }
  const estNs = Number(process.hrtime.bigint() - t0) / ESTABLISHED_PACKETS;
  await settle();
  return { impl: "Map<string> baseline", proto: "udp", conns: n, newNs, estNs, gcNew, gcEst: gcCount - g0, bytesPerConn };
}

const rows: Row[] = [];
for (const n of SIZES) {
  rows.push(await benchSluiceUdp(n));
  rows.push(await benchSluiceUdp(n, PKT.CSUM_UNNECESSARY));
  rows.push(await benchSluiceTcp(n));
  rows.push(await benchMapUdp(n));
}

const fmt = (v: number, d = 1): string => v.toFixed(d).padStart(9);
console.log(`node ${process.version}, ${process.arch}, ${cpus()[0]?.model ?? "?"} x${cpus().length}; ${ESTABLISHED_PACKETS} established packets per row, random flow order; parse + track (+ confirm for new)`);
console.log("impl                    proto      conns   new ns/conn  est ns/pkt   GC(new)  GC(est)  bytes/conn");
for (const r of rows) {
  console.log(`${r.impl.padEnd(22)} ${r.proto.padEnd(5)} ${String(r.conns).padStart(10)} ${fmt(r.newNs)}    ${fmt(r.estNs)}  ${String(r.gcNew).padStart(8)} ${String(r.gcEst).padStart(8)} ${fmt(r.bytesPerConn)}`);
}
console.log(JSON.stringify({ bench: "conntrack", node: process.version, rows }));
