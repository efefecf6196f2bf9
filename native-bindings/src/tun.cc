// A TUN device (IFF_TUN | IFF_NO_PI, optionally IFF_MULTI_QUEUE): a bounded
// non-blocking read loop per wakeup into the slab's slots, one JS callback
// per batch, and batched writes. A character device has no recvmmsg, so a
// batch is one read() per packet but still one JS call (packet-io.md §3.4).
// common.h first: it brings glibc's netinet/in.h before any kernel header.
#include "common.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace sluice {

class Tun : public Napi::ObjectWrap<Tun> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Tun",
                       {
                           InstanceMethod("start", &Tun::Start),
                           InstanceMethod("write", &Tun::Write),
                           InstanceMethod("stats", &Tun::Stats),
                           InstanceMethod("close", &Tun::Close),
                           InstanceAccessor("name", &Tun::Name, nullptr),
                           InstanceAccessor("ifindex", &Tun::Ifindex, nullptr),
                       });
  }

  // new Tun(opts {name, multiQueue, slotSize, batch, rounds, netns}, slab: ArrayBuffer, meta: Int32Array, onBatch(count))
  explicit Tun(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tun>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsArrayBuffer() || !info[2].IsTypedArray() ||
        !info[3].IsFunction() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      ThrowCoded(env, SL_IO_ERR_ARG, "Tun(opts, slab: ArrayBuffer, meta: Int32Array, onBatch: Function)");
      return;
    }
    Napi::Object opts = info[0].As<Napi::Object>();
    int64_t slotSize, batch, rounds;
    bool multiQueue;
    std::string netns;
    if (!OptString(opts, "name", &name_) || !OptString(opts, "netns", &netns) ||
        !OptBool(opts, "multiQueue", false, &multiQueue) ||
        !OptInt(opts, "slotSize", 2048, SL_LIMIT_MIN_SLOT, SL_LIMIT_MAX_SLOT, &slotSize) ||
        !OptInt(opts, "batch", 64, 1, SL_LIMIT_MAX_BATCH, &batch) ||
        !OptInt(opts, "rounds", 8, 1, SL_LIMIT_MAX_ROUNDS, &rounds))
      return;
    if (name_.size() >= IFNAMSIZ) {
      ThrowCoded(env, SL_IO_ERR_ARG, "option name: at most 15 bytes");
      return;
    }
    slotSize_ = static_cast<uint32_t>(slotSize);
    batch_ = static_cast<uint32_t>(batch);
    rounds_ = static_cast<uint32_t>(rounds);
    slabRef_ = Napi::Persistent(info[1]);
    metaRef_ = Napi::Persistent(info[2]);
    cb_ = Napi::Persistent(info[3].As<Napi::Function>());
    BufferOf(info[1], &slab_, &slabLen_);
    uint8_t* p = nullptr;
    BufferOf(info[2], &p, &metaLen_);
    meta_ = reinterpret_cast<int32_t*>(p);
    if (slabLen_ != static_cast<size_t>(batch_) * slotSize_ || slabLen_ > 0x7fffffffu) {
      ThrowCoded(env, SL_IO_ERR_ARG, "slab must be exactly batch * slotSize bytes");
      return;
    }
    if (metaLen_ < static_cast<size_t>(batch_) * SL_DESC_STRIDE * 4) {
      ThrowCoded(env, SL_IO_ERR_ARG, "meta must hold batch * DESC.STRIDE Int32 fields");
      return;
    }
    {
      // The device is created in the namespace of the thread that opens /dev/net/tun.
      NetnsGuard ns;
      if (!ns.Enter(env, netns)) return;
      std::string what = "TUN device " + (name_.empty() ? std::string("(kernel-named)") : name_);
      fd_ = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd_ < 0) {
        int e = errno;
        if (e == ENOENT || e == ENODEV)
          ThrowCoded(env, SL_IO_ERR_SYSCALL, what + ": no /dev/net/tun (load the tun module: modprobe tun)", e, "open");
        else if (e == EACCES || e == EPERM)
          ThrowCoded(env, SL_IO_ERR_PERM, what + ": opening /dev/net/tun needs root or CAP_NET_ADMIN", e, "open");
        else
          ThrowSys(env, what, "open", e);
        return;
      }
      ifreq ifr{};
      ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (multiQueue ? IFF_MULTI_QUEUE : 0);
      memcpy(ifr.ifr_name, name_.data(), name_.size());
      if (ioctl(fd_, TUNSETIFF, &ifr) != 0) {
        int e = errno;
        close(fd_);
        fd_ = -1;
        if (e == EPERM)
          ThrowCoded(env, SL_IO_ERR_PERM, what + ": creating or attaching a TUN device needs CAP_NET_ADMIN", e,
                     "ioctl");
        else if (e == EBUSY)
          ThrowCoded(env, SL_IO_ERR_BUSY,
                     what + " is in use (attached by another process, or single-queue while multiQueue was asked)",
                     e, "ioctl");
        else if (e == EINVAL)
          ThrowCoded(env, SL_IO_ERR_BUSY,
                     what + " exists with other flags (a TAP device, with packet info, or multi-queue mismatch)", e,
                     "ioctl");
        else
          ThrowSys(env, what, "ioctl(TUNSETIFF)", e);
        return;
      }
      name_.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s >= 0) {
        ifreq q{};
        memcpy(q.ifr_name, ifr.ifr_name, IFNAMSIZ);
        if (ioctl(s, SIOCGIFINDEX, &q) == 0) ifindex_ = q.ifr_ifindex;
        close(s);
      }
    }
    napi_value name = Napi::String::New(env, "sluice.Tun");
    napi_async_init(env, info.This(), name, &actx_);
    watch_ = FdWatch::Create(env, this, &Tun::OnReadable, &Tun::OnTeardown);
    if (watch_ == nullptr) {
      CloseNow();
      ThrowCoded(env, SL_IO_ERR_SYSCALL, "TUN: cannot register the poll handle");
    }
  }

  ~Tun() override {
    CloseNow();
    if (actx_ != nullptr) napi_async_destroy(Env(), actx_);
  }

 private:
  static void OnReadable(void* self) { static_cast<Tun*>(self)->ReadWakeup(); }
  static void OnTeardown(void* self) { static_cast<Tun*>(self)->CloseNow(); }

  bool Refresh() {
    uint8_t* p = nullptr;
    size_t len = 0;
    if (!BufferOf(slabRef_.Value(), &p, &len) || len != slabLen_) return false;
    slab_ = p;
    if (!BufferOf(metaRef_.Value(), &p, &len) || len != metaLen_) return false;
    meta_ = reinterpret_cast<int32_t*>(p);
    return true;
  }

  void ReadWakeup() {
    if (closed_ || inWakeup_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object self = Value();
    if (!Refresh()) {
      stats_[SL_TUN_STAT_READ_ERRORS]++;
      watch_->Stop();
      return;
    }
    stats_[SL_TUN_STAT_WAKEUPS]++;
    inWakeup_ = true;
    for (uint32_t r = 0; r < rounds_ && !closed_; r++) {
      uint32_t count = 0;
      bool drained = false;
      while (count < batch_) {
        size_t off = static_cast<size_t>(count) * slotSize_;
        ssize_t n = read(fd_, slab_ + off, slotSize_);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK) stats_[SL_TUN_STAT_READ_ERRORS]++;
          drained = true;
          break;
        }
        if (static_cast<size_t>(n) > slotSize_) n = slotSize_;  // cannot happen: the kernel fails such a read
        int32_t* m = meta_ + static_cast<size_t>(count) * SL_DESC_STRIDE;
        m[SL_DESC_OFF] = static_cast<int32_t>(off);
        m[SL_DESC_LEN] = static_cast<int32_t>(n);
        count++;
      }
      if (count > 0) {
        stats_[SL_TUN_STAT_RECEIVED] += count;
        stats_[SL_TUN_STAT_BATCHES]++;
        if (!CallBatch(env, cb_, self, actx_, count)) break;
        if (closed_ || !Refresh()) break;
      }
      if (drained) break;
    }
    inWakeup_ = false;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) {
      ThrowCoded(env, SL_IO_ERR_CLOSED, "TUN device " + name_ + " is closed");
      return env.Undefined();
    }
    if (!started_) {
      int r = watch_->Start(fd_);
      if (r != 0) {
        ThrowCoded(env, SL_IO_ERR_SYSCALL, std::string("TUN: uv_poll_start: ") + uv_strerror(r));
        return env.Undefined();
      }
      started_ = true;
      Ref();
    }
    return env.Undefined();
  }

  // write(buf: ArrayBuffer | TypedArray, desc: Uint32Array, count) -> packets written
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* buf = nullptr;
    size_t bufLen = 0;
    uint8_t* dp = nullptr;
    size_t dLen = 0;
    if (info.Length() < 3 || !BufferOf(info[0], &buf, &bufLen) || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !BufferOf(info[1], &dp, &dLen) ||
        !info[2].IsNumber()) {
      ThrowCoded(env, SL_IO_ERR_ARG, "TUN: write(buf, desc: Uint32Array, count)");
      return env.Undefined();
    }
    if (closed_) {
      ThrowCoded(env, SL_IO_ERR_CLOSED, "TUN device " + name_ + " is closed");
      return env.Undefined();
    }
    uint32_t count = info[2].As<Napi::Number>().Uint32Value();
    if (static_cast<size_t>(count) * SL_DESC_STRIDE * 4 > dLen) {
      ThrowCoded(env, SL_IO_ERR_ARG, "TUN: write(count) beyond the descriptor array");
      return env.Undefined();
    }
    const uint32_t* desc = reinterpret_cast<const uint32_t*>(dp);
    uint32_t sent = 0;
    for (uint32_t i = 0; i < count; i++) {
      uint64_t off = desc[i * SL_DESC_STRIDE + SL_DESC_OFF], len = desc[i * SL_DESC_STRIDE + SL_DESC_LEN];
      if (len == 0 || off + len > bufLen) {
        stats_[SL_TUN_STAT_BAD_DESCS]++;
        continue;
      }
      ssize_t n;
      do {
        n = write(fd_, buf + off, len);
      } while (n < 0 && errno == EINTR);
      if (n >= 0) {
        sent++;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        stats_[SL_TUN_STAT_SEND_DROPPED] += count - i;
        break;
      } else {
        stats_[SL_TUN_STAT_SEND_ERRORS]++;
      }
    }
    stats_[SL_TUN_STAT_SENT] += sent;
    return Napi::Number::New(env, sent);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      ThrowCoded(env, SL_IO_ERR_ARG, "TUN: stats(out: Float64Array)");
      return env.Undefined();
    }
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    size_t n = std::min<size_t>(out.ElementLength(), SL_TUN_STAT_COUNT);
    for (size_t i = 0; i < n; i++) out[i] = stats_[i];
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool wasOpen = !closed_;
    CloseNow();
    if (wasOpen && started_) Unref();
    return info.Env().Undefined();
  }

  Napi::Value Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value Ifindex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ifindex_); }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    if (watch_ != nullptr) watch_->Close();
    watch_ = nullptr;
    if (fd_ >= 0) close(fd_);  // the last fd of a non-persistent device removes it
    fd_ = -1;
  }

  std::string name_;
  int ifindex_ = 0;
  int fd_ = -1;
  uint32_t slotSize_ = 0, batch_ = 0, rounds_ = 0;
  Napi::Reference<Napi::Value> slabRef_, metaRef_;
  Napi::FunctionReference cb_;
  napi_async_context actx_ = nullptr;
  uint8_t* slab_ = nullptr;
  int32_t* meta_ = nullptr;
  size_t slabLen_ = 0, metaLen_ = 0;
  FdWatch* watch_ = nullptr;
  bool started_ = false, closed_ = false, inWakeup_ = false;
  double stats_[SL_TUN_STAT_COUNT] = {};
};

Napi::Function InitTun(Napi::Env env) { return Tun::Init(env); }

}  // namespace sluice
