/**
 * -m string: --from/--to counted from the IP header as Linux counts them,
 * --hex-string parsing as libxt_string, --icase with the kernel's
 * toupper, and Boyer-Moore = Knuth-Morris-Pratt = a naive scan on random
 * inputs (fast-check).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TOUPPER, bmBadChar, bmGoodSuffix, bmSearch, kmpPrefix, kmpSearch } from "../../src/rules/matches/string.js";
import { ipv4Udp, ipv6Udp } from "../helpers/packets.js";
import { Rig } from "./matches-helpers.js";

const A = { src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2 };

/**
 * First position of `p` in t[start, end) by brute force. With icase, as the
 * kernel does: the pattern was folded once at load, each text byte is folded
 * when compared (so a pattern byte 0xff, folded to 0xdf, matches text 0xff only).
 */
function naive(p: Uint8Array, t: Uint8Array, start: number, end: number, icase: boolean): number {
  const f = (b: number): number => (icase ? TOUPPER[b]! : b);
  for (let s = start; s + p.length <= end; s++) {
    let k = 0;
    while (k < p.length && f(t[s + k]!) === p[k]) k++;
    if (k === p.length) return s;
  }
  return -1;
}

/** Tables laid out as compileString lays them, for calling the searches directly. */
function tables(p: Uint8Array): { bm: Int32Array; kmp: Int32Array } {
  const bm = new Int32Array(6 + 256 + p.length), kmp = new Int32Array(6 + p.length);
  bm.set(bmBadChar(p), 6);
  bm.set(bmGoodSuffix(p), 6 + 256);
  kmp.set(kmpPrefix(p), 6);
  return { bm, kmp };
}

describe("search algorithms", () => {
  it("bm and kmp find the first occurrence, as a naive scan does (random inputs)", () => {
    const alphabet = fc.constantFrom(0x61, 0x62, 0x41, 0x42, 0xe9, 0xc9, 0xff, 0xdf, 0x00);
    fc.assert(
      fc.property(
        fc.array(alphabet, { minLength: 1, maxLength: 6 }),
        fc.array(alphabet, { maxLength: 80 }),
        fc.nat(90), fc.nat(90), fc.boolean(),
        (pat, text, a, b, icase) => {
          const t = Uint8Array.from(text);
          let p = Uint8Array.from(pat);
          if (icase) p = p.map((x) => TOUPPER[x]!);
          const start = Math.min(a, b, t.length), end = Math.min(Math.max(a, b), t.length);
          const { bm, kmp } = tables(p);
          const want = naive(p, t, start, end, icase);
          expect(bmSearch(bm, 0, p, t, start, end, icase)).toBe(want);
          expect(kmpSearch(kmp, 0, p, t, start, end, icase)).toBe(want);
        },
      ),
      { numRuns: 3000 },
    );
  });
  it("the same over the full byte range and patterns up to 128 bytes cut from the text", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 400 }), fc.nat(), fc.integer({ min: 1, max: 128 }), fc.boolean(), (t, at, len, icase) => {
        const s = at % t.length;
        let p = t.slice(s, Math.min(t.length, s + len));
        if (icase) p = p.map((x) => TOUPPER[x]!);
        const { bm, kmp } = tables(p);
        const want = naive(p, t, 0, t.length, icase);
        expect(bmSearch(bm, 0, p, t, 0, t.length, icase)).toBe(want);
        expect(kmpSearch(kmp, 0, p, t, 0, t.length, icase)).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });
  it("periodic patterns (the good-suffix rule's hard cases)", () => {
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
    for (const [pat, text] of [["abab", "abaabababab"], ["aaaa", "aaabaaaaa"], ["abcab", "abcabcabcab"], ["anpanman", "xxanpanmanxx"], ["bcbcbc", "abcbcbcbcbcbc"]]) {
      const p = enc(pat!), t = enc(text!);
      const { bm, kmp } = tables(p);
      const want = text!.indexOf(pat!);
      expect(bmSearch(bm, 0, p, t, 0, t.length, false)).toBe(want);
      expect(kmpSearch(kmp, 0, p, t, 0, t.length, false)).toBe(want);
    }
  });
  it("toupper is the kernel's: ASCII and Latin-1 letters, 0xDF and 0xFF included, 0xF7 not", () => {
    expect(TOUPPER[0x61]).toBe(0x41);
    expect(TOUPPER[0x7a]).toBe(0x5a);
    expect(TOUPPER[0xe9]).toBe(0xc9);
    expect(TOUPPER[0xf7]).toBe(0xf7);
    expect(TOUPPER[0xdf]).toBe(0xbf);
    expect(TOUPPER[0xff]).toBe(0xdf);
    expect(TOUPPER[0xc9]).toBe(0xc9);
    expect(TOUPPER[0x41]).toBe(0x41);
  });
});

