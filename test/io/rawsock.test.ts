/**
 * Raw-socket re-injection against the real kernel, as root, in a private
 * network namespace (`rawt-<pid>-<rand>`, removed in afterAll): crafted
 * IPv4 and IPv6 UDP datagrams sent through the addon's IPPROTO_RAW sockets
 * reach a normal UDP socket in the namespace, and carry the socket's SO_MARK
 * (counted by `-m mark` rules in OUTPUT).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAN_RUN_KERNEL_TESTS, Netns, UdpReceiver } from "../../native-bindings/test/netns.js";
import { RawSocket } from "../../src/io/rawsock.js";
import { ipv4Udp, ipv6Udp } from "../helpers/packets.js";

const PORT = 8888;
const MARK = 0x77;

describe.skipIf(!CAN_RUN_KERNEL_TESTS)("raw socket (real kernel, in a netns)", () => {
  let ns: Netns;
  let rx: UdpReceiver;
  let raw: RawSocket;

  beforeAll(async () => {
    ns = new Netns("rawt");
    for (const v6 of [false, true]) {
      ns.iptables(v6, ["-A", "OUTPUT", "-p", "udp", "--dport", String(PORT), "-m", "mark", "--mark", `0x${MARK.toString(16)}`]);
    }
    rx = await UdpReceiver.start(ns, 6, PORT);
    raw = new RawSocket({ mark: MARK, netns: ns.path });
  });

  afterAll(() => {
    raw?.close();
    rx?.stop();
    ns?.close();
  });

  it("sends crafted IPv4 and IPv6 datagrams in one call; a normal socket receives them; SO_MARK is set", async () => {
    const p4 = ipv4Udp({ src: "127.0.0.1", dst: "127.0.0.1", sport: 5000, dport: PORT, payload: "raw4" });
    const p6 = ipv6Udp({ src: "::1", dst: "::1", sport: 5000, dport: PORT, payload: "raw6" });
    const p4b = ipv4Udp({ src: "127.0.0.1", dst: "127.0.0.1", sport: 5001, dport: PORT, payload: "raw4b" });
    // One buffer, three packets (families interleaved: three sendmmsg runs), at offsets.
    const buf = new Uint8Array(512);
    buf.set(p4, 0);
    buf.set(p6, 100);
    buf.set(p4b, 300);
    const desc = Uint32Array.from([0, p4.length, 100, p6.length, 300, p4b.length, 200, 10]);
    expect(raw.send(buf, desc, 4)).toBe(3);
    expect(await rx.waitFor(3)).toBe(3);
    expect(rx.texts().sort()).toEqual(["raw4", "raw4b", "raw6"]);
    expect(ns.ruleCount(false, "filter", "--mark 0x77")).toBe(2);
    expect(ns.ruleCount(true, "filter", "--mark 0x77")).toBe(1);
    const s = raw.stats();
    expect(s.sent).toBe(3);
    expect(s.badDescs).toBe(1); // 10 bytes at 200: not an IP header
    expect(s.sendmmsgCalls).toBe(3);
  });

  it("counts a packet the kernel refuses and sends the rest", async () => {
    rx.received.length = 0;
    const ok = ipv4Udp({ src: "127.0.0.1", dst: "127.0.0.1", sport: 5002, dport: PORT, payload: "after" });
    const unroutable = ipv6Udp({ src: "::1", dst: "2001:db8:ffff::1", sport: 5002, dport: PORT, payload: "x" });
    const buf = new Uint8Array(256);
    buf.set(unroutable, 0);
    buf.set(ok, 128);
    const before = raw.stats();
    expect(raw.send(buf, Uint32Array.from([0, unroutable.length, 128, ok.length]), 2)).toBe(1);
    expect(await rx.waitFor(1)).toBe(1);
    expect(rx.texts()).toEqual(["after"]);
    const after = raw.stats();
    expect(after.sendErrors - before.sendErrors).toBe(1);
    expect(after.lastErrno).toBeGreaterThan(0);
  });

  it("sendOne sends a single packet", async () => {
    rx.received.length = 0;
    const p = ipv6Udp({ src: "::1", dst: "::1", sport: 5003, dport: PORT, payload: "one" });
    expect(raw.sendOne(p, 0, p.length)).toBe(1);
    expect(await rx.waitFor(1)).toBe(1);
    expect(rx.texts()).toEqual(["one"]);
  });
});
