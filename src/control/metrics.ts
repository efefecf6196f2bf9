/**
 * Prometheus metrics (prom-client) on an optional HTTP endpoint.
 *
 * The packet path never touches a metric: it bumps plain numeric fields of
 * its stats objects (PipelineStats, ConntrackStats, QueueCounters). Each
 * metric here has a `collect()` that reads those numbers when Prometheus
 * scrapes, so a packet costs nothing extra and there is no label lookup per
 * packet (STYLE.md; reference/libraries.md). The sources are read through a
 * `MetricsSources` object at every scrape, so the daemon may replace a stats
 * object (a new pipeline after a reload) by assigning the field.
 *
 * Names follow the Prometheus conventions: `sluice_` prefix, base units,
 * `_total` on counters, levels as gauges without a suffix:
 *
 *   sluice_packets_total{verdict="accept"|"drop"}        pipeline verdicts
 *   sluice_pipeline_packets_total, sluice_packets_invalid_total,
 *   sluice_fragments_total, sluice_fragments_reassembled_total, sluice_fragments_dropped_total
 *   sluice_conntrack_entries, sluice_conntrack_max, sluice_conntrack_fill_ratio
 *   sluice_conntrack_<stat>_total                          ConntrackStats (conntrack -S)
 *   sluice_queue_<counter>_total{queue="N"}, sluice_queue_outstanding_packets{queue="N"}
 *   process_* and nodejs_* (prom-client's default metrics, unprefixed as usual)
 *
 * The mean batch size is rate(sluice_queue_packets_received_total) /
 * rate(sluice_queue_batches_total); there is no per-batch histogram, which
 * would cost a bucket search per batch.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { ConntrackStats } from "../conntrack/tracker.js";
import { ERR, SluiceError } from "../errors.js";
import type { PipelineStats } from "../pipeline/index.js";

/**
 * Per-queue counters as the I/O layer keeps them (plain numbers, bumped per
 * batch). Counters only grow; `outstanding` is a level.
 */
export interface QueueCounters {
  /** Packets received from the kernel. */
  received: number;
  /** Verdicts sent (any kind). */
  verdicts: number;
  /** Verdicts that were NF_DROP. */
  dropped: number;
  /** Receive batches (one JS callback each). */
  batches: number;
  /** ENOBUFS on receive: the socket buffer overflowed and the kernel dropped packets. */
  enobufs: number;
  /** Packets received and not yet given a verdict. */
  outstanding: number;
  /** The kernel's `queue_dropped` (/proc/net/netfilter/nfnetlink_queue): the queue was full (maxLen). */
  kernelDropped?: number;
  /** The kernel's `user_dropped`: netlink could not deliver (socket buffer full). */
  userDropped?: number;
}

/** A queue and its counters; `queue` becomes the `queue` label. */
export interface QueueSource {
  readonly queue: number;
  readonly counters: QueueCounters;
}

/** The conntrack table's fill: live entries and the limit (ConnTable has both). */
export interface TableFill {
  readonly count: number;
  readonly max: number;
}

/** What the metrics read at scrape time. Absent sources read as zero (or no series, for queues). */
export interface MetricsSources {
  pipeline?: PipelineStats | null;
  conntrack?: ConntrackStats | null;
  table?: TableFill | null;
  queues?: readonly QueueSource[];
}

/** Options of createMetricsRegistry. */
export interface MetricsRegistryOptions {
  /** prom-client's default process/Node.js metrics (CPU, memory, event loop lag, GC); default true. */
  processMetrics?: boolean;
}

/** PipelineStats field → metric. */
const PIPELINE_COUNTERS: readonly [keyof PipelineStats, string, string][] = [
  ["packets", "sluice_pipeline_packets_total", "Packets that entered the pipeline (each fragment counted)."],
  ["invalid", "sluice_packets_invalid_total", "Packets conntrack classified INVALID (dropped by the current policy)."],
  ["fragments", "sluice_fragments_total", "IP fragments received."],
  ["reassembled", "sluice_fragments_reassembled_total", "Datagrams reassembled from fragments."],
  ["fragmentDrops", "sluice_fragments_dropped_total", "Fragments dropped (overlap, timeout, limits)."],
];

/** ConntrackStats field → metric, named after `conntrack -S` / /proc/net/stat/nf_conntrack where Linux has one. */
const CONNTRACK_COUNTERS: readonly [keyof ConntrackStats, string, string][] = [
  ["found", "sluice_conntrack_found_total", "Packets that matched an existing connection."],
  ["invalid", "sluice_conntrack_invalid_total", "Packets that could not be tracked (INVALID)."],
  ["insert", "sluice_conntrack_inserted_total", "Connections confirmed into the table."],
  ["insertFailed", "sluice_conntrack_insert_failed_total", "Connections that could not be inserted."],
  ["drop", "sluice_conntrack_dropped_total", "Packets dropped because a new connection could not be created (table full)."],
  ["earlyDrop", "sluice_conntrack_early_dropped_total", "Unassured connections evicted to make room (early_drop)."],
  ["searchRestart", "sluice_conntrack_search_restarts_total", "Lookups restarted."],
  ["chainTooLong", "sluice_conntrack_chain_too_long_total", "Inserts refused because a hash chain was too long."],
  ["created", "sluice_conntrack_created_total", "New connections created (confirmed or not)."],
  ["related", "sluice_conntrack_related_total", "ICMP errors related to a known connection."],
  ["untracked", "sluice_conntrack_untracked_total", "Packets left untracked (ND, MLD)."],
  ["reaped", "sluice_conntrack_reaped_total", "Connections expired by the reaper."],
  ["ignored", "sluice_conntrack_ignored_total", "Packets the protocol tracker ignored (no state change)."],
];

