// One KVM virtual machine with one vCPU: memory slots, the guest kernel tables
// (GDT, IDT, TSS, page tables), and decoding of exits into farcall events.
#pragma once
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "flavor.h"
#include "kvm.h"
#include "memory.h"
#include "paging.h"
#include "pvm.h"
#include "vcpu.h"

namespace farcall {

struct Event {
  enum Kind {
    Syscall, Exception, GateReturn, GateCall, Timeout, Halt, Unexpected,
    GateWait, GateSyscall, GateNotify, GateCommit  // the PVM in-guest gate's exits (layout.h kPortGate*)
  } kind = Unexpected;
  int vector = -1;           // Exception
  uint64_t error_code = 0;   // Exception (when the vector has one)
  uint64_t rip = 0;          // Exception: faulting RIP
  uint64_t rsp = 0;          // Exception: RSP at the fault
  uint64_t cr2 = 0;          // #PF address
  std::string detail;        // Unexpected / Halt: what KVM said
  bool via_call = false;     // Syscall made by calling the trap page (return address on the stack)
};

// Saved vCPU state (a master's at its ready point); restored into forks.
struct CpuState {
  kvm_regs regs;
  kvm_sregs sregs;
  std::vector<uint8_t> xsave;  // raw struct kvm_xsave
  uint64_t kernel_gs_base = 0;  // pvm-native: the user's GS base while the guest kernel runs
};

struct VmConfig {
  uint64_t ram_bytes = 64ull << 20;
  uint64_t ram_va = 0;   // where RAM appears to the guest (request programs: 0; backends: layout::kBackendVa)
  uint64_t ram_gpa = 0;  // where it sits in guest-physical space
  EntryMode mode = EntryMode::TrapPage;
  bool dirty_log = false;  // track guest writes (forks)
  std::shared_ptr<GuestRegion> ram;  // RAM to use instead of a new one (a snapshot's, mapped from its file)
};

struct ExitStats {
  uint64_t syscalls = 0, exceptions = 0, gate = 0, io = 0, mmio = 0, internal = 0, other = 0,
           interrupted = 0;
};

class Vm {
 public:
  explicit Vm(const VmConfig &cfg);
  // A fork: a new VM whose memory is a copy-on-write view of `master`'s, starting from `state`.
  Vm(const Vm &master, const CpuState &state, bool dirty_log);
  ~Vm();
  Vm(const Vm &) = delete;
  Vm &operator=(const Vm &) = delete;

  Vcpu &vcpu() { return *vcpu_; }
  GuestRegion &ram() { return *ram_; }
  GuestRegion &kmem() { return *kmem_; }
  const std::shared_ptr<GuestRegion> &ram_ptr() const { return ram_; }
  uint64_t ram_bytes() const { return cfg_.ram_bytes; }
  EntryMode mode() const { return flavor_->mode(); }
  const EntryFlavor &flavor() const { return *flavor_; }
  const ExitStats &exit_stats() const { return stats_; }
  // PvmNative: system calls the guest kernel answered without a VM exit (0 in other modes).
  uint64_t inguest_syscalls() const;

  // RAM as the guest sees it; every guest pointer the VMM uses is checked through it.
  GuestView view() const { return GuestView{ram_.get(), cfg_.ram_va}; }
  uint8_t *user_ptr(uint64_t va, uint64_t len) { return view().ptr(va, len); }
  bool copy_to_user(uint64_t va, const void *src, uint64_t len) { return view().write(va, src, len); }
  bool copy_from_user(void *dst, uint64_t va, uint64_t len) { return view().read(dst, va, len); }

  // Backend instance memory made reachable from this VM: a memslot at `gpa` over `region`
  // (shared, never copy-on-write), and a second page-table root that maps everything the
  // main root maps plus [va, va + size) -> gpa. Returns the root. Forks inherit both.
  // `log`: the VM's writes to it are tracked (region_dirty), for per-call undo of backend writes.
  uint64_t attach_region(uint64_t va, uint64_t gpa, const std::shared_ptr<GuestRegion> &region, bool log);
  uint64_t root() const { return cr3_; }

