/**
 * The errors of the capture-file reader and writer, declared in one table.
 *
 * A capture is read as a whole file, so a bad file is a file-level error:
 * the reader throws a {@link PcapError} naming the file, the record index
 * and the byte offset where the bad header or block starts, and nothing else
 * (any other exception from the reader is a bug; the fuzz tests hold it to
 * that).
 */

/** Error codes (`err.code`), one per way a capture file or a writer call can be wrong. */
export const PCAP_ERR = {
  /** The first bytes are neither a pcap magic number nor a pcapng Section Header Block, or a section's byte-order magic is unknown. */
  BAD_MAGIC: "EPCAP_MAGIC",
  /** pcap major version other than 2, or pcapng major version other than 1. */
  BAD_VERSION: "EPCAP_VERSION",
  /** The file header, a record header or a block header is cut short (the file ends inside it). */
  TRUNCATED_HEADER: "EPCAP_TRUNC_HEADER",
  /** A record's packet data or a block's body runs past the end of the file. */
  TRUNCATED_RECORD: "EPCAP_TRUNC_RECORD",
  /** A captured length larger than {@link PCAP_MAX_CAPLEN}, or than the bytes its pcapng block holds. */
  BAD_CAPLEN: "EPCAP_CAPLEN",
  /** A pcapng block length below the minimum for its type, or not a multiple of 4. */
  BAD_BLOCK_LENGTH: "EPCAP_BLOCK_LENGTH",
  /** A pcapng block's trailing length differs from its leading length. */
  BLOCK_TRAILER: "EPCAP_BLOCK_TRAILER",
  /** A pcapng packet block names an interface no Interface Description Block has declared in its section. */
  BAD_INTERFACE: "EPCAP_INTERFACE",
  /** A pcapng option overruns its block, or has the wrong length for its code. */
  BAD_OPTION: "EPCAP_OPTION",
  /** Reading or writing the file failed (the system error is the `cause`). */
  IO: "EPCAP_IO",
  /** A writer call with out-of-range arguments (offsets outside the buffer, nanoseconds ≥ 10⁹, ...). */
  BAD_ARGUMENT: "EPCAP_ARGUMENT",
  /** A write after `close()`, or `toBytes()` on a writer that streams to a file. */
  WRITER_STATE: "EPCAP_WRITER_STATE",
} as const;

/** One of the {@link PCAP_ERR} values. */
export type PcapErrorCode = (typeof PCAP_ERR)[keyof typeof PCAP_ERR];

/**
 * A bad capture file or a misused writer. The message reads
 * `FILE: record R at byte B: DETAIL` for records and pcapng blocks (R is the
 * 0-based index the next packet record would have had), and
 * `FILE: file header at byte B: DETAIL` for the file header (`record` is -1).
 */
export class PcapError extends Error {
  /** Which error, from {@link PCAP_ERR}. */
  readonly code: PcapErrorCode;
  /** The file name given to the reader or writer (`<memory>` when none). */
  readonly file: string;
  /** Byte offset of the bad header or block in the file; -1 when not about a file position. */
  readonly offset: number;
  /** 0-based record index; -1 for the file header and for writer errors. */
  readonly record: number;

  constructor(code: PcapErrorCode, file: string, offset: number, record: number, detail: string, options?: { cause?: unknown }) {
    const where = offset < 0 ? "" : record < 0 ? `file header at byte ${offset}: ` : `record ${record} at byte ${offset}: `;
    super(`${file}: ${where}${detail}`, options);
    this.name = "PcapError";
    this.code = code;
    this.file = file;
    this.offset = offset;
    this.record = record;
  }
}

/**
 * Largest captured length accepted in a record: libpcap's MAXIMUM_SNAPLEN
 * (262144), which is also what tcpdump and dumpcap capture with by default.
 * Anything larger is taken as a corrupt record header rather than a packet.
 */
export const PCAP_MAX_CAPLEN = 262144;
