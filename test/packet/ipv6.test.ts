// Ipv6View on byte fixtures: the fixed header, the extension-header walk
// (ipv6_skip_exthdr), RFC 8200 ordering rules, truncation, quoted packets.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { IPV6_HEADER, Ipv6View } from "../../src/packet/ipv6.js";
import { fromHex, hex, ipv6Generic, ipv6Udp, type Ext6 } from "../helpers/packets.js";
import { FUZZ_RUNS, fuzzWindow } from "./arb.js";

// [2001:db8::1]:546 -> [2001:db8::2]:547 UDP "dhcp".
const UDP6 = `
  6b 81 23 45   # version 6, traffic class 0xb8, flow label 0x12345
  00 0c 11 40   # payload length 12, next header 17 (UDP), hop limit 64
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   # 2001:db8::1
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02   # 2001:db8::2
  02 22 02 23 00 0c d8 43 64 68 63 70               # UDP 546 -> 547, len 12, "dhcp"`;

// The same datagram behind hop-by-hop + routing + destination options +
// fragment (first, M set) + AH.
const CHAIN = `
  6b 81 23 45 00 4c 00 40   # payload length 76, next header 0 (hop-by-hop)
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  2b 00 01 04 00 00 00 00   # @40 hop-by-hop, next 43, 8 bytes (PadN 4)
  3c 00 00 00 00 00 00 00   # @48 routing, next 60, 8 bytes (type 0, segments left 0)
  2c 01 01 0c 00 00 00 00 00 00 00 00 00 00 00 00   # @56 dest options, next 44, 16 bytes
  33 00 00 01 de ad be ef   # @72 fragment, next 51, offset 0, M=1, id 0xdeadbeef
  11 04 00 00 00 00 10 00 00 00 00 01               # @80 AH, next 17, len 4 -> (4+2)*4 = 24 bytes; SPI 0x1000, seq 1
  a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac               #     ICV (96 bits)
  02 22 02 23 00 0c d8 43 64 68 63 70               # @104 UDP`;

const HBH = 40, RT = 48, DST = 56, FRAG = 72, AH = 80, UPPER = 104;

function view(b: Uint8Array, off = 0, len = b.length - off, quoted = false): Ipv6View {
  const v = new Ipv6View();
  expect(v.reset(b, off, len, quoted)).toBe(true);
  return v;
}

const V6 = { src: "2001:db8::1", dst: "2001:db8::2" } as const;

/** A generic IPv6 packet with the given extension-header types (upper layer UDP-ish payload). */
function withExts(types: number[], payload = new Uint8Array(8)): Uint8Array {
  return ipv6Generic({ ...V6, proto: 17, payload, ext: types.map((type): Ext6 => ({ type })) });
}

