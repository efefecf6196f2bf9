// TcpView on byte fixtures: header fields, tcp_error() bounds checks, option
// parsing as nf_conntrack_proto_tcp.c's tcp_options()/tcp_sack(), RFC 1624
// setters, and fuzz.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Ipv4View } from "../../src/packet/ipv4.js";
import { PARSE, Packet } from "../../src/packet/packet.js";
import { TCP_FLAG, TCP_MAX_WSCALE, TCP_MIN_HEADER, TCPOPT, TcpView } from "../../src/packet/tcp.js";
import { fromHex, hex, ipv4Tcp, ipv6Tcp } from "../helpers/packets.js";
import { FUZZ_RUNS, fullL4Checksum, fuzzWindow, tcp4, tcp6, u16, u32 } from "./arb.js";

// 192.0.2.1:49152 -> 198.51.100.7:443 SYN with Linux's options (the IPv4 header is in ipv4.test.ts).
const SYN = `
  45 b8 00 3c 1c 46 40 00 40 06 31 82 c0 00 02 01 c6 33 64 07
  c0 00 01 bb   # @20 source port 49152, destination port 443
  01 02 03 04   # sequence number 0x01020304
  00 00 00 00   # acknowledgment number 0
  a0 02 fa f0   # data offset 10 (40 bytes), flags SYN, window 64240
  56 ab 00 00   # checksum 0x56ab, urgent pointer 0
  02 04 05 b4   # MSS 1460
  04 02         # SACK permitted
  08 0a 11 22 33 44 00 00 00 00   # timestamps TSval 0x11223344, TSecr 0
  01 03 03 07   # NOP, window scale 7`;

// 10.0.0.1:1234 -> 10.0.0.2:80 bare ACK.
const ACK = `
  45 00 00 28 00 00 00 00 40 06 66 ce 0a 00 00 01 0a 00 00 02
  04 d2 00 50 00 00 03 e8 00 00 07 d0 50 10 01 f6 89 02 00 00`;

const V4 = { src: "10.0.0.1", dst: "10.0.0.2" } as const;

function tcpAt(b: Uint8Array, off = 20, len = b.length - off): TcpView {
  const t = new TcpView();
  expect(t.reset(b, off, len)).toBe(true);
  return t;
}

/** An IPv4 TCP packet with raw option bytes (padded with EOL to a multiple of 4) and its view. */
function withOptions(raw: number[], payload?: string): TcpView {
  const p = ipv4Tcp({ ...V4, rawOptions: Uint8Array.from(raw), ...(payload ? { payload } : {}) });
  return tcpAt(p);
}

/** Checksum by full recomputation for the TCP segment of an IPv4 packet at offset 0. */
function fullTcp4(b: Uint8Array): number {
  return fullL4Checksum(b, 0, 20, b.length - 20, 6, 16);
}

describe("TcpView: deconstruct", () => {
  it("reads every header field of a SYN", () => {
    const b = fromHex(SYN);
    const t = tcpAt(b);
    expect(t.sport).toBe(49152);
    expect(t.dport).toBe(443);
    expect(t.seq).toBe(0x01020304);
    expect(t.ack).toBe(0);
    expect(t.headerLength).toBe(40);
    expect(t.flags).toBe(TCP_FLAG.SYN);
    expect([t.syn, t.fin, t.rst, t.ackFlag]).toEqual([true, false, false, false]);
    expect(t.window).toBe(64240);
    expect(t.checksum).toBe(0x56ab);
    expect(t.checksum).toBe(fullTcp4(b));
    expect(t.urgentPointer).toBe(0);
    expect(t.length).toBe(40);
    expect(t.payloadOffset).toBe(60);
    expect(t.payloadLength).toBe(0);
  });

  it("reads a bare ACK and 32-bit numbers with the top bit set as unsigned", () => {
    const b = fromHex(ACK);
    const t = tcpAt(b);
    expect([t.sport, t.dport, t.seq, t.ack, t.window, t.checksum]).toEqual([1234, 80, 1000, 2000, 502, 0x8902]);
    expect(t.headerLength).toBe(20);
    expect([t.syn, t.fin, t.rst, t.ackFlag]).toEqual([false, false, false, true]);
    b.fill(0xff, 24, 32);
    expect(t.seq).toBe(0xffffffff);
    expect(t.ack).toBe(0xffffffff);
  });

  it("each flag bit maps to its getter", () => {
    const b = fromHex(ACK);
    const t = tcpAt(b);
    for (let bit = 0; bit < 8; bit++) {
      b[33] = 1 << bit;
      expect(t.flags).toBe(1 << bit);
      expect(t.fin).toBe(bit === 0);
      expect(t.syn).toBe(bit === 1);
      expect(t.rst).toBe(bit === 2);
      expect(t.ackFlag).toBe(bit === 4);
    }
    expect(TCP_FLAG).toEqual({ FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ECE: 64, CWR: 128 });
  });

  it("payload offset and length", () => {
    const p = ipv4Tcp({ ...V4, flags: "PA", payload: "hello", options: { ts: [1, 2] } });
    const t = tcpAt(p);
    expect(t.headerLength).toBe(32);
    expect(t.payloadOffset).toBe(52);
    expect(t.payloadLength).toBe(5);
    expect(new TextDecoder().decode(p.subarray(t.payloadOffset, t.payloadOffset + t.payloadLength))).toBe("hello");
  });
});

