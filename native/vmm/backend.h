// Backends: programs that keep state and export entry points, called from request VMs
// through the gate, and from the host.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "personality.h"

namespace farcall {

struct EntryPoint {
  std::string name;
  uint64_t addr;
};

// One copy of the backend's memory (e.g. one database connection each). Calls into an
// instance are serialized by its lock; its memory persists across calls from every caller.
// An instance's line in the backend's shared lines page: the lock word every caller takes
// (0: free; otherwise the owner: a VM's owner value, or kHostOwner for the VMM) and the calls
// made. Guest kernels (the PVM in-guest gate) take it with `lock cmpxchg` in the same page.
struct InstanceLine {
  std::atomic<uint64_t> owner;
  uint64_t calls;
  // Non-zero while VMM threads sleep waiting for `owner` to become 0: whoever frees the line
  // and sees it hands the line to the first of them (Backend::wake, which keeps the flag raised
  // while others still wait; the guest kernel through its notify exit), so they sleep, not poll.
  std::atomic<uint64_t> waiters;
  uint64_t pad[5];
};
static_assert(sizeof(InstanceLine) == 64);
constexpr uint64_t kHostOwner = ~0ull;

struct Instance {
  int index = 0;
  uint64_t gpa = 0;
  std::shared_ptr<GuestRegion> region;
  // Durability::Call: the instance's consistent state, i.e. its memory and address-space
  // bookkeeping as the last call that returned left them. A call that does not return is
  // undone from here, page by page, for the pages it wrote.
  std::shared_ptr<GuestRegion> committed;
  Personality::MemState committed_ms;
  int commits_since_rearm = 0;
  std::unique_ptr<Personality> personality;  // brk/mmap state and system calls on this memory
  InstanceLine *line = nullptr;
  uint64_t faults = 0, restores = 0;
  uint64_t calls() const { return line->calls; }
};

struct BackendEvent {
  enum Kind { Call, Fault, Restore, Output } kind;
  int instance;
  std::string entry;
  uint64_t ns = 0;
  std::string message;  // Output: the bytes written (entry names the stream)
};

// What a call that does not return (fault, timeout, exit) takes with it.
enum class Durability {
  Call,      // only its own writes: every write acknowledged to an earlier call stays
  Instance,  // the instance goes back to its state right after farcall_serve()
};

// Guest-visible error codes a gated call returns in RAX when the backend could not finish
// (guest-sdk/include/farcall.h documents the same values).
constexpr int64_t kErrBackendFault = FARCALL_E_BACKEND_FAULT, kErrBackendTimeout = FARCALL_E_BACKEND_TIMEOUT,
                  kErrBackendBusy = FARCALL_E_BACKEND_BUSY, kErrBackendExit = FARCALL_E_BACKEND_EXIT;

// Why a host call was refused while the backend restarts (Stop::message).
constexpr const char *kRestarting = "backend is restarting";

class Process;

class Backend {
 public:
  // Loads the program at its own window from layout::kBackendVa, runs it to farcall_serve(), records its entry
  // points, and makes `instances` copies of its memory.
  // `trusted`: callers on PVM hosts may run it in their own guest kernel (the in-guest gate,
  // exit-free, docs/pvm.md); it can then take over those callers' VMs.
  Backend(const std::vector<uint8_t> &elf, ProcessConfig cfg, int instances, uint64_t init_timeout_ns,
          uint64_t call_timeout_ns, bool trusted = false, Durability durability = Durability::Call);
  // From a snapshot file (snapshot.cpp): the instances' memory and bookkeeping as they were,
  // at the same window (refused if that window is taken in this process). `cfg` gives the
  // limits and network; memory size and instance count come from the file.
  Backend(const std::string &snapshot_path, ProcessConfig cfg, uint64_t call_timeout_ns, bool trusted,
          Durability durability);
  ~Backend();
  // Writes every instance's state (and the state right after farcall_serve()) to `path` at a
  // consistent point: it holds every instance's lock meanwhile, waiting at most until
  // `deadline_ns` for calls in flight. Later restarts start from this file. Bytes written.
  uint64_t save(const std::string &path, uint64_t deadline_ns);

