// The Linux personality (personality.h): memory, process identity, clocks, signals as far as
// a single-threaded guest needs them. Files, fds and sockets are in files.cpp, fds.cpp, net.cpp.
#include "personality.h"

#include <sys/random.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "layout.h"

namespace farcall {
using layout::kPage;

namespace {
uint64_t page_up(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }
// A length rounded up to pages, or 0 when rounding would wrap (lengths near 2^64).
uint64_t page_len(uint64_t v) { return v > ~uint64_t(0) - (kPage - 1) ? 0 : page_up(v); }
uint64_t neg(int e) { return uint64_t(-int64_t(e)); }

// x86-64 Linux system-call numbers farcall answers.
enum : uint64_t {
  NR_read = 0, NR_write = 1, NR_close = 3, NR_fstat = 5, NR_lseek = 8, NR_mmap = 9, NR_mprotect = 10,
  NR_munmap = 11, NR_brk = 12, NR_rt_sigaction = 13, NR_rt_sigprocmask = 14, NR_ioctl = 16,
  NR_readv = 19, NR_writev = 20, NR_access = 21, NR_sched_yield = 24, NR_mremap = 25, NR_madvise = 28,
  NR_nanosleep = 35, NR_getpid = 39, NR_exit = 60, NR_kill = 62, NR_uname = 63, NR_fcntl = 72,
  NR_getcwd = 79, NR_readlink = 89, NR_gettimeofday = 96, NR_getrlimit = 97, NR_getuid = 102,
  NR_getgid = 104, NR_geteuid = 107, NR_getegid = 108, NR_getppid = 110, NR_sigaltstack = 131,
  NR_arch_prctl = 158, NR_gettid = 186, NR_tkill = 200, NR_time = 201, NR_futex = 202,
  NR_sched_getaffinity = 204, NR_set_tid_address = 218, NR_clock_gettime = 228, NR_clock_getres = 229,
  NR_clock_nanosleep = 230, NR_exit_group = 231, NR_tgkill = 234, NR_openat = 257, NR_newfstatat = 262,
  NR_readlinkat = 267, NR_set_robust_list = 273, NR_prlimit64 = 302, NR_getrandom = 318, NR_rseq = 334,
  NR_open = 2, NR_umask = 95, NR_sysinfo = 99, NR_getgroups = 115, NR_prctl = 157,
};
}  // namespace

std::string stop__describe(const Stop &st) {
  switch (st.kind) {
    case Stop::Exited:
      return st.signal ? "died of signal " + std::to_string(st.signal) : "exited with code " + std::to_string(st.exit_code);
    case Stop::Timeout: return "timed out";
    case Stop::OutputLimit: return st.message;
    case Stop::Fault:
      return "faulted (" + (st.event.kind == Event::Exception ? "vector " + std::to_string(st.event.vector) : st.event.detail) + ")";
    case Stop::Farcall: return "made farcall call " + std::to_string(st.nr);
    case Stop::Running: return "running";
  }
  return "stopped";
}

Personality::Personality(const ProcessConfig &cfg, GuestView mem, const MemState &ms)
    : cfg_(cfg), mem_(mem), ms_(ms), start_ns_(Vcpu::now_ns()) {
  if (!cfg.files_root.empty()) view_ = FileView::open_root(cfg.files_root);
}

Personality::Personality(const Personality &proto, GuestView mem)
    : cfg_(proto.cfg_), view_(proto.view_ ? FileView::layer(proto.view_) : nullptr), mem_(mem), ms_(proto.ms_), start_ns_(Vcpu::now_ns()) {}

Personality::~Personality() { close_sockets(); }

void Personality::count_syscall(uint64_t nr, bool unsupported) {
  // Numbers a guest picks are not trusted to stay few: Linux's range and farcall's are counted
  // one by one, anything else in one bucket.
  uint64_t key = nr < 1024 || (nr >= kFarcallSysFirst && nr <= kFarcallSysLast) ? nr : kOtherSyscalls;
  std::lock_guard<std::mutex> lk(stats_mu_);
  (unsupported ? stats_.unsupported : stats_.syscalls)[key]++;
}

ProcessStats Personality::stats_snapshot() {
  std::lock_guard<std::mutex> lk(stats_mu_);
  return stats_;
}

uint64_t Personality::sys_read(int fd, uint64_t buf, uint64_t len) {
  if (fd != 0) return neg(EBADF);
  uint8_t *p = mem_.ptr(buf, len);
  if (!p && len) return neg(EFAULT);
  size_t n = std::min<uint64_t>(len, cfg_.stdin_data.size() - ms_.stdin_pos);
  std::memcpy(p, cfg_.stdin_data.data() + ms_.stdin_pos, n);
  mem_.mark(buf, n);
  ms_.stdin_pos += n;
  return n;
}

uint64_t Personality::sys_write(int fd, uint64_t buf, uint64_t len, Stop *stop) {
  if (fd != 1 && fd != 2) return neg(EBADF);
  const uint8_t *p = mem_.ptr(buf, len);
  if (!p && len) return neg(EFAULT);
  if (sink_) {
    sink_(fd, reinterpret_cast<const char *>(p), len);
    return len;
  }
  std::string &o = fd == 1 ? out_ : err_;
  if (o.size() + len > cfg_.output_limit) {
    o.append(reinterpret_cast<const char *>(p), cfg_.output_limit - std::min<uint64_t>(o.size(), cfg_.output_limit));
    stop->kind = Stop::OutputLimit;
    stop->message = std::string(fd == 1 ? "stdout" : "stderr") + " passed the output limit of " +
                    std::to_string(cfg_.output_limit) + " bytes";
    return neg(EFBIG);
  }
  o.append(reinterpret_cast<const char *>(p), len);
  return len;
}

uint64_t Personality::find_gap(uint64_t len) {
  // Top-down first fit between the brk and the stack.
  uint64_t hi = ms_.mmap_top;
  for (auto it = ms_.maps.rbegin(); it != ms_.maps.rend(); ++it) {
    uint64_t end = it->first + it->second;
    if (end <= hi && hi - end >= len) return hi - len;
    hi = std::min(hi, it->first);
  }
  if (hi >= ms_.brk && hi - ms_.brk >= len) return hi - len;
  return 0;
}

void Personality::unmap_range(uint64_t a, uint64_t b) {
  // Removes [a, b) from the map of mappings, splitting where needed, and zeroes it.
  auto it = ms_.maps.lower_bound(a);
  if (it != ms_.maps.begin()) --it;
  while (it != ms_.maps.end() && it->first < b) {
    uint64_t s = it->first, e = s + it->second;
    if (e <= a) {
      ++it;
      continue;
    }
    it = ms_.maps.erase(it);
    if (s < a) ms_.maps[s] = a - s;
    if (e > b) ms_.maps[b] = e - b;
  }
  mem_.zero(a, b - a);
}

uint64_t process__space(const ProcessConfig &cfg) {
  if (cfg.ram_va) return cfg.memory_bytes;
  if (cfg.space_bytes) return std::max(cfg.space_bytes, cfg.memory_bytes);
  return std::min(layout::kMaxUserRam, cfg.memory_bytes + cfg.reserve_bytes);
}

bool Personality::over_memory() {
  if (!touched_ || touched_() <= cfg_.memory_bytes) return false;
  stats_.enomem++;
  return true;
}

uint64_t Personality::sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off) {
  constexpr uint64_t MAP_FIXED_ = 0x10, MAP_ANON_ = 0x20, MAP_FIXED_NOREPLACE_ = 0x100000;
  if (len == 0) return neg(EINVAL);
  constexpr uint64_t MAP_SHARED_ = 0x01, PROT_WRITE_ = 0x2;
  bool file = !(flags & MAP_ANON_);
  if (file) {  // a copy of the file's bytes (the view is read-only: nothing to write back)
    const OpenFile *f = ms_.fds.file_of(int(fd));
    if (!f) return neg(EBADF);
    if (f->kind != OpenFile::ViewFile && (f->kind != OpenFile::ScratchFile || (flags & MAP_SHARED_))) return neg(ENODEV);
    if ((flags & MAP_SHARED_) && (prot & PROT_WRITE_)) return neg(EACCES);
    if (off % kPage) return neg(EINVAL);
  }
  uint64_t want = len;
  len = page_len(len);
  if (over_memory()) return neg(ENOMEM);
  if (len == 0 || len > ms_.mmap_top - mem_.va) {
    stats_.enomem++;
    return neg(ENOMEM);
  }
  if (flags & (MAP_FIXED_ | MAP_FIXED_NOREPLACE_)) {
    if (addr % kPage) return neg(EINVAL);
    if (addr < ms_.brk || addr > ms_.mmap_top || len > ms_.mmap_top - addr) return neg(ENOMEM);
    if (flags & MAP_FIXED_NOREPLACE_) {
      auto it = ms_.maps.lower_bound(addr + len);
      if (it != ms_.maps.begin() && std::prev(it)->first + std::prev(it)->second > addr) return neg(EEXIST);
    }
    unmap_range(addr, addr + len);
    ms_.maps[addr] = len;
    return file ? file_mmap_copy(int(fd), addr, want, off) : addr;
  }
  uint64_t at = find_gap(len);
  if (!at) {
    stats_.enomem++;
    return neg(ENOMEM);
  }
  ms_.maps[at] = len;
  if (!file) return at;
  uint64_t r = file_mmap_copy(int(fd), at, want, off);
  if (int64_t(r) < 0) unmap_range(at, at + len);
  return r;
}

