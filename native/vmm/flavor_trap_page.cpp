// The trap-page flavor (docs/entry.md, "On PVM: the trap page"): LSTAR, every IDT gate and the
// far-call return point into one page with no memory behind it, so each event is a failed
// instruction fetch at an address that names it. No guest kernel instruction ever runs.
#include "flavor_idt.h"
#include "layout.h"
#include "vm.h"

namespace farcall {
using namespace layout;

uint64_t TrapPageFlavor::syscall_entry() const { return kTrapVa + kTrapSyscall; }
uint64_t TrapPageFlavor::sdk_trap() const { return kTrapVa + kTrapSdkCall; }
uint64_t TrapPageFlavor::handler(int vector) const { return kTrapVa + kTrapVector + 8 * uint64_t(vector); }

void TrapPageFlavor::map_own(Vm &vm, uint64_t root) {
  // User-accessible: on PVM the `syscall` target is fetched at CPL 3, and a far call returns
  // to it from user mode. A user jump into it is told apart by CS (see exit.cpp).
  vm.pt_->map(kTrapVa, kTrapGpa, kPage, pte::G | pte::U, root);
  vm.pt_->map(kGateVa, kGateGpa, kGateRegionSize, pte::U, root);
}

}  // namespace farcall
