// Bindings for masters and forks (RequestPool in src/pool.ts). Each fork has a Strand of the
// shared executor: everything that touches the fork's VM runs there, one job at a time.
#include <napi.h>

#include <memory>

#include "../vmm/backend.h"
#include "../vmm/entry.h"
#include "../vmm/fork.h"
#include "convert.h"
#include "executor.h"
#include "worker.h"

namespace farcall::addon {

std::shared_ptr<Backend> backend_of(const Napi::Value &v);  // backend.cpp

namespace {

struct MasterHandle {
  std::unique_ptr<Master> master;
};

struct ForkHandle {
  std::shared_ptr<MasterHandle> master;
  std::unique_ptr<Fork> fork;
  uint64_t max_pages = 0;
  // Jobs hold the handle, so it goes (with its VM) only after the last one completed.
  std::shared_ptr<Strand> strand;
};


Napi::Object reset_object(Napi::Env env, const ResetInfo &r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", r.full ? "full" : "fast");
  o.Set("pages", double(r.pages));
  o.Set("us", double(r.ns) / 1000.0);
  if (!r.reason.empty()) o.Set("reason", r.reason);
  return o;
}

// createMaster(elf, opts) -> Promise<handle>: loads the program and runs it to farcall_ready(),
// or with opts.snapshot (a path) restores a master from that file instead (elf is ignored).
Napi::Value CreateMaster(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  auto elf = std::make_shared<std::vector<uint8_t>>(to_bytes(info[0]));
  Napi::Object o = info[1].As<Napi::Object>();
  ProcessConfig cfg;
  cfg.args = to_strings(o.Get("args"));
  cfg.env = to_strings(o.Get("env"));
  cfg.memory_bytes = opt_u64(o, "memoryMiB", 64) << 20;
  cfg.output_limit = opt_u64(o, "outputLimit", 1 << 20);
  files_config(o, &cfg);
  cfg.max_threads = opt_u64(o, "maxThreads", 64);
  cfg.reserve_bytes = opt_u64(o, "reserveMiB", 1024) << 20;
  uint64_t timeout_ns = opt_u64(o, "initTimeoutMs", 10000) * 1000000;
  std::string snapshot = o.Get("snapshot").IsString() ? o.Get("snapshot").ToString().Utf8Value() : "";
  std::vector<std::pair<std::string, std::shared_ptr<Backend>>> backends;
  if (o.Get("backends").IsArray()) {
    Napi::Array a = o.Get("backends").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Object b = a.Get(i).As<Napi::Object>();
      backends.emplace_back(b.Get("name").ToString(), backend_of(b.Get("handle")));
    }
  }
  try {
    cfg.mode = entry__resolve(opt_string(o, "entry"));
  } catch (const VmmError &e) {
    deferred->Reject(Failure::from(e).to_error(env).Value());
    return deferred->Promise();
  }
  Worker::run_once(env, [=]() -> Completion {
    auto h = std::make_shared<MasterHandle>();
    try {
      h->master = snapshot.empty() ? std::make_unique<Master>(*elf, cfg, timeout_ns, backends)
                                   : std::make_unique<Master>(snapshot, backends);
    } catch (const VmmError &e) {
      Failure f = Failure::from(e);
      return [=](Napi::Env env) { deferred->Reject(f.to_error(env).Value()); };
    }
    return [=](Napi::Env env) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("handle", wrap_handle(env, h));
      r.Set("initUs", double(h->master->init_ns()) / 1000.0);
      r.Set("arenaSize", double(h->master->arena_size()));
      r.Set("memoryMiB", double(h->master->process().sys().config().memory_bytes >> 20));
      deferred->Resolve(r);
    };
  });
  return deferred->Promise();
}

// masterSnapshot(master, path) -> Promise<{bytes, us}>: writes the master to a snapshot file. Reads
// only what no fork changes (the master's memory and saved state), so forks keep serving.
Napi::Value MasterSnapshot(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  auto master = unwrap_handle<MasterHandle>(info[0], "master");
  std::string path = info[1].ToString();
  Worker::run_once(env, [=]() -> Completion {
    uint64_t t0 = Vcpu::now_ns();
    try {
      uint64_t bytes = master->master->save(path);
      double us = double(Vcpu::now_ns() - t0) / 1000.0;
      return [=](Napi::Env env) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("bytes", double(bytes));
        r.Set("us", us);
        deferred->Resolve(r);
      };
    } catch (const VmmError &e) {
      Failure f = Failure::from(e);
      return [=](Napi::Env env) { deferred->Reject(f.to_error(env).Value()); };
    }
  });
  return deferred->Promise();
}

// createFork(master, {maxPrivateMiB}) -> Promise<handle>
Napi::Value CreateFork(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  auto master = unwrap_handle<MasterHandle>(info[0], "master");
  uint64_t max_pages = opt_u64(info[1].As<Napi::Object>(), "maxPrivateMiB", 16) << 8;
  auto h = std::make_shared<ForkHandle>();
  h->master = master;
  h->strand = Strand::create(master.get());  // the forks of one pool share the executor as one group
  h->max_pages = max_pages;
  h->strand->post(env, [=]() -> Completion {
    uint64_t t0 = Vcpu::now_ns();
    try {
      h->fork = std::make_unique<Fork>(*master->master, max_pages);
    } catch (const VmmError &e) {
      Failure f = Failure::from(e);
      return [=](Napi::Env env) { deferred->Reject(f.to_error(env).Value()); };
    }
    double us = double(Vcpu::now_ns() - t0) / 1000.0;
    return [=](Napi::Env env) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("handle", wrap_handle(env, h));
      r.Set("createUs", us);
      deferred->Resolve(r);
    };
  });
  return deferred->Promise();
}