uint64_t Personality::sys_munmap(uint64_t addr, uint64_t len) {
  if (addr % kPage || len == 0 || len > ms_.mmap_top) return neg(EINVAL);
  len = page_len(len);
  if (addr < ms_.brk || addr > ms_.mmap_top || len > ms_.mmap_top - addr) return neg(EINVAL);
  unmap_range(addr, addr + len);
  return 0;
}

uint64_t Personality::sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags) {
  constexpr uint64_t MREMAP_MAYMOVE_ = 1;
  if (old % kPage || new_len == 0) return neg(EINVAL);
  old_len = page_len(old_len);
  new_len = page_len(new_len);
  if (new_len == 0 || new_len > ms_.mmap_top - mem_.va) {
    stats_.enomem++;
    return neg(ENOMEM);
  }
  auto it = ms_.maps.find(old);
  if (it == ms_.maps.end() || it->second != old_len) return neg(EFAULT);
  if (new_len <= old_len) {
    if (new_len < old_len) unmap_range(old + new_len, old + old_len);
    ms_.maps[old] = new_len;
    return old;
  }
  if (!(flags & MREMAP_MAYMOVE_) || over_memory()) return neg(ENOMEM);
  uint64_t at = find_gap(new_len);
  if (!at) {
    stats_.enomem++;
    return neg(ENOMEM);
  }
  ms_.maps[at] = new_len;
  uint8_t *dst = mem_.ptr(at, old_len), *src = mem_.ptr(old, old_len);
  std::memcpy(dst, src, old_len);
  mem_.mark(at, old_len);
  unmap_range(old, old + old_len);
  return at;
}

