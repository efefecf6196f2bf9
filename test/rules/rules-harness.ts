/**
 * Support for the rule engine's netns tests (rules.netns.test.ts), on top of
 * the daemon's lab harness (test/daemon/lab-harness.ts): a daemon config
 * with ruleset files, echo servers on chosen ports in any of the lab's
 * namespaces, one-shot probes that name their outcome (echo, refused,
 * timeout...), a TCP echo stream that reports its progress, and the sluice
 * CLI run without blocking the event loop.
 *
 * Bounds: as in lab-harness.ts, every command has a timeout (SIGKILL when it
 * expires) and every background process a lifetime.
 */
import {
  PYTHON,
  SLUICE_CLI,
  describeResult,
  runAsync,
  waitUntil,
  type Bg,
  type Lab,
  type Result,
  type RunFiles,
  type RunSpec,
  writeConfig,
} from "../daemon/lab-harness.js";

/** Ports of the rules tests' servers (none shared with lab-harness's PORT, so the two never meet). */
export const RPORT = {
  /** TCP echo on the server, accepted by the rules (and logged: its SYN). */
  tcpOk: 8180,
  /** TCP echo on the server, rejected with tcp-reset by the rules. */
  tcpReject: 8182,
  /** TCP echo on the server, dropped by the rules. */
  tcpDrop: 8183,
  /** TCP echo on the server for the long-running streams. */
  tcpStream: 8184,
  /** TCP, rejected by the server itself with an ICMP error (its own iptables). */
  tcpServerReject: 8185,
  /** UDP echo on the server, accepted. */
  udpOk: 9180,
  /** Nobody listens on the server: the server answers ICMP port unreachable. */
  udpClosed: 9181,
  /** UDP echo on the server, rejected with icmp(6)-port-unreachable by the rules. */
  udpReject: 9182,
  /** TCP echo on the client (the target of unsolicited inbound connections). */
  clientTcp: 8190,
  /** UDP echo on the client (unsolicited inbound datagrams). */
  clientUdp: 9190,
} as const;

// ─── The daemon's config ─────────────────────────────────────────────────

/** A daemon config with rulesets: RunSpec plus the ruleset files, relative to `dir` (null: none). */
export interface RulesRunSpec extends RunSpec {
  rules4: string | null;
  rules6: string | null;
}

/**
 * Writes the config of `spec` (log level info, JSON, no counter summary,
 * `rules:` relative to the config's directory); returns the daemon's paths.
 */
export function writeRulesConfig(spec: RulesRunSpec): RunFiles {
  return writeConfig({ ...spec, logLevel: "info" });
}

// ─── The sluice CLI ──────────────────────────────────────────────────────

/** Runs the sluice CLI (rules, stats, conntrack) without blocking the event loop; bounded. */
export function cli(args: readonly string[], timeoutMs = 10_000): Promise<Result> {
  return runAsync([process.execPath, SLUICE_CLI, ...args], timeoutMs);
}

/** `sluice stats --json --socket S`, parsed; throws with the output on failure. */
export async function stats(socket: string): Promise<DaemonStats> {
  const argv = ["stats", "--json", "--socket", socket];
  const r = await cli(argv);
  if (r.code !== 0) throw new Error(describeResult(["sluice", ...argv], r));
  return JSON.parse(r.out) as DaemonStats;
}

/** The parts of `sluice stats --json` these tests read. */
export interface DaemonStats {
  pipeline: Record<string, number>;
  rules: Record<string, number>;
  queues: Array<Record<string, number>>;
}

// ─── Servers ─────────────────────────────────────────────────────────────

const ECHO_SERVER_PY = String.raw`
import socket, sys, threading
tcp = [int(p) for p in sys.argv[1].split(',') if p]
udp = [int(p) for p in sys.argv[2].split(',') if p]
def sock(kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s
def echo(c):
    try:
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()
def accept(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def datagrams(s):
    while True:
        d, peer = s.recvfrom(4096)
        s.sendto(d, peer)
threads = []
for p in tcp:
    s = sock(socket.SOCK_STREAM)
    s.bind(('::', p))
    s.listen(64)
    threads.append(threading.Thread(target=accept, args=(s,), daemon=True))
for p in udp:
    s = sock(socket.SOCK_DGRAM)
    s.bind(('::', p))
    threads.append(threading.Thread(target=datagrams, args=(s,), daemon=True))
for t in threads:
    t.start()
print('serving', flush=True)
for t in threads:
    t.join()
`;

