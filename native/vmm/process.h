// A Linux process personality on top of a Vm: the loaded program, its initial stack,
// its address-space bookkeeping (brk, mmap), captured output and system-call emulation.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "../../guest-sdk/include/farcall_abi.h"
#include "elf.h"
#include "fdtable.h"
#include "fileview.h"
#include "vm.h"

namespace farcall {

struct ProcessConfig {
  std::vector<std::string> args;  // argv, argv[0] included
  std::vector<std::string> env;
  std::string stdin_data;
  uint64_t memory_bytes = 64ull << 20;
  uint64_t output_limit = 1ull << 20;  // per stream
  EntryMode mode = EntryMode::TrapPage;
  uint64_t ram_va = 0, ram_gpa = 0;  // backends: layout::kBackendVa and their slot's address
  // TCP destinations (IPv4 address and port, host byte order) the guest may connect to.
  // Empty: no network at all (socket() is unsupported: ENOSYS). With a list, connect() to
  // anything else fails with EACCES and is counted in ProcessStats::net_refused.
  std::vector<std::pair<uint32_t, uint16_t>> net_allow;
  // A host directory the guest sees read-only as "/" (fileview.h); empty: no files at all.
  std::string files_root;
};

class Backend;
struct Instance;

// Why Process::run returned control to its owner.
struct Stop {
  enum Kind { Exited, Fault, Timeout, OutputLimit, Farcall } kind = Exited;
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

class Process {
 public:
  // Loads `elf` into a new VM. Throws VmmError for a bad program.
  Process(const std::vector<uint8_t> &elf, const ProcessConfig &cfg);
  // A fork of `master` (a process stopped at a Farcall stop), sharing its memory copy-on-write.
  Process(const Process &master, const CpuState &state, bool dirty_log);
  // A system-call personality without a VM, over another copy of `proto`'s memory (a backend
  // instance): its own brk/mmap bookkeeping, system calls made during gated calls.
  Process(const Process &proto, GuestView view);
  // A VM with empty RAM and no program, used to make calls from the host into backends.
  explicit Process(const VmConfig &vc);
  struct MemState;
  // Snapshots (snapshot.cpp): a VM over `ram` (a snapshot's memory), with that address-space
  // state, never run from a program; and the same without a VM (a backend's serve image).
  Process(const ProcessConfig &cfg, std::shared_ptr<GuestRegion> ram, const MemState &ms);
  Process(const ProcessConfig &cfg, GuestView view, const MemState &ms);

  // Makes every instance of `backend` callable from this VM through the gate. Only before the
  // VM first runs; forks inherit it. `keep` holds the backend alive (null for its own host caller).
  // If every backend attached is trusted and the VM is pvm-native, calls take the in-guest gate.
  void attach(Backend *backend, std::shared_ptr<Backend> keep, const std::string &name);
  // Calls entry `entry` of attached backend `index` from the host: args in RDI..RCX; returns
  // the Stop (Farcall/kHostCallDone with the result in RAX, or a failure).
  Stop host_call(size_t index, int entry, const uint64_t args[4], uint64_t deadline_ns);
  bool in_call() const { return call_.active; }
  // Why the last far call did not return (a fault with its vector, rip and address, a timeout,
  // an exit), for the host call's error; empty after a call that returned.
  const std::string &last_fault() const { return last_fault_; }
  // The last farcall_lookup() that found nothing, in words ("kv.get: no backend named kv is
  // attached (attached: none)"), so a request program that gives up can be explained.
  const std::string &lookup_miss() const { return lookup_miss_; }
  // The first farcall_lookup("name.entry") whose backend is not attached at all, in words.
  const std::string &unattached_lookup() const { return unattached_lookup_; }
  size_t attached_count() const { return attached_.size(); }
  Backend &attached_backend(size_t i) const { return *attached_.at(i).backend; }
  const std::string &attached_name(size_t i) const { return attached_.at(i).name; }
  const ProcessConfig &config() const { return cfg_; }
  // Decides the gate for the attached backends now (it is otherwise done when the VM first
  // runs): a master restored from a snapshot never runs, and its forks inherit the decision.
  void finish_attach() { attach_finish(); }
  // Gives up a far call the caller will not finish (it is being reset or destroyed).
  void abandon_call(const char *why) { gate_abandon(why); }
  const GuestView &view() const { return mem_; }
  void reset_output() {
    out_.clear();
    err_.clear();
  }
  // Where writes to stdout/stderr go instead of the capture buffers (backend instances: the
  // host's output events). With a sink set, output never ends a call.
  void set_output_sink(std::function<void(int fd, const char *p, size_t n)> sink) { sink_ = std::move(sink); }
  // Closes every socket the guest opened (a restored instance starts without connections).
  void close_sockets();
  ~Process();
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;

  Vm &vm() { return *vm_; }
  // Runs until a Stop; the watchdog must be armed by the caller (run_for does both).
  Stop run(uint64_t deadline_ns);
  // Runs for at most timeout_ns with the watchdog armed on this thread. A VMM error in the
  // middle of a far call gives the backend instance back before it propagates.
  Stop run_for(uint64_t timeout_ns);

