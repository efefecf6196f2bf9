// Ipv4View on byte fixtures (deconstruct, construct, parse, emit), the
// ip_rcv_core() bounds checks, RFC 1624 setters, and fuzz.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { IPV4_MIN_HEADER, Ipv4View } from "../../src/packet/ipv4.js";
import { fromHex, hex, inetChecksum, ipv4Tcp, ipv4Udp } from "../helpers/packets.js";
import { FUZZ_RUNS, fuzzWindow, generic4, icmp4, tcp4, u32, u8, udp4 } from "./arb.js";

// 192.0.2.1:49152 -> 198.51.100.7:443 SYN, as Linux sends it.
const SYN = `
  45 b8 00 3c   # version 4, IHL 5; TOS 0xb8 (DSCP 46 EF, ECN 0); total length 60
  1c 46 40 00   # id 0x1c46; DF, offset 0
  40 06 31 82   # TTL 64, protocol 6 (TCP), header checksum 0x3182
  c0 00 02 01   # 192.0.2.1
  c6 33 64 07   # 198.51.100.7
  c0 00 01 bb 01 02 03 04 00 00 00 00 a0 02 fa f0 56 ab 00 00
  02 04 05 b4 04 02 08 0a 11 22 33 44 00 00 00 00 01 03 03 07`;

// UDP with a router-alert option (IHL 6), TTL 1, ECN CE.
const UDP_OPT = `
  46 03 00 24   # version 4, IHL 6; TOS 0x03 (ECN 3); total length 36
  ab cd 00 00   # id 0xabcd, no flags
  01 11 5a e1   # TTL 1, protocol 17, checksum 0x5ae1
  0a 01 02 03   # 10.1.2.3
  0a 09 08 07   # 10.9.8.7
  94 04 00 00   # option: router alert (RFC 2113)
  14 e9 00 35 00 0c 43 1a 68 69 21 21`;

// A middle fragment: evil bit + MF, offset 185 (1480 bytes), TTL 128, UDP.
const FRAG = `
  45 00 00 1c 12 34 a0 b9 80 11 2f c0 ac 10 00 01 ac 10 00 02
  01 02 03 04 05 06 07 08`;

/** The header checksum a full recomputation gives (checksum field zeroed). */
function fullIpChecksum(b: Uint8Array, off = 0): number {
  const hl = (b[off]! & 0x0f) * 4;
  const h = b.slice(off, off + hl);
  h[10] = 0;
  h[11] = 0;
  return inetChecksum(h);
}

function view(b: Uint8Array, off = 0, len = b.length - off, quoted = false): Ipv4View {
  const v = new Ipv4View();
  expect(v.reset(b, off, len, quoted)).toBe(true);
  return v;
}

