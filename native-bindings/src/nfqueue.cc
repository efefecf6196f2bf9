// NFQUEUE over raw nfnetlink (linux/netfilter/nfnetlink_queue.h): no
// libnetfilter_queue, no libmnl. The protocol, in the order the kernel's
// net/netfilter/nfnetlink_queue.c handles it:
//
//   bind     NFQNL_MSG_CONFIG  {CFG_CMD BIND, CFG_PARAMS, CFG_QUEUE_MAXLEN,
//                               CFG_MASK + CFG_FLAGS}   (nfqnl_recv_config)
//   packet   NFQNL_MSG_PACKET  {PACKET_HDR, IFINDEX_*, MARK, HWADDR, CAP_LEN,
//                               SKB_INFO, ..., PAYLOAD last} (nfqnl_build_packet_message)
//   verdict  NFQNL_MSG_VERDICT {VERDICT_HDR, MARK?, PAYLOAD?} (nfqnl_recv_verdict)
//            NFQNL_MSG_VERDICT_BATCH {VERDICT_HDR} = every queued id <= id
//                               (nfqnl_recv_verdict_batch)
//
// Each packet arrives as its own netlink datagram, so one recvmmsg entry is
// one message, read straight into a slab slot. NFQA_PAYLOAD is the last
// attribute of the message, so the packet can grow in place into the bytes
// after it (the slot's headroom, never written by recvmmsg).
#include "nfqueue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace sluice {

namespace {

constexpr uint16_t kMsgPacket = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
constexpr uint16_t kMsgVerdict = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT;
constexpr uint16_t kMsgVerdictBatch = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT_BATCH;
constexpr uint16_t kMsgConfig = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;
constexpr size_t kNfgenLen = NLMSG_ALIGN(sizeof(nfgenmsg));
// Bytes of one verdict message before its payload: nlmsghdr, nfgenmsg,
// VERDICT_HDR, MARK, the PAYLOAD attribute header; plus up to 3 bytes of
// padding after the previous message's payload.
constexpr size_t kVerdictHdrMax = NLMSG_HDRLEN + kNfgenLen + NLA_HDRLEN + 8 + NLA_HDRLEN + 4 + NLA_HDRLEN + 4;
constexpr size_t kIovMax = 1024;  // UIO_MAXIOV
// A run of contiguous ids shorter than this is sent as single verdicts: the
// safety scan over all slots would cost more than it saves.
constexpr uint32_t kMinRun = 4;
constexpr int kBindTimeoutMs = 2000;

inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return ntohl(v);
}

// Wrap-aware id order, as the kernel's nfq_id_after (ids are a u32 sequence).
inline bool IdAfter(uint32_t a, uint32_t b) { return static_cast<int32_t>(b - a) < 0; }

size_t PutAttr(uint8_t* p, uint16_t type, const void* data, uint16_t len) {
  nlattr* a = reinterpret_cast<nlattr*>(p);
  a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  a->nla_type = type;
  if (len > 0) memcpy(p + NLA_HDRLEN, data, len);
  size_t total = NLA_ALIGN(NLA_HDRLEN + len);
  memset(p + NLA_HDRLEN + len, 0, total - NLA_HDRLEN - len);
  return total;
}

// The kernel's per-queue line for `queue` in /proc/net/netfilter/nfnetlink_queue
// (of the calling thread's namespace): its peer portid, or -1 if not bound.
int64_t QueueOwner(uint16_t queue) {
  FILE* f = fopen("/proc/net/netfilter/nfnetlink_queue", "re");
  if (f == nullptr) return -1;
  unsigned q, portid;
  int64_t owner = -1;
  char line[256];
  while (fgets(line, sizeof line, f) != nullptr) {
    if (sscanf(line, "%u %u", &q, &portid) == 2 && q == queue) {
      owner = portid;
      break;
    }
  }
  fclose(f);
  return owner;
}

}  // namespace

Napi::Function NfQueue::Init(Napi::Env env) {
  return DefineClass(env, "NfQueue",
                     {
                         InstanceMethod("start", &NfQueue::Start),
                         InstanceMethod("poll", &NfQueue::Poll),
                         InstanceMethod("verdicts", &NfQueue::Verdicts),
                         InstanceMethod("stats", &NfQueue::Stats),
                         InstanceMethod("close", &NfQueue::Close),
                         InstanceMethod("portId", &NfQueue::PortId),
                     });
}