describe("Ipv6View: deconstruct", () => {
  it("reads every fixed-header field", () => {
    const b = fromHex(UDP6);
    const v = view(b);
    expect(v.trafficClass).toBe(0xb8);
    expect(v.flowLabel).toBe(0x12345);
    expect(v.payloadLengthField).toBe(12);
    expect(v.totalLength).toBe(52);
    expect(v.nextHeader).toBe(17);
    expect(v.hopLimit).toBe(64);
    expect([0, 1, 2, 3].map((i) => v.srcWord(i))).toEqual([0x20010db8, 0, 0, 1]);
    expect([0, 1, 2, 3].map((i) => v.dstWord(i))).toEqual([0x20010db8, 0, 0, 2]);
    expect(v.srcOffset).toBe(8);
    expect(v.dstOffset).toBe(24);
    expect(v.upperProtocol).toBe(17);
    expect(v.upperOffset).toBe(40);
    expect(v.upperLength).toBe(12);
    expect(v.endOffset).toBe(52);
    expect(v.hasFragmentHeader).toBe(false);
    expect(v.fragmentHeaderOffset).toBe(-1);
    expect(v.fragmentPrevNextOffset).toBe(-1);
    expect(v.fragmentOffset).toBe(0);
    expect(v.moreFragments).toBe(false);
    expect(v.isFragment).toBe(false);
    expect(v.fragmentId).toBe(0);
  });

  it("reads address words with the top bit set as unsigned", () => {
    const b = fromHex(UDP6);
    b.fill(0xff, 8, 40);
    const v = view(b);
    for (let i = 0; i < 4; i++) {
      expect(v.srcWord(i)).toBe(0xffffffff);
      expect(v.dstWord(i)).toBe(0xffffffff);
    }
  });

  it("walks hop-by-hop + routing + dstopts + fragment (first) + AH to UDP", () => {
    const b = fromHex(CHAIN);
    const v = view(b);
    expect(v.nextHeader).toBe(0);
    expect(v.totalLength).toBe(116);
    expect(v.upperProtocol).toBe(17);
    expect(v.upperOffset).toBe(UPPER);
    expect(v.upperLength).toBe(12);
    expect(v.fragmentHeaderOffset).toBe(FRAG);
    expect(v.fragmentPrevNextOffset).toBe(DST); // the dest-options header names the fragment header
    expect(b[v.fragmentPrevNextOffset]).toBe(44);
    expect(v.hasFragmentHeader).toBe(true);
    expect(v.fragmentOffset).toBe(0);
    expect(v.moreFragments).toBe(true);
    expect(v.isFragment).toBe(true);
    expect(v.fragmentId).toBe(0xdeadbeef);
  });

  it("stops at a non-first fragment: the upper protocol is the fragment header's next header", () => {
    const b = fromHex(CHAIN);
    b[FRAG + 2] = 0x05;
    b[FRAG + 3] = 0xc9; // offset 185 (1480 bytes), M=1
    b[AH + 1] = 0xff; // the bytes after it are fragment data: never read as AH
    const v = view(b);
    expect(v.upperProtocol).toBe(51);
    expect(v.upperOffset).toBe(AH);
    expect(v.upperLength).toBe(116 - AH);
    expect(v.fragmentOffset).toBe(1480);
    expect(v.moreFragments).toBe(true);
    expect(v.isFragment).toBe(true);
    b[FRAG + 3] = 0xc8; // last fragment: M=0, still a fragment
    expect(view(b).isFragment).toBe(true);
    expect(view(b).moreFragments).toBe(false);
  });

  it("an atomic fragment (offset 0, M=0, RFC 6946) is walked through and is not a fragment", () => {
    const b = fromHex(CHAIN);
    b[FRAG + 3] = 0;
    const v = view(b);
    expect(v.hasFragmentHeader).toBe(true);
    expect(v.isFragment).toBe(false);
    expect(v.upperProtocol).toBe(17);
    expect(v.upperOffset).toBe(UPPER);
  });

  it("sizes AH in 4-byte units ((len + 2) * 4) and the others in 8-byte units ((len + 1) * 8)", () => {
    const b = fromHex(CHAIN);
    // AH len 4 = 24 bytes, as above; with len 2 = 16 bytes the walk would land inside the ICV.
    b[AH + 1] = 2;
    const v = view(b);
    expect(v.upperOffset).toBe(AH + 16);
    expect(v.upperProtocol).toBe(17);
    // Dest options len 1 = 16 bytes; len 0 would put the fragment header at 64.
    expect(view(fromHex(CHAIN)).fragmentHeaderOffset).toBe(DST + 16);
  });

  it("stops at 59 (no next header) and at unknown protocols", () => {
    const v = view(withExts([60], new Uint8Array(0)).map((x, i) => (i === 40 ? 59 : x)));
    expect(v.upperProtocol).toBe(59);
    expect(v.upperOffset).toBe(48);
    expect(v.upperLength).toBe(0);
    const g = ipv6Generic({ ...V6, proto: 50, payload: new Uint8Array(16) }); // ESP is not walked
    expect(view(g).upperProtocol).toBe(50);
    expect(view(g).upperOffset).toBe(40);
  });

  it("accepts 16 extension headers and refuses 17 (bounded walk)", () => {
    expect(view(withExts(new Array(16).fill(60))).upperOffset).toBe(40 + 16 * 8);
    expect(new Ipv6View().reset(withExts(new Array(17).fill(60)), 0, 40 + 17 * 8 + 8)).toBe(false);
  });

  it("reads at a non-zero offset", () => {
    const pkt = fromHex(CHAIN);
    const b = new Uint8Array(pkt.length + 20).fill(0x77);
    b.set(pkt, 14);
    const v = view(b, 14, pkt.length + 6); // 6 bytes of trailer are ignored
    expect(v.srcOffset).toBe(22);
    expect(v.upperOffset).toBe(14 + UPPER);
    expect(v.fragmentHeaderOffset).toBe(14 + FRAG);
    expect(v.fragmentPrevNextOffset).toBe(14 + DST);
    expect(v.endOffset).toBe(14 + 116);
    expect(v.upperLength).toBe(12);
  });
});

