#!/usr/bin/env node
/**
 * The `sluice` command: one binary, subcommands dispatched here. Errors the
 * user can fix (SluiceError) print their message and exit 1; usage errors
 * exit 2; anything else is a bug and prints its stack.
 */
import { SluiceError, ERR } from "../errors.js";
import { NativeIoError } from "../io/native.js";
import { PcapError } from "../io/pcap.js";
import { replayMain } from "./replay.js";
import { conntrackMain } from "./conntrack.js";
import { runMain } from "./run.js";
import { statsMain } from "./stats.js";

const USAGE = `usage: sluice <command> [options]

commands:
  run [--config FILE] [--check]
      the gateway daemon in the foreground (NFQUEUE or TUN mode): installs
      its kernel plumbing, tracks and filters every packet, removes the
      plumbing on SIGINT/SIGTERM (sluice run -h)
  replay CAPTURE [--json] [--list] [--events] [--write-accepted OUT.pcap]
                 [--sysctl NAME=VALUE]... [--quiet]
                 [--rules FILE] [--rules6 FILE] [--iface NAME=ADDR/LEN[,...]]...
                 [--route PREFIX=NAME|default=NAME]... [--trace "MATCHES"]
      run every packet of a pcap/pcapng capture through the connection
      tracker and the rulesets (without one: drop INVALID, accept the rest),
      with the capture's timestamps as the clock; the interface hints say
      which interface each packet came in on (the one routing back to its
      source) and where it goes; --trace shows each matching packet's path
      through tables and chains (filter in iptables match syntax, "" = all)
  rules check|load|save [-4|-6] [FILE]
      iptables-restore --test / iptables-restore into the daemon (atomic) /
      iptables-save -c of the live ruleset (sluice rules -h)
  trace [MATCHES...] [--count N] [--seconds S] [--socket PATH]
      live: each matching packet's path through the daemon's tables and
      chains, the rule that decided, the ctstate, the verdict (sluice trace -h)
  conntrack -L|-E|-D|-F|-C [filters] [-o extended,timestamp] [--socket PATH]
      the running daemon's connection table, like conntrack(8): list,
      live events, delete by tuple, flush, count (sluice conntrack -h)
  stats [--json] [--socket PATH]
      the running daemon's counters: queues, table fill, pipeline, conntrack
  help           this text
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "run":
      return runMain(rest);
    case "trace":
      return (await import("./trace.js")).traceMain(rest);
    case "rules":
      // Loaded on demand: the rule compiler is only needed by this command.
      return (await import("./rules.js")).rulesMain(rest);
    case "replay":
      return replayMain(rest);
    case "conntrack":
      return conntrackMain(rest);
    case "stats":
      return statsMain(rest);
    case undefined:
    case "help":
    case "-h":
    case "--help":
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      throw new SluiceError(ERR.USAGE, `unknown command "${cmd}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof SluiceError || err instanceof PcapError || err instanceof NativeIoError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      process.exitCode = err instanceof SluiceError && err.code === ERR.USAGE ? 2 : 1;
    } else {
      process.stderr.write(`sluice: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 70;
    }
  },
);
