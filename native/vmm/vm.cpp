#include "vm.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "error.h"
#include "exit.h"
#include "kvm_abi.h"
#include "layout.h"
#include "pvm.h"
#include "vmstock.h"

extern "C" const uint8_t farcall_reset_page[];

namespace farcall {
using namespace layout;

namespace {
std::atomic<uint64_t> g_next_owner{1};
constexpr uint64_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrCstar = 0xc0000083,
                   kMsrSfmask = 0xc0000084, kMsrKernelGsBase = 0xc0000102;

bool vector_has_error_code(int v) {
  return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

kvm_segment seg(uint16_t sel, uint8_t type, uint8_t dpl, bool code) {
  kvm_segment s = {};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = sel;
  s.type = type;
  s.present = 1;
  s.dpl = dpl;
  s.db = code ? 0 : 1;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}
}  // namespace

Vm::Vm(const VmConfig &cfg) : cfg_(cfg), owner_(g_next_owner++) {
  if (cfg_.ram_bytes < (4u << 20) || cfg_.ram_bytes > kMaxUserRam || cfg_.ram_bytes % kHugePage)
    throw VmmError(ErrorCode::BadState, "guest memory must be a multiple of 2 MiB between 4 MiB and 64 GiB");
  flavor_ = EntryFlavor::make(cfg_.mode);  // refuses a flavor this host cannot run
  create_vm(false);
  try {
    ram_ = cfg_.ram ? std::move(cfg_.ram) : GuestRegion::create(cfg_.ram_bytes, "farcall-ram");
    if (ram_->size() != cfg_.ram_bytes) throw VmmError(ErrorCode::Internal, "guest RAM region of the wrong size");
    kmem_ = GuestRegion::create(kKernelSize, "farcall-kernel");
    add_slot(0, cfg_.ram_gpa, *ram_, cfg_.dirty_log);
    add_slot(1, kKernelGpa, *kmem_, cfg_.dirty_log);
    build_kernel();
    setup_vcpu();
  } catch (...) {
    abandon();
    throw;
  }
}

Vm::Vm(const Vm &master, const CpuState &state, bool dirty_log)
    : cfg_(master.cfg_), flavor_(master.flavor_->fork()), owner_(g_next_owner++) {
  cfg_.dirty_log = dirty_log;
  reset_page_ = master.reset_page_;
  cr3_ = master.cr3_;
  pvm_roots_ = master.pvm_roots_;
  pvm_backends_ = master.pvm_backends_;
  create_vm(true);
  try {
    ram_ = GuestRegion::fork_of(master.ram_);
    kmem_ = GuestRegion::fork_of(master.kmem_);
    add_slot(0, cfg_.ram_gpa, *ram_, dirty_log);
    add_slot(1, kKernelGpa, *kmem_, dirty_log);
    extra_ = master.extra_;
    next_slot_ = master.next_slot_;
    for (auto &x : extra_) add_slot(x.slot, x.gpa, *x.region, x.log);
    if (master.pvm_scratch_) {
      pvm_scratch_ = GuestRegion::fork_of(master.pvm_scratch_);
      pvm_slot_ = master.pvm_slot_;
      add_slot(pvm_slot_, kPvmScratchGpa, *pvm_scratch_, false);
    }
    setup_vcpu();
    restore_state(state);
    if (pvm_gate()) pvm_select(master.pvm_pair_);  // this VM's owner value; Fork may pick another pair
  } catch (...) {
    abandon();
    throw;
  }
}

void Vm::abandon() noexcept {
  // A constructor failed after create_vm(): no destructor runs, so nothing may stay open.
  vcpu_.reset();
  spare_vcpu_.reset();
  close(vm_fd_);
  vm_fd_ = -1;
}

Vm::~Vm() {
  if (vm_fd_ < 0) return;
  // A VM whose last instruction is settled goes back to the stock without its memory; one with
  // something still pending in KVM, or a memslot KVM would not delete, is closed. Settling
  // completes what the last exit (e.g. the response's port write) left for the next KVM_RUN,
  // so the next tenant's first run starts with nothing of this one's pending.
  if (vcpu_ && !unsettled_ && vmstock::stats().max > 0 && settle() && delete_slots()) {
    vmstock::give(VmShell{vm_fd_, std::move(vcpu_), pvm_native_});
    return;
  }
  vcpu_.reset();
  close(vm_fd_);
}

bool Vm::delete_slots() {
  std::vector<int> slots = {0, 1};
  for (auto &x : extra_) slots.push_back(x.slot);
  if (pvm_slot_ >= 0) slots.push_back(pvm_slot_);
  for (int slot : slots) {
    kvm_userspace_memory_region m = {};
    m.slot = uint32_t(slot);
    if (ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &m) < 0) return false;
  }
  return true;
}

void Vm::create_vm(bool fork) {
  Kvm &kvm = Kvm::get();
  VmShell shell;
  if (vmstock::take(shell, fork && flavor_->mode() == EntryMode::PvmNative)) {
    vm_fd_ = shell.vm_fd;
    spare_vcpu_ = std::move(shell.vcpu);
    pvm_native_ = shell.pvm_native;
    return;  // its dirty-log mode was set when it was created
  }
  vm_fd_ = ioctl(kvm.fd(), KVM_CREATE_VM, 0);
  if (vm_fd_ < 0) error__sys("KVM_CREATE_VM");
  vmstock::created();
  // Manual protection everywhere: forks track their RAM, and every VM that calls a backend with
  // per-call undo tracks its writes to the instances; both read and re-arm the log in two steps.
  if (cfg_.dirty_log || kvm.caps().manual_dirty_log) {
    if (!kvm.caps().manual_dirty_log)
      throw VmmError(ErrorCode::KvmUnavailable, "KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (needed for forks)");
    kvm_enable_cap cap = {};
    cap.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2;
    cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
    if (ioctl(vm_fd_, KVM_ENABLE_CAP, &cap) < 0) error__sys("KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)");
  }
}

void Vm::add_slot(int slot, uint64_t gpa, GuestRegion &r, bool log) {
  kvm_userspace_memory_region m = {};
  m.slot = slot;
  m.flags = log ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  m.guest_phys_addr = gpa;
  m.memory_size = r.size();
  m.userspace_addr = reinterpret_cast<uint64_t>(r.host());
  if (ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &m) < 0) error__sys("KVM_SET_USER_MEMORY_REGION");
}

