// The pvm-native flavor (docs/pvm.md): a small guest kernel (native/kernel/pvm.S) on kvm_pvm's
// own interface. It answers host-free system calls itself and hands the rest to the VMM with one
// `out` from guest supervisor mode; the VMM returns through its `int $0x19`.
#pragma once
#include "flavor.h"

namespace farcall {

class PvmFlavor final : public EntryFlavor {
 public:
  PvmFlavor();
  std::unique_ptr<EntryFlavor> fork() const override;
  EntryMode mode() const override { return EntryMode::PvmNative; }
  uint64_t build_kernel(Vm &vm) override;
  uint64_t syscall_entry() const override;
  bool starts_in_kernel() const override { return true; }
  void vcpu_ready(Vm &vm) override;
  void before_run(Vm &vm) override;
  void after_timeout(Vm &vm) override;
  void after_exit(Vm &vm, const ExitFacts &f) override;
  bool page_fault(Vm &vm, Event &ev) override;
  void on_syscall(Vm &vm, const Event &ev) override;
  void syscall_return(Vm &vm, uint64_t ret) override;
  void resume_user(Vm &vm, uint64_t rip, uint64_t rsp, uint64_t rflags) override;
  void save(Vm &vm, CpuState &st) override;
  void before_restore(Vm &vm) override;
  void after_restore(Vm &vm, const CpuState &st, bool reset_page) override;
  __u64 &resume_reg(kvm_regs &r) const override { return r.rcx; }  // `int $0x19` returns to RCX
  uint64_t user_gs(const CpuState &st) const override;

 private:
  // kvm_pvm flips GS on every user/supervisor transition: while the VMM handles a forwarded
  // call, GS.base is the kernel's and the user's is in MSR_KERNEL_GS_BASE. For arch_prctl's GS
  // operations the user's value is shown in the sync area (two MSR ioctls, only for those calls)
  // and moved back on return; the kernel's GS.base stays as it was.
  void user_gs_show(Vm &vm);
  void user_gs_hide(Vm &vm);
  bool fresh_ = true;       // the vCPU has not yet run the guest kernel's enable sequence
  bool in_kernel_ = false;  // the last exit came from the guest kernel (supervisor mode)
  bool gs_shown_ = false;   // the sync area shows the user's GS base
  uint64_t kernel_gs_ = 0;
};

}  // namespace farcall
