// Send-only raw sockets for re-injection (packet-io.md §3.5):
// socket(AF_INET[6], SOCK_RAW, IPPROTO_RAW) implies IP_HDRINCL / IPV6_HDRINCL
// and receives nothing. The destination of each packet comes from its own
// header; runs of one family go out in one sendmmsg. SO_MARK tags every
// packet so the ruleset that diverts traffic to sluice can skip them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace sluice {

class RawSocket : public Napi::ObjectWrap<RawSocket> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RawSocket",
                       {
                           InstanceMethod("send", &RawSocket::Send),
                           InstanceMethod("stats", &RawSocket::Stats),
                           InstanceMethod("close", &RawSocket::Close),
                       });
  }

  // new RawSocket(opts {ipv4 = true, ipv6 = true, mark = -1, sndbuf = 0, netns})
  explicit RawSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RawSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowCoded(env, SL_IO_ERR_ARG, "RawSocket(opts)");
      return;
    }
    Napi::Object opts = info[0].As<Napi::Object>();
    bool v4, v6;
    int64_t mark, sndbuf;
    std::string netns;
    if (!OptBool(opts, "ipv4", true, &v4) || !OptBool(opts, "ipv6", true, &v6) ||
        !OptInt(opts, "mark", -1, -1, 0xffffffffLL, &mark) || !OptInt(opts, "sndbuf", 0, 0, 0x7fffffff, &sndbuf) ||
        !OptString(opts, "netns", &netns))
      return;
    if (!v4 && !v6) {
      ThrowCoded(env, SL_IO_ERR_ARG, "RawSocket: ipv4 and ipv6 are both off");
      return;
    }
    msgs_.resize(SL_LIMIT_MAX_BATCH);
    iov_.resize(SL_LIMIT_MAX_BATCH);
    addr_.resize(SL_LIMIT_MAX_BATCH);
    NetnsGuard ns;
    if (!ns.Enter(env, netns)) return;
    if ((v4 && !Open(env, AF_INET, &fd4_, mark, sndbuf)) || (v6 && !Open(env, AF_INET6, &fd6_, mark, sndbuf))) {
      CloseNow();
      return;
    }
    napi_add_env_cleanup_hook(env, &RawSocket::OnTeardown, this);
    hooked_ = true;
  }

  ~RawSocket() override { CloseNow(); }

 private:
  bool Open(Napi::Env env, int family, int* fd, int64_t mark, int64_t sndbuf) {
    const char* fam = family == AF_INET ? "IPv4" : "IPv6";
    *fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
    if (*fd < 0) {
      int e = errno;
      if (e == EPERM || e == EACCES)
        ThrowCoded(env, SL_IO_ERR_PERM,
                   std::string("raw ") + fam + " socket needs CAP_NET_RAW: run as root or grant the capability", e,
                   "socket");
      else
        ThrowSys(env, std::string("raw ") + fam + " socket", "socket", e);
      return false;
    }
    if (mark >= 0) {
      uint32_t m = static_cast<uint32_t>(mark);
      if (setsockopt(*fd, SOL_SOCKET, SO_MARK, &m, sizeof m) != 0) {
        int e = errno;
        if (e == EPERM)
          ThrowCoded(env, SL_IO_ERR_PERM,
                     std::string("SO_MARK on the raw ") + fam + " socket needs CAP_NET_ADMIN: run as root", e,
                     "setsockopt");
        else
          ThrowSys(env, std::string("raw ") + fam + " socket", "setsockopt(SO_MARK)", e);
        return false;
      }
    }
    if (sndbuf > 0) {
      int v = static_cast<int>(sndbuf);
      if (setsockopt(*fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) != 0)
        setsockopt(*fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    return true;
  }

  static void OnTeardown(void* self) {
    RawSocket* r = static_cast<RawSocket*>(self);
    r->hooked_ = false;  // the hook is being run: it must not be removed
    r->CloseNow();
  }

  void CloseNow() {
    if (hooked_) {
      napi_remove_env_cleanup_hook(Env(), &RawSocket::OnTeardown, this);
      hooked_ = false;
    }
    if (fd4_ >= 0) close(fd4_);
    if (fd6_ >= 0) close(fd6_);
    fd4_ = fd6_ = -1;
    closed_ = true;
  }

  // Sends msgs_[0..n) on fd; returns packets sent.
  uint32_t SendRun(int fd, uint32_t n) {
    uint32_t k = 0, sent = 0;
    while (k < n) {
      int r = sendmmsg(fd, msgs_.data() + k, n - k, 0);
      stats_[SL_RAW_STAT_SENDMMSG_CALLS]++;
      if (r > 0) {
        k += r;
        sent += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
        // The socket buffer is full: drop the rest, as a router's queue would.
        stats_[SL_RAW_STAT_SEND_DROPPED] += n - k;
        break;
      }
      // This packet was refused (no route, too big, bad header...): skip it.
      stats_[SL_RAW_STAT_SEND_ERRORS]++;
      stats_[SL_RAW_STAT_LAST_ERRNO] = r < 0 ? errno : 0;
      k++;
    }
    return sent;
  }

  // send(buf: ArrayBuffer | TypedArray, desc: Uint32Array, count) -> packets sent
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* buf = nullptr;
    size_t bufLen = 0;
    uint8_t* dp = nullptr;
    size_t dLen = 0;
    if (info.Length() < 3 || !BufferOf(info[0], &buf, &bufLen) || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !BufferOf(info[1], &dp, &dLen) ||
        !info[2].IsNumber()) {
      ThrowCoded(env, SL_IO_ERR_ARG, "RawSocket: send(buf, desc: Uint32Array, count)");
      return env.Undefined();
    }
    if (closed_) {
      ThrowCoded(env, SL_IO_ERR_CLOSED, "RawSocket is closed");
      return env.Undefined();
    }
    uint32_t count = info[2].As<Napi::Number>().Uint32Value();
    if (static_cast<size_t>(count) * SL_DESC_STRIDE * 4 > dLen) {
      ThrowCoded(env, SL_IO_ERR_ARG, "RawSocket: send(count) beyond the descriptor array");
      return env.Undefined();
    }
    const uint32_t* desc = reinterpret_cast<const uint32_t*>(dp);
    uint32_t sent = 0, n = 0;
    int runFam = 0;
    for (uint32_t i = 0; i <= count; i++) {
      int fam = 0;
      uint64_t off = 0, len = 0;
      if (i < count) {
        off = desc[i * SL_DESC_STRIDE + SL_DESC_OFF];
        len = desc[i * SL_DESC_STRIDE + SL_DESC_LEN];
        if (off + len <= bufLen && len >= 20) {
          uint8_t version = buf[off] >> 4;
          if (version == 4 && fd4_ >= 0) fam = AF_INET;
          if (version == 6 && fd6_ >= 0 && len >= 40) fam = AF_INET6;
        }
        if (fam == 0) {
          stats_[SL_RAW_STAT_BAD_DESCS]++;
          continue;
        }
      }
      // Flush the run at the end, on a change of family, or when full.
      if (n > 0 && (i == count || fam != runFam || n == msgs_.size())) {
        sent += SendRun(runFam == AF_INET ? fd4_ : fd6_, n);
        n = 0;
      }
      if (i == count) break;
      runFam = fam;
      Addr& a = addr_[n];
      memset(&a, 0, sizeof a);
      socklen_t alen;
      if (fam == AF_INET) {
        a.v4.sin_family = AF_INET;
        memcpy(&a.v4.sin_addr, buf + off + 16, 4);
        alen = sizeof a.v4;
      } else {
        a.v6.sin6_family = AF_INET6;
        memcpy(&a.v6.sin6_addr, buf + off + 24, 16);
        alen = sizeof a.v6;
      }
      iov_[n].iov_base = buf + off;
      iov_[n].iov_len = len;
      memset(&msgs_[n], 0, sizeof(mmsghdr));
      msgs_[n].msg_hdr.msg_name = &a;
      msgs_[n].msg_hdr.msg_namelen = alen;
      msgs_[n].msg_hdr.msg_iov = &iov_[n];
      msgs_[n].msg_hdr.msg_iovlen = 1;
      n++;
    }
    stats_[SL_RAW_STAT_SENT] += sent;
    return Napi::Number::New(env, sent);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      ThrowCoded(env, SL_IO_ERR_ARG, "RawSocket: stats(out: Float64Array)");
      return env.Undefined();
    }
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    size_t n = std::min<size_t>(out.ElementLength(), SL_RAW_STAT_COUNT);
    for (size_t i = 0; i < n; i++) out[i] = stats_[i];
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }

  union Addr {
    sockaddr_in v4;
    sockaddr_in6 v6;
  };
  int fd4_ = -1, fd6_ = -1;
  bool closed_ = false, hooked_ = false;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<Addr> addr_;
  double stats_[SL_RAW_STAT_COUNT] = {};
};

Napi::Function InitRawSocket(Napi::Env env) { return RawSocket::Init(env); }

}  // namespace sluice
