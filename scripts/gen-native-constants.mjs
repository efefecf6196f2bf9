#!/usr/bin/env node
/**
 * The one source of the numbers the native addon and TypeScript share:
 * metadata field offsets, the verdict-record layout, flag values, counter
 * indices, error codes, and the kernel's own values (NF_* verdicts, hooks,
 * NFQA_* flags) that both sides use.
 *
 * It writes two files, both committed:
 *   native-bindings/src/constants.h  (C++: constexpr values, static_asserts
 *                                     against the kernel's UAPI headers, and
 *                                     the function that exports them to JS)
 *   src/io/native-constants.ts       (TypeScript: `as const` objects)
 *
 * Run it after editing TABLE:  node scripts/gen-native-constants.mjs
 * Check the committed files are current:  node scripts/gen-native-constants.mjs --check
 * (exit 1 and the stale file names when they are not). test/io/native-constants.test.ts
 * runs the check and compares the values the built addon reports with the
 * TypeScript ones.
 *
 * A row is [NAME, value, kernelName?, doc]. A kernelName makes the C++ side
 * `static_assert` that the value equals the kernel's, so a wrong number here
 * fails the build instead of a packet.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT_H = join(ROOT, "native-bindings/src/constants.h");
const OUT_TS = join(ROOT, "src/io/native-constants.ts");

/** @type {{ name: string, doc: string, rows: [string, number | string, string | null, string][] }[]} */
const TABLE = [
  {
    name: "NF",
    doc: "Netfilter verdicts with the kernel's values (linux/netfilter.h); NF_QUEUE carries the target queue in the bits above NF_VERDICT_QBITS.",
    rows: [
      ["DROP", 0, "NF_DROP", "Drop the packet."],
      ["ACCEPT", 1, "NF_ACCEPT", "Let the packet continue through the hook."],
      ["STOLEN", 2, "NF_STOLEN", "Forget the packet (never valid from userspace: the kernel rejects it)."],
      ["QUEUE", 3, "NF_QUEUE", "Queue again, to the queue number in bits 16..31 (`NF.QUEUE | (n << NF.VERDICT_QBITS)`)."],
      ["REPEAT", 4, "NF_REPEAT", "Run the same hook again from its first rule."],
      ["STOP", 5, "NF_STOP", "Accept without running the rest of this hook (deprecated in the kernel, passed through)."],
      ["VERDICT_QBITS", 16, "NF_VERDICT_QBITS", "Shift of the queue number inside an NF_QUEUE verdict."],
      ["VERDICT_MASK", 0xff, "NF_VERDICT_MASK", "Mask of the verdict proper inside a verdict word."],
    ],
  },
  {
    name: "HOOK",
    doc: "Netfilter IPv4/IPv6 hooks (enum nf_inet_hooks), as NFQA_PACKET_HDR reports them.",
    rows: [
      ["PRE_ROUTING", 0, "NF_INET_PRE_ROUTING", "Arriving packets, before the route decision."],
      ["LOCAL_IN", 1, "NF_INET_LOCAL_IN", "Packets for this host."],
      ["FORWARD", 2, "NF_INET_FORWARD", "Routed packets."],
      ["LOCAL_OUT", 3, "NF_INET_LOCAL_OUT", "Packets this host sends."],
      ["POST_ROUTING", 4, "NF_INET_POST_ROUTING", "Leaving packets, after the route decision."],
    ],
  },
  {
    name: "SKB_INFO",
    doc: "NFQA_SKB_INFO bits (linux/netfilter/nfnetlink_queue.h).",
    rows: [
      ["CSUMNOTREADY", 1, "NFQA_SKB_CSUMNOTREADY", "The L4 checksum is partial (CHECKSUM_PARTIAL): not an error, compute it in full after a rewrite."],
      ["GSO", 2, "NFQA_SKB_GSO", "A GSO super-packet, larger than the device MTU (only with F_GSO)."],
      ["CSUM_NOTVERIFIED", 4, "NFQA_SKB_CSUM_NOTVERIFIED", "The checksum was not verified by hardware or the stack yet."],
    ],
  },
  {
    name: "CFG_F",
    doc: "NFQA_CFG_FLAGS bits, set together with NFQA_CFG_MASK.",
    rows: [
      ["FAIL_OPEN", 1, "NFQA_CFG_F_FAIL_OPEN", "Accept packets the queue cannot take (full, or the socket buffer overflows) instead of dropping them."],
      ["CONNTRACK", 2, "NFQA_CFG_F_CONNTRACK", "Attach conntrack information (not used by sluice)."],
      ["GSO", 4, "NFQA_CFG_F_GSO", "Queue GSO super-packets whole instead of segmenting them first."],
      ["UID_GID", 8, "NFQA_CFG_F_UID_GID", "Attach the socket owner's uid/gid (not used by sluice)."],
      ["SECCTX", 16, "NFQA_CFG_F_SECCTX", "Attach the security context (not used by sluice)."],
    ],
  },
  {
    name: "COPY",
    doc: "NFQNL copy modes (enum nfqnl_config_mode).",
    rows: [
      ["NONE", 0, "NFQNL_COPY_NONE", "Nothing (the kernel refuses to queue)."],
      ["META", 1, "NFQNL_COPY_META", "Metadata only."],
      ["PACKET", 2, "NFQNL_COPY_PACKET", "Metadata and up to copy-range bytes of the packet (sluice always uses this)."],
    ],
  },
  {
    name: "META",
    doc:
      "NFQUEUE batch metadata: one row of META.STRIDE Int32 fields per packet of a batch, " +
      "row i at meta[i * META.STRIDE]. Filled by NfQueue::ParseMessage in native-bindings/src/nfqueue.cc.",
    rows: [
      ["ID", 0, null, "Packet id (a uint32 stored as int32: read it with `>>> 0`)."],
      ["SLOT", 1, null, "Slab slot that holds the packet until its verdict."],
      ["PAYLOAD_OFF", 2, null, "Byte offset of the packet (its L3 header) in the slab."],
      ["PAYLOAD_LEN", 3, null, "Bytes of the packet in the slab (at most the copy range)."],
      ["CAP_LEN", 4, null, "The packet's full length (NFQA_CAP_LEN; equals PAYLOAD_LEN when nothing was cut)."],
      ["HW_PROTOCOL", 5, null, "EtherType of the packet, host order (0x0800 IPv4, 0x86dd IPv6)."],
      ["HOOK", 6, null, "Netfilter hook (HOOK.*)."],
      ["MARK", 7, null, "skb mark (0 when the kernel sent none)."],
      ["INDEV", 8, null, "Input interface index, 0 if none."],
      ["OUTDEV", 9, null, "Output interface index, 0 if none."],
      ["PHYSINDEV", 10, null, "Bridge port the packet came in on, 0 if none."],
      ["PHYSOUTDEV", 11, null, "Bridge port the packet goes out on, 0 if none."],
      ["SKB_INFO", 12, null, "NFQA_SKB_INFO bits (SKB_INFO.*), 0 if absent."],
      ["FLAGS", 13, null, "META_F.* bits."],
      ["HWADDR_OFF", 14, null, "Byte offset of the source link-layer address in the slab, -1 if absent."],
      ["HWADDR_LEN", 15, null, "Length of that address in bytes (6 for Ethernet), 0 if absent."],
      ["STRIDE", 16, null, "Int32 fields per row."],
    ],
  },
  {
    name: "META_F",
    doc: "Bits of the META.FLAGS field.",
    rows: [
      ["TRUNCATED", 1, null, "The slab holds fewer bytes than the packet has (copy range or slot too small): accept or drop it, but its payload cannot be replaced."],
      ["MSG_TRUNC", 2, null, "The netlink message itself was cut (slot smaller than the message): a configuration error, counted in NFQ_STAT.TRUNCATED."],
    ],
  },
  {
    name: "VREC",
    doc:
      "Verdict records: one row of VREC.STRIDE Uint32 fields per verdict, written by TypeScript " +
      "and sent by NfQueue::Verdicts in native-bindings/src/nfqueue.cc.",
    rows: [
      ["ID", 0, null, "Packet id (META.ID)."],
      ["SLOT", 1, null, "The packet's slot (META.SLOT): checked against the id, so a stale record is refused."],
      ["VERDICT", 2, null, "NF.* value, or NF.QUEUE | (queue << 16)."],
      ["FLAGS", 3, null, "VREC_F.* bits."],
      ["MARK", 4, null, "New skb mark (with VREC_F.MARK)."],
      ["LEN", 5, null, "Length of the replacement packet in the slot, from META.PAYLOAD_OFF (with VREC_F.PAYLOAD)."],
      ["STRIDE", 8, null, "Uint32 fields per record (6 and 7 reserved)."],
    ],
  },
  {
    name: "VREC_F",
    doc: "Bits of the VREC.FLAGS field.",
    rows: [
      ["MARK", 1, null, "Send NFQA_MARK with VREC.MARK."],
      ["PAYLOAD", 2, null, "Send NFQA_PAYLOAD: the slot's bytes from META.PAYLOAD_OFF, VREC.LEN long (may grow into the slot's headroom)."],
    ],
  },
  {
    name: "DESC",
    doc: "Packet descriptors for TUN reads (the batch rows) and for TUN/raw-socket writes: DESC.STRIDE Int32/Uint32 fields per packet.",
    rows: [
      ["OFF", 0, null, "Byte offset of the packet in the buffer."],
      ["LEN", 1, null, "Length of the packet in bytes."],
      ["STRIDE", 2, null, "Fields per descriptor."],
    ],
  },
  {
    name: "NFQ_STAT",
    doc: "Indices of the NFQUEUE counters (a Float64Array filled by NfQueue::Stats).",
    rows: [
      ["RECEIVED", 0, null, "Packets received and handed to TypeScript."],
      ["VERDICTS", 1, null, "Verdicts sent (records accepted and sent to the kernel, including default verdicts)."],
      ["BATCHES", 2, null, "Batch callbacks (one per recvmmsg round that returned packets)."],
      ["WAKEUPS", 3, null, "Readable events of the socket."],
      ["ENOBUFS", 4, null, "ENOBUFS from recvmmsg: the socket buffer overflowed and the kernel dropped (or, with F_FAIL_OPEN, accepted) packets."],
      ["OUTSTANDING", 5, null, "Packets received and not yet given a verdict (slots owned)."],
      ["SENDMSGS", 6, null, "sendmsg calls that carried verdicts."],
      ["VERDICT_MSGS", 7, null, "NFQNL_MSG_VERDICT messages sent."],
      ["BATCH_MSGS", 8, null, "NFQNL_MSG_VERDICT_BATCH messages sent (each covers a run of ids)."],
      ["VERDICT_ERRORS", 9, null, "Error replies from the kernel to verdicts (unknown id, bad payload)."],
      ["LAST_VERDICT_ERRNO", 10, null, "errno of the last such error reply."],
      ["BAD_VERDICTS", 11, null, "Verdict records refused before sending (slot not owned by that id, bad length, payload of a truncated packet)."],
      ["STARVED", 12, null, "Wakeups that found no free slot (reading paused until verdicts free one)."],
      ["TRUNCATED", 13, null, "Netlink messages cut by MSG_TRUNC."],
      ["PARSE_ERRORS", 14, null, "Messages that were not a well-formed packet of this queue."],
      ["DEFAULT_VERDICTS", 15, null, "Default verdicts given on close."],
      ["RECV_ERRORS", 16, null, "Other recvmmsg errors."],
      ["SEND_ERRORS", 17, null, "sendmsg calls that failed (their packets stay outstanding)."],
      ["COUNT", 18, null, "Number of counters."],
    ],
  },
  {
    name: "TUN_STAT",
    doc: "Indices of the TUN counters (a Float64Array filled by Tun::Stats).",
    rows: [
      ["RECEIVED", 0, null, "Packets read."],
      ["BATCHES", 1, null, "Batch callbacks."],
      ["WAKEUPS", 2, null, "Readable events."],
      ["READ_ERRORS", 3, null, "read() errors other than EAGAIN."],
      ["SENT", 4, null, "Packets written."],
      ["SEND_ERRORS", 5, null, "write() errors other than EAGAIN (the packet is skipped)."],
      ["SEND_DROPPED", 6, null, "Packets not written because the device would block."],
      ["BAD_DESCS", 7, null, "Descriptors outside the buffer (skipped)."],
      ["COUNT", 8, null, "Number of counters."],
    ],
  },
  {
    name: "RAW_STAT",
    doc: "Indices of the raw-socket counters (a Float64Array filled by RawSocket::Stats).",
    rows: [
      ["SENT", 0, null, "Packets sent."],
      ["SEND_ERRORS", 1, null, "Packets refused by the kernel (no route, too big, ...; skipped)."],
      ["SEND_DROPPED", 2, null, "Packets not sent because the socket buffer was full."],
      ["SENDMMSG_CALLS", 3, null, "sendmmsg calls."],
      ["BAD_DESCS", 4, null, "Descriptors outside the buffer, or not an IPv4/IPv6 header of an open family (skipped)."],
      ["LAST_ERRNO", 5, null, "errno of the last refused packet."],
      ["COUNT", 6, null, "Number of counters."],
    ],
  },
  {
    name: "LIMIT",
    doc: "Bounds the addon enforces on the options (the TypeScript wrappers check them first, with a named field).",
    rows: [
      ["MAX_BATCH", 1024, null, "Messages per recvmmsg / reads per round (S)."],
      ["MAX_ROUNDS", 64, null, "Rounds per wakeup (R)."],
      ["MAX_SLOTS", 65536, null, "Slots per NFQUEUE handle."],
      ["MIN_SLOT", 1024, null, "Smallest NFQUEUE/TUN slot in bytes (NL_OVERHEAD plus room for a packet)."],
      ["MAX_SLOT", 262144, null, "Largest slot in bytes."],
      ["NL_OVERHEAD", 512, null, "Bytes of a slot kept for the netlink headers and attributes that precede NFQA_PAYLOAD."],
      ["MAX_COPY_RANGE", 65535, null, "Largest NFQUEUE copy range (the kernel's NFQNL_MAX_COPY_RANGE)."],
    ],
  },
  {
    name: "IO_ERR",
    doc: "Error codes (`err.code`) of the native I/O layer, thrown at configuration time only.",
    rows: [
      ["PERM", "ESLUICE_IO_PERM", null, "The kernel refused for lack of privilege (CAP_NET_ADMIN)."],
      ["BUSY", "ESLUICE_IO_BUSY", null, "The queue or device is already owned by another process or socket."],
      ["SYSCALL", "ESLUICE_IO_SYSCALL", null, "A system call failed (`errno`, `syscall` on the error)."],
      ["ARG", "ESLUICE_IO_ARG", null, "An option or buffer is out of range."],
      ["CLOSED", "ESLUICE_IO_CLOSED", null, "The handle is closed."],
      ["NOT_BUILT", "ESLUICE_IO_NOT_BUILT", null, "The addon is not built or cannot be loaded."],
    ],
  },
];

