/**
 * Re-injection through raw sockets: `socket(AF_INET[6], SOCK_RAW,
 * IPPROTO_RAW)`, which implies IP_HDRINCL / IPV6_HDRINCL and receives
 * nothing (so it does not see a copy of every packet, as a TCP/UDP raw
 * socket would). Each packet carries its own complete IP header; its
 * destination address is taken from that header; runs of one family go out
 * in one sendmmsg.
 *
 * The packets traverse OUTPUT / POSTROUTING as locally generated. Set
 * `mark` (SO_MARK) and exclude that mark in the rule that diverts traffic to
 * sluice, or the packets loop back (packet-io.md §3.5).
 *
 * What the kernel does to the header (raw(7)): IPv4 checksum and total
 * length always filled in, source address and id when zero; IPv6 is sent as
 * given (payload length included). GSO super-packets must be segmented first.
 */
import { checkInt, loadNative, toIoError, type NativeRawSocket } from "./native.js";
import { DESC, RAW_STAT } from "./native-constants.js";

/** What {@link RawSocket} needs. */
export interface RawSocketOptions {
  /** Open the IPv4 socket. Default true. */
  ipv4?: boolean;
  /** Open the IPv6 socket. Default true. */
  ipv6?: boolean;
  /** SO_MARK for every packet sent (needs CAP_NET_ADMIN); absent: no mark. */
  mark?: number;
  /** Socket send buffer in bytes (SO_SNDBUFFORCE, falling back to SO_SNDBUF); 0 keeps the default. */
  sndbuf?: number;
  /** Open the sockets in this network namespace (a path like /run/netns/NAME). */
  netns?: string;
}

/** Counters of one raw-socket handle. */
export interface RawSocketStats {
  sent: number;
  sendErrors: number;
  sendDropped: number;
  sendmmsgCalls: number;
  badDescs: number;
  lastErrno: number;
}

/** A pair of send-only raw sockets (IPv4 and IPv6). */
export class RawSocket {
  #native: NativeRawSocket;
  #one = new Uint32Array(DESC.STRIDE);
  #stats = new Float64Array(RAW_STAT.COUNT);

  /** @throws NativeIoError ESLUICE_IO_PERM (no CAP_NET_RAW, or SO_MARK without CAP_NET_ADMIN), ESLUICE_IO_ARG */
  constructor(opts: RawSocketOptions = {}) {
    const addon = loadNative();
    try {
      this.#native = new addon.RawSocket({
        ipv4: opts.ipv4 ?? true,
        ipv6: opts.ipv6 ?? true,
        mark: opts.mark === undefined ? -1 : checkInt("RawSocket", "mark", opts.mark, 0, 0xffffffff),
        sndbuf: checkInt("RawSocket", "sndbuf", opts.sndbuf ?? 0, 0, 0x7fffffff),
        netns: opts.netns,
      });
    } catch (e) {
      throw toIoError(e);
    }
  }

  /**
   * Sends `count` packets described by `desc` ({@link DESC} rows: offset into
   * `buf`, length). Returns how many the kernel took; the rest were refused
   * (no route, too big...) or dropped (send buffer full), and counted.
   */
  send(buf: Uint8Array, desc: Uint32Array, count: number): number {
    return this.#native.send(buf, desc, count);
  }

  /** Sends one packet, `buf[off, off + len)`. Returns 1 if sent. */
  sendOne(buf: Uint8Array, off: number, len: number): number {
    this.#one[DESC.OFF] = off;
    this.#one[DESC.LEN] = len;
    return this.#native.send(buf, this.#one, 1);
  }

  /** Counters (allocates: not for the packet path). */
  stats(): RawSocketStats {
    const s = this.#stats;
    this.#native.stats(s);
    return {
      sent: s[RAW_STAT.SENT],
      sendErrors: s[RAW_STAT.SEND_ERRORS],
      sendDropped: s[RAW_STAT.SEND_DROPPED],
      sendmmsgCalls: s[RAW_STAT.SENDMMSG_CALLS],
      badDescs: s[RAW_STAT.BAD_DESCS],
      lastErrno: s[RAW_STAT.LAST_ERRNO],
    };
  }

  /** Closes both sockets. Idempotent. */
  close(): void {
    this.#native.close();
  }
}
