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
 * Data structures (table.ts has the layout diagram): a table of
 * power-of-two capacity with one 192-byte record per entry, three cache
 * lines in one ArrayBuffer. Line 0 holds what the hash chain walk and the
 * match need, plus expiry and counters. Line 1 holds the addresses. Line 2
 * holds the protocol state and the expiry-ring links: TCP's 12 words and
 * 8 bytes (tcp.ts), or UDP's stream timestamp in the same place (a union,
 * as in `struct nf_conn`). The hash is chained with two intrusive nodes
 * per entry (one per direction's tuple) and a per-process seed, and chains
 * are bounded at insert. There is a free list, and one expiry ring per
 * timeout class: refresh = move to tail, reap = pop expired heads (bounded
 * per call).
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
 * Map<string> costs ~20x and GCs). Both directions are found in one probe,
 * and garbage collection is O(expired). The cost is 200 bytes per
 * connection, TCP state included.
 *
 * Why records rather than one typed array per field: at 10^6 connections
 * the table is ~200 MB, and a packet's cost is its cache and TLB misses.
 * With one array per field, an established packet touched ~16 lines on
 * ~16 pages (UDP), ~18 for TCP. With records it touches the bucket, line 0
 * of each chain node, line 1, status, line 2, and the ring neighbours'
 * line 2, mostly on one page per entry. Measured on the 2-vCPU KVM dev VM
 * (Node 20, EPYC), in the same session, as the median of repeated runs;
 * single runs vary by ±15%:
 *
 *                      est ns/pkt at 10^6      est ns/pkt at 10^3
 *                      SoA       records       SoA       records
 *   UDP  (bench)       1794      1627 (-9%)    232       268
 *   UDP  (rounds)      1663      1353 (-19%)   216       233 (+4..9%)
 *   TCP  (bench)       2482      1749 (-30%)   296       275
 *   TCP  (rounds)      2038      1487 (-27%)   309       311
 *
 * "bench" is scripts/bench/conntrack.ts: 5 runs at 10^6, 4 at 10^3.
 * "rounds" is the same packets over 3-8 processes x 4 timed rounds of 2M.
 * At 10^3 everything is in cache, and the view index arithmetic costs UDP
 * a few ns, about the noise. UDP gains less than TCP. Its chain walk used
 * to hit compact arrays (nodeNext, ports, proto) that stayed in L3; it now
 * reads line 0 of each record from DRAM. TCP drops ~2.5 lines of its own
 * state (words and bytes were two arrays, the words straddling lines).
 *
 * Tried and measured without a difference beyond noise, so left out:
 * address word 0 on line 0 (so IPv4 matches without line 1); skipping the
 * ring move when the expiry is unchanged (same `now`); a separate node
 * array with an 8-bit hash tag per node (+16 bytes/entry, over budget).
 * Kept because it is free: a refresh of the ring's tail touches no
 * neighbour.
 */
export * from "./config.js";
export * from "./constants.js";
export * from "./events.js";
export * from "./format.js";
export * from "./snapshot.js";
export * from "./table.js";
export * from "./tcp.js";
export * from "./tracker.js";