const HEADER_NOTE = "Generated by scripts/gen-native-constants.mjs from its TABLE: do not edit; edit the table and run the script.";

/** Numbers print in decimal, masks in hex. */
function hexish(v) {
  return v === 0xff ? "0xff" : String(v);
}

function genH() {
  const out = [];
  out.push(`// ${HEADER_NOTE}`);
  out.push("#pragma once");
  out.push("");
  out.push("#include <cstdint>");
  out.push("// glibc's netinet/in.h before the kernel's headers, which then skip their copies (linux/libc-compat.h).");
  out.push("#include <netinet/in.h>");
  out.push("#include <linux/netfilter.h>");
  out.push("#include <linux/netfilter/nfnetlink_queue.h>");
  out.push("");
  out.push("#include <napi.h>");
  out.push("");
  out.push("namespace sluice {");
  for (const g of TABLE) {
    out.push("");
    out.push(`// ${g.name}: ${g.doc}`);
    for (const [n, v, , doc] of g.rows) {
      const cname = `SL_${g.name}_${n}`;
      if (typeof v === "string") out.push(`constexpr const char* ${cname} = "${v}";  // ${doc}`);
      else out.push(`constexpr int32_t ${cname} = ${hexish(v)};  // ${doc}`);
    }
  }
  out.push("");
  out.push("// The kernel's values, checked at compile time.");
  for (const g of TABLE) {
    for (const [n, , k] of g.rows) {
      if (k) out.push(`static_assert(SL_${g.name}_${n} == ${k}, "${g.name}.${n} differs from the kernel's ${k}");`);
    }
  }
  out.push("");
  out.push('// Every value above, as the addon\'s `constants` object ("GROUP.NAME" -> value).');
  out.push("inline Napi::Object ExportConstants(Napi::Env env) {");
  out.push("  Napi::Object o = Napi::Object::New(env);");
  for (const g of TABLE) {
    for (const [n, v] of g.rows) {
      const cname = `SL_${g.name}_${n}`;
      if (typeof v === "string") out.push(`  o.Set("${g.name}.${n}", Napi::String::New(env, ${cname}));`);
      else out.push(`  o.Set("${g.name}.${n}", Napi::Number::New(env, ${cname}));`);
    }
  }
  out.push("  return o;");
  out.push("}");
  out.push("");
  out.push("}  // namespace sluice");
  out.push("");
  return out.join("\n");
}