describe("TcpView: construct (the builder emits the fixtures)", () => {
  it("SYN and ACK", () => {
    const syn = ipv4Tcp({
      src: "192.0.2.1", dst: "198.51.100.7", id: 0x1c46, tos: 0xb8, df: true, sport: 49152, dport: 443,
      seq: 0x01020304, flags: "S", options: { mss: 1460, sackPerm: true, ts: [0x11223344, 0], wscale: 7 },
    });
    expect(hex(syn)).toBe(hex(fromHex(SYN)));
    const ack = ipv4Tcp({ ...V4, sport: 1234, dport: 80, seq: 1000, ack: 2000, flags: "A", win: 502 });
    expect(hex(ack)).toBe(hex(fromHex(ACK)));
  });
});

describe("TcpView: parse (reset) rejects what tcp_error() drops", () => {
  it("every length below 20 bytes", () => {
    const b = fromHex(ACK);
    const t = new TcpView();
    for (let len = 0; len < TCP_MIN_HEADER; len++) expect(t.reset(b, 20, len), `len ${len}`).toBe(false);
    expect(t.reset(b, 20, 20)).toBe(true);
  });

  it("a data offset below 5", () => {
    const b = fromHex(ACK);
    const t = new TcpView();
    for (let doff = 0; doff < 5; doff++) {
      b[32] = doff << 4;
      expect(t.reset(b, 20, 20), `doff ${doff}`).toBe(false);
    }
  });

  it("a data offset beyond the segment (every length below the header length)", () => {
    const b = fromHex(SYN);
    const t = new TcpView();
    for (let len = 20; len < 40; len++) expect(t.reset(b, 20, len), `len ${len}`).toBe(false);
    expect(t.reset(b, 20, 40)).toBe(true);
    b[32] = 0xf0; // 60-byte header in a 40-byte segment
    expect(t.reset(b, 20, 40)).toBe(false);
  });

  it("a window outside the buffer", () => {
    const b = fromHex(ACK);
    const t = new TcpView();
    expect(t.reset(b, 21, 20)).toBe(false);
    expect(t.reset(b, -1, 20)).toBe(false);
    expect(t.reset(b, 20, 21)).toBe(false);
  });

  it("ignores the reserved bits next to the data offset", () => {
    const b = fromHex(ACK);
    b[32] = 0x5f;
    expect(tcpAt(b).headerLength).toBe(20);
  });
});

