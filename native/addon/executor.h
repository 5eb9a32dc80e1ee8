// The shared threads that run fork work: a bounded set (about the core count) instead of one
// thread per fork, so thousands of forks cost no threads while idle and a burst never runs more
// vCPUs than there are cores. Each fork posts to its own Strand: a strand's jobs run in order,
// one at a time, on whichever thread is free (a vCPU's ioctls may come from any thread, just not
// from two at once). Completions run on the JS thread, like Worker's.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>
#include <deque>

#include "worker.h"

namespace farcall::addon {

struct Delivery;  // executor.cpp: where a JS environment's completions go
struct StrandItem {
  Job job;
  Delivery *delivery;
};

class Strand : public std::enable_shared_from_this<Strand> {
 public:
  static std::shared_ptr<Strand> create() { return std::shared_ptr<Strand>(new Strand()); }
  // `owner` is kept alive (not collected) until the job's completion has run.
  void post(Napi::Env env, Job job, Napi::Object owner = Napi::Object());

 private:
  Strand() = default;
  friend class Executor;
  std::mutex mu_;
  std::deque<StrandItem> jobs_;
  bool scheduled_ = false;  // queued at the executor or running: jobs_ is drained by it
};

// How many threads run fork work: FARCALL_THREADS, else the CPUs this process may run on.
size_t executor__threads();
// Threads started so far (0 before the first fork job).
size_t executor__started();

void init_executor(Napi::Env env, Napi::Object exports);

}  // namespace farcall::addon
