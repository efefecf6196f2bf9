/**
 * Capture files: a reader for classic pcap and pcapng held whole in memory,
 * and a classic-pcap writer.
 *
 * The reader is a cursor, not a stream of objects: `next()` moves it to the
 * next packet record and sets plain numeric fields (offsets into the file's
 * own bytes, lengths, timestamp, link type, where the IP packet starts).
 * Nothing is allocated per record; callers aim their packet views at
 * `reader.buf` from `l3Offset` for `l3Length` bytes.
 *
 * Classic pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html):
 *
 *   file header, 24 bytes, in the writer's byte order
 *   +0 magic a1b2c3d4 (µs) / a1b23c4d (ns)   +4 version 2.4   +8 thiszone   +12 sigfigs
 *   +16 snaplen   +20 link type (low 26 bits; the top bits carry FCS info)
 *   record header, 16 bytes
 *   +0 ts seconds   +4 ts µs or ns   +8 captured length   +12 original length
 *
 * pcapng (draft-ietf-opsawg-pcapng): a sequence of blocks, each
 *
 *   +0 block type   +4 total length   +8 body ...   +len-4 total length again
 *
 * grouped in sections; every Section Header Block (0x0a0d0d0a, a palindrome
 * so it reads the same in either byte order) carries the byte-order magic
 * 0x1a2b3c4d and starts a fresh list of interfaces. Interface Description
 * Blocks (1) give each interface its link type, snap length, name and
 * timestamp unit (if_tsresol, default 10^-6 s) and offset (if_tsoffset).
 * Packets come in Enhanced Packet Blocks (6), Simple Packet Blocks (3, no
 * timestamp, interface 0) or obsolete Packet Blocks (2); every other block
 * type is skipped by its length.
 *
 * Not supported: Kuznetzov's modified pcap (magic a1b2cd34); pcapng
 * per-packet options (epb_flags direction, hashes, comments: skipped), the
 * SHB section length (ignored: sections are walked block by block), and
 * compressed or encrypted files. Link types outside {@link LINKTYPE} are
 * reported as numbers with `l3Kind` 0. Interface IDs are per section, as the
 * format defines them; `sections` tells sections apart.
 */

import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { PCAP_ERR, PCAP_MAX_CAPLEN, PcapError } from "./pcap-errors.js";

export { PCAP_ERR, PCAP_MAX_CAPLEN, PcapError } from "./pcap-errors.js";
export type { PcapErrorCode } from "./pcap-errors.js";

/** Link-layer header types (tcpdump.org LINKTYPE_* values) the reader decodes down to IP. */
export const LINKTYPE = {
  /** BSD loopback: a 4-byte address family in the writer's byte order. */
  NULL: 0,
  ETHERNET: 1,
  /** Raw IP under the DLT value some systems wrote into files before LINKTYPE_RAW existed. */
  RAW_DLT12: 12,
  /** Raw IP as OpenBSD's DLT_RAW. */
  RAW_DLT14: 14,
  /** Raw IP: the record starts at the IPv4 or IPv6 header (version nibble decides). */
  RAW: 101,
  /** OpenBSD loopback: like NULL but the family is big-endian. */
  LOOP: 108,
  /** Linux cooked capture v1 (16-byte header), `tcpdump -i any -y LINUX_SLL`. */
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  /** Linux cooked capture v2 (20-byte header, has the ifindex); what `tcpdump -i any` writes with libpcap 1.10. */
  LINUX_SLL2: 276,
} as const;

/** Name of a link type for messages (`LINKTYPE_<n>` when unknown). */
export function linkTypeName(linkType: number): string {
  switch (linkType) {
    case LINKTYPE.NULL: return "NULL";
    case LINKTYPE.ETHERNET: return "ETHERNET";
    case LINKTYPE.RAW_DLT12: case LINKTYPE.RAW_DLT14: case LINKTYPE.RAW: return "RAW";
    case LINKTYPE.LOOP: return "LOOP";
    case LINKTYPE.LINUX_SLL: return "LINUX_SLL";
    case LINKTYPE.IPV4: return "IPV4";
    case LINKTYPE.IPV6: return "IPV6";
    case LINKTYPE.LINUX_SLL2: return "LINUX_SLL2";
    default: return `LINKTYPE_${linkType}`;
  }
}

/** What the link layer carries, as `PcapReader.l3Kind`: the IP version, or 0 for anything else. */
export const L3 = { OTHER: 0, IPV4: 4, IPV6: 6 } as const;
/** One of the {@link L3} values. */
export type L3Kind = 0 | 4 | 6;

/** Container format, as `PcapReader.format`. */
export const PCAP_FORMAT = { PCAP: 1, PCAPNG: 2 } as const;

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
/** 802.1Q C-tag, 802.1ad S-tag, and the pre-standard Q-in-Q TPID tcpdump also treats as VLAN. */
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const ETH_P_QINQ1 = 0x9100;

const ETH_HLEN = 14;
/** struct sll_header: pkttype(2) hatype(2) halen(2) addr(8) protocol(2). */
const SLL_HLEN = 16;
/** struct sll2_header: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8). */
const SLL2_HLEN = 20;
/** LINKTYPE_NULL/LOOP address families: AF_INET everywhere; AF_INET6 as NetBSD/OpenBSD, FreeBSD, Darwin number it. */
const BSD_AF_INET = 2;
const BSD_AF_INET6_BSD = 24;
const BSD_AF_INET6_FREEBSD = 28;
const BSD_AF_INET6_DARWIN = 30;

