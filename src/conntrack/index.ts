/**
 * conntrack/ — Linux's connection tracker (nf_conntrack) over typed arrays.
 *
 *   Conntrack.process(pkt, status, now, flags)   nf_conntrack_in
 *     ├─ *_error() checks (flags, checksums, ICMP types; ND/MLD UNTRACKED)
 *     ├─ ICMP errors ─▶ inner tuple inverted ─▶ lookup ─▶ RELATED (never an entry)
 *     ├─ tuple ─▶ ConnTable.lookup (both directions hashed) ─▶ l4 packet()
 *     │            tcp.ts (state table + window), UDP, ICMP, generic
 *     └─ miss ─▶ create (early drop when full) ─▶ pending until confirm()
 *
 * Data structures (table.ts has the layout diagram): a struct-of-arrays
 * table of power-of-two capacity; a chained hash with two intrusive nodes
 * per entry (one per direction's tuple) and a per-process seed, chains
 * bounded at insert; a free list; one expiry ring per timeout class, so
 * refresh = move to tail and reap = pop expired heads (bounded per call).
 * TCP keeps 12 words + 8 bytes per entry in its own arrays (tcp.ts); UDP's
 * stream timestamp lives in the first two of those words (a union, as in
 * `struct nf_conn`).
 *
 * Invariants: an entry is visible (hashed, in a ring, CONFIRMED) only after
 * `confirm()`, i.e. once its first packet was accepted; `abort()` frees it.
 * Time is always an argument (ms); nothing here reads a clock, and the
 * caller never moves it backwards. Events (NEW/UPDATE/DESTROY) are copied
 * into a bounded ring as they happen; a full ring counts `lost` and never
 * grows. Text output (format.ts) is byte-compatible with
 * /proc/net/nf_conntrack, `conntrack -L` and `conntrack -E`.
 *
 * Why this shape: no object per connection and no string keys (STYLE.md:
 * Map<string> costs ~20x and GCs), both directions found in one probe, and
 * O(expired) garbage collection. ~200 bytes per connection.
 */
export * from "./config.js";
export * from "./constants.js";
export * from "./events.js";
export * from "./format.js";
export * from "./snapshot.js";
export * from "./table.js";
export * from "./tcp.js";
export * from "./tracker.js";