NfQueue::NfQueue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NfQueue>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsObject() || !info[1].IsArrayBuffer() || !info[2].IsTypedArray() ||
      !info[3].IsTypedArray() || !info[4].IsFunction() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowCoded(env, SL_IO_ERR_ARG,
               "NfQueue(opts, slab: ArrayBuffer, meta: Int32Array, verdicts: Uint32Array, onBatch: Function)");
    return;
  }
  Napi::Object opts = info[0].As<Napi::Object>();
  int64_t queue, slots, slotSize, headroom, batch, rounds, copyRange, maxlen, rcvbuf, dv;
  bool failOpen, gso, noEnobufs, vbatch;
  std::string netns;
  if (!OptInt(opts, "queue", -1, 0, 65535, &queue)) return;
  if (queue < 0) {
    ThrowCoded(env, SL_IO_ERR_ARG, "option queue (0..65535) is required");
    return;
  }
  if (!OptInt(opts, "slots", 1024, 1, SL_LIMIT_MAX_SLOTS, &slots) ||
      !OptInt(opts, "slotSize", 4096, SL_LIMIT_MIN_SLOT, SL_LIMIT_MAX_SLOT, &slotSize) ||
      !OptInt(opts, "headroom", 256, 0, slotSize - SL_LIMIT_NL_OVERHEAD - 64, &headroom) ||
      !OptInt(opts, "batch", 64, 1, SL_LIMIT_MAX_BATCH, &batch) ||
      !OptInt(opts, "rounds", 8, 1, SL_LIMIT_MAX_ROUNDS, &rounds))
    return;
  int64_t maxCopy = std::min<int64_t>(SL_LIMIT_MAX_COPY_RANGE, slotSize - headroom - SL_LIMIT_NL_OVERHEAD);
  if (!OptInt(opts, "copyRange", maxCopy, 0, maxCopy, &copyRange) ||
      !OptInt(opts, "maxlen", 0, 0, 0x7fffffff, &maxlen) ||
      !OptInt(opts, "rcvbuf", 8 << 20, 0, 0x7fffffff, &rcvbuf) ||
      !OptInt(opts, "defaultVerdict", SL_NF_DROP, 0, 0xffffffffLL, &dv) ||
      !OptBool(opts, "failOpen", false, &failOpen) || !OptBool(opts, "gso", false, &gso) ||
      !OptBool(opts, "noEnobufs", false, &noEnobufs) || !OptBool(opts, "verdictBatch", true, &vbatch) ||
      !OptString(opts, "netns", &netns))
    return;
  if (slotSize % 8 != 0) {
    ThrowCoded(env, SL_IO_ERR_ARG, "option slotSize must be a multiple of 8");
    return;
  }
  queue_ = static_cast<uint16_t>(queue);
  slots_ = static_cast<uint32_t>(slots);
  slotSize_ = static_cast<uint32_t>(slotSize);
  recvLen_ = static_cast<uint32_t>(slotSize - headroom);
  batch_ = static_cast<uint32_t>(batch);
  rounds_ = static_cast<uint32_t>(rounds);
  copyRange_ = static_cast<uint32_t>(copyRange);
  maxlen_ = static_cast<uint32_t>(maxlen);
  cfgMask_ = SL_CFG_F_FAIL_OPEN | SL_CFG_F_GSO;
  cfgFlags_ = (failOpen ? SL_CFG_F_FAIL_OPEN : 0) | (gso ? SL_CFG_F_GSO : 0);
  defaultVerdict_ = static_cast<uint32_t>(dv);
  useVerdictBatch_ = vbatch;
  rcvbuf_ = static_cast<int>(rcvbuf);
  noEnobufs_ = noEnobufs;

  slabRef_ = Napi::Persistent(info[1]);
  metaRef_ = Napi::Persistent(info[2]);
  verdRef_ = Napi::Persistent(info[3]);
  cb_ = Napi::Persistent(info[4].As<Napi::Function>());
  BufferOf(info[1], &slab_, &slabLen_);
  uint8_t* p = nullptr;
  BufferOf(info[2], &p, &metaLen_);
  meta_ = reinterpret_cast<int32_t*>(p);
  BufferOf(info[3], &p, &verdLen_);
  verd_ = reinterpret_cast<uint32_t*>(p);
  if (slabLen_ != static_cast<size_t>(slots_) * slotSize_ || slabLen_ > 0x7fffffffu) {
    ThrowCoded(env, SL_IO_ERR_ARG, "slab must be exactly slots * slotSize bytes, below 2 GiB");
    return;
  }
  if (metaLen_ < static_cast<size_t>(batch_) * SL_META_STRIDE * 4) {
    ThrowCoded(env, SL_IO_ERR_ARG, "meta must hold batch * META.STRIDE Int32 fields");
    return;
  }
  if (verdLen_ < static_cast<size_t>(SL_VREC_STRIDE) * 4) {
    ThrowCoded(env, SL_IO_ERR_ARG, "verdicts must hold at least one record");
    return;
  }

  free_.reserve(slots_);
  for (uint32_t s = slots_; s > 0; s--) free_.push_back(s - 1);  // slot 0 on top
  state_.assign(slots_, kFree);
  truncated_.assign(slots_, 0);
  slotId_.assign(slots_, 0);
  slotPayOff_.assign(slots_, -1);
  msgs_.resize(batch_);
  riov_.resize(batch_);
  roundSlots_.resize(batch_);
  txbuf_.resize(kVerdictHdrMax * (static_cast<size_t>(slots_) + 1));
  tiov_.reserve(kIovMax);
  txSlots_.reserve(slots_);
  items_.reserve(slots_);

  {
    // The socket belongs to the namespace it is created in; the bind
    // handshake and the /proc lookup for a clear EPERM must happen there too.
    NetnsGuard ns;
    if (!ns.Enter(env, netns)) return;
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd_ < 0) {
      ThrowSys(env, "NFQUEUE queue " + std::to_string(queue_), "socket", errno);
      return;
    }
    if (!Configure(env)) {
      close(fd_);
      fd_ = -1;
      return;
    }
  }
  // Bound: from here on the handle must end with close() (or the env's teardown).
  napi_value resource = info.This();
  napi_value name = Napi::String::New(env, "sluice.NfQueue");
  napi_async_init(env, resource, name, &actx_);
  watch_ = FdWatch::Create(env, this, &NfQueue::OnReadable, &NfQueue::OnTeardown);
  if (watch_ == nullptr) {
    CloseNow(defaultVerdict_);
    ThrowCoded(env, SL_IO_ERR_SYSCALL, "NFQUEUE: cannot register the poll handle");
  }
}