describe("Ipv6View: construct (the builder emits the fixtures)", () => {
  it("UDP", () => {
    const p = ipv6Udp({ ...V6, tos: 0xb8, flowLabel: 0x12345, hopLimit: 64, sport: 546, dport: 547, payload: "dhcp" });
    expect(hex(p)).toBe(hex(fromHex(UDP6)));
  });

  it("the extension chain (the builder sizes AH in 8-byte units: its length byte is patched)", () => {
    const ahData = fromHex("00 00 00 00 10 00 00 00 00 01 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac");
    const p = ipv6Udp({
      ...V6, tos: 0xb8, flowLabel: 0x12345, hopLimit: 64, sport: 546, dport: 547, payload: "dhcp",
      ext: [{ type: 0 }, { type: 43 }, { type: 60, len: 1 }, { type: 44, mf: true, fragId: 0xdeadbeef }, { type: 51, data: ahData }],
    });
    p[AH + 1] = 4; // RFC 4302 §2.2: (24 / 4) - 2
    expect(hex(p)).toBe(hex(fromHex(CHAIN)));
  });
});

describe("Ipv6View: parse (reset) rejects", () => {
  it("every length below 40 bytes", () => {
    const b = fromHex(UDP6);
    const v = new Ipv6View();
    for (let len = 0; len < IPV6_HEADER; len++) {
      expect(v.reset(b, 0, len), `len ${len}`).toBe(false);
      expect(v.reset(b, 0, len, true), `quoted len ${len}`).toBe(false);
    }
  });

  it("a version other than 6", () => {
    const b = fromHex(UDP6);
    const v = new Ipv6View();
    for (let ver = 0; ver < 16; ver++) {
      b[0] = (ver << 4) | 0x0b;
      expect(v.reset(b, 0, b.length), `version ${ver}`).toBe(ver === 6);
    }
  });

  it("Payload Length beyond the buffer", () => {
    const b = fromHex(UDP6);
    const v = new Ipv6View();
    for (let len = 40; len < 52; len++) expect(v.reset(b, 0, len), `len ${len}`).toBe(false);
    b[5] = 13;
    expect(v.reset(b, 0, 52)).toBe(false);
    expect(v.reset(b, 1, 52)).toBe(false);
    expect(v.reset(b, -1, 52)).toBe(false);
  });

  it("ignores bytes beyond Payload Length", () => {
    const p = fromHex(UDP6);
    const b = new Uint8Array(80).fill(0xcc);
    b.set(p);
    const v = view(b, 0, 80);
    expect(v.totalLength).toBe(52);
    expect(v.endOffset).toBe(52);
    expect(v.upperLength).toBe(12);
  });

  it("every truncation of the extension-header chain", () => {
    const full = fromHex(CHAIN);
    const v = new Ipv6View();
    for (let plen = 0; plen < UPPER - 40; plen++) {
      const b = full.slice(0, 40 + plen);
      b[4] = 0;
      b[5] = plen;
      expect(v.reset(b, 0, b.length), `payload length ${plen}`).toBe(false);
    }
    // Cut exactly after AH: the chain is whole, the upper layer is empty.
    const b = full.slice(0, UPPER);
    b[5] = UPPER - 40;
    expect(v.reset(b, 0, b.length)).toBe(true);
    expect(v.upperLength).toBe(0);
  });

  it("an extension header whose length runs past the datagram", () => {
    const v = new Ipv6View();
    for (const at of [HBH, RT, DST, AH]) {
      const b = fromHex(CHAIN);
      b[at + 1] = 0xff;
      expect(v.reset(b, 0, b.length), `header at ${at}`).toBe(false);
    }
  });

  it("two fragment headers", () => {
    const v = new Ipv6View();
    expect(v.reset(withExts([44, 44]), 0, 40 + 16 + 8)).toBe(false);
    expect(v.reset(withExts([44, 60, 44]), 0, 40 + 24 + 8)).toBe(false);
    expect(v.reset(withExts([44, 60]), 0, 40 + 16 + 8)).toBe(true);
  });

  it("hop-by-hop anywhere but directly after the fixed header (RFC 8200 §4.1)", () => {
    const v = new Ipv6View();
    expect(v.reset(withExts([0, 60]), 0, 40 + 16 + 8)).toBe(true);
    expect(v.reset(withExts([60, 0]), 0, 40 + 16 + 8)).toBe(false);
    expect(v.reset(withExts([0, 0]), 0, 40 + 16 + 8)).toBe(false);
    expect(v.reset(withExts([44, 0]), 0, 40 + 16 + 8)).toBe(false);
  });

  it("a jumbogram (Payload Length 0 with hop-by-hop) is refused", () => {
    const b = withExts([0]);
    b[4] = 0;
    b[5] = 0;
    expect(new Ipv6View().reset(b, 0, b.length)).toBe(false);
  });

  it("Payload Length 0 with no next header is a valid empty datagram", () => {
    const b = ipv6Generic({ ...V6, proto: 59 });
    const v = view(b);
    expect(v.totalLength).toBe(40);
    expect(v.upperProtocol).toBe(59);
    expect(v.upperLength).toBe(0);
  });
});

