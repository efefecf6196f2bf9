/**
 * control/ — the daemon's control plane: the Unix control socket
 * (protocol.ts has the how and why and the wire format; server.ts is the
 * daemon side, client.ts the CLI side, filter.ts conntrack-tools' filter
 * options) and the Prometheus endpoint (metrics.ts), whose collectors read
 * the hot path's plain counters at scrape time. Nothing here runs per
 * packet; the server's `pump()` drains the event ring between batches.
 */
export * from "./client.js";
export * from "./filter.js";
export * from "./metrics.js";
export * from "./protocol.js";
export * from "./server.js";
