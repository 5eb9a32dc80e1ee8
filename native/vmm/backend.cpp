#include "backend.h"

#include "process.h"


#include <algorithm>
#include <cstring>
#include <set>

#include "error.h"
#include "layout.h"

namespace farcall {
using namespace layout;

namespace {
// Numbered process-wide guest-virtual windows: lowest free first.
class Places {
 public:
  Places(uint64_t count, const char *full) : count_(count), full_(full) {}
  uint64_t take() {
    std::lock_guard<std::mutex> lk(mu_);
    for (uint64_t s = 0; s < count_; s++)
      if (used_.insert(s).second) return s;
    throw VmmError(ErrorCode::BadState, full_);
  }
  bool take_at(uint64_t s) {
    std::lock_guard<std::mutex> lk(mu_);
    return s < count_ && used_.insert(s).second;
  }
  void give(uint64_t s) {
    std::lock_guard<std::mutex> lk(mu_);
    used_.erase(s);
  }

 private:
  std::mutex mu_;
  std::set<uint64_t> used_;
  uint64_t count_;
  const char *full_;
};
Places g_windows(kMaxBackendVas, "too many backends loaded in this process");

uint64_t backend_va__alloc() { return kBackendVa + g_windows.take() * kMaxBackendRam; }
void backend_va__free(uint64_t va) { g_windows.give((va - kBackendVa) / kMaxBackendRam); }
}  // namespace

bool backend_va__take(uint64_t va) {
  return va >= kBackendVa && (va - kBackendVa) % kMaxBackendRam == 0 && g_windows.take_at((va - kBackendVa) / kMaxBackendRam);
}
void backend_va__give(uint64_t va) { backend_va__free(va); }

GpaSpace::GpaSpace(unsigned phys_bits) : bits_(phys_bits) {}

GpaSpace &GpaSpace::process() {
  static GpaSpace space(Kvm::get().phys_bits());
  return space;
}

uint64_t GpaSpace::take(uint64_t bytes) {
  bytes = (bytes + kHugePage - 1) & ~(kHugePage - 1);
  std::lock_guard<std::mutex> lk(mu_);
  uint64_t at = kBackendGpaBase;
  for (auto [start, len] : used_) {
    if (start - at >= bytes) break;
    at = start + len;
  }
  if (at + bytes > gpa_limit(bits_) || at + bytes < at)
    throw VmmError(ErrorCode::BadState, "no guest-physical room left for " + std::to_string(bytes >> 20) +
                                            " MiB more backend memory below this CPU's " + std::to_string(bits_) +
                                            "-bit physical address width");
  used_[at] = bytes;
  return at;
}

void GpaSpace::give(uint64_t gpa) {
  std::lock_guard<std::mutex> lk(mu_);
  used_.erase(gpa);
}

std::unique_ptr<Process> Backend::initialize(uint64_t gpa) {
  ProcessConfig cfg = cfg_;
  cfg.ram_va = va_;
  cfg.ram_gpa = gpa;
  auto init = std::make_unique<Process>(elf_, cfg);
  Stop st = init->run_for(init_timeout_ns_);
  if (st.kind != Stop::Farcall || st.nr != kSysServe) {
    std::string err = init->sys().err().empty() ? "" : ": " + init->sys().err().substr(0, 500);
    throw VmmError(st.kind == Stop::Timeout ? ErrorCode::Timeout : ErrorCode::Protocol,
                   "backend program " + stop__describe(st) + " before calling farcall_serve()" + err);
  }
  return init;
}

Backend::Backend(const std::vector<uint8_t> &elf, ProcessConfig cfg, int instances, uint64_t init_timeout_ns,
                 uint64_t call_timeout_ns, bool trusted, Durability durability)
    : durability_(durability), elf_(elf), cfg_(cfg), init_timeout_ns_(init_timeout_ns), trusted_(trusted),
      call_timeout_ns_(call_timeout_ns), ram_bytes_(cfg.memory_bytes) {
  if (instances < 1 || instances > 64) throw VmmError(ErrorCode::BadState, "instances must be from 1 to 64");
  if (cfg.memory_bytes > kMaxBackendRam)
    throw VmmError(ErrorCode::BadState, "backend memory is limited to " + std::to_string(kMaxBackendRam >> 30) + " GiB");
  GpaSpace &space = GpaSpace::process();
  va_ = backend_va__alloc();
  try {
    gpas_.push_back(space.take(ram_bytes_));
    std::unique_ptr<Process> init = initialize(gpas_[0]);
    Vcpu &cpu = init->vm().vcpu();
    // farcall_serve(table, count, stack, stack_size, call_info)
    kvm_regs &r = cpu.regs();
    const GuestView &v = init->sys().view();
    uint64_t table = r.rdi, count = r.rsi, stack = r.rdx, stack_size = r.r10;
    call_info_ = r.r8;
    if (count == 0 || count > kGateEntries) throw VmmError(ErrorCode::Protocol, "farcall_serve(): bad entry count");
    if (!v.ptr(stack, stack_size) || stack_size < 4096)
      throw VmmError(ErrorCode::Protocol, "farcall_serve(): call stack outside backend memory");
    if (call_info_ && !v.ptr(call_info_, 32)) throw VmmError(ErrorCode::Protocol, "farcall_serve(): bad call info");
    stack_top_ = (stack + stack_size) & ~15ull;
    for (uint64_t i = 0; i < count; i++) {
      uint64_t e[2];
      if (!v.read(e, table + 16 * i, 16)) throw VmmError(ErrorCode::Protocol, "farcall_serve(): entry table outside memory");
      char name[129] = {};
      for (int k = 0; k < 128; k++) {
        if (!v.read(&name[k], e[0] + k, 1)) throw VmmError(ErrorCode::Protocol, "farcall_serve(): entry name outside memory");
        if (!name[k]) break;
      }
      if (!name[0] || name[128] || std::strchr(name, '.'))
        throw VmmError(ErrorCode::Protocol, "farcall_serve(): entry names are 1..128 characters without '.'");
      if (!v.ptr(e[1], 1)) throw VmmError(ErrorCode::Protocol, std::string("entry ") + name + " points outside backend memory");
      if (find(name) >= 0) throw VmmError(ErrorCode::Protocol, std::string("entry ") + name + " registered twice");
      entries_.push_back(EntryPoint{name, e[1]});
    }
    fs_base_ = cpu.sregs().fs.base;
    gs_base_ = cpu.sregs().gs.base;
    trampoline_ = r.r9;
    if (trampoline_ && !v.ptr(trampoline_, 1)) throw VmmError(ErrorCode::Protocol, "farcall_serve(): bad trampoline");
    adopt_serve(*init);
    init.reset();
    // The instances: copies of the memory as it is now (zero pages stay holes).
    lines_ = GuestRegion::create(kPvmLinesBytes, "farcall-lines");
    for (int i = 0; i < instances; i++) {
      auto inst = std::make_unique<Instance>();
      inst->index = i;
      inst->line = new (lines_->host() + 64 * i) InstanceLine{};
      gpas_.push_back(space.take(ram_bytes_));
      inst->gpa = gpas_.back();
      inst->region = GuestRegion::create(cfg.memory_bytes, "farcall-backend");
      copy_snapshot(*inst->region);
      inst->personality = std::make_unique<Personality>(*serve_, GuestView{inst->region.get(), va_});
      Instance *ip = inst.get();
      inst->personality->set_output_sink([this, ip](int fd, const char *p, size_t n) { output(*ip, fd, p, n); });
      if (durability_ == Durability::Call) {
        inst->committed = GuestRegion::create(cfg.memory_bytes, "farcall-backend-committed");
        copy_snapshot(*inst->committed);
        inst->committed_ms = inst->personality->mem_state();
        inst->region->set_host_tracking(true);  // the VMM's writes count as the call's writes
      }
      instances_.push_back(std::move(inst));
    }
  } catch (...) {
    for (uint64_t g : gpas_) space.give(g);
    backend_va__free(va_);
    throw;
  }
}

Backend::~Backend() {
  instances_.clear();
  serve_.reset();
  for (uint64_t g : gpas_) GpaSpace::process().give(g);
  backend_va__free(va_);
}

int Backend::find(const std::string &name) const {
  for (size_t i = 0; i < entries_.size(); i++)
    if (entries_[i].name == name) return int(i);
  return -1;
}

bool Backend::take_wait(Instance *want, uint64_t owner, uint64_t deadline_ns, Instance **got) {
  // The lock words are the truth (guest kernels take them too, without the VMM). A waiter first
  // tries for a few microseconds (an in-guest call holds its instance ~1 us), then joins the
  // queue, raises the wake flag of the lines it waits for, tries again and sleeps until whoever
  // frees one of them sees the flag and hands it to the first waiter in the queue that wants it
  // (`hand_off`; the flag is raised before the retry and read after the free, both full
  // barriers, so one of the two sees the other), or until its own timer: 50 us at first,
  // doubling up to 2 ms, so a waiter costs next to no CPU while a holder sleeps or is preempted.
  // The timer is more than a safety net: on a virtual machine a wake-up sent from another CPU can
  // take milliseconds to arrive. First come, first served once a waiter has waited 2 ms: without
  // that, a caller that calls again right after its call (it never sleeps) took the lock back
  // before the woken waiter ran, for seconds (test/security/overload.test.ts).
  Waiter self{want, owner, Vcpu::now_ns()};
  auto take = [&](Waiter *as) {
    for (size_t k = 0; k < instances_.size(); k++) {
      // Round robin from after the last one taken: load (and warm connections) spread evenly.
      Instance &i = want ? *want : *instances_[(next_ + k) % instances_.size()];
      uint64_t free = 0;
      if (first_waiter(i) == as && i.line->owner.load() == 0 && i.line->owner.compare_exchange_strong(free, owner)) {
        if (!want) next_ = (size_t(i.index) + 1) % instances_.size();
        *got = &i;
        return true;
      }
      if (want) break;
    }
    return false;
  };
  uint64_t now = Vcpu::now_ns(), spin = now + kSpinNs, nap = 50000;
  if (deadline_ns && spin > deadline_ns) spin = deadline_ns;
  do {
    {
      std::lock_guard<std::mutex> g(mu_);  // next_ and the queue are guarded by it
      if (take(nullptr)) return true;      // only where nobody queues
    }
    __builtin_ia32_pause();
  } while ((now = Vcpu::now_ns()) < spin);
  std::unique_lock<std::mutex> lk(mu_);
  queue_.push_back(&self);
  for (;;) {
    if (self.got) {  // handed over (and dequeued) by hand_off
      *got = self.got;
      return true;
    }
    if (want) want->line->waiters.store(1);
    else for (auto &i : instances_) i->line->waiters.store(1);
    bool took = take(&self);
    if (took || (deadline_ns && (now = Vcpu::now_ns()) >= deadline_ns)) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), &self));
      // Whoever queued behind this one may be next on the lines it waited for.
      for (auto &i : instances_)
        if ((!want || i.get() == want) && i->line->owner.load() == 0) hand_off(*i);
      return took;
    }
    cv_.wait_for(lk, std::chrono::nanoseconds(deadline_ns ? std::min(nap, deadline_ns - now) : nap));
    nap = std::min<uint64_t>(nap * 2, 2000000);
  }
}

