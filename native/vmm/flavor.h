// An entry flavor: how guest events (system calls, exceptions, far calls) leave the VM, and how
// the VMM sends the guest back (docs/entry.md). Each Vm has one; the Vm asks it at every point
// where the flavors differ and has no flavor branches of its own. The three:
//  - trap page (flavor_trap_page.cpp): every kernel entry point is a fetch from a page with no
//    memory behind it (kvm_pvm);
//  - out-stub (flavor_out_stub.cpp): one ring-0 `out` per event (hardware KVM);
//  - pvm-native (flavor_pvm.cpp): a guest kernel on PVM's own interface (docs/pvm.md).
// The first two share the IDT-based kernel and the return to user mode (flavor_idt.cpp).
#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <memory>

#include "kvm.h"

namespace farcall {

class Vm;
struct Event;
struct CpuState;
struct ExitFacts;

class EntryFlavor {
 public:
  virtual ~EntryFlavor() = default;
  // The flavor for `mode`; VmmError(KvmUnavailable) where this host cannot run it.
  static std::unique_ptr<EntryFlavor> make(EntryMode mode);
  // A fork's flavor: the same, with the fork's own per-vCPU state (a fresh vCPU's).
  virtual std::unique_ptr<EntryFlavor> fork() const = 0;
  virtual EntryMode mode() const = 0;

  // Building the VM. build_kernel() fills the kernel region (descriptor tables, page tables,
  // this flavor's pages) and returns the page-table root.
  virtual uint64_t build_kernel(Vm &vm) = 0;
  virtual uint64_t syscall_entry() const = 0;  // MSR_LSTAR and MSR_CSTAR
  virtual bool starts_in_kernel() const { return false; }  // a fresh vCPU's CS/SS: the kernel's
  virtual void vcpu_ready(Vm &) {}  // after the vCPU's registers and MSRs are set
  // What the SDK calls for a system call (auxv AT_FARCALL_TRAP), 0: the `syscall` instruction.
  virtual uint64_t sdk_trap() const { return 0; }

  // Running. An exit's facts go to exit__decode (exit.cpp); these are the flavor's side effects.
  virtual void before_run(Vm &) {}
  virtual void after_timeout(Vm &) {}  // the watchdog stopped the vCPU where it was
  virtual void after_exit(Vm &, const ExitFacts &) {}
  // A page fault this flavor turns into another event (true: `ev` replaced). `ev` arrives with
  // the frame's RIP and CR2 as the vCPU shows it.
  virtual bool page_fault(Vm &, Event &) { return false; }
  virtual void on_syscall(Vm &, const Event &) {}
  // Completes a system call (RAX = ret) and resumes after it.
  virtual void syscall_return(Vm &vm, uint64_t ret) = 0;
  // Resumes user mode at `rip` with `rsp` and the user-changeable bits of `rflags`.
  virtual void resume_user(Vm &vm, uint64_t rip, uint64_t rsp, uint64_t rflags) = 0;

  // Saving and restoring the vCPU (a master's state, a fork's reset).
  virtual void save(Vm &, CpuState &) {}
  // Before the saved registers are written back (the vCPU must be in the right mode for them).
  virtual void before_restore(Vm &) {}
  // After they are: what the flavor restores itself (`reset_page`: the reset page will run).
  virtual void after_restore(Vm &, const CpuState &, bool /*reset_page*/) {}
  // The register that holds where the vCPU resumes (RIP, or RCX for a return through the guest
  // kernel), and the user GS base, as the reset page must restore them.
  virtual __u64 &resume_reg(kvm_regs &r) const { return r.rip; }
  virtual uint64_t user_gs(const CpuState &st) const;
};

// A fetch from the trap page's address where the flavor does not map it (a #PF whose RIP is
// CR2): `ev` becomes the event the trap-page flavor reports for a jump there (true); false for
// any other page fault.
bool flavor__trap_jump(Event &ev);

}  // namespace farcall
