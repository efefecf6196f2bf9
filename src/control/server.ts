import { chmodSync, existsSync, lstatSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { isMainThread } from "node:worker_threads";
import { formatConntrackLine, formatEventLine } from "../conntrack/format.js";
import { ConnSnapshot } from "../conntrack/snapshot.js";
import type { Conntrack } from "../conntrack/tracker.js";
import { ERR, SluiceError } from "../errors.js";
import { compileFilter, parseEventMask, parseFamily, type CtFilter } from "./filter.js";
import {
  DEFAULT_CONTROL_LIMITS,
  encodeFrame,
  EVENT_MASK_NAMES,
  LineSplitter,
  MAX_REQUEST_BYTES,
  OP,
  REQUEST_FIELDS,
  type ControlLimits,
  type Frame,
  type Op,
  type Request,
} from "./protocol.js";

/*
 * The daemon side of the control socket (wire format: protocol.ts).
 *
 * Everything here runs on the daemon's event loop between packet batches,
 * so it never races the pipeline: the tracker is only touched from
 * handlers and from `pump()`. Long operations (list, delete) take a copy
 * of the live handles first, then look at `listChunk` entries per turn
 * and yield, so a 262144-entry dump never stalls packets; an entry that
 * died meanwhile has a stale handle and is skipped (kernel dumps are not
 * atomic either).
 *
 * Events: the tracker writes them into its bounded EventRing; `pump()`
 * (called by the daemon after each batch, and by a timer while anyone
 * subscribes) drains the ring, formats each event once per output variant,
 * and appends it to every interested subscriber. A subscriber whose queued
 * bytes (kernel socket buffer full, so Node's buffer grows) pass
 * `subscriberQueueBytes` loses events, counted and reported to it; the
 * daemon never waits for a reader and memory never grows past the bound.
 * With no subscriber the ring is disabled (`enabled = false`): an event
 * costs the tracker one branch. The server owns `ct.events` while it runs.
 */

/** What the daemon hands the control server. */
export interface ControlServerOptions {
  /** Socket path (the daemon config's control socket). */
  path: string;
  /** The tracker whose table and events are served. */
  ct: Conntrack;
  /** Returns the daemon's counters as a plain object (protocol.ts DaemonStats). */
  stats: () => Record<string, unknown>;
  /** The pipeline's clock (ms): timeouts are shown relative to it. */
  now: () => number;
  /** Wall clock (ms since the epoch) for `-o timestamp`; Date.now by default. */
  wallClock?: () => number;
  limits?: Partial<ControlLimits>;
  /** Told about unexpected failures while serving a request (the daemon logs them). */
  onError?: (err: unknown) => void;
  /**
   * Operations the daemon answers itself (rules.load, rules.save): the
   * answer frame, or a SluiceError that becomes the error frame. Without a
   * handler the op is refused ("not available").
   */
  handlers?: Partial<Record<Op, (req: Request) => Frame | Promise<Frame>>>;
  /**
   * Streaming operations (trace): started with the request, they push line
   * batches through `write` until the client leaves, when the returned stop
   * function runs. `write` drops (and counts) batches while the client's
   * queue is over `subscriberQueueBytes`: the daemon never waits for a reader.
   */
  streams?: Partial<Record<Op, (req: Request, write: (lines: string[]) => void) => () => void>>;
}

/** Counters of the control server, included in `stats` as `control`. */
export class ControlStats {
  /** Connections open now. */
  clients = 0;
  /** Event subscribers now. */
  subscribers = 0;
  requests = 0;
  /** Requests answered with an error. */
  errors = 0;
  /** Connections refused because maxClients were open. */
  refused = 0;
  /** Event lines written to subscribers. */
  eventsSent = 0;
  /** Event lines dropped because a subscriber's queue was full. */
  eventsDropped = 0;
  /** Events lost in the tracker's ring (it overflowed before a pump). */
  ringLost = 0;
  /** Most bytes seen queued in Node for one subscriber (stays near subscriberQueueBytes). */
  queuePeakBytes = 0;
}

/** One connection. */
class Conn {
  readonly sock: Socket;
  readonly split = new LineSplitter(MAX_REQUEST_BYTES);
  readonly queue: string[] = [];
  busy = false;
  closed = false;
  sub: Subscriber | null = null;
  /** Ends a stream (trace) this connection runs. */
  stopStream: (() => void) | null = null;
  constructor(sock: Socket) {
    this.sock = sock;
  }
}

/** Output variants of an event line: bit 0 timestamp, bit 1 extended. */
const VARIANTS = 4;

/** One `conntrack -E` client. */
class Subscriber {
  readonly conn: Conn;
  readonly filter: CtFilter;
  /** Bit set over EVENT.*. */
  readonly mask: number;
  readonly timestamp: boolean;
  readonly extended: boolean;
  readonly variant: number;
  /** Events this subscriber lost (its queue full, or the ring overflowed). */
  dropped = 0;
  /** `dropped` as last reported to the client. */
  reported = 0;
  /** Lines gathered during one pump, written as one frame. */
  lines: string[] = [];
  bytes = 0;

  constructor(conn: Conn, filter: CtFilter, mask: number, timestamp: boolean, extended: boolean) {
    this.conn = conn;
    this.filter = filter;
    this.mask = mask;
    this.timestamp = timestamp;
    this.extended = extended;
    this.variant = (timestamp ? 1 : 0) | (extended ? 2 : 0);
  }
}

const ALL_EVENTS = (1 << EVENT_MASK_NAMES.length) - 1;
/** A frame's JSON overhead per line (quotes, comma), for the queue bound. */
const LINE_OVERHEAD = 4;

function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Resolves true when something accepts a connection at `path`, false when nothing listens (ECONNREFUSED). */
function probe(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    const timer = setTimeout(() => { s.destroy(); resolve(true); }, 1000);
    s.once("connect", () => { clearTimeout(timer); s.destroy(); resolve(true); });
    s.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === "ECONNREFUSED" || e.code === "ENOENT") resolve(false);
      else reject(e);
    });
  });
}

