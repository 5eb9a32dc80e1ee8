// A Linux program in its own VM: the VM, the program's personality (its system calls) and the
// gate to the backends attached to it, and the loop that runs the VM and hands each event to
// the one of them it belongs to.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "elf.h"
#include "gate.h"
#include "personality.h"
#include "vm.h"

namespace farcall {

class Process {
 public:
  // Loads `elf` into a new VM. Throws VmmError for a bad program.
  Process(const std::vector<uint8_t> &elf, const ProcessConfig &cfg);
  // A fork of `master` (a process stopped at a Farcall stop), sharing its memory copy-on-write.
  Process(const Process &master, const CpuState &state, bool dirty_log);
  // A VM with empty RAM and no program, used to make calls from the host into backends.
  explicit Process(const VmConfig &vc);
  // A VM over `ram` (a snapshot's memory, snapshot_state.cpp), with that address-space state,
  // never run from a program.
  Process(const ProcessConfig &cfg, std::shared_ptr<GuestRegion> ram, const Personality::MemState &ms);
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;

  Vm &vm() { return *vm_; }
  Personality &sys() { return *sys_; }
  Gate &gate() { return *gate_; }

  // Runs until a Stop; the watchdog must be armed by the caller (run_for does both).
  Stop run(uint64_t deadline_ns);
  // Runs for at most timeout_ns with the watchdog armed on this thread. A VMM error in the
  // middle of a far call gives the backend instance back before it propagates.
  Stop run_for(uint64_t timeout_ns);
  // Calls entry `entry` of attached backend `index` from the host: args in RDI..RCX; returns
  // the Stop (Farcall/kHostCallDone with the result in RAX, or a failure).
  Stop host_call(size_t index, int entry, const uint64_t args[4], uint64_t deadline_ns);

 private:
  // The initial stack; `interp`: the ELF interpreter of a dynamic program (entry 0: none).
  void build_stack(const ElfImage &img, const ElfImage &interp);
  Stop run_events(uint64_t deadline_ns);
  // An event that is not the gate's: a system call for the personality or farcall, or a stop.
  bool on_event(const Event &ev, uint64_t deadline_ns, Stop *st);
  // Lazy reservations: the personality counts what this VM touched of its RAM.
  void watch_memory();
  // Guest threads (threads.cpp): after a system call that blocked, exited or yielded a thread,
  // the vCPU is switched to the next runnable one; returns the result that thread resumes with.
  uint64_t thread_after(uint64_t ret, uint64_t deadline_ns, Stop *stop);
  uint64_t thread_schedule(bool live, uint64_t deadline_ns, Stop *stop);
  void thread_save(GuestThread &t);
  void thread_load(GuestThread &t);
  std::string thread_describe();
  bool thread_resume_preempted(GuestThread &t, Stop *stop);
  uint64_t thread_tick(uint64_t deadline_ns);  // when the VM must come back for the next slice
  bool thread_preempt(uint64_t deadline_ns, Stop *stop);
  uint64_t tick_at_ = 0;  // the slice's end the watchdog is armed for (0: none)

  std::unique_ptr<Vm> vm_;
  std::unique_ptr<Personality> sys_;
  std::unique_ptr<Gate> gate_;
};

}  // namespace farcall