uint64_t Personality::sys_brk(uint64_t want) {
  if (want < ms_.brk_start) return ms_.brk;
  uint64_t limit = ms_.maps.empty() ? ms_.mmap_top : ms_.maps.begin()->first;
  if (want > limit || page_up(want) > limit) {
    stats_.enomem++;
    return ms_.brk;
  }
  if (page_up(want) > page_up(ms_.brk) && over_memory()) return ms_.brk;
  if (page_up(want) < page_up(ms_.brk)) mem_.zero(page_up(want), page_up(ms_.brk) - page_up(want));
  ms_.brk = want;
  return ms_.brk;
}

uint64_t Personality::sys_sysinfo(uint64_t out) {
  // struct sysinfo as Linux fills it, for a machine that is this guest: its RAM, what its
  // mappings leave free, one process.
  struct {
    int64_t uptime;
    uint64_t loads[3], totalram, freeram, sharedram, bufferram, totalswap, freeswap;
    uint16_t procs, pad;
    uint32_t pad2;
    uint64_t totalhigh, freehigh;
    uint32_t mem_unit;
    char reserved[4];
  } si;
  std::memset(&si, 0, sizeof si);
  static_assert(sizeof si == 112);
  uint64_t used = page_up(ms_.brk) - mem_.va;
  for (auto &[a, len] : ms_.maps) used += len;
  used += mem_.end() - ms_.stack_bottom;
  if (touched_) used = touched_();  // lazy reservations: what it touched
  si.uptime = int64_t((Vcpu::now_ns() - start_ns_) / 1000000000);
  si.totalram = std::min<uint64_t>(mem_.region->size(), cfg_.memory_bytes);
  si.freeram = si.totalram - std::min<uint64_t>(used, si.totalram);
  si.procs = 1;
  si.mem_unit = 1;
  return mem_.write(out, &si, sizeof si) ? 0 : neg(EFAULT);
}

