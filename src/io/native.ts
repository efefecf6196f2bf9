/**
 * Loads the native addon (native-bindings/, built by `npm run build:native`)
 * and declares its raw interface. Only io/ imports this; the classes in
 * nfqueue.ts, tun.ts and rawsock.ts are the API the rest of sluice uses.
 *
 * The addon is found, in order, at `$SLUICE_NATIVE_ADDON` (a path to the
 * .node file), then at native-bindings/build/Release/sluice_native.node in
 * the first folder above this module that has native-bindings/binding.gyp
 * (this works from src/io and from dist/src/io), then under the current
 * directory. Loading is lazy: sluice's offline commands (replay) never need it.
 *
 * Errors: the addon throws plain Errors with a `code` from {@link IO_ERR}
 * (and `errno`/`syscall` for failed system calls); {@link toIoError} turns
 * them into {@link NativeIoError}. A missing build is `ESLUICE_IO_NOT_BUILT`
 * with the command that fixes it.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { IO_ERR } from "./native-constants.js";

/** One of the {@link IO_ERR} codes. */
export type IoErrorCode = (typeof IO_ERR)[keyof typeof IO_ERR];

/** A configuration-time error of the native I/O layer; `message` is meant for the user as is. */
export class NativeIoError extends Error {
  /** Which error, from {@link IO_ERR}. */
  readonly code: IoErrorCode;
  /** The errno of the failed system call, when one failed. */
  readonly errno: number | undefined;
  /** The failed system call, when one failed. */
  readonly syscall: string | undefined;

  constructor(code: IoErrorCode, message: string, errno?: number, syscall?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NativeIoError";
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

const CODES = new Set<string>(Object.values(IO_ERR));

/** Turns an error thrown by the addon into a {@link NativeIoError} (anything else is returned as is). */
export function toIoError(e: unknown): unknown {
  if (e instanceof NativeIoError || !(e instanceof Error)) return e;
  const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown };
  if (typeof x.code !== "string" || !CODES.has(x.code)) return e;
  return new NativeIoError(
    x.code as IoErrorCode,
    x.message,
    typeof x.errno === "number" ? x.errno : undefined,
    typeof x.syscall === "string" ? x.syscall : undefined,
  );
}

/** Options the addon's NfQueue constructor reads (validated again natively). */
export interface NativeNfQueueOptions {
  queue: number;
  slots: number;
  slotSize: number;
  headroom: number;
  batch: number;
  rounds: number;
  copyRange?: number;
  maxlen: number;
  rcvbuf: number;
  failOpen: boolean;
  gso: boolean;
  noEnobufs: boolean;
  verdictBatch: boolean;
  defaultVerdict: number;
  netns?: string;
}

/** The addon's NfQueue handle (native-bindings/src/nfqueue.h). */
export interface NativeNfQueue {
  /** Starts polling; returns the rows already received during the bind (deliver them with `poll()`). */
  start(): number;
  /** Runs one wakeup's work now (bounded rounds of recvmmsg + callback). */
  poll(): void;
  /** Sends the first `count` verdict records; returns how many were sent. */
  verdicts(count: number): number;
  /** Copies the counters (indices {@link NFQ_STAT}) into `out`. */
  stats(out: Float64Array): void;
  /** Gives every outstanding packet the default verdict and closes; returns how many got it. */
  close(defaultVerdict?: number): number;
  /** The socket's netlink port id (what /proc/net/netfilter/nfnetlink_queue shows as peer). */
  portId(): number;
}

/** Options the addon's Tun constructor reads. */
export interface NativeTunOptions {
  name?: string;
  multiQueue: boolean;
  slotSize: number;
  batch: number;
  rounds: number;
  netns?: string;
}

/** The addon's Tun handle (native-bindings/src/tun.cc). */
export interface NativeTun {
  readonly name: string;
  readonly ifindex: number;
  start(): void;
  write(buf: Uint8Array, desc: Uint32Array, count: number): number;
  stats(out: Float64Array): void;
  close(): void;
}

/** Options the addon's RawSocket constructor reads. */
export interface NativeRawSocketOptions {
  ipv4: boolean;
  ipv6: boolean;
  mark: number;
  sndbuf: number;
  netns?: string;
}

/** The addon's RawSocket handle (native-bindings/src/rawsock.cc). */
export interface NativeRawSocket {
  send(buf: Uint8Array, desc: Uint32Array, count: number): number;
  stats(out: Float64Array): void;
  close(): void;
}

/** What the addon exports. */
export interface NativeAddon {
  NfQueue: new (
    opts: NativeNfQueueOptions,
    slab: ArrayBuffer,
    meta: Int32Array,
    verdicts: Uint32Array,
    onBatch: (count: number) => void,
  ) => NativeNfQueue;
  Tun: new (opts: NativeTunOptions, slab: ArrayBuffer, meta: Int32Array, onBatch: (count: number) => void) => NativeTun;
  RawSocket: new (opts: NativeRawSocketOptions) => NativeRawSocket;
  /** Every compiled-in constant, "GROUP.NAME" -> value (see native-constants.ts). */
  constants: Record<string, number | string>;
  napiVersion: number;
}

const ADDON_FILE = "native-bindings/build/Release/sluice_native.node";

/** Where the addon would be loaded from (the first candidate that exists), or undefined. */
export function findNativeAddon(): string | undefined {
  const env = process.env.SLUICE_NATIVE_ADDON;
  if (env !== undefined && env !== "") return resolve(env);
  const starts = [dirname(fileURLToPath(import.meta.url)), process.cwd()];
  for (const start of starts) {
    for (let dir = start; ; dir = dirname(dir)) {
      if (existsSync(join(dir, "native-bindings/binding.gyp"))) {
        const p = join(dir, ADDON_FILE);
        if (existsSync(p)) return p;
        break;
      }
      if (dirname(dir) === dir) break;
    }
  }
  return undefined;
}

let loaded: NativeAddon | undefined;

/**
 * The addon, loaded once per thread (a worker gets its own instance).
 * @throws NativeIoError `ESLUICE_IO_NOT_BUILT` when it is not built or cannot be loaded
 */
export function loadNative(): NativeAddon {
  if (loaded !== undefined) return loaded;
  const path = findNativeAddon();
  if (path === undefined) {
    throw new NativeIoError(
      IO_ERR.NOT_BUILT,
      `the native addon is not built (${ADDON_FILE} not found): run npm run build:native (needs python3, make, g++)`,
    );
  }
  try {
    loaded = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new NativeIoError(
      IO_ERR.NOT_BUILT,
      `the native addon at ${path} cannot be loaded (${(e as Error).message}): run npm run build:native`,
      undefined,
      undefined,
      { cause: e },
    );
  }
  return loaded;
}

/** Throws a {@link NativeIoError} with code ESLUICE_IO_ARG naming the option, unless `v` is an integer in [lo, hi]. */
export function checkInt(what: string, field: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new NativeIoError(IO_ERR.ARG, `${what}: option ${field} must be an integer in [${lo}, ${hi}], got ${String(v)}`);
  }
  return v;
}
