// Guest threads, multiplexed by the VMM on the VM's one vCPU (docs/threads.md).
//
// The table is plain data inside Personality::MemState, so a fork reset restores it by
// assignment (the master's threads at farcall_ready come back, threads a request made are gone).
// The thread on the vCPU is cur; every other thread's registers, FS/GS base and XSAVE image are
// kept here, saved at a system call or a preemption tick and put back when it runs again.
#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace farcall {

struct GuestThread {
  enum State : uint8_t { Running, Runnable, FutexWait, Sleeping, Retry } state = Running;
  int tid = 1;
  // Saved context (not for the thread on the vCPU): the state of its pending system call,
  // resumed with RAX = result; or, `preempted`, its user-mode state when the tick stopped it.
  kvm_regs regs{};
  uint64_t fs = 0, gs = 0, result = 0;
  std::vector<uint8_t> xsave;
  bool preempted = false;
  uint64_t futex = 0;     // FutexWait: the word's address
  uint32_t bitset = ~0u;  // FutexWait: FUTEX_WAIT_BITSET's mask
  uint64_t deadline = 0;  // FutexWait/Sleeping: CLOCK_MONOTONIC ns, 0 = none
  uint64_t clear_tid = 0; // CLONE_CHILD_CLEARTID / set_tid_address: zeroed and woken at exit
};

struct ThreadTable {
  std::vector<GuestThread> list = std::vector<GuestThread>(1);  // list[cur] is on the vCPU
  size_t cur = 0;
  int next_tid = 2;
  // What the current system call asked of the scheduler (applied after it returns).
  enum Ask : uint8_t { None, Block, Yield, Exit } ask = None;
  GuestThread &current() { return list[cur]; }
  GuestThread *find(int tid) {
    for (auto &t : list)
      if (t.tid == tid) return &t;
    return nullptr;
  }
};

}  // namespace farcall
