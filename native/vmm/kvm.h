// The KVM system handle: /dev/kvm, capabilities, flavor. One per process.
#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

namespace farcall {

enum class KvmFlavor { Pvm, Hardware, Unknown };
const char *kvm_flavor__name(KvmFlavor f);

// How guest events (system calls, exceptions) reach the VMM.
//  - TrapPage: the handler addresses point at a page with no memslot; the fetch exits.
//    No guest kernel instruction runs. Fastest on PVM, where ring-0 code is emulated.
//  - OutStub: the handlers are one `out` instruction each in ring 0. Defined on every
//    KVM flavor; the portable path and the default on hardware KVM.
//  - PvmNative: kvm_pvm only (FARCALL_ENTRY=pvm-native). A small guest kernel (kernel/pvm.S)
//    enables PVM direct switching and answers host-free system calls in the guest with no
//    VM exit; the rest leave with one `out` from native guest supervisor mode. See docs/pvm.md.
enum class EntryMode { TrapPage, OutStub, PvmNative };
const char *entry_mode__name(EntryMode m);

struct KvmCaps {
  int api_version = 0;
  bool sync_regs = false;
  bool manual_dirty_log = false;
  bool xsave = false;
  bool xcrs = false;
  bool immediate_exit = false;
  bool user_memory = false;
  int max_memslots = 0;
};

class Kvm {
 public:
  // The process-wide handle; throws KvmUnavailable with the fix in the message.
  static Kvm &get();
  // Diagnose without throwing: empty string when usable, else what is wrong and how to fix it.
  static std::string probe_problem();

  int fd() const { return fd_; }
  const KvmCaps &caps() const { return caps_; }
  KvmFlavor flavor() const { return flavor_; }
  int vcpu_mmap_size() const { return mmap_size_; }
  // Supported CPUID, adjusted for farcall guests (see kvm.cpp).
  const std::vector<kvm_cpuid_entry2> &cpuid() const { return cpuid_; }
  uint64_t supported_xcr0() const { return xcr0_; }
  // Physical address width guest-physical addresses must stay below (CPUID 0x80000008).
  unsigned phys_bits() const { return phys_bits_; }
  int check(long cap) const;

 private:
  Kvm();
  int fd_ = -1;
  KvmCaps caps_;
  KvmFlavor flavor_ = KvmFlavor::Unknown;
  int mmap_size_ = 0;
  std::vector<kvm_cpuid_entry2> cpuid_;
  uint64_t xcr0_ = 3;
  unsigned phys_bits_ = 36;
};

}  // namespace farcall