const PCAP_HDR_LEN = 24;
const PCAP_REC_HDR_LEN = 16;

const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 1;
const BT_PB = 2;
const BT_SPB = 3;
const BT_EPB = 6;
/** type(4) + length(4) + trailing length(4). */
const BLOCK_OVERHEAD = 12;
/** SHB: overhead + byte-order magic(4) + major(2) + minor(2) + section length(8). */
const SHB_MIN = BLOCK_OVERHEAD + 16;
/** IDB: overhead + link type(2) + reserved(2) + snaplen(4). */
const IDB_MIN = BLOCK_OVERHEAD + 8;
/** EPB and PB: overhead + interface(4) + ts(8) + caplen(4) + origlen(4). */
const EPB_MIN = BLOCK_OVERHEAD + 20;
/** SPB: overhead + original length(4). */
const SPB_MIN = BLOCK_OVERHEAD + 4;
const OPT_ENDOFOPT = 0;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;

/** How an interface's timestamp units turn into seconds + nanoseconds (see `setPcapngTime`). */
const TS_POW10 = 0;
const TS_POW2 = 1;
const TS_BIGINT = 2;

const TWO32 = 4294967296;
const UTF8 = new TextDecoder("utf-8");

/**
 * A cursor over the packet records of a pcap or pcapng file held in memory.
 *
 * ```ts
 * const r = readPcapFile("capture.pcapng");
 * while (r.next()) {
 *   if (r.l3Kind === L3.OTHER) { skipped++; continue; }
 *   pipeline.process(r.buf, r.l3Offset, r.l3Length, r.timeMs());
 * }
 * ```
 *
 * All fields below are set by `next()` and describe the current record; they
 * are plain fields for speed and must be treated as read-only. A malformed or
 * truncated file makes `next()` throw a {@link PcapError} naming the record
 * index and byte offset; a file that ends exactly after a whole record ends
 * cleanly. After a throw the cursor stays put (another `next()` throws again).
 */
export class PcapReader {
  /** The whole file; every offset below indexes into it. */
  readonly buf: Uint8Array;
  /** File name for error messages. */
  readonly name: string;
  /** {@link PCAP_FORMAT}.PCAP or .PCAPNG. */
  readonly format: number;
  /** True when the current section (the file, for classic pcap) is little-endian. */
  littleEndian = true;
  /** Classic pcap: the file has nanosecond timestamps (magic a1b23c4d). pcapng: false (see each interface's if_tsresol). */
  readonly nanosecond: boolean;
  /** Number of pcapng sections seen so far (1 for classic pcap). */
  sections = 1;

  /** 0-based index of the current packet record; -1 before the first `next()`. */
  index = -1;
  /** Byte offset of the current record's header (pcap) or block (pcapng). */
  recordOffset = 0;
  /** Byte offset of the current record's captured bytes (its link-layer header). */
  dataOffset = 0;
  /** Captured length: bytes present at `dataOffset`. */
  capLen = 0;
  /** Length of the packet on the wire (≥ capLen unless the writer lied). */
  origLen = 0;
  /** Timestamp, whole seconds since the epoch (pcapng if_tsoffset applied). 0 for Simple Packet Blocks. */
  tsSec = 0;
  /**
   * Timestamp, nanoseconds within the second (µs files give multiples of 1000).
   * Not normalised: a classic-pcap fraction of a second or more passes through
   * scaled, as libpcap passes it through.
   */
  tsNsec = 0;
  /** LINKTYPE of the current record ({@link LINKTYPE}); per interface in pcapng. */
  linkType = 0;
  /** Snap length of the file (pcap) or of the record's interface (pcapng; 0 means none). */
  snaplen = 0;
  /** pcapng interface ID within the current section; 0 for classic pcap. */
  interfaceId = 0;
  /** pcapng if_name of the record's interface; "" when unknown or classic pcap. */
  interfaceName = "";
  /** Byte offset of the IPv4/IPv6 header (the end of the link-layer header when `l3Kind` is 0). */
  l3Offset = 0;
  /** Bytes from `l3Offset` to the end of the captured data (may include Ethernet padding/FCS). */
  l3Length = 0;
  /** {@link L3}: 4 or 6 when the link layer announces IPv4/IPv6 and at least one byte of it was captured; 0 otherwise. */
  l3Kind: L3Kind = 0;
  /** Innermost EtherType/SLL protocol after VLAN tags; -1 when the link type has none (RAW, NULL, ...) or it was not captured. */
  etherType = -1;
  /** VLAN ID of the outermost 802.1Q/802.1ad tag; -1 when untagged. */
  vlanId = -1;
  /** Number of VLAN tags skipped (stacked Q-in-Q gives 2). */
  vlanDepth = 0;
  /** Linux packet type from SLL/SLL2 (0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing); -1 otherwise. */
  pktType = -1;
  /** Linux ifindex from SLL2; -1 otherwise. */
  ifIndex = -1;

  /** Offset of the next record header or block. */
  private pos: number;
  /** Offset of the first record header or block after the first SHB, for `rewind()`. */
  private start: number;
  private readonly fileLinkType: number;
  // pcapng interfaces of the current section, indexed by interface ID; filled at
  // IDB time so that packet blocks only index arrays.
  private ifLinkType: number[] = [];
  private ifSnaplen: number[] = [];
  private ifName: string[] = [];
  private ifTsMode: number[] = [];
  /** TS_POW10: the exponent k (units are 10^-k s); TS_POW2: the exponent k (units 2^-k s). */
  private ifTsExp: number[] = [];
  /** Units per second as a bigint, for TS_BIGINT only. */
  private ifTsUnits: bigint[] = [];
  /** if_tsoffset in seconds. */
  private ifTsOffset: number[] = [];

