// The PVM-native flavor of the guest kernel (EntryMode::PvmNative): the VMM side.
//
// kvm_pvm runs guest supervisor code natively once the guest has written MSR 0x4b564d10 from
// emulated ring 0, and with the right flags in that write ("direct switching") a user `syscall`
// reaches MSR_LSTAR and `int $0x19` returns to user mode without any VM exit. farcall uses it
// for a small guest kernel (native/kernel/pvm.S) that answers host-free system calls in the
// guest and forwards the rest to the VMM with one `out`. docs/pvm.md has the whole story.
//
// Vm (vm.cpp) calls these at the points where the flavors differ; the guest-visible layout is
// in layout.h (kPvm*).
#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace farcall {

class GuestRegion;
class PageTables;
class Vcpu;

namespace pvm {

constexpr uint32_t kMsrEnable = 0x4b564d10;     // guest-writable only: vIF page GPA | flags
constexpr uint32_t kMsrSignature = 0x4b564d11;  // reads 0x4d5650 ("PVM")
constexpr uint32_t kMsrTscKhz = 0x4b564d13;     // TSC frequency in kHz
constexpr uint64_t kSignature = 0x4d5650;
// kpti (CR3 bit 12 pairs the roots) | GS preflip | direct syscall entry | int $0x19 | CR2 cell |
// int $0x17 | events from user mode delivered on the kernel root.
constexpr uint64_t kEnableFlags = 0x7f;

// Throws VmmError(KvmUnavailable) with the reason when this host cannot run the flavor.
void check_host();

// Guest-virtual addresses of the kernel's entry points.
uint64_t boot_va();     // first instruction of a fresh vCPU (emulated ring 0)
uint64_t syscall_va();  // MSR_LSTAR
uint64_t resume_va();   // where the VMM resumes a forwarded system call: `int $0x19`

// Copies the kernel into `kmem`, writes the IDT and both page-table roots (the kernel root is
// pt's first root; the user root is the next page). Returns the kernel root.
uint64_t build(GuestRegion &kmem, PageTables &pt, uint64_t ram_va, uint64_t ram_gpa, uint64_t ram_bytes);

// Once per master VM, after its vCPU exists: checks the PVM signature MSR and writes the enable
// value and the clock calibration (TSC kHz from MSR 0x4b564d13, realtime and monotonic bases)
// into the kernel's data page. Forks inherit the page.
void calibrate(int vcpu_fd, GuestRegion &kmem, uint64_t ram_va, uint64_t ram_bytes);

// Before the first KVM_RUN of a vCPU (a new VM or a fork): the vCPU has not enabled PVM yet,
// so it must start at boot_va() in ring 0. The state the owner put in the sync registers (a
// program's entry in user mode, or a saved state at resume_va()) is parked in the scratch page
// for the boot code, which returns to it with `int $0x19`.
void first_entry(Vcpu &cpu, GuestRegion &scratch, uint64_t kernel_root, const kvm_segment &kcs,
                 const kvm_segment &kss);

// Brings a vCPU that may be in guest user mode (stopped by a timeout, so its mode is unknown)
// into the guest kernel, where a saved state can be written into it: an external interrupt
// (KVM_INTERRUPT) is delivered through the IDT from user mode and its stub exits with `out`.
// The sync registers can not do it: kvm_pvm keeps its user/supervisor mode across
// KVM_SET_SREGS, so a kernel RIP written while it is in user mode is fetched as user code.
void enter_kernel(Vcpu &cpu);

// The in-guest far-call gate for trusted backends (docs/pvm.md, "The in-guest gate").
struct GateBackend {
  uint64_t trampoline = 0, fs_base = 0, gs_base = 0, stack_top = 0, call_info = 0;
  std::vector<uint64_t> entries;        // entry addresses
  std::vector<uint64_t> instance_gpas;  // its instances' memory
  uint64_t bytes = 0;                   // memory per instance
  uint64_t va = 0;                      // where it appears (its own window)
};
// False (nothing written) when the backends do not fit: more than kPvmMaxGateBackends, more
// than kGateEntries entries or more than kPvmGateStubBytes of stub pages in all.
bool gate_fits(const std::vector<GateBackend> &bs);
// Writes the gate configuration, the entry table and the user stub pages into the scratch
// region, maps the stubs at kGateVa in the user root, each backend's lines pages in the kernel
// root, and makes root pairs: pair p maps instance p % count of every backend at its window,
// as many pairs as the largest instance count; pair 0 is `kernel_root` itself. Returns the
// kernel roots, by pair.
std::vector<uint64_t> attach_gate(GuestRegion &scratch, PageTables &pt, uint64_t kernel_root, uint64_t caller_lo,
                                  uint64_t caller_hi, const std::vector<GateBackend> &bs);
// Which pair this VM uses (instance p % count of each backend), and its owner value in the lines.
void select_pair(GuestRegion &scratch, int pair, uint64_t owner, const std::vector<int> &instance_counts);

// The current in-guest call of a VM, as the guest kernel recorded it.
struct GateCall {
  bool active = false;  // inside the backend (or entering/leaving it) with the instance taken
  int backend = -1;     // the VM's backend index (set before the instance is taken)
  int entry = -1;
  uint64_t ret_rip = 0, rflags = 0, rsp = 0, fs = 0, kernel_gs = 0, tsc0 = 0;
  uint64_t saved[6] = {};  // RBX RBP R12-R15
};
GateCall current_call(const GuestRegion &scratch);
void clear_call(GuestRegion &scratch);
void set_notify(GuestRegion &scratch, uint64_t backend_mask);
// Bit b: the guest kernel exits at the end of each call of backend b, before it unlocks the
// instance, so the VMM can commit what the call wrote (Durability::Call).
void set_commit(GuestRegion &scratch, uint64_t backend_mask);
// Nanoseconds since the guest TSC value `tsc` (the kernel's calibration).
uint64_t ns_since_tsc(const GuestRegion &kmem, uint64_t tsc);

// System calls the guest kernel answered without an exit, since the VM (or fork) was created.
uint64_t inguest_calls(const GuestRegion &scratch);
// CR2 of the last guest #PF (the hypervisor's CR2 cell in the vIF page).
uint64_t last_cr2(const GuestRegion &scratch);

}  // namespace pvm
}  // namespace farcall