describe("TcpView.parseOptions", () => {
  it("Linux's SYN options: MSS, SACK-permitted, timestamps, window scale", () => {
    const t = tcpAt(fromHex(SYN));
    expect(t.parseOptions()).toBe(true);
    expect(t.mss).toBe(1460);
    expect(t.sackPermitted).toBe(true);
    expect(t.hasTimestamp).toBe(true);
    expect(t.tsVal).toBe(0x11223344);
    expect(t.tsEcr).toBe(0);
    expect(t.wscale).toBe(7);
    expect(t.sackCount).toBe(0);
    expect(t.sackOffset).toBe(-1);
  });

  it("no options: everything absent", () => {
    const t = tcpAt(fromHex(ACK));
    expect(t.parseOptions()).toBe(true);
    expect([t.mss, t.wscale, t.sackPermitted, t.sackCount, t.sackOffset, t.hasTimestamp]).toEqual([-1, -1, false, 0, -1, false]);
  });

  it("window scale is capped at 14 (RFC 7323 §2.3)", () => {
    expect(TCP_MAX_WSCALE).toBe(14);
    for (const [ws, want] of [[0, 0], [13, 13], [14, 14], [15, 14], [255, 14]] as const) {
      const t = withOptions([1, 3, 3, ws]);
      expect(t.parseOptions()).toBe(true);
      expect(t.wscale, `ws ${ws}`).toBe(want);
    }
  });

  it("SACK blocks 1..4, with the offset of the first block", () => {
    for (let n = 1; n <= 4; n++) {
      const raw = [1, 1, TCPOPT.SACK, 2 + 8 * n];
      for (let i = 0; i < n; i++) {
        const l = (0xfffffff0 + i * 0x100) >>> 0;
        const r = (l + 0x80) >>> 0;
        raw.push(l >>> 24, (l >>> 16) & 0xff, (l >>> 8) & 0xff, l & 0xff, r >>> 24, (r >>> 16) & 0xff, (r >>> 8) & 0xff, r & 0xff);
      }
      const t = withOptions(raw);
      expect(t.parseOptions()).toBe(true);
      expect(t.sackCount).toBe(n);
      expect(t.sackOffset).toBe(20 + 20 + 4);
      for (let i = 0; i < n; i++) {
        const l = (0xfffffff0 + i * 0x100) >>> 0;
        expect(t.sackLeft[i]).toBe(l);
        expect(t.sackRight[i]).toBe((l + 0x80) >>> 0);
      }
    }
  });

  it("SACK blocks as the builder writes them, next to timestamps", () => {
    const p = ipv4Tcp({ ...V4, flags: "A", options: { ts: [5, 6], sack: [[100, 200], [300, 400]] } });
    const t = tcpAt(p);
    expect(t.parseOptions()).toBe(true);
    expect([t.hasTimestamp, t.tsVal, t.tsEcr]).toEqual([true, 5, 6]);
    expect(t.sackCount).toBe(2);
    expect([...t.sackLeft.subarray(0, 2)]).toEqual([100, 300]);
    expect([...t.sackRight.subarray(0, 2)]).toEqual([200, 400]);
    expect(hex(p.subarray(t.sackOffset, t.sackOffset + 4))).toBe("00 00 00 64");
  });

  it("timestamps with the top bit set read as unsigned", () => {
    const t = withOptions([1, 1, 8, 10, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 1]);
    expect(t.parseOptions()).toBe(true);
    expect([t.hasTimestamp, t.tsVal, t.tsEcr]).toEqual([true, 0xffffffff, 0x80000001]);
  });

  it("NOPs are skipped; EOL ends the list (later bytes are not options)", () => {
    let t = withOptions([1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 0x05, 0xb4]);
    expect(t.parseOptions()).toBe(true);
    expect(t.mss).toBe(1460);
    t = withOptions([2, 4, 0x05, 0xb4, 0, 3, 3, 7]);
    expect(t.parseOptions()).toBe(true);
    expect(t.mss).toBe(1460);
    expect(t.wscale).toBe(-1);
    t = withOptions([0, 2, 4, 0x05, 0xb4, 1, 1, 1]);
    expect(t.parseOptions()).toBe(true);
    expect(t.mss).toBe(-1);
  });

  it("options with a wrong length for their kind are skipped, the walk goes on", () => {
    // MSS of length 3, then window scale.
    let t = withOptions([2, 3, 0x05, 3, 3, 7, 1, 1]);
    expect(t.parseOptions()).toBe(true);
    expect(t.mss).toBe(-1);
    expect(t.wscale).toBe(7);
    // Window scale of length 4, SACK-permitted of length 3, then MSS.
    t = withOptions([3, 4, 9, 9, 4, 3, 0, 2, 4, 0x02, 0x18, 1]);
    expect(t.parseOptions()).toBe(true);
    expect([t.wscale, t.sackPermitted, t.mss]).toEqual([-1, false, 536]);
    // Timestamps of length 8; SACK of length 9 and of length 2; then SACK-permitted.
    t = withOptions([8, 8, 1, 2, 3, 4, 5, 6, 5, 9, 0, 0, 0, 0, 0, 0, 0, 5, 2, 4, 2, 1, 1, 1]);
    expect(t.parseOptions()).toBe(true);
    expect([t.hasTimestamp, t.sackCount, t.sackOffset, t.sackPermitted]).toEqual([false, 0, -1, true]);
  });

  it("unknown kinds are skipped by their length (MPTCP 30, TFO 34)", () => {
    const t = withOptions([30, 4, 0, 0, 34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 3, 3, 2, 1]);
    expect(t.parseOptions()).toBe(true);
    expect(t.wscale).toBe(2);
  });

  it("malformed lengths: false, and what came before is kept", () => {
    const cases: [string, number[]][] = [
      ["length 0", [2, 4, 0x05, 0xb4, 3, 0, 1, 1]],
      ["length 1", [2, 4, 0x05, 0xb4, 3, 1, 1, 1]],
      ["length past the header", [2, 4, 0x05, 0xb4, 1, 1, 8, 10]],
      ["SACK past the header", [2, 4, 0x05, 0xb4, 5, 34, 0, 0]],
      ["kind without a length byte", [2, 4, 0x05, 0xb4, 1, 1, 1, 3]],
    ];
    for (const [name, raw] of cases) {
      const t = withOptions(raw);
      expect(t.parseOptions(), name).toBe(false);
      expect(t.mss, name).toBe(1460);
    }
    // The walk ends at the fault: a valid option after it is not read.
    const t = withOptions([3, 3, 7, 9, 1, 0, 2, 4, 0x05, 0xb4, 1, 1]);
    expect(t.parseOptions()).toBe(false);
    expect(t.wscale).toBe(7);
    expect(t.mss).toBe(-1);
  });

  it("payload bytes after the header are never read as options", () => {
    const t = withOptions([], "\x02\x04\x05\xb4");
    expect(t.headerLength).toBe(20);
    expect(t.parseOptions()).toBe(true);
    expect(t.mss).toBe(-1);
  });

  it("clears the previous packet's options", () => {
    const t = tcpAt(fromHex(SYN));
    t.parseOptions();
    const sack = ipv4Tcp({ ...V4, flags: "A", options: { sack: [[1, 2]] } });
    expect(t.reset(sack, 20, sack.length - 20)).toBe(true);
    expect(t.parseOptions()).toBe(true);
    expect([t.mss, t.wscale, t.sackPermitted, t.hasTimestamp, t.sackCount]).toEqual([-1, -1, false, false, 1]);
    expect(t.reset(fromHex(ACK), 20, 20)).toBe(true);
    expect(t.parseOptions()).toBe(true);
    expect([t.sackCount, t.sackOffset]).toEqual([0, -1]);
  });
});

