/**
 * Fragments through `sluice replay`: the datagram is reassembled, tracked
 * once, and every fragment record gets the datagram's verdict; broken
 * reassemblies (overlap, never completed) drop their fragments, as Linux's
 * defrag does. Real CLI, captures built with the test packet builder.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fragmentV4, fragmentV6, ipv4Udp, ipv6Udp, toPcap } from "../helpers/packets.js";

const ROOT = resolve(__dirname, "../..");
const CLI = join(ROOT, "dist/src/cli/main.js");
const tmp = mkdtempSync(join(tmpdir(), "sluice-frag-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Row { index: number; verdict: string; ctinfo: string; dir?: string; reason?: string; conn?: number }

function replay(name: string, packets: Uint8Array[]): Row[] {
  const f = join(tmp, name);
  writeFileSync(f, toPcap(packets, { stepUsec: 1000 }));
  const r = spawnSync(process.execPath, [CLI, "replay", f, "--json"], { encoding: "utf8", timeout: 30000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Row)
    .sort((a, b) => a.index - b.index);
}

const big = new Uint8Array(3000).map((_, i) => i & 0xff);
const A4 = { src: "10.0.1.2", dst: "203.0.113.9", sport: 40000, dport: 5000 };
const A6 = { src: "2001:db8:1::2", dst: "2001:db8:2::9", sport: 40000, dport: 5000 };

describe("replay with fragments", () => {
  it("IPv4: fragments out of order share the datagram's verdict; the reply is ESTABLISHED", () => {
    const frags = fragmentV4(ipv4Udp({ ...A4, id: 77, payload: big }), 1200);
    expect(frags.length).toBe(3);
    const reply = ipv4Udp({ src: A4.dst, dst: A4.src, sport: A4.dport, dport: A4.sport, payload: "ok" });
    const rows = replay("v4.pcap", [frags[2], frags[0], frags[1], reply]);
    expect(rows.map((r) => [r.index, r.verdict, r.ctinfo])).toEqual([
      [0, "accept", "NEW"], [1, "accept", "NEW"], [2, "accept", "NEW"], [3, "accept", "ESTABLISHED"],
    ]);
    expect(new Set(rows.map((r) => r.conn)).size).toBe(1);
    expect(rows[3].dir).toBe("reply");
  });

  it("IPv6: the same, through the fragment header", () => {
    const frags = fragmentV6(ipv6Udp({ ...A6, payload: big }), 1232, 0x1234);
    const reply = ipv6Udp({ src: A6.dst, dst: A6.src, sport: A6.dport, dport: A6.sport, payload: "ok" });
    const rows = replay("v6.pcap", [...frags.reverse(), reply]);
    expect(rows.every((r) => r.verdict === "accept")).toBe(true);
    expect(rows.slice(0, -1).every((r) => r.ctinfo === "NEW")).toBe(true);
    expect(rows.at(-1)).toMatchObject({ ctinfo: "ESTABLISHED", dir: "reply" });
  });

  it("an overlapping fragment discards the whole datagram: every fragment is dropped, nothing is tracked", () => {
    const frags = fragmentV4(ipv4Udp({ ...A4, id: 78, payload: big }), 1200);
    // A copy of the middle fragment shifted by 8 bytes overlaps both neighbours partially.
    const evil = Uint8Array.from(frags[1]);
    const off = (((evil[6] & 0x1f) << 8) | evil[7]) + 1;
    evil[6] = (evil[6] & 0xe0) | (off >> 8); evil[7] = off & 0xff;
    evil[10] = 0; evil[11] = 0;
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += (evil[i] << 8) | evil[i + 1];
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const ck = ~sum & 0xffff; evil[10] = ck >> 8; evil[11] = ck & 0xff;
    const rows = replay("overlap.pcap", [frags[0], frags[1], evil, frags[2]]);
    expect(rows.slice(0, 3).map((r) => [r.verdict, r.ctinfo])).toEqual([["drop", "INVALID"], ["drop", "INVALID"], ["drop", "INVALID"]]);
    expect(rows[2].reason).toMatch(/overlap/);
    // The last fragment starts a new queue that never completes.
    expect(rows[3]).toMatchObject({ verdict: "drop", ctinfo: "INVALID" });
    expect(rows[3].reason).toMatch(/incomplete/);
  });

  it("a datagram still incomplete after 30 s is dropped when its queue times out (ip_expire)", () => {
    const frags = fragmentV4(ipv4Udp({ ...A4, id: 79, payload: big }), 1200);
    const later = ipv4Udp({ ...A4, sport: 40001, payload: "later" });
    const f = join(tmp, "timeout.pcap");
    // Two fragments at t=0 and t=1 ms, an unrelated packet 31 s later.
    const pcap = toPcap([frags[0], frags[1]], { stepUsec: 1000 });
    const tail = toPcap([later], { startSec: 1_700_000_031 });
    writeFileSync(f, Buffer.concat([pcap, tail.subarray(24)]));
    const r = spawnSync(process.execPath, [CLI, "replay", f, "--json"], { encoding: "utf8", timeout: 30000 });
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Row);
    // The expired fragments are reported when the clock passes their deadline, before the later packet.
    expect(rows.map((x) => [x.index, x.verdict])).toEqual([[0, "drop"], [1, "drop"], [2, "accept"]]);
    expect(rows[0].reason).toMatch(/timeout/);
  });
});
