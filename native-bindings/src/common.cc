#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

namespace sluice {

void ThrowCoded(Napi::Env env, const char* code, const std::string& message, int err, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, message);
  Napi::Object o = e.Value();
  o.Set("code", Napi::String::New(env, code));
  if (err != 0) o.Set("errno", Napi::Number::New(env, err));
  if (syscall != nullptr) o.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

void ThrowSys(Napi::Env env, const std::string& what, const char* syscall, int err) {
  ThrowCoded(env, SL_IO_ERR_SYSCALL, what + ": " + syscall + ": " + strerror(err), err, syscall);
}

bool OptInt(Napi::Object opts, const char* key, int64_t def, int64_t lo, int64_t hi, int64_t* out) {
  Napi::Env env = opts.Env();
  Napi::Value v = opts.Get(key);
  if (env.IsExceptionPending()) return false;
  if (v.IsUndefined() || v.IsNull()) {
    *out = def;
    return true;
  }
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || std::floor(d) != d) {
    ThrowCoded(env, SL_IO_ERR_ARG,
               std::string("option ") + key + " must be an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool OptBool(Napi::Object opts, const char* key, bool def, bool* out) {
  Napi::Value v = opts.Get(key);
  if (opts.Env().IsExceptionPending()) return false;
  *out = (v.IsUndefined() || v.IsNull()) ? def : v.ToBoolean().Value();
  return true;
}

bool OptString(Napi::Object opts, const char* key, std::string* out) {
  Napi::Env env = opts.Env();
  Napi::Value v = opts.Get(key);
  if (env.IsExceptionPending()) return false;
  if (v.IsUndefined() || v.IsNull()) {
    out->clear();
    return true;
  }
  if (!v.IsString()) {
    ThrowCoded(env, SL_IO_ERR_ARG, std::string("option ") + key + " must be a string");
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool BufferOf(Napi::Value v, uint8_t** data, size_t* len) {
  napi_env env = v.Env();
  bool is = false;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    void* d = nullptr;
    if (napi_get_arraybuffer_info(env, v, &d, len) != napi_ok) return false;
    *data = static_cast<uint8_t*>(d);
    return true;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* d = nullptr;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &length, &d, &ab, &offset) != napi_ok) return false;
    size_t elem = 1;
    switch (type) {
      case napi_int16_array:
      case napi_uint16_array:
        elem = 2;
        break;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array:
        elem = 4;
        break;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array:
        elem = 8;
        break;
      default:
        elem = 1;
    }
    *data = static_cast<uint8_t*>(d);
    *len = length * elem;
    return true;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    void* d = nullptr;
    napi_value ab;
    size_t offset = 0;
    if (napi_get_dataview_info(env, v, len, &d, &ab, &offset) != napi_ok) return false;
    *data = static_cast<uint8_t*>(d);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- NetnsGuard

NetnsGuard::~NetnsGuard() {
  if (saved_ < 0) return;
  if (setns(saved_, CLONE_NEWNET) != 0) {
    // The JS thread would stay in a foreign namespace: every later socket
    // would silently land there. That is worse than stopping.
    napi_fatal_error("sluice::NetnsGuard", NAPI_AUTO_LENGTH, "cannot return to the original network namespace",
                     NAPI_AUTO_LENGTH);
  }
  close(saved_);
}

bool NetnsGuard::Enter(Napi::Env env, const std::string& path) {
  if (path.empty()) return true;
  int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved < 0) {
    ThrowSys(env, "saving the current network namespace", "open", errno);
    return false;
  }
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(saved);
    ThrowCoded(env, e == ENOENT ? SL_IO_ERR_ARG : SL_IO_ERR_SYSCALL,
               "network namespace " + path + ": open: " + strerror(e), e, "open");
    return false;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int e = errno;
    close(target);
    close(saved);
    ThrowCoded(env, e == EPERM ? SL_IO_ERR_PERM : SL_IO_ERR_SYSCALL,
               "entering network namespace " + path + " needs CAP_SYS_ADMIN: setns: " + strerror(e), e, "setns");
    return false;
  }
  close(target);
  saved_ = saved;
  return true;
}

// ---------------------------------------------------------------- FdWatch

FdWatch* FdWatch::Create(Napi::Env env, void* owner, ReadableFn onReadable, TeardownFn onTeardown) {
  FdWatch* w = new FdWatch();
  w->owner_ = owner;
  w->onReadable_ = onReadable;
  w->onTeardown_ = onTeardown;
  if (napi_get_uv_event_loop(env, &w->loop_) != napi_ok ||
      napi_add_async_cleanup_hook(env, OnEnvTeardown, w, &w->hook_) != napi_ok) {
    delete w;
    return nullptr;
  }
  return w;
}

int FdWatch::Start(int fd) {
  if (!pollInit_) {
    int r = uv_poll_init(loop_, &poll_, fd);
    if (r != 0) return r;
    poll_.data = this;
    pollInit_ = true;
  }
  int r = uv_poll_start(&poll_, UV_READABLE, OnPoll);
  if (r == 0) polling_ = true;
  return r;
}

void FdWatch::Stop() {
  if (pollInit_ && polling_) uv_poll_stop(&poll_);
  polling_ = false;
}

void FdWatch::Close() {
  if (closing_) return;
  closing_ = true;
  owner_ = nullptr;
  polling_ = false;
  if (pollInit_) {
    // uv_close stops the poll and removes the fd from epoll at once; the
    // handle's memory must stay until OnClosed.
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnClosed);
  } else {
    Finish();
  }
}