  private constructor(buf: Uint8Array, name: string, format: number, littleEndian: boolean, nanosecond: boolean, start: number, snaplen: number, linkType: number) {
    this.buf = buf;
    this.name = name;
    this.format = format;
    this.littleEndian = littleEndian;
    this.nanosecond = nanosecond;
    this.pos = start;
    this.start = start;
    this.fileLinkType = linkType;
    this.snaplen = snaplen;
    this.linkType = linkType;
  }

  /**
   * Checks the file header (classic pcap) or the first Section Header Block
   * (pcapng) and returns a reader positioned before the first record.
   * @param bytes the whole capture file (a Buffer is fine; it is not copied)
   * @param name used in error messages
   * @throws PcapError for an unknown magic, an unsupported version or a truncated header
   */
  static open(bytes: Uint8Array, name = "<memory>"): PcapReader {
    const b = bytes;
    const n = b.length;
    if (n < 4) throw new PcapError(PCAP_ERR.TRUNCATED_HEADER, name, 0, -1, `file is ${n} bytes, too short for a pcap or pcapng header`);
    const m0 = b[0], m1 = b[1], m2 = b[2], m3 = b[3];
    if (m0 === 0x0a && m1 === 0x0d && m2 === 0x0d && m3 === 0x0a) {
      const r = new PcapReader(b, name, PCAP_FORMAT.PCAPNG, true, false, 0, 0, 0);
      r.pos = r.readShb(0, -1);
      r.start = r.pos;
      return r;
    }
    // Classic pcap: the magic as written in the writer's byte order tells both
    // the byte order and the timestamp precision.
    let le: boolean, ns: boolean;
    if (m0 === 0xd4 && m1 === 0xc3 && m2 === 0xb2 && m3 === 0xa1) { le = true; ns = false; }
    else if (m0 === 0xa1 && m1 === 0xb2 && m2 === 0xc3 && m3 === 0xd4) { le = false; ns = false; }
    else if (m0 === 0x4d && m1 === 0x3c && m2 === 0xb2 && m3 === 0xa1) { le = true; ns = true; }
    else if (m0 === 0xa1 && m1 === 0xb2 && m2 === 0x3c && m3 === 0x4d) { le = false; ns = true; }
    else {
      const hex = [m0, m1, m2, m3].map((x) => x.toString(16).padStart(2, "0")).join(" ");
      const modified = (m0 === 0x34 && m1 === 0xcd) || (m2 === 0xcd && m3 === 0x34) ? " (Kuznetzov modified pcap is not supported)" : "";
      throw new PcapError(PCAP_ERR.BAD_MAGIC, name, 0, -1, `bytes ${hex} are not a pcap or pcapng magic number${modified}`);
    }
    if (n < PCAP_HDR_LEN) {
      throw new PcapError(PCAP_ERR.TRUNCATED_HEADER, name, 0, -1, `file header is ${n} of ${PCAP_HDR_LEN} bytes (truncated file?)`);
    }
    const major = le ? b[4] | (b[5] << 8) : (b[4] << 8) | b[5];
    const minor = le ? b[6] | (b[7] << 8) : (b[6] << 8) | b[7];
    if (major !== 2) throw new PcapError(PCAP_ERR.BAD_VERSION, name, 0, -1, `pcap version ${major}.${minor}, expected 2.x`);
    const snaplen = le ? readLE32(b, 16) : readBE32(b, 16);
    // The top 6 bits of the link-type field carry FCS information (LT_LINKTYPE in libpcap).
    const link = (le ? readLE32(b, 20) : readBE32(b, 20)) & 0x03ffffff;
    return new PcapReader(b, name, PCAP_FORMAT.PCAP, le, ns, PCAP_HDR_LEN, snaplen, link);
  }

  /** Moves back before the first record (interfaces are re-read from the file). */
  rewind(): void {
    this.pos = this.start;
    this.index = -1;
    if (this.format === PCAP_FORMAT.PCAPNG) {
      // The first SHB sets the byte order again; its interface list starts empty.
      this.littleEndian = this.buf[8] === 0x4d;
      this.clearInterfaces();
      this.sections = 1;
    }
  }

  /**
   * Advances to the next packet record.
   * @returns false at a clean end of file (the last record or block ended exactly at the end)
   * @throws PcapError for a truncated or malformed record or block, naming its offset and index
   */
  next(): boolean {
    return this.format === PCAP_FORMAT.PCAP ? this.nextPcap() : this.nextPcapng();
  }

  /** The current record's timestamp in milliseconds since the epoch (float; exact to ~0.25 µs today). */
  timeMs(): number {
    return this.tsSec * 1000 + this.tsNsec / 1e6;
  }

  // ------------------------------------------------------------ classic pcap

