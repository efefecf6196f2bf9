/**
 * The daemon: `sluice run`. It joins the pieces and owns their lifetimes.
 *
 * ```
 *  start:  recover stale plumbing (state file of a crashed run)
 *          → pipeline (conntrack, defrag) → control socket → route mirror
 *          → I/O: NFQUEUE queues bound  |  TUN device + raw socket
 *          → plumbing installed (rules / policy routing, sysctls; state file)
 *          → metrics, counter summary, housekeeping timer → "sluice running"
 *
 *  NFQUEUE batch:  rows ─▶ pipeline.process ─▶ verdict per row (one sendmsg per batch)
 *                  fragments: held (STOLEN) by tag = queue·slots + slot; the
 *                  datagram's verdict goes to every fragment by its (id, slot)
 *  TUN batch:      rows ─▶ pipeline.process ─▶ accepted rows out through the
 *                  raw socket in one sendmmsg (SO_MARK); held fragments are
 *                  copied to a fragment store and sent (or dropped) with their datagram
 *
 *  stop (SIGINT/SIGTERM): plumbing removed first (nothing new is diverted),
 *          then queues closed (held packets get nfqueue.defaultVerdict),
 *          device closed, servers closed → "sluice stopped", exit 0
 * ```
 *
 * Why the plumbing goes in after the queues are bound: from the moment the
 * NFQUEUE rules exist, packets are queued; a queue nobody listens on drops
 * them (or, with --queue-bypass, lets them pass unfiltered). Binding first
 * closes that window. On stop the order is reversed for the same reason.
 *
 * One thread, one pipeline for every queue: `--queue-balance` hashes both
 * directions of a flow to the same queue, and one connection table serves
 * them all. Workers (one pipeline per queue) are a later step.
 *
 * The clock of the pipeline is `performance.now()` (monotonic, ms), read
 * once per batch; the control socket shows timeouts relative to it.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { join } from "node:path";
import type { Logger } from "pino";
import { PKT } from "../conntrack/tracker.js";
import { startMetricsServer, type MetricsServer, type QueueCounters } from "../control/metrics.js";
import { ControlServer } from "../control/server.js";
import { HOOK, LIMIT, NF, SKB_INFO } from "../io/native-constants.js";
import { NfQueue, readNfQueueProc } from "../io/nfqueue.js";
import { RawSocket } from "../io/rawsock.js";
import { DESC, Tun } from "../io/tun.js";
import { Pipeline, VERDICT } from "../pipeline/index.js";
import { HOOK as RHOOK } from "../rules/context.js";
import type { RouteSnapshot } from "../route/table.js";
import { RouteMirror } from "../route/mirror.js";
import { OP, type Frame, type Request } from "../control/protocol.js";
import { ERR, SluiceError } from "../errors.js";
import { RuleEngine, type RulesSources } from "../rules/engine.js";
import { RuleError } from "../rules/match-api.js";
import { engineDeps, type TargetEffects } from "../rules/targets.js";
import { TraceFilter, TraceHub, Tracer } from "../rules/trace.js";
import type { SluiceConfig } from "./config.js";
import { CounterSummary, RateLimitedLog } from "./log.js";
import { installPlumbing, recoverStale, removePlumbing, type InstalledPlumbing, type PlumbingSpec } from "./plumbing.js";

/** Housekeeping period (conntrack reap, fragment expiry, event pump, queue counters), ms. */
const TICK_MS = 100;
/** Native counters are read (they allocate a small object) once per this many ticks. */
const COUNTER_TICKS = 10;
/** Bytes at the end of each NFQUEUE slot for payload growth (NAT and helpers rewrite in place). */
const SLOT_HEADROOM = 256;
/** One rate-limited line per error kind per this many ms. */
const ERROR_LOG_INTERVAL_MS = 10_000;
/** A held fragment's bytes in TUN mode (the batch slab is reused by the next batch). */
const FRAG_STORE_CAPACITY = 64 * 128; // Defragmenter defaults: 64 queues × 128 fragments

