// What a KVM exit means for farcall, decided from the exit's facts alone: no vCPU, no ioctl,
// no guest memory. Vm::run gathers the facts after KVM_RUN and acts on the answer; the
// C++ unit tests (native/test) drive this directly for every entry flavor.
#pragma once
#include <cstdint>
#include <string>

#include "kvm.h"

namespace farcall {

struct ExitFacts {
  EntryMode mode = EntryMode::TrapPage;
  bool pvm_gate = false;    // the VM has the PVM in-guest gate
  uint32_t reason = 0;      // kvm_run::exit_reason
  uint16_t port = 0;        // KVM_EXIT_IO
  bool port_out = false;
  uint32_t suberror = 0;    // KVM_EXIT_INTERNAL_ERROR
  uint64_t rip = 0;
  uint16_t cs = 0;          // CS selector at the exit
};

struct Decoded {
  enum Kind {
    Syscall,      // a system call (`via_call`: the SDK called the trap page)
    GateReturn,   // a far call's entry returned
    GateCall,     // a call to a gate address (trap-page flavor: the fetch exited)
    Exception,    // CPU exception `vector` delivered to the guest kernel's entry
    GateWait, GateSyscall, GateNotify, GateCommit,  // the PVM in-guest gate's exits
    Mmio,         // a data access to guest-physical memory with no memslot
    Halt,
    Interrupted,  // KVM_EXIT_INTR: run again
    Unexpected,   // anything else: `detail` says what
  } kind = Unexpected;
  int vector = -1;
  bool via_call = false;
  std::string detail;
};

Decoded exit__decode(const ExitFacts &f);

}  // namespace farcall
