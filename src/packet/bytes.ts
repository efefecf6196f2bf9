/** Big-endian reads and writes on a Uint8Array; callers have done the bounds check. */

/** Big-endian unsigned 32-bit read. */
export function readU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
/** Big-endian 16-bit read. */
export function readU16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
/** Big-endian 32-bit write. */
export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}
/** Big-endian 16-bit write. */
export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff;
}

/**
 * Big-endian 32-bit read as a signed int32. Addresses are kept in this form
 * on the packet path: V8 keeps int32 values unboxed (Smis on x64 builds
 * without pointer compression), while uint32 values above 2^31 become heap
 * numbers whenever they cross a call that is not inlined.
 */
export function readI32(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}