Backend::Waiter *Backend::first_waiter(Instance &inst) {
  for (Waiter *w : queue_)
    if (!w->want || w->want == &inst) return w;
  return nullptr;
}

void Backend::hand_off(Instance &inst) {
  // Only to a waiter that has waited a while: handing every free over would cost callers that
  // call in a tight loop a wake-up and two exits per call; letting the holder take the lock back
  // a few times keeps them at one (as Go's mutex, which hands off after 1 ms).
  Waiter *w = first_waiter(inst);
  uint64_t free = 0;
  bool starving = w && Vcpu::now_ns() - w->since >= kHandOffNs;
  if (starving && inst.line->owner.compare_exchange_strong(free, w->owner)) {
    if (!w->want) next_ = (size_t(inst.index) + 1) % instances_.size();
    w->got = &inst;
    queue_.erase(std::find(queue_.begin(), queue_.end(), w));
    w = first_waiter(inst);
    starving = w && Vcpu::now_ns() - w->since >= kHandOffNs;
  }
  // Kept raised for a waiter that is owed the next free; the others raise it again when they
  // retry (a free costs at most one wake-up per sleep).
  inst.line->waiters.store(starving ? 1 : 0);
  cv_.notify_all();  // the one handed the line, and the others to retry: each re-checks under mu_
}

