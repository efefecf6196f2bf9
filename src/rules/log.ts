/**
 * The LOG target: its options as iptables 1.8.9 parses them (libxt_LOG.c,
 * libxtables' XTTYPE_SYSLOGLEVEL), their `iptables-save` form, and the line
 * the kernel would print for a packet (net/netfilter/nf_log_syslog.c,
 * kernel 6.18), with the same fields as an object for the JSON log.
 *
 * The line is the kernel's message text exactly, trailing space included:
 *
 *   PREFIX IN=eth0 OUT= MAC=dd:dd:dd:dd:dd:dd:ss:ss:ss:ss:ss:ss:08:00 SRC=10.0.0.1 DST=10.0.0.2
 *   LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240
 *   RES=0x00 SYN URGP=0 MARK=0x2a␠
 *
 * (one line; the syslog priority is `level`, not part of the text). It is
 * checked against the real kernel's lines in test/rules/log.test.ts.
 *
 * What the formatter needs beyond the packet bytes: the interface names
 * (IN= is empty for locally generated packets, OUT= before routing), the
 * link-layer header for MAC= (only printed when there is an input
 * interface; a device without one, such as TUN, prints `MAC= `), the mark,
 * and for `--log-uid` the owner of a local socket. Not reproduced:
 * PHYSIN=/PHYSOUT= (bridges), VPROTO=/VID= (hardware VLAN tags), TUNNEL= (sit
 * devices).
 *
 * Allocation: formatting builds strings and an object; LOG is configuration
 * -driven and rate-limited by rules in practice, so this is off the hot path.
 */

/** Logging flags, with the kernel's values (XT_LOG_* in xt_LOG.h). */
export const LOG_FLAG = {
  TCPSEQ: 0x01,
  TCPOPT: 0x02,
  IPOPT: 0x04,
  UID: 0x08,
  MACDECODE: 0x20,
} as const;

/** Syslog levels by number (0 emerg .. 7 debug), as iptables names them in `-L` output. */
export const LOG_LEVEL_NAMES = ["emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"] as const;

/** LOG_DEFAULT_LEVEL in libxt_LOG.c: warning. */
export const LOG_DEFAULT_LEVEL = 4;
/** struct xt_log_info's prefix[30]: iptables keeps at most 29 bytes and drops the rest silently. */
export const LOG_PREFIX_MAX = 29;

/** A LOG target's compiled options. */
export interface LogOptions {
  /** The prefix as the kernel prints it (at most 29 bytes of UTF-8). */
  prefix: string;
  /** Syslog level 0..7. */
  level: number;
  /** {@link LOG_FLAG} bits. */
  flags: number;
}

/** An option as the rule parser hands it over (structurally ast.ts's OptionNode). */
export interface TargetOption {
  name: string;
  args: readonly string[];
}

/** A target option iptables would refuse; `optionIndex` points at the offending option in the list given. */
export class TargetOptionError extends Error {
  readonly optionIndex: number;
  constructor(optionIndex: number, message: string) {
    super(message);
    this.name = "TargetOptionError";
    this.optionIndex = optionIndex;
  }
}

/** libxtables' xtopt_sysloglvl table (looked up with strcmp: case-sensitive, no "err", no "warn"). */
const SYSLOG_NAMES: Readonly<Record<string, number>> = {
  alert: 1, crit: 2, debug: 7, emerg: 0, error: 3, info: 6, notice: 5, panic: 0, warning: 4,
};

/**
 * An unsigned integer as libxtables' xtables_strtoul_base(…, base 0) reads
 * it: leading white space, an optional `+` (a `-` is refused), 0x… hex,
 * 0… octal, else decimal, nothing after it, within [0, max]. Undefined
 * when the text is not such a number.
 */
export function parseXtUint(text: string, max: number): number | undefined {
  const m = /^[ \t\n\v\f\r]*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (m === null) return undefined;
  const digits = m[1]!;
  const v = /^0[xX]/.test(digits) ? parseInt(digits.slice(2), 16) : digits.length > 1 && digits[0] === "0" ? parseInt(digits, 8) : parseInt(digits, 10);
  return v <= max ? v : undefined;
}