NfQueue::~NfQueue() {
  if (!closed_) CloseNow(defaultVerdict_);
  if (actx_ != nullptr) napi_async_destroy(Env(), actx_);
}

bool NfQueue::Configure(Napi::Env env) {
  const std::string what = "NFQUEUE queue " + std::to_string(queue_);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    ThrowSys(env, what, "bind", errno);
    return false;
  }
  socklen_t alen = sizeof local;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &alen);
  portid_ = local.nl_pid;

  int one = 1;
  // Error replies to verdicts carry only the header of the failed message,
  // not its (possibly 64 KB) payload.
  setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  if (noEnobufs_) setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  if (rcvbuf_ > 0) {
    // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN;
    // without it, SO_RCVBUF gets what rmem_max allows.
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_) != 0)
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_, sizeof rcvbuf_);
  }
  // Room for a few 64 KB replacement payloads per sendmsg (netlink refuses a
  // datagram larger than sk_sndbuf - 32: netlink_sendmsg).
  int sndbuf = 1 << 20;
  if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  socklen_t slen = sizeof sndbuf;
  if (getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, &slen) != 0) sndbuf = 212992;
  sendLimit_ = static_cast<size_t>(sndbuf) - 256;

  // One CONFIG message does it all: nfqnl_recv_config handles the command,
  // then the parameters, the queue length and the flags.
  alignas(4) uint8_t buf[256];
  memset(buf, 0, sizeof buf);
  nlmsghdr* nlh = reinterpret_cast<nlmsghdr*>(buf);
  nlh->nlmsg_type = kMsgConfig;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  cfgSeq_ = static_cast<uint32_t>(ts.tv_nsec) | 1;  // never 0: verdicts use seq 0
  nlh->nlmsg_seq = cfgSeq_;
  nfgenmsg* g = reinterpret_cast<nfgenmsg*>(buf + NLMSG_HDRLEN);
  g->nfgen_family = AF_UNSPEC;  // the queue takes IPv4 and IPv6
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue_);
  size_t off = NLMSG_HDRLEN + kNfgenLen;
  nfqnl_msg_config_cmd cmd{};
  cmd.command = NFQNL_CFG_CMD_BIND;
  cmd.pf = htons(AF_UNSPEC);
  off += PutAttr(buf + off, NFQA_CFG_CMD, &cmd, sizeof cmd);
  nfqnl_msg_config_params params{};
  params.copy_range = htonl(copyRange_);
  params.copy_mode = NFQNL_COPY_PACKET;
  off += PutAttr(buf + off, NFQA_CFG_PARAMS, &params, sizeof params);
  if (maxlen_ > 0) {
    uint32_t v = htonl(maxlen_);
    off += PutAttr(buf + off, NFQA_CFG_QUEUE_MAXLEN, &v, 4);
  }
  uint32_t mask = htonl(cfgMask_), flags = htonl(cfgFlags_);
  off += PutAttr(buf + off, NFQA_CFG_MASK, &mask, 4);
  off += PutAttr(buf + off, NFQA_CFG_FLAGS, &flags, 4);
  nlh->nlmsg_len = static_cast<uint32_t>(off);

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, buf, off, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    ThrowSys(env, what, "sendto", errno);
    return false;
  }

  // Wait for the ACK. A packet may be queued to us between the bind and the
  // ACK: it is read into a slot like any other and handed to JS with the
  // first batch (pendingRows_).
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (!ackSeen_) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (elapsed >= kBindTimeoutMs || pendingRows_ >= batch_) {
      ThrowCoded(env, SL_IO_ERR_SYSCALL, what + ": no reply from the kernel to the bind request");
      return false;
    }
    pollfd pfd{fd_, POLLIN, 0};
    int pr = poll(&pfd, 1, static_cast<int>(kBindTimeoutMs - elapsed));
    if (pr < 0 && errno != EINTR) {
      ThrowSys(env, what, "poll", errno);
      return false;
    }
    if (pr <= 0) continue;
    uint32_t packets = 0;
    int n = ReceiveRound(batch_ - pendingRows_, pendingRows_, &packets);
    pendingRows_ += packets;
    if (n == -1) {
      ThrowSys(env, what, "recvmmsg", errno);
      return false;
    }
  }
  if (ackErr_ == 0) return true;

  if (ackErr_ == EPERM || ackErr_ == EBUSY) {
    // The kernel answers EPERM both without CAP_NET_ADMIN (nfnetlink_rcv_msg)
    // and when another socket owns the queue (nfqnl_recv_config compares the
    // peer portid); EBUSY when the queue is bound already. /proc tells them apart.
    int64_t owner = QueueOwner(queue_);
    if (owner >= 0 && owner != portid_) {
      ThrowCoded(env, SL_IO_ERR_BUSY,
                 what + " is already bound by another process (netlink portid " + std::to_string(owner) +
                     ", usually its pid): one process per queue; stop it or pick another queue number",
                 ackErr_, "sendto");
      return false;
    }
    if (ackErr_ == EPERM) {
      ThrowCoded(env, SL_IO_ERR_PERM,
                 "binding " + what +
                     " needs CAP_NET_ADMIN: run as root or grant the capability (setcap cap_net_admin+ep on the "
                     "node binary)",
                 ackErr_, "sendto");
      return false;
    }
    ThrowCoded(env, SL_IO_ERR_BUSY, what + " is already bound", ackErr_, "sendto");
    return false;
  }
  ThrowCoded(env, SL_IO_ERR_SYSCALL, what + ": the kernel refused the configuration: " + strerror(ackErr_), ackErr_,
             "sendto");
  return false;
}