Instance *Backend::acquire(uint64_t deadline_ns) {
  Instance *got = nullptr;
  return take_wait(nullptr, kHostOwner, deadline_ns, &got) ? got : nullptr;
}

bool Backend::acquire_for(Instance &inst, uint64_t owner, uint64_t deadline_ns) {
  Instance *got = nullptr;
  return take_wait(&inst, owner, deadline_ns, &got);
}

void Backend::copy_snapshot(GuestRegion &dst) { serve_ram_->copy_data_to(dst); }

void Backend::adopt_serve(Process &init) {
  serve_ram_ = init.vm().ram_ptr();
  serve_ = std::make_unique<Personality>(init.sys(), GuestView{serve_ram_.get(), va_});
  init_stats_ = init.sys().stats_snapshot();
}

void Backend::restore(Instance &inst) {
  inst.region->punch_all();  // everything the instance wrote is gone...
  copy_snapshot(*inst.region);  // ...and the state right after farcall_serve() is back
  inst.personality->mem_state() = serve_->mem_state();
  inst.personality->reset_output();
  inst.personality->close_sockets();
  inst.personality->reset_view();
  if (inst.committed) {
    inst.committed->punch_all();
    copy_snapshot(*inst.committed);
    inst.committed_ms = serve_->mem_state();
    std::fill(inst.region->host_dirty().begin(), inst.region->host_dirty().end(), 0);
  }
}