uint64_t Personality::sys_prctl(uint64_t op, uint64_t a1) {
  switch (op) {
    case 15: {  // PR_SET_NAME: up to 15 bytes, cut at the first NUL
      char name[16] = {};
      for (int i = 0; i < 15; i++) {
        const uint8_t *c = mem_.ptr(a1 + i, 1);
        if (!c) return neg(EFAULT);
        if (!*c) break;
        name[i] = char(*c);
      }
      ms_.fds.comm = name;
      return 0;
    }
    case 16: {  // PR_GET_NAME
      char name[16] = {};
      std::memcpy(name, ms_.fds.comm.data(), std::min<size_t>(15, ms_.fds.comm.size()));
      return mem_.write(a1, name, 16) ? 0 : neg(EFAULT);
    }
    case 1:                                        // PR_SET_PDEATHSIG: no parent to outlive
      return a1 > 64 ? neg(EINVAL) : 0;
    case 2: {                                      // PR_GET_PDEATHSIG
      int zero = 0;
      return mem_.write(a1, &zero, 4) ? 0 : neg(EFAULT);
    }
    case 3: return 1;                              // PR_GET_DUMPABLE
    case 4: return a1 > 1 ? neg(EINVAL) : 0;       // PR_SET_DUMPABLE
    case 21: return 0;                             // PR_GET_SECCOMP
    case 23: return a1 > 63 ? neg(EINVAL) : 1;     // PR_CAPBSET_READ: root's full set
    case 29: return 0;                             // PR_SET_TIMERSLACK
    case 30: return 50000;                         // PR_GET_TIMERSLACK: Linux's default
    case 36: return 0;                             // PR_SET_CHILD_SUBREAPER
    case 38: return a1 == 1 ? 0 : neg(EINVAL);     // PR_SET_NO_NEW_PRIVS
    case 39: return 0;                             // PR_GET_NO_NEW_PRIVS
    case 41: return 0;                             // PR_SET_THP_DISABLE
    case 42: return 0;                             // PR_GET_THP_DISABLE
    default: return neg(EINVAL);                   // as Linux answers an option it does not know
  }
}