  private nextPcap(): boolean {
    const b = this.buf, p = this.pos, rem = b.length - p;
    if (rem === 0) return false;
    const rec = this.index + 1;
    if (rem < PCAP_REC_HDR_LEN) {
      throw new PcapError(PCAP_ERR.TRUNCATED_HEADER, this.name, p, rec, `partial record header: ${rem} of ${PCAP_REC_HDR_LEN} bytes (truncated file?)`);
    }
    const le = this.littleEndian;
    const capLen = le ? readLE32(b, p + 8) : readBE32(b, p + 8);
    if (capLen > PCAP_MAX_CAPLEN) {
      throw new PcapError(PCAP_ERR.BAD_CAPLEN, this.name, p, rec, `caplen ${capLen} exceeds the ${PCAP_MAX_CAPLEN}-byte maximum (corrupt record header?)`);
    }
    if (capLen > rem - PCAP_REC_HDR_LEN) {
      throw new PcapError(PCAP_ERR.TRUNCATED_RECORD, this.name, p, rec, `caplen ${capLen} exceeds the ${rem - PCAP_REC_HDR_LEN} bytes remaining (truncated file?)`);
    }
    const frac = le ? readLE32(b, p + 4) : readBE32(b, p + 4);
    this.tsSec = le ? readLE32(b, p) : readBE32(b, p);
    this.tsNsec = this.nanosecond ? frac : frac * 1000;
    this.origLen = le ? readLE32(b, p + 12) : readBE32(b, p + 12);
    this.capLen = capLen;
    this.recordOffset = p;
    this.dataOffset = p + PCAP_REC_HDR_LEN;
    this.pos = p + PCAP_REC_HDR_LEN + capLen;
    this.index = rec;
    this.decodeLink(this.fileLinkType, this.dataOffset, capLen);
    return true;
  }

  // ------------------------------------------------------------ pcapng

  private nextPcapng(): boolean {
    const b = this.buf, n = b.length;
    for (;;) {
      const p = this.pos, rem = n - p;
      if (rem === 0) return false;
      const rec = this.index + 1;
      if (rem < BLOCK_OVERHEAD) {
        throw new PcapError(PCAP_ERR.TRUNCATED_HEADER, this.name, p, rec, `partial block header: ${rem} of ${BLOCK_OVERHEAD} bytes (truncated file?)`);
      }
      // Checked before reading the length: a new section may switch byte order.
      if (b[p] === 0x0a && b[p + 1] === 0x0d && b[p + 2] === 0x0d && b[p + 3] === 0x0a) {
        this.pos = this.readShb(p, rec);
        this.sections++;
        continue;
      }
      const type = this.u32(p);
      const len = this.blockLength(p, rem, rec, type, BLOCK_OVERHEAD);
      // `pos` moves only once a block is fully accepted, so a throw leaves the cursor on it.
      switch (type) {
        case BT_IDB:
          this.readIdb(p, len, rec);
          this.pos = p + len;
          break;
        case BT_EPB:
          this.readEpb(p, len, rec, this.u32(p + 8), "enhanced packet block");
          this.pos = p + len;
          return true;
        case BT_PB:
          this.readEpb(p, len, rec, this.u16(p + 8), "packet block");
          this.pos = p + len;
          return true;
        case BT_SPB:
          this.readSpb(p, len, rec);
          this.pos = p + len;
          return true;
        default:
          this.pos = p + len; // ISB, NRB, DSB, custom, ...: not ours, skipped whole.
          break;
      }
    }
  }

  /**
   * Validates a block's length fields; `rem` ≥ 12 bytes are known to be there.
   * @returns the total block length
   */
  private blockLength(p: number, rem: number, rec: number, type: number, min: number): number {
    const len = this.u32(p + 4);
    const what = blockName(type);
    if (len < min || (len & 3) !== 0) {
      throw new PcapError(PCAP_ERR.BAD_BLOCK_LENGTH, this.name, p, rec, `${what}: block length ${len} is ${len < min ? `below the minimum ${min}` : "not a multiple of 4"}`);
    }
    if (len > rem) {
      throw new PcapError(PCAP_ERR.TRUNCATED_RECORD, this.name, p, rec, `${what}: block length ${len} exceeds the ${rem} bytes remaining (truncated file?)`);
    }
    const trailer = this.u32(p + len - 4);
    if (trailer !== len) {
      throw new PcapError(PCAP_ERR.BLOCK_TRAILER, this.name, p, rec, `${what}: trailing block length ${trailer} differs from ${len}`);
    }
    return len;
  }

  /** Reads a Section Header Block at `p` (≥ 12 bytes known present), sets the byte order, forgets interfaces; returns the offset after it. */
  private readShb(p: number, rec: number): number {
    const b = this.buf, rem = b.length - p;
    if (rem < BLOCK_OVERHEAD) {
      throw new PcapError(PCAP_ERR.TRUNCATED_HEADER, this.name, p, rec, `section header block: ${rem} of ${BLOCK_OVERHEAD} bytes (truncated file?)`);
    }
    const m = p + 8;
    if (b[m] === 0x4d && b[m + 1] === 0x3c && b[m + 2] === 0x2b && b[m + 3] === 0x1a) this.littleEndian = true;
    else if (b[m] === 0x1a && b[m + 1] === 0x2b && b[m + 2] === 0x3c && b[m + 3] === 0x4d) this.littleEndian = false;
    else throw new PcapError(PCAP_ERR.BAD_MAGIC, this.name, p, rec, "section header block: byte-order magic is not 1a2b3c4d in either byte order");
    const len = this.blockLength(p, rem, rec, BT_SHB, SHB_MIN);
    const major = this.u16(p + 12);
    if (major !== 1) {
      throw new PcapError(PCAP_ERR.BAD_VERSION, this.name, p, rec, `section header block: pcapng version ${major}.${this.u16(p + 14)}, expected 1.x`);
    }
    this.clearInterfaces();
    return p + len;
  }

  private clearInterfaces(): void {
    this.ifLinkType.length = 0;
    this.ifSnaplen.length = 0;
    this.ifName.length = 0;
    this.ifTsMode.length = 0;
    this.ifTsExp.length = 0;
    this.ifTsUnits.length = 0;
    this.ifTsOffset.length = 0;
  }

