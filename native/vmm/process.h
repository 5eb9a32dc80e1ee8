// A Linux process personality on top of a Vm: the loaded program, its initial stack,
// its address-space bookkeeping (brk, mmap), captured output and system-call emulation.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "elf.h"
#include "vm.h"

namespace farcall {

struct ProcessConfig {
  std::vector<std::string> args;  // argv, argv[0] included
  std::vector<std::string> env;
  std::string stdin_data;
  uint64_t memory_bytes = 64ull << 20;
  uint64_t output_limit = 1ull << 20;  // per stream
  EntryMode mode = EntryMode::TrapPage;
};

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
};

// Guest syscall numbers of the farcall ABI (guest-sdk/include/farcall.h has the same).
constexpr uint64_t kFarcallSysFirst = 0x4600, kFarcallSysLast = 0x46ff;

class Process {
 public:
  // Loads `elf` into a new VM. Throws VmmError for a bad program.
  Process(const std::vector<uint8_t> &elf, const ProcessConfig &cfg);
  // A fork of `master` (a process stopped at a Farcall stop), sharing its memory copy-on-write.
  Process(const Process &master, const CpuState &state, bool dirty_log);

  Vm &vm() { return *vm_; }
  Stop run(uint64_t deadline_ns);

  std::string &out() { return out_; }
  std::string &err() { return err_; }
  ProcessStats &stats() { return stats_; }
  // Address-space bookkeeping is plain data, so a fork reset can restore it by assignment.
  struct MemState {
    uint64_t brk_start = 0, brk = 0, mmap_top = 0, stack_bottom = 0;
    std::map<uint64_t, uint64_t> maps;  // start -> length, anonymous mappings
    size_t stdin_pos = 0;
  };
  MemState &mem_state() { return ms_; }

 private:
  void build_stack(const ElfImage &img);
  uint64_t syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                   Stop *stop);
  uint64_t sys_read(int fd, uint64_t buf, uint64_t len);
  uint64_t sys_write(int fd, uint64_t buf, uint64_t len, Stop *stop);
  uint64_t sys_brk(uint64_t want);
  uint64_t sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off);
  uint64_t sys_munmap(uint64_t addr, uint64_t len);
  uint64_t sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags);
  uint64_t find_gap(uint64_t len);
  void unmap_range(uint64_t a, uint64_t b);

  ProcessConfig cfg_;
  std::unique_ptr<Vm> vm_;
  MemState ms_;
  std::string out_, err_;
  ProcessStats stats_;
  uint64_t start_ns_ = 0;
};

}  // namespace farcall