bool NfQueue::RefreshPointers() {
  uint8_t* p = nullptr;
  size_t len = 0;
  if (!BufferOf(slabRef_.Value(), &p, &len) || len != slabLen_) return false;
  slab_ = p;
  if (!BufferOf(metaRef_.Value(), &p, &len) || len != metaLen_) return false;
  meta_ = reinterpret_cast<int32_t*>(p);
  if (!BufferOf(verdRef_.Value(), &p, &len) || len != verdLen_) return false;
  verd_ = reinterpret_cast<uint32_t*>(p);
  return true;
}

int NfQueue::ReceiveRound(uint32_t want, uint32_t row, uint32_t* packets) {
  *packets = 0;
  if (want > free_.size()) want = static_cast<uint32_t>(free_.size());
  if (want == 0) return -2;
  for (uint32_t k = 0; k < want; k++) {
    uint32_t slot = free_.back();
    free_.pop_back();
    roundSlots_[k] = slot;
    riov_[k].iov_base = slab_ + static_cast<size_t>(slot) * slotSize_;
    riov_[k].iov_len = recvLen_;  // the headroom stays untouched
    memset(&msgs_[k], 0, sizeof(mmsghdr));
    msgs_[k].msg_hdr.msg_iov = &riov_[k];
    msgs_[k].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(fd_, msgs_.data(), want, MSG_DONTWAIT, nullptr);
  if (n < 0) {
    int e = errno;
    for (uint32_t k = want; k > 0; k--) free_.push_back(roundSlots_[k - 1]);
    errno = e;
    if (e == EAGAIN || e == EWOULDBLOCK) return 0;
    if (e == ENOBUFS) {
      // The socket buffer overflowed: the kernel dropped (or, with
      // F_FAIL_OPEN, accepted) what did not fit. Counted, not fatal.
      stats_[SL_NFQ_STAT_ENOBUFS]++;
      return -3;
    }
    if (e == EINTR) return -3;
    stats_[SL_NFQ_STAT_RECV_ERRORS]++;
    return -1;
  }
  for (int k = 0; k < n; k++) {
    uint32_t slot = roundSlots_[k];
    if (ParseMessage(slot, msgs_[k].msg_len, msgs_[k].msg_hdr.msg_flags, row + *packets)) {
      (*packets)++;
    } else {
      free_.push_back(slot);
    }
  }
  for (uint32_t k = want; k > static_cast<uint32_t>(n); k--) free_.push_back(roundSlots_[k - 1]);
  return n;
}

bool NfQueue::ParseMessage(uint32_t slot, uint32_t len, int msgFlags, uint32_t row) {
  uint8_t* base = slab_ + static_cast<size_t>(slot) * slotSize_;
  if (len < NLMSG_HDRLEN) {
    stats_[SL_NFQ_STAT_PARSE_ERRORS]++;
    return false;
  }
  const nlmsghdr* nlh = reinterpret_cast<const nlmsghdr*>(base);
  uint32_t msgLen = nlh->nlmsg_len;
  bool cut = (msgFlags & MSG_TRUNC) != 0 || msgLen > len;
  if ((msgFlags & MSG_TRUNC) != 0) stats_[SL_NFQ_STAT_TRUNCATED]++;
  if (msgLen > len) msgLen = len;

  if (nlh->nlmsg_type == NLMSG_ERROR) {
    if (msgLen >= NLMSG_HDRLEN + sizeof(nlmsgerr)) {
      const nlmsgerr* e = reinterpret_cast<const nlmsgerr*>(base + NLMSG_HDRLEN);
      if (!ackSeen_ && e->msg.nlmsg_seq == cfgSeq_) {
        ackSeen_ = true;
        ackErr_ = -e->error;
      } else if (e->error != 0) {
        // A verdict the kernel refused (ENOENT: no such id; EINVAL: bad payload).
        stats_[SL_NFQ_STAT_VERDICT_ERRORS]++;
        stats_[SL_NFQ_STAT_LAST_VERDICT_ERRNO] = -e->error;
      }
    }
    return false;
  }
  if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type == NLMSG_DONE) return false;
  if (nlh->nlmsg_type != kMsgPacket || msgLen < NLMSG_HDRLEN + kNfgenLen) {
    stats_[SL_NFQ_STAT_PARSE_ERRORS]++;
    return false;
  }
  const nfgenmsg* g = reinterpret_cast<const nfgenmsg*>(base + NLMSG_HDRLEN);
  if (ntohs(g->res_id) != queue_) {
    stats_[SL_NFQ_STAT_PARSE_ERRORS]++;
    return false;
  }

  int32_t* m = meta_ + static_cast<size_t>(row) * SL_META_STRIDE;
  int32_t flags = 0;
  bool haveHdr = false;
  m[SL_META_ID] = 0;
  m[SL_META_SLOT] = static_cast<int32_t>(slot);
  m[SL_META_PAYLOAD_OFF] = -1;
  m[SL_META_PAYLOAD_LEN] = 0;
  m[SL_META_CAP_LEN] = -1;
  m[SL_META_HW_PROTOCOL] = 0;
  m[SL_META_HOOK] = 0;
  m[SL_META_MARK] = 0;
  m[SL_META_INDEV] = 0;
  m[SL_META_OUTDEV] = 0;
  m[SL_META_PHYSINDEV] = 0;
  m[SL_META_PHYSOUTDEV] = 0;
  m[SL_META_SKB_INFO] = 0;
  m[SL_META_HWADDR_OFF] = -1;
  m[SL_META_HWADDR_LEN] = 0;

  size_t off = NLMSG_HDRLEN + kNfgenLen;
  while (off + NLA_HDRLEN <= msgLen) {
    const nlattr* a = reinterpret_cast<const nlattr*>(base + off);
    uint32_t alen = a->nla_len;
    if (alen < NLA_HDRLEN) break;
    uint16_t type = a->nla_type & NLA_TYPE_MASK;
    const uint8_t* d = base + off + NLA_HDRLEN;
    uint32_t dlen = alen - NLA_HDRLEN;
    if (off + alen > msgLen) {
      // Only the payload (the last attribute) can be cut by a short slot.
      if (type != NFQA_PAYLOAD) break;
      dlen = static_cast<uint32_t>(msgLen - off - NLA_HDRLEN);
      flags |= SL_META_F_TRUNCATED;
    }
    switch (type) {
      case NFQA_PACKET_HDR:
        if (dlen >= sizeof(nfqnl_msg_packet_hdr)) {
          m[SL_META_ID] = static_cast<int32_t>(Load32(d));
          m[SL_META_HW_PROTOCOL] = (d[4] << 8) | d[5];
          m[SL_META_HOOK] = d[6];
          haveHdr = true;
        }
        break;
      case NFQA_MARK:
        if (dlen >= 4) m[SL_META_MARK] = static_cast<int32_t>(Load32(d));
        break;
      case NFQA_IFINDEX_INDEV:
        if (dlen >= 4) m[SL_META_INDEV] = static_cast<int32_t>(Load32(d));
        break;
      case NFQA_IFINDEX_OUTDEV:
        if (dlen >= 4) m[SL_META_OUTDEV] = static_cast<int32_t>(Load32(d));
        break;
      case NFQA_IFINDEX_PHYSINDEV:
        if (dlen >= 4) m[SL_META_PHYSINDEV] = static_cast<int32_t>(Load32(d));
        break;
      case NFQA_IFINDEX_PHYSOUTDEV:
        if (dlen >= 4) m[SL_META_PHYSOUTDEV] = static_cast<int32_t>(Load32(d));
        break;
      case NFQA_CAP_LEN:
        if (dlen >= 4) m[SL_META_CAP_LEN] = static_cast<int32_t>(Load32(d));
        break;
      case NFQA_SKB_INFO:
        if (dlen >= 4) m[SL_META_SKB_INFO] = static_cast<int32_t>(Load32(d));
        break;
      case NFQA_HWADDR:
        if (dlen >= sizeof(nfqnl_msg_packet_hw)) {
          uint32_t hlen = (d[0] << 8) | d[1];
          m[SL_META_HWADDR_OFF] = static_cast<int32_t>(d + 4 - slab_);
          m[SL_META_HWADDR_LEN] = static_cast<int32_t>(std::min<uint32_t>(hlen, 8));
        }
        break;
      case NFQA_PAYLOAD:
        m[SL_META_PAYLOAD_OFF] = static_cast<int32_t>(d - slab_);
        m[SL_META_PAYLOAD_LEN] = static_cast<int32_t>(dlen);
        break;
      default:
        break;
    }
    off += NLA_ALIGN(alen);
  }
  if (!haveHdr) {
    stats_[SL_NFQ_STAT_PARSE_ERRORS]++;
    return false;
  }
  // NFQA_CAP_LEN comes only when the copy range cut the packet.
  if (m[SL_META_CAP_LEN] < 0) m[SL_META_CAP_LEN] = m[SL_META_PAYLOAD_LEN];
  if (m[SL_META_CAP_LEN] > m[SL_META_PAYLOAD_LEN]) flags |= SL_META_F_TRUNCATED;
  if (cut) flags |= SL_META_F_MSG_TRUNC | SL_META_F_TRUNCATED;
  m[SL_META_FLAGS] = flags;

  state_[slot] = kOwned;
  truncated_[slot] = (flags & SL_META_F_TRUNCATED) != 0 || m[SL_META_PAYLOAD_OFF] < 0;
  slotId_[slot] = static_cast<uint32_t>(m[SL_META_ID]);
  slotPayOff_[slot] = m[SL_META_PAYLOAD_OFF];
  outstanding_++;
  return true;
}

