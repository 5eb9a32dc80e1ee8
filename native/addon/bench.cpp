// Benchmark bindings: bare round-trip baselines (native/vmm/baseline.h) on a native thread.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "../vmm/baseline.h"
#include "../vmm/error.h"
#include "convert.h"
#include "worker.h"

namespace farcall::addon {

namespace {

// baseline(kind: string, iterations: number) -> Promise<Float64Array> (nanoseconds per round trip)
Napi::Value Baseline(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  if (!info[0].IsString() || !info[1].IsNumber()) {
    Failure f;
    f.code = "InvalidArgument";
    f.message = "baseline(kind: string, iterations: number)";
    deferred->Reject(f.to_error(env).Value());
    return deferred->Promise();
  }
  std::string kind = info[0].As<Napi::String>();
  int iterations = info[1].As<Napi::Number>().Int32Value();
  Worker::run_once(env, [=]() -> Completion {
    std::shared_ptr<std::vector<uint64_t>> ns;
    Failure f;
    try {
      ns = std::make_shared<std::vector<uint64_t>>(baseline__run(kind, iterations));
    } catch (const VmmError &e) {
      f = Failure::from(e);
    } catch (const std::exception &e) {
      f.code = "Internal";
      f.message = e.what();
    }
    return [=](Napi::Env env) {
      if (!ns) {
        deferred->Reject(f.to_error(env).Value());
        return;
      }
      Napi::Float64Array a = Napi::Float64Array::New(env, ns->size());
      for (size_t i = 0; i < ns->size(); i++) a[i] = double((*ns)[i]);
      deferred->Resolve(a);
    };
  });
  return deferred->Promise();
}

}  // namespace

void init_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("baseline", Napi::Function::New(env, Baseline));
}

}  // namespace farcall::addon
