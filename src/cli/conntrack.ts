/**
 * `sluice conntrack`: conntrack-tools' command line against the daemon's
 * control socket. Output is byte-for-byte what `conntrack` prints for the
 * same table (the daemon formats the lines with conntrack/format.ts); the
 * summary lines name sluice instead of claiming to be conntrack v1.4.7.
 *
 * Options are parsed like conntrack's getopt_long: `-p tcp`, `-ptcp`,
 * `--proto tcp`, `--proto=tcp`. An option conntrack-tools has and sluice
 * does not is refused with a reason, never silently ignored.
 */
import { compileFilter, FILTER_OPTIONS, parseEventMask, setFilterOption, type FilterSpec } from "../control/filter.js";
import { ControlClient, controlRequest } from "../control/client.js";
import { DEFAULT_SOCKET_PATH, OP, type Request } from "../control/protocol.js";
import { ERR, SluiceError } from "../errors.js";

/** What sluice says instead of "conntrack v1.4.7 (conntrack-tools): ". */
export const SUMMARY_PREFIX = "sluice (conntrack-tools compatible): ";

export const CONNTRACK_USAGE = `usage: sluice conntrack COMMAND [options] [--socket PATH]

commands (as conntrack(8)):
  -L, --dump [conntrack]    list the connection tracking table
  -E, --event [conntrack]   print events until interrupted (Ctrl-C)
  -D, --delete [conntrack]  delete the entries matching the filters (at least one)
  -F, --flush [conntrack]   delete every entry (-f ipv4|ipv6: of one family)
  -C, --count [conntrack]   print the number of entries

filters (-L, -E, -D; every given one must match):
  -f, --family ipv4|ipv6              -p, --proto NAME|NUMBER
  -s, --src, --orig-src ADDR[/LEN]    -d, --dst, --orig-dst ADDR[/LEN]
  -r, --reply-src ADDR[/LEN]          -q, --reply-dst ADDR[/LEN]
  --mask-src MASK  --mask-dst MASK    (masks for -s/-d, written as addresses)
  --sport, --orig-port-src PORT       --dport, --orig-port-dst PORT
  --reply-port-src PORT               --reply-port-dst PORT     (need -p tcp|udp)
  --icmp-type N  --icmp-code N  --icmp-id N                     (need -p icmp|icmpv6)
  --state STATE[,...]   TCP state: NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT
                        CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE LISTEN  (need -p tcp)
  -u, --status STATUS[,...]   ASSURED SEEN_REPLY UNREPLIED ... (all must hold)
  -m, --mark MARK[/MASK]
  -D matches an entry by either direction's tuple: "-s A -d B" also deletes
  the connection whose reply goes from A to B.

output:
  -o, --output extended[,timestamp]   extended: l3 columns; timestamp: -E only
  -e, --event-mask ALL|NEW|UPDATES|DESTROY[,...]                   (-E only)

  --socket PATH   the daemon's control socket (default ${DEFAULT_SOCKET_PATH})

Not supported (refused): -G -I -A -U -R -S -V, -z, -t, -l, --label-add,
--label-del, -c, -n, -g, -j, -w, --orig-zone, --reply-zone, --tuple-src,
--tuple-dst, -b, -i, -a, GRE keys, SCTP vtags, DCCP roles, -o xml|save|id|
ktimestamp|labels|userspace, the expect/dying/unconfirmed tables.
`;

/** Commands, by the letter conntrack uses. */
type Command = "L" | "E" | "D" | "F" | "C" | "h";

const COMMANDS: Readonly<Record<string, Command>> = Object.freeze({
  "-L": "L", "--dump": "L",
  "-E": "E", "--event": "E",
  "-D": "D", "--delete": "D",
  "-F": "F", "--flush": "F",
  "-C": "C", "--count": "C",
  "-h": "h", "--help": "h",
});

