/**
 * The NFLOG target: its options as iptables 1.8.9 parses and saves them
 * (libxt_NFLOG.c), and a sink that records logged packets into one pcap
 * file per group, in the format `tcpdump -i nflog:GROUP -w FILE` writes.
 *
 * Record format: LINKTYPE_NFLOG (239), the nfnetlink_log message without its
 * netlink header, as libpcap captures it:
 *
 *   +0  family (AF_INET 2 / AF_INET6 10)   +1 version 0   +2 resource id = group (big-endian)
 *   +4  TLVs: length u16, type u16 (both in the file's byte order: little-endian here,
 *       as libpcap writes them in host order), value (network order), padded to 4 bytes;
 *       the length counts header + value, not the padding.
 *
 * TLVs, in the order __build_packet_message() (nfnetlink_log.c) emits them:
 *
 *   NFULA_PACKET_HDR  1   hw_protocol (be16: 0x0800 / 0x86dd), hook, pad
 *   NFULA_PREFIX     10   the prefix and its NUL (always present: an empty prefix is just the NUL)
 *   NFULA_IFINDEX_INDEV 4 / OUTDEV 5   be32, when known
 *   NFULA_MARK        2   be32, when non-zero
 *   NFULA_HWADDR      8   be16 length, pad, 8 address bytes (the source MAC), input side only
 *   NFULA_HWTYPE 15, NFULA_HWLEN 17, NFULA_HWHEADER 16   the device type and link header, input side
 *   NFULA_TIMESTAMP   3   be64 seconds, be64 microseconds, at PREROUTING, INPUT and FORWARD only
 *   NFULA_UID 11, NFULA_GID 14   be32, for a local socket's packets
 *   NFULA_PAYLOAD     9   the packet from its IP header, cut to --nflog-size (absent when 0 bytes)
 *
 * test/rules/nflog.test.ts checks records byte for byte against the
 * kernel's own (captured with `tcpdump -i nflog:N`), and reads the files
 * back with `tcpdump -r`. tcpdump shows the group (`-e`: "resource ID N")
 * but not the prefix; Wireshark's nflog dissector shows both.
 *
 * Bounds: a file per group, at most `maxGroups` groups (later groups are
 * dropped and counted), each file at most `maxFileBytes` bytes: the first
 * record that would pass it is dropped, and so is every later record of
 * that group (the file stays a valid, complete capture; drops are counted).
 * Files are created (truncated) on a group's first packet. Records are
 * buffered (64 KiB) and reach the file on `flush()` and `close()`.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PcapWriter, PCAP_MAX_CAPLEN } from "../io/pcap.js";
import { parsePrefix, parseXtUint, TargetOptionError, xtablesSaveString, type TargetOption } from "./log.js";

// ---------------------------------------------------------------- options

/** struct xt_nflog_info's prefix[64]: at most 63 bytes are kept (cut silently, as iptables-legacy does). */
export const NFLOG_PREFIX_MAX = 63;
/** XT_NFLOG_F_COPY_LEN: `--nflog-size` was given (the kernel then honours `len`). */
export const NFLOG_F_COPY_LEN = 0x1;
/** XT_NFLOG_DEFAULT_THRESHOLD. */
export const NFLOG_DEFAULT_THRESHOLD = 0;

/** An NFLOG target's compiled options (struct xt_nflog_info). */
export interface NflogOptions {
  group: number;
  prefix: string;
  /** Copy length from `--nflog-size` (or the ignored `--nflog-range`). */
  len: number;
  /** {@link NFLOG_F_COPY_LEN} when `--nflog-size` was given. */
  flags: number;
  /** `--nflog-threshold`: a batching hint for the kernel's queue; sluice writes every record at once. */
  threshold: number;
}

/**
 * Compiles an NFLOG target's options.
 * @throws TargetOptionError naming the option (bad number, empty prefix, --nflog-range with --nflog-size, repeats)
 */
