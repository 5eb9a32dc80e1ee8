#include "executor.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <system_error>
#include <cstdlib>
#include <thread>
#include <unordered_map>
#include <vector>

namespace farcall::addon {

// One per JS environment: the thread-safe function completions go through, referenced (keeping
// Node alive) only while jobs are pending. Never freed: executor threads may still hold it
// while the environment tears down.
struct Delivery {
  Napi::ThreadSafeFunction tsfn;
  size_t pending = 0;  // JS thread only
};

class Executor {
 public:
  static Executor &get() {
    static Executor *e = new Executor();  // never destroyed: its threads outlive static teardown
    return *e;
  }
  void schedule(std::shared_ptr<Strand> s) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      ready_.push_back(std::move(s));
      spawn_if_needed();
    }
    cv_.notify_all();
  }
  size_t started() {
    std::lock_guard<std::mutex> lk(mu_);
    return threads_;
  }

 private:
  static constexpr size_t kMaxThreads = 4096;  // a backstop; the groups with work bound it first
  Executor() : limit_(executor__threads()) {}
  static void deliver(Napi::Env env, Napi::Function, Completion *c) {
    std::unique_ptr<Completion> owned(c);
    if (env != nullptr) (*owned)(env);
  }
  // The first ready strand that may start now (mu_ held): FIFO, within the rule of executor.h.
  std::deque<std::shared_ptr<Strand>>::iterator runnable() {
    if (running_total_ < limit_) return ready_.begin();
    return std::find_if(ready_.begin(), ready_.end(), [&](const std::shared_ptr<Strand> &s) {
      auto it = running_.find(s->group_);
      return it == running_.end();
    });
  }
  // A thread more when a job could start and no thread is idle: under the bound, or beyond it
  // for a group that has nothing running (executor.h). A thread that has just finished a job is
  // not idle yet, but it looks for the next one itself. Asked again each time a thread takes a
  // job (mu_ held): jobs posted together all find the same idle threads, which take only as many.
  void spawn_if_needed() {
    bool extra = running_total_ >= limit_;
    if (idle_ == 0 && (threads_ < limit_ || extra) && threads_ < kMaxThreads && runnable() != ready_.end()) {
      threads_++;
      idle_++;  // idle from now: a thread not yet running counts, or every job posted meanwhile starts one
      try {
        std::thread([this] { loop(); }).detach();
      } catch (const std::system_error &) {
        // No thread to be had (the system's limit): the job waits for one of those there are.
        // Thrown on an executor thread this would end the process.
        threads_--;
        idle_--;
      }
    }
  }
  void loop() {
    for (bool born = true;; born = false) {
      std::shared_ptr<Strand> s;
      {
        std::unique_lock<std::mutex> lk(mu_);
        if (!born) idle_++;
        // Threads beyond the bound go after a second with nothing they may start.
        auto retire = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        auto found = runnable();
        while (found == ready_.end()) {
          if (threads_ <= limit_) {
            cv_.wait(lk);
          } else if (cv_.wait_until(lk, retire) == std::cv_status::timeout && runnable() == ready_.end() &&
                     threads_ > limit_) {  // others idle as long may have gone meanwhile
            idle_--;
            threads_--;
            return;
          }
          found = runnable();
        }
        idle_--;
        s = std::move(*found);
        ready_.erase(found);
        running_[s->group_]++;
        running_total_++;
        spawn_if_needed();
      }
      StrandItem item;
      {
        std::lock_guard<std::mutex> lk(s->mu_);
        item = std::move(s->jobs_.front());
        s->jobs_.pop_front();
      }
      Completion done = item.job();
      Delivery *d = item.delivery;
      // What the job captured (JS references, the fork's handle) is released on the JS thread.
      auto *c = new Completion([d, done = std::move(done), job = std::move(item.job)](Napi::Env env) {
        if (--d->pending == 0) d->tsfn.Unref(env);
        done(env);
      });
      if (d->tsfn.BlockingCall(c, deliver) != napi_ok) delete c;
      // One job per turn: a strand with more goes to the back, so every fork gets its turn.
      bool again;
      {
        std::lock_guard<std::mutex> lk(s->mu_);
        again = !s->jobs_.empty();
        if (!again) s->scheduled_ = false;
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = running_.find(s->group_);
        if (--it->second == 0) running_.erase(it);
        running_total_--;
        if (again) ready_.push_back(std::move(s));
      }
      cv_.notify_all();  // a job ended: another may start (under the bound, or its group's first)
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Strand>> ready_;
  std::unordered_map<const void *, size_t> running_;  // jobs running, by group
  size_t limit_, threads_ = 0, idle_ = 0, running_total_ = 0;
};

namespace {
Delivery *delivery_of(Napi::Env env) {
  Delivery **d = env.GetInstanceData<Delivery *>();
  if (d) return *d;
  auto *made = new Delivery();
  made->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}),
                                             "farcall-executor", 0, 1);
  made->tsfn.Unref(env);  // idle forks must not keep Node alive
  // The slot holds a pointer to the (never freed) Delivery; at teardown only the slot goes.
  env.SetInstanceData<Delivery *>(new Delivery *(made));
  return made;
}

}  // namespace

size_t executor__threads() {
  if (const char *v = std::getenv("FARCALL_THREADS")) {
    long n = std::strtol(v, nullptr, 10);
    if (n >= 1 && n <= 1024) return size_t(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return size_t(CPU_COUNT(&set));
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

size_t executor__started() { return Executor::get().started(); }

void Strand::post(Napi::Env env, Job job, Napi::Object owner) {
  Delivery *d = delivery_of(env);
  if (d->pending++ == 0) d->tsfn.Ref(env);
  std::shared_ptr<Napi::ObjectReference> keep;
  if (!owner.IsEmpty()) keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(owner));
  Job wrapped = [job = std::move(job), keep]() -> Completion {
    Completion c = job();
    return [c = std::move(c), keep](Napi::Env env) { c(env); };
  };
  bool start;
  {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back(StrandItem{std::move(wrapped), d});
    start = !scheduled_;
    scheduled_ = true;
  }
  if (start) Executor::get().schedule(shared_from_this());
}

void init_executor(Napi::Env env, Napi::Object exports) {
  // executorInfo() -> {threads, started}: the bound on threads running fork work, and how many exist.
  exports.Set("executorInfo", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("threads", double(executor__threads()));
    r.Set("started", double(executor__started()));
    return r;
  }));
}

}  // namespace farcall::addon
