#include "pvm.h"

#include <pthread.h>
#include <sys/ioctl.h>
#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "error.h"
#include "kvm.h"
#include "kvm_abi.h"
#include "layout.h"
#include "memory.h"
#include "paging.h"
#include "vcpu.h"

extern "C" const uint8_t farcall_pvm_kernel[], farcall_pvm_kernel_end[];
extern "C" const uint8_t farcall_pvm_boot[], farcall_pvm_syscall[], farcall_pvm_resume[], farcall_pvm_vectors[];

namespace farcall::pvm {
using namespace layout;

namespace {
uint64_t code_va(const uint8_t *sym) { return kKernelVa + kPvmCodeOff + uint64_t(sym - farcall_pvm_kernel); }

void put64(GuestRegion &r, uint64_t off, uint64_t v) { std::memcpy(r.host() + off, &v, 8); }
uint64_t get64(const GuestRegion &r, uint64_t off) {
  uint64_t v;
  std::memcpy(&v, r.host() + off, 8);
  return v;
}

bool get_msr(int fd, uint32_t index, uint64_t *value) {
  KvmArray<kvm_msr_entry> m(1);
  m.entries()[0] = kvm_msr_entry{index, 0, 0};
  if (ioctl(fd, farcall_ioc_get_msrs, m.ptr()) != 1) return false;
  *value = m.entries()[0].data;
  return true;
}

uint64_t clock_ns(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}
}  // namespace

void check_host() {
  Kvm &kvm = Kvm::get();
  if (kvm.flavor() != KvmFlavor::Pvm)
    throw VmmError(ErrorCode::KvmUnavailable,
                   std::string("FARCALL_ENTRY=pvm-native needs the kvm_pvm module (/sys/module/kvm_pvm); this "
                               "host's KVM is ") +
                       kvm_flavor__name(kvm.flavor()) + ": use FARCALL_ENTRY=trap-page or out-stub");
}

uint64_t boot_va() { return code_va(farcall_pvm_boot); }
uint64_t syscall_va() { return code_va(farcall_pvm_syscall); }
uint64_t resume_va() { return code_va(farcall_pvm_resume); }

uint64_t build(GuestRegion &kmem, PageTables &pt, uint64_t ram_va, uint64_t ram_gpa, uint64_t ram_bytes) {
  size_t len = farcall_pvm_kernel_end - farcall_pvm_kernel;
  if (len > kPvmCodeMax) throw VmmError(ErrorCode::Internal, "the PVM guest kernel is larger than its area");
  uint8_t *k = kmem.host();
  std::memcpy(k + kPvmCodeOff, farcall_pvm_kernel, len);

  // IDT: vector v < 32 -> its own `out`; every other vector -> the spurious one. int3/into are
  // reachable from user mode as on Linux; everything else (including the PVM instruction vectors
  // 0x17/0x19/0x1a/0x1b) is DPL 0, so a user `int n` is a #GP.
  uint64_t vectors = code_va(farcall_pvm_vectors);
  for (int v = 0; v < 256; v++) {
    uint64_t h = vectors + 8 * uint64_t(v < 32 ? v : 32);
    uint8_t ist = (v == 2 || v == 8 || v == 18) ? 1 : 0;
    uint8_t dpl = (v == 3 || v == 4) ? 3 : 0;
    uint64_t lo = (h & 0xffff) | (uint64_t(kKernelCs) << 16) | (uint64_t(ist) << 32) |
                  (uint64_t(0x8e | (dpl << 5)) << 40) | (((h >> 16) & 0xffff) << 48);
    uint64_t hi = h >> 32;
    std::memcpy(k + kIdtOff + 16 * v, &lo, 8);
    std::memcpy(k + kIdtOff + 16 * v + 8, &hi, 8);
  }

  // The pair of roots: kernel root K (bit 12 clear), user root K + 0x1000.
  uint64_t kroot = pt.root_gpa(), uroot = pt.add_root();
  if ((kroot & 0x1000) || uroot != kroot + 0x1000)
    throw VmmError(ErrorCode::Internal, "PVM page-table roots are not a (K, K|0x1000) pair");
  // Kernel root: user RAM, the kernel region and its scratch memslot, all U=1
  // (supervisor code runs at hardware CPL 3 under PVM; a U=0 page livelocks the vCPU).
  pt.map_user_ram(ram_va, ram_gpa, ram_bytes, kroot);
  pt.map(kKernelVa, kKernelGpa, kPageTableOff, pte::W | pte::U, kroot);
  pt.map(kPvmScratchVa, kPvmScratchGpa, kPvmScratchSize, pte::W | pte::U, kroot);
  // User root: the same lower half (shared tables) and nothing above. kvm_pvm keeps the upper
  // half to guest supervisor mode anyway: a user access there is a not-present #PF even where
  // the user root maps a page with U=1 (tried), so user mode sees no kernel page at all.
  for (unsigned slot = 0; slot < 256; slot++) pt.share_slot(uroot, kroot, slot);
  return kroot;
}

void calibrate(int vcpu_fd, GuestRegion &kmem, uint64_t ram_va, uint64_t ram_bytes) {
  uint64_t sig = 0, khz = 0;
  if (!get_msr(vcpu_fd, kMsrSignature, &sig) || (sig & 0xffffff) != kSignature)
    throw VmmError(ErrorCode::KvmUnavailable,
                   "FARCALL_ENTRY=pvm-native: this kvm_pvm does not answer the PVM signature MSR 0x4b564d11; "
                   "use FARCALL_ENTRY=trap-page");
  if (!get_msr(vcpu_fd, kMsrTscKhz, &khz) || khz < 100000 || khz > 20000000) {
    // No frequency from the hypervisor: measure it against CLOCK_MONOTONIC_RAW for 20 ms.
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC_RAW), c0 = __rdtsc();
    timespec d = {0, 20000000};
    nanosleep(&d, nullptr);
    uint64_t t1 = clock_ns(CLOCK_MONOTONIC_RAW), c1 = __rdtsc();
    khz = (c1 - c0) * 1000000ull / (t1 - t0);
  }
  // Guest rdtsc under PVM is the host's TSC (the guest runs at hardware CPL 3, no offset), so the
  // base instant is taken here: both clocks bracketed by two TSC reads.
  uint64_t c0 = __rdtsc();
  uint64_t mono = clock_ns(CLOCK_MONOTONIC), rt = clock_ns(CLOCK_REALTIME);
  uint64_t c1 = __rdtsc();
  uint64_t d = kPvmDataOff;
  put64(kmem, d + kPvmDEnable, (kPvmScratchGpa + kPvmVifOff) | kEnableFlags);
  put64(kmem, d + kPvmDTsc, c0 + (c1 - c0) / 2);
  put64(kmem, d + kPvmDMult, ((1000000ull << 32) + khz / 2) / khz);
  put64(kmem, d + kPvmDMono, mono);
  put64(kmem, d + kPvmDRt, rt);
  put64(kmem, d + kPvmDUserLo, ram_va == 0 ? kPage : ram_va);
  put64(kmem, d + kPvmDUserHi, ram_va + ram_bytes - 16);
  put64(kmem, d + kPvmDNs, 1000000000ull);
  put64(kmem, d + kPvmDThousand, 1000);
  put64(kmem, d + kPvmDRtMask, (1ull << CLOCK_REALTIME) | (1ull << CLOCK_REALTIME_COARSE));
}