void NfQueue::OnReadable(void* self) { static_cast<NfQueue*>(self)->ReadWakeup(); }

void NfQueue::OnTeardown(void* self) {
  NfQueue* q = static_cast<NfQueue*>(self);
  Napi::HandleScope scope(q->Env());
  q->CloseNow(q->defaultVerdict_);
}

void NfQueue::ReadWakeup() {
  if (closed_ || inWakeup_) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();  // keeps the wrapper alive even if JS closes it in the callback
  if (!RefreshPointers()) {
    // A detached buffer: nothing can be read safely any more.
    stats_[SL_NFQ_STAT_RECV_ERRORS]++;
    if (watch_ != nullptr) watch_->Stop();
    return;
  }
  stats_[SL_NFQ_STAT_WAKEUPS]++;
  inWakeup_ = true;
  for (uint32_t r = 0; r < rounds_ && !closed_; r++) {
    uint32_t row0 = pendingRows_;
    uint32_t want = batch_ - row0;
    uint32_t packets = 0;
    int n = want > 0 ? ReceiveRound(want, row0, &packets) : 0;
    uint32_t total = row0 + packets;
    pendingRows_ = 0;
    if (total > 0) {
      stats_[SL_NFQ_STAT_BATCHES]++;
      stats_[SL_NFQ_STAT_RECEIVED] += total;
      if (!CallBatch(env, cb_, self, actx_, total)) break;
      if (closed_ || !RefreshPointers()) break;
    }
    if (n == -2) {
      // Every slot is waiting for its verdict: stop reading (the kernel
      // queue absorbs the burst up to its maxlen) until a verdict frees one.
      stats_[SL_NFQ_STAT_STARVED]++;
      if (free_.empty() && watch_ != nullptr) {
        watch_->Stop();
        paused_ = true;
      }
      break;
    }
    if (n == -3) continue;
    if (n <= 0 || static_cast<uint32_t>(n) < want) break;  // drained (or an error, counted)
  }
  inWakeup_ = false;
}

