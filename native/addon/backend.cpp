// Bindings for backends (src/backend.ts): load, host calls, stats, events, close. A backend
// has a Worker for its host calls and a small VM (the host caller) that makes them.
#include <napi.h>
#include <pthread.h>

#include <atomic>
#include <functional>
#include <memory>

#include "../vmm/backend.h"
#include "../vmm/entry.h"
#include "../vmm/layout.h"
#include "convert.h"
#include "worker.h"

namespace farcall::addon {

struct BackendHandle {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<Process> host_caller;
  Worker *worker = nullptr;
  Napi::ThreadSafeFunction events;
  bool has_events = false;
  // Set by the listener's finalizer: Node tearing down its environment finalizes it (and may
  // then finalize this handle, a backend left open at exit), after which Release would abort.
  std::shared_ptr<std::atomic<bool>> events_gone = std::make_shared<std::atomic<bool>>(false);
  ~BackendHandle() {
    if (worker) {
      worker->stop();
      delete worker;
    }
    if (backend) backend->set_on_event(nullptr);  // no emit can reach the listener after this
    if (has_events && !*events_gone) events.Release();
  }
};

// Shared with request.cpp: attaching backends to a master.
std::shared_ptr<Backend> backend_of(const Napi::Value &v) {
  return unwrap_handle<BackendHandle>(v, "backend")->backend;
}

namespace {

constexpr uint64_t kHostRam = 8ull << 20, kHostIn = 1ull << 20, kHostOut = 4ull << 20, kHostMax = 3ull << 20;

std::shared_ptr<BackendHandle> &handle_of(const Napi::Value &v) { return unwrap_handle<BackendHandle>(v, "backend"); }

Napi::Value CreateBackend(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  auto elf = std::make_shared<std::vector<uint8_t>>(to_bytes(info[0]));
  Napi::Object o = info[1].As<Napi::Object>();
  ProcessConfig cfg;
  cfg.args = to_strings(o.Get("args"));
  cfg.env = to_strings(o.Get("env"));
  cfg.memory_bytes = opt_u64(o, "memoryMiB", 32) << 20;
  cfg.output_limit = opt_u64(o, "outputLimit", 1 << 20);
  files_config(o, &cfg);
  int instances = int(opt_u64(o, "instances", 1));
  for (auto &ep : to_strings(o.Get("netAllow"))) {
    unsigned a, b, c, d, port;
    if (sscanf(ep.c_str(), "%u.%u.%u.%u:%u", &a, &b, &c, &d, &port) == 5 && a < 256 && b < 256 && c < 256 && d < 256 &&
        port > 0 && port < 65536)
      cfg.net_allow.emplace_back((a << 24) | (b << 16) | (c << 8) | d, uint16_t(port));
  }
  uint64_t init_ns = opt_u64(o, "initTimeoutMs", 10000) * 1000000;
  uint64_t call_ns = opt_u64(o, "callTimeoutMs", 1000) * 1000000;
  bool trusted = o.Has("trusted") && o.Get("trusted").ToBoolean().Value();
  Durability durability = o.Get("durability").IsString() && o.Get("durability").ToString().Utf8Value() == "instance"
                              ? Durability::Instance
                              : Durability::Call;
  Napi::Value on_event = o.Get("onEvent");
  // With opts.snapshot (a path) the backend is restored from that file (elf is ignored).
  std::string snapshot = o.Get("snapshot").IsString() ? o.Get("snapshot").ToString().Utf8Value() : "";
  auto h = std::make_shared<BackendHandle>();
  try {
    cfg.mode = entry__resolve(opt_string(o, "entry"));
  } catch (const VmmError &e) {
    deferred->Reject(Failure::from(e).to_error(env).Value());
    return deferred->Promise();
  }
  if (on_event.IsFunction()) {
    h->events = Napi::ThreadSafeFunction::New(env, on_event.As<Napi::Function>(), "farcall-backend-events", 0, 1,
                                              [gone = h->events_gone](Napi::Env) { *gone = true; });
    h->events.Unref(env);
    h->has_events = true;
  }
  h->worker = new Worker(env);
  h->worker->post(env, [=]() -> Completion {
    uint64_t t0 = Vcpu::now_ns();
    try {
      h->backend = snapshot.empty() ? std::make_shared<Backend>(*elf, cfg, instances, init_ns, call_ns, trusted, durability)
                                    : std::make_shared<Backend>(snapshot, cfg, call_ns, trusted, durability);
      VmConfig vc;
      vc.ram_bytes = kHostRam;
      vc.mode = cfg.mode;
      h->host_caller = std::make_unique<Process>(vc);
      h->host_caller->gate().attach(h->backend.get(), nullptr, "host");
    } catch (const VmmError &e) {
      Failure f = Failure::from(e);
      return [=](Napi::Env env) {
        h->backend.reset();
        deferred->Reject(f.to_error(env).Value());
      };
    }
    if (h->has_events) {
      Napi::ThreadSafeFunction tsfn = h->events;
      std::weak_ptr<Backend> weak = h->backend;
      h->backend->set_on_event([tsfn, weak](const BackendEvent &e) mutable {
        auto *copy = new BackendEvent(e);
        auto taken = [weak](const BackendEvent &ev) {  // output no longer queued: room for more
          if (ev.kind != BackendEvent::Output) return;
          if (auto b = weak.lock()) b->output_taken(ev.message.size());
        };
        if (tsfn.NonBlockingCall(copy, [taken](Napi::Env env, Napi::Function fn, BackendEvent *ev) {
              std::unique_ptr<BackendEvent> own(ev);
              taken(*ev);
              if (env == nullptr) return;
              static const char *kinds[] = {"call", "fault", "restore", "output"};
              Napi::Object o = Napi::Object::New(env);
              o.Set("kind", kinds[ev->kind]);
              o.Set("instance", ev->instance);
              o.Set("entry", ev->entry);
              o.Set("us", double(ev->ns) / 1000.0);
              o.Set("message", ev->message);
              fn.Call({o});
            }) != napi_ok) {
          taken(*copy);
          delete copy;
        }
      });
    }
    double us = double(Vcpu::now_ns() - t0) / 1000.0;
    return [=](Napi::Env env) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("handle", wrap_handle(env, h));
      Napi::Array names = Napi::Array::New(env);
      for (size_t i = 0; i < h->backend->entries().size(); i++) names.Set(uint32_t(i), h->backend->entries()[i].name);
      r.Set("entries", names);
      r.Set("initUs", us);
      r.Set("instances", double(h->backend->instance_count()));
      r.Set("memoryMiB", double(h->backend->ram_bytes() >> 20));
      deferred->Resolve(r);
    };
  });
  return deferred->Promise();
}

// backendCall(handle, entry, input, outCap, timeoutMs) -> Promise<{result, output, us}>
Napi::Value BackendCall(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  auto h = handle_of(info[0]);
  std::string entry = info[1].ToString();
  auto input = std::make_shared<std::vector<uint8_t>>(to_bytes(info[2]));
  uint64_t out_cap = uint64_t(info[3].As<Napi::Number>().DoubleValue());
  uint64_t timeout_ns = uint64_t(info[4].As<Napi::Number>().DoubleValue() * 1e6);
  int e = h->backend->find(entry);
  if (!h->backend->available()) {
    Failure f{"BackendUnavailable", kRestarting, {}, {}};
    deferred->Reject(f.to_error(env).Value());
    return deferred->Promise();
  }
  if (e < 0 || input->size() > kHostMax || out_cap > kHostMax) {
    std::string names;
    for (auto &ep : h->backend->entries()) names += (names.empty() ? "" : ", ") + ep.name;
    Failure f{"InvalidArgument",
              e < 0 ? "backend has no entry point '" + entry + "' (entries: " + (names.empty() ? "none" : names) + ")"
                    : "host call buffers are limited to 3 MiB",
              {}, {}};
    deferred->Reject(f.to_error(env).Value());
    return deferred->Promise();
  }
  h->worker->post(env, [=]() -> Completion {
    Process &hc = *h->host_caller;
    const GuestView &v = hc.sys().view();
    v.write(kHostIn, input->data(), input->size());
    uint64_t args[4] = {kHostIn, input->size(), kHostOut, out_cap};
    uint64_t t0 = Vcpu::now_ns();
    Stop st;
    Failure f;
    try {
      st = hc.host_call(0, e, args, t0 + timeout_ns);
    } catch (const VmmError &err) {
      f = Failure::from(err);
    }
    double us = double(Vcpu::now_ns() - t0) / 1000.0;
    int64_t result = int64_t(hc.vm().vcpu().regs().rax);
    std::string fault = hc.gate().last_fault();  // why the call did not return, if it did not
    auto out = std::make_shared<std::string>();
    if (f.code.empty() && st.kind == Stop::Farcall && st.nr == kHostCallDone) {
      if (result >= 0 && uint64_t(result) <= out_cap) {
        out->resize(size_t(result));
        v.read(out->data(), kHostOut, uint64_t(result));
      }
    }
    // One host caller serves every JS caller: nothing of this call may be there for the next.
    v.zero(kHostIn, input->size());
    v.zero(kHostOut, out_cap);
    bool done = st.kind == Stop::Farcall && st.nr == kHostCallDone;
    if (f.code.empty() && !done && st.message == kRestarting) {  // a restart began while it waited
      f.code = "BackendUnavailable";
      f.message = kRestarting;
    }
    if (f.code.empty() && !done) {
      f.code = st.kind == Stop::Timeout ? "Timeout" : "BackendFault";
      f.message = st.kind == Stop::Timeout ? "backend call timed out (" + st.message + ")" : "backend call failed";
    }
    return [=](Napi::Env env) {
      if (!f.code.empty()) {
        deferred->Reject(f.to_error(env).Value());
        return;
      }
      Napi::Object r = Napi::Object::New(env);
      r.Set("result", double(result));
      r.Set("output", to_buffer(env, *out));
      r.Set("us", us);
      if (!fault.empty()) r.Set("fault", fault);
      deferred->Resolve(r);
    };
  }, info[0].As<Napi::Object>());
  return deferred->Promise();
}

Napi::Value BackendStats(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto h = handle_of(info[0]);
  Backend &b = *h->backend;
  Napi::Object r = Napi::Object::New(env);
  r.Set("calls", double(b.calls()));
  r.Set("memoryAt", double(b.va()));
  r.Set("faults", double(b.faults));
  r.Set("restores", double(b.restores));
  r.Set("timeouts", double(b.timeouts));
  r.Set("outputDropped", double(b.output_dropped));
  r.Set("durability", b.durability() == Durability::Call ? "call" : "instance");
  r.Set("entry", entry_mode__name(h->host_caller->vm().mode()));
  Napi::Array insts = Napi::Array::New(env);
  for (size_t i = 0; i < b.instance_count(); i++) {
    Instance &in = b.instance(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("calls", double(in.calls()));
    o.Set("faults", double(in.faults));
    o.Set("restores", double(in.restores));
    ProcessStats ps = in.personality->stats_snapshot();
    o.Set("netRefused", double(ps.net_refused));
    if (!ps.last_refused.empty()) o.Set("lastRefused", ps.last_refused);
    o.Set("syscalls", stats_object(env, ps, ExitStats{}).Get("syscalls"));
    insts.Set(uint32_t(i), o);
  }
  r.Set("instances", insts);
  r.Set("init", stats_object(env, b.init_stats(), ExitStats{}));
  return r;
}

// Runs `work(deadline)` on the backend's worker thread: resolves {us} (and {bytes} when work
// returns some), or rejects with the VmmError it threw.
Napi::Value timed_work(const Napi::CallbackInfo &info, uint64_t timeout_ns, std::function<int64_t(uint64_t)> work) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  auto h = handle_of(info[0]);
  h->worker->post(env, [=]() -> Completion {
    uint64_t t0 = Vcpu::now_ns();
    Failure f;
    int64_t bytes = -1;
    try {
      bytes = work(t0 + timeout_ns);
    } catch (const VmmError &e) {
      f = Failure::from(e);
    }
    double us = double(Vcpu::now_ns() - t0) / 1000.0;
    return [=](Napi::Env env) {
      if (!f.code.empty()) {
        deferred->Reject(f.to_error(env).Value());
        return;
      }
      Napi::Object r = Napi::Object::New(env);
      r.Set("us", us);
      if (bytes >= 0) r.Set("bytes", double(bytes));
      deferred->Resolve(r);
    };
  }, info[0].As<Napi::Object>());
  return deferred->Promise();
}

// backendRestart(handle, timeoutMs) -> Promise<{us}>: re-initializes from the latest snapshot,
// or from the program.
Napi::Value BackendRestart(const Napi::CallbackInfo &info) {
  auto b = handle_of(info[0])->backend;
  b->set_available(false);  // from now: guest calls get FARCALL_E_BACKEND_BUSY
  return timed_work(info, uint64_t(info[1].As<Napi::Number>().DoubleValue() * 1e6), [b](uint64_t deadline) {
    b->restart(deadline);
    return int64_t(-1);
  });
}

// backendSnapshot(handle, path, timeoutMs) -> Promise<{bytes, us}>: every instance's state, at a
// point where no call is in progress (it waits up to timeoutMs for calls in flight).
Napi::Value BackendSnapshot(const Napi::CallbackInfo &info) {
  auto b = handle_of(info[0])->backend;
  std::string path = info[1].ToString();
  return timed_work(info, uint64_t(info[2].As<Napi::Number>().DoubleValue() * 1e6),
                    [b, path](uint64_t deadline) { return int64_t(b->save(path, deadline)); });
}

Napi::Value BackendSetAvailable(const Napi::CallbackInfo &info) {
  handle_of(info[0])->backend->set_available(info[1].ToBoolean());
  return info.Env().Undefined();
}

Napi::Value BackendWantCalls(const Napi::CallbackInfo &info) {
  handle_of(info[0])->backend->want_call_events = info[1].ToBoolean();
  return info.Env().Undefined();
}

// gpaPlan(physBits, sizes) -> guest-physical addresses: where backend memory of these sizes would
// go on a CPU of that width (GpaSpace, the allocator backends use), so the layout can be checked
// for widths other than this host's.
Napi::Value GpaPlan(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  GpaSpace space(info[0].As<Napi::Number>().Uint32Value());
  Napi::Array sizes = info[1].As<Napi::Array>(), r = Napi::Array::New(env);
  try {
    for (uint32_t i = 0; i < sizes.Length(); i++)
      r.Set(i, double(space.take(uint64_t(sizes.Get(i).As<Napi::Number>().DoubleValue()))));
  } catch (const VmmError &e) {
    Failure::from(e).to_error(env).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return r;
}

}  // namespace

void init_backend(Napi::Env env, Napi::Object exports) {
  exports.Set("gpaPlan", Napi::Function::New(env, GpaPlan));
  exports.Set("createBackend", Napi::Function::New(env, CreateBackend));
  exports.Set("backendCall", Napi::Function::New(env, BackendCall));
  exports.Set("backendStats", Napi::Function::New(env, BackendStats));
  exports.Set("backendWantCalls", Napi::Function::New(env, BackendWantCalls));
  exports.Set("backendRestart", Napi::Function::New(env, BackendRestart));
  exports.Set("backendSnapshot", Napi::Function::New(env, BackendSnapshot));
  exports.Set("backendSetAvailable", Napi::Function::New(env, BackendSetAvailable));
  exports.Set("closeBackend", Napi::Function::New(env, close_handle<BackendHandle>));
}

}  // namespace farcall::addon
