/**
 * The Prometheus endpoint: started on an ephemeral port on 127.0.0.1,
 * scraped with fetch and parsed; the numbers follow the stats objects it was
 * given (read at scrape time, nothing pushed per packet); listen errors
 * name the port.
 */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ConntrackStats } from "../../src/conntrack/tracker.js";
import { startMetricsServer, type MetricsServer, type MetricsSources, type QueueCounters } from "../../src/control/metrics.js";
import { ERR, SluiceError } from "../../src/errors.js";
import { PipelineStats } from "../../src/pipeline/index.js";

/** Sample lines of the text exposition format: `name{labels} value`, keyed by `name{labels}` as printed. */
function parse(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t !== null) types.set(t[1]!, t[2]!);
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    samples.set(m[1]!, Number(m[2]));
  }
  return { samples, types };
}

async function scrape(s: MetricsServer): Promise<{ samples: Map<string, number>; types: Map<string, string> }> {
  const res = await fetch(s.url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

function queue(): QueueCounters {
  return { received: 0, verdicts: 0, dropped: 0, batches: 0, enobufs: 0, outstanding: 0 };
}

const servers: MetricsServer[] = [];
const blockers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  await Promise.all(blockers.splice(0).map((b) => new Promise((r) => b.close(r))));
});

async function start(sources: MetricsSources, processMetrics = false): Promise<MetricsServer> {
  const s = await startMetricsServer({ port: 0, address: "127.0.0.1", sources, processMetrics });
  servers.push(s);
  return s;
}