  // Restarts from the program: a fresh initialization becomes the new snapshot and every
  // instance is rewritten from it, in place (callers' VMs keep their mappings). While it runs
  // the backend is unavailable: guest calls return kErrBackendBusy, host calls are refused.
  // Throws (and stays unavailable) if the program fails to initialize again.
  void restart(uint64_t deadline_ns);
  // The snapshot restart() starts from (the last one written or loaded), if any.
  std::string restart_snapshot() const {
    std::lock_guard<std::mutex> lk(mu_);
    return restart_snapshot_;
  }
  // Unavailable: guest calls get kErrBackendBusy at once (in-guest gates read the flag from
  // the lines page), host calls are refused.
  bool available() const { return available_; }
  void set_available(bool on);

  const std::vector<EntryPoint> &entries() const { return entries_; }
  int find(const std::string &name) const;
  size_t instance_count() const { return instances_.size(); }
  Instance &instance(size_t i) { return *instances_[i]; }
  uint64_t fs_base() const { return fs_base_; }
  uint64_t gs_base() const { return gs_base_; }
  // Where gated calls enter (the SDK's trampoline, with the entry in R11), or 0: the entry itself.
  uint64_t trampoline() const { return trampoline_; }
  uint64_t stack_top() const { return stack_top_; }
  uint64_t call_info() const { return call_info_; }
  uint64_t call_timeout_ns() const { return call_timeout_ns_; }
  uint64_t ram_bytes() const { return ram_bytes_; }
  // Where the backend's memory appears in every VM (its own window from layout::kBackendVa).
  uint64_t va() const { return va_; }
  // The initialization's system-call counters (restart() replaces the init process).
  ProcessStats init_stats() {
    std::lock_guard<std::mutex> lk(mu_);
    return init_stats_;
  }

  bool trusted() const { return trusted_; }
  const std::shared_ptr<GuestRegion> &lines() const { return lines_; }
  // Takes a free instance, waiting until `deadline_ns` (0: forever); null when it passed.
  Instance *acquire(uint64_t deadline_ns);
  // Takes this instance for `owner` (a VM whose guest kernel found it taken).
  bool acquire_for(Instance &inst, uint64_t owner, uint64_t deadline_ns);
  // Gives the instance back; with `restore` its memory is first put back to the state right
  // after farcall_serve().
  void release(Instance *inst, bool restore, const std::string &why);
  // Hands `inst` to the first VMM thread waiting for it (after a guest kernel freed it with its
  // wake flag raised); the flag stays raised while more wait.
  void wake(Instance &inst);
  // Ends a call that `vm` made into `inst` and gives the instance back. A call that returned
  // (`ok`) makes what it wrote the instance's consistent state; one that did not is undone
  // (Durability::Call: the pages it wrote, from `vm`'s dirty log and the VMM's own writes) or
  // restores the whole instance (Durability::Instance). `vm` is null for a call that made none.
  void finish(Instance &inst, Vm *vm, bool ok, const std::string &why);
  // finish() without giving the instance back: the in-guest gate's kernel unlocks it itself.
  void commit(Instance &inst, Vm *vm);
  Durability durability() const { return durability_; }
  // A backend's write to stdout/stderr inside a call: drained to the host as an Output event,
  // never buffered, never ending the call. Past kOutputQueued bytes not yet taken by the host,
  // output is dropped and counted.
  void output(Instance &inst, int fd, const char *p, size_t n);
  void output_taken(size_t n) { output_queued_ -= n; }
  static constexpr uint64_t kOutputQueued = 1 << 20;
  std::atomic<uint64_t> output_dropped{0};
  // A call into `inst` that did not return (fault, timeout, exit, abandoned): counted and reported.
  void fault(Instance &inst, const std::string &entry, uint64_t ns, const std::string &why) {
    inst.faults++;
    faults++;
    emit(BackendEvent{BackendEvent::Fault, inst.index, entry, ns, why});
  }
  void emit(const BackendEvent &e) {
    std::lock_guard<std::mutex> lk(event_mu_);
    if (on_event_) on_event_(e);
  }
  // Called on whatever thread made the call; cleared (null) before the listener goes away.
  void set_on_event(std::function<void(const BackendEvent &)> fn) {
    std::lock_guard<std::mutex> lk(event_mu_);
    on_event_ = std::move(fn);
  }
  std::atomic<bool> want_call_events{false};
  std::atomic<uint64_t> faults{0}, restores{0}, timeouts{0};
  // Calls finished or abandoned, on every path (the instance lines count them).
  uint64_t calls() const {
    uint64_t n = 0;
    for (auto &i : instances_) n += i->calls();
    return n;
  }