// forkRequest(fork, bytes, timeoutMs, maxResponseBytes) -> Promise<{ok, response?, error?, reset, runUs, stdout, stderr}>
Napi::Value ForkRequest(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  auto h = unwrap_handle<ForkHandle>(info[0], "fork");
  auto req = std::make_shared<std::vector<uint8_t>>(to_bytes(info[1]));
  uint64_t timeout_ns = uint64_t(info[2].As<Napi::Number>().DoubleValue() * 1e6);
  // Never more than a Buffer can hold (the caller passes buffer.constants.MAX_LENGTH or less):
  // a larger answer is refused in the VMM rather than failing in the completion below.
  uint64_t max_response = info[3].IsNumber() ? uint64_t(info[3].As<Napi::Number>().DoubleValue()) : (1ull << 32);
  h->strand->post(env, [=]() -> Completion {
    auto out = std::make_shared<RequestOutcome>();
    bool replaced = false;
    try {
      *out = h->fork->request(req->data(), req->size(), timeout_ns, max_response);
      if (h->fork->broken()) {  // it could not be reset: retire it, a fresh fork takes its place
        h->fork = std::make_unique<Fork>(*h->master->master, h->max_pages);
        replaced = true;
      }
    } catch (const std::exception &e) {  // e.g. bad_alloc replacing the fork
      out->ok = false;
      out->code = "Internal";
      out->message = std::string("request failed in the VMM: ") + e.what();
    }
    uint64_t mem = h->fork->process().vm().ram_bytes();
    bool enomem = h->fork->process().sys().stats().enomem > 0;
    return [=](Napi::Env env) {
      // Whatever fails while building the answer, the promise settles.
      try {
        Napi::Object r = Napi::Object::New(env);
        r.Set("ok", out->ok);
        if (out->ok) {
          r.Set("response", to_buffer(env, out->response));
        } else {
          Failure f;
          if (out->stop_valid && out->code.empty()) {
            f = Failure::from_stop(out->stop, mem, enomem);
          } else {
            f.code = out->code;
            f.message = out->message;
          }
          Napi::Error e = f.to_error(env);
          e.Set("stdout", to_buffer(env, out->out));
          e.Set("stderr", to_buffer(env, out->err));
          r.Set("error", e.Value());
        }
        r.Set("reset", reset_object(env, out->reset));
        if (replaced) r.Set("replaced", true);
        r.Set("runUs", double(out->run_ns) / 1000.0);
        r.Set("stdout", to_buffer(env, out->out));
        r.Set("stderr", to_buffer(env, out->err));
        deferred->Resolve(r);
      } catch (const Napi::Error &e) {
        deferred->Reject(e.Value());
      } catch (const std::exception &e) {
        deferred->Reject(Failure{"Internal", std::string("request result lost: ") + e.what(), {}, {}}.to_error(env).Value());
      }
    };
  }, info[0].As<Napi::Object>());
  return deferred->Promise();
}

// forkStats(fork) -> {fastResets, fullResets, privatePages, exits, syscalls, gate, instance?}
Napi::Value ForkStats(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto h = unwrap_handle<ForkHandle>(info[0], "fork");
  Napi::Object r = stats_object(env, h->fork->process().sys().stats_snapshot(), h->fork->process().vm().exit_stats());
  r.Set("fastResets", double(h->fork->fast_resets()));
  r.Set("fullResets", double(h->fork->full_resets()));
  r.Set("privatePages", double(h->fork->private_pages()));
  // Which far-call gate this fork's calls take, and (in-guest gate) the instance it calls.
  Vm &vm = h->fork->process().vm();
  r.Set("entry", entry_mode__name(vm.mode()));
  r.Set("gate", vm.pvm_gate() ? "in-guest" : h->fork->process().gate().attached_count() ? "exit" : "none");
  if (vm.pvm_gate()) r.Set("instance", vm.pvm_pair());  // backend b's instance: this % its count
  return r;
}

}  // namespace

void init_request(Napi::Env env, Napi::Object exports) {
  exports.Set("createMaster", Napi::Function::New(env, CreateMaster));
  exports.Set("createFork", Napi::Function::New(env, CreateFork));
  exports.Set("masterSnapshot", Napi::Function::New(env, MasterSnapshot));
  exports.Set("forkRequest", Napi::Function::New(env, ForkRequest));
  exports.Set("forkStats", Napi::Function::New(env, ForkStats));
  exports.Set("closeFork", Napi::Function::New(env, close_handle<ForkHandle>));
  exports.Set("closeMaster", Napi::Function::New(env, close_handle<MasterHandle>));
}

}  // namespace farcall::addon
