/**
 * Every configuration-time and file-level error sluice raises, declared in
 * one table. The packet path never throws (it returns codes); these are for
 * bad configs, bad files and bad command lines, where a clear message that
 * names the field, file, line or byte offset is the product. Capture files
 * have their own table beside their reader (src/io/pcap-errors.ts).
 */

/** Error codes, one per kind of fault. */
export const ERR = {
  CONFIG_FIELD: "ESLUICE_CONFIG_FIELD",
  CONFIG_UNKNOWN: "ESLUICE_CONFIG_UNKNOWN",
  USAGE: "ESLUICE_USAGE",
  IO: "ESLUICE_IO",
  /** A config file that is not valid YAML (the message names file:line:column). */
  CONFIG_SYNTAX: "ESLUICE_CONFIG_SYNTAX",
  /** A listening socket could not be opened (address in use, not local, privileged port). */
  LISTEN: "ESLUICE_LISTEN",
  /** The route/address mirror could not read or parse the namespace's routes (`ip -json`). */
  ROUTE: "ESLUICE_ROUTE",
  /** The control socket: no daemon answers at the path (or nothing is there). */
  CONTROL_NOT_RUNNING: "ESLUICE_CONTROL_NOT_RUNNING",
  /** The control socket exists but this user may not connect (it is owner-only, mode 0600). */
  CONTROL_PERMISSION: "ESLUICE_CONTROL_PERMISSION",
  /** The control socket path is taken: another sluice answers there, or it is not a socket. */
  CONTROL_IN_USE: "ESLUICE_CONTROL_IN_USE",
  /** The control connection broke or carried something that is not the protocol (src/control/protocol.ts). */
  CONTROL_PROTOCOL: "ESLUICE_CONTROL_PROTOCOL",
  /** A ruleset (iptables-restore format) sluice refuses; the message names file:line:column. */
  RULES: "ESLUICE_RULES",
} as const;

export type ErrorCode = (typeof ERR)[keyof typeof ERR];

/** A coded error; `message` is meant for the user as is. */
export class SluiceError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "SluiceError";
    this.code = code;
  }
}
