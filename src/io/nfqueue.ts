/**
 * NFQUEUE: the kernel hands sluice packets from an iptables/nft `NFQUEUE`
 * rule and waits for a verdict on each.
 *
 * How (reference: shared/reference/packet-io.md §3.2-3.3):
 *
 * ```
 *  kernel queue N ──nfnetlink──▶ socket ──recvmmsg (S msgs)──▶ slab slots ──▶ meta rows ──▶ onBatch(q, count)
 *                                        (bounded: R rounds                      (one JS call per batch)
 *                                         per wakeup)                               │  q.verdict(i, NF.ACCEPT)
 *  kernel ◀──one sendmsg: VERDICT / VERDICT_BATCH messages (+MARK, +PAYLOAD) ◀── records ◀┘  (auto-flushed)
 * ```
 *
 * - The addon speaks nfnetlink itself (no libnetfilter_queue): one socket
 *   per queue, bound with AF_UNSPEC so IPv4 and IPv6 share it; the config
 *   (copy range, queue max length, F_FAIL_OPEN, F_GSO) goes in the bind
 *   request, and its ACK is read so EPERM / EBUSY become clear errors.
 * - Memory is allocated here, in TypeScript, and shared with C++ (no copy,
 *   no per-packet object):
 *
 *   ```
 *   slab    slots × slotSize bytes           slot k = [netlink headers | packet ........ | headroom]
 *                                                                       ^ META.PAYLOAD_OFF        ^ (k+1)·slotSize
 *   meta    batch × META.STRIDE Int32        one row per packet of the current batch (META.*)
 *   records slots × VREC.STRIDE Uint32       one verdict per row (VREC.*): id, slot, verdict, flags, mark, len
 *   ```
 *
 *   recvmmsg writes at most `slotSize - headroom` bytes into a slot, and the
 *   packet is the message's last attribute, so a rewritten packet can grow
 *   in place into the headroom (the FTP helper does) and goes back to the
 *   kernel straight from its slot.
 * - A slot belongs to its packet until the packet's verdict is sent, so a
 *   verdict may come later and in any order (hold a packet across an
 *   asynchronous lookup): slots are a free-list, not a ring. When every
 *   slot is held, reading pauses and the kernel queue absorbs the burst
 *   (up to `maxlen`, then drop or, with `failOpen`, accept).
 * - The meta rows are valid only during `onBatch` (the next batch reuses
 *   them); keep `id(i)` and `slot(i)` (or the row's values you need) to give
 *   a verdict later with {@link NfQueue.setVerdict}.
 * - Verdicts accumulate in `records` and go out in one `sendmsg` at the end
 *   of the batch callback (or at {@link NfQueue.flush}); runs of contiguous
 *   ids with the same plain verdict become one NFQNL_MSG_VERDICT_BATCH when
 *   no other held packet falls under it.
 * - On close every held packet (and every packet already queued to the
 *   socket) gets the default verdict: `NF.DROP` unless configured.
 *
 * Why: per-packet JS calls, per-packet syscalls and per-packet allocation
 * are what limit the npm `nfqueue` package (one callback, one Buffer and one
 * sendmsg per packet); batching removes all three (packet-io.md §3.7-3.8).
 *
 * Kernel facts, measured by test/io/nfqueue.test.ts on 6.18:
 * - Without `gso`, the kernel completes a partial checksum before queueing
 *   (skb_checksum_help in nfqnl_build_packet_message) and sends no
 *   NFQA_SKB_INFO: `skbInfo(i)` is 0 and checksums verify. With `gso`,
 *   packets a local stack sent (over lo or veth) arrive with their L4
 *   checksum still partial, flagged `SKB_INFO.CSUMNOTREADY`: not an error.
 * - A replaced payload is marked CHECKSUM_NONE (nfqnl_mangle): the bytes
 *   given back must carry complete, correct checksums.
 * - With `gso`, a packet can be a 64 KB super-packet (`SKB_INFO.GSO`): the
 *   default slot is then 64 KB + 1 KB.
 * - A second socket binding a queue gets EPERM from the kernel (not
 *   EBUSY); the addon looks the queue up in /proc and reports
 *   ESLUICE_IO_BUSY "already bound by another process".
 * - The socket reports ENOBUFS (after an overflow) as EPOLLERR; the addon
 *   counts it, reads on and re-arms its poll.
 */