describe("TcpView: emit (setters)", () => {
  it("port, sequence and acknowledgment setters with an exact checksum", () => {
    const b = fromHex(ACK);
    const t = tcpAt(b);
    t.setSportWithChecksumUpdate(0xffff);
    expect(t.checksum).toBe(fullTcp4(b));
    t.setDportWithChecksumUpdate(8080);
    expect(t.checksum).toBe(fullTcp4(b));
    t.setSeqWithChecksumUpdate(0xdeadbeef);
    expect(t.checksum).toBe(fullTcp4(b));
    t.setAckWithChecksumUpdate(0x80000000);
    expect(t.checksum).toBe(fullTcp4(b));
    expect(hex(b.subarray(20, 32))).toBe("ff ff 1f 90 de ad be ef 80 00 00 00");
    expect([t.sport, t.dport, t.seq, t.ack]).toEqual([0xffff, 8080, 0xdeadbeef, 0x80000000]);
    // Everything else untouched.
    expect(hex(b.subarray(0, 20))).toBe(hex(fromHex(ACK).subarray(0, 20)));
    expect(hex(b.subarray(32, 36))).toBe("50 10 01 f6");
    expect(hex(b.subarray(38, 40))).toBe("00 00");
  });

  it("updateChecksumForAddress after an IPv4 address rewrite (NAT)", () => {
    const b = fromHex(SYN);
    const ip = new Ipv4View();
    expect(ip.reset(b, 0, b.length)).toBe(true);
    const t = tcpAt(b);
    const old = ip.src;
    ip.setSrcWithChecksumUpdate(0x0a000063);
    t.updateChecksumForAddress(old, 0x0a000063);
    expect(ip.verifyChecksum()).toBe(true);
    expect(t.checksum).toBe(fullTcp4(b));
  });

  it("plain setters write bytes only", () => {
    const b = fromHex(ACK);
    const t = tcpAt(b);
    t.setSport(1);
    t.setDport(2);
    t.setChecksum(0xabcd);
    expect(hex(b.subarray(20, 24))).toBe("00 01 00 02");
    expect(hex(b.subarray(36, 38))).toBe("ab cd");
    expect(t.checksum).toBe(0xabcd);
  });
});