describe("Ipv4View: deconstruct", () => {
  it("reads every field of a TCP SYN", () => {
    const b = fromHex(SYN);
    const v = view(b);
    expect(v.ihl).toBe(5);
    expect(v.headerLength).toBe(20);
    expect(v.totalLength).toBe(60);
    expect(v.availableLength).toBe(60);
    expect(v.tos).toBe(0xb8);
    expect(v.dscp).toBe(46);
    expect(v.ecn).toBe(0);
    expect(v.id).toBe(0x1c46);
    expect(v.flags).toBe(2);
    expect(v.dontFragment).toBe(true);
    expect(v.moreFragments).toBe(false);
    expect(v.fragmentOffset).toBe(0);
    expect(v.isFragment).toBe(false);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(6);
    expect(v.checksum).toBe(0x3182);
    expect(v.src).toBe(0xc0000201);
    expect(v.dst).toBe(0xc6336407);
    expect(v.optionsOffset).toBe(20);
    expect(v.optionsLength).toBe(0);
    expect(v.payloadOffset).toBe(20);
    expect(v.payloadLength).toBe(40);
    expect(v.verifyChecksum()).toBe(true);
  });

  it("reads options, ECN and a TTL of 1", () => {
    const b = fromHex(UDP_OPT);
    const v = view(b);
    expect(v.ihl).toBe(6);
    expect(v.headerLength).toBe(24);
    expect(v.tos).toBe(3);
    expect(v.dscp).toBe(0);
    expect(v.ecn).toBe(3);
    expect(v.id).toBe(0xabcd);
    expect(v.flags).toBe(0);
    expect(v.ttl).toBe(1);
    expect(v.protocol).toBe(17);
    expect(v.src).toBe(0x0a010203);
    expect(v.dst).toBe(0x0a090807);
    expect(v.optionsOffset).toBe(20);
    expect(v.optionsLength).toBe(4);
    expect(hex(b.subarray(v.optionsOffset, v.optionsOffset + v.optionsLength))).toBe("94 04 00 00");
    expect(v.payloadOffset).toBe(24);
    expect(v.payloadLength).toBe(12);
    expect(v.verifyChecksum()).toBe(true);
  });

  it("reads fragment fields: reserved bit, MF, offset in bytes", () => {
    const v = view(fromHex(FRAG));
    expect(v.flags).toBe(5); // reserved | MF
    expect(v.dontFragment).toBe(false);
    expect(v.moreFragments).toBe(true);
    expect(v.fragmentOffset).toBe(185 * 8);
    expect(v.isFragment).toBe(true);
    expect(v.ttl).toBe(128);
    expect(v.verifyChecksum()).toBe(true);
  });

  it("isFragment as ip_is_fragment: MF or a non-zero offset, not DF or the reserved bit", () => {
    const b = fromHex(FRAG);
    const v = view(b);
    const cases: [number, number, boolean][] = [
      [0x00, 0x00, false],
      [0x40, 0x00, false], // DF
      [0x80, 0x00, false], // reserved
      [0x20, 0x00, true], // MF, first fragment
      [0x00, 0x01, true], // last fragment, offset 8
      [0x1f, 0xff, true], // largest offset
      [0x01, 0x00, true], // offset 256 units: high offset bits count
    ];
    for (const [hi, lo, frag] of cases) {
      b[6] = hi;
      b[7] = lo;
      expect(v.isFragment, `${hi}/${lo}`).toBe(frag);
      expect(v.fragmentOffset).toBe((((hi & 0x1f) << 8) | lo) * 8);
    }
    b[6] = 0x1f;
    b[7] = 0xff;
    expect(v.fragmentOffset).toBe(65528);
  });

  it("reads at a non-zero offset (after a 14-byte Ethernet header)", () => {
    const pkt = fromHex(SYN);
    const b = new Uint8Array(14 + pkt.length).fill(0xee);
    b.set(pkt, 14);
    const v = view(b, 14);
    expect(v.off).toBe(14);
    expect(v.src).toBe(0xc0000201);
    expect(v.payloadOffset).toBe(34);
    expect(v.optionsOffset).toBe(34);
    expect(v.verifyChecksum()).toBe(true);
  });

  it("reads addresses with the top bit set as unsigned", () => {
    const b = fromHex("45 00 00 14 00 01 00 01 ff 2f 3c b8 7f 00 00 01 ff ff ff ff");
    const v = view(b);
    expect(v.src).toBe(0x7f000001);
    expect(v.dst).toBe(0xffffffff);
    expect(v.verifyChecksum()).toBe(true);
    expect(v.payloadLength).toBe(0);
  });
});

describe("Ipv4View: construct (the builder emits the fixtures)", () => {
  it("SYN", () => {
    const p = ipv4Tcp({
      src: "192.0.2.1", dst: "198.51.100.7", id: 0x1c46, tos: 0xb8, df: true, ttl: 64,
      sport: 49152, dport: 443, seq: 0x01020304, flags: "S", win: 64240,
      options: { mss: 1460, sackPerm: true, ts: [0x11223344, 0], wscale: 7 },
    });
    expect(hex(p)).toBe(hex(fromHex(SYN)));
  });

  it("UDP with options", () => {
    const p = ipv4Udp({
      src: "10.1.2.3", dst: "10.9.8.7", id: 0xabcd, ttl: 1, tos: 3, sport: 5353, dport: 53, payload: "hi!!",
      ipOptions: Uint8Array.of(0x94, 4, 0, 0),
    });
    expect(hex(p)).toBe(hex(fromHex(UDP_OPT)));
  });
});