void Vm::build_kernel() {
  uint8_t *k = kmem_->host();
  // GDT: null, kernel code, kernel data, user data, user code, TSS (two slots).
  uint64_t *gdt = reinterpret_cast<uint64_t *>(k + kGdtOff);
  gdt[1] = 0x00af9b000000ffffull;
  gdt[2] = 0x00cf93000000ffffull;
  gdt[3] = 0x00cff3000000ffffull;
  gdt[4] = 0x00affb000000ffffull;
  uint64_t tss = kKernelVa + kTssOff;
  gdt[5] = 0x67 | ((tss & 0xffffff) << 16) | (0x8bull << 40) | (((tss >> 24) & 0xff) << 56);
  gdt[6] = tss >> 32;
  // TSS: RSP0 for events from user mode, IST1 for the vectors that must never reuse it.
  uint8_t *t = k + kTssOff;
  uint64_t rsp0 = kKernelVa + kStackTop, ist1 = kKernelVa + kIstTop;
  std::memcpy(t + 4, &rsp0, 8);
  std::memcpy(t + 0x24, &ist1, 8);
  uint16_t iomap = 0x68;
  std::memcpy(t + 0x66, &iomap, 2);
  cr3_ = flavor_->build_kernel(*this);
  std::memcpy(k + kResetOff, farcall_reset_page, kPage);  // its thread-resume code (threads.cpp)
}

bool Vm::in_user() const { return vcpu_->regs().rip < kGateVa; }

