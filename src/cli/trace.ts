/**
 * `sluice trace [MATCHES...] [--count N] [--seconds S] [--socket PATH]`:
 * the live path of packets through the running daemon's tables and chains
 * (format: rules/trace.ts). MATCHES is iptables match syntax, e.g.
 * `sluice trace -p tcp --dport 22 -i lan0`; nothing = every packet. Ends
 * after N packets, S seconds, Ctrl-C, or when the daemon stops.
 */
import { ControlClient } from "../control/client.js";
import { DEFAULT_SOCKET_PATH, OP } from "../control/protocol.js";
import { ERR, SluiceError } from "../errors.js";
import { PROCESS_IO, type CliIo } from "./conntrack.js";

export const TRACE_USAGE = `usage: sluice trace [MATCHES...] [--count N] [--seconds S] [--socket PATH]

  shows, live, each matching packet's way through the running daemon's
  tables and chains: the ctstate each table saw, the rules that matched
  (jumps, gotos, RETURN, LOG...), the rule or policy that decided, the verdict
  MATCHES     iptables match syntax, e.g. -p tcp --dport 22 -i lan0
              or -m conntrack --ctstate NEW; none: every packet
  --count N   stop after N packets
  --seconds S stop after S seconds
  --socket    the daemon's control socket (default ${DEFAULT_SOCKET_PATH})
`;

/** Runs `sluice trace`; returns the exit code. */
export async function traceMain(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  let socket = DEFAULT_SOCKET_PATH;
  let count = Infinity;
  let seconds = Infinity;
  const match: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    const value = (): string => {
      const v = argv[++k];
      if (v === undefined) throw new SluiceError(ERR.USAGE, `trace: ${a} needs a value\n\n${TRACE_USAGE}`);
      return v;
    };
    if (a === "-h" || a === "--help") {
      io.stdout(TRACE_USAGE);
      return 0;
    } else if (a === "--socket") socket = value();
    else if (a === "--count") {
      count = Number(value());
      if (!Number.isInteger(count) || count < 1) throw new SluiceError(ERR.USAGE, "trace: --count must be a positive integer");
    } else if (a === "--seconds") {
      seconds = Number(value());
      if (!(seconds > 0)) throw new SluiceError(ERR.USAGE, "trace: --seconds must be a positive number");
    } else match.push(/[\s"\\]/.test(a) ? `"${a.replace(/["\\]/g, (c) => `\\${c}`)}"` : a);
  }
  const client = await ControlClient.connect(socket);
  let shown = 0;
  let finish: () => void = () => {};
  const ended = new Promise<void>((resolve) => { finish = resolve; });
  const stop = (): void => finish();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const timer = Number.isFinite(seconds) ? setTimeout(stop, seconds * 1000) : null;
  try {
    const { done } = await client.subscribe({ op: OP.TRACE, match: match.join(" ") },
      (lines) => {
        io.stdout(`${lines.join("\n")}\n`);
        if (lines.length > 0 && lines[0]!.startsWith("    ") === false) shown++;
        if (shown >= count) finish();
      },
      () => {});
    let daemonGone = false;
    await Promise.race([ended, done.then(() => { daemonGone = true; })]);
    io.stderr(`sluice: ${shown} packets traced\n`);
    if (daemonGone) throw new SluiceError(ERR.CONTROL_NOT_RUNNING, `sluice stopped (the control connection on ${socket} closed)`);
    return 0;
  } finally {
    if (timer !== null) clearTimeout(timer);
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    client.close();
  }
}
