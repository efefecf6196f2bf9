/**
 * `sluice replay` end to end, through the built CLI (`npm test` builds first),
 * on the shipped capture. The oracle is the real kernel: the capture was
 * recorded while conntrack ran in the client namespace, and its `conntrack -E`
 * and `conntrack -L` output sits beside it in config/. sluice must tell the
 * same story about the same packets.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
const CLI = join(ROOT, "dist/src/cli/main.js");
const SAMPLE = join(ROOT, "config/sample.pcap");
const tmp = mkdtempSync(join(tmpdir(), "sluice-replay-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sluice(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 30000, cwd: ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Strips `[sec.usec]\t` and the `-o extended` l3 columns from a conntrack -E line. */
function normalizeEvent(line: string): string {
  return line.replace(/^\[[0-9.]+\]\t/, "").replace(/^(\s*\[\w+\]) ipv[46]\s+\d+ /, "$1 ").trimEnd();
}

describe("sluice replay config/sample.pcap", () => {
  it("is built", () => {
    expect(existsSync(CLI)).toBe(true);
  });

  it("prints the same conntrack events as the kernel did for the same traffic", () => {
    const kernel = readFileSync(join(ROOT, "config/sample.conntrack-events.txt"), "utf8")
      .split("\n").filter((l) => l.trim() !== "").map(normalizeEvent);
    const r = sluice("replay", SAMPLE, "--events", "--json");
    expect(r.code).toBe(0);
    const ours = r.out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))
      .filter((j) => j.event !== undefined).map((j) => normalizeEvent(j.text));
    expect(ours).toEqual(kernel);
  });

  it("ends with the table the kernel listed (timeouts aside)", () => {
    // /proc prints IPv6 addresses uncompressed (%pI6), conntrack -L compressed: compare them parsed.
    const addr = (a: string): string => (a.includes(":") ? new URL(`http://[${a}]/`).hostname.slice(1, -1) : a);
    const strip = (l: string): string => l.replace(/^(ipv[46]\s+\d+ \S+\s+\d+) \d+ /, "$1 ")
      .replace(/ zone=0 use=\d+$| use=\d+$/, "").replace(/(src|dst)=(\S+)/g, (_m, k: string, a: string) => `${k}=${addr(a)}`);
    const kernel = readFileSync(join(ROOT, "config/sample.conntrack-L.txt"), "utf8")
      .split("\n").filter((l) => l.trim() !== "").map(strip).sort();
    const r = sluice("replay", SAMPLE, "--list", "--quiet");
    expect(r.code).toBe(0);
    const ours = r.out.split("\n").filter((l) => l !== "").map(strip).sort();
    expect(ours).toEqual(kernel);
  });

  it("gives every packet a verdict, ctinfo and direction as the kernel saw them", () => {
    const r = sluice("replay", SAMPLE, "--json");
    expect(r.code).toBe(0);
    const rows = r.out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
    const txt = readFileSync(join(ROOT, "config/sample.txt"), "utf8").split("\n").filter((l) => l !== "");
    expect(rows.length).toBe(txt.length);
    expect(rows.map((x) => x.index)).toEqual(txt.map((_, i) => i));
    // Nothing in a clean capture is INVALID.
    expect(rows.filter((x) => x.verdict !== "accept")).toEqual([]);
    // The first packet is an echo request: NEW, original, unreplied; its reply ESTABLISHED in the reply direction.
    expect(rows[0]).toMatchObject({ ctinfo: "NEW", dir: "original", proto: "icmp", flags: ["UNREPLIED"] });
    expect(rows[1]).toMatchObject({ ctinfo: "ESTABLISHED", dir: "reply", proto: "icmp", flags: [] });
    expect(rows[0].state).toBeUndefined();
    // The ICMP port unreachable answering the UDP probe to port 9 is RELATED, in the reply direction.
    const unreach = txt.findIndex((l) => /ICMP 10\.0\.1\.1 udp port 9 unreachable/.test(l));
    expect(unreach).toBeGreaterThan(0);
    expect(rows[unreach]).toMatchObject({ ctinfo: "RELATED", dir: "reply", proto: "icmp" });
    const unreach6 = txt.findIndex((l) => /ICMP6, destination unreachable/.test(l));
    expect(rows[unreach6]).toMatchObject({ ctinfo: "RELATED", dir: "reply", proto: "icmpv6" });
    // The TCP handshake: SYN_SENT, SYN_RECV, then ESTABLISHED and ASSURED.
    const syn = rows.findIndex((x) => x.proto === "tcp");
    expect(rows.slice(syn, syn + 3).map((x) => [x.ctinfo, x.dir, x.state, x.flags])).toEqual([
      ["NEW", "original", "SYN_SENT", ["UNREPLIED"]],
      ["ESTABLISHED", "reply", "SYN_RECV", []],
      ["ESTABLISHED", "original", "ESTABLISHED", ["ASSURED"]],
    ]);
  });

  it("writes the accepted packets to a pcap that tcpdump reads", () => {
    const out = join(tmp, "accepted.pcap");
    const r = sluice("replay", SAMPLE, "--quiet", "--write-accepted", out);
    expect(r.code).toBe(0);
    const td = spawnSync("tcpdump", ["-r", out, "-n", "-tt"], { encoding: "utf8", timeout: 10000 });
    expect(td.status).toBe(0);
    const ours = td.stdout.split("\n").filter((l) => l !== "");
    const orig = readFileSync(join(ROOT, "config/sample.txt"), "utf8").split("\n").filter((l) => l !== "");
    expect(ours).toEqual(orig);
  });

  it("drops INVALID packets (the policy until the rule engine exists); loose pickup decides mid-stream flows", () => {
    // Remove the IPv4 TCP SYN (record 8, editcap counts from 1): the flow now starts with the SYN/ACK.
    const txt = readFileSync(join(ROOT, "config/sample.txt"), "utf8").split("\n").filter((l) => l !== "");
    const synIndex = txt.findIndex((l) => /Flags \[S\]/.test(l));
    const cut = join(tmp, "nosyn.pcap");
    const ed = spawnSync("editcap", [SAMPLE, cut, String(synIndex + 1)], { encoding: "utf8", timeout: 10000 });
    expect(ed.status).toBe(0);
    const flow = (rows: { index: number }[]): { verdict: string; ctinfo: string; reason?: string }[] =>
      rows.slice(synIndex, synIndex + 11) as never;
    const run = (loose: number): { verdict: string; ctinfo: string; reason?: string }[] => {
      const r = sluice("replay", cut, "--json", "--sysctl", `nf_conntrack_tcp_loose=${loose}`);
      expect(r.code).toBe(0);
      return flow(r.out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)));
    };
    const strict = run(0);
    // Every packet of the SYN-less flow is INVALID and dropped.
    expect(strict.every((x) => x.verdict === "drop" && x.ctinfo === "INVALID")).toBe(true);
    const loose = run(1);
    // A SYN/ACK cannot open a connection even with loose pickup; the ACK after it can.
    expect(loose[0]).toMatchObject({ verdict: "drop", ctinfo: "INVALID" });
    expect(loose.slice(1).every((x) => x.verdict === "accept")).toBe(true);
    expect(loose[1]).toMatchObject({ ctinfo: "NEW", state: "ESTABLISHED" });
  });
});

