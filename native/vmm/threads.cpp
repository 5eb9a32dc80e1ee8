// Guest threads on one vCPU (threads.h, docs/threads.md): the system calls (clone, futex, thread
// exit, ...) are the personality's; switching the vCPU between threads is the process's.
#include <time.h>

#include <cerrno>
#include <cstring>

#include "process.h"
#include "personality.h"
#include "layout.h"

namespace farcall {
namespace {
uint64_t neg(int e) { return uint64_t(-int64_t(e)); }

enum : uint64_t {
  NR_sched_yield = 24, NR_nanosleep = 35, NR_clone = 56, NR_exit = 60, NR_gettid = 186,
  NR_tkill = 200, NR_futex = 202, NR_sched_getaffinity = 204, NR_set_tid_address = 218,
  NR_clock_nanosleep = 230, NR_tgkill = 234, NR_set_robust_list = 273,
  NR_get_robust_list = 274, NR_membarrier = 324, NR_clone3 = 435,
};
constexpr uint64_t kClone_VM = 0x100, kClone_FS = 0x200, kClone_FILES = 0x400, kClone_SIGHAND = 0x800,
                   kClone_SETTLS = 0x80000, kClone_PARENT_SETTID = 0x100000, kClone_CHILD_CLEARTID = 0x200000,
                   kClone_THREAD = 0x10000, kClone_SYSVSEM = 0x40000, kClone_CHILD_SETTID = 0x1000000,
                   kClone_DETACHED = 0x400000;
// Flags a thread clone may carry; anything else (a new process, namespaces, vfork) is refused.
constexpr uint64_t kThreadFlags = kClone_VM | kClone_FS | kClone_FILES | kClone_SIGHAND | kClone_THREAD | kClone_SYSVSEM |
                                  kClone_SETTLS | kClone_PARENT_SETTID | kClone_CHILD_CLEARTID | kClone_CHILD_SETTID |
                                  kClone_DETACHED;

// Signals whose default action is to do nothing: sent to a thread they are not delivered
// (guest signal handlers never run), which is what runtimes that use them to nudge a thread
// (Go's preemption, SIGURG) can live with.
bool ignored_by_default(uint64_t sig) { return sig == 17 || sig == 18 || sig == 23 || sig == 28; }

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}
}  // namespace

// A guest timespec as ns, or a negative errno. `abs_clock` >= 0: an absolute time on that clock,
// turned into a CLOCK_MONOTONIC deadline; otherwise a relative one from now.
int64_t Personality::thread_deadline(uint64_t at, int abs_clock) {
  timespec ts;
  if (!mem_.read(&ts, at, sizeof ts)) return -EFAULT;
  if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000) return -EINVAL;
  if (ts.tv_sec > int64_t(1) << 32) return int64_t(~0ull >> 2);  // practically forever
  uint64_t t = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec), now = mono_ns();
  if (abs_clock < 0) return int64_t(now + t);
  if (abs_clock == CLOCK_MONOTONIC) return int64_t(t);
  timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  uint64_t rnow = uint64_t(real.tv_sec) * 1000000000ull + uint64_t(real.tv_nsec);
  return int64_t(t > rnow ? now + (t - rnow) : now);
}

uint64_t Personality::futex_wake(uint64_t addr, uint64_t n, uint32_t bitset) {
  uint64_t woken = 0;
  for (auto &t : ms_.threads.list) {
    if (woken >= n) break;
    if (t.state != GuestThread::FutexWait || t.futex != addr || !(t.bitset & bitset)) continue;
    t.state = GuestThread::Runnable;
    t.result = 0;
    woken++;
  }
  return woken;
}