  /** Reads an Interface Description Block (length already validated) and appends the interface. */
  private readIdb(p: number, len: number, rec: number): void {
    if (len < IDB_MIN) {
      throw new PcapError(PCAP_ERR.BAD_BLOCK_LENGTH, this.name, p, rec, `interface description block: block length ${len} is below the minimum ${IDB_MIN}`);
    }
    const linkType = this.u16(p + 8);
    const snaplen = this.u32(p + 12);
    let exp = 6, pow2 = false, tsOffset = 0, name = "";
    const end = p + len - 4;
    let o = p + 16;
    while (o + 4 <= end) {
      const code = this.u16(o), olen = this.u16(o + 2);
      if (code === OPT_ENDOFOPT) break;
      const v = o + 4;
      if (v + olen > end) {
        throw new PcapError(PCAP_ERR.BAD_OPTION, this.name, p, rec, `interface description block: option ${code} of ${olen} bytes at byte ${o} overruns the block`);
      }
      switch (code) {
        case IF_NAME: {
          let e = v + olen;
          while (e > v && this.buf[e - 1] === 0) e--; // some writers NUL-terminate
          name = UTF8.decode(this.buf.subarray(v, e));
          break;
        }
        case IF_TSRESOL: {
          if (olen !== 1) throw new PcapError(PCAP_ERR.BAD_OPTION, this.name, p, rec, `interface description block: if_tsresol has length ${olen}, expected 1`);
          const r = this.buf[v];
          // High bit set: units of 2^-k s; clear: 10^-k s.
          pow2 = (r & 0x80) !== 0;
          exp = r & 0x7f;
          break;
        }
        case IF_TSOFFSET: {
          if (olen !== 8) throw new PcapError(PCAP_ERR.BAD_OPTION, this.name, p, rec, `interface description block: if_tsoffset has length ${olen}, expected 8`);
          // Signed 64-bit seconds; as a double it is exact up to 2^53.
          const lo = this.u32(this.littleEndian ? v : v + 4);
          const hi = this.u32(this.littleEndian ? v + 4 : v);
          tsOffset = (hi | 0) * TWO32 + lo;
          break;
        }
        default:
          break;
      }
      o = v + ((olen + 3) & ~3);
    }
    this.ifLinkType.push(linkType);
    this.ifSnaplen.push(snaplen);
    this.ifName.push(name);
    this.ifTsOffset.push(tsOffset);
    this.ifTsExp.push(exp);
    if (!pow2 && exp <= 9) {
      this.ifTsMode.push(TS_POW10);
      this.ifTsUnits.push(0n);
    } else if (pow2 && exp <= 32) {
      this.ifTsMode.push(TS_POW2);
      this.ifTsUnits.push(0n);
    } else {
      this.ifTsMode.push(TS_BIGINT);
      this.ifTsUnits.push(pow2 ? 1n << BigInt(exp) : 10n ** BigInt(exp));
    }
  }