 private:
  void restore(Instance &inst);
  // restart() from restart_snapshot_ (snapshot.cpp): the instances get the file's state.
  void restart_from_snapshot(const std::string &path, uint64_t deadline_ns);
  // Holds every instance (a consistent point); false (none held) if the deadline passed.
  bool hold_all(uint64_t deadline_ns, std::vector<Instance *> *held);
  std::string restart_snapshot_;           // guarded by mu_
  // The state right after farcall_serve(): its memory (the initialization's RAM, or a
  // snapshot's) and personality. Instances are copies of it; restores go back to it.
  std::shared_ptr<GuestRegion> serve_ram_;
  std::unique_ptr<Personality> serve_;
  ProcessStats init_stats_;
  // The serve state of an initialization that reached farcall_serve(); its VM is not kept.
  void adopt_serve(Process &init);
  // The pages `vm` and the VMM wrote into `inst` since the last commit or undo.
  std::vector<uint64_t> written(Instance &inst, Vm *vm, bool rearm);
  static constexpr int kRearmEvery = 64;
  Durability durability_ = Durability::Call;
  std::atomic<uint64_t> output_queued_{0};
  void copy_snapshot(GuestRegion &dst);
  std::unique_ptr<Process> initialize(uint64_t gpa);
  std::vector<uint8_t> elf_;
  ProcessConfig cfg_;
  uint64_t init_timeout_ns_ = 0;
  std::vector<EntryPoint> entries_;
  std::vector<std::unique_ptr<Instance>> instances_;
  bool take_wait(Instance *want, uint64_t owner, uint64_t deadline_ns, Instance **got);
  // VMM threads waiting for an instance (`want`, or any when null), first come first served.
  struct Waiter {
    Instance *want;
    uint64_t owner;
    uint64_t since;           // when it queued
    Instance *got = nullptr;  // set by hand_off, which took the lock for this waiter
  };
  static constexpr uint64_t kHandOffNs = 2000000;  // a free goes to a waiter queued this long
  std::deque<Waiter *> queue_;  // guarded by mu_
  Waiter *first_waiter(Instance &inst);  // the one `inst` goes to next (mu_ held)
  // After `inst` was freed (mu_ held): takes it for its first waiter if that one has waited
  // kHandOffNs, and wakes the waiters.
  void hand_off(Instance &inst);
  static constexpr uint64_t kSpinNs = 10000;  // a waiter's tries before it sleeps
  std::vector<uint64_t> gpas_;  // guest-physical ranges this backend took (GpaSpace)
  std::shared_ptr<GuestRegion> lines_;  // one InstanceLine per instance
  bool trusted_ = false;
  uint64_t va_ = 0;
  std::atomic<bool> available_{true};
  uint64_t fs_base_ = 0, gs_base_ = 0, trampoline_ = 0, stack_top_ = 0, call_info_ = 0, call_timeout_ns_ = 0, ram_bytes_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::mutex event_mu_;
  std::function<void(const BackendEvent &)> on_event_;
  size_t next_ = 0;  // where acquire() starts looking (guarded by mu_)
};

// Guest-physical ranges for backend memory, from layout::kBackendGpaBase up to the physical
// address width: lowest fit first, 2 MiB aligned. One per process (process()), so instance memory
// sits at the same guest-physical address in every VM that can call it.
class GpaSpace {
 public:
  explicit GpaSpace(unsigned phys_bits);
  static GpaSpace &process();  // sized by this host's width (Kvm::phys_bits)
  uint64_t take(uint64_t bytes);  // throws BadState when nothing fits
  void give(uint64_t gpa);

 private:
  std::mutex mu_;
  std::map<uint64_t, uint64_t> used_;  // start -> bytes
  unsigned bits_;
};
// A backend's window at `va` (a restored backend needs the one it was saved at): false if taken.
bool backend_va__take(uint64_t va);
void backend_va__give(uint64_t va);

}  // namespace farcall