uint64_t Personality::sys_futex(uint64_t addr, uint64_t op, uint64_t val, uint64_t a3, uint64_t addr2, uint64_t val3) {
  constexpr uint64_t kPrivate = 128, kRealtime = 256;
  uint64_t cmd = op & ~(kPrivate | kRealtime);
  if (addr % 4) return neg(EINVAL);
  uint32_t cur;
  switch (cmd) {
    case 0:  // FUTEX_WAIT: relative timeout
    case 9: {  // FUTEX_WAIT_BITSET: absolute timeout
      uint32_t bits = cmd == 9 ? uint32_t(val3) : ~0u;
      if (!bits) return neg(EINVAL);
      if (!mem_.read(&cur, addr, 4)) return neg(EFAULT);
      if (cur != uint32_t(val)) return neg(EAGAIN);
      int64_t deadline = 0;
      if (a3) {
        deadline = thread_deadline(a3, cmd == 0 ? -1 : (op & kRealtime) ? CLOCK_REALTIME : CLOCK_MONOTONIC);
        if (deadline < 0) return neg(int(-deadline));
        if (uint64_t(deadline) <= mono_ns()) return neg(ETIMEDOUT);
      }
      GuestThread &me = ms_.threads.current();
      me.state = GuestThread::FutexWait;
      me.futex = addr;
      me.bitset = bits;
      me.deadline = uint64_t(deadline);
      ms_.threads.ask = ThreadTable::Block;
      return 0;
    }
    case 1:   // FUTEX_WAKE
    case 10:  // FUTEX_WAKE_BITSET
      if (cmd == 10 && !uint32_t(val3)) return neg(EINVAL);
      if (!mem_.ptr(addr, 4)) return neg(EFAULT);
      return futex_wake(addr, uint32_t(val), cmd == 10 ? uint32_t(val3) : ~0u);
    case 3:    // FUTEX_REQUEUE
    case 4: {  // FUTEX_CMP_REQUEUE: wake `val`, move up to `a3` (a number here) to addr2
      if (addr2 % 4) return neg(EINVAL);
      if (!mem_.read(&cur, addr, 4) || !mem_.ptr(addr2, 4)) return neg(EFAULT);
      if (cmd == 4 && cur != uint32_t(val3)) return neg(EAGAIN);
      uint64_t n = futex_wake(addr, uint32_t(val), ~0u), moved = 0;
      for (auto &t : ms_.threads.list)
        if (moved < uint32_t(a3) && t.state == GuestThread::FutexWait && t.futex == addr) t.futex = addr2, moved++;
      return n + (cmd == 4 ? moved : 0);
    }
    default:
      count_syscall(NR_futex, true);
      return neg(ENOSYS);  // PI futexes, FUTEX_WAKE_OP, FUTEX_WAIT_REQUEUE_PI
  }
}

uint64_t Personality::sys_clone(uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls) {
  // A backend (its instances run on their callers' vCPUs, its init too): no threads.
  if (!threads_ok() || !cpu_) {
    count_syscall(NR_clone, true);
    return neg(ENOSYS);
  }
  // A new process (fork, vfork, posix_spawn) is not supported; only threads.
  if ((flags & (kClone_VM | kClone_THREAD | kClone_SIGHAND)) != (kClone_VM | kClone_THREAD | kClone_SIGHAND) ||
      (flags & ~(kThreadFlags | 0xff))) {
    count_syscall(NR_clone, true);
    return neg(ENOSYS);
  }
  if (flags & 0xff) return neg(EINVAL);  // a thread's exit signal must be 0
  ThreadTable &tt = ms_.threads;
  if (tt.list.size() >= cfg_.max_threads) return neg(EAGAIN);
  if (tls >> 47 && (flags & kClone_SETTLS)) return neg(EPERM);
  int tid = tt.next_tid;
  if ((flags & kClone_PARENT_SETTID) && !mem_.write(ptid, &tid, 4)) return neg(EFAULT);
  if ((flags & kClone_CHILD_SETTID) && !mem_.write(ctid, &tid, 4)) return neg(EFAULT);
  tt.next_tid++;
  GuestThread t;  // the parent's state at this call (its `syscall` instruction returns in both)
  t.tid = tid;
  t.state = GuestThread::Runnable;
  t.regs = cpu_->regs();
  t.fs = cpu_->sregs().fs.base;
  t.gs = cpu_->sregs().gs.base;
  cpu_->get_xsave(t.xsave);
  if (stack) t.regs.rsp = stack;
  t.result = 0;  // the child's clone returns 0
  if (flags & kClone_SETTLS) t.fs = tls;
  if (flags & kClone_CHILD_CLEARTID) t.clear_tid = ctid;
  tt.list.push_back(std::move(t));
  return uint64_t(tid);
}

