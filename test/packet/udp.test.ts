// UdpView on byte fixtures: header fields, udp_error() length checks, RFC 1624
// setters with RFC 768's zero-checksum rules, and fuzz.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { csumReplace16 } from "../../src/packet/checksum.js";
import { Ipv4View } from "../../src/packet/ipv4.js";
import { PARSE, Packet } from "../../src/packet/packet.js";
import { UDP_HEADER, UdpView } from "../../src/packet/udp.js";
import { fromHex, hex, ipv4Udp } from "../helpers/packets.js";
import { FUZZ_RUNS, fullL4Checksum, fuzzWindow, u16, u32, udp4, udp6 } from "./arb.js";

// 10.1.2.3:5353 -> 10.9.8.7:53, IPv4 with a 4-byte option (UDP at 24).
const UDP4 = `
  46 03 00 24 ab cd 00 00 01 11 5a e1 0a 01 02 03 0a 09 08 07 94 04 00 00
  14 e9 00 35   # @24 source port 5353, destination port 53
  00 0c 43 1a   # length 12, checksum 0x431a
  68 69 21 21   # "hi!!"`;

// [2001:db8::1]:546 -> [2001:db8::2]:547.
const UDP6 = `
  6b 81 23 45 00 0c 11 40
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  02 22 02 23 00 0c d8 43 64 68 63 70`;

function udpAt(b: Uint8Array, off: number, len = b.length - off): UdpView {
  const u = new UdpView();
  expect(u.reset(b, off, len)).toBe(true);
  return u;
}

/** What a sender computes: the full checksum, 0 sent as 0xffff (RFC 768). */
function wireUdp(b: Uint8Array, ipOff: number, l4Off: number): number {
  return fullL4Checksum(b, ipOff, l4Off, b.length - l4Off, 17, 6) || 0xffff;
}

describe("UdpView: deconstruct", () => {
  it("reads every field (IPv4 with options)", () => {
    const b = fromHex(UDP4);
    const u = udpAt(b, 24);
    expect([u.sport, u.dport, u.length, u.checksum]).toEqual([5353, 53, 12, 0x431a]);
    expect(u.payloadOffset).toBe(32);
    expect(u.payloadLength).toBe(4);
    expect(u.checksum).toBe(wireUdp(b, 0, 24));
  });

  it("reads every field (IPv6)", () => {
    const b = fromHex(UDP6);
    const u = udpAt(b, 40);
    expect([u.sport, u.dport, u.length, u.checksum]).toEqual([546, 547, 12, 0xd843]);
    expect(u.payloadOffset).toBe(48);
    expect(u.payloadLength).toBe(4);
    expect(u.checksum).toBe(wireUdp(b, 0, 40));
  });

  it("a Length below the bytes present: payload per Length", () => {
    const b = fromHex(UDP4);
    b[29] = 10;
    const u = udpAt(b, 24);
    expect(u.length).toBe(10);
    expect(u.payloadLength).toBe(2);
    b[29] = 8;
    expect(udpAt(b, 24).payloadLength).toBe(0);
  });
});

describe("UdpView: construct", () => {
  it("the builder emits the IPv4 fixture", () => {
    const p = ipv4Udp({
      src: "10.1.2.3", dst: "10.9.8.7", id: 0xabcd, ttl: 1, tos: 3, sport: 5353, dport: 53, payload: "hi!!",
      ipOptions: Uint8Array.of(0x94, 4, 0, 0),
    });
    expect(hex(p)).toBe(hex(fromHex(UDP4)));
  });
});

describe("UdpView: parse (reset) rejects what udp_error() drops", () => {
  it("every length below 8 bytes", () => {
    const b = fromHex(UDP4);
    const u = new UdpView();
    for (let len = 0; len < UDP_HEADER; len++) expect(u.reset(b, 24, len), `len ${len}`).toBe(false);
  });

  it("a Length field below 8", () => {
    const b = fromHex(UDP4);
    const u = new UdpView();
    for (let ulen = 0; ulen < 8; ulen++) {
      b[29] = ulen;
      expect(u.reset(b, 24, 12), `length ${ulen}`).toBe(false);
    }
  });

  it("a Length field beyond the bytes present (every length below it)", () => {
    const b = fromHex(UDP4);
    const u = new UdpView();
    for (let len = 8; len < 12; len++) expect(u.reset(b, 24, len), `len ${len}`).toBe(false);
    expect(u.reset(b, 24, 12)).toBe(true);
    b[28] = 0xff;
    expect(u.reset(b, 24, 12)).toBe(false);
  });

  it("a window outside the buffer", () => {
    const b = fromHex(UDP4);
    const u = new UdpView();
    expect(u.reset(b, 25, 12)).toBe(false);
    expect(u.reset(b, -1, 12)).toBe(false);
  });
});

