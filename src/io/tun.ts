/**
 * A TUN device (layer 3, no packet-info header): the kernel routes packets
 * into it, sluice reads them, and writes packets back that the kernel then
 * receives as if they arrived on the device.
 *
 * Reading: one bounded loop of non-blocking read()s per wakeup, up to
 * `batch` packets into the slab's slots, then one `onBatch(tun, count)`;
 * up to `rounds` such batches per wakeup. A batch's slots are reused by the
 * next batch: copy a packet to keep it past the callback.
 *
 * Writing: {@link Tun.write} takes a buffer and a descriptor array
 * ({@link DESC} layout: offset, length per packet) and writes them all in
 * one native call (one write() each: a character device has no sendmmsg).
 * Writing straight from the read slab (in place after a rewrite) works.
 *
 * The device exists while a descriptor is open (it is not made persistent):
 * close() removes it. Its addresses, routes and link state are left to the
 * caller (`ip`, or rtnetlink in the daemon).
 */
import { checkInt, loadNative, NativeIoError, toIoError, type NativeTun } from "./native.js";
import { DESC, IO_ERR, LIMIT, TUN_STAT } from "./native-constants.js";

export { DESC } from "./native-constants.js";

/** What {@link Tun} needs. */
export interface TunOptions {
  /** Device name (at most 15 bytes); empty or absent lets the kernel pick `tunN`. */
  name?: string;
  /** Called once per batch of `count` packets (rows 0..count-1). */
  onBatch: (tun: Tun, count: number) => void;
  /** IFF_MULTI_QUEUE: several handles (one per worker) may attach to the same name. Default false. */
  multiQueue?: boolean;
  /** Bytes per slot: at least the device MTU. Default 2048. */
  slotSize?: number;
  /** Reads per batch. Default 64. */
  batch?: number;
  /** Batches per wakeup. Default 8. */
  rounds?: number;
  /** Create the device in this network namespace (a path like /run/netns/NAME). */
  netns?: string;
}

/** Counters of one TUN handle. */
export interface TunStats {
  received: number;
  batches: number;
  wakeups: number;
  readErrors: number;
  sent: number;
  sendErrors: number;
  sendDropped: number;
  badDescs: number;
}

const WHAT = "Tun";

/** One TUN device handle. */
export class Tun {
  /** The device name (the kernel's choice when none was given). */
  readonly name: string;
  /** The device's interface index in its namespace. */
  readonly ifindex: number;
  /** Bytes per slot. */
  readonly slotSize: number;
  /** Read slots: packet i is `slab[offset(i), offset(i) + length(i))` during onBatch. */
  readonly slab: Uint8Array;
  /** Batch rows, {@link DESC} layout. */
  readonly meta: Int32Array;

  #native: NativeTun;
  #onBatch: (tun: Tun, count: number) => void;
  #one = new Uint32Array(DESC.STRIDE);
  #stats = new Float64Array(TUN_STAT.COUNT);
  #closed = false;

  /**
   * Creates (or attaches to) the device and starts reading.
   * @throws NativeIoError ESLUICE_IO_PERM, ESLUICE_IO_BUSY (in use, or exists with other flags), ESLUICE_IO_ARG
   */
  constructor(opts: TunOptions) {
    this.slotSize = checkInt(WHAT, "slotSize", opts.slotSize ?? 2048, LIMIT.MIN_SLOT, LIMIT.MAX_SLOT);
    const batch = checkInt(WHAT, "batch", opts.batch ?? 64, 1, LIMIT.MAX_BATCH);
    const rounds = checkInt(WHAT, "rounds", opts.rounds ?? 8, 1, LIMIT.MAX_ROUNDS);
    if (opts.name !== undefined && Buffer.byteLength(opts.name) > 15) {
      throw new NativeIoError(IO_ERR.ARG, `${WHAT}: option name must be at most 15 bytes`);
    }
    if (typeof opts.onBatch !== "function") throw new NativeIoError(IO_ERR.ARG, `${WHAT}: option onBatch must be a function`);
    this.#onBatch = opts.onBatch;
    const slab = new ArrayBuffer(batch * this.slotSize);
    this.slab = new Uint8Array(slab);
    this.meta = new Int32Array(batch * DESC.STRIDE);
    const addon = loadNative();
    try {
      this.#native = new addon.Tun(
        { name: opts.name, multiQueue: opts.multiQueue ?? false, slotSize: this.slotSize, batch, rounds, netns: opts.netns },
        slab,
        this.meta,
        (count: number) => this.#onBatch(this, count),
      );
    } catch (e) {
      throw toIoError(e);
    }
    this.name = this.#native.name;
    this.ifindex = this.#native.ifindex;
    this.#native.start();
  }

  /** Byte offset of row `i`'s packet in {@link slab}. */
  offset(i: number): number {
    return this.meta[i * DESC.STRIDE + DESC.OFF];
  }
  /** Length of row `i`'s packet. */
  length(i: number): number {
    return this.meta[i * DESC.STRIDE + DESC.LEN];
  }

  /**
   * Writes `count` packets described by `desc` ({@link DESC} rows: offset
   * into `buf`, length). Returns how many the device took; a packet the
   * kernel refuses is skipped and counted.
   */
  write(buf: Uint8Array, desc: Uint32Array, count: number): number {
    return this.#native.write(buf, desc, count);
  }

  /** Writes one packet, `buf[off, off + len)`. Returns 1 if written. */
  writeOne(buf: Uint8Array, off: number, len: number): number {
    this.#one[DESC.OFF] = off;
    this.#one[DESC.LEN] = len;
    return this.#native.write(buf, this.#one, 1);
  }

  /** Counters (allocates: not for the packet path). */
  stats(): TunStats {
    const s = this.#stats;
    this.#native.stats(s);
    return {
      received: s[TUN_STAT.RECEIVED],
      batches: s[TUN_STAT.BATCHES],
      wakeups: s[TUN_STAT.WAKEUPS],
      readErrors: s[TUN_STAT.READ_ERRORS],
      sent: s[TUN_STAT.SENT],
      sendErrors: s[TUN_STAT.SEND_ERRORS],
      sendDropped: s[TUN_STAT.SEND_DROPPED],
      badDescs: s[TUN_STAT.BAD_DESCS],
    };
  }

  /** Stops reading and closes the descriptor (the device goes away with its last one). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }
}