void Process::thread_save(GuestThread &t) {
  Vcpu &c = vm_->vcpu();
  t.regs = c.regs();
  t.fs = c.sregs().fs.base;
  t.gs = c.sregs().gs.base;
  c.get_xsave(t.xsave);
  t.preempted = false;
}

void Process::thread_load(GuestThread &t) {
  vm_->to_syscall_state();  // e.g. a pending `call` return of the trap page is not this thread's
  Vcpu &c = vm_->vcpu();
  c.regs() = t.regs;
  c.regs_dirty();
  kvm_sregs &s = c.sregs();
  s.fs.base = t.fs;
  // pvm-native: GS.base is the guest kernel's during a system call; the user's is per process.
  if (vm_->mode() != EntryMode::PvmNative) s.gs.base = t.gs;
  c.sregs_dirty();
  c.set_xsave(t.xsave);
}

std::string Process::thread_describe() {
  std::string s;
  for (auto &t : sys_->mem_state().threads.list) {
    char b[96];
    if (t.state == GuestThread::FutexWait)
      snprintf(b, sizeof b, "%sthread %d waits on futex 0x%llx", s.empty() ? "" : ", ", t.tid, (unsigned long long)t.futex);
    else
      snprintf(b, sizeof b, "%sthread %d waits on a descriptor", s.empty() ? "" : ", ", t.tid);
    s += b;
  }
  return s;
}

