// The out-stub flavor (docs/entry.md, hardware KVM): a one-page ring-0 kernel
// (native/kernel/stubs.S) whose entry points each do one `out` to a port that names the event.
// A far call's return is a fetch from the (unmapped) trap page: a #PF, one exit.
#include <cstring>

#include "error.h"
#include "flavor_idt.h"
#include "layout.h"
#include "vm.h"

extern "C" const uint8_t farcall_kernel_stubs[];
extern "C" const uint8_t farcall_kernel_stubs_end[];

namespace farcall {
using namespace layout;

OutStubFlavor::OutStubFlavor() {
  // Under kvm_pvm `syscall` does not raise the CPL, so the stub's supervisor-only system-call
  // entry cannot even be fetched: every program would die at its first system call.
  if (Kvm::get().flavor() == KvmFlavor::Pvm)
    throw VmmError(ErrorCode::KvmUnavailable,
                   "FARCALL_ENTRY=out-stub needs hardware KVM: under kvm_pvm a system call reaches its "
                   "handler at CPL 3 and cannot enter the ring-0 stub; use trap-page or pvm-native here");
}

uint64_t OutStubFlavor::syscall_entry() const { return kKernelVa + kStubOff + kTrapSyscall; }
// Exceptions 0-31 have a stub each; every other vector shares one.
uint64_t OutStubFlavor::handler(int vector) const {
  return kKernelVa + kStubOff + kTrapVector + 8 * uint64_t(vector < 32 ? vector : 32);
}

void OutStubFlavor::map_own(Vm &vm, uint64_t) {
  std::memcpy(vm.kmem_->host() + kStubOff, farcall_kernel_stubs, size_t(farcall_kernel_stubs_end - farcall_kernel_stubs));
}

bool OutStubFlavor::page_fault(Vm &, Event &ev) {
  // On hardware KVM a user fetch from memory without a memslot is not an exit but a #UD, so the
  // far-call return trap is this #PF at the trap page (one exit, as with `out`).
  if (ev.cr2 == kTrapVa + kTrapGateReturn && ev.rip == ev.cr2) {
    Event g;
    g.kind = Event::GateReturn;
    g.rip = ev.rip;
    ev = g;
    return true;
  }
  return flavor__trap_jump(ev);
}

}  // namespace farcall