import { readFileSync } from "node:fs";
import { checkInt, loadNative, NativeIoError, toIoError, type NativeNfQueue } from "./native.js";
import { IO_ERR, LIMIT, META, NF, NFQ_STAT, VREC, VREC_F } from "./native-constants.js";

export { HOOK, META, META_F, NF, SKB_INFO, VREC, VREC_F } from "./native-constants.js";

/** Names of NF.* verdicts by value, for logs. */
export const NF_NAMES = ["drop", "accept", "stolen", "queue", "repeat", "stop"] as const;

/** The verdict that sends a packet on to NFQUEUE queue `queue` (`NF_QUEUE | queue << 16`). */
export function nfQueueVerdict(queue: number): number {
  return (NF.QUEUE | (queue << NF.VERDICT_QBITS)) >>> 0;
}

/** What {@link NfQueue} needs; every capacity is a named, bounded setting. */
export interface NfQueueOptions {
  /** Queue number (0..65535), as in `-j NFQUEUE --queue-num N`. */
  queue: number;
  /** Called once per batch of `count` packets (rows 0..count-1). */
  onBatch: (q: NfQueue, count: number) => void;
  /** Packets that can be held at once awaiting a verdict (slab slots). Default 1024. */
  slots?: number;
  /** Bytes per slot, a multiple of 8. Default 4096, or 65536 + 1024 with `gso`. */
  slotSize?: number;
  /** Bytes at the end of each slot kept free for payload growth. Default 256. */
  headroom?: number;
  /** Messages per recvmmsg, i.e. the largest batch (S). Default 64. */
  batch?: number;
  /** recvmmsg rounds per wakeup (R) before yielding to the event loop. Default 8. */
  rounds?: number;
  /** Bytes of each packet copied to us. Default: all that fits a slot (at most 65535). */
  copyRange?: number;
  /** Kernel queue length (NFQA_CFG_QUEUE_MAXLEN); 0 keeps the kernel's default (1024). */
  maxlen?: number;
  /** Accept packets the queue cannot take instead of dropping them (NFQA_CFG_F_FAIL_OPEN). Default false. */
  failOpen?: boolean;
  /** Take GSO super-packets whole (NFQA_CFG_F_GSO). Default false. */
  gso?: boolean;
  /** Socket receive buffer in bytes (SO_RCVBUFFORCE, falling back to SO_RCVBUF). Default 8 MiB. */
  rcvbuf?: number;
  /** Set NETLINK_NO_ENOBUFS (overflows are then silent instead of counted). Default false. */
  noEnobufs?: boolean;
  /** Verdict for every held packet on close(). Default NF.DROP. */
  defaultVerdict?: number;
  /** Send runs of contiguous ids as one NFQNL_MSG_VERDICT_BATCH. Default true. */
  verdictBatch?: boolean;
  /** Bind the queue of this network namespace (a path like /run/netns/NAME) instead of the current one. */
  netns?: string;
}

/** Counters of one queue (ours; the kernel's are in {@link readNfQueueProc}). */
export interface NfQueueStats {
  received: number;
  verdicts: number;
  batches: number;
  wakeups: number;
  enobufs: number;
  outstanding: number;
  sendmsgs: number;
  verdictMsgs: number;
  batchMsgs: number;
  verdictErrors: number;
  lastVerdictErrno: number;
  badVerdicts: number;
  starved: number;
  truncated: number;
  parseErrors: number;
  defaultVerdicts: number;
  recvErrors: number;
  sendErrors: number;
}

const WHAT = "NfQueue";

/**
 * One bound NFQUEUE queue. Construct it (it binds and starts reading), give
 * verdicts from `onBatch` or later, and `close()` it.
 *
 * @example
 * const q = new NfQueue({ queue: 0, onBatch(q, n) { for (let i = 0; i < n; i++) q.verdict(i, NF.ACCEPT); } });
 */
export class NfQueue {
  /** The queue number. */
  readonly queue: number;
  /** Bytes per slot. */
  readonly slotSize: number;
  /** Number of slots (packets that can be held). */
  readonly slots: number;
  /** Largest batch. */
  readonly batchSize: number;
  /** All slots; a packet's bytes are `slab[payloadOffset(i), payloadOffset(i) + payloadLength(i))`. */
  readonly slab: Uint8Array;
  /** Batch metadata, {@link META} layout; valid during `onBatch`. */
  readonly meta: Int32Array;
  /** Pending verdict records, {@link VREC} layout. */
  readonly records: Uint32Array;

