/**
 * io/ — bytes in and out of sluice. Today: capture files.
 *
 * pcap.ts reads classic pcap and pcapng (the whole file in memory, one record
 * at a time, no object per record: the reader's fields describe the current
 * record and the offset of its IP header) and writes classic pcap. No npm
 * package maintains this (reference/libraries.md), and the formats are small.
 * Errors are file-level: a `PcapError` naming file, record and byte offset,
 * from the table in pcap-errors.ts.
 *
 * Next (issue 3): the TypeScript side of the native addon (NFQUEUE, TUN, raw
 * socket) lives here too; nothing above io/ touches native-bindings/.
 */
export * from "./pcap.js";