/** `--log-level`: a number 0..7 or a level name. @throws Error as iptables words it */
export function parseLogLevel(text: string): number {
  const n = parseXtUint(text, 7);
  if (n !== undefined) return n;
  const v = SYSLOG_NAMES[text];
  if (v === undefined || !Object.prototype.hasOwnProperty.call(SYSLOG_NAMES, text)) {
    throw new Error(`log level "${text}" unknown (use 0..7 or ${Object.keys(SYSLOG_NAMES).join(", ")})`);
  }
  return v;
}

/**
 * A prefix option (XTTYPE_STRING with .min = 1, stored in a char[size]):
 * refused when empty or holding a newline, cut to `maxBytes` bytes of UTF-8
 * otherwise, as iptables stores it.
 * @throws Error as iptables words it
 */
export function parsePrefix(text: string, maxBytes: number, option = "--log-prefix"): string {
  if (text.length === 0) throw new Error(`${option}: Argument must have a minimum length of 1 characters`);
  // libxt_NFLOG.c words its check with --log-prefix too.
  if (text.includes("\n")) throw new Error("Newlines not allowed in --log-prefix");
  const bytes = UTF8_ENC.encode(text);
  if (bytes.length <= maxBytes) return text;
  // strncpy into the struct: the bytes are cut where they are cut, even inside a character.
  return UTF8_DEC.decode(bytes.subarray(0, maxBytes));
}

const UTF8_ENC = new TextEncoder();
const UTF8_DEC = new TextDecoder("utf-8");

/**
 * Compiles a LOG target's options.
 * @throws TargetOptionError naming the option (a bad level, an empty prefix, an option given twice)
 */
export function parseLogOptions(options: readonly TargetOption[]): LogOptions {
  const o: LogOptions = { prefix: "", level: LOG_DEFAULT_LEVEL, flags: 0 };
  const seen = new Set<string>();
  options.forEach((opt, i) => {
    if (seen.has(opt.name)) throw new TargetOptionError(i, `LOG: option "${opt.name}" can only be used once.`);
    seen.add(opt.name);
    try {
      switch (opt.name) {
        case "--log-level": o.level = parseLogLevel(opt.args[0] ?? ""); break;
        case "--log-prefix": o.prefix = parsePrefix(opt.args[0] ?? "", LOG_PREFIX_MAX); break;
        case "--log-tcp-sequence": o.flags |= LOG_FLAG.TCPSEQ; break;
        case "--log-tcp-options": o.flags |= LOG_FLAG.TCPOPT; break;
        case "--log-ip-options": o.flags |= LOG_FLAG.IPOPT; break;
        case "--log-uid": o.flags |= LOG_FLAG.UID; break;
        case "--log-macdecode": o.flags |= LOG_FLAG.MACDECODE; break;
        default: throw new Error(`LOG: unknown option "${opt.name}"`);
      }
    } catch (e) {
      if (e instanceof TargetOptionError) throw e;
      throw new TargetOptionError(i, (e as Error).message);
    }
  });
  return o;
}

/**
 * A string argument as `iptables-save` prints it (xtables_save_string): bare
 * when it is only `[A-Za-z0-9_-]`, else in double quotes with `"`, `\` and
 * `'` backslash-escaped. Starts with a space, as the save functions print it.
 */