/** QueueCounters field → counter metric (labelled by queue). */
const QUEUE_COUNTERS: readonly [keyof QueueCounters, string, string][] = [
  ["received", "sluice_queue_packets_received_total", "Packets received from the kernel queue."],
  ["verdicts", "sluice_queue_verdicts_total", "Verdicts sent to the kernel."],
  ["dropped", "sluice_queue_verdict_drops_total", "Verdicts that dropped the packet."],
  ["batches", "sluice_queue_batches_total", "Receive batches (mean batch size = received / batches)."],
  ["enobufs", "sluice_queue_enobufs_total", "ENOBUFS on receive (the kernel dropped packets: socket buffer full)."],
  ["kernelDropped", "sluice_queue_kernel_dropped_packets_total", "Packets the kernel dropped because the queue was full (queue_dropped)."],
  ["userDropped", "sluice_queue_user_dropped_packets_total", "Packets the kernel could not deliver over netlink (user_dropped)."],
];

function finite(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}

/**
 * A registry with sluice's metrics reading `sources` at scrape time (plus
 * prom-client's default process metrics unless turned off).
 */
export function createMetricsRegistry(sources: MetricsSources, opts: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  const registers = [registry];

  new Counter({
    name: "sluice_packets_total",
    help: "Pipeline verdicts, by verdict.",
    labelNames: ["verdict"],
    registers,
    collect() {
      this.reset();
      const p = sources.pipeline;
      this.inc({ verdict: "accept" }, finite(p?.accepted));
      this.inc({ verdict: "drop" }, finite(p?.dropped));
    },
  });
  for (const [field, name, help] of PIPELINE_COUNTERS) {
    new Counter({
      name, help, registers,
      collect() {
        this.reset();
        this.inc(finite(sources.pipeline?.[field]));
      },
    });
  }
  for (const [field, name, help] of CONNTRACK_COUNTERS) {
    new Counter({
      name, help, registers,
      collect() {
        this.reset();
        this.inc(finite(sources.conntrack?.[field]));
      },
    });
  }

  new Gauge({
    name: "sluice_conntrack_entries", help: "Live connections in the table.", registers,
    collect() {
      this.set(finite(sources.table?.count));
    },
  });
  new Gauge({
    name: "sluice_conntrack_max", help: "Connection limit (nf_conntrack_max).", registers,
    collect() {
      this.set(finite(sources.table?.max));
    },
  });
  new Gauge({
    name: "sluice_conntrack_fill_ratio", help: "Live connections / limit (0..1).", registers,
    collect() {
      const t = sources.table;
      this.set(t != null && t.max > 0 ? finite(t.count) / t.max : 0);
    },
  });

  for (const [field, name, help] of QUEUE_COUNTERS) {
    new Counter({
      name, help, labelNames: ["queue"], registers,
      collect() {
        this.reset();
        for (const q of sources.queues ?? []) {
          const v = q.counters[field];
          // Optional kernel counters: no series until the I/O layer provides them.
          if (v === undefined) continue;
          this.inc({ queue: String(q.queue) }, finite(v));
        }
      },
    });
  }
  new Gauge({
    name: "sluice_queue_outstanding_packets", help: "Packets received and awaiting a verdict.", labelNames: ["queue"], registers,
    collect() {
      this.reset();
      for (const q of sources.queues ?? []) this.set({ queue: String(q.queue) }, finite(q.counters.outstanding));
    },
  });

  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}

/** Options of startMetricsServer. */
export interface MetricsServerOptions extends MetricsRegistryOptions {
  /** TCP port; 0 picks a free one (tests). */
  port: number;
  /** Address to listen on (default 127.0.0.1). */
  address?: string;
  sources: MetricsSources;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The address and port actually bound. */
  readonly address: string;
  readonly port: number;
  /** `http://ADDRESS:PORT/metrics`. */
  readonly url: string;
  readonly registry: Registry;
  /** Stops listening and closes open connections. */
  stop(): Promise<void>;
}

/** `127.0.0.1:9633`, `[::1]:9633`. */
function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A listen error as a SluiceError that names the address and port and says what to do. */
function listenError(err: NodeJS.ErrnoException, address: string, port: number): SluiceError {
  const where = `metrics: cannot listen on ${hostPort(address, port)}`;
  switch (err.code) {
    case "EADDRINUSE":
      return new SluiceError(ERR.LISTEN, `${where}: port ${port} is already in use (another sluice or exporter?); choose another metrics.port`);
    case "EACCES":
      return new SluiceError(ERR.LISTEN, `${where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)`);
    case "EADDRNOTAVAIL":
      return new SluiceError(ERR.LISTEN, `${where}: ${address} is not an address of this host (metrics.address)`);
    default:
      return new SluiceError(ERR.LISTEN, `${where}: ${err.message}`);
  }
}

/**
 * Serves `GET /metrics` on the address and port. Rejects with a SluiceError
 * (ERR.LISTEN) naming the port when it cannot listen.
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const address = opts.address ?? "127.0.0.1";
  const registry = createMetricsRegistry(opts.sources, opts);

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("method not allowed\n");
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (e: Error) => {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end(`error collecting metrics: ${e.message}\n`);
      },
    );
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      server.removeListener("listening", onListening);
      reject(listenError(e, address, opts.port));
    };
    const onListening = (): void => {
      server.removeListener("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ port: opts.port, host: address, exclusive: true });
  });
  // Scrapers are few; never let one keep the daemon from exiting.
  server.unref();
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : opts.port;

  let stopped: Promise<void> | null = null;
  return {
    address,
    port,
    url: `http://${hostPort(address, port)}/metrics`,
    registry,
    stop(): Promise<void> {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        registry.clear();
      });
      return stopped;
    },
  };
}