  #native: NativeNfQueue;
  #onBatch: (q: NfQueue, count: number) => void;
  #pending = 0;
  #closed = false;
  #stats = new Float64Array(NFQ_STAT.COUNT);

  /**
   * Binds the queue and starts reading.
   * @throws NativeIoError ESLUICE_IO_PERM (no CAP_NET_ADMIN), ESLUICE_IO_BUSY (queue owned by another
   *   process), ESLUICE_IO_ARG (an option out of range), ESLUICE_IO_NOT_BUILT (no addon)
   */
  constructor(opts: NfQueueOptions) {
    const gso = opts.gso ?? false;
    this.queue = checkInt(WHAT, "queue", opts.queue, 0, 65535);
    this.slots = checkInt(WHAT, "slots", opts.slots ?? 1024, 1, LIMIT.MAX_SLOTS);
    this.slotSize = checkInt(WHAT, "slotSize", opts.slotSize ?? (gso ? 65536 + 1024 : 4096), LIMIT.MIN_SLOT, LIMIT.MAX_SLOT);
    if (this.slotSize % 8 !== 0) throw new NativeIoError(IO_ERR.ARG, `${WHAT}: option slotSize must be a multiple of 8`);
    const headroom = checkInt(WHAT, "headroom", opts.headroom ?? 256, 0, this.slotSize - LIMIT.NL_OVERHEAD - 64);
    this.batchSize = checkInt(WHAT, "batch", opts.batch ?? 64, 1, LIMIT.MAX_BATCH);
    const rounds = checkInt(WHAT, "rounds", opts.rounds ?? 8, 1, LIMIT.MAX_ROUNDS);
    const maxCopy = Math.min(LIMIT.MAX_COPY_RANGE, this.slotSize - headroom - LIMIT.NL_OVERHEAD);
    const copyRange = checkInt(WHAT, "copyRange", opts.copyRange ?? maxCopy, 0, maxCopy);
    if (typeof opts.onBatch !== "function") throw new NativeIoError(IO_ERR.ARG, `${WHAT}: option onBatch must be a function`);
    this.#onBatch = opts.onBatch;

    const slab = new ArrayBuffer(this.slots * this.slotSize);
    this.slab = new Uint8Array(slab);
    this.meta = new Int32Array(this.batchSize * META.STRIDE);
    this.records = new Uint32Array(this.slots * VREC.STRIDE);
    const addon = loadNative();
    try {
      this.#native = new addon.NfQueue(
        {
          queue: this.queue,
          slots: this.slots,
          slotSize: this.slotSize,
          headroom,
          batch: this.batchSize,
          rounds,
          copyRange,
          maxlen: checkInt(WHAT, "maxlen", opts.maxlen ?? 0, 0, 0x7fffffff),
          rcvbuf: checkInt(WHAT, "rcvbuf", opts.rcvbuf ?? 8 << 20, 0, 0x7fffffff),
          failOpen: opts.failOpen ?? false,
          gso,
          noEnobufs: opts.noEnobufs ?? false,
          verdictBatch: opts.verdictBatch ?? true,
          defaultVerdict: checkInt(WHAT, "defaultVerdict", opts.defaultVerdict ?? NF.DROP, 0, 0xffffffff),
          netns: opts.netns,
        },
        slab,
        this.meta,
        this.records,
        (count: number) => this.#batch(count),
      );
    } catch (e) {
      throw toIoError(e);
    }
    const waiting = this.#native.start();
    // Packets that arrived between the bind and its ACK: deliver them now,
    // since no further wakeup may come.
    if (waiting > 0) setImmediate(() => this.#native.poll());
  }

  #batch(count: number): void {
    try {
      this.#onBatch(this, count);
    } finally {
      if (this.#pending > 0 && !this.#closed) this.flush();
    }
  }

