// A native thread that owns VM work for JavaScript. Jobs run on the thread (KVM_RUN blocks
// there, never on the event loop); each job returns a completion that runs on the JS thread.
#pragma once
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace farcall::addon {

using Completion = std::function<void(Napi::Env)>;
using Job = std::function<Completion()>;

class Worker {
 public:
  explicit Worker(Napi::Env env, bool single_use = false);
  // Runs one job on a fresh thread; the worker deletes itself after the completion ran.
  static void run_once(Napi::Env env, Job job);
  ~Worker();
  // `owner` is kept alive (not collected) until the job's completion has run.
  void post(Napi::Env env, Job job, Napi::Object owner = Napi::Object());
  // Stops after the queued jobs; joins the thread. Idempotent.
  void stop();
  size_t pending() const { return sh_->pending; }

 private:
  void loop();
  static void deliver(Napi::Env env, Napi::Function, Completion *c);
  // What a completion still queued in the thread-safe function needs after the Worker is gone
  // (closing a backend deletes it while its last completion may be waiting for the JS thread).
  struct Shared {
    Napi::ThreadSafeFunction tsfn;
    size_t pending = 0;  // JS-thread only: jobs posted and not yet completed
    // Node finalized the tsfn (its environment is tearing down, and may then finalize a handle
    // that owns this Worker): Release would touch freed memory.
    std::atomic<bool> gone{false};
  };
  std::shared_ptr<Shared> sh_ = std::make_shared<Shared>();
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  bool single_use_ = false;
};

}  // namespace farcall::addon
