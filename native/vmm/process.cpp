// The process (process.h): loading a program, its initial stack, and the run loop.
#include "process.h"

#include <elf.h>
#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "backend.h"
#include "error.h"
#include "layout.h"

namespace farcall {
using layout::kPage;

Process::Process(const std::vector<uint8_t> &elf, const ProcessConfig &cfg) {
  // A dynamic program needs its interpreter and libraries from the read-only view.
  bool dynamic_ok = !cfg.files_root.empty();
  ElfImage probe = elf__inspect(elf, 0, dynamic_ok);  // typed errors before any VM exists
  std::vector<uint8_t> ld;
  if (!probe.interp.empty()) {
    int r = FileView::open_root(cfg.files_root)->read_file(probe.interp, 64ull << 20, &ld);
    if (r < 0)
      throw VmmError(ErrorCode::Dynamic, "the program's ELF interpreter " + probe.interp +
                                             " cannot be read from files.readOnly: " + std::strerror(-r));
    ElfImage li = elf__inspect(ld);  // itself static (ld.so is)
    if (!li.interp.empty()) throw VmmError(ErrorCode::Dynamic, "the ELF interpreter " + probe.interp + " is itself dynamic");
    // Position-independent, so it goes where the loader puts it (a fixed-address one would land
    // wherever it says, on the program itself if it likes).
    if (reinterpret_cast<const Elf64_Ehdr *>(ld.data())->e_type != ET_DYN)
      throw VmmError(ErrorCode::Dynamic, "the ELF interpreter " + probe.interp + " is not position-independent (ET_DYN)");
  }
  VmConfig vc;
  vc.ram_bytes = process__space(cfg);
  vc.mode = cfg.mode;
  vc.ram_va = cfg.ram_va;
  vc.ram_gpa = cfg.ram_gpa;
  vm_ = std::make_unique<Vm>(vc);
  GuestView mem{&vm_->ram(), vc.ram_va};
  Personality::MemState ms;
  ms.stack_bottom = layout::stack__guard_hi(mem.va, vm_->ram_bytes());
  ms.mmap_top = layout::stack__guard_lo(mem.va, vm_->ram_bytes());  // the guard is never mapped (Vm)
  // The image is memory the program uses: it must fit where it would without the reservation space.
  ElfImage img = elf__load(elf, *vm_, mem.va, std::min(ms.mmap_top, layout::stack__guard_lo(mem.va, cfg.memory_bytes)),
                           dynamic_ok), interp;
  ms.brk_start = ms.brk = (img.end + kPage - 1) & ~(kPage - 1);
  if (!ld.empty()) {
    // The interpreter goes at the top of the mmap area, as Linux puts it high: recorded as a
    // mapping, so the program's own mmaps and brk go around it.
    ElfImage li = elf__inspect(ld);
    uint64_t size = ((li.end - li.lowest) + kPage - 1) & ~(kPage - 1);
    uint64_t at = size + (2 << 20) < ms.mmap_top - ms.brk ? (ms.mmap_top - size) & ~uint64_t((2 << 20) - 1) : 0;
    if (at <= ms.brk) throw VmmError(ErrorCode::TooBig, "no room for the ELF interpreter: raise memoryMiB");
    interp = elf__load(ld, *vm_, mem.va, ms.mmap_top, false, at);
    ms.maps[at] = size;
  }
  sys_ = std::make_unique<Personality>(cfg, mem, ms);
  gate_ = std::make_unique<Gate>(*vm_, mem);
  watch_memory();
  build_stack(img, interp);
}

Process::Process(const Process &master, const CpuState &state, bool dirty_log) {
  vm_ = std::make_unique<Vm>(*master.vm_, state, dirty_log);
  sys_ = std::make_unique<Personality>(*master.sys_, vm_->view());
  gate_ = std::make_unique<Gate>(*master.gate_, *vm_, vm_->view());
  watch_memory();
}

void Process::watch_memory() {
  if (vm_->ram_bytes() <= sys_->config().memory_bytes) return;  // the address space is the limit
  sys_->set_touched([this] {
    // The memfd's pages (a fork's: its master's), and a fork's own pages since the last re-arm
    // of its dirty log (pages it kept writable from before are not counted: at most maxDirtyMiB).
    uint64_t t = vm_->ram().allocated_bytes();
    if (vm_->ram().is_fork()) t += vm_->dirty_count(0) * kPage;
    return t;
  });
}

Process::Process(const VmConfig &vc) {
  vm_ = std::make_unique<Vm>(vc);
  Personality::MemState ms;
  ms.stack_bottom = ms.mmap_top = ms.brk = ms.brk_start = vm_->view().end();
  sys_ = std::make_unique<Personality>(ProcessConfig{}, vm_->view(), ms);
  gate_ = std::make_unique<Gate>(*vm_, vm_->view(), true);
}

void Process::build_stack(const ElfImage &img, const ElfImage &interp) {
  const GuestView &mem = sys_->view();
  const ProcessConfig &cfg = sys_->config();
  // Strings and random bytes at the very top, then auxv, envp, argv, argc below, 16-aligned.
  uint64_t top = mem.end();
  std::vector<uint8_t> blob;
  auto put_str = [&](const std::string &s) {
    blob.insert(blob.end(), s.begin(), s.end());
    blob.push_back(0);
    return blob.size() - s.size() - 1;
  };
  std::vector<size_t> argv_off, env_off;
  for (auto &a : cfg.args) argv_off.push_back(put_str(a));
  for (auto &e : cfg.env) env_off.push_back(put_str(e));
  size_t plat_off = put_str("x86_64");
  size_t rand_off = blob.size();
  blob.resize(blob.size() + 16);
  getrandom(blob.data() + rand_off, 16, 0);
  uint64_t blob_at = (top - blob.size() - 64) & ~15ull;
  mem.write(blob_at, blob.data(), blob.size());

  uint32_t hwcap = 0;
  for (auto &e : Kvm::get().cpuid())
    if (e.function == 1) hwcap = e.edx;
  std::vector<uint64_t> v;
  v.push_back(cfg.args.size());
  for (size_t o : argv_off) v.push_back(blob_at + o);
  v.push_back(0);
  for (size_t o : env_off) v.push_back(blob_at + o);
  v.push_back(0);
  uint64_t aux[][2] = {{AT_PHDR, img.phdr},     {AT_PHENT, img.phent},   {AT_PHNUM, img.phnum},
                       {AT_PAGESZ, kPage},      {AT_BASE, interp.base},            {AT_FLAGS, 0},
                       {AT_ENTRY, img.entry},   {AT_UID, 0},             {AT_EUID, 0},
                       {AT_GID, 0},             {AT_EGID, 0},            {AT_SECURE, 0},
                       {AT_RANDOM, blob_at + rand_off}, {AT_HWCAP, hwcap}, {AT_HWCAP2, 0},
                       {AT_CLKTCK, 100},        {AT_PLATFORM, blob_at + plat_off},
                       {layout::kAtFarcallTrap, vm_->flavor().sdk_trap()},
                       {AT_NULL, 0}};
  for (auto &a : aux) {
    v.push_back(a[0]);
    v.push_back(a[1]);
  }
  uint64_t sp = (blob_at - v.size() * 8) & ~15ull;
  if (sp < sys_->mem_state().stack_bottom + 4096)
    throw VmmError(ErrorCode::TooBig, "arguments and environment do not fit on the initial stack");
  mem.write(sp, v.data(), v.size() * 8);
  kvm_regs &r = vm_->vcpu().regs();
  r = {};
  r.rip = interp.entry ? interp.entry : img.entry;  // a dynamic program starts in its interpreter
  r.rsp = sp;
  r.rflags = 2;
  vm_->vcpu().regs_dirty();
}

Stop Process::run_for(uint64_t timeout_ns) {
  uint64_t deadline = Vcpu::now_ns() + timeout_ns;
  watchdog::Armed armed(vm_->vcpu(), deadline);
  try {
    return run(deadline);
  } catch (...) {
    gate_->abandon("VMM error during the call");
    gate_->pvm_cleanup("VMM error during the call");
    throw;
  }
}

Stop Process::run(uint64_t deadline_ns) {
  Stop st = run_events(deadline_ns);
  gate_->pvm_cleanup(st.kind == Stop::Timeout ? "the caller timed out during the call" : "the caller stopped during the call");
  return st;
}

Stop Process::host_call(size_t index, int entry, const uint64_t args[4], uint64_t deadline_ns) {
  Stop st;
  uint64_t watch = 0;
  if (!gate_->begin_host_call(index, entry, args, deadline_ns, &st, &watch)) return st;
  watchdog::Armed armed(vm_->vcpu(), watch);
  try {
    return run(gate_->call_deadline());
  } catch (...) {
    gate_->abandon("VMM error during a host call");
    throw;
  }
}

Stop Process::run_events(uint64_t deadline_ns) {
  gate_->begin_run(deadline_ns);
  tick_at_ = 0;  // the watchdog is armed for this run's limit: the next slice arms it anew
  for (;;) {
    uint64_t wake = gate_->wake_at(deadline_ns);
    Event ev = vm_->run(wake == deadline_ns ? thread_tick(deadline_ns) : wake);  // no slices in a far call
    Stop st;
    switch (gate_->on_event(ev, deadline_ns, &st)) {
      case Gate::Handled::Resume: continue;
      case Gate::Handled::Stop: return st;
      case Gate::Handled::HostCallDone:
        st.kind = Stop::Farcall;
        st.nr = kHostCallDone;
        return st;
      case Gate::Handled::No: break;
    }
    if (on_event(ev, deadline_ns, &st)) return st;
  }
}

bool Process::on_event(const Event &ev, uint64_t deadline_ns, Stop *st) {
  switch (ev.kind) {
    case Event::Syscall: {
      if (deadline_ns && Vcpu::now_ns() >= deadline_ns) {
        // Past its limit (a call that had to finish first just did): the request ends here.
        st->kind = Stop::Timeout;
        st->event = ev;
        st->message = "execution timed out";
        return true;
      }
      kvm_regs &r = vm_->vcpu().regs();
      uint64_t nr = r.rax;
      if (nr == kSysLookup) {
        sys_->count_syscall(nr, false);
        vm_->syscall_return(gate_->lookup(r.rdi, r.rsi));
        return false;
      }
      if (nr >= kFarcallSysFirst && nr <= kFarcallSysLast) {
        sys_->count_syscall(nr, false);
        st->kind = Stop::Farcall;
        st->nr = nr;
        return true;
      }
      st->kind = Stop::Running;
      gate_->pause_tick(deadline_ns);
      uint64_t ret = sys_->syscall(vm_->vcpu(), nr, r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9, st);
      ret = thread_after(ret, deadline_ns, st);
      gate_->resume_tick();
      if (st->kind != Stop::Running) return true;
      vm_->syscall_return(ret);
      return false;
    }
    case Event::Exception: {
      st->kind = Stop::Fault;
      st->event = ev;
      const GuestView &mem = sys_->view();
      if (ev.vector == 14 && ev.cr2 >= layout::stack__guard_lo(mem.va, mem.end() - mem.va) &&
          ev.cr2 < layout::stack__guard_hi(mem.va, mem.end() - mem.va))
        st->event.detail = "stack overflow (the guard below the main stack)";
      return true;
    }
    case Event::GateReturn:
      st->kind = Stop::Fault;
      st->event = ev;
      st->event.kind = Event::Unexpected;
      st->event.rip = vm_->vcpu().regs().rip;
      st->event.detail = "jump to the far-call return address outside a call";
      return true;
    case Event::Timeout:
      st->kind = Stop::Running;
      if (thread_preempt(deadline_ns, st)) return st->kind != Stop::Running;
      st->kind = Stop::Timeout;
      st->event = ev;
      st->message = "execution timed out";
      return true;
    default:
      st->kind = Stop::Fault;
      st->event = ev;
      return true;
  }
}

}  // namespace farcall