describe("Ipv4View: parse (reset) rejects what ip_rcv_core() drops", () => {
  it("every length below 20 bytes", () => {
    const b = fromHex(SYN);
    const v = new Ipv4View();
    for (let len = 0; len < IPV4_MIN_HEADER; len++) {
      expect(v.reset(b, 0, len), `len ${len}`).toBe(false);
      expect(v.reset(b, 0, len, true), `quoted len ${len}`).toBe(false);
    }
  });

  it("every length below Total Length (unless quoted)", () => {
    const b = fromHex(SYN);
    const v = new Ipv4View();
    for (let len = IPV4_MIN_HEADER; len < 60; len++) {
      expect(v.reset(b, 0, len), `len ${len}`).toBe(false);
      expect(v.reset(b.slice(0, len), 0, len), `buffer of ${len}`).toBe(false);
    }
    expect(v.reset(b, 0, 60)).toBe(true);
  });

  it("a version other than 4", () => {
    const b = fromHex(SYN);
    const v = new Ipv4View();
    for (let ver = 0; ver < 16; ver++) {
      b[0] = (ver << 4) | 5;
      expect(v.reset(b, 0, b.length), `version ${ver}`).toBe(ver === 4);
    }
  });

  it("IHL below 5, IHL beyond the bytes present, Total Length below IHL", () => {
    const b = fromHex(SYN);
    const v = new Ipv4View();
    for (let ihl = 0; ihl < 5; ihl++) {
      b[0] = 0x40 | ihl;
      expect(v.reset(b, 0, b.length), `ihl ${ihl}`).toBe(false);
    }
    b[0] = 0x4f; // 60 bytes of header: fits the 60-byte buffer
    expect(v.reset(b, 0, 60)).toBe(true);
    expect(v.headerLength).toBe(60);
    expect(v.payloadLength).toBe(0);
    expect(v.reset(b, 0, 59, true)).toBe(false); // header not whole, even quoted
    b[0] = 0x46;
    b[3] = 23; // total length 23 < IHL 24
    expect(v.reset(b, 0, b.length)).toBe(false);
    b[3] = 24;
    expect(v.reset(b, 0, b.length)).toBe(true);
    expect(v.payloadLength).toBe(0);
    b[2] = 0;
    b[3] = 0; // total length 0 (TSO-style "fill in later") is refused
    expect(v.reset(b, 0, b.length)).toBe(false);
  });

  it("a window outside the buffer", () => {
    const b = fromHex(SYN);
    const v = new Ipv4View();
    expect(v.reset(b, -1, 60)).toBe(false);
    expect(v.reset(b, 1, 60)).toBe(false);
    expect(v.reset(b, 0, 61)).toBe(false);
    expect(v.reset(b, 60, 20)).toBe(false);
  });

  it("ignores Ethernet padding beyond Total Length", () => {
    const pkt = fromHex(SYN).slice(0, 40);
    pkt[3] = 40; // now a 40-byte datagram: header + 20 bytes
    pkt[10] = 0;
    pkt[11] = 0;
    pkt.set([fullIpChecksum(pkt) >>> 8, fullIpChecksum(pkt) & 0xff], 10);
    const b = new Uint8Array(46).fill(0xa5); // 46 = minimum Ethernet payload
    b.set(pkt);
    const v = view(b, 0, 46);
    expect(v.totalLength).toBe(40);
    expect(v.availableLength).toBe(40);
    expect(v.payloadLength).toBe(20);
    expect(v.verifyChecksum()).toBe(true);
  });

  it("quoted: Total Length may exceed the bytes present; availableLength is what is there", () => {
    const b = fromHex(SYN);
    const v = new Ipv4View();
    for (let len = 20; len <= 60; len++) {
      expect(v.reset(b, 0, len, true)).toBe(true);
      expect(v.totalLength).toBe(60);
      expect(v.availableLength).toBe(len);
      expect(v.payloadLength).toBe(len - 20);
    }
    const o = fromHex(UDP_OPT);
    for (let len = 20; len < 24; len++) expect(v.reset(o, 0, len, true), `len ${len}`).toBe(false);
    expect(v.reset(o, 0, 24, true)).toBe(true);
    expect(v.payloadLength).toBe(0);
  });

  it("re-aims a reused view", () => {
    const v = new Ipv4View();
    expect(v.reset(fromHex(SYN), 0, 60)).toBe(true);
    expect(v.reset(fromHex(UDP_OPT), 0, 36)).toBe(true);
    expect(v.headerLength).toBe(24);
    expect(v.protocol).toBe(17);
    expect(v.totalLength).toBe(36);
  });
});