  // PvmNative: the in-guest gate for trusted backends (pvm.h attach_gate): memslots for every
  // instance and every backend's lines, root pairs; this VM uses pair 0 until pvm_select().
  // Returns false (and changes nothing) if the VM is not PvmNative, has run, or the backends
  // do not fit.
  struct PvmGateBackend {
    pvm::GateBackend spec;
    std::vector<std::shared_ptr<GuestRegion>> instances;
    std::shared_ptr<GuestRegion> lines;
    bool log = false;  // track this VM's writes to the instances (per-call undo)
  };
  bool pvm_attach_gate(uint64_t caller_lo, uint64_t caller_hi, const std::vector<PvmGateBackend> &bs);
  bool pvm_gate() const { return !pvm_roots_.empty(); }
  // Before a fork first runs: its root pair, i.e. instance pair % count of each backend.
  void pvm_select(int pair);
  int pvm_pair() const { return pvm_pair_; }
  int pvm_pairs() const { return int(pvm_roots_.size()); }
  int pvm_instance(size_t backend) const { return pvm_pair_ % int(pvm_backends_.at(backend).instances.size()); }
  GuestRegion &pvm_scratch() { return *pvm_scratch_; }
  // This VM's value in instance lock words (unique in the process).
  uint64_t owner() const { return owner_; }

  // Runs the vCPU until an event that needs the VMM. deadline: absolute monotonic ns or 0.
  Event run(uint64_t deadline_ns);
  // Completes a system call: RAX = ret, back to user mode after the `syscall` instruction.
  void syscall_return(uint64_t ret);
  // Resumes user mode at the given place (after an exception the VMM handled).
  void resume_user(uint64_t rip, uint64_t rsp, uint64_t rflags);

  // Puts x87/SSE/AVX state into its initial state (after a far call that did not return).
  void reset_fpu();
  // Guest threads (threads.cpp). After a Timeout: whether the guest was at a user instruction
  // (user code lies below the gate region; stubs, the guest kernel and backends above it). And
  // the vCPU put where a system call leaves it (what the flavor does before a restore), so that
  // syscall_return() resumes any thread's saved state.
  bool in_user() const;
  void to_syscall_state() { flavor_->before_restore(*this); }
  // Pages of memslot `slot` written since tracking was last re-armed (forks), without re-arming.
  uint64_t dirty_count(int slot) {
    uint64_t n = 0;
    dirty_pages(slot, [&](uint64_t) { n++; }, false);
    return n;
  }
  CpuState save_state();
  // Puts back every piece of guest-reachable vCPU state (docs/architecture.md, "What a reset
  // restores"). Throws if an instruction the guest started cannot be finished.
  void restore_state(const CpuState &s);
  // Completes or cancels what the last exit left pending in KVM (an MMIO or port access in the
  // middle of an instruction), so that no register write of the VMM is overridden by it.
  // False if more than `max_pieces` accesses were still pending.
  bool settle(uint64_t max_pieces = 4096);
  // A master, after save_state(): fills the reset page from `st`, so that the forks' resets
  // restore the vector state and the user GS base there (native/kernel/reset.S). Forks made
  // afterwards inherit it. Without it (an XSAVE image too large), resets use ioctls.
  void arm_reset_page(const CpuState &st);

  // Dirty tracking of guest writes (KVM dirty log with manual protect). Calls fn(page) for
  // each page of `slot` written since tracking was last re-armed for it; with `rearm`, write-
  // protects those pages again so that the next write to them is seen (and faults).
  template <class F>
  void dirty_pages(int slot, F fn, bool rearm = true);
  // The pages of the attached region at `gpa` this VM wrote since tracking was last re-armed
  // for it (with `rearm`, now). Nothing if the region is not tracked here.
  template <class F>
  void region_dirty(uint64_t gpa, F fn, bool rearm) {
    for (auto &x : extra_)
      if (x.gpa == gpa && x.log) dirty_pages(x.slot, fn, rearm);
  }