std::vector<uint64_t> Backend::written(Instance &inst, Vm *vm, bool rearm) {
  // Re-arming the log costs a write-protection fault (~30 us under shadow paging) on the next
  // write to each page, which a call would pay on every commit for its stack and data pages.
  // So pages stay writable and are copied at every commit until the log is re-armed, every
  // kRearmEvery commits: a superset of what the call wrote, which commit and undo both allow
  // (those pages' committed copies equal their live ones).
  std::vector<uint64_t> pages;
  if (vm) vm->region_dirty(inst.gpa, [&](uint64_t pg) { pages.push_back(pg); }, rearm);
  auto &hd = inst.region->host_dirty();
  for (uint64_t w = 0; w < hd.size(); w++) {
    for (uint64_t bits = hd[w]; bits; bits &= bits - 1) pages.push_back(w * 64 + __builtin_ctzll(bits));
    hd[w] = 0;
  }
  return pages;
}

void Backend::commit(Instance &inst, Vm *vm) {
  if (!inst.committed) return;
  bool rearm = ++inst.commits_since_rearm >= kRearmEvery;
  if (rearm) inst.commits_since_rearm = 0;
  std::vector<uint64_t> pages = written(inst, vm, rearm);  // a page may be listed twice: copying it twice is harmless
  for (uint64_t pg : pages) std::memcpy(inst.committed->host() + pg * 4096, inst.region->host() + pg * 4096, 4096);
  inst.committed_ms = inst.personality->mem_state();
  inst.personality->commit_sockets();
}

