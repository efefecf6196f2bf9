/**
 * daemon/ — process lifecycle of `sluice run` (issue 3; the run loop itself
 * is not written yet).
 *
 * - config.ts: the YAML config, validated with zod; every error names the
 *   file, line, column and field path; defaults in config/sluice.yaml.
 * - plumbing.ts (+ state.ts, sysctl.ts): the kernel plumbing the daemon
 *   installs (tagged raw-table `CT --notrack` + `NFQUEUE` rules, sysctls,
 *   TUN policy routing) and removes exactly. A state file listing every item
 *   and the saved sysctl values is written before anything changes, so the
 *   next start undoes what a crashed run left behind.
 * - log.ts: pino, JSON or pretty on a terminal; periodic counter summaries
 *   and rate-limited error lines, never a line per packet.
 */
export * from "./config.js";
export * from "./log.js";
export * from "./plumbing.js";
