/**
 * NFQUEUE against the real kernel, as root, in a private network namespace
 * (`nfqt-<pid>-<rand>`, removed in afterAll). The test process binds the
 * queue inside the namespace through the `netns` option; UDP senders and a
 * dual-stack receiver (python3) run there too. Rules:
 *
 *   raw OUTPUT    -p udp --dport 9999 -j NFQUEUE --queue-num 3   (iptables and ip6tables)
 *   filter OUTPUT -p udp --dport 9999 -m mark --mark 0x55        (a counter for the mark verdict)
 *
 * Senders run synchronously (spawnSync blocks our event loop), so every
 * datagram of one send is queued before we read, and arrives in one batch.
 */
import { spawnSync } from "node:child_process";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAN_RUN_KERNEL_TESTS, Netns, run, sendUdp, sleep, UdpReceiver, until } from "../../native-bindings/test/netns.js";
import { findNativeAddon, NativeIoError } from "../../src/io/native.js";
import { HOOK, IO_ERR, META_F, NF, SKB_INFO } from "../../src/io/native-constants.js";
import { NfQueue, nfQueueVerdict, parseNfQueueProc, readNfQueueProc } from "../../src/io/nfqueue.js";
import { checksum, pseudoSumV4, pseudoSumV6 } from "../../src/packet/checksum.js";

const Q = 3;
const PORT = 9999;

/** Offset of the UDP header in an IPv4 or IPv6 packet (no IPv6 extension headers here). */
function udpOffset(b: Uint8Array, off: number): number {
  return b[off] >> 4 === 4 ? off + (b[off] & 15) * 4 : off + 40;
}

/** The UDP payload of the packet at `off` as text. */
function udpText(b: Uint8Array, off: number, len: number): string {
  const u = udpOffset(b, off);
  return Buffer.from(b.subarray(u + 8, off + len)).toString();
}

/**
 * Sets the packet's length fields for a UDP payload of `payloadLen` bytes
 * and recomputes the IPv4 header checksum and the full UDP checksum (a
 * replaced payload is CHECKSUM_NONE to the kernel: nothing fixes it later).
 * Returns the new packet length.
 */
function finishUdp(b: Uint8Array, off: number, payloadLen: number): number {
  const u = udpOffset(b, off);
  const l4 = 8 + payloadLen;
  const total = u - off + l4;
  b[u + 4] = l4 >> 8;
  b[u + 5] = l4 & 255;
  b[u + 6] = 0;
  b[u + 7] = 0;
  let pseudo: number;
  if (b[off] >> 4 === 4) {
    b[off + 2] = total >> 8;
    b[off + 3] = total & 255;
    b[off + 10] = 0;
    b[off + 11] = 0;
    const ipc = checksum(b, off, u - off);
    b[off + 10] = ipc >> 8;
    b[off + 11] = ipc & 255;
    pseudo = pseudoSumV4(b, off, 17, l4);
  } else {
    b[off + 4] = l4 >> 8;
    b[off + 5] = l4 & 255;
    pseudo = pseudoSumV6(b, off, 17, l4);
  }
  const c = checksum(b, u, l4, pseudo) || 0xffff;
  b[u + 6] = c >> 8;
  b[u + 7] = c & 255;
  return total;
}