void first_entry(Vcpu &cpu, GuestRegion &scratch, uint64_t kernel_root, const kvm_segment &kcs,
                 const kvm_segment &kss) {
  kvm_regs &r = cpu.regs();
  if (r.rip < kKernelVa) {
    // A program's entry in user mode (Process set RIP/RSP/RFLAGS): enter it like a SYSRET.
    r.rcx = r.rip;
    r.r11 = (r.rflags & 0x3c0fd5) | 0x202;
  }
  uint64_t v = kPvmVarsOff;
  put64(scratch, v + kPvmVRax, r.rax);
  put64(scratch, v + kPvmVRcx, r.rcx);
  put64(scratch, v + kPvmVRdx, r.rdx);
  put64(scratch, v + kPvmVRsp, r.rsp);
  r.rip = boot_va();
  r.rsp = kPvmScratchVa + kPvmBootStackTop;
  r.rflags = 2;
  cpu.regs_dirty();
  kvm_sregs &s = cpu.sregs();
  s.cs = kcs;
  s.ss = kss;
  s.cr3 = kernel_root;
  cpu.sregs_dirty();
}

void enter_kernel(Vcpu &cpu) {
  kvm_interrupt irq = {};
  irq.irq = 0x20;  // the first non-exception vector: the kernel's catch-all stub (port 0xdf)
  if (ioctl(cpu.fd(), KVM_INTERRUPT, &irq) < 0) error__sys("KVM_INTERRUPT");
  uint64_t deadline = Vcpu::now_ns() + 1000000000ull;
  bool kicked = false, in_kernel = false;
  std::string what;
  watchdog::Armed armed(cpu, deadline);
  for (int i = 0; i < 16 && !in_kernel; i++) {
    if (cpu.run(deadline) == Vcpu::RunResult::Timeout) {
      what = "no exit within 1 s";
      break;
    }
    kvm_run *run = cpu.run_struct();
    if (run->exit_reason == KVM_EXIT_INTR) continue;
    if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT) {
      what = "exit " + std::to_string(run->exit_reason);
      break;
    }
    uint16_t port = run->io.port;
    kicked = port == kPortSpurious;
    // Any of the kernel's own exits means supervisor mode: the kick, a forwarded system call
    // or an exception the program raised just before it.
    in_kernel = kicked || port == kPortSyscall || (port >= kPvmPortVector && port < kPvmPortVector + 32);
    if (!in_kernel) what = "port " + std::to_string(port);
  }
  if (!in_kernel) throw VmmError(ErrorCode::Internal, "could not bring the PVM vCPU back into its guest kernel: " + what);
  if (!kicked) {  // the interrupt is still queued: drop it so it does not reach the restored program
    kvm_vcpu_events ev = {};
    if (ioctl(cpu.fd(), KVM_GET_VCPU_EVENTS, &ev) < 0) error__sys("KVM_GET_VCPU_EVENTS");
    ev.interrupt.injected = 0;
    ev.flags = 0;
    if (ioctl(cpu.fd(), KVM_SET_VCPU_EVENTS, &ev) < 0) error__sys("KVM_SET_VCPU_EVENTS");
  }
}

