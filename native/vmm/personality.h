// The Linux personality: the system-call layer a guest program sees (memory, files, fds,
// sockets, clocks, output), over one copy of its memory. Request processes own one each, and so
// does every backend instance (its system calls inside gated calls act on the instance's memory,
// whichever VM made the call). It never runs a VM: whoever does hands it the vCPU per call.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../../guest-sdk/include/farcall_abi.h"
#include "fdtable.h"
#include "fileview.h"
#include "scratch.h"
#include "threads.h"
#include "vm.h"

namespace farcall {

struct ProcessConfig {
  std::vector<std::string> args;  // argv, argv[0] included
  std::vector<std::string> env;
  std::string stdin_data;
  uint64_t memory_bytes = 64ull << 20;  // what the guest may touch (docs/threads.md, lazy reservations)
  // The guest's address space beyond memory_bytes (request programs only): reservations there
  // cost nothing until touched. A backend's space is its memory.
  uint64_t reserve_bytes = 1ull << 30;
  uint64_t space_bytes = 0;  // the whole address space, when known (a snapshot's)
  uint64_t output_limit = 1ull << 20;  // per stream
  EntryMode mode = EntryMode::TrapPage;
  uint64_t ram_va = 0, ram_gpa = 0;  // backends: layout::kBackendVa and their slot's address
  // TCP destinations (IPv4 address and port, host byte order) the guest may connect to.
  // Empty: no network at all (socket() is unsupported: ENOSYS). With a list, connect() to
  // anything else fails with EACCES and is counted in ProcessStats::net_refused.
  std::vector<std::pair<uint32_t, uint16_t>> net_allow;
  // A host directory the guest sees read-only as "/" (fileview.h); empty: no files at all.
  std::string files_root;
  // The writable scratch directory (scratch.h): where the guest sees it, and how many bytes
  // of file data it may hold (0: none).
  std::string scratch_path;
  uint64_t scratch_bytes = 0;
  size_t max_threads = 64;  // guest threads alive at once, the first included; clone beyond: EAGAIN
};

// The address space of a request program: its memory plus reserve_bytes (Go reserves about
// 700 MiB at start), at most layout::kMaxUserRam; a backend's is its memory.
uint64_t process__space(const ProcessConfig &cfg);

// Why Process::run returned control to its owner.
struct Stop {
  // Running: not a stop (a system call that lets the program go on leaves it so).
  enum Kind { Exited, Fault, Timeout, OutputLimit, Farcall, Running } kind = Exited;
  int exit_code = 0;
  int signal = 0;          // Exited by a signal (abort(), kill)
  Event event;             // Fault / Timeout
  std::string message;     // human-readable reason
  uint64_t nr = 0;         // Farcall: which call; arguments are in the vCPU registers
};

struct ProcessStats {
  std::map<uint64_t, uint64_t> syscalls;     // by number, every call
  std::map<uint64_t, uint64_t> unsupported;  // by number, the ones answered ENOSYS
  uint64_t enomem = 0;                       // allocations refused for the memory limit
  uint64_t net_refused = 0;                  // connect() to a destination not allowed
  std::string last_refused;                  // the last such destination, "a.b.c.d:port"
};

// Guest syscall numbers of the farcall ABI (guest-sdk/include/farcall_abi.h, the one definition).
constexpr uint64_t kFarcallSysFirst = FARCALL_SYS_FIRST, kFarcallSysLast = FARCALL_SYS_LAST;
constexpr uint64_t kSysReady = FARCALL_SYS_READY, kSysRespond = FARCALL_SYS_RESPOND, kSysFail = FARCALL_SYS_FAIL,
                   kSysLookup = FARCALL_SYS_LOOKUP, kSysServe = FARCALL_SYS_SERVE;
// The stats key for system-call numbers outside Linux's and farcall's ranges.
constexpr uint64_t kOtherSyscalls = 0xffffffffull;
// Not a guest call: the Stop::Farcall number a host call ends with (result in RAX).
constexpr uint64_t kHostCallDone = 0x46ff;

// What a Stop was, in words ("exited with code 3", "faulted (vector 14)", ...).
std::string stop__describe(const Stop &st);

class Personality {
 public:
  // Address-space bookkeeping is plain data, so a fork reset can restore it by assignment.
  struct MemState {
    uint64_t brk_start = 0, brk = 0, mmap_top = 0, stack_bottom = 0;
    std::map<uint64_t, uint64_t> maps;  // start -> length, anonymous mappings
    size_t stdin_pos = 0;
    FdTable fds = FdTable::standard();  // pipes, eventfds and epoll sets live here, not in the host
    ScratchFs scratch;                  // the scratch directory's files (a cheap copy: scratch.h)
    ThreadTable threads;                // guest threads (threads.cpp; switched by Process)
  };

