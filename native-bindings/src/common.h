// Shared plumbing of the addon: coded errors, option reading, typed-array
// access, entering a network namespace for the duration of a constructor, and
// FdWatch, the uv_poll wrapper that owns the poll handle's lifetime.
//
// Context-aware: nothing here is static or global. Every handle lives on the
// loop of the env that created it (napi_get_uv_event_loop), so each
// worker_thread can own its own queues.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "constants.h"

namespace sluice {

// Throws a JS Error with `code` (one of SL_IO_ERR_*), and `errno`/`syscall`
// when a system call failed. The caller returns right after.
void ThrowCoded(Napi::Env env, const char* code, const std::string& message, int err = 0,
                const char* syscall = nullptr);

// Throws SL_IO_ERR_SYSCALL for a failed system call: "<what>: <syscall>: <strerror>".
void ThrowSys(Napi::Env env, const std::string& what, const char* syscall, int err);

// Reads an integer option; `def` when absent or undefined. Throws SL_IO_ERR_ARG
// (and returns false) when present but not an integer in [lo, hi].
bool OptInt(Napi::Object opts, const char* key, int64_t def, int64_t lo, int64_t hi, int64_t* out);
bool OptBool(Napi::Object opts, const char* key, bool def, bool* out);
// An optional string option; empty when absent.
bool OptString(Napi::Object opts, const char* key, std::string* out);

// Data pointer and byte length of an ArrayBuffer or any TypedArray/DataView.
bool BufferOf(Napi::Value v, uint8_t** data, size_t* len);

// Enters a network namespace (a path such as /run/netns/NAME or
// /proc/PID/ns/net) for the calling thread; the destructor returns to the
// thread's previous namespace. Sockets and devices opened in between stay in
// the entered namespace for their whole life. Network namespaces are per
// thread, so this affects nothing but the JS thread, and only for the
// duration of a constructor.
class NetnsGuard {
 public:
  NetnsGuard() = default;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  ~NetnsGuard();
  // Empty path: nothing to do. Throws (and returns false) on failure.
  bool Enter(Napi::Env env, const std::string& path);

 private:
  int saved_ = -1;
};

// A uv_poll on one fd, with a lifetime independent of the JS object that
// owns it: the poll handle must outlive uv_close's callback, and the env's
// teardown (a worker exiting) must be able to close it even when JS never
// called close(). Create() registers an async cleanup hook; Close() closes
// the poll handle and removes the hook once the handle is gone; the struct
// deletes itself then.
class FdWatch {
 public:
  using ReadableFn = void (*)(void* owner);
  using TeardownFn = void (*)(void* owner);

  static FdWatch* Create(Napi::Env env, void* owner, ReadableFn onReadable, TeardownFn onTeardown);
  // Starts (or resumes) polling fd for readability. Returns a libuv error code.
  int Start(int fd);
  void Stop();
  // Detaches the owner and closes the poll handle; call before close(fd).
  // The FdWatch must not be used afterwards.
  void Close();
  bool Polling() const { return polling_; }

 private:
  FdWatch() = default;
  static void OnPoll(uv_poll_t* h, int status, int events);
  static void OnClosed(uv_handle_t* h);
  static void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg);
  void Finish();

  uv_poll_t poll_{};
  uv_loop_t* loop_ = nullptr;
  napi_async_cleanup_hook_handle hook_ = nullptr;
  void* owner_ = nullptr;
  ReadableFn onReadable_ = nullptr;
  TeardownFn onTeardown_ = nullptr;
  bool pollInit_ = false;
  bool polling_ = false;  // what the owner asked for (libuv may have stopped it on an error)
  bool closing_ = false;
  uint32_t errorRun_ = 0;  // consecutive error wakeups
};

// Calls a JS batch callback from a libuv callback: MakeCallback (so
// microtasks run and async hooks see it, as for Node's own I/O), and an
// exception thrown by the callback is reported as uncaught
// (napi_fatal_exception), like an exception in any other I/O callback.
// Returns false when the callback threw.
bool CallBatch(Napi::Env env, Napi::FunctionReference& cb, Napi::Object recv, napi_async_context ctx,
               uint32_t count);

}  // namespace sluice
