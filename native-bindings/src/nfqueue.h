// One NFQUEUE queue over raw nfnetlink: bind with config, batched receive
// into a JS-owned slab, batched verdicts. See src/io/nfqueue.ts for the
// "how and why" and the memory layout.
#pragma once

#include <napi.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "common.h"

namespace sluice {

class NfQueue : public Napi::ObjectWrap<NfQueue> {
 public:
  static Napi::Function Init(Napi::Env env);
  // new NfQueue(opts, slab: ArrayBuffer, meta: Int32Array, verdicts: Uint32Array, onBatch(count))
  explicit NfQueue(const Napi::CallbackInfo& info);
  ~NfQueue() override;

 private:
  // JS methods.
  Napi::Value Start(const Napi::CallbackInfo& info);     // () -> rows already waiting (received during bind)
  Napi::Value Poll(const Napi::CallbackInfo& info);      // () -> void: run one wakeup's work now
  Napi::Value Verdicts(const Napi::CallbackInfo& info);  // (count) -> records sent
  Napi::Value Stats(const Napi::CallbackInfo& info);     // (out: Float64Array) -> void
  Napi::Value Close(const Napi::CallbackInfo& info);     // (defaultVerdict?) -> default verdicts given
  Napi::Value PortId(const Napi::CallbackInfo& info);

  static void OnReadable(void* self);
  static void OnTeardown(void* self);

  // One verdict to emit (already validated).
  struct Item {
    uint32_t id, slot, verdict, flags, mark, len;
  };

  bool Configure(Napi::Env env);
  bool RefreshPointers();
  void ReadWakeup();
  // One recvmmsg of up to `want` messages into free slots; parsed packets
  // become meta rows from `row`. Returns messages read, 0 when the socket is
  // empty, -1 on an error other than EAGAIN.
  int ReceiveRound(uint32_t want, uint32_t row, uint32_t* packets);
  bool ParseMessage(uint32_t slot, uint32_t len, int msgFlags, uint32_t row);
  uint32_t Emit(const Item* items, uint32_t n);
  bool AppendVerdict(uint16_t type, const Item& it, bool withPayload);
  bool Flush();
  uint32_t VerdictAllOutstanding(uint32_t verdict);
  void CloseNow(uint32_t defaultVerdict);
  bool RunIsSafe(uint32_t firstId, uint32_t lastId) const;

  // Configuration.
  uint16_t queue_ = 0;
  uint32_t slots_ = 0, slotSize_ = 0, recvLen_ = 0, batch_ = 0, rounds_ = 0, copyRange_ = 0;
  uint32_t maxlen_ = 0, cfgFlags_ = 0, cfgMask_ = 0;
  uint32_t defaultVerdict_ = 0;
  int rcvbuf_ = 0;
  bool noEnobufs_ = false;
  bool useVerdictBatch_ = true;
  uint32_t portid_ = 0;
  int fd_ = -1;
  size_t sendLimit_ = 0;

  // JS-owned memory, kept alive by references and re-read at each entry
  // (an ArrayBuffer could be detached by a transfer).
  Napi::Reference<Napi::Value> slabRef_, metaRef_, verdRef_;
  Napi::FunctionReference cb_;
  napi_async_context actx_ = nullptr;
  uint8_t* slab_ = nullptr;
  int32_t* meta_ = nullptr;
  uint32_t* verd_ = nullptr;
  size_t slabLen_ = 0, metaLen_ = 0, verdLen_ = 0;

  // Slot ownership: a slot is owned from the packet's arrival until its
  // verdict is sent; the free slots are a stack (not a ring: verdicts come
  // in any order).
  enum : uint8_t { kFree = 0, kOwned = 1, kSending = 2 };
  std::vector<uint32_t> free_;
  std::vector<uint8_t> state_;
  std::vector<uint8_t> truncated_;
  std::vector<uint32_t> slotId_;
  std::vector<int32_t> slotPayOff_;
  uint32_t outstanding_ = 0;

  // recvmmsg scratch.
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> riov_;
  std::vector<uint32_t> roundSlots_;

  // Verdict send buffer: headers in txbuf_, payloads as iovecs into the slab.
  std::vector<uint8_t> txbuf_;
  size_t txUsed_ = 0, txBytes_ = 0;
  std::vector<iovec> tiov_;
  std::vector<uint32_t> txSlots_;
  uint32_t txMsgs_ = 0, txBatchMsgs_ = 0;
  bool txLastIsHdr_ = false;
  uint32_t emitted_ = 0;  // verdicts delivered by the current Emit
  uint32_t lastCloseVerdicts_ = 0;
  std::vector<Item> items_;

  // Bind handshake.
  uint32_t cfgSeq_ = 0;
  bool ackSeen_ = false;
  int ackErr_ = 0;
  uint32_t pendingRows_ = 0;

  FdWatch* watch_ = nullptr;
  bool started_ = false;
  bool closed_ = false;
  bool paused_ = false;  // no free slot: polling stopped until a verdict frees one
  bool inWakeup_ = false;
  double stats_[SL_NFQ_STAT_COUNT] = {};
};

}  // namespace sluice