  // A fresh personality for `cfg` over `mem` (its file view opened from cfg.files_root).
  Personality(const ProcessConfig &cfg, GuestView mem, const MemState &ms);
  // Another copy of `proto`'s state (configuration, files, address space; not its sockets,
  // output or counters) over `mem`: a fork, or a backend instance.
  Personality(const Personality &proto, GuestView mem);
  ~Personality();
  Personality(const Personality &) = delete;
  Personality &operator=(const Personality &) = delete;

  // Answers Linux system call `nr` made on `cpu`. `stop` comes in as Stop::Running; a call that
  // ends the program (exit, a fatal signal, the output limit, a deadlock) sets it, and its
  // return value is then not delivered.
  uint64_t syscall(Vcpu &cpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                   Stop *stop);

  const ProcessConfig &config() const { return cfg_; }
  const GuestView &view() const { return mem_; }
  MemState &mem_state() { return ms_; }
  std::string &out() { return out_; }
  std::string &err() { return err_; }
  void reset_output() {
    out_.clear();
    err_.clear();
  }
  // Where writes to stdout/stderr go instead of the capture buffers (backend instances: the
  // host's output events). With a sink set, output never ends a call.
  void set_output_sink(std::function<void(int fd, const char *p, size_t n)> sink) { sink_ = std::move(sink); }
  // Closes every socket the guest opened (a restored instance starts without connections).
  void close_sockets();
  // A backend call's undo (durability 'call'): the sockets open now are the committed ones; an
  // undone call's sockets (opened after the last commit) are closed with the rest of its state.
  // One the undone call closed stays closed: a connection cannot be given back.
  void commit_sockets();
  void undo_sockets();
  // Closes the view files this copy opened itself (its layer, fileview.h): for a reset to its
  // prototype's state, whose fd table names none of them.
  void reset_view() {
    if (view_ && view_->below()) view_ = FileView::layer(view_->below());
  }
  ProcessStats &stats() { return stats_; }  // the owning thread only
  ProcessStats stats_snapshot();             // any thread
  void count_syscall(uint64_t nr, bool unsupported);
  // Lazy reservations: how many bytes of its memory the guest has touched (set by the owner of
  // the VM; unset, the address space is the limit and nothing is counted).
  void set_touched(std::function<uint64_t()> f) { touched_ = std::move(f); }

