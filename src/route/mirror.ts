/**
 * RouteMirror: keeps a RouteSnapshot of the namespace current.
 *
 *   start():  spawn `ip monitor link address route` ──▶ load ──▶ snapshot
 *   monitor prints anything ──▶ wait 100 ms (absorbing more lines) ──▶ reload ──▶ swap snapshot
 *
 * Loading runs three `ip -json` commands (addresses, IPv4 and IPv6 routes of
 * every table) in parallel. iproute2 is not on the packet path, so an
 * external command is simpler and as good as our own rtnetlink dump here.
 * Reloads never overlap: a change during a reload schedules one more. The
 * monitor is started before the first load, so a change between the two is
 * not lost; `ip monitor` has no "subscribed" signal, so one more reload
 * follows the first by `settleMs` to close that window.
 *
 * The lookups delegate to the current snapshot. A reload swaps the reference
 * from a callback on the event loop, never in the middle of a synchronous
 * batch, so a route number obtained in a batch is valid for the rest of it.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { ERR, SluiceError } from "../errors.js";
import { parseLinks, parseRoutes, type Skipped } from "./parse.js";
import { RouteSnapshot } from "./table.js";

/** How to run `ip`. */
export interface IpCommandOptions {
  /** Run in this network namespace (`ip -n NAME`, i.e. `ip netns exec NAME ip`); default: our own. */
  netns?: string;
  /** The iproute2 binary (default `ip`, found on PATH). */
  ipPath?: string;
  /** Per-command time limit in ms (default 10000). */
  timeoutMs?: number;
}

/** Options of a RouteMirror. */
export interface RouteMirrorOptions extends IpCommandOptions {
  /** Follow changes with `ip monitor` (default true). */
  watch?: boolean;
  /** Delay from a monitor line to the reload it triggers, ms (default 100); lines meanwhile share that reload. */
  debounceMs?: number;
  /** A confirming reload this long after the first, ms (default 1000; 0 = none). */
  settleMs?: number;
  /** Delay before restarting a monitor that exited, ms (default 1000). */
  restartMs?: number;
  /** Called after every successful reload with the new snapshot. */
  onChange?: (snapshot: RouteSnapshot) => void;
  /** Called when a reload fails or the monitor exits; the previous snapshot stays in use. */
  onError?: (err: Error) => void;
}

/** Limit on the JSON a single `ip` command may print (a full BGP table is ~200 MB; gateways are far smaller). */
const MAX_OUTPUT = 64 * 1024 * 1024;

function ipArgs(opts: IpCommandOptions, args: string[]): string[] {
  return opts.netns !== undefined ? ["-n", opts.netns, ...args] : args;
}

/** Runs `ip ARGS` and parses its JSON output. */
function ipJson(opts: IpCommandOptions, args: string[]): Promise<unknown> {
  const full = ipArgs(opts, args);
  return new Promise((resolve, reject) => {
    execFile(opts.ipPath ?? "ip", full, { timeout: opts.timeoutMs ?? 10_000, maxBuffer: MAX_OUTPUT, encoding: "utf8" }, (err, stdout, stderr) => {
      const cmd = `ip ${full.join(" ")}`;
      if (err !== null) {
        const why = stderr.trim() !== "" ? stderr.trim() : err.message;
        reject(new SluiceError(ERR.ROUTE, `${cmd}: ${why}`));
        return;
      }
      try {
        resolve(stdout.trim() === "" ? [] : JSON.parse(stdout));
      } catch (e) {
        reject(new SluiceError(ERR.ROUTE, `${cmd}: output is not JSON (${(e as Error).message})`));
      }
    });
  });
}

/** Reads the namespace's addresses and routes (both families) and compiles them. */
export async function loadRouteSnapshot(opts: IpCommandOptions = {}, generation = 0): Promise<RouteSnapshot> {
  const [addrs, r4, r6] = await Promise.all([
    ipJson(opts, ["-json", "addr", "show"]),
    ipJson(opts, ["-4", "-json", "route", "show", "table", "all"]),
    ipJson(opts, ["-6", "-json", "route", "show", "table", "all"]),
  ]);
  return buildSnapshot(addrs, r4, r6, generation);
}

/** Compiles already-read `ip -json` outputs (what the loader does after running `ip`; tests use fixtures). */
export function buildSnapshot(addrJson: unknown, route4Json: unknown, route6Json: unknown, generation = 0): RouteSnapshot {
  const skipped: Skipped[] = [];
  const links = parseLinks(addrJson, skipped);
  const byName = new Map(links.map((l) => [l.ifname, l.ifindex]));
  const ifindexOf = (name: string): number => byName.get(name) ?? 0;
  const r4 = parseRoutes(route4Json, 4, ifindexOf, skipped);
  const r6 = parseRoutes(route6Json, 6, ifindexOf, skipped);
  return new RouteSnapshot(links, r4, r6, generation, skipped);
}

/** The route/address mirror of one network namespace. See the file comment. */
export class RouteMirror {
  /** The current snapshot; replaced (never mutated) on reload. */
  snapshot: RouteSnapshot;
  private readonly opts: RouteMirrorOptions;
  private monitor: ChildProcess | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerDue = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private dirty = false;
  private stopped = false;
  private nextGeneration = 1;