describe("UdpView: emit (setters)", () => {
  it("port setters with an exact checksum", () => {
    const b = fromHex(UDP4);
    const u = udpAt(b, 24);
    u.setSportWithChecksumUpdate(40000);
    expect(u.checksum).toBe(wireUdp(b, 0, 24));
    u.setDportWithChecksumUpdate(0xffff);
    expect(u.checksum).toBe(wireUdp(b, 0, 24));
    expect(hex(b.subarray(24, 28))).toBe("9c 40 ff ff");
    expect(hex(b.subarray(28, 30))).toBe("00 0c");
  });

  it("updateChecksumForAddress after an IPv4 address rewrite", () => {
    const b = fromHex(UDP4);
    const ip = new Ipv4View();
    expect(ip.reset(b, 0, b.length)).toBe(true);
    const u = udpAt(b, 24);
    const old = ip.dst;
    ip.setDstWithChecksumUpdate(0xc0a80001);
    u.updateChecksumForAddress(old, 0xc0a80001);
    expect(ip.verifyChecksum()).toBe(true);
    expect(u.checksum).toBe(wireUdp(b, 0, 24));
  });

  it("a zero checksum (none, RFC 768) stays zero through every setter", () => {
    const b = ipv4Udp({ src: "10.0.0.1", dst: "10.0.0.2", zeroChecksum: true, payload: "x" });
    const u = udpAt(b, 20);
    expect(u.checksum).toBe(0);
    u.setSportWithChecksumUpdate(1);
    u.setDportWithChecksumUpdate(2);
    u.updateChecksumForAddress(0x0a000001, 0x01020304);
    expect(u.checksum).toBe(0);
    expect([u.sport, u.dport]).toEqual([1, 2]);
  });

  it("an update that computes to zero is written as 0xffff and still verifies", () => {
    const b = fromHex(UDP4);
    const u = udpAt(b, 24);
    // The source port for which RFC 1624 eqn. 3 gives 0.
    let port = -1;
    for (let p = 0; p <= 0xffff && port < 0; p++) if (csumReplace16(u.checksum, u.sport, p) === 0) port = p;
    expect(port).toBeGreaterThanOrEqual(0);
    u.setSportWithChecksumUpdate(port);
    expect(u.checksum).toBe(0xffff);
    expect(fullL4Checksum(b, 0, 24, 12, 17, 6)).toBe(0); // the full computation gives 0 too
    const pkt = new Packet();
    expect(pkt.parse(b, 0, b.length)).toBe(PARSE.OK);
    expect(pkt.l4ChecksumValid()).toBe(true);
  });

  it("plain setters write bytes only", () => {
    const b = fromHex(UDP6);
    const u = udpAt(b, 40);
    u.setSport(7);
    u.setDport(8);
    u.setChecksum(0);
    expect(hex(b.subarray(40, 48))).toBe("00 07 00 08 00 0c 00 00");
  });
});

describe("UdpView: properties", () => {
  it("every ...WithChecksumUpdate setter on random packets: verifies; zero stays zero", () => {
    const pkt = new Packet();
    fc.assert(
      fc.property(fc.oneof(udp4, udp6), u16, u16, fc.array(fc.tuple(fc.nat(3), u32), { maxLength: 3 }), (b, sp, dp, addrs) => {
        expect(pkt.parse(b, 0, b.length)).toBe(PARSE.OK);
        const u = pkt.udp;
        const zero = u.checksum === 0;
        const full = (): number => (zero ? 0 : fullL4Checksum(b, 0, pkt.l4Offset, pkt.l4Length, 17, 6) || 0xffff);
        u.setSportWithChecksumUpdate(sp);
        expect(u.checksum).toBe(full());
        u.setDportWithChecksumUpdate(dp);
        expect(u.checksum).toBe(full());
        for (const [i, w] of addrs) {
          if (pkt.family === 2) {
            const old = pkt.ip4.src;
            pkt.ip4.setSrcWithChecksumUpdate(w);
            u.updateChecksumForAddress(old, w);
          } else {
            const old = pkt.ip6.srcWord(i);
            pkt.ip6.setSrcWord(i, w);
            u.updateChecksumForAddress(old, w);
          }
        }
        expect(u.checksum).toBe(full());
        expect(u.checksum === 0).toBe(zero);
        expect(pkt.l4ChecksumValid()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("reset never throws; on success Length lies within the window", () => {
    const u = new UdpView();
    fc.assert(
      fc.property(fuzzWindow, ([b, off, len]) => {
        for (const [o, n] of [[off, len], [off + 20, len - 20], [off + 40, len - 40]] as const) {
          if (!u.reset(b, o, n)) continue;
          if (u.length < 8 || u.length > n || u.payloadOffset + u.payloadLength > o + n) return false;
        }
        return true;
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
