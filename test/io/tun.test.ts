/**
 * TUN against the real kernel, as root, in a private network namespace
 * (`tunt-<pid>-<rand>`, removed in afterAll). The device is created inside
 * the namespace through the `netns` option and given 10.99.0.1/24 and
 * 2001:db8:99::1/64, so traffic to 10.99.0.2 / 2001:db8:99::2 is routed into
 * it; the test plays that peer: it reads what the namespace sends and writes
 * back replies, which the namespace receives as arriving on the device.
 */
import { spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAN_RUN_KERNEL_TESTS, Netns, run, sendUdp, until } from "../../native-bindings/test/netns.js";
import { NativeIoError } from "../../src/io/native.js";
import { IO_ERR } from "../../src/io/native-constants.js";
import { Tun } from "../../src/io/tun.js";
import { ipv4Icmp, ipv4Udp, ipv6Udp } from "../helpers/packets.js";

/** The namespace side of a request/response: sends `ping` to dst:7777 over UDP and prints the reply's text. */
const CLIENT_PY = `
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b'ping', (sys.argv[1], 7777))
print(s.recv(100).decode(), flush=True)
`;

function spawnInNs(ns: Netns, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn("ip", ["netns", "exec", ns.name, ...args], { timeout: 8000 });
    let stdout = "", stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

const text = (b: Uint8Array) => Buffer.from(b).toString();
const addr4 = (b: Uint8Array, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];

describe.skipIf(!CAN_RUN_KERNEL_TESTS)("TUN (real kernel, in a netns)", () => {
  let ns: Netns;
  let tun: Tun;
  let handler: (t: Tun, n: number) => void = () => {};
  const batches: number[] = [];

  beforeAll(() => {
    ns = new Netns("tunt");
    tun = new Tun({
      name: "sltun0",
      netns: ns.path,
      onBatch: (t, n) => {
        batches.push(n);
        handler(t, n);
      },
    });
    run("ip", ["-n", ns.name, "addr", "add", "10.99.0.1/24", "dev", "sltun0"]);
    run("ip", ["-n", ns.name, "addr", "add", "2001:db8:99::1/64", "dev", "sltun0", "nodad"]);
    run("ip", ["-n", ns.name, "link", "set", "sltun0", "up"]);
  });

  afterAll(() => {
    tun?.close();
    ns?.close();
  });

  it("is created in the namespace with the asked name", () => {
    expect(tun.name).toBe("sltun0");
    const link = run("ip", ["-n", ns.name, "-o", "link", "show", "sltun0"]);
    expect(link).toContain(`${tun.ifindex}: sltun0:`);
  });

  it("reads a UDP datagram routed to the device and delivers a written reply (IPv4 and IPv6)", async () => {
    for (const [peer, local] of [["10.99.0.2", "10.99.0.1"], ["2001:db8:99::2", "2001:db8:99::1"]]) {
      let seen = "";
      handler = (t, n) => {
        for (let i = 0; i < n; i++) {
          const b = t.slab.subarray(t.offset(i), t.offset(i) + t.length(i));
          const v4 = b[0] >> 4 === 4;
          const l4 = v4 ? (b[0] & 15) * 4 : 40;
          if ((v4 ? b[9] : b[6]) !== 17 || u16(b, l4 + 2) !== 7777) continue; // ignore router solicitations etc.
          seen = text(b.subarray(l4 + 8));
          const reply = v4
            ? ipv4Udp({ src: peer, dst: local, sport: 7777, dport: u16(b, l4), payload: "pong" })
            : ipv6Udp({ src: peer, dst: local, sport: 7777, dport: u16(b, l4), payload: "pong" });
          expect(t.writeOne(reply, 0, reply.length)).toBe(1);
        }
      };
      const r = await spawnInNs(ns, ["python3", "-c", CLIENT_PY, peer]);
      expect(r.stderr).toBe("");
      expect(seen).toBe("ping");
      expect(r.stdout.trim()).toBe("pong");
    }
  });

  it("answers a ping written back as an ICMP echo reply", async () => {
    handler = (t, n) => {
      for (let i = 0; i < n; i++) {
        const b = t.slab.subarray(t.offset(i), t.offset(i) + t.length(i));
        if (b[0] >> 4 !== 4 || b[9] !== 1) continue;
        const l4 = (b[0] & 15) * 4;
        if (b[l4] !== 8) continue; // echo request
        const reply = ipv4Icmp({
          src: addr4(b, 16), dst: addr4(b, 12), type: 0, id: u16(b, l4 + 4), seq: u16(b, l4 + 6), payload: b.slice(l4 + 8),
        });
        t.writeOne(reply, 0, reply.length);
      }
    };
    const r = await spawnInNs(ns, ["ping", "-c", "1", "-W", "3", "10.99.0.2"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/1 received/);
  });

  it("reads packets queued while the loop was busy in one batch, and writes a batch", async () => {
    const got: Uint8Array[] = [];
    const inBatch: number[] = [];
    handler = (t, n) => {
      for (let i = 0; i < n; i++) {
        const b = t.slab.subarray(t.offset(i), t.offset(i) + t.length(i));
        if (b[0] >> 4 === 4 && b[9] === 17) {
          got.push(b.slice());
          inBatch.push(batches.length);
        }
      }
    };
    sendUdp(ns, "10.99.0.2", 7777, ["d0", "d1", "d2", "d3", "d4"]); // blocks our loop: all five wait in the device
    expect(await until(() => got.length === 5)).toBe(true);
    // One callback carried all five (IPv6 housekeeping packets may share it).
    expect(new Set(inBatch).size).toBe(1);
    expect(got.map((b) => text(b.subarray(28)))).toEqual(["d0", "d1", "d2", "d3", "d4"]);

    // Write them all back (as if from the peer, to a port nobody listens on) in one call.
    const buf = new Uint8Array(5 * 64);
    const desc = new Uint32Array(5 * 2 + 2);
    got.forEach((g, k) => {
      const p = ipv4Udp({ src: "10.99.0.2", dst: "10.99.0.1", sport: 7777, dport: 9, payload: `r${k}` });
      buf.set(p, k * 64);
      desc[k * 2] = k * 64;
      desc[k * 2 + 1] = p.length;
    });
    desc[10] = buf.length - 4; // out of range: skipped and counted
    desc[11] = 100;
    const before = tun.stats();
    expect(tun.write(buf, desc, 6)).toBe(5);
    const after = tun.stats();
    expect(after.sent - before.sent).toBe(5);
    expect(after.badDescs - before.badDescs).toBe(1);
  });

  it("multi-queue: several handles attach to one device; a single-queue device refuses a second one", () => {
    const a = new Tun({ name: "slmq0", multiQueue: true, netns: ns.path, onBatch: () => {} });
    const b = new Tun({ name: "slmq0", multiQueue: true, netns: ns.path, onBatch: () => {} });
    try {
      expect(b.ifindex).toBe(a.ifindex);
      let err: unknown;
      try {
        new Tun({ name: "sltun0", netns: ns.path, onBatch: () => {} });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NativeIoError);
      expect((err as NativeIoError).code).toBe(IO_ERR.BUSY);
      expect((err as Error).message).toMatch(/TUN device sltun0 is in use/);
    } finally {
      a.close();
      b.close();
    }
    // The device goes away with its last descriptor.
    const r = spawnSync("ip", ["-n", ns.name, "link", "show", "slmq0"], { timeout: 5000 });
    expect(r.status).not.toBe(0);
  });

  it("lets the kernel name the device when no name is given", () => {
    const t = new Tun({ netns: ns.path, onBatch: () => {} });
    try {
      expect(t.name).toMatch(/^tun\d+$/);
      expect(t.ifindex).toBeGreaterThan(0);
    } finally {
      t.close();
    }
  });
});

describe("Tun options (no kernel)", () => {
  it("names the bad option", () => {
    expect(() => new Tun({ name: "a-name-longer-than-15", onBatch: () => {} })).toThrow(/name must be at most 15 bytes/);
    expect(() => new Tun({ slotSize: 10, onBatch: () => {} })).toThrow(/option slotSize/);
  });
});