  /** Enhanced Packet Block (6) or obsolete Packet Block (2): same layout after the interface ID's width. */
  private readEpb(p: number, len: number, rec: number, iface: number, what: string): void {
    if (len < EPB_MIN) {
      throw new PcapError(PCAP_ERR.BAD_BLOCK_LENGTH, this.name, p, rec, `${what}: block length ${len} is below the minimum ${EPB_MIN}`);
    }
    this.setInterface(p, rec, iface, what);
    const capLen = this.u32(p + 20);
    const room = len - EPB_MIN;
    if (capLen > PCAP_MAX_CAPLEN || capLen > room) {
      throw new PcapError(PCAP_ERR.BAD_CAPLEN, this.name, p, rec, `${what}: caplen ${capLen} exceeds ${capLen > PCAP_MAX_CAPLEN ? `the ${PCAP_MAX_CAPLEN}-byte maximum` : `the block's ${room} bytes of packet data`}`);
    }
    this.setPcapngTime(iface, this.u32(p + 12), this.u32(p + 16));
    this.origLen = this.u32(p + 24);
    this.capLen = capLen;
    this.recordOffset = p;
    this.dataOffset = p + 28;
    this.index = rec;
    this.decodeLink(this.linkType, this.dataOffset, capLen);
  }

  /** Simple Packet Block (3): interface 0, no timestamp, captured length implied by the block and the snap length. */
  private readSpb(p: number, len: number, rec: number): void {
    if (len < SPB_MIN) {
      throw new PcapError(PCAP_ERR.BAD_BLOCK_LENGTH, this.name, p, rec, `simple packet block: block length ${len} is below the minimum ${SPB_MIN}`);
    }
    this.setInterface(p, rec, 0, "simple packet block");
    const origLen = this.u32(p + 8);
    let capLen = len - SPB_MIN;
    if (origLen < capLen) capLen = origLen; // the rest is padding
    if (this.snaplen !== 0 && this.snaplen < capLen) capLen = this.snaplen;
    if (capLen > PCAP_MAX_CAPLEN) {
      throw new PcapError(PCAP_ERR.BAD_CAPLEN, this.name, p, rec, `simple packet block: caplen ${capLen} exceeds the ${PCAP_MAX_CAPLEN}-byte maximum`);
    }
    this.tsSec = 0;
    this.tsNsec = 0;
    this.origLen = origLen;
    this.capLen = capLen;
    this.recordOffset = p;
    this.dataOffset = p + 12;
    this.index = rec;
    this.decodeLink(this.linkType, this.dataOffset, capLen);
  }

  private setInterface(p: number, rec: number, iface: number, what: string): void {
    if (iface >= this.ifLinkType.length) {
      throw new PcapError(PCAP_ERR.BAD_INTERFACE, this.name, p, rec, `${what}: interface ${iface} is not declared (the section has ${this.ifLinkType.length} interface description blocks)`);
    }
    this.interfaceId = iface;
    this.linkType = this.ifLinkType[iface];
    this.snaplen = this.ifSnaplen[iface];
    this.interfaceName = this.ifName[iface];
  }

  /**
   * Splits a 64-bit pcapng timestamp (hi:lo, in the interface's units) into
   * tsSec + tsNsec without a bigint for the usual units. Fractions are
   * truncated, as libpcap does, so results equal `tcpdump -tt` output.
   */
  private setPcapngTime(iface: number, hi: number, lo: number): void {
    const exp = this.ifTsExp[iface];
    let sec: number, nsec: number;
    switch (this.ifTsMode[iface]) {
      case TS_POW10: {
        // Long division by d = 10^k ≤ 10^9 < 2^30 in base-2^16 digits keeps
        // every intermediate below 2^46, exact in a double; nanosecond
        // timestamps (≈1.8e18) are far past 2^53, so plain division would not do.
        const d = POW10[exp];
        let r = 0, q = 0, cur = 0, qd = 0;
        cur = hi >>> 16; qd = Math.floor(cur / d); r = cur - qd * d; q = qd;
        cur = r * 65536 + (hi & 0xffff); qd = Math.floor(cur / d); r = cur - qd * d; q = q * 65536 + qd;
        cur = r * 65536 + (lo >>> 16); qd = Math.floor(cur / d); r = cur - qd * d; q = q * 65536 + qd;
        cur = r * 65536 + (lo & 0xffff); qd = Math.floor(cur / d); r = cur - qd * d; q = q * 65536 + qd;
        sec = q;
        nsec = r * POW10[9 - exp];
        break;
      }
      case TS_POW2: {
        // k ≤ 32: the fraction is the low k bits of `lo`.
        const div = POW2[exp];
        sec = hi * POW2[32 - exp] + Math.floor(lo / div);
        const frac = lo - Math.floor(lo / div) * div;
        // floor(frac · 10^9 / 2^k); 10^9 = 1953125 · 2^9 keeps frac · 1953125 < 2^53.
        nsec = exp >= 9 ? Math.floor((frac * 1953125) / POW2[exp - 9]) : Math.floor((frac * 1e9) / div);
        break;
      }
      default: {
        // Units finer than 1 ns or 2^-32 s: rare enough to pay for a bigint.
        const units = this.ifTsUnits[iface];
        const t = (BigInt(hi) << 32n) | BigInt(lo);
        sec = Number(t / units);
        nsec = Number(((t % units) * 1_000_000_000n) / units);
        break;
      }
    }
    this.tsSec = sec + this.ifTsOffset[iface];
    this.tsNsec = nsec;
  }

  // ------------------------------------------------------------ link layer

  /**
   * Finds the IP packet inside `buf[off, off+len)` for `linkType` and sets the
   * l3 and link-layer fields. Every read stays inside the captured bytes: a
   * link-layer header cut short by the snap length gives l3Kind 0.
   */
  private decodeLink(linkType: number, off: number, len: number): void {
    const b = this.buf, end = off + len;
    let kind: L3Kind = 0, l3 = end, type = -1;
    this.vlanId = -1;
    this.vlanDepth = 0;
    this.pktType = -1;
    this.ifIndex = -1;
    switch (linkType) {
      case LINKTYPE.ETHERNET:
        if (len >= ETH_HLEN) {
          type = (b[off + 12] << 8) | b[off + 13];
          l3 = this.skipVlanTags(off + ETH_HLEN, end, type);
          type = this.etherType;
        }
        break;
      case LINKTYPE.LINUX_SLL:
        if (len >= SLL_HLEN) {
          this.pktType = (b[off] << 8) | b[off + 1];
          type = (b[off + 14] << 8) | b[off + 15];
          // libpcap re-inserts VLAN tags into SLL v1 at the protocol field, as for Ethernet.
          l3 = this.skipVlanTags(off + SLL_HLEN, end, type);
          type = this.etherType;
        }
        break;
      case LINKTYPE.LINUX_SLL2:
        if (len >= SLL2_HLEN) {
          type = (b[off] << 8) | b[off + 1];
          this.ifIndex = readBE32(b, off + 4);
          this.pktType = b[off + 10];
          l3 = off + SLL2_HLEN;
        }
        break;
      case LINKTYPE.RAW:
      case LINKTYPE.RAW_DLT12:
      case LINKTYPE.RAW_DLT14:
        l3 = off;
        if (len > 0) {
          const v = b[off] >> 4;
          kind = v === 4 ? 4 : v === 6 ? 6 : 0;
        }
        break;
      case LINKTYPE.IPV4:
        l3 = off;
        kind = 4;
        break;
      case LINKTYPE.IPV6:
        l3 = off;
        kind = 6;
        break;
      case LINKTYPE.NULL:
      case LINKTYPE.LOOP:
        if (len >= 4) {
          let fam = readBE32(b, off);
          // NULL is in the writing host's order; like tcpdump, a family with
          // high bits set must be the other order. LOOP is always big-endian.
          if (linkType === LINKTYPE.NULL && (fam & 0xffff0000) !== 0) fam = readLE32(b, off);
          l3 = off + 4;
          if (fam === BSD_AF_INET) kind = 4;
          else if (fam === BSD_AF_INET6_BSD || fam === BSD_AF_INET6_FREEBSD || fam === BSD_AF_INET6_DARWIN) kind = 6;
        }
        break;
      default:
        break;
    }
    if (type === ETH_P_IP) kind = 4;
    else if (type === ETH_P_IPV6) kind = 6;
    this.etherType = type;
    this.l3Offset = l3;
    this.l3Length = end - l3;
    this.l3Kind = this.l3Length === 0 ? 0 : kind;
  }

  /**
   * Skips 802.1Q/802.1ad tags (possibly stacked) that follow an EtherType
   * field; `p` is where the payload would start. Leaves the innermost
   * EtherType in `this.etherType` and returns the payload offset. A tag cut
   * short leaves the VLAN TPID as the EtherType (so l3Kind becomes 0).
   */
  private skipVlanTags(p: number, end: number, type: number): number {
    const b = this.buf;
    while ((type === ETH_P_8021Q || type === ETH_P_8021AD || type === ETH_P_QINQ1) && p + 4 <= end) {
      if (this.vlanDepth === 0) this.vlanId = ((b[p] & 0x0f) << 8) | b[p + 1];
      this.vlanDepth++;
      type = (b[p + 2] << 8) | b[p + 3];
      p += 4;
    }
    this.etherType = type;
    return p;
  }

  // ------------------------------------------------------------ byte order

  private u32(o: number): number {
    return this.littleEndian ? readLE32(this.buf, o) : readBE32(this.buf, o);
  }
  private u16(o: number): number {
    const b = this.buf;
    return this.littleEndian ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1];
  }
}

