#include "worker.h"

namespace farcall::addon {

void Worker::run_once(Napi::Env env, Job job) { (new Worker(env, true))->post(env, std::move(job)); }

Worker::Worker(Napi::Env env, bool single_use) : single_use_(single_use) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}),
                                        "farcall-worker", 0, 1);
  tsfn_.Unref(env);  // an idle worker must not keep Node alive
  thread_ = std::thread([this] { loop(); });
}

Worker::~Worker() { stop(); }

void Worker::post(Napi::Env env, Job job, Napi::Object owner) {
  if (pending_++ == 0) tsfn_.Ref(env);
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
    // thread join itself. The completion may also stop and delete this worker (closing a fork
    // does), so it touches nothing of the worker after `done`.
    auto *c = new Completion(
        [this, done = std::move(done), job = std::move(job), single = single_use_](Napi::Env env) {
          if (--pending_ == 0) tsfn_.Unref(env);
          done(env);
          if (single) delete this;  // joins the thread, which returns right after posting
        });
    if (tsfn_.BlockingCall(c, deliver) != napi_ok) delete c;
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
  tsfn_.Release();
}

}  // namespace farcall::addon
