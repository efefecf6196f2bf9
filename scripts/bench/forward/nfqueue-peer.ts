/**
 * Row (c) of the forwarding benchmark: an accept-all NFQUEUE listener in
 * Node on the npm `nfqueue` package (0.3.2: nan + libnetfilter_queue; GPL, a
 * devDependency used only here). Written as that package is meant to be
 * used: one JS callback per packet with a fresh info object and a copied
 * Buffer, one `setVerdict` (one sendmsg) per packet.
 *
 *   node dist/scripts/bench/forward/nfqueue-peer.js QUEUE [RCVBUF_BYTES]
 *
 * The second argument of `open` is the socket receive buffer
 * (nfnl_rcvbufsiz); the bench passes sluice's 8 MiB so the kernel side is
 * configured alike. Prints `{"ready":true}` once bound and, on SIGTERM or
 * SIGINT, `{"packets":N,"bytes":B}` before exiting 0. Exits 1 with the
 * reason on stderr if the package or its native part cannot be loaded.
 */
import { createRequire } from "node:module";

interface NfqPacket { payload: Buffer; setVerdict(verdict: number): void }
interface NfqModule {
  NF_ACCEPT: number;
  NFQueue: new () => { open(queue: number, rcvbuf: number): void; run(cb: (p: NfqPacket) => void): void };
}

const queue = Number(process.argv[2] ?? "0");
const rcvbuf = Number(process.argv[3] ?? String(8 << 20));

let nfq: NfqModule;
try {
  nfq = createRequire(import.meta.url)("nfqueue") as NfqModule;
} catch (e) {
  process.stderr.write(`nfqueue-peer: cannot load the nfqueue package: ${(e as Error).message.split("\n")[0]}\n`);
  process.exit(1);
}

let packets = 0;
let bytes = 0;
const q = new nfq.NFQueue();
try {
  q.open(queue, rcvbuf);
} catch (e) {
  process.stderr.write(`nfqueue-peer: open(${queue}) failed: ${(e as Error).message}\n`);
  process.exit(1);
}
const ACCEPT = nfq.NF_ACCEPT;
q.run((p) => {
  packets++;
  bytes += p.payload.length;
  p.setVerdict(ACCEPT);
});

const stop = (): void => {
  process.stdout.write(`${JSON.stringify({ packets, bytes })}\n`, () => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdout.write(`${JSON.stringify({ ready: true, queue })}\n`);
