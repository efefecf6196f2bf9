/**
 * NFLOG: options as iptables 1.8.9 parses and saves them, and the pcap
 * files NflogSink writes (LINKTYPE_NFLOG, as `tcpdump -i nflog:N -w`).
 *
 * Without root: the files are parsed back record by record and read with
 * `tcpdump -r` (the group shows as "resource ID N" with -e; tcpdump does not
 * print the prefix, so the TLVs are checked directly).
 * With root: the same packets go through real NFLOG rules in a netns and
 * `tcpdump -i nflog:N` records the kernel's messages; sluice's records must
 * be the same bytes (but for the receive timestamp's value), and tcpdump
 * must print both files the same.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAN_RUN_KERNEL_TESTS, Netns, sleep } from "../../native-bindings/test/netns.js";
import { HOOK } from "../../src/rules/context.js";
import { TargetOptionError } from "../../src/rules/log.js";
import {
  LINKTYPE_NFLOG,
  NFLOG_F_COPY_LEN,
  NFULA,
  NflogSink,
  nflogCopyLength,
  parseNflogOptions,
  saveNflogOptions,
  type NflogMeta,
} from "../../src/rules/nflog.js";
import { fromHex, ipv4Icmp, ipv4Tcp, ipv4Udp, ipv6Tcp, ipv6Udp } from "../helpers/packets.js";

const opt = (name: string, ...args: string[]): { name: string; args: string[] } => ({ name, args });
const HAVE_TCPDUMP = spawnSync("tcpdump", ["--version"]).status === 0;

describe("NFLOG options (iptables 1.8.9)", () => {
  it("parses group, prefix, size, range and threshold like iptables", () => {
    expect(parseNflogOptions([])).toEqual({ group: 0, prefix: "", len: 0, flags: 0, threshold: 0 });
    expect(parseNflogOptions([opt("--nflog-group", "65535")]).group).toBe(65535);
    expect(parseNflogOptions([opt("--nflog-group", "0x10")]).group).toBe(16);
    expect(parseNflogOptions([opt("--nflog-group", " 7")]).group).toBe(7);
    for (const bad of ["65536", "-1", "x", ""]) {
      expect(() => parseNflogOptions([opt("--nflog-group", bad)])).toThrow(/bad value for option "--nflog-group", or out of range \(0-65535\)/);
    }
    expect(parseNflogOptions([opt("--nflog-size", "4294967295")])).toMatchObject({ len: 4294967295, flags: NFLOG_F_COPY_LEN });
    expect(() => parseNflogOptions([opt("--nflog-size", "4294967296")])).toThrow(/0-4294967295/);
    expect(parseNflogOptions([opt("--nflog-range", "5")])).toMatchObject({ len: 5, flags: 0 });
    expect(() => parseNflogOptions([opt("--nflog-range", "5"), opt("--nflog-size", "6")])).toThrow(/cannot be used together/);
    expect(parseNflogOptions([opt("--nflog-threshold", "65535")]).threshold).toBe(65535);
    expect(() => parseNflogOptions([opt("--nflog-threshold", "65536")])).toThrow(/0-65535/);
    const a63 = "a".repeat(63);
    expect(parseNflogOptions([opt("--nflog-prefix", a63)]).prefix).toBe(a63);
    expect(parseNflogOptions([opt("--nflog-prefix", `${a63}ab`)]).prefix).toBe(a63);
    expect(() => parseNflogOptions([opt("--nflog-prefix", "")])).toThrow(/minimum length of 1/);
    expect(() => parseNflogOptions([opt("--nflog-prefix", "a\nb")])).toThrow(/Newlines not allowed/);
    try {
      parseNflogOptions([opt("--nflog-group", "1"), opt("--nflog-group", "2")]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TargetOptionError);
      expect((e as TargetOptionError).optionIndex).toBe(1);
    }
  });

  it("saves in nflog_print's order (checked against iptables-legacy -S)", () => {
    const save = (...o: { name: string; args: string[] }[]): string => saveNflogOptions(parseNflogOptions(o));
    expect(save()).toBe("");
    expect(save(opt("--nflog-group", "0"), opt("--nflog-threshold", "0"))).toBe("");
    expect(save(opt("--nflog-group", "3"), opt("--nflog-prefix", "x"), opt("--nflog-size", "10"), opt("--nflog-threshold", "2"))).toBe(
      " --nflog-prefix x --nflog-group 3 --nflog-size 10 --nflog-threshold 2",
    );
    expect(save(opt("--nflog-size", "0"))).toBe(" --nflog-size 0");
    expect(save(opt("--nflog-range", "5"))).toBe(" --nflog-range 5");
    expect(save(opt("--nflog-prefix", 'a b"'))).toBe(' --nflog-prefix "a b\\""');
  });

  it("copies --nflog-size bytes at most; --nflog-range is ignored as by the kernel", () => {
    expect(nflogCopyLength(parseNflogOptions([opt("--nflog-size", "20")]), 84)).toBe(20);
    expect(nflogCopyLength(parseNflogOptions([opt("--nflog-size", "200")]), 84)).toBe(84);
    expect(nflogCopyLength(parseNflogOptions([opt("--nflog-size", "0")]), 84)).toBe(0);
    expect(nflogCopyLength(parseNflogOptions([opt("--nflog-range", "20")]), 84)).toBe(84);
  });
});

// ---------------------------------------------------------------- reading files back

interface Tlv {
  type: number;
  value: Uint8Array;
}
interface NflogRecord {
  tsMs: number;
  family: number;
  version: number;
  group: number;
  tlvs: Tlv[];
  raw: Uint8Array;
}

/** A minimal LINKTYPE_NFLOG pcap reader (little-endian files, as both libpcap and sluice write them here). */
function readNflogPcap(path: string): { linkType: number; records: NflogRecord[] } {
  const b = new Uint8Array(readFileSync(path));
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  expect(dv.getUint32(0, true)).toBe(0xa1b2c3d4);
  const linkType = dv.getUint32(20, true);
  const records: NflogRecord[] = [];
  for (let p = 24; p < b.length; ) {
    const sec = dv.getUint32(p, true), usec = dv.getUint32(p + 4, true), caplen = dv.getUint32(p + 8, true);
    const raw = b.slice(p + 16, p + 16 + caplen);
    const tlvs: Tlv[] = [];
    for (let q = 4; q + 4 <= raw.length; ) {
      const len = raw[q]! | (raw[q + 1]! << 8), type = raw[q + 2]! | (raw[q + 3]! << 8);
      expect(len).toBeGreaterThanOrEqual(4);
      tlvs.push({ type, value: raw.slice(q + 4, q + len) });
      q += (len + 3) & ~3;
    }
    records.push({ tsMs: sec * 1000 + usec / 1000, family: raw[0]!, version: raw[1]!, group: (raw[2]! << 8) | raw[3]!, tlvs, raw });
    p += 16 + caplen;
  }
  return { linkType, records };
}

