#include "fork.h"


#include <cstring>

#include "backend.h"
#include "error.h"
#include "layout.h"

namespace farcall {


Master::Master(const std::vector<uint8_t> &elf, const ProcessConfig &cfg, uint64_t timeout_ns,
               const std::vector<std::pair<std::string, std::shared_ptr<Backend>>> &backends) {
  proc_ = std::make_unique<Process>(elf, cfg);
  for (auto &[name, b] : backends) proc_->gate().attach(b.get(), b, name);
  uint64_t t0 = Vcpu::now_ns();
  Stop st = proc_->run_for(timeout_ns);
  init_ns_ = Vcpu::now_ns() - t0;
  if (st.kind == Stop::Farcall && st.nr == kSysServe)
    throw VmmError(ErrorCode::Protocol, "this is a backend program (it called farcall_serve()): load it as a Backend");
  if (st.kind != Stop::Farcall || st.nr != kSysReady) {
    std::string out = proc_->sys().err().empty() ? "" : ": " + proc_->sys().err().substr(0, 500);
    if (!proc_->gate().lookup_miss().empty()) out += "; " + proc_->gate().lookup_miss();
    throw VmmError(st.kind == Stop::Timeout ? ErrorCode::Timeout : ErrorCode::Protocol,
                   "request program " + stop__describe(st) + " before calling farcall_ready()" + out);
  }
  // A program that names a backend its pool does not attach is misconfigured: say so now, rather
  // than let every request fail with the program's own "not found".
  if (!proc_->gate().unattached_lookup().empty())
    throw VmmError(ErrorCode::Protocol, "request program's " + proc_->gate().unattached_lookup() + ": give the pool that backend");
  kvm_regs &r = proc_->vm().vcpu().regs();
  arena_ = r.rdi;
  arena_size_ = r.rsi;
  current_ = r.rdx;
  if (!proc_->vm().user_ptr(arena_, arena_size_) || !proc_->vm().user_ptr(current_, 16))
    throw VmmError(ErrorCode::Protocol, "farcall_ready() passed an arena outside guest memory");
  // The state every fork starts from: farcall_ready() returning 0.
  proc_->vm().syscall_return(0);
  state_ = proc_->vm().save_state();
  image_ = proc_->vm().ram().data_ranges();
  image_bytes_ = proc_->vm().ram().allocated_bytes();
  proc_->vm().arm_reset_page(state_);
}

Fork::Fork(Master &master, uint64_t max_private_pages) : master_(master), max_private_(max_private_pages) {
  proc_ = std::make_unique<Process>(master.process(), master.state(), true);
  Vm &vm = proc_->vm();
  if (vm.pvm_gate()) vm.pvm_select(master.next_instance(vm.pvm_pairs()));
  mem0_ = proc_->sys().mem_state();
  proc_->vm().ram().set_host_tracking(true);
  private_.assign((proc_->vm().ram().pages() + 63) / 64, 0);
  if (vm.ram_bytes() > proc_->sys().config().memory_bytes) {
    // The count against the limit: the master's image as it was at farcall_ready() (not the
    // memfd now: other forks' faults add zero pages to it) and this fork's written pages.
    limit_ = proc_->sys().config().memory_bytes;
    proc_->sys().set_touched([this] { return master_.image_bytes() + proc_->vm().dirty_count(0) * 4096; });
  }
}

void Master::trim_image() {
  GuestRegion &ram = proc_->vm().ram();
  if (ram.allocated_bytes() > image_bytes_) ram.punch_outside(image_);
}

void Fork::mark_private(uint64_t page) {
  uint64_t &w = private_[page / 64], bit = 1ull << (page % 64);
  if (!(w & bit)) {
    w |= bit;
    private_count_++;
  }
}

RequestOutcome Fork::request(const uint8_t *data, size_t len, uint64_t timeout_ns, uint64_t max_response) {
  RequestOutcome o;
  if (broken_) {
    o.code = "Internal";
    o.message = "this fork could not be reset after an earlier failure; it must be replaced";
    return o;
  }
  if (len > master_.arena_size()) {
    o.code = "InvalidArgument";
    o.message = "request of " + std::to_string(len) + " bytes is larger than the guest's arena (" +
                std::to_string(master_.arena_size()) + " bytes, FARCALL_ARENA_SIZE)";
    return o;  // nothing ran, nothing to reset
  }
  proc_->sys().reset_output();
  bool faulted = true;
  const char *why = "error";
  try {
    run_one(o, data, len, timeout_ns, max_response, &faulted, &why);
  } catch (const std::exception &e) {  // a VMM error or an allocation failure: fail this request
    const VmmError *ve = dynamic_cast<const VmmError *>(&e);
    o.ok = false;
    o.response.clear();
    o.stop_valid = false;
    o.code = ve ? error_code__name(ve->code()) : "Internal";
    o.message = ve ? std::string(e.what()) : std::string("request failed in the VMM: ") + e.what();
    if (o.out.empty()) o.out.swap(proc_->sys().out());
    if (o.err.empty()) o.err.swap(proc_->sys().err());
    faulted = true;
    why = "error";
  }
  // Nothing this request printed stays in the VMM for the next one, whatever happened above.
  proc_->sys().reset_output();
  try {
    o.reset = reset(faulted, why);
    if (o.reset.over_limit) {
      o.ok = false;
      o.response.clear();
      o.code = "MemoryLimit";
      o.message = "the request touched " + std::to_string(o.reset.touched >> 20) + " MiB of guest memory, over its limit of " +
                  std::to_string(limit_ >> 20) + " MiB (memoryMiB; reserved address space is free only until it is written)";
    }
  } catch (const std::exception &e) {
    broken_ = true;  // the owner replaces the fork (addon: ForkRequest)
    o.ok = false;
    o.response.clear();
    if (o.code.empty() || o.code == "RequestFailed") o.code = "Internal";
    o.message += (o.message.empty() ? "" : "; ") + std::string("the fork could not be reset: ") + e.what();
  }
  return o;
}

void Fork::run_one(RequestOutcome &o, const uint8_t *data, size_t len, uint64_t timeout_ns, uint64_t max_response,
                   bool *faulted, const char **why) {
  Vm &vm = proc_->vm();
  vm.copy_to_user(master_.arena(), data, len);
  uint64_t cur[2] = {master_.arena(), len};
  vm.copy_to_user(master_.current(), cur, sizeof cur);

  uint64_t t0 = Vcpu::now_ns();
  Stop st = proc_->run_for(timeout_ns);
  o.run_ns = Vcpu::now_ns() - t0;
  o.out.swap(proc_->sys().out());
  o.err.swap(proc_->sys().err());
  *faulted = true;
  *why = "fault";
  if (st.kind == Stop::Farcall && st.nr == kSysRespond) {
    kvm_regs &r = vm.vcpu().regs();
    const uint8_t *p = vm.user_ptr(r.rdi, r.rsi);
    if (r.rsi > max_response) {
      o.code = "OutputLimit";
      o.message = "response of " + std::to_string(r.rsi) + " bytes is over the limit of " + std::to_string(max_response) +
                  " bytes (maxResponseBytes)";
      *faulted = false;  // an orderly answer, only too large: the fork is intact
    } else if (p || r.rsi == 0) {
      o.response.assign(reinterpret_cast<const char *>(p), r.rsi);
      o.ok = true;
      *faulted = false;
    } else {
      o.code = "Protocol";
      o.message = "farcall_respond() was given a buffer outside guest memory";
    }
  } else if (st.kind == Stop::Farcall && st.nr == kSysFail) {
    kvm_regs &r = vm.vcpu().regs();
    uint64_t n = std::min<uint64_t>(r.rsi, 4096);
    const uint8_t *p = vm.user_ptr(r.rdi, n);
    o.code = "RequestFailed";
    o.message = p ? std::string(reinterpret_cast<const char *>(p), n) : "request failed (message outside guest memory)";
    *faulted = false;  // an orderly failure: the fork is intact
  } else {
    o.stop = st;
    o.stop_valid = true;
    if (st.kind == Stop::Timeout) *why = "timeout";
    if (st.kind == Stop::Exited && !st.signal) {
      o.code = "Protocol";
      o.message = "request program " + stop__describe(st) + " instead of calling farcall_respond()";
    } else if (st.kind == Stop::Farcall) {
      o.code = "Protocol";
      o.message = "request program made farcall call " + std::to_string(st.nr) + " during a request";
    }
  }
}

ResetInfo Fork::reset(bool force_full, const char *why) {
  uint64_t t0 = Vcpu::now_ns();
  Vm &vm = proc_->vm();
  GuestRegion &ram = vm.ram(), &kmem = vm.kmem();
  const uint8_t *mram = ram.master()->host(), *mk = kmem.master()->host();
  ResetInfo info;
  // Which pages to put back: guest writes from the dirty log, VMM writes from its bitmap.
  // Measured here, the first guest write to a write-protected page costs ~30 us (a shadow-
  // paging fault) while copying a page back costs ~1 us. So tracking is not re-armed after
  // every reset: a written page stays writable and is copied back after every request. It is
  // re-armed (the next request's writes are seen afresh) every kTrimEvery resets, and at once
  // when many pages are writable but the requests measured after the last re-arm wrote far
  // fewer: one large request must not make the small ones after it copy back its pages.
  std::vector<uint64_t> pages, kpages;
  vm.dirty_pages(0, [&](uint64_t pg) { pages.push_back(pg); }, false);
  // The kernel region is written by the CPU only when it delivers an exception (the frame on
  // the kernel stack); in trap-page mode a request without one leaves it untouched.
  uint64_t exceptions = vm.exit_stats().exceptions;
  if (exceptions != last_exceptions_ || vm.mode() != EntryMode::TrapPage || since_trim_ + 1 >= kTrimEvery || force_full)
    vm.dirty_pages(1, [&](uint64_t pg) { kpages.push_back(pg); }, false);
  last_exceptions_ = exceptions;
  ram.take_host_dirty([&](uint64_t pg) { pages.push_back(pg); });
  for (uint64_t pg : pages) mark_private(pg);
  if (measure_next_) {  // the first request after a re-arm: what one request really writes
    measured_ = pages.size();
    measure_next_ = false;
  }
  // Lazy reservations: nothing stops a guest from writing reserved pages it never asked for
  // (protections are not enforced), so the pages written since the last re-arm (the count the
  // system calls check, Personality::over_memory) are checked here too.
  uint64_t touched = master_.image_bytes() + pages.size() * 4096;
  bool over_limit = limit_ && touched > limit_;
  bool rearm = over_limit || force_full || ++since_trim_ >= kTrimEvery ||
               (pages.size() >= kRearmPages && pages.size() > 2 * measured_);
  if (rearm) {
    vm.dirty_pages(0, [](uint64_t) {}, true);
    if (kpages.size()) vm.dirty_pages(1, [](uint64_t) {}, true);
  }
  // Over memoryMiB, every private page goes back to the master (dropped, the write set too)
  // and the request fails (Fork::request).
  if (over_limit) {
    info.touched = touched;
    pages.clear();
  }
  // Past maxDirtyMiB, the private pages written before the current write set (the pages
  // written since tracking was last re-armed) go back to the master. The write set itself is
  // copied back and kept, even when it alone passes the limit: the requests need those pages,
  // and dropping them would make the next request re-fault each one (~22 us a page here, 30-
  // 100x its copy). Dropped pages need no re-arm: KVM loses their mappings with them, and a
  // later write faults and is logged.
  std::vector<uint64_t> drop;
  uint64_t dropped = 0;
  if (over_limit || (!force_full && private_count_ > max_private_)) {
    drop = private_;
    for (uint64_t pg : pages) drop[pg / 64] &= ~(1ull << (pg % 64));
    for (uint64_t w : drop) dropped += __builtin_popcountll(w);
  }
  bool over = over_limit || dropped > 0, full = force_full || over;
  // A page can be listed twice (guest and VMM wrote it); copying it twice is harmless.
  auto copy_back = [&](uint64_t pg) { std::memcpy(ram.host() + pg * 4096, mram + pg * 4096, 4096); };
  for (uint64_t pg : kpages) std::memcpy(kmem.host() + pg * 4096, mk + pg * 4096, 4096);
  if (over) {
    // MADV_DONTNEED run by run over the bitmap, never the whole mapping: the master's pages
    // stay mapped in KVM, so the next request does not re-fault every page it reads.
    ram.drop_pages(drop);
    master_.trim_image();  // zero pages this fork's faults added to the master's memfd
    for (uint64_t w = 0; w < private_.size(); w++) private_[w] &= ~drop[w];
    private_count_ -= dropped;
    for (uint64_t pg : pages) copy_back(pg);
    info.pages = dropped + pages.size() + kpages.size();
    info.reason = over_limit ? "memory limit" : "memory";
    full_++;
  } else if (full) {
    // After a fault, a timeout or a VMM error: every private page is put back, not only those
    // written since tracking was last re-armed (copied, not dropped: nothing re-faults).
    for (uint64_t w = 0; w < private_.size(); w++)
      for (uint64_t bits = private_[w]; bits; bits &= bits - 1) copy_back(w * 64 + __builtin_ctzll(bits));
    info.pages = private_count_ + kpages.size();
    info.reason = why;
    full_++;
  } else {
    for (uint64_t pg : pages) copy_back(pg);
    info.pages = pages.size() + kpages.size();
    fast_++;
  }
  vm.restore_state(master_.state());
  if (rearm) {
    since_trim_ = 0;
    measure_next_ = true;
  }
  proc_->sys().mem_state() = mem0_;
  proc_->sys().reset_view();
  info.full = full;
  info.over_limit = over_limit;
  info.ns = Vcpu::now_ns() - t0;
  return info;
}

}  // namespace farcall