uint64_t Personality::syscall(Vcpu &cpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                              uint64_t a5, Stop *stop) {
  cpu_ = &cpu;
  count_syscall(nr, false);
  bool handled = false;
  uint64_t r = thread_syscall(nr, a0, a1, a2, a3, a4, a5, &handled);
  if (handled) return r;
  r = scratch_syscall(nr, a0, a1, a2, a3, a4, &handled);
  if (handled) return r;
  r = fd_syscall(nr, a0, a1, a2, a3, a4, &handled, stop);
  if (handled) return r;
  r = net_syscall(nr, a0, a1, a2, a3, a4, a5, &handled);
  if (handled) return r;
  r = file_syscall(nr, a0, a1, a2, a3, a4, &handled);
  if (handled) return r;
  switch (nr) {
    case NR_mmap: return sys_mmap(a0, a1, a2, a3, int64_t(a4), a5);
    case NR_munmap: return sys_munmap(a0, a1);
    case NR_mremap: return sys_mremap(a0, a1, a2, a3);
    case NR_mprotect:
      // Protection changes are accepted but not enforced: the guest's page tables are fixed
      // (host edits are not seen under shadow paging). The range must be the guest's own.
      return mem_.ptr(a0, a1) ? 0 : neg(ENOMEM);
    case NR_madvise:
      if (a2 == 4 /* MADV_DONTNEED */) {
        if (a0 % kPage || !page_len(a1) || !mem_.ptr(a0, page_len(a1))) return neg(EINVAL);
        mem_.zero(a0, page_len(a1));
      }
      return 0;
    case NR_brk: return sys_brk(a0);
    case NR_rt_sigaction:
    case NR_rt_sigprocmask: {
      // Inert: signals are never delivered to a guest. Report empty old state.
      uint64_t old = nr == NR_rt_sigaction ? a2 : a2;
      size_t sz = nr == NR_rt_sigaction ? 32 : 8;
      if (old) {
        uint8_t z[32] = {};
        if (!mem_.write(old, z, sz)) return neg(EFAULT);
      }
      return 0;
    }
    case NR_sigaltstack: return 0;
    case NR_sched_yield: return 0;
    case NR_nanosleep:
    case NR_clock_nanosleep: {
      uint64_t req = nr == NR_nanosleep ? a0 : a2;
      timespec ts;
      if (!mem_.read(&ts, req, sizeof ts)) return neg(EFAULT);
      if (nr == NR_clock_nanosleep && (a1 & 1)) return 0;  // TIMER_ABSTIME: do not sleep on guest clocks
      nanosleep(&ts, nullptr);  // the timeout watchdog interrupts this too
      return 0;
    }
    case NR_getpid:
    case NR_gettid: return 1;
    case NR_getppid: return 0;
    case NR_getuid:
    case NR_getgid:
    case NR_geteuid:
    case NR_getegid: return 0;
    case NR_exit:
    case NR_exit_group:
      stop->kind = Stop::Exited;
      stop->exit_code = int(a0 & 0xff);
      return 0;
    case NR_kill:
    case NR_tkill:
    case NR_tgkill: {
      uint64_t sig = nr == NR_tgkill ? a2 : a1;
      if (sig == 0) return 0;
      stop->kind = Stop::Exited;
      stop->signal = int(sig);
      stop->exit_code = 128 + int(sig);
      return 0;
    }
    case NR_uname: {
      char u[6][65] = {};
      std::strcpy(u[0], "Linux");
      std::strcpy(u[1], "farcall");
      std::strcpy(u[2], "6.1.0-farcall");
      std::strcpy(u[3], "#1 SMP farcall");
      std::strcpy(u[4], "x86_64");
      std::strcpy(u[5], "(none)");
      return mem_.write(a0, u, sizeof u) ? 0 : neg(EFAULT);
    }
    case NR_arch_prctl: {
      kvm_sregs &s = cpu.sregs();
      switch (a0) {
        // A base the CPU would refuse fails as on Linux, rather than in the next KVM_RUN.
        case 0x1002:  // ARCH_SET_FS
          if (a1 >> 47) return neg(EPERM);  // above user space, as Linux answers
          s.fs.base = a1;
          cpu.sregs_dirty();
          return 0;
        case 0x1001:  // ARCH_SET_GS
          if (a1 >> 47) return neg(EPERM);  // above user space, as Linux answers
          s.gs.base = a1;
          cpu.sregs_dirty();
          return 0;
        case 0x1003: return mem_.write(a1, &s.fs.base, 8) ? 0 : neg(EFAULT);
        case 0x1004: return mem_.write(a1, &s.gs.base, 8) ? 0 : neg(EFAULT);
        default: return neg(EINVAL);
      }
    }
    case NR_set_tid_address: return 1;
    case NR_set_robust_list: return 0;
    case NR_futex: {
      int op = int(a1) & 0x7f;
      if (op == 1 || op == 10) return 0;  // WAKE: nobody else to wake
      if (op == 0 || op == 9) {           // WAIT: one thread, so nobody can ever wake us
        uint32_t cur;
        if (!mem_.read(&cur, a0, 4)) return neg(EFAULT);
        return cur != uint32_t(a2) ? neg(EAGAIN) : neg(ETIMEDOUT);
      }
      return neg(ENOSYS);
    }
    case NR_clock_gettime:
    case NR_clock_getres:
    case NR_gettimeofday:
    case NR_time: {
      timespec ts;
      clockid_t clk = nr == NR_clock_gettime || nr == NR_clock_getres ? clockid_t(a0) : CLOCK_REALTIME;
      if (clk == CLOCK_PROCESS_CPUTIME_ID || clk == CLOCK_THREAD_CPUTIME_ID) clk = CLOCK_MONOTONIC;
      if (clk < 0 || clk > 11 || clk == 10) return neg(EINVAL);
      if (nr == NR_clock_getres) {
        ts = {0, 1};
        return a1 == 0 || mem_.write(a1, &ts, sizeof ts) ? 0 : neg(EFAULT);
      }
      // A clock id the host refuses (10, or one it lacks) fails here too, before anything is
      // written: `ts` holds nothing then, and must never reach the guest.
      if (clock_gettime(clk, &ts) < 0) return neg(EINVAL);
      if (nr == NR_clock_gettime) return mem_.write(a1, &ts, sizeof ts) ? 0 : neg(EFAULT);
      if (nr == NR_time) {
        uint64_t t = ts.tv_sec;
        if (a0 && !mem_.write(a0, &t, 8)) return neg(EFAULT);
        return t;
      }
      uint64_t tv[2] = {uint64_t(ts.tv_sec), uint64_t(ts.tv_nsec / 1000)};
      return !a0 || mem_.write(a0, tv, 16) ? 0 : neg(EFAULT);
    }
    case NR_getrlimit:
    case NR_prlimit64: {
      uint64_t res = nr == NR_getrlimit ? a0 : a1, out = nr == NR_getrlimit ? a1 : a3;
      if (nr == NR_prlimit64 && a0 != 0 && a0 != 1) return neg(ESRCH);
      uint64_t lim[2] = {~0ull, ~0ull};
      if (res == 3) lim[0] = lim[1] = mem_.end() - ms_.stack_bottom;  // RLIMIT_STACK
      if (res == 7) lim[0] = lim[1] = FdTable::kMaxFds;                                   // RLIMIT_NOFILE
      if (res == 9) lim[0] = lim[1] = mem_.region->size();                   // RLIMIT_AS
      if (out && !mem_.write(out, lim, 16)) return neg(EFAULT);
      return 0;
    }
    case NR_sched_getaffinity: {
      if (a1 < 8) return neg(EINVAL);
      uint64_t mask = 1;
      return mem_.write(a2, &mask, 8) ? 8 : neg(EFAULT);
    }
    case NR_getrandom: {
      uint8_t *p = mem_.ptr(a0, a1);
      if (!p && a1) return neg(EFAULT);
      uint64_t n = std::min<uint64_t>(a1, 1 << 20);
      ssize_t got = getrandom(p, n, 0);
      mem_.mark(a0, n);
      return got < 0 ? neg(errno) : uint64_t(got);
    }
    case NR_umask: {
      uint32_t old = ms_.fds.umask;
      ms_.fds.umask = uint32_t(a0) & 0777;
      return old;
    }
    case NR_getgroups: return int(a0) < 0 ? neg(EINVAL) : 0;  // no supplementary groups
    case NR_sysinfo: return sys_sysinfo(a0);
    case NR_prctl: return sys_prctl(a0, a1);
    case NR_getcwd: {
      const std::string &cwd = ms_.fds.cwd;
      if (a1 < cwd.size() + 1) return neg(ERANGE);
      return mem_.write(a0, cwd.c_str(), cwd.size() + 1) ? cwd.size() + 1 : neg(EFAULT);
    }
    default:
      (void)a4;
      count_syscall(nr, true);
      return neg(ENOSYS);
  }
}

}  // namespace farcall
