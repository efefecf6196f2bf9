// The addon's entry: a context-aware module (Napi::Addon keeps its state in
// the env's instance data, nothing static), so every worker_thread that
// loads it gets its own classes, handles and loop.
//
// Exports: NfQueue, Tun, RawSocket (classes; see src/io/*.ts for the API),
// and `constants` ("GROUP.NAME" -> value, from constants.h), which the tests
// compare with src/io/native-constants.ts.
#include <napi.h>

#include "constants.h"
#include "nfqueue.h"

namespace sluice {
Napi::Function InitTun(Napi::Env env);
Napi::Function InitRawSocket(Napi::Env env);

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceValue("NfQueue", NfQueue::Init(env), napi_enumerable),
                             InstanceValue("Tun", InitTun(env), napi_enumerable),
                             InstanceValue("RawSocket", InitRawSocket(env), napi_enumerable),
                             InstanceValue("constants", ExportConstants(env), napi_enumerable),
                             InstanceValue("napiVersion", Napi::Number::New(env, NAPI_VERSION), napi_enumerable),
                         });
  }
};

}  // namespace sluice

using SluiceAddon = sluice::Addon;
NODE_API_ADDON(SluiceAddon)
