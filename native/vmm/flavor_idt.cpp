// The IDT-based flavors' common part (flavor_idt.h): the kernel tables and the way back to user
// mode without guest kernel code.
#include "flavor_idt.h"

#include <cstring>

#include "layout.h"
#include "vm.h"

namespace farcall {
using namespace layout;

uint64_t IdtFlavor::build_kernel(Vm &vm) {
  // IDT: one interrupt gate per vector, to the address this flavor gives it.
  uint8_t *idt = vm.kmem_->host() + kIdtOff;
  for (int v = 0; v < 256; v++) {
    uint64_t h = handler(v);
    uint8_t ist = (v == 2 || v == 8 || v == 18) ? 1 : 0;
    uint8_t dpl = (v == 3 || v == 4) ? 3 : 0;  // int3 / into reach their handlers from user mode
    uint64_t lo = (h & 0xffff) | (uint64_t(kKernelCs) << 16) | (uint64_t(ist) << 32) |
                  (uint64_t(0x8e | (dpl << 5)) << 40) | (((h >> 16) & 0xffff) << 48);
    uint64_t hi = h >> 32;
    std::memcpy(idt + 16 * v, &lo, 8);
    std::memcpy(idt + 16 * v + 8, &hi, 8);
  }
  // Page tables: user RAM identity-mapped (page 0 left out), the kernel region, the reset page.
  const VmConfig &c = vm.cfg_;
  vm.pt_ = std::make_unique<PageTables>(*vm.kmem_, kKernelGpa, kPageTableOff, kResetOff);
  PageTables &pt = *vm.pt_;
  pt.map_user_ram(c.ram_va, c.ram_gpa, c.ram_bytes);
  pt.map(kKernelVa, kKernelGpa, kPageTableOff, pte::W | pte::G);
  pt.map(kResetVa, kKernelGpa + kResetOff, kPage, pte::U);  // user-executable, never writable
  map_own(vm, pt.root_gpa());
  return pt.root_gpa();
}

void IdtFlavor::on_syscall(Vm &, const Event &ev) { via_call_ = ev.via_call; }

void IdtFlavor::syscall_return(Vm &vm, uint64_t ret) {
  Vcpu &cpu = *vm.vcpu_;
  kvm_regs &r = cpu.regs();
  r.rax = ret;
  if (via_call_) {  // the SDK called the trap page: return like `ret` does
    uint64_t to = 0;
    vm.view().read(&to, r.rsp, 8);
    r.rip = to;
    r.rsp += 8;
    cpu.regs_dirty();
    via_call_ = false;
    return;
  }
  r.rip = r.rcx;
  r.rflags = (r.r11 & 0x3c0fd5) | 2;  // user-changeable flags only; never IOPL or IF games
  cpu.regs_dirty();
  kvm_sregs &s = cpu.sregs();
  if (s.cs.selector != kUserCs || s.ss.selector != kUserDs || s.cs.dpl != 3) {
    s.cs = vm.user_cs_;
    s.ss = vm.user_ss_;
    cpu.sregs_dirty();
  }
}

void IdtFlavor::resume_user(Vm &vm, uint64_t rip, uint64_t rsp, uint64_t rflags) {
  Vcpu &cpu = *vm.vcpu_;
  kvm_regs &r = cpu.regs();
  via_call_ = false;
  r.rip = rip;
  r.rsp = rsp;
  r.rflags = (rflags & 0x3c0fd5) | 2;
  cpu.regs_dirty();
  kvm_sregs &s = cpu.sregs();
  s.cs = vm.user_cs_;
  s.ss = vm.user_ss_;
  cpu.sregs_dirty();
}

}  // namespace farcall