 private:
  uint64_t sys_read(int fd, uint64_t buf, uint64_t len);
  uint64_t sys_write(int fd, uint64_t buf, uint64_t len, Stop *stop);
  uint64_t sys_brk(uint64_t want);
  uint64_t sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off);
  uint64_t sys_munmap(uint64_t addr, uint64_t len);
  uint64_t sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags);
  uint64_t sys_sysinfo(uint64_t out);
  uint64_t sys_prctl(uint64_t op, uint64_t a1);
  uint64_t find_gap(uint64_t len);
  // True (counted in stats.enomem) when the guest has touched more than memory_bytes, so a new
  // mapping or brk is refused.
  bool over_memory();
  std::function<uint64_t()> touched_;
  // Guest threads (threads.cpp, over MemState::threads): the calls; Process switches threads.
  bool threads_ok() const { return cfg_.ram_va == 0; }  // request programs; backends get none
  uint64_t thread_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                          bool *handled);
  bool thread_retry();  // a descriptor wait: let another thread run, make the call again later
  int64_t thread_deadline(uint64_t at, int abs_clock);
  uint64_t futex_wake(uint64_t addr, uint64_t n, uint32_t bitset);
  uint64_t sys_futex(uint64_t addr, uint64_t op, uint64_t val, uint64_t a3, uint64_t addr2, uint64_t val3);
  uint64_t sys_clone(uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls);
  void unmap_range(uint64_t a, uint64_t b);
  // Sockets (net.cpp): guest fd -> host fd, only TCP to allowed destinations.
  uint64_t net_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                       bool *handled);
  int host_fd(int guest_fd) const;
  std::map<int, int> sockets_;
  std::set<int> committed_sockets_;  // guest fds, as of the last commit_sockets()
  // File descriptors (fds.cpp, over MemState::fds).
  uint64_t fd_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, bool *handled,
                      Stop *stop);
  uint64_t fd_read(int fd, uint64_t buf, uint64_t len, Stop *stop);
  uint64_t fd_write(int fd, uint64_t buf, uint64_t len, Stop *stop);
  uint64_t fd_dup(int old, int fd, bool cloexec, bool exact);
  uint64_t fd_poll(uint64_t fds_at, uint64_t nfds, int64_t ms, Stop *stop);
  uint64_t fd_epoll_wait(int epfd, uint64_t out, int64_t max, int64_t ms, Stop *stop);
  uint32_t fd_ready(int fd);  // poll bits of `fd` now (POLLNVAL if it is not open)
  bool fd_wait(const std::vector<int> &sockets, int64_t ms, Stop *stop, const char *what);
  bool fd_deadlock(Stop *stop, const char *what);
  // Paths and the read-only file view (files.cpp).
  uint64_t file_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, bool *handled);
  int guest_path(uint64_t at, std::string *out);
  int guest_path_at(int64_t dirfd, uint64_t at, std::string *out);
  uint64_t file_open(const std::string &path, uint64_t flags);
  uint64_t file_read(OpenFile &f, uint64_t buf, uint64_t len, uint64_t *pos);
  uint64_t file_stat(const OpenFile &f, uint64_t out);
  uint64_t file_lseek(OpenFile &f, int64_t off, int whence);
  uint64_t file_mmap_copy(int fd, uint64_t at, uint64_t len, uint64_t off);
  // The scratch directory (scratchcalls.cpp): calls on its paths and fds; handled=false for others.
  uint64_t scratch_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                           bool *handled);
  uint64_t scratch_rw(OpenFile &f, uint64_t buf, uint64_t len, uint64_t *pos, bool write);
  struct ScratchPath;
  int scratch_path(int64_t dirfd, uint64_t at, ScratchPath *out);
  uint64_t scratch_open(const ScratchPath &p, uint64_t flags, uint64_t mode);
  uint64_t scratch_fd_call(uint64_t nr, OpenFile &f, uint64_t a1, uint64_t a2, uint64_t a3);
  uint64_t scratch_path_call(uint64_t nr, const uint64_t a[5], bool *handled);
  uint64_t scratch_stat_out(uint64_t ino, uint64_t out, bool statx);

  ProcessConfig cfg_;
  std::shared_ptr<FileView> view_;  // immutable files, shared by a master, its forks and instances
  GuestView mem_;                   // the memory system calls act on
  MemState ms_;
  Vcpu *cpu_ = nullptr;             // the vCPU of the call being answered
  std::string out_, err_;
  std::function<void(int fd, const char *p, size_t n)> sink_;
  ProcessStats stats_;
  std::mutex stats_mu_;  // syscall counters are read by the JS thread while the guest runs
  uint64_t start_ns_ = 0;
};

}  // namespace farcall
