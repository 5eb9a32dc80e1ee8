// The shared threads that run fork work: a bounded set (about the core count) instead of one
// thread per fork, so thousands of forks cost no threads while idle and a burst never runs more
// vCPUs than there are cores. Each fork posts to its own Strand: a strand's jobs run in order,
// one at a time, on whichever thread is free (a vCPU's ioctls may come from any thread, just not
// from two at once). Completions run on the JS thread, like Worker's.
//
// Strands belong to a group (a pool): a job runs for as long as its request does (a request may
// spin or sleep to its time limit), so one group could hold every thread and make every other
// group wait for its time limits. A group with nothing running may therefore always start one
// job, on an extra thread if none is free; beyond that, jobs start only while fewer than the
// bound run. So every group with work has a thread at once, and the threads number at most the
// bound plus the groups with work (the kernel shares the cores between them).
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
  // `group`: the strands that share the bound among themselves (e.g. the forks of one pool).
  static std::shared_ptr<Strand> create(const void *group) { return std::shared_ptr<Strand>(new Strand(group)); }
  // `owner` is kept alive (not collected) until the job's completion has run.
  void post(Napi::Env env, Job job, Napi::Object owner = Napi::Object());

 private:
  explicit Strand(const void *group) : group_(group) {}
  friend class Executor;
  const void *const group_;
  std::mutex mu_;
  std::deque<StrandItem> jobs_;
  bool scheduled_ = false;  // queued at the executor or running: jobs_ is drained by it
};

// How many threads run fork work: FARCALL_THREADS, else the CPUs this process may run on.
size_t executor__threads();
// Threads the executor has now (0 before the first fork job; extra ones go when idle).
size_t executor__started();

void init_executor(Napi::Env env, Napi::Object exports);

}  // namespace farcall::addon