describe("sluice replay: bad input", () => {
  it("names the record and byte offset of a truncated capture and exits 1", () => {
    const bytes = readFileSync(SAMPLE);
    const cut = join(tmp, "cut.pcap");
    writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
    const r = sluice("replay", cut, "--quiet");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/record 41/);
    expect(r.err).toMatch(/byte \d+/);
    expect(r.err).not.toMatch(/internal error|at .*\.js:/);
  });

  it("refuses a file that is not a capture", () => {
    const bad = join(tmp, "bad.pcap");
    writeFileSync(bad, "hello, this is not a pcap file at all\n");
    const r = sluice("replay", bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.pcap/);
  });

  it("refuses unknown options and sysctls with a usage error", () => {
    expect(sluice("replay", SAMPLE, "--nope").code).toBe(2);
    const s = sluice("replay", SAMPLE, "--sysctl", "nf_conntrack_frobnicate=1");
    expect(s.code).toBe(1);
    expect(s.err).toMatch(/nf_conntrack_frobnicate/);
  });

  it("counts malformed packets inside a good capture as INVALID, never crashing", () => {
    // A raw-IP capture with a truncated TCP header, a bad IPv4 header and garbage.
    const recs = [
      Uint8Array.from([0x45, 0, 0, 24, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81]),
      Uint8Array.from([0x46, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]),
      Uint8Array.from([0xff, 1, 2, 3]),
    ];
    const parts: number[] = [];
    const u32 = (v: number): void => { parts.push(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255); };
    u32(0xa1b2c3d4); parts.push(2, 0, 4, 0); u32(0); u32(0); u32(65535); u32(101);
    recs.forEach((r, i) => { u32(1000 + i); u32(0); u32(r.length); u32(r.length); parts.push(...r); });
    const f = join(tmp, "malformed.pcap");
    writeFileSync(f, Uint8Array.from(parts));
    const r = sluice("replay", f, "--json");
    expect(r.code).toBe(0);
    const rows = r.out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.verdict, x.ctinfo])).toEqual([["drop", "INVALID"], ["drop", "INVALID"], ["drop", "INVALID"]]);
    expect(r.err).toMatch(/3 INVALID/);
  });
});