describe("metrics endpoint", () => {
  it("listens on an ephemeral port on 127.0.0.1 and serves /metrics", async () => {
    const s = await start({});
    expect(s.address).toBe("127.0.0.1");
    expect(s.port).toBeGreaterThan(0);
    expect(s.url).toBe(`http://127.0.0.1:${s.port}/metrics`);
    const { samples, types } = await scrape(s);
    // Absent sources read as zero; every name is sluice_-prefixed with a unit-conventional suffix.
    expect(samples.get('sluice_packets_total{verdict="accept"}')).toBe(0);
    expect(samples.get("sluice_conntrack_entries")).toBe(0);
    for (const [name, type] of types) {
      expect(name).toMatch(/^sluice_/);
      if (type === "counter") expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
    }
  });

  it("reads the stats objects at scrape time: counters move when they change", async () => {
    const pipeline = new PipelineStats();
    const conntrack = new ConntrackStats();
    const table = { count: 0, max: 65536 };
    const q0 = queue();
    const q1 = { ...queue(), kernelDropped: 0, userDropped: 0 };
    const sources: MetricsSources = { pipeline, conntrack, table, queues: [{ queue: 0, counters: q0 }, { queue: 1, counters: q1 }] };
    const s = await start(sources);

    let m = (await scrape(s)).samples;
    expect(m.get('sluice_packets_total{verdict="accept"}')).toBe(0);
    expect(m.get("sluice_conntrack_max")).toBe(65536);
    expect(m.get('sluice_queue_packets_received_total{queue="0"}')).toBe(0);
    // Optional kernel counters: a series only for queues that have them.
    expect(m.has('sluice_queue_kernel_dropped_packets_total{queue="0"}')).toBe(false);
    expect(m.get('sluice_queue_kernel_dropped_packets_total{queue="1"}')).toBe(0);

    // What the packet path does: bump plain numbers.
    pipeline.packets += 1000;
    pipeline.accepted += 990;
    pipeline.dropped += 10;
    pipeline.invalid += 7;
    pipeline.fragments += 4;
    pipeline.reassembled += 2;
    conntrack.found += 900;
    conntrack.created += 50;
    conntrack.insert += 48;
    conntrack.earlyDrop += 3;
    table.count = 16384;
    q0.received += 600;
    q0.verdicts += 590;
    q0.dropped += 6;
    q0.batches += 20;
    q0.enobufs += 1;
    q0.outstanding = 10;
    q1.received += 400;
    q1.kernelDropped += 5;

    m = (await scrape(s)).samples;
    expect(m.get('sluice_packets_total{verdict="accept"}')).toBe(990);
    expect(m.get('sluice_packets_total{verdict="drop"}')).toBe(10);
    expect(m.get("sluice_pipeline_packets_total")).toBe(1000);
    expect(m.get("sluice_packets_invalid_total")).toBe(7);
    expect(m.get("sluice_fragments_total")).toBe(4);
    expect(m.get("sluice_fragments_reassembled_total")).toBe(2);
    expect(m.get("sluice_conntrack_found_total")).toBe(900);
    expect(m.get("sluice_conntrack_created_total")).toBe(50);
    expect(m.get("sluice_conntrack_inserted_total")).toBe(48);
    expect(m.get("sluice_conntrack_early_dropped_total")).toBe(3);
    expect(m.get("sluice_conntrack_entries")).toBe(16384);
    expect(m.get("sluice_conntrack_fill_ratio")).toBe(0.25);
    expect(m.get('sluice_queue_packets_received_total{queue="0"}')).toBe(600);
    expect(m.get('sluice_queue_verdicts_total{queue="0"}')).toBe(590);
    expect(m.get('sluice_queue_verdict_drops_total{queue="0"}')).toBe(6);
    expect(m.get('sluice_queue_batches_total{queue="0"}')).toBe(20);
    expect(m.get('sluice_queue_enobufs_total{queue="0"}')).toBe(1);
    expect(m.get('sluice_queue_outstanding_packets{queue="0"}')).toBe(10);
    expect(m.get('sluice_queue_packets_received_total{queue="1"}')).toBe(400);
    expect(m.get('sluice_queue_kernel_dropped_packets_total{queue="1"}')).toBe(5);

    // A replaced stats object (a new pipeline after a reload) is picked up at the next scrape.
    const next = new PipelineStats();
    next.accepted = 3;
    sources.pipeline = next;
    m = (await scrape(s)).samples;
    expect(m.get('sluice_packets_total{verdict="accept"}')).toBe(3);
  });

  it("types: counters for *_total, gauges for levels", async () => {
    const s = await start({ table: { count: 1, max: 2 } });
    const { types } = await scrape(s);
    expect(types.get("sluice_packets_total")).toBe("counter");
    expect(types.get("sluice_conntrack_found_total")).toBe("counter");
    expect(types.get("sluice_queue_enobufs_total")).toBe("counter");
    expect(types.get("sluice_conntrack_entries")).toBe("gauge");
    expect(types.get("sluice_conntrack_max")).toBe("gauge");
    expect(types.get("sluice_conntrack_fill_ratio")).toBe("gauge");
    expect(types.get("sluice_queue_outstanding_packets")).toBe("gauge");
  });

  it("process metrics (prom-client defaults) are on unless turned off", async () => {
    const s = await start({}, true);
    const { samples } = await scrape(s);
    expect(samples.get("process_cpu_seconds_total")).toBeGreaterThanOrEqual(0);
    expect([...samples.keys()].some((k) => k.startsWith("nodejs_heap_size_used_bytes"))).toBe(true);
  });

  it("other paths are 404, other methods 405, HEAD has no body", async () => {
    const s = await start({});
    const base = `http://127.0.0.1:${s.port}`;
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metricsx`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await fetch(`${base}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    expect((await fetch(`${base}/metrics?debug=1`)).status).toBe(200);
  });

  it("stop() closes the port, also with keep-alive connections open", async () => {
    const s = await startMetricsServer({ port: 0, sources: {}, processMetrics: false });
    await scrape(s); // fetch keeps the connection alive
    await s.stop();
    await s.stop(); // idempotent
    await expect(fetch(s.url)).rejects.toThrow();
  });
});

describe("listen errors name the port", () => {
  it("EADDRINUSE", async () => {
    const blocker = createServer();
    blockers.push(blocker);
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    const err = await startMetricsServer({ port, address: "127.0.0.1", sources: {}, processMetrics: false }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SluiceError);
    expect((err as SluiceError).code).toBe(ERR.LISTEN);
    expect((err as SluiceError).message).toBe(
      `metrics: cannot listen on 127.0.0.1:${port}: port ${port} is already in use (another sluice or exporter?); choose another metrics.port`,
    );
  });

  it("an address that is not on this host", async () => {
    // 192.0.2.1 (TEST-NET-1) is assigned to no interface here.
    await expect(startMetricsServer({ port: 0, address: "192.0.2.1", sources: {}, processMetrics: false })).rejects.toThrow(
      /^metrics: cannot listen on 192\.0\.2\.1:0: 192\.0\.2\.1 is not an address of this host \(metrics\.address\)$/,
    );
  });

  it("IPv6 addresses are bracketed", async () => {
    const s = await startMetricsServer({ port: 0, address: "::1", sources: {}, processMetrics: false }).catch(() => null);
    if (s === null) return; // no IPv6 loopback in this environment
    servers.push(s);
    expect(s.url).toBe(`http://[::1]:${s.port}/metrics`);
    expect((await fetch(s.url)).status).toBe(200);
  });
});