/** conntrack-tools options sluice does not have, with why or what to use instead. */
const UNSUPPORTED: Readonly<Record<string, string>> = Object.freeze({
  "-G": "use -L with filters", "--get": "use -L with filters",
  "-I": "sluice creates entries only from packets", "--create": "sluice creates entries only from packets",
  "-A": "sluice creates entries only from packets", "--add": "sluice creates entries only from packets",
  "-U": "entries cannot be edited yet", "--update": "entries cannot be edited yet",
  "-R": "entries cannot be loaded", "--load-file": "entries cannot be loaded",
  "-S": "use `sluice stats`", "--stats": "use `sluice stats`",
  "-V": "use `sluice help`", "--version": "use `sluice help`",
  "-z": "counters cannot be zeroed", "--zero": "counters cannot be zeroed",
  "-t": "timeouts cannot be set or matched", "--timeout": "timeouts cannot be set or matched",
  "-l": "sluice has no conntrack labels", "--label": "sluice has no conntrack labels",
  "--label-add": "sluice has no conntrack labels", "--label-del": "sluice has no conntrack labels",
  "-c": "sluice has no secmark", "--secmark": "sluice has no secmark",
  "-n": "NAT filters are not implemented yet", "--src-nat": "NAT filters are not implemented yet",
  "-g": "NAT filters are not implemented yet", "--dst-nat": "NAT filters are not implemented yet",
  "-j": "NAT filters are not implemented yet", "--any-nat": "NAT filters are not implemented yet",
  "-a": "NAT filters are not implemented yet", "--nat-range": "NAT filters are not implemented yet",
  "-w": "sluice has no conntrack zones", "--zone": "sluice has no conntrack zones",
  "--orig-zone": "sluice has no conntrack zones", "--reply-zone": "sluice has no conntrack zones",
  "--tuple-src": "sluice has no expectation table", "--tuple-dst": "sluice has no expectation table",
  "-b": "the daemon bounds each subscriber's queue itself and reports lost events",
  "--buffer-size": "the daemon bounds each subscriber's queue itself and reports lost events",
  "-i": "entry ids are not shown", "--id": "entry ids are not shown",
  "--srckey": "GRE is tracked without keys", "--orig-key-src": "GRE is tracked without keys",
  "--dstkey": "GRE is tracked without keys", "--orig-key-dst": "GRE is tracked without keys",
  "--reply-key-src": "GRE is tracked without keys", "--reply-key-dst": "GRE is tracked without keys",
  "--orig-vtag": "SCTP is tracked as generic", "--reply-vtag": "SCTP is tracked as generic",
  "--role": "DCCP is tracked as generic",
});

/** Options (besides the filters) that take a value. */
const VALUE_OPTIONS = new Set(["-o", "--output", "-e", "--event-mask", "--socket"]);

/** A parsed `sluice conntrack` command line. */
export interface ConntrackArgs {
  command: Command;
  filter: FilterSpec;
  /** Whether any filter option was given. */
  filtered: boolean;
  extended: boolean;
  timestamp: boolean;
  events?: string[];
  socket: string;
}

function usage(msg: string): never {
  throw new SluiceError(ERR.USAGE, `conntrack: ${msg}`);
}

/** Parses argv (after `conntrack`). Throws SluiceError(USAGE) naming the option at fault. */
export function parseConntrackArgs(argv: readonly string[]): ConntrackArgs {
  const a: ConntrackArgs = { command: "h", filter: {}, filtered: false, extended: false, timestamp: false, socket: DEFAULT_SOCKET_PATH };
  let command: Command | null = null;
  let output = false, socketGiven = false;
  for (let k = 0; k < argv.length; k++) {
    const tok = argv[k];
    let name = tok, value: string | undefined;
    if (tok.startsWith("--")) {
      const eq = tok.indexOf("=");
      if (eq > 0) { name = tok.slice(0, eq); value = tok.slice(eq + 1); }
    } else if (tok.startsWith("-") && tok.length > 2) {
      name = tok.slice(0, 2); value = tok.slice(2); // getopt: "-ptcp", "-s10.0.0.1", "-Lconntrack"
    } else if (!tok.startsWith("-")) {
      usage(`unexpected argument "${tok}"`);
    }
    const cmd = COMMANDS[name];
    if (cmd !== undefined) {
      if (command !== null) usage("only one command at a time (invalid commands combination)");
      command = cmd;
      // An optional table name, as conntrack takes one.
      const table = value ?? (k + 1 < argv.length && !argv[k + 1].startsWith("-") ? argv[++k] : undefined);
      if (table !== undefined && table !== "conntrack") {
        usage(table === "expect" || table === "expectation" || table === "dying" || table === "unconfirmed"
          ? `the ${table} table is not supported: sluice has only the conntrack table`
          : `unknown table "${table}"`);
      }
      continue;
    }
    const why = UNSUPPORTED[name];
    if (why !== undefined) usage(`${name} is not supported by sluice (${why})`);
    const isFilter = FILTER_OPTIONS[name] !== undefined;
    if (!isFilter && !VALUE_OPTIONS.has(name)) usage(`unknown option "${tok}"`);
    if (value === undefined) {
      if (k + 1 >= argv.length) usage(`${name} needs a value`);
      value = argv[++k];
    }
    if (isFilter) {
      setFilterOption(a.filter, name, value);
      a.filtered = true;
    } else if (name === "-o" || name === "--output") {
      if (output) usage("-o given more than once");
      output = true;
      for (const o of value.split(",")) {
        if (o === "extended") a.extended = true;
        else if (o === "timestamp") a.timestamp = true;
        else if (["xml", "save", "id", "ktimestamp", "labels", "userspace"].includes(o)) usage(`-o ${o} is not supported by sluice (extended and timestamp are)`);
        else usage(`-o: unknown output format "${o}" (extended, timestamp)`);
      }
    } else if (name === "-e" || name === "--event-mask") {
      if (a.events !== undefined) usage("-e given more than once");
      a.events = value.split(",");
      parseEventMask(a.events);
    } else {
      if (socketGiven) usage("--socket given more than once");
      socketGiven = true;
      a.socket = value;
    }
  }
  if (command === null) usage("no command given (one of -L, -E, -D, -F, -C; -h for help)");
  a.command = command;
  // Which options each command takes (conntrack's commands_v_options).
  const filterKeys = Object.keys(a.filter);
  if (command === "F" || command === "C" || command === "h") {
    const extra = command === "F" ? filterKeys.filter((k) => k !== "family") : filterKeys;
    if (extra.length > 0) usage(`-${command} takes no filter${command === "F" ? " other than -f" : ""}`);
    if (output) usage(`-o cannot be used with -${command}`);
  }
  if (a.events !== undefined && command !== "E") usage("-e/--event-mask is for -E only");
  if (command === "D" && !a.filtered) usage("you need to supply parameters to `-D' (-F deletes everything)");
  if (command !== "F" && a.filtered) compileFilter(a.filter); // refuse a bad filter before reaching the daemon
  return a;
}