uint64_t Process::thread_schedule(bool live, uint64_t deadline_ns, Stop *stop) {
  // `live`: the vCPU still holds list[cur]'s registers (it was saved, not removed).
  ThreadTable &tt = sys_->mem_state().threads;
  for (;;) {
    uint64_t now = mono_ns(), earliest = 0;
    for (auto &t : tt.list) {
      if ((t.state != GuestThread::FutexWait && t.state != GuestThread::Sleeping) || !t.deadline) continue;
      if (t.deadline <= now) {
        t.result = t.state == GuestThread::FutexWait ? neg(ETIMEDOUT) : 0;
        t.state = GuestThread::Runnable;
      } else if (!earliest || t.deadline < earliest) {
        earliest = t.deadline;
      }
    }
    size_t n = tt.list.size();
    for (size_t i = 1; i <= n; i++) {
      size_t j = (tt.cur + i) % n;
      GuestThread &t = tt.list[j];
      if (t.state != GuestThread::Runnable) continue;
      bool same = live && j == tt.cur;
      tt.cur = j;
      t.state = GuestThread::Running;
      if (!same) thread_load(t);
      if (same) vm_->vcpu().regs() = t.regs, vm_->vcpu().regs_dirty();  // a retried call's RIP
      if (t.preempted && !thread_resume_preempted(t, stop)) return 0;
      return t.result;
    }
    if (!earliest) {
      stop->kind = Stop::Fault;
      stop->event = Event{};
      stop->event.kind = Event::Unexpected;
      stop->event.rip = vm_->vcpu().regs().rcx;
      stop->event.detail = "deadlock: every guest thread is blocked and nothing can wake one (" + thread_describe() + ")";
      return 0;
    }
    if (deadline_ns && now >= deadline_ns) {
      stop->kind = Stop::Timeout;
      stop->event = Event{};
      stop->event.kind = Event::Timeout;
      stop->message = "execution timed out";
      return 0;
    }
    uint64_t until = deadline_ns && deadline_ns < earliest ? deadline_ns : earliest;
    timespec ts = {time_t(until / 1000000000ull), long(until % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);  // the watchdog interrupts it
  }
}

bool Process::thread_resume_preempted(GuestThread &t, Stop *stop) {
  // The vCPU resumes as from a system call (RIP = RCX, RFLAGS = R11, RAX = the result), so the
  // thread goes through the reset page's resume code with a record below its red zone that
  // gives back RCX, R11, RFLAGS and RIP (native/kernel/reset.S).
  kvm_regs &r = vm_->vcpu().regs();
  uint64_t rec[4] = {t.regs.r11, t.regs.rcx, t.regs.rflags, t.regs.rip};
  uint64_t at = t.regs.rsp - 128 - sizeof rec;
  if (!sys_->view().write(at, rec, sizeof rec)) {
    stop->kind = Stop::Fault;
    stop->event = Event{};
    stop->event.kind = Event::Unexpected;
    stop->event.rip = t.regs.rip;
    stop->event.detail = "a preempted thread's stack is not writable";
    return false;
  }
  r.rsp = at;
  r.rcx = layout::kResetVa + layout::kThreadResume;
  r.r11 = 0x202;
  vm_->vcpu().regs_dirty();
  t.preempted = false;
  return true;
}

uint64_t Process::thread_tick(uint64_t deadline_ns) {
  // With more than one thread, the VM comes back every kSlice so that a thread spinning without
  // system calls cannot keep the others from running.
  constexpr uint64_t kSlice = 10000000;  // 10 ms
  bool many = sys_->mem_state().threads.list.size() > 1;
  uint64_t now = mono_ns();
  if (!many) {
    if (tick_at_) {  // back to the request's own limit
      tick_at_ = 0;
      if (deadline_ns) watchdog::arm(&vm_->vcpu(), pthread_self(), deadline_ns);
      else watchdog::disarm(&vm_->vcpu());
    }
    return deadline_ns;
  }
  if (tick_at_ <= now) {
    tick_at_ = now + kSlice;
    if (deadline_ns && deadline_ns < tick_at_) tick_at_ = deadline_ns;
    watchdog::arm(&vm_->vcpu(), pthread_self(), tick_at_);
  }
  return tick_at_;
}

bool Process::thread_preempt(uint64_t deadline_ns, Stop *stop) {
  // A tick (not the request's limit): the thread on the vCPU goes to the back of the queue if
  // another one can run. False when this Timeout is the request's own.
  ThreadTable &tt = sys_->mem_state().threads;
  uint64_t now = mono_ns();
  if (!tick_at_ || (deadline_ns && now >= deadline_ns) || tt.list.size() < 2) return false;
  tick_at_ = 0;
  bool other = false;
  for (size_t i = 0; i < tt.list.size(); i++) {
    GuestThread &t = tt.list[i];
    if ((t.state == GuestThread::FutexWait || t.state == GuestThread::Sleeping) && t.deadline && t.deadline <= now)
      other = true;  // thread_schedule() wakes it
    if (i != tt.cur && (t.state == GuestThread::Runnable || t.state == GuestThread::Retry)) other = true;
  }
  if (!other || !vm_->in_user()) return true;  // nothing else to run, or not at a user instruction: next tick
  for (auto &t : tt.list)
    if (t.state == GuestThread::Retry) t.state = GuestThread::Runnable;
  GuestThread &me = tt.current();
  thread_save(me);
  me.preempted = true;
  me.result = me.regs.rax;
  me.state = GuestThread::Runnable;
  vm_->to_syscall_state();
  uint64_t r = thread_schedule(false, deadline_ns, stop);
  if (stop->kind == Stop::Running) vm_->syscall_return(r);
  return true;
}

uint64_t Personality::thread_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                     uint64_t a5, bool *handled) {
  *handled = true;
  ThreadTable &tt = ms_.threads;
  switch (nr) {
    case NR_clone: return sys_clone(a0, a1, a2, a3, a4);
    case NR_clone3:
      count_syscall(nr, true);
      return neg(ENOSYS);  // glibc falls back to clone; Go and Rust's std use clone or pthreads
    case NR_gettid: return uint64_t(tt.current().tid);
    case NR_set_tid_address:
      tt.current().clear_tid = a0;
      return uint64_t(tt.current().tid);
    case NR_set_robust_list: return a1 == 24 ? 0 : neg(EINVAL);  // kept nowhere: no process dies with a lock
    case NR_get_robust_list: return neg(EPERM);
    case NR_membarrier:
      // One vCPU: every thread already sees every store, so each command is satisfied at once.
      if (a0 == 0) return 1 | 8 | 16 | 32 | 64;  // QUERY: GLOBAL, PRIVATE_EXPEDITED (+ register), SYNC_CORE
      return a0 & (a0 - 1) ? neg(EINVAL) : 0;
    case NR_sched_getaffinity: {
      if (a1 < 8 || a1 % 8) return neg(EINVAL);
      uint64_t mask = 1;
      return mem_.write(a2, &mask, 8) ? 8 : neg(EFAULT);
    }
    case NR_exit:
      if (tt.list.size() > 1) {
        GuestThread &me = tt.current();
        if (me.clear_tid) {
          uint32_t zero = 0;
          if (mem_.write(me.clear_tid, &zero, 4)) futex_wake(me.clear_tid, 1, ~0u);
        }
        tt.ask = ThreadTable::Exit;
        return 0;
      }
      break;
    case NR_tkill:
    case NR_tgkill: {
      uint64_t tid = nr == NR_tgkill ? a1 : a0, sig = nr == NR_tgkill ? a2 : a1;
      if (sig > 64 || (nr == NR_tgkill && a0 != 1)) return neg(sig > 64 ? EINVAL : ESRCH);
      if (!tt.find(int(tid))) return neg(ESRCH);
      if (sig == 0 || ignored_by_default(sig)) return 0;
      break;  // any other signal ends the process, as its default action does
    }
    case NR_futex:
      if (!threads_ok()) break;
      return sys_futex(a0, a1, a2, a3, a4, a5);
    case NR_sched_yield:
      if (tt.list.size() < 2) return 0;
      tt.current().state = GuestThread::Runnable;
      tt.current().result = 0;
      tt.ask = ThreadTable::Yield;
      return 0;
    case NR_nanosleep:
    case NR_clock_nanosleep: {
      if (!threads_ok()) break;
      bool abs = nr == NR_clock_nanosleep && (a1 & 1);
      if (nr == NR_clock_nanosleep && a0 != CLOCK_MONOTONIC && a0 != CLOCK_REALTIME && a0 != CLOCK_BOOTTIME)
        return neg(EINVAL);
      int64_t d = thread_deadline(nr == NR_nanosleep ? a0 : a2,
                                  !abs ? -1 : a0 == CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC);
      if (d < 0) return neg(int(-d));
      GuestThread &me = tt.current();
      me.state = GuestThread::Sleeping;
      me.deadline = uint64_t(d) ? uint64_t(d) : 1;
      me.result = 0;
      tt.ask = ThreadTable::Block;
      return 0;
    }
    default: break;
  }
  *handled = false;
  return 0;
}