export function parseNflogOptions(options: readonly TargetOption[]): NflogOptions {
  const o: NflogOptions = { group: 0, prefix: "", len: 0, flags: 0, threshold: NFLOG_DEFAULT_THRESHOLD };
  const seen = new Set<string>();
  options.forEach((opt, i) => {
    if (seen.has(opt.name)) throw new TargetOptionError(i, `NFLOG: option "${opt.name}" can only be used once.`);
    seen.add(opt.name);
    const arg = opt.args[0] ?? "";
    const num = (max: number): number => {
      const v = parseXtUint(arg, max);
      if (v === undefined) throw new TargetOptionError(i, `NFLOG: bad value for option "${opt.name}", or out of range (0-${max}).`);
      return v;
    };
    switch (opt.name) {
      case "--nflog-group": o.group = num(0xffff); break;
      case "--nflog-threshold": o.threshold = num(0xffff); break;
      case "--nflog-prefix":
        try {
          o.prefix = parsePrefix(arg, NFLOG_PREFIX_MAX, "--nflog-prefix");
        } catch (e) {
          throw new TargetOptionError(i, (e as Error).message);
        }
        break;
      case "--nflog-range":
      case "--nflog-size": {
        const other = opt.name === "--nflog-range" ? "--nflog-size" : "--nflog-range";
        if (seen.has(other)) throw new TargetOptionError(i, `NFLOG: option "${opt.name}" cannot be used together with "${other}".`);
        o.len = num(0xffffffff);
        // --nflog-range "has never worked": the kernel ignores len without the flag.
        if (opt.name === "--nflog-size") o.flags |= NFLOG_F_COPY_LEN;
        break;
      }
      default:
        throw new TargetOptionError(i, `NFLOG: unknown option "${opt.name}"`);
    }
  });
  return o;
}

/** The options as `iptables-save` prints them after `-j NFLOG` (nflog_print), each with its leading space. */
export function saveNflogOptions(o: NflogOptions): string {
  let s = "";
  if (o.prefix !== "") s += ` --nflog-prefix${xtablesSaveString(o.prefix)}`;
  if (o.group !== 0) s += ` --nflog-group ${o.group}`;
  if (o.flags & NFLOG_F_COPY_LEN) s += ` --nflog-size ${o.len}`;
  else if (o.len !== 0) s += ` --nflog-range ${o.len}`;
  if (o.threshold !== NFLOG_DEFAULT_THRESHOLD) s += ` --nflog-threshold ${o.threshold}`;
  return s;
}

/** How many bytes of a `len`-byte packet the kernel copies (nfulnl_log_packet: --nflog-size caps it). */
export function nflogCopyLength(o: NflogOptions, len: number): number {
  return o.flags & NFLOG_F_COPY_LEN && o.len < len ? o.len : len;
}

// ---------------------------------------------------------------- the sink

/** LINKTYPE_NFLOG. */
export const LINKTYPE_NFLOG = 239;

/** nfnetlink_log attribute types (enum nfulnl_attr_type). */
export const NFULA = {
  PACKET_HDR: 1,
  MARK: 2,
  TIMESTAMP: 3,
  IFINDEX_INDEV: 4,
  IFINDEX_OUTDEV: 5,
  HWADDR: 8,
  PAYLOAD: 9,
  PREFIX: 10,
  UID: 11,
  GID: 14,
  HWTYPE: 15,
  HWHEADER: 16,
  HWLEN: 17,
} as const;

/** NF_INET_FORWARD: the kernel timestamps packets at this hook and the ones before it. */
const HOOK_FORWARD = 2;

/**
 * What the kernel knows about a logged packet beyond its bytes. Reuse one
 * object per pipeline (fields assigned per packet) to keep `write` free of
 * allocation.
 */
export interface NflogMeta {
  /** The hook (HOOK.* / NF_INET_*). */
  hook: number;
  /** Input / output interface index; 0: none. */
  inIfindex: number;
  outIfindex: number;
  mark: number;
  /** Owner of a local socket's packet; -1: none (no UID/GID TLVs). */
  uid: number;
  gid: number;
  /** Source link-layer address (NFULA_HWADDR) at hwBuf[hwOff, hwOff + hwLen); hwLen 0: none. */
  hwBuf?: Uint8Array;
  hwOff?: number;
  hwLen?: number;
  /** Input device type (ARPHRD_*) for NFULA_HWTYPE/HWLEN/HWHEADER; undefined or < 0: unknown, not written. */
  hwType?: number;
  /** The input device's link-layer header (hard_header_len bytes) at hwHeaderBuf[hwHeaderOff, +hwHeaderLen). */
  hwHeaderBuf?: Uint8Array;
  hwHeaderOff?: number;
  hwHeaderLen?: number;
}