void Backend::finish(Instance &inst, Vm *vm, bool ok, const std::string &why) {
  if (ok || !inst.committed) {
    commit(inst, vm);
    release(&inst, !ok, why);
    return;
  }
  uint64_t t0 = Vcpu::now_ns();
  std::vector<uint64_t> pages = written(inst, vm, false);
  for (uint64_t pg : pages) std::memcpy(inst.region->host() + pg * 4096, inst.committed->host() + pg * 4096, 4096);
  inst.personality->mem_state() = inst.committed_ms;
  inst.personality->undo_sockets();
  inst.personality->reset_output();
  inst.restores++;
  restores++;
  emit(BackendEvent{BackendEvent::Restore, inst.index, "", Vcpu::now_ns() - t0,
                    why + " (the call undone: " + std::to_string(pages.size()) + " pages put back)"});
  release(&inst, false, why);
}

void Backend::output(Instance &inst, int fd, const char *p, size_t n) {
  // One look at the listener, under the lock emit() takes: checked and called together.
  std::lock_guard<std::mutex> lk(event_mu_);
  if (!on_event_ || output_queued_ + n > kOutputQueued) {
    output_dropped += n;
    return;
  }
  output_queued_ += n;
  on_event_(BackendEvent{BackendEvent::Output, inst.index, fd == 2 ? "stderr" : "stdout", 0, std::string(p, n)});
}

void Backend::restart(uint64_t deadline_ns) {
  set_available(false);
  if (std::string snap = restart_snapshot(); !snap.empty()) {
    try {
      restart_from_snapshot(snap, deadline_ns);
      return;
    } catch (const VmmError &e) {
      bool unusable = e.code() == ErrorCode::SnapshotCorrupt || e.code() == ErrorCode::SnapshotIncompatible;
      if (elf_.empty() || !unusable) throw;
      emit(BackendEvent{BackendEvent::Restore, -1, "", 0, std::string("restarting from the program: ") + e.what()});
    }
  }
  GpaSpace &space = GpaSpace::process();
  uint64_t gpa = space.take(ram_bytes_);
  std::unique_ptr<Process> fresh;
  try {
    fresh = initialize(gpa);
  } catch (...) {
    space.give(gpa);
    throw;
  }
  // Same program, so the same layout: entry points, call stack and thread pointer must match.
  kvm_regs &r = fresh->vm().vcpu().regs();
  bool same = ((r.rdx + r.r10) & ~15ull) == stack_top_ && r.r8 == call_info_ && fresh->vm().vcpu().sregs().fs.base == fs_base_ && r.rsi == entries_.size();
  if (!same) {
    space.give(gpa);
    throw VmmError(ErrorCode::Protocol, "backend program registered different entry points after a restart");
  }
  std::vector<Instance *> held;
  for (size_t i = 0; i < instances_.size(); i++) {
    Instance *in = acquire(deadline_ns);
    if (!in) {
      for (Instance *h : held) release(h, false, "");
      space.give(gpa);
      throw VmmError(ErrorCode::Timeout, "backend restart timed out waiting for calls in flight");
    }
    held.push_back(in);
  }
  {
    std::lock_guard<std::mutex> lk(mu_);  // init_stats() reads init_stats_
    adopt_serve(*fresh);
  }
  std::swap(gpas_[0], gpa);
  fresh.reset();
  space.give(gpa);
  for (Instance *h : held) {
    restore(*h);
    h->restores++;
    restores++;
  }
  for (Instance *h : held) release(h, false, "");
  set_available(true);
}

void Backend::set_available(bool on) {
  available_ = on;
  reinterpret_cast<std::atomic<uint64_t> *>(lines_->host() + kPvmUnavailableOff)->store(on ? 0 : 1);
}

void Backend::release(Instance *inst, bool do_restore, const std::string &why) {
  if (do_restore) {
    uint64_t t0 = Vcpu::now_ns();
    restore(*inst);  // still busy: nobody can enter it meanwhile
    inst->restores++;
    restores++;
    emit(BackendEvent{BackendEvent::Restore, inst->index, "", Vcpu::now_ns() - t0, why});
  }
  inst->line->owner.store(0);
  if (inst->line->waiters.load()) wake(*inst);
}

void Backend::wake(Instance &inst) {
  {
    // Under the lock: a waiter raises the flag, tries and sleeps without letting go of it.
    std::lock_guard<std::mutex> lk(mu_);
    hand_off(inst);
  }
}

}  // namespace farcall
