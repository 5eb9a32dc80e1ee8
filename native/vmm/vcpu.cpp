#include "vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "error.h"
#include "kvm.h"
#include "kvm_abi.h"

namespace farcall {

static int kick_signal() { return SIGRTMIN + 4; }

static void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa = {};
    sa.sa_handler = [](int) {};  // only interrupts KVM_RUN; the flag is immediate_exit
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(kick_signal(), &sa, nullptr);
  });
}

uint64_t Vcpu::now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

Vcpu::Vcpu(int vm_fd, int id) {
  install_kick_handler();
  fd_ = ioctl(vm_fd, KVM_CREATE_VCPU, id);
  if (fd_ < 0) error__sys("KVM_CREATE_VCPU");
  mmap_size_ = Kvm::get().vcpu_mmap_size();
  void *p = mmap(nullptr, mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) {
    close(fd_);
    error__sys("mmap kvm_run");
  }
  run_ = static_cast<kvm_run *>(p);
}

Vcpu::~Vcpu() {
  watchdog::disarm(this);
  if (run_) munmap(run_, mmap_size_);
  if (fd_ >= 0) close(fd_);
}

void Vcpu::recycled() {
  watchdog::disarm(this);
  exits_ = 0;
  run_->immediate_exit = 0;
  run_->kvm_dirty_regs = 0;
}

void Vcpu::pull() {
  if (ioctl(fd_, KVM_GET_REGS, &run_->s.regs.regs) < 0) error__sys("KVM_GET_REGS");
  if (ioctl(fd_, KVM_GET_SREGS, &run_->s.regs.sregs) < 0) error__sys("KVM_GET_SREGS");
  run_->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
  run_->kvm_dirty_regs = 0;
}

void Vcpu::get_xsave(std::vector<uint8_t> &x) {
  x.resize(farcall_sizeof_kvm_xsave + 4096);
  if (ioctl(fd_, farcall_ioc_get_xsave, x.data()) < 0) error__sys("KVM_GET_XSAVE");
}

void Vcpu::set_xsave(const std::vector<uint8_t> &x) {
  if (ioctl(fd_, farcall_ioc_set_xsave, x.data()) < 0) error__sys("KVM_SET_XSAVE");
}

Vcpu::RunResult Vcpu::run(uint64_t deadline_ns) {
  for (;;) {
    if (deadline_ns && now_ns() >= deadline_ns) {
      run_->immediate_exit = 0;
      return RunResult::Timeout;
    }
    int r = ioctl(fd_, KVM_RUN, 0);
    if (r == 0) {
      exits_++;
      return RunResult::Exit;
    }
    if (errno == EINTR || errno == EAGAIN) {
      // A kick (or a stray signal): the deadline check above decides.
      run_->immediate_exit = 0;
      if (deadline_ns && now_ns() >= deadline_ns) return RunResult::Timeout;
      continue;
    }
    error__sys("KVM_RUN");
  }
}

namespace watchdog {
namespace {
struct Entry {
  pthread_t thread;
  uint64_t deadline;
};
struct State {
  std::mutex mu;
  std::condition_variable cv;
  std::map<Vcpu *, Entry> armed;
  bool started = false;
};
State &state() {
  static State *s = new State();  // never destroyed: the thread may outlive static teardown
  return *s;
}
void loop() {
  State &s = state();
  std::unique_lock<std::mutex> lk(s.mu);
  for (;;) {
    uint64_t now = Vcpu::now_ns(), next = UINT64_MAX;
    for (auto &[v, e] : s.armed) {
      if (e.deadline <= now) {
        v->run_struct()->immediate_exit = 1;
        pthread_kill(e.thread, kick_signal());
        e.deadline = now + 2000000;  // kick again in 2 ms if it is still armed
      }
      next = std::min(next, e.deadline);
    }
    if (next == UINT64_MAX)
      s.cv.wait(lk);
    else
      s.cv.wait_for(lk, std::chrono::nanoseconds(next - now));
  }
}
}  // namespace

void arm(Vcpu *v, pthread_t thread, uint64_t deadline_ns) {
  State &s = state();
  std::lock_guard<std::mutex> lk(s.mu);
  if (!s.started) {
    std::thread(loop).detach();
    s.started = true;
  }
  // Wake the watchdog only when this deadline comes before every other one: a later deadline
  // (a far call returning to its request's limit) is picked up when the thread next wakes.
  uint64_t earliest = UINT64_MAX;
  for (auto &[other, e] : s.armed)
    if (other != v) earliest = std::min(earliest, e.deadline);
  auto it = s.armed.find(v);
  if (it != s.armed.end()) earliest = std::min(earliest, it->second.deadline);
  s.armed[v] = Entry{thread, deadline_ns};
  if (deadline_ns < earliest) s.cv.notify_one();
}

void disarm(Vcpu *v) {
  State &s = state();
  std::lock_guard<std::mutex> lk(s.mu);
  s.armed.erase(v);
}
}  // namespace watchdog

}  // namespace farcall
