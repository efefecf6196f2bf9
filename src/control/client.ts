import { createConnection, type Socket } from "node:net";
import { ERR, SluiceError, type ErrorCode } from "../errors.js";
import { encodeFrame, LineSplitter, MAX_FRAME_BYTES, OP, type Frame, type Request } from "./protocol.js";

/*
 * The client side of the control socket (wire format: protocol.ts): one
 * connection per command, one request, frames handed to callbacks as they
 * arrive, so `sluice conntrack -L` prints a large table as it streams in.
 */

const KNOWN_CODES = new Set<string>(Object.values(ERR));

/** Turns an error frame into a SluiceError with the daemon's code and message. */
function frameError(f: Frame): SluiceError {
  const code = f.error !== undefined && KNOWN_CODES.has(f.error.code) ? (f.error.code as ErrorCode) : ERR.CONTROL_PROTOCOL;
  return new SluiceError(code, f.error?.message ?? "the daemon refused the request");
}

/** The user's view of a failed connect. */
function connectError(path: string, e: NodeJS.ErrnoException): SluiceError {
  switch (e.code) {
    case "ENOENT":
      return new SluiceError(ERR.CONTROL_NOT_RUNNING, `sluice is not running (no socket at ${path})`);
    case "ECONNREFUSED":
      return new SluiceError(ERR.CONTROL_NOT_RUNNING, `sluice is not running (nothing answers on ${path}: a stale socket, or not a socket)`);
    case "EACCES":
    case "EPERM":
      return new SluiceError(ERR.CONTROL_PERMISSION,
        `permission denied on ${path}: the control socket is owner-only (mode 0600); run this as the user sluice runs as (usually root, e.g. with sudo)`);
    default:
      return new SluiceError(ERR.CONTROL_NOT_RUNNING, `cannot reach sluice at ${path}: ${e.message}`);
  }
}

/** A connection to the daemon's control socket. */
export class ControlClient {
  readonly path: string;
  private readonly sock: Socket;
  private readonly split = new LineSplitter(MAX_FRAME_BYTES);
  private onFrame: ((f: Frame) => void) | null = null;
  private onEnd: ((err: Error | null) => void) | null = null;
  private ended = false;
  private endError: Error | null = null;

  private constructor(path: string, sock: Socket) {
    this.path = path;
    this.sock = sock;
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => this.data(chunk));
    sock.on("error", (e) => this.finish(new SluiceError(ERR.CONTROL_PROTOCOL, `control connection to ${path} failed: ${e.message}`)));
    sock.on("close", () => this.finish(null));
  }

  /** Connects; the error says whether sluice is not running or this user may not talk to it. */
  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const fail = (e: NodeJS.ErrnoException): void => reject(connectError(path, e));
      sock.once("error", fail);
      sock.once("connect", () => {
        sock.off("error", fail);
        resolve(new ControlClient(path, sock));
      });
    });
  }

  private data(chunk: string): void {
    const lines = this.split.push(chunk);
    if (lines === null) {
      this.finish(new SluiceError(ERR.CONTROL_PROTOCOL, `the daemon sent a frame longer than ${MAX_FRAME_BYTES} bytes`));
      this.sock.destroy();
      return;
    }
    for (const line of lines) {
      if (line === "") continue;
      let f: Frame;
      try {
        f = JSON.parse(line) as Frame;
      } catch {
        this.finish(new SluiceError(ERR.CONTROL_PROTOCOL, `the daemon sent something that is not JSON: ${line.slice(0, 80)}`));
        this.sock.destroy();
        return;
      }
      this.onFrame?.(f);
    }
  }

  private finish(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = err;
    this.onEnd?.(err);
  }

  /**
   * Sends `req` and resolves with the frame that ends the answer (`ok`
   * true). Data frames before it go to `onLines`. An error frame rejects
   * with the daemon's SluiceError; a connection lost midway rejects too.
   */
  request(req: Request, onLines?: (lines: string[]) => void): Promise<Frame> {
    return new Promise((resolve, reject) => {
      if (this.ended) { reject(this.endError ?? new SluiceError(ERR.CONTROL_PROTOCOL, "the control connection is closed")); return; }
      this.onFrame = (f) => {
        if (f.ok === true) { this.onFrame = null; this.onEnd = null; resolve(f); return; }
        if (f.ok === false) { this.onFrame = null; this.onEnd = null; reject(frameError(f)); return; }
        if (f.lines !== undefined) onLines?.(f.lines);
      };
      this.onEnd = (err) => reject(err ?? new SluiceError(ERR.CONTROL_PROTOCOL, `sluice closed the control connection (${this.path}) before answering`));
      this.sock.write(encodeFrame(req as Frame));
    });
  }

  /**
   * Subscribes to events: resolves once the daemon confirmed, then calls
   * `onLines` per batch and `onDropped` with the running count of lost
   * events. `done` settles when the connection ends (resolves on a clean
   * close, rejects on an error frame or a broken connection).
   */
  subscribe(
    req: Request,
    onLines: (lines: string[]) => void,
    onDropped: (total: number) => void,
  ): Promise<{ done: Promise<void> }> {
    return new Promise((resolve, reject) => {
      if (this.ended) { reject(this.endError ?? new SluiceError(ERR.CONTROL_PROTOCOL, "the control connection is closed")); return; }
      let subscribed = false;
      let settle: (err: Error | null) => void = () => {};
      const done = new Promise<void>((res, rej) => {
        settle = (err) => (err === null ? res() : rej(err));
      });
      done.catch(() => {}); // the caller may never await it
      // Installed before the request goes out: event frames can follow the
      // confirmation in the same read, and must not be missed.
      this.onFrame = (f) => {
        if (f.ok === false) {
          if (subscribed) settle(frameError(f));
          else reject(frameError(f));
          return;
        }
        if (f.ok === true && !subscribed) {
          subscribed = true;
          resolve({ done });
          return;
        }
        if (f.lines !== undefined) onLines(f.lines);
        if (f.dropped !== undefined) onDropped(f.dropped);
      };
      this.onEnd = (err) => {
        if (subscribed) settle(err);
        else reject(err ?? new SluiceError(ERR.CONTROL_PROTOCOL, `sluice closed the control connection (${this.path}) before answering`));
      };
      this.sock.write(encodeFrame(req as Frame));
    });
  }

  /** Closes the connection (a subscriber leaves this way). */
  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}

/** Connects, runs one request, closes: the common case. */
export async function controlRequest(path: string, req: Request, onLines?: (lines: string[]) => void): Promise<Frame> {
  const c = await ControlClient.connect(path);
  try {
    return await c.request(req, onLines);
  } finally {
    c.close();
  }
}

/** The daemon's counters (`stats` request). */
export async function fetchStats(path: string): Promise<Record<string, unknown>> {
  const f = await controlRequest(path, { op: OP.STATS });
  return f.stats ?? {};
}