export function xtablesSaveString(value: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(value)) return ` ${value}`;
  return ` "${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/** The options as `iptables-save` prints them after `-j LOG` (LOG_save), each with its leading space. */
export function saveLogOptions(o: LogOptions): string {
  let s = "";
  if (o.prefix !== "") s += ` --log-prefix${xtablesSaveString(o.prefix)}`;
  if (o.level !== LOG_DEFAULT_LEVEL) s += ` --log-level ${o.level}`;
  if (o.flags & LOG_FLAG.TCPSEQ) s += " --log-tcp-sequence";
  if (o.flags & LOG_FLAG.TCPOPT) s += " --log-tcp-options";
  if (o.flags & LOG_FLAG.IPOPT) s += " --log-ip-options";
  if (o.flags & LOG_FLAG.UID) s += " --log-uid";
  if (o.flags & LOG_FLAG.MACDECODE) s += " --log-macdecode";
  return s;
}

// ---------------------------------------------------------------- formatting

/** ARPHRD_* device types that change how the link-layer header is printed. */
export const ARPHRD = { ETHER: 1, LOOPBACK: 772, NONE: 0xfffe } as const;

/** The link-layer header of a packet that came in on an interface (skb_mac_header .. network header). */
export interface LogMac {
  buf: Uint8Array;
  off: number;
  /** The device's hard_header_len bytes (14 for Ethernet and loopback); 0: no link-layer header (TUN). */
  len: number;
  /** The device type (ARPHRD.*): `--log-macdecode` decodes only Ethernet. Default ARPHRD.ETHER. */
  hwType?: number;
}

/** The packet's bytes: what `formatLog` reads of the pipeline's Packet. */
export interface LogPacket {
  buf: Uint8Array;
  /** Offset of the IP header. */
  off: number;
  /** The datagram's length (skb->len after ip_rcv trimmed it); 0: to the end of `buf`. */
  length: number;
}

/** What `formatLog` returns: the kernel's line and the same facts as an object. */
export interface LogRecord {
  line: string;
  fields: Record<string, unknown>;
}

/** The socket owner of a locally generated packet, for `--log-uid` (nf_log_dump_sk_uid_gid). */
export interface LogOwner {
  uid: number;
  gid: number;
}

const ICMP_REQUIRED_LEN: readonly number[] = [4, 0, 0, 28, 28, 28, 0, 0, 4, 0, 0, 28, 28, 20, 20, 0, 0, 12, 12];

/** Appends to the line and the fields together. */
class Out {
  line = "";
  constructor(readonly fields: Record<string, unknown>) {}
  add(text: string): void {
    this.line += text;
  }
}

const hex2 = (v: number): string => (v < 16 ? "0" : "") + v.toString(16);
const HEX2U = (v: number): string => hex2(v).toUpperCase();

function ipv4Text(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** %pI6: eight groups of four lower-case hex digits, never compressed. */
function ipv6Text(b: Uint8Array, o: number): string {
  let s = "";
  for (let i = 0; i < 16; i += 2) {
    if (i) s += ":";
    s += hex2(b[o + i]!) + hex2(b[o + i + 1]!);
  }
  return s;
}

function macText(b: Uint8Array, o: number): string {
  let s = "";
  for (let i = 0; i < 6; i++) s += (i ? ":" : "") + hex2(b[o + i]!);
  return s;
}

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/**
 * Formats a packet as the kernel's LOG target prints it.
 * @param pkt the packet (the pipeline's Packet fits: buf, off, length)
 * @param inName input interface name, "" for none (locally generated)
 * @param outName output interface name, "" when not known yet
 * @param mac the link-layer header, or null (printed as `MAC= ` when there is an input interface)
 * @param mark the packet's mark (printed when non-zero)
 * @param owner the local socket's owner, or null (nothing printed for `--log-uid`)
 */
export function formatLog(
  opts: LogOptions,
  pkt: LogPacket,
  inName: string,
  outName: string,
  mac: LogMac | null,
  mark: number,
  owner: LogOwner | null = null,
): LogRecord {
  const fields: Record<string, unknown> = {
    prefix: opts.prefix,
    level: opts.level,
    levelName: LOG_LEVEL_NAMES[opts.level] ?? String(opts.level),
    in: inName,
    out: outName,
  };
  const w = new Out(fields);
  // nf_log_dump_packet_common()
  w.add(`${opts.prefix}IN=${inName} OUT=${outName} `);
  if (inName !== "") dumpMac(w, opts.flags, mac);
  const b = pkt.buf;
  const end = pkt.length > 0 ? Math.min(pkt.off + pkt.length, b.length) : b.length;
  const version = pkt.off < end ? b[pkt.off]! >> 4 : 0;
  const ctx: DumpCtx = { b, end, flags: opts.flags, mark: mark >>> 0, owner };
  if (version === 6) dumpIpv6(w, fields, ctx, pkt.off, true);
  else dumpIpv4(w, fields, ctx, pkt.off, true);
  return { line: w.line, fields };
}

interface DumpCtx {
  b: Uint8Array;
  /** skb->len: reads past it fail (skb_header_pointer). */
  end: number;
  flags: number;
  mark: number;
  owner: LogOwner | null;
}

/** dump_mac_header(). */
function dumpMac(w: Out, flags: number, mac: LogMac | null): void {
  const type = mac?.hwType ?? ARPHRD.ETHER;
  if (flags & LOG_FLAG.MACDECODE && type === ARPHRD.ETHER) {
    if (mac === null || mac.len < 14) return;
    const b = mac.buf, o = mac.off;
    const src = macText(b, o + 6), dst = macText(b, o), proto = hex2(b[o + 12]!) + hex2(b[o + 13]!);
    w.add(`MACSRC=${src} MACDST=${dst} MACPROTO=${proto} `);
    w.fields.macsrc = src;
    w.fields.macdst = dst;
    w.fields.macproto = proto;
    return;
  }
  let s = "";
  if (mac !== null && mac.len > 0) {
    for (let i = 0; i < mac.len; i++) s += (i ? ":" : "") + hex2(mac.buf[mac.off + i]!);
  }
  w.add(`MAC=${s} `);
  w.fields.mac = s;
}

/** UID= and MARK=, printed once, after the outermost packet. */
function dumpOwnerMark(w: Out, f: Record<string, unknown>, c: DumpCtx): void {
  if (c.flags & LOG_FLAG.UID && c.owner !== null) {
    w.add(`UID=${c.owner.uid >>> 0} GID=${c.owner.gid >>> 0} `);
    f.uid = c.owner.uid >>> 0;
    f.gid = c.owner.gid >>> 0;
  }
  if (c.mark !== 0) {
    w.add(`MARK=0x${c.mark.toString(16)} `);
    f.mark = c.mark;
  }
}

/** dump_ipv4_packet(); `top` is `!iphoff` (one level of recursion for ICMP errors). */
function dumpIpv4(w: Out, f: Record<string, unknown>, c: DumpCtx, o: number, top: boolean): void {
  const b = c.b;
  if (o + 20 > c.end) {
    w.add("TRUNCATED");
    f.truncated = true;
    return;
  }
  const src = ipv4Text(b, o + 12), dst = ipv4Text(b, o + 16);
  w.add(`SRC=${src} DST=${dst} `);
  f.src = src;
  f.dst = dst;
  const tos = b[o + 1]!, len = u16(b, o + 2), ttl = b[o + 8]!, id = u16(b, o + 4), fragOff = u16(b, o + 6);
  w.add(`LEN=${len} TOS=0x${HEX2U(tos & 0x1e)} PREC=0x${HEX2U(tos & 0xe0)} TTL=${ttl} ID=${id} `);
  Object.assign(f, { len, tos: tos & 0x1e, prec: tos & 0xe0, ttl, id });
  const ipFlags: string[] = [];
  if (fragOff & 0x8000) ipFlags.push("CE");
  if (fragOff & 0x4000) ipFlags.push("DF");
  if (fragOff & 0x2000) ipFlags.push("MF");
  for (const fl of ipFlags) w.add(`${fl} `);
  if (ipFlags.length) f.ipFlags = ipFlags;
  const frag = fragOff & 0x1fff;
  if (frag) {
    w.add(`FRAG:${frag} `);
    f.frag = frag;
  }
  const ihl = (b[o]! & 0x0f) * 4;
  if (c.flags & LOG_FLAG.IPOPT && ihl > 20) {
    if (o + ihl > c.end) {
      w.add("TRUNCATED");
      f.truncated = true;
      return;
    }
    let h = "";
    for (let i = o + 20; i < o + ihl; i++) h += HEX2U(b[i]!);
    w.add(`OPT (${h}) `);
    f.ipOptions = h;
  }
  const l4 = o + ihl;
  const proto = b[o + 9]!;
  switch (proto) {
    case 6:
      if (dumpTcp(w, f, c, frag !== 0, l4)) return;
      break;
    case 17:
    case 136:
      if (dumpUdp(w, f, c, proto, frag !== 0, l4)) return;
      break;
    case 1: {
      w.add("PROTO=ICMP ");
      f.proto = "ICMP";
      if (frag) break;
      const avail = c.end - l4;
      if (avail < 8) {
        incomplete(w, f, avail);
        break;
      }
      const type = b[l4]!, code = b[l4 + 1]!;
      w.add(`TYPE=${type} CODE=${code} `);
      f.icmpType = type;
      f.icmpCode = code;
      if (type <= 18 && ICMP_REQUIRED_LEN[type]! !== 0 && avail < ICMP_REQUIRED_LEN[type]!) {
        incomplete(w, f, avail);
        break;
      }
      if (type === 0 || type === 8) {
        w.add(`ID=${u16(b, l4 + 4)} SEQ=${u16(b, l4 + 6)} `);
        f.icmpId = u16(b, l4 + 4);
        f.icmpSeq = u16(b, l4 + 6);
      } else if (type === 12) {
        w.add(`PARAMETER=${b[l4 + 4]} `);
        f.parameter = b[l4 + 4];
      } else if (type === 3 || type === 4 || type === 5 || type === 11) {
        if (type === 5) {
          w.add(`GATEWAY=${ipv4Text(b, l4 + 4)} `);
          f.gateway = ipv4Text(b, l4 + 4);
        }
        // One level of recursion: the quoted header of an error about an error is not decoded.
        if (top) {
          w.add("[");
          const inner: Record<string, unknown> = {};
          f.inner = inner;
          dumpIpv4(w, inner, c, l4 + 8, false);
          w.add("] ");
        }
        if (type === 3 && code === 4) {
          w.add(`MTU=${u16(b, l4 + 6)} `);
          f.mtu = u16(b, l4 + 6);
        }
      }
      break;
    }
    case 51: {
      // Linux prints nothing at all for an AH fragment (the check comes before PROTO=AH).
      if (frag) break;
      w.add("PROTO=AH ");
      f.proto = "AH";
      const avail = c.end - l4;
      if (avail < 12) {
        incomplete(w, f, avail);
        break;
      }
      w.add(`SPI=0x${u32(b, l4 + 4).toString(16)} `);
      f.spi = u32(b, l4 + 4);
      break;
    }
    case 50: {
      w.add("PROTO=ESP ");
      f.proto = "ESP";
      if (frag) break;
      const avail = c.end - l4;
      if (avail < 8) {
        incomplete(w, f, avail);
        break;
      }
      w.add(`SPI=0x${u32(b, l4).toString(16)} `);
      f.spi = u32(b, l4);
      break;
    }
    default:
      w.add(`PROTO=${proto} `);
      f.proto = proto;
  }
  if (top) dumpOwnerMark(w, f, c);
}

function incomplete(w: Out, f: Record<string, unknown>, bytes: number): void {
  w.add(`INCOMPLETE [${bytes} bytes] `);
  f.incomplete = bytes;
}

/** nf_log_dump_tcp_header(); true means "stop here" (the kernel's return 1). */
function dumpTcp(w: Out, f: Record<string, unknown>, c: DumpCtx, fragment: boolean, o: number): boolean {
  const b = c.b;
  w.add("PROTO=TCP ");
  f.proto = "TCP";
  if (fragment) return false;
  if (o + 20 > c.end) {
    incomplete(w, f, c.end - o);
    return true;
  }
  const spt = u16(b, o), dpt = u16(b, o + 2);
  w.add(`SPT=${spt} DPT=${dpt} `);
  f.spt = spt;
  f.dpt = dpt;
  if (c.flags & LOG_FLAG.TCPSEQ) {
    w.add(`SEQ=${u32(b, o + 4)} ACK=${u32(b, o + 8)} `);
    f.seq = u32(b, o + 4);
    f.ack = u32(b, o + 8);
  }
  const window = u16(b, o + 14);
  w.add(`WINDOW=${window} `);
  f.window = window;
  // TCP_RESERVED_BITS = htonl(0x0E000000), shifted down 22: the three reserved bits as 0x08..0x38.
  const res = b[o + 12]! & 0x0e;
  w.add(`RES=0x${hex2(res << 2)} `);
  f.res = res << 2;
  const tcpFlags: string[] = [];
  if (b[o + 12]! & 0x01) tcpFlags.push("AE");
  const fl = b[o + 13]!;
  if (fl & 0x80) tcpFlags.push("CWR");
  if (fl & 0x40) tcpFlags.push("ECE");
  if (fl & 0x20) tcpFlags.push("URG");
  if (fl & 0x10) tcpFlags.push("ACK");
  if (fl & 0x08) tcpFlags.push("PSH");
  if (fl & 0x04) tcpFlags.push("RST");
  if (fl & 0x02) tcpFlags.push("SYN");
  if (fl & 0x01) tcpFlags.push("FIN");
  for (const t of tcpFlags) w.add(`${t} `);
  f.tcpFlags = tcpFlags;
  const urgp = u16(b, o + 18);
  w.add(`URGP=${urgp} `);
  f.urgp = urgp;
  const doff = (b[o + 12]! >> 4) * 4;
  if (c.flags & LOG_FLAG.TCPOPT && doff > 20) {
    if (o + doff > c.end) {
      w.add("OPT (TRUNCATED)");
      f.tcpOptions = "TRUNCATED";
      return true;
    }
    let h = "";
    for (let i = o + 20; i < o + doff; i++) h += HEX2U(b[i]!);
    w.add(`OPT (${h}) `);
    f.tcpOptions = h;
  }
  return false;
}

/** nf_log_dump_udp_header(). */
function dumpUdp(w: Out, f: Record<string, unknown>, c: DumpCtx, proto: number, fragment: boolean, o: number): boolean {
  const name = proto === 17 ? "UDP" : "UDPLITE";
  w.add(`PROTO=${name} `);
  f.proto = name;
  if (fragment) return false;
  if (o + 8 > c.end) {
    incomplete(w, f, c.end - o);
    return true;
  }
  const b = c.b;
  w.add(`SPT=${u16(b, o)} DPT=${u16(b, o + 2)} LEN=${u16(b, o + 4)} `);
  f.spt = u16(b, o);
  f.dpt = u16(b, o + 2);
  f.udpLen = u16(b, o + 4);
  return false;
}

/** nf_ip6_ext_hdr(): hop-by-hop, routing, fragment, ESP, AH, no-next-header, destination options. */
function isExtHdr(nh: number): boolean {
  return nh === 0 || nh === 43 || nh === 44 || nh === 50 || nh === 51 || nh === 59 || nh === 60;
}

/** dump_ipv6_packet(). */
function dumpIpv6(w: Out, f: Record<string, unknown>, c: DumpCtx, o: number, recurse: boolean): void {
  const b = c.b;
  if (o + 40 > c.end) {
    w.add("TRUNCATED");
    f.truncated = true;
    return;
  }
  const src = ipv6Text(b, o + 8), dst = ipv6Text(b, o + 24);
  w.add(`SRC=${src} DST=${dst} `);
  f.src = src;
  f.dst = dst;
  const first = u32(b, o);
  const len = u16(b, o + 4) + 40, tc = (first & 0x0ff00000) >>> 20, hoplimit = b[o + 7]!, flowlbl = first & 0x000fffff;
  w.add(`LEN=${len} TC=${tc} HOPLIMIT=${hoplimit} FLOWLBL=${flowlbl} `);
  Object.assign(f, { len, tc, hoplimit, flowlbl });
  const ipopt = (c.flags & LOG_FLAG.IPOPT) !== 0;
  let fragment = false;
  let ptr = o + 40;
  let nh = b[o + 6]!;
  const exts: Record<string, unknown>[] = [];
  while (nh !== 59 && isExtHdr(nh)) {
    if (ptr + 2 > c.end) {
      w.add("TRUNCATED");
      f.truncated = true;
      return;
    }
    if (ipopt) w.add("OPT ( ");
    let hdrlen = 0;
    switch (nh) {
      case 44: {
        w.add("FRAG:");
        if (ptr + 8 > c.end) {
          w.add("TRUNCATED ");
          f.truncated = true;
          return;
        }
        const fo = u16(b, ptr + 2);
        const e: Record<string, unknown> = { type: "FRAG", offset: fo & 0xfff8 };
        w.add(`${fo & 0xfff8} `);
        if (fo & 1) {
          w.add("INCOMPLETE ");
          e.more = true;
        }
        const id = u32(b, ptr + 4);
        w.add(`ID:${id.toString(16).padStart(8, "0")} `);
        e.id = id;
        exts.push(e);
        f.ext = exts;
        if (fo & 0xfff8) fragment = true;
        hdrlen = 8;
        break;
      }
      case 60:
      case 43:
      case 0:
        if (fragment) {
          if (ipopt) w.add(")");
          return;
        }
        hdrlen = (b[ptr + 1]! + 1) << 3;
        exts.push({ type: nh === 0 ? "HOPOPTS" : nh === 43 ? "ROUTING" : "DSTOPTS", length: hdrlen });
        f.ext = exts;
        break;
      case 51:
        if (ipopt) {
          w.add("AH ");
          if (fragment) {
            w.add(")");
            return;
          }
          if (ptr + 12 > c.end) {
            w.add(`INCOMPLETE [${c.end - ptr} bytes] )`);
            f.incomplete = c.end - ptr;
            return;
          }
          w.add(`SPI=0x${u32(b, ptr + 4).toString(16)} `);
          exts.push({ type: "AH", spi: u32(b, ptr + 4) });
          f.ext = exts;
        }
        hdrlen = (b[ptr + 1]! + 2) << 2;
        break;
      case 50:
        if (ipopt) {
          w.add("ESP ");
          if (fragment) {
            w.add(")");
            return;
          }
          if (ptr + 8 > c.end) {
            w.add(`INCOMPLETE [${c.end - ptr} bytes] )`);
            f.incomplete = c.end - ptr;
            return;
          }
          w.add(`SPI=0x${u32(b, ptr).toString(16)} )`);
          exts.push({ type: "ESP", spi: u32(b, ptr) });
          f.ext = exts;
        }
        return;
    }
    if (ipopt) w.add(") ");
    nh = b[ptr]!;
    ptr += hdrlen;
  }
  switch (nh) {
    case 6:
      if (dumpTcp(w, f, c, fragment, ptr)) return;
      break;
    case 17:
    case 136:
      if (dumpUdp(w, f, c, nh, fragment, ptr)) return;
      break;
    case 58: {
      w.add("PROTO=ICMPv6 ");
      f.proto = "ICMPv6";
      if (fragment) break;
      if (ptr + 8 > c.end) {
        incomplete(w, f, c.end - ptr);
        return;
      }
      const type = b[ptr]!, code = b[ptr + 1]!;
      w.add(`TYPE=${type} CODE=${code} `);
      f.icmpType = type;
      f.icmpCode = code;
      if (type === 128 || type === 129) {
        w.add(`ID=${u16(b, ptr + 4)} SEQ=${u16(b, ptr + 6)} `);
        f.icmpId = u16(b, ptr + 4);
        f.icmpSeq = u16(b, ptr + 6);
      } else if (type >= 1 && type <= 4) {
        if (type === 4) {
          w.add(`POINTER=${u32(b, ptr + 4).toString(16).padStart(8, "0")} `);
          f.pointer = u32(b, ptr + 4);
        }
        if (recurse) {
          w.add("[");
          const inner: Record<string, unknown> = {};
          f.inner = inner;
          dumpIpv6(w, inner, c, ptr + 8, false);
          w.add("] ");
        }
        if (type === 2) {
          w.add(`MTU=${u32(b, ptr + 4)} `);
          f.mtu = u32(b, ptr + 4);
        }
      }
      break;
    }
    default:
      w.add(`PROTO=${nh} `);
      f.proto = nh;
  }
  if (recurse) dumpOwnerMark(w, f, c);
}