function genTs() {
  const out = [];
  out.push("/**");
  out.push(` * ${HEADER_NOTE}`);
  out.push(" *");
  out.push(" * The numbers the native addon (native-bindings/src/constants.h, generated");
  out.push(" * from the same table) and TypeScript share. test/io/native-constants.test.ts");
  out.push(" * checks that the built addon reports the same values.");
  out.push(" */");
  for (const g of TABLE) {
    out.push("");
    out.push(`/** ${g.doc} */`);
    out.push(`export const ${g.name} = {`);
    for (const [n, v, k, doc] of g.rows) {
      out.push(`  /** ${doc}${k ? ` (${k})` : ""} */`);
      out.push(`  ${n}: ${typeof v === "string" ? JSON.stringify(v) : hexish(v)},`);
    }
    out.push("} as const;");
  }
  out.push("");
  out.push("/** Every group above by name, for the agreement test and diagnostics. */");
  out.push(`export const NATIVE_CONSTANT_GROUPS = { ${TABLE.map((g) => g.name).join(", ")} } as const;`);
  out.push("");
  return out.join("\n");
}

const files = [
  [OUT_H, genH()],
  [OUT_TS, genTs()],
];
if (process.argv.includes("--check")) {
  const stale = files.filter(([p, text]) => {
    try {
      return readFileSync(p, "utf8") !== text;
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    console.error(`stale generated files (run node scripts/gen-native-constants.mjs): ${stale.map(([p]) => p).join(", ")}`);
    process.exit(1);
  }
} else {
  for (const [p, text] of files) writeFileSync(p, text);
}
