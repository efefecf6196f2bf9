// Big-endian reads and writes.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { readI32, readU16, readU32, writeU16, writeU32 } from "../../src/packet/bytes.js";
import { fromHex, hex } from "../helpers/packets.js";
import { u16, u32 } from "./arb.js";

describe("bytes", () => {
  it("reads big-endian, 32-bit values unsigned", () => {
    const b = fromHex("00 12 34 56 78 ff ff ff ff 80");
    expect(readU16(b, 1)).toBe(0x1234);
    expect(readU16(b, 5)).toBe(0xffff);
    expect(readU32(b, 1)).toBe(0x12345678);
    expect(readU32(b, 5)).toBe(0xffffffff);
    expect(readU32(b, 6)).toBe(0xffffff80);
    expect(readI32(b, 1)).toBe(0x12345678);
    expect(readI32(b, 5)).toBe(-1);
    expect(readI32(b, 6)).toBe(0xffffff80 | 0);
  });

  it("writes big-endian and keeps only the low bits", () => {
    const b = new Uint8Array(8);
    writeU16(b, 1, 0xabcd);
    writeU32(b, 3, 0xdeadbeef);
    expect(hex(b)).toBe("00 ab cd de ad be ef 00");
    writeU16(b, 0, 0x12345);
    expect(hex(b.subarray(0, 2))).toBe("23 45");
    writeU32(b, 4, -1);
    expect(hex(b.subarray(4, 8))).toBe("ff ff ff ff");
  });

  it("round-trips every value", () => {
    fc.assert(
      fc.property(u16, u32, fc.nat(4), (a, c, off) => {
        const b = new Uint8Array(12);
        writeU16(b, off, a);
        expect(readU16(b, off)).toBe(a);
        writeU32(b, off + 2, c);
        expect(readU32(b, off + 2)).toBe(c);
        expect(readI32(b, off + 2)).toBe(c | 0);
        expect(readU16(b, off)).toBe(a);
      }),
    );
  });
});