/** Per-queue counters, bumped per batch (metrics and `sluice stats` read them). */
class QueueCounterSet implements QueueCounters {
  received = 0;
  verdicts = 0;
  dropped = 0;
  batches = 0;
  enobufs = 0;
  outstanding = 0;
  kernelDropped = 0;
  userDropped = 0;
  batchMax = 0;
  /** TUN: packets written back (raw socket), and those the kernel refused. */
  sent = 0;
  sendErrors = 0;
  /** TUN: packets of the device's own link (IPv6 link-local or multicast), not forwarded. */
  linkLocal = 0;
  constructor(readonly queue: number) {}
}

/** A running daemon. */
export class Daemon {
  readonly cfg: SluiceConfig;
  readonly log: Logger;
  readonly pipeline: Pipeline;
  readonly startedAt = performance.now();
  private readonly errors: RateLimitedLog;
  private readonly counters: QueueCounterSet[] = [];
  private queues: NfQueue[] = [];
  /** NFQUEUE: packet id per tag (queue index · slots + slot), for verdicts given after the batch. */
  private heldIds = new Uint32Array(0);
  private slotsPerQueue = 0;
  private tun: Tun | null = null;
  private raw: RawSocket | null = null;
  private outDesc = new Uint32Array(0);
  private fragStore: Uint8Array | null = null;
  private fragLen = new Int32Array(FRAG_STORE_CAPACITY);
  private fragFree = new Int32Array(FRAG_STORE_CAPACITY);
  private fragFreeTop = 0;
  private fragSlot = 0;
  private control: ControlServer | null = null;
  private metrics: MetricsServer | null = null;
  private routes: RouteMirror | null = null;
  private plumbing: InstalledPlumbing | null = null;
  private summary: CounterSummary | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  private stopping: Promise<void> | null = null;
  /** The rule engine (always there; without a ruleset for a family, that family keeps "drop INVALID, accept the rest"). */
  readonly rules: RuleEngine;
  private readonly effects: TargetEffects;
  private readonly traces = new TraceHub();
  private readonly expired = (d: Pipeline["defrag"]): void => {
    for (let k = 0; k < d.releasedCount; k++) this.verdictTag(d.releasedTags[k]!, NF.DROP);
  };

  private constructor(cfg: SluiceConfig, log: Logger) {
    this.cfg = cfg;
    this.log = log;
    this.errors = new RateLimitedLog(log, ERROR_LOG_INTERVAL_MS);
    this.pipeline = new Pipeline({ conntrack: cfg.conntrack });
    const { deps, effects } = engineDeps(cfg.mode, {
      log,
      send: (buf, len) => this.raw !== null && this.raw.sendOne(buf, 0, len) === 1,
      nflogDir: join(cfg.stateDir, "nflog"),
      ifname: (i) => this.routes?.ifnameOf(i),
    });
    this.rules = new RuleEngine(deps);
    this.effects = effects!;
    this.pipeline.rules = this.rules;
  }