describe.skipIf(!CAN_RUN_KERNEL_TESTS)("NFQUEUE (real kernel, in a netns)", () => {
  let ns: Netns;
  let rx: UdpReceiver;
  let q: NfQueue | undefined;

  beforeAll(async () => {
    ns = new Netns("nfqt");
    for (const v6 of [false, true]) {
      ns.iptables(v6, ["-t", "raw", "-A", "OUTPUT", "-p", "udp", "--dport", String(PORT), "-j", "NFQUEUE", "--queue-num", String(Q)]);
      ns.iptables(v6, ["-t", "filter", "-A", "OUTPUT", "-p", "udp", "--dport", String(PORT), "-m", "mark", "--mark", "0x55"]);
    }
    rx = await UdpReceiver.start(ns, 6, PORT, 60_000);
  });

  afterAll(() => {
    q?.close();
    rx?.stop();
    ns?.close();
  });

  /** Binds queue Q in the namespace; closes the previous test's handle first. */
  function bind(opts: Partial<ConstructorParameters<typeof NfQueue>[0]> & { onBatch: (q: NfQueue, n: number) => void }): NfQueue {
    q?.close();
    q = new NfQueue({ queue: Q, netns: ns.path, slots: 256, ...opts });
    return q;
  }

  /** Clears what the receiver got so far. */
  function resetRx(): void {
    rx.received.length = 0;
  }

  it("delivers IPv4 and IPv6 packets in one batch with their metadata, and accepts them", async () => {
    resetRx();
    const batches: number[] = [];
    const rows: { id: number; hook: number; hw: number; indev: number; outdev: number; mark: number; text: string; flags: number }[] = [];
    const nq = bind({
      onBatch(q, n) {
        batches.push(n);
        for (let i = 0; i < n; i++) {
          rows.push({
            id: q.id(i), hook: q.hook(i), hw: q.hwProtocol(i), indev: q.indev(i), outdev: q.outdev(i),
            mark: q.mark(i), text: udpText(q.slab, q.payloadOffset(i), q.payloadLength(i)), flags: q.flags(i),
          });
          q.verdict(i, NF.ACCEPT);
        }
      },
    });
    const v4 = ["a0", "a1", "a2", "a3", "a4"], v6 = ["b0", "b1", "b2", "b3", "b4"];
    sendUdp(ns, "127.0.0.1", PORT, v4, 0x42);
    sendUdp(ns, "::1", PORT, v6, 0x42);
    expect(await rx.waitFor(10)).toBe(10);
    expect(rx.texts().sort()).toEqual([...v4, ...v6]);
    expect(rows.map((r) => r.text)).toEqual([...v4, ...v6]);
    // Both sends were queued before our loop ran: one batch of ten.
    expect(batches).toEqual([10]);
    for (const [k, r] of rows.entries()) {
      expect(r.hook).toBe(HOOK.LOCAL_OUT);
      expect(r.hw).toBe(k < 5 ? 0x0800 : 0x86dd);
      expect(r.indev).toBe(0);
      expect(r.outdev).toBe(1); // lo is ifindex 1 in a new namespace
      expect(r.mark).toBe(0x42);
      expect(r.flags & META_F.TRUNCATED).toBe(0);
      if (k > 0) expect(r.id).toBe(rows[k - 1].id + 1);
    }
    const s = nq.stats();
    expect(s.received).toBe(10);
    expect(s.verdicts).toBe(10);
    expect(s.outstanding).toBe(0);
    // Ten contiguous ids, nothing else held: one NFQNL_MSG_VERDICT_BATCH in one sendmsg.
    expect(s.batchMsgs).toBe(1);
    expect(s.sendmsgs).toBe(1);
    expect(s.verdictErrors).toBe(0);
  });

  it("packets arriving on an interface carry indev, the source MAC and checksum state (PREROUTING over veth)", async () => {
    const peer = new Netns("nfqp");
    try {
      run("ip", ["-n", ns.name, "link", "add", "nfqa", "type", "veth", "peer", "name", "nfqb", "netns", peer.name]);
      run("ip", ["-n", ns.name, "addr", "add", "10.98.0.1/24", "dev", "nfqa"]);
      run("ip", ["-n", peer.name, "addr", "add", "10.98.0.2/24", "dev", "nfqb"]);
      run("ip", ["-n", ns.name, "link", "set", "nfqa", "up"]);
      run("ip", ["-n", peer.name, "link", "set", "nfqb", "up"]);
      ns.iptables(false, ["-t", "raw", "-A", "PREROUTING", "-i", "nfqa", "-p", "udp", "--dport", String(PORT), "-j", "NFQUEUE", "--queue-num", String(Q)]);
      const links = JSON.parse(run("ip", ["-n", ns.name, "-j", "link", "show", "nfqa"])) as { ifindex: number }[];
      const peerMac = (JSON.parse(run("ip", ["-n", peer.name, "-j", "link", "show", "nfqb"])) as { address: string }[])[0].address;
      for (const gso of [false, true]) {
        resetRx();
        const rows: { hook: number; indev: number; outdev: number; mac: string; skb: number; text: string; csumOk: boolean }[] = [];
        bind({
          gso,
          onBatch(q, n) {
            for (let i = 0; i < n; i++) {
              const h = q.hwaddrOffset(i), off = q.payloadOffset(i), len = q.payloadLength(i);
              const u = udpOffset(q.slab, off);
              rows.push({
                hook: q.hook(i), indev: q.indev(i), outdev: q.outdev(i), skb: q.skbInfo(i),
                mac: h < 0 ? "" : Array.from(q.slab.subarray(h, h + q.hwaddrLength(i)), (b) => b.toString(16).padStart(2, "0")).join(":"),
                text: udpText(q.slab, off, len),
                csumOk: checksum(q.slab, u, off + len - u, pseudoSumV4(q.slab, off, 17, off + len - u)) === 0,
              });
              q.verdict(i, NF.ACCEPT);
            }
          },
        });
        sendUdp(peer, "10.98.0.1", PORT, ["from-peer"]);
        expect(await rx.waitFor(1)).toBe(1);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ hook: HOOK.PRE_ROUTING, indev: links[0].ifindex, outdev: 0, mac: peerMac, text: "from-peer" });
        if (gso) {
          // Sent by a local stack over veth, the UDP checksum is still partial
          // (CHECKSUM_PARTIAL); with F_GSO the kernel hands it over as is and says so.
          expect(rows[0].skb & SKB_INFO.CSUMNOTREADY).toBe(SKB_INFO.CSUMNOTREADY);
          expect(rows[0].csumOk).toBe(false);
        } else {
          // Without F_GSO the kernel completes the checksum before queueing
          // (skb_checksum_help in nfqnl_build_packet_message) and sends no NFQA_SKB_INFO.
          expect(rows[0].skb).toBe(0);
          expect(rows[0].csumOk).toBe(true);
        }
      }
    } finally {
      ns.iptables(false, ["-t", "raw", "-F", "PREROUTING"]);
      peer.close();
    }
  });

  it("accept and drop verdicts take effect", async () => {
    resetRx();
    bind({
      verdictBatch: false,
      onBatch(q, n) {
        for (let i = 0; i < n; i++) {
          const t = udpText(q.slab, q.payloadOffset(i), q.payloadLength(i));
          q.verdict(i, t.startsWith("keep") ? NF.ACCEPT : NF.DROP);
        }
      },
    });
    sendUdp(ns, "127.0.0.1", PORT, ["keep1", "drop1", "keep2"]);
    sendUdp(ns, "::1", PORT, ["drop2", "keep3"]);
    expect(await rx.waitFor(3)).toBe(3);
    await sleep(100);
    expect(rx.texts().sort()).toEqual(["keep1", "keep2", "keep3"]);
    expect(q!.stats().verdictMsgs).toBe(5);
  });

  it("a verdict with a mark sets the skb mark (seen by a -m mark rule after the queue)", async () => {
    resetRx();
    const before4 = ns.ruleCount(false, "filter", "--mark 0x55");
    const before6 = ns.ruleCount(true, "filter", "--mark 0x55");
    bind({ onBatch: (q, n) => { for (let i = 0; i < n; i++) q.verdictMark(i, NF.ACCEPT, 0x55); } });
    sendUdp(ns, "127.0.0.1", PORT, ["m1", "m2"]);
    sendUdp(ns, "::1", PORT, ["m3"]);
    expect(await rx.waitFor(3)).toBe(3);
    expect(ns.ruleCount(false, "filter", "--mark 0x55") - before4).toBe(2);
    expect(ns.ruleCount(true, "filter", "--mark 0x55") - before6).toBe(1);
  });

  it("replaces payloads in place: same length and grown into the headroom, IPv4 and IPv6", async () => {
    resetRx();
    const skb: number[] = [];
    bind({
      onBatch(q, n) {
        for (let i = 0; i < n; i++) {
          const b = q.slab, off = q.payloadOffset(i), len = q.payloadLength(i);
          skb.push(q.skbInfo(i));
          const u = udpOffset(b, off);
          const text = udpText(b, off, len);
          if (text.startsWith("grow")) {
            const extra = Buffer.from("+grown-into-headroom");
            expect(len + extra.length).toBeLessThanOrEqual(q.capacity(i));
            b.set(extra, off + len);
            q.verdictPayload(i, NF.ACCEPT, finishUdp(b, off, len - (u - off) - 8 + extra.length));
          } else {
            b[u + 8] = 0x58; // 'X'
            q.verdictPayload(i, NF.ACCEPT, finishUdp(b, off, len - (u - off) - 8));
          }
        }
      },
    });
    sendUdp(ns, "127.0.0.1", PORT, ["abcd", "grow4"]);
    sendUdp(ns, "::1", PORT, ["efgh", "grow6"]);
    expect(await rx.waitFor(4)).toBe(4);
    expect(rx.texts().sort()).toEqual(["Xbcd", "Xfgh", "grow4+grown-into-headroom", "grow6+grown-into-headroom"]);
    expect(q!.stats().verdictErrors).toBe(0);
    expect(skb).toHaveLength(4);
  });

  it("takes verdicts later and out of order; the receiver sees the verdict order", async () => {
    resetRx();
    const held: { id: number; slot: number; text: string }[] = [];
    const nq = bind({
      onBatch(q, n) {
        for (let i = 0; i < n; i++) held.push({ id: q.id(i), slot: q.slot(i), text: udpText(q.slab, q.payloadOffset(i), q.payloadLength(i)) });
      },
    });
    sendUdp(ns, "127.0.0.1", PORT, ["first", "second", "third"]);
    expect(await until(() => held.length === 3)).toBe(true);
    expect(nq.stats().outstanding).toBe(3);
    await sleep(50);
    expect(rx.received).toHaveLength(0);
    for (const k of [2, 0, 1]) {
      nq.setVerdict(held[k].id, held[k].slot, NF.ACCEPT, 0, 0, 0);
      nq.flush();
      await sleep(20);
    }
    expect(await rx.waitFor(3)).toBe(3);
    expect(rx.texts()).toEqual(["third", "first", "second"]);
    // A second verdict for a packet already released is refused before it reaches the kernel.
    nq.setVerdict(held[0].id, held[0].slot, NF.ACCEPT, 0, 0, 0);
    expect(nq.flush()).toBe(0);
    const s = nq.stats();
    expect(s.badVerdicts).toBe(1);
    expect(s.outstanding).toBe(0);
  });

  it("NF_REPEAT re-runs the hook and NF_QUEUE to another queue passes through", async () => {
    resetRx();
    let seen = 0;
    const nq = bind({
      onBatch(q, n) {
        for (let i = 0; i < n; i++) {
          seen++;
          // First pass: repeat (the same rule queues it to us again); second pass: accept.
          q.verdictMark(i, q.mark(i) === 7 ? NF.ACCEPT : NF.REPEAT, 7);
        }
      },
    });
    sendUdp(ns, "127.0.0.1", PORT, ["again"]);
    expect(await rx.waitFor(1)).toBe(1);
    expect(seen).toBe(2);
    expect(nq.stats().verdicts).toBe(2);
    // NF_QUEUE to an unbound queue: the kernel drops it (no --queue-bypass).
    resetRx();
    nq.close();
    q = bind({ onBatch: (q, n) => { for (let i = 0; i < n; i++) q.verdict(i, nfQueueVerdict(Q + 100)); } });
    sendUdp(ns, "127.0.0.1", PORT, ["elsewhere"]);
    expect(await until(() => q!.stats().verdicts === 1)).toBe(true);
    await sleep(100);
    expect(rx.received).toHaveLength(0);
    expect(q.stats().verdictErrors).toBe(0);
  });

  it("on close, held packets get the default verdict (accept or drop)", async () => {
    resetRx();
    let got = 0;
    const a = bind({ onBatch: (_q, n) => { got += n; } });
    sendUdp(ns, "127.0.0.1", PORT, ["held1", "held2"]);
    expect(await until(() => got === 2)).toBe(true);
    expect(a.close(NF.ACCEPT)).toBe(2);
    expect(await rx.waitFor(2)).toBe(2);
    expect(rx.texts().sort()).toEqual(["held1", "held2"]);

    resetRx();
    got = 0;
    const d = bind({ defaultVerdict: NF.DROP, onBatch: (_q, n) => { got += n; } });
    sendUdp(ns, "::1", PORT, ["gone1", "gone2"]);
    expect(await until(() => got === 2)).toBe(true);
    expect(d.close()).toBe(2);
    await sleep(150);
    expect(rx.received).toHaveLength(0);
    expect(d.stats().defaultVerdicts).toBe(2);
  });

  it("close() also gives the default verdict to packets queued to the socket but not read yet", async () => {
    resetRx();
    let got = 0;
    const nq = bind({ onBatch: (_q, n) => { got += n; } });
    // spawnSync blocks our loop: the packets wait in the socket, unread, when close() runs.
    sendUdp(ns, "127.0.0.1", PORT, ["unread1", "unread2", "unread3"]);
    expect(nq.close(NF.ACCEPT)).toBe(3);
    expect(got).toBe(0);
    expect(await rx.waitFor(3)).toBe(3);
    expect(rx.texts().sort()).toEqual(["unread1", "unread2", "unread3"]);
  });

  it("pauses reading when every slot is held, and resumes when verdicts free them", async () => {
    resetRx();
    const held: { id: number; slot: number }[] = [];
    const nq = bind({ slots: 4, onBatch: (q, n) => { for (let i = 0; i < n; i++) held.push({ id: q.id(i), slot: q.slot(i) }); } });
    sendUdp(ns, "127.0.0.1", PORT, ["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);
    expect(await until(() => held.length === 4)).toBe(true);
    await sleep(50);
    expect(held).toHaveLength(4);
    expect(nq.stats().starved).toBeGreaterThan(0);
    // Free the slots; the three waiting packets come in and are held too.
    for (const h of held.splice(0)) nq.setVerdict(h.id, h.slot, NF.ACCEPT, 0, 0, 0);
    expect(nq.flush()).toBe(4);
    expect(await until(() => held.length === 3)).toBe(true);
    for (const h of held.splice(0)) nq.setVerdict(h.id, h.slot, NF.ACCEPT, 0, 0, 0);
    expect(nq.flush()).toBe(3);
    expect(await rx.waitFor(7)).toBe(7);
    expect(rx.texts()).toEqual(["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);
  });

  it("refuses verdict records that do not fit: a payload beyond the slot, an invalid verdict", async () => {
    resetRx();
    const nq = bind({
      verdictBatch: false,
      onBatch(q, n) {
        for (let i = 0; i < n; i++) {
          q.verdictPayload(i, NF.ACCEPT, q.capacity(i) + 1); // refused: beyond the slot
          q.verdict(i, NF.STOLEN); // refused: the kernel rejects NF_STOLEN from userspace
          q.verdict(i, NF.ACCEPT); // this one goes
        }
      },
    });
    sendUdp(ns, "127.0.0.1", PORT, ["fits"]);
    expect(await rx.waitFor(1)).toBe(1);
    const s = nq.stats();
    expect(s.badVerdicts).toBe(2);
    expect(s.verdicts).toBe(1);
    expect(s.verdictErrors).toBe(0);
  });

  it("reports the kernel's per-queue counters from /proc", async () => {
    let got = 0;
    const nq = bind({ onBatch: (q, n) => { got += n; for (let i = 0; i < n; i++) q.verdict(i, NF.ACCEPT); } });
    sendUdp(ns, "127.0.0.1", PORT, ["p1", "p2"]);
    expect(await until(() => got === 2)).toBe(true);
    // The receiver runs in the namespace: /proc/<its pid>/net is the namespace's view.
    const e = readNfQueueProc(rx.pid).find((x) => x.queue === Q);
    expect(e).toBeDefined();
    expect(e!.portid).toBe(nq.portId);
    expect(e!.copyMode).toBe(2);
    expect(e!.queueTotal).toBe(0);
    expect(e!.idSequence).toBeGreaterThanOrEqual(2);
  });

  it("F_FAIL_OPEN accepts what a full queue cannot take; without it the kernel drops (queue_dropped)", async () => {
    for (const failOpen of [true, false]) {
      resetRx();
      let first: { id: number; slot: number } | undefined;
      const nq = bind({
        failOpen,
        maxlen: 1,
        onBatch(q, n) {
          for (let i = 0; i < n; i++) {
            if (first === undefined) first = { id: q.id(i), slot: q.slot(i) }; // held: the queue is now full
            else q.verdict(i, NF.ACCEPT);
          }
        },
      });
      sendUdp(ns, "127.0.0.1", PORT, ["hold"]);
      expect(await until(() => first !== undefined)).toBe(true);
      sendUdp(ns, "127.0.0.1", PORT, ["over1", "over2"]);
      await sleep(100);
      const e = readNfQueueProc(rx.pid).find((x) => x.queue === Q)!;
      if (failOpen) {
        expect(await rx.waitFor(2)).toBe(2);
        expect(rx.texts().sort()).toEqual(["over1", "over2"]);
        expect(e.queueDropped).toBe(0);
      } else {
        expect(rx.received).toHaveLength(0);
        expect(e.queueDropped).toBe(2);
      }
      nq.setVerdict(first!.id, first!.slot, NF.ACCEPT, 0, 0, 0);
      expect(nq.flush()).toBe(1);
      expect(await rx.waitFor(failOpen ? 3 : 1)).toBe(failOpen ? 3 : 1);
    }
  });

  it("accepts the F_GSO option with 64 KB slots", async () => {
    resetRx();
    let len = 0;
    bind({ gso: true, slots: 8, onBatch: (q, n) => { for (let i = 0; i < n; i++) { len = q.payloadLength(i); q.verdict(i, NF.ACCEPT); } } });
    expect(q!.slotSize).toBe(65536 + 1024);
    const big = "z".repeat(30000);
    sendUdp(ns, "127.0.0.1", PORT, [big]);
    expect(await rx.waitFor(1)).toBe(1);
    expect(rx.texts()[0]).toBe(big);
    expect(len).toBe(20 + 8 + 30000);
  });

  it("counts ENOBUFS when the socket buffer overflows, and keeps working", async () => {
    resetRx();
    let got = 0;
    const nq = bind({ rcvbuf: 4096, onBatch: (q, n) => { got += n; for (let i = 0; i < n; i++) q.verdict(i, NF.ACCEPT); } });
    sendUdp(ns, "127.0.0.1", PORT, Array.from({ length: 300 }, (_, i) => `flood${i}`));
    // Settle: everything that reached the socket is read and accepted.
    let last = -1;
    for (let k = 0; k < 100 && got !== last; k++) {
      last = got;
      await sleep(30);
    }
    const s = nq.stats();
    expect(s.enobufs).toBeGreaterThan(0);
    expect(got).toBeLessThan(300);
    const e = readNfQueueProc(rx.pid).find((x) => x.queue === Q)!;
    expect(e.userDropped).toBeGreaterThan(0);
    expect(e.userDropped + got).toBe(300);
    expect(await rx.waitFor(got)).toBe(got);
    resetRx();
    sendUdp(ns, "127.0.0.1", PORT, ["after"]);
    expect(await rx.waitFor(1)).toBe(1);
    expect(rx.texts()).toEqual(["after"]);
  });

  it("refuses a second binding of the same queue with a clear error (another socket, another process)", () => {
    bind({ onBatch: () => {} });
    let err: unknown;
    try {
      new NfQueue({ queue: Q, netns: ns.path, slots: 4, onBatch: () => {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeIoError);
    expect((err as NativeIoError).code).toBe(IO_ERR.BUSY);
    expect((err as Error).message).toMatch(new RegExp(`queue ${Q} is already bound by another process`));

    const child = `
      const a = require(${JSON.stringify(findNativeAddon())});
      try {
        new a.NfQueue({ queue: ${Q}, slots: 4, slotSize: 4096, batch: 4 }, new ArrayBuffer(4 * 4096), new Int32Array(64), new Uint32Array(8), () => {});
        console.log(JSON.stringify({ ok: true }));
      } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    const r = spawnSync("ip", ["netns", "exec", ns.name, process.execPath, "-e", child], { encoding: "utf8", timeout: 10_000 });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { code: string; message: string };
    expect(out.code).toBe(IO_ERR.BUSY);
    expect(out.message).toMatch(new RegExp(`queue ${Q} is already bound by another process \\(netlink portid ${q!.portId}`));
  });

  it("without CAP_NET_ADMIN, binding fails with a clear EPERM error", () => {
    const queue = 40000 + (process.pid % 20000);
    const child = `
      const a = require(${JSON.stringify(findNativeAddon())});
      try {
        new a.NfQueue({ queue: ${queue}, slots: 4, slotSize: 4096, batch: 4 }, new ArrayBuffer(4 * 4096), new Int32Array(64), new Uint32Array(8), () => {});
        console.log(JSON.stringify({ ok: true }));
      } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    const r = spawnSync(
      "ip",
      ["netns", "exec", ns.name, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
        process.execPath, "-e", child],
      { encoding: "utf8", timeout: 10_000 },
    );
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { code: string; message: string };
    expect(out.code).toBe(IO_ERR.PERM);
    expect(out.message).toMatch(/needs CAP_NET_ADMIN: run as root or grant the capability/);
  });

  it("works in a worker thread; ending the worker gives held packets the default verdict and unbinds", async () => {
    q?.close();
    q = undefined;
    resetRx();
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      const a = require(workerData.addon);
      const S = a.constants["META.STRIDE"], V = a.constants["VREC.STRIDE"];
      const meta = new Int32Array(16 * S), verd = new Uint32Array(16 * V);
      let n0 = 0;
      const q = new a.NfQueue({ queue: workerData.queue, netns: workerData.netns, slots: 16, slotSize: 4096, batch: 16,
        defaultVerdict: ${NF.ACCEPT} }, new ArrayBuffer(16 * 4096), meta, verd, (n) => {
        for (let i = 0; i < n; i++, n0++) {
          // Accept the first packet; hold the rest (they get the default verdict when the worker ends).
          if (n0 === 0) { verd[0] = meta[i * S]; verd[1] = meta[i * S + 1]; verd[2] = ${NF.ACCEPT}; verd[3] = 0; q.verdicts(1); }
        }
        parentPort.postMessage(n0);
      });
      q.start();
      parentPort.postMessage("bound");`;
    const w = new Worker(code, { eval: true, workerData: { addon: findNativeAddon(), queue: Q, netns: ns.path } });
    const msgs: unknown[] = [];
    w.on("message", (m) => msgs.push(m));
    try {
      expect(await until(() => msgs.includes("bound"), 5000)).toBe(true);
      sendUdp(ns, "127.0.0.1", PORT, ["w1"]);
      expect(await rx.waitFor(1)).toBe(1);
      sendUdp(ns, "127.0.0.1", PORT, ["w2", "w3"]);
      expect(await until(() => msgs.includes(3), 3000)).toBe(true);
      await sleep(50);
      expect(rx.texts()).toEqual(["w1"]);
    } finally {
      await w.terminate();
    }
    expect(await rx.waitFor(3)).toBe(3);
    expect(rx.texts().sort()).toEqual(["w1", "w2", "w3"]);
    expect(readNfQueueProc(rx.pid).find((x) => x.queue === Q)).toBeUndefined();
  });
});

describe("NfQueue options and /proc parsing (no kernel)", () => {
  it("names the bad option", () => {
    expect(() => new NfQueue({ queue: 70000, onBatch: () => {} })).toThrow(/option queue must be an integer in \[0, 65535\]/);
    expect(() => new NfQueue({ queue: 1, slotSize: 4100, onBatch: () => {} })).toThrow(/slotSize must be a multiple of 8/);
    expect(() => new NfQueue({ queue: 1, batch: 0, onBatch: () => {} })).toThrow(/option batch/);
  });

  it("parses nfnetlink_queue lines", () => {
    const text = "    0  12345     2 2 65531     0     7       42  1\n    9 3294967296     0 2  3328    3     0        9  1\n";
    expect(parseNfQueueProc(text)).toEqual([
      { queue: 0, portid: 12345, queueTotal: 2, copyMode: 2, copyRange: 65531, queueDropped: 0, userDropped: 7, idSequence: 42 },
      { queue: 9, portid: 3294967296, queueTotal: 0, copyMode: 2, copyRange: 3328, queueDropped: 3, userDropped: 0, idSequence: 9 },
    ]);
    expect(parseNfQueueProc("")).toEqual([]);
  });

  it("builds NF_QUEUE verdicts with the queue number in the high 16 bits", () => {
    expect(nfQueueVerdict(0)).toBe(3);
    expect(nfQueueVerdict(65535)).toBe(0xffff0003);
  });
});
