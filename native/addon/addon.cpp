// The Node-API binding: thin. Parses options, moves VM work to Worker threads, and turns
// results and VmmErrors into JS values. All policy lives in src/ (TypeScript).
#include <dirent.h>
#include <napi.h>
#include <pthread.h>
#include <sys/resource.h>

#include <cmath>
#include <memory>

#include "../vmm/entry.h"
#include "../vmm/error.h"
#include "../vmm/kvm.h"
#include "../vmm/process.h"
#include "../vmm/vmstock.h"
#include "convert.h"
#include "executor.h"
#include "worker.h"

namespace farcall::addon {

void init_request(Napi::Env env, Napi::Object exports);  // request.cpp
void init_bench(Napi::Env env, Napi::Object exports);    // bench.cpp
void init_backend(Napi::Env env, Napi::Object exports);  // backend.cpp

// Every fork holds two fds (its VM and its vCPU, the fewest KVM allows: the dirty log is read
// through the VM's): the soft limit, often 1024, would cap a process at a few hundred forks.
static void raise_fd_limit() {
  rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

static size_t open_fds() {
  size_t n = 0;
  if (DIR *d = opendir("/proc/self/fd")) {
    while (dirent *e = readdir(d))
      if (e->d_name[0] != '.') n++;
    closedir(d);
  }
  return n;
}

static ProcessConfig process_config(const Napi::Object &o) {
  ProcessConfig cfg;
  cfg.args = to_strings(o.Get("args"));
  cfg.env = to_strings(o.Get("env"));
  auto in = to_bytes(o.Get("stdin"));
  cfg.stdin_data.assign(in.begin(), in.end());
  cfg.memory_bytes = opt_u64(o, "memoryMiB", 64) << 20;
  cfg.output_limit = opt_u64(o, "outputLimit", 1 << 20);
  cfg.mode = entry__resolve(opt_string(o, "entry"));
  files_config(o, &cfg);
  cfg.max_threads = opt_u64(o, "maxThreads", 64);
  cfg.reserve_bytes = opt_u64(o, "reserveMiB", 1024) << 20;
  return cfg;
}

// runProgram(elf: Buffer, opts) -> Promise<{exitCode, signal, stdout, stderr, stats, timeNs}>
static Napi::Value RunProgram(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  try {
    auto elf = std::make_shared<std::vector<uint8_t>>(to_bytes(info[0]));
    Napi::Object o = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    ProcessConfig cfg = process_config(o);
    uint64_t timeout_ms = opt_u64(o, "timeoutMs", 10000);
    Worker::run_once(env, [=]() -> Completion {
      std::unique_ptr<Process> p;
      try {
        p = std::make_unique<Process>(*elf, cfg);
      } catch (const VmmError &e) {
        Failure f = Failure::from(e);
        return [=](Napi::Env env) { deferred->Reject(f.to_error(env).Value()); };
      }
      uint64_t t0 = Vcpu::now_ns();
      Stop st;
      try {
        st = p->run_for(timeout_ms * 1000000);
      } catch (const VmmError &e) {
        Failure f = Failure::from(e);
        return [=](Napi::Env env) { deferred->Reject(f.to_error(env).Value()); };
      }
      uint64_t t1 = Vcpu::now_ns();
      std::shared_ptr<Process> proc(std::move(p));
      return [=](Napi::Env env) {
        Napi::Object stats = stats_object(env, proc->sys().stats(), proc->vm().exit_stats());
        stats.Set("timeNs", double(t1 - t0));
        stats.Get("exits").As<Napi::Object>().Set("inguestSyscalls", double(proc->vm().inguest_syscalls()));
        if (st.kind == Stop::Exited && !st.signal) {
          Napi::Object r = Napi::Object::New(env);
          r.Set("exitCode", st.exit_code);
          r.Set("stdout", to_buffer(env, proc->sys().out()));
          r.Set("stderr", to_buffer(env, proc->sys().err()));
          r.Set("stats", stats);
          deferred->Resolve(r);
        } else {
          Failure f;
          if (st.kind == Stop::Farcall) {
            f.code = "Protocol";
            f.message = "the program called a farcall request/backend function (0x" + std::to_string(st.nr) +
                        "); run it in a RequestPool or as a Backend";
          } else {
            f = Failure::from_stop(st, cfg.memory_bytes, proc->sys().stats().enomem > 0);
          }
          Napi::Error e = f.to_error(env);
          e.Set("stdout", to_buffer(env, proc->sys().out()));
          e.Set("stderr", to_buffer(env, proc->sys().err()));
          e.Set("stats", stats);
          deferred->Reject(e.Value());
        }
      };
    });
  } catch (const VmmError &e) {
    deferred->Reject(Failure::from(e).to_error(env).Value());
  }
  return deferred->Promise();
}

// Retired VMs kept for reuse (vmstock.h): {max, idle, created, reused}.
static Napi::Object vm_stock(Napi::Env env) {
  vmstock::Stats st = vmstock::stats();
  Napi::Object r = Napi::Object::New(env);
  r.Set("max", double(st.max));
  r.Set("idle", double(st.idle));
  r.Set("created", double(st.created));
  r.Set("reused", double(st.reused));
  return r;
}

// vmStock(max?): the stock's figures; with `max` (validated by src/vmstock.ts), how many retired
// VMs are kept from now on.
static Napi::Value VmStock(const Napi::CallbackInfo &info) {
  if (info.Length() > 0 && info[0].IsNumber()) vmstock::set_max(uint64_t(info[0].As<Napi::Number>().Int64Value()));
  return vm_stock(info.Env());
}

// doctor() -> { ok, problem, flavor, entryMode, physBits, caps, limits, vmStock }
static Napi::Value Doctor(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  std::string problem = Kvm::probe_problem();
  r.Set("ok", problem.empty());
  r.Set("problem", problem);
  if (problem.empty()) {
    Kvm &k = Kvm::get();
    r.Set("flavor", kvm_flavor__name(k.flavor()));
    try {
      r.Set("entryMode", entry_mode__name(entry__resolve()));
    } catch (const VmmError &e) {  // FARCALL_ENTRY names no flavor
      r.Set("entryError", e.what());
    }
    std::string why = entry__fallback_reason();
    if (!why.empty()) r.Set("entryFallback", why);
    r.Set("physBits", k.phys_bits());
    Napi::Object c = Napi::Object::New(env);
    c.Set("apiVersion", k.caps().api_version);
    c.Set("syncRegs", k.caps().sync_regs);
    c.Set("manualDirtyLog", k.caps().manual_dirty_log);
    c.Set("xsave", k.caps().xsave);
    c.Set("xcrs", k.caps().xcrs);
    c.Set("immediateExit", k.caps().immediate_exit);
    c.Set("maxMemslots", k.caps().max_memslots);
    c.Set("xcr0", double(k.supported_xcr0()));
    r.Set("caps", c);
  }
  // How many more forks fit in this process's fd limit, and how many threads run them.
  rlimit fl{};
  getrlimit(RLIMIT_NOFILE, &fl);
  Napi::Object lim = Napi::Object::New(env);
  double max_fds = fl.rlim_cur == RLIM_INFINITY ? 1e9 : double(fl.rlim_cur);
  size_t used = open_fds();
  lim.Set("fdLimit", max_fds);
  lim.Set("fdHardLimit", fl.rlim_max == RLIM_INFINITY ? 1e9 : double(fl.rlim_max));
  lim.Set("fdsOpen", double(used));
  lim.Set("fdsPerFork", 2);
  lim.Set("forksThatFit", max_fds > double(used) ? std::floor((max_fds - double(used)) / 2) : 0.0);
  lim.Set("threads", double(executor__threads()));
  r.Set("limits", lim);
  r.Set("vmStock", vm_stock(env));
  return r;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  raise_fd_limit();
  init_executor(env, exports);
  exports.Set("runProgram", Napi::Function::New(env, RunProgram));
  exports.Set("doctor", Napi::Function::New(env, Doctor));
  exports.Set("vmStock", Napi::Function::New(env, VmStock));
  size_t n = 0;
  const char *const *names = error_code__all(&n);
  Napi::Array codes = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) codes.Set(uint32_t(i), names[i]);
  exports.Set("errorCodes", codes);
  init_request(env, exports);
  init_bench(env, exports);
  init_backend(env, exports);
  return exports;
}

}  // namespace farcall::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return farcall::addon::Init(env, exports); }
NODE_API_MODULE(farcall, InitModule)