void Vm::add_pvm_scratch() {
  pvm_scratch_ = GuestRegion::create(kPvmScratchSize, "farcall-pvm");
  pvm_slot_ = next_slot_++;
  add_slot(pvm_slot_, kPvmScratchGpa, *pvm_scratch_, false);
}

void Vm::setup_vcpu() {
  Kvm &kvm = Kvm::get();
  bool reused = spare_vcpu_ != nullptr;
  vcpu_ = reused ? std::move(spare_vcpu_) : std::make_unique<Vcpu>(vm_fd_, 0);
  int fd = vcpu_->fd();

  if (!reused) {  // a reused vCPU has this CPUID already (KVM refuses to change it after a run)
    const auto &entries = kvm.cpuid();
    KvmArray<kvm_cpuid_entry2> c(entries.size());
    std::memcpy(c.entries(), entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
    if (ioctl(fd, farcall_ioc_set_cpuid2, c.ptr()) < 0) error__sys("KVM_SET_CPUID2");
  }

  kvm_sregs s;
  if (ioctl(fd, KVM_GET_SREGS, &s) < 0) error__sys("KVM_GET_SREGS");
  s.cr0 = 0x80050033;  // PG AM WP NE ET MP PE
  s.cr4 = 0x20 | 0x200 | 0x400 | 0x10000 | 0x40000;  // PAE OSFXSR OSXMMEXCPT FSGSBASE OSXSAVE
  s.efer = 0x100 | 0x400 | 0x800 | 0x1;             // LME LMA NXE SCE
  s.cr3 = cr3_;
  user_cs_ = seg(kUserCs, 11, 3, true);
  user_ss_ = seg(kUserDs, 3, 3, false);
  kernel_cs_ = seg(kKernelCs, 11, 0, true);
  kernel_ss_ = seg(kKernelDs, 3, 0, false);
  s.cs = user_cs_;
  s.ss = s.ds = s.es = s.fs = s.gs = user_ss_;
  if (flavor_->starts_in_kernel()) {  // a PVM vCPU starts in (emulated) ring 0
    s.cs = kernel_cs_;
    s.ss = kernel_ss_;
  }
  s.tr = {};
  s.tr.base = kKernelVa + kTssOff;
  s.tr.limit = 0x67;
  s.tr.selector = kTssSel;
  s.tr.type = 11;
  s.tr.present = 1;
  s.ldt = {};
  s.ldt.unusable = 1;
  s.ldt.type = 2;
  s.gdt.base = kKernelVa + kGdtOff;
  s.gdt.limit = 7 * 8 - 1;
  s.idt.base = kKernelVa + kIdtOff;
  s.idt.limit = 256 * 16 - 1;
  if (ioctl(fd, KVM_SET_SREGS, &s) < 0) error__sys("KVM_SET_SREGS");

  set_entry_msrs();
  flavor_->vcpu_ready(*this);

  if (kvm.caps().xcrs) {
    kvm_xcrs x = {};
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = kvm.supported_xcr0();
    if (ioctl(fd, KVM_SET_XCRS, &x) < 0) error__sys("KVM_SET_XCRS");
  }
  kvm_regs r = {};
  r.rflags = 2;
  if (ioctl(fd, KVM_SET_REGS, &r) < 0) error__sys("KVM_SET_REGS");
  if (reused) {
    // What a fresh vCPU has and the setup above does not set: the initial vector state (a
    // master runs from its entry point with whatever is there; a fork's reset page restores its
    // own) and no pending event.
    reset_fpu();
    kvm_vcpu_events ev = {};
    if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0) error__sys("KVM_SET_VCPU_EVENTS");
    vcpu_->recycled();
  }
  vcpu_->pull();
}