bool Personality::thread_retry() {
  // A wait on a descriptor that only another guest thread could end: that thread runs first,
  // and the call is made again afterwards (nothing is lost: the call did not happen).
  ThreadTable &tt = ms_.threads;
  if (tt.list.size() < 2) return false;
  for (size_t i = 0; i < tt.list.size(); i++)
    if (i != tt.cur && tt.list[i].state != GuestThread::Retry) {
      tt.current().state = GuestThread::Retry;
      tt.ask = ThreadTable::Block;
      return true;
    }
  return false;  // every other thread is waiting on a descriptor too: a deadlock
}

uint64_t Process::thread_after(uint64_t ret, uint64_t deadline_ns, Stop *stop) {
  ThreadTable &tt = sys_->mem_state().threads;
  ThreadTable::Ask ask = tt.ask;
  tt.ask = ThreadTable::None;
  if (tt.list.size() < 2 && ask == ThreadTable::None) return ret;
  bool retry = ask == ThreadTable::Block && tt.current().state == GuestThread::Retry;
  if (!retry)  // a call that did something may have made a descriptor ready for a waiting thread
    for (auto &t : tt.list)
      if (t.state == GuestThread::Retry) t.state = GuestThread::Runnable;
  if (ask == ThreadTable::None || stop->kind != Stop::Running) return ret;
  if (ask == ThreadTable::Exit) {
    tt.list.erase(tt.list.begin() + long(tt.cur));
    tt.cur = (tt.cur + tt.list.size() - 1) % tt.list.size();
    return thread_schedule(false, deadline_ns, stop);
  }
  GuestThread &me = tt.current();
  thread_save(me);
  if (retry) {
    me.regs.rcx -= 2;          // back onto the `syscall` instruction
    me.result = me.regs.rax;   // with the same number; the arguments are untouched
    me.state = GuestThread::Retry;
  }
  return thread_schedule(true, deadline_ns, stop);
}

}  // namespace farcall
