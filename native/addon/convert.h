// Conversions between VMM values and JavaScript values, shared by the addon's classes.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../vmm/error.h"
#include "../vmm/process.h"

namespace farcall::addon {

// A failure captured on a worker thread, turned into a JS Error on the JS thread.
struct Failure {
  std::string code;     // ErrorCode name: the TS layer maps it to an error class
  std::string message;
  Napi::Object details(Napi::Env env) const;
  std::vector<std::pair<std::string, double>> numbers;
  std::vector<std::pair<std::string, std::string>> strings;
  Napi::Error to_error(Napi::Env env) const;
  static Failure from(const VmmError &e);
  static Failure from_stop(const Stop &st, uint64_t memory_bytes, bool had_enomem);
};

std::vector<uint8_t> to_bytes(const Napi::Value &v);
std::vector<std::string> to_strings(const Napi::Value &v);
Napi::Object stats_object(Napi::Env env, const ProcessStats &ps, const ExitStats &es);
Napi::Buffer<uint8_t> to_buffer(Napi::Env env, const std::string &s);
// options.files (checked by src/run.ts checkFiles): the read-only view's root and the scratch
// directory's mount path and size.
void files_config(const Napi::Object &o, ProcessConfig *cfg);
uint64_t opt_u64(const Napi::Object &o, const char *k, uint64_t def);
// A string option, or "" when absent.
std::string opt_string(const Napi::Object &o, const char *k);

// Handles given to JavaScript are External<shared_ptr<T>>: wrap one, get one back (a TypeError
// for anything else, an Error once closed), or close one.
template <class T>
Napi::Value wrap_handle(Napi::Env env, std::shared_ptr<T> h) {
  return Napi::External<std::shared_ptr<T>>::New(env, new std::shared_ptr<T>(std::move(h)),
                                                 [](Napi::Env, std::shared_ptr<T> *p) { delete p; });
}

template <class T>
std::shared_ptr<T> &unwrap_handle(const Napi::Value &v, const char *what) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), std::string("expected a ") + what + " handle");
  auto *p = v.As<Napi::External<std::shared_ptr<T>>>().Data();
  if (!p || !*p) throw Napi::Error::New(v.Env(), std::string("the ") + what + " is closed");
  return *p;
}

// close(handle) for External<shared_ptr<T>> handles: drops the JS side's reference now instead
// of at garbage collection; the object goes when no job holds it any more.
template <class T>
Napi::Value close_handle(const Napi::CallbackInfo &info) {
  if (info[0].IsExternal()) {
    auto *p = info[0].As<Napi::External<std::shared_ptr<T>>>().Data();
    if (p) p->reset();
  }
  return info.Env().Undefined();
}

}  // namespace farcall::addon
