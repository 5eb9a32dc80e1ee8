// Masters and forks: per-request isolation.
//
// A master runs a request program up to farcall_ready() and freezes. A fork is a VM whose
// memory maps the master's memfds MAP_PRIVATE (copy-on-write) and that starts from the
// master's registers. Each request runs in a fork, which is then reset to the master state:
//  - fast reset: the pages the fork has written (KVM dirty log for guest writes, a bitmap for
//    the VMM's own writes) are copied back from the master; registers are put back through
//    the shared kvm_run area (no ioctl); page tables and TLB stay warm. Written pages stay
//    writable across requests (re-protecting them costs a fault per page on the next write);
//    tracking is re-armed every kTrimEvery resets, and right after a request that left many
//    more pages writable than a request writes (as measured after the last re-arm).
//  - full reset: after a fault or timeout every private page is copied back; when the fork's
//    private memory passes its limit, the private pages outside the current write set are
//    dropped (MADV_DONTNEED, back to the master's pages) and the write set is copied back;
//    past the memory limit every private page is dropped and the request fails.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "process.h"

namespace farcall {

class Master {
 public:
  // Loads and runs `elf` until it calls farcall_ready(). Throws VmmError (with a Stop-derived
  // message) if it exits, faults or times out first.
  // `backends` are attached (callable by name) before the program starts.
  Master(const std::vector<uint8_t> &elf, const ProcessConfig &cfg, uint64_t timeout_ns,
         const std::vector<std::pair<std::string, std::shared_ptr<Backend>>> &backends = {});
  // From a snapshot file (snapshot.cpp), without running the program: `backends` must include
  // every backend the snapshot's master had attached, by name, with the same entry points.
  Master(const std::string &snapshot_path,
         const std::vector<std::pair<std::string, std::shared_ptr<Backend>>> &backends);
  // Writes this master to `path` (snapshot.cpp; atomically: a temporary file renamed). Bytes written.
  uint64_t save(const std::string &path);
  Process &process() { return *proc_; }
  const CpuState &state() const { return state_; }
  uint64_t arena() const { return arena_; }
  uint64_t arena_size() const { return arena_size_; }
  uint64_t current() const { return current_; }
  uint64_t init_ns() const { return init_ns_; }
  // Bytes of the image at farcall_ready(). A fork's first write to a page that was a hole
  // allocates a zero page in the master's memfd (shmem fills holes on fault, even for private
  // mappings); trim_image() gives those back, so one request cannot grow every fork's share.
  uint64_t image_bytes() const { return image_bytes_; }
  void trim_image();
  // In-guest gate: the backend instance the next fork calls (forks take them in turn).
  int next_instance(int count) { return int(next_instance_++ % unsigned(count)); }

 private:
  std::unique_ptr<Process> proc_;
  CpuState state_;
  uint64_t arena_ = 0, arena_size_ = 0, current_ = 0, init_ns_ = 0;
  uint64_t image_bytes_ = 0;
  std::vector<std::pair<size_t, size_t>> image_;  // the memfd's data ranges at farcall_ready()
  std::atomic<unsigned> next_instance_{0};
};

struct ResetInfo {
  bool full = false;
  uint64_t pages = 0;  // pages rewritten (fast) or dropped private pages (full)
  uint64_t ns = 0;
  std::string reason;  // why full: "fault", "timeout", "memory", "error", "memory limit"
  // The request touched more than its memory limit (lazy reservations let it write pages it
  // never asked for): every private page was given back, and the request fails.
  bool over_limit = false;
  uint64_t touched = 0;  // bytes counted for that
};

struct RequestOutcome {
  bool ok = false;
  std::string response;
  // When !ok: the error code name and message, and fault details as a Stop.
  std::string code, message;
  Stop stop;
  bool stop_valid = false;
  std::string out, err;  // what the request printed
  uint64_t run_ns = 0;
  ResetInfo reset;
};

class Fork {
 public:
  // max_private_pages: the fork's private (copy-on-write) pages beyond which it is reset fully.
  Fork(Master &master, uint64_t max_private_pages);
  // Runs one request and resets the fork afterwards, whatever happened (a VMM error or an
  // allocation failure included). A response over `max_response` bytes is refused (OutputLimit).
  // If even the reset fails the fork is broken(): every later request is refused, and the owner
  // must replace it.
  RequestOutcome request(const uint8_t *data, size_t len, uint64_t timeout_ns, uint64_t max_response = ~0ull);
  bool broken() const { return broken_; }
  Process &process() { return *proc_; }
  uint64_t fast_resets() const { return fast_; }
  uint64_t full_resets() const { return full_; }
  uint64_t private_pages() const { return private_count_; }

 private:
  ResetInfo reset(bool force_full, const char *why);
  void run_one(RequestOutcome &o, const uint8_t *data, size_t len, uint64_t timeout_ns, uint64_t max_response,
               bool *faulted, const char **why);
  bool broken_ = false;
  void mark_private(uint64_t page);
  Master &master_;
  std::unique_ptr<Process> proc_;
  Personality::MemState mem0_;
  uint64_t max_private_;
  // Lazy reservations (the address space is larger than memory_bytes): what the master's image
  // holds, counted with the pages a fork writes against the limit at every reset.
  uint64_t limit_ = 0;
  std::vector<uint64_t> private_;  // bitmap over RAM pages written at least once since the last full reset
  uint64_t private_count_ = 0;
  uint64_t fast_ = 0, full_ = 0;
  static constexpr int kTrimEvery = 64;
  static constexpr uint64_t kRearmPages = 64;  // writable pages worth re-arming early for
  int since_trim_ = 0;
  bool measure_next_ = true;  // the next reset sees one request's writes since a re-arm
  uint64_t measured_ = 0;     // pages that request wrote
  uint64_t last_exceptions_ = 0;  // the VM's exception count at the last reset
};

}  // namespace farcall