void Vm::set_entry_msrs() {
  uint64_t entry = flavor_->syscall_entry();
  const uint64_t vals[][2] = {{kMsrStar, (uint64_t(kKernelDs) << 48) | (uint64_t(kKernelCs) << 32)},
                              {kMsrLstar, entry},
                              {kMsrCstar, entry},
                              {kMsrSfmask, 0x47700},
                              {kMsrKernelGsBase, 0}};
  constexpr int kMsrCount = sizeof(vals) / sizeof(vals[0]);
  KvmArray<kvm_msr_entry> msrs(kMsrCount);
  for (int i = 0; i < kMsrCount; i++) msrs.entries()[i] = kvm_msr_entry{uint32_t(vals[i][0]), 0, vals[i][1]};
  int nset = ioctl(vcpu_->fd(), farcall_ioc_set_msrs, msrs.ptr());
  if (nset != kMsrCount)
    throw VmmError(ErrorCode::KvmFailure, "KVM_SET_MSRS set " + std::to_string(nset) + " of " + std::to_string(kMsrCount));
}

void Vm::fall_back_to_trap_page() {
  // Nothing has run yet: rebuild the kernel tables for the trap page, point LSTAR there and
  // start in user mode. The owner's registers (the program's entry) stay as they are.
  cfg_.mode = EntryMode::TrapPage;
  flavor_ = EntryFlavor::make(cfg_.mode);
  build_kernel();
  set_entry_msrs();
  kvm_sregs &s = vcpu_->sregs();
  s.cs = user_cs_;
  s.ss = user_ss_;
  s.cr3 = cr3_;
  vcpu_->sregs_dirty();
}

uint64_t Vm::inguest_syscalls() const { return pvm_scratch_ ? pvm::inguest_calls(*pvm_scratch_) : 0; }

uint64_t Vm::attach_region(uint64_t va, uint64_t gpa, const std::shared_ptr<GuestRegion> &region, bool log) {
  if (!pt_) throw VmmError(ErrorCode::BadState, "backends are attached to a master before it runs, not to a fork");
  if (mode() == EntryMode::PvmNative) {
    // The far-call gate exists only in the exit-based flavors for now (docs/pvm.md): a VM that
    // calls backends runs on the trap page; the backends themselves may run PVM-native.
    if (ran_) throw VmmError(ErrorCode::BadState, "backends are attached before the VM first runs");
    fall_back_to_trap_page();
  }
  add_extra(gpa, region, log);
  uint64_t root = pt_->add_root();
  for (unsigned i = 0; i < 512; i++) pt_->share_slot(root, cr3_, i);
  pt_->map(va, gpa, region->size(), pte::W | pte::U, root);
  return root;
}

void Vm::add_extra(uint64_t gpa, const std::shared_ptr<GuestRegion> &region, bool log) {
  for (auto &x : extra_)
    if (x.gpa == gpa) return;  // one backend attached under two names: its memory has one memslot
  int slot = next_slot_++;
  add_slot(slot, gpa, *region, log);
  extra_.push_back(Extra{slot, gpa, region, log});
}

bool Vm::pvm_attach_gate(uint64_t caller_lo, uint64_t caller_hi, const std::vector<PvmGateBackend> &bs) {
  if (mode() != EntryMode::PvmNative || ran_ || pvm_gate() || !pt_) return false;
  std::vector<pvm::GateBackend> specs;
  for (auto &b : bs) specs.push_back(b.spec);
  if (!pvm::gate_fits(specs)) return false;
  for (size_t b = 0; b < bs.size(); b++) {
    for (size_t i = 0; i < bs[b].instances.size(); i++) add_extra(specs[b].instance_gpas[i], bs[b].instances[i], bs[b].log);
    add_extra(kPvmLockGpa + b * kPvmLinesBytes, bs[b].lines, false);
    pvm_backends_.push_back(PvmWindow{specs[b].va, specs[b].bytes, bs[b].instances});
  }
  pvm_roots_ = pvm::attach_gate(*pvm_scratch_, *pt_, cr3_, caller_lo, caller_hi, specs);
  pvm_select(0);
  return true;
}