/** The control socket server. Create with {@link ControlServer.listen}. */
export class ControlServer {
  readonly path: string;
  readonly stats = new ControlStats();
  readonly limits: Readonly<ControlLimits>;
  private readonly ct: Conntrack;
  private readonly statsProvider: () => Record<string, unknown>;
  private readonly now: () => number;
  private readonly wallClock: () => number;
  private readonly onError: (err: unknown) => void;
  private readonly handlers: Partial<Record<Op, (req: Request) => Frame | Promise<Frame>>>;
  private readonly streams: Partial<Record<Op, (req: Request, write: (lines: string[]) => void) => () => void>>;
  private readonly server: Server;
  private readonly conns = new Set<Conn>();
  private readonly subs: Subscriber[] = [];
  private readonly snap = new ConnSnapshot();
  private readonly variantLines: (string | null)[] = new Array<string | null>(VARIANTS).fill(null);
  private timer: NodeJS.Timeout | null = null;
  private ringLostSeen = 0;
  private readonly ringWasEnabled: boolean;
  private ino = -1;
  /** Gathered event bytes that are written as one frame mid-pump. */
  private readonly frameBytes: number;
  private closing = false;

  private constructor(opts: ControlServerOptions) {
    this.path = opts.path;
    this.ct = opts.ct;
    this.statsProvider = opts.stats;
    this.now = opts.now;
    this.wallClock = opts.wallClock ?? Date.now;
    this.onError = opts.onError ?? (() => {});
    this.handlers = opts.handlers ?? {};
    this.streams = opts.streams ?? {};
    this.limits = Object.freeze({ ...DEFAULT_CONTROL_LIMITS, ...opts.limits });
    this.frameBytes = Math.max(1024, Math.min(64 * 1024, this.limits.subscriberQueueBytes >> 2));
    this.server = createServer((sock) => this.onConnection(sock));
    this.ringWasEnabled = this.ct.events.enabled;
    // No subscriber yet: events cost the tracker one branch.
    this.ct.events.enabled = false;
  }