bool gate_fits(const std::vector<GateBackend> &bs) {
  uint64_t entries = 0, stubs = 0;
  for (auto &g : bs) {
    if (g.entries.empty() || g.instance_gpas.empty()) return false;
    entries += g.entries.size();
    stubs += (g.entries.size() * 16 + kPage - 1) & ~(kPage - 1);
  }
  return !bs.empty() && bs.size() <= kPvmMaxGateBackends && entries <= kGateEntries && stubs <= kPvmGateStubBytes;
}

std::vector<uint64_t> attach_gate(GuestRegion &scratch, PageTables &pt, uint64_t kernel_root, uint64_t caller_lo,
                                  uint64_t caller_hi, const std::vector<GateBackend> &bs) {
  if (!gate_fits(bs)) throw VmmError(ErrorCode::Internal, "in-guest gate: the backends do not fit");
  uint64_t user_root = kernel_root + 0x1000, c = kPvmGateOff;
  put64(scratch, c + kPvmGBackends, bs.size());
  put64(scratch, c + kPvmGCallerLo, caller_lo);
  put64(scratch, c + kPvmGCallerHi, caller_hi);
  put64(scratch, c + kPvmGStubLo, kGateVa);
  put64(scratch, c + kPvmGStubHi, kGateVa + bs.size() * kGateStride);
  uint64_t table = 0, stub_off = kPvmGateStubOff;
  size_t pairs = 0;
  std::vector<unsigned> backend_slots;  // PML4 slots that hold backend windows: per pair
  for (size_t b = 0; b < bs.size(); b++) {
    const GateBackend &g = bs[b];
    uint64_t blk = c + kPvmGBlockOff + 64 * b, n = g.entries.size();
    put64(scratch, blk + kPvmBN, n);
    put64(scratch, blk + kPvmBTramp, g.trampoline);
    put64(scratch, blk + kPvmBFs, g.fs_base);
    put64(scratch, blk + kPvmBGs, g.gs_base);
    put64(scratch, blk + kPvmBStack, g.stack_top);
    put64(scratch, blk + kPvmBInfo, g.call_info);
    put64(scratch, blk + kPvmBTableBase, table);
    // Stubs: everything in the pages that is not an entry's code is ud2, so a jump there faults.
    uint64_t stub_bytes = (n * 16 + kPage - 1) & ~(kPage - 1);
    for (uint64_t o = 0; o < stub_bytes; o += 2) {
      scratch.host()[stub_off + o] = 0x0f;
      scratch.host()[stub_off + o + 1] = 0x0b;
    }
    for (uint64_t e = 0; e < n; e++) {
      put64(scratch, kPvmGateTableOff + 8 * (table + e), g.entries[e]);
      // mov %rcx,%r10; mov $imm32,%eax; syscall; ret (the caller's RCX, its 4th argument,
      // survives in R10, as for a Linux system call)
      uint8_t stub[11] = {0x49, 0x89, 0xca, 0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0xc3};
      uint32_t nr = uint32_t(kPvmGateSys + (b << 12) + e);
      std::memcpy(stub + 4, &nr, 4);
      std::memcpy(scratch.host() + stub_off + 16 * e, stub, sizeof stub);
    }
    pt.map(kGateVa + b * kGateStride, kPvmScratchGpa + stub_off, stub_bytes, pte::U, user_root);  // read-only, executable
    pt.map(kPvmLockVa + b * kPvmLinesBytes, kPvmLockGpa + b * kPvmLinesBytes, kPvmLinesBytes, pte::W | pte::U, kernel_root);
    table += n;
    stub_off += stub_bytes;
    pairs = std::max(pairs, g.instance_gpas.size());
    unsigned slot = unsigned(g.va >> 39);
    if (std::find(backend_slots.begin(), backend_slots.end(), slot) == backend_slots.end()) backend_slots.push_back(slot);
  }
  std::vector<uint64_t> roots;
  for (size_t p = 0; p < pairs; p++) {
    uint64_t k = kernel_root;
    if (p > 0) {
      k = pt.add_root_pair();
      for (unsigned s = 0; s < 512; s++) {
        if (std::find(backend_slots.begin(), backend_slots.end(), s) == backend_slots.end()) pt.share_slot(k, kernel_root, s);
        pt.share_slot(k + 0x1000, user_root, s);
      }
    }
    for (auto &g : bs) pt.map(g.va, g.instance_gpas[p % g.instance_gpas.size()], g.bytes, pte::W | pte::U, k);
    roots.push_back(k);
  }
  return roots;
}