/** Starts TCP and UDP echo servers (dual-stack, on `::`) in one of the lab's namespaces; resolves once all are bound. */
export async function startEchoServers(lab: Lab, role: "client" | "server", tcp: readonly number[], udp: readonly number[], lifetimeMs: number): Promise<Bg> {
  const bg = lab.bg(role, [PYTHON, "-u", "-c", ECHO_SERVER_PY, tcp.join(","), udp.join(",")], lifetimeMs);
  await bg.waitFor(/serving/, 10_000, `echo servers in ${lab.ns(role)}`);
  return bg;
}

// ─── Probes ──────────────────────────────────────────────────────────────

const PROBES_PY = String.raw`
import errno, json, socket, sys, threading, time
timeout = float(sys.argv[1])
lock = threading.Lock()
def probe(key, kind, dst, port):
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    msg = b'probe %d\n' % port
    t0 = time.monotonic()
    def done(outcome, detail=''):
        with lock:
            print(json.dumps({'key': key, 'outcome': outcome, 'ms': round((time.monotonic() - t0) * 1000), 'detail': detail}), flush=True)
    try:
        if kind == 'tcp':
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect((dst, port))
            sport = s.getsockname()[1]
            s.sendall(msg)
            got = b''
            while len(got) < len(msg):
                d = s.recv(64)
                if not d:
                    break
                got += d
            s.close()
            done('echo' if got == msg else 'connected', 'sport=%d %r' % (sport, got))
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.settimeout(timeout)
            s.connect((dst, port))
            s.send(msg)
            got = s.recv(2048)
            s.close()
            done('echo' if got == msg else 'other', repr(got))
    except ConnectionRefusedError:
        done('refused')
    except socket.timeout:
        done('timeout')
    except OSError as e:
        done(errno.errorcode.get(e.errno, 'errno%d' % e.errno))
threads = [threading.Thread(target=probe, args=(p['key'], p['kind'], p['dst'], p['port'])) for p in json.loads(sys.argv[2])]
for t in threads:
    t.start()
for t in threads:
    t.join()
`;

/** What a probe saw: `echo` (answered), `refused` (TCP RST or ICMP port unreachable), `timeout`, another errno's name (`EHOSTUNREACH`), `ok`/`fail` (ping). */
export interface ProbeResult {
  outcome: string;
  /** Time until the outcome, ms (ping: the command's). */
  ms: number;
  /** TCP: `sport=N` and what came back; ping: its summary. */
  detail: string;
}

/** One probe of probeMany: a TCP connect and one echo, or one UDP datagram and its echo. */
export interface ProbeItem {
  key: string;
  kind: "tcp" | "udp";
  dst: string;
  port: number;
}

/**
 * Runs `items` at once, one thread each, in one python3 process in the
 * namespace (one process rather than one per probe: on a small machine a
 * burst of interpreter start-ups starves the daemon under test of CPU);
 * each waits `timeoutS` at most for its answer. Results by key (a probe
 * that reported nothing is `probe-failed`, with the process's output).
 */
export async function probeMany(lab: Lab, from: "client" | "server", items: readonly ProbeItem[], timeoutS: number): Promise<Record<string, ProbeResult>> {
  const argv = [PYTHON, "-c", PROBES_PY, String(timeoutS), JSON.stringify(items)];
  const r = await lab.execAsync(from, argv, (timeoutS + 10) * 1000);
  const got: Record<string, ProbeResult> = {};
  for (const line of r.out.split("\n")) {
    if (!line.startsWith("{")) continue;
    const x = JSON.parse(line) as ProbeResult & { key: string };
    got[x.key] = { outcome: x.outcome, ms: x.ms, detail: x.detail };
  }
  for (const it of items) got[it.key] ??= { outcome: "probe-failed", ms: -1, detail: describeResult(argv, r) };
  return got;
}