void Vm::pvm_select(int pair) {
  if (ran_ && pair != pvm_pair_) throw VmmError(ErrorCode::BadState, "a VM's backend instances are chosen before it runs");
  pvm_pair_ = pair;
  cr3_ = pvm_roots_.at(size_t(pair));
  std::vector<int> counts;
  for (auto &w : pvm_backends_) counts.push_back(int(w.instances.size()));
  pvm::select_pair(*pvm_scratch_, pair, owner_, counts);
  vcpu_->sregs().cr3 = cr3_;
  vcpu_->sregs_dirty();
}

Event Vm::exception_event(int vector) {
  Event ev;
  ev.kind = Event::Exception;
  ev.vector = vector;
  kvm_regs &r = vcpu_->regs();
  uint64_t sp = r.rsp, frame[6] = {};
  // The CPU pushed the frame on the kernel stack; read it from the kernel region.
  if (sp >= kKernelVa && sp + sizeof(frame) <= kKernelVa + kKernelSize)
    std::memcpy(frame, kmem_->host() + (sp - kKernelVa), sizeof(frame));
  else  // a fault of a backend inside an in-guest call: the frame is on its stack
    for (size_t b = 0; b < pvm_backends_.size(); b++)
      if (sp >= pvm_backends_[b].va && sp < pvm_backends_[b].va + pvm_backends_[b].bytes)
        GuestView{pvm_backends_[b].instances[size_t(pvm_instance(b))].get(), pvm_backends_[b].va}.read(frame, sp, sizeof(frame));
  int i = 0;
  if (vector_has_error_code(vector)) ev.error_code = frame[i++];
  ev.rip = frame[i];
  ev.rsp = frame[i + 3];
  ev.cr2 = vcpu_->sregs().cr2;
  if (vector == 14 && flavor_->page_fault(*this, ev)) {
    if (ev.kind == Event::GateReturn) stats_.gate++;
    return ev;
  }
  stats_.exceptions++;
  if (pvm_gate() && (vector == 3 || vector == 6 || vector == 14)) {
    // In-guest gate: the stub pages hold ud2 between entries and nothing is mapped after them.
    bool fetch = ev.rip >= kGateVa && ev.rip < kGateVa + kGateRegionSize;
    bool data = vector == 14 && !fetch && ev.cr2 >= kGateVa && ev.cr2 < kGateVa + kGateRegionSize;
    if (fetch || data) {
      Event j;
      j.rip = ev.rip;
      j.detail = fetch ? "call to an address that is not a registered entry point" : "data access to the gate region";
      return j;
    }
  }
  return ev;
}

