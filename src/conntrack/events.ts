import { HELPER_NAMES } from "./constants.js";
import { ConnSnapshot } from "./snapshot.js";

/*
 * Event ring: a power-of-two array of fixed-size records; `head` and `tail`
 * are free-running counters, the ring is empty when head === tail and full
 * when tail - head === capacity. The packet path writes at `tail` (a copy of
 * the entry's visible fields, so the entry may die before the consumer
 * reads); consumers read at `head` between batches. A full ring drops the new
 * event and counts it in `lost`: memory never grows, the packet path never
 * waits (like a netlink socket overrunning with ENOBUFS).
 *
 *   meta    [r*8]  type, family, proto, tcpState+1, status, timeout, mark, helper id
 *   addr    [r*16] the 4 addresses
 *   port    [r*4]  the 4 ports
 *   numbers [r*6]  counters (4), time, handle
 */
const META = 8;
const NUMS = 6;

/** Bounded, allocation-free ring of conntrack events. */
export class EventRing {
  readonly capacity: number;
  private readonly mask: number;
  private readonly meta: Uint32Array;
  private readonly addr: Int32Array;
  private readonly port: Uint16Array;
  private readonly nums: Float64Array;
  /** Free-running read and write counters. */
  head = 0;
  tail = 0;
  /** Events dropped because the ring was full. */
  lost = 0;
  /** Events written since start. */
  written = 0;
  /** When false, `push` returns at once (no consumer: events cost one branch). */
  enabled = true;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.meta = new Uint32Array(capacity * META);
    this.addr = new Int32Array(capacity * 16);
    this.port = new Uint16Array(capacity * 4);
    this.nums = new Float64Array(capacity * NUMS);
  }

  /** Unread events. */
  get size(): number { return this.tail - this.head; }

  /**
   * Reserves the next record and returns its slot, or -1 when the ring is full
   * (counted in `lost`) or disabled. The caller fills it with {@link fill}.
   */
  reserve(): number {
    if (!this.enabled) return -1;
    if (this.tail - this.head >= this.capacity) { this.lost++; return -1; }
    const r = this.tail & this.mask;
    this.tail++;
    this.written++;
    return r;
  }

  /** Writes one record's fields (called by the tracker right after `reserve`). */
  fill(
    r: number, type: number, time: number, handle: number, family: number, proto: number, tcpState: number,
    status: number, timeout: number, mark: number,
    addr: Int32Array, addrOff: number, port: Uint16Array, portOff: number, counters: Float64Array, cOff: number,
    helper = 0,
  ): void {
    const m = r * META;
    this.meta[m] = type;
    this.meta[m + 1] = family;
    this.meta[m + 2] = proto;
    this.meta[m + 3] = tcpState + 1;
    this.meta[m + 4] = status;
    this.meta[m + 5] = timeout;
    this.meta[m + 6] = mark;
    this.meta[m + 7] = helper;
    const a = r * 16;
    for (let k = 0; k < 16; k++) this.addr[a + k] = addr[addrOff + k];
    const p = r * 4;
    this.port[p] = port[portOff]; this.port[p + 1] = port[portOff + 1];
    this.port[p + 2] = port[portOff + 2]; this.port[p + 3] = port[portOff + 3];
    const n = r * NUMS;
    this.nums[n] = counters[cOff]; this.nums[n + 1] = counters[cOff + 1];
    this.nums[n + 2] = counters[cOff + 2]; this.nums[n + 3] = counters[cOff + 3];
    this.nums[n + 4] = time;
    this.nums[n + 5] = handle;
  }

  /** Reads the oldest unread event into `out` and consumes it; false when empty. */
  shift(out: ConnSnapshot): boolean {
    if (this.head === this.tail) return false;
    const r = this.head & this.mask;
    this.head++;
    const m = r * META;
    out.event = this.meta[m];
    out.family = this.meta[m + 1];
    out.proto = this.meta[m + 2];
    out.tcpState = this.meta[m + 3] - 1;
    out.status = this.meta[m + 4];
    out.timeout = this.meta[m + 5];
    out.mark = this.meta[m + 6];
    out.helper = HELPER_NAMES[this.meta[m + 7]] ?? "";
    out.addr.set(this.addr.subarray(r * 16, r * 16 + 16));
    out.port.set(this.port.subarray(r * 4, r * 4 + 4));
    const n = r * NUMS;
    out.counters[0] = this.nums[n]; out.counters[1] = this.nums[n + 1];
    out.counters[2] = this.nums[n + 2]; out.counters[3] = this.nums[n + 3];
    out.time = this.nums[n + 4];
    out.handle = this.nums[n + 5];
    return true;
  }
}