describe("Ipv6View: quoted", () => {
  it("Payload Length may exceed the bytes present; the end is where the quote ends", () => {
    const b = fromHex(UDP6);
    const v = new Ipv6View();
    for (let len = 40; len <= 52; len++) {
      expect(v.reset(b, 0, len, true), `len ${len}`).toBe(true);
      expect(v.totalLength).toBe(52);
      expect(v.endOffset).toBe(len);
      expect(v.upperLength).toBe(len - 40);
    }
  });

  it("the extension chain must still be whole", () => {
    const b = fromHex(CHAIN);
    const v = new Ipv6View();
    for (let len = 40; len < UPPER; len++) expect(v.reset(b, 0, len, true), `len ${len}`).toBe(false);
    expect(v.reset(b, 0, UPPER, true)).toBe(true);
    expect(v.upperOffset).toBe(UPPER);
    expect(v.upperLength).toBe(0);
  });
});

describe("Ipv6View: emit (setters)", () => {
  it("setHopLimit, setSrcWord, setDstWord write their bytes only", () => {
    const b = fromHex(UDP6);
    const v = view(b);
    v.setHopLimit(63);
    v.setSrcWord(3, 0xfffffffe);
    v.setDstWord(0, 0xfe800000);
    expect(v.hopLimit).toBe(63);
    expect(v.srcWord(3)).toBe(0xfffffffe);
    expect(v.dstWord(0)).toBe(0xfe800000);
    const want = fromHex(UDP6);
    want[7] = 63;
    want.set([0xff, 0xff, 0xff, 0xfe], 20);
    want.set([0xfe, 0x80, 0, 0], 24);
    expect(hex(b)).toBe(hex(want));
  });

  it("setPayloadLength writes the field and moves the end", () => {
    const b = fromHex(UDP6);
    const v = view(b);
    v.setPayloadLength(8);
    expect(hex(b.subarray(4, 6))).toBe("00 08");
    expect(v.payloadLengthField).toBe(8);
    expect(v.totalLength).toBe(48);
    expect(v.endOffset).toBe(48);
    expect(v.upperLength).toBe(8);
  });
});

describe("Ipv6View: properties", () => {
  it("reset never throws, and on success the walk stays inside the window", () => {
    const v = new Ipv6View();
    fc.assert(
      fc.property(fuzzWindow, fc.boolean(), ([b, off, len], quoted) => {
        if (!v.reset(b, off, len, quoted)) return true;
        return v.upperOffset >= off + 40 && v.upperOffset <= v.endOffset && v.endOffset <= off + len &&
          (!v.hasFragmentHeader || (v.fragmentHeaderOffset + 8 <= v.endOffset && Number.isInteger(v.fragmentOffset + v.fragmentId)));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("random extension chains of builder packets: walk ends at the upper layer", () => {
    const extType = fc.constantFrom(43, 60);
    fc.assert(
      fc.property(fc.boolean(), fc.array(extType, { maxLength: 10 }), fc.boolean(), fc.uint8Array({ maxLength: 32 }), (hbh, mid, frag, pl) => {
        const types = [...(hbh ? [0] : []), ...mid, ...(frag ? [44] : [])];
        const b = ipv6Generic({ ...V6, proto: 6, payload: pl, ext: types.map((type): Ext6 => ({ type })) });
        const v = view(b);
        expect(v.upperProtocol).toBe(6);
        expect(v.upperOffset).toBe(40 + 8 * types.length);
        expect(v.upperLength).toBe(pl.length);
        expect(v.hasFragmentHeader).toBe(frag);
        expect(v.isFragment).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
