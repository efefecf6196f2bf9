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
