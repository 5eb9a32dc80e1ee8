// One vCPU: its fd, the shared kvm_run page, register access through sync regs,
// and KVM_RUN bounded by a deadline.
#pragma once
#include <linux/kvm.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace farcall {

class Vcpu {
 public:
  Vcpu(int vm_fd, int id);
  ~Vcpu();
  Vcpu(const Vcpu &) = delete;
  Vcpu &operator=(const Vcpu &) = delete;

  int fd() const { return fd_; }
  kvm_run *run_struct() { return run_; }

  // Registers live in kvm_run (KVM_CAP_SYNC_REGS): reading is free after any exit, and
  // writes are carried into the guest on the next KVM_RUN without an ioctl.
  kvm_regs &regs() { return run_->s.regs.regs; }
  kvm_sregs &sregs() { return run_->s.regs.sregs; }
  void regs_dirty() { run_->kvm_dirty_regs |= KVM_SYNC_X86_REGS; }
  void sregs_dirty() { run_->kvm_dirty_regs |= KVM_SYNC_X86_SREGS; }
  // Loads the sync area from the vCPU (once, after setup through ordinary ioctls).
  void pull();
  // The x87/SSE/AVX state (struct kvm_xsave and room after it), for switching guest threads.
  void get_xsave(std::vector<uint8_t> &x);
  void set_xsave(const std::vector<uint8_t> &x);

  enum class RunResult { Exit, Timeout };
  // Runs until a VM exit. Timeout when the absolute monotonic deadline (ns, 0 = none) passes.
  RunResult run(uint64_t deadline_ns);
  uint64_t exits() const { return exits_; }
  // Taken over by a new VM (vmstock.h): its counters and kvm_run flags start afresh.
  void recycled();

  static uint64_t now_ns();

 private:
  int fd_ = -1;
  kvm_run *run_ = nullptr;
  int mmap_size_ = 0;
  uint64_t exits_ = 0;
};

// One process-wide thread that kicks vCPUs whose deadline has passed: it sets the vCPU's
// immediate_exit and signals the thread inside KVM_RUN, which returns EINTR.
namespace watchdog {
void arm(Vcpu *v, pthread_t thread, uint64_t deadline_ns);
void disarm(Vcpu *v);

// Armed for the calling thread while in scope; disarmed on the way out, exceptions included.
class Armed {
 public:
  Armed(Vcpu &v, uint64_t deadline_ns) : v_(&v) { arm(v_, pthread_self(), deadline_ns); }
  ~Armed() { disarm(v_); }
  Armed(const Armed &) = delete;
  Armed &operator=(const Armed &) = delete;

 private:
  Vcpu *v_;
};
}  // namespace watchdog

}  // namespace farcall