Napi::Value NfQueue::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) {
    ThrowCoded(env, SL_IO_ERR_CLOSED, "NFQUEUE queue " + std::to_string(queue_) + " is closed");
    return env.Undefined();
  }
  if (!started_) {
    int r = watch_->Start(fd_);
    if (r != 0) {
      ThrowCoded(env, SL_IO_ERR_SYSCALL, std::string("NFQUEUE: uv_poll_start: ") + uv_strerror(r));
      return env.Undefined();
    }
    started_ = true;
    Ref();  // a polling handle is kept alive by the loop, like a socket
  }
  return Napi::Number::New(env, pendingRows_);
}

Napi::Value NfQueue::Poll(const Napi::CallbackInfo& info) {
  if (started_ && !closed_) ReadWakeup();
  return info.Env().Undefined();
}

bool NfQueue::RunIsSafe(uint32_t firstId, uint32_t lastId) const {
  // A VERDICT_BATCH reaches every queued id <= lastId; it is right only if
  // every such packet is in the run. Packets still unread in the socket have
  // larger ids (the kernel numbers them in queue order), so the slots tell.
  uint32_t span = lastId - firstId;
  for (uint32_t s = 0; s < slots_; s++) {
    if (state_[s] == kFree) continue;
    uint32_t id = slotId_[s];
    if (id - firstId <= span) continue;  // in the run
    if (!IdAfter(id, lastId)) return false;
  }
  return true;
}