const POW10 = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const POW2: number[] = [];
for (let k = 0; k <= 32; k++) POW2.push(2 ** k);

function readLE32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
function readBE32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function blockName(type: number): string {
  switch (type) {
    case BT_SHB: return "section header block";
    case BT_IDB: return "interface description block";
    case BT_PB: return "packet block";
    case BT_SPB: return "simple packet block";
    case BT_EPB: return "enhanced packet block";
    default: return `block type 0x${type.toString(16)}`;
  }
}

/**
 * Reads a whole capture file and opens a reader on it.
 * @throws PcapError (code IO) when the file cannot be read, or as {@link PcapReader.open}
 */
export function readPcapFile(path: string): PcapReader {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new PcapError(PCAP_ERR.IO, path, -1, -1, `cannot read: ${(e as Error).message}`, { cause: e });
  }
  return PcapReader.open(bytes, path);
}

// ------------------------------------------------------------ writer

/** Bytes buffered before a file-backed writer calls write(2). */
const WRITER_CHUNK = 65536;

/**
 * Writes a classic pcap file: little-endian, version 2.4, microsecond magic
 * a1b2c3d4 or nanosecond magic a1b23c4d. Records accumulate in one growing
 * buffer (`toBytes()`), or, for a writer from {@link PcapWriter.create},
 * in a 64 KiB chunk flushed with `fs.writeSync` when full and on `close()`.
 * Packets longer than the snap length are cut to it (origLen keeps the
 * full length), as a capture would.
 */
export class PcapWriter {
  /** LINKTYPE written in the header ({@link LINKTYPE}.RAW: records are IP packets). */
  readonly linkType: number;
  /** Longest captured length written. */
  readonly snaplen: number;
  /** Nanosecond timestamps (magic a1b23c4d) instead of microseconds. */
  readonly nanosecond: boolean;
  /** Records written so far. */
  count = 0;
  /** File name for error messages (`<memory>` for an in-memory writer). */
  readonly name: string;

  private chunk: Uint8Array;
  private used = 0;
  private fd: number;
  /** Set by {@link PcapWriter.create}: `close()` closes the descriptor. */
  private ownsFd = false;
  private closed = false;

