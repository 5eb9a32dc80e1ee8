// Retired VMs kept for reuse. KVM_CREATE_VM registers an MMU notifier on the process's mm, and
// the kernel walks and write-locks every mapping of the process to do it (mm_take_all_locks):
// with thousands of VMs present that one ioctl costs milliseconds and stalls every other thread
// touching memory. A VM retired cleanly keeps its vCPU and its kvm_run mapping, loses its
// memslots, and waits here; the next VM made takes it instead of asking KVM for one. Whatever
// the last guest left in the vCPU is overwritten by the new owner's setup (vm.cpp setup_vcpu).
#pragma once
#include <cstdint>
#include <memory>

namespace farcall {

class Vcpu;

// A KVM VM with no memory and its one vCPU.
struct VmShell {
  int vm_fd = -1;
  std::unique_ptr<Vcpu> vcpu;
  // It ran the pvm-native guest kernel, which switched on PVM's native mode with a write to a
  // guest-only MSR (pvm.h kMsrEnable): the host cannot switch it off again, so such a VM is
  // given only to another pvm-native fork (whose kernel writes the same value).
  bool pvm_native = false;
};

namespace vmstock {
// Takes a retired VM; false when none waits. `pvm_native_ok`: a VM that ran the pvm-native
// kernel will do (a pvm-native fork); masters never take one (they may fall back to the trap
// page before they run).
bool take(VmShell &out, bool pvm_native_ok);
// Keeps `s` for the next VM, or closes it when the stock is full.
void give(VmShell &&s);
// Counts a VM created by KVM_CREATE_VM (for stats()).
void created();
struct Stats {
  uint64_t max = 0;      // how many retired VMs are kept (FARCALL_VM_STOCK, default 64)
  uint64_t idle = 0;     // kept now
  uint64_t created = 0;  // VMs this process asked KVM for
  uint64_t reused = 0;   // VMs made from a retired one
};
Stats stats();
// Changes how many are kept; the surplus is closed at once. 0 turns reuse off.
void set_max(uint64_t max);
}  // namespace vmstock

}  // namespace farcall