bool NfQueue::AppendVerdict(uint16_t type, const Item& it, bool withPayload) {
  size_t payLen = withPayload ? it.len : 0;
  size_t hdr = NLMSG_HDRLEN + kNfgenLen + NLA_HDRLEN + sizeof(nfqnl_msg_verdict_hdr) +
               ((it.flags & SL_VREC_F_MARK) ? NLA_HDRLEN + 4 : 0) + (withPayload ? NLA_HDRLEN : 0);
  size_t total = NLMSG_ALIGN(hdr + payLen);
  if (txUsed_ + kVerdictHdrMax > txbuf_.size() || tiov_.size() + 3 > kIovMax || txBytes_ + total > sendLimit_) {
    if (!Flush()) return false;
  }
  uint8_t* h = txbuf_.data() + txUsed_;
  memset(h, 0, hdr);
  nlmsghdr* nlh = reinterpret_cast<nlmsghdr*>(h);
  nlh->nlmsg_len = static_cast<uint32_t>(hdr + payLen);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nfgenmsg* g = reinterpret_cast<nfgenmsg*>(h + NLMSG_HDRLEN);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue_);
  size_t off = NLMSG_HDRLEN + kNfgenLen;
  nfqnl_msg_verdict_hdr vh;
  vh.verdict = htonl(it.verdict);
  vh.id = htonl(it.id);
  off += PutAttr(h + off, NFQA_VERDICT_HDR, &vh, sizeof vh);
  if (it.flags & SL_VREC_F_MARK) {
    uint32_t mark = htonl(it.mark);
    off += PutAttr(h + off, NFQA_MARK, &mark, 4);
  }
  if (withPayload) {
    nlattr* a = reinterpret_cast<nlattr*>(h + off);
    a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + payLen);
    a->nla_type = NFQA_PAYLOAD;
    off += NLA_HDRLEN;
  }
  // Header bytes: extend the previous iovec when it ends right here.
  if (!tiov_.empty() && static_cast<uint8_t*>(tiov_.back().iov_base) + tiov_.back().iov_len == h &&
      txLastIsHdr_) {
    tiov_.back().iov_len += off;
  } else {
    tiov_.push_back({h, off});
  }
  txUsed_ += off;
  txLastIsHdr_ = true;
  if (withPayload) {
    // The packet's bytes, straight from its slot.
    tiov_.push_back({slab_ + slotPayOff_[it.slot], payLen});
    size_t pad = NLMSG_ALIGN(hdr + payLen) - (hdr + payLen);
    txLastIsHdr_ = false;
    if (pad > 0) {
      uint8_t* z = txbuf_.data() + txUsed_;
      memset(z, 0, pad);
      tiov_.push_back({z, pad});
      txUsed_ += pad;
      txLastIsHdr_ = true;
    }
  }
  txBytes_ += total;
  return true;
}

bool NfQueue::Flush() {
  if (tiov_.empty()) return true;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  msghdr mh{};
  mh.msg_name = &kernel;
  mh.msg_namelen = sizeof kernel;
  mh.msg_iov = tiov_.data();
  mh.msg_iovlen = tiov_.size();
  ssize_t r;
  do {
    r = sendmsg(fd_, &mh, 0);
  } while (r < 0 && errno == EINTR);
  bool ok = r >= 0;
  if (ok) {
    stats_[SL_NFQ_STAT_SENDMSGS]++;
    stats_[SL_NFQ_STAT_VERDICT_MSGS] += txMsgs_;
    stats_[SL_NFQ_STAT_BATCH_MSGS] += txBatchMsgs_;
    stats_[SL_NFQ_STAT_VERDICTS] += txSlots_.size();
    for (uint32_t s : txSlots_) {
      state_[s] = kFree;
      free_.push_back(s);
    }
    outstanding_ -= static_cast<uint32_t>(txSlots_.size());
    emitted_ += static_cast<uint32_t>(txSlots_.size());
  } else {
    // Not delivered: the packets stay outstanding (close() gives them the default verdict).
    stats_[SL_NFQ_STAT_SEND_ERRORS]++;
    for (uint32_t s : txSlots_) state_[s] = kOwned;
  }
  tiov_.clear();
  txSlots_.clear();
  txUsed_ = 0;
  txBytes_ = 0;
  txMsgs_ = 0;
  txBatchMsgs_ = 0;
  txLastIsHdr_ = false;
  return ok;
}

uint32_t NfQueue::Emit(const Item* items, uint32_t n) {
  emitted_ = 0;
  for (uint32_t i = 0; i < n; i++) {
    const Item& it = items[i];
    if (useVerdictBatch_ && (it.flags & SL_VREC_F_PAYLOAD) == 0) {
      uint32_t j = i + 1;
      while (j < n && items[j].id == items[j - 1].id + 1 && (items[j].flags & SL_VREC_F_PAYLOAD) == 0 &&
             items[j].verdict == it.verdict && (items[j].flags & SL_VREC_F_MARK) == (it.flags & SL_VREC_F_MARK) &&
             ((it.flags & SL_VREC_F_MARK) == 0 || items[j].mark == it.mark))
        j++;
      if (j - i >= kMinRun && RunIsSafe(it.id, items[j - 1].id)) {
        Item last = items[j - 1];
        last.flags = it.flags;
        last.mark = it.mark;
        if (AppendVerdict(kMsgVerdictBatch, last, false)) {
          for (uint32_t k = i; k < j; k++) txSlots_.push_back(items[k].slot);
          txBatchMsgs_++;
        } else {
          for (uint32_t k = i; k < j; k++) state_[items[k].slot] = kOwned;
        }
        i = j - 1;
        continue;
      }
    }
    if (AppendVerdict(kMsgVerdict, it, (it.flags & SL_VREC_F_PAYLOAD) != 0)) {
      txSlots_.push_back(it.slot);
      txMsgs_++;
    } else {
      state_[it.slot] = kOwned;
    }
  }
  Flush();
  return emitted_;
}