const tlv = (r: NflogRecord, type: number): Uint8Array | undefined => r.tlvs.find((t) => t.type === type)?.value;
const cstr = (v: Uint8Array): string => new TextDecoder().decode(v.subarray(0, v.indexOf(0)));

function tcpdump(file: string, ...args: string[]): string {
  const r = spawnSync("tcpdump", ["-r", file, "-n", ...args], { encoding: "utf8" });
  expect(r.status).toBe(0);
  return r.stdout;
}

const WALL = Date.UTC(2024, 0, 2, 3, 4, 5) + 0.678;

describe("NflogSink", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "sl-nflog-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const syn = ipv4Tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, flags: "S", ipId: 1 });
  const udp6 = ipv6Udp({ src: "2001:db8::1", dst: "2001:db8::2", sport: 5353, dport: 53, payload: "hello" });

  it("writes one LINKTYPE_NFLOG file per group with the kernel's TLVs", () => {
    const sink = new NflogSink(join(dir, "a"));
    const out: NflogMeta = { hook: HOOK.OUTPUT, inIfindex: 0, outIfindex: 3, mark: 0x2a, uid: 1000, gid: 100 };
    const fwd: NflogMeta = {
      hook: HOOK.FORWARD, inIfindex: 2, outIfindex: 3, mark: 0, uid: -1, gid: -1,
      hwBuf: fromHex("020000000001"), hwOff: 0, hwLen: 6, hwType: 1, hwHeaderBuf: fromHex("020000000002 020000000001 86dd"), hwHeaderOff: 0, hwHeaderLen: 14,
    };
    expect(sink.write(5, "out: ", syn, 0, syn.length, WALL, out)).toBe(true);
    expect(sink.write(5, "fwd", udp6, 0, udp6.length, WALL + 1, fwd)).toBe(true);
    expect(sink.write(6, "", syn, 0, 20, WALL, null)).toBe(true);
    sink.close();
    const f5 = readNflogPcap(sink.pathOf(5));
    expect(f5.linkType).toBe(LINKTYPE_NFLOG);
    expect(f5.records.length).toBe(2);
    const [a, b] = f5.records as [NflogRecord, NflogRecord];
    expect([a.family, a.version, a.group]).toEqual([2, 0, 5]);
    expect(a.tlvs.map((t) => t.type)).toEqual([NFULA.PACKET_HDR, NFULA.PREFIX, NFULA.IFINDEX_OUTDEV, NFULA.MARK, NFULA.UID, NFULA.GID, NFULA.PAYLOAD]);
    expect(Array.from(tlv(a, NFULA.PACKET_HDR)!)).toEqual([0x08, 0x00, HOOK.OUTPUT, 0]);
    expect(cstr(tlv(a, NFULA.PREFIX)!)).toBe("out: ");
    expect(Array.from(tlv(a, NFULA.MARK)!)).toEqual([0, 0, 0, 0x2a]);
    expect(Array.from(tlv(a, NFULA.UID)!)).toEqual([0, 0, 0x03, 0xe8]);
    expect(Array.from(tlv(a, NFULA.PAYLOAD)!)).toEqual(Array.from(syn));
    expect(a.tsMs).toBeCloseTo(WALL, 0);
    expect([b.family, b.group]).toEqual([10, 5]);
    expect(b.tlvs.map((t) => t.type)).toEqual([
      NFULA.PACKET_HDR, NFULA.PREFIX, NFULA.IFINDEX_INDEV, NFULA.IFINDEX_OUTDEV, NFULA.HWADDR, NFULA.HWTYPE, NFULA.HWLEN, NFULA.HWHEADER, NFULA.TIMESTAMP, NFULA.PAYLOAD,
    ]);
    expect(Array.from(tlv(b, NFULA.PACKET_HDR)!)).toEqual([0x86, 0xdd, HOOK.FORWARD, 0]);
    expect(Array.from(tlv(b, NFULA.HWADDR)!)).toEqual([0, 6, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0]);
    expect(Array.from(tlv(b, NFULA.HWTYPE)!)).toEqual([0, 1]);
    expect(Array.from(tlv(b, NFULA.HWLEN)!)).toEqual([0, 14]);
    const ts = new DataView(tlv(b, NFULA.TIMESTAMP)!.buffer);
    expect(Number(ts.getBigUint64(0)) * 1000 + Number(ts.getBigUint64(8)) / 1000).toBeCloseTo(WALL + 1, 0);
    // An empty prefix is the NUL alone (the kernel always sends NFULA_PREFIX); no meta: no other TLVs.
    const f6 = readNflogPcap(sink.pathOf(6));
    expect(f6.records[0]!.tlvs.map((t) => [t.type, t.value.length])).toEqual([[NFULA.PACKET_HDR, 4], [NFULA.PREFIX, 1], [NFULA.PAYLOAD, 20]]);
    // Every TLV ends on a 4-byte boundary, the record too.
    for (const r of [a, b]) expect(r.raw.length % 4).toBe(0);
  });

  it.skipIf(!HAVE_TCPDUMP)("tcpdump reads the files back: the group and the packets", () => {
    const sink = new NflogSink(join(dir, "b"));
    const ping = ipv4Icmp({ src: "10.0.0.1", dst: "10.0.0.2", id: 7, seq: 1, ipId: 3 });
    sink.write(42, "pfx", ping, 0, ping.length, WALL, { hook: HOOK.INPUT, inIfindex: 2, outIfindex: 0, mark: 0, uid: -1, gid: -1 });
    sink.write(42, "pfx", udp6, 0, udp6.length, WALL, null);
    sink.write(42, "cut", syn, 0, 20, WALL, null);
    sink.close();
    const text = tcpdump(sink.pathOf(42), "-e", "-v");
    const lines = text.trim().split("\n").filter((l) => !l.startsWith(" "));
    expect(lines.length).toBe(3);
    expect(text).toMatch(/version 0, resource ID 42, family IPv4 \(2\), length \d+: \(tos 0x0, ttl 64, id 3, offset 0, flags \[none\], proto ICMP \(1\), length 28\)\n\s+10\.0\.0\.1 > 10\.0\.0\.2: ICMP echo request, id 7, seq 1, length 8/);
    expect(text).toMatch(/resource ID 42, family IPv6 \(10\).* 2001:db8::1\.5353 > 2001:db8::2\.53: \[udp sum ok\]/);
    expect(text).toMatch(/resource ID 42, family IPv4 \(2\).*truncated-ip - 20 bytes missing/);
    // tcpdump does not print the prefix; the bytes are there (checked above), and -X shows them.
    expect(text).not.toMatch(/pfx/);
  });

  it("bounds each file: the first record past maxFileBytes and all later ones are dropped and counted", () => {
    const sink = new NflogSink(join(dir, "c"), { maxFileBytes: 1000 });
    let ok = 0;
    for (let i = 0; i < 50; i++) if (sink.write(1, "x", syn, 0, syn.length, WALL + i, null)) ok++;
    // A 40-byte packet makes a 16 + 4 + 8 + 8 + 44 = 80-byte record: (1000 - 24) / 80 = 12.
    expect(ok).toBe(12);
    const tiny = ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2" });
    expect(sink.write(1, "x", tiny, 0, 1, WALL, null)).toBe(false); // stopped, even if it would fit
    sink.close();
    const [st] = sink.stats();
    expect(st).toMatchObject({ group: 1, packets: 12, drops: 39, error: null });
    expect(statSync(sink.pathOf(1)).size).toBe(st!.bytes);
    expect(st!.bytes).toBeLessThanOrEqual(1000);
    expect(readNflogPcap(sink.pathOf(1)).records.length).toBe(12);
    if (HAVE_TCPDUMP) expect(tcpdump(sink.pathOf(1)).trim().split("\n").length).toBe(12);
  });

  it("bounds the number of groups, cuts prefixes to 63 bytes, refuses writes after close", () => {
    const sink = new NflogSink(join(dir, "d"), { maxGroups: 2 });
    expect(sink.write(1, "a", syn, 0, syn.length, WALL, null)).toBe(true);
    expect(sink.write(2, "b".repeat(100), syn, 0, syn.length, WALL, null)).toBe(true);
    expect(sink.write(3, "c", syn, 0, syn.length, WALL, null)).toBe(false);
    expect(sink.groupDrops).toBe(1);
    expect(sink.write(2, new TextEncoder().encode("pre-encoded"), syn, 0, syn.length, WALL, null)).toBe(true);
    sink.close();
    expect(sink.write(1, "a", syn, 0, syn.length, WALL, null)).toBe(false);
    const r = readNflogPcap(sink.pathOf(2)).records;
    expect(cstr(tlv(r[0]!, NFULA.PREFIX)!)).toBe("b".repeat(63));
    expect(cstr(tlv(r[1]!, NFULA.PREFIX)!)).toBe("pre-encoded");
  });

  it("records an I/O failure instead of throwing", () => {
    const sink = new NflogSink(join(dir, "e"));
    rmSync(join(dir, "e"), { recursive: true });
    expect(sink.write(1, "a", syn, 0, syn.length, WALL, null)).toBe(false);
    expect(sink.stats()[0]!.error).toMatch(/cannot open/);
    expect(() => sink.close()).not.toThrow();
  });

  it("records stream to the file: 100k records (13 MB) do not accumulate on the heap", () => {
    const sink = new NflogSink(join(dir, "f"), { maxFileBytes: 1 << 30 });
    const meta: NflogMeta = { hook: HOOK.INPUT, inIfindex: 2, outIfindex: 0, mark: 5, uid: -1, gid: -1 };
    for (let i = 0; i < 5000; i++) sink.write(1, "warm", syn, 0, syn.length, WALL, meta);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100_000; i++) sink.write(1, "warm", syn, 0, syn.length, WALL + i, meta);
    // Measured in-process alongside other tests, so only a bound well below what
    // keeping the records would cost (~130 bytes each); a few small temporaries
    // per flush show up as noise (node --trace-gc: a handful of scavenges per 300k).
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(4_000_000);
    sink.close();
  });
});