void select_pair(GuestRegion &scratch, int pair, uint64_t owner, const std::vector<int> &instance_counts) {
  for (size_t b = 0; b < instance_counts.size(); b++) {
    uint64_t inst = uint64_t(pair % instance_counts[b]);
    put64(scratch, kPvmVarsOff + kPvmVInsts + 8 * b, inst);
    put64(scratch, kPvmVarsOff + kPvmVLines + 8 * b, kPvmLockVa + b * kPvmLinesBytes + 64 * inst);
  }
  put64(scratch, kPvmVarsOff + kPvmVOwner, owner);
  put64(scratch, kPvmVarsOff + kPvmVInCall, 0);
}

GateCall current_call(const GuestRegion &scratch) {
  GateCall c;
  uint64_t v = kPvmVarsOff;
  c.active = get64(scratch, v + kPvmVInCall) != 0;
  c.backend = int(get64(scratch, v + kPvmVBackend));
  c.entry = int(get64(scratch, v + kPvmVEntry));
  c.ret_rip = get64(scratch, v + kPvmVUrip);
  c.rflags = get64(scratch, v + kPvmVUrfl);
  c.rsp = get64(scratch, v + kPvmVUrsp);
  c.fs = get64(scratch, v + kPvmVUfs);
  c.kernel_gs = get64(scratch, v + kPvmVKgs);
  c.tsc0 = get64(scratch, v + kPvmVT0);
  for (int i = 0; i < 6; i++) c.saved[i] = get64(scratch, v + kPvmVSaved + 8 * i);
  return c;
}

void clear_call(GuestRegion &scratch) { put64(scratch, kPvmVarsOff + kPvmVInCall, 0); }
void set_notify(GuestRegion &scratch, uint64_t backend_mask) { put64(scratch, kPvmVarsOff + kPvmVNotify, backend_mask); }
void set_commit(GuestRegion &scratch, uint64_t backend_mask) { put64(scratch, kPvmVarsOff + kPvmVCommit, backend_mask); }

uint64_t ns_since_tsc(const GuestRegion &kmem, uint64_t tsc) {
  uint64_t now = __rdtsc();
  if (now <= tsc) return 0;
  return uint64_t((unsigned __int128)(now - tsc) * get64(kmem, kPvmDataOff + kPvmDMult) >> 32);
}

uint64_t inguest_calls(const GuestRegion &scratch) { return get64(scratch, kPvmVarsOff + kPvmVCount); }
uint64_t last_cr2(const GuestRegion &scratch) { return get64(scratch, kPvmVifOff + 8); }

}  // namespace farcall::pvm