/** Limits of an {@link NflogSink}. */
export interface NflogSinkOptions {
  /** Largest file per group, header included. Default 64 MiB. */
  maxFileBytes?: number;
  /** Most groups with a file at once. Default 16. */
  maxGroups?: number;
  /** Most distinct prefix strings whose UTF-8 form is cached. Default 256. */
  maxPrefixes?: number;
}

/** Counters of one group's file. */
export interface NflogGroupStats {
  group: number;
  file: string;
  packets: number;
  bytes: number;
  drops: number;
  /** The first I/O error, if the file failed (its later packets are dropped). */
  error: string | null;
}

const PCAP_FILE_HEADER = 24;
const PCAP_RECORD_HEADER = 16;
/** Longest link-layer header recorded (NFULA_HWHEADER); Linux's MAX_ADDR_LEN-sized headers are far below it. */
const MAX_HWHEADER = 64;
/** Header + every TLV but the payload at their largest: hdr, prefix (63 + NUL), in, out, mark, hwaddr, hwtype, hwlen, hwheader, timestamp, uid, gid. */
const MAX_META = 4 + 8 + 68 + 8 + 8 + 8 + 16 + 8 + 8 + (4 + MAX_HWHEADER) + 20 + 8 + 8;
const MAX_PAYLOAD = 0xffff;

class GroupFile {
  writer: PcapWriter | null = null;
  size = PCAP_FILE_HEADER;
  packets = 0;
  drops = 0;
  full = false;
  error: string | null = null;
  constructor(readonly group: number, readonly path: string) {}
}

/**
 * Records NFLOG'd packets, one pcap file per group (`nflog-<group>.pcap` in
 * `dir`). `write` never throws: a full file, a group over the limit or an
 * I/O error count a drop.
 */
export class NflogSink {
  readonly dir: string;
  /** Records dropped because `maxGroups` files were already open. */
  groupDrops = 0;
  private readonly maxFileBytes: number;
  private readonly maxGroups: number;
  private readonly maxPrefixes: number;
  private readonly groups = new Map<number, GroupFile>();
  private readonly prefixes = new Map<string, Uint8Array>();
  private readonly scratch = new Uint8Array(MAX_META + MAX_PAYLOAD + 4);
  private readonly enc = new TextEncoder();
  private closed = false;

  /** @throws Error when `dir` cannot be created */
  constructor(dir: string, opts: NflogSinkOptions = {}) {
    this.dir = dir;
    this.maxFileBytes = opts.maxFileBytes ?? 64 << 20;
    this.maxGroups = opts.maxGroups ?? 16;
    this.maxPrefixes = opts.maxPrefixes ?? 256;
    mkdirSync(dir, { recursive: true });
  }

  /** The file a group's packets go to. */
  pathOf(group: number): string {
    return join(this.dir, `nflog-${group}.pcap`);
  }