// ---------------------------------------------------------------- the real kernel

describe.skipIf(!CAN_RUN_KERNEL_TESTS || !HAVE_TCPDUMP)("records identical to the kernel's (netns, tcpdump -i nflog:N)", () => {
  let ns: Netns;
  let dir: string;
  let raw: import("../../src/io/rawsock.js").RawSocket;
  const LO_HDR4 = fromHex("000000000000 000000000000 0800");
  const LO_HDR6 = fromHex("000000000000 000000000000 86dd");

  beforeAll(async () => {
    const { RawSocket } = await import("../../src/io/rawsock.js");
    dir = mkdtempSync(join(tmpdir(), "sl-nflog-k-"));
    ns = new Netns("sl-nflog");
    ns.exec("ip", ["addr", "add", "10.67.0.1/24", "dev", "lo"]);
    ns.exec("ip", ["-6", "addr", "add", "fd67::1/64", "dev", "lo", "nodad"]);
    for (const v6 of [false, true]) {
      const src = v6 ? "fd67::2" : "10.67.0.2";
      ns.iptables(v6, ["-A", "OUTPUT", "-s", src, "-j", "NFLOG", "--nflog-group", "7", "--nflog-prefix", "sluice out"]);
      ns.iptables(v6, ["-A", "INPUT", "-s", src, "-j", "NFLOG", "--nflog-group", "8", "--nflog-size", "24"]);
    }
    raw = new RawSocket({ netns: ns.path, mark: 0x2a });
  });

  afterAll(() => {
    raw?.close();
    ns?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts `tcpdump -i nflog:GROUP`; resolves once it listens, with a promise of its exit (wrapped: an async function would flatten it). */
  async function capture(group: number, count: number, file: string): Promise<{ done: Promise<void> }> {
    const child = spawn("ip", ["netns", "exec", ns.name, "tcpdump", "-i", `nflog:${group}`, "-c", String(count), "-U", "-w", file], {
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 15_000,
    });
    await new Promise<void>((resolve, reject) => {
      let err = "";
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 5000);
      child.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        if (err.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return { done: new Promise<void>((resolve) => child.on("exit", () => resolve())) };
  }

  /** The record with the value of NFULA_TIMESTAMP zeroed (the kernel's is the receive time). */
  function masked(r: NflogRecord): string {
    const b = r.raw.slice();
    for (let q = 4; q + 4 <= b.length; ) {
      const len = b[q]! | (b[q + 1]! << 8), type = b[q + 2]! | (b[q + 3]! << 8);
      if (type === NFULA.TIMESTAMP) b.fill(0, q + 4, q + len);
      q += (len + 3) & ~3;
    }
    return Buffer.from(b).toString("hex");
  }

  it("OUTPUT and INPUT, IPv4 and IPv6, prefix, mark, owner, --nflog-size", async () => {
    const pkts = [
      ipv4Tcp({ src: "10.67.0.2", dst: "10.67.0.1", sport: 40000, dport: 80, flags: "S", ipId: 77, options: { mss: 1460 } }),
      ipv4Udp({ src: "10.67.0.2", dst: "10.67.0.1", sport: 5353, dport: 9999, ipId: 78, payload: "hello nflog" }),
      ipv6Tcp({ src: "fd67::2", dst: "fd67::1", sport: 40001, dport: 80, flags: "S", flowLabel: 5 }),
      ipv6Udp({ src: "fd67::2", dst: "fd67::1", sport: 5353, dport: 9999, payload: "hi" }),
    ];
    const kOut = join(dir, "k7.pcap"), kIn = join(dir, "k8.pcap");
    const doneOut = await capture(7, pkts.length, kOut);
    const doneIn = await capture(8, pkts.length, kIn);
    for (const p of pkts) {
      expect(raw.sendOne(p, 0, p.length)).toBe(1);
      await sleep(20);
    }
    await Promise.race([Promise.all([doneOut.done, doneIn.done]), sleep(8000)]);

    const sink = new NflogSink(join(dir, "sluice"));
    const inOpts = parseNflogOptions([opt("--nflog-group", "8"), opt("--nflog-size", "24")]);
    const kin = readNflogPcap(kIn).records;
    pkts.forEach((p, i) => {
      const outMeta: NflogMeta = { hook: HOOK.OUTPUT, inIfindex: 0, outIfindex: 1, mark: 0x2a, uid: 0, gid: 0 };
      sink.write(7, "sluice out", p, 0, p.length, WALL, outMeta);
      const v6 = p[0]! >> 4 === 6;
      const inMeta: NflogMeta = {
        hook: HOOK.INPUT, inIfindex: 1, outIfindex: 0, mark: 0x2a, uid: -1, gid: -1,
        hwBuf: new Uint8Array(6), hwOff: 0, hwLen: 6, hwType: 772, hwHeaderBuf: v6 ? LO_HDR6 : LO_HDR4, hwHeaderOff: 0, hwHeaderLen: 14,
      };
      sink.write(8, "", p, 0, nflogCopyLength(inOpts, p.length), kin[i]?.tsMs ?? WALL, inMeta);
    });
    sink.close();

    for (const g of [7, 8]) {
      const kernel = readNflogPcap(g === 7 ? kOut : kIn);
      const mine = readNflogPcap(sink.pathOf(g));
      expect(kernel.linkType).toBe(LINKTYPE_NFLOG);
      expect(kernel.records.length).toBe(pkts.length);
      expect(mine.records.map(masked)).toEqual(kernel.records.map(masked));
      // tcpdump prints both files the same, timestamps aside.
      const strip = (t: string): string => t.replace(/^\d\d:\d\d:\d\d\.\d+ /gm, "");
      expect(strip(tcpdump(sink.pathOf(g), "-e", "-v"))).toBe(strip(tcpdump(g === 7 ? kOut : kIn, "-e", "-v")));
    }
    expect(cstr(tlv(readNflogPcap(kOut).records[0]!, NFULA.PREFIX)!)).toBe("sluice out");
  }, 30_000);
});