 private:
  // Takes a retired VM from the stock (vmstock.h) when one waits; `fork`: this is a fork.
  void create_vm(bool fork);
  bool delete_slots();
  void abandon() noexcept;
  void add_slot(int slot, uint64_t gpa, GuestRegion &r, bool log);
  // A shared memslot over `region` at `gpa`, inherited by forks; none if one is there already.
  void add_extra(uint64_t gpa, const std::shared_ptr<GuestRegion> &region, bool log);
  void build_kernel();
  void setup_vcpu();
  Event exception_event(int vector);
  // PvmNative: falls back to the trap page before the first run (attach_region: the exit gate
  // has no PVM-native flavor).
  void fall_back_to_trap_page();
  void set_entry_msrs();
  void add_pvm_scratch();  // the pvm-native kernel's writable pages
  void set_msr(uint32_t index, uint64_t value);
  uint64_t get_msr(uint32_t index);
  bool unsettled_ = false;  // settle() gave up: something is still pending in KVM
  bool reset_page_ = false;  // arm_reset_page() filled it: restore_state() resumes there

  // The entry flavors set up and drive the vCPU through these members (flavor*.cpp).
  friend class IdtFlavor;
  friend class TrapPageFlavor;
  friend class OutStubFlavor;
  friend class PvmFlavor;
  VmConfig cfg_;
  std::unique_ptr<EntryFlavor> flavor_;
  int vm_fd_ = -1;
  std::shared_ptr<GuestRegion> ram_, kmem_;
  std::unique_ptr<Vcpu> vcpu_;
  std::unique_ptr<Vcpu> spare_vcpu_;  // a retired VM's vCPU, between create_vm() and setup_vcpu()
  std::unique_ptr<PageTables> pt_;
  uint64_t cr3_ = 0;  // page-table root (shared by a master and its forks)
  struct Extra {
    int slot;
    uint64_t gpa;
    std::shared_ptr<GuestRegion> region;
    bool log;
  };
  std::vector<Extra> extra_;
  int next_slot_ = 2;
  ExitStats stats_;
  kvm_segment user_cs_{}, user_ss_{}, kernel_cs_{}, kernel_ss_{};
  std::shared_ptr<GuestRegion> pvm_scratch_;  // pvm-native: the kernel's writable pages, own memslot, not dirty-logged
  int pvm_slot_ = -1;
  std::vector<uint64_t> pvm_roots_;  // in-guest gate: kernel root per pair
  struct PvmWindow {
    uint64_t va, bytes;
    std::vector<std::shared_ptr<GuestRegion>> instances;
  };
  std::vector<PvmWindow> pvm_backends_;
  int pvm_pair_ = -1;
  uint64_t owner_ = 0;
  bool ran_ = false;
  bool pvm_native_ = false;  // ran the pvm-native kernel (VmShell::pvm_native), here or before reuse
  std::vector<uint64_t> dirty_buf_;

 public:
  std::vector<uint64_t> &dirty_scratch() { return dirty_buf_; }
  int vm_fd() const { return vm_fd_; }
  uint64_t slot_pages(int slot) const {
    if (slot == 0) return ram_->size() / 4096;
    if (slot == 1) return kmem_->size() / 4096;
    for (auto &x : extra_)
      if (x.slot == slot) return x.region->size() / 4096;
    return 0;
  }
};

template <class F>
void Vm::dirty_pages(int slot, F fn, bool rearm) {
  uint64_t pages = slot_pages(slot);
  dirty_buf_.resize((pages + 63) / 64);  // KVM writes every word
  kvm_dirty_log log = {};
  log.slot = slot;
  log.dirty_bitmap = dirty_buf_.data();
  if (ioctl(vm_fd_, KVM_GET_DIRTY_LOG, &log) < 0) error__sys("KVM_GET_DIRTY_LOG");
  bool any = false;
  for (uint64_t w = 0; w < dirty_buf_.size(); w++) {
    uint64_t bits = dirty_buf_[w];
    if (!bits) continue;
    any = true;
    while (bits) {
      int b = __builtin_ctzll(bits);
      bits &= bits - 1;
      fn(w * 64 + b);
    }
  }
  if (!any || !rearm) return;
  kvm_clear_dirty_log clr = {};
  clr.slot = slot;
  clr.first_page = 0;
  clr.num_pages = (pages + 63) & ~uint64_t(63);
  if (clr.num_pages > pages) clr.num_pages = pages;
  clr.dirty_bitmap = dirty_buf_.data();
  if (ioctl(vm_fd_, KVM_CLEAR_DIRTY_LOG, &clr) < 0) error__sys("KVM_CLEAR_DIRTY_LOG");
}

}  // namespace farcall