Event Vm::run(uint64_t deadline_ns) {
  flavor_->before_run(*this);
  ran_ = true;
  pvm_native_ = pvm_native_ || mode() == EntryMode::PvmNative;
  for (;;) {
    if (vcpu_->run(deadline_ns) == Vcpu::RunResult::Timeout) {
      stats_.interrupted++;
      flavor_->after_timeout(*this);
      Event ev;
      ev.kind = Event::Timeout;
      return ev;
    }
    kvm_run *run = vcpu_->run_struct();
    kvm_regs &r = vcpu_->regs();
    ExitFacts f;
    f.mode = mode();
    f.pvm_gate = pvm_gate();
    f.reason = run->exit_reason;
    if (f.reason == KVM_EXIT_IO) {
      f.port = run->io.port;
      f.port_out = run->io.direction == KVM_EXIT_IO_OUT;
    }
    if (f.reason == KVM_EXIT_INTERNAL_ERROR) f.suberror = run->internal.suberror;
    f.rip = r.rip;
    f.cs = vcpu_->sregs().cs.selector;
    Decoded d = exit__decode(f);
    switch (f.reason) {  // exit counters, by what KVM reported
      case KVM_EXIT_INTERNAL_ERROR: stats_.internal++; break;
      case KVM_EXIT_IO: stats_.io++; break;
      case KVM_EXIT_MMIO: stats_.mmio++; break;
      case KVM_EXIT_INTR: stats_.interrupted++; break;
      default: stats_.other++; break;
    }
    flavor_->after_exit(*this, f);
    Event ev;
    ev.rip = r.rip;
    switch (d.kind) {
      case Decoded::Interrupted: continue;
      case Decoded::Exception: return exception_event(d.vector);
      case Decoded::Syscall:
        stats_.syscalls++;
        ev.kind = Event::Syscall;
        ev.via_call = d.via_call;
        flavor_->on_syscall(*this, ev);
        return ev;
      case Decoded::GateReturn: stats_.gate++; ev.kind = Event::GateReturn; return ev;
      case Decoded::GateCall:
        stats_.gate++;
        ev.kind = Event::GateCall;  // a call to a gate address: the fetch exited directly
        ev.cr2 = r.rip;
        ev.rsp = r.rsp;
        return ev;
      case Decoded::GateWait: stats_.gate++; ev.kind = Event::GateWait; return ev;
      case Decoded::GateSyscall: stats_.gate++; ev.kind = Event::GateSyscall; return ev;
      case Decoded::GateNotify: stats_.gate++; ev.kind = Event::GateNotify; return ev;
      case Decoded::GateCommit: stats_.gate++; ev.kind = Event::GateCommit; return ev;
      case Decoded::Halt: ev.kind = Event::Halt; ev.detail = d.detail; return ev;
      case Decoded::Mmio: {
        uint64_t pa = run->mmio.phys_addr;
        ev.detail = pa >= kGateGpa && pa < kGateGpa + kGateRegionSize
                        ? "data access to the gate region"
                        : "access to unbacked guest-physical address " + std::to_string(pa);
        // KVM finishes the faulting instruction on the next KVM_RUN, after applying our
        // register writes, and would move RIP past it (or, for a string instruction, resume it
        // with the guest's registers wherever the VMM had put the vCPU). Finish it now, reads
        // getting zeros, so that whatever the VMM sets next (a reset, a resume elsewhere) stands.
        settle();
        return ev;
      }
      case Decoded::Unexpected:
        ev.detail = d.detail;
        if (f.reason == KVM_EXIT_IO && f.port == kPortGateBad) ev.rip = r.rcx;  // the stub's caller
        return ev;
    }
  }
}

void Vm::syscall_return(uint64_t ret) { flavor_->syscall_return(*this, ret); }

void Vm::resume_user(uint64_t rip, uint64_t rsp, uint64_t rflags) { flavor_->resume_user(*this, rip, rsp, rflags); }

bool Vm::settle(uint64_t max_pieces) {
  // KVM_RUN with immediate_exit completes what the last exit left pending and returns EINTR
  // without entering the guest; a piece that needs another MMIO access exits again instead.
  // A string instruction re-enters the guest every 1024 iterations at most, so a budget of
  // a few thousand pieces always reaches the end of what is pending.
  kvm_run *run = vcpu_->run_struct();
  for (uint64_t piece = 0; piece < max_pieces; piece++) {
    if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write) std::memset(run->mmio.data, 0, sizeof run->mmio.data);
    run->immediate_exit = 1;
    int rr = ioctl(vcpu_->fd(), KVM_RUN, 0);
    int err = errno;
    run->immediate_exit = 0;
    if (rr < 0 && (err == EINTR || err == EAGAIN)) {
      unsettled_ = false;
      return true;
    }
    if (rr < 0) break;  // the vCPU cannot run at all: nothing will complete
    if (run->exit_reason != KVM_EXIT_MMIO && run->exit_reason != KVM_EXIT_IO) {
      unsettled_ = false;  // the instruction ended in another exit: nothing is left pending
      return true;
    }
  }
  unsettled_ = true;
  return false;
}

void Vm::reset_fpu() {
  std::vector<uint8_t> x(farcall_sizeof_kvm_xsave + 4096, 0);
  uint16_t fcw = 0x37f;
  uint32_t mxcsr = 0x1f80;
  std::memcpy(x.data(), &fcw, 2);
  std::memcpy(x.data() + 24, &mxcsr, 4);
  x[512] = 3;  // XSTATE_BV: x87 and SSE from the image above, everything else initial
  if (ioctl(vcpu_->fd(), farcall_ioc_set_xsave, x.data()) < 0) error__sys("KVM_SET_XSAVE");
}

