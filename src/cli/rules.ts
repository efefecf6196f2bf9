/**
 * `sluice rules check|load|save`: iptables-restore --test, iptables-restore
 * (into the running daemon, atomically) and iptables-save.
 *
 *   sluice rules check [-6] [--mode nfqueue|tun] FILE     offline; exit 0 when sluice would load it
 *   sluice rules load [-6] [--counters] FILE [--socket P] the daemon swaps it in between two batches
 *   sluice rules save [-6] [--socket P]                   the live ruleset with counters
 *
 * `-4` (the default) reads and prints an iptables (IPv4) ruleset, `-6` an
 * ip6tables one, as the two tools are separate in iptables. FILE `-` is
 * standard input. Errors name file, line and column, and the old ruleset
 * stays live.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { controlRequest } from "../control/client.js";
import { DEFAULT_SOCKET_PATH, OP } from "../control/protocol.js";
import { ERR, SluiceError } from "../errors.js";
import { compileSources } from "../rules/engine.js";
import { offlineDeps } from "../rules/targets.js";
import { PROCESS_IO, type CliIo } from "./conntrack.js";

export const RULES_USAGE = `usage: sluice rules COMMAND [options]

  check [-4|-6] [--mode nfqueue|tun] FILE
      parse and compile FILE as sluice would load it (iptables-restore --test);
      exit 0 when it would load, else 1 with FILE:LINE:COL and the reason
  load [-4|-6] [--counters] FILE [--socket PATH]
      replace the running daemon's ruleset of that family atomically
      (iptables-restore); on error nothing changes
  save [-4|-6] [--socket PATH]
      print the running daemon's ruleset with counters (iptables-save -c)

  -4 / -6     IPv4 (iptables, the default) or IPv6 (ip6tables) ruleset
  FILE        a path, or - for standard input
  --counters  take the [packets:bytes] counters from the file (else zero)
  --socket    the daemon's control socket (default ${DEFAULT_SOCKET_PATH})
`;

function readSource(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    throw new SluiceError(ERR.USAGE, `rules: cannot read ${file === "-" ? "standard input" : file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Runs `sluice rules ...`; returns the exit code. */
export async function rulesMain(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const [cmd, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        "4": { type: "boolean" },
        "6": { type: "boolean" },
        mode: { type: "string" },
        counters: { type: "boolean" },
        socket: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new SluiceError(ERR.USAGE, `rules: ${(e as Error).message}\n\n${RULES_USAGE}`);
  }
  const { values, positionals } = parsed;
  if (cmd === undefined || cmd === "help" || values.help === true) {
    io.stdout(RULES_USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (values["4"] === true && values["6"] === true) throw new SluiceError(ERR.USAGE, "rules: -4 and -6 exclude each other");
  const family: 4 | 6 = values["6"] === true ? 6 : 4;
  const key = family === 4 ? "ipv4" : "ipv6";
  const socket = values.socket ?? DEFAULT_SOCKET_PATH;
  const oneFile = (): string => {
    if (positionals.length !== 1) throw new SluiceError(ERR.USAGE, `rules ${cmd}: expected one FILE\n\n${RULES_USAGE}`);
    return positionals[0]!;
  };
  switch (cmd) {
    case "check": {
      const mode = values.mode ?? "nfqueue";
      if (mode !== "nfqueue" && mode !== "tun") throw new SluiceError(ERR.USAGE, `rules check: --mode must be nfqueue or tun, not "${mode}"`);
      const file = oneFile();
      const name = file === "-" ? "(stdin)" : file;
      const c = compileSources({ [key]: { file: name, text: readSource(file) } }, offlineDeps(mode), undefined, values.counters === true);
      const rs = family === 4 ? c.v4! : c.v6!;
      io.stdout(`${name}: ok (${rs.ast.tables.length} tables, ${rs.chainNames.length} chains, ${rs.ruleCount} rules)\n`);
      return 0;
    }
    case "load": {
      const file = oneFile();
      const name = file === "-" ? "(stdin)" : file;
      const f = await controlRequest(socket, { op: OP.RULES_LOAD, rules: { [key]: { file: name, text: readSource(file) } }, ...(values.counters === true ? { counters: true } : {}) });
      if (f.ok === false && f.error !== undefined) throw new SluiceError(ERR.RULES, f.error.message);
      io.stdout(`${name}: loaded${f.count !== undefined ? ` (${f.count} rules)` : ""}\n`);
      return 0;
    }
    case "save": {
      if (positionals.length > 0) throw new SluiceError(ERR.USAGE, `rules save: unexpected argument "${positionals[0]}"`);
      const f = await controlRequest(socket, { op: OP.RULES_SAVE, family: key });
      if (f.ok === false && f.error !== undefined) throw new SluiceError(ERR.RULES, f.error.message);
      io.stdout(f.text ?? "");
      return 0;
    }
    default:
      throw new SluiceError(ERR.USAGE, `rules: unknown command "${cmd}"\n\n${RULES_USAGE}`);
  }
}
