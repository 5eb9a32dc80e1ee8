#include "worker.h"

namespace farcall::addon {

void Worker::run_once(Napi::Env env, Job job) { (new Worker(env, true))->post(env, std::move(job)); }

Worker::Worker(Napi::Env env, bool single_use) : single_use_(single_use) {
  sh_->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}),
                                            "farcall-worker", 0, 1, [sh = sh_](Napi::Env) { sh->gone = true; });
  sh_->tsfn.Unref(env);  // an idle worker must not keep Node alive
  thread_ = std::thread([this] { loop(); });
}

Worker::~Worker() { stop(); }

void Worker::post(Napi::Env env, Job job, Napi::Object owner) {
  if (sh_->pending++ == 0) sh_->tsfn.Ref(env);
  std::shared_ptr<Napi::ObjectReference> keep;
  if (!owner.IsEmpty()) keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(owner));
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back([job = std::move(job), keep]() -> Completion {
      Completion c = job();
      return [c = std::move(c), keep](Napi::Env env) { c(env); };
    });
  }
  cv_.notify_one();
}

void Worker::deliver(Napi::Env env, Napi::Function, Completion *c) {
  std::unique_ptr<Completion> owned(c);
  if (env != nullptr) (*owned)(env);
}

void Worker::loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    Completion done = job();
    // What the job captured (handles of the VM owner) is released on the JS thread, with the
    // completion: were the last reference dropped here, the owner's destructor would have this
    // thread join itself. The worker may be stopped and deleted before the completion runs
    // (closing a backend), or by it (closing a fork): the completion holds only the shared part.
    auto *c = new Completion(
        [sh = sh_, done = std::move(done), job = std::move(job), self = single_use_ ? this : nullptr](Napi::Env env) {
          if (--sh->pending == 0) sh->tsfn.Unref(env);
          done(env);
          delete self;  // single use: joins the thread, which returns right after posting
        });
    if (sh_->tsfn.BlockingCall(c, deliver) != napi_ok) delete c;
    if (single_use_) return;
  }
}

void Worker::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (!sh_->gone) sh_->tsfn.Release();
}

}  // namespace farcall::addon