describe("-m string on packets", () => {
  // IPv4 20 + UDP 8: the payload starts at offset 28 from the IP header.
  const pkt = ipv4Udp({ ...A, payload: "abcGET /index" });
  const r = new Rig();
  it("--from/--to: the whole pattern must lie in [from, min(to, IP length))", () => {
    for (const algo of ["bm", "kmp"]) {
      expect(r.test(`-m string --algo ${algo} --string abc`, pkt)).toBe(true);
      expect(r.test(`-m string --algo ${algo} --string abc --to 31`, pkt)).toBe(true);
      expect(r.test(`-m string --algo ${algo} --string abc --to 30`, pkt)).toBe(false);
      expect(r.test(`-m string --algo ${algo} --string abc --from 28`, pkt)).toBe(true);
      expect(r.test(`-m string --algo ${algo} --string abc --from 29`, pkt)).toBe(false);
      expect(r.test(`-m string --algo ${algo} --string GET --from 31 --to 34`, pkt)).toBe(true);
      expect(r.test(`-m string --algo ${algo} --string index`, pkt)).toBe(true);
      expect(r.test(`-m string --algo ${algo} --string indexx`, pkt)).toBe(false);
      expect(r.test(`-m string --algo ${algo} ! --string abc`, pkt)).toBe(false);
      expect(r.test(`-m string --algo ${algo} ! --string zzz`, pkt)).toBe(true);
      // Headers are searched too (offset 0 is the IP header): 0x45 is the version/IHL byte.
      expect(r.test(`-m string --algo ${algo} --hex-string |45| --to 1`, pkt)).toBe(true);
    }
  });
  it("bytes after the IP datagram (link padding) are not searched", () => {
    const padded = new Uint8Array(pkt.length + 8);
    padded.set(pkt);
    padded.set(new TextEncoder().encode("PADDING!"), pkt.length);
    expect(r.test("-m string --algo bm --string PAD", padded)).toBe(false);
  });
  it("--icase", () => {
    expect(r.test("-m string --algo bm --string get --icase", pkt)).toBe(true);
    expect(r.test("-m string --algo kmp --string ABCget --icase", pkt)).toBe(true);
    expect(r.test("-m string --algo bm --string get", pkt)).toBe(false);
    const latin = ipv4Udp({ ...A, payload: Uint8Array.from([0x20, 0xc9, 0x20]) });
    expect(r.test("-m string --algo bm --hex-string |e9| --icase", latin)).toBe(true);
    expect(r.test("-m string --algo kmp --hex-string |e9| --icase", latin)).toBe(true);
    expect(r.test("-m string --algo bm --hex-string |e9|", latin)).toBe(false);
  });
  it("IPv6: offsets from the IPv6 header", () => {
    const r6 = new Rig(6);
    const p6 = ipv6Udp({ src: "2001:db8::1", dst: "2001:db8::2", sport: 1, dport: 2, payload: "xyz" }); // payload at 48
    expect(r6.test("-m string --algo bm --string xyz --from 48 --to 51", p6)).toBe(true);
    expect(r6.test("-m string --algo bm --string xyz --from 49", p6)).toBe(false);
  });
});

describe("--hex-string and refusals", () => {
  const r = new Rig();
  const p = ipv4Udp({ ...A, payload: "..ABcCD..a|b.." });
  it("hex blocks mixed with text, spaces inside blocks, escapes", () => {
    expect(r.test("-m string --algo bm --hex-string '|41 42|c|4344|'", p)).toBe(true);
    expect(r.test("-m string --algo bm --hex-string '| 41 42 |c|43 44|'", p)).toBe(true);
    expect(r.test("-m string --algo bm --hex-string 'a\\|b'", p)).toBe(true);
    expect(r.test("-m string --algo bm --hex-string '|41 43|'", p)).toBe(false);
  });
  it("iptables' messages", () => {
    expect(r.error("-m string --string foo")).toBe('t.rules:1:1: string: option "--algo" must be specified');
    expect(r.error("-m string --algo xx --string foo")).toMatch(/^t\.rules:1:11: string: unknown algorithm "xx"/);
    expect(r.error("-m string --algo bm --hex-string '|4|'")).toBe("t.rules:1:21: Invalid hex block");
    expect(r.error("-m string --algo bm --hex-string '|41'")).toBe("t.rules:1:21: Invalid hex block");
    expect(r.error("-m string --algo bm --hex-string '|zz|'")).toBe("t.rules:1:21: Invalid hex char 'z'");
    expect(r.error("-m string --algo bm --hex-string 'ab\\'")).toBe("t.rules:1:21: Bad literal placement at end of string");
    expect(r.error("-m string --algo bm")).toBe("t.rules:1:1: STRING match: You must specify `--string' or `--hex-string'");
    expect(r.error("-m string --algo bm --string ''")).toMatch(/^t\.rules:1:21: string: an empty pattern is refused/);
    expect(r.error(`-m string --algo bm --string ${"z".repeat(129)}`)).toBe(`t.rules:1:21: STRING too long "${"z".repeat(129)}"`);
    expect(r.error(`-m string --algo bm --string ${"z".repeat(128)}`)).toBe("");
    expect(r.error("-m string --algo bm --string foo --from 100 --to 10")).toMatch(/^t\.rules:1:45: string: --from 100 is beyond --to 10/);
    expect(r.error("-m string --algo bm --string foo --to 70000")).toBe('t.rules:1:34: string: bad value for option "--to", or out of range (0-65535).');
    expect(r.error("-m string --algo bm --string foo --hex-string '|41|'")).toBe(
      't.rules:1:34: string: option "--string" cannot be used together with "--hex-string".',
    );
  });
});