void FdWatch::OnPoll(uv_poll_t* h, int status, int events) {
  FdWatch* w = static_cast<FdWatch*>(h->data);
  if (w->owner_ == nullptr) return;
  if (status >= 0) {
    w->errorRun_ = 0;
    w->onReadable_(w->owner_);
    return;
  }
  // EPOLLERR: libuv has stopped the poll. On a netlink socket this is a
  // pending socket error, typically ENOBUFS after an overflow; the owner's
  // next recv returns (and clears) it, and reading goes on. A socket that
  // keeps failing is left stopped rather than spun on.
  w->onReadable_(w->owner_);
  // Restart unless the owner stopped or closed it meanwhile (polling_ then false / owner_ null).
  if (w->owner_ != nullptr && w->polling_ && ++w->errorRun_ < 1000) {
    if (uv_poll_start(&w->poll_, UV_READABLE, OnPoll) != 0) w->polling_ = false;
  } else {
    w->polling_ = false;
  }
}

void FdWatch::OnClosed(uv_handle_t* h) {
  static_cast<FdWatch*>(h->data)->Finish();
}

void FdWatch::Finish() {
  if (hook_ != nullptr) napi_remove_async_cleanup_hook(hook_);
  hook_ = nullptr;
  delete this;
}

void FdWatch::OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  FdWatch* w = static_cast<FdWatch*>(arg);
  // The env is going away (process exit or a worker ending) while the handle
  // is open: let the owner give its default verdicts and close its fd (no JS
  // runs here), then close the poll; the hook is removed once it is closed.
  if (w->owner_ != nullptr && !w->closing_) {
    w->onTeardown_(w->owner_);  // calls Close()
  }
  // Otherwise a Close() is already under way and OnClosed removes the hook.
}

// ---------------------------------------------------------------- CallBatch

bool CallBatch(Napi::Env env, Napi::FunctionReference& cb, Napi::Object recv, napi_async_context ctx,
               uint32_t count) {
  napi_value argv[1];
  napi_create_uint32(env, count, &argv[0]);
  napi_value result;
  napi_status st = napi_make_callback(env, ctx, recv, cb.Value(), 1, argv, &result);
  if (st == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  return false;
}

}  // namespace sluice