/** Where output goes (the process's streams, or a test's buffers). */
export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
  /** Ends `-E` when aborted (SIGINT/SIGTERM in the real CLI). */
  signal?: AbortSignal;
}

let epipeHooked = false;

/** The process's streams; a reader that goes away (`| head`) ends the command quietly, as SIGPIPE ends conntrack. */
export const PROCESS_IO: CliIo = {
  stdout: (s) => {
    if (!epipeHooked) {
      epipeHooked = true;
      process.stdout.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EPIPE") process.exit(0);
        throw e;
      });
    }
    process.stdout.write(s);
  },
  stderr: (s) => { process.stderr.write(s); },
};

/** Runs `sluice conntrack ARGS`; returns the exit code (conntrack's: 0, or 1 when -D deleted nothing). */
export async function conntrackMain(argv: readonly string[], io: CliIo = PROCESS_IO): Promise<number> {
  const a = parseConntrackArgs(argv);
  const printLines = (lines: string[]): void => { io.stdout(`${lines.join("\n")}\n`); };
  switch (a.command) {
    case "h":
      io.stdout(CONNTRACK_USAGE);
      return 0;
    case "L": {
      const f = await controlRequest(a.socket, { op: OP.LIST, filter: a.filter as Record<string, unknown>, extended: a.extended }, printLines);
      io.stderr(`${SUMMARY_PREFIX}${f.count ?? 0} flow entries have been shown.\n`);
      return 0;
    }
    case "D": {
      const f = await controlRequest(a.socket, { op: OP.DELETE, filter: a.filter as Record<string, unknown>, extended: a.extended }, printLines);
      const n = f.count ?? 0;
      io.stderr(`${SUMMARY_PREFIX}${n} flow entries have been deleted.\n`);
      return n === 0 ? 1 : 0;
    }
    case "F": {
      const req: Request = { op: OP.FLUSH };
      if (a.filter.family !== undefined) req.family = a.filter.family;
      await controlRequest(a.socket, req);
      io.stderr(`${SUMMARY_PREFIX}connection tracking table has been emptied.\n`);
      return 0;
    }
    case "C": {
      const f = await controlRequest(a.socket, { op: OP.COUNT });
      io.stdout(`${f.count ?? 0}\n`);
      return 0;
    }
    case "E":
      return events(a, io);
  }
}

/** `-E`: prints event lines until the signal fires (or the daemon goes away). */
async function events(a: ConntrackArgs, io: CliIo): Promise<number> {
  const req: Request = { op: OP.EVENTS, filter: a.filter as Record<string, unknown>, extended: a.extended, timestamp: a.timestamp };
  if (a.events !== undefined) req.events = a.events;
  const client = await ControlClient.connect(a.socket);
  let shown = 0, lost = 0;
  let signal = io.signal;
  let cleanup = (): void => {};
  if (signal === undefined) {
    // The real CLI: SIGINT/SIGTERM end the stream with conntrack's summary.
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    cleanup = () => { process.off("SIGINT", stop); process.off("SIGTERM", stop); };
    signal = ac.signal;
  }
  try {
    const { done } = await client.subscribe(req,
      (lines) => { shown += lines.length; io.stdout(`${lines.join("\n")}\n`); },
      (total) => {
        if (total > lost) {
          io.stderr(`sluice: WARNING: ${total - lost} events lost (${total} in all): this reader is too slow, or the daemon's event ring overflowed\n`);
          lost = total;
        }
      });
    const aborted = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    let daemonGone = false;
    await Promise.race([aborted, done.then(() => { daemonGone = true; })]);
    client.close();
    io.stderr(`${SUMMARY_PREFIX}${shown} flow events have been shown.\n`);
    if (daemonGone) throw new SluiceError(ERR.CONTROL_NOT_RUNNING, `sluice stopped (the control connection on ${a.socket} closed)`);
    return 0;
  } finally {
    cleanup();
    client.close();
  }
}