  /**
   * Records `bytes[off, off+len)` (an IP packet, already cut to the copy
   * length: see {@link nflogCopyLength}) for `group` with `prefix`.
   * @param wallMs wall clock, ms since the epoch (record time and NFULA_TIMESTAMP)
   * @param meta hook, interfaces, mark, owner, link layer; null: only the packet header TLV and the prefix
   * @returns true when written, false when dropped (counted)
   */
  write(group: number, prefix: string | Uint8Array, bytes: Uint8Array, off: number, len: number, wallMs: number, meta: NflogMeta | null = null): boolean {
    if (this.closed) return false;
    let g = this.groups.get(group);
    if (g === undefined) {
      if (this.groups.size >= this.maxGroups) {
        this.groupDrops++;
        return false;
      }
      g = new GroupFile(group, this.pathOf(group));
      this.groups.set(group, g);
    }
    if (g.full || g.error !== null) {
      g.drops++;
      return false;
    }
    if (len > MAX_PAYLOAD) len = MAX_PAYLOAD;
    const n = this.encode(group, prefix, bytes, off, len, wallMs, meta);
    if (g.size + PCAP_RECORD_HEADER + n > this.maxFileBytes) {
      g.full = true;
      g.drops++;
      return false;
    }
    try {
      if (g.writer === null) g.writer = PcapWriter.create(g.path, LINKTYPE_NFLOG, PCAP_MAX_CAPLEN);
      g.writer.writeMs(this.scratch, 0, n, wallMs);
    } catch (e) {
      g.error = (e as Error).message;
      g.drops++;
      return false;
    }
    g.size += PCAP_RECORD_HEADER + n;
    g.packets++;
    return true;
  }

  /** Writes buffered records to their files. I/O errors are recorded in the group's stats. */
  flush(): void {
    for (const g of this.groups.values()) {
      if (g.writer === null || g.error !== null) continue;
      try {
        g.writer.flush();
      } catch (e) {
        g.error = (e as Error).message;
      }
    }
  }

  /** Flushes and closes every file; later writes are refused. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const g of this.groups.values()) {
      if (g.writer === null) continue;
      try {
        g.writer.close();
      } catch (e) {
        g.error ??= (e as Error).message;
      }
    }
  }

  /** Per-group counters (allocates: for the control socket, not the packet path). */
  stats(): NflogGroupStats[] {
    return [...this.groups.values()].map((g) => ({ group: g.group, file: g.path, packets: g.packets, bytes: g.size, drops: g.drops, error: g.error }));
  }

  /** The prefix's bytes, NUL-terminated, from a bounded cache. */
  private prefixBytes(prefix: string): Uint8Array {
    let p = this.prefixes.get(prefix);
    if (p === undefined) {
      const e = this.enc.encode(prefix);
      const cut = e.length > NFLOG_PREFIX_MAX ? NFLOG_PREFIX_MAX : e.length;
      p = new Uint8Array(cut + 1);
      p.set(e.subarray(0, cut));
      if (this.prefixes.size < this.maxPrefixes) this.prefixes.set(prefix, p);
    }
    return p;
  }

