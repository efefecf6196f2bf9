/**
 * The plumbing state file: what the daemon is about to add to the kernel,
 * written BEFORE the first change, deleted after a clean removal.
 *
 * It is an intent log, not a record of completed steps: a crash can happen
 * anywhere between writing it and finishing the install, so every item must be
 * undoable whether or not it was applied (see plumbing.ts: planning refuses to
 * proceed when an item already exists, so undoing an item that was never
 * applied cannot remove someone else's object). The file names the network
 * namespace and the process that wrote it, so `recoverStale` can tell a
 * leftover from a live instance.
 *
 * Written atomically (temporary file in the same directory, fsync, rename),
 * mode 0600 in a 0700 directory: its contents are replayed as commands.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { ERR, SluiceError } from "../errors.js";

/** Current state file format. */
export const STATE_VERSION = 1;

const family = z.union([z.literal(4), z.literal(6)]);
const name = z.string().min(1).max(64);

/**
 * A sysctl changed from `old` to `value`. `key` uses `/` separators
 * (net/ipv4/conf/eth0.100/rp_filter) so interface names may contain dots.
 */
const sysctlItem = z.object({ kind: z.literal("sysctl"), key: z.string().regex(/^[\w./-]+$/), old: z.string(), value: z.string() });

/**
 * Rules inserted into one table of one family, each carrying `tag` in a
 * comment. `rules` are the argument lists after `-t TABLE`; undo deletes every
 * rule carrying the tag (found with `<cmd>-save`), whichever rules were applied.
 */
const iptablesItem = z.object({
  kind: z.literal("iptables"),
  family,
  cmd: z.string().min(1),
  table: z.literal("raw"),
  tag: z.string().min(1),
  rules: z.array(z.array(z.string())),
});

/**
 * The nf_tables table `table` of `family` did not exist before the install
 * (iptables-nft creates it on the first rule and never deletes it): undo
 * deletes it with `nft delete table` if it holds nothing but empty built-in
 * chains by then.
 */
const nftTableItem = z.object({ kind: z.literal("nft-table"), family, saveCmd: z.string().min(1), table: z.literal("raw") });

/** A persistent TUN device created with `ip tuntap add` (undo deletes it). */
const tunCreateItem = z.object({ kind: z.literal("tun-create"), device: name, multiQueue: z.boolean() });

/** A device set up (undo sets it down again; present only if it was down). */
const linkUpItem = z.object({ kind: z.literal("link-up"), device: name });

/** A device's MTU changed from `old` (undo puts it back if it is still `value`). */
const linkMtuItem = z.object({ kind: z.literal("link-mtu"), device: name, old: z.number().int(), value: z.number().int() });

/** An address added to a device (`cidr` as given to `ip addr add`). */
const addrItem = z.object({ kind: z.literal("addr"), family, device: name, cidr: z.string().min(1) });

/** `default dev DEVICE table TABLE` added. */
const routeItem = z.object({ kind: z.literal("route"), family, device: name, table: z.number().int() });

/** `pref PRIORITY iif IIF lookup TABLE` added. */
/** TUN mode's fail-closed fallback: `blackhole default table T metric 4294967295`, outliving the device. */
const blackholeItem = z.object({ kind: z.literal("route-blackhole"), family, table: z.number().int() });
const ruleItem = z.object({ kind: z.literal("rule"), family, priority: z.number().int(), iif: name, table: z.number().int() });

const item = z.discriminatedUnion("kind", [sysctlItem, iptablesItem, nftTableItem, tunCreateItem, linkMtuItem, linkUpItem, addrItem, routeItem, blackholeItem, ruleItem]);

const stateSchema = z.object({
  version: z.literal(STATE_VERSION),
  instance: z.string().min(1),
  mode: z.union([z.literal("nfqueue"), z.literal("tun")]),
  netns: z.string().optional(),
  pid: z.number().int(),
  /** Field 22 of /proc/PID/stat (start time in clock ticks): tells a live writer from a reused pid. */
  pidStart: z.string(),
  createdAt: z.string(),
  items: z.array(item),
});

/** One thing the plumbing adds, in install order. */
export type PlumbingItem = z.infer<typeof item>;
/** The state file's contents. */
export type PlumbingState = z.infer<typeof stateSchema>;

/** Writes `state` to `path` atomically (mode 0600; the directory is created with mode 0700). */
export function writeStateFile(path: string, state: PlumbingState): void {
  const text = JSON.stringify(state, null, 2) + "\n";
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new SluiceError(ERR.IO, `cannot write the plumbing state file ${path}: ${(e as Error).message}`);
  }
}

/** Reads and validates a state file; null when there is none. */
export function readStateFile(path: string): PlumbingState | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new SluiceError(ERR.IO, `cannot read the plumbing state file ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SluiceError(ERR.IO, `plumbing state file ${path} is not JSON (${(e as Error).message}); inspect and delete it by hand`);
  }
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? issue.path.join(".") || "(top)" : "(top)";
    throw new SluiceError(ERR.IO, `plumbing state file ${path}: field ${where}: ${issue?.message ?? "invalid"}; inspect and delete it by hand`);
  }
  return parsed.data;
}

/** Deletes a state file; a missing file is not an error. */
export function removeStateFile(path: string): void {
  rmSync(path, { force: true });
}

/** Start time of a process (field 22 of /proc/PID/stat), or null if it does not exist. */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19] ?? null; // field 22 overall = index 19 after "pid (comm)"
}