  /**
   * Creates the socket (mode 0600; its directory 0700 if it had to be
   * created) and starts serving. A socket file nothing answers on (a dead
   * daemon's) is replaced; a live one is an error, as is a path that is
   * not a socket.
   */
  static async listen(opts: ControlServerOptions): Promise<ControlServer> {
    const srv = new ControlServer(opts);
    try {
      await srv.start();
    } catch (e) {
      srv.ct.events.enabled = srv.ringWasEnabled;
      throw e;
    }
    return srv;
  }

  private async start(): Promise<void> {
    const path = this.path;
    const dir = dirname(path);
    try {
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new SluiceError(ERR.LISTEN, `control socket ${path}: cannot create ${dir}: ${(e as Error).message}`);
    }
    let st;
    try {
      st = lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new SluiceError(ERR.LISTEN, `control socket ${path}: ${(e as Error).message}`);
    }
    if (st !== undefined) {
      if (!st.isSocket()) {
        throw new SluiceError(ERR.CONTROL_IN_USE, `control socket ${path} exists and is not a socket; refusing to replace it`);
      }
      let alive: boolean;
      try {
        alive = await probe(path);
      } catch (e) {
        throw new SluiceError(ERR.LISTEN, `control socket ${path}: cannot tell whether another sluice owns it: ${(e as Error).message}`);
      }
      if (alive) throw new SluiceError(ERR.CONTROL_IN_USE, `another sluice is running (socket ${path} answers)`);
      unlinkSync(path); // stale: its daemon died without removing it
    }
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: NodeJS.ErrnoException): void => {
        reject(e.code === "EADDRINUSE"
          ? new SluiceError(ERR.CONTROL_IN_USE, `another sluice is running (socket ${path} answers)`)
          : new SluiceError(ERR.LISTEN, `control socket ${path}: cannot listen: ${e.message}`));
      };
      this.server.once("error", onErr);
      // The bind happens inside listen(): a 0177 umask creates the socket
      // 0600 with no window in which others could connect.
      const old = isMainThread ? process.umask(0o177) : -1;
      try {
        this.server.listen(path, () => {
          this.server.off("error", onErr);
          resolve();
        });
      } finally {
        if (old >= 0) process.umask(old);
      }
    });
    chmodSync(path, 0o600); // also in workers, where umask cannot be set
    this.ino = statSync(path).ino;
  }

  /**
   * Drains the tracker's event ring to the subscribers. The daemon calls
   * it after each packet batch; a timer calls it while anyone subscribes.
   * One branch when nobody does.
   */
  pump(): void {
    const subs = this.subs;
    if (subs.length === 0) return;
    const ring = this.ct.events;
    if (ring.lost !== this.ringLostSeen) {
      const d = ring.lost - this.ringLostSeen;
      this.ringLostSeen = ring.lost;
      this.stats.ringLost += d;
      for (let k = 0; k < subs.length; k++) subs[k].dropped += d;
    }
    if (ring.size > 0) {
      const s = this.snap, acct = this.ct.cfg.acct, limit = this.limits.subscriberQueueBytes;
      const lines = this.variantLines;
      const offset = this.wallClock() - this.now();
      while (ring.shift(s)) {
        s.time += offset; // the daemon's clock to the wall clock, for -o timestamp
        for (let v = 0; v < VARIANTS; v++) lines[v] = null;
        for (let k = 0; k < subs.length; k++) {
          const sub = subs[k];
          if ((sub.mask & (1 << s.event)) === 0 || !sub.filter.matches(s, false)) continue;
          let line = lines[sub.variant];
          if (line === null) line = lines[sub.variant] = formatEventLine(s, acct, sub.timestamp, sub.extended);
          const size = line.length + LINE_OVERHEAD;
          if (sub.conn.sock.writableLength + sub.bytes + size > limit) {
            sub.dropped++;
            this.stats.eventsDropped++;
            continue;
          }
          sub.lines.push(line);
          sub.bytes += size;
          // Hand full frames to the socket as we go: the kernel's buffer takes
          // what it can, and only the rest counts against the queue bound.
          if (sub.bytes >= this.frameBytes) this.flushSubscriber(sub);
        }
      }
    }
    for (let k = 0; k < subs.length; k++) {
      const sub = subs[k];
      this.flushSubscriber(sub);
      if (sub.dropped !== sub.reported && sub.conn.sock.writableLength < this.limits.subscriberQueueBytes) {
        sub.reported = sub.dropped;
        sub.conn.sock.write(encodeFrame({ dropped: sub.dropped }));
      }
    }
  }

  private flushSubscriber(sub: Subscriber): void {
    if (sub.lines.length === 0) return;
    this.stats.eventsSent += sub.lines.length;
    const sock = sub.conn.sock;
    sock.write(encodeFrame({ lines: sub.lines }));
    sub.lines = [];
    sub.bytes = 0;
    if (sock.writableLength > this.stats.queuePeakBytes) this.stats.queuePeakBytes = sock.writableLength;
  }

  /** Stops serving: closes every connection and removes the socket file. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const c of this.conns) {
      if (c.stopStream !== null) c.stopStream();
      c.stopStream = null;
      c.sock.destroy();
    }
    this.subs.length = 0;
    this.stopTimer();
    this.ct.events.enabled = this.ringWasEnabled;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      // libuv unlinks its own socket on close; never remove a file that is not ours.
      if (statSync(this.path).ino === this.ino) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  // ---- connections ----

  private onConnection(sock: Socket): void {
    if (this.closing) { sock.destroy(); return; }
    if (this.conns.size >= this.limits.maxClients) {
      this.stats.refused++;
      sock.on("error", () => {});
      sock.end(encodeFrame({ ok: false, error: { code: ERR.CONTROL_PROTOCOL, message: `too many control clients (${this.limits.maxClients})` } }));
      return;
    }
    const conn = new Conn(sock);
    this.conns.add(conn);
    this.stats.clients = this.conns.size;
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      const lines = conn.split.push(chunk);
      if (lines === null) {
        this.stats.errors++;
        sock.end(encodeFrame({ ok: false, error: { code: ERR.CONTROL_PROTOCOL, message: `request longer than ${MAX_REQUEST_BYTES} bytes` } }));
        sock.pause();
        return;
      }
      for (const l of lines) if (l.trim() !== "") conn.queue.push(l);
      if (conn.queue.length === 0) return;
      if (conn.sub !== null || conn.stopStream !== null) {
        // A subscriber only listens; answering chatter could queue without bound.
        conn.queue.length = 0;
        this.stats.errors++;
        sock.end(encodeFrame({ ok: false, error: { code: ERR.CONTROL_PROTOCOL, message: "this connection streams events; open another connection for requests" } }));
        sock.pause();
        return;
      }
      if (!conn.busy) void this.serve(conn);
    });
    sock.on("error", () => {}); // ECONNRESET, EPIPE: "close" follows
    sock.on("close", () => {
      conn.closed = true;
      this.conns.delete(conn);
      this.stats.clients = this.conns.size;
      if (conn.sub !== null) this.unsubscribe(conn.sub);
      if (conn.stopStream !== null) {
        conn.stopStream();
        conn.stopStream = null;
      }
    });
  }

  /** Answers a connection's queued requests one at a time (reading pauses meanwhile: the kernel buffers, not us). */
  private async serve(conn: Conn): Promise<void> {
    conn.busy = true;
    conn.sock.pause();
    while (conn.queue.length > 0 && !conn.closed && conn.sub === null && conn.stopStream === null) {
      const line = conn.queue.shift() as string;
      this.stats.requests++;
      try {
        await this.handle(conn, line);
      } catch (e) {
        this.stats.errors++;
        if (e instanceof SluiceError) {
          await this.send(conn, { ok: false, error: { code: e.code, message: e.message } });
        } else {
          this.onError(e);
          await this.send(conn, { ok: false, error: { code: ERR.CONTROL_PROTOCOL, message: `internal error: ${(e as Error)?.message ?? String(e)}` } });
        }
      }
    }
    conn.busy = false;
    if (!conn.closed) conn.sock.resume();
  }

  /** Writes a frame; resolves once the socket can take more (or closed). */
  private send(conn: Conn, frame: Frame): Promise<void> {
    if (conn.closed) return Promise.resolve();
    if (conn.sock.write(encodeFrame(frame))) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        conn.sock.off("drain", done);
        conn.sock.off("close", done);
        resolve();
      };
      conn.sock.on("drain", done);
      conn.sock.on("close", done);
    });
  }

  private async handle(conn: Conn, line: string): Promise<void> {
    const req = parseRequest(line);
    switch (req.op) {
      case OP.LIST:
        return this.walk(conn, compileFilter(req.filter), req.extended === true, false);
      case OP.DELETE: {
        const filter = compileFilter(req.filter);
        if (filter.empty) {
          throw new SluiceError(ERR.USAGE, "conntrack.delete needs at least one filter (conntrack.flush removes everything)");
        }
        return this.walk(conn, filter, req.extended === true, true);
      }
      case OP.FLUSH:
        return this.send(conn, { ok: true, count: this.flush(req.family === undefined ? 0 : parseFamily(req.family)) });
      case OP.COUNT: {
        let n = 0;
        this.ct.forEachEntry(() => { n++; });
        return this.send(conn, { ok: true, count: n });
      }
      case OP.STATS:
        return this.send(conn, { ok: true, stats: { ...this.statsProvider(), control: { ...this.stats } } });
      case OP.EVENTS:
        return this.subscribe(conn, req);
      default: {
        const st = this.streams[req.op];
        if (st !== undefined) {
          const limit = this.limits.subscriberQueueBytes;
          const stop = st(req, (lines) => {
            if (conn.closed) return;
            if (conn.sock.writableLength > limit) {
              this.stats.eventsDropped += lines.length;
              return;
            }
            this.stats.eventsSent += lines.length;
            conn.sock.write(encodeFrame({ lines }));
          });
          conn.stopStream = stop;
          await this.send(conn, { ok: true, subscribed: true });
          conn.sock.resume(); // keep reading, to see the client leave
          return;
        }
        const h = this.handlers[req.op];
        if (h === undefined) throw new SluiceError(ERR.USAGE, `${req.op}: not available in this daemon`);
        return this.send(conn, await h(req));
      }
    }
  }

  /**
   * `conntrack -L` / `-D`: every live entry passing the filter, in chunks of
   * `listChunk` per event-loop turn, each chunk's lines one frame. Delete
   * formats an entry then destroys it (DESTROY event), pumping as it goes
   * so the ring does not overflow.
   */
  private async walk(conn: Conn, filter: CtFilter, extended: boolean, del: boolean): Promise<void> {
    const ct = this.ct, tb = ct.table, acct = ct.cfg.acct, s = this.snap;
    const handles: number[] = [];
    ct.forEachEntry((i) => { handles.push(tb.handle(i)); });
    const n = handles.length;
    const ring = ct.events, half = ring.capacity >> 1;
    let count = 0;
    for (let k = 0; k < n; ) {
      const end = Math.min(n, k + this.limits.listChunk);
      const now = this.now();
      const lines: string[] = [];
      for (; k < end; k++) {
        const i = tb.indexOf(handles[k]);
        if (i < 0 || tb.isExpired(i, now)) continue; // died meanwhile, or awaiting the reaper
        ct.snapshot(i, now, s);
        if (!filter.matches(s, del)) continue;
        lines.push(formatConntrackLine(s, acct, extended));
        count++;
        if (del) {
          ct.deleteHandle(handles[k], now);
          if (ring.size >= half) this.pump();
        }
      }
      if (del) this.pump();
      if (lines.length > 0) await this.send(conn, { lines });
      if (conn.closed) return; // the client left: stop, as an interrupted conntrack -D stops
      if (k < n) await yieldTurn();
    }
    return this.send(conn, { ok: true, count });
  }

  /** `conntrack -F [-f family]`: destroys every entry (of the family), with DESTROY events. */
  private flush(family: number): number {
    const ct = this.ct, ring = ct.events, half = ring.capacity >> 1, now = this.now(), s = this.snap;
    let n = 0;
    ct.forEachEntry((i) => {
      if (family !== 0) {
        ct.snapshot(i, now, s);
        if (s.family !== family) return;
      }
      ct.destroy(i, now);
      n++;
      if (ring.size >= half) this.pump();
    });
    this.pump();
    return n;
  }

  // ---- events ----

  private async subscribe(conn: Conn, req: Request): Promise<void> {
    const filter = compileFilter(req.filter);
    const mask = req.events === undefined ? ALL_EVENTS : parseEventMask(req.events);
    // Events from before the subscription go to the subscribers already there.
    this.pump();
    const sub = new Subscriber(conn, filter, mask, req.timestamp === true, req.extended === true);
    if (this.subs.length === 0) {
      const ring = this.ct.events;
      ring.head = ring.tail; // nothing stale
      this.ringLostSeen = ring.lost;
      ring.enabled = true;
      this.timer = setInterval(() => this.pump(), this.limits.pumpIntervalMs);
      this.timer.unref();
    }
    this.subs.push(sub);
    conn.sub = sub;
    this.stats.subscribers = this.subs.length;
    await this.send(conn, { ok: true, subscribed: true });
    conn.sock.resume(); // keep reading, to see the client leave
  }

  private unsubscribe(sub: Subscriber): void {
    const k = this.subs.indexOf(sub);
    if (k < 0) return;
    this.subs.splice(k, 1);
    this.stats.subscribers = this.subs.length;
    if (this.subs.length === 0) {
      const ring = this.ct.events;
      ring.enabled = false;
      ring.head = ring.tail;
      this.stopTimer();
    }
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/** Decodes and checks one request line; unknown ops and fields are refused. */
function parseRequest(line: string): Request {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new SluiceError(ERR.CONTROL_PROTOCOL, "request is not JSON (one JSON object per line)");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new SluiceError(ERR.CONTROL_PROTOCOL, "request is not a JSON object");
  const o = v as Record<string, unknown>;
  const op = o.op;
  if (typeof op !== "string" || !Object.prototype.hasOwnProperty.call(REQUEST_FIELDS, op)) {
    throw new SluiceError(ERR.CONTROL_PROTOCOL, `unknown op ${JSON.stringify(op)} (one of ${Object.keys(REQUEST_FIELDS).join(", ")})`);
  }
  const allowed = REQUEST_FIELDS[op as Op];
  for (const k of Object.keys(o)) {
    if (k !== "op" && !allowed.includes(k)) throw new SluiceError(ERR.CONTROL_PROTOCOL, `${op}: unknown field "${k}"`);
  }
  for (const k of ["extended", "timestamp"]) {
    if (o[k] !== undefined && typeof o[k] !== "boolean") throw new SluiceError(ERR.CONTROL_PROTOCOL, `${op}: ${k} must be true or false`);
  }
  if (o.events !== undefined && (!Array.isArray(o.events) || !o.events.every((x) => typeof x === "string"))) {
    throw new SluiceError(ERR.CONTROL_PROTOCOL, `${op}: events must be a list of names (${EVENT_MASK_NAMES.join(", ")})`);
  }
  return o as unknown as Request;
}