  /** Builds the record in `scratch`; returns its length. */
  private encode(group: number, prefix: string | Uint8Array, bytes: Uint8Array, off: number, len: number, wallMs: number, meta: NflogMeta | null): number {
    const s = this.scratch;
    const v6 = len > 0 && bytes[off]! >> 4 === 6;
    s[0] = v6 ? 10 : 2;
    s[1] = 0;
    s[2] = (group >>> 8) & 0xff;
    s[3] = group & 0xff;
    let p = 4;
    // NFULA_PACKET_HDR: hw_protocol, hook, pad.
    p = tlvHeader(s, p, NFULA.PACKET_HDR, 4);
    s[p] = v6 ? 0x86 : 0x08; s[p + 1] = v6 ? 0xdd : 0x00; s[p + 2] = meta?.hook ?? 0; s[p + 3] = 0;
    p += 4;
    // NFULA_PREFIX: the string and its NUL.
    if (typeof prefix === "string") {
      const pb = this.prefixBytes(prefix);
      p = tlvBytes(s, p, NFULA.PREFIX, pb, 0, pb.length);
    } else {
      const n = prefix.length > NFLOG_PREFIX_MAX ? NFLOG_PREFIX_MAX : prefix.length;
      let q = tlvHeader(s, p, NFULA.PREFIX, n + 1);
      for (let i = 0; i < n; i++) s[q++] = prefix[i]!;
      s[q++] = 0;
      p = pad4(s, q);
    }
    if (meta !== null) {
      if (meta.inIfindex > 0) p = tlvU32(s, p, NFULA.IFINDEX_INDEV, meta.inIfindex);
      if (meta.outIfindex > 0) p = tlvU32(s, p, NFULA.IFINDEX_OUTDEV, meta.outIfindex);
      if (meta.mark !== 0) p = tlvU32(s, p, NFULA.MARK, meta.mark);
      if (meta.inIfindex > 0) {
        const hl = meta.hwLen ?? 0;
        if (hl > 0 && meta.hwBuf !== undefined) {
          // struct nfulnl_msg_packet_hw: be16 hw_addrlen, pad, hw_addr[8].
          const n = hl > 8 ? 8 : hl;
          const q = tlvHeader(s, p, NFULA.HWADDR, 12);
          s[q] = 0; s[q + 1] = n; s[q + 2] = 0; s[q + 3] = 0;
          for (let i = 0; i < 8; i++) s[q + 4 + i] = i < n ? meta.hwBuf[(meta.hwOff ?? 0) + i]! : 0;
          p = q + 12;
        }
        const ht = meta.hwType ?? -1;
        if (ht >= 0) {
          const hh = Math.min(meta.hwHeaderLen ?? 0, MAX_HWHEADER);
          p = tlvU16(s, p, NFULA.HWTYPE, ht);
          p = tlvU16(s, p, NFULA.HWLEN, hh);
          p = tlvBytes(s, p, NFULA.HWHEADER, meta.hwHeaderBuf ?? s, meta.hwHeaderOff ?? 0, meta.hwHeaderBuf === undefined ? 0 : hh);
        }
      }
      if (meta.hook <= HOOK_FORWARD) {
        // struct nfulnl_msg_packet_timestamp: be64 sec, be64 usec.
        const us = Math.round(wallMs * 1000);
        const sec = Math.floor(us / 1e6);
        const q = tlvHeader(s, p, NFULA.TIMESTAMP, 16);
        writeBe64(s, q, sec);
        writeBe64(s, q + 8, us - sec * 1e6);
        p = q + 16;
      }
      if (meta.uid >= 0) {
        p = tlvU32(s, p, NFULA.UID, meta.uid);
        p = tlvU32(s, p, NFULA.GID, meta.gid);
      }
    }
    if (len > 0) p = tlvBytes(s, p, NFULA.PAYLOAD, bytes, off, len);
    return p;
  }
}

/** A TLV header at `p` for a value of `len` bytes (little-endian: the file's byte order); returns the value's offset. */
function tlvHeader(s: Uint8Array, p: number, type: number, len: number): number {
  const n = len + 4;
  s[p] = n & 0xff; s[p + 1] = n >>> 8;
  s[p + 2] = type & 0xff; s[p + 3] = type >>> 8;
  return p + 4;
}

/** Zero padding to the next multiple of 4 (NLA_ALIGN). */
function pad4(s: Uint8Array, p: number): number {
  while (p & 3) s[p++] = 0;
  return p;
}

function tlvBytes(s: Uint8Array, p: number, type: number, src: Uint8Array, off: number, len: number): number {
  let q = tlvHeader(s, p, type, len);
  for (let i = 0; i < len; i++) s[q++] = src[off + i]!;
  return pad4(s, q);
}

function tlvU32(s: Uint8Array, p: number, type: number, v: number): number {
  const q = tlvHeader(s, p, type, 4);
  s[q] = v >>> 24; s[q + 1] = (v >>> 16) & 0xff; s[q + 2] = (v >>> 8) & 0xff; s[q + 3] = v & 0xff;
  return q + 4;
}

function tlvU16(s: Uint8Array, p: number, type: number, v: number): number {
  const q = tlvHeader(s, p, type, 2);
  s[q] = (v >>> 8) & 0xff; s[q + 1] = v & 0xff;
  return pad4(s, q + 2);
}

function writeBe64(s: Uint8Array, p: number, v: number): void {
  const hi = Math.floor(v / 4294967296);
  const lo = v - hi * 4294967296;
  s[p] = hi >>> 24; s[p + 1] = (hi >>> 16) & 0xff; s[p + 2] = (hi >>> 8) & 0xff; s[p + 3] = hi & 0xff;
  s[p + 4] = lo >>> 24; s[p + 5] = (lo >>> 16) & 0xff; s[p + 6] = (lo >>> 8) & 0xff; s[p + 7] = lo & 0xff;
}