  private constructor(opts: RouteMirrorOptions, first: RouteSnapshot) {
    this.opts = opts;
    this.snapshot = first;
  }

  /**
   * Loads the namespace's routes and, unless `watch: false`, follows them.
   * Rejects (SluiceError ERR.ROUTE) when `ip` cannot be run or fails.
   */
  static async start(opts: RouteMirrorOptions = {}): Promise<RouteMirror> {
    const m = new RouteMirror(opts, new RouteSnapshot([], [], [], 0));
    try {
      if (opts.watch !== false) await m.spawnMonitor();
      await m.reload();
    } catch (e) {
      await m.stop();
      throw e;
    }
    const settle = opts.settleMs ?? 1000;
    if (opts.watch !== false && settle > 0) m.schedule(settle);
    return m;
  }

  /** The pid of the running `ip monitor`, if any (for diagnostics). */
  get monitorPid(): number | undefined {
    return this.monitor?.pid;
  }

  /** Generation of the current snapshot (1 after the first load, +1 per reload). */
  get generation(): number {
    return this.snapshot.generation;
  }

  /** See RouteSnapshot.lookup4. */
  lookup4(addr: number): number {
    return this.snapshot.lookup4(addr);
  }

  /** See RouteSnapshot.isLocal4. */
  isLocal4(addr: number): boolean {
    return this.snapshot.isLocal4(addr);
  }

  /** See RouteSnapshot.lookup6. */
  lookup6(w0: number, w1: number, w2: number, w3: number): number {
    return this.snapshot.lookup6(w0, w1, w2, w3);
  }

  /** See RouteSnapshot.isLocal6. */
  isLocal6(w0: number, w1: number, w2: number, w3: number): boolean {
    return this.snapshot.isLocal6(w0, w1, w2, w3);
  }

  /** The ifindex of an interface name, or -1. */
  ifindexOf(name: string): number {
    return this.snapshot.ifindexOf(name);
  }

  /** The name of an ifindex, or undefined. */
  ifnameOf(ifindex: number): string | undefined {
    return this.snapshot.ifnameOf(ifindex);
  }

  /** Reloads now, after any reload in progress; rejects when `ip` fails (the previous snapshot stays). */
  async refresh(): Promise<void> {
    while (this.reloading !== null) await this.reloading;
    await this.reload();
  }

  /** Stops following changes: cancels timers and kills the monitor (resolves once it has exited). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.timer = this.restartTimer = null;
    const child = this.monitor;
    this.monitor = null;
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      await exited;
    }
    if (this.reloading !== null) await this.reloading;
  }

  private spawnMonitor(): Promise<void> {
    const args = ipArgs(this.opts, ["monitor", "link", "address", "route"]);
    const child = spawn(this.opts.ipPath ?? "ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    this.monitor = child;
    let stderr = "";
    child.stdout!.on("data", () => this.schedule(this.opts.debounceMs ?? 100));
    child.stderr!.on("data", (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString("utf8");
    });
    return new Promise((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", (e) => reject(new SluiceError(ERR.ROUTE, `ip ${args.join(" ")}: ${e.message}`)));
      child.once("exit", (code, signal) => {
        if (this.monitor !== child) return; // stopped, or replaced
        this.monitor = null;
        const why = stderr.trim() !== "" ? stderr.trim() : signal !== null ? `killed by ${signal}` : `exit code ${code}`;
        this.opts.onError?.(new SluiceError(ERR.ROUTE, `ip ${args.join(" ")} exited (${why}); restarting`));
        if (this.stopped) return;
        this.restartTimer = setTimeout(() => {
          this.restartTimer = null;
          if (this.stopped) return;
          // Changes while no monitor ran are caught by the reload after the respawn.
          this.spawnMonitor().then(
            () => this.schedule(0),
            (e: Error) => this.opts.onError?.(e),
          );
        }, this.opts.restartMs ?? 1000);
        this.restartTimer.unref();
      });
    });
  }

  /**
   * Arms a reload `ms` from now unless one is already due sooner. Events
   * while it is armed are absorbed, so a chatty monitor delays a reload by
   * at most `ms` (a trailing debounce could starve).
   */
  private schedule(ms: number): void {
    if (this.stopped) return;
    const due = Date.now() + ms;
    if (this.timer !== null) {
      if (due >= this.timerDue) return;
      clearTimeout(this.timer);
    }
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.reloading !== null) this.dirty = true;
      else this.reload().catch((e: Error) => this.opts.onError?.(e));
    }, ms);
    this.timer.unref();
  }

  /** One reload; never overlaps another (callers check `reloading`). A change noted meanwhile (`dirty`) runs one more. */
  private reload(): Promise<void> {
    const p = loadRouteSnapshot(this.opts, this.nextGeneration++).then((s) => {
      if (this.stopped || s.generation < this.snapshot.generation) return;
      this.snapshot = s;
      this.opts.onChange?.(s);
    });
    const done = (): void => {
      this.reloading = null;
      if (this.dirty && !this.stopped) {
        this.dirty = false;
        this.reload().catch((e: Error) => this.opts.onError?.(e));
      }
    };
    this.reloading = p.then(done, done);
    return p;
  }
}