describe("Ipv4View: emit (setters)", () => {
  it("setTtlWithChecksumUpdate: TTL byte and an exact checksum", () => {
    const b = fromHex(SYN);
    const v = view(b);
    v.setTtlWithChecksumUpdate(63);
    expect(hex(b.subarray(8, 12))).toBe("3f 06 32 82");
    expect(v.checksum).toBe(fullIpChecksum(b));
    for (const ttl of [0, 1, 255, 64]) {
      v.setTtlWithChecksumUpdate(ttl);
      expect(v.ttl).toBe(ttl);
      expect(v.protocol).toBe(6);
      expect(v.checksum).toBe(fullIpChecksum(b));
      expect(v.verifyChecksum()).toBe(true);
    }
    expect(hex(b)).toBe(hex(fromHex(SYN)));
  });

  it("setSrc/DstWithChecksumUpdate: address bytes and an exact checksum", () => {
    const b = fromHex(UDP_OPT);
    const v = view(b);
    v.setSrcWithChecksumUpdate(0xc0a80101);
    expect(hex(b.subarray(12, 16))).toBe("c0 a8 01 01");
    expect(v.src).toBe(0xc0a80101);
    expect(v.checksum).toBe(fullIpChecksum(b));
    v.setDstWithChecksumUpdate(0xffffffff);
    expect(hex(b.subarray(16, 20))).toBe("ff ff ff ff");
    expect(v.dst).toBe(0xffffffff);
    expect(v.checksum).toBe(fullIpChecksum(b));
    expect(v.verifyChecksum()).toBe(true);
    // Only the address and checksum bytes moved.
    const orig = fromHex(UDP_OPT);
    for (let i = 0; i < b.length; i++) if (i < 10 || i >= 20) expect(b[i], `byte ${i}`).toBe(orig[i]);
  });

  it("plain setters write bytes and leave the checksum; updateChecksum recomputes it", () => {
    const b = fromHex(SYN);
    const v = view(b);
    v.setTtl(1);
    v.setTos(0x02);
    v.setSrc(0x0a000001);
    v.setDst(0x0a000002);
    expect(hex(b.subarray(0, 20))).toBe("45 02 00 3c 1c 46 40 00 01 06 31 82 0a 00 00 01 0a 00 00 02");
    expect(v.verifyChecksum()).toBe(false);
    v.updateChecksum();
    expect(v.checksum).toBe(fullIpChecksum(b));
    expect(v.verifyChecksum()).toBe(true);
  });

  it("setTotalLength writes the field and the view's lengths", () => {
    const b = fromHex(SYN);
    const v = view(b);
    v.setTotalLength(40);
    expect(hex(b.subarray(2, 4))).toBe("00 28");
    expect(v.totalLength).toBe(40);
    expect(v.availableLength).toBe(40);
    expect(v.payloadLength).toBe(20);
    v.updateChecksum();
    expect(v.reset(b, 0, 40)).toBe(true);
    expect(v.verifyChecksum()).toBe(true);
  });

  it("updateChecksum covers options", () => {
    const b = fromHex(UDP_OPT);
    const v = view(b);
    b[21] = 0x04;
    b[22] = 0x12; // change option data
    expect(v.verifyChecksum()).toBe(false);
    v.updateChecksum();
    expect(v.checksum).toBe(fullIpChecksum(b));
    expect(v.verifyChecksum()).toBe(true);
  });
});

describe("Ipv4View: properties", () => {
  it("every ...WithChecksumUpdate setter on random packets keeps an exact header checksum", () => {
    fc.assert(
      fc.property(fc.oneof(tcp4, udp4, icmp4, generic4), u8, u32, u32, fc.nat(3), (p, ttl, src, dst, pad) => {
        const b = new Uint8Array(pad + p.length);
        b.set(p, pad);
        const v = view(b, pad);
        v.setTtlWithChecksumUpdate(ttl);
        expect(v.checksum).toBe(fullIpChecksum(b, pad));
        v.setSrcWithChecksumUpdate(src);
        expect(v.checksum).toBe(fullIpChecksum(b, pad));
        v.setDstWithChecksumUpdate(dst);
        expect(v.checksum).toBe(fullIpChecksum(b, pad));
        expect([v.ttl, v.src, v.dst]).toEqual([ttl, src, dst]);
        expect(v.verifyChecksum()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("reset never throws, and on success every getter stays inside the window", () => {
    const v = new Ipv4View();
    fc.assert(
      fc.property(fuzzWindow, fc.boolean(), ([b, off, len], quoted) => {
        if (!v.reset(b, off, len, quoted)) return true;
        v.verifyChecksum();
        // Plain boolean checks: `expect` per run would dominate the run time.
        return v.headerLength >= 20 && v.headerLength <= len && v.payloadLength >= 0 &&
          v.payloadOffset + v.payloadLength <= off + len && (quoted || v.totalLength <= len) &&
          Number.isInteger(v.src + v.dst + v.checksum + v.id + v.fragmentOffset);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
