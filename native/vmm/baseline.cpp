#include "baseline.h"

#include <linux/kvm.h>
#include <pthread.h>

#include <cstring>
#include <memory>

#include "entry.h"
#include "error.h"
#include "kvm.h"
#include "layout.h"
#include "paging.h"
#include "vm.h"

namespace farcall {
using namespace layout;

namespace {

constexpr uint64_t kRam = 8ull << 20;
constexpr uint64_t kCodeVa = 0x1000;                      // user code page (identity mapped RAM)
constexpr uint64_t kStackVa = kRam - 0x1000;              // user stack top
constexpr uint64_t kRing0CodeOff = kStubOff + 0xc00;      // unused tail of the out-stub page
constexpr uint64_t kDoorbellVa = 0x40000000ull;           // 1 GiB: user, writable ...
constexpr uint64_t kDoorbellGpa = 0x2000000000ull;        // ... onto 128 GiB, where no memslot is
constexpr uint64_t kAltTablesOff = 0x100000;              // second page-table root, in kmem
constexpr uint64_t kFetchTarget = kTrapVa + 0x800;        // an offset of the trap page no event uses
constexpr int kWarmup = 50;
constexpr uint64_t kGuardNs = 60ull * 1000000000ull;      // a stuck guest is kicked after this

const std::vector<std::string> kKinds = {"exit-out", "trap-mmio", "trap-fetch", "syscall", "vm-create"};

std::unique_ptr<Vm> make_vm() {
  VmConfig cfg;
  cfg.ram_bytes = kRam;
  cfg.mode = entry__resolve();
  return std::make_unique<Vm>(cfg);
}

void put_code(Vm &vm, uint64_t va, const std::vector<uint8_t> &code) {
  if (!vm.copy_to_user(va, code.data(), code.size())) throw VmmError(ErrorCode::Internal, "baseline: code outside RAM");
}

// User-mode start: the Vm's vCPU is already in ring 3 with user segments after construction.
void start_user(Vm &vm, uint64_t rip, uint64_t rbx) {
  kvm_regs &r = vm.vcpu().regs();
  r = {};
  r.rip = rip;
  r.rsp = kStackVa;
  r.rbx = rbx;
  r.rflags = 2;
  vm.vcpu().regs_dirty();
}

[[noreturn]] void unexpected(Vm &vm, const char *kind) {
  kvm_run *run = vm.vcpu().run_struct();
  throw VmmError(ErrorCode::Internal, std::string("baseline ") + kind + ": unexpected exit reason " +
                                          std::to_string(run->exit_reason) + " at rip 0x" + [&] {
                                            char b[32];
                                            snprintf(b, sizeof b, "%llx", (unsigned long long)vm.vcpu().regs().rip);
                                            return std::string(b);
                                          }());
}

void run_once_checked(Vm &vm, const char *kind) {
  if (vm.vcpu().run(Vcpu::now_ns() + kGuardNs) == Vcpu::RunResult::Timeout)
    throw VmmError(ErrorCode::Timeout, std::string("baseline ") + kind + ": the guest did not exit");
}

template <class Step>
std::vector<uint64_t> timed(int iterations, Step step) {
  for (int i = 0; i < kWarmup; i++) step();
  std::vector<uint64_t> out(iterations);
  for (int i = 0; i < iterations; i++) {
    uint64_t t0 = Vcpu::now_ns();
    step();
    out[i] = Vcpu::now_ns() - t0;
  }
  return out;
}

std::vector<uint64_t> exit_out(int iterations) {
  auto vm = make_vm();
  watchdog::Armed guard(vm->vcpu(), Vcpu::now_ns() + kGuardNs);  // a stuck guest cannot hang us
  // 1: out %al, $0x10; jmp 1b   -- in ring 0, on the kernel region (supervisor pages).
  const uint8_t code[] = {0xe6, 0x10, 0xeb, 0xfc};
  std::memcpy(vm->kmem().host() + kRing0CodeOff, code, sizeof code);
  kvm_sregs &s = vm->vcpu().sregs();
  kvm_segment cs = s.cs, ss = s.ss;
  cs.selector = kKernelCs;
  cs.dpl = 0;
  ss.selector = kKernelDs;
  ss.dpl = 0;
  s.cs = cs;
  s.ss = ss;
  vm->vcpu().sregs_dirty();
  kvm_regs &r = vm->vcpu().regs();
  r = {};
  r.rip = kKernelVa + kRing0CodeOff;
  r.rsp = kKernelVa + kStackTop;
  r.rflags = 2;
  vm->vcpu().regs_dirty();
  kvm_run *run = vm->vcpu().run_struct();
  return timed(iterations, [&] {
    run_once_checked(*vm, "exit-out");
    if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x10) unexpected(*vm, "exit-out");
  });
}

std::vector<uint64_t> trap_mmio(int iterations) {
  auto vm = make_vm();
  watchdog::Armed guard(vm->vcpu(), Vcpu::now_ns() + kGuardNs);  // a stuck guest cannot hang us
  // A second page-table root: the Vm's own mappings plus a user-writable page whose
  // guest-physical address has no memslot. Built before the first run, so shadow paging sees it.
  PageTables pt(vm->kmem(), kKernelGpa, kAltTablesOff, kKernelSize);
  pt.map(kPage, kPage, kHugePage - kPage, pte::W | pte::U);
  pt.map(kHugePage, kHugePage, kRam - kHugePage, pte::W | pte::U);
  pt.map(kKernelVa, kKernelGpa, kPageTableOff, pte::W | pte::G);
  pt.map(kTrapVa, kTrapGpa, kPage, pte::G | pte::U);
  pt.map(kDoorbellVa, kDoorbellGpa, kPage, pte::W | pte::U);
  vm->vcpu().sregs().cr3 = pt.root_gpa();
  vm->vcpu().sregs_dirty();
  // 1: mov %al, (%rbx); jmp 1b
  put_code(*vm, kCodeVa, {0x88, 0x03, 0xeb, 0xfc});
  start_user(*vm, kCodeVa, kDoorbellVa);
  kvm_run *run = vm->vcpu().run_struct();
  return timed(iterations, [&] {
    run_once_checked(*vm, "trap-mmio");
    if (run->exit_reason != KVM_EXIT_MMIO || !run->mmio.is_write || run->mmio.phys_addr != kDoorbellGpa)
      unexpected(*vm, "trap-mmio");
  });
}

std::vector<uint64_t> trap_fetch(int iterations) {
  auto vm = make_vm();
  watchdog::Armed guard(vm->vcpu(), Vcpu::now_ns() + kGuardNs);  // a stuck guest cannot hang us
  // jmp *%rbx, rbx = an unused offset of the trap page (present, user, no memslot behind it).
  put_code(*vm, kCodeVa, {0xff, 0xe3});
  start_user(*vm, kCodeVa, kFetchTarget);
  kvm_run *run = vm->vcpu().run_struct();
  return timed(iterations, [&] {
    run_once_checked(*vm, "trap-fetch");
    kvm_regs &r = vm->vcpu().regs();
    if (run->exit_reason != KVM_EXIT_INTERNAL_ERROR || r.rip != kFetchTarget) unexpected(*vm, "trap-fetch");
    r.rip = kCodeVa;  // back to the jump, through sync regs
    vm->vcpu().regs_dirty();
  });
}

std::vector<uint64_t> syscall_loop(int iterations) {
  auto vm = make_vm();
  watchdog::Armed guard(vm->vcpu(), Vcpu::now_ns() + kGuardNs);  // a stuck guest cannot hang us
  // 1: mov $110, %eax (getppid); syscall; jmp 1b
  put_code(*vm, kCodeVa, {0xb8, 0x6e, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7});
  start_user(*vm, kCodeVa, 0);
  return timed(iterations, [&] {
    Event ev = vm->run(Vcpu::now_ns() + kGuardNs);
    if (ev.kind != Event::Syscall || vm->vcpu().regs().rax != 110)
      throw VmmError(ErrorCode::Internal, "baseline syscall: unexpected event " + std::to_string(int(ev.kind)) +
                                              " " + ev.detail);
    vm->syscall_return(0);
  });
}

std::vector<uint64_t> vm_create(int iterations) {
  std::vector<uint64_t> out(iterations);
  for (int i = 0; i < iterations; i++) {
    uint64_t t0 = Vcpu::now_ns();
    auto vm = make_vm();
    put_code(*vm, kCodeVa, {0xff, 0xe3});
    start_user(*vm, kCodeVa, kFetchTarget);
    {
      watchdog::Armed guard(vm->vcpu(), Vcpu::now_ns() + kGuardNs);  // a stuck guest cannot hang us
      run_once_checked(*vm, "vm-create");
    }
    out[i] = Vcpu::now_ns() - t0;
    if (vm->vcpu().run_struct()->exit_reason != KVM_EXIT_INTERNAL_ERROR) unexpected(*vm, "vm-create");
  }
  return out;
}

}  // namespace

const std::vector<std::string> &baseline__kinds() { return kKinds; }

std::vector<uint64_t> baseline__run(const std::string &kind, int iterations) {
  if (iterations < 1 || iterations > 10000000)
    throw VmmError(ErrorCode::BadState, "baseline: iterations must be between 1 and 10000000");
  if (kind == "exit-out") return exit_out(iterations);
  if (kind == "trap-mmio") return trap_mmio(iterations);
  if (kind == "trap-fetch") return trap_fetch(iterations);
  if (kind == "syscall") return syscall_loop(iterations);
  if (kind == "vm-create") return vm_create(iterations);
  std::string all;
  for (auto &k : kKinds) all += (all.empty() ? "" : ", ") + k;
  throw VmmError(ErrorCode::BadState, "baseline: unknown kind '" + kind + "' (one of " + all + ")");
}

}  // namespace farcall