  std::string &out() { return out_; }
  std::string &err() { return err_; }
  ProcessStats &stats() { return stats_; }  // the owning thread only
  ProcessStats stats_snapshot();             // any thread
  void count_syscall(uint64_t nr, bool unsupported);
  // Address-space bookkeeping is plain data, so a fork reset can restore it by assignment.
  struct MemState {
    uint64_t brk_start = 0, brk = 0, mmap_top = 0, stack_bottom = 0;
    std::map<uint64_t, uint64_t> maps;  // start -> length, anonymous mappings
    size_t stdin_pos = 0;
    FdTable fds = FdTable::standard();  // pipes, eventfds and epoll sets live here, not in the host
  };
  MemState &mem_state() { return ms_; }

 private:
  void build_stack(const ElfImage &img);
  uint64_t syscall(Vcpu &cpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                   Stop *stop);
  uint64_t sys_read(int fd, uint64_t buf, uint64_t len);
  uint64_t sys_write(int fd, uint64_t buf, uint64_t len, Stop *stop);
  uint64_t sys_brk(uint64_t want);
  uint64_t sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off);
  uint64_t sys_munmap(uint64_t addr, uint64_t len);
  uint64_t sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags);
  uint64_t sys_sysinfo(uint64_t out);
  uint64_t sys_prctl(uint64_t op, uint64_t a1);
  uint64_t find_gap(uint64_t len);
  void unmap_range(uint64_t a, uint64_t b);
  uint64_t lookup(uint64_t name_ptr, uint64_t len);
  // Sockets (net.cpp): guest fd -> host fd, only TCP to allowed destinations.
  uint64_t net_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                       bool *handled);
  int host_fd(int guest_fd) const;
  std::map<int, int> sockets_;
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
  std::shared_ptr<FileView> view_;  // immutable files, shared by a master, its forks and instances
  // The gate (gate.cpp).
  // A call to gate address `addr` with the caller's stack at `rsp` (return address on top).
  bool gate_enter(uint64_t addr, uint64_t rsp, uint64_t rflags, bool fetch, const Event &ev, Stop *stop);
  uint64_t exception_rflags();  // RFLAGS in the frame of the exception being handled
  void gate_leave(int64_t result, bool restore, const std::string &why);
  void gate_syscall();
  // A backend's system call inside a call, on `inst`'s personality: false (with the error value
  // the caller gets and why) if the call must end there (a farcall call, exit, output limit).
  bool backend_syscall(Instance &inst, uint64_t *ret, int64_t *err, std::string *why);
  // What stopped a backend inside a call, for its Fault event and restore reason.
  static std::string gate_fault_what(const Event &ev);
  void gate_switch_in(Backend &be, Instance &inst, uint64_t root, int entry);
  void gate_abandon(const char *why);
  // The PVM in-guest gate (gate.cpp): the exits it takes, and the VMM's part on faults and
  // timeouts. pvm_gate_event() returns true when it handled the event and the guest goes on.
  bool pvm_gate_event(const Event &ev, uint64_t deadline_ns);
  struct GateRef {
    Backend &be;
    Instance &inst;
  };
  GateRef pvm_gate_ref(int backend);  // attached backend b and the instance this VM calls
  uint64_t pvm_tick_period() const;   // the shortest call timeout of the attached backends
  void attach_finish();               // the gate decision, before the VM first runs
  bool gate_pending_ = false;
  void pvm_gate_abort(int64_t result, const std::string &why);
  void pvm_gate_cleanup(const char *why);
  Stop run_events(uint64_t deadline_ns);
  void pvm_watch(uint64_t until_ns);  // the watchdog for this vCPU: armed until then (0: off)
  bool host_caller_ = false;  // the backend's own VM for host calls: always the exit gate
  uint64_t tick_ = 0;         // in-guest gate: when the watchdog next checks the call's age

  struct Attached {
    Backend *backend;
    std::shared_ptr<Backend> keep;
    std::string name;
    std::vector<uint64_t> roots;  // page-table root per instance
  };
  struct Call {
    bool active = false, host = false;
    Attached *at = nullptr;
    Instance *inst = nullptr;
    int entry = -1;
    uint64_t ret_rip = 0, caller_rsp = 0, caller_rflags = 0, caller_fs = 0, caller_gs = 0, caller_cr3 = 0, t0 = 0,
             deadline = 0;
    uint64_t saved[6] = {};  // the caller's RBX, RBP, R12-R15: put back if the call does not return
  };
  std::vector<Attached> attached_;
  std::string last_fault_, lookup_miss_, unattached_lookup_;
  Call call_;
  uint64_t req_deadline_ = 0;

  ProcessConfig cfg_;
  std::unique_ptr<Vm> vm_;
  GuestView mem_;  // the memory system calls act on
  MemState ms_;
  std::string out_, err_;
  std::function<void(int fd, const char *p, size_t n)> sink_;
  ProcessStats stats_;
  std::mutex stats_mu_;  // syscall counters are read by the JS thread while the guest runs
  uint64_t start_ns_ = 0;
};

}  // namespace farcall
