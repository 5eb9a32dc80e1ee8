// The far-call gate, host side: a request VM's call to a gate address faults; the trampoline
// here takes a backend instance, switches the vCPU to the backend (page-table root, FS base,
// stack) with the caller's argument registers untouched, and switches back when the entry
// returns to the gate-return trap. Two exits per call; no memslot change, no page-table edit.
#include <pthread.h>

#include <cstddef>
#include <cstring>

#include "backend.h"
#include "error.h"
#include "layout.h"
#include "gate.h"
#include "pvm.h"

namespace farcall {
using namespace layout;

namespace {
// An in-guest call that did not return: counted as a call and a fault, and reported.
void gate__count_fault(Backend &be, Instance &inst, const pvm::GateCall &c, const GuestRegion &kmem,
                       const std::string &why) {
  std::string entry = c.entry >= 0 && size_t(c.entry) < be.entries().size() ? be.entries()[size_t(c.entry)].name : "";
  inst.line->calls++;
  be.fault(inst, entry, pvm::ns_since_tsc(kmem, c.tsc0), why);
}

// What the backend sees of the current call (guest-sdk: struct farcall_call_info).
struct CallInfo {
  uint64_t caller_lo, caller_hi;  // the caller's memory: pointers must lie in [lo, hi)
  uint64_t instance;
  uint64_t calls;
};
static_assert(offsetof(CallInfo, caller_lo) == FARCALL_CALL_INFO_CALLER_LO && offsetof(CallInfo, caller_hi) == FARCALL_CALL_INFO_CALLER_HI &&
                  offsetof(CallInfo, instance) == FARCALL_CALL_INFO_INSTANCE && offsetof(CallInfo, calls) == FARCALL_CALL_INFO_CALLS &&
                  sizeof(CallInfo) == FARCALL_CALL_INFO_SIZE,
              "struct farcall_call_info: the VMM and guest-sdk/include/farcall_abi.h disagree");
}  // namespace

Gate::Gate(Vm &vm, GuestView caller, bool host_caller) : vm_(&vm), caller_(caller), host_caller_(host_caller) {}

Gate::Gate(const Gate &master, Vm &vm, GuestView caller)
    : vm_(&vm), caller_(caller), host_caller_(master.host_caller_), pending_(master.pending_), attached_(master.attached_) {}

void Gate::attach(Backend *backend, std::shared_ptr<Backend> keep, const std::string &name) {
  if (attached_.size() * kGateStride >= (kGateVa >> 1))
    throw VmmError(ErrorCode::BadState, "too many backends attached to one program");
  if (!pending_ && !attached_.empty())
    throw VmmError(ErrorCode::BadState, "backends are attached before the VM first runs");
  attached_.push_back(Attached{backend, std::move(keep), name, {}});
  pending_ = true;  // which gate: decided once all are attached (attach_finish)
}

void Gate::finish_attach() {
  if (!pending_) return;
  pending_ = false;
  bool trusted = true;
  for (auto &a : attached_) trusted &= a.backend->trusted();
  if (trusted && !host_caller_ && vm_->mode() == EntryMode::PvmNative) {
    // The in-guest gate: the backends run in this VM's guest kernel, no exit per call.
    std::vector<Vm::PvmGateBackend> bs;
    for (auto &a : attached_) {
      Backend &be = *a.backend;
      Vm::PvmGateBackend g;
      g.spec.trampoline = be.trampoline();
      g.spec.fs_base = be.fs_base();
      g.spec.gs_base = be.gs_base();
      g.spec.stack_top = be.stack_top();
      g.spec.call_info = be.call_info();
      g.spec.bytes = be.ram_bytes();
      g.spec.va = be.va();
      for (auto &e : be.entries()) g.spec.entries.push_back(e.addr);
      for (size_t i = 0; i < be.instance_count(); i++) {
        g.spec.instance_gpas.push_back(be.instance(i).gpa);
        g.instances.push_back(be.instance(i).region);
      }
      g.lines = be.lines();
      g.log = be.durability() == Durability::Call;
      bs.push_back(std::move(g));
    }
    if (vm_->pvm_attach_gate(kPage, caller_.end(), bs)) return;
  }
  // The exit gate (an untrusted backend among them, another entry mode, or too many to fit).
  for (auto &a : attached_)
    for (size_t i = 0; i < a.backend->instance_count(); i++)
      a.roots.push_back(vm_->attach_region(a.backend->va(), a.backend->instance(i).gpa, a.backend->instance(i).region,
                                           a.backend->durability() == Durability::Call));
}

// Why farcall_lookup(name) found nothing: the backend is not attached, or has no such entry.
template <class List>
static std::string lookup__miss(const List &attached, const std::string &name, const std::string &want_backend,
                                const std::string &want_entry) {
  auto join = [](const std::vector<std::string> &v) {
    std::string s;
    for (auto &x : v) s += (s.empty() ? "" : ", ") + x;
    return s.empty() ? std::string("none") : s;
  };
  std::vector<std::string> names;
  for (auto &a : attached) {
    if (a.name == want_backend) {
      std::vector<std::string> entries;
      for (auto &e : a.backend->entries()) entries.push_back(e.name);
      return "farcall_lookup(\"" + name + "\") found nothing: backend " + want_backend + " has no entry " + want_entry +
             " (entries: " + join(entries) + ")";
    }
    names.push_back(a.name);
  }
  std::string head = "farcall_lookup(\"" + name + "\") found nothing: ";
  if (want_backend.empty()) return head + "no attached backend has that entry (attached: " + join(names) + ")";
  return head + "no backend named " + want_backend + " is attached (attached: " + join(names) + ")";
}

uint64_t Gate::lookup(uint64_t name_ptr, uint64_t len) {
  if (len == 0 || len > 256) return uint64_t(-22);  // EINVAL
  std::string name(len, '\0');
  if (!caller_.read(name.data(), name_ptr, len)) return uint64_t(-14);  // EFAULT
  std::string want_backend, want_entry = name;
  if (auto dot = name.find('.'); dot != std::string::npos) {
    want_backend = name.substr(0, dot);
    want_entry = name.substr(dot + 1);
  }
  uint64_t found = 0;
  int matches = 0;
  for (size_t b = 0; b < attached_.size(); b++) {
    if (!want_backend.empty() && attached_[b].name != want_backend) continue;
    int e = attached_[b].backend->find(want_entry);
    if (e < 0) continue;
    matches++;
    found = kGateVa + b * kGateStride + uint64_t(e) * 16;
  }
  if (matches > 1) return uint64_t(-76);  // ENOTUNIQ: name it as backend.entry
  if (!matches) {
    lookup_miss_ = lookup__miss(attached_, name, want_backend, want_entry);
    bool listed = false;
    for (auto &a : attached_) listed |= a.name == want_backend;
    if (!want_backend.empty() && !listed && unattached_lookup_.empty()) unattached_lookup_ = lookup_miss_;
  }
  return matches ? found : uint64_t(-2);  // ENOENT
}

void Gate::begin_run(uint64_t deadline_ns) {
  req_deadline_ = deadline_ns;
  tick_ = 0;
  finish_attach();
  if (!vm_->pvm_gate()) return;
  // In-guest calls start and end without the VMM: the watchdog looks at the current call once
  // per call timeout (one exit per period, none per call).
  if (uint64_t period = pvm_tick_period()) {
    tick_ = Vcpu::now_ns() + period;
    if (deadline_ns && deadline_ns < tick_) tick_ = 0;
    else pvm_watch(tick_);
  }
  uint64_t notify = 0, commit = 0;
  for (size_t b = 0; b < attached_.size(); b++) {
    if (attached_[b].backend->want_call_events) notify |= 1ull << b;
    if (attached_[b].backend->durability() == Durability::Call) commit |= 1ull << b;
  }
  pvm::set_notify(vm_->pvm_scratch(), notify);
  pvm::set_commit(vm_->pvm_scratch(), commit);
}

void Gate::pause_tick(uint64_t deadline_ns) {
  if (tick_) pvm_watch(deadline_ns);
}

void Gate::resume_tick() {
  if (tick_) pvm_watch(tick_);
}

Gate::Handled Gate::on_event(const Event &ev, uint64_t deadline_ns, Stop *stop) {
  if (vm_->pvm_gate() && pvm_event(ev, deadline_ns)) return Handled::Resume;
  if (call_.active) {
    // Everything that happens inside an exit-gate call belongs to the call.
    switch (ev.kind) {
      case Event::Syscall:
        syscall();
        return call_.active ? Handled::Resume : left();
      case Event::GateReturn: leave(int64_t(vm_->vcpu().regs().rax), false, ""); return left();
      case Event::GateCall: leave(kErrBackendFault, true, "backend called a gate address inside a call"); return left();
      case Event::Timeout: {
        // The call's own limit passed (the request's never cuts a call that has one), or the
        // request's, for a call without a limit: the call is undone, the caller gets an error.
        bool request_over = deadline_ns && Vcpu::now_ns() >= deadline_ns;
        leave(kErrBackendTimeout, true,
              call_.at->backend->call_timeout_ns() ? "backend call timed out" : "the caller timed out during the call");
        if (call_.host || !request_over) return left();
        return Handled::No;  // the request's own limit: it stops here
      }
      default:  // a fault, or another stop (data access to an unbacked page, ...)
        leave(kErrBackendFault, true, fault_what(ev));
        return left();
    }
  }
  bool out_stub_call = ev.kind == Event::Exception && ev.vector == 14 && ev.cr2 >= kGateVa && ev.cr2 < kGateVa + (kGateVa >> 1);
  if (out_stub_call) {  // a gate call that arrived as a page fault (out-stub mode): the CPU pushed a frame
    bool fetch = (ev.error_code & 0x10) && ev.rip == ev.cr2;
    return enter(ev.cr2, ev.rsp, exception_rflags(), fetch, ev, stop) ? Handled::Resume : Handled::Stop;
  }
  if (ev.kind == Event::GateCall)
    return enter(ev.rip, ev.rsp, vm_->vcpu().regs().rflags, true, ev, stop) ? Handled::Resume : Handled::Stop;
  return Handled::No;
}

uint64_t Gate::exception_rflags() {
  uint64_t frame[6] = {}, ksp = vm_->vcpu().regs().rsp;
  if (ksp >= kKernelVa && ksp + sizeof frame <= kKernelVa + kKernelSize)
    std::memcpy(frame, vm_->kmem().host() + (ksp - kKernelVa), sizeof frame);
  return frame[3];  // error code, RIP, CS, RFLAGS
}

bool Gate::enter(uint64_t addr, uint64_t rsp, uint64_t rflags, bool fetch, const Event &ev, Stop *stop) {
  uint64_t off = addr - kGateVa, b = off / kGateStride, e = (off % kGateStride) / 16;
  if (!fetch || off % 16 || b >= attached_.size() || e >= attached_[b].backend->entries().size()) {
    stop->kind = Stop::Fault;
    stop->event = ev;
    stop->event.detail = fetch ? "call to an address that is not a registered entry point"
                               : "data access to the gate region";
    return false;
  }
  Attached &at = attached_[b];
  Backend &be = *at.backend;
  uint64_t ret = 0;
  if (!caller_.read(&ret, rsp, 8)) {
    stop->kind = Stop::Fault;
    stop->event = ev;
    stop->event.detail = "gate call with a stack outside the caller's memory";
    return false;
  }
  if (!be.available()) {  // restarting: answer at once instead of queueing behind the restart
    vm_->vcpu().regs().rax = uint64_t(kErrBackendBusy);
    vm_->resume_user(ret, rsp + 8, rflags);
    return true;
  }
  Instance *inst = be.acquire(req_deadline_);
  if (!inst) {
    // As on the in-guest gate: the call gets FARCALL_E_BACKEND_BUSY (no instance became free
    // while the request may run), and the request stops at its limit on the next VMM entry.
    be.timeouts++;
    vm_->vcpu().regs().rax = uint64_t(kErrBackendBusy);
    vm_->resume_user(ret, rsp + 8, rflags);
    return true;
  }
  Vcpu &cpu = vm_->vcpu();
  kvm_sregs &s = cpu.sregs();
  call_ = Call{};
  call_.active = true;
  call_.at = &at;
  call_.inst = inst;
  call_.entry = int(e);
  call_.ret_rip = ret;
  call_.caller_rsp = rsp;
  call_.caller_fs = s.fs.base;
  call_.caller_gs = s.gs.base;
  call_.caller_cr3 = s.cr3;
  call_.caller_rflags = rflags;
  {
    kvm_regs &r = cpu.regs();
    uint64_t saved[6] = {r.rbx, r.rbp, r.r12, r.r13, r.r14, r.r15};
    std::memcpy(call_.saved, saved, sizeof saved);
  }
  call_.t0 = Vcpu::now_ns();
  // A call with a limit runs to its end or its limit even past the request's limit (the
  // request stops once it returns): a caller's timeout never cuts a backend call in the middle.
  uint64_t limit = be.call_timeout_ns();
  call_.deadline = limit ? call_.t0 + limit : req_deadline_;
  if (call_.deadline != req_deadline_) watchdog::arm(&cpu, pthread_self(), call_.deadline);

  switch_in(be, *inst, at.roots[inst->index], int(e));
  return true;
}

void Gate::switch_in(Backend &be, Instance &inst, uint64_t root, int entry) {
  // The backend's call stack gets the return trap on top; its call-info block the caller's
  // memory bounds (for farcall_caller_ok()).
  GuestView iv = inst.personality->view();
  uint64_t sp = be.stack_top() - 8, ret_trap = kTrapVa + kTrapGateReturn;
  CallInfo ci{kPage, caller_.end(), uint64_t(inst.index), inst.calls()};
  iv.write(sp, &ret_trap, 8);
  if (be.call_info()) iv.write(be.call_info(), &ci, sizeof ci);
  Vcpu &cpu = vm_->vcpu();
  kvm_regs &r = cpu.regs();
  kvm_sregs &s = cpu.sregs();
  // Argument registers stay as the caller left them. The backend starts with clean RFLAGS (a
  // caller's DF, TF or AC must not steer backend code) through the SDK's trampoline, which
  // also resets the vector/x87/SSE state and calls the entry named in R11.
  uint64_t target = be.entries()[entry].addr;
  if (be.trampoline()) r.r11 = target;
  vm_->resume_user(be.trampoline() ? be.trampoline() : target, sp, 2);
  s.fs.base = be.fs_base();
  s.gs.base = be.gs_base();
  s.cr3 = root;
  cpu.sregs_dirty();
}

void Gate::leave(int64_t result, bool restore, const std::string &why) {
  Vcpu &cpu = vm_->vcpu();
  kvm_regs &r = cpu.regs();
  kvm_sregs &s = cpu.sregs();
  Backend &be = *call_.at->backend;
  Instance *inst = call_.inst;
  // Back to the caller: its return address, stack, thread pointer and root. Scratch
  // registers are cleared so no backend pointer or value leaks through them.
  r.rax = uint64_t(result);
  r.rcx = r.rdx = r.rsi = r.rdi = r.r8 = r.r9 = r.r10 = r.r11 = 0;
  if (restore) {
    // The entry did not return: the caller's callee-saved registers and a clean vector state,
    // rather than whatever the backend left in them.
    r.rbx = call_.saved[0];
    r.rbp = call_.saved[1];
    r.r12 = call_.saved[2];
    r.r13 = call_.saved[3];
    r.r14 = call_.saved[4];
    r.r15 = call_.saved[5];
    vm_->reset_fpu();
  }
  vm_->resume_user(call_.ret_rip, call_.caller_rsp + 8, call_.caller_rflags);
  s.fs.base = call_.caller_fs;
  s.gs.base = call_.caller_gs;
  s.cr3 = call_.caller_cr3;
  cpu.sregs_dirty();
  uint64_t ns = Vcpu::now_ns() - call_.t0;
  const std::string &entry = be.entries()[call_.entry].name;
  if (call_.deadline != req_deadline_ && req_deadline_) watchdog::arm(&cpu, pthread_self(), req_deadline_);
  call_.active = false;
  inst->line->calls++;
  if (restore) {
    last_fault_ = why;
    be.fault(*inst, entry, ns, why);
  } else if (be.want_call_events) {
    be.emit(BackendEvent{BackendEvent::Call, inst->index, entry, ns, ""});
  }
  be.finish(*inst, vm_, !restore, why);
}

std::string Gate::fault_what(const Event &ev) {
  if (ev.kind != Event::Exception) return "backend fault: " + ev.detail;
  char buf[112];
  snprintf(buf, sizeof buf, "backend fault: vector %d at rip 0x%llx (address 0x%llx)", ev.vector,
           (unsigned long long)ev.rip, (unsigned long long)ev.cr2);
  return buf;
}

bool Gate::backend_syscall(Instance &inst, uint64_t *ret, int64_t *err, std::string *why) {
  Vcpu &cpu = vm_->vcpu();
  kvm_regs &r = cpu.regs();
  uint64_t nr = r.rax;
  if (nr >= kFarcallSysFirst && nr <= kFarcallSysLast) {
    *err = kErrBackendFault;
    *why = "backend made farcall call " + std::to_string(nr) + " inside a call";
    return false;
  }
  Stop st;
  st.kind = Stop::Running;
  *ret = inst.personality->syscall(cpu, nr, r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9, &st);
  if (st.kind != Stop::Running) {
    *err = kErrBackendExit;
    *why = st.kind == Stop::OutputLimit ? st.message
                                        : "backend exited (" + std::to_string(st.exit_code) + ") inside a call";
    return false;
  }
  return true;
}

void Gate::syscall() {
  uint64_t ret = 0;
  int64_t err = 0;
  std::string why;
  if (backend_syscall(*call_.inst, &ret, &err, &why)) vm_->syscall_return(ret);
  else leave(err, true, why);
}

void Gate::abandon(const char *why) {
  if (!call_.active) return;
  Backend &be = *call_.at->backend;
  Instance *inst = call_.inst;
  std::string entry = be.entries()[call_.entry].name;
  call_.active = false;
  be.fault(*inst, entry, Vcpu::now_ns() - call_.t0, why);
  be.finish(*inst, vm_, false, why);
}

bool Gate::begin_host_call(size_t index, int entry, const uint64_t args[4], uint64_t deadline_ns, Stop *stop,
                           uint64_t *watch) {
  finish_attach();
  Attached &at = attached_.at(index);
  Backend &be = *at.backend;
  last_fault_.clear();
  if (!be.available()) {
    stop->kind = Stop::Fault;
    stop->event.detail = stop->message = kRestarting;
    return false;
  }
  Instance *inst = be.acquire(deadline_ns);
  if (!inst) {
    be.timeouts++;
    stop->kind = Stop::Timeout;
    stop->message = "timed out waiting for a free backend instance";
    return false;
  }
  // Enter as the gate would, with the host as the caller: no caller frame to return to.
  Vcpu &cpu = vm_->vcpu();
  kvm_regs &r = cpu.regs();
  call_ = Call{};
  call_.active = call_.host = true;
  call_.at = &at;
  call_.inst = inst;
  call_.entry = entry;
  call_.caller_rsp = caller_.end() - 64;
  call_.caller_cr3 = vm_->root();
  call_.caller_rflags = 2;
  call_.t0 = Vcpu::now_ns();
  // The host's limit bounds the wait for an instance; once in, a call with a limit of its own
  // runs to its end or that limit, as a guest's does: cut by a limit mostly spent waiting behind
  // another caller, it would count as a fault of the backend (and faults restart it).
  uint64_t limit = be.call_timeout_ns();
  call_.deadline = limit ? call_.t0 + limit : deadline_ns;
  req_deadline_ = deadline_ns;
  r = kvm_regs{};
  r.rdi = args[0];
  r.rsi = args[1];
  r.rdx = args[2];
  r.rcx = args[3];
  cpu.regs_dirty();
  switch_in(be, *inst, at.roots[inst->index], entry);
  *watch = call_.deadline ? call_.deadline : deadline_ns;
  return true;
}

Gate::Ref Gate::pvm_ref(int backend) {
  if (backend < 0 || size_t(backend) >= attached_.size())
    throw VmmError(ErrorCode::Internal, "in-guest gate: the guest kernel named backend " + std::to_string(backend));
  Backend &be = *attached_[size_t(backend)].backend;
  return Ref{be, be.instance(size_t(vm_->pvm_instance(size_t(backend))))};
}

uint64_t Gate::pvm_tick_period() const {
  uint64_t p = 0;
  for (auto &a : attached_) {
    uint64_t t = a.backend->call_timeout_ns();
    if (t && (!p || t < p)) p = t;
  }
  return p;
}

bool Gate::pvm_event(const Event &ev, uint64_t deadline_ns) {
  Vm &vm = *vm_;
  Vcpu &cpu = vm.vcpu();
  kvm_regs &r = cpu.regs();
  pvm::GateCall c = pvm::current_call(vm.pvm_scratch());
  switch (ev.kind) {
    case Event::GateWait: {
      // The guest kernel found the instance taken (another VM or a host call holds it): wait
      // here, take it for this VM, and tell the kernel (RAX 0) or give the caller an error.
      // As on the exit gate, it waits as long as the request may run; if no instance became
      // free by then, the call gets FARCALL_E_BACKEND_BUSY and the request stops at its limit.
      auto [be, inst] = pvm_ref(c.backend);
      if (!be.available()) {
        r.rax = uint64_t(kErrBackendBusy);
      } else if (be.acquire_for(inst, vm.owner(), req_deadline_)) {
        r.rax = 0;
      } else {
        be.timeouts++;
        r.rax = uint64_t(kErrBackendBusy);
        pvm_watch(tick_ = Vcpu::now_ns());
      }
      cpu.regs_dirty();
      return true;
    }
    case Event::GateSyscall: {
      // The backend's system call inside a call, on its instance's personality; then straight
      // back into the backend (it is in guest supervisor mode, so RIP can be set).
      auto [be, inst] = pvm_ref(c.backend);
      // A blocking call (sleep, socket) runs until the call's own limit or the request's, not
      // until the next tick.
      // (The request's own limit does not cut a call that has a limit: see Event::Timeout.)
      uint64_t limit = be.call_timeout_ns(), age = pvm::ns_since_tsc(vm.kmem(), c.tsc0);
      uint64_t until = limit ? Vcpu::now_ns() + (age < limit ? limit - age : 0) : req_deadline_;
      pvm_watch(until);
      uint64_t ret = 0;
      int64_t err = 0;
      std::string why;
      bool ok = backend_syscall(inst, &ret, &err, &why);
      if (req_deadline_ && (!tick_ || req_deadline_ < tick_)) tick_ = req_deadline_;
      pvm_watch(tick_);
      if (!ok) {
        pvm_abort(err, why);
        return true;
      }
      r.rax = ret;
      r.rip = r.rcx;
      r.rflags = (r.r11 & 0x3c0fd5) | 2;
      cpu.regs_dirty();
      return true;
    }
    case Event::GateCommit: {
      // The call returned and the guest kernel still holds the instance: what it wrote becomes
      // the instance's consistent state (Durability::Call), then the kernel unlocks it.
      auto [be, inst] = pvm_ref(c.backend);
      be.commit(inst, vm_);
      return true;
    }
    case Event::GateNotify: {
      // After a call: the kernel freed the instance and saw waiters, or call events are wanted.
      auto [be, inst] = pvm_ref(c.backend);
      if (inst.line->waiters.load()) be.wake(inst);
      if (be.want_call_events && c.entry >= 0 && size_t(c.entry) < be.entries().size())
        be.emit(BackendEvent{BackendEvent::Call, inst.index, be.entries()[size_t(c.entry)].name,
                             pvm::ns_since_tsc(vm.kmem(), c.tsc0), ""});
      return true;
    }
    case Event::Timeout: {
      uint64_t now = Vcpu::now_ns();
      if (deadline_ns && now >= deadline_ns) {
        // The request's own limit: run() cleans up, but a call in progress with a limit of its
        // own first runs to its end (looked at every millisecond) or to that limit.
        if (!c.active) return false;
        uint64_t limit = pvm_ref(c.backend).be.call_timeout_ns(), age = pvm::ns_since_tsc(vm.kmem(), c.tsc0);
        if (!limit || age >= limit) return false;
        tick_ = now + std::min<uint64_t>(limit - age, 1000000);
        pvm_watch(tick_);
        return true;
      }
      if (!tick_) return false;
      // The watchdog's tick: abort the current call if it is past its backend's limit, and look
      // again when it would reach it, or one period from now.
      uint64_t next = now + pvm_tick_period();
      if (c.active) {
        uint64_t limit = pvm_ref(c.backend).be.call_timeout_ns(), age = pvm::ns_since_tsc(vm.kmem(), c.tsc0);
        if (limit && age >= limit) pvm_abort(kErrBackendTimeout, "backend call timed out");
        else if (limit) next = std::min(next, now + (limit - age));
      }
      tick_ = deadline_ns && deadline_ns < next ? deadline_ns : next;
      pvm_watch(tick_);
      return true;
    }
    case Event::Exception:
    case Event::Halt:
    case Event::Unexpected: {
      if (!c.active) return false;
      pvm_abort(kErrBackendFault, fault_what(ev));
      return true;
    }
    default:
      return false;
  }
}

void Gate::pvm_watch(uint64_t until_ns) {
  if (until_ns) watchdog::arm(&vm_->vcpu(), pthread_self(), until_ns);
  else watchdog::disarm(&vm_->vcpu());
}

void Gate::pvm_abort(int64_t result, const std::string &why) {
  // The call will not return by itself: the caller resumes after its call with `result`, its
  // callee-saved registers, FS and a clean vector state; the instance is restored and freed.
  Vm &vm = *vm_;
  pvm::GateCall c = pvm::current_call(vm.pvm_scratch());
  auto [be, inst] = pvm_ref(c.backend);
  Vcpu &cpu = vm.vcpu();
  kvm_regs &r = cpu.regs();
  r.rax = uint64_t(result);
  r.rdx = r.rsi = r.rdi = r.r8 = r.r9 = r.r10 = 0;
  r.rbx = c.saved[0];
  r.rbp = c.saved[1];
  r.r12 = c.saved[2];
  r.r13 = c.saved[3];
  r.r14 = c.saved[4];
  r.r15 = c.saved[5];
  vm.reset_fpu();
  vm.resume_user(c.ret_rip, c.rsp, c.rflags);
  kvm_sregs &s = cpu.sregs();
  s.fs.base = c.fs;
  s.gs.base = c.kernel_gs;
  cpu.sregs_dirty();
  pvm::clear_call(vm.pvm_scratch());
  last_fault_ = why;
  gate__count_fault(be, inst, c, vm.kmem(), why);
  be.finish(inst, vm_, false, why);
}

void Gate::pvm_cleanup(const char *why) {
  if (!vm_->pvm_gate()) return;
  Vm &vm = *vm_;
  pvm::GateCall c = pvm::current_call(vm.pvm_scratch());
  pvm::clear_call(vm.pvm_scratch());
  for (size_t b = 0; b < attached_.size(); b++) {
    auto [be, inst] = pvm_ref(int(b));
    if (inst.line->owner.load() != vm.owner()) continue;  // not holding it: nothing to give back
    bool mid = c.active && c.backend == int(b);
    if (mid) gate__count_fault(be, inst, c, vm.kmem(), why);
    be.finish(inst, vm_, !mid, why);
  }
}

}  // namespace farcall