/** One echo request a second until one is answered or `deadlineS` seconds have passed: `ok` when answered, else `fail`. */
export async function pingProbe(lab: Lab, from: "client" | "server", dst: string, deadlineS = 2): Promise<ProbeResult> {
  const t0 = Date.now();
  const r = await lab.execAsync(from, ["ping", "-n", "-c", "1", "-w", String(deadlineS), dst], (deadlineS + 10) * 1000);
  return { outcome: r.code === 0 ? "ok" : r.code === 1 ? "fail" : "ping-error", ms: Date.now() - t0, detail: r.out.trim().split("\n").slice(-2).join(" ") + r.err };
}

// ─── A TCP echo stream ───────────────────────────────────────────────────

const STREAM_PY = String.raw`
import socket, struct, sys, threading, time
dst, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
s.connect((dst, port))
s.settimeout(30)
print('up', s.getsockname()[1], flush=True)
stop = threading.Event()
def watch():
    sys.stdin.read()  # EOF ends the stream
    stop.set()
threading.Thread(target=watch, daemon=True).start()
n, maxgap, last, report = 0, 0.0, time.monotonic(), 0.0
while not stop.is_set():
    msg = b'%010d\n' % n
    s.sendall(msg)
    got = b''
    while len(got) < len(msg):
        d = s.recv(64)
        if not d:
            sys.exit('closed by the peer after %d echoes' % n)
        got += d
    if got != msg:
        sys.exit('echo mismatch after %d: %r' % (n, got))
    n += 1
    now = time.monotonic()
    maxgap, last = max(maxgap, now - last), now
    if now >= report:
        print('echoes', n, flush=True)
        report = now + 0.05
    time.sleep(0.01)
# struct tcp_info: tcpi_total_retrans is the u32 at offset 100.
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
retrans = struct.unpack('I', info[100:104])[0]
s.close()
print('done', n, round(maxgap * 1000), retrans, flush=True)
`;

/** A TCP connection client → server that sends a numbered line every ~10 ms and waits for its echo. */
export class EchoStream {
  readonly proc: Bg;
  readonly sport: number;

  private constructor(proc: Bg, sport: number) {
    this.proc = proc;
    this.sport = sport;
  }

  /** Connects (the server must echo on `port`); resolves once the first echo came back. */
  static async open(lab: Lab, dst: string, port: number, lifetimeMs: number): Promise<EchoStream> {
    const proc = lab.bg("client", [PYTHON, "-u", "-c", STREAM_PY, dst, String(port)], lifetimeMs);
    const m = await proc.waitFor(/^up (\d+)$/m, 10_000, "stream connected");
    await proc.waitFor(/^echoes \d+$/m, 10_000, "stream's first echo");
    return new EchoStream(proc, Number(m[1]));
  }

  /** Echoes so far (the last progress line; the client prints one at most every 50 ms). */
  echoes(): number {
    const all = [...this.proc.out.matchAll(/^echoes (\d+)$/gm)];
    return all.length === 0 ? 0 : Number(all[all.length - 1]![1]);
  }

  /** Waits (at most `limitMs`) until the count passes `n`; returns the count. */
  async progressPast(n: number, limitMs: number, what: string): Promise<number> {
    return waitUntil(limitMs, what, () => (this.echoes() > n ? this.echoes() : this.proc.exit !== null ? -1 : undefined), () => this.proc.output()).then((v) => {
      if (v < 0) throw new Error(`${what}: the stream ended\n${this.proc.output()}`);
      return v;
    });
  }

  /** Ends the stream (EOF on stdin); resolves to its summary, or throws with its output if it failed. */
  async close(limitMs = 10_000): Promise<{ echoes: number; maxGapMs: number; retrans: number }> {
    this.proc.child.stdin!.end();
    const timer = setTimeout(() => void this.proc.stop(), limitMs);
    await this.proc.exited;
    clearTimeout(timer);
    const m = /^done (\d+) (\d+) (\d+)$/m.exec(this.proc.out);
    if (m === null || this.proc.exit?.code !== 0) throw new Error(`the stream failed (${JSON.stringify(this.proc.exit)})\n${this.proc.output()}`);
    return { echoes: Number(m[1]), maxGapMs: Number(m[2]), retrans: Number(m[3]) };
  }
}