Napi::Value NfQueue::Verdicts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t count = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  if (closed_) {
    stats_[SL_NFQ_STAT_BAD_VERDICTS] += count;
    return Napi::Number::New(env, 0);
  }
  if (!RefreshPointers()) {
    ThrowCoded(env, SL_IO_ERR_ARG, "NFQUEUE: a buffer given to the constructor was detached");
    return env.Undefined();
  }
  if (static_cast<size_t>(count) * SL_VREC_STRIDE * 4 > verdLen_) {
    ThrowCoded(env, SL_IO_ERR_ARG, "NFQUEUE: verdicts(count) beyond the verdict array");
    return env.Undefined();
  }
  items_.clear();
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t* r = verd_ + static_cast<size_t>(i) * SL_VREC_STRIDE;
    Item it{r[SL_VREC_ID], r[SL_VREC_SLOT], r[SL_VREC_VERDICT], r[SL_VREC_FLAGS], r[SL_VREC_MARK], r[SL_VREC_LEN]};
    uint32_t v = it.verdict & SL_NF_VERDICT_MASK;
    bool ok = it.slot < slots_ && state_[it.slot] == kOwned && slotId_[it.slot] == it.id && v <= SL_NF_STOP &&
              v != SL_NF_STOLEN;
    if (ok && (it.flags & SL_VREC_F_PAYLOAD)) {
      // The replacement lies in the packet's own slot, from its payload
      // offset up to the slot's end (headroom included).
      size_t slotEnd = static_cast<size_t>(it.slot + 1) * slotSize_;
      ok = !truncated_[it.slot] && it.len > 0 && it.len <= 0xffff - NLA_HDRLEN &&
           static_cast<size_t>(slotPayOff_[it.slot]) + it.len <= slotEnd;
    }
    if (!ok) {
      stats_[SL_NFQ_STAT_BAD_VERDICTS]++;
      continue;
    }
    state_[it.slot] = kSending;  // a second record for the same packet is refused
    items_.push_back(it);
  }
  uint32_t sent = Emit(items_.data(), static_cast<uint32_t>(items_.size()));
  if (paused_ && !free_.empty() && !closed_ && watch_ != nullptr) {
    if (watch_->Start(fd_) == 0) paused_ = false;
  }
  return Napi::Number::New(env, sent);
}

uint32_t NfQueue::VerdictAllOutstanding(uint32_t verdict) {
  items_.clear();
  for (uint32_t s = 0; s < slots_; s++) {
    if (state_[s] != kOwned) continue;
    state_[s] = kSending;
    items_.push_back(Item{slotId_[s], s, verdict, 0, 0, 0});
  }
  if (items_.empty()) return 0;
  // In id order, so that contiguous ids become one VERDICT_BATCH.
  uint32_t ref = items_[0].id;
  for (const Item& it : items_)
    if (IdAfter(ref, it.id)) ref = it.id;
  std::sort(items_.begin(), items_.end(), [ref](const Item& a, const Item& b) { return a.id - ref < b.id - ref; });
  return Emit(items_.data(), static_cast<uint32_t>(items_.size()));
}

void NfQueue::CloseNow(uint32_t defaultVerdict) {
  if (closed_) return;
  if (fd_ >= 0) {
    // Every packet we hold gets the default verdict; so do the packets the
    // kernel already queued to our socket (unbinding would drop them:
    // instance_destroy flushes with NF_DROP). Bounded: a sender that keeps
    // the queue busy cannot hold close() forever.
    uint32_t given = VerdictAllOutstanding(defaultVerdict);
    if (RefreshPointers()) {
      for (int k = 0; k < 64; k++) {
        uint32_t packets = 0;
        int n = ReceiveRound(batch_, 0, &packets);
        if (packets > 0) given += VerdictAllOutstanding(defaultVerdict);
        if (n == 0 || n == -1 || n == -2) break;
      }
    }
    stats_[SL_NFQ_STAT_DEFAULT_VERDICTS] += given;
    lastCloseVerdicts_ = given;
  }
  closed_ = true;
  if (watch_ != nullptr) watch_->Close();  // before close(fd): the poll must not watch a closed fd
  watch_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Napi::Value NfQueue::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return Napi::Number::New(env, 0);
  uint32_t dv = defaultVerdict_;
  if (info.Length() > 0 && info[0].IsNumber()) dv = info[0].As<Napi::Number>().Uint32Value();
  uint32_t v = dv & SL_NF_VERDICT_MASK;
  if (v > SL_NF_STOP || v == SL_NF_STOLEN) {
    ThrowCoded(env, SL_IO_ERR_ARG, "NFQUEUE: close(defaultVerdict): not a verdict the kernel accepts");
    return env.Undefined();
  }
  CloseNow(dv);
  if (started_) Unref();
  return Napi::Number::New(env, lastCloseVerdicts_);
}

Napi::Value NfQueue::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowCoded(env, SL_IO_ERR_ARG, "NFQUEUE: stats(out: Float64Array)");
    return env.Undefined();
  }
  stats_[SL_NFQ_STAT_OUTSTANDING] = outstanding_;
  Napi::Float64Array out = info[0].As<Napi::Float64Array>();
  size_t n = std::min<size_t>(out.ElementLength(), SL_NFQ_STAT_COUNT);
  for (size_t i = 0; i < n; i++) out[i] = stats_[i];
  return env.Undefined();
}

Napi::Value NfQueue::PortId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), portid_); }

}  // namespace sluice