  /** Packet id of row `i` (uint32). */
  id(i: number): number {
    return this.meta[i * META.STRIDE + META.ID] >>> 0;
  }
  /** Slot of row `i`. */
  slot(i: number): number {
    return this.meta[i * META.STRIDE + META.SLOT];
  }
  /** Byte offset of row `i`'s packet (its L3 header) in {@link slab}; -1 without payload. */
  payloadOffset(i: number): number {
    return this.meta[i * META.STRIDE + META.PAYLOAD_OFF];
  }
  /** Bytes of row `i`'s packet in the slab. */
  payloadLength(i: number): number {
    return this.meta[i * META.STRIDE + META.PAYLOAD_LEN];
  }
  /** Row `i`'s full packet length (larger than payloadLength when the copy range cut it). */
  capLength(i: number): number {
    return this.meta[i * META.STRIDE + META.CAP_LEN];
  }
  /** Largest replacement length for row `i`: from its payload offset to the end of its slot. */
  capacity(i: number): number {
    const m = i * META.STRIDE;
    return (this.meta[m + META.SLOT] + 1) * this.slotSize - this.meta[m + META.PAYLOAD_OFF];
  }
  /** EtherType of row `i` (0x0800 IPv4, 0x86dd IPv6). */
  hwProtocol(i: number): number {
    return this.meta[i * META.STRIDE + META.HW_PROTOCOL];
  }
  /** Netfilter hook of row `i` (HOOK.*). */
  hook(i: number): number {
    return this.meta[i * META.STRIDE + META.HOOK];
  }
  /** skb mark of row `i` (uint32). */
  mark(i: number): number {
    return this.meta[i * META.STRIDE + META.MARK] >>> 0;
  }
  /** Input interface index of row `i`, 0 if none. */
  indev(i: number): number {
    return this.meta[i * META.STRIDE + META.INDEV];
  }
  /** Output interface index of row `i`, 0 if none. */
  outdev(i: number): number {
    return this.meta[i * META.STRIDE + META.OUTDEV];
  }
  /** Bridge input port of row `i`, 0 if none. */
  physindev(i: number): number {
    return this.meta[i * META.STRIDE + META.PHYSINDEV];
  }
  /** Bridge output port of row `i`, 0 if none. */
  physoutdev(i: number): number {
    return this.meta[i * META.STRIDE + META.PHYSOUTDEV];
  }
  /** NFQA_SKB_INFO bits of row `i` (SKB_INFO.*). */
  skbInfo(i: number): number {
    return this.meta[i * META.STRIDE + META.SKB_INFO];
  }
  /** META_F.* bits of row `i`. */
  flags(i: number): number {
    return this.meta[i * META.STRIDE + META.FLAGS];
  }
  /** Offset of row `i`'s source link-layer address in the slab, -1 if none (its length: meta HWADDR_LEN). */
  hwaddrOffset(i: number): number {
    return this.meta[i * META.STRIDE + META.HWADDR_OFF];
  }
  /** Length of row `i`'s source link-layer address, 0 if none. */
  hwaddrLength(i: number): number {
    return this.meta[i * META.STRIDE + META.HWADDR_LEN];
  }

  /** Verdict for row `i` of the current batch. */
  verdict(i: number, verdict: number): void {
    const m = i * META.STRIDE;
    this.setVerdict(this.meta[m + META.ID] >>> 0, this.meta[m + META.SLOT], verdict, 0, 0, 0);
  }

  /** Verdict for row `i` that also sets the skb mark. */
  verdictMark(i: number, verdict: number, mark: number): void {
    const m = i * META.STRIDE;
    this.setVerdict(this.meta[m + META.ID] >>> 0, this.meta[m + META.SLOT], verdict, VREC_F.MARK, mark, 0);
  }

  /**
   * Verdict for row `i` that replaces the packet with the `length` bytes now
   * at its payload offset (rewritten in place, possibly longer, up to
   * {@link capacity}). Checksums must be complete: the kernel does not fix them.
   * Pass a `mark` to set the skb mark too.
   */
  verdictPayload(i: number, verdict: number, length: number, mark?: number): void {
    const m = i * META.STRIDE;
    const flags = mark === undefined ? VREC_F.PAYLOAD : VREC_F.PAYLOAD | VREC_F.MARK;
    this.setVerdict(this.meta[m + META.ID] >>> 0, this.meta[m + META.SLOT], verdict, flags, mark ?? 0, length);
  }

