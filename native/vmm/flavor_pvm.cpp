// The pvm-native flavor (flavor_pvm.h); the guest kernel's build and PVM's interface are in pvm.cpp.
#include "flavor_pvm.h"

#include "exit.h"
#include "layout.h"
#include "pvm.h"
#include "vm.h"

namespace farcall {
using namespace layout;

namespace {
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
}

PvmFlavor::PvmFlavor() { pvm::check_host(); }

std::unique_ptr<EntryFlavor> PvmFlavor::fork() const { return std::make_unique<PvmFlavor>(); }

uint64_t PvmFlavor::build_kernel(Vm &vm) {
  // Its own IDT, kernel and pair of roots (pvm.cpp); the reset page in the lower half, which
  // the user root sees.
  if (!vm.pvm_scratch_) vm.add_pvm_scratch();
  vm.pt_ = std::make_unique<PageTables>(*vm.kmem_, kKernelGpa, kPageTableOff, kResetOff);
  uint64_t root = pvm::build(*vm.kmem_, *vm.pt_, vm.cfg_.ram_va, vm.cfg_.ram_gpa, vm.cfg_.ram_bytes);
  vm.pt_->map(kResetVa, kKernelGpa + kResetOff, kPage, pte::U, root);
  return root;
}

uint64_t PvmFlavor::syscall_entry() const { return pvm::syscall_va(); }

void PvmFlavor::vcpu_ready(Vm &vm) {
  if (!vm.kmem_->is_fork()) pvm::calibrate(vm.vcpu_->fd(), *vm.kmem_, vm.cfg_.ram_va, vm.cfg_.ram_bytes);
  fresh_ = true;
}

void PvmFlavor::before_run(Vm &vm) {
  if (!fresh_) return;
  pvm::first_entry(*vm.vcpu_, *vm.pvm_scratch_, vm.cr3_, vm.kernel_cs_, vm.kernel_ss_);
  fresh_ = false;
}

void PvmFlavor::after_timeout(Vm &vm) {
  // Stopped where it was. Kernel and backend addresses are fetchable only in supervisor mode
  // (the user root maps neither), so RIP tells the mode.
  uint64_t rip = vm.vcpu_->regs().rip;
  in_kernel_ = rip >= kKernelVa || (rip >= kBackendVa && rip < kBackendVaEnd) ||
               (vm.pvm_gate() && pvm::current_call(*vm.pvm_scratch_).active);  // a backend may run anywhere
}

void PvmFlavor::after_exit(Vm &, const ExitFacts &f) {
  // Only the guest kernel can `out` (a user-mode `out` is a #GP), so a port exit comes from
  // supervisor mode.
  in_kernel_ = f.reason == KVM_EXIT_IO && f.port_out;
}

bool PvmFlavor::page_fault(Vm &vm, Event &ev) {
  ev.cr2 = pvm::last_cr2(*vm.pvm_scratch_);  // the guest kernel's CR2 is not the vCPU's
  return flavor__trap_jump(ev);
}

void PvmFlavor::on_syscall(Vm &vm, const Event &) { user_gs_show(vm); }

void PvmFlavor::syscall_return(Vm &vm, uint64_t ret) {
  // Back through the guest kernel's `int $0x19` (RIP = RCX, RFLAGS = R11, RSP as is): the vCPU
  // stays in guest supervisor mode until then, so no segment or CR3 is touched here.
  kvm_regs &r = vm.vcpu_->regs();
  r.rax = ret;
  user_gs_hide(vm);
  r.r11 = (r.r11 & 0x3c0fd5) | 0x202;
  r.rip = pvm::resume_va();
  vm.vcpu_->regs_dirty();
}

void PvmFlavor::resume_user(Vm &vm, uint64_t rip, uint64_t rsp, uint64_t rflags) {
  kvm_regs &r = vm.vcpu_->regs();  // as syscall_return: through `int $0x19` (RCX is lost)
  r.rcx = rip;
  r.r11 = (rflags & 0x3c0fd5) | 0x202;
  r.rsp = rsp;
  r.rip = pvm::resume_va();
  vm.vcpu_->regs_dirty();
}

void PvmFlavor::save(Vm &vm, CpuState &st) { st.kernel_gs_base = vm.get_msr(kMsrKernelGsBase); }

void PvmFlavor::before_restore(Vm &vm) {
  if (!fresh_ && !in_kernel_) {
    pvm::enter_kernel(*vm.vcpu_);  // after a timeout: the state restored is a guest-kernel state
    in_kernel_ = true;
  }
  gs_shown_ = false;
}

void PvmFlavor::after_restore(Vm &vm, const CpuState &st, bool reset_page) {
  vm.vcpu_->sregs().cr3 = vm.cr3_ | (st.sregs.cr3 & 0x1000);  // a fork's own root pair, same half of it
  if (!reset_page) vm.set_msr(kMsrKernelGsBase, st.kernel_gs_base);
}

uint64_t PvmFlavor::user_gs(const CpuState &st) const { return st.kernel_gs_base; }

void PvmFlavor::user_gs_show(Vm &vm) {
  kvm_regs &r = vm.vcpu_->regs();
  kvm_sregs &s = vm.vcpu_->sregs();
  if (r.rax != 158 || (r.rdi != 0x1001 && r.rdi != 0x1004)) return;  // ARCH_SET_GS, ARCH_GET_GS
  kernel_gs_ = s.gs.base;
  s.gs.base = vm.get_msr(kMsrKernelGsBase);
  gs_shown_ = true;
}

void PvmFlavor::user_gs_hide(Vm &vm) {
  if (!gs_shown_) return;
  gs_shown_ = false;
  kvm_sregs &s = vm.vcpu_->sregs();
  vm.set_msr(kMsrKernelGsBase, s.gs.base);
  s.gs.base = kernel_gs_;
}

}  // namespace farcall
