// The two flavors with an IDT-based guest kernel and no kernel code on the system-call path:
// trap page and out-stub. They differ in where the IDT gates and LSTAR point, and in what a
// far call's return looks like; the return to user mode is the same.
#pragma once
#include "flavor.h"

namespace farcall {

class IdtFlavor : public EntryFlavor {
 public:
  uint64_t build_kernel(Vm &vm) override;
  void on_syscall(Vm &vm, const Event &ev) override;
  void syscall_return(Vm &vm, uint64_t ret) override;
  void resume_user(Vm &vm, uint64_t rip, uint64_t rsp, uint64_t rflags) override;
  void before_restore(Vm &) override { via_call_ = false; }

 protected:
  // The address IDT gate `vector` points at.
  virtual uint64_t handler(int vector) const = 0;
  // This flavor's own pages: mapped in `root` and written into the kernel region.
  virtual void map_own(Vm &vm, uint64_t root) = 0;

 private:
  bool via_call_ = false;  // the pending system call came through kTrapSdkCall
};

class TrapPageFlavor final : public IdtFlavor {
 public:
  std::unique_ptr<EntryFlavor> fork() const override { return std::make_unique<TrapPageFlavor>(); }
  EntryMode mode() const override { return EntryMode::TrapPage; }
  uint64_t syscall_entry() const override;
  uint64_t sdk_trap() const override;

 protected:
  uint64_t handler(int vector) const override;
  void map_own(Vm &vm, uint64_t root) override;
};

class OutStubFlavor final : public IdtFlavor {
 public:
  OutStubFlavor();
  std::unique_ptr<EntryFlavor> fork() const override { return std::make_unique<OutStubFlavor>(); }
  EntryMode mode() const override { return EntryMode::OutStub; }
  uint64_t syscall_entry() const override;
  bool page_fault(Vm &vm, Event &ev) override;

 protected:
  uint64_t handler(int vector) const override;
  void map_own(Vm &vm, uint64_t root) override;
};

}  // namespace farcall