CpuState Vm::save_state() {
  CpuState st;
  st.regs = vcpu_->regs();
  st.sregs = vcpu_->sregs();
  st.xsave.resize(farcall_sizeof_kvm_xsave + 4096);
  if (ioctl(vcpu_->fd(), farcall_ioc_get_xsave, st.xsave.data()) < 0) error__sys("KVM_GET_XSAVE");
  flavor_->save(*this, st);
  return st;
}

void Vm::restore_state(const CpuState &st) {
  // Everything guest code can change is put back from the VMM's side, whatever the guest did:
  // no pending emulation, general and segment registers with their bases, the whole XSAVE
  // state (x87, SSE, AVX, AVX-512), and in pvm-native mode the user GS base that the guest
  // kernel keeps in MSR_KERNEL_GS_BASE while it runs.
  if (unsettled_ && !settle(1u << 16))
    throw VmmError(ErrorCode::Internal, "an instruction the guest started could not be finished or cancelled");
  flavor_->before_restore(*this);
  vcpu_->regs() = st.regs;
  vcpu_->sregs() = st.sregs;
  if (reset_page_) {
    // The vector state and the user GS base are put back by the reset page (reset.S) as the
    // fork's first instructions, at native speed instead of two ioctls.
    flavor_->resume_reg(vcpu_->regs()) = kResetVa + kResetCode;
  } else if (!st.xsave.empty() && ioctl(vcpu_->fd(), farcall_ioc_set_xsave, st.xsave.data()) < 0) {
    error__sys("KVM_SET_XSAVE");
  }
  flavor_->after_restore(*this, st, reset_page_);
  vcpu_->regs_dirty();
  vcpu_->sregs_dirty();
}

void Vm::arm_reset_page(const CpuState &st) {
  // Only when the XSAVE image fits before the code (true without AMX), in the standard format.
  uint32_t size = 0;
  for (auto &e : Kvm::get().cpuid())
    if (e.function == 0xd && e.index == 0) size = e.ecx;
  if (st.xsave.size() < 4096 || size < 576 || size > kResetImageMax) return;
  uint8_t *page = kmem_->host() + kResetOff;
  std::memcpy(page, farcall_reset_page, kPage);
  std::memcpy(page, st.xsave.data(), size);
  std::memset(page + 520, 0, 8);  // XCOMP_BV: the standard format
  // XSTATE_BV only within the guest's XCR0: XRSTOR raises #GP for any other component, and KVM's
  // image lists PKRU wherever the CPU has it (QEMU's emulated AMD CPU does; XCR0 here never does).
  uint64_t bv;
  std::memcpy(&bv, page + 512, 8);
  bv &= Kvm::get().supported_xcr0();
  std::memcpy(page + 512, &bv, 8);
  kvm_regs r = st.regs;
  uint64_t vals[][2] = {{kResetRax, st.regs.rax}, {kResetRdx, st.regs.rdx}, {kResetRcx, st.regs.rcx},
                        {kResetGs, flavor_->user_gs(st)}, {kResetRip, flavor_->resume_reg(r)}};
  for (auto &[off, v] : vals) std::memcpy(page + off, &v, 8);
  reset_page_ = true;
}

void Vm::set_msr(uint32_t index, uint64_t value) {
  KvmArray<kvm_msr_entry> m(1);
  m.entries()[0] = kvm_msr_entry{index, 0, value};
  if (ioctl(vcpu_->fd(), farcall_ioc_set_msrs, m.ptr()) != 1) error__sys("KVM_SET_MSRS");
}

uint64_t Vm::get_msr(uint32_t index) {
  KvmArray<kvm_msr_entry> m(1);
  m.entries()[0] = kvm_msr_entry{index, 0, 0};
  if (ioctl(vcpu_->fd(), farcall_ioc_get_msrs, m.ptr()) != 1) error__sys("KVM_GET_MSRS");
  return m.entries()[0].data;
}

}  // namespace farcall
