/**
 * A copy of one connection's visible fields: what the text formats print.
 * Filled from the live table (`conntrack -L`, /proc) or from an event record
 * (`conntrack -E`), so formatting never reads an entry that may have changed.
 */
export class ConnSnapshot {
  family = 0;
  proto = 0;
  /** TCP state, or -1 for other protocols. */
  tcpState = -1;
  status = 0;
  /** Seconds left before expiry, as Linux prints them (floored). */
  timeout = 0;
  mark = 0;
  /** Table handle, for sluice's own output. */
  handle = 0;
  /** Orig src, orig dst, reply src, reply dst: 4 words each. */
  readonly addr = new Int32Array(16);
  /** Orig sport, orig dport, reply sport, reply dport (ICMP: id, type<<8|code). */
  readonly port = new Uint16Array(4);
  /** Packets orig, bytes orig, packets reply, bytes reply. */
  readonly counters = new Float64Array(4);
  /** Helper name ("" for none). */
  helper = "";
  /** Event type (EVENT.*) when filled from an event record, else -1. */
  event = -1;
  /** Event time in ms (event records only). */
  time = 0;
}
