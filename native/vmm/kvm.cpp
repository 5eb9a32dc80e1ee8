#include "kvm.h"

#include <cpuid.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "error.h"
#include "kvm_abi.h"
#include "layout.h"

namespace farcall {

const char *kvm_flavor__name(KvmFlavor f) {
  switch (f) {
    case KvmFlavor::Pvm: return "pvm";
    case KvmFlavor::Hardware: return "hardware";
    default: return "unknown";
  }
}

const char *entry_mode__name(EntryMode m) {
  switch (m) {
    case EntryMode::TrapPage: return "trap-page";
    case EntryMode::OutStub: return "out-stub";
    case EntryMode::PvmNative: return "pvm-native";
  }
  return "unknown";
}

static bool path_exists(const char *p) { return access(p, F_OK) == 0; }

static KvmFlavor detect_flavor() {
  if (path_exists("/sys/module/kvm_pvm")) return KvmFlavor::Pvm;
  if (path_exists("/sys/module/kvm_intel") || path_exists("/sys/module/kvm_amd")) return KvmFlavor::Hardware;
  return KvmFlavor::Unknown;
}

// The CPU's physical address width (CPUID 0x80000008 EAX[7:0]): what the host kernel can map.
static unsigned host_phys_bits() {
  unsigned a = 0, b, c, d;
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000008 || !__get_cpuid(0x80000008, &a, &b, &c, &d)) return 36;
  return a & 0xff;
}

std::string Kvm::probe_problem() {
  if (host_phys_bits() < layout::kMinPhysBits)
    return "this CPU's physical address width is " + std::to_string(host_phys_bits()) + " bits; farcall's guest layout needs " +
           std::to_string(layout::kMinPhysBits);
  if (!path_exists("/dev/kvm"))
    return "/dev/kvm does not exist: load a KVM module (modprobe kvm_intel, kvm_amd or kvm_pvm) "
           "or run on a machine with virtualization enabled";
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == EACCES || e == EPERM)
      // Which group to join depends on the host (it may have none): farcall doctor works it out.
      return "/dev/kvm is not accessible to this user: `npx farcall doctor` tells which group may open it "
             "(or how to make one), or run as root";
    return std::string("cannot open /dev/kvm: ") + std::strerror(e);
  }
  int v = ioctl(fd, KVM_GET_API_VERSION, 0);
  close(fd);
  if (v != KVM_API_VERSION) return "unexpected KVM API version " + std::to_string(v);
  return "";
}

Kvm &Kvm::get() {
  static std::once_flag once;
  static std::unique_ptr<Kvm> inst;
  static std::string failure;
  std::call_once(once, [] {
    try {
      inst.reset(new Kvm());
    } catch (const VmmError &e) {
      failure = e.what();
    }
  });
  if (!inst) throw VmmError(ErrorCode::KvmUnavailable, failure);
  return *inst;
}

int Kvm::check(long cap) const { return ioctl(fd_, KVM_CHECK_EXTENSION, cap); }

Kvm::Kvm() {
  std::string problem = probe_problem();
  if (!problem.empty()) throw VmmError(ErrorCode::KvmUnavailable, problem);
  fd_ = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd_ < 0) error__sys("open /dev/kvm");
  caps_.api_version = ioctl(fd_, KVM_GET_API_VERSION, 0);
  caps_.sync_regs = (check(KVM_CAP_SYNC_REGS) & (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)) ==
                    (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS);
  caps_.manual_dirty_log = check(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0;
  caps_.xsave = check(KVM_CAP_XSAVE) > 0;
  caps_.xcrs = check(KVM_CAP_XCRS) > 0;
  caps_.immediate_exit = check(KVM_CAP_IMMEDIATE_EXIT) > 0;
  caps_.user_memory = check(KVM_CAP_USER_MEMORY) > 0;
  caps_.max_memslots = check(KVM_CAP_NR_MEMSLOTS);
  if (!caps_.user_memory || !caps_.immediate_exit)
    throw VmmError(ErrorCode::KvmUnavailable, "KVM lacks KVM_CAP_USER_MEMORY or KVM_CAP_IMMEDIATE_EXIT");
  flavor_ = detect_flavor();
  mmap_size_ = ioctl(fd_, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size_ <= 0) error__sys("KVM_GET_VCPU_MMAP_SIZE");

  KvmArray<kvm_cpuid_entry2> c(256);
  unsigned guest_phys_bits = 52;
  if (ioctl(fd_, farcall_ioc_get_supported_cpuid, c.ptr()) < 0) error__sys("KVM_GET_SUPPORTED_CPUID");
  for (uint32_t i = 0; i < c.count(); i++) {
    kvm_cpuid_entry2 e = c.entries()[i];
    if (e.function == 7 && e.index == 0) e.ebx |= 1u;  // FSGSBASE: accepted here once listed
    if (e.function == 0xd && e.index == 0) xcr0_ = (uint64_t(e.edx) << 32) | e.eax;
    if (e.function == 1) e.ecx |= (1u << 27);  // OSXSAVE mirrors CR4.OSXSAVE, which we set
    if (e.function == 0x80000008 && (e.eax & 0xff)) guest_phys_bits = e.eax & 0xff;
    cpuid_.push_back(e);
  }
  // Guest-physical addresses must be below both the host's width (memslots) and the guests' (their
  // page tables): backend memory is placed below the smaller (layout.h).
  phys_bits_ = std::min(host_phys_bits(), guest_phys_bits);
  // Keep the XSAVE state farcall resets to what it understands: x87, SSE, AVX, AVX-512.
  xcr0_ &= 0xe7;
  if (!(xcr0_ & 1)) xcr0_ = 3;
}


}  // namespace farcall