  /**
   * Queues a verdict record for packet `id` held in `slot` (from `id(i)` and
   * `slot(i)` of its batch): the form for verdicts given after `onBatch`
   * returned. `flags` are VREC_F.* bits. Call {@link flush} to send (it runs
   * by itself after each `onBatch`). A record whose id no longer owns the
   * slot is refused by the addon (counted in `badVerdicts`).
   */
  setVerdict(id: number, slot: number, verdict: number, flags: number, mark: number, length: number): void {
    if (this.#pending === this.slots) this.flush();
    const r = this.#pending * VREC.STRIDE;
    const rec = this.records;
    rec[r + VREC.ID] = id;
    rec[r + VREC.SLOT] = slot;
    rec[r + VREC.VERDICT] = verdict;
    rec[r + VREC.FLAGS] = flags;
    rec[r + VREC.MARK] = mark;
    rec[r + VREC.LEN] = length;
    this.#pending++;
  }

  /** Records queued and not yet sent. */
  get pendingVerdicts(): number {
    return this.#pending;
  }

  /** Sends the queued verdict records in one batch; returns how many the kernel got. */
  flush(): number {
    const n = this.#pending;
    this.#pending = 0;
    if (n === 0 || this.#closed) return 0;
    return this.#native.verdicts(n);
  }

  /** Our counters for this queue (allocates: for stats and health checks, not per packet). */
  stats(): NfQueueStats {
    const s = this.#stats;
    this.#native.stats(s);
    return {
      received: s[NFQ_STAT.RECEIVED],
      verdicts: s[NFQ_STAT.VERDICTS],
      batches: s[NFQ_STAT.BATCHES],
      wakeups: s[NFQ_STAT.WAKEUPS],
      enobufs: s[NFQ_STAT.ENOBUFS],
      outstanding: s[NFQ_STAT.OUTSTANDING],
      sendmsgs: s[NFQ_STAT.SENDMSGS],
      verdictMsgs: s[NFQ_STAT.VERDICT_MSGS],
      batchMsgs: s[NFQ_STAT.BATCH_MSGS],
      verdictErrors: s[NFQ_STAT.VERDICT_ERRORS],
      lastVerdictErrno: s[NFQ_STAT.LAST_VERDICT_ERRNO],
      badVerdicts: s[NFQ_STAT.BAD_VERDICTS],
      starved: s[NFQ_STAT.STARVED],
      truncated: s[NFQ_STAT.TRUNCATED],
      parseErrors: s[NFQ_STAT.PARSE_ERRORS],
      defaultVerdicts: s[NFQ_STAT.DEFAULT_VERDICTS],
      recvErrors: s[NFQ_STAT.RECV_ERRORS],
      sendErrors: s[NFQ_STAT.SEND_ERRORS],
    };
  }

  /** The netlink port id of our socket (the `peer_portid` column of the kernel's table). */
  get portId(): number {
    return this.#native.portId();
  }

  /** Whether close() ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends the queued records, gives every packet still held (and every
   * packet already queued to the socket) `defaultVerdict` (default: the
   * option), and unbinds. Returns how many packets got the default verdict.
   * Idempotent.
   */
  close(defaultVerdict?: number): number {
    if (this.#closed) return 0;
    this.flush();
    this.#closed = true;
    return this.#native.close(defaultVerdict);
  }
}

/** One line of /proc/net/netfilter/nfnetlink_queue (nfqnl's seq_show). */
export interface NfQueueProcEntry {
  /** Queue number. */
  queue: number;
  /** Netlink port id of the bound socket. */
  portid: number;
  /** Packets waiting in the kernel for a verdict. */
  queueTotal: number;
  /** Copy mode (COPY.*). */
  copyMode: number;
  /** Copy range in bytes. */
  copyRange: number;
  /** Packets dropped because the queue was full (queue_dropped). */
  queueDropped: number;
  /** Packets dropped because the socket could not take them (queue_user_dropped: ENOBUFS on our side). */
  userDropped: number;
  /** Last packet id handed out (id_sequence). */
  idSequence: number;
}

/**
 * Parses the text of /proc/net/netfilter/nfnetlink_queue: per line,
 * `queue_num peer_portid queue_total copy_mode copy_range queue_dropped
 * queue_user_dropped id_sequence 1` (nfqnl seq_show in nfnetlink_queue.c).
 * Lines that do not have at least 8 numbers are skipped.
 */
export function parseNfQueueProc(text: string): NfQueueProcEntry[] {
  const out: NfQueueProcEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.slice(0, 8).some((n) => !Number.isInteger(n))) continue;
    out.push({
      queue: f[0],
      portid: f[1],
      queueTotal: f[2],
      copyMode: f[3],
      copyRange: f[4],
      queueDropped: f[5],
      userDropped: f[6],
      idSequence: f[7],
    });
  }
  return out;
}

/**
 * The kernel's per-queue counters of the current network namespace (or of
 * the process `pid`'s namespace: /proc/PID/net/...). Empty when no queue is bound.
 */
export function readNfQueueProc(pid?: number): NfQueueProcEntry[] {
  const path = pid === undefined ? "/proc/net/netfilter/nfnetlink_queue" : `/proc/${pid}/net/netfilter/nfnetlink_queue`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  return parseNfQueueProc(text);
}
