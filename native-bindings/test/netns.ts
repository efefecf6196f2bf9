/**
 * Kernel test support for the addon's tests (test/io/nfqueue*.test.ts,
 * tun*.test.ts, rawsock*.test.ts): network namespaces with unique names,
 * commands run inside them with a time bound, and small UDP senders and
 * receivers (python3) that stay inside the namespace.
 *
 * The addon's handles take a `netns` option, so the test process itself
 * binds queues and opens devices inside the namespace; only the traffic
 * (senders, receivers, iptables) runs as child processes there.
 * Every child has a timeout; every namespace is removed in afterAll, and
 * removing it also removes its rules, devices and queues.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";

/** Whether the kernel tests can run here (root: netns, iptables, NFQUEUE, TUN). */
export const CAN_RUN_KERNEL_TESTS = process.platform === "linux" && process.getuid?.() === 0;

const STEP_TIMEOUT_MS = 10_000;

/** Runs a command and returns its stdout; throws with stderr when it fails or times out. */
export function run(cmd: string, args: string[], timeoutMs = STEP_TIMEOUT_MS): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs });
  if (r.error !== undefined) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status ?? r.signal}: ${r.stderr}`);
  return r.stdout;
}

/** A network namespace that exists until close(). */
export class Netns {
  /** Its name under /run/netns. */
  readonly name: string;
  /** The path the addon's `netns` option takes. */
  readonly path: string;

  /** Creates `<prefix>-<pid>-<random>` with its loopback up. */
  constructor(prefix: string) {
    this.name = `${prefix}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.path = `/run/netns/${this.name}`;
    run("ip", ["netns", "add", this.name]);
    run("ip", ["-n", this.name, "link", "set", "lo", "up"]);
  }

  /** Runs a command inside the namespace; returns stdout. */
  exec(cmd: string, args: string[], timeoutMs = STEP_TIMEOUT_MS): string {
    return run("ip", ["netns", "exec", this.name, cmd, ...args], timeoutMs);
  }

  /** Runs an iptables (or ip6tables) command inside the namespace. */
  iptables(v6: boolean, args: string[]): void {
    this.exec(v6 ? "ip6tables" : "iptables", ["-w", "5", ...args]);
  }

  /**
   * Packet count of the first rule in `table` whose iptables-save text
   * contains `match` (from `iptables-save -c`).
   */
  ruleCount(v6: boolean, table: string, match: string): number {
    const text = this.exec(v6 ? "ip6tables-save" : "iptables-save", ["-c", "-t", table]);
    for (const line of text.split("\n")) {
      const m = /^\[(\d+):(\d+)\] (.*)$/.exec(line);
      if (m !== null && m[3].includes(match)) return Number(m[1]);
    }
    throw new Error(`no rule matching ${match} in ${table}:\n${text}`);
  }

  /** Removes the namespace (and with it its rules, devices and queues). Safe to call twice. */
  close(): void {
    spawnSync("ip", ["netns", "del", this.name], { timeout: STEP_TIMEOUT_MS });
  }
}

const SEND_PY = `
import socket, sys, binascii
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
mark = int(sys.argv[3])
if mark:
    s.setsockopt(socket.SOL_SOCKET, 36, mark)  # SO_MARK
for h in sys.argv[4:]:
    s.sendto(binascii.unhexlify(h), (sys.argv[1], int(sys.argv[2])))
`;

/**
 * Sends UDP datagrams from inside `ns` to `dst`:`port` (synchronously: the
 * event loop of the caller is blocked meanwhile, so queued packets pile up
 * and arrive in one batch). `mark` sets SO_MARK on the sender.
 */
export function sendUdp(ns: Netns, dst: string, port: number, payloads: (string | Uint8Array)[], mark = 0): void {
  const hex = payloads.map((p) => Buffer.from(p).toString("hex"));
  ns.exec("python3", ["-c", SEND_PY, dst, String(port), String(mark), ...hex]);
}

const RECV_PY = `
import socket, sys, binascii
fam = socket.AF_INET6 if sys.argv[1] == '6' else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', int(sys.argv[2])))
print('ready', flush=True)
while True:
    d = s.recv(65535)
    print(binascii.hexlify(d).decode(), flush=True)
`;

/** A UDP receiver inside a namespace; collects each datagram's bytes. */
export class UdpReceiver {
  /** Datagrams received so far, in order. */
  readonly received: Buffer[] = [];
  readonly #child: ChildProcess;
  #buf = "";

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /** Starts `python3` bound to `port` (family 4 or 6) in `ns`; resolves once it is bound. Killed after `lifetimeMs`. */
  static async start(ns: Netns, family: 4 | 6, port: number, lifetimeMs = 20_000): Promise<UdpReceiver> {
    const child = spawn("ip", ["netns", "exec", ns.name, "python3", "-u", "-c", RECV_PY, String(family), String(port)], {
      timeout: lifetimeMs,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const r = new UdpReceiver(child);
    let err = "";
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver did not start: ${err}`)), 5000);
      child.stdout?.on("data", (d: Buffer) => {
        r.#buf += d.toString();
        let nl: number;
        while ((nl = r.#buf.indexOf("\n")) >= 0) {
          const line = r.#buf.slice(0, nl);
          r.#buf = r.#buf.slice(nl + 1);
          if (line === "ready") {
            clearTimeout(timer);
            resolve();
          } else if (line !== "") {
            r.received.push(Buffer.from(line, "hex"));
          }
        }
      });
      child.on("exit", () => {
        clearTimeout(timer);
        reject(new Error(`receiver exited: ${err}`));
      });
    });
    return r;
  }

  /** The received datagrams as text. */
  texts(): string[] {
    return this.received.map((b) => b.toString());
  }

  /** The receiver's pid (it runs inside the namespace: /proc/PID/net is the namespace's). */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /** Waits until `n` datagrams arrived, or `ms` passed; returns the count. */
  async waitFor(n: number, ms = 3000): Promise<number> {
    const end = Date.now() + ms;
    while (this.received.length < n && Date.now() < end) await sleep(10);
    return this.received.length;
  }

  stop(): void {
    this.#child.kill("SIGKILL");
  }
}

/** Resolves after `ms` milliseconds (lets the event loop run the addon's callbacks). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `cond()` holds or `ms` passed; returns its last value. */
export async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(5);
  return cond();
}
