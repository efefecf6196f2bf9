/**
 * `sluice run [--config FILE] [--check]`: the daemon in the foreground.
 *
 * Signals: SIGINT and SIGTERM stop it cleanly (plumbing removed, exit 0);
 * a second one while stopping is ignored (the stop is bounded by the
 * plumbing's command timeouts). SIGHUP reloads the configured ruleset
 * files (rules.ipv4, rules.ipv6): all or nothing, a bad file is logged with
 * its file:line:column and the old ruleset stays live. A fatal error (an
 * exception nothing caught) is logged, the plumbing is removed, and the
 * exit code is 1; after SIGKILL the next start cleans up (state file).
 */
import { parseArgs } from "node:util";
import { defaultConfig, loadConfig, type SluiceConfig } from "../daemon/config.js";
import { createLogger } from "../daemon/log.js";
import { Daemon } from "../daemon/run.js";
import { ERR, SluiceError } from "../errors.js";

export const RUN_USAGE = `usage: sluice run [--config FILE] [--check]

  runs the gateway in the foreground: binds the NFQUEUE queues (or opens
  the TUN device), installs the kernel plumbing it needs, tracks and
  filters every packet, and removes the plumbing on SIGINT/SIGTERM
  --config FILE   YAML configuration (defaults and documentation:
                  config/sluice.yaml); without it every default applies
  --check         validate the configuration, print it resolved, and exit
`;

/** Runs until a signal stops the daemon; resolves with the exit code. */
export async function runMain(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: "string", short: "c" }, check: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new SluiceError(ERR.USAGE, `run: ${(e as Error).message}\n\n${RUN_USAGE}`);
  }
  if (values.help === true) {
    process.stdout.write(RUN_USAGE);
    return 0;
  }
  const cfg: SluiceConfig = values.config !== undefined ? loadConfig(values.config) : defaultConfig();
  if (values.check === true) {
    process.stdout.write(`${values.config ?? "(defaults)"}: ok\n${JSON.stringify(cfg, null, 2)}\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    // Not fatal by itself (capabilities may be granted), but say it early.
    process.stderr.write("sluice: warning: not running as root; binding queues and installing rules need CAP_NET_ADMIN\n");
  }

  const log = createLogger({ level: cfg.log.level, pretty: cfg.log.pretty, base: { instance: cfg.instance } });
  log.info({ config: values.config ?? null, mode: cfg.mode, interfaces: cfg.interfaces, queues: cfg.mode === "nfqueue" ? cfg.nfqueue.queues : undefined, node: process.version }, "sluice starting");

  // Signals are caught before anything is installed, so none can kill us half-way.
  let stopSignal: string | null = null;
  let wake: (() => void) | null = null;
  const onStop = (sig: NodeJS.Signals): void => {
    if (stopSignal !== null) {
      log.warn({ signal: sig }, "already stopping");
      return;
    }
    stopSignal = sig;
    wake?.();
  };
  process.on("SIGINT", onStop);
  process.on("SIGTERM", onStop);
  let daemon: Daemon | null = null;
  process.on("SIGHUP", () => {
    if (daemon === null) log.info("SIGHUP while starting: ignored (the ruleset files are being read now)");
    else daemon.reload();
  });

  let running: Daemon;
  try {
    running = await Daemon.start(cfg, log);
    daemon = running;
  } catch (e) {
    log.error({ err: e }, "sluice failed to start; everything it had set up was removed");
    throw e;
  }
  let fatal: unknown = null;
  const onFatal = (e: unknown): void => {
    if (fatal !== null) return;
    fatal = e;
    log.fatal({ err: e }, "fatal error; stopping");
    wake?.();
  };
  process.on("uncaughtException", onFatal);
  process.on("unhandledRejection", onFatal);

  log.info({ mode: cfg.mode, control: cfg.control.socket, stateFile: Daemon.stateFile(cfg) }, "sluice running");
  if (stopSignal === null) await new Promise<void>((resolve) => { wake = resolve; });
  await running.stop(fatal !== null ? "fatal error" : `signal ${stopSignal}`);
  process.removeListener("SIGINT", onStop);
  process.removeListener("SIGTERM", onStop);
  return fatal !== null ? 1 : 0;
}