  /** The configured ruleset files, read (a missing file is an error naming it). */
  private rulesFromFiles(): RulesSources {
    const src: RulesSources = {};
    const read = (path: string): string => {
      try {
        return readFileSync(path, "utf8");
      } catch (e) {
        throw new SluiceError(ERR.RULES, `ruleset ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
      }
    };
    if (this.cfg.rules.ipv4 !== null) src.ipv4 = { file: this.cfg.rules.ipv4, text: read(this.cfg.rules.ipv4) };
    if (this.cfg.rules.ipv6 !== null) src.ipv6 = { file: this.cfg.rules.ipv6, text: read(this.cfg.rules.ipv6) };
    return src;
  }

  /**
   * Loads rulesets (all or nothing; the old ones stay live on any error).
   * Runs between batches: the event loop never interleaves it with one.
   */
  loadRules(src: RulesSources, counters = false, why = "load"): number {
    const c = this.rules.load(src, counters);
    if (this.traces.tracers.size > 0) this.attachTraces(true);
    const n = (c.v4?.ruleCount ?? 0) + (c.v6?.ruleCount ?? 0);
    this.log.info({ why, ipv4: src.ipv4?.file, ipv6: src.ipv6?.file, rules4: c.v4?.ruleCount, rules6: c.v6?.ruleCount }, "ruleset loaded");
    return n;
  }

  /** SIGHUP: reload the configured files; a bad file is logged and the old ruleset stays. */
  reload(): void {
    if (this.cfg.rules.ipv4 === null && this.cfg.rules.ipv6 === null) {
      this.log.info("SIGHUP: no ruleset files configured (rules.ipv4, rules.ipv6); nothing to reload");
      return;
    }
    try {
      this.loadRules(this.rulesFromFiles(), false, "SIGHUP");
    } catch (e) {
      if (!(e instanceof SluiceError)) throw e;
      this.log.error({ err: { code: e.code, message: e.message } }, "SIGHUP: ruleset refused; the previous ruleset stays live");
    }
  }

  private rulesLoadOp(req: Request): Frame {
    const r = req.rules;
    if (r === undefined || (r.ipv4 === undefined && r.ipv6 === undefined)) throw new SluiceError(ERR.USAGE, "rules.load: give rules.ipv4 and/or rules.ipv6 as {file, text}");
    for (const f of [r.ipv4, r.ipv6]) {
      if (f !== undefined && (typeof f.file !== "string" || typeof f.text !== "string")) throw new SluiceError(ERR.USAGE, "rules.load: each ruleset is {file: string, text: string}");
    }
    try {
      return { ok: true, count: this.loadRules(r, req.counters === true, "sluice rules load") };
    } catch (e) {
      if (e instanceof RuleError) this.log.warn({ err: { code: e.code, message: e.message } }, "sluice rules load: ruleset refused; the previous ruleset stays live");
      throw e;
    }
  }

  /** Points the pipeline and the live rulesets at the trace hub (or away from it). */
  private attachTraces(on: boolean): void {
    this.rules.tracer = on ? this.traces : null;
    for (const f of [4, 6] as const) {
      const rs = this.rules.forFamily(f);
      if (rs !== null) rs.onMatch = on ? this.traces.onMatch : null;
    }
  }

  /** `sluice trace`: a tracer for this client until it leaves. */
  private traceOp(req: Request, write: (lines: string[]) => void): () => void {
    if (this.rules.forFamily(4) === null && this.rules.forFamily(6) === null) {
      throw new SluiceError(ERR.RULES, "trace: no ruleset is loaded (the policy is drop INVALID, accept the rest; there are no chains to trace)");
    }
    const ifname = (i: number): string | undefined => this.routes?.ifnameOf(i);
    const { deps } = engineDeps(this.cfg.mode, null);
    const filter = new TraceFilter(typeof req.match === "string" ? req.match : "", deps, ifname);
    const t = new Tracer(filter, (block) => write(block.trimEnd().split("\n")), ifname);
    this.traces.tracers.add(t);
    this.attachTraces(true);
    this.log.info({ match: filter.text }, "trace started");
    return () => {
      this.traces.tracers.delete(t);
      if (this.traces.tracers.size === 0) this.attachTraces(false);
      this.log.info({ match: filter.text, traced: t.traced }, "trace ended");
    };
  }

  private rulesSaveOp(req: Request): Frame {
    const family = req.family === "ipv6" ? 6 : req.family === "ipv4" || req.family === undefined ? 4 : 0;
    if (family === 0) throw new SluiceError(ERR.USAGE, `rules.save: family must be ipv4 or ipv6, not ${JSON.stringify(req.family)}`);
    const text = this.rules.save(family, `Generated by sluice (instance ${this.cfg.instance}) on ${new Date().toString()}`);
    if (text === null) throw new SluiceError(ERR.RULES, `no IPv${family} ruleset is loaded (the policy for IPv${family} is: drop INVALID, accept the rest)`);
    return { ok: true, text };
  }

  /** The state file of this instance. */
  static stateFile(cfg: SluiceConfig): string {
    return join(cfg.stateDir, `${cfg.instance}.json`);
  }

  /**
   * Starts everything (see the file comment). On failure, whatever was
   * started is stopped again and the error is thrown.
   */
  static async start(cfg: SluiceConfig, log: Logger): Promise<Daemon> {
    const d = new Daemon(cfg, log);
    try {
      await d.startAll();
    } catch (e) {
      await d.teardown();
      throw e;
    }
    return d;
  }

  private async startAll(): Promise<void> {
    const { cfg, log } = this;
    const stateFile = Daemon.stateFile(cfg);
    recoverStale(stateFile, { log });
    // The ruleset first: a bad file refuses the start before anything is installed.
    const src = this.rulesFromFiles();
    if (src.ipv4 !== undefined || src.ipv6 !== undefined) this.loadRules(src, false, "start");

    this.control = await ControlServer.listen({
      path: cfg.control.socket,
      ct: this.pipeline.ct,
      stats: () => this.statsObject(),
      now: () => performance.now(),
      onError: (e) => this.errors.error("control", e instanceof Error ? e : { err: String(e) }, "control socket request failed"),
      handlers: {
        [OP.RULES_LOAD]: (req) => this.rulesLoadOp(req),
        [OP.RULES_SAVE]: (req) => this.rulesSaveOp(req),
      },
      streams: { [OP.TRACE]: (req, write) => this.traceOp(req, write) },
    });
    this.routes = await RouteMirror.start({
      onChange: (snap) => {
        log.debug({ generation: snap.generation }, "routes and addresses changed");
        this.pipeline.routes = snap;
        this.rules.setInterfaceNames((i) => snap.ifnameOf(i));
      },
      onError: (e) => this.errors.warn("route-reload", e, "route mirror: reload failed; keeping the previous snapshot"),
    });

    this.pipeline.routes = this.routes.snapshot;
    this.rules.setInterfaceNames((i) => this.routes?.ifnameOf(i));
    // Sends REJECT replies (both modes) and, in TUN mode, every accepted packet; marked so sluice's rules skip them.
    this.raw = new RawSocket({ mark: cfg.reinjectMark });
    if (cfg.mode === "nfqueue") this.openQueues();
    else this.openTun();

    this.plumbing = installPlumbing(this.plumbingSpec(stateFile), log);

    if (cfg.metrics.port !== null) {
      this.metrics = await startMetricsServer({
        port: cfg.metrics.port,
        address: cfg.metrics.address,
        sources: { pipeline: this.pipeline.stats, conntrack: this.pipeline.ct.stats, table: this.pipeline.ct.table, queues: this.counters.map((c) => ({ queue: c.queue, counters: c })) },
      });
      log.info({ url: this.metrics.url }, "metrics endpoint listening");
    }
    this.summary = new CounterSummary(log, { pipeline: this.pipeline.stats, conntrack: this.pipeline.ct.stats }, {
      intervalSeconds: cfg.log.summaryInterval,
      gauges: () => ({ connections: this.pipeline.ct.table.count, enobufs: this.counters.reduce((a, c) => a + c.enobufs, 0) }),
    });
    this.summary.start();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** The plumbing this config needs (plumbing.ts). */
  private plumbingSpec(stateFile: string): PlumbingSpec {
    const { cfg } = this;
    const interfaces = [...cfg.interfaces.lan, ...cfg.interfaces.wan];
    return {
      instance: cfg.instance,
      mode: cfg.mode,
      stateFile,
      interfaces,
      families: { v4: true, v6: true },
      queues: cfg.nfqueue.queues,
      queueBypass: cfg.nfqueue.queueBypass,
      reinjectMark: cfg.reinjectMark,
      tun:
        cfg.mode === "tun"
          ? {
              device: this.tun!.name,
              create: false,
              addresses: cfg.tun.addresses,
              mtu: cfg.tun.mtu,
              // Both directions must cross sluice: LAN ingress and WAN ingress (replies).
              iifs: [...new Set([...cfg.tun.lanInterfaces, ...cfg.interfaces.wan])],
              table: cfg.tun.table,
              rulePriority: cfg.tun.rulePriority,
            }
          : undefined,
    };
  }

  // ─── NFQUEUE ────────────────────────────────────────────────────────────

  private openQueues(): void {
    const { cfg, log } = this;
    const n = cfg.nfqueue;
    for (let qi = 0; qi < n.queues.length; qi++) {
      const c = new QueueCounterSet(n.queues[qi]!);
      this.counters.push(c);
      const q = new NfQueue({
        queue: n.queues[qi]!,
        onBatch: (q, count) => this.nfqBatch(q, count, qi),
        batch: n.batch,
        // Slots fit the whole copy range: pages a packet never touches are never
        // made resident, so 1024 slots of 66 KiB cost ~1 page each in practice.
        slotSize: Math.ceil((n.copyRange + LIMIT.NL_OVERHEAD + SLOT_HEADROOM) / 8) * 8,
        headroom: SLOT_HEADROOM,
        copyRange: n.copyRange,
        maxlen: n.maxLen,
        failOpen: n.failOpen,
        gso: n.gso,
        defaultVerdict: n.defaultVerdict === "accept" ? NF.ACCEPT : NF.DROP,
      });
      this.queues.push(q);
      if (this.slotsPerQueue === 0) this.slotsPerQueue = q.slots;
      log.info({ queue: q.queue, portId: q.portId, slots: q.slots, batch: q.batchSize, gso: n.gso, failOpen: n.failOpen, maxLen: n.maxLen }, "queue bound");
    }
    this.heldIds = new Uint32Array(this.queues.length * this.slotsPerQueue);
  }

  /** One NFQUEUE batch: the packet path. Allocates nothing. */
  private nfqBatch(q: NfQueue, count: number, qi: number): void {
    const now = performance.now();
    const wall = Date.now();
    const p = this.pipeline;
    const c = this.counters[qi]!;
    const held = this.heldIds;
    const base = qi * this.slotsPerQueue;
    const gso = this.cfg.nfqueue.gso;
    c.received += count;
    c.batches++;
    if (count > c.batchMax) c.batchMax = count;
    for (let i = 0; i < count; i++) {
      const off = q.payloadOffset(i);
      if (off < 0) {
        // No packet bytes (copy range 0): nothing to judge.
        this.nfqVerdict(q, c, i, NF.DROP);
        continue;
      }
      let flags = q.hook(i) === HOOK.LOCAL_OUT ? PKT.LOCAL_OUT : 0;
      if (gso) {
        // With F_GSO the kernel says whether the L4 checksum is partial or
        // already verified; without it, sluice verifies (as nf_conntrack_checksum does).
        const info = q.skbInfo(i);
        if ((info & SKB_INFO.CSUMNOTREADY) !== 0 || (info & SKB_INFO.CSUM_NOTVERIFIED) === 0) flags |= PKT.CSUM_UNNECESSARY;
      }
      const tag = base + q.slot(i);
      held[tag] = q.id(i);
      const mark = q.mark(i);
      p.hook = (flags & PKT.LOCAL_OUT) !== 0 ? RHOOK.OUTPUT : RHOOK.PREROUTING;
      p.inIfindex = q.indev(i);
      p.outIfindex = q.outdev(i);
      p.mark = mark;
      const rc = p.rctx;
      rc.wallNow = wall;
      rc.hwBuf = q.slab;
      rc.hwOff = q.hwaddrOffset(i);
      rc.hwLen = q.hwaddrLength(i);
      const v = p.process(q.slab, off, q.payloadLength(i), now, flags, tag);
      if (v === VERDICT.STOLEN) continue; // a fragment: its verdict comes with its datagram
      const nf = v === VERDICT.ACCEPT ? NF.ACCEPT : NF.DROP;
      const d = p.defrag;
      if (d.releasedCount > 0) {
        // A datagram completed (its fragments, this one included, share the
        // verdict) or a fragment queue was discarded.
        for (let k = 0; k < d.releasedCount; k++) this.verdictTag(d.releasedTags[k]!, nf);
        if (p.reassembled) continue;
      }
      if (nf === NF.ACCEPT && (p.modified || p.mark !== mark)) {
        // A target changed the packet (TCPMSS) or its mark (MARK, CONNMARK --restore-mark).
        if (p.modified) q.verdictPayload(i, nf, ipLength(q.slab, off), p.mark);
        else q.verdictMark(i, nf, p.mark);
        c.verdicts++;
        continue;
      }
      this.nfqVerdict(q, c, i, nf);
    }
    this.control?.pump();
  }

  private nfqVerdict(q: NfQueue, c: QueueCounterSet, i: number, nf: number): void {
    q.verdict(i, nf);
    c.verdicts++;
    if (nf === NF.DROP) c.dropped++;
  }

  /** Verdict for a held packet (a fragment) by its tag. */
  private verdictTag(tag: number, nf: number): void {
    if (this.tun !== null) {
      this.tunReleaseFragment(tag, nf);
      return;
    }
    const qi = (tag / this.slotsPerQueue) | 0;
    const q = this.queues[qi]!;
    const c = this.counters[qi]!;
    q.setVerdict(this.heldIds[tag]!, tag - qi * this.slotsPerQueue, nf, 0, 0, 0);
    c.verdicts++;
    if (nf === NF.DROP) c.dropped++;
  }

  // ─── TUN ────────────────────────────────────────────────────────────────

  private openTun(): void {
    const { cfg, log } = this;
    const slotSize = Math.max(2048, Math.ceil((cfg.tun.mtu + 64) / 8) * 8);
    this.counters.push(new QueueCounterSet(0));
    this.tun = new Tun({ name: cfg.tun.device, slotSize, batch: cfg.tun.batch, onBatch: (t, n) => this.tunBatch(t, n) });
    this.outDesc = new Uint32Array(cfg.tun.batch * DESC.STRIDE);
    this.fragSlot = slotSize;
    for (let k = 0; k < FRAG_STORE_CAPACITY; k++) this.fragFree[k] = FRAG_STORE_CAPACITY - 1 - k;
    this.fragFreeTop = FRAG_STORE_CAPACITY;
    log.info({ device: this.tun.name, ifindex: this.tun.ifindex, mtu: cfg.tun.mtu, batch: cfg.tun.batch, reinjectMark: cfg.reinjectMark }, "tun device open");
  }

  /** One TUN batch: judge, then write the accepted packets out in one call. Allocates nothing after the first fragment. */
  private tunBatch(t: Tun, count: number): void {
    const now = performance.now();
    const wall = Date.now();
    const p = this.pipeline;
    const c = this.counters[0]!;
    const slab = t.slab;
    const desc = this.outDesc;
    let out = 0;
    c.received += count;
    c.batches++;
    if (count > c.batchMax) c.batchMax = count;
    for (let i = 0; i < count; i++) {
      const off = t.offset(i);
      const len = t.length(i);
      if (isLinkTraffic(slab, off, len)) {
        c.linkLocal++;
        c.verdicts++;
        c.dropped++;
        continue;
      }
      const tag = this.fragFreeTop > 0 ? this.fragFree[--this.fragFreeTop]! : -1;
      // A TUN device does not say where a packet came in: the interface that
      // routes back to its source stands in (what rp_filter checks), so -i works.
      p.hook = RHOOK.PREROUTING;
      p.inIfindex = sourceInterface(p.routes, slab, off);
      p.outIfindex = 0;
      p.mark = 0;
      p.rctx.wallNow = wall;
      p.rctx.hwLen = 0;
      const v = p.process(slab, off, len, now, 0, tag);
      if (v === VERDICT.STOLEN) {
        this.tunKeepFragment(tag, slab, off, len);
        continue;
      }
      const d = p.defrag;
      if (d.releasedCount > 0) {
        const nf = v === VERDICT.ACCEPT ? NF.ACCEPT : NF.DROP;
        for (let k = 0; k < d.releasedCount; k++) {
          const r = d.releasedTags[k]!;
          if (r === tag) continue; // this packet: sent from the batch below
          this.tunReleaseFragment(r, nf);
        }
      }
      if (tag >= 0) this.fragFree[this.fragFreeTop++] = tag;
      c.verdicts++;
      if (v === VERDICT.ACCEPT) {
        desc[out * DESC.STRIDE + DESC.OFF] = off;
        desc[out * DESC.STRIDE + DESC.LEN] = p.modified ? ipLength(slab, off) : len;
        out++;
      } else {
        c.dropped++;
      }
    }
    if (out > 0) {
      const sent = this.raw!.send(slab, desc, out);
      c.sent += sent;
      c.sendErrors += out - sent;
    }
    this.control?.pump();
  }

  /** Copies a held fragment out of the batch slab (the store is allocated at the first fragment). */
  private tunKeepFragment(tag: number, slab: Uint8Array, off: number, len: number): void {
    if (tag < 0) return; // cannot happen: the store has a slot for every fragment the defragmenter can hold
    this.fragStore ??= new Uint8Array(FRAG_STORE_CAPACITY * this.fragSlot);
    const n = Math.min(len, this.fragSlot);
    this.fragStore.set(slab.subarray(off, off + n), tag * this.fragSlot);
    this.fragLen[tag] = n;
  }

  /** Sends (ACCEPT) or forgets (DROP) a stored fragment and frees its slot. */
  private tunReleaseFragment(tag: number, nf: number): void {
    if (tag < 0) return;
    const c = this.counters[0]!;
    c.verdicts++;
    if (nf === NF.ACCEPT && this.fragStore !== null) {
      const sent = this.raw!.sendOne(this.fragStore, tag * this.fragSlot, this.fragLen[tag]!);
      c.sent += sent;
      c.sendErrors += 1 - sent;
    } else {
      c.dropped++;
    }
    this.fragFree[this.fragFreeTop++] = tag;
  }

  // ─── Housekeeping, stats ────────────────────────────────────────────────

  private tick(): void {
    const now = performance.now();
    this.pipeline.tick(now, this.expired);
    for (const q of this.queues) if (q.pendingVerdicts > 0) q.flush();
    this.control?.pump();
    if (++this.ticks % COUNTER_TICKS === 0) {
      this.refreshCounters();
      this.errors.flush();
    }
  }

  /** Reads the native and kernel counters into the per-queue counters (allocates a little; once a second). */
  private refreshCounters(): void {
    if (this.queues.length > 0) {
      let proc: ReturnType<typeof readNfQueueProc> = [];
      try {
        proc = readNfQueueProc();
      } catch {
        // /proc unreadable: the kernel's columns stay as they were
      }
      for (let qi = 0; qi < this.queues.length; qi++) {
        const q = this.queues[qi]!;
        const c = this.counters[qi]!;
        const s = q.stats();
        if (s.enobufs > c.enobufs) {
          this.errors.warn(`enobufs-${q.queue}`, { queue: q.queue, enobufs: s.enobufs, new: s.enobufs - c.enobufs }, "queue overflow (ENOBUFS): the kernel dropped packets sluice could not take in time");
        }
        c.enobufs = s.enobufs;
        c.outstanding = s.outstanding;
        const k = proc.find((e) => e.queue === q.queue && e.portid === q.portId);
        if (k !== undefined) {
          c.kernelDropped = k.queueDropped;
          c.userDropped = k.userDropped;
        }
      }
    }
    if (this.tun !== null) {
      const c = this.counters[0]!;
      const r = this.raw!.stats();
      if (r.sendErrors + r.sendDropped > 0 && c.sendErrors > 0) {
        this.errors.warn("raw-send", { sendErrors: r.sendErrors, sendDropped: r.sendDropped, lastErrno: r.lastErrno }, "raw socket: the kernel refused packets sluice sent back");
      }
    }
  }

  private queueStats(): Record<string, number>[] {
    return this.counters.map((c) => ({
      queue: c.queue,
      received: c.received,
      verdicts: c.verdicts,
      dropped: c.dropped,
      enobufs: c.enobufs,
      batches: c.batches,
      outstanding: c.outstanding,
      batchMax: c.batchMax,
      batchAvg: c.batches > 0 ? c.received / c.batches : 0,
      kernelDropped: c.kernelDropped,
      userDropped: c.userDropped,
      ...(this.tun !== null ? { sent: c.sent, sendErrors: c.sendErrors, linkLocal: c.linkLocal } : {}),
    }));
  }

  /** What `sluice stats` shows (control protocol DaemonStats). */
  statsObject(): Record<string, unknown> {
    this.refreshCounters();
    const ct = this.pipeline.ct;
    return {
      instance: this.cfg.instance,
      mode: this.cfg.mode,
      uptimeMs: Math.round(performance.now() - this.startedAt),
      queues: this.queueStats(),
      table: { count: ct.table.count, max: ct.table.max },
      pipeline: { ...this.pipeline.stats },
      conntrack: { ...ct.stats, eventsLost: ct.events.lost },
      defrag: (({ fragments, reassembled, duplicates, overlaps, timeouts, oversize, noMemory, malformed, heldBytes, queuesInUse }) =>
        ({ fragments, reassembled, duplicates, overlaps, timeouts, oversize, noMemory, malformed, heldBytes, queuesInUse }))(this.pipeline.defrag),
      routes: { generation: this.routes?.generation ?? 0 },
      rules: { ...this.rules.summary(), ...this.effects.stats },
      ...(this.tun !== null ? { tun: { device: this.tun.name, ...this.tun.stats() }, raw: this.raw!.stats() } : {}),
      control: { ...this.control?.stats },
    };
  }

  // ─── Stop ───────────────────────────────────────────────────────────────

  /** Stops everything in the safe order (idempotent). `reason` goes to the log. */
  stop(reason: string): Promise<void> {
    this.stopping ??= this.teardown().then(() => {
      this.log.info({ reason, ...this.totals() }, "sluice stopped");
    });
    return this.stopping;
  }

  private totals(): Record<string, number> {
    const s = this.pipeline.stats;
    return { packets: s.packets, accepted: s.accepted, dropped: s.dropped, invalid: s.invalid, connections: this.pipeline.ct.table.count };
  }

  /** Undoes whatever was started, in reverse order; collects failures and throws the first. */
  private async teardown(): Promise<void> {
    const failures: unknown[] = [];
    const attempt = async (what: string, f: () => unknown): Promise<void> => {
      try {
        await f();
      } catch (e) {
        failures.push(e);
        this.log.error({ err: e }, `stop: ${what} failed`);
      }
    };
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.summary?.stop(false);
    if (this.plumbing !== null) await attempt("removing plumbing", () => removePlumbing(this.plumbing!, this.log));
    for (const q of this.queues) {
      await attempt(`closing queue ${q.queue}`, () => {
        const n = q.close();
        if (n > 0) this.log.info({ queue: q.queue, packets: n, verdict: this.cfg.nfqueue.defaultVerdict }, "queue closed: held packets got the default verdict");
      });
    }
    if (this.tun !== null) await attempt("closing the tun device", () => this.tun!.close());
    await attempt("closing NFLOG files", () => this.effects.close());
    if (this.raw !== null) await attempt("closing the raw socket", () => this.raw!.close());
    if (this.metrics !== null) await attempt("stopping metrics", () => this.metrics!.stop());
    if (this.routes !== null) await attempt("stopping the route mirror", () => this.routes!.stop());
    if (this.control !== null) await attempt("closing the control socket", () => this.control!.close());
    this.errors.flush(true);
    if (failures.length > 0) throw failures[0];
  }
}

/** The IP datagram's length from its header (after a target rewrote it in place). */
function ipLength(b: Uint8Array, off: number): number {
  return b[off]! >> 4 === 4 ? (b[off + 2]! << 8) | b[off + 3]! : 40 + ((b[off + 4]! << 8) | b[off + 5]!);
}

/** The ifindex of the route back to the packet's source (TUN mode's stand-in for the input interface); 0 if none. */
function sourceInterface(r: RouteSnapshot | null, b: Uint8Array, off: number): number {
  if (r === null) return 0;
  let route: number;
  if (b[off]! >> 4 === 4) {
    route = r.lookup4((b[off + 12]! << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!);
  } else {
    const o = off + 8;
    route = r.lookup6(
      (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!,
      (b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!,
      (b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!,
      (b[o + 12]! << 24) | (b[o + 13]! << 16) | (b[o + 14]! << 8) | b[o + 15]!,
    );
  }
  return route >= 0 ? r.ifindex[route]! : 0;
}

/**
 * True for packets of the TUN device's own link, which a router never
 * forwards: IPv6 from a link-local or unspecified source or to a multicast
 * group (the kernel's router solicitations and MLD reports on the device),
 * IPv4 to multicast or broadcast.
 */
function isLinkTraffic(b: Uint8Array, off: number, len: number): boolean {
  if (len < 1) return false;
  const v = b[off]! >> 4;
  if (v === 6 && len >= 40) {
    const s0 = b[off + 8]!, s1 = b[off + 9]!;
    if (s0 === 0xfe && (s1 & 0xc0) === 0x80) return true;
    if (b[off + 24] === 0xff) return true;
    for (let k = 8; k < 24; k++) if (b[off + k] !== 0) return false;
    return true;
  }
  if (v === 4 && len >= 20) {
    const d0 = b[off + 16]!;
    return (d0 & 0xf0) === 0xe0 || (d0 === 255 && b[off + 17] === 255 && b[off + 18] === 255 && b[off + 19] === 255);
  }
  return false;
}