describe("TcpView: properties", () => {
  it("every ...WithChecksumUpdate setter on random IPv4/IPv6 packets leaves a verifying checksum", () => {
    const pkt = new Packet();
    fc.assert(
      fc.property(fc.oneof(tcp4, tcp6), u16, u16, u32, u32, fc.array(fc.tuple(fc.nat(3), u32), { maxLength: 3 }), (b, sp, dp, seq, ack, addrs) => {
        expect(pkt.parse(b, 0, b.length)).toBe(PARSE.OK);
        const t = pkt.tcp;
        const full = (): number => fullL4Checksum(b, 0, pkt.l4Offset, pkt.l4Length, 6, 16);
        expect(t.checksum).toBe(full());
        t.setSportWithChecksumUpdate(sp);
        t.setDportWithChecksumUpdate(dp);
        expect(t.checksum).toBe(full());
        t.setSeqWithChecksumUpdate(seq);
        t.setAckWithChecksumUpdate(ack);
        expect(t.checksum).toBe(full());
        for (const [i, w] of addrs) {
          if (pkt.family === 2) {
            const old = pkt.ip4.dst;
            pkt.ip4.setDstWithChecksumUpdate(w);
            t.updateChecksumForAddress(old, w);
            expect(pkt.ip4.verifyChecksum()).toBe(true);
          } else {
            const old = pkt.ip6.dstWord(i);
            pkt.ip6.setDstWord(i, w);
            t.updateChecksumForAddress(old, w);
          }
        }
        expect(t.checksum).toBe(full());
        expect(pkt.l4ChecksumValid()).toBe(true);
        expect([t.sport, t.dport, t.seq, t.ack]).toEqual([sp, dp, seq, ack]);
      }),
      { numRuns: 300 },
    );
  });

  it("reset and parseOptions never throw; parsed SACK blocks lie inside the header", () => {
    const t = new TcpView();
    fc.assert(
      fc.property(fuzzWindow, ([b, off, len]) => {
        // Aim at where the TCP header of an option-less IPv4 packet would be, too.
        for (const [o, n] of [[off, len], [off + 20, len - 20]] as const) {
          if (!t.reset(b, o, n)) continue;
          t.parseOptions();
          if (t.headerLength > n || t.wscale > 14) return false;
          if (t.sackOffset >= 0 && t.sackOffset + 8 * t.sackCount > o + t.headerLength) return false;
        }
        return true;
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("parseOptions on random option bytes never throws and never reads past the header", () => {
    const t = new TcpView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (opts) => {
        const n = opts.length & ~3;
        const seg = new Uint8Array(20 + n + 4).fill(2); // trailing bytes look like an MSS option
        seg[12] = ((20 + n) / 4) << 4;
        seg.set(opts.subarray(0, n), 20);
        if (!t.reset(seg, 0, 20 + n)) return false;
        t.parseOptions();
        return t.sackOffset < 0 || t.sackOffset + 8 * t.sackCount <= 20 + n;
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("TcpView over IPv6", () => {
  it("the checksum covers the IPv6 pseudo-header", () => {
    const p = ipv6Tcp({ src: "2001:db8::1", dst: "2001:db8::2", sport: 1, dport: 2, seq: 3, options: { mss: 1440 } });
    const t = tcpAt(p, 40);
    expect(t.checksum).toBe(fullL4Checksum(p, 0, 40, p.length - 40, 6, 16));
    t.setSeqWithChecksumUpdate(0xfffffffe);
    expect(t.checksum).toBe(fullL4Checksum(p, 0, 40, p.length - 40, 6, 16));
    expect(t.parseOptions()).toBe(true);
    expect(t.mss).toBe(1440);
  });
});