  /**
   * An in-memory writer, or one that streams to an open file descriptor
   * (`fd`; the caller keeps ownership of it, `close()` does not close it).
   * @param linkType LINKTYPE for the header; RAW by default
   * @param snaplen 1..{@link PCAP_MAX_CAPLEN}
   * @throws PcapError (BAD_ARGUMENT) for an out-of-range snaplen or link type
   */
  constructor(linkType: number = LINKTYPE.RAW, snaplen = 65535, nanosecond = false, fd = -1, name = "<memory>") {
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > PCAP_MAX_CAPLEN) {
      throw new PcapError(PCAP_ERR.BAD_ARGUMENT, name, -1, -1, `snaplen ${snaplen} is not in 1..${PCAP_MAX_CAPLEN}`);
    }
    if (!Number.isInteger(linkType) || linkType < 0 || linkType > 0x03ffffff) {
      throw new PcapError(PCAP_ERR.BAD_ARGUMENT, name, -1, -1, `link type ${linkType} is not a LINKTYPE value`);
    }
    this.linkType = linkType;
    this.snaplen = snaplen;
    this.nanosecond = nanosecond;
    this.fd = fd;
    this.name = name;
    // A chunk always holds at least one whole record, so a record is never split across flushes.
    this.chunk = new Uint8Array(Math.max(WRITER_CHUNK, PCAP_REC_HDR_LEN + snaplen));
    const c = this.chunk;
    writeLE32(c, 0, nanosecond ? 0xa1b23c4d : 0xa1b2c3d4);
    c[4] = 2; c[5] = 0; // version 2.4
    c[6] = 4; c[7] = 0;
    // thiszone and sigfigs stay 0, as every modern writer leaves them.
    writeLE32(c, 16, snaplen);
    writeLE32(c, 20, linkType);
    this.used = PCAP_HDR_LEN;
  }

  /**
   * Creates (or truncates) `path` and returns a writer streaming to it; `close()` closes the file.
   * @throws PcapError (IO) when the file cannot be opened
   */
  static create(path: string, linkType: number = LINKTYPE.RAW, snaplen = 65535, nanosecond = false): PcapWriter {
    let fd: number;
    try {
      fd = openSync(path, "w");
    } catch (e) {
      throw new PcapError(PCAP_ERR.IO, path, -1, -1, `cannot open for writing: ${(e as Error).message}`, { cause: e });
    }
    const w = new PcapWriter(linkType, snaplen, nanosecond, fd, path);
    w.ownsFd = true;
    return w;
  }

  /**
   * Appends one record holding `buf[off, off+len)` (cut to the snap length).
   * @param tsSec whole seconds since the epoch, 0..2^32-1
   * @param tsNsec nanoseconds 0..999999999 (truncated to µs in a microsecond file)
   * @param origLen length on the wire, ≥ len; defaults to len
   * @throws PcapError BAD_ARGUMENT for out-of-range arguments, WRITER_STATE after close(), IO on a failed write
   */
  write(buf: Uint8Array, off: number, len: number, tsSec: number, tsNsec = 0, origLen = len): void {
    if (this.closed) throw new PcapError(PCAP_ERR.WRITER_STATE, this.name, -1, -1, "write after close()");
    if (!(off >= 0 && len >= 0 && off + len <= buf.length && Number.isInteger(off) && Number.isInteger(len))) {
      throw new PcapError(PCAP_ERR.BAD_ARGUMENT, this.name, -1, -1, `bytes [${off}, ${off + len}) are outside the ${buf.length}-byte buffer`);
    }
    if (!(Number.isInteger(tsSec) && tsSec >= 0 && tsSec <= 0xffffffff && Number.isInteger(tsNsec) && tsNsec >= 0 && tsNsec < 1e9)) {
      throw new PcapError(PCAP_ERR.BAD_ARGUMENT, this.name, -1, -1, `timestamp ${tsSec} s ${tsNsec} ns is not a 32-bit second count and a nanosecond in 0..999999999`);
    }
    if (!(Number.isInteger(origLen) && origLen >= len && origLen <= 0xffffffff)) {
      throw new PcapError(PCAP_ERR.BAD_ARGUMENT, this.name, -1, -1, `original length ${origLen} is below the ${len} bytes given`);
    }
    const capLen = len < this.snaplen ? len : this.snaplen;
    this.reserve(PCAP_REC_HDR_LEN + capLen);
    const c = this.chunk;
    let p = this.used;
    writeLE32(c, p, tsSec);
    writeLE32(c, p + 4, this.nanosecond ? tsNsec : Math.floor(tsNsec / 1000));
    writeLE32(c, p + 8, capLen);
    writeLE32(c, p + 12, origLen);
    p += PCAP_REC_HDR_LEN;
    // A byte loop rather than set(subarray()): no view object per record.
    for (let i = 0; i < capLen; i++) c[p + i] = buf[off + i];
    this.used = p + capLen;
    this.count++;
  }

  /**
   * {@link PcapWriter.write} with the timestamp in float milliseconds since
   * the epoch, as {@link PcapReader.timeMs} returns it (rounded to the nearest
   * microsecond first, since a double in ms cannot carry whole nanoseconds).
   */
  writeMs(buf: Uint8Array, off: number, len: number, timeMs: number, origLen = len): void {
    const us = Math.round(timeMs * 1000);
    const sec = Math.floor(us / 1e6);
    this.write(buf, off, len, sec, (us - sec * 1e6) * 1000, origLen);
  }

  /**
   * A copy of the file written so far (header and all records).
   * @throws PcapError WRITER_STATE for a writer streaming to a file
   */
  toBytes(): Uint8Array {
    if (this.fd >= 0) throw new PcapError(PCAP_ERR.WRITER_STATE, this.name, -1, -1, "toBytes() on a writer that streams to a file");
    return this.chunk.slice(0, this.used);
  }

  /** Writes buffered records to the file (no-op for an in-memory writer). */
  flush(): void {
    if (this.fd < 0 || this.used === 0) return;
    let done = 0;
    try {
      while (done < this.used) done += writeSync(this.fd, this.chunk, done, this.used - done);
    } catch (e) {
      throw new PcapError(PCAP_ERR.IO, this.name, -1, -1, `write failed: ${(e as Error).message}`, { cause: e });
    }
    this.used = 0;
  }

  /** Flushes, closes the file if {@link PcapWriter.create} opened it, and refuses further writes. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.ownsFd) {
      try {
        closeSync(this.fd);
      } catch (e) {
        throw new PcapError(PCAP_ERR.IO, this.name, -1, -1, `close failed: ${(e as Error).message}`, { cause: e });
      }
    }
  }

  /** Makes room for `n` more bytes: flush to the file, or grow the in-memory buffer by doubling. */
  private reserve(n: number): void {
    if (this.used + n <= this.chunk.length) return;
    if (this.fd >= 0) {
      this.flush();
      return; // the chunk holds at least one maximal record
    }
    let size = this.chunk.length * 2;
    while (size < this.used + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.chunk.subarray(0, this.used));
    this.chunk = next;
  }
}

function writeLE32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff; b[o + 1] = (v >>> 8) & 0xff; b[o + 2] = (v >>> 16) & 0xff; b[o + 3] = (v >>> 24) & 0xff;
}
